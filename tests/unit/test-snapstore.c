/* The snapshot store (issue #16): the archive assembled from the store
 * holds what backup_archive_write() writes, byte-deterministically; a
 * second snapshot adds only what changed; the sweep frees only what no
 * manifest names; a snapshot killed midway leaves no manifest that names
 * a missing blob. */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>
#include <jansson.h>

#include "backup-archive.h"
#include "buf.h"
#include "jsonx.h"
#include "nubo_limits.h"
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
	snprintf(tmp, sizeof(tmp), "/tmp/nubo-snapstore-XXXXXX");
	return mkdtemp(tmp) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return util_rm_rf(tmp);
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

static int
sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
sh(const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	int rc;

	va_start(ap, fmt);
	assert_true(vasprintf(&cmd, fmt, ap) >= 0);
	va_end(ap);
	rc = system(cmd);
	free(cmd);
	return rc;
}

/* A file store with folders, an empty folder, names that need escaping or
 * are not UTF-8, an empty file and a symlink (skipped by both writers). */
static void
make_files(void)
{
	char *p;
	int i;

	for (i = 0; i < 20; i++) {
		p = xasprintf("%02x/%02x/file-%d", i % 4, i, i);
		put(p, p);
		free(p);
	}
	put("odd\\name", "x");
	put("caf\xe9-latin1", "not utf-8");
	put("\xc3\xa9t\xc3\xa9.txt", "utf-8");
	put("empty", "");
	p = xasprintf("%s/files/empty-dir", tmp);
	assert_int_equal(mkdir(p, 0750), 0);
	free(p);
	p = xasprintf("%s/files/link", tmp);
	assert_int_equal(symlink("/etc/passwd", p), 0);
	free(p);
}

static int
dump_fd(void)
{
	char *p = xasprintf("%s/in.dump", tmp);
	int fd;

	/* the tiny dump, unless the test wrote its own */
	if (access(p, F_OK) != 0)
		assert_int_equal(util_write_file(p, tiny_dump, tiny_dump_len,
		    0644), 0);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	free(p);
	return fd;
}

/* Snapshot files/ into store/ as manifest name (after prev, may be NULL). */
static void
snap(const char *name, const char *prev, struct snapstore_stats *st)
{
	struct snapstore_snap_opts o;
	char *store = xasprintf("%s/store", tmp);
	char *man = xasprintf("%s/%s", tmp, name);
	char *pm = prev ? xasprintf("%s/%s", tmp, prev) : NULL;
	char *files = xasprintf("%s/files", tmp), *cause = NULL;

	memset(&o, 0, sizeof(o));
	o.store = store;
	o.files_dir = files;
	o.dump_fd = dump_fd();
	o.prev = pm;
	o.manifest = man;
	o.model_version = "1.2.3";
	o.created = 1700000000;
	o.database_size = -1;
	if (snapstore_snapshot(&o, st, &cause) < 0)
		fail_msg("snapshot: %s", cause);
	close(o.dump_fd);
	free(store);
	free(man);
	free(pm);
	free(files);
}

/* Assemble manifest name's download of kind (stored: the restore's
 * stream) into out; 0 or -1 (*cause). */
static int
assemble_as(const char *name, enum snapstore_kind kind, const char *out,
    int stored, char **cause)
{
	char *store = xasprintf("%s/store", tmp);
	char *man = xasprintf("%s/%s", tmp, name);
	char *op = xasprintf("%s/%s", tmp, out);
	int fd = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0600), rc;

	assert_true(fd >= 0);
	rc = (stored ? snapstore_archive_stream : snapstore_archive_write)(
	    store, man, kind, fd, cause);
	close(fd);
	free(store);
	free(man);
	free(op);
	return rc;
}

static int
assemble(const char *name, enum snapstore_kind kind, const char *out,
    char **cause)
{
	return assemble_as(name, kind, out, 0, cause);
}

/* snapstore_archive_size() of manifest name's download of kind is the
 * size of the file out, which holds that download. */
static void
size_is(const char *name, enum snapstore_kind kind, const char *out)
{
	char *store = xasprintf("%s/store", tmp);
	char *man = xasprintf("%s/%s", tmp, name);
	char *op = xasprintf("%s/%s", tmp, out), *cause = NULL;
	struct stat st;
	long long size = -1;

	if (snapstore_archive_size(store, man, kind, &size, &cause) < 0)
		fail_msg("size: %s", cause);
	assert_int_equal(stat(op, &st), 0);
	assert_int_equal(size, (long long)st.st_size);
	free(store);
	free(man);
	free(op);
}

/* Assembling manifest name fails with a cause holding want. */
static void
refused(const char *name, enum snapstore_kind kind, const char *want)
{
	char *cause = NULL;

	assert_int_equal(assemble(name, kind, "refused.out", &cause), -1);
	if (strstr(cause, want) == NULL)
		fail_msg("'%s' does not say '%s'", cause, want);
	free(cause);
}

/* Blob hex's raw bytes, whatever its stored form (*len: their size);
 * caller frees. */
static char *
blob_raw(const char *store, const char *hex, size_t *len)
{
	struct snapstore_blob b;
	struct buf out;
	char chunk[4096], *why = NULL;
	ssize_t n;

	buf_init(&out, 0);
	snapstore_blob_init(&b);
	if (snapstore_blob_open(&b, store, hex, &why) < 0)
		fail_msg("blob %s: %s", hex, why);
	while ((n = snapstore_blob_read(&b, chunk, sizeof chunk, &why)) > 0)
		buf_append(&out, chunk, (size_t)n);
	if (n < 0 || snapstore_blob_done(&b, &why) < 0)
		fail_msg("blob %s: %s", hex, why);
	snapstore_blob_close(&b);
	*len = out.len;
	buf_append(&out, "", 1);
	return buf_detach(&out);
}

/* Turn every packed blob of tmp/store into its raw form, as a store
 * written before blobs were packed holds them (every second one with
 * half, for a mixed store). */
static void
unpack_store(int half)
{
	char *store = xasprintf("%s/store", tmp), *p, *data;
	FILE *ls;
	char line[512], hex[65];
	size_t len;
	int i = 0;

	p = xasprintf("cd %s/blobs && ls */*.z", store);
	ls = popen(p, "r");
	free(p);
	assert_non_null(ls);
	while (fgets(line, sizeof line, ls) != NULL) {
		if (half && i++ % 2 == 1)
			continue;
		snprintf(hex, sizeof hex, "%.2s%.62s", line, line + 3);
		data = blob_raw(store, hex, &len);
		p = snapstore_blob_path(store, hex);
		assert_int_equal(util_write_file(p, data, len, 0600), 0);
		free(p);
		p = snapstore_packed_path(store, hex);
		assert_int_equal(unlink(p), 0);
		free(p);
		free(data);
	}
	pclose(ls);
	free(store);
}

static void
count(long long *blobs, long long *bytes)
{
	char *store = xasprintf("%s/store", tmp);

	assert_int_equal(snapstore_count(store, blobs, bytes), 0);
	free(store);
}

/* Today's archive of files/ and in.dump (backup_archive_write()), as
 * tmp/name. */
