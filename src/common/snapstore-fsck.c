/* Checking the snapshot store (snapstore.h, "Checking the store"): every
 * blob re-hashed, the damaged ones moved to STORE/quarantine/ and named
 * with the snapshots and files they break; and the cheap check a restore
 * or a download makes first, that every blob it needs is there.
 *
 * Why the lock is taken shared (docs/ARCHITECTURE.md, "Snapshot store"):
 * a check re-reads the whole store, which takes minutes on a large one,
 * and the node's snapshots must go on meanwhile; they only add blobs,
 * each complete before it is renamed into blobs/, so a blob the check
 * meets is never half-written. What must not run meanwhile is a sweep,
 * which deletes blobs and would make a blob vanish under the check: it
 * takes the lock exclusively and waits. */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "jsonx.h"
#include "nubo_limits.h"
#include "snapstore-int.h"
#include "snapstore.h"
#include "util.h"
#include "xmalloc.h"

#define DUMP_NAME	"db/db.backup"
/* Files a refused restore names, at most (the rest are counted). */
#define PRESENT_NAMES	5

struct fsck_run {
	const char	*store;
	struct snapstore_fsck *r;
	json_t		*damaged;	/* sha256 → index in r->damaged */
	json_t		*missing;	/* sha256 → index in r->missing */
	unsigned char	*iobuf;
};

/* Where blob hex sits in STORE/quarantine (NULL: not there). */
static char *
quarantine_find(const char *store, const char *hex)
{
	char *p = xasprintf("%s/quarantine/%s", store, hex), *pat;
	glob_t g;

	if (access(p, F_OK) == 0)
		return p;
	free(p);
	pat = xasprintf("%s/quarantine/%s.*", store, hex);
	p = NULL;
	if (glob(pat, 0, NULL, &g) == 0) {
		p = xstrdup(g.gl_pathv[0]);
		globfree(&g);
	}
	free(pat);
	return p;
}

/* Move the blob at path to STORE/quarantine/<hex> (<hex>.N when a blob
 * of that name was quarantined before), both folders synced: the new
 * place, or NULL with *why. */
static char *
quarantine_move(const char *store, const char *hex, const char *path,
    char **why)
{
	char *q = xasprintf("%s/quarantine", store), *to = NULL;
	int n;

	if (mkdir(q, 0700) == 0)
		util_fsync_dir(q);
	else if (errno != EEXIST) {
		*why = xasprintf("cannot create '%s': %s", q, strerror(errno));
		free(q);
		return NULL;
	}
	for (n = 0; n < 1000; n++) {
		free(to);
		to = n == 0 ? xasprintf("%s/%s", q, hex) :
		    xasprintf("%s/%s.%d", q, hex, n);
		if (access(to, F_OK) != 0)
			break;
	}
	if (util_rename_sync(path, to) == -1) {
		*why = xasprintf("cannot move '%s' to '%s': %s", path, to,
		    strerror(errno));
		free(to);
		to = NULL;
	}
	free(q);
	return to;
}

/* Re-hash the blob hex at path (packed: inflated, and its header's
 * size and crc32 checked, which a download's gzip trailer is built
 * from): NULL when whole, else what is wrong (caller frees). */
static char *
blob_check(struct fsck_run *f, const char *hex, const char *path,
    int packed)
{
	struct snapstore_blob b;
	EVP_MD_CTX *mc;
	unsigned char md[32];
	char got[65], *why = NULL;
	ssize_t n;

	snapstore_blob_init(&b);
	if (snapstore_blob_open_path(&b, path, packed, &why) < 0) {
		snapstore_blob_close(&b);
		return why;
	}
	mc = EVP_MD_CTX_new();
	EVP_DigestInit_ex(mc, EVP_sha256(), NULL);
	while ((n = snapstore_blob_read(&b, f->iobuf, NUBO_IO_CHUNK,
	    &why)) > 0)
		EVP_DigestUpdate(mc, f->iobuf, (size_t)n);
	EVP_DigestFinal_ex(mc, md, NULL);
	EVP_MD_CTX_free(mc);
	f->r->bytes += b.got;
	/* a weekly check must not push the apps' data out of the page
	 * cache for blobs nobody reads */
	posix_fadvise(b.fd, 0, 0, POSIX_FADV_DONTNEED);
	util_hex(md, 32, got);
	if (n == 0 && strcmp(got, hex) != 0)
		why = xasprintf("its %lld bytes hash to %s", b.got, got);
	else if (n == 0)
		(void)snapstore_blob_done(&b, &why);
	snapstore_blob_close(&b);
	return why;
}

