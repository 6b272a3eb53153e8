/* nubo settings set-constant APP ENV NAME VALUE */
#include <stdlib.h>

#include "cli.h"
#include "settings-cli.h"

static int
cmd_settings_set_constant_exec(struct cmd_args *a)
{
	char *path = settings_cli_path(a->argv[0], a->argv[1], "/constants",
	    a->argv[2]);
	int rc = settings_cli_change(a, "PUT", path, json_pack("{s:s}", "value",
	    a->argv[3]));

	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_set_constant_entry = {
	"settings", "set-constant", "APP ENV NAME VALUE", "json", 4, 4,
	"set the value of a constant declared by the deployed package",
	"The value is checked against the constant's type (string, integer,\n"
	"decimal, boolean, datetime). The app sees it as NUBO_CONST_<NAME>\n"
	"after its next restart.",
	cmd_settings_set_constant_exec, 0,
};
