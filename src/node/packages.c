/* The node's deployment package repositories (SPEC §2 Packages).
 *
 * Packages belong to an app. The node's own repository, DIR/packages,
 * holds the packages of the app linked to the node (which inherits them
 * with the node's environments when another app is linked). On the
 * sandbox node every Free App has a repository of its own,
 * DIR/app-packages/<app uuid>: an environment whose spec names a
 * "repository" (the app's uuid) deploys from that one and nothing else,
 * and a package of one app is invisible to every other app.
 *
 * Layout of a repository: <root>/<id>/{package, meta.json}, <id> =
 * "<name>-<version>" from the manifest. An upload (a signed URL,
 * node-contract.md) streams to <root>/.uploads/up-XXXXXX with a size cap
 * and sha256 computed on the way, is validated (package.c), and only then
 * appears: package and meta.json are put in <root>/.new-XXXXXX, which is
 * renamed to <id>. A failed or interrupted upload leaves nothing listed;
 * leftovers of a crash are removed at start (packages_init). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "agent-routes.h"
#include "log.h"
#include "node.h"
#include "nubo_limits.h"
#include "package.h"
#include "util.h"
#include "xmalloc.h"

/* Serialises publish and delete (the in-use check and the rename). */
static pthread_mutex_t packages_lock = PTHREAD_MUTEX_INITIALIZER;

/* 1 when id can name a repository entry: [A-Za-z0-9][A-Za-z0-9._+-]*. */
static int
packages_valid_id(const char *id)
{
	size_t i, n = id ? strlen(id) : 0;

	if (n == 0 || n > NUBO_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || (i > 0 && strchr("._+-", c))))
			return 0;
	}
	return 1;
}

/* 1 when repo can name an app's repository: an app uuid (36 characters
 * of lowercase hex and dashes). */
static int
packages_valid_repo(const char *repo)
{
	size_t i;
	char c;

	if (repo == NULL || strlen(repo) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		c = repo[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return 0;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return 0;
		}
	}
	return 1;
}

/* The folder of repository repo: the node's (NULL) or an app's. */
static char *
packages_dir(const char *repo)
{
	if (repo == NULL)
		return xasprintf("%s/packages", node->data_dir);
	return xasprintf("%s/app-packages/%s", node->data_dir, repo);
}

/* The repository environment e deploys from: its spec's app uuid, or
 * NULL for the node's. Caller holds node->lock. */
static const char *
packages_env_repo_locked(struct env *e)
{
	const char *repo = jsonx_str(e->spec, "repository");

	return repo && *repo ? repo : NULL;
}

/* 1 when two repositories are the same one. */
static int
packages_same_repo(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/* Remove what a crash left in one repository folder. */
static void
packages_clean(const char *dir)
{
	struct dirent *de;
	char *p;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".uploads") != 0 &&
		    strncmp(de->d_name, ".new-", 5) != 0 &&
		    strncmp(de->d_name, ".del-", 5) != 0)
			continue;
		p = xasprintf("%s/%s", dir, de->d_name);
		log_info("packages: removing leftover %s", p);
		util_rm_rf(p);
		free(p);
	}
	closedir(d);
}

void
packages_init(void)
{
	char *dir = packages_dir(NULL), *apps, *p;
	struct dirent *de;
	DIR *d;

	util_mkdir_p(dir, 0755);
	packages_clean(dir);
	apps = xasprintf("%s/app-packages", node->data_dir);
	if ((d = opendir(apps)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (!packages_valid_repo(de->d_name))
				continue;
			p = xasprintf("%s/%s", apps, de->d_name);
			packages_clean(p);
			free(p);
		}
		closedir(d);
	}
	free(apps);
	free(dir);
}

/* The repository a request names: the node's (/agent/v1/packages…, *repo
 * NULL) or an app's (/agent/v1/apps/{app}/packages…). -1 after replying
 * 404 for a malformed app. */
static int
packages_req_repo(struct areq *r, const char **repo)
{
	*repo = http_param(r->http, "app");
	if (*repo != NULL && !packages_valid_repo(*repo)) {
		areply_error(r, 404, "REPOSITORY_NOT_FOUND", "no repository "
		    "'%s' on this node", *repo);
		return -1;
	}
	return 0;
}

/* meta.json of a package of repo, or NULL when there is no such
 * package. */
