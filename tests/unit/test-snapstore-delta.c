/* The dump at the grain of its rows (issue #16): a snapshot after one
 * whose dump was stored goes in as a delta — only the rows that changed
 * — and every download of every snapshot of the chain gives the dump's
 * exact bytes, at the size announced, from any Range; a damaged delta
 * is found; the sweep keeps what a kept snapshot's chain needs. The
 * dumps are made here in the shape pg_dump -Fc -Z0 writes table data
 * (each row a block: a length, the row, a newline), with the test's own
 * record of every version's bytes. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>
#include <jansson.h>

#include "buf.h"
#include "jsonx.h"
#include "snapstore-int.h"
#include "snapstore.h"
#include "util.h"
#include "xmalloc.h"

static char tmp[256];

static int
setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/nubo-snapdelta-XXXXXX");
	return mkdtemp(tmp) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return util_rm_rf(tmp);
}

/* A table: rows by id, each row's text and where it sits (its order in
 * the dump: updated rows move, as PostgreSQL puts a new version where
 * there is room). */
#define ROWS	40000

struct table {
	int	 n;
	int	*order;		/* position → id */
	int	*version;	/* id → how often changed */
	int	 night;
};

static unsigned long long rnd_state = 0x9e3779b97f4a7c15ULL;

static unsigned
rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return (unsigned)(rnd_state >> 11);
}

static void
row_text(struct buf *b, int id, int version)
{
	char row[512];
	int len, i;

	len = snprintf(row, sizeof row, "%d\tnote %d\tversion %d ", id, id,
	    version);
	for (i = 0; i < 3 + id % 5; i++)
		len += snprintf(row + len, sizeof row - (size_t)len,
		    "lorem ipsum %08x ", (unsigned)(id * 2654435761u + version));
	row[len++] = '\n';
	/* as pg_dump's custom format: a sign byte, 4 bytes of length */
	buf_append(b, "\0", 1);
	for (i = 0; i < 4; i++) {
		unsigned char c = (unsigned char)(len >> (8 * i));

		buf_append(b, &c, 1);
	}
	buf_append(b, row, (size_t)len);
}

/* The dump's bytes: a header that changes every night (a time, the
 * table's size), the rows in their order, a trailer. */
static void
dump_bytes(struct table *t, struct buf *b)
{
	int i;

	b->len = 0;
	buf_printf(b, "PGDMP header, night %d, rows %d\n"
	    "TOC entry: TABLE DATA public notes\n", t->night, t->n);
	for (i = 0; i < t->n; i++)
		row_text(b, t->order[i], t->version[t->order[i]]);
	buf_printf(b, "\nend of data, night %d\n", t->night);
}

static void
table_init(struct table *t)
{
	int i;

	t->n = ROWS;
	t->order = xcalloc(ROWS * 2, sizeof(int));
	t->version = xcalloc(ROWS * 2, sizeof(int));
	for (i = 0; i < ROWS; i++)
		t->order[i] = i + 1;
	t->night = 0;
}

/* A night's changes: pct % of rows updated all over the table (the new
 * version moved to a random place), a few rows added at the end, a run
 * of rows deleted. */
static void
table_night(struct table *t, int pct)
{
	int i, k, id, from, to;

	t->night++;
	for (k = 0; k < t->n * pct / 100; k++) {
		from = (int)(rnd() % (unsigned)t->n);
		id = t->order[from];
		t->version[id]++;
		to = (int)(rnd() % (unsigned)t->n);
		if (to > from)
			memmove(&t->order[from], &t->order[from + 1],
			    (size_t)(to - from) * sizeof(int));
		else
			memmove(&t->order[to + 1], &t->order[to],
			    (size_t)(from - to) * sizeof(int));
		t->order[to] = id;
	}
	for (i = 0; i < 50; i++)
		t->order[t->n++] = ROWS + t->night * 100 + i;
	/* 30 rows deleted from the middle */
	from = t->n / 2;
	memmove(&t->order[from], &t->order[from + 30], (size_t)(t->n - from -
	    30) * sizeof(int));
	t->n -= 30;
}

