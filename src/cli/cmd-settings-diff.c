/* nubo settings diff APP1 ENV1 APP2 ENV2 [--json] */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "settings-cli.h"
#include "xmalloc.h"

static char *
shown(json_t *v)
{
	if (v == NULL || json_is_null(v))
		return xstrdup("(not set)");
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int
cmd_settings_diff_exec(struct cmd_args *a)
{
	char *base = settings_cli_path(a->argv[0], a->argv[1], "/diff", NULL);
	char *oa = api_escape(a->argv[2]), *oe = api_escape(a->argv[3]);
	char *path = xasprintf("%s?app=%s&env=%s", base, oa, oe);
	json_t *resp = NULL, *d, *v;
	size_t i;
	int rc = CLI_FAILED;

	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	rc = CLI_OK;
	if (out_maybe_json(a, resp) == CLI_OK)
		goto out;
	d = json_object_get(resp, "differences");
	printf("a: %s %s (%s)\nb: %s %s (%s)\n", a->argv[0], a->argv[1],
	    jsonx_str(json_object_get(resp, "a"), "generation"), a->argv[2],
	    a->argv[3], jsonx_str(json_object_get(resp, "b"), "generation"));
	if (json_array_size(d) == 0)
		printf("no differences\n");
	json_array_foreach(d, i, v) {
		char *x = shown(json_object_get(v, "a"));
		char *y = shown(json_object_get(v, "b"));

		printf("%s\n  a: %s\n  b: %s\n", jsonx_str(v, "setting"), x, y);
		free(x);
		free(y);
	}
	d = json_object_get(resp, "unsupported");
	if (json_array_size(d))
		printf("cannot exist on the other side:\n");
	json_array_foreach(d, i, v)
		printf("  %s (only in %s): %s\n", jsonx_str(v, "setting"),
		    jsonx_str(v, "side"), jsonx_str(v, "reason"));
out:
	json_decref(resp);
	free(path);
	free(oa);
	free(oe);
	free(base);
	return rc;
}

const struct cmd_entry cmd_settings_diff_entry = {
	"settings", "diff", "APP1 ENV1 APP2 ENV2", "json", 4, 4,
	"compare the configurations of two environments (any nodes, any "
	"generations)",
	"Lists each setting that differs (secret values are compared but never\n"
	"shown) and each setting that cannot exist on the other side, such as\n"
	"v4-only headers when the other environment is on a v3 node.",
	cmd_settings_diff_exec, 0,
};