static json_t *
packages_meta(const char *repo, const char *id)
{
	char *dir, *path, *data;
	json_t *meta = NULL;
	size_t len;

	if (!packages_valid_id(id))
		return NULL;
	dir = packages_dir(repo);
	path = xasprintf("%s/%s/meta.json", dir, id);
	free(dir);
	data = util_read_file(path, NUBO_MANIFEST_MAX * 4, &len);
	if (data != NULL)
		meta = json_loadb(data, len, 0, NULL);
	free(data);
	free(path);
	return json_is_object(meta) ? meta : (json_decref(meta), NULL);
}

/* The file of package id in repo, or NULL when there is none. */
static char *
packages_file(const char *repo, const char *id)
{
	char *dir, *p;

	if (!packages_valid_id(id))
		return NULL;
	dir = packages_dir(repo);
	p = xasprintf("%s/%s/package", dir, id);
	free(dir);
	if (access(p, R_OK) == 0)
		return p;
	free(p);
	return NULL;
}

/* The environments that have package id of repo deployed (transported):
 * name and state. Takes node->lock. */
static json_t *
packages_environments(const char *repo, const char *id)
{
	json_t *arr = json_array();
	struct env *e;

	pthread_mutex_lock(&node->lock);
	for (e = node->envs; e != NULL; e = e->next)
		if (e->package != NULL && strcmp(e->package, id) == 0 &&
		    packages_same_repo(packages_env_repo_locked(e), repo))
			json_array_append_new(arr, json_pack("{s:I,s:s,s:s}",
			    "id", (json_int_t)e->id, "name", env_name(e),
			    "state", env_state_name(e->state)));
	pthread_mutex_unlock(&node->lock);
	return arr;
}

/* A package as the agent API shows it: meta.json + environments. */
static json_t *
packages_json(const char *repo, json_t *meta)
{
	json_t *out = json_deep_copy(meta);

	json_object_set_new(out, "environments",
	    packages_environments(repo, jsonx_str(meta, "id")));
	return out;
}

/* GET /agent/v1/packages, /agent/v1/apps/{app}/packages (an app's
 * repository that was never written to is empty) */
void
agent_packages_list(struct areq *r)
{
	json_t *arr = json_array(), *meta;
	struct dirent *de;
	const char *repo;
	char *dir;
	DIR *d;

	if (packages_req_repo(r, &repo) == -1) {
		json_decref(arr);
		return;
	}
	dir = packages_dir(repo);
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			if ((meta = packages_meta(repo, de->d_name)) == NULL)
				continue;
			json_array_append_new(arr, packages_json(repo, meta));
			json_decref(meta);
		}
		closedir(d);
	}
	free(dir);
	areply(r, 200, json_pack("{s:o}", "packages", arr));
}

/* GET …/packages/{package} */
void
agent_packages_show(struct areq *r)
{
	const char *id = http_param(r->http, "package"), *repo;
	json_t *meta;

	if (packages_req_repo(r, &repo) == -1)
		return;
	if ((meta = packages_meta(repo, id)) == NULL) {
		areply_error(r, 404, "PACKAGE_NOT_FOUND", "no package '%s' on "
		    "this node", id);
		return;
	}
	areply(r, 200, packages_json(repo, meta));
	json_decref(meta);
}

/* GET …/packages/{package}/file (signed URL; Range works). A complete
 * download from the node's repository is reported to the portal
 * (downloads.c: what offboarding counts); an app's repository lives on
 * the sandbox node, which is never offboarded with it. */
void
agent_packages_download(struct areq *r)
{
	const char *id = http_param(r->http, "package"), *repo;
	json_t *meta;
	struct stat st;
	char *path;
	int fd;

	if (packages_req_repo(r, &repo) == -1)
		return;
	if ((meta = packages_meta(repo, id)) == NULL) {
		areply_error(r, 404, "PACKAGE_NOT_FOUND", "no package '%s' on "
		    "this node", id);
		return;
	}
	path = packages_file(repo, id);
	fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	free(path);
	if (fd == -1 || fstat(fd, &st) == -1) {
		if (fd != -1)
			close(fd);
		json_decref(meta);
		areply_error(r, 404, "PACKAGE_NOT_FOUND", "package '%s' has "
		    "no file", id);
		return;
	}
	if (repo == NULL)
		downloads_serve(r, fd, (uint64_t)st.st_size,
		    "application/octet-stream", jsonx_str(meta, "file_name"),
		    "package", id);
	else
		http_reply_file(r->http, fd, (uint64_t)st.st_size,
		    "application/octet-stream", jsonx_str(meta, "file_name"));
	http_add_header(r->http, "X-Nubo-Sha256", jsonx_str(meta, "sha256"));
	json_decref(meta);
}

