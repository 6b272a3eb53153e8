/* nubod: the nubo daemons. `nubod portal …` runs the control plane,
 * `nubod node …` a cloud node agent. */
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <jansson.h>

#include "opts.h"
#include "portal.h"

int portal_main(int argc, char **argv);
int backup_tool_main(int argc, char **argv);
#ifdef NUBO_HAVE_NODE
int node_main(int argc, char **argv);
#endif

extern const struct opts_cmd portal_cmd, archive_cmd;
#ifdef NUBO_HAVE_NODE
extern const struct opts_cmd node_cmd;
#endif

/* The commands whose options are a table (opts.h): --help, nubod(8). */
static const struct opts_cmd *const nubod_cmds[] = {
	&portal_cmd,
#ifdef NUBO_HAVE_NODE
	&node_cmd,
#endif
	&archive_cmd,
	NULL };

/* The commands without options. */
static const char *const nubod_plain[][2] = {
	{ "routes", "print the API route table (JSON)" },
	{ "openapi", "print the OpenAPI document of the API" },
	{ "--man", "print this manual, nubod(8), as roff" },
	{ NULL, NULL } };

/* What the manual says besides the commands' own tables. */
static const char nubod_man_config[] =
    "Every long option of portal, node and archive can also come from a "
    "file: --config FILE, one option a line as\n"
    "\n"
    "  key = value\n"
    "\n"
    "where key is the option's long name without the two dashes. A line "
    "that starts with # is a comment (a # later on a line is part of the "
    "value); blank lines are skipped; spaces around key, = and value do not "
    "count; a value may be put in double quotes, which are removed. A flag "
    "takes yes or no (true/false, on/off, 1/0). An option that can be "
    "given several times may appear on several lines; any other only once. "
    "The command line wins: an option given there replaces every line of "
    "the file that sets it. An unknown key, a line that is not key = value, "
    "an empty value and a value that is not what the option takes are "
    "refused with FILE:LINE and the daemon does not start (exit status 2). "
    "Secrets (token, password, pg, db) are refused in a file that others "
    "(not its owner or group) may read. The file may be at most 64 KiB.\n"
    "\n"
    "Without --config, nubod portal reads " NUBO_CONFDIR "/portal.conf and "
    "nubod node " NUBO_CONFDIR "/node.conf, when the command line does not "
    "give --data and that file exists: the installed services keep their "
    "options there (the systemd units name them with --config).";

static const char nubod_man_files[] =
    NUBO_CONFDIR "/portal.conf, " NUBO_CONFDIR "/node.conf: the services' "
    "options (examples are installed with them).\n"
    "\n"
    NUBO_CONFDIR "/secrets.key: the portal's sealing key unless "
    "--secrets-key names another; the installed portal.conf names "
    NUBO_CONFDIR "/secrets/portal.key, in a folder the nubo-portal service "
    "may write.\n"
    "\n"
    "/var/lib/nubo/portal, /var/lib/nubo/node: the data folders the "
    "installed configuration uses.\n"
    "\n"
    "nubo-init, next to nubod: process 1 of every app instance's sandbox, "
    "which a node starts; not run by hand.\n"
    "\n"
    "nubo-portal.service, nubo-node.service: the systemd units.";

static void
nubod_usage(FILE *f)
{
	int i, first = 1;

	for (i = 0; nubod_cmds[i]; i++) {
		const char *s = nubod_cmds[i]->synopsis;

		while (*s) {
			size_t n = strcspn(s, "\n");

			fprintf(f, "%s %s%.*s\n", first ? "usage:" : "      ",
			    *s == ' ' ? "     " : "nubod ", (int)n, s);
			first = 0;
			s += n + (s[n] == '\n');
		}
	}
	for (i = 0; nubod_plain[i][0]; i++)
		fprintf(f, "       nubod %-8s %s\n", nubod_plain[i][0],
		    nubod_plain[i][1]);
	fputs("'nubod COMMAND --help' tells every option of a command.\n", f);
}

