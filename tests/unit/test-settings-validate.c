/* Settings validators (SPEC §6: invalid domains, CIDRs, time windows,
 * constants of the wrong type, headers not allowed on a generation) and the
 * settings document: normalise, render (masking), translate, diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "settings-validate.h"
#include "settings.h"

/* What the settings code answered for test_document_errors' documents
 * before it was made table-driven (errors, v4→v3 refusal, diff). */
static const char expected_errors[] =
    "[{\"setting\":\"format\",\"reason\":\"must be 'nubo-settings/1'\"}"
    ",{\"setting\":\"bogus\",\"reason\":\"unknown setting\"},{\"setting"
    "\":\"constants.bad name!\",\"reason\":\"'bad name!' is not a"
    " constant name ([A-Za-z][A-Za-z0-9_.]*, at most 128)\"},{\"setting"
    "\":\"constants.B\",\"reason\":\"must be a string (the value as"
    " text, checked against the constant's type)\"},{\"setting\":\"sche"
    "duled_events.E\",\"reason\":\"must be true (enabled) or false"
    " (disabled)\"},{\"setting\":\"domains.Example.COM\",\"reason\":\"w"
    "rite the domain in lowercase ('example.com')\"},{\"setting\":\"dom"
    "ains.a.example.com\",\"reason\":\"needs a certificate (PEM)\"},{\""
    "setting\":\"domains.b.example.com\",\"reason\":\"must be an object"
    " {certificate, private_key}\"},{\"setting\":\"domains.c.example.co"
    "m\",\"reason\":\"private_key must be a PEM string\"},{\"setting\":"
    "\"domains.d.example.com\",\"reason\":\"unknown field 'oops'\"},{\""
    "setting\":\"domains.e.example.com\",\"reason\":\"needs a private"
    " key (the document was exported without secrets and the target"
    " has no key for this domain)\"},{\"setting\":\"headers.X-Frame-Opt"
    "ions\",\"reason\":\"must be a string\"},{\"setting\":\"headers.Bad"
    " Header\",\"reason\":\"header 'Bad Header' cannot be set (allowed:"
    " Access-Control-Allow-Origin, Content-Security-Policy, Referrer-Po"
    "licy, X-Content-Type-Options, X-Frame-Options, X-Permitted-Cross-D"
    "omain-Policies, X-XSS-Protection)\"},{\"setting\":\"env_vars.1bad"
    "\",\"reason\":\"'1bad' is not an environment variable name ([A-Za-"
    "z_][A-Za-z0-9_]*, at most 128)\"},{\"setting\":\"env_vars.S\",\"re"
    "ason\":\"secret must be true or false\"},{\"setting\":\"env_vars.T"
    "\",\"reason\":\"unknown field 'extra'\"},{\"setting\":\"env_vars.U"
    "\",\"reason\":\"needs a value (the document was exported without"
    " secrets and the target has no such secret)\"},{\"setting\":\"env_"
    "vars.V\",\"reason\":\"must be a string or {value, secret}\"},{\"se"
    "tting\":\"env_vars.W\",\"reason\":\"value must be a string\"},{\"s"
    "etting\":\"env_vars.X\",\"reason\":\"needs a value\"},{\"setting\""
    ":\"runtime.instances\",\"reason\":\"must be an integer from 1"
    " to 16\"},{\"setting\":\"maintenance_window.day\",\"reason\":\"'so"
    "meday' is not a day of the week (monday … sunday)\"},{\"setting\":"
    "\"maintenance_window.start\",\"reason\":\"needs a start time"
    " HH:MM (UTC)\"},{\"setting\":\"maintenance_window.duration_minutes"
    "\",\"reason\":\"needs a whole number of minutes\"}]";
