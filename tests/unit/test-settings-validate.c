/* Settings validators (SPEC §6: invalid domains, CIDRs, time windows,
 * constants of the wrong type, headers not allowed on a generation) and the
 * settings document: normalise, render (masking), translate, diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
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
    " (disabled)\"},{\"setting\":\"domains.Example.COM\",\"reason\":\"n"
    "eeds a certificate (PEM)\"},{\"setting\":\"dom"
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
	/* the portal keeps names lowercase without the root's dot */
	canon = settings_domain_canon("Shop.Example.TEST.");
	assert_string_equal(canon, "shop.example.test");
	free(canon);
	canon = settings_domain_canon("a.example..");
	assert_string_equal(canon, "a.example.");
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
	/* the router's ACME location, and under it */
	assert_int_equal(sv_path_prefix("/.well-known/acme-challenge/", &cause),
	    -1);
	free(cause);
	assert_int_equal(sv_path_prefix("/.well-known/acme-challenge/x",
	    &cause), -1);
	free(cause);
	assert_int_equal(sv_path_prefix("/.well-known/", &cause), 0);
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

/* ---- certificates made here, checked by sv_certificate and by nginx ---- */

#define NGINX "/usr/sbin/nginx"
#define DAY 86400L

static EVP_PKEY *
key_ec(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static EVP_PKEY *
key_rsa(unsigned bits)
{
	EVP_PKEY *k = EVP_RSA_gen(bits);

	assert_non_null(k);
	return k;
}

/* A certificate for cn (and DNS SAN san when not NULL) with key's public
 * half, signed by issuer/ikey (self-signed when issuer is NULL), valid
 * from now+from to now+to seconds. */
static X509 *
mkcert(const char *cn, const char *san, EVP_PKEY *key, X509 *issuer,
    EVP_PKEY *ikey, int ca, long from, long to, const EVP_MD *md)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	char *s;

	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) :
	    X509_get_subject_name(x));
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, ca ?
	    "critical,CA:TRUE" : "CA:FALSE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier,
	    "hash");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (issuer) {
		ext = X509V3_EXT_conf_nid(NULL, &v3,
		    NID_authority_key_identifier, "keyid:always");
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	if (san) {
		s = malloc(strlen(san) + 8);
		sprintf(s, "DNS:%s", san);
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, s);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
		free(s);
	}
	assert_true(X509_sign(x, issuer ? ikey : key, md ? md : EVP_sha256())
	    > 0);
	return x;
}

static char *
bio_text(BIO *bio)
{
	char *data, *out;
	long n = BIO_get_mem_data(bio, &data);

	out = malloc((size_t)n + 1);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	BIO_free(bio);
	return out;
}

/* The PEM text of certificates (NULL-terminated list). */
static char *
pem_chain(X509 *first, ...)
{
	BIO *bio = BIO_new(BIO_s_mem());
	va_list ap;
	X509 *x;

	va_start(ap, first);
	for (x = first; x; x = va_arg(ap, X509 *))
		PEM_write_bio_X509(bio, x);
	va_end(ap);
	return bio_text(bio);
}

/* kind: 0 PKCS#8 "PRIVATE KEY", 1 traditional ("RSA/EC PRIVATE KEY"),
 * 2 PKCS#8 encrypted, 3 traditional encrypted (Proc-Type headers). */
static char *
pem_key_text(EVP_PKEY *k, int kind)
{
	BIO *bio = BIO_new(BIO_s_mem());
	const EVP_CIPHER *c = EVP_aes_128_cbc();
	static unsigned char pw[] = "password";

	switch (kind) {
	case 0:
		PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
		break;
	case 1:
		PEM_write_bio_PrivateKey_traditional(bio, k, NULL, NULL, 0,
		    NULL, NULL);
		break;
	case 2:
		PEM_write_bio_PKCS8PrivateKey(bio, k, c, (char *)pw, 8, NULL,
		    NULL);
		break;
	default:
		PEM_write_bio_PrivateKey_traditional(bio, k, c, pw, 8, NULL,
		    NULL);
		break;
	}
	return bio_text(bio);
}

