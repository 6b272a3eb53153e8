/* Offboarding requests (seed §3.3); see offboarding.h. */
#include "offboarding.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "env-delete.h"
#include "jobs.h"
#include "jsonx.h"
#include "log.h"
#include "migrate.h"
#include "migrate-node.h"
#include "nodeclient.h"
#include "portal.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* A failed purge is tried again after this many seconds, doubled after
 * every further failure, at most OFFBOARDING_PURGE_PAUSE_MAX. */
#define OFFBOARDING_PURGE_PAUSE		30
#define OFFBOARDING_PURGE_PAUSE_MAX	3600

long long offboarding_keep_days = 30;

static void
set_cause(char **cause, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	*cause = xvasprintf(fmt, ap);
	va_end(ap);
}

json_t *
offboarding_unsaved(sqlite3 *db, long long node_id, json_t **evidence)
{
	json_t *missing = json_array(), *found = json_array();
	json_t *envs, *e;
	long long mig;
	size_t i;

	/* Kept by nubo: a migration away from this node copied the final
	 * data and the deployed package of every environment to its target
	 * during the cutover, verified them and backed them up there (the
	 * steps are journaled done). */
	mig = store_int(db, 0, "SELECT id FROM migrations WHERE"
	    " source_node_id = ? AND state IN ('cutting-over',"
	    "'cut-over','finalizing','completed') ORDER BY id DESC LIMIT 1", "i", node_id);
	envs = store_rows(db, "SELECT id, name, state FROM environments"
	    " WHERE node_id = ? AND app_id IS NULL ORDER BY id", "i", node_id);
	json_array_foreach(envs, i, e) {
		const char *name = jsonx_str(e, "name");
		long long env_id = jsonx_int(e, "id", 0);
		json_t *kept;
		char *why = NULL;

		if (mig && store_int(db, 0, "SELECT COUNT(*) FROM"
		    " migration_steps WHERE migration_id = ? AND phase ="
		    " 'cutover' AND environment = ? AND name IN ('data',"
		    "'verify') AND state = 'done'", "is", mig, name) >= 2 &&
		    store_int(db, 1, "SELECT COUNT(*) FROM migration_steps"
		    " WHERE migration_id = ? AND phase = 'cutover' AND"
		    " environment = ? AND name = 'keep' AND state != 'done'",
		    "is", mig, name) == 0) {
			char *snap = store_text(db, "SELECT json_extract("
			    "result_json, '$.snapshot') FROM migration_steps"
			    " WHERE migration_id = ? AND phase = 'cutover' AND"
			    " environment = ? AND name = 'keep' ORDER BY seq"
			    " DESC LIMIT 1", "is", mig, name);

			json_array_append_new(found, json_pack("{s:s,s:s,s:I,"
			    "s:s?}", "environment", name, "kept_by",
			    "migration", "migration", mig, "snapshot", snap));
			free(snap);
			continue;
		}
		/* Downloaded: ask the node-side records (backups, packages). */
		kept = migrate_node_saved(db, node_id, env_id, name, &why);
		if (kept) {
			json_array_append_new(found, kept);
			continue;
		}
		json_array_append_new(missing, json_pack("{s:s,s:s}",
		    "environment", name, "message", why ? why :
		    "the latest backup and the deployed package were never "
		    "downloaded"));
		free(why);
	}
	json_decref(envs);
	if (evidence)
		*evidence = found;
	else
		json_decref(found);
	return missing;
}

