/* nubo envs list APP */
#include <stdlib.h>

#include "envs-util.h"
#include "xmalloc.h"

static int
cmd_envs_list_exec(struct cmd_args *a)
{
	char *app = api_escape(a->argv[0]);
	char *path = xasprintf("/apps/%s/environments", app);
	json_t *resp = NULL, *list;
	int rc = CLI_FAILED;

	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	list = json_object_get(resp, "environments");
	if (out_maybe_json(a, list) == -1)
		out_table(list, "name:ENVIRONMENT,state:STATE,node:NODE,"
		    "package:PACKAGE,instances:INSTANCES,url:URL");
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(app);
	return rc;
}

const struct cmd_entry cmd_envs_list_entry = {
	"envs", "list", "APP", "json", 1, 1,
	"list an app's environments, their state, package and URL", NULL,
	cmd_envs_list_exec, 0,
};
