/* nubo backups list APP ENV */
#include <stdlib.h>

#include "backups-util.h"
#include "cli.h"
#include "xmalloc.h"

static int
cmd_backups_list_exec(struct cmd_args *a)
{
	char *path = backups_path(a->argv[0], a->argv[1], "/snapshots");
	json_t *resp = NULL, *rows, *s;
	int rc = CLI_FAILED;
	size_t i;

	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		rows = json_object_get(resp, "snapshots");
		json_array_foreach(rows, i, s) {
			char *shortid = xstrndup(jsonx_str(s, "id"), 8);

			json_object_set_new(s, "short", json_string(shortid));
			json_object_set_new(s, "size_mb", json_integer(
			    jsonx_int(s, "archive_size", 0) >> 20));
			backups_copy_words(s);
			free(shortid);
		}
		out_table(rows, "short:ID,type:TYPE,state:STATE,"
		    "created:CREATED,expires:EXPIRES,size_mb:MB,"
		    "copy:COPY,comment:COMMENT");
	}
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	return rc;
}

const struct cmd_entry cmd_backups_list_entry = {
	"backups", "list", "APP ENV", "json", 2, 2,
	"list an environment's snapshots, newest first", NULL,
	cmd_backups_list_exec, 0,
};
