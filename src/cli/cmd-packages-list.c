/* nubo packages list NODE | --app APP */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "packages-util.h"
#include "xmalloc.h"

static int
cmd_packages_list_exec(struct cmd_args *a)
{
	json_t *resp = NULL, *rows, *quota;
	char *path;
	int rc = CLI_FAILED;

	if ((path = packages_util_path(a, 0, "", &rc)) == NULL)
		return rc;
	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		rows = json_object_get(resp, "packages");
		if (!json_is_true(json_object_get(resp, "node_reachable")))
			fprintf(stderr, "nubo: node %s is not answering (%s); "
			    "showing the portal's records\n",
			    jsonx_str(resp, "node"),
			    jsonx_str(resp, "node_error") ?
			    jsonx_str(resp, "node_error") : "unknown error");
		packages_util_fix_rows(rows);
		out_table(rows, "id:PACKAGE,version:VERSION,size:SIZE,"
		    "uploaded_at:UPLOADED,uploaded_by:BY,deployed_to:DEPLOYED TO");
		quota = json_object_get(resp, "quota");
		if (json_is_object(quota))
			printf("quota: %lld of %lld bytes used\n",
			    jsonx_int(quota, "used", 0),
			    jsonx_int(quota, "limit", 0));
	}
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	return rc;
}

const struct cmd_entry cmd_packages_list_entry = {
	"packages", "list", "[NODE]", "json,app=", 0, 1,
	"list the packages in a node's repository (or the app's)",
	"With --app APP: the app's repository — its linked node's, or on the\n"
	"sandbox node the app's own, which no other app sees (needs the\n"
	"transport permission). The last line is the repository's quota.",
	cmd_packages_list_exec, 0,
};
