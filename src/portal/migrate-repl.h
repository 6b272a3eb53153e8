/* A migration that replicates the database (migrations.method =
 * 'replicate'): the first copy, the cutover, the clean-up and the status
 * of the logical replication between the two nodes. Every function
 * returns 0, or -1 with *cause (caller frees). */
#ifndef NUBO_MIGRATE_REPL_H
#define NUBO_MIGRATE_REPL_H

#include <jansson.h>
#include <sqlite3.h>

struct migrate_ctx;

/* Does the migration (its row) replicate? */
int migrate_repl_on(json_t *migration);
/* The data step before the cutover, source environment s → target t: the
 * first time the replication on both nodes, the schema and the files,
 * then waits until every table was copied and the target follows; later
 * (rehearse) the files that changed. *result has the lag. */
int migrate_repl_copy(struct migrate_ctx *, long long s, long long t,
    json_t **result, char **cause);
/* The cutover's data step (the source is stopped): wait until the target
 * received the source's last write (a time limit), copy the sequences and
 * the files that changed, drop the replication on both nodes. */
int migrate_repl_cutover(struct migrate_ctx *, long long s, long long t,
    json_t **result, char **cause);
/* Drop the replication of s to t on both nodes (abort, rollback); t may
 * be 0 (the target's side is gone with its database). */
int migrate_repl_drop(struct migrate_ctx *, long long s, long long t,
    char **cause);
/* Per environment: the source's slot, its lag in bytes and seconds and
 * the WAL it holds (GET /migrations/{id}). */
json_t *migrate_repl_status(sqlite3 *db, long long id);

#endif
