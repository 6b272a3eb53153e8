/* nubo migrate rehearse APP [--to NODE] [--resync TABLE[,TABLE…]]… */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "migrate-cli.h"
#include "nubo_limits.h"
#include "pgtool.h"
#include "xmalloc.h"

/* --resync's tables (repeated, or comma lists) into list; CLI_OK, or a
 * usage error naming a table that is not a plain [schema.]name. */
static int
resync_tables(struct cmd_args *a, json_t *list)
{
	const char *vals[NUBO_RESYNC_TABLES_MAX + 1];
	char canon[PGTOOL_TABLE_MAX];
	int n = cmd_opt_all(a, "resync", vals, NUBO_RESYNC_TABLES_MAX + 1);
	int i, rc = CLI_OK;

	for (i = 0; i < n && rc == CLI_OK; i++) {
		char *copy = xstrdup(vals[i]), *tok, *save = NULL;

		if (strspn(copy, ",") == strlen(copy))
			rc = out_usage(cmd_current, "--resync: name a table");
		for (tok = strtok_r(copy, ",", &save); tok && rc == CLI_OK;
		    tok = strtok_r(NULL, ",", &save))
			if (pgtool_table_name(tok, canon, sizeof canon) == -1)
				rc = out_usage(cmd_current, "--resync: '%s' is "
				    "not a table's name: [schema.]name, each 1 "
				    "to 63 of a-z, 0-9, '_' and '$'", tok);
			else
				json_array_append_new(list, json_string(canon));
		free(copy);
	}
	if (rc == CLI_OK && json_array_size(list) > NUBO_RESYNC_TABLES_MAX)
		rc = out_usage(cmd_current, "--resync: at most %d tables",
		    NUBO_RESYNC_TABLES_MAX);
	return rc;
}

static int
cmd_migrate_rehearse_exec(struct cmd_args *a)
{
	json_t *tables = json_array();
	int rc = resync_tables(a, tables);

	if (rc != CLI_OK) {
		json_decref(tables);
		return rc;
	}
	return migrate_cli_action(a, "rehearse", json_array_size(tables) ?
	    json_pack("{s:o}", "resync", tables) : (json_decref(tables),
	    NULL));
}

const struct cmd_entry cmd_migrate_rehearse_entry = {
	"migrate", "rehearse", "APP", "to=,json,no-wait,resync=", 1, 1,
	"copy again: files changed since the last copy only, then verify",
	"Acts on the app's newest migration (the one to NODE with --to) and\n"
	"shows its progress until the step list is done (--no-wait: return\n"
	"at once; 'nubo migrate status APP' follows up).\n"
	"--resync TABLE (repeated, or TABLE,TABLE): a migration that\n"
	"replicates (the default) does not carry DDL; after a table changed on\n"
	"the source (the cutover refuses and names it), the target makes each\n"
	"TABLE again ([schema.]name, public when no schema is given) with the\n"
	"source's current definition and copies its rows again; a table\n"
	"dropped on the source is dropped on the target. A table that another\n"
	"table references by a foreign key is refused (resync both).",
	cmd_migrate_rehearse_exec, 0,
};
