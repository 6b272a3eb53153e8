/* Strict JSON input: SPEC §6 malformed, nested, oversized, unknown fields,
 * wrong types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonx.h"
#include "nubo_limits.h"
#include "util.h"

static const struct jfield fields[] = {
	{ "name", JT_STRING, 1 }, { "count", JT_INT, 0 },
	{ "on", JT_BOOL, 0 }, { NULL } };

static json_t *
parse(const char *s, char **cause)
{
	*cause = NULL;
	return jsonx_parse_object(s, strlen(s), cause);
}

static void
test_malformed(void **state)
{
	char *cause;

	(void)state;
	assert_null(parse("{\"name\":", &cause));
	assert_non_null(strstr(cause, "malformed JSON"));
	free(cause);
	assert_null(parse("[1,2]", &cause));
	assert_string_equal(cause, "body must be a JSON object");
	free(cause);
	assert_null(parse("{\"a\":1,\"a\":2}", &cause));
	free(cause);
}

static void
test_depth(void **state)
{
	char deep[200];
	char *cause;
	int i, n = 40;
	json_t *v;

	(void)state;
	deep[0] = '\0';
	strcat(deep, "{\"a\":");
	for (i = 0; i < n; i++)
		strcat(deep, "[");
	for (i = 0; i < n; i++)
		strcat(deep, "]");
	strcat(deep, "}");
	assert_null(parse(deep, &cause));
	assert_non_null(strstr(cause, "nested deeper"));
	free(cause);
	v = parse("{\"a\":[[[1]]]}", &cause);
	assert_non_null(v);
	json_decref(v);
}

static void
test_oversized(void **state)
{
	size_t n = NUBO_JSON_BODY_MAX + 10;
	char *big = malloc(n);
	char *cause = NULL;

	(void)state;
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	assert_null(jsonx_parse_object(big, n, &cause));
	assert_non_null(strstr(cause, "larger than"));
	free(cause);
	free(big);
}

static void
test_fields(void **state)
{
	char *cause;
	json_t *v;

	(void)state;
	v = parse("{\"name\":\"x\",\"count\":3}", &cause);
	assert_int_equal(jsonx_check(v, fields, &cause), 0);
	json_decref(v);

	v = parse("{\"name\":\"x\",\"extra\":3}", &cause);
	assert_int_equal(jsonx_check(v, fields, &cause), -1);
	assert_string_equal(cause, "unknown field 'extra'");
	free(cause);
	json_decref(v);

	v = parse("{\"name\":5}", &cause);
	assert_int_equal(jsonx_check(v, fields, &cause), -1);
	assert_string_equal(cause, "field 'name' must be a string");
	free(cause);
	json_decref(v);

	v = parse("{\"count\":5}", &cause);
	assert_int_equal(jsonx_check(v, fields, &cause), -1);
	assert_string_equal(cause, "missing field 'name'");
	free(cause);
	json_decref(v);
}

static void
test_validators(void **state)
{
	(void)state;
	assert_true(util_valid_subdomain("myapp"));
	assert_true(util_valid_subdomain("a1-b"));
	assert_false(util_valid_subdomain("a"));
	assert_false(util_valid_subdomain("1app"));
	assert_false(util_valid_subdomain("MyApp"));
	assert_false(util_valid_subdomain("my_app"));
	assert_false(util_valid_subdomain("a234567890123456789012345678901234567890"));
	assert_true(util_valid_subdomain("a23456789012345678901234567890123456789"));
	assert_true(util_valid_email("a@b.io"));
	assert_false(util_valid_email("a b@c.io"));
	assert_false(util_valid_email("@c.io"));
	assert_false(util_valid_email("a@b"));
	assert_true(util_valid_env_name("Production"));
	assert_false(util_valid_env_name("../x"));
}

/* File names in JSON (docs/FORMATS.md): one form per name, always
 * UTF-8, round trip of any bytes. */
static void
name_form(const char *raw, const char *form)
{
	char *enc = util_name_encode(raw), *dec = util_name_decode(form);
	json_t *j = json_string(enc);

	assert_string_equal(enc, form);
	assert_non_null(dec);
	assert_string_equal(dec, raw);
	assert_non_null(j);	/* valid UTF-8: jansson takes it */
	json_decref(j);
	free(enc);
	free(dec);
}

static void
test_names(void **state)
{
	static const char *const bad[] = { "a%", "a%4", "a%zz", "%00x", "%41",
	    "a%2f", "new\nline", "%C3%84", NULL };
	char *clean;
	size_t i;

	(void)state;
	name_form("plain/name.txt", "plain/name.txt");
	name_form("a/Zufall-\xc3\x84\xc3\x96\xc3\x9c.txt",
	    "a/Zufall-\xc3\x84\xc3\x96\xc3\x9c.txt");
	name_form("\xe6\x97\xa5\xe6\x9c\xac.txt", "\xe6\x97\xa5\xe6\x9c\xac.txt");
	name_form("emoji-\xf0\x9f\x98\x80.bin", "emoji-\xf0\x9f\x98\x80.bin");
	name_form("latin1-\xff.bin", "latin1-%FF.bin");
	name_form("100%.txt", "100%25.txt");
	name_form("new\nline\x7f", "new%0Aline%7F");
	/* cut short, overlong, surrogate: bytes, not characters */
	name_form("\xc3", "%C3");
	name_form("\xc0\xaf", "%C0%AF");
	name_form("\xed\xa0\x80", "%ED%A0%80");
	name_form("\xf4\x90\x80\x80", "%F4%90%80%80");
	for (i = 0; bad[i] != NULL; i++)
		assert_null(util_name_decode(bad[i]));
	clean = util_utf8_clean("member 'a\xff\xc3\x84'");
	assert_string_equal(clean, "member 'a\\xff\xc3\x84'");
	free(clean);
	/* output a program printed: a NUL, and a character cut at the end */
	clean = util_utf8_clean_n("a\0b\xc3", 4);
	assert_string_equal(clean, "a\\x00b\\xc3");
	free(clean);
	assert_int_equal(util_utf8_cut("ab\xc3", 3), 1);
	assert_int_equal(util_utf8_cut("ab\xe2\x82", 4), 2);
	assert_int_equal(util_utf8_cut("ab\xe2\x82\xac", 5), 0);
	assert_int_equal(util_utf8_cut("ab\xf0\x9f\x98", 5), 3);
	assert_int_equal(util_utf8_cut("ab\xff", 3), 0);
	assert_int_equal(util_utf8_cut("ab", 2), 0);
	assert_int_equal(util_utf8_cut("\x80\x80\x80\x80", 4), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_validators),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