long long
offboarding_file(sqlite3 *db, long long node_id, long long user, int force,
    const char *reason, const char **code, char **cause)
{
	json_t *node = store_row(db, "SELECT name, status, is_sandbox, app_id"
	    " FROM nodes WHERE id = ?", "i", node_id);
	json_t *missing = NULL, *evidence = NULL;
	char now[32];
	long long id = 0;
	const char *status;

	if (node == NULL) {
		*code = "NODE_NOT_FOUND";
		set_cause(cause, "no such node");
		goto out;
	}
	status = jsonx_str(node, "status");
	if (jsonx_int(node, "is_sandbox", 0)) {
		*code = "NODE_IS_SANDBOX";
		set_cause(cause, "node '%s' is the sandbox node: it cannot be "
		    "offboarded", jsonx_str(node, "name"));
		goto out;
	}
	if (strcmp(status, "offboarded") == 0) {
		*code = "NODE_OFFBOARDED";
		set_cause(cause, "node '%s' is offboarded already",
		    jsonx_str(node, "name"));
		goto out;
	}
	if (store_int(db, 0, "SELECT 1 FROM offboarding_requests WHERE"
	    " node_id = ? AND state = 'pending'", "i", node_id) == 1) {
		*code = "OFFBOARDING_PENDING";
		set_cause(cause, "node '%s' has a pending offboarding request",
		    jsonx_str(node, "name"));
		goto out;
	}
	missing = offboarding_unsaved(db, node_id, &evidence);
	if (json_array_size(missing) > 0 && !force) {
		json_t *m = json_array_get(missing, 0);

		*code = "DATA_NOT_SAVED";
		set_cause(cause, "node '%s', environment '%s': %s — download "
		    "the latest backup and the deployed package first (or "
		    "use --force)", jsonx_str(node, "name"),
		    jsonx_str(m, "environment"), jsonx_str(m, "message"));
		goto out;
	}
	util_time_iso(util_now(), now, sizeof now);
	if (store_run(db, "INSERT INTO offboarding_requests (node_id, app_id,"
	    " state, forced, reason, unsaved_json, saved_json, requested_by,"
	    " requested_at) VALUES (?, NULLIF(?, 0), 'pending', ?, ?, ?, ?,"
	    " ?, ?)", "iiisjjis", node_id, jsonx_int(node, "app_id", 0),
	    (long long)force, reason, missing, evidence, user, now) !=
	    STORE_OK) {
		*code = "STORE_ERROR";
		set_cause(cause, "cannot record the request: %s",
		    store_errmsg(db));
		goto out;
	}
	id = store_last_id(db);
	if (store_run(db, "UPDATE nodes SET status = 'offboarding' WHERE"
	    " id = ?", "i", node_id) != STORE_OK) {
		*code = "STORE_ERROR";
		set_cause(cause, "cannot update the node: %s",
		    store_errmsg(db));
		id = 0;
	}
out:
	json_decref(node);
	json_decref(missing);
	json_decref(evidence);
	return id;
}

int
offboarding_approve(sqlite3 *db, long long id, long long user,
    json_t **migrations, const char **code, char **cause)
{
	json_t *req = store_row(db, "SELECT o.node_id, o.state, n.name"
	    " FROM offboarding_requests o JOIN nodes n ON n.id = o.node_id"
	    " WHERE o.id = ?", "i", id);
	json_t *envs = NULL, *e;
	long long node_id;
	char now[32], until[32];
	size_t i;
	int rc = -1;

	*migrations = NULL;
	if (req == NULL) {
		*code = "OFFBOARDING_REQUEST_NOT_FOUND";
		set_cause(cause, "no offboarding request %lld", id);
		goto out;
	}
	if (strcmp(jsonx_str(req, "state"), "pending") != 0) {
		*code = "OFFBOARDING_WRONG_STATE";
		set_cause(cause, "offboarding request %lld is %s", id,
		    jsonx_str(req, "state"));
		goto out;
	}
	node_id = jsonx_int(req, "node_id", 0);
	/* Stop every environment first (outside the store transaction: a
	 * node call). A node that cannot be reached is recorded, not fatal:
	 * an offboarded node's router no longer gets a spec either way. */
	envs = store_rows(db, "SELECT id, name FROM environments WHERE"
	    " node_id = ? AND app_id IS NULL", "i", node_id);
	json_array_foreach(envs, i, e) {
		char *why = NULL;

		if (migrate_node_env_action(db, node_id,
		    jsonx_int(e, "id", 0), "stop", &why) == -1)
			log_warn("offboarding %lld: cannot stop '%s': %s", id,
			    jsonx_str(e, "name"), why);
		free(why);
	}
	util_time_iso(util_now(), now, sizeof now);
	util_time_iso(util_now() + offboarding_keep_days * 86400, until,
	    sizeof until);
	if (store_begin(db) == -1)
		goto store_fail;
	if (store_run(db, "UPDATE offboarding_requests SET state = 'approved',"
	    " approved_by = ?, approved_at = ?, keep_until = ? WHERE id = ?",
	    "issi", user, now, until, id) != STORE_OK ||
	    store_run(db, "UPDATE nodes SET status = 'offboarded', app_id ="
	    " NULL WHERE id = ?", "i", node_id) != STORE_OK) {
		store_rollback(db);
		goto store_fail;
	}
	*migrations = migrate_on_offboarded(db, node_id);
	if (store_commit(db) == -1)
		goto store_fail;
	rc = 0;
	goto out;
store_fail:
	*code = "STORE_ERROR";
	set_cause(cause, "store error: %s", store_errmsg(db));
	json_decref(*migrations);
	*migrations = NULL;
out:
	json_decref(req);
	json_decref(envs);
	return rc;
}

