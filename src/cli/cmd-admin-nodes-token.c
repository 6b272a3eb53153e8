/* nubo admin nodes token NODE */
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_admin_nodes_token_exec(struct cmd_args *a)
{
	char *node = api_escape(a->argv[0]);
	char *path = xasprintf("/nodes/%s/token", node);
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("POST", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		printf("new token of node '%s' (shown once; the old one no "
		    "longer works): %s\n", a->argv[0], jsonx_str(resp, "token"));
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(node);
	return rc;
}

const struct cmd_entry cmd_admin_nodes_token_entry = {
	"admin nodes", "token", "NODE", "json", 1, 1,
	"rotate a node's agent token (platform admin)", NULL,
	cmd_admin_nodes_token_exec, 0,
};
