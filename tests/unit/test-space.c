/* The node's room check (src/node/space.c): work that writes a lot is
 * refused when it does not fit and leave the reserve — and a need that
 * is no size (a sum that wrapped, from sizes another node gave: an
 * off-node copy's manifest) is refused whatever the disk holds
 * (SPEC §6). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node.h"
#include "xmalloc.h"

static int
setup(void **state)
{
	(void)state;
	node = xcalloc(1, sizeof *node);
	node->data_dir = xstrdup("/tmp");
	node->name = xstrdup("nodeb");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	free(node->data_dir);
	free(node->name);
	free(node);
	node = NULL;
	return 0;
}

/* space_check(need) refused, its cause holding want. */
static void
refused(long long need, const char *want)
{
	char *cause = NULL;

	assert_int_equal(space_check(need, "a copy", &cause), -1);
	if (strstr(cause, want) == NULL)
		fail_msg("'%s' does not say '%s'", cause, want);
	free(cause);
}

static void
test_check(void **state)
{
	long long free_bytes, total, reserve, a = 1LL << 62, sum;
	char *cause = NULL;

	(void)state;
	assert_int_equal(space_of(&free_bytes, &total, &reserve), 0);
	/* what fits above the reserve, and a byte more */
	if (free_bytes > reserve) {
		assert_int_equal(space_check(free_bytes - reserve, "a copy",
		    &cause), 0);
		assert_null(cause);
	}
	refused(free_bytes - reserve + 1, "not enough space on node 'nodeb' "
	    "for a copy");
	/* more than any disk, where need + reserve would wrap */
	refused(LLONG_MAX, "not enough space on node 'nodeb' for a copy: it "
	    "needs 8796093022208 MB");
	/* two blobs of 2^62 bytes added up as a long long would (the wrap
	 * done without undefined behaviour) */
	sum = (long long)((uint64_t)a + (uint64_t)a);
	assert_true(sum < 0);
	refused(sum, "which is not a size");
	refused(-1, "cannot check the space on node 'nodeb' for a copy: it "
	    "needs -1 bytes, which is not a size");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_check, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
