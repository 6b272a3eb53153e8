/* Off-node copies of snapshots (issue #16), the portal's side: the
 * platform admin names a node's backup target (PUT /nodes/{node}/
 * backup-target); every snapshot completed on the node is then copied
 * there by a job (snapshot.copy) that tells the target where to pull
 * from — the manifest and the blobs on the source, through URLs signed
 * for nubo itself — and polls it. The portal keeps each copy's state
 * (table snapshot_copies): pending, copying, completed or failed; a
 * failed copy is tried again later (the target resumes with what it
 * kept), a copy is deleted with its snapshot (by hand or retention),
 * and a snapshot whose node is gone is served from a copy. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "jobs.h"
#include "log.h"
#include "nodeclient.h"
#include "portal.h"
#include "snapcopy.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* How long the URLs a copy pulls through are valid. */
#define COPY_URL_TTL		(6 * 3600)
/* A failed copy is tried again after COPY_RETRY_MIN seconds, twice that
 * after the next failure, …, COPY_RETRY_MAX at most. */
#define COPY_RETRY_MIN		20
#define COPY_RETRY_MAX		3600

/* PUT /nodes/{node}/backup-target {target}: every snapshot completed on
 * the node from now on is copied to node target ("" : no copies). */
void
nodes_set_backup_target(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "target", JT_STRING, 1 }, { NULL } };
	const char *node = preq_param(r, "node"), *target;
	json_t *t = NULL, *self = NULL;

	if (body_check(r, fields) == -1)
		return;
	target = jsonx_str(r->body, "target");
	self = store_row(r->db, "SELECT status FROM nodes WHERE id = ?", "i",
	    r->node_id);
	if (self && strcmp(jsonx_str(self, "status"), "offboarded") == 0) {
		reply_error(r, 409, "NODE_OFFBOARDED", "node '%s' is offboarded: "
		    "it takes no snapshots to copy", node);
		goto out;
	}
	if (*target != '\0') {
		if (!util_valid_name(target)) {
			reply_error(r, 400, "INVALID_NAME", "node name '%s' must "
			    "match [a-z0-9][a-z0-9-]{0,62}", target);
			goto out;
		}
		t = store_row(r->db, "SELECT id, status FROM nodes WHERE name = ?",
		    "s", target);
		if (t == NULL) {
			reply_error(r, 404, "NODE_NOT_FOUND", "no node '%s'",
			    target);
			goto out;
		}
		if (jsonx_int(t, "id", 0) == r->node_id) {
			reply_error(r, 400, "BACKUP_TARGET_SELF", "node '%s' cannot "
			    "keep the copies of its own snapshots: name another "
			    "node", node);
			goto out;
		}
		if (strcmp(jsonx_str(t, "status"), "offboarding") == 0 ||
		    strcmp(jsonx_str(t, "status"), "offboarded") == 0) {
			reply_error(r, 409, "NODE_OFFBOARDED", "node '%s' is %s: it "
			    "cannot keep copies", target, jsonx_str(t, "status"));
			goto out;
		}
	}
	if (store_begin(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	if ((t ? store_run(r->db, "UPDATE nodes SET backup_target = ? WHERE"
	    " id = ?", "ii", jsonx_int(t, "id", 0), r->node_id) :
	    store_run(r->db, "UPDATE nodes SET backup_target = NULL WHERE"
	    " id = ?", "i", r->node_id)) != STORE_OK) {
		store_rollback(r->db);
		reply_store_error(r);
		goto out;
	}
	if (t)
		activity_log(r, "node.backup-target", "the snapshots of node '%s' "
		    "are copied to node '%s'", node, target);
	else
		activity_log(r, "node.backup-target", "the snapshots of node '%s' "
		    "are no longer copied to another node", node);
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	reply(r, 200, nodes_json(r, r->node_id));
out:
	json_decref(t);
	json_decref(self);
}

static long long
copy_job_submit(sqlite3 *db, const char *uuid, long long target,
    long long app_id)
{
	json_t *params = json_pack("{s:s,s:I}", "snapshot", uuid, "node",
	    (json_int_t)target);
	long long id = job_submit(db, "snapshot.copy", app_id, target, NULL,
	    params, 0);

	json_decref(params);
	if (id != 0)
		store_run(db, "UPDATE snapshot_copies SET job_id = ? WHERE"
		    " snapshot_uuid = ? AND node_id = ?", "isi", id, uuid,
		    target);
	return id;
}

void
snapcopy_snapshot_completed(sqlite3 *db, const char *uuid, long long node_id,
    long long app_id)
{
	long long target = store_int(db, 0, "SELECT backup_target FROM nodes"
	    " WHERE id = ?", "i", node_id);
	char now[32];

	if (target == 0)
		return;
	util_time_iso(util_now(), now, sizeof now);
	if (store_run(db, "INSERT OR IGNORE INTO snapshot_copies (snapshot_uuid,"
	    " node_id, state, created_at) VALUES (?,?,'pending',?)", "sis",
	    uuid, target, now) != STORE_OK) {
		log_error("cannot record the copy of snapshot %s: %s", uuid,
		    store_errmsg(db));
		return;
	}
	if (copy_job_submit(db, uuid, target, app_id) == 0)
		log_error("cannot submit the copy of snapshot %s: %s", uuid,
		    store_errmsg(db));
}

/* When to try again after the attempts-th failure (ISO time into
 * next[32]): COPY_RETRY_MIN seconds, doubled each failure, at most
 * COPY_RETRY_MAX. */
static void
retry_at(long long attempts, char *next)
{
	long long delay = COPY_RETRY_MIN;

	while (--attempts > 0 && delay < COPY_RETRY_MAX)
		delay *= 2;
	if (delay > COPY_RETRY_MAX)
		delay = COPY_RETRY_MAX;
	util_time_iso(util_now() + delay, next, 32);
}

/* The copy failed: say why, and when it is tried again. */
static void
copy_failed(sqlite3 *db, const char *uuid, long long target,
    const char *why)
{
	long long attempts = store_int(db, 1, "SELECT attempts FROM"
	    " snapshot_copies WHERE snapshot_uuid = ? AND node_id = ?", "si",
	    uuid, target);
	char now[32], next[32];

	util_time_iso(util_now(), now, sizeof now);
	retry_at(attempts, next);
	store_run(db, "UPDATE snapshot_copies SET state = 'failed', error = ?,"
	    " finished_at = ?, next_attempt_at = ? WHERE snapshot_uuid = ? AND"
	    " node_id = ?", "ssssi", why, now, next, uuid, target);
}

/* The source's record of the snapshot, as the copy's downloads need it. */
static json_t *
copy_record(json_t *n)
{
	static const char *const keys[] = { "environment", "created",
		"archive_size", "dump_size", "files_size", "database_size",
		"duration", "expanded_size", "model_version", "type" };
	json_t *rec = json_object(), *v;
	size_t i;

	for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if ((v = json_object_get(n, keys[i])) != NULL)
			json_object_set(rec, keys[i], v);
	return rec;
}

int
snapcopy_job(struct job *j, json_t **result, char **cause)
{
	const char *uuid = jsonx_str(j->params, "snapshot");
	long long target = jsonx_int(j->params, "node", 0), source;
	json_t *snap = NULL, *n = NULL, *body = NULL, *st;
	char *spath = NULL, *murl = NULL, *burl = NULL, *cpath = NULL;
	char *mpath = NULL, *bpath = NULL, now[32];
	int rc = -1, code;

	snap = store_row(j->db, "SELECT s.node_id, s.state, c.state AS copy"
	    " FROM snapshots s JOIN snapshot_copies c ON c.snapshot_uuid ="
	    " s.uuid WHERE s.uuid = ? AND c.node_id = ?", "si", uuid, target);
	if (snap == NULL) {
		/* the snapshot, or its copy, was deleted meanwhile */
		*result = json_pack("{s:s}", "copy", "dropped");
		return 0;
	}
	if (strcmp(jsonx_str(snap, "copy"), "completed") == 0) {
		rc = 0;
		goto out;
	}
	source = jsonx_int(snap, "node_id", 0);
	store_run(j->db, "UPDATE snapshot_copies SET state = 'copying', error ="
	    " NULL, attempts = attempts + 1, job_id = ? WHERE snapshot_uuid = ?"
	    " AND node_id = ?", "isi", j->id, uuid, target);
	/* the source's record: what the copy's downloads answer */
	job_progress(j, NULL, "reading the snapshot on its node");
	spath = xasprintf("/agent/v1/snapshots/%s", uuid);
	code = node_call(j->db, source, "GET", spath, NULL, &n, cause);
	if (code != 200)
		goto failed;
	if (json_object_get(n, "store") == NULL) {
		*cause = xasprintf("snapshot %s is a whole archive (uploaded, or "
		    "taken before the snapshot store): only snapshots in the "
		    "store are copied", uuid);
		goto failed;
	}
	mpath = xasprintf("/agent/v1/snapshots/%s/manifest", uuid);
	bpath = xasprintf("/agent/v1/snapshots/%s/blobs", uuid);
	/* signed for user 0, nubo itself: not a user's download */
	if ((murl = node_signed_url(j->db, source, "GET", mpath, 0,
	    COPY_URL_TTL, cause)) == NULL || (burl = node_signed_url(j->db,
	    source, "POST", bpath, 0, COPY_URL_TTL, cause)) == NULL)
		goto failed;
	body = json_pack("{s:s,s:s,s:s,s:o}", "snapshot", uuid, "manifest_url",
	    murl, "blobs_url", burl, "record", copy_record(n));
	json_decref(n);
	n = NULL;
	job_progress(j, NULL, "starting the copy on the target node");
	code = node_call(j->db, target, "POST", "/agent/v1/copies", body, &n,
	    cause);
	if (code != 200 && code != 202)
		goto failed;
	json_decref(n);
	n = NULL;
	free(*cause);
	*cause = NULL;
	cpath = xasprintf("/agent/v1/copies/%s", uuid);
	if (backups_poll(j, target, cpath, "copying", &n, cause) == -1)
		goto failed;
	if (strcmp(jsonx_str(n, "state"), "completed") != 0) {
		*cause = xstrdup(jsonx_str(n, "error") ? jsonx_str(n, "error") :
		    "the copy failed");
		goto failed;
	}
	st = json_object_get(n, "copy");
	util_time_iso(util_now(), now, sizeof now);
	store_run(j->db, "UPDATE snapshot_copies SET state = 'completed', error"
	    " = NULL, finished_at = ?, next_attempt_at = NULL WHERE"
	    " snapshot_uuid = ? AND node_id = ?", "ssi", now, uuid, target);
	/* its figures, when the target recorded them (a target stopped
	 * between its manifest and its record has none to give) */
	if (json_object_get(st, "blobs_fetched") != NULL)
		store_run(j->db, "UPDATE snapshot_copies SET blobs_fetched = ?,"
		    " bytes_fetched = ?, blobs_total = ? WHERE snapshot_uuid = ?"
		    " AND node_id = ?", "iiisi", jsonx_int(st, "blobs_fetched",
		    0), jsonx_int(st, "bytes_fetched", 0), jsonx_int(st,
		    "blobs_missing", 0), uuid, target);
	rc = 0;
	goto out;
failed:
	copy_failed(j->db, uuid, target, *cause ? *cause : "the copy failed");
out:
	if (rc == 0)
		*result = json_pack("{s:s,s:o}", "snapshot", uuid, "copies",
		    snapcopy_json(j->db, uuid));
	json_decref(snap);
	json_decref(n);
	json_decref(body);
	free(spath);
	free(mpath);
	free(bpath);
	free(murl);
	free(burl);
	free(cpath);
	return rc;
}

/* Deletes the copy of snapshot uuid on node nid: 1 when it is gone (204,
 * or 404: it was not there), else 0 with why it is not in *cause. */
static int
copy_delete_on(sqlite3 *db, const char *uuid, long long nid, char **cause)
{
	char *path = xasprintf("/agent/v1/copies/%s", uuid);
	int st = node_call(db, nid, "DELETE", path, NULL, NULL, cause);

	free(path);
	return st == 204 || st == 404;
}

/* Copies whose deletion is due (copy_deletions): deleted on their node,
 * or tried again later. */
static void
deletions_pass(sqlite3 *db)
{
	char now[32], next[32], *why;
	const char *uuid;
	json_t *due, *c;
	long long nid;
	size_t i;

	util_time_iso(util_now(), now, sizeof now);
	due = store_rows(db, "SELECT snapshot_uuid AS uuid, node_id, attempts"
	    " FROM copy_deletions WHERE next_attempt_at <= ? LIMIT 100", "s",
	    now);
	json_array_foreach(due, i, c) {
		why = NULL;
		uuid = jsonx_str(c, "uuid");
		nid = jsonx_int(c, "node_id", 0);
		if (copy_delete_on(db, uuid, nid, &why)) {
			store_run(db, "DELETE FROM copy_deletions WHERE"
			    " snapshot_uuid = ? AND node_id = ?", "si", uuid,
			    nid);
			log_info("the copy of snapshot %s is deleted from node "
			    "%lld", uuid, nid);
		} else {
			retry_at(jsonx_int(c, "attempts", 1) + 1, next);
			store_run(db, "UPDATE copy_deletions SET attempts ="
			    " attempts + 1, next_attempt_at = ?, error = ? WHERE"
			    " snapshot_uuid = ? AND node_id = ?", "sssi", next,
			    why ? why : "node error", uuid, nid);
		}
		free(why);
	}
	json_decref(due);
}

void
snapcopy_pass(sqlite3 *db)
{
	char now[32];
	json_t *due, *c;
	size_t i;

	util_time_iso(util_now(), now, sizeof now);
	/* failed and due, or left without a job that runs (the portal
	 * stopped before submitting it, or the job ended without a word) */
	due = store_rows(db, "SELECT c.snapshot_uuid AS uuid, c.node_id,"
	    " s.app_id FROM snapshot_copies c JOIN snapshots s ON s.uuid ="
	    " c.snapshot_uuid WHERE (c.state = 'failed' AND c.next_attempt_at"
	    " <= ?) OR (c.state IN ('pending','copying') AND NOT EXISTS"
	    " (SELECT 1 FROM jobs WHERE id = c.job_id AND state IN"
	    " ('queued','running'))) LIMIT 100", "s", now);
	json_array_foreach(due, i, c) {
		store_run(db, "UPDATE snapshot_copies SET state = 'pending' WHERE"
		    " snapshot_uuid = ? AND node_id = ? AND state != 'completed'",
		    "si", jsonx_str(c, "uuid"), jsonx_int(c, "node_id", 0));
		if (copy_job_submit(db, jsonx_str(c, "uuid"), jsonx_int(c,
		    "node_id", 0), jsonx_int(c, "app_id", 0)) != 0)
			log_info("copy of snapshot %s to node %lld: trying again",
			    jsonx_str(c, "uuid"), jsonx_int(c, "node_id", 0));
	}
	json_decref(due);
	deletions_pass(db);
}

json_t *
snapcopy_json(sqlite3 *db, const char *uuid)
{
	json_t *rows = store_rows(db, "SELECT n.name AS node, c.state, c.error,"
	    " c.finished_at AS finished, c.attempts, c.blobs_fetched,"
	    " c.bytes_fetched FROM snapshot_copies c JOIN nodes n ON n.id ="
	    " c.node_id WHERE c.snapshot_uuid = ? ORDER BY c.created_at, n.name",
	    "s", uuid), *c;
	size_t i;

	if (rows == NULL)
		return json_array();
	/* only what is known */
	json_array_foreach(rows, i, c) {
		if (json_is_null(json_object_get(c, "error")))
			json_object_del(c, "error");
		if (json_is_null(json_object_get(c, "finished")))
			json_object_del(c, "finished");
		if (json_is_null(json_object_get(c, "blobs_fetched"))) {
			json_object_del(c, "blobs_fetched");
			json_object_del(c, "bytes_fetched");
		}
	}
	return rows;
}

void
snapcopy_attach(sqlite3 *db, json_t *rows)
{
	json_t *s;
	size_t i;

	if (json_is_object(rows)) {
		json_object_set_new(rows, "copies", snapcopy_json(db,
		    jsonx_str(rows, "id")));
		return;
	}
	json_array_foreach(rows, i, s)
		json_object_set_new(s, "copies", snapcopy_json(db,
		    jsonx_str(s, "id")));
}

int
snapcopy_delete_all(sqlite3 *db, const char *uuid, char **cause)
{
	json_t *rows = store_rows(db, "SELECT node_id FROM snapshot_copies"
	    " WHERE snapshot_uuid = ?", "s", uuid), *c;
	long long nid;
	size_t i;
	int rc = 0;

	json_array_foreach(rows, i, c) {
		nid = jsonx_int(c, "node_id", 0);
		if (!copy_delete_on(db, uuid, nid, cause)) {
			rc = -1;
			break;
		}
		free(*cause);
		*cause = NULL;
		store_run(db, "DELETE FROM snapshot_copies WHERE snapshot_uuid = ?"
		    " AND node_id = ?", "si", uuid, nid);
	}
	json_decref(rows);
	return rc;
}

void
snapcopy_delete_all_later(sqlite3 *db, const char *uuid)
{
	char *why = NULL, now[32], next[32];

	if (snapcopy_delete_all(db, uuid, &why) == 0)
		return;
	/* the rows left: the copies not deleted */
	util_time_iso(util_now(), now, sizeof now);
	retry_at(1, next);
	store_run(db, "INSERT OR IGNORE INTO copy_deletions (snapshot_uuid,"
	    " node_id, next_attempt_at, error, created_at) SELECT"
	    " snapshot_uuid, node_id, ?, ?, ? FROM snapshot_copies WHERE"
	    " snapshot_uuid = ?", "ssss", next, why ? why : "node error", now,
	    uuid);
	log_warn("the copy of snapshot %s is deleted later: %s", uuid,
	    why ? why : "node error");
	free(why);
}

/* 1 when node nid answers that it holds snapshot uuid (kind: its own
 * snapshot, or a copy) completed. */
static int
node_has(sqlite3 *db, long long nid, const char *uuid, const char *what)
{
	char *path = xasprintf("/agent/v1/%s/%s", what, uuid), *cause = NULL;
	json_t *n = NULL;
	int st = node_call_timeout(db, nid, "GET", path, NULL, &n, &cause, 5);
	int has = st == 200 && jsonx_str(n, "state") != NULL &&
	    strcmp(jsonx_str(n, "state"), "completed") == 0;

	json_decref(n);
	free(cause);
	free(path);
	return has;
}

long long
snapcopy_damaged(sqlite3 *db, const char *uuid, long long node_id,
    const char *why)
{
	char now[32];

	util_time_iso(util_now(), now, sizeof now);
	if (store_run(db, "UPDATE snapshot_copies SET state = 'failed', error ="
	    " ?, finished_at = ?, next_attempt_at = ? WHERE snapshot_uuid = ?"
	    " AND node_id = ? AND state = 'completed'", "ssssi", why, now, now,
	    uuid, node_id) != STORE_OK || sqlite3_changes(db) == 0)
		return 0;
	return store_int(db, 0, "SELECT app_id FROM snapshots WHERE uuid = ?",
	    "s", uuid);
}

long long
snapcopy_serving_node(sqlite3 *db, const char *uuid, long long node_id)
{
	json_t *rows;
	long long serve = node_id;
	size_t i;
	json_t *c;

	if (store_int(db, 0, "SELECT COUNT(*) FROM snapshot_copies WHERE"
	    " snapshot_uuid = ? AND state = 'completed'", "s", uuid) == 0 ||
	    node_has(db, node_id, uuid, "snapshots"))
		return node_id;
	rows = store_rows(db, "SELECT node_id FROM snapshot_copies WHERE"
	    " snapshot_uuid = ? AND state = 'completed' ORDER BY created_at",
	    "s", uuid);
	json_array_foreach(rows, i, c)
		if (node_has(db, jsonx_int(c, "node_id", 0), uuid, "copies")) {
			serve = jsonx_int(c, "node_id", 0);
			log_info("snapshot %s: its node does not answer for it; "
			    "served from its copy on node %lld", uuid, serve);
			break;
		}
	json_decref(rows);
	return serve;
}