static const char expected_translate[] =
    "[{\"setting\":\"headers.Referrer-Policy\",\"reason\":\"header"
    " 'Referrer-Policy' does not exist on v3 nodes\"},{\"setting\":\"ac"
    "cess.paths./admin\",\"reason\":\"per-path access restrictions"
    " do not exist on v3 nodes\"},{\"setting\":\"runtime.instances\",\""
    "reason\":\"instances and memory are fixed on v3 nodes\"},{\"settin"
    "g\":\"runtime.memory_mb\",\"reason\":\"instances and memory are"
    " fixed on v3 nodes\"},{\"setting\":\"generation\",\"reason\":\"set"
    "tings cannot be translated from v4 to v3 (migrating v4→v3 is"
    " refused)\"}]";
static const char expected_diff[] =
    "{\"differences\":[{\"setting\":\"constants.A\",\"a\":\"1\",\"b\":n"
    "ull},{\"setting\":\"scheduled_events.E\",\"a\":true,\"b\":null},{"
    "\"setting\":\"access.profiles.p.allow\",\"a\":[\"10.0.0.0/8\"],\"b"
    "\":null},{\"setting\":\"access.paths./\",\"a\":\"p\",\"b\":null},{"
    "\"setting\":\"headers.X-Frame-Options\",\"a\":\"DENY\",\"b\":null}"
    ",{\"setting\":\"runtime.settings.a.b\",\"a\":\"1\",\"b\":null},{\""
    "setting\":\"env_vars.P\",\"a\":\"v\",\"b\":null}],\"unsupported\":"
    "[{\"setting\":\"access.paths./admin\",\"side\":\"a\",\"reason\":\""
    "per-path access restrictions do not exist on v3 nodes\"},{\"settin"
    "g\":\"headers.Referrer-Policy\",\"side\":\"a\",\"reason\":\"header"
    " 'Referrer-Policy' does not exist on v3 nodes\"},{\"setting\":\"ru"
    "ntime.instances\",\"side\":\"a\",\"reason\":\"instances and memory"
    " are fixed on v3 nodes\"},{\"setting\":\"runtime.memory_mb\",\"sid"
    "e\":\"a\",\"reason\":\"instances and memory are fixed on v3 nodes"
    "\"}]}";

static void
ok_cidr(const char *in, const char *want)
{
	char *canon = NULL, *cause = NULL;

	assert_int_equal(sv_cidr(in, &canon, &cause), 0);
	assert_string_equal(canon, want);
	free(canon);
}

static void
bad_cidr(const char *in)
{
	char *canon = NULL, *cause = NULL;

	assert_int_equal(sv_cidr(in, &canon, &cause), -1);
	assert_non_null(cause);
	assert_null(canon);
	free(cause);
}

static void
test_cidr(void **state)
{
	(void)state;
	ok_cidr("127.0.0.1", "127.0.0.1/32");
	ok_cidr("10.0.0.0/8", "10.0.0.0/8");
	ok_cidr("0.0.0.0/0", "0.0.0.0/0");
	ok_cidr("2001:DB8::/32", "2001:db8::/32");
	ok_cidr("::1", "::1/128");
	bad_cidr("");
	bad_cidr("10.0.0.5/8");		/* host bits */
	bad_cidr("10.0.0.0/33");
	bad_cidr("10.0.0.0/-1");
	bad_cidr("10.0.0.0/+8");
	bad_cidr("10.0.0.0/");
	bad_cidr("256.1.1.1");
	bad_cidr("10.0.0");
	bad_cidr("example.com");
	bad_cidr("2001:db8::/129");
	bad_cidr("1.2.3.4 ");
}

static void
test_domain(void **state)
{
	char *canon = NULL, *cause = NULL;
	static const char *const bad[] = { "", "localhost", "-a.example.com",
	    "a-.example.com", "a..example.com", "a.example.com.",
	    "*.example.com", "a_b.example.com", "a example.com",
	    "1.2.3.4", ".example.com", NULL };
	int i;

	(void)state;
	assert_int_equal(sv_domain("App.Example.COM", &canon, &cause), 0);
	assert_string_equal(canon, "app.example.com");
	free(canon);
	for (i = 0; bad[i]; i++) {
		canon = NULL;
		assert_int_equal(sv_domain(bad[i], &canon, &cause), -1);
		free(cause);
	}
	{
		char longlabel[80];

		memset(longlabel, 'a', 64);
		strcpy(longlabel + 64, ".com");
		assert_int_equal(sv_domain(longlabel, &canon, &cause), -1);
		free(cause);
	}
}

