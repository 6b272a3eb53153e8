/* Checking the node's snapshot store (issue #16): `nubod node fsck` by
 * hand, and the weekly duty that runs the same check itself.
 *
 * snapstore_fsck() re-hashes every blob under DIR/store, moves a damaged
 * one to DIR/store/quarantine and says which snapshots' files each
 * damaged or missing blob breaks. It holds the store's lock shared, so
 * it runs beside a working node: snapshots go on, sweeps wait for it.
 *
 * The weekly duty: DIR/store-fsck.json keeps when the last check ran
 * (`last`, util_now(): NUBO_CLOCK_OFFSET moves it), what it found and
 * whether the portal was told; a restarted node does not check again
 * before the week is up. The first check comes a week after the node
 * first ran with it. NUBO_STORE_FSCK_EVERY (seconds) shortens the week
 * for tests. Damage is logged and reported to the portal (POST
 * /agent/store-check), which keeps it in the node's activity log and in
 * the activity of the apps whose snapshots it breaks; a portal that
 * cannot be reached is told later. */
#include "node.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jsonx.h"
#include "log.h"
#include "snapstore.h"
#include "testhook.h"
#include "util.h"
#include "xmalloc.h"

#define FSCK_EVERY	(7 * 24 * 3600)	/* seconds between checks */
#define FSCK_RETRY	30		/* seconds between reports tried */
/* What the portal is told, at most: the rest is in the node's log and
 * in what `nubod node fsck` prints. */
#define REPORT_SNAPSHOTS	20
#define REPORT_FILES		5

static char *
fsck_store(void)
{
	return xasprintf("%s/store", node->data_dir);
}

static char *
fsck_roots(void)
{
	/* this node's snapshots, and the copies it keeps of other nodes' */
	return xasprintf("%s/{snapshots,copies}/*/manifest.json",
	    node->data_dir);
}

/* The snapshots r says are broken — a copy apart from the snapshot —
 * each with the files it lost, in the order found: {key: {id, copy?,
 * files: [file…]}}. */
static json_t *
fsck_broken(const struct snapstore_fsck *r)
{
	const struct snapstore_fsck_blob *lists[2] = { r->damaged, r->missing };
	size_t counts[2] = { r->ndamaged, r->nmissing }, l, i, k, n;
	json_t *out = json_object(), *e, *files, *f;
	int seen;

	for (l = 0; l < 2; l++)
		for (i = 0; i < counts[l]; i++)
			for (k = 0; k < lists[l][i].nrefs; k++) {
				const struct snapstore_fsck_ref *ref =
				    &lists[l][i].refs[k];
				char *key = xasprintf("%s%s", ref->copy ?
				    "copy:" : "", ref->snapshot);

				if ((e = json_object_get(out, key)) == NULL) {
					e = json_pack("{s:s,s:[]}", "id",
					    ref->snapshot, "files");
					if (ref->copy)
						json_object_set_new(e, "copy",
						    json_true());
					json_object_set_new(out, key, e);
				}
				free(key);
				files = json_object_get(e, "files");
				seen = 0;
				json_array_foreach(files, n, f)
					seen |= strcmp(json_string_value(f),
					    ref->file) == 0;
				if (!seen)
					json_array_append_new(files,
					    json_string(ref->file));
			}
	return out;
}

static json_t *report_body(const struct snapstore_fsck *r);

/* One line: what the check found, with the snapshots and files the
 * portal is told of (caller frees). */
static char *
fsck_summary(const struct snapstore_fsck *r)
{
	json_t *rep = report_body(r), *sn, *files;
	size_t i;
	char *s, *t, *u;

	s = xasprintf("%lld blobs (%lld bytes) of %lld snapshots checked in "
	    "%.1f s: %zu damaged (%lld quarantined), %zu missing, %zu "
	    "manifests unreadable%s", r->blobs, r->bytes, r->snapshots,
	    r->seconds, r->ndamaged, r->quarantined, r->nmissing, r->nbad,
	    r->ndropped > 0 ? "; a damaged download copy of a chain "
	    "removed" : "");
	json_array_foreach(json_object_get(rep, "snapshots"), i, sn) {
		files = json_object_get(sn, "files");
		t = json_dumps(files, JSON_COMPACT);
		u = xasprintf("%s; %s %s lost %s%s", s, json_is_true(
		    json_object_get(sn, "copy")) ? "the copy of snapshot" :
		    "snapshot", jsonx_str(sn, "id"), t, jsonx_int(sn,
		    "files_total", 0) > (long long)
		    json_array_size(files) ? " and more" : "");
		free(s);
		free(t);
		s = u;
	}
	i = json_array_size(json_object_get(rep, "snapshots"));
	if (jsonx_int(rep, "snapshots_total", 0) > (long long)i) {
		u = xasprintf("%s; and %lld more snapshots", s, jsonx_int(rep,
		    "snapshots_total", 0) - (long long)i);
		free(s);
		s = u;
	}
	json_decref(rep);
	return s;
}

