/* Off-node copies of snapshots (issue #16): this node keeps a copy of
 * another node's snapshot in its own store, so that the snapshot can
 * still be downloaded and restored when its node is gone.
 *
 * The target pulls (docs/ARCHITECTURE.md, "Off-node copies" says why):
 * the portal tells it the snapshot (POST /agent/v1/copies) with two URLs
 * it signed on the source — the manifest, and the blobs — and the record
 * the source keeps. The target reads the manifest, works out which blobs
 * its own store lacks, and asks the source for those only, in batches;
 * every blob is checked against its sha256 as it arrives.
 *
 * Layout: DIR/copies/<uuid>/copy.json (the source's record of the
 * snapshot, and the copy's state), partial.json (the blobs received so
 * far, after each batch but the last, in manifest form: a root for the
 * sweep, so a copy killed midway resumes without them), manifest.json
 * (the manifest as fetched, moved there last: the copy exists).
 * The source's side: GET …/snapshots/{id}/manifest and POST
 * …/snapshots/{id}/blobs, both signed. */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "agent-routes.h"
#include "jsonx.h"
#include "log.h"
#include "nubo_limits.h"
#include "snapstore-int.h"
#include "snapstore.h"
#include "testhook.h"
#include "tls.h"
#include "util.h"
#include "xmalloc.h"

/* A batch of blobs asked for in one request: at most this many, and no
 * more bytes than COPY_BATCH_BYTES (one blob larger goes alone); each
 * batch is made durable and recorded in partial.json, which is what a
 * resumed copy does not fetch again. */
#define COPY_BATCH_BLOBS	512
#define COPY_BATCH_BYTES	(64LL * 1024 * 1024)
/* A manifest fetched from the source: as the store caps its own. */
#define COPY_MANIFEST_MAX	(256LL * 1024 * 1024)

static char *
copy_file(const char *id, const char *name)
{
	return xasprintf("%s/copies/%s/%s", node->data_dir, id, name);
}

/* The manifest of this node's completed copy of snapshot id, or NULL. */
char *
snapcopy_manifest(const char *id)
{
	char *p = copy_file(id, "manifest.json");

	if (access(p, F_OK) == 0)
		return p;
	free(p);
	return NULL;
}

/* The path of the record of this node's copy of id (copy.json). */
char *
snapcopy_record_path(const char *id)
{
	return copy_file(id, "copy.json");
}

static int
save_json(const char *path, json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	int rc = util_write_file(path, text, strlen(text), 0600);

	free(text);
	return rc;
}

/* The copy's record as the agent API shows it; NULL when there is none.
 * Its state is the copy's: running while its thread runs (which records
 * the copy's figures after the manifest is in place), else completed
 * exactly when its manifest is here. */
static json_t *
copy_show_json(const char *id)
{
	char *path = copy_file(id, "copy.json"), *man;
	json_t *j = json_load_file(path, 0, NULL);

	free(path);
	if (j == NULL)
		return NULL;
	json_object_del(j, "progress");
	if (json_object_get(backup_with_progress(j, id), "progress")) {
		json_object_set_new(j, "state", json_string("running"));
	} else if ((man = snapcopy_manifest(id)) != NULL) {
		json_object_set_new(j, "state", json_string("completed"));
		json_object_del(j, "error");
		free(man);
	} else if (strcmp(jsonx_str(j, "state") ? jsonx_str(j, "state") : "",
	    "failed") != 0) {
		json_object_set_new(j, "state", json_string("failed"));
		json_object_set_new(j, "error", json_string("the copy stopped "
		    "before it was complete"));
	}
	return j;
}

/* ------------------------------------------------------------------ */
/* The source's side                                                   */

/* The manifest of this node's own completed snapshot id; NULL after
 * replying 404. */
static char *
source_manifest(struct areq *r, const char *id)
{
	char *state, *man;
	json_t *j;
	int ok;

	if (!util_valid_uuid(id)) {
		areply_error(r, 404, "SNAPSHOT_NOT_FOUND", "no snapshot '%s' on "
		    "this node", id ? id : "");
		return NULL;
	}
	state = xasprintf("%s/snapshots/%s/snapshot.json", node->data_dir, id);
	j = json_load_file(state, 0, NULL);
	free(state);
	ok = j != NULL && jsonx_str(j, "state") != NULL &&
	    strcmp(jsonx_str(j, "state"), "completed") == 0;
	json_decref(j);
	man = xasprintf("%s/snapshots/%s/manifest.json", node->data_dir, id);
	if (!ok || access(man, F_OK) != 0) {
		areply_error(r, 404, "SNAPSHOT_NOT_FOUND", "no completed snapshot "
		    "'%s' in this node's store", id);
		free(man);
		return NULL;
	}
	return man;
}

