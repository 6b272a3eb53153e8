/* nubo apps transfer APP EMAIL */
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_apps_transfer_exec(struct cmd_args *a)
{
	char *app = api_escape(a->argv[0]);
	char *path = xasprintf("/apps/%s/technical-contact", app);
	json_t *body = json_pack("{s:s}", "email", a->argv[1]), *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("POST", path, body, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		printf("%s is now the Technical Contact of app '%s'\n",
		    jsonx_str(resp, "technical_contact"),
		    jsonx_str(resp, "subdomain"));
	rc = CLI_OK;
out:
	json_decref(body);
	json_decref(resp);
	free(path);
	free(app);
	return rc;
}

const struct cmd_entry cmd_apps_transfer_entry = {
	"apps", "transfer", "APP EMAIL", "json", 2, 2,
	"hand the Technical Contact role of an app to another user",
	"An app has exactly one Technical Contact. The new one becomes a\n"
	"member if not one yet; you stay a member with every permission.",
	cmd_apps_transfer_exec, 0,
};
