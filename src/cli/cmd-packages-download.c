/* nubo packages download NODE PACKAGE | --app APP PACKAGE [--output FILE] */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "packages-util.h"
#include "transfer.h"
#include "xmalloc.h"

static int
cmd_packages_download_exec(struct cmd_args *a)
{
	const char *id = a->argv[a->argc - 1];
	char *pkg = api_escape(id), *suffix, *path, *what = NULL;
	const char *dest = cmd_opt(a, "output");
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	suffix = xasprintf("/%s/download", pkg);
	if ((path = packages_util_path(a, 1, suffix, &rc)) == NULL)
		goto out;
	rc = CLI_FAILED;
	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	if (dest == NULL)
		dest = jsonx_str(resp, "file_name");
	if (dest == NULL || *dest == '\0') {
		out_fail("no file name: give --output FILE");
		goto out;
	}
	what = xasprintf("downloading %s", id);
	rc = transfer_download(jsonx_str(resp, "url"), dest,
	    jsonx_int(resp, "size", -1), jsonx_str(resp, "sha256"), what);
	if (rc == CLI_OK) {
		json_object_set_new(resp, "file", json_string(dest));
		json_object_del(resp, "url");
		if (out_maybe_json(a, resp) == -1)
			printf("downloaded %s to %s (%lld bytes, sha256 %s)\n",
			    id, dest, jsonx_int(resp, "size", 0),
			    jsonx_str(resp, "sha256"));
	}
out:
	json_decref(resp);
	free(path);
	free(suffix);
	free(what);
	free(pkg);
	return rc;
}

const struct cmd_entry cmd_packages_download_entry = {
	"packages", "download", "[NODE] PACKAGE", "json,output=,app=", 1, 2,
	"download a package from a node's repository (checked by sha256)",
	"Writes FILE (default: the package's file name) through FILE.part;\n"
	"an interrupted download resumes where it stopped when run again.\n"
	"With --app APP instead of NODE: a package of the app's repository.\n"
	"Needs the transport permission (or the node's Technical Contact).",
	cmd_packages_download_exec, 0,
};
