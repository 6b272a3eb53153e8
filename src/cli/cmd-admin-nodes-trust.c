/* nubo admin nodes trust NODE [--pin PIN] */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_admin_nodes_trust_exec(struct cmd_args *a)
{
	char *node = api_escape(a->argv[0]);
	char *path = xasprintf("/nodes/%s/trust", node);
	json_t *body = json_pack("{s:s?}", "pin", cmd_opt(a, "pin"));
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("POST", path, body, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		if (jsonx_str(resp, "tls_pin"))
			printf("node '%s' is known by its certificate's key %s\n",
			    a->argv[0], jsonx_str(resp, "tls_pin"));
		else
			printf("node '%s' calls without a certificate\n",
			    a->argv[0]);
	}
	rc = CLI_OK;
out:
	json_decref(body);
	json_decref(resp);
	free(path);
	free(node);
	return rc;
}

const struct cmd_entry cmd_admin_nodes_trust_entry = {
	"admin nodes", "trust", "NODE", "json,pin=", 1, 1,
	"accept the new certificate of a node (platform admin)",
	"The portal pins the key of the certificate a node presents when it\n"
	"first registers over HTTPS. A node that presents another one (a new\n"
	"key, or none) is refused, and the activity log says so, until a\n"
	"platform admin accepts it here. 'nubo nodes show NODE' shows the key\n"
	"waiting (tls_pin_pending; the node logs its own at start); --pin PIN\n"
	"accepts only that key.",
	cmd_admin_nodes_trust_exec, 0,
};
