#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

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
