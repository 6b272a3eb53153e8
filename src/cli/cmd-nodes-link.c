/* nubo nodes link NODE APP */
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_nodes_link_exec(struct cmd_args *a)
{
	char *node = api_escape(a->argv[0]);
	char *path = xasprintf("/nodes/%s/link", node);
	json_t *body = json_pack("{s:s}", "app", a->argv[1]), *resp = NULL;
	const char *prev;
	int rc = CLI_FAILED;

	if (api_ok("POST", path, body, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		printf("linked app '%s' to node '%s'\n", jsonx_str(resp, "app"),
		    a->argv[0]);
		if ((prev = jsonx_str(resp, "unlinked_app")) != NULL)
			printf("app '%s' was unlinked automatically and is a "
			    "Free App again\n", prev);
	}
	rc = CLI_OK;
out:
	json_decref(body);
	json_decref(resp);
	free(path);
	free(node);
	return rc;
}

const struct cmd_entry cmd_nodes_link_entry = {
	"nodes", "link", "NODE APP", "json", 2, 2,
	"link an app to a node (it becomes a licensed app)",
	"You must be Technical Contact of the node and of the app. The app\n"
	"must have no sandbox ('nubo apps unlink-sandbox') and no other node.\n"
	"An app already linked to the node is unlinked automatically and\n"
	"becomes a Free App again; the node keeps its environments and data.",
	cmd_nodes_link_exec, 0,
};
