/* nubo migrate run APP --to NODE */
#include "cli.h"
#include "migrate-cli.h"

static int
cmd_migrate_run_exec(struct cmd_args *a)
{
	return migrate_cli_create(a, "run");
}

const struct cmd_entry cmd_migrate_run_entry = {
	"migrate", "run", "APP", "to=,json,no-wait,replicate,dump", 1, 1,
	"migrate APP to NODE in one go: copy, verify, cutover, offboarding, final link",
	MIGRATE_CREATE_HELP,
	cmd_migrate_run_exec, 0,
};
