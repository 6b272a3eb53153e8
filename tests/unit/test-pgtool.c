/* pgtool_hba_open(): which rules of a PostgreSQL server's pg_hba.conf let
 * the environments' roles in from more than the node's address, or
 * without scram-sha-256 (nubod node --pg on another host). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pgtool.h"

static void
closed(const char *type, const char *users, const char *address,
    const char *netmask, const char *auth)
{
	char *why = pgtool_hba_open(type, users, address, netmask, auth);

	if (why)
		fail_msg("%s %s %s/%s %s: %s", type ? type : "-", users ? users :
		    "-", address ? address : "-", netmask ? netmask : "-",
		    auth ? auth : "-", why);
}

static void
open_with(const char *want, const char *type, const char *users,
    const char *address, const char *netmask, const char *auth)
{
	char *why = pgtool_hba_open(type, users, address, netmask, auth);

	assert_non_null(why);
	assert_non_null(strstr(why, want));
	free(why);
}

static void
test_closed_rules(void **state)
{
	(void)state;
	/* the node's own cluster's rules (pg.c) */
	closed("local", "{all}", NULL, NULL, "scram-sha-256");
	closed("host", "{all}", "127.0.0.1", "255.255.255.255",
	    "scram-sha-256");
	closed("host", "{all}", "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
	    "ffff", "scram-sha-256");
	closed("host", "{all}", "0.0.0.0", "0.0.0.0", "reject");
	/* the node's address alone */
	closed("hostssl", "{all}", "198.18.9.3", "255.255.255.255",
	    "scram-sha-256");
	closed("host", "{all}", "node1.example.test", NULL, "scram-sha-256");
	closed("host", "{all}", "samehost", NULL, "scram-sha-256");
	/* roles that are not the environments' */
	closed("host", "{postgres}", "0.0.0.0", "0.0.0.0", "scram-sha-256");
	closed("host", "{app,reporting}", "all", NULL, "md5");
	closed("host", "{all}", "10.0.0.5", "255.255.255.255", "cert");
	closed(NULL, NULL, NULL, NULL, NULL);
}

static void
test_open_rules(void **state)
{
	(void)state;
	open_with("from the network 0.0.0.0/0.0.0.0", "host", "{all}",
	    "0.0.0.0", "0.0.0.0", "scram-sha-256");
	open_with("from the network 10.0.0.0/255.0.0.0", "hostssl",
	    "{env_7}", "10.0.0.0", "255.0.0.0", "scram-sha-256");
	open_with("from all, not", "host", "{+nubo}", "all", NULL,
	    "scram-sha-256");
	open_with("from samenet", "hostnossl", "{/^env_}", "samenet", NULL,
	    "scram-sha-256");
	open_with("without a password", "host", "{nubo_cred_1_ab}",
	    "198.18.9.3", "255.255.255.255", "trust");
	open_with("with md5, not scram-sha-256", "host", "{all}",
	    "198.18.9.3", "255.255.255.255", "md5");
	open_with("from anywhere", "host", NULL, NULL, NULL, "password");
}

/* A table's name (a resync's): plain or quoted [schema.]name, written
 * schema.name; anything else refused. */
static void
test_table_names(void **state)
{
	static const char *const good[][2] = {
		{ "notes", "public.notes" }, { "public.notes", "public.notes" },
		{ "app.notes_2", "app.notes_2" },
		{ "public.\"system$user\"", "public.system$user" },
		{ "\"myfirstmodule$note\"", "public.myfirstmodule$note" },
		{ "_x.y$", "_x.y$" },
		{ "a234567890123456789012345678901234567890123456789012345678901"
		  "23", "public.a2345678901234567890123456789012345678901234567890"
		  "1234567890123" } };
	static const char *const bad[] = { "", ".", "notes.", ".notes",
		"Notes", "public.Notes", "a.b.c", "notes;drop table x",
		"\"notes", "notes\"", "\"a\"\"b\"", "1notes", "$x", "no tes",
		"public .notes", "n\xc3\xa9", "x'y", "a,b", "../notes",
		"a2345678901234567890123456789012345678901234567890123456789012"
		"34" };
	char out[PGTOOL_TABLE_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		assert_int_equal(pgtool_table_name(good[i][0], out, sizeof out),
		    0);
		assert_string_equal(out, good[i][1]);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (pgtool_table_name(bad[i], out, sizeof out) != -1)
			fail_msg("'%s' was taken as a table's name", bad[i]);
	assert_int_equal(pgtool_table_name(NULL, out, sizeof out), -1);
	assert_int_equal(pgtool_table_name("notes", out, 16), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_closed_rules),
		cmocka_unit_test(test_open_rules),
		cmocka_unit_test(test_table_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
