/* The options of nubod's commands, as one table each: the table drives
 * the parsing of the command line and of a --config file, prints --help
 * and writes the manual page nubod(8) — one description, three uses
 * (as curl's option docs generate its --help and man page). */
#ifndef NUBO_OPTS_H
#define NUBO_OPTS_H

#include <stddef.h>
#include <stdio.h>

/* Where an installed nubo keeps its configuration: CMake's sysconfdir
 * (/etc whatever the prefix, CMakeLists.txt) + "/nubo". */
#ifndef NUBO_CONFDIR
#define NUBO_CONFDIR "/etc/nubo"
#endif

#define OPT_REPEAT	0x01	/* may be given several times (all kept) */
#define OPT_CMDLINE	0x02	/* command line only: never in a config file */
#define OPT_SECRET	0x04	/* in a config file, refused if others may read it */
#define OPT_SHORT	0x08	/* val is also the option's one-letter name */

struct opt {
	const char	*name;	/* --name, and the key in a config file */
	const char	*arg;	/* what its value is ("FILE"); NULL: a flag */
	int		 val;	/* what opts_next() returns for it (not 0, '?', ':') */
	unsigned	 flags;	/* OPT_* */
	const char	*help;	/* what it does, its default; plain text */
};

/* Rows that several commands' tables share. */
#define OPT_ROW_CONFIG(dflt) { "config", "FILE", 'c', OPT_CMDLINE,	\
	"read options from FILE, one 'key = value' a line (see "	\
	"CONFIGURATION FILES in nubod(8)); the command line wins" dflt }
#define OPT_ROW_DEFAULT_CONFIG(file) OPT_ROW_CONFIG(". Default: " file	\
	" when the command line gives neither --config nor --data and "	\
	"that file exists")
#define OPT_ROW_TLS_KEY { "tls-key", "FILE", 'Y', 0,			\
	"the certificate's private key (PEM)" }
#define OPT_ROW_INSECURE_HTTP { "insecure-http", NULL, 'I', 0,		\
	"allow plain HTTP on an address outside loopback (a warning is "	\
	"logged at every start)" }
#define OPT_ROW_HELP { "help", NULL, 'h', OPT_CMDLINE,			\
	"print this help and exit" }
#define OPT_ROW_END { NULL, NULL, 0, 0, NULL }

/* One command of nubod: `nubod portal`. */
struct opts_cmd {
	const char	*name;		/* "portal" */
	const char	*synopsis;	/* lines without "nubod ", '\n' between */
	const char	*summary;	/* one line */
	const char	*notes;		/* paragraphs after the options, or NULL */
	const struct opt *opts;		/* ends with { NULL } */
	/* The file read when the command line gives neither --config nor
	 * --data (an installed service's), when it exists; NULL: none. */
	const char	*config_default;
	int		 positional;	/* positional arguments it takes (max) */
};

/* One option as given: its value and where it came from. */
struct opts_item {
	int		 val;
	char		*arg;		/* NULL for a flag */
	char		*origin;	/* "FILE:LINE", NULL: the command line */
	const struct opt *opt;
};

struct opts {
	const struct opts_cmd *cmd;
	struct opts_item *items;	/* the config file's, then the command line's */
	size_t		 nitems;
	size_t		 next;
	const struct opts_item *cur;	/* what opts_next() returned last */
	char		*config;	/* the config file read, or NULL */
	char		*text;		/* its contents (values point into it) */
	int		 argc;		/* positional arguments */
	char		**argv;
};

/* Parse argv (argv[0] is the command's name) and the config file it
 * names (--config FILE, else cmd->config_default as said there). Of an
 * option that the command line gives, the file's values are dropped:
 * the command line wins, also for repeatable ones. Returns 0, or -1
 * with *cause set (a usage error: unknown option, a malformed or unknown
 * line in the file — with FILE:LINE, too many positional arguments). */
int opts_parse(struct opts *, const struct opts_cmd *, int argc,
    char **argv, char **cause);
/* The next option, in order (file first); its value in *arg (NULL for a
 * flag). Returns its val, or -1 when none is left. */
int opts_next(struct opts *, char **arg);
/* A message for the value of the option opts_next() returned last, that
 * is not what it should be: "FILE:LINE: threads = 'x': expected …" or
 * "--threads 'x': expected …". Caller frees. */
char *opts_bad_value(const struct opts *, const char *expected);
/* 1 when the option with val was given (in the file or on the line). */
int opts_given(const struct opts *, int val);
void opts_release(struct opts *);

/* --help: synopsis, summary, every option with its help, the notes. */
void opts_help(const struct opts_cmd *, const char *prog, FILE *);
/* The same as a section of a manual page (roff, .SS per command). */
void opts_man(const struct opts_cmd *, const char *prog, FILE *);
/* Its synopsis lines as roff, "\fBprog\fR line" each (inside .nf). */
void opts_man_synopsis(const struct opts_cmd *, const char *prog, FILE *);
/* s escaped for roff, within a line. */
void opts_roff_inline(const char *s, FILE *);
/* text as roff: backslashes, leading dots and quotes, hyphens escaped;
 * a blank line starts a paragraph. */
void opts_roff(const char *text, FILE *);

#endif