json_t *
offboarding_json(sqlite3 *db, long long id)
{
	json_t *o = store_row(db, "SELECT o.id, n.name AS node, a.subdomain"
	    " AS app, o.state, o.forced, o.reason, o.unsaved_json,"
	    " o.saved_json, ru.email AS requested_by, o.requested_at,"
	    " au.email AS approved_by, o.approved_at, o.keep_until,"
	    " o.purged_at, o.purge_error, o.purge_attempts, o.purge_tried_at"
	    " FROM offboarding_requests o JOIN nodes n ON n.id = o.node_id"
	    " LEFT JOIN apps a ON a.id = o.app_id"
	    " LEFT JOIN users ru ON ru.id = o.requested_by"
	    " LEFT JOIN users au ON au.id = o.approved_by WHERE o.id = ?",
	    "i", id);

	if (o)
		json_object_set_new(o, "forced", json_boolean(jsonx_int(o,
		    "forced", 0)));
	return o;
}

/* ------------------------------------------------------------------ */
/* Purge: an offboarded node's data is deleted once keep_until passed   */

/* Delete environment env (a row of the node) on the node: its snapshots
 * (archives and records), then the environment itself (instances,
 * database and role, files, app and logs: env_delete_on_node). 0, or -1
 * with *cause. */
static int
offboarding_erase_env(sqlite3 *db, long long node_id, int registered,
    json_t *env, long long *nsnaps, char **cause)
{
	long long env_id = jsonx_int(env, "id", 0);
	const char *name = jsonx_str(env, "name");
	json_t *snaps, *sn;
	const char *code;
	unsigned status;
	char *why = NULL;
	size_t i;
	int rc = -1;

	snaps = store_rows(db, "SELECT uuid FROM snapshots WHERE"
	    " environment_id = ? ORDER BY id", "i", env_id);
	json_array_foreach(snaps, i, sn) {
		/* a node that never registered never made an archive */
		if (!registered) {
			(*nsnaps)++;
			continue;
		}
		if (backups_snapshot_delete(db, jsonx_str(sn, "uuid"),
		    node_id, &why) == -1) {
			set_cause(cause, "environment '%s', snapshot %.8s: %s",
			    name, jsonx_str(sn, "uuid"), why ? why :
			    "store error");
			goto out;
		}
		(*nsnaps)++;
	}
	if (env_delete_on_node(db, env_id, &status, &code, &why) == -1) {
		set_cause(cause, "environment '%s': %s", name, why);
		goto out;
	}
	rc = 0;
out:
	free(why);
	json_decref(snaps);
	return rc;
}

/* Purge environment env: erased on the node, then its row, which takes
 * its settings, snapshot and restore records with it. The row goes at
 * once: the node's tombstone keeps heartbeats from bringing the
 * environment back only for a while. 0, or -1 with *cause. */
