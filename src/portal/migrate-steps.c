/* The steps of a migration (SPEC §4 table, seed §2–§3.4). Each is
 * idempotent: it first looks at what an earlier attempt made (c->prior,
 * the store) and only does what is left. */
#include "migrate-steps.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonx.h"
#include "log.h"
#include "migrate.h"
#include "migrate-changes.h"
#include "migrate-node.h"
#include "migrate-repl.h"
#include "nodeclient.h"
#include "offboarding.h"
#include "portal.h"
#include "settings.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* the `keep` backup at cutover: tries, and the pause between them */
#define MIGRATE_KEEP_ATTEMPTS	3
#define MIGRATE_KEEP_RETRY_SECS	5

static int
fail(char **cause, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	*cause = xvasprintf(fmt, ap);
	va_end(ap);
	return -1;
}

/* The environment id of name on node (the node's own environments). */
static long long
env_id(struct migrate_ctx *c, long long node, const char *name)
{
	return migrate_node_env_id(c->db, node, name);
}

/* seed §2: checked again before every phase, since nodes and roles may
 * have changed in between. */
static int
step_prerequisites(struct migrate_ctx *c, json_t **result, char **cause)
{
	struct migrate_who who;
	const char *code;
	unsigned status;
	char *why = NULL;

	who.user_id = c->created_by;
	who.is_admin = store_int(c->db, 0, "SELECT is_admin FROM users"
	    " WHERE id = ?", "i", c->created_by) == 1;
	/* From the second phase on, the target holds our temporary app and
	 * the source is still linked to the app: both are expected. */
	if (strcmp(c->phase, "start") != 0) {
		if (store_int(c->db, 0, "SELECT app_id FROM nodes WHERE id = ?",
		    "i", c->source_node) != c->app_id)
			return fail(cause, "app '%s' is no longer linked to "
			    "node '%s'", c->app_subdomain, c->source_name);
		if (store_int(c->db, 0, "SELECT app_id FROM nodes WHERE id = ?",
		    "i", c->target_node) != c->temp_app)
			return fail(cause, "node '%s' is no longer linked to "
			    "the temporary app", c->target_name);
		/* a replica whose schema differs from the source's cannot
		 * take the cutover (before anything goes down) */
		if (strcmp(c->phase, "cutover") == 0 && migrate_repl_on(c->row)
		    && migrate_repl_schema_check(c, cause) == -1)
			return -1;
		*result = json_pack("{s:b}", "ok", 1);
		return 0;
	}
	if (migrate_check(c->db, &who, c->app_id, c->target_node, c->id,
	    &code, &status, &why) == -1) {
		/* our own temporary app, from an earlier attempt, is fine */
		if (strcmp(code, "NODE_NOT_AVAILABLE") != 0 || c->temp_app == 0
		    || store_int(c->db, 0, "SELECT app_id FROM nodes WHERE"
		    " id = ?", "i", c->target_node) != c->temp_app) {
			int rc = fail(cause, "%s", why);

			free(why);
			return rc;
		}
		free(why);
	}
	*result = json_pack("{s:b}", "ok", 1);
	return 0;
}

/* seed §2 "Create a new temporary Free App without a Sandbox". The app
 * and the migration's pointer to it are written in one transaction, so a
 * kill leaves either both or neither. */
static int
step_temp_app(struct migrate_ctx *c, json_t **result, char **cause)
{
	char *uuid = NULL, *sub = NULL, *name = NULL;
	char now[32];
	int rc = -1;

	if (c->temp_app && store_int(c->db, 0, "SELECT 1 FROM apps WHERE"
	    " id = ?", "i", c->temp_app) == 1) {
		*result = json_pack("{s:I}", "app", c->temp_app);
		return 0;
	}
	/* [a-z][a-z0-9-]{1,38}: the app's subdomain, cut, + "-m<id>" */
	sub = xasprintf("%.28s-m%lld", c->app_subdomain, c->id);
	if (strlen(sub) > 39)
		sub[39] = '\0';
	name = xasprintf("Temporary app for migrating %s (migration %lld)",
	    c->app_subdomain, c->id);
	uuid = util_uuid();
	util_time_iso(util_now(), now, sizeof now);
	if (store_begin(c->db) == -1) {
		fail(cause, "store: %s", store_errmsg(c->db));
		goto out;
	}
	if (store_run(c->db, "INSERT INTO apps (id, uuid, subdomain, name,"
	    " technical_contact, sandbox, temporary, created_at)"
	    " VALUES (" STORE_APP_NEW_ID ", ?, ?, ?, ?, 0, 1, ?)", "sssis",
	    uuid, sub, name, c->created_by, now) != STORE_OK) {
		store_rollback(c->db);
		fail(cause, "cannot create the temporary app '%s': %s", sub,
		    store_errmsg(c->db));
		goto out;
	}
	c->temp_app = store_last_id(c->db);
	if (store_run(c->db, "INSERT INTO members (app_id, user_id,"
	    " created_at) VALUES (?, ?, ?)", "iis", c->temp_app, c->created_by,
	    now) != STORE_OK ||
	    store_run(c->db, "UPDATE migrations SET temp_app_id = ? WHERE"
	    " id = ?", "ii", c->temp_app, c->id) != STORE_OK ||
	    store_run(c->db, "INSERT INTO activity (at, user_id, app_id,"
	    " action, detail) VALUES (?, ?, ?, 'app.create', ?)", "siis", now,
	    c->created_by, c->temp_app, "created temporary app for a "
	    "migration, without a sandbox") != STORE_OK) {
		store_rollback(c->db);
		fail(cause, "store: %s", store_errmsg(c->db));
		goto out;
	}
	if (store_commit(c->db) == -1) {
		fail(cause, "store: %s", store_errmsg(c->db));
		goto out;
	}
	*result = json_pack("{s:I,s:s}", "app", c->temp_app, "subdomain", sub);
	rc = 0;
out:
	free(uuid);
	free(sub);
	free(name);
	return rc;
}

