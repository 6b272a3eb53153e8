/* Snapshots and restores (SPEC §2 Backups): the portal keeps the records
 * (table snapshots, restores), the node keeps the archives (src/node/
 * backup.c). Create and restore run as jobs; downloads and uploads go
 * straight to the node through short-lived signed URLs. The nightly
 * scheduler and retention run here too, on util_now() (NUBO_CLOCK_OFFSET
 * moves it for tests); its thread also runs the offboarding purge
 * (offboarding.c). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup-archive.h"
#include "auth.h"
#include "backup-retention.h"
#include "jobs.h"
#include "log.h"
#include "nodeclient.h"
#include "offboarding.h"
#include "portal.h"
#include "snapcopy.h"
#include "store.h"
#include "testhook.h"
#include "util.h"
#include "xmalloc.h"

#define SNAP_SCHED_TICK	15	/* seconds between scheduler passes */
#define SNAP_URL_TTL	900	/* seconds a download/upload URL is valid */
#define SNAP_POLL_MAX	(6 * 3600 * 4)	/* 250 ms polls: 6 hours */

#define SNAP_COLUMNS \
	"s.uuid AS id, s.type, s.state, s.comment, s.created_at AS created," \
	" s.finished_at AS finished, s.expires_at AS expires, s.package," \
	" s.model_version, s.dump_size, s.dump_ms, s.database_size," \
	" s.files_size," \
	" s.archive_size, s.error, e.name AS environment, n.name AS node," \
	" u.email AS created_by, s.job_id, s.downloaded_at, s.warning"
#define SNAP_FROM \
	" FROM snapshots s JOIN environments e ON e.id = s.environment_id" \
	" JOIN nodes n ON n.id = s.node_id LEFT JOIN users u ON" \
	" u.id = s.created_by"

/* The environment {env} of r's app: its row {id, name, state, node_id,
 * package}; NULL after replying 404. */
static json_t *
backups_env(struct preq *r)
{
	json_t *row = store_row(r->db, "SELECT e.id, e.name, e.state,"
	    " e.node_id, e.package FROM environments e WHERE e.name = ?"
	    " COLLATE NOCASE AND ((e.node_id = ? AND e.app_id IS NULL) OR"
	    " e.app_id = ?)", "sii", r->env, r->node_id, r->app_id);

	if (row == NULL)
		reply_error(r, 404, "ENVIRONMENT_NOT_FOUND", "app has no "
		    "environment '%s'", r->env);
	return row;
}

/* 0 when the environment's node has registered its agent (a job would
 * only fail otherwise); -1 after replying 409. */
static int
backups_node_ready(struct preq *r, json_t *env)
{
	char *name;

	if (store_int(r->db, 0, "SELECT agent_url IS NOT NULL FROM nodes WHERE"
	    " id = ?", "i", jsonx_int(env, "node_id", 0)) == 1)
		return 0;
	name = store_text(r->db, "SELECT name FROM nodes WHERE id = ?", "i",
	    jsonx_int(env, "node_id", 0));
	reply_error(r, 409, "NODE_NOT_REGISTERED", "node '%s' has not "
	    "registered yet (start 'nubod node' with its token)",
	    name ? name : "?");
	free(name);
	return -1;
}

/* Snapshot {snapshot} of environment env_id (listed states only); NULL
 * after replying 404. */
static json_t *
backups_snapshot(struct preq *r, long long env_id)
{
	const char *id = preq_param(r, "snapshot");
	json_t *row = store_row(r->db, "SELECT " SNAP_COLUMNS ", s.node_id AS"
	    " node_id, s.environment_id AS env_id" SNAP_FROM " WHERE (s.uuid = ?"
	    " OR s.uuid LIKE ? || '%') AND s.environment_id = ? AND s.state !="
	    " 'uploading' ORDER BY s.uuid != ? LIMIT 1", "ssis", id,
	    strlen(id) >= 8 ? id : "-", env_id, id);

	if (row == NULL)
		reply_error(r, 404, "SNAPSHOT_NOT_FOUND", "environment '%s' has "
		    "no snapshot '%s'", r->env, id);
	return row;
}

static json_t *
snapshot_public(json_t *row)
{
	json_object_del(row, "node_id");
	json_object_del(row, "env_id");
	return row;
}

static void
iso_now(char out[32])
{
	util_time_iso(util_now(), out, 32);
}

/* Insert a snapshot record; its uuid (caller frees), NULL on error. */
static char *
snapshot_insert(sqlite3 *db, long long env_id, long long app_id,
    long long node_id, const char *type, const char *state,
    const char *comment, long long user, const char *package,
    const char *nightly_run)
{
	char *uuid = util_uuid(), now[32];

	iso_now(now);
	if (store_run(db, "INSERT INTO snapshots (uuid, environment_id, app_id,"
	    " node_id, type, state, comment, created_by, created_at, package,"
	    " nightly_run) VALUES (?,?,?,?,?,?,?,?,?,?,?)", "siiisssisss", uuid,
	    env_id, app_id ? app_id : (long long)0, node_id, type, state,
	    comment ? comment : "", user, now, package, nightly_run) !=
	    STORE_OK) {
		free(uuid);
		return NULL;
	}
	if (app_id == 0)
		store_run(db, "UPDATE snapshots SET app_id = NULL WHERE uuid = ?",
		    "s", uuid);
	if (user == 0)
		store_run(db, "UPDATE snapshots SET created_by = NULL WHERE"
		    " uuid = ?", "s", uuid);
	return uuid;
}

/* When snapshot uuid expires, completed or failed: its type's retention
 * from its creation. */
