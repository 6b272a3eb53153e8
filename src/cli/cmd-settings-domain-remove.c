/* nubo settings domain-remove APP ENV DOMAIN */
#include <stdlib.h>

#include "cli.h"
#include "settings-cli.h"

static int
cmd_settings_domain_remove_exec(struct cmd_args *a)
{
	char *path = settings_cli_path(a->argv[0], a->argv[1], "/domains",
	    a->argv[2]);
	int rc = settings_cli_change(a, "DELETE", path, NULL);

	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_domain_remove_entry = {
	"settings", "domain-remove", "APP ENV DOMAIN", "json", 3, 3,
	"remove a custom domain", NULL, cmd_settings_domain_remove_exec, 0,
};
