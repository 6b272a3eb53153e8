/* test_decoding's output read back (decoding.h). What it prints, per
 * contrib/test_decoding/test_decoding.c of PostgreSQL 15:
 *
 *   table SCHEMA.NAME: INSERT: COLUMN[TYPE]:VALUE …
 *   table SCHEMA.NAME: UPDATE: [old-key: COLUMN[TYPE]:VALUE … new-tuple:] …
 *   table SCHEMA.NAME: DELETE: COLUMN[TYPE]:VALUE …  | (no-tuple-data)
 *   table SCHEMA.NAME: TRUNCATE: (no-flags) | restart_seqs | cascade …
 *
 * names quoted as quote_identifier() does ("a""b"), TYPE as format_type()
 * writes it (it may hold spaces, brackets and quotes), VALUE one of
 * null, unchanged-toast-datum, a number, true or false as printed, B'…'
 * for bit strings, or a literal in single quotes with ' doubled. */
#include <stdlib.h>
#include <string.h>

#include "decoding.h"
#include "xmalloc.h"

/* A quoted string at *p (quote q, doubled inside), unquoted; *p past it.
 * NULL when it does not end. */
static char *
unquote(const char **p, char q)
{
	const char *s = *p + 1;
	char *out = xmalloc(strlen(s) + 1), *o = out;

	for (;;) {
		if (*s == '\0') {
			free(out);
			return NULL;
		}
		if (*s == q && s[1] == q) {
			*o++ = q;
			s += 2;
		} else if (*s == q) {
			break;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	*p = s + 1;
	return out;
}

/* An identifier at *p, as quote_identifier() wrote it, up to one of
 * stops; *p past it. NULL when there is none. */
static char *
identifier(const char **p, const char *stops)
{
	size_t n;
	char *out;

	if (**p == '"')
		return unquote(p, '"');
	n = strcspn(*p, stops);
	if (n == 0)
		return NULL;
	out = xstrndup(*p, n);
	*p += n;
	return out;
}

/* The columns at *p until the end or the word stop ("new-tuple:"):
 * {column: value}. NULL with *cause. */
static json_t *
columns(const char **p, const char *stop, char **cause)
{
	json_t *out = json_object();
	const char *s = *p;

	while (*s == ' ')
		s++;
	if (strcmp(s, "(no-tuple-data)") == 0) {
		*p = s + strlen(s);
		return out;
	}
	while (*s && !(stop && strncmp(s, stop, strlen(stop)) == 0)) {
		char *name = identifier(&s, "["), *value = NULL;
		json_t *v;
		int quoted = 0;

		/* [TYPE]: the first "]:" outside quotes */
		if (name == NULL || *s != '[')
			goto bad;
		for (s++; *s && !(s[0] == ']' && s[1] == ':'); s++)
			if (*s == '"') {
				while (*++s && *s != '"')
					;
				if (*s == '\0')
					break;
			}
		if (*s == '\0')
			goto bad;
		s += 2;
		if (*s == '\'' || (s[0] == 'B' && s[1] == '\'')) {
			s += *s == 'B';
			value = unquote(&s, '\'');
			quoted = 1;
		} else {
			size_t n = strcspn(s, " ");

			value = n ? xstrndup(s, n) : NULL;
			s += n;
		}
		if (value == NULL || (*s != ' ' && *s != '\0')) {
			free(value);
			goto bad;
		}
		if (!quoted && strcmp(value, "null") == 0)
			v = json_null();
		else if (!quoted && strcmp(value, "unchanged-toast-datum") == 0)
			v = json_true();
		else
			v = json_string(value);
		if (v == NULL) {	/* not UTF-8: the database's bytes */
			free(value);
			goto bad;
		}
		json_object_set_new(out, name, v);
		free(name);
		free(value);
		while (*s == ' ')
			s++;
		continue;
bad:
		*cause = xasprintf("cannot read the column at \"%.40s\"", s);
		free(name);
		json_decref(out);
		return NULL;
	}
	*p = s;
	return out;
}

int
decoding_parse(const char *line, struct decoding_change *c, char **cause)
{
	static const struct { const char *word; char kind; } kinds[] = {
		{ "INSERT:", 'I' }, { "UPDATE:", 'U' }, { "DELETE:", 'D' },
		{ "TRUNCATE:", 'T' } };
	const char *s = line, *start;
	char *schema = NULL, *name = NULL;
	size_t i;

	memset(c, 0, sizeof *c);
	if (strncmp(s, "table ", 6) != 0)
		return 0;
	start = s += 6;
	if ((schema = identifier(&s, ".")) == NULL || *s++ != '.' ||
	    (name = identifier(&s, ":")) == NULL || strncmp(s, ": ", 2) != 0)
		goto bad;
	/* as printed: quote_identifier() of each part, as format('%I.%I') */
	c->table = xstrndup(start, (size_t)(s - start));
	s += 2;
	for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (strncmp(s, kinds[i].word, strlen(kinds[i].word)) == 0)
			break;
	if (i == sizeof kinds / sizeof kinds[0])
		goto bad;
	c->kind = kinds[i].kind;
	s += strlen(kinds[i].word);
	free(schema);
	free(name);
	schema = name = NULL;
	if (c->kind == 'T')
		return 1;
	while (*s == ' ')
		s++;
	if (c->kind == 'U' && strncmp(s, "old-key:", 8) == 0) {
		s += 8;
		if ((c->old = columns(&s, "new-tuple:", cause)) == NULL)
			goto fail;
		if (strncmp(s, "new-tuple:", 10) != 0)
			goto bad;
		s += 10;
	}
	if (c->kind == 'D')
		c->old = columns(&s, NULL, cause);
	else
		c->row = columns(&s, NULL, cause);
	if (c->old == NULL && c->row == NULL)
		goto fail;
	return 1;
bad:
	*cause = xasprintf("not a change test_decoding writes: \"%.60s\"",
	    line);
fail:
	free(schema);
	free(name);
	decoding_change_free(c);
	return -1;
}

void
decoding_change_free(struct decoding_change *c)
{
	free(c->table);
	json_decref(c->old);
	json_decref(c->row);
	memset(c, 0, sizeof *c);
}
