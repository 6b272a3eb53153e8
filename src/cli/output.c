/* CLI output: tables for people, JSON with --json, errors on stderr. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "xmalloc.h"

/* A JSON value as one table cell (caller frees). */
static char *
cell(json_t *v)
{
	if (v == NULL || json_is_null(v))
		return xstrdup("-");
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	if (json_is_true(v))
		return xstrdup("yes");
	if (json_is_false(v))
		return xstrdup("no");
	if (json_is_integer(v))
		return xasprintf("%lld", (long long)json_integer_value(v));
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

void
out_table(json_t *rows, const char *columns)
{
	char *spec = xstrdup(columns), *tok, *save = NULL;
	const char *keys[32], *heads[32];
	size_t width[32], i, ncol = 0, r;
	json_t *row;

	for (tok = strtok_r(spec, ",", &save); tok && ncol < 32;
	    tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');

		if (colon)
			*colon = '\0';
		keys[ncol] = tok;
		heads[ncol] = colon ? colon + 1 : tok;
		width[ncol] = strlen(heads[ncol]);
		ncol++;
	}
	json_array_foreach(rows, r, row) {
		for (i = 0; i < ncol; i++) {
			char *c = cell(json_object_get(row, keys[i]));

			if (strlen(c) > width[i])
				width[i] = strlen(c);
			free(c);
		}
	}
	for (i = 0; i < ncol; i++)
		printf("%-*s%s", (int)width[i], heads[i],
		    i + 1 < ncol ? "  " : "\n");
	json_array_foreach(rows, r, row) {
		for (i = 0; i < ncol; i++) {
			char *c = cell(json_object_get(row, keys[i]));

			printf("%-*s%s", (int)width[i], c,
			    i + 1 < ncol ? "  " : "\n");
			free(c);
		}
	}
	free(spec);
}

void
out_fields(json_t *obj, const char *keys)
{
	const char *k;
	json_t *v;

	if (keys) {
		char *spec = xstrdup(keys), *tok, *save = NULL;

		for (tok = strtok_r(spec, ",", &save); tok;
		    tok = strtok_r(NULL, ",", &save)) {
			char *c = cell(json_object_get(obj, tok));

			printf("%-20s %s\n", tok, c);
			free(c);
		}
		free(spec);
		return;
	}
	json_object_foreach(obj, k, v) {
		char *c = cell(v);

		printf("%-20s %s\n", k, c);
		free(c);
	}
}

void
out_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
	putchar('\n');
}

int
out_maybe_json(struct cmd_args *a, json_t *v)
{
	if (!cmd_flag(a, "json"))
		return -1;
	out_json(v);
	return CLI_OK;
}

int
out_confirm(struct cmd_args *a, const char *subdomain, const char *warning,
    int *rc)
{
	char line[256];

	*rc = CLI_FAILED;
	if (cmd_flag(a, "yes"))
		return 1;
	if (!isatty(STDIN_FILENO)) {
		*rc = out_usage(cmd_current, "%s: pass --yes to confirm",
		    warning);
		return 0;
	}
	fprintf(stderr, "%s.\nType the app's subdomain to confirm: ",
	    warning);
	if (fgets(line, sizeof line, stdin) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strcmp(line, subdomain) == 0)
			return 1;
	}
	out_fail("%s", "not confirmed; nothing changed");
	return 0;
}

int
out_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("nubo: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_FAILED;
}
