/* Package repositories (SPEC §2 Packages): the portal's view of each
 * node's repository. The bytes live on the node and travel through signed
 * URLs (node-contract.md); the portal keeps a record of every package
 * (table packages) refreshed whenever it asks the node, so lists still
 * answer while a node is down. */
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "nodeclient.h"
#include "nubo_limits.h"
#include "portal.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

#define PACKAGES_UPLOAD_TTL	(6 * 3600)	/* a slow 2 GB upload */
#define PACKAGES_DOWNLOAD_TTL	3600

#define PACKAGE_SELECT \
	"SELECT p.package AS id, p.name, p.version, p.size, p.sha256," \
	" p.file_name, u.email AS uploaded_by, p.uploaded_at," \
	" p.manifest_json, p.synced_at, p.downloaded_at," \
	" (SELECT json_group_array(json_object('name', e.name, 'state'," \
	"   e.state)) FROM environments e WHERE e.node_id = p.node_id AND" \
	"   e.package = p.package) AS environments_json" \
	" FROM packages p LEFT JOIN users u ON u.id = p.uploaded_by"

/* 1 when s can be a package id: [A-Za-z0-9][A-Za-z0-9._+-]*, <= 128. */
static int
packages_valid_id(const char *s)
{
	size_t i, n = s ? strlen(s) : 0;

	if (n == 0 || n > NUBO_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || (i > 0 && strchr("._+-", c))))
			return 0;
	}
	return 1;
}

/* Insert or refresh the record of one package as the node shows it. */
static int
packages_record(struct preq *r, long long node_id, json_t *p)
{
	char now[32];
	int isnew;

	util_time_iso(util_now(), now, sizeof now);
	isnew = store_int(r->db, 0, "SELECT 1 FROM packages WHERE node_id = ?"
	    " AND package = ?", "is", node_id, jsonx_str(p, "id")) == 0;
	if (store_run(r->db, "INSERT INTO packages (node_id, package, name,"
	    " version, size, sha256, file_name, uploaded_by, uploaded_at,"
	    " manifest_json, synced_at) VALUES (?, ?, ?, ?, ?, ?, ?,"
	    " (SELECT id FROM users WHERE id = ?), ?, ?, ?)"
	    " ON CONFLICT (node_id, package) DO UPDATE SET name = excluded.name,"
	    " version = excluded.version, size = excluded.size,"
	    " sha256 = excluded.sha256, file_name = excluded.file_name,"
	    " uploaded_by = excluded.uploaded_by,"
	    " uploaded_at = excluded.uploaded_at,"
	    " manifest_json = excluded.manifest_json,"
	    " synced_at = excluded.synced_at", "isssissisjs", node_id,
	    jsonx_str(p, "id"), jsonx_str(p, "name"), jsonx_str(p, "version"),
	    jsonx_int(p, "size", 0), jsonx_str(p, "sha256"),
	    jsonx_str(p, "file_name"), jsonx_int(p, "uploaded_by", 0),
	    jsonx_str(p, "uploaded_at"), json_object_get(p, "manifest"),
	    now) != STORE_OK)
		return -1;
	if (isnew)
		activity_log_at(r, store_int(r->db, 0, "SELECT app_id FROM nodes"
		    " WHERE id = ?", "i", node_id), node_id, "package.upload",
		    "package '%s' (%lld bytes) is in the node's repository",
		    jsonx_str(p, "id"), jsonx_int(p, "size", 0));
	return 0;
}

/* Refresh node_id's records from the node's list. 0, or -1 when the node
 * could not be asked (records unchanged, *cause set). */
static int
packages_sync(struct preq *r, long long node_id, char **cause)
{
	json_t *out = NULL, *list, *p, *ids;
	size_t i;
	int st, rc = -1;

	st = node_call(r->db, node_id, "GET", "/agent/v1/packages", NULL, &out,
	    cause);
	if (st != 200 || !json_is_array(list = json_object_get(out,
	    "packages"))) {
		if (st > 0 && *cause == NULL)
			*cause = xasprintf("the node answered HTTP %d", st);
		json_decref(out);
		return -1;
	}
	free(*cause);
	*cause = NULL;
	ids = json_array();
	if (store_begin(r->db) != STORE_OK)
		goto out;
	json_array_foreach(list, i, p) {
		if (!packages_valid_id(jsonx_str(p, "id")))
			continue;
		json_array_append_new(ids, json_string(jsonx_str(p, "id")));
		if (packages_record(r, node_id, p) == -1) {
			store_rollback(r->db);
			goto out;
		}
	}
	if (store_run(r->db, "DELETE FROM packages WHERE node_id = ? AND"
	    " package NOT IN (SELECT value FROM json_each(?))", "ij", node_id,
	    ids) != STORE_OK || store_commit(r->db) != STORE_OK) {
		store_rollback(r->db);
		goto out;
	}
	rc = 0;
out:
	if (rc == -1 && *cause == NULL)
		*cause = xasprintf("store error: %s", store_errmsg(r->db));
	json_decref(ids);
	json_decref(out);
	return rc;
}