static char *
tpath(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
tpath(const char *fmt, ...)
{
	va_list ap;
	char *rel, *p;

	va_start(ap, fmt);
	assert_true(vasprintf(&rel, fmt, ap) >= 0);
	va_end(ap);
	p = xasprintf("%s/%s", tmp, rel);
	free(rel);
	return p;
}

/* Snapshot `name` of the dump in b (after prev, may be NULL), given the
 * index x made ahead of it (may be NULL; taken over). */
static void
snap_early(const char *name, const char *prev, struct buf *b,
    struct snapstore_stats *st, struct snapstore_dindex *x)
{
	struct snapstore_snap_opts o;
	char *store = tpath("store"), *man = tpath("%s.json", name);
	char *pm = prev ? tpath("%s.json", prev) : NULL;
	char *dump = tpath("in.dump"), *cause = NULL;

	assert_int_equal(util_write_file(dump, b->data, b->len, 0600), 0);
	memset(&o, 0, sizeof(o));
	o.store = store;
	o.dump_fd = open(dump, O_RDONLY);
	assert_true(o.dump_fd >= 0);
	o.prev = pm;
	o.prev_dump_index = x;
	o.manifest = man;
	o.model_version = "1.2.3";
	o.created = 1700000000;
	o.database_size = -1;
	if (snapstore_snapshot(&o, st, &cause) < 0)
		fail_msg("snapshot %s: %s", name, cause);
	close(o.dump_fd);
	free(dump);
	free(store);
	free(man);
	free(pm);
}

static void
snap(const char *name, const char *prev, struct buf *b,
    struct snapstore_stats *st)
{
	snap_early(name, prev, b, st, NULL);
}

/* The first two nights of a table: n0 its dump cut into chunks, n1 a
 * delta on it (st the second's). */
static void
two_nights(struct table *t, struct buf *b, struct snapstore_stats *st)
{
	table_init(t);
	buf_init(b, 0);
	dump_bytes(t, b);
	snap("n0", NULL, b, st);
	table_night(t, 2);
	dump_bytes(t, b);
	snap("n1", "n0", b, st);
}

/* The download of kind from byte from into a buffer; 0 or -1. */
static int
download(const char *name, enum snapstore_kind kind, long long from,
    struct buf *out, char **cause)
{
	char *store = tpath("store"), *man = tpath("%s.json", name);
	char *op = tpath("out");
	int fd = open(op, O_RDWR | O_CREAT | O_TRUNC, 0600), rc;
	struct stat st;

	assert_true(fd >= 0);
	rc = snapstore_archive_write_from(store, man, kind, from, fd, cause);
	out->len = 0;
	assert_int_equal(fstat(fd, &st), 0);
	if (st.st_size > 0) {
		char *data = xmalloc((size_t)st.st_size);

		assert_int_equal(pread(fd, data, (size_t)st.st_size, 0),
		    st.st_size);
		buf_append(out, data, (size_t)st.st_size);
		free(data);
	}
	close(fd);
	free(op);
	free(man);
	free(store);
	return rc;
}

/* db/db.backup of a full download, read by libarchive. */
static void
full_dump(struct buf *tgz, struct buf *dump)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	char blk[65536];
	la_ssize_t n;
	int found = 0;

	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, tgz->data, tgz->len),
	    ARCHIVE_OK);
	dump->len = 0;
	while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
		if (strcmp(archive_entry_pathname(e), "db/db.backup") != 0)
			continue;
		found = 1;
		while ((n = archive_read_data(a, blk, sizeof blk)) > 0)
			buf_append(dump, blk, (size_t)n);
		assert_true(n == 0);
	}
	assert_true(found);
	archive_read_free(a);
}

static json_t *
manifest(const char *name)
{
	char *p = tpath("%s.json", name);
	json_t *m = json_load_file(p, 0, NULL);

	assert_non_null(m);
	free(p);
	return m;
}

/* Every way to download `name` gives the dump in want. */
static void
check_downloads(const char *name, struct buf *want)
{
	struct buf full, part, d;
	char *store = tpath("store"), *man = tpath("%s.json", name);
	char *cause = NULL;
	long long size, from[4];
	size_t i;

	buf_init(&full, 0);
	buf_init(&part, 0);
	buf_init(&d, 0);
	if (download(name, SNAPSTORE_DATABASE, 0, &d, &cause) < 0)
		fail_msg("%s: %s", name, cause);
	assert_int_equal(d.len, want->len);
	assert_memory_equal(d.data, want->data, want->len);
	/* the raw dump from the middle */
	assert_int_equal(download(name, SNAPSTORE_DATABASE, 1000003, &d,
	    &cause), 0);
	assert_int_equal(d.len, want->len - 1000003);
	assert_memory_equal(d.data, want->data + 1000003, d.len);

	if (download(name, SNAPSTORE_FULL, 0, &full, &cause) < 0)
		fail_msg("%s: %s", name, cause);
	full_dump(&full, &d);
	assert_int_equal(d.len, want->len);
	assert_memory_equal(d.data, want->data, want->len);
	/* the size announced is the size made, without making it */
	assert_int_equal(snapstore_archive_size(store, man, SNAPSTORE_FULL,
	    &size, &cause), 0);
	assert_int_equal(size, (long long)full.len);
	/* a Range anywhere (in the dump's segment, past it, the end) gives
	 * the rest of the same bytes */
	from[0] = 1;
	from[1] = (long long)full.len / 3;
	from[2] = (long long)full.len - 100;
	from[3] = (long long)full.len;
	for (i = 0; i < 4; i++) {
		assert_int_equal(download(name, SNAPSTORE_FULL, from[i], &part,
		    &cause), 0);
		assert_int_equal(part.len, full.len - (size_t)from[i]);
		assert_memory_equal(part.data, full.data + from[i], part.len);
	}
	assert_int_equal(snapstore_verify(store, man, SNAPSTORE_FULL, &cause),
	    0);
	buf_release(&full);
	buf_release(&part);
	buf_release(&d);
	free(store);
	free(man);
}

