/* nubo members list APP */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "xmalloc.h"

static const char *const perms[] = {
	"transport", "backups", "settings", "logs", "manage",
};

/* ["*"] → "all", ["Test","Acceptance"] → "Test,Acceptance", [] → "-". */
static char *
envs_text(json_t *list)
{
	char *out = NULL, *next;
	json_t *v;
	size_t i;

	json_array_foreach(list, i, v) {
		const char *e = json_string_value(v);

		if (e && strcmp(e, "*") == 0)
			e = "all";
		next = xasprintf("%s%s%s", out ? out : "", out ? "," : "",
		    e ? e : "?");
		free(out);
		out = next;
	}
	return out ? out : xstrdup("-");
}

static int
cmd_members_list_exec(struct cmd_args *a)
{
	char *app = api_escape(a->argv[0]);
	char *path = xasprintf("/apps/%s/members", app);
	json_t *resp = NULL, *members, *m;
	int rc = CLI_FAILED;
	size_t i, j;

	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	members = json_object_get(resp, "members");
	if (out_maybe_json(a, members) == -1) {
		json_array_foreach(members, i, m) {
			json_t *p = json_object_get(m, "permissions");

			for (j = 0; j < sizeof perms / sizeof perms[0]; j++) {
				char *t = envs_text(json_object_get(p, perms[j]));

				json_object_set_new(m, perms[j], json_string(t));
				free(t);
			}
		}
		out_table(members, "email:EMAIL,technical_contact:TECHNICAL "
		    "CONTACT,transport:TRANSPORT,backups:BACKUPS,"
		    "settings:SETTINGS,logs:LOGS,manage:MANAGE");
	}
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(app);
	return rc;
}

const struct cmd_entry cmd_members_list_entry = {
	"members", "list", "APP", "json", 1, 1,
	"list an app's members and their permissions", NULL,
	cmd_members_list_exec, 0,
};
