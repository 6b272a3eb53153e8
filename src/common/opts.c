/* Options from the command line and from a config file, one table per
 * command (opts.h). The file is outside input: every line is checked
 * and a bad one refused with FILE:LINE before anything starts. */
#include "opts.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nubo_limits.h"
#include "xmalloc.h"

static size_t
opts_count(const struct opt *t)
{
	size_t n = 0;

	while (t[n].name)
		n++;
	return n;
}

static const struct opt *
opts_find_val(const struct opt *t, int val)
{
	for (; t->name; t++)
		if (t->val == val)
			return t;
	return NULL;
}

static const struct opt *
opts_find_name(const struct opt *t, const char *name)
{
	for (; t->name; t++)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

static void
opts_add(struct opts *o, size_t *cap, const struct opt *opt,
    char *arg, char *origin)
{
	struct opts_item *it;

	if (o->nitems == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		o->items = xrealloc(o->items, *cap * sizeof *o->items);
	}
	it = &o->items[o->nitems++];
	it->val = opt->val;
	it->arg = arg;
	it->origin = origin;
	it->opt = opt;
}

/* "yes"/"no" and their usual spellings: 1, 0, or -1. */
static int
opts_bool(const char *v)
{
	static const char *const yes[] = { "yes", "true", "on", "1", NULL };
	static const char *const no[] = { "no", "false", "off", "0", NULL };
	int i;

	for (i = 0; yes[i]; i++)
		if (strcmp(v, yes[i]) == 0)
			return 1;
	for (i = 0; no[i]; i++)
		if (strcmp(v, no[i]) == 0)
			return 0;
	return -1;
}

/* Read the whole of path (a regular file, at most NUBO_CONFIG_MAX
 * bytes) into o->text. */
static int
opts_slurp(struct opts *o, const char *path, struct stat *st, char **cause)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	/* O_NONBLOCK: a FIFO named as the file must not hang the start */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		*cause = xasprintf("cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, st) == -1 || !S_ISREG(st->st_mode)) {
		*cause = xasprintf("%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st->st_size > NUBO_CONFIG_MAX) {
		*cause = xasprintf("%s: larger than %d bytes", path,
		    NUBO_CONFIG_MAX);
		close(fd);
		return -1;
	}
	o->text = xmalloc(NUBO_CONFIG_MAX + 1);
	while (len <= NUBO_CONFIG_MAX &&
	    (n = read(fd, o->text + len, NUBO_CONFIG_MAX + 1 - len)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			*cause = xasprintf("cannot read %s: %s", path,
			    strerror(errno));
			close(fd);
			return -1;
		}
		len += (size_t)n;
	}
	close(fd);
	if (len > NUBO_CONFIG_MAX) {	/* it grew while we read */
		*cause = xasprintf("%s: larger than %d bytes", path,
		    NUBO_CONFIG_MAX);
		return -1;
	}
	o->text[len] = '\0';
	if (memchr(o->text, '\0', len) != NULL) {
		size_t at = strlen(o->text), line = 1, i;

		for (i = 0; i < at; i++)
			line += o->text[i] == '\n';
		*cause = xasprintf("%s:%zu: a NUL byte", path, line);
		return -1;
	}
	return 0;
}

/* One line of the file (NUL-terminated in place, no '\n'): 0 and an item
 * added (or none: a comment, a blank line, a flag set to no), or -1. */
static int
opts_line(struct opts *o, size_t *cap, const char *path, int secret_ok,
    size_t lineno, char *line, size_t *seen, char **cause)
{
	char *p = line, *key, *end, *value;
	const struct opt *opt;
	size_t len;
	int b;

	len = strlen(p);
	while (len > 0 && strchr(" \t\r", p[len - 1]) != NULL)
		p[--len] = '\0';
	p += strspn(p, " \t");
	if (*p == '\0' || *p == '#')
		return 0;
	key = p;
	p += strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789-");
	end = p;
	p += strspn(p, " \t");
	if (end == key || *p != '=') {
		*cause = xasprintf("%s:%zu: expected 'key = value' (a '#' "
		    "starts a comment line)", path, lineno);
		return -1;
	}
	*end = '\0';
	value = p + 1 + strspn(p + 1, " \t");
	if ((opt = opts_find_name(o->cmd->opts, key)) == NULL) {
		*cause = xasprintf("%s:%zu: unknown option '%s'%s", path, lineno,
		    key, key[0] == '-' ? " (keys are written without '--')" :
		    "");
		return -1;
	}
	if (opt->flags & OPT_CMDLINE) {
		*cause = xasprintf("%s:%zu: '%s' is for the command line only",
		    path, lineno, key);
		return -1;
	}
	len = strlen(value);
	if (len >= 2 && value[0] == '"' && value[len - 1] == '"') {
		value[len - 1] = '\0';
		value++;
	}
	for (p = value; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*cause = xasprintf("%s:%zu: a control character in the "
			    "value of '%s'", path, lineno, key);
			return -1;
		}
	if (*value == '\0') {
		*cause = xasprintf("%s:%zu: '%s' has no value", path, lineno,
		    key);
		return -1;
	}
	if (!(opt->flags & OPT_REPEAT) && seen[opt - o->cmd->opts]) {
		*cause = xasprintf("%s:%zu: '%s' is already set on line %zu",
		    path, lineno, key, seen[opt - o->cmd->opts]);
		return -1;
	}
	seen[opt - o->cmd->opts] = lineno;
	if ((opt->flags & OPT_SECRET) && !secret_ok) {
		*cause = xasprintf("%s:%zu: '%s' is a secret, but others may "
		    "read %s: chmod o-rwx %s", path, lineno, key, path, path);
		return -1;
	}
	if (opt->arg == NULL) {
		if ((b = opts_bool(value)) == -1) {
			*cause = xasprintf("%s:%zu: %s = '%s': expected yes or "
			    "no", path, lineno, key, value);
			return -1;
		}
		if (b)
			opts_add(o, cap, opt, NULL,
			    xasprintf("%s:%zu", path, lineno));
		return 0;
	}
	opts_add(o, cap, opt, value, xasprintf("%s:%zu", path, lineno));
	return 0;
}

static int
opts_read(struct opts *o, size_t *cap, const char *path, char **cause)
{
	struct stat st;
	size_t lineno = 0, *seen;
	char *line, *nl;
	int rc = 0;

	if (opts_slurp(o, path, &st, cause) == -1)
		return -1;
	seen = xcalloc(opts_count(o->cmd->opts) + 1, sizeof *seen);
	for (line = o->text; rc == 0 && *line; line = nl ? nl + 1 : "") {
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		rc = opts_line(o, cap, path, !(st.st_mode & S_IRWXO),
		    ++lineno, line, seen, cause);
	}
	free(seen);
	return rc;
}

int
opts_parse(struct opts *o, const struct opts_cmd *cmd, int argc,
    char **argv, char **cause)
{
	size_t n = opts_count(cmd->opts), i, cap = 0, nfile, keep;
	struct option *lo = xcalloc(n + 1, sizeof *lo);
	char shorts[64] = ":", *p = shorts + 1;
	const char *config = NULL;
	struct opts_item *line = NULL;
	size_t nline = 0;
	int c, idx, rc = -1;

	memset(o, 0, sizeof *o);
	o->cmd = cmd;
	for (i = 0; i < n; i++) {
		lo[i].name = cmd->opts[i].name;
		lo[i].has_arg = cmd->opts[i].arg ? required_argument :
		    no_argument;
		lo[i].val = cmd->opts[i].val;
		if ((cmd->opts[i].flags & OPT_SHORT) &&
		    p + 3 < shorts + sizeof shorts) {
			*p++ = (char)cmd->opts[i].val;
			if (cmd->opts[i].arg)
				*p++ = ':';
		}
	}
	*p = '\0';
	/* the command line first, to know what it sets */
	optind = 0;	/* a full restart of getopt (glibc) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, lo, &idx)) != -1) {
		const char *word = argv[optind - 1];
		const struct opt *opt;

		if (c == ':') {
			*cause = xasprintf("option '%s' needs a value", word);
			goto out;
		}
		if (c == '?' || (opt = opts_find_val(cmd->opts, c)) == NULL) {
			*cause = optopt && strncmp(word, "--", 2) == 0 ?
			    xasprintf("option '%.*s' takes no value",
			    (int)strcspn(word, "="), word) :
			    xasprintf("unknown option '%s'", word);
			goto out;
		}
		if (strcmp(opt->name, "config") == 0) {
			config = optarg;
			continue;
		}
		opts_add(o, &cap, opt, opt->arg ? optarg : NULL, NULL);
	}
	if (argc - optind > cmd->positional) {
		*cause = xasprintf("unexpected argument '%s'",
		    argv[optind + cmd->positional]);
		goto out;
	}
	o->argc = argc - optind;
	o->argv = argv + optind;
	if (config == NULL && cmd->config_default &&
	    opts_find_name(cmd->opts, "data") &&
	    !opts_given(o, opts_find_name(cmd->opts, "data")->val) &&
	    access(cmd->config_default, F_OK) == 0)
		config = cmd->config_default;
	if (config == NULL) {
		rc = 0;
		goto out;
	}
	/* then the file's, put before the command line's */
	line = o->items;
	nline = o->nitems;
	o->items = NULL;
	o->nitems = 0;
	cap = 0;
	o->config = xstrdup(config);
	if (opts_read(o, &cap, config, cause) == -1)
		goto out;
	nfile = o->nitems;
	for (i = keep = 0; i < nfile; i++) {
		size_t j;

		for (j = 0; j < nline; j++)
			if (line[j].val == o->items[i].val)
				break;
		if (j < nline)
			free(o->items[i].origin);
		else
			o->items[keep++] = o->items[i];
	}
	o->nitems = keep;
	for (i = 0; i < nline; i++)
		opts_add(o, &cap, line[i].opt, line[i].arg, NULL);
	rc = 0;
out:
	free(line);	/* the command line's items own no origin */
	free(lo);
	return rc;
}

int
opts_next(struct opts *o, char **arg)
{
	if (o->next >= o->nitems) {
		o->cur = NULL;
		return -1;
	}
	o->cur = &o->items[o->next++];
	*arg = o->cur->arg;
	return o->cur->val;
}

int
opts_given(const struct opts *o, int val)
{
	size_t i;

	for (i = 0; i < o->nitems; i++)
		if (o->items[i].val == val)
			return 1;
	return 0;
}

char *
opts_bad_value(const struct opts *o, const char *expected)
{
	const struct opts_item *it = o->cur;

	if (it == NULL)
		return xasprintf("bad value: expected %s", expected);
	if (it->origin)
		return xasprintf("%s: %s = '%s': expected %s", it->origin,
		    it->opt->name, it->arg ? it->arg : "", expected);
	return xasprintf("--%s '%s': expected %s", it->opt->name,
	    it->arg ? it->arg : "", expected);
}

void
opts_release(struct opts *o)
{
	size_t i;

	for (i = 0; i < o->nitems; i++)
		free(o->items[i].origin);
	free(o->items);
	free(o->config);
	free(o->text);
	memset(o, 0, sizeof *o);
}

/* text wrapped at 78 columns, each line indented by indent spaces; a
 * line that starts with two spaces is kept as it is (an example). */
static void
opts_wrap(const char *text, int indent, FILE *f)
{
	const char *p = text;
	int col = 0;

	while (*p) {
		size_t w;

		if (*p == '\n') {
			if (col)
				fputc('\n', f);
			col = 0;
			p++;
			if (*p == '\n') {	/* a paragraph */
				fputc('\n', f);
				p++;
			}
			if (strncmp(p, "  ", 2) == 0) {
				w = strcspn(p, "\n");
				fprintf(f, "%*s%.*s\n", indent, "", (int)w, p);
				p += w;
				if (*p == '\n' && p[1] != '\n')
					p++;
			}
			continue;
		}
		if (*p == ' ') {
			p++;
			continue;
		}
		w = strcspn(p, " \n");
		if (col && col + 1 + (int)w > 78) {
			fputc('\n', f);
			col = 0;
		}
		if (col == 0)
			col = fprintf(f, "%*s%.*s", indent, "", (int)w, p);
		else
			col += fprintf(f, " %.*s", (int)w, p);
		p += w;
	}
	if (col)
		fputc('\n', f);
}

void
opts_help(const struct opts_cmd *cmd, const char *prog, FILE *f)
{
	const char *s = cmd->synopsis;
	const struct opt *o;
	int first = 1;

	while (*s) {
		size_t n = strcspn(s, "\n");

		if (*s == ' ')		/* the line before goes on */
			fprintf(f, "       %*s%.*s\n", (int)strlen(prog), "",
			    (int)n, s);
		else
			fprintf(f, "%s %s %.*s\n", first ? "usage:" : "      ",
			    prog, (int)n, s);
		first = 0;
		s += n + (s[n] == '\n');
	}
	fputc('\n', f);
	opts_wrap(cmd->summary, 0, f);
	fputs("\noptions:\n", f);
	for (o = cmd->opts; o->name; o++) {
		if (o->flags & OPT_SHORT)
			fprintf(f, "  -%c, --%s%s%s\n", o->val, o->name,
			    o->arg ? " " : "", o->arg ? o->arg : "");
		else
			fprintf(f, "  --%s%s%s\n", o->name, o->arg ? " " : "",
			    o->arg ? o->arg : "");
		opts_wrap(o->help, 6, f);
	}
	if (cmd->notes) {
		fputc('\n', f);
		opts_wrap(cmd->notes, 0, f);
	}
}

/* One run of text as roff, no line structure: escapes only. */
static void
opts_roff_run(const char *s, size_t n, int bol, FILE *f)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (bol && (s[i] == '.' || s[i] == '\''))
			fputs("\\&", f);
		bol = 0;
		if (s[i] == '\\')
			fputs("\\e", f);
		else if (s[i] == '-')
			fputs("\\-", f);
		else
			fputc(s[i], f);
	}
}