/* Link app to node as `nubo nodes link` does (SPEC §2): an app already
 * on the node is unlinked automatically (seed §3.4). */
static int
link_app(struct migrate_ctx *c, long long node, long long app, char **cause)
{
	long long unlinked = 0;
	const char *code;
	unsigned status;

	if (nodes_link_app(c->db, c->created_by, node, app, &unlinked, &status,
	    &code, cause) == -1)
		return -1;
	return migrate_node_push_node(c->db, node, cause);
}

/* seed §3.1: link the temporary app to the target node. */
static int
step_link_temp(struct migrate_ctx *c, json_t **result, char **cause)
{
	long long cur = store_int(c->db, 0, "SELECT app_id FROM nodes WHERE"
	    " id = ?", "i", c->target_node);

	if (cur && cur != c->temp_app && store_int(c->db, 0, "SELECT"
	    " temporary FROM apps WHERE id = ?", "i", cur) != 1)
		return fail(cause, "node '%s' was linked to another app in the "
		    "meantime", c->target_name);
	if (link_app(c, c->target_node, c->temp_app, cause) == -1)
		return -1;
	*result = json_pack("{s:I,s:I}", "node", c->target_node, "app",
	    c->temp_app);
	return 0;
}

/* seed §3.2.2: the package the source environment runs, into the
 * target's repository, transported to the same-named environment. */
static int
step_package(struct migrate_ctx *c, json_t **result, char **cause)
{
	return migrate_node_copy_package(c, env_id(c, c->source_node, c->env),
	    env_id(c, c->target_node, c->env), result, cause);
}

/* seed §3.2.3: export, translate v3→v4, import; report the rest. */
static int
step_settings(struct migrate_ctx *c, json_t **result, char **cause)
{
	return migrate_node_copy_settings(c, env_id(c, c->source_node, c->env),
	    env_id(c, c->target_node, c->env), result, cause);
}

/* seed §3.2.1: database and files, source → target; files that are on
 * the target already and unchanged are not copied again. */
static int
step_data(struct migrate_ctx *c, json_t **result, char **cause)
{
	long long s = env_id(c, c->source_node, c->env);
	long long t = env_id(c, c->target_node, c->env);

	if (!migrate_repl_on(c->row))
		return migrate_node_copy_data(c, s, t, result, cause);
	if (strcmp(c->phase, "cutover") == 0)
		return migrate_repl_cutover(c, s, t, result, cause);
	return migrate_repl_copy(c, s, t, result, cause);
}

/* seed §3.2.4: start the target and wait for its health check. */
static int
step_start(struct migrate_ctx *c, json_t **result, char **cause)
{
	long long t = env_id(c, c->target_node, c->env);

	/* a replica takes the source's writes alone until the cutover */
	if (migrate_repl_on(c->row) && strcmp(c->phase, "cutover") != 0) {
		*result = json_pack("{s:s}", "skipped", "the target starts at "
		    "the cutover: until then its database follows the "
		    "source's, which the app's own writes would break");
		return 0;
	}

	if (migrate_node_start_healthy(c, c->target_node, t, cause) == -1)
		return -1;
	*result = json_pack("{s:s}", "state", "running");
	return 0;
}

/* Per table row counts and content checksums, per file sha256: the target
 * must equal the source. */
static int
step_verify(struct migrate_ctx *c, json_t **result, char **cause)
{
	return migrate_node_verify(c, env_id(c, c->source_node, c->env),
	    env_id(c, c->target_node, c->env), result, cause);
}