static void
test_constants(void **state)
{
	char *canon = NULL, *cause = NULL;

	(void)state;
	assert_int_equal(sv_constant_value(SV_INTEGER, "+042", &canon, &cause),
	    0);
	assert_string_equal(canon, "42");
	free(canon);
	assert_int_equal(sv_constant_value(SV_INTEGER, "4.2", &canon, &cause),
	    -1);
	free(cause);
	assert_int_equal(sv_constant_value(SV_INTEGER,
	    "99999999999999999999", &canon, &cause), -1);
	free(cause);
	assert_int_equal(sv_constant_value(SV_DECIMAL, "-3.25", &canon, &cause),
	    0);
	free(canon);
	assert_int_equal(sv_constant_value(SV_DECIMAL, "3.", &canon, &cause),
	    -1);
	free(cause);
	assert_int_equal(sv_constant_value(SV_DECIMAL, "1e5", &canon, &cause),
	    -1);
	free(cause);
	assert_int_equal(sv_constant_value(SV_BOOLEAN, "TRUE", &canon, &cause),
	    0);
	assert_string_equal(canon, "true");
	free(canon);
	assert_int_equal(sv_constant_value(SV_BOOLEAN, "yes", &canon, &cause),
	    -1);
	free(cause);
	assert_int_equal(sv_constant_value(SV_DATETIME, "2026-02-28T10:00:00Z",
	    &canon, &cause), 0);
	free(canon);
	assert_int_equal(sv_constant_value(SV_DATETIME,
	    "2026-02-28T10:00:00.123+01:00", &canon, &cause), 0);
	free(canon);
	assert_int_equal(sv_constant_value(SV_DATETIME, "2026-02-29T10:00:00Z",
	    &canon, &cause), -1);
	free(cause);
	assert_int_equal(sv_constant_value(SV_DATETIME, "2026-13-01T10:00:00Z",
	    &canon, &cause), -1);
	free(cause);
	assert_int_equal(sv_constant_value(SV_DATETIME, "yesterday", &canon,
	    &cause), -1);
	free(cause);
	assert_int_equal(sv_constant_value(SV_STRING, "a\001b", &canon,
	    &cause), -1);
	free(cause);
}

static void
test_headers(void **state)
{
	const char *canon = NULL;
	char *cause = NULL;

	(void)state;
	assert_int_equal(sv_header_name("x-frame-options", "v3", &canon,
	    &cause), 0);
	assert_string_equal(canon, "X-Frame-Options");
	assert_int_equal(sv_header_name("Referrer-Policy", "v3", &canon,
	    &cause), -1);
	assert_non_null(strstr(cause, "v3"));
	free(cause);
	assert_int_equal(sv_header_name("Referrer-Policy", "v4", &canon,
	    &cause), 0);
	assert_int_equal(sv_header_name("Server", "v4", &canon, &cause), -1);
	free(cause);
	assert_int_equal(sv_header_value("X-Frame-Options", "SAMEORIGIN",
	    &cause), 0);
	assert_int_equal(sv_header_value("X-Frame-Options", "maybe", &cause),
	    -1);
	free(cause);
	assert_int_equal(sv_header_value("Content-Security-Policy",
	    "default-src 'self'; img-src *", &cause), 0);
	assert_int_equal(sv_header_value("Content-Security-Policy",
	    "default-src $x", &cause), -1);
	free(cause);
	assert_int_equal(sv_header_value("Content-Security-Policy",
	    "a\"; return 200", &cause), -1);
	free(cause);
	assert_int_equal(sv_header_value("Referrer-Policy",
	    "no-referrer, strict-origin", &cause), 0);
	assert_int_equal(sv_header_value("X-XSS-Protection", "2", &cause), -1);
	free(cause);
}