/* Snapshots n<from>…n<to - 1> deleted, as retention does, and the
 * store swept: the blobs it freed. */
static long long
forget(int from, int to)
{
	char *store = tpath("store"), *roots = tpath("n*.json"), *p;
	char *cause = NULL;
	long long freed = -1;
	int i;

	for (i = from; i < to; i++) {
		p = tpath("n%d.json", i);
		assert_int_equal(unlink(p), 0);
		free(p);
	}
	if (snapstore_sweep(store, roots, &freed, NULL, &cause) < 0)
		fail_msg("sweep: %s", cause);
	free(store);
	free(roots);
	return freed;
}

/* How many files the test folder's rel holds. */
static int
files_in(const char *rel)
{
	char *d = tpath("%s", rel);
	DIR *dir = opendir(d);
	struct dirent *e;
	int n = 0;

	while (dir != NULL && (e = readdir(dir)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	if (dir != NULL)
		closedir(dir);
	free(d);
	return n;
}

/* How many download copies of chains the store holds (chains/). */
static int
copies_held(void)
{
	return files_in("store/chains");
}

/* The latest snapshot of a chain, `name`, has its download copy: the
 * segments' deflated bytes, the size the manifest gives them; the full
 * download sends them (a byte flipped in the copy shows in the download)
 * and is the same download as the one made without it, whole or from a
 * Range; a copy not of its size is passed over. */
static void
check_copy(const char *name)
{
	json_t *m = manifest(name), *dump = json_object_get(m, "dump"), *g;
	char *p = tpath("store/chains/%s", jsonx_str(dump, "sha256"));
	char *aside = tpath("copy-aside"), *cause = NULL;
	struct buf with, without, part, copy;
	long long total = 0;
	struct stat st;
	char blk[65536];
	ssize_t n;
	unsigned char c;
	size_t i;
	int fd;

	buf_init(&with, 0);
	buf_init(&without, 0);
	buf_init(&part, 0);
	json_array_foreach(json_object_get(dump, "segments"), i, g)
		total += jsonx_int(g, "zsize", 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, total);
	buf_init(&copy, 0);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	while ((n = read(fd, blk, sizeof blk)) > 0)
		buf_append(&copy, blk, (size_t)n);
	close(fd);
	assert_int_equal(download(name, SNAPSTORE_FULL, 0, &with, &cause), 0);
	assert_int_equal(rename(p, aside), 0);
	assert_int_equal(download(name, SNAPSTORE_FULL, 0, &without, &cause),
	    0);
	assert_int_equal(with.len, without.len);
	assert_memory_equal(with.data, without.data, with.len);
	/* one byte flipped in the copy: the download sends the copy */
	fd = open(aside, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, total / 2), 1);
	c ^= 0x55;
	assert_int_equal(pwrite(fd, &c, 1, total / 2), 1);
	assert_int_equal(rename(aside, p), 0);
	assert_int_equal(download(name, SNAPSTORE_FULL, 0, &part, &cause), 0);
	assert_int_equal(part.len, without.len);
	assert_memory_not_equal(part.data, without.data, part.len);
	c ^= 0x55;
	assert_int_equal(pwrite(fd, &c, 1, total / 2), 1);
	/* a Range inside the dump's segments, from the copy */
	assert_int_equal(download(name, SNAPSTORE_FULL, (long long)
	    without.len / 2, &part, &cause), 0);
	assert_int_equal(part.len, without.len - without.len / 2);
	assert_memory_equal(part.data, without.data + without.len / 2,
	    part.len);
	/* one byte short: not used */
	assert_int_equal(ftruncate(fd, total - 1), 0);
	close(fd);
	assert_int_equal(download(name, SNAPSTORE_FULL, 0, &part, &cause), 0);
	assert_int_equal(part.len, without.len);
	assert_memory_equal(part.data, without.data, part.len);
	/* back as it was */
	assert_int_equal(util_write_file(p, copy.data, copy.len, 0600), 0);
	buf_release(&with);
	buf_release(&without);
	buf_release(&part);
	buf_release(&copy);
	free(aside);
	free(p);
	json_decref(m);
}

/* Seven nights of 2 % of rows changed: each a delta holding about what
 * changed, every version read back exactly; then the first nights'
 * manifests removed and the store swept: the last still reads back. */
static void
test_chain(void **state)
{
	struct table t;
	struct buf b, *vers[8];
	struct snapstore_stats st;
	char name[16], prev[16];
	char *store = tpath("store");
	long long blobs = -1, bytes = -1;
	json_t *m;
	int night;

	(void)state;
	table_init(&t);
	buf_init(&b, 0);
	for (night = 0; night < 8; night++) {
		if (night > 0)
			table_night(&t, 2);
		dump_bytes(&t, &b);
		assert_true(b.len > SNAPSTORE_DELTA_MIN);
		vers[night] = xcalloc(1, sizeof(struct buf));
		buf_init(vers[night], 0);
		buf_append(vers[night], b.data, b.len);
		snprintf(name, sizeof name, "n%d", night);
		snap(name, night ? prev : NULL, &b, &st);
		m = manifest(name);
		if (night == 0) {
			assert_int_equal(st.dump_delta, 0);
			assert_null(json_object_get(json_object_get(m, "dump"),
			    "deltas"));
		} else {
			/* the rows that changed (2 % of them, 50 added) and
			 * the header: nowhere near the dump */
			assert_int_equal(st.dump_delta, 1);
			assert_true(st.dump_inserted > 0);
			assert_true(st.dump_inserted < (long long)b.len / 20);
			assert_int_equal(json_array_size(json_object_get(
			    json_object_get(m, "dump"), "deltas")),
			    (size_t)night);
		}
		json_decref(m);
		check_downloads(name, vers[night]);
		/* the chain's latest snapshot has its download copy; the
		 * one before it, none */
		assert_int_equal(copies_held(), night > 0 ? 1 : 0);
		if (night > 0)
			check_copy(name);
		snprintf(prev, sizeof prev, "%s", name);
	}
	/* an earlier version (no copy) still reads back as it was */
	check_downloads("n3", vers[3]);

	/* retention: the first five nights go; the rest of each chain
	 * (its base, the deltas before it) stays */
	assert_int_equal(forget(0, 5), 0);
	check_downloads("n7", vers[7]);
	/* all gone but the last: still nothing of its chain freed */
	assert_int_equal(forget(5, 7), 0);
	check_downloads("n7", vers[7]);
	/* and with no manifest, everything goes */
	assert_int_equal(copies_held(), 1);
	assert_true(forget(7, 8) > 8);
	snapstore_count(store, &blobs, &bytes);
	assert_int_equal(blobs, 0);
	/* and its copy with it */
	assert_int_equal(copies_held(), 0);
	for (night = 0; night < 8; night++) {
		buf_release(vers[night]);
		free(vers[night]);
	}
	buf_release(&b);
	free(t.order);
	free(t.version);
	free(store);
}

/* Flip one byte of the blob file named hex (packed or not). */
static void
flip_blob(const char *hex, long long off)
{
	char *store = tpath("store"), *p = snapstore_packed_path(store, hex);
	unsigned char c;
	int fd = open(p, O_RDWR);

	if (fd < 0) {
		free(p);
		p = snapstore_blob_path(store, hex);
		fd = open(p, O_RDWR);
	}
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0xff;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
	free(p);
	free(store);
}

/* 1 when the .tar.gz in out reads to its end, every member whole. */
static int
archive_whole(struct buf *out)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	char blk[65536];
	la_ssize_t n = 0;
	int r;

	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	assert_int_equal(archive_read_open_memory(a, out->data, out->len),
	    ARCHIVE_OK);
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK && n >= 0)
		while ((n = archive_read_data(a, blk, sizeof blk)) > 0)
			;
	archive_read_free(a);
	return r == ARCHIVE_EOF && n >= 0;
}