/* Cutover, the app still serving: both databases marked (a change slot
 * each) and verified whole but for the rows being written, so that the
 * downtime's verify compares only what changed since (migrate-changes.c). */
static int
step_baseline(struct migrate_ctx *c, json_t **result, char **cause)
{
	return migrate_changes_baseline(c, env_id(c, c->source_node, c->env),
	    env_id(c, c->target_node, c->env), result, cause);
}

/* Cutover: the source shows its maintenance page (the first refused
 * request: downtime starts). */
static int
step_maintenance(struct migrate_ctx *c, json_t **result, char **cause)
{
	long long s = env_id(c, c->source_node, c->env);
	long long t0;

	if (c->prior && jsonx_int(c->prior, "refused_at_ms", 0))
		t0 = jsonx_int(c->prior, "refused_at_ms", 0);
	else
		t0 = 0;
	if (migrate_node_maintenance(c->db, c->source_node, s, 1, cause) == -1)
		return -1;
	if (t0 == 0)
		t0 = migrate_node_now_ms();
	*result = json_pack("{s:I}", "refused_at_ms", t0);
	return 0;
}

static int
step_stop_source(struct migrate_ctx *c, json_t **result, char **cause)
{
	if (migrate_node_env_action(c->db, c->source_node, env_id(c,
	    c->source_node, c->env), "stop", cause) == -1)
		return -1;
	*result = json_pack("{s:s}", "state", "stopped");
	return 0;
}

static int
step_stop_target(struct migrate_ctx *c, json_t **result, char **cause)
{
	if (migrate_node_env_action(c->db, c->target_node, env_id(c,
	    c->target_node, c->env), "stop", cause) == -1)
		return -1;
	*result = json_pack("{s:s}", "state", "stopped");
	return 0;
}

/* From now on the target's router answers for the original app's
 * hostnames and custom domains (users keep their URLs). */
static int
step_route(struct migrate_ctx *c, json_t **result, char **cause)
{
	/* The spec the next step (start) pushes to the target carries the
	 * original hostnames from now on (route-envs.c reads `serving`); one
	 * push less while the app is down. */
	if (store_run(c->db, "UPDATE migrations SET serving = 'target' WHERE"
	    " id = ?", "i", c->id) != STORE_OK)
		return fail(cause, "store: %s", store_errmsg(c->db));
	*result = json_pack("{s:s}", "serving", c->target_name);
	return 0;
}

/* The first request the target serves under the original hostname:
 * downtime ends. */
static int
step_served(struct migrate_ctx *c, json_t **result, char **cause)
{
	json_t *m = store_row(c->db, "SELECT result_json FROM migration_steps"
	    " WHERE migration_id = ? AND round = ? AND phase = 'cutover' AND"
	    " name = 'maintenance' AND environment = ?", "iis", c->id, c->round,
	    c->env);
	long long t0 = jsonx_int(json_object_get(m, "result"),
	    "refused_at_ms", 0), t1, worst;
	char *host = NULL;

	json_decref(m);
	if (migrate_node_first_served(c, c->target_node, env_id(c,
	    c->target_node, c->env), &host, &t1, cause) == -1)
		return -1;
	if (c->prior && jsonx_int(c->prior, "served_at_ms", 0))
		t1 = jsonx_int(c->prior, "served_at_ms", 0);
	*result = json_pack("{s:I,s:I,s:I,s:s}", "refused_at_ms", t0,
	    "served_at_ms", t1, "downtime_ms", t0 ? t1 - t0 : 0,
	    "hostname", host);
	worst = store_int(c->db, 0, "SELECT downtime_ms FROM migrations WHERE"
	    " id = ?", "i", c->id);
	if (t0 && t1 - t0 > worst)
		store_run(c->db, "UPDATE migrations SET downtime_ms = ? WHERE"
		    " id = ?", "ii", t1 - t0, c->id);
	free(host);
	return 0;
}

/* Keep the data as it was cut over: a backup of the target environment,
 * listed with the environment's other backups, taken once the target
 * serves (outside the downtime). With the package in the target's
 * repository, this is what "kept by nubo" means when the source node is
 * offboarded (seed §3.3). */
