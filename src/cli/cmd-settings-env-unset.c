/* nubo settings env-unset APP ENV NAME */
#include <stdlib.h>

#include "cli.h"
#include "settings-cli.h"

static int
cmd_settings_env_unset_exec(struct cmd_args *a)
{
	char *path = settings_cli_path(a->argv[0], a->argv[1], "/env-vars",
	    a->argv[2]);
	int rc = settings_cli_change(a, "DELETE", path, NULL);

	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_env_unset_entry = {
	"settings", "env-unset", "APP ENV NAME", "json", 3, 3,
	"remove a custom environment variable", NULL,
	cmd_settings_env_unset_exec, 0,
};