static json_t *
packages_rows(struct preq *r, long long node_id)
{
	return store_rows(r->db, PACKAGE_SELECT " WHERE p.node_id = ?"
	    " ORDER BY p.name, p.uploaded_at, p.package", "i", node_id);
}

/* The list reply: records, and whether they are fresh from the node. */
static void
packages_reply_list(struct preq *r, long long node_id)
{
	char *cause = NULL, *name;
	int fresh = packages_sync(r, node_id, &cause) == 0;
	json_t *rows = packages_rows(r, node_id);

	if (rows == NULL) {
		free(cause);
		reply_store_error(r);
		return;
	}
	name = store_text(r->db, "SELECT name FROM nodes WHERE id = ?", "i",
	    node_id);
	reply(r, 200, json_pack("{s:s?,s:o,s:b,s:s?}", "node", name,
	    "packages", rows, "node_reachable", fresh, "node_error", cause));
	free(name);
	free(cause);
}

/* GET /nodes/{node}/packages */
void
packages_list(struct preq *r)
{
	packages_reply_list(r, r->node_id);
}

/* The node an app's packages live on: its linked node, else its sandbox
 * node. 0 (after replying) when it has neither. */
static long long
packages_app_node(struct preq *r)
{
	long long id = r->node_id;

	if (id == 0)
		id = store_int(r->db, 0, "SELECT node_id FROM environments"
		    " WHERE app_id = ? LIMIT 1", "i", r->app_id);
	if (id == 0)
		reply_error(r, 409, "APP_HAS_NO_NODE", "app '%s' is not linked "
		    "to a node and has no sandbox: it has no package repository",
		    preq_param(r, "app"));
	return id;
}

/* GET /apps/{app}/packages: the repository of the app's node, for
 * members with the transport permission. */
void
packages_app_list(struct preq *r)
{
	long long node_id = packages_app_node(r);

	if (node_id != 0)
		packages_reply_list(r, node_id);
}

/* The record of {package} on node_id, refreshed from the node when it
 * answers; NULL after replying 404 (or 503). */
static json_t *
packages_find(struct preq *r, long long node_id)
{
	const char *id = preq_param(r, "package");
	char *cause = NULL, *path;
	json_t *out = NULL, *row;
	int st;

	if (!packages_valid_id(id)) {
		reply_error(r, 404, "PACKAGE_NOT_FOUND", "no package '%s'", id);
		return NULL;
	}
	path = xasprintf("/agent/v1/packages/%s", id);
	st = node_call(r->db, node_id, "GET", path, NULL, &out, &cause);
	free(path);
	if (st == 200 && json_is_object(out)) {
		if (packages_record(r, node_id, out) == -1) {
			json_decref(out);
			free(cause);
			reply_store_error(r);
			return NULL;
		}
	} else if (st == 404) {
		store_run(r->db, "DELETE FROM packages WHERE node_id = ? AND"
		    " package = ?", "is", node_id, id);
	}
	json_decref(out);
	free(cause);
	row = store_row(r->db, PACKAGE_SELECT " WHERE p.node_id = ? AND"
	    " p.package = ?", "is", node_id, id);
	if (row == NULL)
		reply_error(r, 404, "PACKAGE_NOT_FOUND", "node '%s' has no "
		    "package '%s'", preq_param(r, "node") ? preq_param(r, "node")
		    : "of the app", id);
	else
		json_object_set_new(row, "node_reachable", json_boolean(st > 0));
	return row;
}

/* GET /nodes/{node}/packages/{package} */
void
packages_show(struct preq *r)
{
	json_t *row = packages_find(r, r->node_id);

	if (row != NULL)
		reply(r, 200, row);
}

/* A signed URL answer, or 503 when the node never registered. */
static void
packages_reply_url(struct preq *r, long long node_id, const char *method,
    const char *path, long ttl, json_t *extra, unsigned status)
{
	char *cause = NULL, *url, when[32];

	url = node_signed_url(r->db, node_id, method, path, r->who.user_id, ttl,
	    &cause);
	if (url == NULL) {
		reply_error(r, 503, "NODE_UNREACHABLE", "%s", cause);
		free(cause);
		json_decref(extra);
		return;
	}
	util_time_iso(util_now() + ttl, when, sizeof when);
	json_object_set_new(extra, "url", json_string(url));
	json_object_set_new(extra, "method", json_string(method));
	json_object_set_new(extra, "expires_at", json_string(when));
	free(url);
	reply(r, status, extra);
}