static void
snapshot_expiry(sqlite3 *db, const char *uuid, char *exp, size_t len)
{
	json_t *row = store_row(db, "SELECT type, created_at FROM snapshots"
	    " WHERE uuid = ?", "s", uuid);
	const char *type = row ? jsonx_str(row, "type") : "manual";
	time_t created;

	if (row == NULL || util_parse_iso(jsonx_str(row, "created_at"),
	    &created) == -1)
		created = util_now();
	util_time_iso(backup_retention_expires(
	    backup_snapshot_type_parse(type) < 0 ? SNAPSHOT_MANUAL :
	    (enum snapshot_type)backup_snapshot_type_parse(type), created), exp,
	    len);
	json_decref(row);
}

/* Copy the node's record of a finished snapshot into ours. */
static void
snapshot_finish(sqlite3 *db, const char *uuid, json_t *n)
{
	const char *state = jsonx_str(n, "state");
	char now[32], exp[32];

	iso_now(now);
	snapshot_expiry(db, uuid, exp, sizeof exp);
	store_run(db, "UPDATE snapshots SET state = ?, finished_at = ?,"
	    " expires_at = ?, model_version = ?, dump_size = ?,"
	    " dump_ms = NULLIF(?, 0), database_size = ?, files_size = ?,"
	    " archive_size = ?, error = ?, warning = ? WHERE uuid = ?",
	    "ssssiiiiisss", state, now, exp, jsonx_str(n, "model_version"),
	    jsonx_int(n, "dump_size", 0), jsonx_int(n, "dump_ms", 0),
	    jsonx_int(n, "database_size", 0), jsonx_int(n, "files_size", 0),
	    jsonx_int(n, "archive_size", 0), jsonx_str(n, "error"),
	    jsonx_str(n, "warning"), uuid);
}

int
backups_poll(struct job *j, long long node_id, const char *path,
    const char *what, json_t **last, char **cause)
{
	int i;

	for (i = 0; i < SNAP_POLL_MAX; i++) {
		json_t *n = NULL, *p;
		int st = node_call(j->db, node_id, "GET", path, NULL, &n, cause);
		const char *s;
		char done[32], total[32];

		if (st != 200) {
			json_decref(n);
			if (st == -1 && i < 240) {	/* node restarting */
				free(*cause);
				*cause = NULL;
				sleep(1);
				continue;
			}
			return -1;
		}
		s = jsonx_str(n, "state");
		if (s && strcmp(s, "running") != 0) {
			*last = n;
			return 0;
		}
		p = json_object_get(n, "progress");
		util_human_bytes(jsonx_int(p, "done", 0), done, sizeof done);
		util_human_bytes(jsonx_int(p, "total", 0), total, sizeof total);
		if (p && jsonx_int(p, "total", 0) > 0)
			job_progress(j, json_pack("{s:I,s:I}", "done",
			    (json_int_t)jsonx_int(p, "done", 0), "total",
			    (json_int_t)jsonx_int(p, "total", 0)),
			    "%s: %s of %s", what, done, total);
		else if (p)
			job_progress(j, json_pack("{s:I}", "done",
			    (json_int_t)jsonx_int(p, "done", 0)),
			    "%s: %s read", what, done);
		else
			job_progress(j, NULL, "%s", what);
		json_decref(n);
		usleep(250 * 1000);
	}
	*cause = xasprintf("timed out waiting for the node (%s)", what);
	return -1;
}

/* Job snapshot.create {snapshot, env_id}: the node makes the archive. */
int
backups_job_create(struct job *j, json_t **result, char **cause)
{
	const char *uuid = jsonx_str(j->params, "snapshot");
	long long env_id = jsonx_int(j->params, "env_id", 0);
	json_t *row, *n = NULL, *body;
	char *path = NULL, *spath = NULL;
	int st, rc = -1;

	row = store_row(j->db, "SELECT type, package, node_id FROM snapshots"
	    " WHERE uuid = ?", "s", uuid);
	if (row == NULL) {
		*cause = xstrdup("the snapshot was deleted");
		return -1;
	}
	store_run(j->db, "UPDATE snapshots SET state = 'running' WHERE"
	    " uuid = ? AND state = 'queued'", "s", uuid);
	path = xasprintf("/agent/v1/environments/%lld/snapshots", env_id);
	spath = xasprintf("/agent/v1/snapshots/%s", uuid);
	job_progress(j, NULL, "starting the backup on the node");
	body = json_pack("{s:s,s:s,s:s}", "snapshot", uuid, "type",
	    jsonx_str(row, "type"), "model_version", jsonx_str(row, "package") ?
	    jsonx_str(row, "package") : "");
	st = node_call(j->db, jsonx_int(row, "node_id", 0), "POST", path, body,
	    &n, cause);
	json_decref(body);
	json_decref(n);
	n = NULL;
	if (st != 200 && st != 202)
		goto out;
	free(*cause);
	*cause = NULL;
	if (backups_poll(j, jsonx_int(row, "node_id", 0), spath, "backing up",
	    &n, cause) == -1)
		goto out;
	snapshot_finish(j->db, uuid, n);
	if (strcmp(jsonx_str(n, "state"), "completed") != 0) {
		*cause = xstrdup(jsonx_str(n, "error") ? jsonx_str(n, "error") :
		    "the backup failed");
		goto out_recorded;
	}
	/* a copy to the node's backup target, if it has one */
	snapcopy_snapshot_completed(j->db, uuid, jsonx_int(row, "node_id", 0),
	    j->app_id);
	*result = store_row(j->db, "SELECT " SNAP_COLUMNS SNAP_FROM
	    " WHERE s.uuid = ?", "s", uuid);
	rc = 0;
	goto out_recorded;
out:
	{
		char now[32], exp[32];

		/* a failed snapshot is kept as long as a completed one would
		 * be, not expired at once */
		iso_now(now);
		snapshot_expiry(j->db, uuid, exp, sizeof exp);
		store_run(j->db, "UPDATE snapshots SET state = 'failed', error = ?,"
		    " finished_at = ?, expires_at = ? WHERE uuid = ?", "ssss",
		    *cause ? *cause : "the backup failed", now, exp, uuid);
	}
out_recorded:
	json_decref(n);
	json_decref(row);
	free(path);
	free(spath);
	return rc;
}