static char *
cat(const char *a, const char *b)
{
	char *s = malloc(strlen(a) + strlen(b) + 1);

	strcpy(s, a);
	strcat(s, b);
	return s;
}

/* What real nginx says of cert and key as a TLS server's files: 1 when
 * `nginx -t` accepts them, 0 when not, -1 when nginx is not here. */
static int
nginx_loads(const char *cert, const char *key)
{
	char dir[] = "/tmp/nubo-unit-nginx.XXXXXX", path[256], cmd[1024];
	FILE *f;
	int st;

	if (access(NGINX, X_OK) != 0)
		return -1;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/c.pem", dir);
	f = fopen(path, "w");
	fputs(cert, f);
	fclose(f);
	snprintf(path, sizeof path, "%s/k.pem", dir);
	f = fopen(path, "w");
	fputs(key, f);
	fclose(f);
	snprintf(path, sizeof path, "%s/n.conf", dir);
	f = fopen(path, "w");
	fprintf(f, "pid %s/n.pid;\nerror_log %s/e.log;\nevents {}\n"
	    "http { server { listen 127.0.0.1:1 ssl; server_name x;\n"
	    "ssl_certificate %s/c.pem; ssl_certificate_key %s/k.pem; } }\n",
	    dir, dir, dir, dir);
	fclose(f);
	snprintf(cmd, sizeof cmd, NGINX " -q -t -p %s/ -c %s/n.conf -e %s/e.log "
	    ">/dev/null 2>&1; s=$?; rm -rf %s; exit $s", dir, dir, dir, dir);
	st = system(cmd);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

enum { NGX_ANY, NGX_LOADS, NGX_FAILS };

/* sv_certificate must answer want (NULL: accepted, else a part of the
 * reason); accepted pairs must load in nginx; ngx says what nginx itself
 * makes of the pair where that is the point (a pair nginx cannot load was
 * accepted before, and froze the router). */
static void
cert_case(const char *name, const char *cert, const char *key, int ngx,
    const char *want)
{
	char *cause = NULL;
	int rc = sv_certificate(cert, key, "shop.example.com", time(NULL), NULL,
	    &cause);
	int loads;

	if (want == NULL && rc != 0)
		fail_msg("%s: refused: %s", name, cause);
	else if (want && rc == 0)
		fail_msg("%s: accepted, want '%s'", name, want);
	else if (want && strstr(cause, want) == NULL)
		fail_msg("%s: reason '%s', want '%s'", name, cause, want);
	free(cause);
	loads = nginx_loads(cert, key);
	if (loads == -1)
		return;
	if (want == NULL && !loads)
		fail_msg("%s: accepted but nginx cannot load it", name);
	if (ngx == NGX_FAILS && loads)
		fail_msg("%s: nginx loads it (the case is not what it says)",
		    name);
	if (ngx == NGX_LOADS && !loads)
		fail_msg("%s: nginx refuses it", name);
}

static void
test_certificate_full(void **state)
{
	EVP_PKEY *kroot = key_ec(), *kint = key_ec(), *kleaf = key_ec();
	EVP_PKEY *kother = key_ec(), *krsa = key_rsa(2048);
	EVP_PKEY *kweak = key_rsa(1024);
	X509 *root, *inter, *leaf, *self, *other, *xint, *xleaf, *future,
	    *rsa, *weak, *sha1, *wrongname;
	char *k, *k1, *c, *c2, *s;
	int i;

	(void)state;
	root = mkcert("Root", NULL, kroot, NULL, NULL, 1, -DAY, 3650 * DAY,
	    NULL);
	inter = mkcert("Inter", NULL, kint, root, kroot, 1, -DAY, 365 * DAY,
	    NULL);
	leaf = mkcert("shop.example.com", "shop.example.com", kleaf, inter,
	    kint, 0, -DAY, 90 * DAY, NULL);
	self = mkcert("shop.example.com", "shop.example.com", kleaf, NULL,
	    NULL, 0, -DAY, 90 * DAY, NULL);
	other = mkcert("Other", NULL, kother, NULL, NULL, 1, -DAY, 365 * DAY,
	    NULL);
	xint = mkcert("Inter", NULL, kint, root, kroot, 1, -400 * DAY,
	    -300 * DAY, NULL);
	xleaf = mkcert("shop.example.com", "shop.example.com", kleaf, NULL,
	    NULL, 0, -100 * DAY, -10 * DAY, NULL);
	future = mkcert("shop.example.com", "shop.example.com", kleaf, NULL,
	    NULL, 0, 10 * DAY, 100 * DAY, NULL);
	rsa = mkcert("shop.example.com", "shop.example.com", krsa, NULL, NULL,
	    0, -DAY, 90 * DAY, NULL);
	weak = mkcert("shop.example.com", "shop.example.com", kweak, NULL,
	    NULL, 0, -DAY, 90 * DAY, NULL);
	sha1 = mkcert("shop.example.com", "shop.example.com", kleaf, inter,
	    kint, 0, -DAY, 90 * DAY, EVP_sha1());
	wrongname = mkcert("other.example.com", "other.example.com", kleaf,
	    NULL, NULL, 0, -DAY, 90 * DAY, NULL);
	k = pem_key_text(kleaf, 0);

	/* accepted: what certificate authorities and openssl hand out */
	c = pem_chain(self, NULL);
	cert_case("self-signed, PKCS#8 key", c, k, NGX_LOADS, NULL);
	free(c);
	c = pem_chain(leaf, inter, root, NULL);
	cert_case("leaf, intermediate, root", c, k, NGX_LOADS, NULL);
	free(c);
	c = pem_chain(leaf, inter, NULL);
	cert_case("leaf and intermediate", c, k, NGX_LOADS, NULL);
	k1 = pem_key_text(kleaf, 1);
	cert_case("EC PRIVATE KEY", c, k1, NGX_LOADS, NULL);
	s = cat("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n"
	    "-----END EC PARAMETERS-----\n", k1);
	cert_case("EC PARAMETERS before the key", c, s, NGX_LOADS, NULL);
	free(s);
	free(k1);
	{	/* CRLF line ends, blank lines around and between blocks */
		char *crlf = malloc(strlen(c) * 2 + 8), *o = crlf;
		const char *p;

		*o++ = '\n';
		for (p = c; *p; p++) {
			if (*p == '\n')
				*o++ = '\r';
			*o++ = *p;
			if (*p == '\n' && p[-1] == '-' && p[1] == '-')
				*o++ = '\n';
		}
		strcpy(o, "\r\n  \n");
		cert_case("CRLF and blank lines", crlf, k, NGX_LOADS, NULL);
		free(crlf);
	}
	c2 = pem_chain(rsa, NULL);
	k1 = pem_key_text(krsa, 1);
	cert_case("RSA 2048, RSA PRIVATE KEY", c2, k1, NGX_LOADS, NULL);
	free(k1);

	/* every PEM block */
	s = cat(c, "this is not PEM\n");
	cert_case("text after the chain", s, k, NGX_ANY, "text outside a PEM "
	    "block on line");
	free(s);
	s = cat("Bag Attributes\n", c);
	cert_case("text before the chain", s, k, NGX_ANY, "on line 1");
	free(s);
	s = cat(c, "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIBAT\n");
	cert_case("a block cut short at the end", s, k, NGX_FAILS, "has no "
	    "-----END CERTIFICATE----- line");
	free(s);
	s = cat(c, k);
	cert_case("the private key in the certificate field", s, k, NGX_ANY,
	    "is a 'PRIVATE KEY', not a CERTIFICATE (the private key has a "
	    "field of its own)");
	free(s);
	cert_case("garbage base64", "-----BEGIN CERTIFICATE-----\n!!!!\n"
	    "-----END CERTIFICATE-----\n", k, NGX_FAILS, "not valid base64");
	cert_case("BEGIN and END differ", "-----BEGIN CERTIFICATE-----\nAAAA\n"
	    "-----END X509 CRL-----\n", k, NGX_FAILS, "ends as 'X509 CRL'");
	cert_case("a CRL, not a certificate", "-----BEGIN X509 CRL-----\nAAAA\n"
	    "-----END X509 CRL-----\n", k, NGX_FAILS, "is a 'X509 CRL'");
	{	/* a valid certificate with bytes after its DER */
		unsigned char *der = NULL, *buf;
		int n = i2d_X509(self, &der);
		BIO *b = BIO_new(BIO_s_mem());

		buf = malloc((size_t)n + 3);
		memcpy(buf, der, (size_t)n);
		memcpy(buf + n, "\x05\x00\x00", 3);
		PEM_write_bio(b, "CERTIFICATE", "", buf, n + 3);
		s = bio_text(b);
		cert_case("bytes after the certificate's DER", s, k, NGX_ANY,
		    "block 1 of the certificate (line 1) is not a certificate");
		free(s);
		free(buf);
		OPENSSL_free(der);
	}
	{	/* 17 certificates */
		char *many = strdup(""), *t;

		for (i = 0; i < 17; i++) {
			t = cat(many, c);
			free(many);
			many = t;
		}
		cert_case("too many certificates", many, k, NGX_ANY, "more than "
		    "16 PEM blocks");
		free(many);
	}

	/* the key field */
	k1 = pem_key_text(kleaf, 2);
	cert_case("encrypted PKCS#8 key", c, k1, NGX_FAILS, "is encrypted");
	free(k1);
	k1 = pem_key_text(kleaf, 3);
	cert_case("encrypted traditional key", c, k1, NGX_FAILS, "has headers");
	free(k1);
	s = cat(k, k);
	cert_case("two keys", c, s, NGX_ANY, "block 2 of the private key");
	free(s);
	s = pem_chain(leaf, NULL);
	cert_case("a certificate in the key field", c, s, NGX_FAILS, "is a "
	    "'CERTIFICATE'");
	free(s);
	k1 = pem_key_text(kother, 0);
	cert_case("key of another certificate", c, k1, NGX_FAILS, "does not "
	    "match the certificate (the first one, the leaf)");
	free(k1);

	/* chain order */
	s = pem_chain(leaf, root, inter, NULL);
	cert_case("root before intermediate", s, k, NGX_ANY, "certificate 2 "
	    "(CN=Root) does not sign certificate 1 (CN=shop.example.com)");
	free(s);
	s = pem_chain(inter, leaf, NULL);
	cert_case("intermediate first", s, k, NGX_FAILS, "does not match");
	free(s);
	s = pem_chain(leaf, other, NULL);
	cert_case("an unrelated certificate in the chain", s, k, NGX_ANY,
	    "certificate 2 (CN=Other) does not sign");
	free(s);

	/* expiry, leaf and chain */
	s = pem_chain(xleaf, NULL);
	cert_case("expired leaf", s, k, NGX_ANY, "the certificate has expired");
	free(s);
	s = pem_chain(future, NULL);
	cert_case("leaf not valid yet", s, k, NGX_ANY, "not valid yet");
	free(s);
	s = pem_chain(leaf, xint, root, NULL);
	cert_case("expired intermediate", s, k, NGX_ANY, "certificate 2 "
	    "(CN=Inter) of the chain has expired");
	free(s);

	/* what the router's OpenSSL refuses to load */
	s = pem_chain(weak, NULL);
	k1 = pem_key_text(kweak, 0);
	cert_case("RSA 1024", s, k1, NGX_FAILS, "the router cannot use the "
	    "certificate: ee key too small");
	free(k1);
	free(s);
	s = pem_chain(sha1, inter, NULL);
	cert_case("SHA-1 signature", s, k, NGX_FAILS, "the router cannot use "
	    "the certificate: ca md too weak");
	free(s);

	/* coverage */
	s = pem_chain(wrongname, NULL);
	cert_case("another domain", s, k, NGX_ANY, "does not cover "
	    "'shop.example.com'");
	free(s);

	free(c);
	free(c2);
	free(k);
	X509_free(root);
	X509_free(inter);
	X509_free(leaf);
	X509_free(self);
	X509_free(other);
	X509_free(xint);
	X509_free(xleaf);
	X509_free(future);
	X509_free(rsa);
	X509_free(weak);
	X509_free(sha1);
	X509_free(wrongname);
	EVP_PKEY_free(kroot);
	EVP_PKEY_free(kint);
	EVP_PKEY_free(kleaf);
	EVP_PKEY_free(kother);
	EVP_PKEY_free(krsa);
	EVP_PKEY_free(kweak);
}

/* The client-certificate CA bundle: whole PEM blocks of CA certificates
 * only. */
static void
test_ca_bundle(void **state)
{
	EVP_PKEY *kca = key_ec(), *kleaf = key_ec();
	X509 *ca = mkcert("CA", NULL, kca, NULL, NULL, 1, -DAY, 365 * DAY,
	    NULL);
	X509 *leaf = mkcert("leaf", NULL, kleaf, ca, kca, 0, -DAY, 30 * DAY,
	    NULL);
	char *c = pem_chain(ca, NULL), *s, *cause = NULL;

	(void)state;
	assert_int_equal(sv_ca_bundle(c, &cause), 0);
	s = cat(c, "garbage\n");
	assert_int_equal(sv_ca_bundle(s, &cause), -1);
	assert_non_null(strstr(cause, "text outside a PEM block"));
	free(cause);
	free(s);
	s = pem_key_text(kca, 0);
	free(c);
	c = pem_chain(ca, NULL);
	{
		char *both = cat(c, s);

		assert_int_equal(sv_ca_bundle(both, &cause), -1);
		assert_non_null(strstr(cause, "'PRIVATE KEY'"));
		free(cause);
		free(both);
	}
	free(s);
	s = pem_chain(ca, leaf, NULL);
	assert_int_equal(sv_ca_bundle(s, &cause), -1);
	assert_non_null(strstr(cause, "certificate 2 of the client certificate "
	    "CA is not a CA"));
	free(cause);
	free(s);
	free(c);
	X509_free(ca);
	X509_free(leaf);
	EVP_PKEY_free(kca);
	EVP_PKEY_free(kleaf);
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

/* Load (make) the sealing key in dir. */
static void
seal_init(const char *dir)
{
	char *path = malloc(strlen(dir) + 20);

	sprintf(path, "%s/settings.key", dir);
	assert_int_equal(settings_seal_init(path), 0);
	free(path);
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
	seal_init(dir);
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
	json_t *cur = json_object(), *errors = json_array(), *in, *s4, *d, *str;
	char *text;

	(void)state;
	assert_non_null(mkdtemp(dir));
	seal_init(dir);
	t4.current = cur;
	in = json_loads("{\"format\":\"x\",\"bogus\":1,"
	    "\"constants\":{\"bad name!\":\"1\",\"B\":5,\"C\":\"ok\"},"
	    "\"scheduled_events\":{\"E\":\"yes\",\"F\":true},"
	    "\"domains\":{\"Example.COM\":{\"private_key\":\"k\"},"
	    "\"a.example.com\":"
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
	str = json_string("x");
	assert_null(settings_normalize_section(&t4, "env_vars", str, errors));
	json_decref(str);
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
		cmocka_unit_test(test_certificate_full),
		cmocka_unit_test(test_ca_bundle),
		cmocka_unit_test(test_document),
		cmocka_unit_test(test_document_errors),
		cmocka_unit_test(test_window_open),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
