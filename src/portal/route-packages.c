/* Package repositories (SPEC §2 Packages): the portal's view of each
 * repository. Packages belong to an app: a node's own repository holds
 * the packages of the app linked to it (/nodes/{node}/packages, and
 * /apps/{app}/packages for that app); on the sandbox node every Free App
 * has a repository of its own that no other app sees
 * (/apps/{app}/packages). The bytes live on the node and travel through
 * signed URLs (node-contract.md); the portal keeps a record of every
 * package (table packages, app_id NULL for a node's repository) refreshed
 * whenever it asks the node, so lists still answer while a node is
 * down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "jobs.h"
#include "jsonx.h"
#include "nodeclient.h"
#include "nubo_limits.h"
#include "portal.h"
#include "store.h"
#include "tls.h"
#include "util.h"
#include "xmalloc.h"

/* An upload URL is used at once (the node checks expiry when the upload
 * starts, so a slow upload may run longer) and only once. */
#define PACKAGES_UPLOAD_TTL	600
#define PACKAGES_DOWNLOAD_TTL	3600

/* A package and the environments that deploy it from its repository
 * (a sandbox's from its app's, the others from the node's). */
#define PACKAGE_SELECT \
	"SELECT p.package AS id, p.name, p.version, p.size, p.sha256," \
	" p.file_name, u.email AS uploaded_by, p.uploaded_at," \
	" p.manifest_json, p.synced_at, p.downloaded_at, p.branch," \
	" p.revision, p.version_label, p.description," \
	" (SELECT json_group_array(json_object('name', e.name, 'state'," \
	"   e.state)) FROM environments e WHERE e.node_id = p.node_id AND" \
	"   e.package = p.package AND e.app_id IS p.app_id)" \
	"   AS environments_json" \
	" FROM packages p LEFT JOIN users u ON u.id = p.uploaded_by"
#define PACKAGE_IN_REPO	" p.node_id = ? AND IFNULL(p.app_id, 0) = ?"

/* A repository: a node's own (app_id 0), or one app's on the sandbox
 * node. */
struct repo {
	long long	 node_id;
	long long	 app_id;
	char		*uuid;		/* the app's: its path on the node */
};

static void
repo_release(struct repo *rp)
{
	free(rp->uuid);
}

/* The agent API path of the repository, + suffix. */
static char *
repo_path(const struct repo *rp, const char *suffix)
{
	if (rp->app_id == 0)
		return xasprintf("/agent/v1/packages%s", suffix);
	return xasprintf("/agent/v1/apps/%s/packages%s", rp->uuid, suffix);
}

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

/* 404 for package id of the repository the path names. */
static void
packages_not_found(struct preq *r, const char *id)
{
	if (preq_param(r, "node"))
		reply_error(r, 404, "PACKAGE_NOT_FOUND", "node '%s' has no "
		    "package '%s'", preq_param(r, "node"), id);
	else
		reply_error(r, 404, "PACKAGE_NOT_FOUND", "app '%s' has no "
		    "package '%s'", preq_param(r, "app"), id);
}

