/* nubo packages list NODE | --app APP */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

/* Environments as "Acceptance (running), Test (stopped)". */
void packages_fix_rows(json_t *rows);

void
packages_fix_rows(json_t *rows)
{
	json_t *row, *e;
	size_t i, j;

	json_array_foreach(rows, i, row) {
		char *s = xstrdup(""), *t;

		json_array_foreach(json_object_get(row, "environments"), j, e) {
			t = xasprintf("%s%s%s (%s)", s, *s ? ", " : "",
			    jsonx_str(e, "name"), jsonx_str(e, "state"));
			free(s);
			s = t;
		}
		json_object_set_new(row, "deployed_to", json_string(s));
		free(s);
	}
}

static int
cmd_packages_list_exec(struct cmd_args *a)
{
	const char *app = cmd_opt(a, "app");
	json_t *resp = NULL, *rows;
	char *esc, *path;
	int rc = CLI_FAILED;

	if ((app != NULL) == (a->argc == 1))
		return out_usage(cmd_current, "give NODE or --app APP");
	esc = api_escape(app ? app : a->argv[0]);
	path = xasprintf(app ? "/apps/%s/packages" : "/nodes/%s/packages", esc);
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
		packages_fix_rows(rows);
		out_table(rows, "id:PACKAGE,version:VERSION,size:SIZE,"
		    "uploaded_at:UPLOADED,uploaded_by:BY,deployed_to:DEPLOYED TO");
	}
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(esc);
	return rc;
}

const struct cmd_entry cmd_packages_list_entry = {
	"packages", "list", "[NODE]", "json,app=", 0, 1,
	"list the packages in a node's repository (or the app's node's)",
	NULL, cmd_packages_list_exec, 0,
};
