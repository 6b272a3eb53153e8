/* nubo envs db-url APP ENV [--ttl S] [--json] */
#include <stdio.h>
#include <stdlib.h>

#include "envs-util.h"
#include "nubo_limits.h"
#include "util.h"

static int
cmd_envs_db_url_exec(struct cmd_args *a)
{
	const char *ttl = cmd_opt(a, "ttl");
	char *path = envs_util_path(a->argv[0], a->argv[1], "/db-credentials");
	json_t *body = json_object(), *resp = NULL;
	long long t = 0;
	int rc = CLI_FAILED;

	if (ttl && util_parse_int(ttl, NUBO_DBCRED_TTL_MIN,
	    NUBO_DBCRED_TTL_MAX, &t) == -1) {
		rc = out_usage(cmd_current, "--ttl wants %d to %d seconds",
		    NUBO_DBCRED_TTL_MIN, NUBO_DBCRED_TTL_MAX);
		goto out;
	}
	if (t)
		json_object_set_new(body, "ttl", json_integer(t));
	if (api_ok("POST", path, body, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1) {
		/* the URL alone on stdout: psql "$(nubo envs db-url …)" */
		printf("%s\n", jsonx_str(resp, "url"));
		fprintf(stderr, "valid until %s; reachable %s\n",
		    jsonx_str(resp, "expires_at"), jsonx_str(resp,
		    "reachable"));
	}
	rc = CLI_OK;
out:
	json_decref(body);
	json_decref(resp);
	free(path);
	return rc;
}

const struct cmd_entry cmd_envs_db_url_entry = {
	"envs", "db-url", "APP ENV", "ttl=,json", 2, 2,
	"print a short-lived URL to the environment's database",
	"A login role of its own with the environment role's rights, which\n"
	"PostgreSQL refuses after its expiry (sessions still open then are\n"
	"ended within seconds). The URL points where the node's PostgreSQL\n"
	"listens: for a node's own cluster 127.0.0.1 of the node's host, so it\n"
	"works there or through an SSH tunnel to that host (the message on\n"
	"standard error says which). Needs the settings permission on the\n"
	"environment; logged in the app's activity.\n"
	"  --ttl S   valid for S seconds (default 3600, at most a day)",
	cmd_envs_db_url_exec, 0,
};
