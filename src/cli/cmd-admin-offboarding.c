/* nubo admin offboarding list | approve ID */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_admin_offboarding_list_exec(struct cmd_args *a)
{
	json_t *resp = NULL;

	if (api_ok("GET", "/offboarding-requests", NULL, &resp) == -1)
		return CLI_FAILED;
	if (out_maybe_json(a, resp) == -1)
		out_table(json_object_get(resp, "offboarding_requests"),
		    "id:ID,node:NODE,app:APP,state:STATE,forced:FORCED,"
		    "requested_by:BY,requested_at:AT,keep_until:DATA KEPT UNTIL,"
		    "reason:REASON");
	json_decref(resp);
	return CLI_OK;
}

static int
cmd_admin_offboarding_approve_exec(struct cmd_args *a)
{
	char *id = api_escape(a->argv[0]);
	char *path = xasprintf("/offboarding-requests/%s/approve", id);
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("POST", path, json_object(), &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		printf("node '%s' is offboarded; its data is kept until %s\n",
		    jsonx_str(resp, "node"), jsonx_str(resp, "keep_until"));
		if (jsonx_str(resp, "app"))
			printf("app '%s' is detached and stays a Free App\n",
			    jsonx_str(resp, "app"));
		if (json_array_size(json_object_get(resp, "migrations")))
			printf("the migration goes on with the final link "
			    "(nubo migrate status %s --follow)\n",
			    jsonx_str(resp, "app"));
	}
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(id);
	return rc;
}

const struct cmd_entry cmd_admin_offboarding_list_entry = {
	"admin offboarding", "list", NULL, "json", 0, 0,
	"list offboarding requests", NULL,
	cmd_admin_offboarding_list_exec, 0,
};

const struct cmd_entry cmd_admin_offboarding_approve_entry = {
	"admin offboarding", "approve", "ID", "json", 1, 1,
	"approve an offboarding request (platform admins only)",
	"The node's environments stop, its app is detached and stays a Free\n"
	"App, the node becomes offboarded and its data is kept for the\n"
	"configured number of days. A migration waiting for it links the app\n"
	"to its new node.",
	cmd_admin_offboarding_approve_exec, 0,
};