/* A new entry of list (damaged or missing), indexed by hex in idx. */
static struct snapstore_fsck_blob *
blob_add(struct snapstore_fsck_blob **list, size_t *n, json_t *idx,
    const char *hex)
{
	struct snapstore_fsck_blob *b;

	*list = xrealloc(*list, (*n + 1) * sizeof **list);
	b = &(*list)[*n];
	memset(b, 0, sizeof *b);
	snprintf(b->sha256, sizeof b->sha256, "%s", hex);
	json_object_set_new(idx, hex, json_integer((json_int_t)*n));
	(*n)++;
	return b;
}

/* Mark: re-hash every blob under STORE/blobs, quarantining the damaged. */
static int
fsck_blobs(struct fsck_run *f, char **cause)
{
	char *top = xasprintf("%s/blobs", f->store), *sub, *path, *why, hex[65];
	struct snapstore_fsck_blob *b;
	struct dirent *de, *se;
	int packed;
	DIR *d, *sd;

	if ((d = opendir(top)) == NULL) {
		free(top);
		if (errno == ENOENT)
			return 0;	/* no snapshot was ever stored */
		*cause = xasprintf("cannot read '%s/blobs': %s", f->store,
		    strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strlen(de->d_name) != 2 || de->d_name[0] == '.')
			continue;
		sub = xasprintf("%s/%s", top, de->d_name);
		if ((sd = opendir(sub)) == NULL) {
			free(sub);
			continue;
		}
		while ((se = readdir(sd)) != NULL) {
			/* raw (62 hex digits) or packed (.z) */
			packed = strlen(se->d_name) == 64 &&
			    strcmp(se->d_name + 62, ".z") == 0;
			if (se->d_name[0] == '.' || (strlen(se->d_name) != 62 &&
			    !packed))
				continue;
			snprintf(hex, sizeof hex, "%.2s%.62s", de->d_name,
			    se->d_name);
			if (!snapstore_valid_hex(hex))
				continue;	/* not a blob (the sweep skips
						 * it too) */
			path = xasprintf("%s/%s", sub, se->d_name);
			f->r->blobs++;
			if ((why = blob_check(f, hex, path, packed)) != NULL) {
				b = blob_add(&f->r->damaged, &f->r->ndamaged,
				    f->damaged, hex);
				b->why = why;
				why = NULL;
				b->quarantine = quarantine_move(f->store, hex,
				    path, &why);
				if (b->quarantine != NULL)
					f->r->quarantined++;
				else {
					/* still damaged; say why it stayed */
					char *both = xasprintf("%s; %s", b->why,
					    why);

					free(b->why);
					b->why = both;
					free(why);
				}
			}
			free(path);
		}
		closedir(sd);
		free(sub);
	}
	closedir(d);
	free(top);
	return 0;
}

/* Blob hex holds file of snapshot: noted when it is damaged or not in
 * the store. */