static int
step_keep(struct migrate_ctx *c, json_t **result, char **cause)
{
	char *comment = xasprintf("kept by migration %lld at cutover: the "
	    "data copied from node '%s'", c->id, c->source_name);
	char *uuid = NULL, *why = NULL;
	int rc = -1, attempt;

	/* the target serves already: a backup that keeps failing must not
	 * hold the migration in cutting-over. Tried a few times, then the
	 * cutover finishes and says the backup is missing. A target that
	 * cannot be reached fails the step, as in every other step: it is
	 * tried again by itself once the node is back. */
	for (attempt = 1; rc == -1 && attempt <= MIGRATE_KEEP_ATTEMPTS;
	    attempt++) {
		if (attempt > 1) {
			migrate_progress(c, json_pack("{s:s,s:i}", "message",
			    "the backup failed; trying again", "attempt",
			    attempt));
			sleep(MIGRATE_KEEP_RETRY_SECS);
		}
		free(why);
		why = NULL;
		rc = migrate_node_keep_snapshot(c, c->target_node, env_id(c,
		    c->target_node, c->env), comment, &uuid, &why);
		if (rc == -1 && why && strncmp(why, NODE_UNREACHABLE,
		    strlen(NODE_UNREACHABLE)) == 0) {
			*cause = why;
			free(comment);
			return -1;
		}
	}
	if (rc == -1) {
		/* until the app is linked to the target, the target's
		 * environments are the temporary app's */
		char *temp = store_text(c->db, "SELECT subdomain FROM apps"
		    " WHERE id = ?", "i", c->temp_app);

		log_warn("migration %lld: the backup of %s at cutover failed "
		    "%d times: %s", c->id, c->env ? c->env : "?",
		    MIGRATE_KEEP_ATTEMPTS, why);
		*result = json_pack("{s:n,s:s,s:o}", "snapshot", "error", why,
		    "warning", json_sprintf("the cutover is done but its data "
		    "was not backed up on the target: take a backup (nubo "
		    "backups create %s %s) before the source node goes",
		    temp ? temp : c->app_subdomain, c->env));
		free(temp);
	} else if (uuid == NULL)
		*result = json_pack("{s:s}", "skipped", "nothing deployed: "
		    "nothing to keep");
	else
		*result = json_pack("{s:s,s:s}", "snapshot", uuid, "node",
		    c->target_name);
	free(why);
	free(uuid);
	free(comment);
	return 0;
}

/* seed §3.3: file the source node's offboarding request. The migration
 * kept the final data (the `keep` backup) and the package on the target,
 * which is what the seed's warning asks for. */
static int
step_offboard_request(struct migrate_ctx *c, json_t **result, char **cause)
{
	long long req = store_int(c->db, 0, "SELECT offboarding_request_id"
	    " FROM migrations WHERE id = ?", "i", c->id);
	const char *code;
	char *reason = NULL;
	int rc = -1;

	if (req == 0)
		req = store_int(c->db, 0, "SELECT id FROM offboarding_requests"
		    " WHERE node_id = ? AND state = 'pending'", "i",
		    c->source_node);
	if (req == 0) {
		reason = xasprintf("app '%s' migrated to node '%s' (migration "
		    "%lld)", c->app_subdomain, c->target_name, c->id);
		if (store_begin(c->db) == -1) {
			fail(cause, "store: %s", store_errmsg(c->db));
			goto out;
		}
		req = offboarding_file(c->db, c->source_node, c->created_by, 0,
		    reason, &code, cause);
		if (req == 0) {
			store_rollback(c->db);
			goto out;
		}
		if (store_run(c->db, "UPDATE migrations SET"
		    " offboarding_request_id = ? WHERE id = ?", "ii", req,
		    c->id) != STORE_OK || store_commit(c->db) == -1) {
			store_rollback(c->db);
			fail(cause, "store: %s", store_errmsg(c->db));
			goto out;
		}
	} else {
		store_run(c->db, "UPDATE migrations SET offboarding_request_id"
		    " = ? WHERE id = ?", "ii", req, c->id);
	}
	*result = json_pack("{s:I}", "offboarding_request", req);
	rc = 0;
out:
	free(reason);
	return rc;
}

/* seed §3.4: the original app (a Free App since the source node was
 * offboarded) is linked to the target; the temporary app is unlinked
 * automatically. */
static int
step_final_link(struct migrate_ctx *c, json_t **result, char **cause)
{
	if (store_int(c->db, 0, "SELECT COUNT(*) FROM nodes WHERE app_id = ?"
	    " AND id != ?", "ii", c->app_id, c->target_node) > 0)
		return fail(cause, "app '%s' is still linked to another node",
		    c->app_subdomain);
	if (store_run(c->db, "UPDATE migrations SET serving = 'linked' WHERE"
	    " id = ?", "i", c->id) != STORE_OK)
		return fail(cause, "store: %s", store_errmsg(c->db));
	if (link_app(c, c->target_node, c->app_id, cause) == -1)
		return -1;
	*result = json_pack("{s:s,s:s}", "app", c->app_subdomain, "node",
	    c->target_name);
	return 0;
}