static void
test_window(void **state)
{
	const char *day;
	char *cause = NULL;
	int m;

	(void)state;
	assert_int_equal(sv_window_day("SUN", &day, &cause), 0);
	assert_string_equal(day, "sunday");
	assert_int_equal(sv_window_day("funday", &day, &cause), -1);
	free(cause);
	assert_int_equal(sv_window_start("23:59", &m, &cause), 0);
	assert_int_equal(m, 23 * 60 + 59);
	assert_int_equal(sv_window_start("24:00", &m, &cause), -1);
	free(cause);
	assert_int_equal(sv_window_start("12:60", &m, &cause), -1);
	free(cause);
	assert_int_equal(sv_window_start("2:00", &m, &cause), -1);
	free(cause);
	assert_int_equal(sv_window_duration(29, &cause), -1);
	free(cause);
	assert_int_equal(sv_window_duration(1441, &cause), -1);
	free(cause);
	assert_int_equal(sv_window_duration(240, &cause), 0);
}

static void
test_names(void **state)
{
	char *cause = NULL;

	(void)state;
	assert_int_equal(sv_env_var_name("API_TOKEN", &cause), 0);
	assert_int_equal(sv_env_var_name("PORT", &cause), -1);
	free(cause);
	assert_int_equal(sv_env_var_name("NUBO_X", &cause), -1);
	free(cause);
	assert_int_equal(sv_env_var_name("LD_PRELOAD", &cause), -1);
	free(cause);
	assert_int_equal(sv_env_var_name("1X", &cause), -1);
	free(cause);
	assert_int_equal(sv_env_var_name("A-B", &cause), -1);
	free(cause);
	assert_int_equal(sv_path_prefix("/admin", &cause), 0);
	assert_int_equal(sv_path_prefix("admin", &cause), -1);
	free(cause);
	assert_int_equal(sv_path_prefix("/a/../b", &cause), -1);
	free(cause);
	assert_int_equal(sv_path_prefix("/a;b", &cause), -1);
	free(cause);
	assert_int_equal(sv_profile_name("Office", &cause), -1);
	free(cause);
	assert_int_equal(sv_interval("1h"), 3600);
	assert_int_equal(sv_interval("5m"), 300);
	assert_int_equal(sv_interval("h"), -1);
	assert_int_equal(sv_interval("10x"), -1);
}

static void
test_certificate_garbage(void **state)
{
	char *cause = NULL;

	(void)state;
	assert_int_equal(sv_certificate("not a cert", "nor a key",
	    "a.example.com", 0, NULL, &cause), -1);
	assert_non_null(strstr(cause, "certificate"));
	free(cause);
	assert_int_equal(sv_ca_bundle("-----BEGIN CERTIFICATE-----\nAAAA\n"
	    "-----END CERTIFICATE-----\n", &cause), -1);
	free(cause);
}

/* The document: v4-only settings refused on v3 naming each one; secrets
 * masked in renders; translation; diff of equal documents is empty. */
/* Remove the temporary folder settings_seal_init() put its key in. */
static void
seal_dir_remove(const char *dir)
{
	char *path = malloc(strlen(dir) + 20);

	sprintf(path, "%s/settings.key", dir);
	unlink(path);
	free(path);
	rmdir(dir);
}

