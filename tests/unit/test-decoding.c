/* decoding_parse(): test_decoding's lines as PostgreSQL 15 printed them
 * (captured from a real slot: quoted names, values holding quotes,
 * brackets and "]:", NULL, NaN, arrays, bytea, a composite key changed),
 * and lines it must refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "decoding.h"

/* line parsed as a change: its kind and table checked */
static void
change(const char *line, char kind, const char *table,
    struct decoding_change *c)
{
	char *cause = NULL;
	int rc = decoding_parse(line, c, &cause);

	if (rc != 1)
		fail_msg("%s: %d (%s)", line, rc, cause ? cause : "-");
	assert_int_equal(c->kind, kind);
	assert_string_equal(c->table, table);
}

static void
value(json_t *cols, const char *col, const char *want)
{
	json_t *v = json_object_get(cols, col);

	if (!json_is_string(v) || strcmp(json_string_value(v), want) != 0)
		fail_msg("column %s: %s, not %s", col, json_is_string(v) ?
		    json_string_value(v) : "(not text)", want);
}

static void
test_insert(void **state)
{
	struct decoding_change c;

	(void)state;
	change("table public.\"we\"\"ird tab\": INSERT: \"I d\"[bigint]:1 "
	    "\"tex t\"[text]:'it''s a \"test\" \\ with: colon] and ]: bracket' "
	    "n[numeric]:1.5 arr[integer[]]:'{1,2}' b[bytea]:'\\x00ff' "
	    "j[jsonb]:'{\"a\": \"b c\"}'", 'I', "public.\"we\"\"ird tab\"", &c);
	assert_null(c.old);
	assert_int_equal(json_object_size(c.row), 6);
	value(c.row, "I d", "1");
	value(c.row, "tex t", "it's a \"test\" \\ with: colon] and ]: bracket");
	value(c.row, "n", "1.5");
	value(c.row, "arr", "{1,2}");
	value(c.row, "b", "\\x00ff");
	value(c.row, "j", "{\"a\": \"b c\"}");
	decoding_change_free(&c);

	change("table public.\"we\"\"ird tab\": INSERT: \"I d\"[bigint]:2 "
	    "\"tex t\"[text]:null n[numeric]:NaN arr[integer[]]:null "
	    "b[bytea]:null j[jsonb]:null", 'I', "public.\"we\"\"ird tab\"", &c);
	assert_true(json_is_null(json_object_get(c.row, "tex t")));
	value(c.row, "n", "NaN");
	decoding_change_free(&c);

	/* a literal 'null' is text, B'…' a bit string, a kept TOAST value */
	change("table s.t: INSERT: a[text]:'null' b[bit(3)]:B'101' "
	    "c[text]:unchanged-toast-datum d[\"my\"\"type\"]:'x]: y'", 'I',
	    "s.t", &c);
	value(c.row, "a", "null");
	value(c.row, "b", "101");
	assert_true(json_is_true(json_object_get(c.row, "c")));
	value(c.row, "d", "x]: y");
	decoding_change_free(&c);
}

static void
test_update_delete(void **state)
{
	struct decoding_change c;

	(void)state;
	change("table public.\"we\"\"ird tab\": UPDATE: \"I d\"[bigint]:1 "
	    "\"tex t\"[text]:'x' n[numeric]:1.5", 'U',
	    "public.\"we\"\"ird tab\"", &c);
	assert_null(c.old);
	value(c.row, "I d", "1");
	decoding_change_free(&c);

	change("table public.\"we\"\"ird tab\": UPDATE: old-key: "
	    "\"I d\"[bigint]:2 new-tuple: \"I d\"[bigint]:3 \"tex t\"[text]:null",
	    'U', "public.\"we\"\"ird tab\"", &c);
	assert_int_equal(json_object_size(c.old), 1);
	value(c.old, "I d", "2");
	value(c.row, "I d", "3");
	decoding_change_free(&c);

	change("table public.t2: UPDATE: old-key: a[text]:'k''1 ]: x' "
	    "b[integer]:5 new-tuple: a[text]:'k''1 ]: x' b[integer]:6 "
	    "c[timestamp with time zone]:'2026-01-01 00:00:00+00' "
	    "v[text]:'short'", 'U', "public.t2", &c);
	value(c.old, "a", "k'1 ]: x");
	value(c.old, "b", "5");
	value(c.row, "b", "6");
	value(c.row, "c", "2026-01-01 00:00:00+00");
	decoding_change_free(&c);

	change("table public.t2: DELETE: a[text]:'k''1 ]: x' b[integer]:6",
	    'D', "public.t2", &c);
	assert_null(c.row);
	value(c.old, "a", "k'1 ]: x");
	value(c.old, "b", "6");
	decoding_change_free(&c);

	/* a table without a key: nothing to name the row by */
	change("table public.t3: DELETE: (no-tuple-data)", 'D', "public.t3",
	    &c);
	assert_int_equal(json_object_size(c.old), 0);
	decoding_change_free(&c);

	change("table public.t3: TRUNCATE: (no-flags)", 'T', "public.t3", &c);
	assert_null(c.old);
	assert_null(c.row);
	decoding_change_free(&c);
}

static void
test_not_changes(void **state)
{
	struct decoding_change c;
	char *cause = NULL;

	(void)state;
	assert_int_equal(decoding_parse("BEGIN", &c, &cause), 0);
	assert_int_equal(decoding_parse("COMMIT", &c, &cause), 0);
	assert_int_equal(decoding_parse("message: transactional: 1 prefix: "
	    "x, sz: 1 content:y", &c, &cause), 0);
	assert_null(cause);
}

static void
test_refused(void **state)
{
	static const char *bad[] = {
		"table public.x: FROB: a[int]:1",
		"table public.x INSERT: a[int]:1",
		"table publicx: INSERT: a[int]:1",
		"table \"unterminated: INSERT: a[int]:1",
		"table public.x: INSERT: a[int:1",
		"table public.x: INSERT: a[int]1",
		"table public.x: INSERT: a[text]:'unterminated",
		"table public.x: INSERT: a[text]:'x'y",
		"table public.x: INSERT: a[text]:'x'b[int]:1",
		"table public.x: INSERT: [int]:1",
		"table public.x: INSERT: a[int]:",
		"table public.x: INSERT: a[\"t]:1",
		"table public.x: UPDATE: old-key: a[int]:1",
		"table public.x: INSERT: a[text]:'\xff\xfe'",
		"table : INSERT: a[int]:1",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct decoding_change c;
		char *cause = NULL;

		if (decoding_parse(bad[i], &c, &cause) != -1)
			fail_msg("taken: %s", bad[i]);
		assert_non_null(cause);
		assert_null(c.table);
		free(cause);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_insert),
		cmocka_unit_test(test_update_delete),
		cmocka_unit_test(test_not_changes),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
