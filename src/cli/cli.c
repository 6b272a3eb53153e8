/* THE command table of the nubo CLI, and argument parsing done once for
 * every command: `nubo <noun> <verb> [options] [args]`. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli.h"
#include "opts.h"
#include "xmalloc.h"

extern const struct cmd_entry cmd_login_entry;
extern const struct cmd_entry cmd_apps_list_entry;
extern const struct cmd_entry cmd_apps_create_entry;
extern const struct cmd_entry cmd_apps_show_entry;
extern const struct cmd_entry cmd_apps_rename_entry;
extern const struct cmd_entry cmd_apps_delete_entry;
extern const struct cmd_entry cmd_apps_unlink_sandbox_entry;
extern const struct cmd_entry cmd_apps_transfer_entry;
extern const struct cmd_entry cmd_apps_activity_entry;
extern const struct cmd_entry cmd_members_list_entry;
extern const struct cmd_entry cmd_members_add_entry;
extern const struct cmd_entry cmd_members_remove_entry;
extern const struct cmd_entry cmd_members_grant_entry;
extern const struct cmd_entry cmd_nodes_list_entry;
extern const struct cmd_entry cmd_nodes_show_entry;
extern const struct cmd_entry cmd_nodes_link_entry;
extern const struct cmd_entry cmd_nodes_activity_entry;
extern const struct cmd_entry cmd_admin_nodes_create_entry;
extern const struct cmd_entry cmd_admin_nodes_token_entry;
extern const struct cmd_entry cmd_admin_nodes_set_technical_contact_entry;
extern const struct cmd_entry cmd_admin_nodes_set_address_entry;
extern const struct cmd_entry cmd_admin_nodes_backup_target_entry;
extern const struct cmd_entry cmd_admin_nodes_trust_entry;
/* keys, admin, whoami */
extern const struct cmd_entry cmd_whoami_entry;
extern const struct cmd_entry cmd_keys_create_entry;
extern const struct cmd_entry cmd_keys_list_entry;
extern const struct cmd_entry cmd_keys_revoke_entry;
extern const struct cmd_entry cmd_admin_users_create_entry;
extern const struct cmd_entry cmd_admin_users_list_entry;
extern const struct cmd_entry cmd_settings_show_entry;
extern const struct cmd_entry cmd_settings_export_entry;
extern const struct cmd_entry cmd_settings_import_entry;
extern const struct cmd_entry cmd_settings_diff_entry;
extern const struct cmd_entry cmd_settings_set_constant_entry;
extern const struct cmd_entry cmd_settings_unset_constant_entry;
extern const struct cmd_entry cmd_settings_event_entry;
extern const struct cmd_entry cmd_settings_domain_add_entry;
extern const struct cmd_entry cmd_settings_domain_remove_entry;
extern const struct cmd_entry cmd_settings_access_set_entry;
extern const struct cmd_entry cmd_settings_access_remove_entry;
extern const struct cmd_entry cmd_settings_header_set_entry;
extern const struct cmd_entry cmd_settings_header_unset_entry;
extern const struct cmd_entry cmd_settings_runtime_entry;
extern const struct cmd_entry cmd_settings_env_set_entry;
extern const struct cmd_entry cmd_settings_env_unset_entry;
extern const struct cmd_entry cmd_settings_window_entry;
extern const struct cmd_entry cmd_settings_window_remove_entry;

/* envs */
extern const struct cmd_entry cmd_envs_list_entry;
extern const struct cmd_entry cmd_envs_show_entry;
extern const struct cmd_entry cmd_envs_start_entry;
extern const struct cmd_entry cmd_envs_stop_entry;
extern const struct cmd_entry cmd_envs_restart_entry;
extern const struct cmd_entry cmd_envs_clean_entry;
extern const struct cmd_entry cmd_envs_transport_entry;
extern const struct cmd_entry cmd_envs_scale_entry;
extern const struct cmd_entry cmd_envs_logs_entry;
extern const struct cmd_entry cmd_envs_psql_entry;
extern const struct cmd_entry cmd_envs_db_url_entry;
extern const struct cmd_entry cmd_envs_run_entry;
extern const struct cmd_entry cmd_envs_maintenance_entry;

