/* Backup archives (SPEC §3): round trip, plain-reader compatibility, and
 * every bad archive of SPEC §6 rejected with a clear error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include <cmocka.h>
#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

#include "backup-archive.h"
#include "util.h"
#include "xmalloc.h"

#include "data/tiny-dump.inc"

static char tmp[256];

/* A member of a hand-made archive. */
struct m {
	const char	*name;
	int		 type;		/* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR */
	const char	*data;		/* NULL: empty */
	size_t		 len;		/* 0: strlen(data) */
	const char	*link;		/* symlink target or hardlink source */
	int		 hard;
};

struct mem {
	char	*p;
	size_t	 len;
	size_t	 off;
};

static ssize_t
mem_read(void *ctx, void *buf, size_t len)
{
	struct mem *m = ctx;
	size_t n = m->len - m->off;

	if (n > len)
		n = len;
	memcpy(buf, m->p + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

/* A .tar.gz of the given members, made with libarchive (not nubo). */
static struct mem
mk(const struct m *ms, int n)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e;
	size_t cap = 64 * 1024 * 1024, used = 0;
	struct mem out = { xmalloc(cap), 0, 0 };
	int i;

	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_gzip(a);
	assert_int_equal(archive_write_open_memory(a, out.p, cap, &used),
	    ARCHIVE_OK);
	for (i = 0; i < n; i++) {
		const struct m *m = &ms[i];
		size_t len = m->data ? (m->len ? m->len : strlen(m->data)) : 0;

		e = archive_entry_new();
		archive_entry_set_pathname(e, m->name);
		archive_entry_set_filetype(e, m->type);
		archive_entry_set_perm(e, 0644);
		if (m->hard) {
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_hardlink(e, m->link);
		} else if (m->type == AE_IFLNK)
			archive_entry_set_symlink(e, m->link);
		else if (m->type == AE_IFCHR)
			archive_entry_set_rdev(e, 0x0101);
		archive_entry_set_size(e, m->type == AE_IFREG && !m->hard ?
		    (la_int64_t)len : 0);
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (len > 0 && !m->hard)
			assert_int_equal(archive_write_data(a, m->data, len),
			    (la_ssize_t)len);
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	out.len = used;
	return out;
}

static char *
meta(long long dump, long long files)
{
	return xasprintf("{\"duration\":\"0\",\"dumpSize\":\"%lld\","
	    "\"modelVersion\":\"1.0.0.40\",\"databaseSize\":\"9730584\","
	    "\"filesSize\":\"%lld\"}", dump, files);
}

/* Read m with opts (pg_restore off unless asked); 0 or -1 with *cause. */
static int
rd(struct mem *m, struct backup_read_opts *o, struct backup_info *info,
    char **cause)
{
	struct backup_read_opts dflt;

	if (o == NULL) {
		backup_read_opts_init(&dflt);
		o = &dflt;
	}
	m->off = 0;
	*cause = NULL;
	return backup_archive_read(mem_read, m, o, info, cause);
}

/* Assert that the archive is rejected with a message containing want. */
static void
reject(struct mem *m, struct backup_read_opts *o, const char *want)
{
	char *cause = NULL;

	assert_int_equal(rd(m, o, NULL, &cause), -1);
	assert_non_null(cause);
	if (strstr(cause, want) == NULL)
		fail_msg("cause '%s' lacks '%s'", cause, want);
	free(cause);
}

static const char tree_file[] = "hello attachment\n";

/* A valid raw (non-nubo) archive plus one extra member. */
static struct mem
raw_with(const struct m *extra, int nextra, long long files_size)
{
	struct m ms[32];
	char *md = meta(tiny_dump_len, files_size);
	int n = 0, i;
	struct mem out;

	ms[n++] = (struct m){ ".metadata", AE_IFREG, md, 0, NULL, 0 };
	ms[n++] = (struct m){ "db/", AE_IFDIR, NULL, 0, NULL, 0 };
	ms[n++] = (struct m){ "db/db.backup", AE_IFREG, (const char *)tiny_dump,
	    tiny_dump_len, NULL, 0 };
	ms[n++] = (struct m){ "tree/", AE_IFDIR, NULL, 0, NULL, 0 };
	ms[n++] = (struct m){ "tree/ab/cd/abcd-1", AE_IFREG, tree_file, 0,
	    NULL, 0 };
	for (i = 0; i < nextra; i++)
		ms[n++] = extra[i];
	out = mk(ms, n);
	free(md);
	return out;
}

/* Write a nubo archive of a files dir + the tiny dump into a file. */
static char *
write_nubo(void)
{
	struct backup_write_opts o;
	struct backup_meta bm;
	char *files = xasprintf("%s/files", tmp), *dump, *out, *p;
	char *cause = NULL;
	long long expect = 0;
	int fd, i;

	memset(&o, 0, sizeof(o));
	dump = xasprintf("%s/in.dump", tmp);
	assert_int_equal(util_write_file(dump, tiny_dump, tiny_dump_len, 0644), 0);
	for (i = 0; i < 20; i++) {
		p = xasprintf("%s/%02x/%02x/%02x%02x-%d", files, i, i * 3, i, i * 3, i);
		assert_int_equal(util_mkdir_p(files, 0755), 0);
		{
			char *d = xstrdup(p);

			*strrchr(d, '/') = '\0';
			assert_int_equal(util_mkdir_p(d, 0755), 0);
			free(d);
		}
		assert_int_equal(util_write_file(p, p, strlen(p), 0644), 0);
		expect += (long long)strlen(p);
		free(p);
	}
	/* a name that needs sha256sum escaping, and an empty file */
	p = xasprintf("%s/odd\\name", files);
	assert_int_equal(util_write_file(p, "x", 1, 0644), 0);
	expect += 1;
	free(p);
	p = xasprintf("%s/empty", files);
	assert_int_equal(util_write_file(p, "", 0, 0644), 0);
	free(p);
	/* a symlink: skipped by the writer */
	p = xasprintf("%s/link", files);
	assert_int_equal(symlink("/etc/passwd", p), 0);
	free(p);

	o.dump_path = dump;
	o.files_dir = files;
	o.tmp_dir = tmp;
	o.model_version = "1.2.3";
	out = xasprintf("%s/full.tar.gz", tmp);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	if (backup_archive_write(&o, fd, &bm, &cause) < 0)
		fail_msg("write: %s", cause);
	close(fd);
	assert_int_equal(bm.dump_size, tiny_dump_len);
	assert_int_equal(bm.files_size, expect);
	free(files);
	free(dump);
	return out;
}

static struct mem
load(const char *path)
{
	struct mem m = { 0 };

	m.p = util_read_file(path, 1 << 30, &m.len);
	assert_non_null(m.p);
	return m;
}

static void
test_roundtrip(void **state)
{
	struct backup_read_opts o;
	struct backup_info info;
	char *path = write_nubo(), *cause = NULL, *cmd, *dumpout, *tree;
	struct mem m = load(path);
	int fd, rc;

	(void)state;
	backup_read_opts_init(&o);
	o.pg_restore = "pg_restore";
	tree = xasprintf("%s/restored", tmp);
	dumpout = xasprintf("%s/out.dump", tmp);
	fd = open(dumpout, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	o.dump_fd = fd;
	o.tree_dir = tree;
	if (rd(&m, &o, &info, &cause) < 0)
		fail_msg("read: %s", cause);
	close(fd);
	assert_true(info.has_db);
	assert_true(info.has_metadata);
	assert_true(info.has_checksums);
	assert_int_equal(info.meta.nubo_format, 1);
	assert_string_equal(info.meta.model_version, "1.2.3");
	assert_int_equal(info.files, 22);
	assert_int_equal(info.dump_bytes, tiny_dump_len);
	/* extracted tree equals the source, dump equals the input */
	cmd = xasprintf("diff -r %s/files %s/restored -x link >/dev/null && "
	    "cmp -s %s/in.dump %s", tmp, tmp, tmp, dumpout);
	rc = system(cmd);
	assert_int_equal(rc, 0);
	free(cmd);
	/* plain tar and pg_restore read it (SPEC §3) */
	cmd = xasprintf("cd %s && mkdir plain && tar xzf full.tar.gz -C plain && "
	    "pg_restore --list plain/db/db.backup >/dev/null && "
	    "diff -r files plain/tree -x link >/dev/null && "
	    "cd plain && sha256sum --quiet -c .nubo/checksums", tmp);
	rc = system(cmd);
	assert_int_equal(rc, 0);
	free(cmd);
	free(tree);
	free(dumpout);
	free(m.p);
	free(path);
}

/* 1 when two gzip streams inflate to the same bytes. */
static int
same_tar(const char *a, const char *b, size_t len)
{
	unsigned char *oa = xmalloc(1 << 24), *ob = xmalloc(1 << 24);
	z_stream za, zb;
	int same;

	memset(&za, 0, sizeof(za));
	memset(&zb, 0, sizeof(zb));
	inflateInit2(&za, 31);
	inflateInit2(&zb, 31);
	za.next_in = (unsigned char *)a;
	za.avail_in = (uInt)len;
	za.next_out = oa;
	za.avail_out = 1 << 24;
	zb.next_in = (unsigned char *)b;
	zb.avail_in = (uInt)len;
	zb.next_out = ob;
	zb.avail_out = 1 << 24;
	inflate(&za, Z_FINISH);
	inflate(&zb, Z_FINISH);
	same = za.total_out == zb.total_out &&
	    memcmp(oa, ob, za.total_out) == 0;
	inflateEnd(&za);
	inflateEnd(&zb);
	free(oa);
	free(ob);
	return same;
}

/* Truncated or bit-flipped nubo archives are refused. */
static void
test_truncated_bitflip(void **state)
{
	char *path = write_nubo();
	struct mem m = load(path);
	size_t len = m.len, i;
	int rejected = 0;
	char *cause, *orig = xmalloc(len);

	(void)state;
	memcpy(orig, m.p, len);
	m.len = len / 2;
	reject(&m, NULL, "truncated");
	m.len = len - 1;
	reject(&m, NULL, "truncated");
	m.len = len;
	/* a flip anywhere: the gzip CRC or the checksums member catch it */
	for (i = 20; i < len - 8; i += len / 37) {
		m.p[i] ^= 0x10;
		if (rd(&m, NULL, NULL, &cause) < 0) {
			rejected++;
			/* the reason says what is wrong, whichever layer
			 * noticed (gzip, tar or the checksums member) */
			if (strstr(cause, "corrupt") == NULL &&
			    strstr(cause, "checksum") == NULL &&
			    strstr(cause, "truncated") == NULL)
				fail_msg("bit flip at %zu: cause '%s'", i,
				    cause);
		} else if (!same_tar(m.p, orig, len))
			fail_msg("bit flip at %zu accepted", i);
		/* else: a flip of ignored padding bits between deflate
		 * blocks changes no byte of the tar, so there is nothing to
		 * detect */
		free(cause);
		m.p[i] ^= 0x10;
	}
	assert_true(rejected > 30);
	assert_int_equal(rd(&m, NULL, NULL, &cause), 0);
	free(m.p);
	free(orig);
	free(path);
}

static void
test_raw_archive_accepted(void **state)
{
	struct backup_read_opts o;
	struct backup_info info;
	struct mem m = raw_with(NULL, 0, strlen(tree_file));
	char *cause;

	(void)state;
	backup_read_opts_init(&o);
	o.pg_restore = "pg_restore";
	if (rd(&m, &o, &info, &cause) < 0)
		fail_msg("raw archive refused: %s", cause);
	assert_false(info.has_checksums);
	assert_int_equal(info.meta.nubo_format, 0);
	assert_int_equal(info.files, 1);
	free(m.p);
}

static void
test_paths(void **state)
{
	struct m dotdot = { "tree/../../etc/passwd", AE_IFREG, "x", 0, NULL, 0 };
	struct m abs = { "/etc/passwd", AE_IFREG, "x", 0, NULL, 0 };
	struct m sym = { "tree/ab/link", AE_IFLNK, NULL, 0, "/etc", 0 };
	struct m hard = { "tree/ab/hard", AE_IFREG, NULL, 0, "/etc/passwd", 1 };
	struct m hard_in = { "tree/ab/hard", AE_IFREG, NULL, 0,
	    "tree/ab/cd/abcd-1", 1 };
	struct m dev = { "tree/ab/dev", AE_IFCHR, NULL, 0, NULL, 0 };
	struct m dup = { "tree/ab/cd/abcd-1", AE_IFREG, tree_file, 0, NULL, 0 };
	struct m other = { "etc/passwd", AE_IFREG, "x", 0, NULL, 0 };
	struct m dot = { "tree/./x", AE_IFREG, "x", 0, NULL, 0 };
	struct mem m;

	(void)state;
	m = raw_with(&dotdot, 1, strlen(tree_file) + 1);
	reject(&m, NULL, "escapes the archive root");
	free(m.p);
	m = raw_with(&abs, 1, strlen(tree_file) + 1);
	reject(&m, NULL, "absolute path");
	free(m.p);
	m = raw_with(&sym, 1, strlen(tree_file));
	reject(&m, NULL, "symbolic link");
	free(m.p);
	m = raw_with(&hard, 1, strlen(tree_file));
	reject(&m, NULL, "hard link");
	free(m.p);
	m = raw_with(&hard_in, 1, strlen(tree_file));
	reject(&m, NULL, "hard link");
	free(m.p);
	m = raw_with(&dev, 1, strlen(tree_file));
	reject(&m, NULL, "device");
	free(m.p);
	m = raw_with(&dup, 1, 2 * strlen(tree_file));
	reject(&m, NULL, "duplicate");
	free(m.p);
	m = raw_with(&other, 1, strlen(tree_file));
	reject(&m, NULL, "unexpected archive member 'etc/passwd'");
	free(m.p);
	m = raw_with(&dot, 1, strlen(tree_file) + 1);
	reject(&m, NULL, "'.' path component");
	free(m.p);
}

/* Duplicates are refused even when extracting (the first copy must not
 * be overwritten silently). */
static void
test_duplicate_extract(void **state)
{
	struct m dup = { "tree/ab/cd/abcd-1", AE_IFREG, tree_file, 0, NULL, 0 };
	struct backup_read_opts o;
	struct mem m = raw_with(&dup, 1, 2 * strlen(tree_file));
	char *dir = xasprintf("%s/dupx", tmp);

	(void)state;
	backup_read_opts_init(&o);
	o.tree_dir = dir;
	reject(&m, &o, "appears twice");
	free(m.p);
	free(dir);
}

static void
test_too_many_entries(void **state)
{
	struct m ms[12];
	char names[12][32];
	struct backup_read_opts o;
	struct mem m;
	int i;

	(void)state;
	for (i = 0; i < 12; i++) {
		snprintf(names[i], sizeof(names[i]), "tree/f%d", i);
		ms[i] = (struct m){ names[i], AE_IFREG, "y", 0, NULL, 0 };
	}
	m = raw_with(ms, 12, strlen(tree_file) + 12);
	backup_read_opts_init(&o);
	o.max_entries = 10;
	reject(&m, &o, "more than 10 members");
	o.max_entries = 100;
	{
		char *cause;

		m.off = 0;
		if (backup_archive_read(mem_read, &m, &o, NULL, &cause) < 0)
			fail_msg("%s", cause);
	}
	free(m.p);
}

static void
test_gzip_bomb(void **state)
{
	size_t big = 8 * 1024 * 1024;
	char *zeros = xcalloc(1, big);
	struct m z = { "tree/zeros", AE_IFREG, zeros, big, NULL, 0 };
	struct backup_read_opts o;
	struct mem m = raw_with(&z, 1, strlen(tree_file) + (long long)big);

	(void)state;
	backup_read_opts_init(&o);
	o.max_ratio = 100;
	o.ratio_min_bytes = 1024 * 1024;
	reject(&m, &o, "gzip bomb");
	free(m.p);
	free(zeros);
}

static void
test_metadata(void **state)
{
	static const char *bad[][2] = {
		{ "{\"duration\":0,\"dumpSize\":\"1586\",\"modelVersion\":\"1\","
		  "\"databaseSize\":\"1\",\"filesSize\":\"17\"}",
		  "'duration' must be a string" },
		{ "{\"duration\":\"0\",\"dumpSize\":\"12\",\"modelVersion\":\"1\","
		  "\"databaseSize\":\"1\",\"filesSize\":\"17\"}",
		  "dumpSize is 12" },
		{ "{\"duration\":\"0\",\"dumpSize\":\"-4\",\"modelVersion\":\"1\","
		  "\"databaseSize\":\"1\",\"filesSize\":\"17\"}",
		  "must be a decimal number" },
		{ "{\"duration\":\"0\",\"dumpSize\":\"1586\","
		  "\"databaseSize\":\"1\",\"filesSize\":\"17\"}",
		  "lacks 'modelVersion'" },
		{ "{\"duration\":\"0\",\"dumpSize\":\"1586\",\"modelVersion\":[],"
		  "\"databaseSize\":\"1\",\"filesSize\":\"17\"}",
		  "'modelVersion' must be a string" },
		{ "[1,2]", "not a JSON object" },
		{ "{\"duration\":", "not a JSON object" },
	};
	struct m ms[5];
	struct mem m;
	size_t i;

	(void)state;
	assert_int_equal(tiny_dump_len, 1586);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms[0] = (struct m){ ".metadata", AE_IFREG, bad[i][0], 0, NULL, 0 };
		ms[1] = (struct m){ "db/db.backup", AE_IFREG,
		    (const char *)tiny_dump, tiny_dump_len, NULL, 0 };
		ms[2] = (struct m){ "tree/ab/cd/abcd-1", AE_IFREG, tree_file, 0,
		    NULL, 0 };
		m = mk(ms, 3);
		reject(&m, NULL, bad[i][1]);
		free(m.p);
	}
	/* no .metadata at all */
	m = mk(ms + 1, 2);
	reject(&m, NULL, "no '.metadata'");
	free(m.p);
}

/* filesSize is informational (Mendix archives made with `du -sb` count
 * folders too): a mismatch is a warning, not a refusal. */
static void
test_files_size_warning(void **state)
{
	struct mem m = raw_with(NULL, 0, 4096 + 17);
	struct backup_info info;
	char *cause = NULL;

	(void)state;
	if (rd(&m, NULL, &info, &cause) < 0)
		fail_msg("refused: %s", cause);
	assert_int_equal(info.files_bytes, (long long)strlen(tree_file));
	assert_non_null(strstr(info.warning, "filesSize 4113 but tree/ "
	    "holds 17 bytes"));
	free(m.p);
	m = raw_with(NULL, 0, (long long)strlen(tree_file));
	assert_int_equal(rd(&m, NULL, &info, &cause), 0);
	assert_string_equal(info.warning, "");
	free(m.p);
}

/* A file member with members below it, in either order, is refused by
 * the check alone (nothing extracted). */
static void
test_file_then_folder(void **state)
{
	struct m a[] = {
		{ "tree/x", AE_IFREG, "file", 0, NULL, 0 },
		{ "tree/x/y", AE_IFREG, "below", 0, NULL, 0 },
	};
	struct m b[] = {
		{ "tree/x/y/z", AE_IFREG, "below", 0, NULL, 0 },
		{ "tree/q", AE_IFDIR, NULL, 0, NULL, 0 },
		{ "tree/x", AE_IFREG, "file", 0, NULL, 0 },
	};
	struct m c[] = {
		{ "tree/x", AE_IFREG, "file", 0, NULL, 0 },
		{ "tree/x/", AE_IFDIR, NULL, 0, NULL, 0 },
	};
	struct m ok[] = {
		{ "tree/x/y", AE_IFREG, "a", 0, NULL, 0 },
		{ "tree/x/yy", AE_IFREG, "b", 0, NULL, 0 },
		{ "tree/xy", AE_IFREG, "c", 0, NULL, 0 },
	};
	struct mem m;
	char *cause = NULL;

	(void)state;
	m = raw_with(a, 2, 17 + 9);
	reject(&m, NULL, "archive member 'tree/x/y' lies below 'tree/x', "
	    "which is a file");
	free(m.p);
	m = raw_with(b, 3, 17 + 9);
	reject(&m, NULL, "archive member 'tree/x' is a file, but other "
	    "members lie below it");
	free(m.p);
	m = raw_with(c, 2, 17 + 4);
	reject(&m, NULL, "duplicate");
	free(m.p);
	m = raw_with(ok, 3, 17 + 3);
	if (rd(&m, NULL, NULL, &cause) < 0)
		fail_msg("refused: %s", cause);
	free(m.p);
}

/* max_bytes: the sizes the members declare count against it at their
 * headers, before any of their bytes is written. */
static void
test_declared_bytes(void **state)
{
	char *big = xcalloc(1, 100000);
	struct m z[] = { { "tree/big", AE_IFREG, big, 100000, NULL, 0 } };
	struct mem m = raw_with(z, 1, 17 + 100000);
	struct backup_read_opts o;
	struct backup_info info;
	char *cause = NULL, *dir = xasprintf("%s/cap", tmp), *f;

	(void)state;
	backup_read_opts_init(&o);
	assert_int_equal(rd(&m, &o, &info, &cause), 0);
	/* the dump, the files and .metadata */
	assert_true(info.declared_bytes > 1586 + 17 + 100000 &&
	    info.declared_bytes < 1586 + 17 + 100000 + 512);
	o.max_bytes = info.declared_bytes;
	assert_int_equal(rd(&m, &o, &info, &cause), 0);
	o.max_bytes = info.declared_bytes - 1;
	o.tree_dir = dir;
	reject(&m, &o, "not enough space: the archive's members declare "
	    "more than");
	f = xasprintf("%s/big", dir);
	assert_int_equal(access(f, F_OK), -1);	/* never created */
	free(f);
	free(dir);
	free(m.p);
	free(big);
}

static void
test_not_a_dump(void **state)
{
	char *md = meta(5, 0);
	char *md2 = meta(tiny_dump_len, 0);
	char garbage[1586];
	struct m ms[2];
	struct backup_read_opts o;
	struct mem m;

	(void)state;
	ms[0] = (struct m){ ".metadata", AE_IFREG, md, 0, NULL, 0 };
	ms[1] = (struct m){ "db/db.backup", AE_IFREG, "hello", 0, NULL, 0 };
	m = mk(ms, 2);
	reject(&m, NULL, "no PGDMP header");
	free(m.p);
	/* the magic, then garbage: pg_restore --list refuses it */
	memcpy(garbage, tiny_dump, sizeof(garbage));
	memset(garbage + 5, 0x7f, 60);
	ms[0] = (struct m){ ".metadata", AE_IFREG, md2, 0, NULL, 0 };
	ms[1] = (struct m){ "db/db.backup", AE_IFREG, garbage, sizeof(garbage),
	    NULL, 0 };
	m = mk(ms, 2);
	backup_read_opts_init(&o);
	o.pg_restore = "pg_restore";
	reject(&m, &o, "not a valid PostgreSQL custom-format dump");
	free(m.p);
	/* no database at all */
	ms[0] = (struct m){ "tree/a", AE_IFREG, "x", 0, NULL, 0 };
	m = mk(ms, 1);
	reject(&m, NULL, "no 'db/db.backup'");
	free(m.p);
	free(md);
	free(md2);
}

static void
test_checksums_member(void **state)
{
	char line[256];
	struct m extra[2];
	struct mem m;
	char *cause;

	(void)state;
	/* wrong hash for the tree file */
	snprintf(line, sizeof(line), "%064d  tree/ab/cd/abcd-1\n", 0);
	extra[0] = (struct m){ ".nubo/checksums", AE_IFREG, line, 0, NULL, 0 };
	m = raw_with(extra, 1, strlen(tree_file));
	reject(&m, NULL, "lists 1 files but the archive holds 2");
	free(m.p);
	/* not the last member */
	extra[1] = (struct m){ "tree/late", AE_IFREG, "z", 0, NULL, 0 };
	m = raw_with(extra, 2, strlen(tree_file) + 1);
	reject(&m, NULL, "must be the last member");
	free(m.p);
	/* malformed */
	extra[0] = (struct m){ ".nubo/checksums", AE_IFREG, "nonsense\n", 0,
	    NULL, 0 };
	m = raw_with(extra, 1, strlen(tree_file));
	reject(&m, NULL, "malformed line");
	free(m.p);
	(void)cause;
}

static void
test_not_gzip(void **state)
{
	struct mem m = { xstrdup("this is not an archive at all, not even close"),
	    0, 0 };

	(void)state;
	m.len = strlen(m.p);
	reject(&m, NULL, "not gzip");
	m.len = 0;
	reject(&m, NULL, "empty");
	free(m.p);
}

/* `./`-prefixed members (tar czf x.tar.gz .) and concatenated gzip members
 * (parallel compressors) are ordinary archives. */
static void
test_dot_prefix_and_members(void **state)
{
	char *md = meta(tiny_dump_len, 1);
	struct m ms[4] = {
		{ "./", AE_IFDIR, NULL, 0, NULL, 0 },
		{ "./.metadata", AE_IFREG, md, 0, NULL, 0 },
		{ "./db/db.backup", AE_IFREG, (const char *)tiny_dump,
		  tiny_dump_len, NULL, 0 },
		{ "./tree/x", AE_IFREG, "1", 0, NULL, 0 },
	};
	struct mem m = mk(ms, 4), cat;
	char *cause, *path, *cmd;

	(void)state;
	if (rd(&m, NULL, NULL, &cause) < 0)
		fail_msg("%s", cause);
	/* split the same tar into two gzip members */
	path = xasprintf("%s/cat.tar.gz", tmp);
	assert_int_equal(util_write_file(path, m.p, m.len, 0600), 0);
	cmd = xasprintf("cd %s && gzip -dc cat.tar.gz > cat.tar && "
	    "head -c 1536 cat.tar | gzip -c > cat2.tar.gz && "
	    "tail -c +1537 cat.tar | gzip -c >> cat2.tar.gz", tmp);
	assert_int_equal(system(cmd), 0);
	free(path);
	path = xasprintf("%s/cat2.tar.gz", tmp);
	cat = load(path);
	if (rd(&cat, NULL, NULL, &cause) < 0)
		fail_msg("%s", cause);
	free(cat.p);
	free(cmd);
	free(path);
	free(m.p);
	free(md);
}

static void
test_names(void **state)
{
	char *s;

	(void)state;
	s = backup_archive_name_full("0123456789abcdef", 1795000000);
	assert_string_equal(s, "files_and_database-01234567-202611181106.tar.gz");
	free(s);
	s = backup_archive_name_db("0123456789abcdef", 1795000000);
	assert_string_equal(s, "database-01234567-202611181106.backup");
	free(s);
	s = backup_archive_name_files("0123456789abcdef", 1795000000);
	assert_string_equal(s, "files-01234567-202611181106.tar.gz");
	free(s);
}

/* A write the disk refuses (/dev/full: ENOSPC) names the archive and the
 * system's reason — through pigz (its own words) and through the
 * in-process gzip used when pigz cannot run — not libarchive's bare
 * "Write error". */
static void
test_full_disk(void **state)
{
	struct backup_write_opts o;
	char *dump = xasprintf("%s/in.dump", tmp), *cause = NULL;
	char *path = getenv("PATH") ? xstrdup(getenv("PATH")) : NULL;
	int fd, round;

	(void)state;
	assert_int_equal(util_write_file(dump, tiny_dump, tiny_dump_len, 0644), 0);
	memset(&o, 0, sizeof(o));
	o.dump_path = dump;
	o.tmp_dir = tmp;
	o.out_name = "/dev/full";
	for (round = 0; round < 2; round++) {
		/* round 1: no pigz on PATH */
		if (round == 1)
			setenv("PATH", tmp, 1);
		fd = open("/dev/full", O_WRONLY);
		assert_true(fd >= 0);
		assert_int_equal(backup_archive_write(&o, fd, NULL, &cause), -1);
		close(fd);
		assert_non_null(cause);
		if (strncmp(cause, "cannot write the backup archive /dev/full: ",
		    43) != 0 || strstr(cause, "No space left on device") ==
		    NULL || (round == 0 && strstr(cause, "pigz: write error") ==
		    NULL))
			fail_msg("round %d: %s", round, cause);
		free(cause);
		cause = NULL;
	}
	if (path != NULL)
		setenv("PATH", path, 1);
	free(path);
	free(dump);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmp, sizeof(tmp), "/tmp/test-backup-XXXXXX");
	if (mkdtemp(tmp) == NULL)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	util_rm_rf(tmp);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_bitflip, setup,
		    teardown),
		cmocka_unit_test(test_raw_archive_accepted),
		cmocka_unit_test(test_paths),
		cmocka_unit_test_setup_teardown(test_duplicate_extract, setup,
		    teardown),
		cmocka_unit_test(test_too_many_entries),
		cmocka_unit_test(test_gzip_bomb),
		cmocka_unit_test(test_metadata),
		cmocka_unit_test(test_files_size_warning),
		cmocka_unit_test(test_file_then_folder),
		cmocka_unit_test_setup_teardown(test_declared_bytes, setup,
		    teardown),
		cmocka_unit_test(test_not_a_dump),
		cmocka_unit_test(test_checksums_member),
		cmocka_unit_test(test_not_gzip),
		cmocka_unit_test_setup_teardown(test_dot_prefix_and_members,
		    setup, teardown),
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_full_disk, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
