/* nubo packages delete NODE PACKAGE | --app APP PACKAGE */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "packages-util.h"
#include "xmalloc.h"

static int
cmd_packages_delete_exec(struct cmd_args *a)
{
	const char *app = cmd_opt(a, "app");
	char *pkg = api_escape(a->argv[a->argc - 1]), *suffix, *path;
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	suffix = xasprintf("/%s", pkg);
	if ((path = packages_util_path(a, 1, suffix, &rc)) == NULL)
		goto out;
	rc = CLI_FAILED;
	if (api_ok("DELETE", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		printf("deleted package %s from %s %s\n", a->argv[a->argc - 1],
		    app ? "the repository of app" : "node", app ? app :
		    a->argv[0]);
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(suffix);
	free(pkg);
	return rc;
}

const struct cmd_entry cmd_packages_delete_entry = {
	"packages", "delete", "[NODE] PACKAGE", "json,app=", 1, 2,
	"delete a package (refused while an environment has it deployed)",
	"With --app APP instead of NODE: a package of the app's repository\n"
	"(needs the transport permission).",
	cmd_packages_delete_exec, 0,
};
