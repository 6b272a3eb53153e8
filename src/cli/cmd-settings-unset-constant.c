/* nubo settings unset-constant APP ENV NAME */
#include <stdlib.h>

#include "cli.h"
#include "settings-cli.h"

static int
cmd_settings_unset_constant_exec(struct cmd_args *a)
{
	char *path = settings_cli_path(a->argv[0], a->argv[1], "/constants",
	    a->argv[2]);
	int rc = settings_cli_change(a, "DELETE", path, NULL);

	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_unset_constant_entry = {
	"settings", "unset-constant", "APP ENV NAME", "json", 3, 3,
	"reset a constant to the package's default", NULL,
	cmd_settings_unset_constant_exec, 0,
};