static void
test_document(void **state)
{
	char dir[] = "/tmp/nubo-unit-settings.XXXXXX";
	struct settings_target t3 = { "v3", NULL, NULL, 0 };
	struct settings_target t4 = { "v4", NULL, NULL, 0 };
	json_t *cur = json_object(), *errors = json_array(), *in, *s3, *s4,
	    *r, *d, *tr;
	char *path;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(settings_seal_init(dir), 0);
	t3.current = t4.current = cur;
	in = json_loads("{\"constants\":{\"A\":\"1\"},"
	    "\"headers\":{\"X-Frame-Options\":\"DENY\","
	    "\"Referrer-Policy\":\"no-referrer\"},"
	    "\"access\":{\"profiles\":{\"p\":{\"allow\":[\"10.0.0.0/8\"]}},"
	    "\"paths\":{\"/\":\"p\",\"/admin\":\"p\"}},"
	    "\"runtime\":{\"instances\":2},"
	    "\"env_vars\":{\"S\":{\"value\":\"hidden\",\"secret\":true}}}",
	    0, NULL);
	assert_null(settings_normalize(&t3, in, errors));
	assert_int_equal(json_array_size(errors), 3);
	json_array_clear(errors);
	s4 = settings_normalize(&t4, in, errors);
	assert_non_null(s4);
	/* stored: the secret is sealed, not in clear */
	path = json_dumps(s4, 0);
	assert_null(strstr(path, "hidden"));
	free(path);
	r = settings_render(s4, 0);
	path = json_dumps(r, 0);
	assert_null(strstr(path, "hidden"));
	assert_null(strstr(path, "sealed"));
	free(path);
	json_decref(r);
	r = settings_render(s4, 1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    json_object_get(r, "env_vars"), "S"), "value")), "hidden");
	/* v4 → v3 translation refuses, naming each v4-only setting */
	tr = settings_translate(r, "v4", "v3", errors);
	assert_null(tr);
	assert_true(json_array_size(errors) >= 3);
	json_array_clear(errors);
	json_decref(r);
	/* a v3 document imports into v4 and the diff is empty */
	json_object_del(in, "runtime");
	json_object_set_new(json_object_get(in, "headers"), "Referrer-Policy",
	    json_null());
	json_object_del(json_object_get(in, "headers"), "Referrer-Policy");
	json_object_del(json_object_get(json_object_get(in, "access"), "paths"),
	    "/admin");
	s3 = settings_normalize(&t3, in, errors);
	assert_non_null(s3);
	r = settings_render(s3, 1);
	tr = settings_translate(r, "v3", "v4", errors);
	json_decref(s4);
	s4 = settings_normalize(&t4, tr, errors);
	assert_non_null(s4);
	d = settings_diff(s3, "v3", NULL, s4, "v4", NULL);
	assert_int_equal(json_array_size(json_object_get(d, "differences")), 0);
	assert_int_equal(json_array_size(json_object_get(d, "unsupported")), 0);
	json_decref(d);
	assert_int_equal(settings_restart_needed(s3, s4), 0);
	json_decref(r);
	json_decref(tr);
	json_decref(s3);
	json_decref(s4);
	json_decref(in);
	json_decref(errors);
	json_decref(cur);
	seal_dir_remove(dir);
}

/* Every error a bad document yields, in order, word for word (one bad
 * entry of each kind per section); then v4→v3 naming its v4-only
 * settings; then a diff naming one setting per line. */