static void
write_today(const char *name)
{
	struct backup_write_opts o;
	char *p, *cause = NULL;
	int fd;

	memset(&o, 0, sizeof(o));
	o.dump_path = xasprintf("%s/in.dump", tmp);
	close(dump_fd());
	o.files_dir = xasprintf("%s/files", tmp);
	o.tmp_dir = tmp;
	o.model_version = "1.2.3";
	p = xasprintf("%s/%s", tmp, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	if (backup_archive_write(&o, fd, NULL, &cause) < 0)
		fail_msg("write: %s", cause);
	close(fd);
	free(p);
	free((char *)o.dump_path);
	free((char *)o.files_dir);
}

/* The store's download carries what today's archive carries: same member
 * list in the same order, same contents, valid for nubo's reader (every
 * checksum) and for plain tar + pg_restore; the same bytes every time,
 * in another process too. */
static void
test_roundtrip(void **state)
{
	struct backup_read_opts ro;
	struct backup_info info;
	char *p, *cause = NULL;
	int fd;
	pid_t pid;

	(void)state;
	make_files();
	write_today("today.tar.gz");
	snap("m1.json", NULL, NULL);
	if (assemble("m1.json", SNAPSTORE_FULL, "store.tar.gz", &cause) < 0)
		fail_msg("assemble: %s", cause);
	/* same members in the same order, same contents, plain readers */
	assert_int_equal(sh("cd %s && tar tzf today.tar.gz >today.list && "
	    "tar tzf store.tar.gz >store.list && cmp -s today.list store.list",
	    tmp), 0);
	assert_int_equal(sh("cd %s && mkdir a b && tar xzf today.tar.gz -C a && "
	    "tar xzf store.tar.gz -C b && diff -r a b >/dev/null && "
	    "diff -r files b/tree -x link >/dev/null && "
	    "pg_restore --list b/db/db.backup >/dev/null && "
	    "cd b && sha256sum --quiet -c .nubo/checksums", tmp), 0);
	/* nubo's own reader: every rule and checksum holds */
	backup_read_opts_init(&ro);
	ro.pg_restore = "pg_restore";
	p = xasprintf("%s/store.tar.gz", tmp);
	fd = open(p, O_RDONLY);
	free(p);
	if (backup_archive_read_fd(fd, &ro, &info, &cause) < 0)
		fail_msg("read: %s", cause);
	close(fd);
	assert_true(info.has_checksums);
	assert_int_equal(info.files, 24);
	assert_string_equal(info.meta.model_version, "1.2.3");
	/* deterministic: again here, and in a child process */
	assert_int_equal(assemble("m1.json", SNAPSTORE_FULL, "again.tar.gz",
	    &cause), 0);
	pid = fork();
	if (pid == 0)
		_exit(assemble("m1.json", SNAPSTORE_FULL, "child.tar.gz",
		    &cause) == 0 ? 0 : 1);
	assert_int_equal(waitpid(pid, &fd, 0), pid);
	assert_int_equal(fd, 0);
	assert_int_equal(sh("cd %s && cmp -s store.tar.gz again.tar.gz && "
	    "cmp -s store.tar.gz child.tar.gz", tmp), 0);
	/* files-only and database-only downloads */
	if (assemble("m1.json", SNAPSTORE_FILES, "files.tar.gz", &cause) < 0 ||
	    assemble("m1.json", SNAPSTORE_DATABASE, "db.backup", &cause) < 0)
		fail_msg("assemble: %s", cause);
	assert_int_equal(sh("cd %s && mkdir c && tar xzf files.tar.gz -C c && "
	    "diff -r files c/tree -x link >/dev/null && cmp -s in.dump "
	    "db.backup && test \"$(ls -A c)\" = tree", tmp), 0);
	/* the size a HEAD answers, without writing a byte */
	size_is("m1.json", SNAPSTORE_FULL, "store.tar.gz");
	size_is("m1.json", SNAPSTORE_FILES, "files.tar.gz");
	size_is("m1.json", SNAPSTORE_DATABASE, "db.backup");
}

/* A second snapshot reads only the changed files and adds only their
 * blobs; a file rewritten with the same size is seen (mtime, ctime). */
static void
test_incremental(void **state)
{
	struct snapstore_stats st;
	long long b1, b2, bytes;
	char *p;
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, 0 } };
	struct stat sb;
	int fd;

	(void)state;
	make_files();
	snap("m1.json", NULL, &st);
	assert_int_equal(st.files, 24);
	assert_int_equal(st.hashed, 24);
	assert_int_equal(st.reused, 0);
	count(&b1, &bytes);
	/* 24 distinct files + the dump */
	assert_int_equal(b1, 25);
	assert_int_equal(st.blobs_added, 25);

	put("new/uuid-1", "new file");
	snap("m2.json", "m1.json", &st);
	assert_int_equal(st.files, 25);
	assert_int_equal(st.hashed, 1);
	assert_int_equal(st.reused, 24);
	assert_int_equal(st.blobs_added, 1);
	count(&b2, &bytes);
	assert_int_equal(b2, b1 + 1);

	/* same content as an existing file: hashed, no new blob */
	put("new/uuid-2", "new file");
	/* rewritten in place (same inode), same size, mtime put back:
	 * ctime still says so */
	p = xasprintf("%s/files/00/00/file-0", tmp);
	assert_int_equal(stat(p, &sb), 0);
	fd = open(p, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "00/00/file-X", 12), 12);
	close(fd);
	ts[1] = sb.st_mtim;
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	free(p);
	snap("m3.json", "m2.json", &st);
	assert_int_equal(st.hashed, 2);
	assert_int_equal(st.reused, 24);
	assert_int_equal(st.blobs_added, 1);
	count(&b1, &bytes);
	assert_int_equal(b1, b2 + 1);
}

/* Deleting a snapshot frees exactly the blobs only it named; a manifest
 * that cannot be read stops the sweep before anything goes. */
static void
test_sweep(void **state)
{
	char *store = xasprintf("%s/store", tmp), *p, *cause = NULL;
	char *roots = xasprintf("%s/m*.json", tmp);
	long long before, after, bytes, bytes2, freed, fbytes;

	(void)state;
	make_files();
	snap("m1.json", NULL, NULL);
	/* one file deleted, one added */
	p = xasprintf("%s/files/odd\\name", tmp);
	assert_int_equal(unlink(p), 0);
	free(p);
	put("added", "added later");
	snap("m2.json", "m1.json", NULL);
	count(&before, &bytes);

	/* both kept: nothing freed */
	assert_int_equal(snapstore_sweep(store, roots, &freed, &fbytes,
	    &cause), 0);
	assert_int_equal(freed, 0);

	/* a damaged root: refused, nothing freed */
	p = xasprintf("%s/m1.json", tmp);
	assert_int_equal(util_write_file(p, "{", 1, 0600), 0);
	assert_int_equal(snapstore_sweep(store, roots, &freed, &fbytes,
	    &cause), -1);
	assert_non_null(strstr(cause, "m1.json"));
	free(cause);
	cause = NULL;
	count(&after, &bytes);
	assert_int_equal(after, before);

	/* m1 deleted: only "odd\name"'s blob goes, m2 still downloads */
	assert_int_equal(unlink(p), 0);
	free(p);
	assert_int_equal(snapstore_sweep(store, roots, &freed, &fbytes,
	    &cause), 0);
	assert_int_equal(freed, 1);
	count(&after, &bytes2);
	assert_int_equal(after, before - 1);
	/* the bytes on disk: the blob's packed form */
	assert_int_equal(fbytes, bytes - bytes2);
	assert_true(fbytes > SNAPSTORE_PACK_HEAD);
	if (assemble("m2.json", SNAPSTORE_FULL, "m2.tar.gz", &cause) < 0)
		fail_msg("assemble: %s", cause);

	/* all gone: the store is empty */
	p = xasprintf("%s/m2.json", tmp);
	assert_int_equal(unlink(p), 0);
	free(p);
	assert_int_equal(snapstore_sweep(store, roots, &freed, &fbytes,
	    &cause), 0);
	count(&after, &bytes);
	assert_int_equal(after, 0);
	free(roots);
	free(store);
}

/* Assemble manifest name's restore stream (stored blocks, blobs
 * re-hashed) into out; 0 or -1 (*cause). */
static int
assemble_stored(const char *name, const char *out, char **cause)
{
	return assemble_as(name, SNAPSTORE_FULL, out, 1, cause);
}

