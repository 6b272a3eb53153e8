/* nubo migrate cutover APP [--to NODE] */
#include "cli.h"
#include "migrate-cli.h"

static int
cmd_migrate_cutover_exec(struct cmd_args *a)
{
	return migrate_cli_action(a, "cutover", NULL);
}

const struct cmd_entry cmd_migrate_cutover_entry = {
	"migrate", "cutover", "APP", "to=,json,no-wait", 1, 1,
	"cut over: maintenance on the source, final copy, verify, the target serves",
	"Acts on the app's newest migration (the one to NODE with --to) and\n"
	"shows its progress until the step list is done (--no-wait: return\n"
	"at once; 'nubo migrate status APP' follows up).",
	cmd_migrate_cutover_exec, 0,
};
