/* nubo migrate run APP --to NODE */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "migrate-cli.h"

static int
cmd_migrate_run_exec(struct cmd_args *a)
{
	json_t *body, *resp = NULL;
	int rc = CLI_FAILED;

	if (cmd_opt(a, "to") == NULL)
		return out_usage(cmd_current, "--to NODE is required");
	body = json_pack("{s:s,s:s,s:s}", "app", a->argv[0], "to",
	    cmd_opt(a, "to"), "mode", "run");
	if (api_ok("POST", "/migrations", body, &resp) == -1)
		goto out;
	if (!cmd_flag(a, "json"))
		fprintf(stderr, "migration %lld of app '%s': node '%s' → node "
		    "'%s'\n", jsonx_int(resp, "id", 0), a->argv[0],
		    jsonx_str(resp, "source"), jsonx_str(resp, "target"));
	if (cmd_flag(a, "no-wait")) {
		if (out_maybe_json(a, resp) == -1)
			printf("migration %lld queued\n", jsonx_int(resp, "id",
			    0));
		rc = CLI_OK;
		goto out;
	}
	rc = migrate_cli_follow(jsonx_int(resp, "id", 0), cmd_flag(a, "json"));
out:
	json_decref(body);
	json_decref(resp);
	return rc;
}

const struct cmd_entry cmd_migrate_run_entry = {
	"migrate", "run", "APP", "to=,json,no-wait", 1, 1,
	"migrate APP to NODE in one go: copy, verify, cutover, offboarding, final link",
	"Shows progress (step, bytes, rows, files, ETA) until done; the\n"
	"migration is journaled: if anything is killed, 'nubo migrate resume\n"
	"APP' finishes it. --no-wait returns at once.",
	cmd_migrate_run_exec, 0,
};
