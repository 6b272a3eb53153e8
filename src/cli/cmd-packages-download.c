/* nubo packages download NODE PACKAGE [--output FILE] */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "transfer.h"
#include "xmalloc.h"

static int
cmd_packages_download_exec(struct cmd_args *a)
{
	char *node = api_escape(a->argv[0]), *pkg = api_escape(a->argv[1]);
	char *path = xasprintf("/nodes/%s/packages/%s/download", node, pkg);
	char *what = NULL;
	const char *dest = cmd_opt(a, "output");
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	if (dest == NULL)
		dest = jsonx_str(resp, "file_name");
	if (dest == NULL || *dest == '\0') {
		out_fail("no file name: give --output FILE");
		goto out;
	}
	what = xasprintf("downloading %s", a->argv[1]);
	rc = transfer_download(jsonx_str(resp, "url"), dest,
	    jsonx_int(resp, "size", -1), jsonx_str(resp, "sha256"), what);
	if (rc == CLI_OK) {
		json_object_set_new(resp, "file", json_string(dest));
		json_object_del(resp, "url");
		if (out_maybe_json(a, resp) == -1)
			printf("downloaded %s to %s (%lld bytes, sha256 %s)\n",
			    a->argv[1], dest, jsonx_int(resp, "size", 0),
			    jsonx_str(resp, "sha256"));
	}
out:
	json_decref(resp);
	free(path);
	free(what);
	free(node);
	free(pkg);
	return rc;
}

const struct cmd_entry cmd_packages_download_entry = {
	"packages", "download", "NODE PACKAGE", "json,output=", 2, 2,
	"download a package from a node's repository (checked by sha256)",
	"Writes FILE (default: the package's file name) through FILE.part;\n"
	"an interrupted download resumes where it stopped when run again.",
	cmd_packages_download_exec, 0,
};