/* nubod(8), from the same tables as --help. */
static int
nubod_man(void)
{
	FILE *f = stdout;
	int i;

	fputs(".TH NUBOD 8 \"\" \"nubo\" \"nubo\"\n"
	    ".SH NAME\nnubod \\- the nubo daemons: portal and cloud node\n"
	    ".SH SYNOPSIS\n.nf\n", f);
	for (i = 0; nubod_cmds[i]; i++)
		opts_man_synopsis(nubod_cmds[i], "nubod", f);
	for (i = 0; nubod_plain[i][0]; i++) {
		fputs("\\fBnubod\\fR ", f);
		opts_roff_inline(nubod_plain[i][0], f);
		fputc('\n', f);
	}
	fputs(".fi\n.SH DESCRIPTION\n", f);
	opts_roff("nubod is the server side of nubo, a self-hosted app cloud. "
	    "The portal is the control plane: the REST API the nubo(1) CLI "
	    "talks to, the store of apps, users and nodes, and the jobs. A "
	    "cloud node runs environments of apps in sandboxes behind its "
	    "router (nginx), with a PostgreSQL database each; it joins the "
	    "portal with a token.", f);
	fputs(".SH COMMANDS\n", f);
	for (i = 0; nubod_cmds[i]; i++)
		opts_man(nubod_cmds[i], "nubod", f);
	for (i = 0; nubod_plain[i][0]; i++) {
		fputs(".SS \"nubod ", f);
		opts_roff_inline(nubod_plain[i][0], f);
		fputs("\"\n", f);
		opts_roff(nubod_plain[i][1], f);
	}
	fputs(".SH CONFIGURATION FILES\n", f);
	opts_roff(nubod_man_config, f);
	fputs(".SH SIGNALS\n", f);
	opts_roff("SIGHUP: the portal and the node read their --tls-cert and "
	    "--tls-key files again (a node its --router-tls-cert and "
	    "--router-tls-key too); open connections keep theirs. A config "
	    "file is read at start only: after changing it, restart. SIGTERM: "
	    "they stop; a node's apps, router and database keep running and "
	    "a restarted node adopts them (nubod node stop-all stops them).",
	    f);
	fputs(".SH EXIT STATUS\n", f);
	opts_roff("0 when stopped by SIGTERM or done, 1 when something failed, "
	    "2 for a usage error (a bad option or config file line).", f);
	fputs(".SH FILES\n", f);
	opts_roff(nubod_man_files, f);
	fputs(".SH SEE ALSO\n\\fBnubo\\fR(1)\n", f);
	return 0;
}

static int
print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	putchar('\n');
	json_decref(j);
	return 0;
}

int
main(int argc, char **argv)
{
	/* file names are bytes: in a UTF-8 locale libarchive stores a UTF-8
	 * name as such and any other as raw bytes (backup-archive.c); in
	 * the C locale it could store no name that is not ASCII. Only
	 * LC_CTYPE: messages, numbers and sorting stay C's. */
	if (setlocale(LC_CTYPE, "C.UTF-8") == NULL &&
	    setlocale(LC_CTYPE, "C.utf8") == NULL)
		setlocale(LC_CTYPE, "en_US.UTF-8");
	if (sodium_init() < 0) {
		fputs("nubod: libsodium failed to start\n", stderr);
		return 1;
	}
	/* OpenSSL frees its global tables in an atexit handler: a daemon
	 * whose main thread returns while another thread is in a TLS
	 * handshake (a heartbeat, an agent call) would have that thread
	 * read freed memory (seen under ASan in t9-hosts: OPENSSL_sk_dup
	 * from X509_STORE_load_file_ex at a node's stop). The process ends
	 * anyway; its memory goes with it. */
	OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (argc < 2) {
		nubod_usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "portal") == 0)
		return portal_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "archive") == 0)
		return backup_tool_main(argc - 1, argv + 1);
#ifdef NUBO_HAVE_NODE
	if (strcmp(argv[1], "node") == 0)
		return node_main(argc - 1, argv + 1);
#endif
	if (strcmp(argv[1], "routes") == 0)
		return print_json(routes_table());
	if (strcmp(argv[1], "openapi") == 0)
		return print_json(routes_describe());
	if (strcmp(argv[1], "--man") == 0)
		return nubod_man();
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		nubod_usage(stdout);
		return 0;
	}
	nubod_usage(stderr);
	return 2;
}
