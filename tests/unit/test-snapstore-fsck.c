/* Checking the snapshot store (snapstore-fsck.c): a blob with one byte
 * changed is found, named with every snapshot and file it breaks, and
 * moved to quarantine (its bytes kept); a deleted blob is reported
 * missing with the files it held; a second check reports the
 * quarantined blob missing, not damaged again; a clean store is status
 * 0; the sweep leaves the quarantine alone; a snapshot taken after the
 * quarantine stores the file again and heals the older ones; a restore's
 * presence check names the files before anything is read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <zlib.h>

#include "jsonx.h"
#include "snapstore-int.h"
#include "snapstore.h"
#include "util.h"
#include "xmalloc.h"

#include "data/tiny-dump.inc"

static char tmp[256];

static int
setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/nubo-snapfsck-XXXXXX");
	return mkdtemp(tmp) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return util_rm_rf(tmp);
}

static char *
at(const char *rel)
{
	return xasprintf("%s/%s", tmp, rel);
}

static void
put(const char *rel, const char *data)
{
	char *p = xasprintf("%s/files/%s", tmp, rel), *d = xstrdup(p);

	*strrchr(d, '/') = '\0';
	assert_int_equal(util_mkdir_p(d, 0755), 0);
	assert_int_equal(util_write_file(p, data, strlen(data), 0644), 0);
	free(d);
	free(p);
}

/* Snapshot files/ into store/ as snapshots/<id>/manifest.json, after
 * snapshot prev (NULL: none). */
static void
snap(const char *id, const char *prev)
{
	struct snapstore_snap_opts o;
	char *store = at("store"), *files = at("files"), *cause = NULL;
	char *dir = xasprintf("%s/snapshots/%s", tmp, id);
	char *man = xasprintf("%s/manifest.json", dir);
	char *pm = prev ? xasprintf("%s/snapshots/%s/manifest.json", tmp,
	    prev) : NULL;
	char *dump = at("in.dump");

	assert_int_equal(util_mkdir_p(dir, 0700), 0);
	if (access(dump, F_OK) != 0)
		assert_int_equal(util_write_file(dump, tiny_dump, tiny_dump_len,
		    0644), 0);
	memset(&o, 0, sizeof(o));
	o.store = store;
	o.files_dir = files;
	o.dump_fd = open(dump, O_RDONLY);
	assert_true(o.dump_fd >= 0);
	o.prev = pm;
	o.manifest = man;
	o.model_version = "1.2.3";
	o.created = 1700000000;
	o.database_size = -1;
	if (snapstore_snapshot(&o, NULL, &cause) < 0)
		fail_msg("snapshot: %s", cause);
	close(o.dump_fd);
	free(store);
	free(files);
	free(dir);
	free(man);
	free(pm);
	free(dump);
}

/* The blob of file rel (tree/rel) in snapshot id's manifest, in its
 * packed form; caller frees. */
static char *
blob_of(const char *id, const char *rel)
{
	char *man = xasprintf("%s/snapshots/%s/manifest.json", tmp, id);
	json_t *m = json_load_file(man, 0, NULL), *e;
	char *out = NULL;
	size_t i;

	assert_non_null(m);
	json_array_foreach(json_object_get(m, "tree"), i, e)
		if (strcmp(jsonx_str(e, "path"), rel) == 0)
			out = xasprintf("%s/store/blobs/%.2s/%s.z", tmp,
			    jsonx_str(e, "sha256"), jsonx_str(e, "sha256") + 2);
	assert_non_null(out);
	json_decref(m);
	free(man);
	return out;
}

/* The sha256 in a blob's path. */
static const char *
sha_of(const char *blob, char *hex)
{
	const char *r = strrchr(blob, '/');

	snprintf(hex, 65, "%.2s%.62s", r - 2, r + 1);
	return hex;
}

static void
fsck(struct snapstore_fsck *r)
{
	char *store = at("store"), *roots = at("snapshots/*/manifest.json");
	char *cause = NULL;

	if (snapstore_fsck(store, roots, r, &cause) < 0)
		fail_msg("fsck: %s", cause);
	free(store);
	free(roots);
}

/* r's entry for blob hex in list, with nrefs files. */
static const struct snapstore_fsck_blob *
entry(const struct snapstore_fsck_blob *list, size_t n, const char *hex)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(list[i].sha256, hex) == 0)
			return &list[i];
	fail_msg("no entry for %s", hex);
	return NULL;
}