/* XOR one byte of file path at off. */
static void
flip(const char *path, off_t off)
{
	unsigned char c;
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x20;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/* A damaged or missing blob. A packed one damaged inside its deflated
 * bytes is spliced unread: the download (and the restore's stream) is
 * made, and the bytes a client gets fail gzip's check (the trailer's
 * crc32 is the one recorded when the blob was packed);
 * snapstore_verify() names the file. A packed blob whose header does not
 * give the manifest's size, a raw one (an older store) whose bytes do
 * not hash to its name and a missing one fail the download, naming the
 * file. */
static void
test_damaged_blob(void **state)
{
	char *store = xasprintf("%s/store", tmp), *pk, *raw, *man;
	char *cause = NULL;
	/* sha256("the document") */
	const char *hex = "058ad513dff2b80ff50ca6e7f47125d4a6923ba5985adffc9"
	    "fa18df7f4db81c0";

	(void)state;
	put("doc", "the document");
	snap("m1.json", NULL, NULL);
	pk = snapstore_packed_path(store, hex);
	raw = snapstore_blob_path(store, hex);
	assert_int_equal(access(pk, F_OK), 0);
	assert_int_equal(sh("cp %s %s/doc.orig", pk, tmp), 0);

	/* inside the deflated bytes */
	flip(pk, SNAPSTORE_PACK_HEAD + 7);
	if (assemble("m1.json", SNAPSTORE_FULL, "broken.tar.gz", &cause) < 0)
		fail_msg("assemble: %s", cause);
	assert_int_not_equal(sh("gzip -t %s/broken.tar.gz 2>/dev/null", tmp),
	    0);
	if (assemble_stored("m1.json", "broken.tar", &cause) < 0)
		fail_msg("stream: %s", cause);
	assert_int_not_equal(sh("gzip -t %s/broken.tar 2>/dev/null", tmp), 0);
	/* what a restore whose reader failed asks: which file */
	man = xasprintf("%s/m1.json", tmp);
	assert_int_equal(snapstore_verify(store, man, SNAPSTORE_FULL, &cause),
	    -1);
	if (strstr(cause, "'tree/doc' is damaged") == NULL)
		fail_msg("'%s' does not name the file", cause);
	free(cause);
	cause = NULL;
	assert_int_equal(snapstore_verify(store, man, SNAPSTORE_DATABASE,
	    &cause), 0);

	/* the header's size */
	assert_int_equal(sh("cp %s/doc.orig %s", tmp, pk), 0);
	flip(pk, 8);
	refused("m1.json", SNAPSTORE_FULL, "'tree/doc' is damaged");

	/* a raw blob, as an older store holds it */
	assert_int_equal(unlink(pk), 0);
	assert_int_equal(util_write_file(raw, "the documenX", 12, 0600), 0);
	refused("m1.json", SNAPSTORE_FULL, "'tree/doc' is damaged");
	assert_int_equal(util_write_file(raw, "the document", 12, 0600), 0);
	if (assemble("m1.json", SNAPSTORE_FULL, "whole.tar.gz", &cause) < 0)
		fail_msg("assemble: %s", cause);
	assert_int_equal(sh("gzip -t %s/whole.tar.gz", tmp), 0);

	assert_int_equal(sh("cd %s/store/blobs && rm -f */*", tmp), 0);
	refused("m1.json", SNAPSTORE_FULL, "'db/db.backup' is missing");
	free(man);
	free(pk);
	free(raw);
	free(store);
}

/* Every entry of the .tar.gz at path read with libarchive (its gzip
 * filter, not nubo's): the regular files' bytes in total, -1 on error. */
static long long
libarchive_bytes(const char *path)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	char buf[8192];
	long long total = 0;
	la_ssize_t n;
	int r;

	archive_read_support_filter_gzip(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, path, 10240) != ARCHIVE_OK) {
		archive_read_free(a);
		return -1;
	}
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK)
		while ((n = archive_read_data(a, buf, sizeof buf)) > 0)
			total += n;
	archive_read_free(a);
	return r == ARCHIVE_EOF ? total : -1;
}

/* Write manifest name's download from byte from into out. */
static void
assemble_from(const char *name, long long from, const char *out)
{
	char *store = xasprintf("%s/store", tmp);
	char *man = xasprintf("%s/%s", tmp, name);
	char *op = xasprintf("%s/%s", tmp, out), *cause = NULL;
	int fd = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	if (snapstore_archive_write_from(store, man, SNAPSTORE_FULL, from, fd,
	    &cause) < 0)
		fail_msg("from %lld: %s", from, cause);
	close(fd);
	free(store);
	free(man);
	free(op);
}

/* Each Range start gives the slice of the whole download from there. */
static void
ranges_hold(const char *name, const char *whole)
{
	char *p = xasprintf("%s/%s", tmp, whole);
	struct stat st;
	long long offs[10], len;
	size_t i;

	assert_int_equal(stat(p, &st), 0);
	len = (long long)st.st_size;
	offs[0] = 1;
	offs[1] = 9;		/* the gzip header's end */
	offs[2] = 10;
	offs[3] = 11;
	offs[4] = len / 3;
	offs[5] = len / 2;
	offs[6] = len * 4 / 5;
	offs[7] = len - 10;	/* inside the trailer */
	offs[8] = len - 1;
	offs[9] = len;
	for (i = 0; i < 10; i++) {
		assemble_from(name, offs[i], "range.out");
		if (sh("cd %s && tail -c +%lld %s | cmp -s - range.out", tmp,
		    offs[i] + 1, whole) != 0)
			fail_msg("the download from byte %lld is not the whole's "
			    "slice", offs[i]);
	}
	free(p);
}

/* An off-node copy's wire for every blob manifest name names, from
 * the store as it is: as gzip (packed blobs spliced) it inflates to the
 * blobs' raw bytes in order, the same bytes as the raw wire; the packed
 * form's frames (read here by Python's zlib, not nubo's reader) hold
 * each blob's header (size, crc32) and a deflate stream of its bytes;
 * the size counted without writing is each form's size. */
static void
wire_holds(const char *name)
{
	char *store = xasprintf("%s/store", tmp), *p, *cause = NULL, *data;
	json_t *m, *e, *list = json_array();
	long long counted, size;
	size_t i, len;
	int fd, gz;
	FILE *raw;

	p = xasprintf("%s/%s", tmp, name);
	m = json_load_file(p, 0, NULL);
	free(p);
	assert_non_null(m);
	json_array_foreach(json_object_get(json_object_get(m, "dump"),
	    "chunks"), i, e)
		json_array_append(list, e);
	json_array_foreach(json_object_get(m, "tree"), i, e)
		if (jsonx_str(e, "sha256") != NULL)
			json_array_append_new(list, json_pack("{s:s,s:I}",
			    "sha256", jsonx_str(e, "sha256"), "size",
			    (json_int_t)jsonx_int(e, "size", 0)));
	/* what the blobs hold, through the one reader */
	p = xasprintf("%s/wire.want", tmp);
	raw = fopen(p, "w");
	free(p);
	json_array_foreach(list, i, e) {
		data = blob_raw(store, jsonx_str(e, "sha256"), &len);
		assert_int_equal(fwrite(data, 1, len, raw), len);
		free(data);
	}
	fclose(raw);
	for (gz = SNAPSTORE_WIRE_RAW; gz <= SNAPSTORE_WIRE_PACKED; gz++) {
		p = xasprintf("%s/wire.%d", tmp, gz);
		fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		free(p);
		if (snapstore_blobs_write(store, list, gz, fd, &size,
		    &cause) < 0 || snapstore_blobs_write(store, list, gz, -1,
		    &counted, &cause) < 0)
			fail_msg("wire: %s", cause);
		close(fd);
		assert_int_equal(size, counted);
		assert_int_equal(sh("cd %s && test $(stat -c %%s wire.%d) = %lld",
		    tmp, gz, size), 0);
	}
	assert_int_equal(sh("cd %s && cmp -s wire.0 wire.want && gzip -t "
	    "wire.1 && zcat wire.1 | cmp -s - wire.want", tmp), 0);
	assert_int_equal(sh("cd %s && python3 -c '\n"
	    "import struct, sys, zlib\n"
	    "w, out = open(\"wire.2\", \"rb\").read(), b\"\"\n"
	    "while w:\n"
	    "    n, = struct.unpack(\"<Q\", w[:8])\n"
	    "    f, w = w[8:8 + n], w[8 + n:]\n"
	    "    assert len(f) == n and f[:8] == b\"nuboblz1\"\n"
	    "    size, crc = struct.unpack(\"<QI\", f[8:20])\n"
	    "    d = zlib.decompressobj(-15)\n"
	    "    b = d.decompress(f[24:])\n"
	    "    assert not d.eof and not d.unconsumed_tail\n"
	    "    assert len(b) == size and zlib.crc32(b) == crc\n"
	    "    out += b\n"
	    "sys.exit(out != open(\"wire.want\", \"rb\").read())'", tmp), 0);
	json_decref(list);
	json_decref(m);
	free(store);
}

/* A download from a packed store, a mixed one (half the blobs raw, as a
 * store written before packing holds them) and an all-raw one is the
 * same bytes; gzip -t, tar, Python's tarfile and libarchive read it; a
 * Range from any offset is the slice of the whole; the size (no dry run
 * for packed blobs) is the download's; the restore's stream holds the
 * same tar; the sweep sees both forms. */
