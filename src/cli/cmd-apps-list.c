/* nubo apps list */
#include "cli.h"

static int
cmd_apps_list_exec(struct cmd_args *a)
{
	json_t *resp = NULL;

	if (api_ok("GET", "/apps", NULL, &resp) == -1)
		return CLI_FAILED;
	if (out_maybe_json(a, json_object_get(resp, "apps")) == -1)
		out_table(json_object_get(resp, "apps"), "subdomain:SUBDOMAIN,"
		    "name:NAME,status:STATUS,node:NODE,sandbox:SANDBOX,"
		    "technical_contact:TECHNICAL CONTACT");
	json_decref(resp);
	return CLI_OK;
}

const struct cmd_entry cmd_apps_list_entry = {
	"apps", "list", NULL, "json", 0, 0,
	"list the apps you are a member of", NULL, cmd_apps_list_exec, 0,
};
