/* Offboarding a node (seed §3.3): the node's Technical Contact files a
 * request, a platform admin approves it; then the node's environments
 * stop, its app is detached (and stays a Free App), the node is
 * `offboarded` and its data is kept for a configured number of days. */
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

json_t *offboarding_json(sqlite3 *db, long long id);

#endif
