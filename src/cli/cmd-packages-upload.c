/* nubo packages upload NODE FILE | --app APP FILE */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "package.h"
#include "packages-util.h"
#include "tls.h"
#include "transfer.h"
#include "xmalloc.h"

static int
cmd_packages_upload_exec(struct cmd_args *a)
{
	const char *app = cmd_opt(a, "app"), *file, *msg;
	char *path = NULL, *url = NULL, *esc = NULL, *copy, *what = NULL;
	char *fname = NULL, *why = NULL;
	long long rev;
	char *show = NULL, *suffix = NULL, *pkg = NULL, sha[65] = "";
	json_t *ticket = NULL, *resp = NULL, *rec = NULL, *body = NULL;
	struct stat st;
	int rc = CLI_FAILED, status;

	if (package_label_check(cmd_opt(a, "branch"), cmd_opt(a, "revision"),
	    &rev, &why) == -1) {
		rc = out_usage(cmd_current, "%s", why);
		free(why);
		return rc;
	}
	if ((path = packages_util_path(a, 1, "/uploads", &rc)) == NULL)
		return rc;
	rc = CLI_FAILED;
	file = a->argv[a->argc - 1];
	if (stat(file, &st) == -1 || !S_ISREG(st.st_mode)) {
		free(path);
		return out_fail("cannot read '%s': not a regular file", file);
	}
	body = json_pack("{s:I}", "size", (json_int_t)st.st_size);
	if (api_ok("POST", path, body, &ticket) == -1)
		goto out;
	copy = xstrdup(file);
	esc = api_escape(basename(copy));
	what = xasprintf("uploading %s", basename(copy));
	free(copy);
	/* the Mendix Build API's labels (docs/MENDIX-API.md) */
	if (cmd_opt(a, "branch") || cmd_opt(a, "revision")) {
		char *b = cmd_opt(a, "branch") ? api_escape(cmd_opt(a,
		    "branch")) : NULL;

		fname = xasprintf("filename=%s%s%s%s%s", esc, b ? "&branch=" :
		    "", b ? b : "", cmd_opt(a, "revision") ? "&revision=" : "",
		    cmd_opt(a, "revision") ? cmd_opt(a, "revision") : "");
		free(b);
	} else {
		fname = xasprintf("filename=%s", esc);
	}
	url = tls_url_query_add(jsonx_str(ticket, "url"), fname);
	status = transfer_upload(url, jsonx_str(ticket, "method"), file, what,
	    &resp, sha);
	if (status == -1)
		goto out;
	if (status != 200 && status != 201) {
		msg = jsonx_str(json_object_get(resp, "error"), "message");
		out_fail("%s", msg ? msg : "upload failed");
		goto out;
	}
	if (jsonx_str(resp, "sha256") == NULL ||
	    strcmp(jsonx_str(resp, "sha256"), sha) != 0) {
		out_fail("the node stored sha256 %s but the file has %s: the "
		    "upload was corrupted in transit, or the file changed "
		    "while it was sent", jsonx_str(resp, "sha256") ?
		    jsonx_str(resp, "sha256") : "(none)", sha);
		goto out;
	}
	/* let the portal record it now (it would on the next list too) */
	pkg = api_escape(jsonx_str(resp, "id"));
	suffix = xasprintf("/%s", pkg);
	show = packages_util_path(a, 1, suffix, &rc);
	if (api_call("GET", show, NULL, &rec) != 200) {
		json_decref(rec);
		rec = json_incref(resp);
	}
	if (out_maybe_json(a, rec) == -1)
		printf("%s package %s (%lld bytes, sha256 %s) %s %s\n",
		    status == 201 ? "uploaded" : "already had",
		    jsonx_str(resp, "id"), (long long)st.st_size, sha,
		    app ? "in the repository of app" : "on node", app ? app :
		    jsonx_str(ticket, "node"));
	rc = CLI_OK;
out:
	json_decref(body);
	json_decref(ticket);
	json_decref(resp);
	json_decref(rec);
	free(path);
	free(url);
	free(fname);
	free(esc);
	free(what);
	free(show);
	free(suffix);
	free(pkg);
	return rc;
}

const struct cmd_entry cmd_packages_upload_entry = {
	"packages", "upload", "[NODE] FILE", "json,app=,branch=,revision=", 1, 2,
	"upload a package (zip, tar.gz or .mda) to a node's repository",
	"Streams FILE to the node through a signed URL; the node validates it\n"
	"(nubo.json, entries, start file) before it is listed. With --app APP\n"
	"the package goes to the app's repository — its linked node's, or on\n"
	"the sandbox node its own (needs the transport permission). A\n"
	"progress bar shows on a terminal. --branch B --revision N label it\n"
	"for the Mendix Build and Team Server APIs (docs/MENDIX-API.md).",
	cmd_packages_upload_exec, 0,
};
