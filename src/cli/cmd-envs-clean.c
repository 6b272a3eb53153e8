/* nubo envs clean APP ENV --yes */
#include "envs-util.h"

static int
cmd_envs_clean_exec(struct cmd_args *a)
{
	if (!cmd_flag(a, "yes"))
		return out_usage(cmd_current, "clean wipes the database and "
		    "files of %s; add --yes to confirm", a->argv[1]);
	return envs_util_action(a, "POST", "/clean", NULL, "clean");
}

const struct cmd_entry cmd_envs_clean_entry = {
	"envs", "clean", "APP ENV", "yes,json", 2, 2,
	"wipe an environment's database and files (stopped only)",
	"Everything the app stored is gone afterwards; take a backup first.\n"
	"Needs --yes.",
	cmd_envs_clean_exec, 0,
};
