/* nubo nodes offboard NODE [--force] [--reason TEXT] */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_nodes_offboard_exec(struct cmd_args *a)
{
	char *node = api_escape(a->argv[0]);
	char *path = xasprintf("/nodes/%s/offboarding-requests", node);
	json_t *body = json_pack("{s:b}", "force", cmd_flag(a, "force"));
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (cmd_opt(a, "reason"))
		json_object_set_new(body, "reason",
		    json_string(cmd_opt(a, "reason")));
	if (api_ok("POST", path, body, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		printf("offboarding request %lld filed for node '%s'; a "
		    "platform admin approves it with 'nubo admin offboarding "
		    "approve %lld'\n", jsonx_int(resp, "id", 0), a->argv[0],
		    jsonx_int(resp, "id", 0));
	rc = CLI_OK;
out:
	json_decref(body);
	json_decref(resp);
	free(path);
	free(node);
	return rc;
}

const struct cmd_entry cmd_nodes_offboard_entry = {
	"nodes", "offboard", "NODE", "force,reason=,json", 1, 1,
	"request the offboarding of a node (seed §3.3)",
	"Refused unless the latest backup (full archive) and the deployed\n"
	"package of every environment were downloaded completely (the node saw\n"
	"the last byte go; a download URL alone does not count) or kept by\n"
	"nubo (a migration copied them);\n"
	"--force files the request anyway. On approval the node's environments\n"
	"stop, its app is detached and stays a Free App; the node's data is\n"
	"kept for the configured number of days, then deleted on the node.",
	cmd_nodes_offboard_exec, 0,
};
