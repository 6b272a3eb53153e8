/* Deleting an environment on its node for real. While the node deletes it
 * and until the portal's row is gone, the environment is left out of the
 * specs the portal answers the node's heartbeats with, so that a heartbeat
 * cannot bring it back (the node also drops spec lists that left the
 * portal before its delete: env_delete_epoch in src/node/env-delete.c). */
#include "env-delete.h"

#include <pthread.h>
#include <stdlib.h>

#include "jsonx.h"
#include "log.h"
#include "nodeclient.h"
#include "store.h"
#include "xmalloc.h"

/* Stopping the instances (their grace time) and dropping the database. */
#define ENV_DELETE_TIMEOUT	120

struct hidden {
	long long	 id;
	int		 refs;
	struct hidden	*next;
};

static pthread_mutex_t env_delete_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hidden *env_delete_list;

static void
env_delete_hide(long long id)
{
	struct hidden *h;

	pthread_mutex_lock(&env_delete_lock);
	for (h = env_delete_list; h; h = h->next)
		if (h->id == id)
			break;
	if (h == NULL) {
		h = xcalloc(1, sizeof *h);
		h->id = id;
		h->next = env_delete_list;
		env_delete_list = h;
	}
	h->refs++;
	pthread_mutex_unlock(&env_delete_lock);
}

void
env_delete_release(long long id)
{
	struct hidden **p, *h;

	pthread_mutex_lock(&env_delete_lock);
	for (p = &env_delete_list; (h = *p) != NULL; p = &h->next)
		if (h->id == id) {
			if (--h->refs == 0) {
				*p = h->next;
				free(h);
			}
			break;
		}
	pthread_mutex_unlock(&env_delete_lock);
}

int
env_delete_hidden(long long id)
{
	struct hidden *h;
	int found = 0;

	pthread_mutex_lock(&env_delete_lock);
	for (h = env_delete_list; h; h = h->next)
		if (h->id == id)
			found = 1;
	pthread_mutex_unlock(&env_delete_lock);
	return found;
}

int
env_delete_on_node(sqlite3 *db, long long env_id, unsigned *status,
    const char **code, char **cause)
{
	json_t *n = store_row(db, "SELECT n.id, n.name, n.agent_url FROM"
	    " environments e JOIN nodes n ON n.id = e.node_id WHERE e.id = ?",
	    "i", env_id);
	char *path = NULL, *why = NULL;
	int st, rc = -1;

	*cause = NULL;
	env_delete_hide(env_id);
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
	*cause = xasprintf("node '%s' could not delete the environment "
	    "(%s); nothing was changed, try again when the node is back",
	    jsonx_str(n, "name"), why ? why : "error");
out:
	if (rc == -1)
		env_delete_release(env_id);
	free(why);
	free(path);
	json_decref(n);
	return rc;
}
