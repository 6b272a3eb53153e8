/* nubo migrate abort APP [--to NODE] */
#include "cli.h"
#include "migrate-cli.h"

static int
cmd_migrate_abort_exec(struct cmd_args *a)
{
	return migrate_cli_action(a, "abort", NULL);
}

const struct cmd_entry cmd_migrate_abort_entry = {
	"migrate", "abort", "APP", "to=,json,no-wait", 1, 1,
	"abort before the cutover: the source keeps serving, the temporary app goes",
	"Acts on the app's newest migration (the one to NODE with --to) and\n"
	"shows its progress until the step list is done (--no-wait: return\n"
	"at once; 'nubo migrate status APP' follows up).",
	cmd_migrate_abort_exec, 0,
};
