/* nubod's options (opts.c): the command line, --config files (every bad
 * line refused with FILE:LINE), the command line winning, and --help and
 * the manual page written from the same table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "nubo_limits.h"
#include "opts.h"
#include "xmalloc.h"

static const struct opt test_opts[] = {
	{ "config", "FILE", 'c', OPT_CMDLINE, "options from FILE" },
	{ "data", "DIR", 'd', 0, "the data folder" },
	{ "listen", "IP:PORT", 'l', OPT_REPEAT, "where to listen; repeatable" },
	{ "token", "TOKEN", 't', OPT_SECRET, "the secret token" },
	{ "egress", NULL, 'E', 0, "a flag" },
	{ "jobs", "N", 'j', OPT_SHORT, "with a one-letter name" },
	{ "help", NULL, 'h', OPT_CMDLINE, "print this help" },
	{ NULL, NULL, 0, 0, NULL } };

static char tmpdir[] = "/tmp/nubo-test.optsXXXXXX";
static char default_conf[256];

static struct opts_cmd test_cmd = {
	"test", "test --data DIR [options]\n    [--more]", "a test command",
	"Notes: a paragraph.\n\n  an example line\n\nthe end.", test_opts,
	NULL, 0,
};

/* Parse the words (NULL-terminated) as a command line; 0 or -1, with
 * the cause kept in *cause. */
