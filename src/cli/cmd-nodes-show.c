/* nubo nodes show NODE */
#include <stdlib.h>

#include "cli.h"
#include "jsonx.h"
#include "xmalloc.h"

/* "disk  1234 MB free of 9000 MB", with a warning when it runs low. */
static void
nodes_show_disk(json_t *d)
{
	if (!json_is_object(d))
		return;
	printf("%-20s %lld MB free of %lld MB\n", "disk",
	    (long long)(jsonx_int(d, "free_bytes", 0) >> 20),
	    (long long)(jsonx_int(d, "total_bytes", 0) >> 20));
	if (jsonx_bool(d, "low", 0))
		printf("%-20s the disk is nearly full: snapshots, restores and "
		    "migration imports that would leave less than %lld MB "
		    "free are refused\n", "warning",
		    (long long)(jsonx_int(d, "reserve_bytes", 0) >> 20));
}

/* Copies of deleted environments' snapshots the node has yet to delete
 * (the portal tries again until it does). */
static void
nodes_show_copy_deletions(json_t *d)
{
	if (!json_is_object(d))
		return;
	printf("%-20s %lld cop%s of deleted environments' snapshots, tried "
	    "again until the node deletes them%s%s\n", "copies to delete",
	    (long long)jsonx_int(d, "pending", 0), jsonx_int(d, "pending",
	    0) == 1 ? "y" : "ies", jsonx_str(d, "error") ? "; last: " : "",
	    jsonx_str(d, "error") ? jsonx_str(d, "error") : "");
}

static int
cmd_nodes_show_exec(struct cmd_args *a)
{
	char *node = api_escape(a->argv[0]);
	char *path = xasprintf("/nodes/%s", node);
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		out_fields(resp, "name,generation,status,online,app,"
		    "technical_contact,sandbox,agent_url,router,router_tls,"
		    "tls_pin,tls_pin_pending,egress,backup_target,"
		    "last_seen_at,created_at");
		nodes_show_disk(json_object_get(resp, "disk"));
		nodes_show_copy_deletions(json_object_get(resp,
		    "copy_deletions"));
		if (json_array_size(json_object_get(resp, "environments"))) {
			printf("\n");
			out_table(json_object_get(resp, "environments"),
			    "name:ENVIRONMENT,state:STATE,app:SANDBOX OF");
		}
	}
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(node);
	return rc;
}

const struct cmd_entry cmd_nodes_show_entry = {
	"nodes", "show", "NODE", "json", 1, 1,
	"show a node: status, generation, Technical Contact, app, environments",
	NULL, cmd_nodes_show_exec, 0,
};
