/* Deleting an environment for real (DELETE /agent/v1/environments/{id}):
 * the portal asks for it when a sandbox is unlinked or its app deleted.
 * Order: out of the node's list (the supervisor, the heartbeat and the
 * router stop seeing it), out of the router, instances stopped, database
 * and role dropped, its snapshots deleted, folder (app, files, logs,
 * env.json) removed, the
 * router's access log of it, and on the sandbox node the app's package
 * repository. env.json
 * goes last: a delete cut short is finished by the next one after a
 * restart. A tombstone keeps the portal's heartbeat answers, which may
 * still list the environment until the portal has removed its row, from
 * bringing it back. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-routes.h"
#include "jsonx.h"
#include "log.h"
#include "router-settings.h"
#include "util.h"
#include "xmalloc.h"

/* A tombstone lives until the portal's spec lists stop naming the id, a
 * PUT for the id arrives (the portal made a new environment that reuses
 * it), or this long, whichever comes first. */
#define ENV_TOMBSTONE_SECONDS	60

struct tombstone {
	long long		 id;
	double			 at;
	struct tombstone	*next;
};

static struct tombstone *env_tombstones;

/* Deleted environments are kept in memory, not freed: a request that was
 * routed to one before it went may still hold its pointer. */
static struct env *env_graveyard;

static void
env_tombstone_drop(struct tombstone **p)
{
	struct tombstone *t = *p;

	*p = t->next;
	free(t);
}

int
env_delete_tombstoned(long long id)
{
	struct tombstone **p;

	for (p = &env_tombstones; *p; ) {
		if (util_mono() - (*p)->at > ENV_TOMBSTONE_SECONDS) {
			env_tombstone_drop(p);
			continue;
		}
		if ((*p)->id == id)
			return 1;
		p = &(*p)->next;
	}
	return 0;
}

void
env_delete_listed(json_t *specs)
{
	struct tombstone **p;

	for (p = &env_tombstones; *p; ) {
		json_t *spec;
		size_t i;
		int listed = 0;

		json_array_foreach(specs, i, spec)
			if (jsonx_int(spec, "id", 0) == (*p)->id)
				listed = 1;
		if (listed)
			p = &(*p)->next;
		else
			env_tombstone_drop(p);
	}
}

void
env_delete_forget(long long id)
{
	struct tombstone **p;

	for (p = &env_tombstones; *p; )
		if ((*p)->id == id)
			env_tombstone_drop(p);
		else
			p = &(*p)->next;
}

/* Caller holds the lock. */
static void
env_unlist(struct env *e)
{
	struct env **p;

	for (p = &node->envs; *p; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			break;
		}
	e->next = NULL;
}

/* Caller holds the lock. */
static void
env_relist(struct env *e)
{
	struct env **tail;

	for (tail = &node->envs; *tail; tail = &(*tail)->next)
		;
	*tail = e;
	e->next = NULL;
}

static int
env_remove_dir(struct env *e, char **cause)
{
	static const char *const subs[] = { "app", "files", "logs", NULL };
	int i;

	for (i = 0; subs[i]; i++) {
		char *p = xasprintf("%s/%s", e->dir, subs[i]);
		int rc = util_rm_rf(p);

		free(p);
		if (rc == -1)
			goto fail;
	}
	if (util_rm_rf(e->dir) == 0)
		return 0;
fail:
	*cause = xasprintf("cannot remove %s: %s", e->dir, strerror(errno));
	return -1;
}

/* The instances' memory cgroups (spawn.c), when this host had them; a
 * cgroup still holding a process (EBUSY) stays. */
static void
env_delete_cgroups(long long id)
{
	int i;

	for (i = 1; i <= NUBO_INSTANCES_MAX; i++)
		sandbox_cgroup_remove(id, i);
}

/* DELETE /agent/v1/environments/{id} */
void
agent_env_delete(struct areq *r)
{
	struct env *e = r->env;
	struct tombstone *t;
	char *cause = NULL;
	long long id = e->id;
	int n;

	/* Nothing changes when the database server cannot be reached. */
	if (pg_reachable(&cause) == -1) {
		areply_error(r, 503, "DATABASE_UNAVAILABLE", "cannot delete "
		    "environment %lld: %s", id, cause);
		free(cause);
		return;
	}
	pthread_mutex_lock(&node->lock);
	if (env_find(id) != e) {
		pthread_mutex_unlock(&node->lock);
		areply_error(r, 404, "ENVIRONMENT_NOT_FOUND", "environment "
		    "%lld is already deleted", id);
		return;
	}
	env_unlist(e);
	t = xcalloc(1, sizeof *t);
	t->id = id;
	t->at = util_mono();
	t->next = env_tombstones;
	env_tombstones = t;
	e->want_running = 0;
	e->restart_pending = 0;
	node->router_dirty = 1;
	pthread_mutex_unlock(&node->lock);
	log_info("environment %lld (%s): deleting", id, env_name(e));

	/* Its hostnames stop being served before its instances stop. */
	if (router_reload() == -1)
		log_warn("environment %lld: the router did not reload; it "
		    "will retry", id);
	supervisor_kill_all(e);
	runs_stop_env(id);
	env_delete_cgroups(id);
	if (pg_env_drop(id, &cause) == -1) {
		areply_error(r, 503, "DATABASE_ERROR", "cannot drop the "
		    "database of environment %lld: %s", id, cause);
		goto undo;
	}
	/* its snapshots: the portal forgets them with it (before env.json
	 * goes, so a delete cut short and asked again does it again) */
	if ((n = backup_env_deleted(id)) > 0)
		log_info("environment %lld: its %d snapshot(s) deleted", id, n);
	if (env_remove_dir(e, &cause) == -1) {
		areply_error(r, 500, "FILES_ERROR", "environment %lld: %s",
		    id, cause);
		goto undo;
	}
	/* the router's access log of it and its settings files (keys,
	 * htpasswd, CA bundles): the router no longer names them */
	router_access_log_remove(id);
	{
		char *ngx = xasprintf("%s/nginx", node->data_dir);

		router_settings_remove(ngx, id);
		free(ngx);
	}
	packages_env_deleted(e);
	pg_relay_forget(id);
	sandbox_uid_release(e->uid, id);
	pthread_mutex_lock(&node->lock);
	e->next = env_graveyard;
	env_graveyard = e;
	pthread_mutex_unlock(&node->lock);
	log_info("environment %lld deleted: instances stopped, database and "
	    "role dropped, %s removed", id, e->dir);
	areply(r, 200, json_pack("{s:I,s:b}", "id", (json_int_t)id,
	    "deleted", 1));
	return;
undo:
	/* Stopped, but still there: the portal keeps it and may retry. */
	log_error("environment %lld: delete failed: %s", id, cause);
	free(cause);
	pthread_mutex_lock(&node->lock);
	env_delete_forget(id);
	env_relist(e);
	node->router_dirty = 1;
	pthread_mutex_unlock(&node->lock);
}
