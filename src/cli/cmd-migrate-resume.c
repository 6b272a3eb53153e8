/* nubo migrate resume APP [--to NODE] */
#include "cli.h"
#include "migrate-cli.h"

static int
cmd_migrate_resume_exec(struct cmd_args *a)
{
	return migrate_cli_action(a, "resume", NULL);
}

const struct cmd_entry cmd_migrate_resume_entry = {
	"migrate", "resume", "APP", "to=,json,no-wait", 1, 1,
	"run the migration's current phase again from its first unfinished step",
	"Acts on the app's newest migration (the one to NODE with --to) and\n"
	"shows its progress until the step list is done (--no-wait: return\n"
	"at once; 'nubo migrate status APP' follows up).",
	cmd_migrate_resume_exec, 0,
};
