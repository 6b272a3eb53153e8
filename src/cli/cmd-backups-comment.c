/* nubo backups comment APP ENV SNAPSHOT TEXT */
#include <stdlib.h>

#include "backups-util.h"
#include "cli.h"
#include "xmalloc.h"

static int
cmd_backups_comment_exec(struct cmd_args *a)
{
	char *s = api_escape(a->argv[2]);
	char *rest = xasprintf("/snapshots/%s", s);
	char *path = backups_path(a->argv[0], a->argv[1], rest);
	json_t *resp = NULL, *body = json_pack("{s:s}", "comment", a->argv[3]);
	int rc = CLI_FAILED;

	if (api_ok("PATCH", path, body, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		out_fields(resp, "id,comment");
	rc = CLI_OK;
out:
	json_decref(resp);
	json_decref(body);
	free(path);
	free(rest);
	free(s);
	return rc;
}

const struct cmd_entry cmd_backups_comment_entry = {
	"backups", "comment", "APP ENV SNAPSHOT TEXT", "json", 4, 4,
	"set a snapshot's comment", NULL, cmd_backups_comment_exec, 0,
};