/* seed §3.4 "The temporary app can be deleted." */
static int
step_delete_temp(struct migrate_ctx *c, json_t **result, char **cause)
{
	char now[32];

	if (c->temp_app == 0 || store_int(c->db, 0, "SELECT 1 FROM apps"
	    " WHERE id = ?", "i", c->temp_app) != 1) {
		*result = json_pack("{s:b}", "deleted", 1);
		return 0;
	}
	if (store_int(c->db, 0, "SELECT 1 FROM nodes WHERE app_id = ?", "i",
	    c->temp_app) == 1)
		return fail(cause, "the temporary app is still linked");
	util_time_iso(util_now(), now, sizeof now);
	if (store_begin(c->db) == -1 ||
	    store_run(c->db, "UPDATE migrations SET temp_app_id = NULL WHERE"
	    " temp_app_id = ?", "i", c->temp_app) != STORE_OK ||
	    apps_detach(c->db, c->temp_app, NULL) != STORE_OK ||
	    store_run(c->db, "DELETE FROM apps WHERE id = ? AND temporary = 1",
	    "i", c->temp_app) != STORE_OK ||
	    store_run(c->db, "INSERT INTO activity (at, user_id, app_id,"
	    " action, detail) VALUES (?, ?, ?, 'app.delete', ?)", "siis", now,
	    c->created_by, c->app_id, "deleted the migration's temporary app")
	    != STORE_OK || store_commit(c->db) == -1) {
		store_rollback(c->db);
		return fail(cause, "cannot delete the temporary app: %s",
		    store_errmsg(c->db));
	}
	*result = json_pack("{s:b}", "deleted", 1);
	return 0;
}

/* Abort (before the cutover): the target stops; the source was never
 * touched and keeps serving. */
static int
step_abort_target(struct migrate_ctx *c, json_t **result, char **cause)
{
	long long t = env_id(c, c->target_node, c->env);

	if (migrate_node_env_action(c->db, c->target_node, t, "stop",
	    cause) == -1)
		return -1;
	*result = json_pack("{s:s}", "target", "stopped");
	return 0;
}

/* Abort, rollback: the target's environments are cleaned (what the
 * migration copied there — settings, secrets, database, files,
 * packages — is not for the next app linked to the node); then the
 * temporary app leaves the target node, which is available again, and
 * is deleted. */
static int
step_abort_temp(struct migrate_ctx *c, json_t **result, char **cause)
{
	/* a replication leaves nothing behind: its slot would keep the
	 * source's WAL for ever */
	if (migrate_repl_on(c->row)) {
		json_t *v;
		size_t i;

		json_array_foreach(json_object_get(c->row, "environments"), i,
		    v) {
			c->env = json_string_value(v);
			if (migrate_changes_drop(c, env_id(c, c->source_node,
			    c->env), env_id(c, c->target_node, c->env),
			    cause) == -1 || migrate_repl_drop(c, env_id(c,
			    c->source_node, c->env), env_id(c, c->target_node,
			    c->env), cause) == -1)
				return -1;
		}
		c->env = NULL;
	}
	/* cleaned before the node is freed: a repeat after the unlink finds
	 * it clean, and never cleans what a later app put there */
	if (c->temp_app && store_int(c->db, 0, "SELECT app_id FROM nodes"
	    " WHERE id = ?", "i", c->target_node) == c->temp_app &&
	    offboarding_wipe_node(c->db, c->target_node, c->created_by,
	    strcmp(c->phase, "rollback") == 0 ? "migration rolled back" :
	    "migration aborted", cause) == -1)
		return -1;
	/* its environments give the app's custom domains back (their
	 * certificates and keys are no business of the next app linked) */
	if (store_begin(c->db) == -1 ||
	    settings_domains_release(c->db, c->target_node, c->created_by) ==
	    -1 || (c->temp_app && store_run(c->db, "UPDATE nodes SET app_id ="
	    " NULL, status = 'available' WHERE id = ? AND app_id = ?", "ii",
	    c->target_node, c->temp_app) != STORE_OK) ||
	    store_commit(c->db) == -1) {
		store_rollback(c->db);
		return fail(cause, "store: %s", store_errmsg(c->db));
	}
	/* the target's environments answer for no hostname any more */
	if (migrate_node_push_node(c->db, c->target_node, cause) == -1)
		return -1;
	return step_delete_temp(c, result, cause);
}