static void
test_forms(void **state)
{
	char *store = xasprintf("%s/store", tmp), *roots, *p, *cause = NULL;
	long long blobs, bytes, total, freed;

	(void)state;
	make_files();
	/* compressible, incompressible, base64: each level the packer has */
	assert_int_equal(sh("cd %s/files && seq 1 20000 | sed 's/$/ lorem "
	    "ipsum dolor sit amet/' > text && head -c 300000 /dev/urandom > "
	    "random && head -c 200000 /dev/urandom | base64 > b64", tmp), 0);
	snap("m1.json", NULL, NULL);
	/* the level each got: text deflated (level 1), random bytes stored
	 * (a header, 5 bytes per 64 KiB block and the flush's 5) */
	assert_int_equal(sh("cd %s && z() { h=$(sha256sum files/$1 | cut "
	    "-c1-64); stat -c %%s store/blobs/$(echo $h | cut -c1-2)/$(echo "
	    "$h | cut -c3-).z; } && test $(z text) -lt $(($(stat -c %%s "
	    "files/text) / 3)) && test $(z random) -le $((300000 + 24 + 5 * 5 "
	    "+ 5)) && test $(z b64) -lt $(($(stat -c %%s files/b64) * 4 / 5))",
	    tmp), 0);
	if (assemble("m1.json", SNAPSTORE_FULL, "packed.tar.gz", &cause) < 0)
		fail_msg("assemble: %s", cause);
	size_is("m1.json", SNAPSTORE_FULL, "packed.tar.gz");
	assert_int_equal(sh("cd %s && gzip -t packed.tar.gz && mkdir x && "
	    "tar xzf packed.tar.gz -C x && diff -r files x/tree -x link && "
	    "cd x && sha256sum --quiet -c .nubo/checksums", tmp), 0);
	assert_int_equal(sh("cd %s && python3 -c 'import tarfile, sys; "
	    "t = tarfile.open(sys.argv[1]); print(sum(len(t.extractfile(m)."
	    "read()) for m in t if m.isfile()))' packed.tar.gz > py.out", tmp),
	    0);
	/* libarchive and Python read the same contents, all of them */
	p = xasprintf("%s/packed.tar.gz", tmp);
	total = libarchive_bytes(p);
	free(p);
	assert_true(total > 900000);
	assert_int_equal(sh("test \"$(cat %s/py.out)\" = %lld", tmp, total),
	    0);
	ranges_hold("m1.json", "packed.tar.gz");
	/* the restore's stream: another gzip stream, the same tar */
	if (assemble_stored("m1.json", "stored.tar.gz", &cause) < 0)
		fail_msg("stream: %s", cause);
	assert_int_equal(sh("cd %s && gzip -t stored.tar.gz && zcat "
	    "packed.tar.gz > packed.tar && zcat stored.tar.gz | cmp -s - "
	    "packed.tar", tmp), 0);

	unpack_store(1);
	assert_int_equal(sh("cd %s/store/blobs && ls */* | grep -q '\\.z$' && "
	    "ls */* | grep -qv '\\.z$'", tmp), 0);
	if (assemble("m1.json", SNAPSTORE_FULL, "mixed.tar.gz", &cause) < 0)
		fail_msg("assemble: %s", cause);
	assert_int_equal(sh("cmp %s/packed.tar.gz %s/mixed.tar.gz", tmp, tmp),
	    0);
	size_is("m1.json", SNAPSTORE_FULL, "mixed.tar.gz");
	ranges_hold("m1.json", "mixed.tar.gz");
	if (assemble_stored("m1.json", "stored2.tar.gz", &cause) < 0)
		fail_msg("stream: %s", cause);
	assert_int_equal(sh("cd %s && zcat stored2.tar.gz | cmp -s - "
	    "packed.tar", tmp), 0);
	wire_holds("m1.json");

	unpack_store(0);
	assert_int_equal(sh("cd %s/store/blobs && ! ls */* | grep -q '\\.z$'",
	    tmp), 0);
	if (assemble("m1.json", SNAPSTORE_FULL, "raw.tar.gz", &cause) < 0)
		fail_msg("assemble: %s", cause);
	assert_int_equal(sh("cmp %s/packed.tar.gz %s/raw.tar.gz", tmp, tmp), 0);

	/* a second snapshot over the raw store packs only what is new;
	 * the sweep frees raw and packed blobs alike */
	put("new", "a new document");
	snap("m2.json", "m1.json", NULL);
	assert_int_equal(sh("cd %s/store/blobs && test $(ls */*.z | wc -l) "
	    "= 1", tmp), 0);
	roots = xasprintf("%s/none-*.json", tmp);
	assert_int_equal(snapstore_sweep(store, roots, &freed, NULL, &cause),
	    0);
	count(&blobs, &bytes);
	assert_int_equal(blobs, 0);
	assert_true(freed > 20);
	free(roots);
	free(store);
}

/* A manifest naming a path outside tree/ or a blob by something other
 * than a sha256 is refused before a byte of it is written; a name that is
 * not UTF-8 is kept in util_name_encode()'s form. */
static void
test_hostile_manifest(void **state)
{
	static const char *bad[] = {
		"../etc/passwd", "a/../../x", "/abs", "a//b", "./a", "%2E%2E/x",
	};
	char *p, *text;
	size_t i;

	(void)state;
	put("caf\xe9", "x");
	snap("m1.json", NULL, NULL);
	p = xasprintf("%s/m1.json", tmp);
	text = util_read_file(p, 1 << 20, NULL);
	assert_non_null(strstr(text, "\"path\":\"caf%E9\""));
	free(text);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		text = xasprintf("{\"format\":1,\"created\":1,\"dump\":{\"size\":1,"
		    "\"sha256\":\"%064d\",\"chunks\":[]},\"tree\":[{\"path\":"
		    "\"%s\",\"type\":\"f\",\"size\":1,\"sha256\":\"%064d\"}]}", 0,
		    bad[i], 0);
		assert_int_equal(util_write_file(p, text, strlen(text), 0600), 0);
		free(text);
		refused("m1.json", SNAPSTORE_FILES,
		    "manifest is damaged at entry 0");
		assert_int_equal(sh("test ! -s %s/refused.out", tmp), 0);
	}
	/* a blob named by something other than a sha256 */
	text = xasprintf("{\"format\":1,\"created\":1,\"dump\":{\"size\":1,"
	    "\"sha256\":\"%064d\",\"chunks\":[{\"size\":1,\"sha256\":"
	    "\"../../../etc/passwd\"}]},\"tree\":[]}", 0);
	assert_int_equal(util_write_file(p, text, strlen(text), 0600), 0);
	free(text);
	refused("m1.json", SNAPSTORE_DATABASE, "damaged: dump chunk 0");
	/* chunks that do not add up to the dump's size */
	text = xasprintf("{\"format\":1,\"created\":1,\"dump\":{\"size\":2,"
	    "\"sha256\":\"%064d\",\"chunks\":[{\"size\":1,\"sha256\":"
	    "\"%064d\"}]},\"tree\":[]}", 0, 0);
	assert_int_equal(util_write_file(p, text, strlen(text), 0600), 0);
	free(text);
	refused("m1.json", SNAPSTORE_FULL, "damaged: no dump");
	free(p);
}

/* The dump is cut by content: a byte changed or bytes inserted in the
 * middle of a 24 MB dump add the chunks around the change, not the dump
 * (with fixed-size pieces an insertion would shift every later one);
 * the database download is the dump, byte for byte. */
/* len random bytes (seed x; caller frees, room for extra more) as
 * in.dump, a document beside them, and their first snapshot m1.json. */
static unsigned char *
random_dump_snap(size_t len, size_t extra, uint64_t x,
    struct snapstore_stats *st)
{
	char *p = xasprintf("%s/in.dump", tmp);
	unsigned char *d = xmalloc(len + extra);
	size_t i;

	for (i = 0; i < len; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		d[i] = (unsigned char)(x >> 56);
	}
	assert_int_equal(util_write_file(p, d, len, 0644), 0);
	put("doc", "a document");
	snap("m1.json", NULL, st);
	free(p);
	return d;
}