static void
has_ref(const struct snapstore_fsck_blob *b, const char *snapshot,
    const char *file)
{
	size_t i;

	for (i = 0; i < b->nrefs; i++)
		if (strcmp(b->refs[i].snapshot, snapshot) == 0 &&
		    strcmp(b->refs[i].file, file) == 0)
			return;
	fail_msg("blob %s: no file %s of snapshot %s", b->sha256, file,
	    snapshot);
}

/* The presence check of snapshot id's download of kind: 0, or -1 with a
 * cause holding want. */
static void
present(const char *id, enum snapstore_kind kind, const char *want)
{
	char *store = at("store"), *cause = NULL;
	char *man = xasprintf("%s/snapshots/%s/manifest.json", tmp, id);
	int rc = snapstore_present(store, man, kind, &cause);

	if (want == NULL && rc != 0)
		fail_msg("present: %s", cause);
	if (want != NULL) {
		assert_int_equal(rc, -1);
		if (strstr(cause, want) == NULL)
			fail_msg("'%s' does not say '%s'", cause, want);
	}
	free(cause);
	free(store);
	free(man);
}

/* 1 when the packed blob at path holds want (inflated). */
static int
file_is(const char *path, const char *want)
{
	struct snapstore_blob b;
	char got[1024], *why = NULL;
	ssize_t n = -1;

	snapstore_blob_init(&b);
	if (snapstore_blob_open_path(&b, path, 1, &why) == 0)
		n = snapstore_blob_read(&b, got, sizeof got - 1, &why);
	snapstore_blob_close(&b);
	free(why);
	if (n < 0)
		return 0;
	got[n] = '\0';
	return strcmp(got, want) == 0;
}

static int
to_fd(void *arg, const void *data, size_t len)
{
	return util_write_all(*(int *)arg, data, len);
}

/* Change byte off of a packed blob's contents, as bit rot that still
 * inflates would: its header (size, crc32) kept, its contents packed
 * again with the byte changed. */
static void
damage(const char *path, off_t off, char c)
{
	struct snapstore_blob b;
	struct snapstore_pack pk;
	unsigned char head[SNAPSTORE_PACK_HEAD];
	char raw[1024], *why = NULL;
	ssize_t n;
	int fd;

	snapstore_blob_init(&b);
	assert_int_equal(snapstore_blob_open_path(&b, path, 1, &why), 0);
	n = snapstore_blob_read(&b, raw, sizeof raw, &why);
	assert_true(n > off);
	snapstore_blob_close(&b);
	raw[off] = c;
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, head, sizeof head), (ssize_t)sizeof head);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, head, sizeof head, 0), (ssize_t)sizeof head);
	assert_int_equal(lseek(fd, 0, SEEK_END), (off_t)sizeof head);
	snapstore_pack_init(&pk);
	snapstore_pack_begin(&pk, 0, to_fd, &fd);
	assert_int_equal(snapstore_pack_add(&pk, raw, (size_t)n), 0);
	assert_int_equal(snapstore_pack_end(&pk), 0);
	snapstore_pack_release(&pk);
	close(fd);
}

static void
test_clean(void **state)
{
	struct snapstore_fsck r;
	char *p, *cause = NULL, *roots = at("snapshots/*/manifest.json");
	json_t *j;

	(void)state;
	/* no store yet: nothing to check, and clean */
	fsck(&r);
	assert_int_equal(r.blobs, 0);
	assert_int_equal(snapstore_fsck_status(&r), 0);
	snapstore_fsck_release(&r);
	/* snapshots/ that is not a folder: no check, rather than "whole" */
	p = at("snapshots");
	assert_int_equal(util_write_file(p, "x", 1, 0600), 0);
	assert_int_equal(snapstore_fsck(tmp, roots, &r, &cause), -1);
	assert_non_null(strstr(cause, "cannot list"));
	free(cause);
	assert_int_equal(unlink(p), 0);
	free(p);
	free(roots);

	put("a/one", "the first document");
	put("b/two", "the second document");
	snap("s1", NULL);
	fsck(&r);
	/* two files and the tiny dump's one chunk */
	assert_int_equal(r.blobs, 3);
	assert_int_equal(r.bytes, (long long)(tiny_dump_len + 18 + 19));
	assert_int_equal(r.snapshots, 1);
	assert_int_equal(r.ndamaged + r.nmissing + r.nbad, 0);
	assert_int_equal(snapstore_fsck_status(&r), 0);
	j = snapstore_fsck_json(&r);
	assert_int_equal(jsonx_int(j, "blobs", 0), 3);
	assert_int_equal(json_array_size(json_object_get(j, "damaged")), 0);
	json_decref(j);
	snapstore_fsck_release(&r);
	present("s1", SNAPSTORE_FULL, NULL);
}

