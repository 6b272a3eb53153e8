/* nubo backups download APP ENV SNAPSHOT [--kind full|database|files]
 *   [--output FILE] [--continue] */
#include <stdio.h>
#include <stdlib.h>

#include "backups-util.h"
#include "cli.h"
#include "xmalloc.h"

static int
cmd_backups_download_exec(struct cmd_args *a)
{
	char *s = api_escape(a->argv[2]);
	char *rest = xasprintf("/snapshots/%s/download", s);
	char *path = backups_path(a->argv[0], a->argv[1], rest);
	json_t *resp = NULL, *body = json_pack("{s:s}", "kind",
	    cmd_opt(a, "kind") ? cmd_opt(a, "kind") : "full");
	const char *file;
	int rc = CLI_FAILED;

	if (api_ok("POST", path, body, &resp) == -1)
		goto out;
	file = cmd_opt(a, "output") ? cmd_opt(a, "output") :
	    jsonx_str(resp, "filename");
	if (backups_get(jsonx_str(resp, "url"), file,
	    cmd_flag(a, "continue")) == -1)
		goto out;
	printf("%s\n", file);
	rc = CLI_OK;
out:
	json_decref(resp);
	json_decref(body);
	free(path);
	free(rest);
	free(s);
	return rc;
}

const struct cmd_entry cmd_backups_download_entry = {
	"backups", "download", "APP ENV SNAPSHOT", "kind=,output=,continue", 3, 3,
	"download a snapshot: full archive, database only or files only",
	"--kind full (files_and_database-….tar.gz, the default), database "
	"(database-….backup, pg_restore format) or files (tree/ only).\n"
	"--continue resumes an interrupted download of --output.",
	cmd_backups_download_exec, 0,
};