static void
test_dump_chunks(void **state)
{
	struct snapstore_stats st;
	char *p = xasprintf("%s/in.dump", tmp), *q, *cause = NULL;
	long long bytes, first;
	unsigned char *d;
	size_t len = 24 << 20;
	int fd;

	(void)state;
	d = random_dump_snap(len, 1000, 42, &st);
	count(&first, &bytes);
	/* 1 MiB on average, 256 KiB to 4 MiB each: 6 to 96 chunks + doc */
	assert_true(first >= 7 && first <= 97);
	/* incompressible: stored blocks, a header and 5 bytes per 64 KiB */
	assert_true(bytes > (long long)len + 10);
	assert_true(bytes < (long long)len + 10 + first * (SNAPSTORE_PACK_HEAD +
	    10) + (long long)(len / 65535 + first) * 5);

	/* one byte changed at 12 MB */
	d[12 << 20] ^= 0xff;
	assert_int_equal(util_write_file(p, d, len, 0644), 0);
	snap("m2.json", "m1.json", &st);
	assert_int_equal(st.blobs_added, 1);
	assert_true(st.bytes_added <= 4 << 20);

	/* 1000 bytes inserted at 6 MB */
	memmove(d + (6 << 20) + 1000, d + (6 << 20), len - (6 << 20));
	memset(d + (6 << 20), 'x', 1000);
	assert_int_equal(util_write_file(p, d, len + 1000, 0644), 0);
	snap("m3.json", "m2.json", &st);
	assert_true(st.blobs_added >= 1 && st.blobs_added <= 2);
	assert_true(st.bytes_added <= 8 << 20);
	print_message("24 MB dump: %lld chunks; a byte changed added 1, an "
	    "insertion %lld (%lld bytes)\n", first - 1, st.blobs_added,
	    st.bytes_added);

	/* the download is the dump */
	if (assemble("m3.json", SNAPSTORE_DATABASE, "db.out", &cause) < 0)
		fail_msg("assemble: %s", cause);
	q = xasprintf("%s/db.out", tmp);
	fd = open(q, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(sh("cmp -s %s %s", p, q), 0);
	close(fd);
	free(q);
	free(p);
	free(d);
}

/* A chunk of the dump that cannot be packed (the file size limit: its
 * packed form, a few bytes over its raw size, does not fit) while the
 * packer packs it beside the chunker: the snapshot fails saying so, no
 * manifest, nothing left in tmp/; without the limit the next snapshot
 * is whole. */
static void
test_pack_fails(void **state)
{
	struct snapstore_snap_opts o;
	struct snapstore_stats st;
	struct rlimit was, lim;
	char *p = xasprintf("%s/in.dump", tmp), *cause = NULL;
	char *store = xasprintf("%s/store", tmp);
	char *man = xasprintf("%s/m2.json", tmp);
	char *tmpd = xasprintf("%s/store/tmp", tmp);
	json_t *m, *c;
	long long biggest = 0;
	unsigned char *d;
	size_t len = 12 << 20, i;
	DIR *dir;
	struct dirent *e;
	int left = 0;

	(void)state;
	d = random_dump_snap(len, 0, 7, &st);
	cause = xasprintf("%s/m1.json", tmp);
	m = json_load_file(cause, 0, NULL);
	free(cause);
	cause = NULL;
	assert_non_null(m);
	json_array_foreach(json_object_get(json_object_get(m, "dump"),
	    "chunks"), i, c)
		if (jsonx_int(c, "size", 0) > biggest)
			biggest = jsonx_int(c, "size", 0);
	json_decref(m);
	assert_true(biggest > 0);
	assert_int_equal(util_rm_rf(store), 0);

	/* the raw chunk fits, its packed form (stored blocks) does not */
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &was), 0);
	lim = was;
	lim.rlim_cur = (rlim_t)biggest + 8;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	memset(&o, 0, sizeof(o));
	o.store = store;
	o.files_dir = NULL;
	o.dump_fd = dump_fd();
	o.manifest = man;
	o.model_version = "1.2.3";
	o.created = 1700000000;
	o.database_size = -1;
	assert_int_equal(snapstore_snapshot(&o, &st, &cause), -1);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &was), 0);
	signal(SIGXFSZ, SIG_DFL);
	close(o.dump_fd);
	print_message("refused: %s\n", cause);
	assert_non_null(strstr(cause, "cannot write"));
	free(cause);
	cause = NULL;
	assert_int_equal(access(man, F_OK), -1);
	dir = opendir(tmpd);
	while (dir != NULL && (e = readdir(dir)) != NULL)
		left += e->d_name[0] != '.';
	if (dir != NULL)
		closedir(dir);
	assert_int_equal(left, 0);

	/* and without the limit, whole: its dump downloads as it was */
	snap("m2.json", NULL, &st);
	if (assemble("m2.json", SNAPSTORE_DATABASE, "db.out", &cause) < 0)
		fail_msg("assemble: %s", cause);
	free(man);
	man = xasprintf("%s/db.out", tmp);
	assert_int_equal(sh("cmp -s %s %s", p, man), 0);
	free(d);
	free(p);
	free(store);
	free(man);
	free(tmpd);
}

/* kill -9 at many points of a snapshot: a manifest, when there is one,
 * names only blobs that are there; the next sweep leaves no temp file
 * and no blob that no manifest names. */
static void
test_kill_mid_snapshot(void **state)
{
	char *store = xasprintf("%s/store", tmp), *man, *cause = NULL;
	char *roots = xasprintf("%s/m*.json", tmp), name[64];
	long long blobs, bytes, freed;
	int i, round, st, had = 0, missed = 0;
	pid_t pid;

	(void)state;
	for (i = 0; i < 400; i++) {
		snprintf(name, sizeof(name), "d%d/f%d", i % 10, i);
		put(name, name);
	}
	for (round = 0; round < 12; round++) {
		snprintf(name, sizeof(name), "m%d.json", round);
		man = xasprintf("%s/%s", tmp, name);
		util_rm_rf(store);
		pid = fork();
		if (pid == 0) {
			snap(name, NULL, NULL);
			_exit(0);
		}
		usleep((useconds_t)(round * round * 4000));
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &st, 0), pid);
		if (access(man, F_OK) == 0) {
			had++;
			if (assemble(name, SNAPSTORE_FULL, "k.tar.gz", &cause) < 0)
				fail_msg("after kill -9: %s", cause);
		} else
			missed++;
		assert_int_equal(snapstore_sweep(store, roots, &freed, NULL,
		    &cause), 0);
		count(&blobs, &bytes);
		/* 400 distinct files + the dump, or nothing */
		assert_int_equal(blobs, access(man, F_OK) == 0 ? 401 : 0);
		assert_int_equal(sh("test -z \"$(ls -A %s/tmp)\"", store), 0);
		unlink(man);
		free(man);
	}
	/* killed before the manifest at least once; how often a manifest
	 * made it depends on the machine's speed */
	assert_true(missed > 0);
	print_message("kill -9 mid-snapshot: %d rounds with a manifest, %d "
	    "without\n", had, missed);
	free(roots);
	free(store);
}

/* Import tmp/archive into store/ as manifest tmp/name: what
 * snapstore_import() returns, *cause on failure. */
static int
import(const char *archive, const char *name, const char *pg_restore,
    struct snapstore_stats *st, char **cause)
{
	struct snapstore_import_opts o;
	char *store = xasprintf("%s/store", tmp);
	char *man = xasprintf("%s/%s", tmp, name);
	char *ap = xasprintf("%s/%s", tmp, archive);
	int rc;

	memset(&o, 0, sizeof(o));
	o.store = store;
	o.manifest = man;
	o.pg_restore = pg_restore;
	o.archive_fd = open(ap, O_RDONLY);
	assert_true(o.archive_fd >= 0);
	rc = snapstore_import(&o, NULL, st, cause);
	close(o.archive_fd);
	free(store);
	free(man);
	free(ap);
	return rc;
}

/* A manifest's dump and tree without what only a snapshot of a folder
 * knows (the stat fields that let the next one skip unchanged files). */
static json_t *
contents_of(const char *name)
{
	char *p = xasprintf("%s/%s", tmp, name);
	json_t *m = json_load_file(p, 0, NULL), *out, *e;
	size_t i;

	assert_non_null(m);
	out = json_pack("{s:O,s:O}", "dump", json_object_get(m, "dump"),
	    "tree", json_object_get(m, "tree"));
	json_array_foreach(json_object_get(out, "tree"), i, e) {
		json_object_del(e, "mtime_ns");
		json_object_del(e, "ctime_ns");
		json_object_del(e, "inode");
		json_object_del(e, "device");
	}
	json_decref(m);
	free(p);
	return out;
}

/* An archive made by backup_archive_write() goes into the store as the
 * snapshot of the same files and dump would: the same blobs and chunks,
 * the same entries; the archive assembled from it is the original's tar
 * stream byte for byte (every member's name, mode, mtime and contents);
 * a second import adds no blob. */