/* The case: one byte of a blob changed, another blob deleted. */
static void
test_damaged_and_missing(void **state)
{
	struct snapstore_fsck r;
	const struct snapstore_fsck_blob *b;
	char *shared, *only2, *q, *p, *store = at("store"), *roots;
	char h1[65], h2[65], *cause = NULL;
	long long freed;
	json_t *j;

	(void)state;
	put("a/shared", "in both snapshots");
	put("c/other", "also in both, untouched");
	snap("s1", NULL);
	put("b/only2", "in the second only");
	snap("s2", "s1");
	shared = blob_of("s1", "a/shared");
	only2 = blob_of("s2", "b/only2");
	sha_of(shared, h1);
	sha_of(only2, h2);
	damage(shared, 4, 'X');
	assert_int_equal(unlink(only2), 0);

	fsck(&r);
	assert_int_equal(snapstore_fsck_status(&r), 1);
	assert_int_equal(r.snapshots, 2);
	assert_int_equal(r.ndamaged, 1);
	b = entry(r.damaged, r.ndamaged, h1);
	assert_non_null(strstr(b->why, "hash to"));
	assert_int_equal(b->nrefs, 2);
	has_ref(b, "s1", "tree/a/shared");
	has_ref(b, "s2", "tree/a/shared");
	/* moved, never deleted: the damaged bytes are in quarantine */
	assert_non_null(b->quarantine);
	assert_true(file_is(b->quarantine, "in bXth snapshots"));
	assert_int_not_equal(access(shared, F_OK), 0);
	assert_int_equal(r.quarantined, 1);
	assert_int_equal(r.nmissing, 1);
	b = entry(r.missing, r.nmissing, h2);
	assert_int_equal(b->nrefs, 1);
	has_ref(b, "s2", "tree/b/only2");
	assert_null(b->quarantine);
	assert_int_equal(r.blobs, 3);	/* the dump, two files left */
	j = snapstore_fsck_json(&r);
	assert_string_equal(jsonx_str(json_array_get(json_object_get(
	    json_array_get(json_object_get(j, "damaged"), 0), "files"), 0),
	    "snapshot"), "s1");
	assert_string_equal(jsonx_str(json_array_get(json_object_get(j,
	    "missing"), 0), "sha256"), h2);
	json_decref(j);
	q = xstrdup(r.damaged[0].quarantine);
	snapstore_fsck_release(&r);

	/* a restore is refused before it reads anything, naming the
	 * files; the database alone is whole */
	present("s1", SNAPSTORE_FULL, "blob for 'tree/a/shared' is damaged "
	    "(found so and quarantined");
	present("s2", SNAPSTORE_FULL, "blobs for 'tree/a/shared' and "
	    "'tree/b/only2' are damaged (quarantined by a check of the "
	    "node's snapshot store) or missing");
	present("s2", SNAPSTORE_DATABASE, NULL);
	present("s1", SNAPSTORE_FILES, "'tree/a/shared'");

	/* again: the quarantined blob is missing now, not damaged again */
	fsck(&r);
	assert_int_equal(snapstore_fsck_status(&r), 1);
	assert_int_equal(r.ndamaged, 0);
	assert_int_equal(r.quarantined, 0);
	assert_int_equal(r.nmissing, 2);
	b = entry(r.missing, r.nmissing, h1);
	assert_int_equal(b->nrefs, 2);
	assert_non_null(b->quarantine);
	assert_string_equal(b->quarantine, q);
	snapstore_fsck_release(&r);

	/* the sweep leaves the quarantine alone */
	roots = at("snapshots/*/manifest.json");
	assert_int_equal(snapstore_sweep(store, roots, &freed, NULL, &cause),
	    0);
	assert_true(file_is(q, "in bXth snapshots"));

	/* a new snapshot finds the blob gone and stores the file again
	 * (it is unchanged): the older snapshots are whole again; the
	 * deleted file's blob stays missing for s2 */
	p = at("files/b/only2");
	assert_int_equal(unlink(p), 0);
	free(p);
	snap("s3", "s2");
	fsck(&r);
	assert_int_equal(r.ndamaged, 0);
	assert_int_equal(r.nmissing, 1);
	assert_string_equal(r.missing[0].sha256, h2);
	snapstore_fsck_release(&r);
	present("s1", SNAPSTORE_FULL, NULL);

	/* damaged again later: a second quarantined copy, the first kept */
	damage(shared, 4, 'Y');
	fsck(&r);
	assert_int_equal(r.ndamaged, 1);
	assert_string_not_equal(r.damaged[0].quarantine, q);
	assert_true(file_is(r.damaged[0].quarantine, "in bYth snapshots"));
	assert_true(file_is(q, "in bXth snapshots"));
	snapstore_fsck_release(&r);
	free(q);
	free(roots);
	free(shared);
	free(only2);
	free(store);
}

