/* Deleting an environment on its node for real (the node's side:
 * src/node/env-delete.c). */
#include "env-delete.h"

#include <stdlib.h>

#include "jsonx.h"
#include "log.h"
#include "nodeclient.h"
#include "snapcopy.h"
#include "store.h"
#include "xmalloc.h"

/* Stopping the instances (their grace time) and dropping the database. */
#define ENV_DELETE_TIMEOUT	120

/* The copies of environment env_id's snapshots on other nodes, before
 * their records go with it: deleted now, or later by the scheduler when
 * their node cannot now. */
static void
env_copies_delete(sqlite3 *db, long long env_id)
{
	json_t *rows = store_rows(db, "SELECT DISTINCT s.uuid FROM snapshots s"
	    " JOIN snapshot_copies c ON c.snapshot_uuid = s.uuid WHERE"
	    " s.environment_id = ?", "i", env_id), *s;
	size_t i;

	json_array_foreach(rows, i, s)
		snapcopy_delete_all_later(db, jsonx_str(s, "uuid"));
	json_decref(rows);
}

int
env_delete_on_node(sqlite3 *db, long long env_id, unsigned *status,
    const char **code, char **cause)
{
	json_t *n = store_row(db, "SELECT n.id, n.name, n.agent_url,"
	    " e.app_id FROM environments e JOIN nodes n ON n.id = e.node_id"
	    " WHERE e.id = ?", "i", env_id);
	char *path = NULL, *why = NULL;
	int st, rc = -1;

	*cause = NULL;
	/* No row, or a node that never registered: it never got the spec,
	 * so it has nothing of this environment to delete. */
	if (n == NULL || jsonx_str(n, "agent_url") == NULL) {
		rc = 0;
		goto out;
	}
	path = xasprintf("/agent/v1/environments/%lld", env_id);
	st = node_call_timeout(db, jsonx_int(n, "id", 0), "DELETE", path, NULL,
	    NULL, &why, ENV_DELETE_TIMEOUT);
	if (st == 200 || st == 404) {
		log_info("environment %lld deleted on node '%s'", env_id,
		    jsonx_str(n, "name"));
		rc = 0;
		goto out;
	}
	*status = 503;
	*code = st == -1 ? "NODE_UNREACHABLE" : "NODE_ERROR";
	*cause = xasprintf("node '%s' could not delete the environment: %s; "
	    "the portal changed nothing, try again once the node works",
	    jsonx_str(n, "name"), why ? why : "error");
out:
	/* its snapshots went with it on the node: their copies on other
	 * nodes go too (one a node cannot delete now is said in the log) */
	if (rc == 0)
		env_copies_delete(db, env_id);
	/* a sandbox's package repository went with it on the node */
	if (rc == 0 && n != NULL && jsonx_int(n, "app_id", 0) != 0)
		store_run(db, "DELETE FROM packages WHERE node_id = ? AND"
		    " app_id = ?", "ii", jsonx_int(n, "id", 0),
		    jsonx_int(n, "app_id", 0));
	free(why);
	free(path);
	json_decref(n);
	return rc;
}
