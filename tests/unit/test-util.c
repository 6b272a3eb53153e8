/* util_fd_tool_error(): a child's failure in its own words — the line of
 * its stderr that says "error" with its detail lines, not a warning that
 * came first nor a bare exit status (issue #18 §4). The texts are what
 * PostgreSQL 15's pg_dump, pg_restore and psql write. And
 * util_media_listed(): a header's media type compared whole. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"

/* A memfd holding text, as a child's stderr is kept. */
static int
stderr_of(const char *text)
{
	int fd = memfd_create("stderr", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	return fd;
}

static void
said(const char *text, int st, const char *want)
{
	int fd = text ? stderr_of(text) : -1;
	char *got = util_fd_tool_error(fd, st);

	if (strcmp(got, want) != 0)
		fail_msg("stderr %s\nwant '%s'\n got '%s'", text ? text : "(none)",
		    want, got);
	free(got);
	if (fd >= 0)
		close(fd);
}

static void
test_error_line_wins(void **state)
{
	(void)state;
	/* a warning first: the error is what failed */
	said("pg_restore: warning: archive was made on a machine with a "
	    "different integer size\npg_restore: error: could not execute "
	    "query: ERROR:  permission denied to create extension \"dblink\"\n"
	    "HINT:  Must be superuser to create this extension.\n"
	    "Command was: CREATE EXTENSION IF NOT EXISTS dblink;\n", 1 << 8,
	    "pg_restore: error: could not execute query: ERROR:  permission "
	    "denied to create extension \"dblink\"");
	/* its detail lines go with it */
	said("pg_dump: error: query failed: ERROR:  permission denied for "
	    "table secret\npg_dump: detail: Query was: LOCK TABLE "
	    "public.secret IN ACCESS SHARE MODE\n", 1 << 8,
	    "pg_dump: error: query failed: ERROR:  permission denied for table "
	    "secret; pg_dump: detail: Query was: LOCK TABLE public.secret IN "
	    "ACCESS SHARE MODE");
	said("psql:<stdin>:1: ERROR:  relation \"nope\" does not exist\n"
	    "LINE 1: SELECT * FROM nope;\n", 3 << 8,
	    "psql:<stdin>:1: ERROR:  relation \"nope\" does not exist");
	said("pg_dump: error: connection to server on socket \"/x/.s.PGSQL.5432\""
	    " failed: FATAL:  password authentication failed for user \"a\"\n",
	    1 << 8, "pg_dump: error: connection to server on socket "
	    "\"/x/.s.PGSQL.5432\" failed: FATAL:  password authentication "
	    "failed for user \"a\"");
}

static void
test_without_error_line(void **state)
{
	(void)state;
	/* no line says "error": the first that says anything */
	said("\npigz: write error\n", 1 << 8, "pigz: write error");
	said("pg_restore: [archiver] did not find magic string\nmore\n", 1 << 8,
	    "pg_restore: [archiver] did not find magic string");
	/* nothing written: how it ended */
	said("", 1 << 8, "exited with status 1");
	said(NULL, SIGKILL, "killed by signal 9 (Killed)");
	said("", -1, "");
}

static void
test_long_lines_cut(void **state)
{
	char text[1200], want[400];

	(void)state;
	memset(text, 'x', sizeof text);
	memcpy(text, "pg_dump: error: ", 16);
	text[sizeof text - 2] = '\n';
	text[sizeof text - 1] = '\0';
	snprintf(want, sizeof want, "%.300s…", text);
	said(text, 1 << 8, want);
}

/* A header names a media type itself, not one that begins with it. */
static void
test_media_listed(void **state)
{
	const char *t = "application/x-nubo-packed-blobs";

	(void)state;
	assert_true(util_media_listed(t, t));
	assert_true(util_media_listed("Application/X-Nubo-Packed-Blobs", t));
	assert_true(util_media_listed("application/x-nubo-packed-blobs; v=1",
	    t));
	assert_true(util_media_listed("text/html, application/x-nubo-packed-"
	    "blobs;q=0.9, */*", t));
	assert_true(util_media_listed("multipart/form-data; boundary=xyz",
	    "multipart/form-data"));
	assert_true(util_media_listed("deflate, gzip", "gzip"));
	assert_false(util_media_listed("application/x-nubo-packed-blobs-v2",
	    t));
	assert_false(util_media_listed("application/x-nubo-packed", t));
	assert_false(util_media_listed("multipart/form-dataX",
	    "multipart/form-data"));
	assert_false(util_media_listed("x-gzip", "gzip"));
	assert_false(util_media_listed("", t));
	assert_false(util_media_listed(NULL, t));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_line_wins),
		cmocka_unit_test(test_without_error_line),
		cmocka_unit_test(test_long_lines_cut),
		cmocka_unit_test(test_media_listed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
