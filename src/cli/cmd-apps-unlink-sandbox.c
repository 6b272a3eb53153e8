/* nubo apps unlink-sandbox APP [--yes] */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_apps_unlink_sandbox_exec(struct cmd_args *a)
{
	char *app = NULL, *path = NULL, *warning;
	json_t *body = NULL, *resp = NULL;
	int rc = CLI_FAILED;

	warning = xasprintf("unlinking the sandbox of '%s' deletes its "
	    "sandbox environment and all its data", a->argv[0]);
	if (!out_confirm(a, a->argv[0], warning, &rc))
		goto out;
	app = api_escape(a->argv[0]);
	path = xasprintf("/apps/%s/unlink-sandbox", app);
	body = json_pack("{s:b}", "confirm", 1);
	if (api_ok("POST", path, body, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		printf("app '%s' has no sandbox any more; it can be linked to "
		    "a node\n", a->argv[0]);
	rc = CLI_OK;
out:
	json_decref(body);
	json_decref(resp);
	free(warning);
	free(path);
	free(app);
	return rc;
}

const struct cmd_entry cmd_apps_unlink_sandbox_entry = {
	"apps", "unlink-sandbox", "APP", "yes,json", 1, 1,
	"remove an app's sandbox so it can be linked to a node",
	"The sandbox environment and all its data are deleted on the sandbox\n"
	"node: its instances stop, its database and files are removed and its\n"
	"hostname stops answering. No backup is kept. Refused, with nothing\n"
	"changed, while the sandbox node cannot be reached. Asks for the app's\n"
	"subdomain on a terminal; --yes confirms without asking. Only the\n"
	"Technical Contact may do this.",
	cmd_apps_unlink_sandbox_exec, 0,
};
