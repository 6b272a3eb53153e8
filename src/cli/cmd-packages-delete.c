/* nubo packages delete NODE PACKAGE */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_packages_delete_exec(struct cmd_args *a)
{
	char *node = api_escape(a->argv[0]), *pkg = api_escape(a->argv[1]);
	char *path = xasprintf("/nodes/%s/packages/%s", node, pkg);
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("DELETE", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		printf("deleted package %s from node %s\n", a->argv[1],
		    a->argv[0]);
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(node);
	free(pkg);
	return rc;
}

const struct cmd_entry cmd_packages_delete_entry = {
	"packages", "delete", "NODE PACKAGE", "json", 2, 2,
	"delete a package (refused while an environment has it deployed)",
	NULL, cmd_packages_delete_exec, 0,
};