int
backups_snapshot_kept(struct job *j, long long env_id, const char *comment,
    char **uuid, char **cause)
{
	json_t *row = store_row(j->db, "SELECT uuid, state FROM snapshots"
	    " WHERE environment_id = ? AND node_id = ? AND comment = ?"
	    " ORDER BY id DESC LIMIT 1", "iis", env_id, j->node_id, comment);
	json_t *params = j->params, *result = NULL;
	char *pkg;
	int rc;

	*uuid = NULL;
	*cause = NULL;
	if (row && strcmp(jsonx_str(row, "state"), "completed") == 0) {
		*uuid = xstrdup(jsonx_str(row, "uuid"));
		json_decref(row);
		return 0;
	}
	if (row && strcmp(jsonx_str(row, "state"), "failed") == 0) {
		if (backups_snapshot_delete(j->db, jsonx_str(row, "uuid"),
		    j->node_id, cause) == -1) {
			json_decref(row);
			return -1;
		}
		json_decref(row);
		row = NULL;
	}
	if (row)
		*uuid = xstrdup(jsonx_str(row, "uuid"));
	else {
		long long app = store_int(j->db, 0, "SELECT COALESCE(e.app_id,"
		    " n.app_id, 0) FROM environments e JOIN nodes n ON n.id ="
		    " e.node_id WHERE e.id = ?", "i", env_id);

		pkg = store_text(j->db, "SELECT package FROM environments WHERE"
		    " id = ?", "i", env_id);
		*uuid = snapshot_insert(j->db, env_id, app, j->node_id, "manual",
		    "queued", comment, 0, pkg, NULL);
		free(pkg);
		if (*uuid == NULL) {
			*cause = xasprintf("store: %s", store_errmsg(j->db));
			return -1;
		}
	}
	json_decref(row);
	j->params = json_pack("{s:s,s:I}", "snapshot", *uuid, "env_id",
	    (json_int_t)env_id);
	rc = backups_job_create(j, &result, cause);
	json_decref(j->params);
	j->params = params;
	json_decref(result);
	if (rc == -1) {
		free(*uuid);
		*uuid = NULL;
	}
	return rc;
}

/* Submit a job and reply 202 {job, snapshot|restore} + Location; the
 * record (table) gets the job's id. */
static void
backups_submit(struct preq *r, const char *kind, const char *env_name,
    json_t *params, const char *table, const char *uuid)
{
	long long id = job_submit(r->db, kind, r->app_id, r->node_id, env_name,
	    params, r->who.user_id);
	char *loc, *sql;

	json_decref(params);
	if (id == 0) {
		reply_store_error(r);
		return;
	}
	sql = xasprintf("UPDATE %s SET job_id = ? WHERE uuid = ?", table);
	store_run(r->db, sql, "is", id, uuid);
	free(sql);
	loc = xasprintf("/api/v1/jobs/%lld", id);
	reply(r, 202, json_pack("{s:o,s:s}", "job", job_json(r->db, id),
	    strcmp(table, "snapshots") == 0 ? "snapshot" : "restore", uuid));
	http_add_header(r->http, "Location", loc);
	free(loc);
}

/* GET …/snapshots: newest first (uploads in progress are not listed). */
void
backups_list(struct preq *r)
{
	json_t *env = backups_env(r), *rows;

	if (env == NULL)
		return;
	rows = store_rows(r->db, "SELECT " SNAP_COLUMNS SNAP_FROM " WHERE"
	    " s.environment_id = ? AND s.state != 'uploading' ORDER BY"
	    " s.created_at DESC, s.id DESC", "i", jsonx_int(env, "id", 0));
	json_decref(env);
	if (rows == NULL) {
		reply_store_error(r);
		return;
	}
	snapcopy_attach(r->db, rows);
	reply(r, 200, json_pack("{s:o}", "snapshots", rows));
}

/* POST …/snapshots {comment?}: a manual snapshot, as a job. */
void
backups_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "comment", JT_STRING, 0 }, { NULL } };
	const char *comment;
	json_t *env;
	char *uuid;

	if (body_check(r, fields) == -1)
		return;
	comment = jsonx_str(r->body, "comment");
	if (comment && strlen(comment) > NUBO_COMMENT_MAX) {
		reply_error(r, 400, "BAD_REQUEST", "'comment' is longer than %d "
		    "characters", NUBO_COMMENT_MAX);
		return;
	}
	if ((env = backups_env(r)) == NULL)
		return;
	if (backups_node_ready(r, env) == -1) {
		json_decref(env);
		return;
	}
	uuid = snapshot_insert(r->db, jsonx_int(env, "id", 0), r->app_id,
	    jsonx_int(env, "node_id", 0), "manual", "queued", comment,
	    r->who.user_id, jsonx_str(env, "package"), NULL);
	if (uuid == NULL) {
		json_decref(env);
		reply_store_error(r);
		return;
	}
	r->node_id = jsonx_int(env, "node_id", 0);
	activity_log(r, "snapshot.create", "snapshot %.8s of environment '%s'",
	    uuid, jsonx_str(env, "name"));
	backups_submit(r, "snapshot.create", jsonx_str(env, "name"),
	    json_pack("{s:s,s:I}", "snapshot", uuid, "env_id",
	    (json_int_t)jsonx_int(env, "id", 0)), "snapshots", uuid);
	free(uuid);
	json_decref(env);
}

