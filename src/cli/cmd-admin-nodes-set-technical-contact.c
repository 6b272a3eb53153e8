/* nubo admin nodes set-technical-contact NODE EMAIL */
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_admin_nodes_set_technical_contact_exec(struct cmd_args *a)
{
	char *node = api_escape(a->argv[0]);
	char *path = xasprintf("/nodes/%s/technical-contact", node);
	json_t *body = json_pack("{s:s}", "email", a->argv[1]), *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("PUT", path, body, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		printf("%s is now the Technical Contact of node '%s'\n",
		    jsonx_str(resp, "technical_contact"), a->argv[0]);
	rc = CLI_OK;
out:
	json_decref(body);
	json_decref(resp);
	free(path);
	free(node);
	return rc;
}

const struct cmd_entry cmd_admin_nodes_set_technical_contact_entry = {
	"admin nodes", "set-technical-contact", "NODE EMAIL", "json", 2, 2,
	"set a node's Technical Contact (platform admin)", NULL,
	cmd_admin_nodes_set_technical_contact_exec, 0,
};
