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
 * changes nothing either. On 0 the id is left out of the node's specs
 * (heartbeat answers) until env_delete_release(env_id), which the caller
 * calls once its own transaction (deleting the row) has ended. */
int env_delete_on_node(sqlite3 *db, long long env_id, unsigned *status,
    const char **code, char **cause);
void env_delete_release(long long env_id);
/* 1 while env_id is being deleted (envs_specs leaves it out). */
int env_delete_hidden(long long env_id);

#endif