/* A damaged delta: the download, the raw dump and the verify fail or
 * show it; the next snapshot does not build on it (a new base). */
static void
test_damaged(void **state)
{
	struct table t;
	struct buf b, out;
	struct snapstore_stats st;
	char *store = tpath("store"), *man = tpath("n1.json"), *cause = NULL;
	char *p;
	json_t *m;
	const char *hex;
	int rc;

	(void)state;
	buf_init(&out, 0);
	two_nights(&t, &b, &st);
	assert_int_equal(st.dump_delta, 1);
	m = manifest("n1");
	hex = jsonx_str(json_array_get(json_object_get(json_object_get(m,
	    "dump"), "deltas"), 0), "sha256");
	flip_blob(hex, SNAPSTORE_PACK_HEAD + 40);

	rc = snapstore_verify(store, man, SNAPSTORE_FULL, &cause);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(cause, "db/db.backup"));
	free(cause);
	cause = NULL;
	rc = download("n1", SNAPSTORE_DATABASE, 0, &out, &cause);
	assert_int_equal(rc, -1);
	assert_non_null(cause);
	free(cause);
	cause = NULL;
	/* with the chain's download copy (made while it was whole), the
	 * full download is the dump's as it was */
	assert_int_equal(copies_held(), 1);
	rc = download("n1", SNAPSTORE_FULL, 0, &out, &cause);
	assert_int_equal(rc, 0);
	assert_int_equal(archive_whole(&out), 1);
	/* without it, the full download fails or makes bytes that are not
	 * the dump */
	p = tpath("store/chains/%s", jsonx_str(json_object_get(m, "dump"),
	    "sha256"));
	assert_int_equal(unlink(p), 0);
	free(p);
	rc = download("n1", SNAPSTORE_FULL, 0, &out, &cause);
	assert_true(rc < 0 || archive_whole(&out) == 0);
	free(cause);
	cause = NULL;
	/* the next night: the chain it would build on is damaged, so its
	 * dump is cut into chunks again, whole */
	table_night(&t, 2);
	dump_bytes(&t, &b);
	snap("n2", "n1", &b, &st);
	assert_int_equal(st.dump_delta, 0);
	check_downloads("n2", &b);
	json_decref(m);
	buf_release(&b);
	buf_release(&out);
	free(t.order);
	free(t.version);
	free(store);
	free(man);
}

