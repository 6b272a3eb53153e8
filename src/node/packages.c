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
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
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

/* Serialises publish and delete (the in-use check and the rename), and
 * the quota's reservations and claims of upload URLs. */
static pthread_mutex_t packages_lock = PTHREAD_MUTEX_INITIALIZER;

static void packages_quota(const char *repo, long long *used,
    long long *limit);

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

/* Call fn(folder, arg) for the repository of every app on the node. */
static void
packages_each_app_dir(void (*fn)(const char *, void *), void *arg)
{
	char *apps = xasprintf("%s/app-packages", node->data_dir), *p;
	struct dirent *de;
	DIR *d;

	if ((d = opendir(apps)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (!packages_valid_repo(de->d_name))
				continue;
			p = xasprintf("%s/%s", apps, de->d_name);
			fn(p, arg);
			free(p);
		}
		closedir(d);
	}
	free(apps);
}

/* Remove what a crash left in one repository folder. */
static void
packages_clean(const char *dir, void *unused)
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
	char *dir = packages_dir(NULL);

	util_mkdir_p(dir, 0755);
	packages_clean(dir, NULL);
	packages_each_app_dir(packages_clean, NULL);
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
 * repository that was never written to is empty), with the repository's
 * quota: bytes used (every repository of the node for the node's own)
 * and the limit */
void
agent_packages_list(struct areq *r)
{
	json_t *arr = json_array(), *meta;
	long long used, limit;
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
	packages_quota(repo, &used, &limit);
	areply(r, 200, json_pack("{s:o,s:{s:I,s:I}}", "packages", arr,
	    "quota", "used", (json_int_t)used, "limit", (json_int_t)limit));
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

/* One upload in progress (areq ctx). While it runs it holds its declared
 * size against the quota (a reservation in packages_uploads).
 *
 * The receiving thread only writes the body to the temp file. A follower
 * thread reads the file behind it (from the page cache) and hashes it,
 * and checks a tar.gz package on the way, so that when the last byte has
 * arrived, the package is checked too: the receiving thread never waits
 * for a hash or a check between two reads of the socket. */
struct upload {
	int				 fd;
	char				*tmp;
	char				*repo;		/* NULL: the node's */
	long long			 declared;	/* signed into the URL */
	long long			 size;
	int				 reserved;
	struct upload			*next;		/* packages_uploads */

	/* the follower and the syncer; under mu: written, stop, and the
	 * written counts that wake them (0: not waiting), so that the
	 * receiving thread wakes each once per chunk or flush, not per read */
	pthread_t			 follower;
	int				 following;
	pthread_mutex_t			 mu;
	pthread_cond_t			 cv;		/* the follower's */
	pthread_cond_t			 scv;		/* the syncer's */
	long long			 written;
	long long			 follow_at;
	long long			 sync_at;
	int				 stop;
	int				 rfd;	/* the temp file, for reading */
	long long			 readoff;
	pthread_t			 syncer;
	int				 syncing;
	EVP_MD_CTX			*sha;	/* OpenSSL: SHA-NI where the CPU has it */
	int				 checked;	/* a tar.gz, checked as read */
	int				 check_rc;
	char				*check_cause;
	struct package_manifest		 check_m;
	int				 read_err;	/* errno, or 0 */
};

/* The uploads holding a reservation; under packages_lock. */
static struct upload *packages_uploads;

/* Give back u's reservation (it was published, or it failed). Caller
 * holds packages_lock. */
static void
upload_unreserve_locked(struct upload *u)
{
	struct upload **p;

	if (u->reserved)
		for (p = &packages_uploads; *p != NULL; p = &(*p)->next)
			if (*p == u) {
				*p = u->next;
				break;
			}
	u->reserved = 0;
}

static void
upload_unreserve(struct upload *u)
{
	pthread_mutex_lock(&packages_lock);
	upload_unreserve_locked(u);
	pthread_mutex_unlock(&packages_lock);
}

/* package_reader of the follower: the next bytes of the temp file once
 * the receiving thread has written them, hashed on the way. */
static ssize_t
upload_follow_read(void *arg, void *buf, size_t len)
{
	struct upload *u = arg;
	long long have;
	ssize_t n;
	int stop;

	pthread_mutex_lock(&u->mu);
	while (u->written == u->readoff && !u->stop &&
	    u->readoff < u->declared) {
		u->follow_at = MIN(u->readoff + NUBO_IO_CHUNK, u->declared);
		pthread_cond_wait(&u->cv, &u->mu);
	}
	u->follow_at = 0;
	have = u->written - u->readoff;
	stop = u->stop;
	pthread_mutex_unlock(&u->mu);
	if (stop) {
		errno = ECANCELED;
		return -1;
	}
	if (have == 0)
		return 0;
	if ((long long)len > have)
		len = (size_t)have;
	n = pread(u->rfd, buf, len, u->readoff);
	if (n <= 0) {
		if (n == 0)
			errno = EIO;	/* the temp file is shorter than written */
		return -1;
	}
	EVP_DigestUpdate(u->sha, buf, (size_t)n);
	u->readoff += n;
	return n;
}

/* The syncer: brings the disk along while the body arrives (writeback
 * and the device's cache flush), so that the fsync before publishing has
 * only the last megabytes left. That fsync reports any error. */
static void *
upload_sync(void *arg)
{
	struct upload *u = arg;
	long long upto, flushed = 0;
	int stop;

	for (;;) {
		pthread_mutex_lock(&u->mu);
		while (!u->stop && u->written < u->declared &&
		    u->written - flushed < NUBO_UPLOAD_FLUSH_EVERY) {
			u->sync_at = MIN(flushed + NUBO_UPLOAD_FLUSH_EVERY,
			    u->declared);
			pthread_cond_wait(&u->scv, &u->mu);
		}
		u->sync_at = 0;
		upto = u->written;
		stop = u->stop;
		pthread_mutex_unlock(&u->mu);
		if (stop || upto == u->declared)
			return NULL;
		(void)fdatasync(u->rfd);
		flushed = upto;
	}
}

static void *
upload_follow(void *arg)
{
	struct upload *u = arg;
	char *buf;
	ssize_t n;

	if (u->checked) {
		u->check_rc = package_validate_gzip_stream(upload_follow_read,
		    u, u->declared, &u->check_m, &u->check_cause);
		if (u->check_rc == -1)
			return NULL;	/* rejected: the hash is not needed */
	}
	/* the rest (all of it when there is no check) is only hashed */
	buf = xmalloc(NUBO_IO_CHUNK);
	while ((n = upload_follow_read(u, buf, NUBO_IO_CHUNK)) > 0)
		;
	if (n < 0)
		u->read_err = errno;
	free(buf);
	return NULL;
}

/* Start the follower at the first bytes of the body (first: at least
 * one byte, to tell a tar.gz). 0, or -1 with errno. */
static int
upload_follow_start(struct upload *u, const char *first, size_t len)
{
	int err;

	if ((u->rfd = open(u->tmp, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	u->sha = EVP_MD_CTX_new();
	if (u->sha == NULL || EVP_DigestInit_ex(u->sha, EVP_sha256(),
	    NULL) != 1) {
		errno = ENOMEM;
		return -1;
	}
	/* a one-byte first chunk of a gzip stream, and a package too short
	 * to be one (4 bytes), are checked after the end, as zip and plain
	 * tar always are (the check reads them by offset) */
	u->checked = u->declared >= 4 && len >= 2 &&
	    (unsigned char)first[0] == 0x1f && (unsigned char)first[1] == 0x8b;
	pthread_mutex_init(&u->mu, NULL);
	pthread_cond_init(&u->cv, NULL);
	pthread_cond_init(&u->scv, NULL);
	if ((err = pthread_create(&u->follower, NULL, upload_follow, u))
	    != 0) {
		pthread_mutex_destroy(&u->mu);
		pthread_cond_destroy(&u->cv);
		pthread_cond_destroy(&u->scv);
		errno = err;
		return -1;
	}
	u->following = 1;
	/* without it, the fsync at the end does all the flushing */
	u->syncing = pthread_create(&u->syncer, NULL, upload_sync, u) == 0;
	return 0;
}

/* n more bytes are in the temp file. */
static void
upload_follow_wrote(struct upload *u, long long n)
{
	pthread_mutex_lock(&u->mu);
	u->written += n;
	if (u->follow_at != 0 && u->written >= u->follow_at)
		pthread_cond_signal(&u->cv);
	if (u->sync_at != 0 && u->written >= u->sync_at)
		pthread_cond_signal(&u->scv);
	pthread_mutex_unlock(&u->mu);
}

/* Wait for the follower; with stop, make it give up first (the upload
 * ended early). */
static void
upload_follow_join(struct upload *u, int stop)
{
	if (!u->following)
		return;
	if (stop) {
		pthread_mutex_lock(&u->mu);
		u->stop = 1;
		pthread_cond_signal(&u->cv);
		pthread_cond_signal(&u->scv);
		pthread_mutex_unlock(&u->mu);
	}
	pthread_join(u->follower, NULL);
	if (u->syncing)
		pthread_join(u->syncer, NULL);
	pthread_mutex_destroy(&u->mu);
	pthread_cond_destroy(&u->cv);
	pthread_cond_destroy(&u->scv);
	u->following = 0;
}

static void
upload_free(void *arg)
{
	struct upload *u = arg;

	upload_follow_join(u, 1);
	upload_unreserve(u);
	if (u->fd != -1)
		close(u->fd);
	if (u->rfd != -1)
		close(u->rfd);
	if (u->sha != NULL)
		EVP_MD_CTX_free(u->sha);
	package_manifest_release(&u->check_m);
	free(u->check_cause);
	if (u->tmp != NULL)
		unlink(u->tmp);
	free(u->tmp);
	free(u->repo);
	free(u);
}

int
packages_parse_size(const char *s, long long *out)
{
	char num[32];
	size_t n = s ? strlen(s) : 0;
	long long mult = 1;

	if (n == 0 || n >= sizeof num)
		return -1;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 'K': mult = 1024LL; break;
	case 'M': mult = 1024LL * 1024; break;
	case 'G': mult = 1024LL * 1024 * 1024; break;
	default: break;
	}
	if (mult != 1)
		num[n - 1] = '\0';
	if (util_parse_int(num, 0, (1LL << 50) / mult, out) == -1)
		return -1;
	*out *= mult;
	return 0;
}

/* Add to *(long long *)sum the bytes the packages in one repository
 * folder hold (their sizes as meta.json records them). */
static void
packages_add_dir_bytes(const char *dir, void *sum)
{
	struct dirent *de;
	char *path, *data;
	json_t *meta;
	size_t len;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!packages_valid_id(de->d_name))
			continue;
		path = xasprintf("%s/%s/meta.json", dir, de->d_name);
		data = util_read_file(path, NUBO_MANIFEST_MAX * 4, &len);
		meta = data ? json_loadb(data, len, 0, NULL) : NULL;
		*(long long *)sum += jsonx_int(meta, "size", 0);
		json_decref(meta);
		free(data);
		free(path);
	}
	closedir(d);
}

/* Bytes held against a quota: the packages of repo and the uploads
 * running into it (all: of every repository of the node). Caller holds
 * packages_lock. */
static long long
packages_used(const char *repo, int all)
{
	struct upload *u;
	long long sum = 0;
	char *dir;

	dir = packages_dir(all ? NULL : repo);
	packages_add_dir_bytes(dir, &sum);
	free(dir);
	if (all)
		packages_each_app_dir(packages_add_dir_bytes, &sum);
	for (u = packages_uploads; u != NULL; u = u->next)
		if (all || packages_same_repo(u->repo, repo))
			sum += u->declared;
	return sum;
}

/* The quota of repo: the node's for its own repository (which counts
 * every repository of the node), an app's for an app's. */
static void
packages_quota(const char *repo, long long *used, long long *limit)
{
	pthread_mutex_lock(&packages_lock);
	*used = packages_used(repo, repo == NULL);
	pthread_mutex_unlock(&packages_lock);
	*limit = repo == NULL ? node->package_quota : node->app_package_quota;
}

/* {upload} of an upload URL: "<declared size>-<nonce>" (32 hex). */
static int
packages_parse_upload(const char *s, long long *size, char nonce[33])
{
	const char *dash = s ? strchr(s, '-') : NULL;
	char num[24];
	size_t i;

	if (dash == NULL || (size_t)(dash - s) >= sizeof num ||
	    strlen(dash + 1) != 32)
		return -1;
	memcpy(num, s, (size_t)(dash - s));
	num[dash - s] = '\0';
	if (util_parse_int(num, 1, NUBO_PACKAGE_MAX, size) == -1)
		return -1;
	for (i = 0; i < 32; i++)
		if (!strchr("0123456789abcdef", dash[1 + i]))
			return -1;
	memcpy(nonce, dash + 1, 33);
	return 0;
}

/* Use up a single-use upload URL (record 0: only look whether it was):
 * its nonce is recorded in DIR/upload-claims as "<expires>-<nonce>" until
 * the URL expires, so neither a second request nor a node restart makes
 * it usable again. 0, 1 when it was used already, -1 (cause set) when it
 * cannot be recorded. Expired records are removed on the way. Caller
 * holds packages_lock. */
static int
packages_claim(const char *nonce, long long expires, int record,
    char **cause)
{
	char *dir = xasprintf("%s/upload-claims", node->data_dir), *p;
	long long now = (long long)util_now(), when;
	struct dirent *de;
	int fd, rc = -1;
	DIR *d;

	util_mkdir_p(dir, 0700);
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.' ||
			    sscanf(de->d_name, "%lld-", &when) != 1 ||
			    when >= now)
				continue;
			p = xasprintf("%s/%s", dir, de->d_name);
			unlink(p);
			free(p);
		}
		closedir(d);
	}
	p = xasprintf("%s/%lld-%s", dir, expires, nonce);
	if (!record) {
		rc = access(p, F_OK) == 0;
		free(p);
		free(dir);
		return rc;
	}
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1 && errno == EEXIST) {
		rc = 1;
	} else if (fd == -1) {
		*cause = xasprintf("cannot record the upload: %s",
		    strerror(errno));
	} else {
		close(fd);
		if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
			fsync(fd);
			close(fd);
		}
		rc = 0;
	}
	free(p);
	free(dir);
	return rc;
}

