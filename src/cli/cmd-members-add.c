/* nubo members add APP EMAIL */
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_members_add_exec(struct cmd_args *a)
{
	char *app = api_escape(a->argv[0]);
	char *path = xasprintf("/apps/%s/members", app);
	json_t *body = json_pack("{s:s}", "email", a->argv[1]), *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("POST", path, body, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		printf("added %s to app '%s' (no permissions yet: see 'nubo "
		    "members grant')\n", jsonx_str(resp, "email"), a->argv[0]);
	rc = CLI_OK;
out:
	json_decref(body);
	json_decref(resp);
	free(path);
	free(app);
	return rc;
}

const struct cmd_entry cmd_members_add_entry = {
	"members", "add", "APP EMAIL", "json", 2, 2,
	"add a user to an app's members",
	"The user must exist. Needs the 'manage' permission.",
	cmd_members_add_exec, 0,
};
