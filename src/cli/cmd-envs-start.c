/* nubo envs start APP ENV */
#include "envs-util.h"

static int
cmd_envs_start_exec(struct cmd_args *a)
{
	return envs_util_action(a, "POST", "/start", NULL, "start");
}

const struct cmd_entry cmd_envs_start_entry = {
	"envs", "start", "APP ENV", "json", 2, 2,
	"start an environment and wait until it is running",
	"Waits until every instance answers the health path of the package's\n"
	"manifest; a start that times out fails with the app's last log lines.",
	cmd_envs_start_exec, 0,
};
