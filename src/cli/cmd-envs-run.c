/* nubo envs run APP ENV [--timeout S] [--input FILE] [--] COMMAND... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envs-util.h"
#include "nubo_limits.h"
#include "util.h"
#include "xmalloc.h"

static int
cmd_envs_run_exec(struct cmd_args *a)
{
	const char *timeout = cmd_opt(a, "timeout"), *input = cmd_opt(a,
	    "input");
	char *text = NULL;
	json_t *body, *cmd = json_array();
	long long t = 0;
	int i, rc;

	if (timeout && util_parse_int(timeout, 1, NUBO_RUN_TIMEOUT_MAX,
	    &t) == -1) {
		json_decref(cmd);
		return out_usage(cmd_current, "--timeout wants 1 to %d "
		    "seconds", NUBO_RUN_TIMEOUT_MAX);
	}
	for (i = 2; i < a->argc; i++)
		json_array_append_new(cmd, json_string(a->argv[i]));
	if (input && (text = runs_util_input(strcmp(input, "-") == 0 ?
	    "/dev/stdin" : input)) == NULL) {
		json_decref(cmd);
		return CLI_FAILED;
	}
	body = json_pack("{s:o}", "command", cmd);
	if (t)
		json_object_set_new(body, "timeout", json_integer(t));
	if (text)
		json_object_set_new(body, "input", json_string(text));
	rc = runs_util_run(a->argv[0], a->argv[1], "/runs", body,
	    "the command");
	json_decref(body);
	free(text);
	return rc;
}

const struct cmd_entry cmd_envs_run_entry = {
	"envs", "run", "APP ENV [--] COMMAND...", "timeout=,input=", 3, -1,
	"run a one-off command in a fresh instance of the environment",
	"The command runs in a sandbox of its own like an instance's: the "
	"same package (in a\nfresh working area), environment variables, "
	"database and files folder, user and\nlimits, but no traffic from "
	"the router. Its output is printed as it comes and\nits exit status "
	"is nubo's. Needs the transport permission on the environment.\n"
	"  --timeout S   stop it after S seconds (default 600)\n"
	"  --input FILE  its standard input (- for nubo's; at most 1 MB)\n"
	"Ctrl-C stops it.",
	cmd_envs_run_exec, 0,
};
