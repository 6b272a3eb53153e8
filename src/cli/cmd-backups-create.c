/* nubo backups create APP ENV [--comment TEXT] [--no-wait] */
#include <stdio.h>
#include <stdlib.h>

#include "backups-util.h"
#include "cli.h"
#include "xmalloc.h"

static int
cmd_backups_create_exec(struct cmd_args *a)
{
	char *path = backups_path(a->argv[0], a->argv[1], "/snapshots");
	json_t *resp = NULL, *body = json_object(), *job;
	char *jid = NULL;
	int rc = CLI_FAILED;

	if (cmd_opt(a, "comment"))
		json_object_set_new(body, "comment",
		    json_string(cmd_opt(a, "comment")));
	if (api_ok("POST", path, body, &resp) == -1)
		goto out;
	job = json_object_get(resp, "job");
	jid = xstrdup(jsonx_str(job, "id") ? jsonx_str(job, "id") : "0");
	if (!cmd_flag(a, "no-wait") && api_wait_job(jid, "backup") != CLI_OK)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		printf("snapshot %s%s\n", jsonx_str(resp, "snapshot"),
		    cmd_flag(a, "no-wait") ? " queued" : " completed");
	rc = CLI_OK;
out:
	json_decref(resp);
	json_decref(body);
	free(jid);
	free(path);
	return rc;
}

const struct cmd_entry cmd_backups_create_entry = {
	"backups", "create", "APP ENV", "json,comment=,no-wait", 2, 2,
	"create a manual snapshot of an environment (database and files)",
	"Runs as a job; waits for it and shows its progress unless --no-wait.",
	cmd_backups_create_exec, 0,
};