static void
test_import(void **state)
{
	struct snapstore_stats st;
	unsigned char *d;
	size_t len = 6 << 20, i;
	uint64_t x = 7;
	long long blobs, bytes, again;
	json_t *a, *b;
	char *p, *cause = NULL;

	(void)state;
	make_files();
	/* a dump of several chunks, with pg_dump's magic */
	d = xmalloc(len);
	memcpy(d, tiny_dump, tiny_dump_len);
	for (i = tiny_dump_len; i < len; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		d[i] = (unsigned char)(x >> 56);
	}
	p = xasprintf("%s/in.dump", tmp);
	assert_int_equal(util_write_file(p, d, len, 0644), 0);
	free(p);
	free(d);
	write_today("today.tar.gz");
	if (import("today.tar.gz", "imp.json", NULL, &st, &cause) < 0)
		fail_msg("import: %s", cause);
	assert_int_equal(st.files, 24);
	assert_true(st.blobs_added >= 8);

	/* what snapstore_snapshot() makes of the same files and dump */
	snap("snap.json", NULL, NULL);
	a = contents_of("imp.json");
	b = contents_of("snap.json");
	if (!json_equal(a, b))
		fail_msg("the import's manifest differs from the snapshot's");
	assert_true(json_array_size(json_object_get(json_object_get(a, "dump"),
	    "chunks")) >= 2);
	json_decref(a);
	json_decref(b);

	/* back out: the same tar stream, member for member */
	if (assemble("imp.json", SNAPSTORE_FULL, "back.tar.gz", &cause) < 0)
		fail_msg("assemble: %s", cause);
	assert_int_equal(sh("cd %s && zcat today.tar.gz > today.tar && "
	    "zcat back.tar.gz > back.tar && cmp -s today.tar back.tar", tmp), 0);
	assert_int_equal(sh("cd %s && tar --full-time -tvf today.tar > a.list && "
	    "tar --full-time -tvf back.tar > b.list && cmp -s a.list b.list && "
	    "grep -q ' tree/empty-dir/$' b.list", tmp), 0);

	/* again: nothing new in the store, the same manifest */
	count(&blobs, &bytes);
	if (import("back.tar.gz", "imp2.json", NULL, &st, &cause) < 0)
		fail_msg("import: %s", cause);
	count(&again, &bytes);
	assert_int_equal(again, blobs);
	assert_int_equal(st.blobs_added, 0);
	assert_int_equal(sh("cmp -s %s/imp.json %s/imp2.json", tmp, tmp), 0);
}

/* An archive as another tool makes it (tar czf: members in the order
 * the folder lists them, no .nubo/checksums) imports in the order a
 * snapshot walks, with pg_restore checking the dump; a hostile archive
 * is refused with the reader's reason and leaves no manifest — also
 * when what is wrong shows only at its end, after blobs were written —
 * and the next sweep leaves the store empty. */
static void
test_import_hostile(void **state)
{
	static const struct {
		const char	*what;
		const char	*make;	/* shell, in tmp/m (a valid layout) */
		const char	*want;
	} bad[] = {
		{ "dumpSize wrong", "sed -i 's/\"dumpSize\":\"[0-9]*\"/"
		    "\"dumpSize\":\"1\"/' .metadata", "dumpSize is 1" },
		{ "a link", "ln -s /etc/passwd tree/zz-link",
		    "'tree/zz-link' is a symbolic link" },
		{ "a stray member", "echo x > stray", "unexpected archive member "
		    "'stray'" },
		{ "no dump", "rm -r db", "archive has no 'db/db.backup'" },
		{ "not a dump", "echo PGDMPxxxx > db/db.backup", "not a valid "
		    "PostgreSQL custom-format dump" },
	};
	char *store = xasprintf("%s/store", tmp), *roots, *cause = NULL;
	char *p;
	long long blobs, bytes;
	size_t i;

	(void)state;
	roots = xasprintf("%s/*.json", tmp);
	p = xasprintf("%s/in.dump", tmp);
	assert_int_equal(util_write_file(p, tiny_dump, tiny_dump_len, 0644), 0);
	free(p);
	/* a Mendix-style folder: .metadata, db/, tree/ in readdir order */
	assert_int_equal(sh("cd %s && mkdir -p m/db m/tree/b/c m/tree/a && "
	    "cp in.dump m/db/db.backup && head -c 300000 /dev/urandom > "
	    "m/tree/b/c/big && echo one > m/tree/a/1 && echo two > m/tree/b/2 "
	    "&& echo \"{\\\"duration\\\":\\\"3\\\",\\\"dumpSize\\\":\\\"$(stat "
	    "-c %%s in.dump)\\\",\\\"modelVersion\\\":\\\"9.24\\\","
	    "\\\"databaseSize\\\":\\\"9999\\\",\\\"filesSize\\\":\\\"12\\\"}\" "
	    "> m/.metadata && tar czf good.tar.gz -C m db tree .metadata", tmp),
	    0);
	if (import("good.tar.gz", "good.json", "pg_restore", NULL, &cause) < 0)
		fail_msg("import: %s", cause);
	assert_int_equal(sh("cd %s && mkdir g && python3 -c 'import json,sys; "
	    "print(\" \".join(e[\"path\"] for e in json.load(open(sys.argv[1]))"
	    "[\"tree\"]))' good.json > order && test \"$(cat order)\" = "
	    "'a a/1 b b/2 b/c b/c/big'", tmp), 0);
	if (assemble("good.json", SNAPSTORE_FULL, "good.out.tar.gz", &cause) < 0)
		fail_msg("assemble: %s", cause);
	assert_int_equal(sh("cd %s && tar xzf good.out.tar.gz -C g && diff -r "
	    "m/tree g/tree && cmp -s m/db/db.backup g/db/db.backup && grep -q "
	    "'\"modelVersion\":\"9.24\"' g/.metadata && grep -q "
	    "'\"filesSize\":\"12\"' g/.metadata", tmp), 0);
	p = xasprintf("%s/good.json", tmp);
	assert_int_equal(unlink(p), 0);
	free(p);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sh("cd %s && rm -rf h bad.tar.gz && cp -a m h && "
		    "cd h && %s && tar czf ../bad.tar.gz $(ls -A)", tmp,
		    bad[i].make), 0);
		/* the big file's blob first: the refusal comes after it */
		assert_int_equal(import("bad.tar.gz", "bad.json", "pg_restore",
		    NULL, &cause), -1);
		if (strstr(cause, bad[i].want) == NULL)
			fail_msg("%s: '%s' does not say '%s'", bad[i].what, cause,
			    bad[i].want);
		free(cause);
		cause = NULL;
		p = xasprintf("%s/bad.json", tmp);
		if (access(p, F_OK) == 0)
			fail_msg("%s: a manifest was written", bad[i].what);
		free(p);
	}
	assert_int_equal(snapstore_sweep(store, roots, NULL, NULL, &cause), 0);
	count(&blobs, &bytes);
	assert_int_equal(blobs, 0);
	assert_int_equal(sh("test -z \"$(ls -A %s/store/tmp)\"", tmp), 0);
	free(roots);
	free(store);
}

/* Feed store's blobs of batch (missing-list entries) to r, a few bytes
 * at a time (blob boundaries fall inside a feed). */
static int
feed(struct snapstore_recv *r, const char *store, json_t *batch,
    char **cause)
{
	json_t *e;
	size_t i, off, n;
	char *p, *data;
	size_t len;

	if (snapstore_recv_expect(r, batch, cause) < 0)
		return -1;
	json_array_foreach(batch, i, e) {
		p = NULL;
		data = blob_raw(store, jsonx_str(e, "sha256"), &len);
		for (off = 0; off < len; off += n) {
			n = len - off < 7 ? len - off : 7;
			if (snapstore_recv_data(r, data + off, n, cause) < 0) {
				free(data);
				free(p);
				return -1;
			}
		}
		free(data);
		free(p);
	}
	return 0;
}

/* store's blobs of batch in the PACKED wire form, whole; *len its size */
static char *
wire_packed(const char *store, json_t *batch, size_t *len)
{
	char *p = xasprintf("%s/wire.packed", tmp), *cause = NULL, *data;
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (snapstore_blobs_write(store, batch, SNAPSTORE_WIRE_PACKED, fd,
	    NULL, &cause) < 0)
		fail_msg("the packed wire: %s", cause);
	close(fd);
	if ((data = util_read_file(p, 1U << 30, len)) == NULL)
		fail_msg("cannot read %s", p);
	free(p);
	return data;
}