static int
parse(struct opts *o, char **cause, ...)
{
	static char *argv[32];
	va_list ap;
	int argc = 0;

	va_start(ap, cause);
	argv[argc++] = "test";
	while ((argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	*cause = NULL;
	return opts_parse(o, &test_cmd, argc, argv, cause);
}

/* A file in tmpdir with these contents (len bytes) and mode. */
static char *
file(const char *name, const char *text, size_t len, mode_t mode)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

#define CONF(name, text) file(name, text, strlen(text), 0600)

/* The options in order as "c=value" words, joined by spaces. */
static char *
collect(struct opts *o)
{
	char out[4096] = "", *arg;
	int c;

	while ((c = opts_next(o, &arg)) != -1) {
		size_t n = strlen(out);

		snprintf(out + n, sizeof out - n, "%s%c=%s", n ? " " : "", c,
		    arg ? arg : "");
	}
	return xstrdup(out);
}

/* Parsing the file must fail with exactly this cause (the path of the
 * file replaced by F). */
static void
refused(const char *text, size_t len, mode_t mode, const char *want)
{
	char *path = file("bad.conf", text, len, mode), *cause, *expect;
	struct opts o;

	assert_int_equal(parse(&o, &cause, "--config", path, NULL), -1);
	assert_non_null(cause);
	expect = xasprintf(want, path, path, path);
	assert_string_equal(cause, expect);
	free(expect);
	free(cause);
	opts_release(&o);
	unlink(path);
	free(path);
}

static void
test_command_line(void **state)
{
	struct opts o;
	char *cause, *got;

	(void)state;
	assert_int_equal(parse(&o, &cause, "--data", "/d", "--listen=a:1",
	    "--egress", "-j", "3", "--listen", "b:2", NULL), 0);
	got = collect(&o);
	assert_string_equal(got, "d=/d l=a:1 E= j=3 l=b:2");
	assert_int_equal(opts_given(&o, 'd'), 1);
	assert_int_equal(opts_given(&o, 't'), 0);
	assert_null(o.config);
	free(got);
	opts_release(&o);
}

static void
test_command_line_errors(void **state)
{
	static const struct { const char *a, *b, *want; } cases[] = {
		{ "--frob", NULL, "unknown option '--frob'" },
		{ "-x", NULL, "unknown option '-x'" },
		{ "--data", NULL, "option '--data' needs a value" },
		{ "--egress=yes", NULL, "option '--egress' takes no value" },
		{ "--data", "/d", NULL },
		{ "stray", NULL, "unexpected argument 'stray'" },
	};
	struct opts o;
	char *cause;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = parse(&o, &cause, cases[i].a, cases[i].b, NULL);

		if (cases[i].want == NULL) {
			assert_int_equal(rc, 0);
		} else {
			assert_int_equal(rc, -1);
			assert_string_equal(cause, cases[i].want);
		}
		free(cause);
		opts_release(&o);
	}
	/* one positional argument allowed: it is kept, a second is not */
	test_cmd.positional = 1;
	assert_int_equal(parse(&o, &cause, "--data", "d", "FILE", NULL), 0);
	assert_int_equal(o.argc, 1);
	assert_string_equal(o.argv[0], "FILE");
	opts_release(&o);
	assert_int_equal(parse(&o, &cause, "A", "B", NULL), -1);
	assert_string_equal(cause, "unexpected argument 'B'");
	free(cause);
	opts_release(&o);
	test_cmd.positional = 0;
}

static void
test_config_file(void **state)
{
	char *path = CONF("ok.conf",
	    "# a comment\n"
	    "\n"
	    "   # an indented comment\n"
	    "data = /var/lib/x\n"
	    "listen=127.0.0.1:1\r\n"
	    "\tlisten   =   \"127.0.0.1:2\"   \n"
	    "token = a#b = c\n"		/* '#' and '=' inside a value */
	    "egress = yes\n"
	    "jobs = 4");			/* no newline at the end */
	struct opts o;
	char *cause, *got;

	(void)state;
	assert_int_equal(parse(&o, &cause, "--config", path, NULL), 0);
	assert_string_equal(o.config, path);
	got = collect(&o);
	assert_string_equal(got, "d=/var/lib/x l=127.0.0.1:1 l=127.0.0.1:2 "
	    "t=a#b = c E= j=4");
	free(got);
	opts_release(&o);
	/* a flag set to no is absent */
	free(path);
	path = CONF("no.conf", "egress = off\ndata = d\n");
	assert_int_equal(parse(&o, &cause, "--config", path, NULL), 0);
	got = collect(&o);
	assert_string_equal(got, "d=d");
	free(got);
	opts_release(&o);
	free(path);
}

/* The command line wins, for a repeatable option too: none of the
 * file's values of an option it gives stays. */
static void
test_command_line_wins(void **state)
{
	char *path = CONF("win.conf", "data = file\nlisten = f:1\nlisten = "
	    "f:2\njobs = 1\n");
	struct opts o;
	char *cause, *got;

	(void)state;
	assert_int_equal(parse(&o, &cause, "--listen", "c:9", "--config", path,
	    "--data", "line", NULL), 0);
	got = collect(&o);
	assert_string_equal(got, "j=1 l=c:9 d=line");
	free(got);
	opts_release(&o);
	free(path);
}

/* Where a bad value came from: the file's line, or the command line. */
static void
test_bad_value(void **state)
{
	char *path = CONF("val.conf", "\n\njobs = many\n"), *cause, *msg, *arg,
	    *want;
	struct opts o;

	(void)state;
	assert_int_equal(parse(&o, &cause, "--config", path, "--data", "x",
	    NULL), 0);
	assert_int_equal(opts_next(&o, &arg), 'j');
	msg = opts_bad_value(&o, "a number");
	want = xasprintf("%s:3: jobs = 'many': expected a number", path);
	assert_string_equal(msg, want);
	free(msg);
	free(want);
	assert_int_equal(opts_next(&o, &arg), 'd');
	msg = opts_bad_value(&o, "a folder");
	assert_string_equal(msg, "--data 'x': expected a folder");
	free(msg);
	assert_int_equal(opts_next(&o, &arg), -1);
	opts_release(&o);
	free(path);
}

static void
test_hostile_files(void **state)
{
	char big[NUBO_CONFIG_MAX + 2];
	char *path, *cause;
	struct opts o;

	(void)state;
	refused("frob = 1\n", 9, 0600, "%s:1: unknown option 'frob'");
	refused("\n--data = x\n", 12, 0600,
	    "%s:2: unknown option '--data' (keys are written without '--')");
	refused("data\n", 5, 0600,
	    "%s:1: expected 'key = value' (a '#' starts a comment line)");
	refused("data /x\n", 8, 0600,
	    "%s:1: expected 'key = value' (a '#' starts a comment line)");
	refused("= x\n", 4, 0600,
	    "%s:1: expected 'key = value' (a '#' starts a comment line)");
	refused("Data = x\n", 9, 0600,
	    "%s:1: expected 'key = value' (a '#' starts a comment line)");
	refused("data=\n", 6, 0600, "%s:1: 'data' has no value");
	refused("data = \"\"\n", 10, 0600, "%s:1: 'data' has no value");
	refused("data = a\x01z\n", 11, 0600,
	    "%s:1: a control character in the value of 'data'");
	refused("data = a\x7fz\n", 11, 0600,
	    "%s:1: a control character in the value of 'data'");
	refused("data = a\n\ndata = b\n", 19, 0600,
	    "%s:3: 'data' is already set on line 1");
	refused("egress = maybe\n", 15, 0600,
	    "%s:1: egress = 'maybe': expected yes or no");
	refused("config = /etc/passwd\n", 21, 0600,
	    "%s:1: 'config' is for the command line only");
	refused("help = yes\n", 11, 0600,
	    "%s:1: 'help' is for the command line only");
	refused("data = x\ntoken = s\n", 19, 0604,
	    "%s:2: 'token' is a secret, but others may read %s: chmod o-rwx %s");
	refused("data = x\0y\n", 11, 0600, "%s:1: a NUL byte");
	refused("\n\n\0", 3, 0600, "%s:3: a NUL byte");
	/* the same secret in a file only its group may read is fine */
	path = file("grp.conf", "token = s\n", 10, 0640);
	assert_int_equal(parse(&o, &cause, "--config", path, NULL), 0);
	opts_release(&o);
	free(path);
	/* too large: refused before it is read */
	memset(big, '#', sizeof big);
	refused(big, NUBO_CONFIG_MAX + 1, 0600, "%s: larger than 65536 bytes");
	/* exactly the cap, one long comment line: fine */
	path = file("max.conf", big, NUBO_CONFIG_MAX, 0600);
	assert_int_equal(parse(&o, &cause, "--config", path, NULL), 0);
	assert_int_equal(o.nitems, 0);
	opts_release(&o);
	free(path);
	/* not a regular file: a folder, a FIFO (must not hang), a device */
	assert_int_equal(parse(&o, &cause, "--config", tmpdir, NULL), -1);
	assert_non_null(strstr(cause, "not a regular file"));
	free(cause);
	opts_release(&o);
	path = xasprintf("%s/fifo", tmpdir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(parse(&o, &cause, "--config", path, NULL), -1);
	assert_non_null(strstr(cause, "not a regular file"));
	free(cause);
	opts_release(&o);
	free(path);
	assert_int_equal(parse(&o, &cause, "--config", "/dev/zero", NULL), -1);
	assert_string_equal(cause, "/dev/zero: not a regular file");
	free(cause);
	opts_release(&o);
	assert_int_equal(parse(&o, &cause, "--config", "/nonexistent/x.conf",
	    NULL), -1);
	assert_string_equal(cause, "cannot read /nonexistent/x.conf: No such "
	    "file or directory");
	free(cause);
	opts_release(&o);
}

/* Random bytes never crash the parser, and a refusal names a line. */
static void
test_garbage(void **state)
{
	char buf[512], *path, *cause;
	struct opts o;
	int i;
	size_t j;

	(void)state;
	srand(11);
	for (i = 0; i < 300; i++) {
		size_t len = (size_t)(rand() % (int)sizeof buf);
		static const char pick[] = "data=listen egress#\n\r\t \"-x";

		for (j = 0; j < len; j++)
			buf[j] = i % 2 ? (char)(rand() % 256) :
			    pick[rand() % (int)(sizeof pick - 1)];
		path = file("garbage.conf", buf, len, 0600);
		if (parse(&o, &cause, "--config", path, NULL) == -1) {
			assert_non_null(cause);
			assert_int_equal(strncmp(cause, path, strlen(path)), 0);
			free(cause);
		}
		opts_release(&o);
		free(path);
	}
}

/* The default file is read without --config, unless --data is given. */
static void
test_default_config(void **state)
{
	char *path = CONF("default.conf", "data = from-default\n"), *cause,
	    *got;
	struct opts o;

	(void)state;
	snprintf(default_conf, sizeof default_conf, "%s", path);
	test_cmd.config_default = default_conf;
	assert_int_equal(parse(&o, &cause, NULL), 0);
	got = collect(&o);
	assert_string_equal(got, "d=from-default");
	free(got);
	opts_release(&o);
	assert_int_equal(parse(&o, &cause, "--data", "mine", NULL), 0);
	assert_null(o.config);
	got = collect(&o);
	assert_string_equal(got, "d=mine");
	free(got);
	opts_release(&o);
	/* a missing default file is no error; a missing --config is */
	unlink(path);
	assert_int_equal(parse(&o, &cause, NULL), 0);
	assert_int_equal(o.nitems, 0);
	opts_release(&o);
	test_cmd.config_default = NULL;
	free(path);
}

/* --help and the manual page show every option of the table. */
static void
test_help_and_man(void **state)
{
	char *help = NULL, *man = NULL;
	size_t hlen = 0, mlen = 0;
	FILE *f;
	const struct opt *t;

	(void)state;
	f = open_memstream(&help, &hlen);
	opts_help(&test_cmd, "nubod", f);
	fclose(f);
	f = open_memstream(&man, &mlen);
	opts_man(&test_cmd, "nubod", f);
	fclose(f);
	assert_non_null(strstr(help, "usage: nubod test --data DIR [options]\n"
	    "                [--more]\n"));
	assert_non_null(strstr(man, ".SS \"nubod test\"\n"));
	for (t = test_opts; t->name; t++) {
		char *h = xasprintf("--%s", t->name);
		char *m = xasprintf("\\fB\\-\\-%s\\fR", t->name);

		assert_non_null(strstr(help, h));
		assert_non_null(strstr(help, t->help));
		assert_non_null(strstr(man, m));
		free(h);
		free(m);
	}
	assert_non_null(strstr(help, "  -j, --jobs N\n"));
	assert_non_null(strstr(man, ".nf\n.RS 4\nan example line\n.RE\n.fi\n"));
	free(help);
	free(man);
	/* roff: a leading dot or quote, backslashes and hyphens escaped */
	f = open_memstream(&man, &mlen);
	opts_roff(".SH x\n'q a\\b --c", f);
	fclose(f);
	assert_string_equal(man, "\\&.SH x\n\\&'q a\\eb \\-\\-c\n");
	free(man);
}

extern const struct opts_cmd portal_cmd, node_cmd, archive_cmd;

/* nubod's own tables: every name a config key can be, every val unique
 * (two rows with one val would send an option to the other's case), a
 * help text for --help and the manual. */
static void
test_real_tables(void **state)
{
	const struct opts_cmd *const cmds[] = { &portal_cmd, &node_cmd,
		&archive_cmd };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		const struct opt *a, *b;
		int n = 0;

		for (a = cmds[i]->opts; a->name; a++, n++) {
			assert_int_equal(strspn(a->name,
			    "abcdefghijklmnopqrstuvwxyz0123456789-"),
			    strlen(a->name));
			assert_true(a->name[0] != '-');
			assert_true(a->val != 0 && a->val != '?' && a->val != ':');
			assert_true(a->help && strlen(a->help) > 10);
			for (b = a + 1; b->name; b++) {
				if (strcmp(a->name, b->name) == 0 ||
				    a->val == b->val)
					fail_msg("%s: --%s and --%s", cmds[i]->name,
					    a->name, b->name);
			}
		}
		assert_true(n > 5);
		assert_non_null(cmds[i]->synopsis);
		assert_non_null(cmds[i]->summary);
	}
}

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	int rc;

	(void)state;
	rc = system(cmd);
	free(cmd);
	return rc == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_line),
		cmocka_unit_test(test_command_line_errors),
		cmocka_unit_test(test_config_file),
		cmocka_unit_test(test_command_line_wins),
		cmocka_unit_test(test_bad_value),
		cmocka_unit_test(test_hostile_files),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_default_config),
		cmocka_unit_test(test_help_and_man),
		cmocka_unit_test(test_real_tables),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