/* One upload in progress (areq ctx). */
struct upload {
	int				 fd;
	char				*tmp;
	long long			 size;
	long long			 synced;	/* handed to writeback */
	EVP_MD_CTX			*sha;	/* OpenSSL: SHA-NI where the CPU has it */
};

static void
upload_free(void *arg)
{
	struct upload *u = arg;

	if (u->fd != -1)
		close(u->fd);
	if (u->sha != NULL)
		EVP_MD_CTX_free(u->sha);
	if (u->tmp != NULL)
		unlink(u->tmp);
	free(u->tmp);
	free(u);
}

/* Body sink of POST …/packages: stream to a temp file. */
int
agent_packages_upload_sink(struct http_req *h, const char *data, size_t len)
{
	struct areq *r = h->ctx;
	struct upload *u = r->ctx;
	const char *cl, *repo;
	long long clen;

	if (u == NULL) {
		char *dir, *root;

		if (packages_req_repo(r, &repo) == -1)
			return -1;
		cl = http_header(h, "Content-Length");
		if (cl != NULL && util_parse_int(cl, 0, 1LL << 62, &clen) == 0 &&
		    clen > NUBO_PACKAGE_MAX) {
			areply_error(r, 413, "PACKAGE_TOO_LARGE", "package is "
			    "larger than %lld bytes", (long long)NUBO_PACKAGE_MAX);
			return -1;
		}
		u = xcalloc(1, sizeof *u);
		u->fd = -1;
		r->ctx = u;
		r->ctx_free = upload_free;
		root = packages_dir(repo);
		dir = xasprintf("%s/.uploads", root);
		free(root);
		util_mkdir_p(dir, 0700);
		u->tmp = xasprintf("%s/up-XXXXXX", dir);
		free(dir);
		if ((u->fd = mkostemp(u->tmp, O_CLOEXEC)) == -1) {
			free(u->tmp);
			u->tmp = NULL;
			areply_error(r, 500, "STORAGE_ERROR", "cannot store the "
			    "upload: %s", strerror(errno));
			return -1;
		}
		u->sha = EVP_MD_CTX_new();
		if (u->sha == NULL || EVP_DigestInit_ex(u->sha, EVP_sha256(),
		    NULL) != 1) {
			areply_error(r, 500, "INTERNAL", "sha256 unavailable");
			return -1;
		}
	}
	if (u->fd == -1)
		return -1;
	u->size += (long long)len;
	if (u->size > NUBO_PACKAGE_MAX) {
		close(u->fd);
		u->fd = -1;
		areply_error(r, 413, "PACKAGE_TOO_LARGE", "package is larger "
		    "than %lld bytes", (long long)NUBO_PACKAGE_MAX);
		return -1;
	}
	EVP_DigestUpdate(u->sha, data, len);
	while (len > 0) {
		ssize_t n = write(u->fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = errno;

			close(u->fd);
			u->fd = -1;
			if (err == ENOSPC || err == EDQUOT)
				areply_error(r, 507, "INSUFFICIENT_STORAGE", "the "
				    "node is out of disk space for this upload");
			else
				areply_error(r, 500, "STORAGE_ERROR", "cannot "
				    "store the upload: %s", strerror(err));
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	/* start writeback as it arrives, so the fsync before publishing
	 * does not wait for the whole package to reach the disk */
	if (u->size - u->synced >= 8 * 1024 * 1024) {
		sync_file_range(u->fd, u->synced, u->size - u->synced,
		    SYNC_FILE_RANGE_WRITE);
		u->synced = u->size;
	}
	return 0;
}

/* A safe file name for downloads: the uploader's, else id + extension. */
static char *
packages_file_name(const char *given, const char *id, const char *tmp)
{
	unsigned char magic[4] = { 0 };
	const char *ext = ".tar";
	size_t i, n = given ? strlen(given) : 0;
	int fd, ok = n > 0 && n <= NUBO_NAME_MAX && given[0] != '.';

	for (i = 0; ok && i < n; i++) {
		unsigned char c = (unsigned char)given[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("._+-", c)))
			ok = 0;
	}
	if (ok)
		return xstrdup(given);
	if ((fd = open(tmp, O_RDONLY | O_CLOEXEC)) != -1) {
		if (read(fd, magic, sizeof magic) == (ssize_t)sizeof magic) {
			if (magic[0] == 0x1f && magic[1] == 0x8b)
				ext = ".tar.gz";
			else if (magic[0] == 'P' && magic[1] == 'K')
				ext = ".zip";
		}
		close(fd);
	}
	return xasprintf("%s%s", id, ext);
}

/* Where package id of repo is deployed ("Test (running), …"), or NULL. */
static char *
packages_in_use(const char *repo, const char *id)
{
	struct env *e;
	char *out = NULL, *t;

	pthread_mutex_lock(&node->lock);
	for (e = node->envs; e != NULL; e = e->next) {
		if (e->package == NULL || strcmp(e->package, id) != 0 ||
		    !packages_same_repo(packages_env_repo_locked(e), repo))
			continue;
		t = xasprintf("%s%s%s (%s)", out ? out : "", out ? ", " : "",
		    env_name(e), env_state_name(e->state));
		free(out);
		out = t;
	}
	pthread_mutex_unlock(&node->lock);
	return out;
}

/* POST …/packages (signed URL; the body is the archive) */
void
agent_packages_upload(struct areq *r)
{
	struct upload *u = r->ctx;
	const char *repo;
	struct package_manifest m;
	unsigned char digest[EVP_MAX_MD_SIZE];
	char sha[65], when[32];
	unsigned dlen = 0;
	char *cause = NULL, *id = NULL, *dir = NULL, *newdir = NULL;
	char *dest = NULL, *p = NULL, *fname = NULL, *metatext = NULL;
	json_t *meta = NULL, *old;
	int fd;

	package_manifest_init(&m);
	if (packages_req_repo(r, &repo) == -1)
		return;
	if (u == NULL || u->size == 0) {
		areply_error(r, 400, "PACKAGE_INVALID", "empty upload: send the "
		    "package archive as the request body");
		return;
	}
	if (fsync(u->fd) == -1 || close(u->fd) == -1) {
		u->fd = -1;
		areply_error(r, 500, "STORAGE_ERROR", "cannot store the upload: "
		    "%s", strerror(errno));
		return;
	}
	u->fd = -1;
	EVP_DigestFinal_ex(u->sha, digest, &dlen);
	util_hex(digest, 32, sha);
	if (package_validate(u->tmp, &m, &cause) == -1) {
		areply_error(r, 422, "PACKAGE_INVALID", "package rejected: %s",
		    cause);
		goto out;
	}
	id = xasprintf("%s-%s", m.name, m.version);
	if (!packages_valid_id(id)) {
		areply_error(r, 422, "PACKAGE_INVALID", "package rejected: name "
		    "and version together are longer than %d characters",
		    NUBO_NAME_MAX - 1);
		goto out;
	}
	dir = packages_dir(repo);
	dest = xasprintf("%s/%s", dir, id);
	pthread_mutex_lock(&packages_lock);
	if ((old = packages_meta(repo, id)) != NULL) {
		pthread_mutex_unlock(&packages_lock);
		if (strcmp(jsonx_str(old, "sha256") ? jsonx_str(old, "sha256") :
		    "", sha) == 0) {
			/* the same bytes again: nothing to do (resumable) */
			areply(r, 200, packages_json(repo, old));
		} else {
			areply_error(r, 409, "PACKAGE_EXISTS", "package '%s' "
			    "already exists with other content; delete it "
			    "first or raise the version in nubo.json", id);
		}
		json_decref(old);
		goto out;
	}
	newdir = xasprintf("%s/.new-XXXXXX", dir);
	if (mkdtemp(newdir) == NULL) {
		pthread_mutex_unlock(&packages_lock);
		areply_error(r, 500, "STORAGE_ERROR", "cannot store the package: "
		    "%s", strerror(errno));
		free(newdir);
		newdir = NULL;
		goto out;
	}
	chmod(newdir, 0755);
	fname = packages_file_name(http_query(r->http, "filename"), id, u->tmp);
	util_time_iso(util_now(), when, sizeof when);
	meta = json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:I,s:s,s:o}",
	    "id", id, "name", m.name, "version", m.version,
	    "size", (json_int_t)u->size, "sha256", sha, "file_name", fname,
	    "uploaded_by", (json_int_t)r->user, "uploaded_at", when,
	    "manifest", package_manifest_json(&m));
	metatext = json_dumps(meta, JSON_COMPACT);
	p = xasprintf("%s/package", newdir);
	if (util_rename_sync(u->tmp, p) == -1) {
		pthread_mutex_unlock(&packages_lock);
		areply_error(r, 500, "STORAGE_ERROR", "cannot store the package: "
		    "%s", strerror(errno));
		goto out;
	}
	free(u->tmp);
	u->tmp = NULL;
	chmod(p, 0644);
	free(p);
	p = xasprintf("%s/meta.json", newdir);
	if (util_write_file(p, metatext, strlen(metatext), 0644) == -1 ||
	    util_rename_sync(newdir, dest) == -1) {
		pthread_mutex_unlock(&packages_lock);
		areply_error(r, 500, "STORAGE_ERROR", "cannot store the package: "
		    "%s", strerror(errno));
		goto out;
	}
	free(newdir);
	newdir = NULL;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		fsync(fd);
		close(fd);
	}
	pthread_mutex_unlock(&packages_lock);
	log_info("packages: %s uploaded to %s%s (%lld bytes, sha256 %s, user "
	    "%lld)", id, repo ? "the repository of app " : "the node's "
	    "repository", repo ? repo : "", u->size, sha, r->user);
	areply(r, 201, packages_json(repo, meta));
