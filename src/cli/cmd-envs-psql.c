/* nubo envs psql APP ENV [-c SQL | --file FILE] [--timeout S] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envs-util.h"
#include "nubo_limits.h"
#include "util.h"
#include "xmalloc.h"

static int
cmd_envs_psql_exec(struct cmd_args *a)
{
	const char *sql = cmd_opt(a, "command"), *file = cmd_opt(a, "file");
	const char *timeout = cmd_opt(a, "timeout");
	char *text = NULL;
	json_t *body;
	long long t = 0;
	int rc;

	if ((sql == NULL) == (file == NULL))
		return out_usage(cmd_current, "give the SQL with --command or "
		    "--file (- for standard input)");
	if (timeout && util_parse_int(timeout, 1, NUBO_RUN_TIMEOUT_MAX,
	    &t) == -1)
		return out_usage(cmd_current, "--timeout wants 1 to %d "
		    "seconds", NUBO_RUN_TIMEOUT_MAX);
	if (file && (text = runs_util_input(strcmp(file, "-") == 0 ?
	    "/dev/stdin" : file)) == NULL)
		return CLI_FAILED;
	body = json_pack("{s:s}", "sql", text ? text : sql);
	if (t)
		json_object_set_new(body, "timeout", json_integer(t));
	rc = runs_util_run(a->argv[0], a->argv[1], "/psql", body, "psql");
	json_decref(body);
	free(text);
	return rc;
}

const struct cmd_entry cmd_envs_psql_entry = {
	"envs", "psql", "APP ENV", "command=,file=,timeout=", 2, 2,
	"run SQL on the environment's database through psql",
	"The statements run through the node, in a one-off sandbox of the "
	"environment,\nas its database role; psql stops at the first error "
	"(exit status 3). Needs the\nsettings permission on the "
	"environment.\n"
	"  --command SQL  the statements\n"
	"  --file FILE    read them from FILE (- for standard input)",
	cmd_envs_psql_exec, 0,
};