static void
fsck_ref(struct fsck_run *f, const char *hex, const char *snapshot,
    int copy, const char *file)
{
	struct snapstore_fsck_blob *b;
	struct snapstore_fsck_ref *ref;
	json_t *i;

	if ((i = json_object_get(f->damaged, hex)) != NULL)
		b = &f->r->damaged[json_integer_value(i)];
	else if ((i = json_object_get(f->missing, hex)) != NULL)
		b = &f->r->missing[json_integer_value(i)];
	else {
		if (snapstore_blob_exists(f->store, hex))
			return;
		b = blob_add(&f->r->missing, &f->r->nmissing, f->missing, hex);
		b->quarantine = quarantine_find(f->store, hex);
	}
	/* the same chunk twice in one dump is one file */
	if (b->nrefs > 0 && strcmp(b->refs[b->nrefs - 1].snapshot,
	    snapshot) == 0 && b->refs[b->nrefs - 1].copy == copy &&
	    strcmp(b->refs[b->nrefs - 1].file, file) == 0)
		return;
	b->refs = xrealloc(b->refs, (b->nrefs + 1) * sizeof *b->refs);
	ref = &b->refs[b->nrefs++];
	ref->snapshot = xstrdup(snapshot);
	ref->copy = copy;
	ref->file = xstrdup(file);
}

/* The snapshot's id: the name of its manifest's folder. */
static char *
manifest_snapshot(const char *manifest)
{
	const char *end = strrchr(manifest, '/'), *start;

	if (end == NULL)
		return xstrdup(manifest);
	for (start = end; start > manifest && start[-1] != '/'; start--)
		;
	return xstrndup(start, (size_t)(end - start));
}

/* Whether the manifest is a copy: its folder is in a folder named
 * copies. */
static int
manifest_is_copy(const char *manifest)
{
	const char *end = strrchr(manifest, '/'), *p;

	if (end == NULL)
		return 0;
	for (p = end; p > manifest && p[-1] != '/'; p--)
		;
	/* p: the snapshot's folder; before it "…/copies/" */
	return p - manifest >= 7 && strncmp(p - 7, "copies/", 7) == 0 &&
	    (p - manifest == 7 || p[-8] == '/');
}

/* One more (manifest, why) in list v of n; takes why. */
static void
fsck_note(struct snapstore_fsck_bad **v, size_t *n, const char *manifest,
    char *why)
{
	*v = xrealloc(*v, (*n + 1) * sizeof **v);
	(*v)[*n].manifest = xstrdup(manifest);
	(*v)[(*n)++].why = why;
}

static void
fsck_notes_free(struct snapstore_fsck_bad *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].manifest);
		free(v[i].why);
	}
	free(v);
}

/* Every blob a manifest names, with the archive member it holds:
 * fn(arg, hex, member); the dump's chunks and deltas (unless files only), then
 * tree/'s files (unless database only). 0, or -1 with *cause at the
 * first entry that is damaged. */
typedef void (*blob_fn)(void *arg, const char *hex, const char *member);

static int
manifest_blobs(json_t *m, enum snapstore_kind kind, blob_fn fn, void *arg,
    char **cause)
{
	json_t *e;
	const char *hex, *type;
	char *rel, *member;
	size_t i;
	int ok;

	if (kind != SNAPSTORE_FILES) {
		json_t *dump = json_object_get(m, "dump");

		if (snapstore_dump_chain_ok(dump, cause) < 0)
			return -1;
		/* the base's chunks, then the deltas on it */
		json_array_foreach(json_object_get(dump, "chunks"), i, e)
			fn(arg, jsonx_str(e, "sha256"), DUMP_NAME);
		json_array_foreach(json_object_get(dump, "deltas"), i, e)
			fn(arg, jsonx_str(e, "sha256"), DUMP_NAME);
	}
	if (kind == SNAPSTORE_DATABASE)
		return 0;
	json_array_foreach(json_object_get(m, "tree"), i, e) {
		type = jsonx_str(e, "type");
		rel = snapstore_entry_path(e);
		ok = rel != NULL && type != NULL;
		free(rel);
		if (ok && strcmp(type, "d") == 0)
			continue;
		hex = jsonx_str(e, "sha256");
		if (!ok || strcmp(type, "f") != 0 || !snapstore_valid_hex(hex)) {
			*cause = xasprintf("the manifest is damaged at entry "
			    "%zu", i);
			return -1;
		}
		/* named as nubo's JSON names files: bytes that are not
		 * UTF-8 as %XX, fit for a message and for JSON */
		member = xasprintf("tree/%s", jsonx_str(e, "path"));
		fn(arg, hex, member);
		free(member);
	}
	return 0;
}

