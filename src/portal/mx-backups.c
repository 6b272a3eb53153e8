/* Backups API v2 of the Mendix Cloud (docs/MENDIX-API.md) under
 * /api/v2/apps/{ProjectId}/environments/{EnvironmentId}: snapshots,
 * archives and restores, each mapped onto nubo's own handler
 * (route-backups.c) through mx_call() — the same checks, jobs and
 * activity log — with snake_case fields, ISO dates with milliseconds,
 * explicit nulls and the reference's error codes. An archive is nubo's
 * download of a snapshot (the node streams it on demand): it is complete
 * at once, its id derived from the snapshot and its data type. */
#include <stdlib.h>
#include <string.h>

#include "mx.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* route-backups.c */
void backups_list(struct preq *);
void backups_create(struct preq *);
void backups_show(struct preq *);
void backups_comment(struct preq *);
void backups_delete(struct preq *);
void backups_download(struct preq *);
void backups_restore(struct preq *);
void backups_restores_list(struct preq *);

#define MX_PAGE_DEFAULT	100

static const struct jfield mx_none[] = { { NULL } };

/* nubo's refusals in the Backups API's words. */
static const struct {
	const char	*code;
	unsigned	 status;
	const char	*mx;
} mx_backup_codes[] = {
	{ "SNAPSHOT_NOT_FOUND", 404, "NOT_FOUND" },
	{ "SNAPSHOT_NOT_COMPLETED", 400, "INVALID_STATE" },
	{ "SNAPSHOT_RUNNING", 400, "INVALID_STATE" },
	{ "ENVIRONMENT_NOT_STOPPED", 400, "INVALID_STATE" },
};

/* Reply the error of the last mx_call() in the Backups API's codes. */
static void
mx_backups_error(struct preq *r)
{
	size_t i;

	for (i = 0; r->cap_code && i < sizeof mx_backup_codes /
	    sizeof mx_backup_codes[0]; i++)
		if (strcmp(r->cap_code, mx_backup_codes[i].code) == 0) {
			reply_error(r, mx_backup_codes[i].status,
			    mx_backup_codes[i].mx, "%s", r->cap_message);
			return;
		}
	mx_reply_captured(r);
}

/* nubo's "2026-12-02T15:37:20Z" as "2026-12-02T15:37:20.000Z"; null for
 * none. */
static json_t *
mx_date(const char *iso)
{
	size_t n = iso ? strlen(iso) : 0;
	char *s;
	json_t *out;

	if (n == 0)
		return json_null();
	if (iso[n - 1] != 'Z' || strchr(iso, '.') != NULL)
		return json_string(iso);
	s = xasprintf("%.*s.000Z", (int)(n - 1), iso);
	out = json_string(s);
	free(s);
	return out;
}

static json_t *
mx_str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* A snapshot (nubo's JSON) in the Backups API's fields. */
static json_t *
mx_snapshot_v2(json_t *s)
{
	const char *fin = jsonx_str(s, "finished");
	const char *err = jsonx_str(s, "error");

	return json_pack("{s:s,s:o,s:o,s:o,s:o,s:s,s:o,s:o,s:s}",
	    "snapshot_id", jsonx_str(s, "id"),
	    "status_message", mx_str_or_null(err),
	    "finished_at", mx_date(fin),
	    "updated_at", mx_date(fin ? fin : jsonx_str(s, "created")),
	    "created_at", mx_date(jsonx_str(s, "created")),
	    "state", jsonx_str(s, "state"),
	    "model_version", mx_str_or_null(jsonx_str(s, "model_version")),
	    "expires_at", mx_date(jsonx_str(s, "expires")),
	    "comment", jsonx_str(s, "comment") ? jsonx_str(s, "comment") : "");
}

/* The snapshot {snapshot} in v2 fields; NULL after replying. */
static json_t *
mx_snapshot(struct preq *r)
{
	json_t *s, *out;

	if (mx_call(r, backups_show, NULL, &s) / 100 != 2) {
		mx_backups_error(r);
		return NULL;
	}
	out = mx_snapshot_v2(s);
	json_decref(s);
	return out;
}

/* GET …/snapshots?offset=&limit= */
void
mx_snapshots_list(struct preq *r)
{
	const char *qo = preq_query(r, "offset"), *ql = preq_query(r, "limit");
	long long offset = 0, limit = MX_PAGE_DEFAULT;
	json_t *out, *list, *page, *s;
	size_t i, total;

	if ((qo && util_parse_int(qo, 0, 1LL << 40, &offset) == -1) ||
	    (ql && util_parse_int(ql, 1, 1000, &limit) == -1)) {
		reply_error(r, 400, "INVALID_PARAMETERS", "offset must be 0 or "
		    "more and limit 1 to 1000");
		return;
	}
	if (mx_call(r, backups_list, NULL, &out) / 100 != 2) {
		mx_backups_error(r);
		return;
	}
	list = json_object_get(out, "snapshots");
	total = json_array_size(list);
	page = json_array();
	for (i = (size_t)offset; i < total && i < (size_t)(offset + limit);
	    i++) {
		s = json_array_get(list, i);
		json_array_append_new(page, mx_snapshot_v2(s));
	}
	reply(r, 200, json_pack("{s:I,s:I,s:I,s:o}", "limit",
	    (json_int_t)limit, "offset", (json_int_t)offset, "total",
	    (json_int_t)total, "snapshots", page));
	json_decref(out);
}

/* POST …/snapshots {comment?} → the snapshot, queued */
/* 0, or -1 after replying 400 ENVIRONMENT_BUSY when a job of nubo's
 * runs on {env} or waits for it: nubo would queue the backup or restore
 * behind it, Mendix refuses it (docs/MENDIX-API.md). */
static int
mx_env_idle(struct preq *r)
{
	json_t *job = store_row(r->db, "SELECT id, kind, state FROM jobs"
	    " WHERE state IN ('queued', 'running') AND app_id = ? AND"
	    " environment = ? ORDER BY id LIMIT 1", "is", r->app_id, r->env);

	if (job == NULL)
		return 0;
	reply_error(r, 400, "ENVIRONMENT_BUSY", "'%s' is busy: job %lld (%s) "
	    "is %s; try again once it is done", r->env, jsonx_int(job, "id",
	    0), jsonx_str(job, "kind"), jsonx_str(job, "state"));
	json_decref(job);
	return -1;
}

void
mx_snapshots_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "comment", JT_STRING, 0 }, { NULL } };
	json_t *out, *s;

	if (body_check(r, fields) == -1 || mx_env_idle(r) == -1)
		return;
	if (mx_call(r, backups_create, json_deep_copy(r->body), &out) / 100
	    != 2) {
		mx_backups_error(r);
		return;
	}
	http_param_set(r->http, "snapshot", jsonx_str(out, "snapshot") ?
	    jsonx_str(out, "snapshot") : "");
	json_decref(out);
	if ((s = mx_snapshot(r)) != NULL)
		reply(r, 200, s);
}

