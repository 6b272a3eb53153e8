/* Offboarding requests (seed §3.3); see offboarding.h. */
#include "offboarding.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "log.h"
#include "migrate.h"
#include "migrate-node.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

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
	 * snapshot and the deployed package of every environment to its
	 * target during the cutover (the steps are journaled done). */
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
		    "'verify') AND state = 'done'", "is", mig, name) >= 2) {
			json_array_append_new(found, json_pack("{s:s,s:s,s:I}",
			    "environment", name, "kept_by", "migration",
			    "migration", mig));
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
	    " au.email AS approved_by, o.approved_at, o.keep_until"
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
