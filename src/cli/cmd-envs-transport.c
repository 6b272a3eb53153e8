/* nubo envs transport APP ENV PACKAGE */
#include "envs-util.h"

static int
cmd_envs_transport_exec(struct cmd_args *a)
{
	return envs_util_action(a, "POST", "/transport", json_pack("{s:s}",
	    "package", a->argv[2]), "transport");
}

const struct cmd_entry cmd_envs_transport_entry = {
	"envs", "transport", "APP ENV PACKAGE", "json", 3, 3,
	"deploy a package of the node's repository to a stopped environment",
	"PACKAGE is a package id as 'nubo packages list' shows it. The\n"
	"environment must be stopped; start it afterwards.",
	cmd_envs_transport_exec, 0,
};
