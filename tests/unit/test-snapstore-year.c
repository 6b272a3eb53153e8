/* A year of nightly and manual snapshots into one store, retention
 * applied every day as a node applies it (backup_retention_keep(), the
 * expired manifests removed, the store swept): after each day's sweep
 * the store holds exactly the blobs that the kept snapshots name (the
 * test lists blobs/ itself), known independently — the test hashes
 * every file and dump it writes, and keeps its own record of what each
 * snapshot holds; on July 1st and at
 * the end, every kept snapshot's download is read
 * back with libarchive and holds what the record says (issue #16). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <dirent.h>

#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "backup-retention.h"
#include "buf.h"
#include "jsonx.h"
#include "snapstore.h"
#include "util.h"
#include "xmalloc.h"

#define DAYS		366
#define YEAR_START	1735689600LL	/* 2025-01-01 00:00 UTC, a Wednesday */
#define NIGHTLY_AT	(2 * 3600)	/* 02:00 UTC */

static char tmp[256];
static unsigned long long rng = 0x6e75626f79656172ULL;

static unsigned
next(void)
{
	/* xorshift64*: the same year on every run */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (unsigned)((rng * 2685821657736338717ULL) >> 32);
}

static void
sha256_hex(const void *data, size_t len, char *hex)
{
	unsigned char md[32];
	unsigned n = 0;

	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	util_hex(md, 32, hex);
}

/* What the test knows, apart from the store. */
struct model {
	json_t	*tree;		/* path → {sha256, size}: files/ now */
	json_t	*snaps;		/* name → {type, created, tree, dump:
				 * {sha256, size}} for every kept snapshot */
	int	 nfiles;	/* files made so far (their names) */
};

/* Write bytes to files/path and record them. */
static void
file_put(struct model *m, const char *path, const char *data, size_t len)
{
	char *p = xasprintf("%s/files/%s", tmp, path), *d = xstrdup(p), hex[65];

	*strrchr(d, '/') = '\0';
	assert_int_equal(util_mkdir_p(d, 0755), 0);
	assert_int_equal(util_write_file(p, data, len, 0644), 0);
	sha256_hex(data, len, hex);
	json_object_set_new(m->tree, path, json_pack("{s:s, s:I}", "sha256",
	    hex, "size", (json_int_t)len));
	free(d);
	free(p);
}

/* Contents nobody else has: name and day mixed in, 1 byte to 40 KiB,
 * text that compresses or bytes that do not. */
static char *
content(int day, int n, size_t *len)
{
	size_t i, sz = 1 + next() % (40 * 1024);
	char *b = xmalloc(sz);
	int text = next() % 2;

	for (i = 0; i < sz; i++)
		b[i] = text ? (char)('a' + (i * 7 + (size_t)day + (size_t)n) %
		    26) : (char)next();
	if (sz >= 16)
		snprintf(b, 16, "%04d-%06d.", day, n);
	*len = sz;
	return b;
}

/* The pick-th key of tree, in its order. */
static const char *
nth_key(json_t *tree, size_t pick)
{
	const char *k, *found = NULL;
	json_t *v;
	size_t i = 0;

	json_object_foreach(tree, k, v)
		if (i++ == pick)
			found = k;
	return found;
}

/* The day's changes to files/: new files (uuid-like names in Mendix's
 * two levels), now and then a copy of another file's contents (the same
 * blob), a file removed, a file rewritten in place, an empty file. */
static void
day_changes(struct model *m, int day)
{
	int i, nnew = (int)(next() % 3);
	const char *victim = NULL;
	size_t len, count;
	char name[64];
	char *data;

	for (i = 0; i < nnew; i++) {
		unsigned h = next();

		snprintf(name, sizeof(name), "%02x/%02x/f%06d", h & 0xff,
		    (h >> 8) & 0xff, m->nfiles++);
		data = content(day, m->nfiles, &len);
		file_put(m, name, data, len);
		free(data);
	}
	count = json_object_size(m->tree);
	if (day % 5 == 3 && count > 10) {
		/* a copy of an existing file's bytes under a new name */
		victim = nth_key(m->tree, next() % count);
		{
			char *p = xasprintf("%s/files/%s", tmp, victim);
			size_t n;
			char *b = util_read_file(p, 1 << 20, &n);

			assert_non_null(b);
			snprintf(name, sizeof(name), "copies/c%06d",
			    m->nfiles++);
			file_put(m, name, b, n);
			free(b);
			free(p);
		}
	}
	if (day % 3 == 1 && count > 20) {
		/* one removed (its blob stays while a kept snapshot has it) */
		victim = nth_key(m->tree, next() % count);
		{
			char *p = xasprintf("%s/files/%s", tmp, victim);

			assert_int_equal(unlink(p), 0);
			json_object_del(m->tree, victim);
			free(p);
		}
	}
	if (day % 11 == 7) {
		/* one rewritten in place: same name, new bytes */
		data = content(day, -1, &len);
		file_put(m, "rewritten/log.txt", data, len);
		free(data);
	}
	if (day == 40)
		file_put(m, "empty", "", 0);
}

