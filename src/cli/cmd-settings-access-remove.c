/* nubo settings access-remove APP ENV PROFILE */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "settings-cli.h"

static int
cmd_settings_access_remove_exec(struct cmd_args *a)
{
	const char *profile = a->argv[2];
	char *path = settings_cli_path(a->argv[0], a->argv[1], NULL, NULL);
	char *put = settings_cli_path(a->argv[0], a->argv[1], "/access", NULL);
	json_t *resp = NULL, *access, *paths, *v;
	const char *k;
	void *tmp;
	int rc = CLI_FAILED;

	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	access = json_object_get(json_object_get(resp, "settings"), "access");
	if (json_object_get(json_object_get(access, "profiles"), profile)
	    == NULL) {
		rc = out_fail("environment '%s' has no access profile '%s'",
		    a->argv[1], profile);
		goto out;
	}
	access = json_deep_copy(access);
	json_object_del(json_object_get(access, "profiles"), profile);
	paths = json_object_get(access, "paths");
	json_object_foreach_safe(paths, tmp, k, v)
		if (json_is_string(v) && strcmp(json_string_value(v), profile)
		    == 0)
			json_object_del(paths, k);
	rc = settings_cli_change(a, "PUT", put, access);
out:
	json_decref(resp);
	free(put);
	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_access_remove_entry = {
	"settings", "access-remove", "APP ENV PROFILE", "json", 3, 3,
	"remove an access restriction profile and the paths it applies to",
	NULL, cmd_settings_access_remove_exec, 0,
};
