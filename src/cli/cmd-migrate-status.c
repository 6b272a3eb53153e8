/* nubo migrate status APP [--to NODE] [--follow] */
#include <stdlib.h>

#include "cli.h"
#include "migrate-cli.h"
#include "xmalloc.h"

static int
cmd_migrate_status_exec(struct cmd_args *a)
{
	json_t *m = NULL, *full = NULL;
	char *path;
	int rc = CLI_FAILED;

	if (migrate_cli_find(a->argv[0], cmd_opt(a, "to"), &m) == -1)
		return CLI_FAILED;
	if (cmd_flag(a, "follow")) {
		rc = migrate_cli_follow(jsonx_int(m, "id", 0),
		    cmd_flag(a, "json"));
		json_decref(m);
		return rc;
	}
	path = xasprintf("/migrations/%lld", jsonx_int(m, "id", 0));
	if (api_ok("GET", path, NULL, &full) != -1) {
		if (out_maybe_json(a, full) == -1)
			migrate_cli_print(full);
		rc = CLI_OK;
	}
	free(path);
	json_decref(full);
	json_decref(m);
	return rc;
}

const struct cmd_entry cmd_migrate_status_entry = {
	"migrate", "status", "APP", "to=,json,follow", 1, 1,
	"show the app's migration: state, every step, progress, downtime",
	"--follow shows progress until the running phase ends.",
	cmd_migrate_status_exec, 0,
};