/* GET …/snapshots/{SnapshotId} */
void
mx_snapshots_show(struct preq *r)
{
	json_t *s = mx_snapshot(r);

	if (s)
		reply(r, 200, s);
}

/* PUT …/snapshots/{SnapshotId} {comment} */
void
mx_snapshots_update(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "comment", JT_STRING, 1 }, { NULL } };
	json_t *out, *s;

	if (body_check(r, fields) == -1)
		return;
	if (mx_call(r, backups_comment, json_deep_copy(r->body), &out) / 100
	    != 2) {
		mx_backups_error(r);
		return;
	}
	json_decref(out);
	if ((s = mx_snapshot(r)) != NULL)
		reply(r, 200, s);
}

/* DELETE …/snapshots/{SnapshotId} → {} */
void
mx_snapshots_delete(struct preq *r)
{
	json_t *out;

	if (mx_call(r, backups_delete, NULL, &out) / 100 != 2) {
		mx_backups_error(r);
		return;
	}
	json_decref(out);
	reply(r, 200, json_object());
}

/* The data types of archives and nubo's download kinds. */
static const char *const mx_data_types[][2] = {
	{ "files_and_database", "full" },
	{ "database_only", "database" },
	{ "files_only", "files" },
};

/* The id of the archive of snapshot of data type t: a uuid derived from
 * both (the same each time; caller frees). */
static char *
mx_archive_id(const char *snapshot, const char *t)
{
	char *in = xasprintf("%s/%s", snapshot, t);
	char *h = util_sha256_hex(in, strlen(in));
	char *id = xasprintf("%.8s-%.4s-5%.3s-8%.3s-%.12s", h, h + 8, h + 13,
	    h + 17, h + 20);

	free(in);
	free(h);
	return id;
}

/* Reply the archive of {snapshot} of data type i: nubo's download. */
static void
mx_archive_reply(struct preq *r, size_t i)
{
	json_t *d, *s;
	char *id;

	if ((s = mx_snapshot(r)) == NULL)
		return;
	if (mx_call(r, backups_download, json_pack("{s:s}", "kind",
	    mx_data_types[i][1]), &d) / 100 != 2) {
		json_decref(s);
		mx_backups_error(r);
		return;
	}
	id = mx_archive_id(jsonx_str(s, "snapshot_id"), mx_data_types[i][0]);
	reply(r, 200, json_pack("{s:s,s:n,s:O,s:O,s:O,s:s,s:s,s:O,s:s?}",
	    "archive_id", id, "status_message",
	    "finished_at", json_object_get(s, "finished_at"),
	    "updated_at", json_object_get(s, "finished_at"),
	    "created_at", json_object_get(s, "finished_at"),
	    "state", "completed", "data_type", mx_data_types[i][0],
	    "snapshot_id", json_object_get(s, "snapshot_id"),
	    "url", jsonx_str(d, "url")));
	free(id);
	json_decref(s);
	json_decref(d);
}

