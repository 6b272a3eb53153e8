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
	"Shows progress (step, bytes, rows, files, ETA) until done; the\n"
	"migration is journaled: if anything is killed, 'nubo migrate resume\n"
	"APP' finishes it. --no-wait returns at once. The database's schema\n"
	"is copied, then the target's database follows the source's\n"
	"(PostgreSQL logical replication) until the cutover, which waits for\n"
	"the last writes instead of copying the database; when the source\n"
	"holds what replication cannot carry (unlogged tables, large\n"
	"objects), a dump copies it instead, as it says. --replicate insists\n"
	"(refused if it cannot), --dump copies with a dump at every copy.",
	cmd_migrate_run_exec, 0,
};
