/* nubo settings import APP ENV FILE */
#include <stdlib.h>

#include "cli.h"
#include "settings-cli.h"
#include "xmalloc.h"

static int
cmd_settings_import_exec(struct cmd_args *a)
{
	char *path = settings_cli_path(a->argv[0], a->argv[1], NULL, NULL);
	char *text = settings_cli_read(a->argv[2], "settings document");
	json_error_t je;
	json_t *doc;
	int rc = CLI_FAILED;

	if (text == NULL)
		goto out;
	doc = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	if (doc == NULL) {
		out_fail("'%s' is not JSON: line %d: %s", a->argv[2], je.line,
		    je.text);
		goto out;
	}
	rc = settings_cli_change(a, "PUT", path, doc);
out:
	free(text);
	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_import_entry = {
	"settings", "import", "APP ENV FILE", "json", 3, 3,
	"replace an environment's configuration with an exported document",
	"The whole document is checked against the target environment's\n"
	"generation and deployed package and applied all or nothing; every\n"
	"refused setting is named. A document exported from a v3 environment\n"
	"is translated to v4 one-to-one.",
	cmd_settings_import_exec, 0,
};
