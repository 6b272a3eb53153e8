/* nubo migrate run APP --to NODE */
#include "cli.h"
#include "migrate-cli.h"

static int
cmd_migrate_run_exec(struct cmd_args *a)
{
	return migrate_cli_create(a, "run");
}

const struct cmd_entry cmd_migrate_run_entry = {
	"migrate", "run", "APP", "to=,json,no-wait,replicate", 1, 1,
	"migrate APP to NODE in one go: copy, verify, cutover, offboarding, final link",
	"Shows progress (step, bytes, rows, files, ETA) until done; the\n"
	"migration is journaled: if anything is killed, 'nubo migrate resume\n"
	"APP' finishes it. --no-wait returns at once. --replicate copies the\n"
	"database's schema, then keeps the target's database following the\n"
	"source's (PostgreSQL logical replication) until the cutover, which\n"
	"then waits for the last writes instead of copying the database.",
	cmd_migrate_run_exec, 0,
};
