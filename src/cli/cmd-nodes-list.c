/* nubo nodes list */
#include "cli.h"

static int
cmd_nodes_list_exec(struct cmd_args *a)
{
	json_t *resp = NULL;

	if (api_ok("GET", "/nodes", NULL, &resp) == -1)
		return CLI_FAILED;
	if (out_maybe_json(a, json_object_get(resp, "nodes")) == -1)
		out_table(json_object_get(resp, "nodes"), "name:NAME,"
		    "generation:GENERATION,status:STATUS,app:APP,"
		    "technical_contact:TECHNICAL CONTACT,sandbox:SANDBOX,online:ONLINE");
	json_decref(resp);
	return CLI_OK;
}

const struct cmd_entry cmd_nodes_list_entry = {
	"nodes", "list", NULL, "json", 0, 0,
	"list the nodes you can see",
	"Platform admins see every node; others the nodes they are Technical\n"
	"Contact of or whose linked app they are a member of.",
	cmd_nodes_list_exec, 0,
};
