/* nubo admin nodes backup-target NODE TARGET-NODE | NODE --none */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_admin_nodes_backup_target_exec(struct cmd_args *a)
{
	int none = cmd_flag(a, "none");
	char *node, *path;
	json_t *body, *resp = NULL;
	int rc = CLI_FAILED;

	if (none == (a->argc == 2))
		return out_usage(cmd_current, "name TARGET-NODE, or --none to "
		    "stop the copies");
	node = api_escape(a->argv[0]);
	path = xasprintf("/nodes/%s/backup-target", node);
	body = json_pack("{s:s}", "target", none ? "" : a->argv[1]);
	if (api_ok("PUT", path, body, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		if (none)
			printf("the snapshots of node '%s' are no longer copied "
			    "to another node\n", a->argv[0]);
		else
			printf("every snapshot completed on node '%s' is copied "
			    "to node '%s'\n", a->argv[0], a->argv[1]);
	}
	rc = CLI_OK;
out:
	json_decref(body);
	json_decref(resp);
	free(path);
	free(node);
	return rc;
}

const struct cmd_entry cmd_admin_nodes_backup_target_entry = {
	"admin nodes", "backup-target", "NODE [TARGET-NODE]", "json,none", 1, 2,
	"copy a node's snapshots to another node (platform admin)",
	"Every snapshot completed on NODE from now on is copied to TARGET-NODE,\n"
	"another nubo node: only the parts of it the target does not hold yet\n"
	"travel. When NODE is gone, its apps' snapshots are listed, downloaded\n"
	"and restored from the copies. --none stops the copies (those made\n"
	"stay, and go with their snapshots).",
	cmd_admin_nodes_backup_target_exec, 0,
};
