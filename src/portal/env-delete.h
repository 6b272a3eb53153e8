/* Deleting an environment on its node for real (sandbox unlinked, sandbox
 * app deleted): the node stops its instances, drops its database and role,
 * removes its files, app and logs and takes it out of its router. */
#ifndef NUBO_ENV_DELETE_H
#define NUBO_ENV_DELETE_H

#include <sqlite3.h>

/* Ask env_id's node to delete it. 0 when it is gone from the node (also
 * when the node never had it: it never registered, or never got the spec);
 * -1 with *status (503), *code and *cause (caller frees) when the node is
 * unreachable or failed: nothing was deleted on the node and the caller
 * changes nothing either. The caller then removes the row; until it has,
 * the node ignores the environment in heartbeat answers (its tombstone). */
int env_delete_on_node(sqlite3 *db, long long env_id, unsigned *status,
    const char **code, char **cause);

#endif
