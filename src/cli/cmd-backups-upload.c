/* nubo backups upload APP ENV FILE [--comment TEXT] */
#include <stdio.h>
#include <stdlib.h>

#include "backups-util.h"
#include "cli.h"
#include "xmalloc.h"

static int
cmd_backups_upload_exec(struct cmd_args *a)
{
	char *path = backups_path(a->argv[0], a->argv[1], "/snapshot-uploads");
	char *done = NULL;
	json_t *resp = NULL, *nresp = NULL, *fin = NULL, *body = json_object();
	int rc = CLI_FAILED;

	if (api_ok("POST", path, NULL, &resp) == -1)
		goto out;
	if (backups_put(jsonx_str(resp, "url"), a->argv[2], &nresp) == -1)
		goto out;
	done = xasprintf("%s/%s", path, jsonx_str(resp, "snapshot"));
	if (cmd_opt(a, "comment"))
		json_object_set_new(body, "comment",
		    json_string(cmd_opt(a, "comment")));
	if (api_ok("POST", done, body, &fin) == -1)
		goto out;
	if (out_maybe_json(a, fin) == -1)
		printf("snapshot %s uploaded\n", jsonx_str(fin, "id"));
	rc = CLI_OK;
out:
	json_decref(resp);
	json_decref(nresp);
	json_decref(fin);
	json_decref(body);
	free(done);
	free(path);
	return rc;
}

const struct cmd_entry cmd_backups_upload_entry = {
	"backups", "upload", "APP ENV FILE", "json,comment=", 3, 3,
	"upload a backup archive (.tar.gz); it becomes an uploaded snapshot",
	"The node validates the whole archive first (structure, .metadata, the "
	"dump, every path, checksums); a bad archive is refused and nothing is "
	"listed.",
	cmd_backups_upload_exec, 0,
};
