/* Model Options on the node: the deployed package's constant defaults, so
 * an app sees NUBO_CONST_<NAME> for every constant its manifest declares
 * even when the environment's settings set no value (SPEC §2); a constant
 * declared without a default needs a value from the settings before the
 * environment starts. */
#include "node.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "jsonx.h"
#include "util.h"
#include "xmalloc.h"

/* NUBO_CONST_<name>, as the portal names it (settings.c). */
static char *
constants_env_name(const char *name)
{
	char *key = xasprintf("NUBO_CONST_%s", name), *p;

	for (p = key; *p; p++)
		if (*p == '.' || *p == '-')
			*p = '_';
	return key;
}

int
constants_missing(struct env *e, char **cause)
{
	char *path = xasprintf("%s/app/nubo.json", e->dir);
	char *text = util_read_file(path, NUBO_MANIFEST_MAX, NULL);
	json_t *m = text ? json_loads(text, 0, NULL) : NULL, *c, *d;
	json_t *set = json_object_get(e->spec, "env");
	struct buf names;
	size_t i;
	int rc = 0;

	buf_init(&names, 0);
	json_array_foreach(json_object_get(m, "constants"), i, c) {
		const char *name = jsonx_str(c, "name");
		char *key;

		d = json_object_get(c, "default");
		if (name == NULL || (d != NULL && !json_is_null(d)))
			continue;
		key = constants_env_name(name);
		if (!json_is_string(json_object_get(set, key)))
			buf_printf(&names, "%s'%s'", names.len ? ", " : "",
			    name);
		free(key);
	}
	if (names.len > 0) {
		*cause = xasprintf("cannot start '%s': the package declares "
		    "constant %s without a default and the environment sets "
		    "no value (nubo settings set-constant APP ENV NAME VALUE)",
		    env_name(e), buf_cstr(&names));
		rc = -1;
	}
	buf_release(&names);
	json_decref(m);
	free(text);
	free(path);
	return rc;
}

json_t *
constants_defaults(struct env *e)
{
	char *path = xasprintf("%s/app/nubo.json", e->dir);
	char *text = util_read_file(path, NUBO_MANIFEST_MAX, NULL);
	json_t *m = text ? json_loads(text, 0, NULL) : NULL, *out = json_object();
	json_t *c, *d;
	size_t i;

	json_array_foreach(json_object_get(m, "constants"), i, c) {
		const char *name = jsonx_str(c, "name");
		char *key;

		d = json_object_get(c, "default");
		if (name == NULL || d == NULL || json_is_null(d))
			continue;
		key = constants_env_name(name);
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
