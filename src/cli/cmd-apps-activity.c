/* nubo apps activity APP [--limit N] */
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_apps_activity_exec(struct cmd_args *a)
{
	char *app = api_escape(a->argv[0]), *path, *limit = NULL;
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (cmd_opt(a, "limit"))
		limit = api_escape(cmd_opt(a, "limit"));
	path = xasprintf("/apps/%s/activity%s%s", app, limit ? "?limit=" : "",
	    limit ? limit : "");
	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, json_object_get(resp, "activity")) == -1)
		out_table(json_object_get(resp, "activity"), "at:WHEN,"
		    "user:WHO,action:ACTION,detail:WHAT");
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(limit);
	free(app);
	return rc;
}

const struct cmd_entry cmd_apps_activity_entry = {
	"apps", "activity", "APP", "limit=,json", 1, 1,
	"show an app's activity log (newest first)",
	"--limit N shows the N newest entries (default 100).",
	cmd_apps_activity_exec, 0,
};
