/* nubo packages show NODE PACKAGE | --app APP PACKAGE */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "packages-util.h"
#include "xmalloc.h"

static int
cmd_packages_show_exec(struct cmd_args *a)
{
	char *pkg = api_escape(a->argv[a->argc - 1]), *suffix, *path;
	json_t *resp = NULL, *one;
	int rc = CLI_FAILED;

	suffix = xasprintf("/%s", pkg);
	if ((path = packages_util_path(a, 1, suffix, &rc)) == NULL)
		goto out;
	rc = CLI_FAILED;
	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		one = json_pack("[O]", resp);
		packages_util_fix_rows(one);
		json_decref(one);
		out_fields(resp, "id,name,version,size,sha256,file_name,"
		    "uploaded_by,uploaded_at,deployed_to");
		if (json_is_object(json_object_get(resp, "manifest"))) {
			char *m = json_dumps(json_object_get(resp, "manifest"),
			    JSON_COMPACT);

			printf("manifest: %s\n", m);
			free(m);
		}
	}
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(suffix);
	free(pkg);
	return rc;
}

const struct cmd_entry cmd_packages_show_entry = {
	"packages", "show", "[NODE] PACKAGE", "json,app=", 1, 2,
	"show a package: version, size, sha256, uploader, environments",
	"With --app APP instead of NODE: a package of the app's repository.",
	cmd_packages_show_exec, 0,
};
