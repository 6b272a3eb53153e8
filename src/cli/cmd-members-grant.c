/* nubo members grant APP EMAIL [--transport ENVS] [--backups ENVS]
 *     [--settings ENVS] [--logs ENVS] [--manage ENVS] */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "xmalloc.h"

static const char *const perms[] = {
	"transport", "backups", "settings", "logs", "manage",
};
#define NPERMS (sizeof perms / sizeof perms[0])

/* "all" / "*" → ["*"], "none" → [], "Test,Acceptance" → [...]. */
static json_t *
envs_list(const char *spec)
{
	json_t *out = json_array();
	char *copy, *tok, *save = NULL;

	if (strcmp(spec, "all") == 0 || strcmp(spec, "*") == 0) {
		json_array_append_new(out, json_string("*"));
		return out;
	}
	if (strcmp(spec, "none") == 0)
		return out;
	copy = xstrdup(spec);
	for (tok = strtok_r(copy, ",", &save); tok;
	    tok = strtok_r(NULL, ",", &save))
		json_array_append_new(out, json_string(tok));
	free(copy);
	return out;
}

/* The member whose email or user id is who, from GET …/members. */
static json_t *
find_member(json_t *members, const char *who)
{
	json_t *m;
	size_t i;

	json_array_foreach(members, i, m) {
		char id[32];

		snprintf(id, sizeof id, "%lld", jsonx_int(m, "user_id", 0));
		if (strcasecmp(jsonx_str(m, "email"), who) == 0 ||
		    strcmp(id, who) == 0)
			return m;
	}
	return NULL;
}

static int
cmd_members_grant_exec(struct cmd_args *a)
{
	char *app = api_escape(a->argv[0]), *user = api_escape(a->argv[1]);
	char *list_path = xasprintf("/apps/%s/members", app);
	char *path = xasprintf("/apps/%s/members/%s/permissions", app, user);
	json_t *resp = NULL, *m, *p = NULL, *body = NULL, *out = NULL;
	int rc = CLI_FAILED, given = 0;
	size_t i;

	for (i = 0; i < NPERMS; i++)
		given += cmd_opt(a, perms[i]) != NULL;
	if (given == 0) {
		rc = out_usage(cmd_current, "name at least one permission "
		    "(--transport, --backups, --settings, --logs, --manage)");
		goto out;
	}
	/* Start from the member's current permissions: the API replaces
	 * them all, this command changes only the ones named. */
	if (api_ok("GET", list_path, NULL, &resp) == -1)
		goto out;
	m = find_member(json_object_get(resp, "members"), a->argv[1]);
	if (m == NULL) {
		rc = out_fail("'%s' is not a member of app '%s'", a->argv[1],
		    a->argv[0]);
		goto out;
	}
	p = json_deep_copy(json_object_get(m, "permissions"));
	if (p == NULL)
		p = json_object();
	for (i = 0; i < NPERMS; i++)
		if (cmd_opt(a, perms[i]))
			json_object_set_new(p, perms[i],
			    envs_list(cmd_opt(a, perms[i])));
	body = json_pack("{s:O}", "permissions", p);
	if (api_ok("PUT", path, body, &out) == -1)
		goto out;
	if (out_maybe_json(a, out) == -1) {
		const char *k;
		json_t *v;

		printf("permissions of %s on app '%s':\n",
		    jsonx_str(out, "email"), a->argv[0]);
		json_object_foreach(json_object_get(out, "permissions"), k, v) {
			char *t = json_dumps(v, JSON_COMPACT);

			printf("  %-10s %s\n", k, t);
			free(t);
		}
	}
	rc = CLI_OK;
out:
	json_decref(resp);
	json_decref(p);
	json_decref(body);
	json_decref(out);
	free(list_path);
	free(path);
	free(user);
	free(app);
	return rc;
}

const struct cmd_entry cmd_members_grant_entry = {
	"members", "grant", "APP EMAIL",
	"transport=,backups=,settings=,logs=,manage=,json", 2, 2,
	"set a member's permissions",
	"Each option sets one permission: 'all' (every environment), 'none',\n"
	"or environment names separated by commas, e.g.\n"
	"  nubo members grant shop ann@example.com --transport Test,Acceptance "
	"--logs all\n"
	"Permissions not named stay as they are. Needs the 'manage'\n"
	"permission; you cannot change your own, and you grant or take away\n"
	"only a permission you hold yourself on that environment together\n"
	"with 'manage' there ('manage' on all environments: the Technical\n"
	"Contact only).",
	cmd_members_grant_exec, 0,
};
