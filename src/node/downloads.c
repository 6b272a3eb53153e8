/* Downloads that count for offboarding (seed §3.3: "make sure you have
 * downloaded the latest backup and deployment package"). A full snapshot
 * archive or a package file counts as downloaded only when its bytes, from
 * the first to the last, were written to a user's connection:
 *   - the download handlers serve through a counted reply (httpd.c), so
 *     when a request is over the node knows the range asked, how much of
 *     it the connection took, and whether it completed OK;
 *   - per (file, user) the node keeps the bytes served contiguous from 0:
 *     a request that starts at or before that point extends it by what it
 *     delivered (all of its range when it completed OK, else what was
 *     written before it broke). Ranges beyond the point are not
 *     remembered; a resumed download (CLI --continue, curl -C -) always
 *     starts where its file ends, so it extends the point;
 *   - when the point reaches the file's size the download is complete: a
 *     report is written to DIR/downloads/<kind>-<id>.json and a thread
 *     posts it to the portal (POST /agent/downloads), deleting it only
 *     once the portal took it, so a portal that is down gets it later.
 * Only signed URLs carrying a user count: the portal signs nubo's own
 * node-to-node fetches (a cross-node restore) with user 0. Partial
 * progress lives in memory (NUBO_DOWNLOADS_TRACKED entries, forgotten
 * after NUBO_DOWNLOAD_RESUME_SECONDS): a download resumed across a node
 * restart must be fetched again from the start to count. */
#include "node.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent-routes.h"
#include "jsonx.h"
#include "log.h"
#include "testhook.h"
#include "util.h"
#include "xmalloc.h"

#define DOWNLOADS_RETRY_SECONDS	2	/* between attempts to report */
#define DOWNLOADS_REPORT_MAX	4096	/* bytes of one report file */

/* Bytes of a file served contiguous from 0 to one user. */
static struct downloads_track {
	char		 kind[16];	/* snapshot | package; "" = free */
	char		 id[NUBO_NAME_MAX + 1];
	long long	 user;
	uint64_t	 total;
	uint64_t	 have;
	time_t		 seen;
} downloads_tracks[NUBO_DOWNLOADS_TRACKED];

static pthread_mutex_t downloads_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t downloads_cond = PTHREAD_COND_INITIALIZER;
static int downloads_kicked;

/* What one download request serves (areq ctx). */
struct downloads_req {
	char	*kind;
	char	*id;
};

static void
downloads_req_free(void *p)
{
	struct downloads_req *d = p;

	free(d->kind);
	free(d->id);
	free(d);
}

static char *
downloads_dir(void)
{
	return xasprintf("%s/downloads", node->data_dir);
}

/* The entry of (kind, id, user, total); a new one (reusing a stale or the
 * oldest slot) when create; NULL otherwise. Caller holds the lock. */
static struct downloads_track *
downloads_track(const char *kind, const char *id, long long user,
    uint64_t total, time_t now, int create)
{
	struct downloads_track *t, *old = &downloads_tracks[0];
	int i;

	for (i = 0; i < NUBO_DOWNLOADS_TRACKED; i++) {
		t = &downloads_tracks[i];
		if (t->kind[0] != '\0' && now - t->seen >
		    NUBO_DOWNLOAD_RESUME_SECONDS)
			t->kind[0] = '\0';
		if (t->kind[0] != '\0' && strcmp(t->kind, kind) == 0 &&
		    strcmp(t->id, id) == 0 && t->user == user &&
		    t->total == total)
			return t;
		if (old->kind[0] != '\0' && (t->kind[0] == '\0' ||
		    t->seen < old->seen))
			old = t;
	}
	if (!create)
		return NULL;
	memset(old, 0, sizeof *old);
	snprintf(old->kind, sizeof old->kind, "%s", kind);
	snprintf(old->id, sizeof old->id, "%s", id);
	old->user = user;
	old->total = total;
	return old;
}

/* Write the report of a complete download (caller holds the lock). */
static void
downloads_report_write(const char *kind, const char *id, long long user)
{
	char *dir = downloads_dir(), *path, *text, at[32];
	json_t *j;

	util_time_iso(time(NULL), at, sizeof at);
	j = json_pack("{s:s,s:s,s:I,s:s}", "kind", kind, "id", id, "user",
	    (json_int_t)user, "at", at);
	text = json_dumps(j, JSON_COMPACT);
	path = xasprintf("%s/%s-%s.json", dir, kind, id);
	if (util_mkdir_p(dir, 0700) == -1 ||
	    util_write_file(path, text, strlen(text), 0600) == -1)
		log_error("downloads: cannot write %s: %s", path,
		    strerror(errno));
	else
		log_info("downloads: %s %s downloaded completely by user %lld",
		    kind, id, user);
	free(path);
	free(text);
	free(dir);
	json_decref(j);
}