/* GET …/snapshots/{snapshot} */
void
backups_show(struct preq *r)
{
	json_t *env = backups_env(r), *row;

	if (env == NULL)
		return;
	row = backups_snapshot(r, jsonx_int(env, "id", 0));
	json_decref(env);
	if (row) {
		snapcopy_attach(r->db, row);
		reply(r, 200, snapshot_public(row));
	}
}

/* PATCH …/snapshots/{snapshot} {comment} */
void
backups_comment(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "comment", JT_STRING, 1 }, { NULL } };
	json_t *env, *row;
	const char *comment;

	if (body_check(r, fields) == -1)
		return;
	comment = jsonx_str(r->body, "comment");
	if (strlen(comment) > NUBO_COMMENT_MAX) {
		reply_error(r, 400, "BAD_REQUEST", "'comment' is longer than %d "
		    "characters", NUBO_COMMENT_MAX);
		return;
	}
	if ((env = backups_env(r)) == NULL)
		return;
	row = backups_snapshot(r, jsonx_int(env, "id", 0));
	if (row == NULL) {
		json_decref(env);
		return;
	}
	store_run(r->db, "UPDATE snapshots SET comment = ? WHERE uuid = ?",
	    "ss", comment, jsonx_str(row, "id"));
	activity_log(r, "snapshot.comment", "comment of snapshot %.8s of "
	    "environment '%s'", jsonx_str(row, "id"), jsonx_str(env, "name"));
	json_decref(row);
	row = backups_snapshot(r, jsonx_int(env, "id", 0));
	json_decref(env);
	if (row)
		reply(r, 200, snapshot_public(row));
}

/* Delete a snapshot on its node, then its copies on other nodes, then
 * its record (also used by the offboarding purge): a copy never goes
 * before the snapshot it stands in for. 0, or -1 with *cause. */
int
backups_snapshot_delete(sqlite3 *db, const char *uuid, long long node_id,
    char **cause)
{
	char *path = xasprintf("/agent/v1/snapshots/%s", uuid);
	int st = node_call(db, node_id, "DELETE", path, NULL, NULL, cause);

	free(path);
	if (st != 204 && st != 404)
		return -1;
	free(*cause);
	*cause = NULL;
	if (snapcopy_delete_all(db, uuid, cause) == -1)
		return -1;
	return store_run(db, "DELETE FROM snapshots WHERE uuid = ?", "s", uuid);
}

/* DELETE …/snapshots/{snapshot} */
void
backups_delete(struct preq *r)
{
	json_t *env = backups_env(r), *row;
	char *cause = NULL;

	if (env == NULL)
		return;
	row = backups_snapshot(r, jsonx_int(env, "id", 0));
	if (row == NULL) {
		json_decref(env);
		return;
	}
	if (strcmp(jsonx_str(row, "state"), "queued") == 0 ||
	    strcmp(jsonx_str(row, "state"), "running") == 0) {
		reply_error(r, 409, "SNAPSHOT_RUNNING", "snapshot %s is still "
		    "%s", jsonx_str(row, "id"), jsonx_str(row, "state"));
	} else if (backups_snapshot_delete(r->db, jsonx_str(row, "id"),
	    jsonx_int(row, "node_id", 0), &cause) == -1) {
		reply_error(r, 502, "NODE_UNAVAILABLE", "cannot delete snapshot "
		    "%s: %s", jsonx_str(row, "id"), cause ? cause : "node error");
	} else {
		activity_log(r, "snapshot.delete", "snapshot %.8s of "
		    "environment '%s'", jsonx_str(row, "id"),
		    jsonx_str(env, "name"));
		reply_empty(r, 204);
	}
	free(cause);
	json_decref(row);
	json_decref(env);
}

/* POST …/snapshots/{snapshot}/download {kind?: full|database|files}:
 * a signed URL on the node, valid SNAP_URL_TTL seconds. */
void
backups_download(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "kind", JT_STRING, 0 }, { NULL } };
	const char *kind;
	json_t *env, *row;
	char *path, *url, *cause = NULL, *name;
	time_t t;

	if (body_check(r, fields) == -1)
		return;
	kind = jsonx_str(r->body, "kind") ? jsonx_str(r->body, "kind") : "full";
	if (strcmp(kind, "full") != 0 && strcmp(kind, "database") != 0 &&
	    strcmp(kind, "files") != 0) {
		reply_error(r, 400, "BAD_REQUEST", "'kind' must be full, database "
		    "or files");
		return;
	}
	if ((env = backups_env(r)) == NULL)
		return;
	row = backups_snapshot(r, jsonx_int(env, "id", 0));
	json_decref(env);
	if (row == NULL)
		return;
	if (strcmp(jsonx_str(row, "state"), "completed") != 0) {
		reply_error(r, 409, "SNAPSHOT_NOT_COMPLETED", "snapshot %s is %s",
		    jsonx_str(row, "id"), jsonx_str(row, "state"));
		json_decref(row);
		return;
	}
	path = xasprintf("/agent/v1/snapshots/%s/%s", jsonx_str(row, "id"),
	    kind);
	/* its node, or a copy when its node is gone */
	url = node_signed_url(r->db, snapcopy_serving_node(r->db,
	    jsonx_str(row, "id"), jsonx_int(row, "node_id", 0)), "GET", path,
	    r->who.user_id, SNAP_URL_TTL, &cause);
	if (url == NULL) {
		reply_error(r, 502, "NODE_UNAVAILABLE", "%s", cause);
		goto out;
	}
	if (util_parse_iso(jsonx_str(row, "created"), &t) == -1)
		t = util_now();
	name = strcmp(kind, "full") == 0 ? backup_archive_name_full(
	    jsonx_str(row, "id"), (long long)t) : strcmp(kind, "database") == 0 ?
	    backup_archive_name_db(jsonx_str(row, "id"), (long long)t) :
	    backup_archive_name_files(jsonx_str(row, "id"), (long long)t);
	activity_log(r, "snapshot.download", "%s download of snapshot %.8s",
	    kind, jsonx_str(row, "id"));
	reply(r, 200, json_pack("{s:s,s:s,s:s,s:I}", "url", url, "filename",
	    name, "kind", kind, "expires_in", (json_int_t)SNAP_URL_TTL));
	free(name);
