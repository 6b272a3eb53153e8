/* nubo packages show NODE PACKAGE */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

void packages_fix_rows(json_t *rows);

static int
cmd_packages_show_exec(struct cmd_args *a)
{
	char *node = api_escape(a->argv[0]), *pkg = api_escape(a->argv[1]);
	char *path = xasprintf("/nodes/%s/packages/%s", node, pkg);
	json_t *resp = NULL, *one;
	int rc = CLI_FAILED;

	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		one = json_pack("[O]", resp);
		packages_fix_rows(one);
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
	free(node);
	free(pkg);
	return rc;
}

const struct cmd_entry cmd_packages_show_entry = {
	"packages", "show", "NODE PACKAGE", "json", 2, 2,
	"show a package: version, size, sha256, uploader, environments",
	NULL, cmd_packages_show_exec, 0,
};
