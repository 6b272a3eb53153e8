/* nubo whoami */
#include "cli.h"

static int
cmd_whoami_exec(struct cmd_args *a)
{
	json_t *resp = NULL;

	if (api_ok("GET", "/me", NULL, &resp) == -1)
		return CLI_FAILED;
	json_object_set_new(resp, "portal", json_string(api_url()));
	if (out_maybe_json(a, resp) == -1)
		out_fields(resp, "email,name,is_admin,key_read_only,"
		    "key_apps,key_expires_at,portal");
	json_decref(resp);
	return CLI_OK;
}

const struct cmd_entry cmd_whoami_entry = {
	"whoami", NULL, NULL, "json", 0, 0,
	"show who you are logged in as, and where", NULL,
	cmd_whoami_exec, 0,
};
