/* Packages: manifest checks and every package case of SPEC §6, on archives
 * built here with libarchive (and a hand-made tar header for the cases
 * libarchive will not write). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zlib.h>

#include "nubo_limits.h"
#include "package.h"
#include "util.h"
#include "xmalloc.h"

static char tmpdir[] = "/tmp/nubo-test-package-XXXXXX";

#define MANIFEST \
	"{\"name\":\"notes\",\"version\":\"1.0.0\",\"start\":\"bin/notes\"," \
	"\"health\":\"/healthz\",\"constants\":[{\"name\":\"Greeting\"," \
	"\"type\":\"string\",\"default\":\"hi\"}],\"scheduled_events\":" \
	"[{\"name\":\"Cleanup\",\"every\":\"1h\"}]}"

enum kind { F, D, L, H, CHR, FIFO };

struct ent {
	enum kind	 kind;
	const char	*path;
	const char	*data;		/* file contents, or link target */
};

enum fmt { TGZ, ZIP, TAR };

/* Write entries into an archive at dir/name; returns the path. */
static char *
mkpkg(const char *name, enum fmt fmt, const struct ent *ents, size_t n)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e;
	char *path = xasprintf("%s/%s", tmpdir, name);
	size_t i;

	if (fmt == ZIP) {
		archive_write_set_format_zip(a);
	} else {
		archive_write_set_format_pax_restricted(a);
		if (fmt == TGZ)
			archive_write_add_filter_gzip(a);
	}
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (i = 0; i < n; i++) {
		e = archive_entry_new();
		archive_entry_set_pathname(e, ents[i].path);
		archive_entry_set_mtime(e, 1700000000, 0);
		switch (ents[i].kind) {
		case F:
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, 0755);
			archive_entry_set_size(e, (la_int64_t)strlen(ents[i].data));
			break;
		case D:
			archive_entry_set_filetype(e, AE_IFDIR);
			archive_entry_set_perm(e, 0755);
			break;
		case L:
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_perm(e, 0777);
			archive_entry_set_symlink(e, ents[i].data);
			break;
		case H:
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_perm(e, 0644);
			archive_entry_set_hardlink(e, ents[i].data);
			break;
		case CHR:
			archive_entry_set_filetype(e, AE_IFCHR);
			archive_entry_set_perm(e, 0644);
			archive_entry_set_rdev(e, makedev(1, 3));
			break;
		case FIFO:
			archive_entry_set_filetype(e, AE_IFIFO);
			archive_entry_set_perm(e, 0644);
			break;
		}
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (ents[i].kind == F)
			archive_write_data(a, ents[i].data, strlen(ents[i].data));
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return path;
}

#define PKG(name, fmt, ...) \
	({ const struct ent _e[] = { __VA_ARGS__ }; \
	   mkpkg(name, fmt, _e, sizeof _e / sizeof _e[0]); })

/* package_reader over a file in pieces of odd sizes (1 byte, then 8,
 * 25, …), as a body arrives from the network. */
struct pieces {
	int	 fd;
	size_t	 step;
};

static ssize_t
pieces_read(void *arg, void *buf, size_t len)
{
	struct pieces *pc = arg;

	if (len > pc->step)
		len = pc->step;
	pc->step = pc->step * 3 % 70001 + 5;
	return read(pc->fd, buf, len);
}

/* package_validate_gzip_stream() of the tar.gz at path: -1 when path is
 * not one (4 bytes and more, gzip's magic), else its result. */
static int
stream_validate(const char *path, struct package_manifest *m, int *rc,
    char **cause)
{
	unsigned char magic[2];
	struct pieces pc = { open(path, O_RDONLY), 1 };
	struct stat st;

	assert_true(pc.fd >= 0);
	assert_int_equal(fstat(pc.fd, &st), 0);
	if (st.st_size < 4 || pread(pc.fd, magic, 2, 0) != 2 ||
	    magic[0] != 0x1f || magic[1] != 0x8b) {
		close(pc.fd);
		return -1;
	}
	*rc = package_validate_gzip_stream(pieces_read, &pc,
	    (long long)st.st_size, m, cause);
	close(pc.fd);
	return 0;
}

