/* nubo envs logs APP ENV [--lines N] [--instance N] [--follow] */
#include <stdio.h>
#include <stdlib.h>

#include "envs-util.h"
#include "nubo_limits.h"
#include "util.h"
#include "xmalloc.h"

static int
cmd_envs_logs_exec(struct cmd_args *a)
{
	char *base = envs_util_path(a->argv[0], a->argv[1], "/logs"), *path;
	const char *lines = cmd_opt(a, "lines"), *inst = cmd_opt(a,
	    "instance");
	json_t *resp = NULL;
	long long n = 100, off, i = 0;
	int rc = CLI_FAILED;

	if (lines && util_parse_int(lines, 1, 10000, &n) == -1) {
		free(base);
		return out_usage(cmd_current, "--lines wants 1 to 10000");
	}
	if (inst && util_parse_int(inst, 1, NUBO_INSTANCES_MAX, &i) == -1) {
		free(base);
		return out_usage(cmd_current, "--instance wants 1 to %d",
		    NUBO_INSTANCES_MAX);
	}
	if (i) {	/* every later read asks for that instance too */
		path = xasprintf("%s?instance=%lld", base, i);
		free(base);
		base = path;
	}
	path = xasprintf("%s%slines=%lld", base, i ? "&" : "?", n);
	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	if (!cmd_flag(a, "follow") && out_maybe_json(a, resp) == 0) {
		rc = CLI_OK;
		goto out;
	}
	fputs(jsonx_str(resp, "text") ? jsonx_str(resp, "text") : "", stdout);
	fflush(stdout);
	off = jsonx_int(resp, "offset", 0);
	/* each read is held by the portal until there are new lines (or
	 * API_WAIT_SECS seconds) */
	while (cmd_flag(a, "follow")) {
		json_decref(resp);
		resp = NULL;
		free(path);
		path = xasprintf("%s%soffset=%lld&wait=%d", base, i ? "&" : "?",
		    off, API_WAIT_SECS);
		if (api_ok("GET", path, NULL, &resp) == -1)
			goto out;
		fputs(jsonx_str(resp, "text") ? jsonx_str(resp, "text") : "",
		    stdout);
		fflush(stdout);
		off = jsonx_int(resp, "offset", off);
	}
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(base);
	return rc;
}

const struct cmd_entry cmd_envs_logs_entry = {
	"envs", "logs", "APP ENV", "lines=,instance=,follow,json", 2, 2,
	"the app's log: its output and the node's supervisor lines",
	"Each line the app prints is stamped with the time and its instance\n"
	"(\"[instance 2]\"); --instance N shows only that instance's lines.\n"
	"--follow keeps printing new lines until interrupted.",
	cmd_envs_logs_exec, 0,
};