static void
test_document_errors(void **state)
{
	char dir[] = "/tmp/nubo-unit-settings.XXXXXX";
	struct settings_target t4 = { "v4", NULL, NULL, 0 };
	json_t *cur = json_object(), *errors = json_array(), *in, *s4, *d;
	char *text;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(settings_seal_init(dir), 0);
	t4.current = cur;
	in = json_loads("{\"format\":\"x\",\"bogus\":1,"
	    "\"constants\":{\"bad name!\":\"1\",\"B\":5,\"C\":\"ok\"},"
	    "\"scheduled_events\":{\"E\":\"yes\",\"F\":true},"
	    "\"domains\":{\"Example.COM\":{},\"a.example.com\":"
	    "{\"certificate\":1},\"b.example.com\":5,\"c.example.com\":"
	    "{\"certificate\":\"x\",\"private_key\":2},\"d.example.com\":"
	    "{\"certificate\":\"x\",\"oops\":1},\"e.example.com\":"
	    "{\"certificate\":\"x\"}},"
	    "\"headers\":{\"X-Frame-Options\":5,\"Bad Header\":\"x\"},"
	    "\"env_vars\":{\"1bad\":\"x\",\"S\":{\"secret\":\"no\"},"
	    "\"T\":{\"value\":\"x\",\"extra\":1},\"U\":{\"secret\":true},"
	    "\"V\":3,\"W\":{\"value\":7},\"X\":{}},"
	    "\"runtime\":{\"instances\":0},"
	    "\"maintenance_window\":{\"day\":\"someday\"}}", 0, NULL);
	assert_non_null(in);
	assert_null(settings_normalize(&t4, in, errors));
	text = json_dumps(errors, JSON_COMPACT);
	assert_string_equal(text, expected_errors);
	free(text);
	json_array_clear(errors);
	assert_null(settings_normalize_section(&t4, "nope", in, errors));
	assert_null(settings_normalize_section(&t4, "env_vars",
	    json_string("x"), errors));
	text = json_dumps(errors, JSON_COMPACT);
	assert_string_equal(text, "[{\"setting\":\"nope\",\"reason\":"
	    "\"unknown setting\"},{\"setting\":\"env_vars\",\"reason\":"
	    "\"must be an object\"}]");
	free(text);
	json_array_clear(errors);
	json_decref(in);

	in = json_loads("{\"headers\":{\"X-Frame-Options\":\"DENY\","
	    "\"Referrer-Policy\":\"no-referrer\"},\"access\":{\"profiles\":"
	    "{\"p\":{\"allow\":[\"10.0.0.0/8\"]}},\"paths\":{\"/\":\"p\","
	    "\"/admin\":\"p\"}},\"runtime\":{\"instances\":2,\"memory_mb\":"
	    "1024,\"settings\":{\"a.b\":\"1\"}},\"constants\":{\"A\":\"1\"},"
	    "\"scheduled_events\":{\"E\":true},\"env_vars\":{\"P\":\"v\"}}",
	    0, NULL);
	assert_non_null(in);
	s4 = settings_normalize(&t4, in, errors);
	assert_non_null(s4);
	assert_null(settings_translate(in, "v4", "v3", errors));
	text = json_dumps(errors, JSON_COMPACT);
	assert_string_equal(text, expected_translate);
	free(text);
	d = settings_diff(s4, "v4", NULL, cur, "v3", NULL);
	text = json_dumps(d, JSON_COMPACT);
	assert_string_equal(text, expected_diff);
	free(text);
	json_decref(d);
	json_decref(s4);
	json_decref(in);
	json_decref(errors);
	json_decref(cur);
	seal_dir_remove(dir);
}

/* The weekly window: open inside, closed outside, across midnight and
 * across the end of the week. 2026-11-23 is a Monday. */
static void
test_window_open(void **state)
{
	json_t *w = json_pack("{s:s,s:s,s:i}", "day", "monday", "start",
	    "23:30", "duration_minutes", 60);
	time_t mon = 1795392000;	/* 2026-11-23T00:00:00Z */

	(void)state;
	assert_false(settings_window_open(w, mon + 23 * 3600 + 29 * 60));
	assert_true(settings_window_open(w, mon + 23 * 3600 + 30 * 60));
	assert_true(settings_window_open(w, mon + 24 * 3600 + 29 * 60));
	assert_false(settings_window_open(w, mon + 24 * 3600 + 30 * 60));
	json_object_set_new(w, "day", json_string("sunday"));
	assert_true(settings_window_open(w, mon + 6 * 86400 + 23 * 3600 +
	    45 * 60));
	assert_true(settings_window_open(w, mon + 7 * 86400 + 10 * 60));
	assert_false(settings_window_open(w, mon + 7 * 86400 + 40 * 60));
	json_decref(w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_domain),
		cmocka_unit_test(test_constants),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_certificate_garbage),
		cmocka_unit_test(test_document),
		cmocka_unit_test(test_document_errors),
		cmocka_unit_test(test_window_open),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
