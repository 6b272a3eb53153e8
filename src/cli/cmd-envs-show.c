/* nubo envs show APP ENV */
#include <stdlib.h>

#include "envs-util.h"

static int
cmd_envs_show_exec(struct cmd_args *a)
{
	char *path = envs_util_path(a->argv[0], a->argv[1], NULL);
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		envs_util_print(resp);
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	return rc;
}

const struct cmd_entry cmd_envs_show_entry = {
	"envs", "show", "APP ENV", "json", 2, 2,
	"show an environment: state, package, instances, URL", NULL,
	cmd_envs_show_exec, 0,
};