/* Feed data (of the PACKED form) to r a few bytes at a time. */
static int
feed_packed_bytes(struct snapstore_recv *r, const char *data, size_t len,
    char **cause)
{
	size_t off, n;

	for (off = 0; off < len; off += n) {
		n = len - off < 7 ? len - off : 7;
		if (snapstore_recv_packed(r, data + off, n, cause) < 0)
			return -1;
	}
	return 0;
}

/* As feed(), in the PACKED wire form. */
static int
feed_packed(struct snapstore_recv *r, const char *store, json_t *batch,
    char **cause)
{
	size_t len;
	char *data = wire_packed(store, batch, &len);
	int rc = -1;

	if (snapstore_recv_expect(r, batch, cause) == 0)
		rc = feed_packed_bytes(r, data, len, cause);
	free(data);
	return rc;
}

/* A packed wire that must be refused: batch expected, data fed, and
 * *cause holding want. */
static void
packed_refused(const char *dst, const char *m1, json_t *batch,
    const char *data, size_t len, const char *want)
{
	char *cause = NULL;
	struct snapstore_recv *r = snapstore_recv_begin(dst, m1, &cause);

	assert_non_null(r);
	assert_int_equal(snapstore_recv_expect(r, batch, &cause), 0);
	if (feed_packed_bytes(r, data, len, &cause) == 0 &&
	    snapstore_recv_sync(r, NULL, &cause) == 0)
		fail_msg("accepted: want '%s'", want);
	if (strstr(cause, want) == NULL)
		fail_msg("'%s' does not say '%s'", cause, want);
	free(cause);
	snapstore_recv_free(r);
}

/* A copy into another store (an off-node copy): only the blobs it lacks
 * are asked for; each checked as it arrives (a damaged one, or more bytes
 * than asked, refused and nothing kept); blobs made durable by a batch
 * are kept by partial.json through a kill and the sweep, so a resumed
 * copy does not ask for them again; the copy's download is the same
 * bytes as the original's. */
static void
test_recv(void **state)
{
	char *src = xasprintf("%s/store", tmp), *dst = xasprintf("%s/store2",
	    tmp), *m1 = xasprintf("%s/m1.json", tmp), *c1 = xasprintf(
	    "%s/c1.json", tmp), *part = xasprintf("%s/partial.json", tmp);
	char *roots = xasprintf("%s/{c1,partial}.json", tmp), *cause = NULL, *p;
	struct snapstore_recv *r;
	struct snapstore_stats st;
	json_t *missing, *b1, *b2, *bad, *e;
	long long nb, nbytes;
	size_t i, n;
	int fd;

	(void)state;
	make_files();
	snap("m1.json", NULL, NULL);
	r = snapstore_recv_begin(dst, m1, &cause);
	assert_non_null(r);
	missing = snapstore_recv_missing(r);
	n = json_array_size(missing);
	assert_true(n > 3);
	b1 = json_array();
	b2 = json_array();
	for (i = 0; i < n; i++)
		json_array_append(i < n / 2 ? b1 : b2, json_array_get(missing,
		    i));
	if (feed(r, src, b1, &cause) < 0 ||
	    snapstore_recv_sync(r, part, &cause) < 0)
		fail_msg("first batch: %s", cause);
	/* killed here: what the batch made durable stays, as partial.json
	 * names it; the rest of the batch never arrived */
	snapstore_recv_free(r);
	assert_int_equal(snapstore_sweep(dst, roots, NULL, NULL, &cause), 0);
	assert_int_equal(snapstore_count(dst, &nb, &nbytes), 0);
	assert_int_equal(nb, (long long)json_array_size(b1));
	/* the manifest as fetched: the commit moves it into place */
	assert_int_equal(sh("cp %s %s/fetched.json", m1, tmp), 0);
	p = xasprintf("%s/fetched.json", tmp);
	r = snapstore_recv_begin(dst, p, &cause);
	free(p);
	assert_non_null(r);
	assert_int_equal(json_array_size(snapstore_recv_missing(r)),
	    json_array_size(b2));
	/* resumed with the packed form: its files kept as they came */
	if (feed_packed(r, src, snapstore_recv_missing(r), &cause) < 0 ||
	    snapstore_recv_commit(r, c1, &st, &cause) < 0)
		fail_msg("resumed: %s", cause);
	json_array_foreach(b2, i, e)
		if (sh("cd %s && cmp -s store/blobs/%.2s/%s.z store2/blobs/"
		    "%.2s/%s.z", tmp, jsonx_str(e, "sha256"), jsonx_str(e,
		    "sha256") + 2, jsonx_str(e, "sha256"), jsonx_str(e,
		    "sha256") + 2) != 0)
			fail_msg("blob %s is not the source's packed file",
			    jsonx_str(e, "sha256"));
	assert_int_equal(st.blobs_added, (long long)json_array_size(b2));
	snapstore_recv_free(r);
	assert_int_equal(unlink(part), 0);
	assert_int_equal(snapstore_sweep(dst, roots, NULL, NULL, &cause), 0);
	assert_int_equal(snapstore_count(dst, &nb, &nbytes), 0);
	assert_int_equal(nb, (long long)n);
	/* the copy's download is the original's, byte for byte */
	assert_int_equal(assemble("m1.json", SNAPSTORE_FULL, "orig.tar.gz",
	    &cause), 0);
	p = xasprintf("%s/copy.tar.gz", tmp);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	free(p);
	if (snapstore_archive_write(dst, c1, SNAPSTORE_FULL, fd, &cause) < 0)
		fail_msg("the copy's download: %s", cause);
	close(fd);
	assert_int_equal(sh("cmp -s %s/orig.tar.gz %s/copy.tar.gz", tmp, tmp),
	    0);
	/* again: nothing is missing; committed by moving the manifest file
	 * as it came (its bytes, not written again) */
	assert_int_equal(sh("cp %s %s/fetched.json", m1, tmp), 0);
	p = xasprintf("%s/fetched.json", tmp);
	r = snapstore_recv_begin(dst, p, &cause);
	assert_int_equal(json_array_size(snapstore_recv_missing(r)), 0);
	assert_int_equal(snapstore_recv_commit(r, c1, NULL, &cause), 0);
	snapstore_recv_free(r);
	assert_int_equal(sh("cmp -s %s %s && test ! -e %s", m1, c1, p), 0);
	free(p);

	/* a blob that arrives damaged, and more bytes than asked for */
	assert_int_equal(sh("rm -rf %s/store3", tmp), 0);
	free(dst);
	dst = xasprintf("%s/store3", tmp);
	r = snapstore_recv_begin(dst, m1, &cause);
	bad = json_pack("[O]", json_array_get(snapstore_recv_missing(r), 0));
	assert_int_equal(snapstore_recv_expect(r, bad, &cause), 0);
	{
		long long sz = jsonx_int(json_array_get(bad, 0), "size", 0);
		char *junk = xcalloc(1, (size_t)sz + 1);

		assert_int_equal(snapstore_recv_data(r, junk, (size_t)sz, &cause),
		    -1);
		assert_non_null(strstr(cause, "arrived damaged"));
		free(cause);
		cause = NULL;
		free(junk);
	}
	snapstore_recv_free(r);
	r = snapstore_recv_begin(dst, m1, &cause);
	if (feed(r, src, bad, &cause) < 0)
		fail_msg("one blob: %s", cause);
	assert_int_equal(snapstore_recv_data(r, "x", 1, &cause), -1);
	assert_non_null(strstr(cause, "more bytes than"));
	free(cause);
	cause = NULL;
	snapstore_recv_free(r);
	/* the packed form: a length out of bounds, a flipped byte in the
	 * stream, another blob's file, a short one, one byte more */
	{
		size_t len, len2;
		char *w = wire_packed(src, bad, &len), *w2, *why;
		long long sz;
		json_t *other = json_pack("[O]", json_array_get(b2, 0));

		assert_true(len > 40);
		w[7] = 1;
		packed_refused(dst, m1, bad, w, len, "packed bytes for");
		w[7] = 0;
		w[len - 10] ^= 0x55;
		packed_refused(dst, m1, bad, w, len, "arrived damaged");
		/* a header giving another size than the one asked for is
		 * refused before a byte is inflated (a deflate bomb's header
		 * says how much it inflates to): so the stream's damage is
		 * never reached */
		sz = jsonx_int(json_array_get(bad, 0), "size", 0);
		snapstore_le_put((unsigned char *)w + 16, (uint64_t)sz + 4096,
		    8);
		why = xasprintf("arrived damaged (holds %lld bytes, not %lld)",
		    sz + 4096, sz);
		packed_refused(dst, m1, bad, w, len, why);
		free(why);
		snapstore_le_put((unsigned char *)w + 16, (uint64_t)sz, 8);
		w[len - 10] ^= 0x55;
		packed_refused(dst, m1, bad, w, len - 1, "did not all arrive");
		w2 = wire_packed(src, other, &len2);
		packed_refused(dst, m1, bad, w2, len2, "arrived damaged");
		free(w2);
		w = xrealloc(w, len + 1);
		w[len] = 'x';
		packed_refused(dst, m1, bad, w, len + 1, "more bytes than");
		r = snapstore_recv_begin(dst, m1, &cause);
		assert_int_equal(snapstore_recv_expect(r, bad, &cause), 0);
		assert_int_equal(feed_packed_bytes(r, w, len, &cause), 0);
		assert_int_equal(snapstore_recv_sync(r, NULL, &cause), 0);
		snapstore_recv_free(r);
		json_decref(other);
		free(w);
	}
	/* the sound one was kept; the rest left nothing */
	assert_int_equal(snapstore_count(dst, &nb, &nbytes), 0);
	assert_int_equal(nb, 1);
	assert_int_equal(sh("test -z \"$(ls %s/tmp)\"", dst), 0);
	/* a hostile manifest is refused before anything is asked for */
	p = xasprintf("{\"format\":1,\"dump\":{\"size\":0,\"sha256\":"
	    "\"%064d\",\"chunks\":[]},\"tree\":[{\"path\":\"../x\","
	    "\"type\":\"f\",\"size\":1,\"sha256\":\"%064d\"}]}", 0, 0);
	assert_int_equal(util_write_file(c1, p, strlen(p), 0600), 0);
	free(p);
	assert_null(snapstore_recv_begin(dst, c1, &cause));
	assert_non_null(strstr(cause, "damaged at entry 0"));
	free(cause);
	json_decref(b1);
	json_decref(b2);
	json_decref(bad);
	free(src);
	free(dst);
	free(m1);
	free(c1);
	free(part);
	free(roots);
}