/* GET /agent/v1/snapshots/{snapshot}/manifest (signed): the manifest of
 * a snapshot in this node's store, as it is, for a node copying it. */
void
snapcopy_manifest_get(struct areq *r)
{
	char *man = source_manifest(r, http_param(r->http, "snapshot"));
	struct stat st;
	int fd;

	if (man == NULL)
		return;
	fd = open(man, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		areply_error(r, 500, "NODE_IO_ERROR", "cannot read '%s': %s", man,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
	} else
		http_reply_file(r->http, fd, (uint64_t)st.st_size,
		    "application/json", NULL);
	free(man);
}

/* The blobs asked for, in order, and the form the body takes
 * (snapstore_blobs_write()). */
struct blobs_out {
	char	*store;
	json_t	*blobs;		/* [{sha256, size}] */
	enum snapstore_wire form;
};

static int
blobs_write(void *arg, int fd)
{
	struct blobs_out *bo = arg;
	char *cause = NULL;
	int rc;

	rc = snapstore_blobs_write(bo->store, bo->blobs, bo->form, fd, NULL,
	    &cause);
	if (rc < 0 && strstr(cause, strerror(EPIPE)) == NULL)
		log_warn("a copy's blobs cannot be sent: %s", cause);
	free(cause);
	return rc;
}

static void
blobs_free(void *arg)
{
	struct blobs_out *bo = arg;

	free(bo->store);
	json_decref(bo->blobs);
	free(bo);
}

/* A blob a manifest names, with the size it gives (snapstore_manifest_
 * blobs()'s fn). */
static int
name_blob(void *arg, const char *hex, long long size, const char *member)
{
	(void)member;
	json_object_set_new(arg, hex, json_integer(size));
	return 0;
}

/* POST /agent/v1/snapshots/{snapshot}/blobs (signed) {blobs: [sha256…]}:
 * those blobs of the snapshot, concatenated in that order (the asker
 * knows each one's size from the manifest). Only blobs the snapshot's
 * manifest names: the URL signed for one snapshot gives nothing else
 * of the store. */
void
snapcopy_blobs_get(struct areq *r)
{
	static const struct jfield fields[] = {
		{ "blobs", JT_ARRAY, 1 }, { NULL } };
	const char *id = http_param(r->http, "snapshot"), *h;
	char *man, *store = NULL, *cause = NULL, *why = NULL;
	json_t *m = NULL, *named = NULL, *list, *v, *blobs = NULL;
	struct http_body_maker mk;
	struct snapstore_blob b;
	struct blobs_out *bo;
	enum snapstore_wire form = SNAPSTORE_WIRE_RAW;
	const char *ae;
	long long total = 0, size;
	size_t i;
	int bad;

	if (abody_check(r, fields) == -1)
		return;
	list = json_object_get(r->body, "blobs");
	if (json_array_size(list) == 0 || json_array_size(list) >
	    COPY_BATCH_BLOBS) {
		areply_error(r, 400, "BAD_REQUEST", "'blobs' lists 1 to %d blobs",
		    COPY_BATCH_BLOBS);
		return;
	}
	if ((man = source_manifest(r, id)) == NULL)
		return;
	if ((m = json_load_file(man, 0, NULL)) == NULL) {
		areply_error(r, 500, "SNAPSHOT_CORRUPT", "cannot read the "
		    "manifest of snapshot %s", id);
		goto out;
	}
	/* what the manifest names, with the size it gives */
	named = json_object();
	if (snapstore_manifest_blobs(m, name_blob, named, &why) < 0) {
		areply_error(r, 500, "SNAPSHOT_CORRUPT", "the manifest of "
		    "snapshot %s is damaged: %s", id, why);
		goto out;
	}
	store = xasprintf("%s/store", node->data_dir);
	blobs = json_array();
	json_array_foreach(list, i, v) {
		h = json_string_value(v);
		if (h == NULL || json_object_get(named, h) == NULL ||
		    !snapstore_valid_hex(h)) {
			areply_error(r, 400, "BAD_REQUEST", "snapshot %s names no "
			    "blob '%s'", id, h ? h : "(not a string)");
			goto out;
		}
		size = json_integer_value(json_object_get(named, h));
		/* either form; a packed one's size is its header's */
		snapstore_blob_init(&b);
		bad = snapstore_blob_open(&b, store, h, &why) < 0 ||
		    b.size != size;
		if (bad)
			areply_error(r, 409, "SNAPSHOT_CORRUPT", "the blob %s of "
			    "snapshot %s is %s in this node's store", h, id,
			    b.missing ? "missing" : "damaged");
		snapstore_blob_close(&b);
		free(why);
		why = NULL;
		if (bad)
			goto out;
		total += size;
		json_array_append_new(blobs, json_pack("{s:s,s:I}", "sha256",
		    h, "size", (json_int_t)size));
	}
	/* packed for a copier that asks (it keeps them as they come), else
	 * deflated on the way for one that accepts gzip: either way packed
	 * blobs go as they are stored, the rest by the packer */
	ae = http_header(r->http, "Accept");
	if (util_media_listed(ae, SNAPSTORE_WIRE_PACKED_TYPE))
		form = SNAPSTORE_WIRE_PACKED;
	else if (util_media_listed(http_header(r->http, "Accept-Encoding"),
	    "gzip"))
		form = SNAPSTORE_WIRE_GZIP;
	if (form != SNAPSTORE_WIRE_RAW && snapstore_blobs_write(store, blobs,
	    form, -1, &total, &cause) < 0) {
		areply_error(r, 409, "SNAPSHOT_CORRUPT", "the blobs of snapshot "
		    "%s cannot be read in this node's store: %s", id, cause);
		goto out;
	}
	bo = xcalloc(1, sizeof *bo);
	bo->store = xstrdup(store);
	bo->blobs = json_incref(blobs);
	bo->form = form;
	memset(&mk, 0, sizeof mk);
	mk.write = blobs_write;
	mk.arg = bo;
	mk.free = blobs_free;
	http_reply_made(r->http, &mk, (uint64_t)total, form ==
	    SNAPSTORE_WIRE_PACKED ? SNAPSTORE_WIRE_PACKED_TYPE :
	    "application/octet-stream", NULL, 0);
	if (form == SNAPSTORE_WIRE_GZIP)
		http_add_header(r->http, "Content-Encoding", "gzip");
out:
	json_decref(m);
	json_decref(named);
	json_decref(blobs);
	free(store);
	free(man);
	free(cause);
	free(why);
}

/* ------------------------------------------------------------------ */
/* The target's side                                                   */

struct copy_job {
	char	 id[40];
	char	*manifest_url;
	char	*blobs_url;
};

/* What a request to the snapshot's node got back: its status, known
 * at the body's first byte, and — when that is not 200 — the first
 * bytes of the error's body (the source's words, read up to a cap: not
 * a stream to follow to its end). */
struct copy_answer {
	CURL	*c;
	long	 status;
	char	 err[NUBO_COPY_ERROR_BODY_MAX];
	size_t	 nerr;
};

/* The answer's status (0 while none came). */
static long
answer_status(struct copy_answer *a)
{
	if (a->status == 0)
		curl_easy_getinfo(a->c, CURLINFO_RESPONSE_CODE, &a->status);
	return a->status;
}

/* A piece of the answer's body: 1 when it is the answer asked for (200),
 * 0 when it is an error's body (kept), -1 past the error body's cap
 * (the transfer stops). */
static int
answer_piece(struct copy_answer *a, const char *data, size_t n)
{
	if (answer_status(a) == 200)
		return 1;
	if (n > sizeof a->err - a->nerr)
		return -1;
	memcpy(a->err + a->nerr, data, n);
	a->nerr += n;
	return 0;
}

/* curl into a file, at most max bytes. */
struct fetch_file {
	struct copy_answer a;
	int		 fd;
	long long	 n, max;
};

static size_t
fetch_file_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct fetch_file *f = arg;
	int k = answer_piece(&f->a, data, size * nmemb);

	if (k <= 0)
		return k < 0 ? 0 : size * nmemb;
	f->n += (long long)(size * nmemb);
	if (f->n > f->max || util_write_all(f->fd, data, size * nmemb) < 0)
		return 0;
	return size * nmemb;
}

