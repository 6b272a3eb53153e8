/* nubo settings runtime APP ENV [--instances N] [--memory MB]
 *     [--set KEY=VALUE]… [--unset KEY]… */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "settings-cli.h"
#include "util.h"
#include "xmalloc.h"

static int
cmd_settings_runtime_exec(struct cmd_args *a)
{
	const char *vals[CLI_MAXOPTS], *v;
	json_t *body = json_object(), *set = json_object();
	long long n;
	int i, k;
	char *path;

	if ((v = cmd_opt(a, "instances")) != NULL) {
		if (util_parse_int(v, 1, 1000000, &n) == -1)
			goto usage;
		json_object_set_new(body, "instances", json_integer(n));
	}
	if ((v = cmd_opt(a, "memory")) != NULL) {
		if (util_parse_int(v, 1, 100000000, &n) == -1)
			goto usage;
		json_object_set_new(body, "memory_mb", json_integer(n));
	}
	k = cmd_opt_all(a, "set", vals, CLI_MAXOPTS);
	for (i = 0; i < k; i++) {
		const char *eq = strchr(vals[i], '=');
		char *key;

		if (eq == NULL || eq == vals[i]) {
			json_decref(body);
			json_decref(set);
			return out_usage(cmd_current, "--set wants KEY=VALUE");
		}
		key = xstrndup(vals[i], (size_t)(eq - vals[i]));
		json_object_set_new(set, key, json_string(eq + 1));
		free(key);
	}
	k = cmd_opt_all(a, "unset", vals, CLI_MAXOPTS);
	for (i = 0; i < k; i++)
		json_object_set_new(set, vals[i], json_null());
	if (json_object_size(set))
		json_object_set(body, "settings", set);
	json_decref(set);
	if (json_object_size(body) == 0) {
		json_decref(body);
		return out_usage(cmd_current, "nothing to change");
	}
	path = settings_cli_path(a->argv[0], a->argv[1], "/runtime", NULL);
	i = settings_cli_change(a, "PATCH", path, body);
	free(path);
	return i;
usage:
	json_decref(body);
	json_decref(set);
	return out_usage(cmd_current, "'%s' is not a positive number", v);
}

const struct cmd_entry cmd_settings_runtime_entry = {
	"settings", "runtime", "APP ENV",
	"instances=,memory=,set=,unset=,json", 2, 2,
	"change instances, memory per instance (v4) and custom runtime "
	"settings",
	"--set KEY=VALUE and --unset KEY may repeat. Runtime settings reach\n"
	"the app as NUBO_RUNTIME_<KEY> after its next restart.",
	cmd_settings_runtime_exec, 0,
};
