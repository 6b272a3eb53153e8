/* Package uploads of the Mendix faces (docs/MENDIX-API.md): Mendix
 * clients POST the package to the portal as multipart/form-data (part
 * `file`), where nubo's own clients send it to the node through an
 * upload URL. The part is streamed to a file under the portal's data
 * folder (DIR/uploads, capped at NUBO_PACKAGE_MAX), its manifest checked
 * (package.c, as the node will) to answer the PackageId at once, and a
 * package.upload job (route-packages.c) sends it to the node's
 * repository through an upload URL like `nubo packages upload`. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "jobs.h"
#include "mx.h"
#include "nubo_limits.h"
#include "package.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* libmicrohttpd's buffer for the multipart parser. */
#define MX_UPLOAD_PARSE_BUF	(64 * 1024)

struct mx_upload {
	struct MHD_PostProcessor	*pp;
	int				 fd;
	char				*path;		/* NULL once a job has it */
	long long			 size;
	int				 got_file;
	int				 failed;	/* errno, or -1: too large */
	char				*file_name;	/* the part's */
};

void
mx_cleanup(struct preq *r)
{
	struct mx_upload *u = r->face_ctx;

	if (u == NULL)
		return;
	if (u->pp)
		MHD_destroy_post_processor(u->pp);
	if (u->fd != -1)
		close(u->fd);
	if (u->path) {
		unlink(u->path);
		free(u->path);
	}
	free(u->file_name);
	free(u);
	r->face_ctx = NULL;
}

/* Each piece of each part: the `file` part's bytes go to the file, other
 * parts are ignored. */
static enum MHD_Result
mx_upload_part(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *filename, const char *content_type,
    const char *transfer_encoding, const char *data, uint64_t off,
    size_t size)
{
	struct mx_upload *u = cls;

	(void)kind;
	(void)content_type;
	(void)transfer_encoding;
	(void)off;
	if (key == NULL || strcmp(key, "file") != 0)
		return MHD_YES;
	if (!u->got_file) {
		u->got_file = 1;
		if (filename && *filename)
			u->file_name = xstrdup(filename);
	}
	if (size == 0)
		return MHD_YES;
	if (u->size + (long long)size > NUBO_PACKAGE_MAX) {
		u->failed = -1;
		return MHD_NO;
	}
	if (util_write_all(u->fd, data, size) == -1) {
		u->failed = errno ? errno : EIO;
		return MHD_NO;
	}
	u->size += (long long)size;
	return MHD_YES;
}

static int
mx_upload_sink(struct http_req *h, const char *data, size_t len)
{
	struct preq *r = h->ctx;
	struct mx_upload *u = r->face_ctx;

	if (MHD_post_process(u->pp, data, len) == MHD_YES)
		return 0;
	if (u->failed == -1)
		reply_error(r, 413, "PACKAGE_TOO_LARGE", "a package may be at "
		    "most %lld bytes", (long long)NUBO_PACKAGE_MAX);
	else if (u->failed)
		reply_error(r, 500, "UPLOAD_COPY_FAILED", "cannot store the "
		    "upload: %s", strerror(u->failed));
	else
		reply_error(r, 400, "INVALID_PARAMETERS", "the body is not "
		    "valid multipart/form-data");
	return -1;
}

void
mx_upload_begin(struct preq *r)
{
	struct http_req *h = r->http;
	const char *ct = http_header(h, "Content-Type");
	struct mx_upload *u = xcalloc(1, sizeof *u);
	char *dir;

	u->fd = -1;
	r->face_ctx = u;
	if (!util_media_listed(ct, "multipart/form-data")) {
		reply_error(r, 400, "INVALID_PARAMETERS", "send the package as "
		    "multipart/form-data with a part named 'file' (curl -F "
		    "file=@app.mda)");
		return;
	}
	dir = xasprintf("%s/uploads", r->portal->data_dir);
	if (util_mkdir_p(dir, 0700) == -1) {
		reply_error(r, 500, "UPLOAD_COPY_FAILED", "cannot make %s: %s",
		    dir, strerror(errno));
		free(dir);
		return;
	}
	u->path = xasprintf("%s/mx-XXXXXX", dir);
	free(dir);
	if ((u->fd = mkstemp(u->path)) == -1) {
		reply_error(r, 500, "UPLOAD_COPY_FAILED", "cannot store the "
		    "upload: %s", strerror(errno));
		free(u->path);
		u->path = NULL;
		return;
	}
	u->pp = MHD_create_post_processor(h->conn, MX_UPLOAD_PARSE_BUF,
	    mx_upload_part, u);
	if (u->pp == NULL) {
		reply_error(r, 400, "INVALID_PARAMETERS", "the Content-Type "
		    "has no multipart boundary");
		return;
	}
	h->body_sink = mx_upload_sink;
}

/* route-packages.c */
int packages_app_repository(struct preq *, long long *node_id,
    long long *app_id);

int
mx_upload_submit(struct preq *r, long long *job_id, char **package_id)
{
	struct mx_upload *u = r->face_ctx;
	struct package_manifest m;
	const char *name = preq_query(r, "name");
	const char *branch = preq_query(r, "branch");
	char *cause = NULL, *id = NULL;
	long long rev;
	json_t *params;
	long long node_id, app_id;
	int rc = -1;

	package_manifest_init(&m);
	if (u->pp) {
		MHD_destroy_post_processor(u->pp);
		u->pp = NULL;
	}
	/* the Build API's labels: ?branch=&revision= */
	if (package_label_check(branch, preq_query(r, "revision"), &rev,
	    &cause) == -1) {
		reply_error(r, 400, "INVALID_PARAMETERS", "%s", cause);
		goto out;
	}
	if (!u->got_file || u->size == 0) {
		reply_error(r, 400, "INVALID_PARAMETERS", "no package: send it "
		    "as the multipart part 'file'");
		goto out;
	}
	if (fsync(u->fd) == -1 || close(u->fd) == -1) {
		u->fd = -1;
		reply_error(r, 500, "UPLOAD_COPY_FAILED", "cannot store the "
		    "upload: %s", strerror(errno));
		goto out;
	}
	u->fd = -1;
	if (package_validate(u->path, &m, &cause) == -1) {
		reply_error(r, 500, "INVALID_PACKAGE", "package rejected: %s",
		    cause);
		goto out;
	}
	if (packages_app_repository(r, &node_id, &app_id) == -1)
		goto out;
	id = xasprintf("%s-%s", m.name, m.version);
	params = json_pack("{s:s,s:I,s:I,s:s,s:s,s:s?,s:I}", "file", u->path,
	    "node_id", (json_int_t)node_id, "app_id", (json_int_t)app_id,
	    "file_name", name && *name ? name : u->file_name ? u->file_name :
	    id, "package", id, "branch", branch, "revision", (json_int_t)rev);
	*job_id = job_submit(r->db, "package.upload", r->app_id, node_id,
	    NULL, params, r->who.user_id);
	json_decref(params);
	if (*job_id == 0) {
		reply_store_error(r);
		goto out;
	}
	free(u->path);
	u->path = NULL;		/* the job's now */
	*package_id = id;
	id = NULL;
	rc = 0;
out:
	package_manifest_release(&m);
	free(cause);
	free(id);
	return rc;
}
