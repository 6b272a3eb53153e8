/* What the replication routes (src/node/replication.c) accept before they
 * touch PostgreSQL: migration keys, which become part of role, slot and
 * subscription names, and target addresses, which go into pg_hba.conf
 * (SPEC §6: hostile input is refused). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "replication.h"

static void
test_key(void **state)
{
	static const char *const good[] = {
		"a", "0", "ab-cd", "3f2a9c4e-1b7d-4c2e-9a8f-0123456789ab",
		"abcdefghijklmnopqrstuvwxyz0123456789", NULL };
	static const char *const bad[] = {
		"", "-a", "a-", "A", "a_b", "a b", "a;b", "a'b", "a\"b", "ä",
		"abcdefghijklmnopqrstuvwxyz01234567890", "a\nb", "a/b", "a.b",
		NULL };
	int i;

	(void)state;
	for (i = 0; good[i]; i++)
		assert_int_equal(replication_key_valid(good[i]), 1);
	for (i = 0; bad[i]; i++)
		assert_int_equal(replication_key_valid(bad[i]), 0);
	assert_int_equal(replication_key_valid(NULL), 0);
}

static void
test_address(void **state)
{
	static const struct {
		const char	*in;
		const char	*canon;	/* NULL: refused */
		int		 loopback;
	} cases[] = {
		{ "127.0.0.1", "127.0.0.1", 1 },
		{ "127.0.0.2", "127.0.0.2", 1 },
		{ "10.1.2.3", "10.1.2.3", 0 },
		{ "::1", "::1", 1 },
		{ "2001:db8::1", "2001:db8::1", 0 },
		{ "2001:DB8:0:0::1", "2001:db8::1", 0 },
		{ "::ffff:127.0.0.1", "127.0.0.1", 1 },
		{ "::ffff:10.0.0.1", "10.0.0.1", 0 },
		{ "localhost", NULL, 0 },
		{ "127.0.0.1/32", NULL, 0 },
		{ "127.0.0.1:5432", NULL, 0 },
		{ "1.2.3", NULL, 0 },
		{ "01.2.3.4", NULL, 0 },
		{ " 127.0.0.1", NULL, 0 },
		{ "127.0.0.1 ", NULL, 0 },
		{ "0.0.0.0", NULL, 0 },
		{ "0.1.2.3", NULL, 0 },
		{ "224.0.0.1", NULL, 0 },
		{ "255.255.255.255", NULL, 0 },
		{ "::", NULL, 0 },
		{ "ff02::1", NULL, 0 },
		{ "::ffff:0.0.0.0", NULL, 0 },
		{ "fe80::1%eth0", NULL, 0 },
		{ "", NULL, 0 },
		{ "127.0.0.1\n", NULL, 0 },
	};
	char out[64];
	size_t i;
	int loopback;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = replication_address_parse(cases[i].in, out,
		    sizeof out, &loopback);

		if (cases[i].canon == NULL) {
			assert_int_equal(rc, -1);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_string_equal(out, cases[i].canon);
		assert_int_equal(loopback, cases[i].loopback);
	}
	assert_int_equal(replication_address_parse(NULL, out, sizeof out,
	    &loopback), -1);
	/* too small a buffer for any IPv6 address: refused, not cut */
	assert_int_equal(replication_address_parse("127.0.0.1", out, 8,
	    &loopback), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
