/* nubo admin nodes create NAME --generation v3|v4 [--env NAME]…
 *     [--technical-contact EMAIL] [--sandbox] */
#include <stdlib.h>

#include "cli.h"
#include "nubo_limits.h"

static int
cmd_admin_nodes_create_exec(struct cmd_args *a)
{
	const char *envs[NUBO_NODE_ENVS_MAX + 1];
	json_t *body, *resp = NULL;
	int n, i;

	if (cmd_opt(a, "generation") == NULL)
		return out_usage(cmd_current, "--generation v3|v4 is required");
	body = json_pack("{s:s,s:s}", "name", a->argv[0], "generation",
	    cmd_opt(a, "generation"));
	n = cmd_opt_all(a, "env", envs, NUBO_NODE_ENVS_MAX + 1);
	if (n > 0) {
		json_t *list = json_array();

		for (i = 0; i < n; i++)
			json_array_append_new(list, json_string(envs[i]));
		json_object_set_new(body, "environments", list);
	}
	if (cmd_opt(a, "technical-contact"))
		json_object_set_new(body, "technical_contact",
		    json_string(cmd_opt(a, "technical-contact")));
	if (cmd_flag(a, "sandbox"))
		json_object_set_new(body, "sandbox", json_true());
	if (api_ok("POST", "/nodes", body, &resp) == -1) {
		json_decref(body);
		return CLI_FAILED;
	}
	if (out_maybe_json(a, resp) == -1) {
		printf("created %s node '%s'\n", jsonx_str(resp, "generation"),
		    jsonx_str(resp, "name"));
		printf("node token (shown once; give it to 'nubod node "
		    "--token'): %s\n", jsonx_str(resp, "token"));
	}
	json_decref(body);
	json_decref(resp);
	return CLI_OK;
}

const struct cmd_entry cmd_admin_nodes_create_entry = {
	"admin nodes", "create", "NAME",
	"generation=,env=,technical-contact=,sandbox,json", 1, 1,
	"create a node (platform admin)",
	"--env NAME (repeatable) names its environments; the default is Test,\n"
	"Acceptance and Production, and other names are allowed on v4 only.\n"
	"--sandbox makes it the shared sandbox node for Free Apps. The answer\n"
	"carries the node's agent token, shown once.",
	cmd_admin_nodes_create_exec, 0,
};
