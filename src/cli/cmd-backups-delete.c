/* nubo backups delete APP ENV SNAPSHOT */
#include <stdio.h>
#include <stdlib.h>

#include "backups-util.h"
#include "cli.h"
#include "xmalloc.h"

static int
cmd_backups_delete_exec(struct cmd_args *a)
{
	char *s = api_escape(a->argv[2]);
	char *rest = xasprintf("/snapshots/%s", s);
	char *path = backups_path(a->argv[0], a->argv[1], rest);
	int rc = CLI_FAILED;

	if (api_ok("DELETE", path, NULL, NULL) == -1)
		goto out;
	printf("snapshot %s deleted\n", a->argv[2]);
	rc = CLI_OK;
out:
	free(path);
	free(rest);
	free(s);
	return rc;
}

const struct cmd_entry cmd_backups_delete_entry = {
	"backups", "delete", "APP ENV SNAPSHOT", "", 3, 3,
	"delete a snapshot (archive and record)", NULL,
	cmd_backups_delete_exec, 0,
};
