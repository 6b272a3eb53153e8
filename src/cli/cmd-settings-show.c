/* nubo settings show APP ENV [--json] */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "settings-cli.h"
#include "xmalloc.h"

/* One section as "  key  value" lines. */
static void
show_map(const char *title, json_t *m)
{
	const char *k;
	json_t *v;

	if (json_object_size(m) == 0)
		return;
	printf("%s:\n", title);
	json_object_foreach(m, k, v) {
		char *s = json_is_string(v) ? xstrdup(json_string_value(v)) :
		    json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		printf("  %-30s %s\n", k, s);
		free(s);
	}
}

static int
cmd_settings_show_exec(struct cmd_args *a)
{
	char *path = settings_cli_path(a->argv[0], a->argv[1], NULL, NULL);
	json_t *resp = NULL, *s, *v, *vars;
	const char *k;
	int rc = CLI_FAILED;

	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	rc = CLI_OK;
	if (out_maybe_json(a, resp) == CLI_OK)
		goto out;
	out_fields(resp, "environment,node,generation,state,restart_pending,"
	    "version,updated_at");
	s = json_object_get(resp, "settings");
	printf("\n");
	show_map("constants", json_object_get(s, "constants"));
	show_map("scheduled events", json_object_get(s, "scheduled_events"));
	show_map("custom domains", json_object_get(s, "domains"));
	show_map("access profiles", json_object_get(json_object_get(s,
	    "access"), "profiles"));
	show_map("access paths", json_object_get(json_object_get(s, "access"),
	    "paths"));
	show_map("response headers", json_object_get(s, "headers"));
	show_map("runtime", json_object_get(s, "runtime"));
	vars = json_object_get(s, "env_vars");
	if (json_object_size(vars)) {
		printf("environment variables:\n");
		json_object_foreach(vars, k, v)
			printf("  %-30s %s\n", k, jsonx_bool(v, "secret", 0) ?
			    "(secret)" : jsonx_str(v, "value"));
	}
	v = json_object_get(s, "maintenance_window");
	if (v && !json_is_null(v))
		printf("maintenance window:\n  %s %s UTC for %lld minutes%s\n",
		    jsonx_str(v, "day"), jsonx_str(v, "start"),
		    jsonx_int(v, "duration_minutes", 0),
		    jsonx_bool(v, "apply_pending_restarts", 0) ?
		    ", pending restarts applied in the window" : "");
out:
	json_decref(resp);
	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_show_entry = {
	"settings", "show", "APP ENV", "json", 2, 2,
	"show an environment's configuration (secrets masked)", NULL,
	cmd_settings_show_exec, 0,
};