/* A request for about expect bytes to the snapshot's node, stopped when
 * slower than NUBO_COPY_SPEED_MIN bytes a second for window seconds, and
 * after NUBO_COPY_GRACE_SECS plus expect at NUBO_COPY_RATE_MIN whatever
 * its speed (nubo_limits.h says why). */
static CURL *
copy_curl(struct copy_answer *a, const char *url, long long expect,
    long window)
{
	CURL *c = curl_easy_init();

	memset(a, 0, sizeof *a);
	a->c = c;
	/* the source node: its key as the portal pinned it */
	tls_curl_url(c, url, node->portal_ca);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, (long)NUBO_COPY_SPEED_MIN);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, window);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)(NUBO_COPY_GRACE_SECS +
	    expect / NUBO_COPY_RATE_MIN));
	return c;
}

/* The answer's failure in words: the status and the source's own
 * message (control characters as spaces: it goes into logs and
 * copy.json), else curl's. */
static char *
copy_curl_error(const char *what, CURLcode cc, struct copy_answer *a,
    const char *errbuf)
{
	json_t *j;
	char *msg = NULL, *out, *p;

	if (answer_status(a) == 0 || (a->status == 200 && cc != CURLE_OK))
		return xasprintf("cannot fetch %s from the snapshot's node: %s",
		    what, *errbuf ? errbuf : curl_easy_strerror(cc));
	if ((j = json_loadb(a->err, a->nerr, 0, NULL)) != NULL &&
	    jsonx_str(json_object_get(j, "error"), "message") != NULL) {
		msg = xstrdup(jsonx_str(json_object_get(j, "error"),
		    "message"));
		for (p = msg; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = ' ';
	}
	json_decref(j);
	out = xasprintf("cannot fetch %s from the snapshot's node: it "
	    "answered HTTP %ld%s%s", what, a->status, msg ? ": " : "",
	    msg ? msg : "");
	free(msg);
	return out;
}

static int
fetch_manifest(const char *url, const char *path, char **cause)
{
	struct fetch_file f;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLcode cc;
	CURL *c;
	int rc = -1;

	f.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	f.n = 0;
	f.max = COPY_MANIFEST_MAX;
	if (f.fd < 0) {
		*cause = xasprintf("cannot write '%s': %s", path,
		    strerror(errno));
		return -1;
	}
	c = copy_curl(&f.a, url, COPY_MANIFEST_MAX, 60);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_file_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	cc = curl_easy_perform(c);
	close(f.fd);
	if (f.n > f.max)
		*cause = xasprintf("the snapshot's manifest is larger than %lld "
		    "bytes", COPY_MANIFEST_MAX);
	else if (cc != CURLE_OK || answer_status(&f.a) != 200)
		*cause = copy_curl_error("the manifest", cc, &f.a, errbuf);
	else
		rc = 0;
	curl_easy_cleanup(c);
	return rc;
}

/* curl into the receiving store. */
struct fetch_blobs {
	struct copy_answer	 a;
	struct snapstore_recv	*r;
	char			*cause;
	int			 packed;	/* the PACKED form came */
	long long		 n;
};

static size_t
fetch_blobs_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct fetch_blobs *f = arg;
	char *ct = NULL;
	int k;

	if (f->a.status == 0 && answer_status(&f->a) == 200) {
		curl_easy_getinfo(f->a.c, CURLINFO_CONTENT_TYPE, &ct);
		f->packed = util_media_listed(ct, SNAPSTORE_WIRE_PACKED_TYPE);
	}
	if ((k = answer_piece(&f->a, data, size * nmemb)) <= 0)
		return k < 0 ? 0 : size * nmemb;	/* an error's body */
	if ((f->packed ? snapstore_recv_packed : snapstore_recv_data)(f->r,
	    data, size * nmemb, &f->cause) < 0)
		return 0;
	f->n += (long long)(size * nmemb);
	return size * nmemb;
}