out:
	if (newdir != NULL) {
		util_rm_rf(newdir);
		free(newdir);
	}
	package_manifest_release(&m);
	json_decref(meta);
	free(metatext);
	free(cause);
	free(id);
	free(dir);
	free(dest);
	free(p);
	free(fname);
}

/* DELETE …/packages/{package}: refused while deployed. */
void
agent_packages_delete(struct areq *r)
{
	const char *id = http_param(r->http, "package"), *repo;
	char *dir = NULL, *gone = NULL, *src = NULL, *users;
	json_t *meta;

	if (packages_req_repo(r, &repo) == -1)
		return;
	pthread_mutex_lock(&packages_lock);
	if ((meta = packages_meta(repo, id)) == NULL) {
		pthread_mutex_unlock(&packages_lock);
		areply_error(r, 404, "PACKAGE_NOT_FOUND", "no package '%s' on "
		    "this node", id);
		return;
	}
	json_decref(meta);
	if ((users = packages_in_use(repo, id)) != NULL) {
		pthread_mutex_unlock(&packages_lock);
		areply_error(r, 409, "PACKAGE_IN_USE", "cannot delete package "
		    "'%s': it is deployed to %s", id, users);
		free(users);
		return;
	}
	dir = packages_dir(repo);
	src = xasprintf("%s/%s", dir, id);
	gone = xasprintf("%s/.del-XXXXXX", dir);
	if (mkdtemp(gone) == NULL || rename(src, gone) == -1) {
		pthread_mutex_unlock(&packages_lock);
		areply_error(r, 500, "STORAGE_ERROR", "cannot delete package "
		    "'%s': %s", id, strerror(errno));
		goto out;
	}
	pthread_mutex_unlock(&packages_lock);
	util_rm_rf(gone);
	log_info("packages: %s deleted", id);
	areply(r, 200, json_pack("{s:s,s:b}", "id", id, "deleted", 1));
out:
	free(dir);
	free(src);
	free(gone);
}