struct ref_arg {
	struct fsck_run	*f;
	const char	*snapshot;
	int		 copy;
};

static void
ref_one(void *arg, const char *hex, const char *member)
{
	struct ref_arg *a = arg;

	fsck_ref(a->f, hex, a->snapshot, a->copy, member);
}

/* A folder of the pattern that does not exist holds no manifest; any
 * other error (not readable) stops the check: a check that read no
 * manifest must not say the snapshots are whole. */
static int
glob_error(const char *path, int err)
{
	(void)path;
	return err != ENOENT;
}

/* Whether folder is readable or does not exist (no snapshot yet): 0, else
 * -1 with *cause. */
static int
folder_ok(const char *roots, const char *folder, char **cause)
{
	struct stat st;

	if (stat(folder, &st) == -1 ? errno != ENOENT :
	    !S_ISDIR(st.st_mode) || access(folder, R_OK | X_OK) == -1) {
		*cause = xasprintf("cannot list the snapshot manifests '%s': "
		    "'%s' is not a readable folder", roots, folder);
		return -1;
	}
	return 0;
}

/* The folder before roots' first wildcard — each of a brace's folders
 * when one comes first there ("DIR/{snapshots,copies}/…") — must be a
 * readable folder or not exist: 0, else -1 with *cause. glob(3) passes
 * over a component that is not a folder (ENOTDIR) as if it held nothing,
 * which would read as "no snapshot is damaged". */
static int
roots_base_ok(const char *roots, char **cause)
{
	size_t n = strcspn(roots, "*?[{"), k;
	const char *alt, *end;
	char *base = xstrndup(roots, n), *slash = strrchr(base, '/'), *dir;
	int rc = 0;

	if (roots[n] == '{' && (end = strchr(roots + n, '}')) != NULL &&
	    end[1] == '/' && n > 0 && roots[n - 1] == '/') {
		for (alt = roots + n + 1; rc == 0 && alt < end; alt += k + 1) {
			k = strcspn(alt, ",}");
			dir = xasprintf("%s%.*s", base, (int)k, alt);
			rc = folder_ok(roots, dir, cause);
			free(dir);
		}
	} else if (slash != NULL && slash != base) {
		*slash = '\0';
		rc = folder_ok(roots, base, cause);
	}
	free(base);
	return rc;
}

/* Every manifest matching roots: which files the damaged blobs held, and
 * which blobs named are not in the store. */
static int
fsck_manifests(struct fsck_run *f, const char *roots, char **cause)
{
	struct ref_arg a;
	char *why;
	json_t *m;
	glob_t g;
	size_t k;
	int gr;

	if (roots_base_ok(roots, cause) < 0)
		return -1;
	gr = glob(roots, GLOB_BRACE, glob_error, &g);
	if (gr == GLOB_NOMATCH)
		return 0;
	if (gr != 0) {
		*cause = xasprintf("cannot list the snapshot manifests '%s'",
		    roots);
		return -1;
	}
	for (k = 0; k < g.gl_pathc; k++) {
		why = NULL;
		if ((m = snapstore_manifest_load(g.gl_pathv[k], &why)) == NULL) {
			fsck_note(&f->r->bad, &f->r->nbad, g.gl_pathv[k], why);
			continue;
		}
		f->r->snapshots++;
		a.f = f;
		a.snapshot = manifest_snapshot(g.gl_pathv[k]);
		a.copy = manifest_is_copy(g.gl_pathv[k]);
		/* a damaged entry: the entries before it are checked, the
		 * manifest is reported */
		if (manifest_blobs(m, SNAPSTORE_FULL, ref_one, &a, &why) < 0)
			fsck_note(&f->r->bad, &f->r->nbad, g.gl_pathv[k], why);
		/* a chain's download copy: derived, so a damaged one is
		 * removed (the download makes the segments again) and
		 * told, no snapshot broken */
		why = NULL;
		if (f->iobuf != NULL && snapstore_chain_check(f->store,
		    json_object_get(m, "dump"), f->iobuf, &why) > 0)
			fsck_note(&f->r->dropped, &f->r->ndropped,
			    g.gl_pathv[k], why);
		free((char *)a.snapshot);
		json_decref(m);
	}
	globfree(&g);
	return 0;
}