/* Fetch batch (entries of the missing list) into the store; *wire
 * gets the bytes that travelled (deflated), *packed whether they came
 * in the PACKED form. */
static int
fetch_batch(const char *url, struct snapstore_recv *r, json_t *batch,
    long long *wire, int *packed, char **cause)
{
	struct fetch_blobs f;
	struct curl_slist *hd = NULL;
	char errbuf[CURL_ERROR_SIZE] = "", *body;
	json_t *want = json_array(), *e;
	curl_off_t dl = 0;
	long long expect = 0, size;
	CURLcode cc;
	CURL *c;
	size_t i;
	int rc = -1;

	/* what the batch takes on the wire at most: each blob packed
	 * (its length, header and stored blocks' overhead) */
	json_array_foreach(batch, i, e) {
		json_array_append(want, json_object_get(e, "sha256"));
		size = jsonx_int(e, "size", 0);
		expect += size + size / 1024 + 96;
	}
	want = json_pack("{s:o}", "blobs", want);
	body = json_dumps(want, JSON_COMPACT);
	json_decref(want);
	if (snapstore_recv_expect(r, batch, cause) < 0) {
		free(body);
		return -1;
	}
	memset(&f, 0, sizeof f);
	f.r = r;
	c = copy_curl(&f.a, url, expect, 120);
	hd = curl_slist_append(hd, "Content-Type: application/json");
	/* the blobs as the source stores them, kept as they come; a source
	 * that does not know that form deflates them on the way and curl
	 * inflates */
	hd = curl_slist_append(hd, "Accept: " SNAPSTORE_WIRE_PACKED_TYPE);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "gzip");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_blobs_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_SIZE_DOWNLOAD_T, &dl);
	*wire += (long long)dl;
	*packed = f.packed;
	if (f.cause != NULL) {
		*cause = f.cause;
		f.cause = NULL;
	} else if (cc != CURLE_OK || answer_status(&f.a) != 200)
		*cause = copy_curl_error("the snapshot's blobs", cc, &f.a,
		    errbuf);
	else
		rc = 0;
	curl_easy_cleanup(c);
	curl_slist_free_all(hd);
	free(body);
	return rc;
}