out:
	free(url);
	free(cause);
	free(path);
	json_decref(row);
}

/* POST …/snapshot-uploads: a snapshot record that is not listed yet, and
 * a signed PUT URL on the environment's node for the archive. */
void
backups_upload_begin(struct preq *r)
{
	json_t *env;
	char *uuid, *path, *url, *cause = NULL;

	if (body_check(r, (const struct jfield[]){ { NULL } }) == -1)
		return;
	if ((env = backups_env(r)) == NULL)
		return;
	if (backups_node_ready(r, env) == -1) {
		json_decref(env);
		return;
	}
	uuid = snapshot_insert(r->db, jsonx_int(env, "id", 0), r->app_id,
	    jsonx_int(env, "node_id", 0), "uploaded", "uploading", "",
	    r->who.user_id, NULL, NULL);
	if (uuid == NULL) {
		json_decref(env);
		reply_store_error(r);
		return;
	}
	path = xasprintf("/agent/v1/environments/%lld/snapshots/%s/archive",
	    jsonx_int(env, "id", 0), uuid);
	url = node_signed_url(r->db, jsonx_int(env, "node_id", 0), "PUT", path,
	    r->who.user_id, SNAP_URL_TTL, &cause);
	if (url == NULL)
		reply_error(r, 502, "NODE_UNAVAILABLE", "%s", cause);
	else
		reply(r, 201, json_pack("{s:s,s:s,s:I}", "snapshot", uuid, "url",
		    url, "expires_in", (json_int_t)SNAP_URL_TTL));
	free(url);
	free(cause);
	free(path);
	free(uuid);
	json_decref(env);
}

/* POST …/snapshot-uploads/{snapshot} {comment?}: the archive reached the
 * node and passed validation there; the snapshot is listed from now on. */
void
backups_upload_complete(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "comment", JT_STRING, 0 }, { NULL } };
	const char *uuid = preq_param(r, "snapshot");
	json_t *env, *row = NULL, *n = NULL;
	char *path = NULL, *cause = NULL;
	int st;

	if (body_check(r, fields) == -1)
		return;
	if (jsonx_str(r->body, "comment") &&
	    strlen(jsonx_str(r->body, "comment")) > NUBO_COMMENT_MAX) {
		reply_error(r, 400, "BAD_REQUEST", "'comment' is longer than %d "
		    "characters", NUBO_COMMENT_MAX);
		return;
	}
	if ((env = backups_env(r)) == NULL)
		return;
	row = store_row(r->db, "SELECT node_id FROM snapshots WHERE uuid = ?"
	    " AND environment_id = ? AND state = 'uploading'", "si", uuid,
	    jsonx_int(env, "id", 0));
	if (row == NULL) {
		reply_error(r, 404, "SNAPSHOT_NOT_FOUND", "environment '%s' has "
		    "no upload '%s'", r->env, uuid);
		goto out;
	}
	path = xasprintf("/agent/v1/snapshots/%s", uuid);
	st = node_call(r->db, jsonx_int(row, "node_id", 0), "GET", path, NULL,
	    &n, &cause);
	if (st != 200 || strcmp(jsonx_str(n, "state"), "completed") != 0) {
		reply_error(r, 409, "UPLOAD_INCOMPLETE", "the archive of upload %s "
		    "has not been accepted by the node%s%s", uuid, cause ? ": " :
		    "", cause ? cause : "");
		goto out;
	}
	store_run(r->db, "UPDATE snapshots SET state = 'completed', created_at"
	    " = created_at, comment = ? WHERE uuid = ?", "ss",
	    jsonx_str(r->body, "comment") ? jsonx_str(r->body, "comment") : "",
	    uuid);
	snapshot_finish(r->db, uuid, n);
	activity_log(r, "snapshot.upload", "uploaded snapshot %.8s into "
	    "environment '%s'", uuid, jsonx_str(env, "name"));
	json_decref(row);
	row = store_row(r->db, "SELECT " SNAP_COLUMNS SNAP_FROM " WHERE"
	    " s.uuid = ?", "s", uuid);
	reply(r, 201, json_incref(row));
out:
	json_decref(env);
	json_decref(row);
	json_decref(n);
	free(path);
	free(cause);
}

/* POST /agent/snapshot-uploads/{snapshot}/refused {error}: the node
 * refused the archive of an upload (src/node/backup.c), so the upload can
 * never complete: its record goes now rather than with the uploads left
 * unfinished for a day. Only the node's own uploads still in progress;
 * 200 also when there is none (the report may come twice). */
