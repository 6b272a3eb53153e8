/* The nubo CLI: one command table (cli.c), one file per command
 * (cmd-<noun>-<verb>.c), each holding one `const struct cmd_entry`. */
#ifndef NUBO_CLI_H
#define NUBO_CLI_H

#include <stdio.h>

#include <jansson.h>

#include "jsonx.h"

#define CLI_OK		0
#define CLI_FAILED	1
#define CLI_USAGE	2
#define CLI_MAXOPTS	32

struct cmd_args {
	int		 argc;		/* positional arguments */
	char		**argv;
	int		 nopts;
	const char	*opt_names[CLI_MAXOPTS];
	const char	*opt_values[CLI_MAXOPTS];	/* "" for flags */
};

struct cmd_entry {
	const char	*noun;		/* "apps" */
	const char	*verb;		/* "create" */
	const char	*args;		/* positional usage: "SUBDOMAIN" */
	/* Options, comma-separated: "json,no-sandbox,name=". A trailing '='
	 * takes a value; a name may repeat on the command line. */
	const char	*options;
	int		 min_args;
	int		 max_args;	/* -1: any */
	const char	*summary;
	const char	*help;		/* longer text for --help, or NULL */
	int		(*exec)(struct cmd_args *);
	int		 no_auth;	/* runs without a stored login */
};

/* Option lookup: the (last) value, or NULL when absent; flags give "". */
const char *cmd_opt(struct cmd_args *, const char *name);
int cmd_flag(struct cmd_args *, const char *name);
/* All values of a repeatable option, in order; returns their count. */
int cmd_opt_all(struct cmd_args *, const char *name, const char **out,
    int max);

/* client.c — the REST API. Paths are below /api/v1. Each call returns the
 * HTTP status (and *out the JSON body, or NULL), or -1 when the portal
 * cannot be reached (message printed). */
int api_call(const char *method, const char *path, json_t *body,
    json_t **out);
/* Like api_call, but any status >= 400 prints the API's error message
 * ("nubo: <message>") and returns -1; 2xx returns the status. */
int api_ok(const char *method, const char *path, json_t *body, json_t **out);
/* How long the portal may hold a long poll (a job, a migration, a log
 * read with ?wait=) that has nothing new (seconds). */
#define API_WAIT_SECS	20
/* Percent-encode one path segment (caller frees). */
char *api_escape(const char *s);
/* The portal URL and key in use (after config and environment). */
const char *api_url(void);
const char *api_key(void);
/* Write ~/.config/nubo/config (mode 0600). */
int api_save_login(const char *url, const char *key);
/* The CA file the portal's certificate (and a node's, for a URL that
 * pins no key) is verified against: --ca (api_set_ca, before any call),
 * else NUBO_CA, else the login's; NULL: the system's store. */
void api_set_ca(const char *file);
const char *api_ca(void);
/* Set a curl handle's URL and how its server is verified (tls.h). */
void api_curl_url(void *curl, const char *url);
/* Poll /jobs/{id} until it ends, showing progress; CLI_OK or CLI_FAILED. */
int api_wait_job(const char *job_id, const char *what);
/* The same; *job (unless NULL) gets the job as it ended, the caller's
 * to free. */
int api_wait_job_get(const char *job_id, const char *what, json_t **job);

/* output.c */
/* Print rows as a table with the given columns ("key:HEADER,…"). */
void out_table(json_t *rows, const char *columns);
/* Print an object as "key: value" lines (keys in the given order, or all). */
void out_fields(json_t *obj, const char *keys);
void out_json(json_t *v);
/* "nubo: " + message to stderr; returns CLI_FAILED. */
int out_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print a usage error for the command; returns CLI_USAGE. */
int out_usage(const struct cmd_entry *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A destructive command's confirmation: with --yes, 1; without it on a
 * terminal, print warning (a line or more) and ask for the app's
 * subdomain: 1 when typed exactly, else 0 after saying that nothing
 * changed; off a terminal, 0 after a usage error naming --yes (*rc gets
 * CLI_USAGE, else CLI_FAILED). */
int out_confirm(struct cmd_args *, const char *subdomain,
    const char *warning, int *rc);
/* --json given: print v and return CLI_OK; else return -1. */
int out_maybe_json(struct cmd_args *, json_t *v);

extern const struct cmd_entry *cmd_current;

#endif
