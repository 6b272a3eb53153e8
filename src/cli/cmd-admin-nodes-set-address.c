/* nubo admin nodes set-address NODE ADDRESS */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_admin_nodes_set_address_exec(struct cmd_args *a)
{
	char *node = api_escape(a->argv[0]);
	char *path = xasprintf("/nodes/%s/address", node);
	json_t *body = json_pack("{s:s}", "address", a->argv[1]), *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("PUT", path, body, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		if (*a->argv[1])
			printf("the agent of node '%s' may register at %s\n",
			    a->argv[0], a->argv[1]);
		else
			printf("the agent of node '%s' registers at the "
			    "address it calls from\n", a->argv[0]);
	}
	rc = CLI_OK;
out:
	json_decref(body);
	json_decref(resp);
	free(path);
	free(node);
	return rc;
}

const struct cmd_entry cmd_admin_nodes_set_address_entry = {
	"admin nodes", "set-address", "NODE ADDRESS", "json", 2, 2,
	"set the address a node's agent URL may name (platform admin)",
	"A node registers the URL of its agent; the portal accepts it when the\n"
	"URL's host is the address the registration comes from, or ADDRESS\n"
	"(an IP address or host name, for a node behind NAT or a proxy).\n"
	"ADDRESS \"\" clears it.",
	cmd_admin_nodes_set_address_exec, 0,
};