/* The day's database dump, over SNAPSTORE_DELTA_MIN (so the store keeps
 * it as a chain: a base and a delta a night): rows that each weekday
 * change one in fifty of (a row's text holds the day it last changed),
 * none on weekends, so weekend dumps are Friday's bytes. */
#ifdef __SANITIZE_ADDRESS__
/* under ASan (make asan) a year of 4 MB chains takes 14 min: the year's
 * retention runs on small dumps there (chunks), the chains are ASan's in
 * test-snapstore-delta */
#define DUMP_ROWS	400
#define DUMP_MIN	0
#else
#define DUMP_ROWS	62000
#define DUMP_MIN	(4 * 1024 * 1024)
#endif

static json_t *
dump_make(int day, int weekday, int fd)
{
	static int changed[DUMP_ROWS], last = -1;
	char hex[65];
	struct buf b;
	json_t *d;
	int i;

	if (weekday != 0 && weekday != 6 && last != day) {
		last = day;
		for (i = 0; i < DUMP_ROWS; i++)
			if (((unsigned)i * 2654435761u ^ (unsigned)day *
			    40503u) % 50 == 0)
				changed[i] = day;
	}
	buf_init(&b, 0);
	buf_printf(&b, "PGDMP, the dump of day %d\n", last);
	for (i = 0; i < DUMP_ROWS; i++)
		buf_printf(&b, "row %d of the notes table, changed on day %d, "
		    "lorem ipsum dolor sit amet\n", i, changed[i]);
	assert_true(b.len > DUMP_MIN);
	assert_int_equal(util_write_all(fd, b.data, b.len), 0);
	sha256_hex(b.data, b.len, hex);
	d = json_pack("{s:s, s:I}", "sha256", hex, "size", (json_int_t)b.len);
	buf_release(&b);
	return d;
}

