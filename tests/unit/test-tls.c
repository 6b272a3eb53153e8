/* The certificate a node's PostgreSQL presents to another host's
 * subscription (src/common/tls.c, used by src/node/pg.c): made for the
 * agent's key and the node's address, its own trust anchor, its key the
 * one the portal pins; kept while it fits, made again when the key or the
 * address changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* A new P-256 key in a temporary PEM file (path filled). */
static void
key_make(char *path, size_t len)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	FILE *f;
	int fd;

	snprintf(path, len, "/tmp/nubo-test-tls-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0 && k != NULL);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL,
	    NULL), 1);
	fclose(f);
	EVP_PKEY_free(k);
}

static void
file_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
test_self_signed(void **state)
{
	char key[64], other[64], crt[] = "/tmp/nubo-test-tls-crt-XXXXXX";
	char pin1[TLS_PIN_LEN], pin2[TLS_PIN_LEN], *cause = NULL;
	char *pem, *again;
	BIO *b;
	X509 *x;
	int fd;

	(void)state;
	key_make(key, sizeof key);
	key_make(other, sizeof other);
	fd = mkstemp(crt);
	assert_true(fd >= 0);
	close(fd);

	pem = tls_self_signed(key, "198.18.9.3", &cause);
	assert_non_null(pem);
	b = BIO_new_mem_buf(pem, -1);
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	assert_non_null(x);
	/* its own trust anchor: signed by its key, naming the address */
	assert_int_equal(X509_verify(x, X509_get0_pubkey(x)), 1);
	assert_int_equal(X509_check_ip_asc(x, "198.18.9.3", 0), 1);
	assert_int_equal(X509_check_ip_asc(x, "198.18.9.4", 0), 0);
	assert_int_equal(X509_check_ca(x), 1);
	X509_free(x);
	BIO_free(b);

	/* made again: another certificate, the same key (the same pin) */
	again = tls_self_signed(key, "198.18.9.3", &cause);
	assert_non_null(again);
	assert_string_not_equal(pem, again);
	assert_int_equal(tls_pin_pem(pem, pin1, sizeof pin1), 0);
	assert_int_equal(tls_pin_pem(again, pin2, sizeof pin2), 0);
	assert_string_equal(pin1, pin2);
	assert_memory_equal(pin1, "sha256//", 8);
	free(again);
	again = tls_self_signed(other, "198.18.9.3", &cause);
	assert_int_equal(tls_pin_pem(again, pin2, sizeof pin2), 0);
	assert_string_not_equal(pin1, pin2);
	free(again);

	/* kept while it fits: its key, its address */
	file_write(crt, pem);
	assert_int_equal(tls_self_signed_fits(crt, key, "198.18.9.3"), 1);
	assert_int_equal(tls_self_signed_fits(crt, key, "198.18.9.30"), 0);
	assert_int_equal(tls_self_signed_fits(crt, other, "198.18.9.3"), 0);
	assert_int_equal(tls_self_signed_fits("/nonexistent", key,
	    "198.18.9.3"), 0);
	file_write(crt, "not a certificate\n");
	assert_int_equal(tls_self_signed_fits(crt, key, "198.18.9.3"), 0);

	/* IPv6 */
	free(pem);
	pem = tls_self_signed(key, "2001:db8::3", &cause);
	assert_non_null(pem);
	file_write(crt, pem);
	assert_int_equal(tls_self_signed_fits(crt, key, "2001:db8::3"), 1);

	/* no key, no certificate; not PEM, no pin */
	assert_null(tls_self_signed("/nonexistent", "198.18.9.3", &cause));
	assert_non_null(cause);
	free(cause);
	cause = NULL;
	assert_null(tls_self_signed(crt, "198.18.9.3", &cause));
	free(cause);
	assert_int_equal(tls_pin_pem("-----BEGIN CERTIFICATE-----\nAAAA\n"
	    "-----END CERTIFICATE-----\n", pin1, sizeof pin1), -1);
	assert_int_equal(tls_pin_pem("", pin1, sizeof pin1), -1);

	free(pem);
	unlink(key);
	unlink(other);
	unlink(crt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_self_signed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
