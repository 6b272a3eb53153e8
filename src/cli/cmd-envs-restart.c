/* nubo envs restart APP ENV */
#include "envs-util.h"

static int
cmd_envs_restart_exec(struct cmd_args *a)
{
	return envs_util_action(a, "POST", "/restart", NULL, "restart");
}

const struct cmd_entry cmd_envs_restart_entry = {
	"envs", "restart", "APP ENV", "json", 2, 2,
	"stop and start an environment",
	NULL,
	cmd_envs_restart_exec, 0,
};
