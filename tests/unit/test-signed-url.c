/* Signed data-plane URLs (node-contract.md): what the portal signs, the
 * node accepts; anything changed, expired or malformed is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "signed-url.h"
#include "util.h"

#define SECRET "0123456789abcdef0123456789abcdef"

static int
check(const char *method, const char *path, long long exp, long long user,
    const char *sig, const char **why)
{
	char e[32], u[32];

	snprintf(e, sizeof e, "%lld", exp);
	snprintf(u, sizeof u, "%lld", user);
	return signed_url_check(SECRET, method, path, e, u, sig, why);
}

static void
test_roundtrip(void **state)
{
	long long exp = (long long)util_now() + 60;
	const char *why = NULL;
	char sig[65];

	(void)state;
	signed_url_sig(SECRET, "GET", "/agent/v1/packages/a-1/file", exp, 7,
	    sig);
	assert_int_equal(strlen(sig), 64);
	assert_int_equal(check("GET", "/agent/v1/packages/a-1/file", exp, 7,
	    sig, &why), 0);
}

static void
test_tampered(void **state)
{
	long long exp = (long long)util_now() + 60;
	const char *why = NULL;
	char sig[65], bad[65];
	int i;

	(void)state;
	signed_url_sig(SECRET, "GET", "/agent/v1/x", exp, 7, sig);
	assert_int_equal(check("PUT", "/agent/v1/x", exp, 7, sig, &why), -1);
	assert_string_equal(why, "bad signature");
	assert_int_equal(check("GET", "/agent/v1/y", exp, 7, sig, &why), -1);
	assert_int_equal(check("GET", "/agent/v1/x", exp + 1, 7, sig, &why),
	    -1);
	assert_int_equal(check("GET", "/agent/v1/x", exp, 8, sig, &why), -1);
	/* every one of the 64 characters counts: a change at any position
	 * is refused (a comparison of a prefix or a suffix is not enough) */
	for (i = 0; i < 64; i++) {
		memcpy(bad, sig, sizeof bad);
		bad[i] = bad[i] == 'a' ? 'b' : 'a';
		why = NULL;
		if (check("GET", "/agent/v1/x", exp, 7, bad, &why) != -1 ||
		    why == NULL || strcmp(why, "bad signature") != 0)
			fail_msg("signature changed at position %d accepted", i);
	}
	assert_int_equal(check("GET", "/agent/v1/x", exp, 7, sig, &why), 0);
	assert_int_equal(signed_url_check("another secret", "GET",
	    "/agent/v1/x", "1", "7", sig, &why), -1);
}

static void
test_expired_and_malformed(void **state)
{
	long long exp = (long long)util_now() - 1;
	const char *why = NULL;
	char sig[65];

	(void)state;
	signed_url_sig(SECRET, "GET", "/agent/v1/x", exp, 7, sig);
	assert_int_equal(check("GET", "/agent/v1/x", exp, 7, sig, &why), -1);
	assert_string_equal(why, "signed URL expired");
	assert_int_equal(signed_url_check(SECRET, "GET", "/agent/v1/x", NULL,
	    "7", sig, &why), -1);
	assert_int_equal(signed_url_check(SECRET, "GET", "/agent/v1/x", "12x",
	    "7", sig, &why), -1);
	assert_string_equal(why, "malformed signature");
	assert_int_equal(signed_url_check(SECRET, "GET", "/agent/v1/x", "1",
	    "-3", sig, &why), -1);
	assert_int_equal(signed_url_check(SECRET, "GET", "/agent/v1/x", "1",
	    "7", "abc", &why), -1);
}

static void
test_make(void **state)
{
	char *url;

	(void)state;
	url = signed_url_make(SECRET, "http://127.0.0.1:9", "GET",
	    "/agent/v1/x", 42, 60);
	assert_non_null(strstr(url, "http://127.0.0.1:9/agent/v1/x?expires="));
	assert_non_null(strstr(url, "&user=42&sig="));
	free(url);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_expired_and_malformed),
		cmocka_unit_test(test_make),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