/* Expect validation to fail with a cause containing want; a tar.gz
 * checked as it arrives fails too, for the same cause (a damage may be
 * seen at another entry: the reads are of other sizes). */
static void
expect_bad(const char *path, const char *want)
{
	struct package_manifest m;
	char *cause = NULL, *scause = NULL, *dest;
	DIR *d;
	struct dirent *de;
	int left = 0, rc;

	assert_int_equal(package_validate(path, &m, &cause), -1);
	assert_non_null(cause);
	if (strstr(cause, want) == NULL)
		fail_msg("cause '%s' does not mention '%s'", cause, want);
	if (stream_validate(path, &m, &rc, &scause) == 0) {
		assert_int_equal(rc, -1);
		assert_non_null(scause);
		if (strstr(scause, want) == NULL)
			fail_msg("as it arrives: cause '%s' does not mention "
			    "'%s'", scause, want);
		free(scause);
	}
	free(cause);
	/* extraction refuses too and leaves nothing behind */
	dest = xasprintf("%s/out/app", tmpdir);
	assert_int_equal(package_extract(path, dest, &cause), -1);
	assert_non_null(cause);
	free(cause);
	assert_int_equal(access(dest, F_OK), -1);
	free(dest);
	dest = xasprintf("%s/out", tmpdir);
	if ((d = opendir(dest)) != NULL) {
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				left++;
		closedir(d);
	}
	assert_int_equal(left, 0);
	free(dest);
	unlink(path);
	free((char *)path);
}

