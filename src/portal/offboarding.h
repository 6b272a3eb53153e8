/* Offboarding a node (seed §3.3): the node's Technical Contact files a
 * request, a platform admin approves it; then the node's environments
 * stop, its app is detached (and stays a Free App), the node is
 * `offboarded` and its data is kept for a configured number of days.
 * After that the node deletes it for real (the purge): every
 * environment's database, role and files, its snapshots, and the
 * packages of the node's repository. */
#ifndef NUBO_OFFBOARDING_H
#define NUBO_OFFBOARDING_H

#include <jansson.h>
#include <sqlite3.h>

/* Days an offboarded node's data is kept (`nubod portal
 * --offboarding-keep-days`, default 30). */
extern long long offboarding_keep_days;

/* The seed's warning: is the latest backup and the deployed package of
 * every environment of node downloaded, or kept by nubo (copied by a
 * migration)? Returns an array of what is missing (empty: nothing), each
 * {environment, what, message}; *evidence gets what was found. */
json_t *offboarding_unsaved(sqlite3 *db, long long node_id,
    json_t **evidence);

/* File a request (inside the caller's transaction). Returns its id, or 0
 * with *code / *cause. */
long long offboarding_file(sqlite3 *db, long long node_id, long long user,
    int force, const char *reason, const char **code, char **cause);

/* Approve request id: stop the node's environments, detach its app, mark
 * it offboarded. 0, or -1 with *code / *cause. *migrations gets the
 * migrations to continue (final link), which the caller submits. */
int offboarding_approve(sqlite3 *db, long long id, long long user,
    json_t **migrations, const char **code, char **cause);

/* The request as the API shows it (purged_at, purge_error included). */
json_t *offboarding_json(sqlite3 *db, long long id);

/* Clean the environments of node_id for the next app linked to it (an
 * aborted or rolled back migration's target, a node linked to another
 * app): per environment its snapshots, the environment on the node
 * (instances, database, files, the package deployed) and its settings
 * and runtime (the row is as the node's creation made it); then every
 * package of the node's repository; then the node makes the environments
 * again, empty. why goes into the activity log (node.cleaned).
 * Idempotent. 0, or -1 with *cause (caller frees). */
int offboarding_wipe_node(sqlite3 *db, long long node_id, long long user,
    const char *why, char **cause);

struct job;

/* Delete the data of approved request id's node on the node (the job
 * kind "offboarding.purge", params {request}): per environment its
 * snapshots, then the environment (env_delete_on_node) and its row; then
 * every package. Idempotent; each piece goes for good once the node said
 * so. 0 with *result the request, purged_at set; -1 with *cause, which
 * is recorded as purge_error (purged_at stays unset: the next pass of
 * offboarding_purge_pass() tries again). */
int offboarding_purge(struct job *j, long long id, json_t **result,
    char **cause);
int offboarding_purge_job(struct job *j, json_t **result, char **cause);

/* Queue the purge of request id (one at a time: a queued or running one
 * is returned instead). The job id, 0 on a store error. Outside any
 * transaction. */
long long offboarding_purge_submit(sqlite3 *db, long long id,
    long long user);

/* One pass of the purge duty (the backup scheduler's thread, on
 * util_now()): queue the purge of every approved request whose
 * keep_until has passed and whose node's data is not deleted yet; after
 * a failure, wait 30 s, doubled after every further failure (at most
 * an hour). */
void offboarding_purge_pass(sqlite3 *db);

#endif
