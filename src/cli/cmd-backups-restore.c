/* nubo backups restore APP ENV SNAPSHOT [--database-only] */
#include <stdio.h>
#include <stdlib.h>

#include "backups-util.h"
#include "cli.h"
#include "xmalloc.h"

static int
cmd_backups_restore_exec(struct cmd_args *a)
{
	char *path = backups_path(a->argv[0], a->argv[1], "/restores");
	json_t *resp = NULL, *job = NULL, *body = json_pack("{s:s,s:b}", "snapshot",
	    a->argv[2], "database_only", cmd_flag(a, "database-only"));
	char *jid = NULL;
	int rc = CLI_FAILED;

	if (api_ok("POST", path, body, &resp) == -1)
		goto out;
	jid = xstrdup(jsonx_str(json_object_get(resp, "job"), "id") ?
	    jsonx_str(json_object_get(resp, "job"), "id") : "0");
	if (!cmd_flag(a, "no-wait") && api_wait_job_get(jid, "restore", &job) !=
	    CLI_OK)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		json_t *res = json_object_get(job, "result");

		printf("restore %s %s\n", jsonx_str(resp, "restore"),
		    cmd_flag(a, "no-wait") ? "queued" : "completed");
		/* what the environment needs before it serves the data */
		if (jsonx_str(res, "next"))
			printf("next: %s\n", jsonx_str(res, "next"));
	}
	rc = CLI_OK;
out:
	json_decref(resp);
	json_decref(job);
	json_decref(body);
	free(jid);
	free(path);
	return rc;
}

const struct cmd_entry cmd_backups_restore_entry = {
	"backups", "restore", "APP ENV SNAPSHOT", "json,database-only,no-wait",
	3, 3, "restore a snapshot of the app into a stopped environment",
	"The data goes to a new database and files folder and is swapped in "
	"only when complete; a failed restore leaves the old data as it was.",
	cmd_backups_restore_exec, 0,
};
