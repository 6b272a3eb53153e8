/* nubo apps create SUBDOMAIN [--name NAME] [--no-sandbox] [--temporary] */
#include "cli.h"

static int
cmd_apps_create_exec(struct cmd_args *a)
{
	json_t *body, *resp = NULL;

	body = json_pack("{s:s,s:b,s:b}", "subdomain", a->argv[0],
	    "sandbox", !cmd_flag(a, "no-sandbox"),
	    "temporary", cmd_flag(a, "temporary"));
	if (cmd_opt(a, "name"))
		json_object_set_new(body, "name", json_string(cmd_opt(a, "name")));
	if (api_ok("POST", "/apps", body, &resp) == -1) {
		json_decref(body);
		return CLI_FAILED;
	}
	if (out_maybe_json(a, resp) == -1)
		printf("created app '%s' (%s)\n", jsonx_str(resp, "subdomain"),
		    jsonx_str(resp, "id"));
	json_decref(body);
	json_decref(resp);
	return CLI_OK;
}

const struct cmd_entry cmd_apps_create_entry = {
	"apps", "create", "SUBDOMAIN", "name=,no-sandbox,temporary,json", 1, 1,
	"create a Free App (with a sandbox unless --no-sandbox)",
	"SUBDOMAIN is permanent: [a-z][a-z0-9-]{1,38}. You become its\n"
	"Technical Contact.",
	cmd_apps_create_exec, 0,
};