/* The checks before an upload's first byte is kept: the body has the
 * size signed into the URL, the repository has room for it, and the URL
 * was never used. Then u holds its reservation. 0, or -1 after
 * replying. */
static int
upload_admit(struct areq *r, struct upload *u)
{
	const char *cl = http_header(r->http, "Content-Length");
	long long clen, used, limit, expires;
	char nonce[33], *cause = NULL;
	int all = u->repo == NULL, claimed;

	if (packages_parse_upload(http_param(r->http, "upload"), &u->declared,
	    nonce) == -1) {
		areply_error(r, 404, "UPLOAD_NOT_FOUND", "not an upload URL of "
		    "this node");
		return -1;
	}
	if (cl == NULL || util_parse_int(cl, 0, 1LL << 62, &clen) == -1) {
		areply_error(r, 411, "LENGTH_REQUIRED", "send the package with "
		    "Content-Length: %lld (the size declared for this upload "
		    "URL)", u->declared);
		return -1;
	}
	if (clen != u->declared) {
		areply_error(r, 400, "PACKAGE_SIZE_MISMATCH", "this upload URL "
		    "is for %lld bytes, not %lld: ask for a URL with the "
		    "package's size", u->declared, clen);
		return -1;
	}
	if (util_parse_int(http_query(r->http, "expires"), 0, 1LL << 40,
	    &expires) == -1)
		expires = (long long)util_now() + 24 * 3600;
	pthread_mutex_lock(&packages_lock);
	if (packages_claim(nonce, expires, 0, &cause) == 1) {
		pthread_mutex_unlock(&packages_lock);
		areply_error(r, 410, "UPLOAD_URL_USED", "this upload URL was "
		    "used already; ask for a new one");
		return -1;
	}
	for (;;) {
		used = packages_used(u->repo, all);
		limit = all ? node->package_quota : node->app_package_quota;
		if (used + u->declared > limit) {
			pthread_mutex_unlock(&packages_lock);
			areply_error(r, 507, "PACKAGE_QUOTA_EXCEEDED", "%s holds "
			    "%lld of its %lld bytes: no room for %lld more; "
			    "delete packages first", all ? "this node's package "
			    "repository" : "the app's package repository", used,
			    limit, u->declared);
			return -1;
		}
		if (all)
			break;
		all = 1;	/* an app's upload fits the node's quota too */
	}
	if ((claimed = packages_claim(nonce, expires, 1, &cause)) != 0) {
		pthread_mutex_unlock(&packages_lock);
		areply_error(r, 500, "STORAGE_ERROR", "%s", claimed == 1 ?
		    "the upload URL was used meanwhile" : cause);
		free(cause);
		return -1;
	}
	u->reserved = 1;
	u->next = packages_uploads;
	packages_uploads = u;
	pthread_mutex_unlock(&packages_lock);
	return 0;
}