/* Insert or refresh the record of one package as the node shows it. */
static int
packages_record(sqlite3 *db, const struct repo *rp, json_t *p)
{
	long long rec;
	char now[32];
	int rc;

	util_time_iso(util_now(), now, sizeof now);
	rec = store_int(db, 0, "SELECT p.id FROM packages p WHERE"
	    PACKAGE_IN_REPO " AND p.package = ?", "iis", rp->node_id,
	    rp->app_id, jsonx_str(p, "id"));
	if (rec != 0)
		return store_run(db, "UPDATE packages SET name = ?,"
		    " version = ?, size = ?, sha256 = ?, file_name = ?,"
		    " uploaded_by = (SELECT id FROM users WHERE id = ?),"
		    " uploaded_at = ?, manifest_json = ?, synced_at = ?,"
		    " branch = ?, revision = NULLIF(?, -1) WHERE id = ?",
		    "ssissisjssii", jsonx_str(p, "name"),
		    jsonx_str(p, "version"), jsonx_int(p, "size", 0),
		    jsonx_str(p, "sha256"), jsonx_str(p, "file_name"),
		    jsonx_int(p, "uploaded_by", 0), jsonx_str(p, "uploaded_at"),
		    json_object_get(p, "manifest"), now, jsonx_str(p, "branch"),
		    jsonx_int(p, "revision", -1), rec) == STORE_OK ? 0 : -1;
	rc = store_run(db, "INSERT INTO packages (node_id, app_id, package,"
	    " name, version, size, sha256, file_name, uploaded_by,"
	    " uploaded_at, manifest_json, synced_at, branch, revision) VALUES"
	    " (?, NULLIF(?, 0), ?, ?, ?, ?, ?, ?, (SELECT id FROM users WHERE"
	    " id = ?), ?, ?, ?, ?, NULLIF(?, -1))", "iisssissisjssi",
	    rp->node_id, rp->app_id, jsonx_str(p, "id"),
	    jsonx_str(p, "name"), jsonx_str(p, "version"),
	    jsonx_int(p, "size", 0), jsonx_str(p, "sha256"),
	    jsonx_str(p, "file_name"), jsonx_int(p, "uploaded_by", 0),
	    jsonx_str(p, "uploaded_at"), json_object_get(p, "manifest"), now,
	    jsonx_str(p, "branch"), jsonx_int(p, "revision", -1));
	if (rc != STORE_OK)
		return -1;
	/* the upload is its uploader's (the node says who), not of whoever
	 * made the portal see it first (a list, a show, a transport) */
	activity_record(db, store_int(db, 0, "SELECT id FROM users"
	    " WHERE id = ?", "i", jsonx_int(p, "uploaded_by", 0)),
	    rp->app_id ? rp->app_id : store_int(db, 0, "SELECT app_id FROM"
	    " nodes WHERE id = ?", "i", rp->node_id), rp->node_id,
	    "package.upload", "package '%s' (%lld bytes) is in %s repository",
	    jsonx_str(p, "id"), jsonx_int(p, "size", 0), rp->app_id ?
	    "the app's" : "the node's");
	return 0;
}

/* Refresh the records of a repository from the node's list; *quota (when
 * not NULL) gets the repository's quota as the node counts it. 0, or -1
 * when the node could not be asked (records unchanged, *cause set). */
