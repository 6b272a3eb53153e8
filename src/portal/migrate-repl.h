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
 * (rehearse) the files that changed, and the tables its input names
 * (resync) made again and copied again. *result has the lag. */
int migrate_repl_copy(struct migrate_ctx *, long long s, long long t,
    json_t **result, char **cause);
/* Before a rehearse copies tables again (--resync, canonical names
 * schema.name): in every environment each table is on either node, no
 * table only on the source is left out, and the target refuses none of
 * them (a foreign key of another table to one). 0, or -1 with *cause
 * (nothing was changed). */
int migrate_repl_resync_check(sqlite3 *db, long long id, json_t *tables,
    char **cause);
/* The cutover's data step (the source is stopped): wait until the target
 * received the source's last write (a time limit), copy the sequences and
 * the files that changed, drop the replication on both nodes. */
int migrate_repl_cutover(struct migrate_ctx *, long long s, long long t,
    json_t **result, char **cause);
/* Before the cutover: every environment's tables and columns are the
 * same on both nodes (logical replication does not carry DDL); else -1
 * naming the tables that differ, or (c->unreachable set) the node that
 * did not answer. */
int migrate_repl_schema_check(struct migrate_ctx *, char **cause);
/* The cutover's verification of a replica verified before (its last
 * verify step kept the writes of each table found equal): *query asks
 * the nodes for every table's row count and the checksum of those
 * written since (*rechecked, their names) only; *query NULL when there
 * is no such verification (everything is read). */
int migrate_repl_verify_query(struct migrate_ctx *, long long s,
    char **query, json_t **rechecked, char **cause);
/* Drop the replication of s to t on both nodes (abort, rollback); t may
 * be 0 (the target's side is gone with its database). */
int migrate_repl_drop(struct migrate_ctx *, long long s, long long t,
    char **cause);
/* The plan of a replicating migration for environment env of the source
 * node (the plan's `replication` of each environment): {tables:
 * [{table, method}], refused: why it cannot}, {error} when the node
 * cannot say, or NULL when nothing is deployed there. */
json_t *migrate_repl_plan(sqlite3 *db, long long source_node,
    const char *env);
/* Per environment: the source's slot, its lag in bytes and seconds and
 * the WAL it holds (GET /migrations/{id}). */
json_t *migrate_repl_status(sqlite3 *db, long long id);

#endif
