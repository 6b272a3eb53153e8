/* nubo settings header-set APP ENV NAME VALUE */
#include <stdlib.h>

#include "cli.h"
#include "settings-cli.h"

static int
cmd_settings_header_set_exec(struct cmd_args *a)
{
	char *path = settings_cli_path(a->argv[0], a->argv[1], "/headers",
	    a->argv[2]);
	int rc = settings_cli_change(a, "PUT", path, json_pack("{s:s}", "value",
	    a->argv[3]));

	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_header_set_entry = {
	"settings", "header-set", "APP ENV NAME VALUE", "json", 4, 4,
	"set an HTTP response header the router adds",
	"v3 nodes allow X-Frame-Options only; v4 nodes also\n"
	"Access-Control-Allow-Origin, Content-Security-Policy, Referrer-Policy,\n"
	"X-Content-Type-Options, X-Permitted-Cross-Domain-Policies and\n"
	"X-XSS-Protection.",
	cmd_settings_header_set_exec, 0,
};
