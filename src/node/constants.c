/* Model Options on the node: the deployed package's constant defaults, so
 * an app sees NUBO_CONST_<NAME> for every constant its manifest declares
 * even when the environment's settings set no value (SPEC §2). */
#include "node.h"

#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "util.h"
#include "xmalloc.h"

json_t *
constants_defaults(struct env *e)
{
	char *path = xasprintf("%s/app/nubo.json", e->dir);
	char *text = util_read_file(path, NUBO_MANIFEST_MAX, NULL), *p;
	json_t *m = text ? json_loads(text, 0, NULL) : NULL, *out = json_object();
	json_t *c, *d;
	size_t i;

	json_array_foreach(json_object_get(m, "constants"), i, c) {
		const char *name = jsonx_str(c, "name");
		char *key;

		d = json_object_get(c, "default");
		if (name == NULL || d == NULL || json_is_null(d))
			continue;
		key = xasprintf("NUBO_CONST_%s", name);
		for (p = key; *p; p++)
			if (*p == '.' || *p == '-')
				*p = '_';
		if (json_is_string(d))
			json_object_set(out, key, d);
		else if (json_is_boolean(d))
			json_object_set_new(out, key, json_string(json_is_true(d) ?
			    "true" : "false"));
		else if (json_is_integer(d))
			json_object_set_new(out, key, json_sprintf("%lld",
			    (long long)json_integer_value(d)));
		else if (json_is_real(d))
			json_object_set_new(out, key, json_sprintf("%.17g",
			    json_real_value(d)));
		free(key);
	}
	json_decref(m);
	free(text);
	free(path);
	return out;
}
