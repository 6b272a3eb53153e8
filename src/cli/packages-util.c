/* Shared by the `nubo packages …` commands. */
#include "packages-util.h"

#include <stdlib.h>

#include "xmalloc.h"

char *
packages_util_path(struct cmd_args *a, int want, const char *suffix, int *rc)
{
	const char *app = cmd_opt(a, "app");
	char *esc, *path;

	if (a->argc != want + (app ? 0 : 1)) {
		*rc = out_usage(cmd_current, app ? "--app APP replaces NODE" :
		    "give NODE, or --app APP");
		return NULL;
	}
	esc = api_escape(app ? app : a->argv[0]);
	path = xasprintf("/%s/%s/packages%s", app ? "apps" : "nodes", esc,
	    suffix);
	free(esc);
	return path;
}

void
packages_util_fix_rows(json_t *rows)
{
	json_t *row, *e;
	size_t i, j;

	json_array_foreach(rows, i, row) {
		char *s = xstrdup(""), *t;

		json_array_foreach(json_object_get(row, "environments"), j, e) {
			t = xasprintf("%s%s%s (%s)", s, *s ? ", " : "",
			    jsonx_str(e, "name"), jsonx_str(e, "state"));
			free(s);
			s = t;
		}
		json_object_set_new(row, "deployed_to", json_string(s));
		free(s);
	}
}
