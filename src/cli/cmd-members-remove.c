/* nubo members remove APP EMAIL */
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_members_remove_exec(struct cmd_args *a)
{
	char *app = api_escape(a->argv[0]), *user = api_escape(a->argv[1]);
	char *path = xasprintf("/apps/%s/members/%s", app, user);
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("DELETE", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		printf("removed %s from app '%s'\n", a->argv[1], a->argv[0]);
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(user);
	free(app);
	return rc;
}

const struct cmd_entry cmd_members_remove_entry = {
	"members", "remove", "APP EMAIL", "json", 2, 2,
	"remove a member from an app",
	"The Technical Contact cannot be removed; transfer the role first\n"
	"('nubo apps transfer'). Needs the 'manage' permission.",
	cmd_members_remove_exec, 0,
};
