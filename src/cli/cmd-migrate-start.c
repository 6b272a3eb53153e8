/* nubo migrate start APP --to NODE */
#include "cli.h"
#include "migrate-cli.h"

static int
cmd_migrate_start_exec(struct cmd_args *a)
{
	return migrate_cli_create(a, "start");
}

const struct cmd_entry cmd_migrate_start_entry = {
	"migrate", "start", "APP", "to=,json,no-wait,replicate,dump", 1, 1,
	"start migrating APP to NODE: temporary app, link, copy, verify",
	MIGRATE_CREATE_HELP,
	cmd_migrate_start_exec, 0,
};
