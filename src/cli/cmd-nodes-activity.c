/* nubo nodes activity NODE [--limit N] */
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_nodes_activity_exec(struct cmd_args *a)
{
	char *node = api_escape(a->argv[0]), *path, *limit = NULL;
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (cmd_opt(a, "limit"))
		limit = api_escape(cmd_opt(a, "limit"));
	path = xasprintf("/nodes/%s/activity%s%s", node, limit ? "?limit=" :
	    "", limit ? limit : "");
	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, json_object_get(resp, "activity")) == -1)
		out_table(json_object_get(resp, "activity"), "at:WHEN,"
		    "user:WHO,app:APP,action:ACTION,detail:WHAT");
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(limit);
	free(node);
	return rc;
}

const struct cmd_entry cmd_nodes_activity_entry = {
	"nodes", "activity", "NODE", "limit=,json", 1, 1,
	"show a node's activity log (newest first)",
	"--limit N shows the N newest entries (default 100).",
	cmd_nodes_activity_exec, 0,
};