/* Record how the copy ended in copy.json (its record kept). */
static void
copy_record_end(const char *id, const char *state, const char *error,
    json_t *stats)
{
	char *path = copy_file(id, "copy.json");
	json_t *j = json_load_file(path, 0, NULL);

	if (j == NULL)
		j = json_pack("{s:s}", "id", id);
	json_object_set_new(j, "state", json_string(state));
	if (error)
		json_object_set_new(j, "error", json_string(error));
	else
		json_object_del(j, "error");
	if (stats)
		json_object_set(j, "copy", stats);
	json_object_set_new(j, "finished", json_integer(util_now()));
	if (save_json(path, j) < 0)
		log_error("cannot write %s: %s", path, strerror(errno));
	json_decref(j);
	free(path);
}

/* Milliseconds since *t, which moves to now. */
static json_int_t
lap_ms(double *t)
{
	double now = util_mono(), d = now - *t;

	*t = now;
	return (json_int_t)(d * 1000);
}

/* Copy snapshot cj->id here: the manifest, the blobs the store lacks in
 * batches (each made durable and recorded in partial.json), then the
 * manifest. stats gets the counts and each phase's time. */
static int
copy_run(struct copy_job *cj, json_t *stats, char **cause)
{
	char *store = xasprintf("%s/store", node->data_dir);
	char *fetched = copy_file(cj->id, ".manifest.fetch");
	char *partial = copy_file(cj->id, "partial.json");
	char *man = copy_file(cj->id, "manifest.json");
	struct snapstore_recv *r = NULL;
	struct snapstore_stats st;
	double t0 = util_mono(), t = t0;
	json_t *missing, *batch = NULL, *e;
	long long bytes = 0, total = 0, done = 0, nblobs = 0, wire = 0;
	json_int_t fetch_ms = 0, sync_ms = 0;
	size_t i, n;
	int rc = -1, packed = 0;

	if (fetch_manifest(cj->manifest_url, fetched, cause) < 0)
		goto out;
	json_object_set_new(stats, "manifest_ms", json_integer(lap_ms(&t)));
	if ((r = snapstore_recv_begin(store, fetched, cause)) == NULL)
		goto out;
	json_object_set_new(stats, "presence_ms", json_integer(lap_ms(&t)));
	missing = snapstore_recv_missing(r);
	n = json_array_size(missing);
	/* the manifest's sizes are bounded and so is their sum
	 * (snapstore_manifest_blobs()): checked here all the same, a
	 * wrapped sum would pass the room's check */
	json_array_foreach(missing, i, e)
		if (__builtin_add_overflow(total, jsonx_int(e, "size", 0),
		    &total)) {
			*cause = xstrdup("the snapshot's manifest is damaged: "
			    "its sizes are too large");
			goto out;
		}
	/* room for what will arrive, as for a snapshot of that size */
	if (space_check(total, "a copy of another node's snapshot",
	    cause) < 0)
		goto out;
	backup_task_progress(cj->id, 0, total);
	log_info("copy of snapshot %s: %zu blobs (%lld bytes) to fetch", cj->id,
	    n, total);
	for (i = 0; i < n; ) {
		batch = json_array();
		bytes = 0;
		while (i < n && json_array_size(batch) < COPY_BATCH_BLOBS &&
		    (json_array_size(batch) == 0 || bytes + jsonx_int(
		    json_array_get(missing, i), "size", 0) <= COPY_BATCH_BYTES)) {
			e = json_array_get(missing, i++);
			bytes += jsonx_int(e, "size", 0);
			json_array_append(batch, e);
		}
		if (fetch_batch(cj->blobs_url, r, batch, &wire, &packed,
		    cause) < 0)
			goto out;
		fetch_ms += lap_ms(&t);
		/* the last batch needs no partial.json: the manifest follows
		 * (killed between them, that batch alone is fetched again) */
		if (snapstore_recv_sync(r, i < n ? partial : NULL, cause) < 0)
			goto out;
		sync_ms += lap_ms(&t);
		done += bytes;
		nblobs += (long long)json_array_size(batch);
		json_decref(batch);
		batch = NULL;
		backup_task_progress(cj->id, done, total);
		json_object_set_new(stats, "blobs_fetched", json_integer(nblobs));
		json_object_set_new(stats, "bytes_fetched", json_integer(done));
		/* a kill -9 here leaves durable blobs partial.json keeps */
		testhook_pause("copy-batch");
	}
	if (snapstore_recv_commit(r, man, &st, cause) < 0)
		goto out;
	/* the manifest is the root now */
	if (unlink(partial) == 0)
		util_fsync_dir(partial);
	/* complete, its figures not yet recorded: still running */
	testhook_pause("copy-committed");
	json_object_set_new(stats, "fetch_ms", json_integer(fetch_ms));
	json_object_set_new(stats, "sync_ms", json_integer(sync_ms));
	json_object_set_new(stats, "commit_ms", json_integer(lap_ms(&t)));
	if (n > 0)
		json_object_set_new(stats, "wire_form", json_string(packed ?
		    "packed" : "stream"));
	json_object_set_new(stats, "blobs_fetched", json_integer(nblobs));
	json_object_set_new(stats, "bytes_fetched", json_integer(done));
	json_object_set_new(stats, "blobs_missing", json_integer((json_int_t)n));
	json_object_set_new(stats, "wire_bytes", json_integer(wire));
	json_object_set_new(stats, "ms", json_integer((json_int_t)((util_mono() -
	    t0) * 1000)));
	rc = 0;
out:
	json_decref(batch);
	snapstore_recv_free(r);
	unlink(fetched);
	free(store);
	free(fetched);
	free(partial);
	free(man);
	return rc;
}

