/* nubo settings event APP ENV NAME on|off */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "settings-cli.h"

static int
cmd_settings_event_exec(struct cmd_args *a)
{
	const char *st = a->argv[3];
	char *path;
	int rc, on;

	if (strcmp(st, "on") == 0 || strcmp(st, "enable") == 0)
		on = 1;
	else if (strcmp(st, "off") == 0 || strcmp(st, "disable") == 0)
		on = 0;
	else
		return out_usage(cmd_current, "'%s' is not on or off", st);
	path = settings_cli_path(a->argv[0], a->argv[1], "/scheduled-events",
	    a->argv[2]);
	rc = settings_cli_change(a, "PUT", path, json_pack("{s:b}", "enabled",
	    on));
	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_event_entry = {
	"settings", "event", "APP ENV NAME on|off", "json", 4, 4,
	"enable or disable a scheduled event of the deployed package",
	"An enabled event is triggered by the node on its interval with\n"
	"POST /_nubo/events/<name> to one instance.",
	cmd_settings_event_exec, 0,
};
