/* nubo envs stop APP ENV */
#include "envs-util.h"

static int
cmd_envs_stop_exec(struct cmd_args *a)
{
	return envs_util_action(a, "POST", "/stop", NULL, "stop");
}

const struct cmd_entry cmd_envs_stop_entry = {
	"envs", "stop", "APP ENV", "json", 2, 2,
	"stop an environment (SIGTERM, then SIGKILL after a grace time)",
	NULL,
	cmd_envs_stop_exec, 0,
};