static int
chain_room(long long need, char **cause)
{
	return space_check(need, "a copied chain's download copy", cause);
}

/* After the copy of snapshot id completed: its chain's download copy
 * made here, as its node made it (snapstore_chain_build()), so that a
 * download from this node sends it rather than deflating the dump
 * again — at a lower priority, beside what the node serves. */
static void
copy_chain_build(const char *id)
{
	char *store = xasprintf("%s/store", node->data_dir);
	char *man = snapcopy_manifest(id), *cause = NULL;
	double t = util_mono();
	int rc;

	/* this thread's, and the segments' threads it starts */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
	rc = man ? snapstore_chain_build(store, man, chain_room,
	    &cause) : 0;
	if (rc == 1)
		log_info("copy of snapshot %s: its download copy made in %lld "
		    "ms", id, (long long)((util_mono() - t) * 1000));
	else if (rc < 0)
		log_warn("copy of snapshot %s: no download copy (its downloads "
		    "deflate the dump): %s", id, cause);
	free(cause);
	free(man);
	free(store);
}

static void *
copy_thread(void *arg)
{
	struct copy_job *cj = arg;
	json_t *stats = json_object();
	char *cause = NULL;
	int ok;

	if ((ok = copy_run(cj, stats, &cause) == 0)) {
		copy_record_end(cj->id, "completed", NULL, stats);
		log_info("copy of snapshot %s complete: %lld blobs (%lld bytes) "
		    "fetched in %lld ms", cj->id, jsonx_int(stats,
		    "blobs_fetched", 0), jsonx_int(stats, "bytes_fetched", 0),
		    jsonx_int(stats, "ms", 0));
	} else {
		copy_record_end(cj->id, "failed", cause ? cause : "the copy "
		    "failed", stats);
		log_warn("copy of snapshot %s failed: %s", cj->id, cause ?
		    cause : "?");
	}
	backup_task_remove(cj->id);
	if (ok)
		copy_chain_build(cj->id);
	json_decref(stats);
	free(cause);
	free(cj->manifest_url);
	free(cj->blobs_url);
	free(cj);
	return NULL;
}

/* A completed copy whose blobs are not all in the store (fsck moved a
 * damaged one to quarantine): its manifest becomes its partial.json, so
 * the blobs still there stay kept and the copy, made again, fetches only
 * what is gone. 1 when it was done so. */
