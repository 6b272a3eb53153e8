/* nubo migrate rehearse APP [--to NODE] */
#include "cli.h"
#include "migrate-cli.h"

static int
cmd_migrate_rehearse_exec(struct cmd_args *a)
{
	return migrate_cli_action(a, "rehearse");
}

const struct cmd_entry cmd_migrate_rehearse_entry = {
	"migrate", "rehearse", "APP", "to=,json,no-wait", 1, 1,
	"copy again: files changed since the last copy only, then verify",
	"Acts on the app's newest migration (the one to NODE with --to) and\n"
	"shows its progress until the step list is done (--no-wait: return\n"
	"at once; 'nubo migrate status APP' follows up).",
	cmd_migrate_rehearse_exec, 0,
};