/* POST …/snapshots/{SnapshotId}/archives?data_type=T */
void
mx_archives_create(struct preq *r)
{
	const char *t = preq_query(r, "data_type");
	size_t i;

	if (body_check(r, mx_none) == -1)
		return;
	for (i = 0; t && i < sizeof mx_data_types / sizeof mx_data_types[0];
	    i++)
		if (strcmp(mx_data_types[i][0], t) == 0) {
			mx_archive_reply(r, i);
			return;
		}
	reply_error(r, 400, "UNSUPPORTED", "data_type must be "
	    "files_and_database, database_only or files_only");
}

/* GET …/snapshots/{SnapshotId}/archives/{ArchiveId} */
void
mx_archives_show(struct preq *r)
{
	const char *snap = preq_param(r, "snapshot");
	const char *want = preq_param(r, "ArchiveId");
	size_t i;
	char *id;

	for (i = 0; i < sizeof mx_data_types / sizeof mx_data_types[0]; i++) {
		id = mx_archive_id(snap, mx_data_types[i][0]);
		if (strcmp(id, want) == 0) {
			free(id);
			mx_archive_reply(r, i);
			return;
		}
		free(id);
	}
	reply_error(r, 404, "NOT_FOUND", "snapshot '%s' has no archive '%s'",
	    snap, want);
}

/* A restore (a row of nubo's restores list) in v2 fields. */
static json_t *
mx_restore_v2(struct preq *r, json_t *x)
{
	json_t *ids = store_row(r->db, "SELECT (SELECT e.uuid FROM snapshots"
	    " s JOIN environments e ON e.id = s.environment_id WHERE s.uuid ="
	    " ?) AS source, (SELECT e.uuid FROM restores x JOIN environments e"
	    " ON e.id = x.environment_id WHERE x.uuid = ?) AS target", "ss",
	    jsonx_str(x, "snapshot"), jsonx_str(x, "id"));
	const char *fin = jsonx_str(x, "finished");
	json_t *out;

	out = json_pack("{s:s,s:o,s:o,s:o,s:o,s:s,s:s,s:o,s:o}",
	    "restore_id", jsonx_str(x, "id"),
	    "status_message", mx_str_or_null(jsonx_str(x, "error")),
	    "finished_at", mx_date(fin),
	    "updated_at", mx_date(fin ? fin : jsonx_str(x, "created")),
	    "created_at", mx_date(jsonx_str(x, "created")),
	    "state", jsonx_str(x, "state"),
	    "source_snapshot_id", jsonx_str(x, "snapshot"),
	    "source_environment_id", mx_str_or_null(jsonx_str(ids, "source")),
	    "target_environment_id", mx_str_or_null(jsonx_str(ids,
	    "target")));
	json_decref(ids);
	return out;
}

/* The restore id of {env}; NULL after replying 404. */
static json_t *
mx_restore(struct preq *r, const char *id)
{
	json_t *out, *x, *found = NULL;
	size_t i;

	if (mx_call(r, backups_restores_list, NULL, &out) / 100 != 2) {
		mx_backups_error(r);
		return NULL;
	}
	json_array_foreach(json_object_get(out, "restores"), i, x)
		if (jsonx_str(x, "id") && strcmp(jsonx_str(x, "id"), id) == 0)
			found = mx_restore_v2(r, x);
	json_decref(out);
	if (found == NULL)
		reply_error(r, 404, "NOT_FOUND", "environment '%s' has no "
		    "restore '%s'", r->env, id);
	return found;
}

/* POST …/restores?source_snapshot_id=S&db_only=true: restore a snapshot
 * of any environment of the app into this (stopped) one. */
void
mx_restores_create(struct preq *r)
{
	const char *snap = preq_query(r, "source_snapshot_id");
	const char *db_only = preq_query(r, "db_only");
	json_t *out, *x;
	char *id;

	if (body_check(r, mx_none) == -1)
		return;
	if (snap == NULL || *snap == '\0') {
		reply_error(r, 400, "INVALID_PARAMETERS", "give the snapshot to "
		    "restore as ?source_snapshot_id=");
		return;
	}
	if (db_only && strcmp(db_only, "true") != 0 &&
	    strcmp(db_only, "false") != 0) {
		reply_error(r, 400, "INVALID_PARAMETERS", "db_only must be true "
		    "or false");
		return;
	}
	if (mx_env_idle(r) == -1)
		return;
	if (mx_call(r, backups_restore, json_pack("{s:s,s:b}", "snapshot",
	    snap, "database_only", db_only && strcmp(db_only, "true") == 0),
	    &out) / 100 != 2) {
		mx_backups_error(r);
		return;
	}
	id = xstrdup(jsonx_str(out, "restore") ? jsonx_str(out, "restore") :
	    "");
	json_decref(out);
	if ((x = mx_restore(r, id)) != NULL)
		reply(r, 200, x);
	free(id);
}

/* GET …/restores/{RestoreId} */
void
mx_restores_show(struct preq *r)
{
	json_t *x = mx_restore(r, preq_param(r, "RestoreId"));

	if (x)
		reply(r, 200, x);
}