static int
offboarding_purge_env(sqlite3 *db, long long node_id, int registered,
    json_t *env, long long *nsnaps, char **cause)
{
	if (offboarding_erase_env(db, node_id, registered, env, nsnaps,
	    cause) == -1)
		return -1;
	if (store_run(db, "DELETE FROM environments WHERE id = ?", "i",
	    jsonx_int(env, "id", 0)) != STORE_OK) {
		set_cause(cause, "environment '%s': deleted on the node, but "
		    "the store says: %s", jsonx_str(env, "name"),
		    store_errmsg(db));
		return -1;
	}
	return 0;
}

/* Delete every package of the node's repository (no environment uses
 * one any more), then the portal's records of them. The number deleted,
 * or -1 with *cause. */
static long long
offboarding_purge_packages(sqlite3 *db, long long node_id, int registered,
    char **cause)
{
	json_t *out = NULL, *p;
	char *why = NULL;
	long long n = 0;
	size_t i;
	int st;

	if (registered) {
		st = node_call(db, node_id, "GET", "/agent/v1/packages", NULL,
		    &out, &why);
		if (st != 200) {
			set_cause(cause, "cannot list the packages: %s", why ?
			    why : "the node failed");
			n = -1;
			goto out;
		}
		json_array_foreach(json_object_get(out, "packages"), i, p) {
			const char *id = jsonx_str(p, "id");
			char *path;

			if (id == NULL || id[0] == '.' || id[strcspn(id,
			    "/?#%")] != '\0')
				continue;
			path = xasprintf("/agent/v1/packages/%s", id);
			free(why);
			why = NULL;
			st = node_call(db, node_id, "DELETE", path, NULL, NULL,
			    &why);
			free(path);
			if (st != 200 && st != 404) {
				set_cause(cause, "package '%s': %s", id, why ?
				    why : "the node failed");
				n = -1;
				goto out;
			}
			n++;
		}
	}
	if (store_run(db, "DELETE FROM packages WHERE node_id = ?", "i",
	    node_id) != STORE_OK) {
		set_cause(cause, "store error: %s", store_errmsg(db));
		n = -1;
	}
out:
	free(why);
	json_decref(out);
	return n;
}

int
offboarding_wipe_node(sqlite3 *db, long long node_id, long long user,
    const char *why, char **cause)
{
	json_t *n = store_row(db, "SELECT name, agent_url FROM nodes WHERE"
	    " id = ?", "i", node_id), *envs = NULL, *e;
	long long nsnaps = 0, npkgs = 0;
	int registered, rc = -1;
	size_t i;

	if (n == NULL) {
		set_cause(cause, "no node %lld", node_id);
		return -1;
	}
	registered = jsonx_str(n, "agent_url") != NULL;
	envs = store_rows(db, "SELECT id, name FROM environments WHERE"
	    " node_id = ? AND app_id IS NULL ORDER BY id", "i", node_id);
	json_array_foreach(envs, i, e) {
		long long id = jsonx_int(e, "id", 0);

		if (offboarding_erase_env(db, node_id, registered, e, &nsnaps,
		    cause) == -1)
			goto out;
		/* the row stays, as it was when the node was created */
		if (store_begin(db) == -1 ||
		    store_run(db, "DELETE FROM environment_settings WHERE"
		    " environment_id = ?", "i", id) != STORE_OK ||
		    store_run(db, "DELETE FROM restores WHERE environment_id ="
		    " ?", "i", id) != STORE_OK ||
		    store_run(db, "DELETE FROM environment_tags WHERE"
		    " environment_id = ?", "i", id) != STORE_OK ||
		    store_run(db, "UPDATE environments SET state ="
		    " 'notdeployed', package = NULL, package_manifest = NULL,"
		    " instances = 1, memory_mb = 512, maintenance = 0,"
		    " status_json = NULL WHERE id = ?", "i", id) != STORE_OK ||
		    store_commit(db) == -1) {
			store_rollback(db);
			set_cause(cause, "store error: %s", store_errmsg(db));
			goto out;
		}
	}
	if ((npkgs = offboarding_purge_packages(db, node_id, registered,
	    cause)) == -1)
		goto out;
	/* the node makes them again, empty, from their specs */
	if (registered && migrate_node_push_node(db, node_id, cause) == -1)
		goto out;
	activity_record(db, user, 0, node_id, "node.cleaned", "cleaned the "
	    "environments of node '%s' (%s): %zu environment%s (settings, "
	    "databases, files, packages deployed), %lld snapshot%s, %lld "
	    "package%s", jsonx_str(n, "name"), why, json_array_size(envs),
	    json_array_size(envs) == 1 ? "" : "s", nsnaps, nsnaps == 1 ? "" :
	    "s", npkgs, npkgs == 1 ? "" : "s");
	rc = 0;
out:
	json_decref(n);
	json_decref(envs);
	return rc;
}