static void
text_blobs(FILE *f, const char *title, const struct snapstore_fsck_blob *b,
    size_t n, int damaged)
{
	size_t i, k;

	fprintf(f, "%s: %zu\n", title, n);
	for (i = 0; i < n; i++) {
		fprintf(f, "  blob %s", b[i].sha256);
		if (damaged)
			fprintf(f, ": %s; %s%s\n", b[i].why, b[i].quarantine ?
			    "moved to " : "not moved", b[i].quarantine ?
			    b[i].quarantine : "");
		else if (b[i].quarantine)
			fprintf(f, ": quarantined as damaged earlier (%s)\n",
			    b[i].quarantine);
		else
			fprintf(f, ": not in the store\n");
		if (b[i].nrefs == 0)
			fprintf(f, "    no snapshot names it\n");
		for (k = 0; k < b[i].nrefs; k++)
			fprintf(f, "    %s %s: %s\n", b[i].refs[k].copy ?
			    "the copy of snapshot" : "snapshot",
			    b[i].refs[k].snapshot,
			    b[i].refs[k].file);
	}
}

/* What `nubod node fsck` prints without --json. */
static void
fsck_text(FILE *f, const char *store, const struct snapstore_fsck *r)
{
	size_t i;

	fprintf(f, "snapshot store %s\n", store);
	fprintf(f, "blobs checked: %lld (%lld bytes) in %.1f s\n", r->blobs,
	    r->bytes, r->seconds);
	fprintf(f, "snapshots: %lld\n", r->snapshots);
	text_blobs(f, "damaged", r->damaged, r->ndamaged, 1);
	text_blobs(f, "missing", r->missing, r->nmissing, 0);
	if (r->nbad > 0) {
		fprintf(f, "manifests unreadable: %zu\n", r->nbad);
		for (i = 0; i < r->nbad; i++)
			fprintf(f, "  %s: %s\n", r->bad[i].manifest,
			    r->bad[i].why);
	}
	if (r->ndropped > 0) {
		fprintf(f, "download copies removed (damaged; a download "
		    "makes the chain's dump again): %zu\n", r->ndropped);
		for (i = 0; i < r->ndropped; i++)
			fprintf(f, "  %s: the copy %s\n", r->dropped[i].manifest,
			    r->dropped[i].why);
	}
	fprintf(f, "quarantined: %lld\n", r->quarantined);
	fprintf(f, snapstore_fsck_status(r) ? "damage found: a restore of a "
	    "snapshot named above is refused; a new snapshot stores a file "
	    "again when it is unchanged on disk\n" : "the store is whole\n");
}

int
fsck_main(int json)
{
	char *store, *roots, *cause = NULL;
	struct snapstore_fsck r;
	struct stat st;
	json_t *j;
	int rc;

	if (stat(node->data_dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "nubod node fsck: '%s' is not a node's data "
		    "folder\n", node->data_dir);
		return 2;
	}
	store = fsck_store();
	roots = fsck_roots();
	if (snapstore_fsck(store, roots, &r, &cause) < 0) {
		fprintf(stderr, "nubod node fsck: %s\n", cause);
		free(cause);
		rc = 2;
		goto out;
	}
	if (json) {
		j = snapstore_fsck_json(&r);
		json_object_set_new(j, "store", json_string(store));
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(j);
	} else
		fsck_text(stdout, store, &r);
	rc = snapstore_fsck_status(&r);
	snapstore_fsck_release(&r);
out:
	free(store);
	free(roots);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The weekly duty                                                     */

static long long
fsck_every(void)
{
	const char *s = getenv("NUBO_STORE_FSCK_EVERY");
	long long n;

	if (s != NULL && util_parse_int(s, 1, 366LL * 24 * 3600, &n) == 0)
		return n;
	return FSCK_EVERY;
}

static char *
state_path(void)
{
	return xasprintf("%s/store-fsck.json", node->data_dir);
}

static json_t *
state_load(void)
{
	char *p = state_path();
	json_t *j = json_load_file(p, 0, NULL);

	free(p);
	return json_is_object(j) ? j : NULL;
}

static void
state_save(json_t *j)
{
	char *p = state_path(), *text = json_dumps(j, JSON_INDENT(2));

	if (util_write_file(p, text, strlen(text), 0600) == -1)
		log_warn("cannot write %s: %s", p, strerror(errno));
	free(text);
	free(p);
}

/* What the portal is told of a check that found damage: the counts and
 * the snapshots it breaks, each with some of its files. */
static json_t *
report_body(const struct snapstore_fsck *r)
{
	json_t *broken = fsck_broken(r), *e, *files, *f, *snaps = json_array();
	json_t *some;
	const char *key;
	size_t i, total = json_object_size(broken);

	json_object_foreach(broken, key, e) {
		if (json_array_size(snaps) == REPORT_SNAPSHOTS)
			break;
		files = json_object_get(e, "files");
		some = json_array();
		json_array_foreach(files, i, f)
			if (i < REPORT_FILES)
				json_array_append(some, f);
		/* a copy of another node's snapshot keeps "copy" (the
		 * portal has it copied again) */
		json_object_set_new(e, "files_total",
		    json_integer((json_int_t)json_array_size(files)));
		json_object_set_new(e, "files", some);
		json_array_append(snaps, e);
	}
	json_decref(broken);
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "blobs",
	    (json_int_t)r->blobs, "bytes", (json_int_t)r->bytes, "damaged",
	    (json_int_t)r->ndamaged, "missing", (json_int_t)r->nmissing,
	    "quarantined", (json_int_t)r->quarantined, "bad_manifests",
	    (json_int_t)r->nbad, "snapshots_total", (json_int_t)total, "snapshots", snaps);
}

