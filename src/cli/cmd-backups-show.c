/* nubo backups show APP ENV SNAPSHOT */
#include <stdlib.h>

#include "backups-util.h"
#include "cli.h"
#include "xmalloc.h"

static int
cmd_backups_show_exec(struct cmd_args *a)
{
	char *s = api_escape(a->argv[2]);
	char *rest = xasprintf("/snapshots/%s", s);
	char *path = backups_path(a->argv[0], a->argv[1], rest);
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		backups_copy_words(resp);
		out_fields(resp, "id,environment,node,copy,type,state,comment,"
		    "created,created_by,finished,expires,package,model_version,"
		    "database_size,dump_size,files_size,archive_size,warning,error");
	}
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(rest);
	free(s);
	return rc;
}

const struct cmd_entry cmd_backups_show_entry = {
	"backups", "show", "APP ENV SNAPSHOT", "json", 3, 3,
	"show a snapshot: type, times, sizes, comment, who made it",
	"SNAPSHOT is the id or its first 8 characters.",
	cmd_backups_show_exec, 0,
};
