/* nubo envs scale APP ENV [--instances N] [--memory MB] */
#include <stdlib.h>

#include "envs-util.h"
#include "util.h"

static int
cmd_envs_scale_exec(struct cmd_args *a)
{
	const char *n = cmd_opt(a, "instances"), *mb = cmd_opt(a, "memory");
	json_t *body = json_object();
	long long v;

	if (n == NULL && mb == NULL) {
		json_decref(body);
		return out_usage(cmd_current, "give --instances and/or --memory");
	}
	if (n) {
		if (util_parse_int(n, 1, 1000, &v) == -1) {
			json_decref(body);
			return out_usage(cmd_current, "--instances wants a "
			    "number");
		}
		json_object_set_new(body, "instances", json_integer(v));
	}
	if (mb) {
		if (util_parse_int(mb, 1, 1 << 30, &v) == -1) {
			json_decref(body);
			return out_usage(cmd_current, "--memory wants "
			    "megabytes");
		}
		json_object_set_new(body, "memory_mb", json_integer(v));
	}
	return envs_util_action(a, "PUT", "/scale", body, "scale");
}

const struct cmd_entry cmd_envs_scale_entry = {
	"envs", "scale", "APP ENV", "instances=,memory=,json", 2, 2,
	"set the instances (v4) and memory per instance (MB)",
	"A running environment is scaled at once (new instances must answer\n"
	"their health check); a stopped one uses it at its next start. v3\n"
	"nodes run one instance.",
	cmd_envs_scale_exec, 0,
};
