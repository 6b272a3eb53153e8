/* nubo apps show APP */
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_apps_show_exec(struct cmd_args *a)
{
	char *app = api_escape(a->argv[0]);
	char *path = xasprintf("/apps/%s", app);
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		out_fields(resp, "id,subdomain,name,status,node,sandbox,"
		    "temporary,technical_contact,created_at");
		if (json_array_size(json_object_get(resp, "environments"))) {
			printf("\n");
			out_table(json_object_get(resp, "environments"),
			    "name:ENVIRONMENT,state:STATE,node:NODE");
		}
	}
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(app);
	return rc;
}

const struct cmd_entry cmd_apps_show_entry = {
	"apps", "show", "APP", "json", 1, 1,
	"show an app, its status and environments", NULL,
	cmd_apps_show_exec, 0,
};
