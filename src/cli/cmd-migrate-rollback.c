/* nubo migrate rollback APP [--to NODE] */
#include "cli.h"
#include "migrate-cli.h"

static int
cmd_migrate_rollback_exec(struct cmd_args *a)
{
	return migrate_cli_action(a, "rollback", NULL);
}

const struct cmd_entry cmd_migrate_rollback_entry = {
	"migrate", "rollback", "APP", "to=,json,no-wait", 1, 1,
	"after the cutover: stop the target, serve from the source again",
	"Writes made on the target since the cutover are NOT copied back.\n"
	"Acts on the app's newest migration (the one to NODE with --to) and\n"
	"shows its progress until the step list is done (--no-wait: return\n"
	"at once; 'nubo migrate status APP' follows up).",
	cmd_migrate_rollback_exec, 0,
};
