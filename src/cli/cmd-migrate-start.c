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
	"Shows progress (step, bytes, rows, files, ETA) until done; the\n"
	"migration is journaled: if anything is killed, 'nubo migrate resume\n"
	"APP' finishes it. --no-wait returns at once. The database's schema\n"
	"is copied, then the target's database follows the source's\n"
	"(PostgreSQL logical replication) until the cutover, which waits for\n"
	"the last writes instead of copying the database; when the source\n"
	"holds what replication cannot carry (unlogged tables, large\n"
	"objects), a dump copies it instead, as it says. --replicate insists\n"
	"(refused if it cannot), --dump copies with a dump at every copy.",
	cmd_migrate_start_exec, 0,
};