void
agent_snapshot_upload_refused(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "error", JT_STRING, 0 }, { NULL } };
	const char *uuid = preq_param(r, "snapshot");
	const char *why;
	json_t *row;
	size_t n;
	int deleted = 0;

	if (agent_body_check(r, fields) == -1)
		return;
	why = jsonx_str(r->body, "error") ? jsonx_str(r->body, "error") :
	    "no reason given";
	/* the reason, cut to a line's worth at a character boundary */
	n = strlen(why);
	if (n > 300)
		for (n = 300; n > 0 && ((unsigned char)why[n] & 0xC0) == 0x80;
		    n--)
			;
	r->node_id = r->who.node_id;
	row = store_row(r->db, "SELECT s.app_id, s.created_by, e.name AS env"
	    " FROM snapshots s JOIN environments e ON e.id = s.environment_id"
	    " WHERE s.uuid = ? AND s.node_id = ? AND s.state = 'uploading'",
	    "si", uuid, r->node_id);
	if (row != NULL) {
		if (store_run(r->db, "DELETE FROM snapshots WHERE uuid = ? AND"
		    " node_id = ? AND state = 'uploading'", "si", uuid,
		    r->node_id) != STORE_OK) {
			json_decref(row);
			reply_store_error(r);
			return;
		}
		deleted = 1;
		activity_record(r->db, jsonx_int(row, "created_by", 0),
		    jsonx_int(row, "app_id", 0), r->node_id,
		    "snapshot.upload-refused", "the node refused the archive of "
		    "upload %.8s into environment '%s': %.*s", uuid,
		    jsonx_str(row, "env"), (int)n, why);
	}
	reply(r, 200, json_pack("{s:s,s:b}", "snapshot", uuid, "deleted",
	    deleted));
	json_decref(row);
}

/* Job snapshot.restore {restore, snapshot, env_id, database_only}. */
/* What an environment needs after a restore before it serves the data
 * (null: nothing, it runs or is stopped with its package). */
static json_t *
restore_next(struct job *j, long long env_id)
{
	json_t *e = store_row(j->db, "SELECT e.name, e.state, e.package,"
	    " a.subdomain AS app FROM environments e, apps a WHERE e.id = ?"
	    " AND a.id = ?", "ii", env_id, j->app_id), *out = json_null();

	if (e && jsonx_str(e, "package") == NULL)
		out = json_sprintf("environment '%s' has never been started: "
		    "its data is in place for the first start; deploy a "
		    "package with 'nubo envs transport %s %s PACKAGE', then "
		    "'nubo envs start %s %s'", jsonx_str(e, "name"),
		    jsonx_str(e, "app"), jsonx_str(e, "name"), jsonx_str(e,
		    "app"), jsonx_str(e, "name"));
	else if (e && strcmp(jsonx_str(e, "state"), "stopped") == 0)
		out = json_sprintf("environment '%s' is stopped: start it to "
		    "serve the restored data with 'nubo envs start %s %s'",
		    jsonx_str(e, "name"), jsonx_str(e, "app"), jsonx_str(e,
		    "name"));
	json_decref(e);
	return out ? out : json_null();
}

int
backups_job_restore(struct job *j, json_t **result, char **cause)
{
	const char *ruuid = jsonx_str(j->params, "restore");
	const char *suuid = jsonx_str(j->params, "snapshot");
	long long env_id = jsonx_int(j->params, "env_id", 0);
	json_t *snap, *env = NULL, *n = NULL, *body;
	char *path = NULL, *rpath = NULL, *src = NULL, *spath = NULL, now[32];
	long long tnode, snode;
	int st, rc = -1;

	snap = store_row(j->db, "SELECT node_id, COALESCE(dump_size, 0) +"
	    " COALESCE(files_size, 0) AS size, COALESCE(dump_size, 0) AS"
	    " dump_size FROM snapshots WHERE uuid = ? AND state = 'completed'",
	    "s", suuid);
	env = store_row(j->db, "SELECT node_id FROM environments WHERE id = ?",
	    "i", env_id);
	if (snap == NULL || env == NULL) {
		*cause = xstrdup(snap == NULL ? "the snapshot was deleted" :
		    "the environment was deleted");
		goto out;
	}
	store_run(j->db, "UPDATE restores SET state = 'running' WHERE uuid = ?",
	    "s", ruuid);
	tnode = jsonx_int(env, "node_id", 0);
	/* the snapshot's node, or one with a copy when it is gone */
	snode = snapcopy_serving_node(j->db, suuid, jsonx_int(snap, "node_id",
	    0));
	if (snode != tnode) {
		/* the archive lives on another node: the target fetches it */
		spath = xasprintf("/agent/v1/snapshots/%s/full", suuid);
		/* signed for user 0, nubo itself: this copy is not a
		 * user's download of the backup (src/node/downloads.c) */
		src = node_signed_url(j->db, snode, "GET", spath, 0, 6 * 3600,
		    cause);
		if (src == NULL)
			goto out;
	}
	path = xasprintf("/agent/v1/environments/%lld/restores", env_id);
	rpath = xasprintf("/agent/v1/restores/%s", ruuid);
	job_progress(j, NULL, "starting the restore on the node");
	body = json_pack("{s:s,s:s,s:b}", "restore", ruuid, "snapshot", suuid,
	    "database_only", jsonx_bool(j->params, "database_only", 0));
	if (src) {
		json_object_set_new(body, "source_url", json_string(src));
		/* what it will write, checked before the node fetches it */
		json_object_set_new(body, "size", json_integer(jsonx_bool(
		    j->params, "database_only", 0) ? jsonx_int(snap, "dump_size",
		    0) : jsonx_int(snap, "size", 0)));
	}
	st = node_call(j->db, tnode, "POST", path, body, &n, cause);
	json_decref(body);
	json_decref(n);
	n = NULL;
	if (st != 200 && st != 202)
		goto out;
	free(*cause);
	*cause = NULL;
	if (backups_poll(j, tnode, rpath, "restoring", &n, cause) == -1)
		goto out;
	if (strcmp(jsonx_str(n, "state"), "completed") != 0) {
		*cause = xstrdup(jsonx_str(n, "error") ? jsonx_str(n, "error") :
		    "the restore failed");
		goto out;
	}
	iso_now(now);
	store_run(j->db, "UPDATE restores SET state = 'completed', finished_at"
	    " = ? WHERE uuid = ?", "ss", now, ruuid);
	*result = store_row(j->db, "SELECT uuid AS id, snapshot_uuid AS"
	    " snapshot, database_only, state, created_at AS created,"
	    " finished_at AS finished FROM restores WHERE uuid = ?", "s", ruuid);
	if (*result)
		json_object_set_new(*result, "next", restore_next(j, env_id));
	rc = 0;
out:
	if (rc == -1) {
		iso_now(now);
		store_run(j->db, "UPDATE restores SET state = 'failed', error = ?,"
		    " finished_at = ? WHERE uuid = ?", "sss", *cause ? *cause :
		    "the restore failed", now, ruuid);
	}
	json_decref(snap);
	json_decref(env);
	json_decref(n);
	free(path);
	free(rpath);
	free(spath);
	free(src);
	return rc;
}

