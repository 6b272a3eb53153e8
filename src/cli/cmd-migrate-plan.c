/* nubo migrate plan APP --to NODE */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "migrate-cli.h"
#include "util.h"

static void
human(long long n, char *out, size_t len)
{
	if (n < 0)
		snprintf(out, len, "unknown");
	else
		util_human_bytes(n, out, len);
}

/* Replicating: how each table of the environment is carried. */
static void
print_tables(json_t *env)
{
	json_t *e = json_object_get(env, "replication"), *t;
	size_t i;

	json_array_foreach(json_object_get(e, "tables"), i, t)
		printf("%-12s table %s: %s\n", "", jsonx_str(t, "table"),
		    jsonx_str(t, "method"));
	if (jsonx_str(e, "refused"))
		printf("%-12s %s\n", "", jsonx_str(e, "refused"));
	if (jsonx_str(e, "error"))
		printf("%-12s %s\n", "", jsonx_str(e, "error"));
}

static int
cmd_migrate_plan_exec(struct cmd_args *a)
{
	json_t *body, *resp = NULL, *e;
	size_t i;
	int rc = CLI_FAILED;

	if ((body = migrate_cli_body(a, "plan")) == NULL)
		return CLI_USAGE;
	if (api_ok("POST", "/migrations", body, &resp) == -1)
		goto out;
	rc = CLI_OK;
	if (out_maybe_json(a, resp) == CLI_OK)
		goto out;
	printf("migration of app '%s' from node '%s' to node '%s' (dry run)\n\n",
	    a->argv[0], jsonx_str(resp, "from"), cmd_opt(a, "to"));
	migrate_cli_method(resp, stdout);
	printf("\n");
	json_array_foreach(json_object_get(resp, "environments"), i, e) {
		char db[32], files[32];

		human(jsonx_int(e, "database_bytes", -1), db, sizeof db);
		human(jsonx_int(e, "files_bytes", -1), files, sizeof files);
		printf("%-12s package %s, database %s (%lld tables, %lld rows), "
		    "files %s (%lld), estimated downtime %.1f s\n",
		    jsonx_str(e, "environment"), jsonx_str(e, "package") ?
		    jsonx_str(e, "package") : "none", db,
		    jsonx_int(e, "tables", 0), jsonx_int(e, "rows", 0), files,
		    jsonx_int(e, "files", 0), json_real_value(json_object_get(e,
		    "estimated_downtime_seconds")));
		printf("%-12s downtime estimate: %s\n", "", jsonx_str(
		    json_object_get(e, "estimate_basis"), "text"));
		if (jsonx_str(e, "note"))
			printf("%-12s note: %s\n", "", jsonx_str(e, "note"));
		print_tables(e);
	}
	printf("\n");
	out_table(json_object_get(resp, "steps"), "phase:PHASE,step:STEP,"
	    "environment:ENVIRONMENT,does:WHAT");
	printf("\nestimated downtime at cutover: %.1f s (each environment "
	    "is down during its own cutover only; the longest)\n",
	    json_real_value(json_object_get(resp,
	    "estimated_downtime_seconds")));
out:
	json_decref(body);
	json_decref(resp);
	return rc;
}

const struct cmd_entry cmd_migrate_plan_entry = {
	"migrate", "plan", "APP", "to=,json,replicate,dump", 1, 1,
	"dry run: every step of migrating APP to NODE, sizes, downtime",
	"Checks the prerequisites (seed §2) and changes nothing. Says how\n"
	"the database would be copied and, replicating, how each table is\n"
	"carried. By default a migration replicates unless the source holds\n"
	"what replication cannot carry (unlogged tables, large objects): then\n"
	"it copies with a dump, and says why. --replicate insists (refused if\n"
	"it cannot), --dump copies with a dump.",
	cmd_migrate_plan_exec, 0,
};
