/* nubo apps delete APP */
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_apps_delete_exec(struct cmd_args *a)
{
	char *app = api_escape(a->argv[0]);
	char *path = xasprintf("/apps/%s", app);
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("DELETE", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		printf("deleted app '%s'\n", a->argv[0]);
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(app);
	return rc;
}

const struct cmd_entry cmd_apps_delete_entry = {
	"apps", "delete", "APP", "json", 1, 1,
	"delete an app (refused while it is linked to a node)",
	"Only the Technical Contact may delete an app. Its members and its\n"
	"sandbox (if any) go with it: the sandbox's database and files are\n"
	"deleted on the sandbox node (refused, nothing changed, while that node\n"
	"cannot be reached). A licensed app cannot be deleted: link another\n"
	"app to its node first, or offboard the node.",
	cmd_apps_delete_exec, 0,
};