/* Rollback: the offboarding request the cutover filed is withdrawn. */
static int
step_rollback_offboarding(struct migrate_ctx *c, json_t **result,
    char **cause)
{
	long long req = store_int(c->db, 0, "SELECT offboarding_request_id"
	    " FROM migrations WHERE id = ?", "i", c->id);

	if (req && store_int(c->db, 0, "SELECT 1 FROM offboarding_requests"
	    " WHERE id = ? AND state = 'approved'", "i", req) == 1)
		return fail(cause, "the offboarding of node '%s' was approved: "
		    "too late to roll back", c->source_name);
	if (store_begin(c->db) == -1 ||
	    (req && store_run(c->db, "UPDATE offboarding_requests SET state ="
	    " 'cancelled' WHERE id = ? AND state = 'pending'", "i", req) !=
	    STORE_OK) ||
	    store_run(c->db, "UPDATE nodes SET status = 'linked' WHERE id = ?"
	    " AND status = 'offboarding'", "i", c->source_node) != STORE_OK ||
	    store_run(c->db, "UPDATE migrations SET serving = 'source' WHERE"
	    " id = ?", "i", c->id) != STORE_OK || store_commit(c->db) == -1) {
		store_rollback(c->db);
		return fail(cause, "store: %s", store_errmsg(c->db));
	}
	*result = json_pack("{s:I}", "cancelled_request", req);
	return 0;
}

/* Rollback: the target stops and gives the original hostnames back. */
static int
step_rollback_target(struct migrate_ctx *c, json_t **result, char **cause)
{
	long long t = env_id(c, c->target_node, c->env);

	if (migrate_node_env_action(c->db, c->target_node, t, "stop",
	    cause) == -1 ||
	    migrate_node_push_node(c->db, c->target_node, cause) == -1)
		return -1;
	*result = json_pack("{s:s}", "target", "stopped");
	return 0;
}

/* Rollback: the source leaves maintenance and starts again. */
static int
step_rollback_source(struct migrate_ctx *c, json_t **result, char **cause)
{
	long long s = env_id(c, c->source_node, c->env);

	if (migrate_node_push_node(c->db, c->source_node, cause) == -1 ||
	    migrate_node_maintenance(c->db, c->source_node, s, 0, cause) ==
	    -1 || migrate_node_start_healthy(c, c->source_node, s, cause) == -1)
		return -1;
	/* only an environment the target served can have had writes there */
	if (store_int(c->db, 0, "SELECT 1 FROM migration_steps WHERE"
	    " migration_id = ? AND phase = 'cutover' AND name = 'served' AND"
	    " environment = ? AND state = 'done'", "is", c->id, c->env) == 1)
		*result = json_pack("{s:s,s:s}", "source", "running",
		    "warning", "writes made on the target after the cutover "
		    "were not copied back");
	else
		*result = json_pack("{s:s}", "source", "running");
	return 0;
}

static const struct migrate_step_kind migrate_step_kinds[] = {
	{ "prerequisites", "check: target is v4 and available, caller is "
	  "Technical Contact of both nodes", step_prerequisites },
	{ "temp-app", "create the temporary Free App without a sandbox",
	  step_temp_app },
	{ "link-temp", "link the temporary app to the target node",
	  step_link_temp },
	{ "package", "copy the deployed package: source repository → target "
	  "repository → transport", step_package },
	{ "settings", "copy the configuration: export → translate v3→v4 → "
	  "import", step_settings },
	{ "data", "copy the data: snapshot of the database + files changed "
	  "since the last copy, node to node → restore", step_data },
	{ "start", "start the target environment and wait for its health "
	  "check", step_start },
	{ "verify", "compare per-table row counts and checksums and per-file "
	  "sha256 with the source", step_verify },
	{ "baseline", "replication: mark both databases and verify them "
	  "whole, so that the downtime's verify reads only what changes "
	  "after", step_baseline },
	{ "maintenance", "maintenance page on the source (downtime starts)",
	  step_maintenance },
	{ "stop-source", "stop the source environment", step_stop_source },
	{ "stop-target", "stop the target environment", step_stop_target },
	{ "route", "the target's router answers for the app's hostnames and "
	  "custom domains", step_route },
	{ "served", "first request served by the target (downtime ends)",
	  step_served },
	{ "keep", "back up the target environment as it was cut over (the "
	  "data kept by nubo when the source node goes)", step_keep },
	{ "offboard-request", "file the offboarding request of the source "
	  "node (seed §3.3)", step_offboard_request },
	{ "final-link", "link the app to the target node; the temporary app "
	  "is unlinked automatically (seed §3.4)", step_final_link },
	{ "delete-temp", "delete the temporary app", step_delete_temp },
	{ "abort-target", "stop the target environment", step_abort_target },
	{ "abort-temp", "clean the target's environments, free the target "
	  "node and delete the temporary app",
	  step_abort_temp },
	{ "rollback-offboarding", "withdraw the source node's offboarding "
	  "request", step_rollback_offboarding },
	{ "rollback-target", "stop the target environment",
	  step_rollback_target },
	{ "rollback-source", "restart the source environment",
	  step_rollback_source },
};

const struct migrate_step_kind *
migrate_steps_kind(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof migrate_step_kinds /
	    sizeof migrate_step_kinds[0]; i++)
		if (strcmp(migrate_step_kinds[i].name, name) == 0)
			return &migrate_step_kinds[i];
	fatal("migration: unknown step '%s'", name);
}

