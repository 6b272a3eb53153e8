/* nubo migrate start APP --to NODE */
#include "cli.h"
#include "migrate-cli.h"

static int
cmd_migrate_start_exec(struct cmd_args *a)
{
	return migrate_cli_create(a, "start");
}

const struct cmd_entry cmd_migrate_start_entry = {
	"migrate", "start", "APP", "to=,json,no-wait,replicate", 1, 1,
	"start migrating APP to NODE: temporary app, link, copy, verify",
	"Shows progress (step, bytes, rows, files, ETA) until done; the\n"
	"migration is journaled: if anything is killed, 'nubo migrate resume\n"
	"APP' finishes it. --no-wait returns at once. --replicate copies the\n"
	"database's schema, then keeps the target's database following the\n"
	"source's (PostgreSQL logical replication) until the cutover, which\n"
	"then waits for the last writes instead of copying the database.",
	cmd_migrate_start_exec, 0,
};
