#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "xmalloc.h"

#define PIN_FRAGMENT "#pin="

static int
pin_x509(X509 *x, char *out, size_t outlen)
{
	unsigned char *spki = NULL, md[32], b64[48];
	int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);

	if (n <= 0 || outlen < TLS_PIN_LEN)
		return -1;
	EVP_Digest(spki, (size_t)n, md, NULL, EVP_sha256(), NULL);
	OPENSSL_free(spki);
	EVP_EncodeBlock(b64, md, sizeof md);
	snprintf(out, outlen, "sha256//%s", (char *)b64);
	return 0;
}

int
tls_pin_der(const unsigned char *der, size_t len, char *out, size_t outlen)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	int rc;

	if (x == NULL)
		return -1;
	rc = pin_x509(x, out, outlen);
	X509_free(x);
	return rc;
}

int
tls_pin_file(const char *path, char *out, size_t outlen, char **cause)
{
	FILE *f = fopen(path, "r");
	X509 *x;
	int rc;

	if (f == NULL) {
		*cause = xasprintf("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		*cause = xasprintf("%s holds no PEM certificate", path);
		return -1;
	}
	rc = pin_x509(x, out, outlen);
	X509_free(x);
	if (rc == -1)
		*cause = xasprintf("cannot read the public key of %s", path);
	return rc;
}

int
tls_pin_pem(const char *pem, char *out, size_t outlen)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	int rc = x ? pin_x509(x, out, outlen) : -1;

	X509_free(x);
	BIO_free(b);
	return rc;
}

static EVP_PKEY *
key_read(const char *path, char **cause)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (f == NULL) {
		*cause = xasprintf("cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (k == NULL)
		*cause = xasprintf("%s holds no PEM private key", path);
	return k;
}

/* Add extension nid with value v (openssl's config syntax) to x. */
static int
x509_ext_add(X509 *x, int nid, const char *v)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int rc;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, v)) == NULL)
		return -1;
	rc = X509_add_ext(x, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return rc;
}

char *
tls_self_signed(const char *key_path, const char *ip, char **cause)
{
	EVP_PKEY *k = key_read(key_path, cause);
	X509 *x = NULL;
	X509_NAME *name;
	BIO *b = NULL;
	BUF_MEM *mem;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	char *san = xasprintf("IP:%s", ip), *cn = xasprintf("nubo node %s",
	    ip), *pem = NULL;
	const EVP_MD *md;

	if (k == NULL)
		goto out;
	/* Ed25519 and Ed448 sign without a separate digest */
	md = EVP_PKEY_get_id(k) == EVP_PKEY_ED25519 || EVP_PKEY_get_id(k) ==
	    EVP_PKEY_ED448 ? NULL : EVP_sha256();
	x = X509_new();
	RAND_bytes(serial, sizeof serial);
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof serial, NULL);
	name = X509_get_subject_name(x);
	if (X509_set_version(x, 2) != 1 || bn == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 86400) ==
	    NULL || X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, k) != 1 ||
	    x509_ext_add(x, NID_basic_constraints, "critical,CA:TRUE") == -1 ||
	    x509_ext_add(x, NID_subject_key_identifier, "hash") == -1 ||
	    x509_ext_add(x, NID_subject_alt_name, san) == -1 ||
	    X509_sign(x, k, md) == 0 || (b = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_X509(b, x) != 1) {
		*cause = xasprintf("cannot make a certificate for the key in "
		    "%s and %s", key_path, ip);
		goto out;
	}
	BIO_get_mem_ptr(b, &mem);
	pem = xmalloc(mem->length + 1);
	memcpy(pem, mem->data, mem->length);
	pem[mem->length] = '\0';
out:
	BIO_free(b);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(k);
	free(san);
	free(cn);
	return pem;
}

int
tls_self_signed_fits(const char *cert_path, const char *key_path,
    const char *ip)
{
	char *cause = NULL;
	EVP_PKEY *k = key_read(key_path, &cause);
	FILE *f = fopen(cert_path, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	time_t soon = time(NULL) + 30L * 86400;
	int fits;

	if (f)
		fclose(f);
	fits = k && x && X509_check_private_key(x, k) == 1 &&
	    X509_check_ip_asc(x, ip, 0) == 1 &&
	    X509_cmp_time(X509_get0_notAfter(x), &soon) > 0;
	free(cause);
	X509_free(x);
	EVP_PKEY_free(k);
	return fits;
}

char *
tls_url_pinned(const char *url, const char *pin)
{
	return xasprintf("%s" PIN_FRAGMENT "%s", url, pin);
}

char *
tls_url_query_add(const char *url, const char *param)
{
	const char *hash = strchr(url, '#');

	if (hash == NULL)
		return xasprintf("%s&%s", url, param);
	return xasprintf("%.*s&%s%s", (int)(hash - url), url, param, hash);
}

void
tls_curl_url(CURL *c, const char *url, const char *cafile)
{
	const char *pin = strstr(url, PIN_FRAGMENT);

	curl_easy_setopt(c, CURLOPT_URL, url);
	if (pin && strchr(url, '#') == pin) {
		/* the pin is the trust: the key the portal saw at the node's
		 * registration; libcurl checks it whatever VERIFYPEER says */
		curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY,
		    pin + strlen(PIN_FRAGMENT));
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (cafile) {
		curl_easy_setopt(c, CURLOPT_CAINFO, cafile);
	}
}