/* Take the snapshot `name` of files/ at `created`, after prev. */
static void
take(struct model *m, const char *name, const char *type, long long created,
    int day, int weekday, const char *prev)
{
	struct snapstore_snap_opts o;
	char *store = xasprintf("%s/store", tmp);
	char *dir = xasprintf("%s/snapshots/%s", tmp, name);
	char *man = xasprintf("%s/manifest.json", dir);
	char *pm = prev ? xasprintf("%s/snapshots/%s/manifest.json", tmp, prev) :
	    NULL;
	char *files = xasprintf("%s/files", tmp), *cause = NULL;
	char *dumpf = xasprintf("%s/day.dump", tmp);
	json_t *dump;
	int fd;

	assert_int_equal(util_mkdir_p(dir, 0700), 0);
	fd = open(dumpf, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	dump = dump_make(day, weekday, fd);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	memset(&o, 0, sizeof(o));
	o.store = store;
	o.files_dir = files;
	o.dump_fd = fd;
	o.prev = pm;
	o.manifest = man;
	o.model_version = "1.0.0";
	o.created = created;
	o.database_size = -1;
	if (snapstore_snapshot(&o, NULL, &cause) < 0)
		fail_msg("day %d, %s: %s", day, name, cause);
	close(fd);
	/* the record keeps its own copy of the tree */
	json_object_set_new(m->snaps, name, json_pack("{s:s, s:I, s:o, s:o}",
	    "type", type, "created", (json_int_t)created, "tree",
	    json_deep_copy(m->tree), "dump", dump));
	free(dumpf);
	free(files);
	free(pm);
	free(man);
	free(dir);
	free(store);
}

/* Retention at now: each expired snapshot's manifest removed, as the
 * node deletes a snapshot, then the store swept. */
static void
retention(struct model *m, long long now)
{
	char *store = xasprintf("%s/store", tmp), *cause = NULL;
	char *roots = xasprintf("%s/snapshots/*/manifest.json", tmp);
	const char *name;
	json_t *s;
	void *iter;
	char *p;

	for (iter = json_object_iter(m->snaps); iter != NULL;) {
		name = json_object_iter_key(iter);
		s = json_object_iter_value(iter);
		iter = json_object_iter_next(m->snaps, iter);
		if (backup_retention_keep(backup_snapshot_type_parse(
		    jsonx_str(s, "type")), (time_t)jsonx_int(s, "created", 0),
		    (time_t)now))
			continue;
		p = xasprintf("%s/snapshots/%s/manifest.json", tmp, name);
		assert_int_equal(unlink(p), 0);
		free(p);
		json_object_del(m->snaps, name);
	}
	if (snapstore_sweep(store, roots, NULL, NULL, &cause) < 0)
		fail_msg("sweep: %s", cause);
	free(roots);
	free(store);
}

/* The blobs the kept snapshots name: sha256 → size. The files' from
 * the record (the test hashed every file it wrote); the dump's from
 * each kept manifest (its base's chunks and its deltas: where the
 * chunker cuts and what a delta holds is the store's to say), each
 * dump read back whole by check_downloads(). */
static json_t *
expected(struct model *m)
{
	json_t *uniq = json_object(), *s, *f, *mf, *e;
	const char *name, *path;
	const char *keys[] = { "chunks", "deltas" };
	char *p;
	size_t i, k;

	json_object_foreach(m->snaps, name, s) {
		json_object_foreach(json_object_get(s, "tree"), path, f)
			json_object_set(uniq, jsonx_str(f, "sha256"),
			    json_object_get(f, "size"));
		p = xasprintf("%s/snapshots/%s/manifest.json", tmp, name);
		mf = json_load_file(p, 0, NULL);
		assert_non_null(mf);
		f = json_object_get(mf, "dump");
		assert_string_equal(jsonx_str(f, "sha256"), jsonx_str(
		    json_object_get(s, "dump"), "sha256"));
		for (k = 0; k < 2; k++)
			json_array_foreach(json_object_get(f, keys[k]), i, e)
				json_object_set(uniq, jsonx_str(e, "sha256"),
				    json_object_get(e, "size"));
		json_decref(mf);
		free(p);
	}
	return uniq;
}

/* The download copies in store/chains/: each is of a kept snapshot's
 * dump (the record's sha256), at most one per kept snapshot; the number
 * of them. */
static int
copies_check(struct model *m, int day)
{
	char *top = xasprintf("%s/store/chains", tmp);
	DIR *a = opendir(top);
	struct dirent *d;
	const char *name;
	json_t *s;
	int n = 0, found;

	while (a != NULL && (d = readdir(a)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		found = 0;
		json_object_foreach(m->snaps, name, s)
			if (strcmp(jsonx_str(json_object_get(s, "dump"),
			    "sha256"), d->d_name) == 0)
				found = 1;
		if (!found)
			fail_msg("day %d: the download copy %s is of no kept "
			    "snapshot's dump", day, d->d_name);
		n++;
	}
	if (a != NULL)
		closedir(a);
	free(top);
	assert_true(n <= (int)json_object_size(m->snaps));
	return n;
}

/* The blobs in store/blobs/ as the test lists them (STORE/blobs/ab/
 * cdef…, raw, or packed with ".z"): sha256 → true. */
static json_t *
stored(void)
{
	json_t *got = json_object();
	char *top = xasprintf("%s/store/blobs", tmp), *sub, hex[600];
	struct dirent *d, *e;
	DIR *a, *b;
	size_t n;

	a = opendir(top);
	assert_non_null(a);
	while ((d = readdir(a)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		sub = xasprintf("%s/%s", top, d->d_name);
		b = opendir(sub);
		assert_non_null(b);
		while ((e = readdir(b)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(hex, sizeof(hex), "%s%s", d->d_name, e->d_name);
			n = strlen(hex);
			if (n > 2 && strcmp(hex + n - 2, ".z") == 0)
				hex[n - 2] = '\0';
			if (json_object_get(got, hex) != NULL)
				fail_msg("blob %s is in the store twice", hex);
			json_object_set_new(got, hex, json_true());
		}
		closedir(b);
		free(sub);
	}
	closedir(a);
	free(top);
	return got;
}

/* Every kept snapshot's files download, read back: the same paths with
 * the same bytes as the record says. */
static void
check_downloads(struct model *m, int day)
{
	char *store = xasprintf("%s/store", tmp), *cause = NULL, *out, *man;
	struct archive_entry *e;
	struct archive *a;
	const char *name, *path;
	unsigned char *data;
	char hex[65];
	size_t cap = 64 * 1024, len;
	json_t *s, *want, *f;
	la_ssize_t n;
	int fd, seen;

	data = xmalloc(cap);
	json_object_foreach(m->snaps, name, s) {
		out = xasprintf("%s/download.tar.gz", tmp);
		man = xasprintf("%s/snapshots/%s/manifest.json", tmp, name);
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		if (snapstore_archive_write(store, man, SNAPSTORE_FULL, fd,
		    &cause) < 0)
			fail_msg("day %d: the download of %s: %s", day, name,
			    cause);
		close(fd);
		want = json_object_get(s, "tree");
		seen = 0;
		a = archive_read_new();
		archive_read_support_filter_gzip(a);
		archive_read_support_format_tar(a);
		assert_int_equal(archive_read_open_filename(a, out, 65536),
		    ARCHIVE_OK);
		while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
			if (archive_entry_filetype(e) != AE_IFREG)
				continue;
			path = archive_entry_pathname(e);
			if (strcmp(path, "db/db.backup") == 0)
				f = json_object_get(s, "dump");
			else if (strncmp(path, "tree/", 5) == 0)
				f = json_object_get(want, path + 5);
			else
				continue;	/* .metadata, .nubo/ */
			if (f == NULL)
				fail_msg("day %d, %s: '%s' is not in the "
				    "snapshot", day, name, path);
			len = 0;
			for (;;) {
				if (cap - len < 65536) {
					cap *= 2;
					data = xrealloc(data, cap);
				}
				n = archive_read_data(a, data + len, cap - len);
				assert_true(n >= 0);
				if (n == 0)
					break;
				len += (size_t)n;
			}
			sha256_hex(data, len, hex);
			if (strcmp(hex, jsonx_str(f, "sha256")) != 0)
				fail_msg("day %d, %s: '%s' differs", day, name,
				    path);
			seen++;
		}
		assert_int_equal(archive_read_free(a), ARCHIVE_OK);
		/* every file and the dump */
		if ((size_t)seen != json_object_size(want) + 1)
			fail_msg("day %d, %s: %d files and dump, the snapshot "
			    "had %zu files", day, name, seen,
			    json_object_size(want));
		free(man);
		free(out);
	}
	free(data);
	free(store);
}

static void
test_year(void **state)
{
	struct model m = { json_object(), json_object(), 0 };
	long long blobs, bytes, raw = 0, now, peak = 0;
	json_t *want, *got, *v;
	const char *hex;
	char *store = xasprintf("%s/store", tmp), prev[32] = "", name[32];
	struct tm tm;
	time_t t;
	int day, nightly = 0, manual = 0, copies_peak = 0;

	(void)state;
	for (day = 0; day < DAYS; day++) {
		now = YEAR_START + (long long)day * 86400 + NIGHTLY_AT;
		t = (time_t)now;
		gmtime_r(&t, &tm);
		day_changes(&m, day);
		snprintf(name, sizeof(name), "n%03d", day);
		take(&m, name, "nightly", now, day, tm.tm_wday,
		    prev[0] ? prev : NULL);
		snprintf(prev, sizeof(prev), "%s", name);
		nightly++;
		if (day % 9 == 4) {
			/* a manual snapshot at noon: 3 months */
			snprintf(name, sizeof(name), "m%03d", day);
			take(&m, name, "manual", now + 10 * 3600, day,
			    tm.tm_wday, prev);
			manual++;
		}
		retention(&m, now + 1800);
		assert_int_equal(snapstore_count(store, &blobs, &bytes), 0);
		want = expected(&m);
		got = stored();
		json_object_foreach(want, hex, v)
			if (json_object_get(got, hex) == NULL)
				fail_msg("day %d: blob %s, named by a kept "
				    "snapshot, is not in the store", day, hex);
		json_object_foreach(got, hex, v)
			if (json_object_get(want, hex) == NULL)
				fail_msg("day %d: blob %s is in the store, no "
				    "kept snapshot names it", day, hex);
		if (blobs != (long long)json_object_size(want))
			fail_msg("day %d: the store counts %lld blobs; the "
			    "kept snapshots name %zu", day, blobs,
			    json_object_size(want));
		raw = 0;
		json_object_foreach(want, hex, v)
			raw += json_integer_value(v);
		json_decref(want);
		json_decref(got);
		if (copies_check(&m, day) > copies_peak)
			copies_peak = copies_check(&m, day);
		if (bytes > peak)
			peak = bytes;
		if (tm.tm_mday == 1 && tm.tm_mon == 6)	/* July 1st */
			check_downloads(&m, day);
	}
	check_downloads(&m, day);
	/* what a year's retention keeps: 14 nightlies, the Sundays of 3
	 * months, the first Sundays of a year, 3 months of manual ones */
	{
		const char *k;
		json_t *s;
		int n = 0, mn = 0;

		json_object_foreach(m.snaps, k, s) {
			if (strcmp(jsonx_str(s, "type"), "manual") == 0)
				mn++;
			else
				n++;
		}
		print_message("year: %d nightly and %d manual snapshots taken; "
		    "kept %d nightly, %d manual; store %lld blobs, %lld bytes "
		    "on disk (peak %lld) for %lld bytes of contents; download "
		    "copies of chains at most %d\n", nightly, manual, n, mn,
		    blobs, bytes, peak, raw, copies_peak);
		assert_in_range(n, 14 + 10, 14 + 13 + 12);
		assert_in_range(mn, 9, 11);
	}
	json_decref(m.tree);
	json_decref(m.snaps);
	free(store);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/dev/shm/nubo-snapstore-year-XXXXXX");
	return mkdtemp(tmp) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return util_rm_rf(tmp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_year, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