static int
copy_heal(const char *id, const char *state)
{
	char *store, *man, *partial, *cause = NULL;
	int healed = 0;

	if (strcmp(state, "completed") != 0 || (man = snapcopy_manifest(id)) ==
	    NULL)
		return 0;
	store = xasprintf("%s/store", node->data_dir);
	if (snapstore_present(store, man, SNAPSTORE_FULL, &cause) < 0) {
		partial = copy_file(id, "partial.json");
		if (util_rename_sync(man, partial) == 0) {
			log_warn("copy of snapshot %s: %s; fetching it again", id,
			    cause);
			healed = 1;
		} else
			log_error("copy of snapshot %s: %s, and its manifest "
			    "cannot be moved aside: %s", id, cause,
			    strerror(errno));
		free(partial);
	}
	free(cause);
	free(store);
	free(man);
	return healed;
}

/* The copy's record (copy.json) from the request's `record` — the
 * source's record of the snapshot, which the copy's downloads serve —
 * or NULL after answering 400: its known fields only, of their types
 * (as every body the portal sends a node), sizes from 0 to
 * NUBO_SNAPSHOT_SIZE_MAX (a restore's room and a download's length add
 * them up). */
static json_t *
copy_record_new(struct areq *r, const char *id)
{
	static const struct jfield fields[] = {
		{ "environment", JT_INT, 0 }, { "created", JT_INT, 0 },
		{ "archive_size", JT_INT, 0 }, { "archive_format", JT_INT, 0 },
		{ "dump_size", JT_INT, 0 }, { "files_size", JT_INT, 0 },
		{ "database_size", JT_INT, 0 }, { "duration", JT_INT, 0 },
		{ "expanded_size", JT_INT, 0 },
		{ "model_version", JT_STRING, 0 }, { "type", JT_STRING, 0 },
		{ NULL } };
	json_t *rec = json_object_get(r->body, "record"), *j, *v;
	const struct jfield *f;
	const char *mv, *type;
	char *cause = NULL;

	if (jsonx_check(rec, fields, &cause) == -1) {
		areply_error(r, 400, "BAD_REQUEST", "record: %s", cause);
		free(cause);
		return NULL;
	}
	j = json_pack("{s:s,s:s,s:I}", "id", id, "state", "running",
	    "started", (json_int_t)util_now());
	for (f = fields; f->name != NULL; f++) {
		if (f->type != JT_INT || (v = json_object_get(rec, f->name)) ==
		    NULL)
			continue;
		if (!snapstore_valid_size(json_integer_value(v))) {
			areply_error(r, 400, "BAD_REQUEST", "'record.%s' must be "
			    "a number from 0 to %lld", f->name,
			    (long long)NUBO_SNAPSHOT_SIZE_MAX);
			json_decref(j);
			return NULL;
		}
		json_object_set(j, f->name, v);
	}
	mv = jsonx_str(rec, "model_version");
	type = jsonx_str(rec, "type");
	json_object_set_new(j, "model_version", json_string(mv ? mv : ""));
	json_object_set_new(j, "type", json_string(type ? type : "manual"));
	return j;
}

/* POST /agent/v1/copies {snapshot, manifest_url, blobs_url, record}:
 * copy another node's snapshot into this node's store (idempotent: a
 * completed or running copy is answered as it is; a failed one is
 * resumed, and so is a completed one whose blobs are no longer all in
 * the store: copy_heal()). The request is checked whole before anything
 * changes (SPEC §6). 202 while it runs; poll GET
 * /agent/v1/copies/{snapshot}. */