/* A blob that cannot be read as a file is damaged too; a manifest that
 * cannot be read is reported (its snapshot cannot be checked). */
static void
test_unreadable(void **state)
{
	struct snapstore_fsck r;
	char *doc, *man;

	(void)state;
	put("doc", "the document");
	snap("s1", NULL);
	snap("s2", "s1");
	doc = blob_of("s1", "doc");
	assert_int_equal(unlink(doc), 0);
	assert_int_equal(mkdir(doc, 0700), 0);
	man = at("snapshots/s2/manifest.json");
	assert_int_equal(util_write_file(man, "{\"format\":", 10, 0600), 0);
	fsck(&r);
	assert_int_equal(snapstore_fsck_status(&r), 1);
	assert_int_equal(r.ndamaged, 1);
	assert_string_equal(r.damaged[0].why, "is not a regular file");
	assert_non_null(r.damaged[0].quarantine);
	has_ref(&r.damaged[0], "s1", "tree/doc");
	assert_int_equal(r.nbad, 1);
	assert_string_equal(r.bad[0].manifest, man);
	snapstore_fsck_release(&r);
	free(man);
	free(doc);
}

/* A packed blob whose bytes hash to its name but whose header's crc32
 * is not theirs (a download's gzip trailer is built from it), or whose
 * deflated bytes end in a final block (it would end a download's
 * stream early) is damaged; a raw blob, as an older store holds it, is
 * checked as before. */
static void
test_packed_header(void **state)
{
	struct snapstore_fsck r;
	char *crc, *fin, *raw, *store = at("store"), h[65];
	const unsigned char last = 1;
	unsigned char zout[256];
	z_stream zs;
	int fd;

	(void)state;
	put("crc", "its crc32 is wrong");
	put("final", "a final block");
	put("raw", "kept raw");
	snap("s1", NULL);
	crc = blob_of("s1", "crc");
	fin = blob_of("s1", "final");
	/* the header's crc32 (bytes 16-19) */
	fd = open(crc, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, &last, 1, 16), 1);
	close(fd);
	/* the same bytes deflated with Z_FINISH: a final block, valid
	 * deflate that would end a download's stream at it */
	fd = open(fin, O_RDWR);
	assert_true(fd >= 0);
	zs.zalloc = Z_NULL;
	zs.zfree = Z_NULL;
	zs.opaque = Z_NULL;
	assert_int_equal(deflateInit2(&zs, 1, Z_DEFLATED, -15, 8,
	    Z_DEFAULT_STRATEGY), Z_OK);
	zs.next_in = (unsigned char *)"a final block";
	zs.avail_in = 13;
	zs.next_out = zout;
	zs.avail_out = sizeof zout;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	assert_int_equal(ftruncate(fd, SNAPSTORE_PACK_HEAD), 0);
	assert_int_equal(pwrite(fd, zout, sizeof zout - zs.avail_out,
	    SNAPSTORE_PACK_HEAD), (ssize_t)(sizeof zout - zs.avail_out));
	deflateEnd(&zs);
	close(fd);
	raw = blob_of("s1", "raw");
	assert_int_equal(unlink(raw), 0);
	raw[strlen(raw) - 2] = '\0';
	assert_int_equal(util_write_file(raw, "kept raw", 8, 0600), 0);
	fsck(&r);
	assert_int_equal(r.blobs, 4);
	assert_int_equal(r.ndamaged, 2);
	assert_non_null(strstr(entry(r.damaged, r.ndamaged, sha_of(crc,
	    h))->why, "crc32"));
	assert_non_null(strstr(entry(r.damaged, r.ndamaged, sha_of(fin,
	    h))->why, "final deflate block"));
	assert_int_equal(r.nmissing, 0);
	snapstore_fsck_release(&r);
	free(crc);
	free(fin);
	free(raw);
	free(store);
}