static int
blob_cmp(const void *a, const void *b)
{
	return strcmp(((const struct snapstore_fsck_blob *)a)->sha256,
	    ((const struct snapstore_fsck_blob *)b)->sha256);
}

int
snapstore_fsck(const char *store, const char *roots,
    struct snapstore_fsck *r, char **cause)
{
	struct fsck_run f;
	struct stat st;
	char *p;
	double t0 = util_mono();
	int lock = -1, one = -1, rc = -1;

	memset(r, 0, sizeof *r);
	memset(&f, 0, sizeof f);
	f.store = store;
	f.r = r;
	if (stat(store, &st) == -1 && errno == ENOENT) {
		/* nothing stored yet: only the manifests can be wrong */
		f.damaged = json_object();
		f.missing = json_object();
		rc = fsck_manifests(&f, roots, cause);
		goto out;
	}
	/* one check at a time: two would read everything twice and move
	 * the same blob */
	p = xasprintf("%s/fsck.lock", store);
	one = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(p);
	if (one < 0 || flock(one, LOCK_EX | LOCK_NB) < 0) {
		*cause = one < 0 || errno != EWOULDBLOCK ? xasprintf("cannot "
		    "lock the snapshot store '%s': %s", store, strerror(errno)) :
		    xasprintf("another check of the snapshot store '%s' is "
		    "running", store);
		goto out;
	}
	if ((lock = snapstore_lock(store, LOCK_SH, cause)) < 0)
		goto out;
	f.damaged = json_object();
	f.missing = json_object();
	f.iobuf = xmalloc(NUBO_IO_CHUNK);
	/* the blobs first, then the manifests: a snapshot completed
	 * meanwhile names only blobs that are in the store (or that this
	 * check moved, and reports) */
	if (fsck_blobs(&f, cause) < 0 || fsck_manifests(&f, roots, cause) < 0)
		goto out;
	rc = 0;
out:
	if (lock >= 0)
		close(lock);
	if (one >= 0)
		close(one);
	json_decref(f.damaged);
	json_decref(f.missing);
	free(f.iobuf);
	/* qsort() takes no NULL, even for no element (UBSan says so) */
	if (r->ndamaged > 0)
		qsort(r->damaged, r->ndamaged, sizeof *r->damaged, blob_cmp);
	if (r->nmissing > 0)
		qsort(r->missing, r->nmissing, sizeof *r->missing, blob_cmp);
	r->seconds = util_mono() - t0;
	if (rc < 0)
		snapstore_fsck_release(r);
	return rc;
}

static void
blobs_free(struct snapstore_fsck_blob *list, size_t n)
{
	size_t i, k;

	for (i = 0; i < n; i++) {
		for (k = 0; k < list[i].nrefs; k++) {
			free(list[i].refs[k].snapshot);
			free(list[i].refs[k].file);
		}
		free(list[i].refs);
		free(list[i].why);
		free(list[i].quarantine);
	}
	free(list);
}

void
snapstore_fsck_release(struct snapstore_fsck *r)
{
	blobs_free(r->damaged, r->ndamaged);
	blobs_free(r->missing, r->nmissing);
	fsck_notes_free(r->bad, r->nbad);
	fsck_notes_free(r->dropped, r->ndropped);
	memset(r, 0, sizeof *r);
}

int
snapstore_fsck_status(const struct snapstore_fsck *r)
{
	return r->ndamaged > 0 || r->nmissing > 0 || r->nbad > 0;
}

static json_t *
blobs_json(const struct snapstore_fsck_blob *list, size_t n)
{
	json_t *a = json_array(), *b, *files;
	size_t i, k;

	for (i = 0; i < n; i++) {
		files = json_array();
		for (k = 0; k < list[i].nrefs; k++)
			json_array_append_new(files, json_pack("{s:s,s:b,s:s}",
			    "snapshot", list[i].refs[k].snapshot, "copy",
			    list[i].refs[k].copy, "file",
			    list[i].refs[k].file));
		b = json_pack("{s:s,s:s?,s:s?,s:o}", "sha256", list[i].sha256,
		    "why", list[i].why, "quarantine", list[i].quarantine,
		    "files", files);
		json_array_append_new(a, b);
	}
	return a;
}