/* Tell the portal what the last check found: 0 once it took it. */
static int
report_send(json_t *report)
{
	json_t *resp = NULL;
	int st;

	st = portal_post("/agent/store-check", report, &resp);
	json_decref(resp);
	if (st == 200)
		return 0;
	if (st == 404) {
		/* a portal older than the report: the log has it */
		log_warn("the portal does not take reports of the snapshot "
		    "store's damage (older than this node): only logged");
		return 0;
	}
	log_warn("cannot report the snapshot store's damage to the portal "
	    "(%s); trying again in %d s", st == -1 ? "unreachable" :
	    "it answered an error", FSCK_RETRY);
	return -1;
}

/* Run the check; the state to keep (caller frees). */
static json_t *
fsck_run(long long now)
{
	char *store = fsck_store(), *roots = fsck_roots(), *cause = NULL, *s;
	struct snapstore_fsck r;
	json_t *state;

	state = json_pack("{s:I}", "last", (json_int_t)now);
	if (snapstore_fsck(store, roots, &r, &cause) < 0) {
		/* tried again at the next interval, not in a loop */
		log_error("the weekly check of the snapshot store could not "
		    "run: %s", cause);
		json_object_set_new(state, "error", json_string(cause));
		free(cause);
	} else {
		s = fsck_summary(&r);
		if (snapstore_fsck_status(&r)) {
			log_error("the weekly check of the snapshot store found "
			    "damage ('nubod node fsck --data %s' says more): "
			    "%s", node->data_dir, s);
			json_object_set_new(state, "report", report_body(&r));
		} else
			log_info("the weekly check of the snapshot store: %s; "
			    "the store is whole", s);
		json_object_set_new(state, "found", json_string(s));
		free(s);
		snapstore_fsck_release(&r);
	}
	free(store);
	free(roots);
	return state;
}

static void *
fsck_thread(void *arg)
{
	long long every = fsck_every(), now, last, wait;
	json_t *state;

	(void)arg;
	for (;;) {
		now = (long long)util_now();
		if ((state = state_load()) == NULL) {
			/* the first check a week after the node first ran
			 * with it, not at every fresh start */
			state = json_pack("{s:I}", "last", (json_int_t)now);
			state_save(state);
		}
		last = jsonx_int(state, "last", now);
		if (now - last >= every || now < last - every) {
			json_decref(state);
			state = fsck_run(now);
			state_save(state);
			testhook_mark("store-fsck");
			last = now;
		}
		if (json_object_get(state, "report") != NULL &&
		    !jsonx_bool(state, "reported", 0) &&
		    report_send(json_object_get(state, "report")) == 0) {
			json_object_set_new(state, "reported", json_true());
			state_save(state);
			testhook_mark("store-fsck-reported");
		}
		wait = last + every - (long long)util_now();
		if (json_object_get(state, "report") != NULL &&
		    !jsonx_bool(state, "reported", 0) && wait > FSCK_RETRY)
			wait = FSCK_RETRY;
		json_decref(state);
		sleep((unsigned)(wait < 1 ? 1 : wait > 3600 ? 3600 : wait));
	}
	return NULL;
}

void
fsck_start(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, fsck_thread, NULL) == 0)
		pthread_detach(t);
	else
		log_error("cannot start the snapshot store's weekly check");
}