/* Body sink of POST …/packages/uploads/{upload}: stream to a temp file,
 * never more than the size signed into the URL. */
int
agent_packages_upload_sink(struct http_req *h, const char *data, size_t len)
{
	struct areq *r = h->ctx;
	struct upload *u = r->ctx;
	const char *repo;
	long long n0;

	if (u == NULL) {
		char *dir, *root;

		if (packages_req_repo(r, &repo) == -1)
			return -1;
		u = xcalloc(1, sizeof *u);
		u->fd = -1;
		u->rfd = -1;
		package_manifest_init(&u->check_m);
		u->repo = repo ? xstrdup(repo) : NULL;
		r->ctx = u;
		r->ctx_free = upload_free;
		if (upload_admit(r, u) == -1)
			return -1;
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
	}
	if (u->fd == -1)
		return -1;
	if (len == 0)
		return 0;
	if (!u->following && upload_follow_start(u, data, len) == -1) {
		areply_error(r, 500, "INTERNAL", "cannot check the upload: %s",
		    strerror(errno));
		close(u->fd);
		u->fd = -1;
		return -1;
	}
	u->size += (long long)len;
	if (u->size > u->declared) {
		close(u->fd);
		u->fd = -1;
		areply_error(r, 400, "PACKAGE_SIZE_MISMATCH", "the body is "
		    "longer than the %lld bytes of this upload URL", u->declared);
		return -1;
	}
	n0 = (long long)len;
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
	upload_follow_wrote(u, n0);
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

/* POST …/packages/uploads/{upload} (signed URL, single use; the body is
 * the archive, exactly as long as the URL says) */
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
	long long rev = -1;
	int fd;

	package_manifest_init(&m);
	if (packages_req_repo(r, &repo) == -1)
		return;
	if (u == NULL || u->size == 0) {
		areply_error(r, 400, "PACKAGE_INVALID", "empty upload: send the "
		    "package archive as the request body");
		return;
	}
	if (u->size != u->declared) {
		areply_error(r, 400, "PACKAGE_SIZE_MISMATCH", "the body has %lld "
		    "bytes, not the %lld of this upload URL", u->size,
		    u->declared);
		return;
	}
	if (fsync(u->fd) == -1 || close(u->fd) == -1) {
		u->fd = -1;
		areply_error(r, 500, "STORAGE_ERROR", "cannot store the upload: "
		    "%s", strerror(errno));
		return;
	}
	u->fd = -1;
	/* the labels of the Mendix Build API (docs/MENDIX-API.md) */
	if (package_label_check(http_query(r->http, "branch"),
	    http_query(r->http, "revision"), &rev, &cause) == -1) {
		areply_error(r, 400, "PACKAGE_LABEL_INVALID", "%s", cause);
		goto out;
	}
	/* the follower has read (nearly) all of it by now */
	upload_follow_join(u, 0);
	if (u->checked && u->check_rc == -1) {
		areply_error(r, 422, "PACKAGE_INVALID", "package rejected: %s",
		    u->check_cause);
		goto out;
	}
	if (u->read_err != 0) {
		areply_error(r, 500, "STORAGE_ERROR", "cannot read the upload "
		    "back from %s: %s", u->tmp, strerror(u->read_err));
		goto out;
	}
	EVP_DigestFinal_ex(u->sha, digest, &dlen);
	util_hex(digest, 32, sha);
	if (u->checked) {
		m = u->check_m;
		package_manifest_init(&u->check_m);
	} else if (package_validate(u->tmp, &m, &cause) == -1) {
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
	if (http_query(r->http, "branch"))
		json_object_set_new(meta, "branch", json_string(http_query(
		    r->http, "branch")));
	if (rev >= 0)
		json_object_set_new(meta, "revision", json_integer(rev));
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
	upload_unreserve_locked(u);	/* counted as a package from now */
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