/* The manifest text given (each # in it a sha256, each another) is
 * refused by a receiving store, saying want, before anything is asked
 * for; with want NULL it is taken, and its missing blobs add up to
 * total. */
static void
recv_manifest(const char *text, const char *want, long long total)
{
	char *dst = xasprintf("%s/store2", tmp), *man = xasprintf("%s/m.json",
	    tmp), *cause = NULL;
	struct buf b;
	struct snapstore_recv *r;
	json_t *e;
	long long sum = 0;
	size_t i;
	int n = 0;

	buf_init(&b, 0);
	for (; *text; text++)
		if (*text == '#')
			buf_printf(&b, "%064x", ++n);
		else
			buf_append(&b, text, 1);
	assert_int_equal(util_write_file(man, b.data, b.len, 0600), 0);
	r = snapstore_recv_begin(dst, man, &cause);
	if (want != NULL) {
		if (r != NULL)
			fail_msg("accepted: %.*s", (int)b.len, b.data);
		if (strstr(cause, want) == NULL)
			fail_msg("'%s' does not say '%s'", cause, want);
	} else {
		if (r == NULL)
			fail_msg("refused: %s", cause);
		json_array_foreach(snapstore_recv_missing(r), i, e)
			sum += jsonx_int(e, "size", 0);
		assert_int_equal(sum, total);
	}
	snapstore_recv_free(r);
	buf_release(&b);
	free(cause);
	free(man);
	free(dst);
}

/* A copied manifest whose sizes would wrap a sum — the room a copy
 * asks for, a download's length, the chunks or segments that must add
 * up to the dump — is refused before a blob is asked for: any one size
 * is at most NUBO_SNAPSHOT_SIZE_MAX, and so is what they add up to.
 * Sizes at the limit are taken. */
static void
test_hostile_sizes(void **state)
{
	static const char chain[] = "{\"format\":1,\"dump\":{\"size\":0,"
	    "\"sha256\":\"#\",\"crc32\":0,\"chunks\":[],\"deltas\":[{"
	    "\"sha256\":\"#\",\"size\":1,\"out\":0}],\"segments\":%s},"
	    "\"tree\":[]}";
	static const char files[] = "{\"format\":1,\"dump\":{\"size\":0,"
	    "\"sha256\":\"#\",\"chunks\":[]},\"tree\":[%s]}";
	static const char file[] = "{\"path\":\"f%d\",\"type\":\"f\","
	    "\"size\":%lld,\"sha256\":\"#\"}";
	const long long big = 1LL << 62, max = NUBO_SNAPSHOT_SIZE_MAX;
	char *a, *b, *t;

	(void)state;
	/* two files of 2^62 bytes: their sum (the copy's room) wraps */
	a = xasprintf(file, 1, big);
	b = xasprintf(file, 2, big);
	t = xasprintf("%s,%s", a, b);
	free(a);
	free(b);
	a = xasprintf(files, t);
	free(t);
	recv_manifest(a, "damaged at entry 0", 0);
	free(a);
	/* each at the limit, but two of them past it */
	a = xasprintf(file, 1, max);
	b = xasprintf(file, 2, max);
	t = xasprintf("%s,%s", a, b);
	free(b);
	b = xasprintf(files, t);
	recv_manifest(b, "sizes add up to more than 1125899906842624 bytes",
	    0);
	free(b);
	free(t);
	/* one at the limit: taken */
	b = xasprintf(files, a);
	recv_manifest(b, NULL, max);
	free(a);
	free(b);
	/* and so many small ones that their sum would wrap: the whole is
	 * bounded, not only each one */
	a = xasprintf(file, 1, max / 2 + 1);
	b = xasprintf(file, 2, max / 2 + 1);
	t = xasprintf("%s,%s", a, b);
	free(a);
	free(b);
	a = xasprintf(files, t);
	recv_manifest(a, "sizes add up to more than", 0);
	free(a);
	free(t);
	/* four chunks of 2^62 add up to 0, the dump's size */
	recv_manifest("{\"format\":1,\"dump\":{\"size\":0,\"sha256\":\"#\","
	    "\"chunks\":[{\"sha256\":\"#\",\"size\":4611686018427387904},"
	    "{\"sha256\":\"#\",\"size\":4611686018427387904},{\"sha256\":"
	    "\"#\",\"size\":4611686018427387904},{\"sha256\":\"#\","
	    "\"size\":4611686018427387904}]},\"tree\":[]}", "dump chunk 0", 0);
	recv_manifest("{\"format\":1,\"dump\":{\"size\":0,\"sha256\":\"#\","
	    "\"chunks\":[{\"sha256\":\"#\",\"size\":1125899906842624},"
	    "{\"sha256\":\"#\",\"size\":1}]},\"tree\":[]}",
	    "chunks add up to more than", 0);
	/* segments of a chain: 2^62 bytes each, adding up to its 0; and
	 * deflated sizes (the room its download copy asks for) that wrap */
	a = xasprintf(chain, "[{\"size\":4611686018427387904,\"zsize\":1,"
	    "\"crc32\":0},{\"size\":4611686018427387904,\"zsize\":1,"
	    "\"crc32\":0},{\"size\":4611686018427387904,\"zsize\":1,"
	    "\"crc32\":0},{\"size\":4611686018427387904,\"zsize\":1,"
	    "\"crc32\":0}]");
	recv_manifest(a, "dump segment 0", 0);
	free(a);
	a = xasprintf(chain, "[{\"size\":0,\"zsize\":1125899906842624,"
	    "\"crc32\":0},{\"size\":0,\"zsize\":1,\"crc32\":0}]");
	recv_manifest(a, "segments add up to more than", 0);
	free(a);
	a = xasprintf(chain, "[{\"size\":0,\"zsize\":9223372036854775807,"
	    "\"crc32\":0},{\"size\":0,\"zsize\":1,\"crc32\":0}]");
	recv_manifest(a, "dump segment 0", 0);
	free(a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incremental, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_blob, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_hostile_manifest, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pack_fails, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dump_chunks, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_recv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_sizes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_kill_mid_snapshot, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_hostile, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
