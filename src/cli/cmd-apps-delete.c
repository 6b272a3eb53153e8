/* nubo apps delete APP [--yes] */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "xmalloc.h"

/* What deleting the app loses, for the confirmation. On a terminal the
 * app is looked up first, so the question says whether a sandbox (and
 * its data) goes too; NULL when the lookup failed (already reported). */
static char *
delete_warning(struct cmd_args *a, const char *path)
{
	json_t *app = NULL;
	char *w;

	if (cmd_flag(a, "yes") || !isatty(STDIN_FILENO))
		return xasprintf("deleting app '%s' deletes its members and "
		    "its sandbox (if any) with all its data", a->argv[0]);
	if (api_ok("GET", path, NULL, &app) == -1)
		return NULL;
	if (json_is_true(json_object_get(app, "sandbox")))
		w = xasprintf("Deleting app '%s' deletes its sandbox "
		    "environment with all its data (database and files; no "
		    "backup is kept) and its members", a->argv[0]);
	else
		w = xasprintf("Deleting app '%s' deletes it and its members",
		    a->argv[0]);
	json_decref(app);
	return w;
}

static int
cmd_apps_delete_exec(struct cmd_args *a)
{
	char *app = api_escape(a->argv[0]);
	char *path = xasprintf("/apps/%s", app);
	char *warning = NULL;
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if ((warning = delete_warning(a, path)) == NULL ||
	    !out_confirm(a, a->argv[0], warning, &rc))
		goto out;
	if (api_ok("DELETE", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		printf("deleted app '%s'\n", a->argv[0]);
	rc = CLI_OK;
out:
	json_decref(resp);
	free(warning);
	free(path);
	free(app);
	return rc;
}

const struct cmd_entry cmd_apps_delete_entry = {
	"apps", "delete", "APP", "yes,json", 1, 1,
	"delete an app (refused while it is linked to a node)",
	"Only the Technical Contact may delete an app. Its members and its\n"
	"sandbox (if any) go with it: the sandbox's database and files are\n"
	"deleted on the sandbox node (refused, nothing changed, while that node\n"
	"cannot be reached); no backup is kept. Asks for the app's subdomain\n"
	"on a terminal; --yes confirms without asking (and is needed when\n"
	"standard input is not a terminal). A licensed app cannot be deleted:\n"
	"link another app to its node first, or offboard the node.",
	cmd_apps_delete_exec, 0,
};