/* Record a failed attempt (retried later by offboarding_purge_pass);
 * the activity log gets it when the error is new. */
static void
offboarding_purge_failed(sqlite3 *db, long long id, json_t *req,
    long long user, const char *cause)
{
	const char *prev = jsonx_str(req, "purge_error");
	char now[32];

	util_time_iso(util_now(), now, sizeof now);
	store_run(db, "UPDATE offboarding_requests SET purge_error = ?,"
	    " purge_attempts = purge_attempts + 1, purge_tried_at = ?"
	    " WHERE id = ?", "ssi", cause, now, id);
	if (prev == NULL || strcmp(prev, cause) != 0)
		activity_record(db, user, 0, jsonx_int(req, "node_id", 0),
		    "node.purge-failed", "could not delete the data of "
		    "offboarded node '%s' (request %lld); it is tried again: "
		    "%s", jsonx_str(req, "name"), id, cause);
	log_warn("offboarding %lld: purge of node '%s' failed: %s", id,
	    jsonx_str(req, "name"), cause);
}

int
offboarding_purge(struct job *j, long long id, json_t **result, char **cause)
{
	json_t *req, *envs = NULL, *e, *names = json_array();
	long long node_id, nsnaps = 0, npkgs;
	int registered, rc = -1;
	char now[32];
	size_t i;

	*result = NULL;
	req = store_row(j->db, "SELECT o.node_id, o.state, o.purged_at,"
	    " o.purge_error, n.name, n.agent_url FROM offboarding_requests o"
	    " JOIN nodes n ON n.id = o.node_id WHERE o.id = ?", "i", id);
	if (req == NULL) {
		set_cause(cause, "no offboarding request %lld", id);
		goto out;
	}
	if (strcmp(jsonx_str(req, "state"), "approved") != 0) {
		set_cause(cause, "offboarding request %lld is %s: a node's data "
		    "is deleted only after its offboarding is approved", id,
		    jsonx_str(req, "state"));
		goto out;
	}
	if (jsonx_str(req, "purged_at")) {	/* a repeated job */
		*result = offboarding_json(j->db, id);
		rc = 0;
		goto out;
	}
	node_id = jsonx_int(req, "node_id", 0);
	registered = jsonx_str(req, "agent_url") != NULL;
	envs = store_rows(j->db, "SELECT id, name FROM environments WHERE"
	    " node_id = ? ORDER BY id", "i", node_id);
	json_array_foreach(envs, i, e) {
		job_progress(j, json_pack("{s:I,s:I}", "done", (json_int_t)i,
		    "total", (json_int_t)json_array_size(envs)),
		    "deleting environment '%s' on node '%s'",
		    jsonx_str(e, "name"), jsonx_str(req, "name"));
		if (offboarding_purge_env(j->db, node_id, registered, e,
		    &nsnaps, cause) == -1)
			goto failed;
		json_array_append_new(names, json_string(jsonx_str(e,
		    "name")));
	}
	job_progress(j, NULL, "deleting the packages of node '%s'",
	    jsonx_str(req, "name"));
	if ((npkgs = offboarding_purge_packages(j->db, node_id, registered,
	    cause)) == -1)
		goto failed;
	util_time_iso(util_now(), now, sizeof now);
	if (store_begin(j->db) == -1)
		goto store_failed;
	if (store_run(j->db, "UPDATE offboarding_requests SET purged_at = ?,"
	    " purge_error = NULL, purge_attempts = purge_attempts + 1,"
	    " purge_tried_at = ? WHERE id = ?", "ssi", now, now, id) !=
	    STORE_OK) {
		store_rollback(j->db);
		goto store_failed;
	}
	activity_record(j->db, j->created_by, 0, node_id, "node.purged",
	    "deleted the data of offboarded node '%s' (request %lld) on the "
	    "node: %zu environment%s (databases, roles, files), %lld "
	    "snapshot%s, %lld package%s", jsonx_str(req, "name"), id,
	    json_array_size(envs), json_array_size(envs) == 1 ? "" : "s",
	    nsnaps, nsnaps == 1 ? "" : "s", npkgs, npkgs == 1 ? "" : "s");
	if (store_commit(j->db) == -1)
		goto store_failed;
	log_info("offboarding %lld: the data of node '%s' is deleted", id,
	    jsonx_str(req, "name"));
	*result = offboarding_json(j->db, id);
	json_object_set_new(*result, "deleted", json_pack("{s:O,s:I,s:I}",
	    "environments", names, "snapshots", (json_int_t)nsnaps,
	    "packages", (json_int_t)npkgs));
	rc = 0;
	goto out;
store_failed:
	set_cause(cause, "store error: %s", store_errmsg(j->db));
failed:
	offboarding_purge_failed(j->db, id, req, j->created_by, *cause);
out:
	json_decref(names);
	json_decref(envs);
	json_decref(req);
	return rc;
}