/* A manifest damaged at one entry is reported; one check at a time. */
static void
test_bad_entry_and_busy(void **state)
{
	struct snapstore_fsck r;
	char *man, *store = at("store"), *roots, *cause = NULL, *lp;
	json_t *m;
	int fd;

	(void)state;
	put("doc", "the document");
	snap("s1", NULL);
	man = at("snapshots/s1/manifest.json");
	m = json_load_file(man, 0, NULL);
	json_object_set_new(json_array_get(json_object_get(m, "tree"), 0),
	    "path", json_string("../../etc/passwd"));
	assert_int_equal(json_dump_file(m, man, 0), 0);
	json_decref(m);
	fsck(&r);
	assert_int_equal(r.nbad, 1);
	assert_non_null(strstr(r.bad[0].why, "damaged at entry 0"));
	snapstore_fsck_release(&r);
	present("s1", SNAPSTORE_FULL, "the snapshot's manifest is damaged at "
	    "entry 0");

	lp = at("store/fsck.lock");
	fd = open(lp, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	roots = at("snapshots/*/manifest.json");
	assert_int_equal(snapstore_fsck(store, roots, &r, &cause), -1);
	assert_non_null(strstr(cause, "another check"));
	free(cause);
	close(fd);
	free(lp);
	free(roots);
	free(man);
	free(store);
}

/* A node's copies of other nodes' snapshots (copies/<id>/manifest.json)
 * are checked too, and a damaged blob names them as copies. */
static void
test_copies(void **state)
{
	struct snapstore_fsck r;
	const struct snapstore_fsck_blob *b;
	char *store = at("store"), *cause = NULL, hex[65], *blob, *src, *dst;
	char *roots = at("{snapshots,copies}/*/manifest.json"), *text;
	json_t *j;
	size_t n;
	int copies = 0, own = 0;

	(void)state;
	/* copies/ that is not a folder: no check, rather than "whole" */
	src = at("copies");
	assert_int_equal(util_write_file(src, "x", 1, 0600), 0);
	assert_int_equal(snapstore_fsck(store, roots, &r, &cause), -1);
	assert_non_null(strstr(cause, "copies' is not a readable folder"));
	free(cause);
	cause = NULL;
	assert_int_equal(unlink(src), 0);
	free(src);
	put("a/one", "the first document");
	snap("s1", NULL);
	src = at("snapshots/s1/manifest.json");
	dst = at("copies/c0ffee00-0000-4000-8000-000000000001/manifest.json");
	*strrchr(dst, '/') = '\0';
	assert_int_equal(util_mkdir_p(dst, 0700), 0);
	*strrchr(dst, '\0') = '/';
	text = util_read_file(src, 1 << 20, &n);
	assert_non_null(text);
	assert_int_equal(util_write_file(dst, text, n, 0600), 0);
	blob = blob_of("s1", "a/one");
	damage(blob, 2, 'X');
	if (snapstore_fsck(store, roots, &r, &cause) < 0)
		fail_msg("fsck: %s", cause);
	assert_int_equal(r.snapshots, 2);
	assert_int_equal(r.ndamaged, 1);
	b = entry(r.damaged, r.ndamaged, sha_of(blob, hex));
	has_ref(b, "s1", "tree/a/one");
	has_ref(b, "c0ffee00-0000-4000-8000-000000000001", "tree/a/one");
	for (n = 0; n < b->nrefs; n++) {
		copies += b->refs[n].copy;
		own += !b->refs[n].copy;
	}
	assert_int_equal(copies, 1);
	assert_int_equal(own, 1);
	j = snapstore_fsck_json(&r);
	assert_true(json_is_boolean(json_object_get(json_array_get(
	    json_object_get(json_array_get(json_object_get(j, "damaged"), 0),
	    "files"), 0), "copy")));
	json_decref(j);
	snapstore_fsck_release(&r);
	free(text);
	free(blob);
	free(src);
	free(dst);
	free(store);
	free(roots);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_and_missing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_packed_header, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unreadable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_entry_and_busy, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