void
opts_roff(const char *text, FILE *f)
{
	const char *p = text;
	int nofill = 0;

	while (*p) {
		size_t n = strcspn(p, "\n");

		if (n == 0) {		/* a blank line: a new paragraph */
			if (nofill)
				fputs(".RE\n.fi\n", f);
			nofill = 0;
			fputs(".PP\n", f);
		} else {
			const char *s = p + strspn(p, " ");
			size_t lead = (size_t)(s - p);

			if (lead >= 2 && !nofill) {
				fputs(".PP\n.nf\n.RS 4\n", f);
				nofill = 1;
			} else if (lead < 2 && nofill) {
				fputs(".RE\n.fi\n", f);
				nofill = 0;
			}
			opts_roff_run(s, n - lead, 1, f);
			fputc('\n', f);
		}
		p += n;
		if (*p == '\n')
			p++;
	}
	if (nofill)
		fputs(".RE\n.fi\n", f);
}

void
opts_roff_inline(const char *s, FILE *f)
{
	opts_roff_run(s, strlen(s), 0, f);
}

void
opts_man_synopsis(const struct opts_cmd *cmd, const char *prog, FILE *f)
{
	const char *s = cmd->synopsis;

	while (*s) {
		size_t n = strcspn(s, "\n");

		if (*s != ' ')
			fprintf(f, "\\fB%s\\fR ", prog);
		opts_roff_run(s, n, 0, f);
		fputc('\n', f);
		s += n + (s[n] == '\n');
	}
}

void
opts_man(const struct opts_cmd *cmd, const char *prog, FILE *f)
{
	const struct opt *o;

	fprintf(f, ".SS \"%s %s\"\n", prog, cmd->name);
	opts_roff(cmd->summary, f);
	fputs(".PP\n.nf\n", f);
	opts_man_synopsis(cmd, prog, f);
	fputs(".fi\n", f);
	for (o = cmd->opts; o->name; o++) {
		fputs(".TP\n", f);
		if (o->flags & OPT_SHORT)
			fprintf(f, "\\fB\\-%c\\fR, ", o->val);
		fputs("\\fB\\-\\-", f);
		opts_roff_run(o->name, strlen(o->name), 0, f);
		fputs("\\fR", f);
		if (o->arg) {
			fputs(" \\fI", f);
			opts_roff_run(o->arg, strlen(o->arg), 0, f);
			fputs("\\fR", f);
		}
		fputc('\n', f);
		opts_roff(o->help, f);
	}
	if (cmd->notes) {
		fputs(".PP\n", f);
		opts_roff(cmd->notes, f);
	}
}