void
snapcopy_create(struct areq *r)
{
	static const struct jfield fields[] = {
		{ "snapshot", JT_STRING, 1 }, { "manifest_url", JT_STRING, 1 },
		{ "blobs_url", JT_STRING, 1 }, { "record", JT_OBJECT, 1 },
		{ NULL } };
	const char *id, *state;
	json_t *j = NULL, *prev = NULL;
	struct copy_job *cj;
	char *dir = NULL, *path = NULL, *own;
	pthread_t th;

	if (abody_check(r, fields) == -1)
		return;
	id = jsonx_str(r->body, "snapshot");
	if (!util_valid_uuid(id)) {
		areply_error(r, 400, "BAD_REQUEST", "'snapshot' must be a "
		    "lowercase uuid");
		return;
	}
	if ((j = copy_record_new(r, id)) == NULL)
		return;
	/* a node never copies its own snapshot into its copies */
	own = xasprintf("%s/snapshots/%s", node->data_dir, id);
	if (access(own, F_OK) == 0) {
		areply_error(r, 409, "SNAPSHOT_IS_HERE", "snapshot %s is this "
		    "node's own", id);
		free(own);
		goto out;
	}
	free(own);
	prev = copy_show_json(id);
	state = prev != NULL ? jsonx_str(prev, "state") : "failed";
	if (strcmp(state, "running") == 0) {
		areply(r, 202, json_incref(prev));
		goto out;
	}
	/* claimed from here: no other copy, nor a delete, of it meanwhile */
	if (backup_task_add(id) == -1) {
		areply(r, 202, copy_show_json(id));
		goto out;
	}
	if (strcmp(state, "completed") == 0 && !copy_heal(id, state)) {
		backup_task_remove(id);
		areply(r, 200, json_incref(prev));
		goto out;
	}
	dir = xasprintf("%s/copies/%s", node->data_dir, id);
	path = copy_file(id, "copy.json");
	if (util_mkdir_p(dir, 0700) == -1 || save_json(path, j) == -1) {
		areply_error(r, 500, "NODE_IO_ERROR", "cannot create '%s': %s",
		    dir, strerror(errno));
		backup_task_remove(id);
		goto out;
	}
	cj = xcalloc(1, sizeof *cj);
	snprintf(cj->id, sizeof cj->id, "%s", id);
	cj->manifest_url = xstrdup(jsonx_str(r->body, "manifest_url"));
	cj->blobs_url = xstrdup(jsonx_str(r->body, "blobs_url"));
	if (pthread_create(&th, NULL, copy_thread, cj) != 0)
		fatal("cannot start a copy thread");
	pthread_detach(th);
	areply(r, 202, copy_show_json(id));
out:
	json_decref(j);
	json_decref(prev);
	free(dir);
	free(path);
}

/* GET /agent/v1/copies/{snapshot} */
void
snapcopy_show(struct areq *r)
{
	const char *id = http_param(r->http, "snapshot");
	json_t *j = util_valid_uuid(id) ? copy_show_json(id) : NULL;

	if (j == NULL) {
		areply_error(r, 404, "COPY_NOT_FOUND", "no copy of snapshot '%s' "
		    "on this node", id);
		return;
	}
	areply(r, 200, j);
}

/* DELETE /agent/v1/copies/{snapshot}: the copy goes (idempotent): its
 * manifest and partial.json first, durably, then its folder; the sweep
 * frees the blobs nothing else names. 409 while it runs. */
void
snapcopy_delete(struct areq *r)
{
	const char *id = http_param(r->http, "snapshot");
	const char *roots[] = { "manifest.json", "partial.json" };
	char *p, *dir;
	size_t i;

	if (!util_valid_uuid(id)) {
		areply_error(r, 404, "COPY_NOT_FOUND", "no copy of snapshot '%s' "
		    "on this node", id);
		return;
	}
	/* claimed while it goes: no copy starts meanwhile */
	if (backup_task_add(id) == -1) {
		areply_error(r, 409, "COPY_RUNNING", "the copy of snapshot %s is "
		    "still running", id);
		return;
	}
	for (i = 0; i < sizeof roots / sizeof roots[0]; i++) {
		p = copy_file(id, roots[i]);
		if (unlink(p) == 0 ? util_fsync_dir(p) == -1 : errno != ENOENT) {
			areply_error(r, 500, "NODE_IO_ERROR", "cannot delete the "
			    "copy of snapshot %s: %s", id, strerror(errno));
			backup_task_remove(id);
			free(p);
			return;
		}
		free(p);
	}
	dir = xasprintf("%s/copies/%s", node->data_dir, id);
	util_rm_rf(dir);
	free(dir);
	backup_task_remove(id);
	backup_store_sweep_soon();
	http_reply_empty(r->http, 204);
}

/* At start: copies that were running failed with the old process (the
 * portal asks again; what partial.json keeps is not fetched again). */
void
snapcopy_recover(void)
{
	char *dir = xasprintf("%s/copies", node->data_dir), *p;
	struct dirent *de;
	json_t *j;
	DIR *d;

	util_mkdir_p(dir, 0700);
	d = opendir(dir);
	while (d && (de = readdir(d)) != NULL) {
		if (!util_valid_uuid(de->d_name))
			continue;
		p = copy_file(de->d_name, ".manifest.fetch");
		unlink(p);
		free(p);
		p = copy_file(de->d_name, "copy.json");
		j = json_load_file(p, 0, NULL);
		free(p);
		if (j != NULL && strcmp(jsonx_str(j, "state") ?
		    jsonx_str(j, "state") : "", "running") == 0)
			copy_record_end(de->d_name, "failed", "the node stopped "
			    "during the copy", NULL);
		json_decref(j);
	}
	if (d)
		closedir(d);
	free(dir);
}