/* What a step does where the method changes it (the plan's words). */
static const struct {
	const char	*phase, *name;
	const char	*replicate, *dump;	/* NULL: the kind's summary */
} migrate_step_by_method[] = {
	{ "start", "data", "replication: the schema and the files, node to "
	  "node; from then on the target's database follows the source's "
	  "(PostgreSQL logical replication)", NULL },
	{ "start", "start", "not started: on a replica the app's writes "
	  "would collide with the source's; it starts at the cutover", NULL },
	{ "cutover", "data", "wait until the target has every write of the "
	  "stopped source (LSN), copy the sequences' values and the files "
	  "changed since the last copy", NULL },
	{ "cutover", "verify", "compare what changed since the baseline (the "
	  "rows written since; a table it could not vouch for read whole), "
	  "the sequences and per-file sha256 with the source", NULL },
	{ "cutover", "baseline", NULL, "skipped: the database copied at the "
	  "cutover is verified whole" },
};

const char *
migrate_steps_summary(const char *name, const char *phase, int replicate)
{
	size_t i;

	for (i = 0; i < sizeof migrate_step_by_method /
	    sizeof migrate_step_by_method[0]; i++) {
		const char *s = replicate ? migrate_step_by_method[i].replicate :
		    migrate_step_by_method[i].dump;

		if (s && strcmp(migrate_step_by_method[i].phase, phase) == 0 &&
		    strcmp(migrate_step_by_method[i].name, name) == 0)
			return s;
	}
	return migrate_steps_kind(name)->summary;
}

json_t *
migrate_steps_env_plan(sqlite3 *db, long long source_node,
    long long target_node, const char *env)
{
	return migrate_node_env_plan(db, source_node, target_node, env);
}

int
migrate_steps_next_phase(struct migrate_ctx *c, const char *state)
{
	const char *code;
	char *cause = NULL;
	const char *next = NULL;
	int rc;

	if (strcmp(state, "copied") == 0)
		next = "cutover";
	else if (strcmp(state, "cut-over") == 0) {
		long long req = store_int(c->db, 0, "SELECT"
		    " offboarding_request_id FROM migrations WHERE id = ?",
		    "i", c->id);
		json_t *migs = NULL;

		/* A platform admin running the whole migration approves the
		 * offboarding request too; others wait for an admin. */
		if (req == 0 || store_int(c->db, 0, "SELECT is_admin FROM"
		    " users WHERE id = ?", "i", c->created_by) != 1)
			return 0;
		if (offboarding_approve(c->db, req, c->created_by, &migs,
		    &code, &cause) == -1) {
			log_warn("migration %lld: cannot approve offboarding: "
			    "%s", c->id, cause);
			free(cause);
			return 0;
		}
		json_decref(migs);
		return 1;	/* approval queued the finalize phase */
	}
	if (next == NULL)
		return 0;
	rc = migrate_phase(c->db, c->id, next, &code, &cause);
	if (rc == -1) {
		log_warn("migration %lld: %s", c->id, cause);
		free(cause);
		return 0;
	}
	return 1;
}

/* A cutover that failed: whether the app is down and where (environments
 * the source took down this round that the target does not serve yet),
 * and both ways out. */
static json_t *
migrate_steps_cutover_hint(sqlite3 *db, json_t *m)
{
	const char *app = jsonx_str(m, "app"), *to = jsonx_str(m, "target");
	const char *from = jsonx_str(m, "source");
	json_t *rows = store_rows(db, "SELECT environment FROM migration_steps"
	    " WHERE migration_id = ?1 AND round = ?2 AND phase = 'cutover' AND"
	    " name = 'maintenance' AND state = 'done' AND environment NOT IN"
	    " (SELECT environment FROM migration_steps WHERE migration_id = ?1"
	    " AND round = ?2 AND phase = 'cutover' AND name = 'served' AND"
	    " state = 'done') ORDER BY seq", "ii", jsonx_int(m, "id", 0),
	    jsonx_int(m, "round", 0)), *row, *out;
	char *down = NULL, *tmp;
	size_t i;

	json_array_foreach(rows, i, row) {
		tmp = xasprintf("%s%s%s", down ? down : "", down ? ", " : "",
		    jsonx_str(row, "environment"));
		free(down);
		down = tmp;
	}
	json_decref(rows);
	if (down)
		out = json_sprintf("the app is down: %s on node '%s' show%s the "
		    "maintenance page or %s stopped, and node '%s' does not "
		    "serve %s yet. Either fix the cause and finish the cutover: "
		    "nubo migrate resume %s --to %s; or serve from node '%s' "
		    "again: nubo migrate rollback %s --to %s", down, from,
		    strchr(down, ',') ? "" : "s", strchr(down, ',') ? "are" :
		    "is", to, strchr(down, ',') ? "them" : "it", app, to,
		    from, app, to);
	else
		out = json_sprintf("the app is still served by node '%s'. Either "
		    "fix the cause and finish the cutover: nubo migrate resume "
		    "%s --to %s; or stay on node '%s': nubo migrate rollback %s "
		    "--to %s", from, app, to, from, app, to);
	free(down);
	return out;
}