json_t *
snapstore_fsck_json(const struct snapstore_fsck *r)
{
	json_t *bad = json_array(), *dropped = json_array();
	size_t i;

	for (i = 0; i < r->nbad; i++)
		json_array_append_new(bad, json_pack("{s:s,s:s}", "manifest",
		    r->bad[i].manifest, "why", r->bad[i].why));
	for (i = 0; i < r->ndropped; i++)
		json_array_append_new(dropped, json_pack("{s:s,s:s}",
		    "manifest", r->dropped[i].manifest, "why",
		    r->dropped[i].why));
	return json_pack("{s:I,s:I,s:I,s:I,s:f,s:o,s:o,s:o,s:o}", "blobs",
	    (json_int_t)r->blobs, "bytes", (json_int_t)r->bytes, "snapshots",
	    (json_int_t)r->snapshots, "quarantined", (json_int_t)r->quarantined,
	    "seconds", r->seconds, "damaged", blobs_json(r->damaged,
	    r->ndamaged), "missing", blobs_json(r->missing, r->nmissing),
	    "bad_manifests", bad, "download_copies_removed", dropped);
}

/* ------------------------------------------------------------------ */
/* Before a restore or a download                                      */

struct present {
	const char	*store;
	json_t		*absent;	/* member → 1 (quarantined) or 0 */
	json_t		*order;		/* the members, in manifest order */
};

static void
present_one(void *arg, const char *hex, const char *member)
{
	struct present *p = arg;
	char *q;

	if (!snapstore_blob_exists(p->store, hex) &&
	    json_object_get(p->absent, member) == NULL) {
		q = quarantine_find(p->store, hex);
		json_object_set_new(p->absent, member, json_boolean(q != NULL));
		json_array_append_new(p->order, json_string(member));
		free(q);
	}
}

int
snapstore_present(const char *store, const char *manifest,
    enum snapstore_kind kind, char **cause)
{
	struct present p;
	char *names = NULL;
	json_t *m, *v;
	size_t i, n, quarantined = 0;
	char *s;
	int rc = -1;

	if ((m = snapstore_manifest_load(manifest, cause)) == NULL)
		return -1;
	p.store = store;
	p.absent = json_object();
	p.order = json_array();
	if (manifest_blobs(m, kind, present_one, &p, cause) < 0) {
		s = *cause;
		*cause = xasprintf("the snapshot's %s", s + strlen("the "));
		free(s);
		goto out;
	}
	if ((n = json_array_size(p.order)) == 0) {
		rc = 0;
		goto out;
	}
	json_array_foreach(p.order, i, v) {
		quarantined += json_is_true(json_object_get(p.absent,
		    json_string_value(v)));
		if (i >= PRESENT_NAMES)
			continue;
		s = xasprintf("%s%s'%s'", names ? names : "", i == 0 ? "" :
		    i + 1 == n || i + 1 == PRESENT_NAMES ? (n > PRESENT_NAMES ?
		    ", " : " and ") : ", ", json_string_value(v));
		free(names);
		names = s;
	}
	if (n > PRESENT_NAMES) {
		s = xasprintf("%s and %zu more", names, n - PRESENT_NAMES);
		free(names);
		names = s;
	}
	*cause = xasprintf("the snapshot's blob%s for %s %s %s", n > 1 ? "s" :
	    "", names, n > 1 ? "are" : "is", quarantined == n ? "damaged "
	    "(found so and quarantined by a check of the node's snapshot "
	    "store)" : quarantined == 0 ? "missing from the node's snapshot "
	    "store" : "damaged (quarantined by a check of the node's "
	    "snapshot store) or missing from it");
	free(names);
out:
	json_decref(p.absent);
	json_decref(p.order);
	json_decref(m);
	return rc;
}
