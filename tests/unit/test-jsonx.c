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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_validators),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
