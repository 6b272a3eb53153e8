/* nubo envs maintenance APP ENV on|off */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envs-util.h"

static int
cmd_envs_maintenance_exec(struct cmd_args *a)
{
	char *path;
	json_t *resp = NULL, *body;
	int on, rc = CLI_FAILED;

	if (strcmp(a->argv[2], "on") != 0 && strcmp(a->argv[2], "off") != 0)
		return out_usage(cmd_current, "say on or off");
	on = strcmp(a->argv[2], "on") == 0;
	path = envs_util_path(a->argv[0], a->argv[1], "/maintenance");
	body = json_pack("{s:b}", "on", on);
	rc = api_ok("POST", path, body, &resp) == -1 ? CLI_FAILED : CLI_OK;
	json_decref(body);
	if (rc == CLI_FAILED)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		printf("maintenance %s for %s\n", on ? "on" : "off",
		    jsonx_str(resp, "name"));
		if (!jsonx_bool(resp, "applied", 1))
			fprintf(stderr, "nubo: the node has not applied it yet "
			    "(%s); it will within seconds of coming back\n",
			    jsonx_str(resp, "apply_error") ?
			    jsonx_str(resp, "apply_error") : "unreachable");
	}
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	return rc;
}

const struct cmd_entry cmd_envs_maintenance_entry = {
	"envs", "maintenance", "APP ENV on|off", "json", 3, 3,
	"turn the maintenance page on or off (the router answers 503)",
	NULL,
	cmd_envs_maintenance_exec, 0,
};
