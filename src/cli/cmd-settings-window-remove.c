/* nubo settings window-remove APP ENV */
#include <stdlib.h>

#include "cli.h"
#include "settings-cli.h"

static int
cmd_settings_window_remove_exec(struct cmd_args *a)
{
	char *path = settings_cli_path(a->argv[0], a->argv[1],
	    "/maintenance-window", NULL);
	int rc = settings_cli_change(a, "DELETE", path, NULL);

	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_window_remove_entry = {
	"settings", "window-remove", "APP ENV", "json", 2, 2,
	"remove the maintenance window", NULL,
	cmd_settings_window_remove_exec, 0,
};