int
offboarding_purge_job(struct job *j, json_t **result, char **cause)
{
	return offboarding_purge(j, jsonx_int(j->params, "request", 0), result,
	    cause);
}

long long
offboarding_purge_submit(sqlite3 *db, long long id, long long user)
{
	long long node_id, job;
	json_t *params;

	node_id = store_int(db, 0, "SELECT node_id FROM offboarding_requests"
	    " WHERE id = ?", "i", id);
	if (store_begin(db) == -1)
		return 0;
	job = store_int(db, 0, "SELECT id FROM jobs WHERE kind ="
	    " 'offboarding.purge' AND state IN ('queued','running') AND"
	    " json_extract(params_json, '$.request') = ?", "i", id);
	if (job == 0) {
		params = json_pack("{s:I}", "request", (json_int_t)id);
		job = job_submit(db, "offboarding.purge", 0, node_id, NULL,
		    params, user);
		json_decref(params);
	}
	if (job == 0) {
		store_rollback(db);
		return 0;
	}
	if (store_commit(db) == -1)
		return 0;
	return job;
}

void
offboarding_purge_pass(sqlite3 *db)
{
	time_t now = util_now(), tried;
	json_t *rows, *row;
	char nowiso[32];
	size_t i;

	util_time_iso(now, nowiso, sizeof nowiso);
	/* keep_until is UTC ISO text: it compares as text */
	rows = store_rows(db, "SELECT id, purge_attempts, purge_tried_at FROM"
	    " offboarding_requests WHERE state = 'approved' AND purged_at IS"
	    " NULL AND keep_until IS NOT NULL AND keep_until <= ? ORDER BY id"
	    " LIMIT 100", "s", nowiso);
	json_array_foreach(rows, i, row) {
		long long n = jsonx_int(row, "purge_attempts", 0);
		long long pause = OFFBOARDING_PURGE_PAUSE;

		while (n-- > 1 && pause < OFFBOARDING_PURGE_PAUSE_MAX)
			pause *= 2;
		if (pause > OFFBOARDING_PURGE_PAUSE_MAX)
			pause = OFFBOARDING_PURGE_PAUSE_MAX;
		if (jsonx_str(row, "purge_tried_at") && util_parse_iso(
		    jsonx_str(row, "purge_tried_at"), &tried) == 0 &&
		    now - tried < pause)
			continue;
		if (offboarding_purge_submit(db, jsonx_int(row, "id", 0), 0) ==
		    0)
			log_warn("offboarding %lld: cannot queue the purge",
			    jsonx_int(row, "id", 0));
	}
	json_decref(rows);
}