/* POST /nodes/{node}/packages/uploads {size?}: a signed URL the client
 * sends the archive to (POST, raw body). */
static void
packages_upload_url(struct preq *r, long long node_id)
{
	static const struct jfield fields[] = {
		{ "size", JT_INT, 0 }, { NULL, 0, 0 } };
	long long size;
	char *name;

	if (body_check(r, fields) == -1)
		return;
	size = jsonx_int(r->body, "size", 0);
	if (size < 0) {
		reply_error(r, 400, "BAD_REQUEST", "size must not be negative");
		return;
	}
	if (size > NUBO_PACKAGE_MAX) {
		reply_error(r, 413, "PACKAGE_TOO_LARGE", "a package may be at "
		    "most %lld bytes, not %lld", (long long)NUBO_PACKAGE_MAX,
		    size);
		return;
	}
	name = store_text(r->db, "SELECT name FROM nodes WHERE id = ?", "i",
	    node_id);
	packages_reply_url(r, node_id, "POST", "/agent/v1/packages",
	    PACKAGES_UPLOAD_TTL, json_pack("{s:s?,s:I}", "node", name,
	    "max_size", (json_int_t)NUBO_PACKAGE_MAX), 201);
	free(name);
}

void
packages_upload(struct preq *r)
{
	packages_upload_url(r, r->node_id);
}

/* POST /apps/{app}/packages/uploads: the same on the app's node. */
void
packages_app_upload(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "size", JT_INT, 0 }, { NULL, 0, 0 } };
	long long node_id;

	if (body_check(r, fields) == -1)
		return;
	if ((node_id = packages_app_node(r)) != 0)
		packages_upload_url(r, node_id);
}

/* GET /nodes/{node}/packages/{package}/download: a signed URL (GET,
 * Range works) with the sha256 to check the bytes against. */
void
packages_download(struct preq *r)
{
	json_t *row = packages_find(r, r->node_id);
	char *path;

	if (row == NULL)
		return;
	path = xasprintf("/agent/v1/packages/%s/file", jsonx_str(row, "id"));
	packages_reply_url(r, r->node_id, "GET", path, PACKAGES_DOWNLOAD_TTL,
	    json_pack("{s:O,s:O,s:O,s:O}", "id", json_object_get(row, "id"),
	    "size", json_object_get(row, "size"), "sha256",
	    json_object_get(row, "sha256"), "file_name",
	    json_object_get(row, "file_name")), 200);
	free(path);
	json_decref(row);
}

/* DELETE /nodes/{node}/packages/{package}: refused (409 PACKAGE_IN_USE)
 * while an environment has it deployed; the node decides. */
void
packages_delete(struct preq *r)
{
	const char *id = preq_param(r, "package");
	json_t *out = NULL, *err;
	char *cause = NULL, *path;
	int st;

	if (!packages_valid_id(id)) {
		reply_error(r, 404, "PACKAGE_NOT_FOUND", "no package '%s'", id);
		return;
	}
	path = xasprintf("/agent/v1/packages/%s", id);
	st = node_call(r->db, r->node_id, "DELETE", path, NULL, &out, &cause);
	free(path);
	if (st == 200) {
		store_run(r->db, "DELETE FROM packages WHERE node_id = ? AND"
		    " package = ?", "is", r->node_id, id);
		activity_log(r, "package.delete", "deleted package '%s'", id);
		reply(r, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
	} else if (st == 404) {
		store_run(r->db, "DELETE FROM packages WHERE node_id = ? AND"
		    " package = ?", "is", r->node_id, id);
		reply_error(r, 404, "PACKAGE_NOT_FOUND", "node '%s' has no "
		    "package '%s'", preq_param(r, "node"), id);
	} else if (st > 0 && st < 500) {
		err = json_object_get(out, "error");
		reply_error(r, (unsigned)st, jsonx_str(err, "code") ?
		    jsonx_str(err, "code") : "NODE_ERROR", "%s",
		    jsonx_str(err, "message") ? jsonx_str(err, "message") :
		    "the node refused");
	} else {
		reply_error(r, 503, "NODE_UNREACHABLE", "cannot delete package "
		    "'%s': %s", id, cause ? cause : "the node failed");
	}
	json_decref(out);
	free(cause);
}