/* migrate, offboarding */
extern const struct cmd_entry cmd_migrate_plan_entry;
extern const struct cmd_entry cmd_migrate_start_entry;
extern const struct cmd_entry cmd_migrate_rehearse_entry;
extern const struct cmd_entry cmd_migrate_cutover_entry;
extern const struct cmd_entry cmd_migrate_status_entry;
extern const struct cmd_entry cmd_migrate_resume_entry;
extern const struct cmd_entry cmd_migrate_abort_entry;
extern const struct cmd_entry cmd_migrate_rollback_entry;
extern const struct cmd_entry cmd_migrate_run_entry;
extern const struct cmd_entry cmd_nodes_offboard_entry;
extern const struct cmd_entry cmd_admin_offboarding_list_entry;
extern const struct cmd_entry cmd_admin_offboarding_approve_entry;
extern const struct cmd_entry cmd_admin_offboarding_show_entry;
extern const struct cmd_entry cmd_admin_offboarding_purge_entry;
/* backups */
extern const struct cmd_entry cmd_backups_list_entry;
extern const struct cmd_entry cmd_backups_create_entry;
extern const struct cmd_entry cmd_backups_show_entry;
extern const struct cmd_entry cmd_backups_comment_entry;
extern const struct cmd_entry cmd_backups_delete_entry;
extern const struct cmd_entry cmd_backups_download_entry;
extern const struct cmd_entry cmd_backups_upload_entry;
extern const struct cmd_entry cmd_backups_restore_entry;

/* packages */
extern const struct cmd_entry cmd_packages_upload_entry;
extern const struct cmd_entry cmd_packages_list_entry;
extern const struct cmd_entry cmd_packages_show_entry;
extern const struct cmd_entry cmd_packages_download_entry;
extern const struct cmd_entry cmd_packages_delete_entry;

static const struct cmd_entry *const cmd_table[] = {
	&cmd_login_entry,

	/* apps, members */
	&cmd_apps_list_entry,
	&cmd_apps_create_entry,
	&cmd_apps_show_entry,
	&cmd_apps_rename_entry,
	&cmd_apps_delete_entry,
	&cmd_apps_unlink_sandbox_entry,
	&cmd_apps_transfer_entry,
	&cmd_apps_activity_entry,
	&cmd_members_list_entry,
	&cmd_members_add_entry,
	&cmd_members_remove_entry,
	&cmd_members_grant_entry,


	/* keys, admin */
	&cmd_whoami_entry,
	&cmd_keys_create_entry,
	&cmd_keys_list_entry,
	&cmd_keys_revoke_entry,
	&cmd_admin_users_create_entry,
	&cmd_admin_users_list_entry,


	/* nodes */
	&cmd_nodes_list_entry,
	&cmd_nodes_show_entry,
	&cmd_nodes_link_entry,
	&cmd_nodes_activity_entry,
	&cmd_admin_nodes_create_entry,
	&cmd_admin_nodes_token_entry,
	&cmd_admin_nodes_set_technical_contact_entry,
	&cmd_admin_nodes_set_address_entry,
	&cmd_admin_nodes_backup_target_entry,
	&cmd_admin_nodes_trust_entry,


	/* envs, packages */
	&cmd_packages_upload_entry,
	&cmd_packages_list_entry,
	&cmd_packages_show_entry,
	&cmd_packages_download_entry,
	&cmd_packages_delete_entry,
	&cmd_envs_list_entry,
	&cmd_envs_show_entry,
	&cmd_envs_start_entry,
	&cmd_envs_stop_entry,
	&cmd_envs_restart_entry,
	&cmd_envs_clean_entry,
	&cmd_envs_transport_entry,
	&cmd_envs_scale_entry,
	&cmd_envs_logs_entry,
	&cmd_envs_psql_entry,
	&cmd_envs_db_url_entry,
	&cmd_envs_run_entry,
	&cmd_envs_maintenance_entry,


	/* settings */
	&cmd_settings_show_entry,
	&cmd_settings_export_entry,
	&cmd_settings_import_entry,
	&cmd_settings_diff_entry,
	&cmd_settings_set_constant_entry,
	&cmd_settings_unset_constant_entry,
	&cmd_settings_event_entry,
	&cmd_settings_domain_add_entry,
	&cmd_settings_domain_remove_entry,
	&cmd_settings_access_set_entry,
	&cmd_settings_access_remove_entry,
	&cmd_settings_header_set_entry,
	&cmd_settings_header_unset_entry,
	&cmd_settings_runtime_entry,
	&cmd_settings_env_set_entry,
	&cmd_settings_env_unset_entry,
	&cmd_settings_window_entry,
	&cmd_settings_window_remove_entry,


	/* backups */
	&cmd_backups_list_entry,
	&cmd_backups_create_entry,
	&cmd_backups_show_entry,
	&cmd_backups_comment_entry,
	&cmd_backups_delete_entry,
	&cmd_backups_download_entry,
	&cmd_backups_upload_entry,
	&cmd_backups_restore_entry,


	/* migrate */
	&cmd_migrate_plan_entry,
	&cmd_migrate_start_entry,
	&cmd_migrate_rehearse_entry,
	&cmd_migrate_cutover_entry,
	&cmd_migrate_status_entry,
	&cmd_migrate_resume_entry,
	&cmd_migrate_abort_entry,
	&cmd_migrate_rollback_entry,
	&cmd_migrate_run_entry,
	&cmd_nodes_offboard_entry,
	&cmd_admin_offboarding_list_entry,
	&cmd_admin_offboarding_approve_entry,
	&cmd_admin_offboarding_show_entry,
	&cmd_admin_offboarding_purge_entry,
};

