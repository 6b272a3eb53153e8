/* nubo apps rename APP NAME */
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_apps_rename_exec(struct cmd_args *a)
{
	char *app = api_escape(a->argv[0]);
	char *path = xasprintf("/apps/%s", app);
	json_t *body = json_pack("{s:s}", "name", a->argv[1]), *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("PATCH", path, body, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		printf("app '%s' is now called '%s'\n",
		    jsonx_str(resp, "subdomain"), jsonx_str(resp, "name"));
	rc = CLI_OK;
out:
	json_decref(body);
	json_decref(resp);
	free(path);
	free(app);
	return rc;
}

const struct cmd_entry cmd_apps_rename_entry = {
	"apps", "rename", "APP NAME", "json", 2, 2,
	"change an app's display name",
	"The subdomain never changes. Needs the Technical Contact role or the\n"
	"'manage' permission.",
	cmd_apps_rename_exec, 0,
};