/* POST …/restores {snapshot, database_only?}: restore a snapshot of any
 * environment of this app into {env}, which must be stopped. */
void
backups_restore(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "snapshot", JT_STRING, 1 }, { "database_only", JT_BOOL, 0 },
		{ NULL } };
	const char *suuid;
	json_t *env, *snap = NULL;
	const char *st;
	char *ruuid = NULL, now[32];

	if (body_check(r, fields) == -1)
		return;
	suuid = jsonx_str(r->body, "snapshot");
	if ((env = backups_env(r)) == NULL)
		return;
	/* the snapshot must belong to this app: taken while the app owned
	 * it, or of one of the app's current environments */
	snap = store_row(r->db, "SELECT s.uuid, s.state, s.environment_id AS"
	    " env_id, (SELECT e.name FROM environments e WHERE e.id ="
	    " s.environment_id) AS env_name FROM snapshots s WHERE"
	    " (s.uuid = ? OR s.uuid LIKE ? || '%') AND s.state != 'uploading'"
	    " AND (s.app_id = ? OR s.environment_id IN (SELECT e.id FROM"
	    " environments e WHERE (e.node_id = ? AND e.app_id IS NULL) OR"
	    " e.app_id = ?))", "ssiii", suuid, strlen(suuid) >= 8 ? suuid :
	    "-", r->app_id, r->node_id, r->app_id);
	if (snap == NULL) {
		reply_error(r, 404, "SNAPSHOT_NOT_FOUND", "app has no snapshot "
		    "'%s'", suuid);
		goto out;
	}
	/* a snapshot of another environment holds that environment's data:
	 * restoring it needs the backups permission there too (the route
	 * checked it on {env} only) */
	if (jsonx_int(snap, "env_id", 0) != jsonx_int(env, "id", 0) &&
	    !auth_has(r, "backups", jsonx_str(snap, "env_name") ?
	    jsonx_str(snap, "env_name") : "")) {
		reply_error(r, 403, "FORBIDDEN", "you lack the 'backups' "
		    "permission on environment '%s', whose snapshot %.8s is",
		    jsonx_str(snap, "env_name") ? jsonx_str(snap, "env_name") :
		    "?", jsonx_str(snap, "uuid"));
		goto out;
	}
	if (strcmp(jsonx_str(snap, "state"), "completed") != 0) {
		reply_error(r, 409, "SNAPSHOT_NOT_COMPLETED", "snapshot %s is %s",
		    jsonx_str(snap, "uuid"), jsonx_str(snap, "state"));
		goto out;
	}
	if (backups_node_ready(r, env) == -1)
		goto out;
	st = jsonx_str(env, "state");
	if (strcmp(st, "stopped") != 0 && strcmp(st, "notdeployed") != 0) {
		reply_error(r, 409, "ENVIRONMENT_NOT_STOPPED", "cannot restore "
		    "into '%s': environment is %s", jsonx_str(env, "name"), st);
		goto out;
	}
	ruuid = util_uuid();
	iso_now(now);
	if (store_run(r->db, "INSERT INTO restores (uuid, snapshot_uuid,"
	    " environment_id, database_only, state, created_by, created_at)"
	    " VALUES (?,?,?,?,'queued',?,?)", "ssiiis", ruuid,
	    jsonx_str(snap, "uuid"), jsonx_int(env, "id", 0),
	    (long long)jsonx_bool(r->body, "database_only", 0), r->who.user_id,
	    now) == -1) {
		reply_store_error(r);
		goto out;
	}
	r->node_id = jsonx_int(env, "node_id", 0);
	activity_log(r, "snapshot.restore", "restore of snapshot %.8s into "
	    "environment '%s'%s", jsonx_str(snap, "uuid"), jsonx_str(env, "name"),
	    jsonx_bool(r->body, "database_only", 0) ? " (database only)" : "");
	backups_submit(r, "snapshot.restore", jsonx_str(env, "name"),
	    json_pack("{s:s,s:s,s:I,s:b}", "restore", ruuid, "snapshot",
	    jsonx_str(snap, "uuid"), "env_id", (json_int_t)jsonx_int(env, "id",
	    0), "database_only", jsonx_bool(r->body, "database_only", 0)),
	    "restores", ruuid);
out:
	free(ruuid);
	json_decref(snap);
	json_decref(env);
}

/* GET …/restores: the environment's restores, newest first. */
void
backups_restores_list(struct preq *r)
{
	json_t *env = backups_env(r), *rows;

	if (env == NULL)
		return;
	rows = store_rows(r->db, "SELECT uuid AS id, snapshot_uuid AS snapshot,"
	    " database_only, state, error, created_at AS created, finished_at"
	    " AS finished FROM restores WHERE environment_id = ? ORDER BY id"
	    " DESC", "i", jsonx_int(env, "id", 0));
	json_decref(env);
	if (rows == NULL) {
		reply_store_error(r);
		return;
	}
	reply(r, 200, json_pack("{s:o}", "restores", rows));
}