#define CMD_COUNT (sizeof cmd_table / sizeof cmd_table[0])

const struct cmd_entry *cmd_current;

const char *
cmd_opt(struct cmd_args *a, const char *name)
{
	int i;

	for (i = a->nopts - 1; i >= 0; i--)
		if (strcmp(a->opt_names[i], name) == 0)
			return a->opt_values[i];
	return NULL;
}

int
cmd_flag(struct cmd_args *a, const char *name)
{
	return cmd_opt(a, name) != NULL;
}

int
cmd_opt_all(struct cmd_args *a, const char *name, const char **out, int max)
{
	int i, n = 0;

	for (i = 0; i < a->nopts && n < max; i++)
		if (strcmp(a->opt_names[i], name) == 0)
			out[n++] = a->opt_values[i];
	return n;
}

/* Is name an option of e? *takes_value tells whether it wants a value. */
static int
option_known(const struct cmd_entry *e, const char *name, size_t len,
    int *takes_value)
{
	const char *p = e->options ? e->options : "";

	while (*p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		int val = n > 0 && p[n - 1] == '=';

		if ((val ? n - 1 : n) == len && strncmp(p, name, len) == 0) {
			*takes_value = val;
			return 1;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* The options of e as "--name" or "--name VALUE", each with before and
 * after around it; the dashes as roff's \- for the manual page. */
static void
cmd_options_print(const struct cmd_entry *e, const char *before,
    const char *after, int roff, FILE *f)
{
	const char *p = e->options ? e->options : "", *dd = roff ? "\\-\\-" :
	    "--";

	while (*p) {
		const char *end = strchr(p, ',');
		int n = end ? (int)(end - p) : (int)strlen(p);

		if (p[n - 1] == '=')
			fprintf(f, "%s%s%.*s VALUE%s", before, dd, n - 1, p,
			    after);
		else
			fprintf(f, "%s%s%.*s%s", before, dd, n, p, after);
		p += n;
		if (*p == ',')
			p++;
	}
}

static void
cmd_help(const struct cmd_entry *e, FILE *f)
{
	fprintf(f, "usage: nubo %s%s%s%s%s\n", e->noun, e->verb ? " " : "",
	    e->verb ? e->verb : "", e->args ? " " : "", e->args ? e->args : "");
	fprintf(f, "\n%s\n", e->summary);
	if (e->options && *e->options) {
		fputs("\noptions:\n", f);
		cmd_options_print(e, "  ", "\n", 0, f);
	}
	if (e->help)
		fprintf(f, "\n%s\n", e->help);
}

/* nubo(1) as roff, from the command table (what --help prints). */
static int
cli_man(FILE *f)
{
	size_t i;

	fputs(".TH NUBO 1 \"\" \"nubo\" \"nubo\"\n"
	    ".SH NAME\nnubo \\- the command line of the nubo app cloud\n"
	    ".SH SYNOPSIS\n\\fBnubo\\fR [\\fB\\-\\-ca\\fR \\fIFILE\\fR] "
	    "\\fInoun\\fR \\fIverb\\fR [\\fIoptions\\fR] "
	    "[\\fIarguments\\fR]\n.SH DESCRIPTION\n", f);
	opts_roff("nubo talks to a nubo portal's REST API: apps, their "
	    "environments, members, packages, settings, backups, nodes and "
	    "migrations. Log in once (nubo login URL), or set NUBO_URL and "
	    "NUBO_API_KEY. Every read takes --json. nubo NOUN VERB --help "
	    "prints what one command takes.", f);
	fputs(".SH OPTIONS\n.TP\n\\fB\\-\\-ca\\fR \\fIFILE\\fR\n", f);
	opts_roff("the CA that signed the portal's certificate (else NUBO_CA, "
	    "else the one given at login, else the system's); it comes before "
	    "the command", f);
	fputs(".SH COMMANDS\n", f);
	for (i = 0; i < CMD_COUNT; i++) {
		const struct cmd_entry *e = cmd_table[i];
		char *head = xasprintf("nubo %s%s%s%s%s", e->noun, e->verb ?
		    " " : "", e->verb ? e->verb : "", e->args ? " " : "",
		    e->args ? e->args : "");

		fputs(".TP\n\\fB", f);
		opts_roff_inline(head, f);
		fputs("\\fR\n", f);
		free(head);
		opts_roff(e->summary, f);
		if (e->options && *e->options) {
			fputs(".br\nOptions: ", f);
			cmd_options_print(e, "\\fB", "\\fR ", 1, f);
			fputc('\n', f);
		}
		if (e->help) {
			fputs(".br\n", f);
			opts_roff(e->help, f);
		}
	}
	fputs(".SH ENVIRONMENT\n", f);
	opts_roff("NUBO_URL, NUBO_API_KEY: the portal and the API key, instead "
	    "of the stored login. NUBO_CA: the portal's CA (as --ca). "
	    "XDG_CONFIG_HOME: where the login is kept (default ~/.config).", f);
	fputs(".SH FILES\n", f);
	opts_roff("~/.config/nubo/config: the login (the portal's URL, the API "
	    "key, the CA), mode 0600.", f);
	fputs(".SH EXIT STATUS\n", f);
	opts_roff("0 ok, 1 failed, 2 usage error.", f);
	fputs(".SH SEE ALSO\n\\fBnubod\\fR(8)\n", f);
	return CLI_OK;
}

static void
usage_all(FILE *f)
{
	size_t i;

	fputs("usage: nubo [--ca FILE] <noun> <verb> [options] [arguments]\n\n"
	    "--ca FILE: the CA that signed the portal's certificate (else\n"
	    "NUBO_CA, else the one given at login, else the system's)\n\n"
	    "commands:\n", f);
	for (i = 0; i < CMD_COUNT; i++) {
		const struct cmd_entry *e = cmd_table[i];
		char name[64];

		snprintf(name, sizeof name, "%s%s%s", e->noun,
		    e->verb ? " " : "", e->verb ? e->verb : "");
		fprintf(f, "  %-24s %s\n", name, e->summary);
	}
	fputs("\n'nubo <noun> <verb> --help' tells more about one command;\n"
	    "'nubo --man' prints the manual page nubo(1) (roff).\n"
	    "Exit status: 0 ok, 1 failed, 2 usage error.\n", f);
}

int
out_usage(const struct cmd_entry *e, const char *fmt, ...)
{
	va_list ap;

	fputs("nubo: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (e)
		cmd_help(e, stderr);
	return CLI_USAGE;
}

/* How many argv words (from argv[1]) the noun of c takes — "keys" one,
 * "admin users" two — or 0 when they do not match. */
static int
noun_match(const char *noun, int argc, char **argv)
{
	const char *p = noun;
	int w = 1;

	while (w < argc) {
		size_t n = strcspn(p, " ");

		if (strlen(argv[w]) != n || strncmp(argv[w], p, n) != 0)
			return 0;
		if (p[n] == '\0')
			return w;
		p += n + 1;
		w++;
	}
	return 0;
}

/* 1 when the words argv[1..] so far are the start of noun ("admin" of
 * "admin users"). */
static int
noun_prefix(const char *noun, int argc, char **argv)
{
	size_t n = strlen(argv[1]);

	(void)argc;
	return strncmp(noun, argv[1], n) == 0 &&
	    (noun[n] == '\0' || noun[n] == ' ');
}

/* Parse the options and arguments of command e (argv[first..]) into a
 * and run it; returns the exit status. */
static int
cmd_run(const struct cmd_entry *e, int argc, char **argv, int first,
    struct cmd_args *a)
{
	int i;

	for (i = first; i < argc; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			cmd_help(e, stdout);
			return CLI_OK;
		}
		if (strcmp(arg, "--") == 0) {
			for (i++; i < argc; i++)
				a->argv[a->argc++] = argv[i];
			break;
		}
		if (strncmp(arg, "--", 2) == 0) {
			const char *name = arg + 2, *eq = strchr(name, '=');
			size_t len = eq ? (size_t)(eq - name) : strlen(name);
			int takes;

			if (!option_known(e, name, len, &takes))
				return out_usage(e, "unknown option '--%.*s'",
				    (int)len, name);
			if (a->nopts == CLI_MAXOPTS)
				return out_usage(e, "too many options");
			/* counted at once, so main() frees it on any exit */
			a->opt_names[a->nopts] = xstrndup(name, len);
			a->opt_values[a->nopts++] = "";
			if (takes) {
				if (eq)
					a->opt_values[a->nopts - 1] = eq + 1;
				else if (i + 1 < argc)
					a->opt_values[a->nopts - 1] = argv[++i];
				else
					return out_usage(e, "option '--%.*s' "
					    "needs a value", (int)len, name);
			} else if (eq) {
				return out_usage(e, "option '--%.*s' "
				    "takes no value", (int)len, name);
			}
			continue;
		}
		a->argv[a->argc++] = argv[i];
	}
	if (a->argc < e->min_args ||
	    (e->max_args >= 0 && a->argc > e->max_args))
		return out_usage(e, "wrong number of arguments");
	if (!e->no_auth && (api_url() == NULL || api_key() == NULL))
		return out_fail("not logged in: run 'nubo login URL' or set "
		    "NUBO_URL and NUBO_API_KEY");
	return e->exec(a);
}

int
main(int argc, char **argv)
{
	const struct cmd_entry *e = NULL;
	struct cmd_args a;
	int i, first = 0, rc, noun_known = 0, nw;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	memset(&a, 0, sizeof a);
	/* the one option before the command: how the portal is verified */
	while (argc > 1 && strncmp(argv[1], "--ca", 4) == 0 &&
	    (argv[1][4] == '\0' || argv[1][4] == '=')) {
		int used = argv[1][4] == '=' ? 1 : 2;

		if (used == 2 && argc < 3) {
			fputs("nubo: option '--ca' needs a value\n", stderr);
			return CLI_USAGE;
		}
		api_set_ca(used == 1 ? argv[1] + 5 : argv[2]);
		memmove(argv + 1, argv + 1 + used, (size_t)(argc - used) *
		    sizeof *argv);
		argc -= used;
	}
	if (argc == 2 && strcmp(argv[1], "--man") == 0)
		return cli_man(stdout);
	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		usage_all(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	for (i = 0; i < (int)CMD_COUNT; i++) {
		const struct cmd_entry *c = cmd_table[i];

		if (noun_prefix(c->noun, argc, argv))
			noun_known = 1;
		if ((nw = noun_match(c->noun, argc, argv)) == 0)
			continue;
		if (c->verb == NULL ||
		    (argc > nw + 1 && strcmp(c->verb, argv[nw + 1]) == 0)) {
			e = c;
			first = c->verb ? nw + 2 : nw + 1;
			break;
		}
	}
	if (e == NULL) {
		int last = argc - 1;
		int help = strcmp(argv[last], "--help") == 0 ||
		    strcmp(argv[last], "-h") == 0;

		int whole_noun = argc == 2;

		for (i = 0; i < (int)CMD_COUNT; i++)
			if (noun_match(cmd_table[i]->noun, argc, argv) ==
			    argc - 1)
				whole_noun = 1;
		if (noun_known && (help || whole_noun)) {
			printf("nubo %s commands:\n", argv[1]);
			for (i = 0; i < (int)CMD_COUNT; i++) {
				const struct cmd_entry *c = cmd_table[i];
				char name[64];

				if (!noun_prefix(c->noun, argc, argv))
					continue;
				snprintf(name, sizeof name, "%s%s%s", c->noun,
				    c->verb ? " " : "", c->verb ? c->verb : "");
				printf("  %-24s %s\n", name, c->summary);
			}
			return help ? CLI_OK : CLI_USAGE;
		}
		fprintf(stderr, "nubo: unknown command '%s%s%s'\n", argv[1],
		    argc > 2 && noun_known ? " " : "",
		    argc > 2 && noun_known ? argv[2] : "");
		usage_all(stderr);
		return CLI_USAGE;
	}
	cmd_current = e;
	a.argv = xcalloc((size_t)argc, sizeof *a.argv);
	rc = cmd_run(e, argc, argv, first, &a);
	for (i = 0; i < a.nopts; i++)
		free((char *)a.opt_names[i]);
	free(a.argv);
	curl_global_cleanup();
	return rc;
}