static void
test_good_targz(void **state)
{
	struct package_manifest m;
	char *cause = NULL, *dest, *f;
	struct stat st;
	json_t *j;
	char *path;

	(void)state;
	path = PKG("good.tar.gz", TGZ,
	    { D, "./", NULL },
	    { F, "./nubo.json", MANIFEST },
	    { D, "./bin/", NULL },
	    { F, "./bin/notes", "#!/bin/sh\necho hi\n" },
	    { F, "./share/x/readme.txt", "hello" },
	    { L, "./share/link", "x/readme.txt" },
	    { L, "./share/x/up", "../../bin/notes" },
	    { H, "./share/hard", "bin/notes" });
	/* checked as it arrives: the same manifest */
	{
		int rc = -1;

		assert_int_equal(stream_validate(path, &m, &rc, &cause), 0);
		if (rc != 0)
			fail_msg("%s", cause);
		assert_string_equal(m.name, "notes");
		assert_string_equal(m.start, "bin/notes");
		assert_int_equal(m.nconstants, 1);
		package_manifest_release(&m);
	}
	if (package_validate(path, &m, &cause) != 0)
		fail_msg("%s", cause);
	assert_string_equal(m.name, "notes");
	assert_string_equal(m.version, "1.0.0");
	assert_string_equal(m.start, "bin/notes");
	assert_string_equal(m.health, "/healthz");
	assert_int_equal(m.nconstants, 1);
	assert_string_equal(m.constants[0].name, "Greeting");
	assert_int_equal(m.constants[0].type, PACKAGE_CONST_STRING);
	assert_string_equal(json_string_value(m.constants[0].dflt), "hi");
	assert_int_equal(m.nevents, 1);
	assert_int_equal(m.events[0].every_seconds, 3600);

	/* JSON round trip */
	j = package_manifest_json(&m);
	package_manifest_release(&m);
	assert_int_equal(package_manifest_from_json(j, &m, &cause), 0);
	assert_string_equal(m.events[0].name, "Cleanup");
	json_decref(j);
	package_manifest_release(&m);

	dest = xasprintf("%s/app", tmpdir);
	if (package_extract(path, dest, &cause) != 0)
		fail_msg("%s", cause);
	f = xasprintf("%s/bin/notes", dest);
	assert_int_equal(stat(f, &st), 0);
	assert_true(st.st_mode & S_IXUSR);
	free(f);
	f = xasprintf("%s/share/link", dest);
	assert_int_equal(lstat(f, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	free(f);
	/* extracting again swaps the whole tree */
	f = xasprintf("%s/stale", dest);
	assert_int_equal(util_write_file(f, "x", 1, 0644), 0);
	if (package_extract(path, dest, &cause) != 0)
		fail_msg("%s", cause);
	assert_int_equal(access(f, F_OK), -1);
	free(f);
	util_rm_rf(dest);
	free(dest);
	free(path);
}

static void
test_good_zip_mda(void **state)
{
	struct package_manifest m;
	char *cause = NULL, *path;

	(void)state;
	path = PKG("good.mda", ZIP,
	    { F, "nubo.json", "{\"name\":\"x\",\"version\":\"2\",\"start\":\"run.sh\"}" },
	    { F, "run.sh", "#!/bin/sh\nexec python3 -m http.server $PORT\n" });
	if (package_validate(path, &m, &cause) != 0)
		fail_msg("%s", cause);
	assert_string_equal(m.start, "run.sh");
	assert_string_equal(m.health, "/");
	package_manifest_release(&m);
	free(path);
}

/* a health path of 258 characters, over its cap of 256 */
#define HEALTH_64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEALTH_257 HEALTH_64 HEALTH_64 HEALTH_64 HEALTH_64 "a"

static void
test_bad_manifests(void **state)
{
	static const struct { const char *json, *want; } cases[] = {
		{ "{\"name\":", "malformed JSON" },
		{ "[1]", "JSON object" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"color\":1}",
		  "unknown field 'color'" },
		{ "{\"name\":\"x\",\"version\":\"1\"}", "missing field 'start'" },
		{ "{\"name\":\"x y\",\"version\":\"1\",\"start\":\"run\"}", "name" },
		{ "{\"name\":\"x\",\"version\":1,\"start\":\"run\"}", "version" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"../run\"}",
		  "outside the package" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"/bin/sh\"}",
		  "outside the package" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"health\":\"healthz\"}",
		  "health 'healthz' must be a URL path" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"health\":\"/a/../b\"}",
		  "health '/a/../b' must be a URL path" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"health\":\"/a\\\"b\"}",
		  "must be a URL path" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"health\":\"/a<b\"}",
		  "must be a URL path" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"health\":\"/a\\\\b\"}",
		  "must be a URL path" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"health\":\"/a\\tb\"}",
		  "must be a URL path" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"health\":\"/" HEALTH_257 "\"}",
		  "must be a URL path" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"health\":\"/a\\u0001b\"}",
		  "health must be printable ASCII" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"health\":\"/caf\\u00e9\"}",
		  "health must be printable ASCII" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"health\":\"/a\\u007fb\"}",
		  "health must be printable ASCII" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"constants\":"
		  "[{\"name\":\"A\",\"type\":\"color\"}]}", "unknown type 'color'" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"constants\":"
		  "[{\"name\":\"A\",\"type\":\"integer\",\"default\":\"7\"}]}",
		  "not a valid integer" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"constants\":"
		  "[{\"name\":\"A\",\"type\":\"datetime\",\"default\":\"tomorrow\"}]}",
		  "not a valid datetime" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"constants\":"
		  "[{\"name\":\"A\",\"type\":\"string\",\"extra\":1}]}",
		  "unknown field 'extra'" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"constants\":"
		  "[{\"name\":\"A\",\"type\":\"string\"},{\"name\":\"a\",\"type\":\"string\"}]}",
		  "declared twice" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"scheduled_events\":"
		  "[{\"name\":\"E\",\"every\":\"1w\"}]}", "every '1w'" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"scheduled_events\":"
		  "[{\"name\":\"E\",\"every\":\"0s\"}]}", "every '0s'" },
		{ "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\",\"scheduled_events\":"
		  "[{\"name\":\"E\"}]}", "missing field 'every'" },
	};
	struct package_manifest m;
	char *cause;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cause = NULL;
		assert_int_equal(package_manifest_parse(cases[i].json,
		    strlen(cases[i].json), &m, &cause), -1);
		if (cause == NULL || strstr(cause, cases[i].want) == NULL)
			fail_msg("case %zu: cause '%s' lacks '%s'", i,
			    cause ? cause : "(null)", cases[i].want);
		free(cause);
	}
	assert_int_equal(package_parse_every("30s"), 30);
	assert_int_equal(package_parse_every("5m"), 300);
	assert_int_equal(package_parse_every("1d"), 86400);
	assert_int_equal(package_parse_every("1h5"), -1);
	assert_int_equal(package_parse_every("h"), -1);
}

#define GOODJSON { F, "nubo.json", "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\"}" }
#define GOODRUN { F, "run", "#!/bin/sh\n" }

static void
test_bad_entries(void **state)
{
	(void)state;
	expect_bad(PKG("nomanifest.tar.gz", TGZ, GOODRUN), "no nubo.json");
	expect_bad(PKG("nested.tar.gz", TGZ,
	    { F, "app/nubo.json", "{\"name\":\"x\",\"version\":\"1\",\"start\":\"run\"}" },
	    { F, "app/run", "x" }), "no nubo.json");
	expect_bad(PKG("badjson.tar.gz", TGZ, { F, "nubo.json", "{nope" }, GOODRUN),
	    "nubo.json: malformed JSON");
	expect_bad(PKG("nostart.tar.gz", TGZ, GOODJSON), "start file 'run' is missing");
	expect_bad(PKG("startdir.tar.gz", TGZ, GOODJSON, { D, "run/", NULL }),
	    "not a regular file");
	expect_bad(PKG("startlink.tar.gz", TGZ, GOODJSON, { L, "run", "/bin/sh" }),
	    "points outside");
	expect_bad(PKG("dotdot.tar.gz", TGZ, GOODJSON, GOODRUN,
	    { F, "../evil", "x" }), "escapes the package root");
	expect_bad(PKG("dotdot2.tar.gz", TGZ, GOODJSON, GOODRUN,
	    { F, "a/../../evil", "x" }), "escapes the package root");
	expect_bad(PKG("abs.tar.gz", TGZ, GOODJSON, GOODRUN,
	    { F, "/etc/evil", "x" }), "absolute path");
	expect_bad(PKG("symabs.tar.gz", TGZ, GOODJSON, GOODRUN,
	    { L, "passwd", "/etc/passwd" }), "symlink 'passwd' points outside");
	expect_bad(PKG("symup.tar.gz", TGZ, GOODJSON, GOODRUN,
	    { L, "a/b/up", "../../../etc" }), "symlink 'a/b/up' points outside");
	expect_bad(PKG("symvia.tar.gz", TGZ, GOODJSON, GOODRUN,
	    { L, "here", "." }, { L, "out", "here/.." }),
	    "through another symlink");
	expect_bad(PKG("symparent.tar.gz", TGZ, GOODJSON, GOODRUN,
	    { L, "etc", "sub" }, { F, "etc/x", "x" }), "not a folder");
	expect_bad(PKG("hardout.tar.gz", TGZ, GOODJSON, GOODRUN,
	    { H, "pw", "/etc/passwd" }), "hardlink 'pw' points outside");
	expect_bad(PKG("hardup.tar.gz", TGZ, GOODJSON, GOODRUN,
	    { H, "pw", "../../etc/passwd" }), "hardlink 'pw' points outside");
	expect_bad(PKG("hardmissing.tar.gz", TGZ, GOODJSON, GOODRUN,
	    { H, "pw", "etc/passwd" }), "does not point to a file");
	expect_bad(PKG("dev.tar.gz", TGZ, GOODJSON, GOODRUN,
	    { CHR, "null", NULL }), "device file");
	expect_bad(PKG("fifo.tar.gz", TGZ, GOODJSON, GOODRUN,
	    { FIFO, "pipe", NULL }), "named pipe");
	expect_bad(PKG("dup.tar.gz", TGZ, GOODJSON, GOODRUN, { F, "./run", "y" }),
	    "duplicate entry 'run'");
	expect_bad(PKG("dupjson.zip", ZIP, GOODJSON, GOODRUN, GOODJSON),
	    "duplicate entry 'nubo.json'");
	expect_bad(PKG("filedir.tar.gz", TGZ, GOODJSON, GOODRUN,
	    { F, "run/x", "y" }), "not a folder");
	expect_bad(PKG("zipdotdot.zip", ZIP, GOODJSON, GOODRUN,
	    { F, "../evil", "x" }), "escapes the package root");
	expect_bad(PKG("zipsym.zip", ZIP, GOODJSON, GOODRUN,
	    { L, "l", "../../x" }), "points outside");
	expect_bad(PKG("tardev.tar", TAR, GOODJSON, GOODRUN,
	    { CHR, "null", NULL }), "device file");
}

/* Copy src to a new file, truncated to len and with the byte at flip
 * (when >= 0) inverted. */
static char *
mangle(const char *src, const char *name, long len, long flip)
{
	char *dst = xasprintf("%s/%s", tmpdir, name);
	size_t n;
	char *data = util_read_file(src, 1 << 20, &n);

	assert_non_null(data);
	if (len >= 0 && (size_t)len < n)
		n = (size_t)len;
	if (flip >= 0 && (size_t)flip < n)
		data[flip] = (char)~data[flip];
	assert_int_equal(util_write_file(dst, data, n, 0644), 0);
	free(data);
	return dst;
}

static void
test_broken_archives(void **state)
{
	char big[20000];
	struct stat st;
	char *good;
	long i, bad = 0, sz;
	int rc;

	(void)state;
	memset(big, 'a', sizeof big);
	for (i = 0; i < (long)sizeof big; i++)
		big[i] = (char)('a' + (i * 7919 + i / 13) % 26);
	big[sizeof big - 1] = '\0';
	good = PKG("base.tar.gz", TGZ, GOODJSON, GOODRUN, { F, "data", big });
	assert_int_equal(stat(good, &st), 0);
	sz = (long)st.st_size;
	expect_bad(mangle(good, "trunc.tar.gz", sz / 2, -1), "truncated");
	expect_bad(mangle(good, "trunc2.tar.gz", sz - 4, -1), "truncated");
	expect_bad(mangle(good, "empty.tar.gz", 0, -1), "not a package archive");
	expect_bad(mangle(good, "short.tar.gz", 3, -1), "not a package archive");
	/* a bit flip anywhere in the gzip body is caught (deflate error or
	 * CRC mismatch) */
	for (i = 20; i < sz - 8; i += sz / 17) {
		char *name = xasprintf("flip%ld.tar.gz", i);
		struct package_manifest m;
		char *cause = NULL, *p = mangle(good, name, -1, i);

		if (package_validate(p, &m, &cause) == 0) {
			package_manifest_release(&m);
			bad++;
		}
		free(cause);
		cause = NULL;
		/* and checked as it arrives */
		if (stream_validate(p, &m, &rc, &cause) == 0 && rc == 0) {
			package_manifest_release(&m);
			bad++;
		}
		free(cause);
		unlink(p);
		free(p);
		free(name);
	}
	assert_int_equal(bad, 0);
	expect_bad(mangle(good, "crc.tar.gz", -1, sz - 6), "broken archive");
	{
		char *garbage = xasprintf("%s/garbage.mda", tmpdir);

		assert_int_equal(util_write_file(garbage, "hello world, no archive",
		    23, 0644), 0);
		expect_bad(garbage, "not a package archive");
	}
	unlink(good);
	free(good);
	{
		char *zip = PKG("base.zip", ZIP, GOODJSON, GOODRUN, { F, "data", big });

		assert_int_equal(stat(zip, &st), 0);
		expect_bad(mangle(zip, "trunc.zip", (long)st.st_size / 2, -1), "");
		free(zip);
	}
}

/* A ustar header whose size field claims more than the entry cap. */
static void
test_oversized_entry(void **state)
{
	unsigned char hdr[512];
	unsigned sum = 0;
	char *path = xasprintf("%s/huge.tar.gz", tmpdir);
	gzFile gz;
	size_t i;

	(void)state;
	memset(hdr, 0, sizeof hdr);
	strcpy((char *)hdr, "huge.bin");
	memcpy(hdr + 100, "0000644", 7);
	memcpy(hdr + 108, "0000000", 7);
	memcpy(hdr + 116, "0000000", 7);
	snprintf((char *)hdr + 124, 12, "%011llo",
	    (unsigned long long)NUBO_PACKAGE_ENTRY_MAX + 1);
	memcpy(hdr + 136, "14500000000", 11);
	hdr[156] = '0';
	memcpy(hdr + 257, "ustar", 6);
	memcpy(hdr + 263, "00", 2);
	memset(hdr + 148, ' ', 8);
	for (i = 0; i < sizeof hdr; i++)
		sum += hdr[i];
	snprintf((char *)hdr + 148, 8, "%06o", sum);
	gz = gzopen(path, "wb");
	gzwrite(gz, hdr, sizeof hdr);
	memset(hdr, 0, sizeof hdr);
	for (i = 0; i < 8; i++)
		gzwrite(gz, hdr, sizeof hdr);
	gzclose(gz);
	expect_bad(path, "larger than");
}

static void
test_gzip_bomb(void **state)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e;
	char *path = xasprintf("%s/bomb.tar.gz", tmpdir);
	char *zeros = xcalloc(1, 1 << 20);
	int i;

	(void)state;
	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_gzip(a);
	archive_write_set_filter_option(a, "gzip", "compression-level", "9");
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	e = archive_entry_new();
	archive_entry_set_pathname(e, "zeros");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, 96LL << 20);
	archive_write_header(a, e);
	for (i = 0; i < 96; i++)
		archive_write_data(a, zeros, 1 << 20);
	archive_entry_free(e);
	archive_write_close(a);
	archive_write_free(a);
	free(zeros);
	expect_bad(path, "gzip bomb");
}

static void
test_too_many_entries(void **state)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e;
	char *path = xasprintf("%s/many.tar.gz", tmpdir);
	char name[32];
	int i;

	(void)state;
	archive_write_set_format_ustar(a);
	archive_write_add_filter_gzip(a);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (i = 0; i <= NUBO_PACKAGE_ENTRIES_MAX; i++) {
		e = archive_entry_new();
		snprintf(name, sizeof name, "d/%d", i);
		archive_entry_set_pathname(e, name);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, 0);
		archive_write_header(a, e);
		archive_entry_free(e);
	}
	archive_write_close(a);
	archive_write_free(a);
	expect_bad(path, "more than");
}

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	util_rm_rf(tmpdir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_targz),
		cmocka_unit_test(test_good_zip_mda),
		cmocka_unit_test(test_bad_manifests),
		cmocka_unit_test(test_bad_entries),
		cmocka_unit_test(test_broken_archives),
		cmocka_unit_test(test_oversized_entry),
		cmocka_unit_test(test_gzip_bomb),
		cmocka_unit_test(test_too_many_entries),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