/* A copy of the repository environment e deploys from in *repo (NULL:
 * the node's); -1 when its spec names one that cannot be. */
static int
packages_env_repo(struct env *e, char **repo)
{
	pthread_mutex_lock(&node->lock);
	*repo = packages_env_repo_locked(e) ?
	    xstrdup(packages_env_repo_locked(e)) : NULL;
	pthread_mutex_unlock(&node->lock);
	if (*repo == NULL || packages_valid_repo(*repo))
		return 0;
	free(*repo);
	*repo = NULL;
	return -1;
}

char *
packages_env_dir(struct env *e)
{
	char *repo, *dir;

	if (packages_env_repo(e, &repo) == -1)
		return NULL;
	dir = packages_dir(repo);
	free(repo);
	return dir;
}

char *
packages_env_file(struct env *e, const char *id)
{
	char *repo, *p;

	if (packages_env_repo(e, &repo) == -1)
		return NULL;
	p = packages_file(repo, id);
	free(repo);
	return p;
}

void
packages_env_deleted(struct env *e)
{
	const char *repo;
	struct env *o;
	char *dir = NULL;

	pthread_mutex_lock(&node->lock);
	repo = packages_env_repo_locked(e);
	for (o = node->envs; repo != NULL && o != NULL; o = o->next)
		if (o != e && packages_same_repo(packages_env_repo_locked(o),
		    repo))
			repo = NULL;	/* another environment still uses it */
	if (repo != NULL && packages_valid_repo(repo))
		dir = packages_dir(repo);
	pthread_mutex_unlock(&node->lock);
	if (dir == NULL)
		return;
	pthread_mutex_lock(&packages_lock);
	if (util_rm_rf(dir) == 0)
		log_info("packages: removed %s with the last environment that "
		    "used it", dir);
	else
		log_warn("packages: cannot remove %s: %s", dir,
		    strerror(errno));
	pthread_mutex_unlock(&packages_lock);
	free(dir);
}
