/* nubo keys list */
#include "cli.h"

static int
cmd_keys_list_exec(struct cmd_args *a)
{
	json_t *resp = NULL;

	if (api_ok("GET", "/keys", NULL, &resp) == -1)
		return CLI_FAILED;
	if (out_maybe_json(a, json_object_get(resp, "keys")) == -1)
		out_table(json_object_get(resp, "keys"), "id:ID,prefix:PREFIX,"
		    "name:NAME,read_only:READ-ONLY,app_names:APPS,"
		    "expires_at:EXPIRES,revoked_at:REVOKED,created_at:CREATED");
	json_decref(resp);
	return CLI_OK;
}

const struct cmd_entry cmd_keys_list_entry = {
	"keys", "list", NULL, "json", 0, 0,
	"list your API keys (never their secrets)", NULL,
	cmd_keys_list_exec, 0,
};
