#include "jsonx.h"

#include <stdlib.h>
#include <string.h>

#include "nubo_limits.h"
#include "util.h"
#include "xmalloc.h"

int
jsonx_depth(json_t *v)
{
	int max = 0, d;

	if (json_is_object(v)) {
		const char *k;
		json_t *c;

		json_object_foreach(v, k, c) {
			d = jsonx_depth(c);
			if (d > max)
				max = d;
			if (max > NUBO_JSON_DEPTH_MAX)
				break;
		}
		return max + 1;
	}
	if (json_is_array(v)) {
		size_t i;
		json_t *c;

		json_array_foreach(v, i, c) {
			d = jsonx_depth(c);
			if (d > max)
				max = d;
			if (max > NUBO_JSON_DEPTH_MAX)
				break;
		}
		return max + 1;
	}
	return 0;
}

json_t *
jsonx_parse_object(const char *data, size_t len, char **cause)
{
	json_error_t err;
	json_t *v;

	if (len > NUBO_JSON_BODY_MAX) {
		*cause = xasprintf("body larger than %d bytes", NUBO_JSON_BODY_MAX);
		return NULL;
	}
	v = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err);
	if (v == NULL) {
		*cause = xasprintf("malformed JSON at line %d column %d: %s",
		    err.line, err.column, err.text);
		return NULL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		*cause = xstrdup("body must be a JSON object");
		return NULL;
	}
	if (jsonx_depth(v) > NUBO_JSON_DEPTH_MAX) {
		json_decref(v);
		*cause = xasprintf("JSON nested deeper than %d levels",
		    NUBO_JSON_DEPTH_MAX);
		return NULL;
	}
	return v;
}

static const char *
jtype_name(enum jtype t)
{
	switch (t) {
	case JT_STRING: return "a string";
	case JT_INT: return "an integer";
	case JT_NUMBER: return "a number";
	case JT_BOOL: return "a boolean";
	case JT_OBJECT: return "an object";
	case JT_ARRAY: return "an array";
	case JT_ANY: return "a value";
	}
	return "a value";
}

static int
jtype_match(json_t *v, enum jtype t)
{
	switch (t) {
	case JT_STRING: return json_is_string(v);
	case JT_INT: return json_is_integer(v);
	case JT_NUMBER: return json_is_number(v);
	case JT_BOOL: return json_is_boolean(v);
	case JT_OBJECT: return json_is_object(v);
	case JT_ARRAY: return json_is_array(v);
	case JT_ANY: return 1;
	}
	return 0;
}

/* jsonx_check(), and jsonx_check_known() when unknown is not NULL. */
static int
check_fields(json_t *obj, const struct jfield *fields, const char **unknown,
    char **cause)
{
	const struct jfield *f;
	const char *key;
	json_t *v;

	if (unknown != NULL)
		*unknown = NULL;
	json_object_foreach(obj, key, v) {
		for (f = fields; f->name; f++)
			if (strcmp(f->name, key) == 0)
				break;
		if (f->name == NULL && unknown != NULL) {
			if (*unknown == NULL)
				*unknown = key;
			continue;
		}
		if (f->name == NULL) {
			*cause = xasprintf("unknown field '%s'", key);
			return -1;
		}
		if (!jtype_match(v, f->type)) {
			*cause = xasprintf("field '%s' must be %s", key,
			    jtype_name(f->type));
			return -1;
		}
		if (json_is_array(v) && json_array_size(v) > NUBO_LIST_MAX) {
			*cause = xasprintf("field '%s' has more than %d items", key,
			    NUBO_LIST_MAX);
			return -1;
		}
	}
	for (f = fields; f->name; f++) {
		if (f->required && json_object_get(obj, f->name) == NULL) {
			*cause = xasprintf("missing field '%s'", f->name);
			return -1;
		}
	}
	return 0;
}

int
jsonx_check(json_t *obj, const struct jfield *fields, char **cause)
{
	return check_fields(obj, fields, NULL, cause);
}

int
jsonx_check_known(json_t *obj, const struct jfield *fields,
    const char **unknown, char **cause)
{
	return check_fields(obj, fields, unknown, cause);
}

const char *
jsonx_str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

long long
jsonx_int(json_t *obj, const char *key, long long dflt)
{
	json_t *v = json_object_get(obj, key);

	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

int
jsonx_bool(json_t *obj, const char *key, int dflt)
{
	json_t *v = json_object_get(obj, key);

	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

int
jsonx_save(const char *path, json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	int rc = util_write_file(path, text, strlen(text), 0600);

	free(text);
	return rc;
}