/* Where the copy is served before the cutover: the temporary app's
 * hostname of each environment running on the target, on its router ("http://shop-m3-test.example.com:8080/, …"); NULL
 * when none was started. */
static char *
migrate_steps_test_urls(sqlite3 *db, json_t *m)
{
	json_t *rows = store_rows(db, "SELECT e.name AS environment, n.router,"
	    " n.router_tls FROM environments e JOIN nodes n ON n.id = e.node_id WHERE n.name"
	    " = ? AND e.app_id IS NULL AND e.state = 'running' ORDER BY e.id",
	    "s", jsonx_str(m, "target")), *row;
	const char *tmp = jsonx_str(m, "temporary_app");
	char *out = NULL, *next, *p;
	size_t i;

	json_array_foreach(rows, i, row) {
		char *host, *url;

		if (tmp == NULL)
			break;
		host = xasprintf("%s-%s.%s", tmp, jsonx_str(row, "environment"),
		    migrate_node_cloud_domain());
		url = envs_url(jsonx_str(row, "router"), jsonx_str(row,
		    "router_tls"), host);
		next = xasprintf("%s%s%s/", out ? out : "", out ? ", " : "",
		    url);
		free(url);
		free(host);
		free(out);
		out = next;
	}
	/* hostnames are lowercase (SPEC §1) */
	for (p = out; p && *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	json_decref(rows);
	return out;
}

json_t *
migrate_steps_next_hint(sqlite3 *db, json_t *m)
{
	const char *state = jsonx_str(m, "state");
	const char *app = jsonx_str(m, "app"), *to = jsonx_str(m, "target");
	int retrying = jsonx_str(m, "status") && strcmp(jsonx_str(m,
	    "status"), "retrying") == 0;

	/* a node cannot be reached: the runner tries the step again */
	if (retrying && strcmp(state, "cutting-over") == 0) {
		json_t *h = migrate_steps_cutover_hint(db, m);
		json_t *out = json_sprintf("%s. Meanwhile a node cannot be "
		    "reached: the step is tried again by itself once it "
		    "answers", json_string_value(h));

		json_decref(h);
		return out;
	}
	if (retrying && (strcmp(state, "copying") == 0 ||
	    strcmp(state, "rehearsing") == 0))
		return json_sprintf("a node cannot be reached: the step is "
		    "tried again by itself once it answers; to give up: nubo "
		    "migrate abort %s --to %s", app, to);
	if (retrying)
		return json_string("a node cannot be reached: the step is "
		    "tried again by itself once it answers");
	if (!json_is_null(json_object_get(m, "error")) &&
	    strcmp(state, "cutting-over") == 0)
		return migrate_steps_cutover_hint(db, m);
	if (!json_is_null(json_object_get(m, "error")))
		return json_sprintf("fix the cause, then: nubo migrate resume "
		    "%s --to %s", app, to);
	/* replicating, the target's app does not run before the
	 * cutover: on a replica its writes would collide with the
	 * source's */
	if (strcmp(state, "copied") == 0 && jsonx_str(m, "method") &&
	    strcmp(jsonx_str(m, "method"), "replicate") == 0)
		return json_sprintf("node '%s' follows node '%s' (the app "
		    "starts there at the cutover); nubo migrate "
		    "rehearse|cutover|abort %s --to %s (to test the app on "
		    "'%s' before the cutover: abort, then migrate with --dump)",
		    to, jsonx_str(m, "source"), app, to, to);
	if (strcmp(state, "copied") == 0) {
		char *urls = migrate_steps_test_urls(db, m);
		json_t *out = json_sprintf("test the app on node '%s'%s%s, "
		    "then: nubo migrate rehearse|cutover|abort %s --to %s", to,
		    urls ? " at " : "", urls ? urls : "", app, to);

		free(urls);
		return out;
	}
	if (strcmp(state, "cut-over") == 0)
		return json_sprintf("the app is served by node '%s'; once a "
		    "platform admin approves the offboarding of node '%s' "
		    "(nubo admin offboarding approve %lld) the app is linked "
		    "to '%s'; until then: nubo migrate rollback %s --to %s",
		    to, jsonx_str(m, "source"), jsonx_int(m,
		    "offboarding_request_id", 0), to, app, to);
	return json_null();
}