/* ------------------------------------------------------------------ */
/* Nightly schedule and retention                                      */

static pthread_t sched_thread;
static volatile int sched_stop;

/* One pass: nightly snapshots due now (with two retries), then expired
 * snapshots deleted. A degraded environment (the node's PostgreSQL or
 * router down) runs all the same and has data worth keeping: it gets its
 * nightly too; when the node cannot take it (PostgreSQL down) the
 * snapshot fails with the node's reason and is retried as any failed
 * nightly. A failed environment (its app crashed) still has its
 * database and files, which deserve a backup all the more. */
void
backups_schedule_pass(sqlite3 *db)
{
	time_t now = util_now(), run;
	json_t *nodes, *envs, *nd, *e, *old;
	size_t i, k;
	char runiso[32], nowiso[32];
	const char *fixed;
	int h, m;

	/* NUBO_NIGHTLY_TIME: "off", or HH:MM for every node (tests) */
	fixed = getenv("NUBO_NIGHTLY_TIME");
	nodes = fixed && strcmp(fixed, "off") == 0 ? json_array() :
	    store_rows(db, "SELECT id, backup_time, created_at FROM nodes"
	    " WHERE agent_url IS NOT NULL", "");
	json_array_foreach(nodes, i, nd) {
		time_t born;

		if (backup_schedule_parse(fixed ? fixed : jsonx_str(nd,
		    "backup_time"), &h, &m) == -1)
			continue;
		run = backup_schedule_next(now, h, m);
		if (run > now)
			run -= 24 * 3600;
		/* a node created after the run has no nightly for it yet */
		if (util_parse_iso(jsonx_str(nd, "created_at"), &born) == 0 &&
		    born > run)
			continue;
		util_time_iso(run, runiso, sizeof runiso);
		envs = store_rows(db, "SELECT e.id, e.name, e.app_id AS own_app,"
		    " n.app_id AS node_app, e.package FROM environments e JOIN"
		    " nodes n ON n.id = e.node_id WHERE e.node_id = ? AND"
		    " e.state IN ('running', 'degraded', 'failed')", "i",
		    jsonx_int(nd, "id", 0));
		json_array_foreach(envs, k, e) {
			long long eid = jsonx_int(e, "id", 0);
			long long failed = store_int(db, 0, "SELECT COUNT(*) FROM"
			    " snapshots WHERE environment_id = ? AND nightly_run"
			    " = ? AND state = 'failed'", "is", eid, runiso);
			long long other = store_int(db, 0, "SELECT COUNT(*) FROM"
			    " snapshots WHERE environment_id = ? AND nightly_run"
			    " = ? AND state != 'failed'", "is", eid, runiso);
			time_t at = backup_schedule_retry(run, (int)failed);
			long long app = jsonx_int(e, "own_app", 0) ?
			    jsonx_int(e, "own_app", 0) : jsonx_int(e, "node_app", 0);
			json_t *params;
			char *uuid;

			/* each attempt has a window: a portal that was down
			 * at the time skips that night rather than piling up */
			if (other > 0 || at < 0 || now < at ||
			    now - at > NUBO_NIGHTLY_RETRY_SECS)
				continue;
			uuid = snapshot_insert(db, eid, app, jsonx_int(nd, "id",
			    0), "nightly", "queued", failed ? "nightly (retry)" :
			    "nightly", 0, jsonx_str(e, "package"), runiso);
			if (uuid == NULL)
				continue;
			log_info("nightly snapshot %s of environment %lld%s", uuid,
			    eid, failed ? " (retry)" : "");
			params = json_pack("{s:s,s:I}", "snapshot", uuid,
			    "env_id", (json_int_t)eid);
			if (job_submit(db, "snapshot.create", app,
			    jsonx_int(nd, "id", 0), jsonx_str(e, "name"),
			    params, 0) == 0)
				store_run(db, "DELETE FROM snapshots WHERE uuid = ?",
				    "s", uuid);
			json_decref(params);
			free(uuid);
		}
		json_decref(envs);
	}
	json_decref(nodes);

	/* retention: expired snapshots go, on the node and here */
	util_time_iso(now, nowiso, sizeof nowiso);
	old = store_rows(db, "SELECT uuid, node_id FROM snapshots WHERE"
	    " expires_at IS NOT NULL AND expires_at <= ? AND state IN"
	    " ('completed','failed') LIMIT 100", "s", nowiso);
	json_array_foreach(old, i, e) {
		char *cause = NULL;

		if (backups_snapshot_delete(db, jsonx_str(e, "uuid"),
		    jsonx_int(e, "node_id", 0), &cause) == 0)
			log_info("snapshot %s expired and was deleted",
			    jsonx_str(e, "uuid"));
		free(cause);
	}
	json_decref(old);
	/* uploads never completed */
	util_time_iso(now - 24 * 3600, nowiso, sizeof nowiso);
	store_run(db, "DELETE FROM snapshots WHERE state = 'uploading' AND"
	    " created_at < ?", "s", nowiso);
}

static void *
sched_main(void *arg)
{
	(void)arg;
	while (!sched_stop) {
		backups_schedule_pass(store_db());
		/* off-node copies that failed, tried again */
		snapcopy_pass(store_db());
		/* the other retention duty: offboarded nodes' data */
		offboarding_purge_pass(store_db());
		testhook_mark("scheduler-pass");
		sleep(SNAP_SCHED_TICK);
	}
	store_close_thread();
	return NULL;
}

/* Start the nightly scheduler thread. */
void
backups_scheduler_start(void)
{
	if (pthread_create(&sched_thread, NULL, sched_main, NULL) != 0)
		log_error("cannot start the backup scheduler");
	else
		pthread_detach(sched_thread);
}
