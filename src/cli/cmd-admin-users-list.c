/* nubo admin users list */
#include "cli.h"

static int
cmd_admin_users_list_exec(struct cmd_args *a)
{
	json_t *resp = NULL;

	if (api_ok("GET", "/users", NULL, &resp) == -1)
		return CLI_FAILED;
	if (out_maybe_json(a, json_object_get(resp, "users")) == -1)
		out_table(json_object_get(resp, "users"), "id:ID,email:EMAIL,"
		    "name:NAME,is_admin:ADMIN,created_at:CREATED");
	json_decref(resp);
	return CLI_OK;
}

const struct cmd_entry cmd_admin_users_list_entry = {
	"admin users", "list", NULL, "json", 0, 0,
	"list users (platform admins only)", NULL,
	cmd_admin_users_list_exec, 0,
};