static int
packages_sync(struct preq *r, const struct repo *rp, json_t **quota,
    char **cause)
{
	json_t *out = NULL, *list, *p, *ids;
	char *path = repo_path(rp, "");
	size_t i;
	int st, rc = -1;

	st = node_call(r->db, rp->node_id, "GET", path, NULL, &out, cause);
	free(path);
	if (st != 200 || !json_is_array(list = json_object_get(out,
	    "packages"))) {
		if (st > 0 && *cause == NULL)
			*cause = xasprintf("the node answered HTTP %d", st);
		json_decref(out);
		return -1;
	}
	free(*cause);
	*cause = NULL;
	if (quota != NULL && json_is_object(json_object_get(out, "quota")))
		*quota = json_incref(json_object_get(out, "quota"));
	ids = json_array();
	if (store_begin(r->db) != STORE_OK)
		goto out;
	json_array_foreach(list, i, p) {
		if (!packages_valid_id(jsonx_str(p, "id")))
			continue;
		json_array_append_new(ids, json_string(jsonx_str(p, "id")));
		if (packages_record(r->db, rp, p) == -1) {
			store_rollback(r->db);
			goto out;
		}
	}
	if (store_run(r->db, "DELETE FROM packages WHERE node_id = ? AND"
	    " IFNULL(app_id, 0) = ? AND package NOT IN (SELECT value FROM"
	    " json_each(?))", "iij", rp->node_id, rp->app_id, ids) != STORE_OK ||
	    store_commit(r->db) != STORE_OK) {
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

/* The list reply: records, and whether they are fresh from the node. */
static void
packages_reply_list(struct preq *r, const struct repo *rp)
{
	char *cause = NULL, *name;
	json_t *quota = NULL;
	int fresh = packages_sync(r, rp, &quota, &cause) == 0;
	json_t *rows = store_rows(r->db, PACKAGE_SELECT " WHERE"
	    PACKAGE_IN_REPO " ORDER BY p.name, p.uploaded_at, p.package", "ii",
	    rp->node_id, rp->app_id);

	if (rows == NULL) {
		free(cause);
		json_decref(quota);
		reply_store_error(r);
		return;
	}
	name = store_text(r->db, "SELECT name FROM nodes WHERE id = ?", "i",
	    rp->node_id);
	reply(r, 200, json_pack("{s:s?,s:o,s:b,s:s?,s:o}", "node", name,
	    "packages", rows, "node_reachable", fresh, "node_error", cause,
	    "quota", quota ? quota : json_null()));
	free(name);
	free(cause);
}

/* The repository of {app}: its linked node's, else its own on the
 * sandbox node. -1 (after replying 409) when it has neither. */
static int
packages_app_repo(struct preq *r, struct repo *rp)
{
	memset(rp, 0, sizeof *rp);
	if ((rp->node_id = r->node_id) != 0)
		return 0;
	rp->node_id = store_int(r->db, 0, "SELECT node_id FROM environments"
	    " WHERE app_id = ? LIMIT 1", "i", r->app_id);
	if (rp->node_id == 0) {
		reply_error(r, 409, "APP_HAS_NO_NODE", "app '%s' is not linked "
		    "to a node and has no sandbox: it has no package repository",
		    preq_param(r, "app"));
		return -1;
	}
	rp->app_id = r->app_id;
	rp->uuid = store_text(r->db, "SELECT uuid FROM apps WHERE id = ?", "i",
	    r->app_id);
	return 0;
}

/* The repository of {app} for another module (mx-upload.c): 0 with its
 * node and app (0: the node's own repository), or -1 after replying. */
int packages_app_repository(struct preq *, long long *, long long *);
int
packages_app_repository(struct preq *r, long long *node_id, long long *app_id)
{
	struct repo rp;
	int rc = packages_app_repo(r, &rp);

	*node_id = rp.node_id;
	*app_id = rp.app_id;
	repo_release(&rp);
	return rc;
}

/* The record of {package} in a repository, refreshed from the node when
 * it answers; NULL after replying 404 (or 503). */
static json_t *
packages_find(struct preq *r, const struct repo *rp)
{
	const char *id = preq_param(r, "package");
	char *cause = NULL, *path, *suffix;
	json_t *out = NULL, *row;
	int st;

	if (!packages_valid_id(id)) {
		reply_error(r, 404, "PACKAGE_NOT_FOUND", "no package '%s'", id);
		return NULL;
	}
	suffix = xasprintf("/%s", id);
	path = repo_path(rp, suffix);
	free(suffix);
	st = node_call(r->db, rp->node_id, "GET", path, NULL, &out, &cause);
	free(path);
	if (st == 200 && json_is_object(out)) {
		if (packages_record(r->db, rp, out) == -1) {
			json_decref(out);
			free(cause);
			reply_store_error(r);
			return NULL;
		}
	} else if (st == 404) {
		store_run(r->db, "DELETE FROM packages WHERE node_id = ? AND"
		    " IFNULL(app_id, 0) = ? AND package = ?", "iis", rp->node_id,
		    rp->app_id, id);
	}
	json_decref(out);
	free(cause);
	row = store_row(r->db, PACKAGE_SELECT " WHERE" PACKAGE_IN_REPO
	    " AND p.package = ?", "iis", rp->node_id, rp->app_id, id);
	if (row == NULL)
		packages_not_found(r, id);
	else
		json_object_set_new(row, "node_reachable", json_boolean(st > 0));
	return row;
}

static void
packages_reply_show(struct preq *r, const struct repo *rp)
{
	json_t *row = packages_find(r, rp);

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

/* POST …/packages/uploads {size}: a signed URL the client sends the
 * archive to (POST, raw body). The URL is good for one upload of exactly
 * size bytes, for PACKAGES_UPLOAD_TTL: size and a random nonce are part
 * of its signed path, and the node refuses another length, a second use
 * (410 UPLOAD_URL_USED) and an upload its quota has no room for (507
 * PACKAGE_QUOTA_EXCEEDED). */
static void
packages_upload_url(struct preq *r, const struct repo *rp)
{
	static const struct jfield fields[] = {
		{ "size", JT_INT, 1 }, { NULL, 0, 0 } };
	long long size;
	char *name, *path, *suffix, *nonce;

	if (body_check(r, fields) == -1)
		return;
	size = jsonx_int(r->body, "size", 0);
	if (size < 1) {
		reply_error(r, 400, "BAD_REQUEST", "size must be the package's "
		    "size in bytes: an empty upload is no package");
		return;
	}
	if (size > NUBO_PACKAGE_MAX) {
		reply_error(r, 413, "PACKAGE_TOO_LARGE", "a package may be at "
		    "most %lld bytes, not %lld", (long long)NUBO_PACKAGE_MAX,
		    size);
		return;
	}
	name = store_text(r->db, "SELECT name FROM nodes WHERE id = ?", "i",
	    rp->node_id);
	nonce = util_random_hex(16);
	suffix = xasprintf("/uploads/%lld-%s", size, nonce);
	path = repo_path(rp, suffix);
	packages_reply_url(r, rp->node_id, "POST", path, PACKAGES_UPLOAD_TTL,
	    json_pack("{s:s?,s:I,s:I,s:b}", "node", name, "size",
	    (json_int_t)size, "max_size", (json_int_t)NUBO_PACKAGE_MAX,
	    "single_use", 1), 201);
	free(path);
	free(suffix);
	free(nonce);
	free(name);
}

/* A signed URL (GET, Range works) with the sha256 to check the bytes
 * against. */
static void
packages_reply_download(struct preq *r, const struct repo *rp)
{
	json_t *row = packages_find(r, rp);
	char *path, *suffix;

	if (row == NULL)
		return;
	suffix = xasprintf("/%s/file", jsonx_str(row, "id"));
	path = repo_path(rp, suffix);
	free(suffix);
	packages_reply_url(r, rp->node_id, "GET", path, PACKAGES_DOWNLOAD_TTL,
	    json_pack("{s:O,s:O,s:O,s:O}", "id", json_object_get(row, "id"),
	    "size", json_object_get(row, "size"), "sha256",
	    json_object_get(row, "sha256"), "file_name",
	    json_object_get(row, "file_name")), 200);
	free(path);
	json_decref(row);
}

/* Delete {package} from a repository: refused (409 PACKAGE_IN_USE) while
 * an environment has it deployed; the node decides. */
static void
packages_reply_delete(struct preq *r, const struct repo *rp)
{
	const char *id = preq_param(r, "package");
	json_t *out = NULL, *err;
	char *cause = NULL, *path, *suffix;
	int st;

	if (!packages_valid_id(id)) {
		reply_error(r, 404, "PACKAGE_NOT_FOUND", "no package '%s'", id);
		return;
	}
	suffix = xasprintf("/%s", id);
	path = repo_path(rp, suffix);
	free(suffix);
	st = node_call(r->db, rp->node_id, "DELETE", path, NULL, &out, &cause);
	free(path);
	if (st == 200 || st == 404)
		store_run(r->db, "DELETE FROM packages WHERE node_id = ? AND"
		    " IFNULL(app_id, 0) = ? AND package = ?", "iis", rp->node_id,
		    rp->app_id, id);
	if (st == 200) {
		activity_log(r, "package.delete", "deleted package '%s'", id);
		reply(r, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
	} else if (st == 404) {
		packages_not_found(r, id);
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

typedef void (*repo_handler)(struct preq *, const struct repo *);

/* Run fn on the repository of {node}: the node's own. */
static void
packages_on_node(struct preq *r, repo_handler fn)
{
	struct repo rp = { r->node_id, 0, NULL };

	fn(r, &rp);
}

/* Run fn on the repository of {app} (packages_app_repo()). */
static void
packages_on_app(struct preq *r, repo_handler fn)
{
	struct repo rp;

	if (packages_app_repo(r, &rp) == 0)
		fn(r, &rp);
	repo_release(&rp);
}

/* GET /nodes/{node}/packages, GET /apps/{app}/packages */
void
packages_list(struct preq *r)
{
	packages_on_node(r, packages_reply_list);
}

void
packages_app_list(struct preq *r)
{
	packages_on_app(r, packages_reply_list);
}

/* GET …/packages/{package} */
void
packages_show(struct preq *r)
{
	packages_on_node(r, packages_reply_show);
}

void
packages_app_show(struct preq *r)
{
	packages_on_app(r, packages_reply_show);
}

/* POST …/packages/uploads */
void
packages_upload(struct preq *r)
{
	packages_on_node(r, packages_upload_url);
}

void
packages_app_upload(struct preq *r)
{
	packages_on_app(r, packages_upload_url);
}

/* GET …/packages/{package}/download */
void
packages_download(struct preq *r)
{
	packages_on_node(r, packages_reply_download);
}

void
packages_app_download(struct preq *r)
{
	packages_on_app(r, packages_reply_download);
}

/* DELETE …/packages/{package} */
void
packages_delete(struct preq *r)
{
	packages_on_node(r, packages_reply_delete);
}

void
packages_app_delete(struct preq *r)
{
	packages_on_app(r, packages_reply_delete);
}

/* The job behind an upload the portal received itself (the multipart
 * uploads of the Mendix faces, mx-upload.c): the file it spooled goes to
 * the repository's node through a single-use upload URL — the node
 * validates and stores it, as for `nubo packages upload` — and the
 * package is recorded. params: {file, node_id, app_id (0: the node's own
 * repository), file_name, package (the id its manifest gives)}. Run
 * again after a restart with the file gone, it finds the package
 * recorded (or fails saying the upload was lost). */
int
packages_job_upload(struct job *j, json_t **result, char **cause)
{
	const char *file = jsonx_str(j->params, "file");
	const char *id = jsonx_str(j->params, "package");
	struct repo rp = { jsonx_int(j->params, "node_id", 0),
	    jsonx_int(j->params, "app_id", 0), NULL };
	char *nonce = NULL, *suffix = NULL, *path = NULL, *url = NULL;
	char *esc = NULL, *q = NULL, *full = NULL;
	json_t *out = NULL;
	struct stat st;
	char rev[32] = "";
	int status, rc = -1;

	if (file == NULL || id == NULL || rp.node_id == 0) {
		*cause = xstrdup("not an upload job");
		return -1;
	}
	if (rp.app_id)
		rp.uuid = store_text(j->db, "SELECT uuid FROM apps WHERE id = ?",
		    "i", rp.app_id);
	if (stat(file, &st) == -1) {
		if (store_int(j->db, 0, "SELECT 1 FROM packages p WHERE"
		    PACKAGE_IN_REPO " AND p.package = ?", "iis", rp.node_id,
		    rp.app_id, id) == 1) {
			*result = json_pack("{s:s}", "package", id);
			rc = 0;
		} else {
			*cause = xstrdup("the uploaded file was lost (the "
			    "portal restarted): upload the package again");
		}
		goto out;
	}
	job_progress(j, NULL, "sending the package to the node");
	nonce = util_random_hex(16);
	suffix = xasprintf("/uploads/%lld-%s", (long long)st.st_size, nonce);
	path = repo_path(&rp, suffix);
	url = node_signed_url(j->db, rp.node_id, "POST", path, j->created_by,
	    PACKAGES_UPLOAD_TTL, cause);
	if (url == NULL)
		goto out;
	{
		char *e = curl_easy_escape(NULL, jsonx_str(j->params,
		    "file_name") ? jsonx_str(j->params, "file_name") : id, 0);

		esc = xstrdup(e ? e : "package");
		curl_free(e);
		/* the Build API's labels (validated by the face) */
		if (jsonx_int(j->params, "revision", -1) >= 0)
			snprintf(rev, sizeof rev, "&revision=%lld",
			    jsonx_int(j->params, "revision", -1));
		q = xasprintf("filename=%s%s%s%s", esc, jsonx_str(j->params,
		    "branch") ? "&branch=" : "", jsonx_str(j->params, "branch")
		    ? jsonx_str(j->params, "branch") : "", rev);
		full = tls_url_query_add(url, q);
	}
	status = node_upload_file(full, file, &out, cause);
	if (status != 200 && status != 201) {
		if (*cause && strncmp(*cause, NODE_UNREACHABLE,
		    strlen(NODE_UNREACHABLE)) == 0)
			goto out;	/* kept: tried again after a restart */
		if (*cause == NULL)
			*cause = xasprintf("the node answered HTTP %d", status);
		unlink(file);
		goto out;
	}
	if (!packages_valid_id(jsonx_str(out, "id")) ||
	    packages_record(j->db, &rp, out) == -1) {
		*cause = xstrdup("the node's answer could not be recorded");
		goto out;
	}
	unlink(file);
	*result = json_pack("{s:s}", "package", jsonx_str(out, "id"));
	rc = 0;
out:
	json_decref(out);
	repo_release(&rp);
	free(nonce);
	free(suffix);
	free(path);
	free(url);
	free(esc);
	free(q);
	free(full);
	return rc;
}

/* PATCH /apps/{app}/packages/{package} {description?, version_label?}:
 * the labels a Mendix Build API "build" gives a package (mx-deploy.c);
 * kept by the portal, shown with the package. */
void
packages_app_label(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "description", JT_STRING, 0 },
		{ "version_label", JT_STRING, 0 }, { NULL } };
	const char *d, *v;
	struct repo rp;
	json_t *row;

	if (body_check(r, fields) == -1)
		return;
	d = jsonx_str(r->body, "description");
	v = jsonx_str(r->body, "version_label");
	if ((d && strlen(d) > NUBO_COMMENT_MAX) ||
	    (v && strlen(v) > NUBO_NAME_MAX)) {
		reply_error(r, 400, "BAD_REQUEST", "'description' has at most "
		    "%d characters, 'version_label' %d", NUBO_COMMENT_MAX,
		    NUBO_NAME_MAX);
		return;
	}
	if (packages_app_repo(r, &rp) == -1)
		return;
	if ((row = packages_find(r, &rp)) == NULL)
		goto out;
	json_decref(row);
	if (store_run(r->db, "UPDATE packages AS p SET description = IFNULL(?,"
	    " description), version_label = IFNULL(?, version_label) WHERE"
	    " package = ? AND" PACKAGE_IN_REPO, "sssii", d, v,
	    preq_param(r, "package"), rp.node_id, rp.app_id) != STORE_OK) {
		reply_store_error(r);
		goto out;
	}
	activity_log(r, "package.label", "package '%s' labelled%s%s%s%s",
	    preq_param(r, "package"), v ? " version " : "", v ? v : "",
	    d ? ": " : "", d ? d : "");
	packages_reply_show(r, &rp);
out:
	repo_release(&rp);
}