/* Flip a byte in the middle of the download copy of `name`'s dump. */
static void
flip_copy(const char *name)
{
	json_t *m = manifest(name);
	char *p = tpath("store/chains/%s", jsonx_str(json_object_get(m,
	    "dump"), "sha256"));
	struct stat st;
	unsigned char c;
	int fd = open(p, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(pread(fd, &c, 1, st.st_size / 2), 1);
	c ^= 0x21;
	assert_int_equal(pwrite(fd, &c, 1, st.st_size / 2), 1);
	close(fd);
	free(p);
	json_decref(m);
}

/* A damaged download copy of a chain: fsck finds it (inflated against
 * the dump's size and crc32), removes it and says so, the store still
 * whole; a verify does the same; the download is then made from the
 * chain, right. */
static void
test_copy_damaged(void **state)
{
	struct table t;
	struct buf b;
	struct snapstore_stats st;
	struct snapstore_fsck r;
	char *store = tpath("store"), *roots = tpath("n*.json");
	char *man = tpath("n2.json"), *cause = NULL;
	json_t *j;

	(void)state;
	two_nights(&t, &b, &st);
	assert_int_equal(copies_held(), 1);
	/* whole: fsck leaves it */
	assert_int_equal(snapstore_fsck(store, roots, &r, &cause), 0);
	assert_int_equal(r.ndropped, 0);
	snapstore_fsck_release(&r);
	assert_int_equal(copies_held(), 1);
	flip_copy("n1");
	if (snapstore_fsck(store, roots, &r, &cause) < 0)
		fail_msg("fsck: %s", cause);
	assert_int_equal(r.ndropped, 1);
	assert_non_null(strstr(r.dropped[0].manifest, "n1.json"));
	assert_int_equal(snapstore_fsck_status(&r), 0);
	j = snapstore_fsck_json(&r);
	assert_int_equal(json_array_size(json_object_get(j,
	    "download_copies_removed")), 1);
	json_decref(j);
	snapstore_fsck_release(&r);
	assert_int_equal(copies_held(), 0);
	check_downloads("n1", &b);

	/* the next night's copy, damaged, found by a verify */
	table_night(&t, 2);
	dump_bytes(&t, &b);
	snap("n2", "n1", &b, &st);
	assert_int_equal(st.dump_delta, 1);
	assert_int_equal(copies_held(), 1);
	assert_int_equal(snapstore_verify(store, man, SNAPSTORE_FULL, &cause),
	    0);
	assert_int_equal(copies_held(), 1);
	flip_copy("n2");
	assert_int_equal(snapstore_verify(store, man, SNAPSTORE_FULL, &cause),
	    0);
	assert_int_equal(copies_held(), 0);
	check_downloads("n2", &b);
	buf_release(&b);
	free(t.order);
	free(t.version);
	free(store);
	free(roots);
	free(man);
}

/* When most of the dump changed, or the chain weighs its base, the dump
 * starts a new base; a dump with no newline, lines over the unit's
 * length, and lines repeated are deltas that read back exactly. */
static void
test_shapes(void **state)
{
	struct buf b;
	struct snapstore_stats st;
	json_t *m;
	size_t i;

	(void)state;
	buf_init(&b, 0);
	/* binary, no newline at all: units of 64 KiB */
	for (i = 0; i < 6 * 1024 * 1024; i++) {
		unsigned char c = (unsigned char)(rnd() % 255 + 1);

		if (c == '\n')
			c = 'n';
		buf_append(&b, &c, 1);
	}
	snap("a0", NULL, &b, &st);
	b.data[3 * 1024 * 1024] ^= 0x55;	/* one byte changed */
	snap("a1", "a0", &b, &st);
	assert_int_equal(st.dump_delta, 1);
	assert_true(st.dump_inserted <= 64 * 1024 + 100);
	check_downloads("a1", &b);
	/* repeated lines and a long line in the middle */
	b.len = 0;
	for (i = 0; i < 200000; i++)
		buf_append(&b, i % 3 ? "same line\n" : "\n", i % 3 ? 10 : 1);
	for (i = 0; i < 300000; i++)
		buf_append(&b, "long", 4);
	buf_append(&b, "\n", 1);
	for (i = 0; i < 200000; i++)
		buf_printf(&b, "row %zu\n", i);
	snap("b0", NULL, &b, &st);
	memcpy(b.data + b.len / 2, "CHANGED", 7);
	snap("b1", "b0", &b, &st);
	assert_int_equal(st.dump_delta, 1);
	assert_true(st.dump_inserted < 100 * 1024);
	check_downloads("b1", &b);
	/* every row changed: not worth a delta */
	for (i = 0; i < b.len; i++)
		if (b.data[i] == 'o')
			b.data[i] = 'O';
	snap("b2", "b1", &b, &st);
	assert_int_equal(st.dump_delta, 0);
	m = manifest("b2");
	assert_null(json_object_get(json_object_get(m, "dump"), "deltas"));
	json_decref(m);
	check_downloads("b2", &b);
	buf_release(&b);
}

/* A chain's download is the download the same dump stored in chunks
 * gives, byte for byte (an upload of it adds the same archive). */
static void
test_same_bytes(void **state)
{
	struct table t;
	struct buf b, x, y;
	struct snapstore_stats st;
	char *cause = NULL;

	(void)state;
	buf_init(&x, 0);
	buf_init(&y, 0);
	two_nights(&t, &b, &st);
	assert_int_equal(st.dump_delta, 1);
	snap("c1", NULL, &b, &st);
	assert_int_equal(st.dump_delta, 0);
	assert_int_equal(download("n1", SNAPSTORE_FULL, 0, &x, &cause), 0);
	assert_int_equal(download("c1", SNAPSTORE_FULL, 0, &y, &cause), 0);
	assert_int_equal(x.len, y.len);
	assert_memory_equal(x.data, y.data, x.len);
	buf_release(&b);
	buf_release(&x);
	buf_release(&y);
	free(t.order);
	free(t.version);
}

/* A manifest whose chain is damaged is refused before a byte. */
static void
test_manifest_refused(void **state)
{
	struct table t;
	struct buf b, out;
	struct snapstore_stats st;
	char *p = tpath("n1.json"), *cause = NULL;
	json_t *m, *d;

	(void)state;
	buf_init(&out, 0);
	two_nights(&t, &b, &st);
	m = manifest("n1");
	d = json_object_get(json_object_get(m, "dump"), "deltas");
	json_object_set_new(json_array_get(d, 0), "out", json_integer(5));
	assert_int_equal(json_dump_file(m, p, 0), 0);
	assert_int_equal(download("n1", SNAPSTORE_FULL, 0, &out, &cause), -1);
	assert_non_null(strstr(cause, "manifest is damaged"));
	assert_int_equal(out.len, 0);
	free(cause);
	json_decref(m);
	buf_release(&b);
	buf_release(&out);
	free(t.order);
	free(t.version);
	free(p);
}

/* A night's snapshot `name` after prev given the index x made ahead:
 * a delta or not, on x or not, as said; its downloads the dump. */
static void
early_night(struct table *t, struct buf *b, const char *name,
    const char *prev, struct snapstore_dindex *x, int delta, int early)
{
	struct snapstore_stats st;

	assert_non_null(x);
	table_night(t, 2);
	dump_bytes(t, b);
	snap_early(name, prev, b, &st, x);
	assert_int_equal(st.dump_delta, delta);
	assert_int_equal(st.dump_index_early, early);
	check_downloads(name, b);
}

/* The previous dump indexed ahead of the snapshot (while pg_dump runs)
 * is used when it is of the previous manifest's dump and every blob of
 * its chain is still in the store; else the snapshot indexes it again —
 * or, the chain's blob gone, stores its dump as chunks. */
static void
test_early_index(void **state)
{
	struct table t;
	struct buf b;
	struct snapstore_stats st;
	struct snapstore_dindex *x;
	char *store = tpath("store"), *n1 = tpath("n1.json");
	char *n3 = tpath("n3.json"), *p;
	json_t *m, *d;

	(void)state;
	two_nights(&t, &b, &st);
	/* of the previous dump: used */
	early_night(&t, &b, "n2", "n1", snapstore_prev_dump_index(store, n1),
	    1, 1);
	/* of another dump (n1's, the snapshot builds on n2's): indexed again */
	early_night(&t, &b, "n3", "n2", snapstore_prev_dump_index(store, n1),
	    1, 0);
	/* a blob of the chain freed after the index was made (as a sweep
	 * would once the manifests naming it went): no delta on it */
	x = snapstore_prev_dump_index(store, n3);
	m = manifest("n3");
	d = json_array_get(json_object_get(json_object_get(m, "dump"),
	    "deltas"), 2);
	p = snapstore_packed_path(store, jsonx_str(d, "sha256"));
	assert_int_equal(unlink(p), 0);
	early_night(&t, &b, "n4", "n3", x, 0, 0);
	/* none ahead of a dump under the delta's minimum, nor with no
	 * previous snapshot */
	b.len = 0;
	buf_printf(&b, "PGDMP a small dump\n");
	snap("s0", NULL, &b, &st);
	free(p);
	p = tpath("s0.json");
	assert_null(snapstore_prev_dump_index(store, p));
	assert_null(snapstore_prev_dump_index(store, NULL));
	json_decref(m);
	buf_release(&b);
	free(t.order);
	free(t.version);
	free(p);
	free(store);
	free(n1);
	free(n3);
}

/* The file at p whole into b (b emptied first); 0, or -1 when absent. */
static int
slurp(const char *p, struct buf *b)
{
	char blk[65536];
	ssize_t n;
	int fd = open(p, O_RDONLY);

	b->len = 0;
	if (fd < 0)
		return -1;
	while ((n = read(fd, blk, sizeof blk)) > 0)
		buf_append(b, blk, (size_t)n);
	close(fd);
	return 0;
}

/* A disk too full for what it asks. */
static int
no_room(long long need, char **cause)
{
	*cause = xasprintf("no room for %lld bytes", need);
	return -1;
}

/* snapstore_chain_build() of manifest file `file` refused, saying want:
 * no download copy, nothing left in tmp/. */
static void
build_refused(const char *file, int (*room)(long long, char **),
    const char *want)
{
	char *store = tpath("store"), *man = tpath("%s", file), *cause = NULL;

	assert_int_equal(snapstore_chain_build(store, man, room, &cause), -1);
	assert_non_null(strstr(cause, want));
	assert_int_equal(copies_held(), 0);
	assert_int_equal(files_in("store/tmp"), 0);
	free(cause);
	free(man);
	free(store);
}

static char *
copy_of(const char *name)
{
	json_t *m = manifest(name);
	char *p = tpath("store/chains/%s", jsonx_str(json_object_get(m,
	    "dump"), "sha256"));

	json_decref(m);
	return p;
}

/* Where the snapshot was not taken (an off-node copy's target: the
 * manifest and blobs, no download copy), snapstore_chain_build() makes
 * the chain's download copy: byte for byte the one the snapshot made,
 * which the download then sends; the copy of the dump it built on (its
 * last delta's "of") goes; a base has none to make, a copy there is not
 * made again; a manifest whose segments the dump does not cut into is
 * refused, nothing kept. */
static void
test_chain_build(void **state)
{
	struct table t;
	struct buf b, made, again;
	struct snapstore_stats st;
	char *store = tpath("store"), *man, *cause = NULL;
	char *c1 = NULL, *c2 = NULL;
	json_t *m, *last, *seg;

	(void)state;
	two_nights(&t, &b, &st);
	table_night(&t, 2);
	dump_bytes(&t, &b);
	snap("n2", "n1", &b, &st);
	c1 = copy_of("n1");
	c2 = copy_of("n2");
	/* the delta names the dump it applies to */
	m = manifest("n2");
	last = json_array_get(json_object_get(json_object_get(m, "dump"),
	    "deltas"), 1);
	assert_string_equal(jsonx_str(last, "of"), strrchr(c1, '/') + 1);
	json_decref(m);
	buf_init(&made, 0);
	buf_init(&again, 0);
	assert_int_equal(slurp(c2, &made), 0);
	assert_int_equal(copies_held(), 1);
	assert_int_equal(unlink(c2), 0);

	/* n1's, then n2's: n1's goes with it */
	man = tpath("n1.json");
	assert_int_equal(snapstore_chain_build(store, man, NULL, &cause), 1);
	free(man);
	assert_int_equal(access(c1, F_OK), 0);
	man = tpath("n2.json");
	assert_int_equal(snapstore_chain_build(store, man, NULL, &cause), 1);
	assert_int_equal(slurp(c2, &again), 0);
	assert_int_equal(again.len, made.len);
	assert_memory_equal(again.data, made.data, made.len);
	assert_int_equal(access(c1, F_OK), -1);
	assert_int_equal(copies_held(), 1);
	check_copy("n2");
	/* there already: nothing to make; a base: none */
	assert_int_equal(snapstore_chain_build(store, man, NULL, &cause), 0);
	free(man);
	man = tpath("n0.json");
	assert_int_equal(snapstore_chain_build(store, man, NULL, &cause), 0);
	free(man);
	assert_int_equal(copies_held(), 1);

	/* a segment the manifest gives one byte larger than it deflates
	 * to: refused, nothing kept */
	assert_int_equal(unlink(c2), 0);
	m = manifest("n2");
	seg = json_array_get(json_object_get(json_object_get(m, "dump"),
	    "segments"), 0);
	json_object_set_new(seg, "zsize", json_integer(jsonx_int(seg,
	    "zsize", 0) + 1));
	man = tpath("bad.json");
	assert_int_equal(json_dump_file(m, man, JSON_COMPACT), 0);
	json_decref(m);
	free(man);
	build_refused("bad.json", NULL, "does not cut as its manifest says");
	/* no room for the dump and its copy: refused before a byte */
	build_refused("n2.json", no_room, "no room for");

	buf_release(&b);
	buf_release(&made);
	buf_release(&again);
	free(t.order);
	free(t.version);
	free(c1);
	free(c2);
	free(store);
}

/* Every entry under the test folder but store/chains/, with its type,
 * size and mtime, one a line (caller frees): what a refused manifest
 * must leave as it was. */
static char *
files_state(void)
{
	char *cmd = xasprintf("cd %s && find . -path ./store/chains -prune "
	    "-o -printf '%%p %%y %%s %%T@\\n' | LC_ALL=C sort", tmp);
	FILE *f = popen(cmd, "r");
	struct buf b;
	char blk[4096];
	size_t n;

	assert_non_null(f);
	buf_init(&b, 0);
	while ((n = fread(blk, 1, sizeof blk, f)) > 0)
		buf_append(&b, blk, n);
	assert_int_equal(pclose(f), 0);
	buf_append(&b, "", 1);
	free(cmd);
	return buf_detach(&b);
}

/* A chain's manifest (as an off-node copy's source could send it) whose
 * dump, or the dump its last delta applies to ("of"), is named by
 * something other than 64 lowercase hex digits — a path out of chains/,
 * nothing, upper case, a longer string, not a string — is refused by
 * the receiving store before a blob is asked for, and by
 * snapstore_chain_build() before a file is made: nothing outside
 * chains/ changes, and no download copy is made. */
static void
test_hostile_digests(void **state)
{
	struct table t;
	struct buf b;
	struct snapstore_stats st;
	struct snapstore_recv *r;
	char *store = tpath("store"), *store2 = tpath("store2");
	char *n0 = tpath("n0.json"), *bad = tpath("bad.json"), *c1;
	char *cause = NULL, *before, *after, *v;
	json_t *m, *dump, *last;
	size_t i;

	(void)state;
	two_nights(&t, &b, &st);
	c1 = copy_of("n1");
	assert_int_equal(unlink(c1), 0);
	/* the receiving store made once: its folders are not the change */
	r = snapstore_recv_begin(store2, n0, &cause);
	assert_non_null(r);
	snapstore_recv_free(r);
	for (i = 0; i < 7; i++) {
		m = manifest("n1");
		dump = json_object_get(m, "dump");
		last = json_array_get(json_object_get(dump, "deltas"), 0);
		v = xstrdup(jsonx_str(dump, "sha256"));
		switch (i) {
		case 0:
			json_object_set_new(dump, "sha256",
			    json_string("../../victim"));
			break;
		case 1:
			json_object_del(dump, "sha256");
			break;
		case 2:
			v[0] = 'A';
			v[63] = 'F';
			json_object_set_new(dump, "sha256", json_string(v));
			break;
		case 3:
			free(v);
			v = xasprintf("%s/../../victim", jsonx_str(dump,
			    "sha256"));
			json_object_set_new(dump, "sha256", json_string(v));
			break;
		case 4:
			json_object_set_new(last, "of",
			    json_string("../../victim"));
			break;
		case 5:
			v[63] = '\0';
			json_object_set_new(last, "of", json_string(v));
			break;
		default:
			json_object_set_new(last, "of", json_integer(1));
		}
		free(v);
		assert_int_equal(json_dump_file(m, bad, JSON_COMPACT), 0);
		json_decref(m);
		before = files_state();
		assert_null(snapstore_recv_begin(store2, bad, &cause));
		if (strstr(cause, "manifest is damaged: ") == NULL)
			fail_msg("case %zu: '%s'", i, cause);
		free(cause);
		cause = NULL;
		assert_int_equal(snapstore_chain_build(store, bad, NULL,
		    &cause), -1);
		if (strstr(cause, "manifest is damaged: ") == NULL)
			fail_msg("case %zu: '%s'", i, cause);
		free(cause);
		cause = NULL;
		after = files_state();
		assert_string_equal(after, before);
		assert_int_equal(copies_held(), 0);
		free(before);
		free(after);
	}
	/* the manifest as it was: its copy made */
	free(bad);
	bad = tpath("n1.json");
	assert_int_equal(snapstore_chain_build(store, bad, NULL, &cause), 1);
	assert_int_equal(access(c1, F_OK), 0);
	buf_release(&b);
	free(t.order);
	free(t.version);
	free(c1);
	free(n0);
	free(bad);
	free(store);
	free(store2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_build, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_damaged, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_early_index, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_shapes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_bytes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_manifest_refused, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_hostile_digests, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