/* The request is over: count what it delivered. */
static void
downloads_done(struct areq *r)
{
	struct downloads_req *d = r->ctx;
	struct downloads_track *t;
	uint64_t start, sent, total;
	time_t now = time(NULL);
	int complete = 0;

	if (d == NULL || http_file_served(r->http, &start, &sent, &total) ==
	    -1 || total == 0 || sent == 0)
		goto out;
	pthread_mutex_lock(&downloads_lock);
	t = downloads_track(d->kind, d->id, r->user, total, now, start == 0);
	if (t != NULL && start <= t->have) {
		if (start + sent > t->have)
			t->have = start + sent;
		t->seen = now;
		if (t->have >= t->total) {
			complete = 1;
			t->kind[0] = '\0';	/* a later download counts anew */
			downloads_report_write(d->kind, d->id, r->user);
		}
	}
	if (complete) {
		downloads_kicked = 1;
		pthread_cond_signal(&downloads_cond);
	}
	pthread_mutex_unlock(&downloads_lock);
out:
	testhook_mark("download-end");
}

/* Count what r serves as the download of (kind, id) when a user asked
 * for it: 1, or 0 for the portal secret or nubo's own fetch (not a
 * user's copy). */
static int
downloads_count(struct areq *r, const char *kind, const char *id)
{
	struct downloads_req *d;

	if (r->user == 0)
		return 0;
	d = xcalloc(1, sizeof *d);
	d->kind = xstrdup(kind);
	d->id = xstrdup(id);
	r->ctx = d;
	r->ctx_free = downloads_req_free;
	r->done = downloads_done;
	return 1;
}

void
downloads_serve(struct areq *r, int fd, uint64_t total, const char *ctype,
    const char *filename, const char *kind, const char *id)
{
	if (downloads_count(r, kind, id))
		http_reply_file_counted(r->http, fd, total, ctype, filename);
	else
		http_reply_file(r->http, fd, total, ctype, filename);
}

void
downloads_serve_made(struct areq *r, const struct http_body_maker *m,
    uint64_t total, const char *ctype, const char *filename,
    const char *kind, const char *id)
{
	http_reply_made(r->http, m, total, ctype, filename,
	    downloads_count(r, kind, id));
}

/* Post one report; 0 when the portal is done with it (taken, or refused
 * for good), -1 to try again later. */
static int
downloads_post(const char *path)
{
	size_t len;
	char *text = util_read_file(path, DOWNLOADS_REPORT_MAX, &len);
	json_t *j = text ? json_loadb(text, len, 0, NULL) : NULL, *resp = NULL;
	int st, rc = -1;

	if (text == NULL)
		goto out;	/* gone meanwhile, or unreadable: next time */
	if (!json_is_object(j)) {
		log_warn("downloads: dropping unreadable report %s", path);
		unlink(path);
		rc = 0;
		goto out;
	}
	st = portal_post("/agent/downloads", j, &resp);
	if (st == 200) {
		rc = 0;
	} else if (st >= 400 && st < 500 && st != 401 && st != 408 &&
	    st != 429) {
		log_warn("downloads: the portal refused the report %s: %s",
		    path, jsonx_str(json_object_get(resp, "error"), "message") ?
		    jsonx_str(json_object_get(resp, "error"), "message") :
		    "error");
		rc = 0;
	}
	if (rc == 0) {
		/* remove it unless a newer download rewrote it meanwhile */
		char *now;
		size_t nlen;

		pthread_mutex_lock(&downloads_lock);
		now = util_read_file(path, DOWNLOADS_REPORT_MAX, &nlen);
		if (now == NULL || (nlen == len && memcmp(now, text, len) ==
		    0))
			unlink(path);
		else
			rc = -1;
		pthread_mutex_unlock(&downloads_lock);
		free(now);
	}
out:
	json_decref(resp);
	json_decref(j);
	free(text);
	return rc;
}

/* Post every pending report; 0 when none is left. */
static int
downloads_flush(void)
{
	char *dir = downloads_dir(), *path;
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if ((d = opendir(dir)) == NULL) {
		free(dir);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (de->d_name[0] == '.' || n < 6 ||
		    strcmp(de->d_name + n - 5, ".json") != 0)
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		if (downloads_post(path) == -1)
			rc = -1;
		free(path);
	}
	closedir(d);
	free(dir);
	return rc;
}

static void *
downloads_loop(void *arg)
{
	int failing = 0;

	(void)arg;
	for (;;) {
		struct timespec ts;

		pthread_mutex_lock(&downloads_lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += failing ? DOWNLOADS_RETRY_SECONDS : 60;
		while (!downloads_kicked && pthread_cond_timedwait(
		    &downloads_cond, &downloads_lock, &ts) != ETIMEDOUT)
			;
		downloads_kicked = 0;
		pthread_mutex_unlock(&downloads_lock);
		if (node->registered)
			failing = downloads_flush() == -1;
		else
			failing = 1;
		testhook_mark("downloads-pass");
	}
	return NULL;
}

void
downloads_start(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, downloads_loop, NULL) == 0)
		pthread_detach(t);
	else
		log_error("cannot start the downloads reporter");
	/* reports left by an earlier run go out at once */
	pthread_mutex_lock(&downloads_lock);
	downloads_kicked = 1;
	pthread_cond_signal(&downloads_cond);
	pthread_mutex_unlock(&downloads_lock);
}
