/* Helpers shared by the `nubo migrate` commands (migrate-follow.c). */
#ifndef NUBO_MIGRATE_CLI_H
#define NUBO_MIGRATE_CLI_H

#include <stdio.h>

#include <jansson.h>

struct cmd_args;

/* The newest migration of app (to node `to`, when given); -1 after
 * printing why there is none. */
int migrate_cli_find(const char *app, const char *to, json_t **out);
/* Poll the migration until its job ends, showing progress; CLI_OK when
 * the phase completed. json: print the final state as JSON. */
int migrate_cli_follow(long long id, int json);
/* Status as fields and a step table. */
void migrate_cli_print(json_t *m);
/* POST /migrations/{id}/<verb> with body (taken; NULL: {}) on the app's
 * migration and follow it. */
int migrate_cli_action(struct cmd_args *a, const char *verb, json_t *body);
/* A request to create a migration of APP (a->argv[0]) to --to in mode,
 * with --replicate or --dump as "method"; NULL after printing the usage
 * error. */
json_t *migrate_cli_body(struct cmd_args *a, const char *mode);
/* The line saying how the migration copies the database, and why
 * (`method`, `method_reason` of a plan or a migration). */
void migrate_cli_method(json_t *m, FILE *to);
/* POST /migrations {app, to, mode} for `migrate start` and `migrate run`,
 * then follow it (unless --no-wait). A CLI_* status. */
int migrate_cli_create(struct cmd_args *a, const char *mode);

/* The help of `migrate start` and `migrate run` after their summary. */
#define MIGRATE_CREATE_HELP \
	"Shows progress (step, bytes, rows, files, ETA) until done; the\n" \
	"migration is journaled: if anything is killed, 'nubo migrate resume\n" \
	"APP' finishes it. --no-wait returns at once. The database's schema\n" \
	"is copied, then the target's database follows the source's\n" \
	"(PostgreSQL logical replication) until the cutover, which waits for\n" \
	"the last writes instead of copying the database; when the source\n" \
	"holds what replication cannot carry (unlogged tables, large\n" \
	"objects), a dump copies it instead, as it says. --replicate insists\n" \
	"(refused if it cannot), --dump copies with a dump at every copy."

#endif
