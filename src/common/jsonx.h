/* Strict JSON input: size and depth capped, duplicate keys rejected, and
 * every write body checked against a field list (unknown fields rejected). */
#ifndef NUBO_JSONX_H
#define NUBO_JSONX_H

#include <stddef.h>

#include <jansson.h>

enum jtype { JT_STRING, JT_INT, JT_NUMBER, JT_BOOL, JT_OBJECT, JT_ARRAY, JT_ANY };

struct jfield {
	const char	*name;
	enum jtype	 type;
	int		 required;
};

/* Parse a request body. NULL with *cause set ("malformed JSON at line 1…",
 * "JSON nested deeper than 32 levels", "body must be a JSON object"). */
json_t *jsonx_parse_object(const char *data, size_t len, char **cause);
/* 0 when obj has only listed fields, of the right types, and all required
 * ones; -1 with *cause naming the field otherwise. fields ends with {NULL}. */
int jsonx_check(json_t *obj, const struct jfield *fields, char **cause);
/* jsonx_check() for node->portal protocol bodies, which a newer node may
 * send with fields this side does not know: those are skipped (*unknown
 * gets the first one's name, else NULL); known fields are still checked
 * for type and presence. */
int jsonx_check_known(json_t *obj, const struct jfield *fields,
    const char **unknown, char **cause);
/* Depth of a JSON value (a scalar is 0). */
int jsonx_depth(json_t *v);

/* Accessors that tolerate absent keys. */
const char *jsonx_str(json_t *obj, const char *key);
long long jsonx_int(json_t *obj, const char *key, long long dflt);
int jsonx_bool(json_t *obj, const char *key, int dflt);

/* j written to path compact, keys sorted, atomically and durably
 * (util_write_file()): a node's small state files. 0, or -1 (errno). */
int jsonx_save(const char *path, json_t *j);

#endif
