/* nubo settings window APP ENV DAY HH:MM MINUTES [--apply-pending] */
#include <stdlib.h>

#include "cli.h"
#include "settings-cli.h"
#include "util.h"

static int
cmd_settings_window_exec(struct cmd_args *a)
{
	long long minutes;
	char *path;
	int rc;

	if (util_parse_int(a->argv[4], 0, 100000, &minutes) == -1)
		return out_usage(cmd_current, "'%s' is not a number of minutes",
		    a->argv[4]);
	path = settings_cli_path(a->argv[0], a->argv[1], "/maintenance-window",
	    NULL);
	rc = settings_cli_change(a, "PUT", path, json_pack("{s:s,s:s,s:I,s:b}",
	    "day", a->argv[2], "start", a->argv[3], "duration_minutes",
	    (json_int_t)minutes, "apply_pending_restarts",
	    cmd_flag(a, "apply-pending")));
	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_window_entry = {
	"settings", "window", "APP ENV DAY HH:MM MINUTES",
	"apply-pending,json", 5, 5,
	"set the weekly maintenance window (start in UTC)",
	"DAY is monday … sunday (or mon … sun); MINUTES is 30 … 1440. With\n"
	"--apply-pending, pending restarts are applied in the window.",
	cmd_settings_window_exec, 0,
};
