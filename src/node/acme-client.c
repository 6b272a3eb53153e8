/* An ACME (RFC 8555) client of our own, on libcurl and OpenSSL, which
 * nubod already links: JWS (ES256, a P-256 account key), newNonce,
 * newAccount, newOrder, the authorizations' HTTP-01 challenges (the key
 * authorization is written where the router serves
 * /.well-known/acme-challenge/), polling, finalize with a CSR, and the
 * certificate chain. Blocking; one order at a time (acme.c calls it from
 * its own thread). Every answer of the server is untrusted input: sizes
 * are capped and every field is checked before use. */
#include "acme.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "jsonx.h"
#include "log.h"
#include "util.h"
#include "xmalloc.h"

#define ACME_BODY_MAX	(1 << 20)	/* an answer, a certificate chain */
#define ACME_POLL_SECONDS	60

struct acme {
	const char	*ca;		/* --acme-ca, or NULL */
	const char	*webroot;	/* challenge files go here */
	EVP_PKEY	*key;		/* the account key */
	char		*jwk;		/* its JWK, members in thumbprint order */
	char		*thumb;		/* base64url SHA-256 of jwk */
	char		*kid;		/* the account URL */
	char		*nonce;
	json_t		*dir;		/* the directory */
	char		*why;		/* the first failure */
};

struct reply {
	long		 status;
	struct buf	 body;
	char		*location;
	char		*nonce;
	int		 too_big;
};

static int
fail(struct acme *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct acme *a, const char *fmt, ...)
{
	va_list ap;

	if (a->why == NULL) {
		va_start(ap, fmt);
		if (vasprintf(&a->why, fmt, ap) == -1)
			a->why = NULL;
		va_end(ap);
	}
	return -1;
}

static char *
b64url(const unsigned char *p, size_t n)
{
	char *out = xmalloc(n * 4 / 3 + 4);
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
	    "tuvwxyz0123456789-_";
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		out[o++] = tab[p[i] >> 2];
		out[o++] = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		out[o++] = tab[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		out[o++] = tab[p[i + 2] & 63];
	}
	if (n - i == 1) {
		out[o++] = tab[p[i] >> 2];
		out[o++] = tab[(p[i] & 3) << 4];
	} else if (n - i == 2) {
		out[o++] = tab[p[i] >> 2];
		out[o++] = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		out[o++] = tab[(p[i + 1] & 15) << 2];
	}
	out[o] = '\0';
	return out;
}

static char *
b64url_str(const char *s)
{
	return b64url((const unsigned char *)s, strlen(s));
}

/* A header line: keep Location and Replay-Nonce. */
static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t len = size * n, k;
	char **slot = NULL;
	const char *v;

	if (len > 11 && strncasecmp(p, "Location:", 9) == 0) {
		slot = &r->location;
		v = p + 9;
	} else if (len > 15 && strncasecmp(p, "Replay-Nonce:", 13) == 0) {
		slot = &r->nonce;
		v = p + 13;
	} else
		return len;
	while (v < p + len && (*v == ' ' || *v == '\t'))
		v++;
	k = (size_t)(p + len - v);
	while (k > 0 && (v[k - 1] == '\r' || v[k - 1] == '\n' ||
	    v[k - 1] == ' '))
		k--;
	if (k > 2048)
		return len;
	free(*slot);
	*slot = xstrndup(v, k);
	return len;
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;

	if (r->body.len + size * n > ACME_BODY_MAX) {
		r->too_big = 1;
		return 0;
	}
	buf_append(&r->body, p, size * n);
	return size * n;
}

static void
reply_free(struct reply *r)
{
	buf_release(&r->body);
	free(r->location);
	free(r->nonce);
	memset(r, 0, sizeof *r);
}

/* One HTTP exchange: GET (body NULL, head 0), HEAD (head 1) or POST of a
 * JOSE body. */
static int
http(struct acme *a, const char *url, const char *body, int head,
    struct reply *r)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	CURLcode cc;

	memset(r, 0, sizeof *r);
	buf_init(&r->body, 0);
	if (c == NULL)
		return fail(a, "cannot start an HTTP client");
	if (strncmp(url, "https://", 8) != 0) {
		curl_easy_cleanup(c);
		return fail(a, "the ACME server gave a URL that is not https: "
		    "%.100s", url);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "nubo-acme/1");
	if (a->ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, a->ca);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	if (head)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (body) {
		h = curl_slist_append(h, "Content-Type: application/jose+json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	if (r->too_big)
		return fail(a, "the ACME server's answer from %.100s is larger "
		    "than %d bytes", url, ACME_BODY_MAX);
	if (cc != CURLE_OK)
		return fail(a, "cannot reach the ACME server at %.100s: %s",
		    url, curl_easy_strerror(cc));
	if (r->nonce) {
		free(a->nonce);
		a->nonce = r->nonce;
		r->nonce = NULL;
	}
	return 0;
}

/* The account key's JWK and thumbprint (RFC 7638). */
static int
jwk_make(struct acme *a)
{
	BIGNUM *x = NULL, *y = NULL;
	unsigned char bx[32], by[32], md[SHA256_DIGEST_LENGTH];
	char *sx, *sy;

	if (EVP_PKEY_get_bn_param(a->key, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
	    EVP_PKEY_get_bn_param(a->key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1 ||
	    BN_bn2binpad(x, bx, 32) != 32 || BN_bn2binpad(y, by, 32) != 32) {
		BN_free(x);
		BN_free(y);
		return fail(a, "the account key is not a P-256 key");
	}
	BN_free(x);
	BN_free(y);
	sx = b64url(bx, 32);
	sy = b64url(by, 32);
	a->jwk = xasprintf("{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\","
	    "\"y\":\"%s\"}", sx, sy);
	free(sx);
	free(sy);
	SHA256((const unsigned char *)a->jwk, strlen(a->jwk), md);
	a->thumb = b64url(md, sizeof md);
	return 0;
}

/* ES256 over "protected.payload": r || s, 32 bytes each. */
static char *
sign(struct acme *a, const char *input)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char der[80], rs[64];
	const unsigned char *p = der;
	size_t len = sizeof der;
	ECDSA_SIG *sig = NULL;
	const BIGNUM *r, *s;
	char *out = NULL;

	if (ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, a->key)
	    == 1 && EVP_DigestSign(ctx, der, &len, (const unsigned char *)
	    input, strlen(input)) == 1 &&
	    (sig = d2i_ECDSA_SIG(NULL, &p, (long)len)) != NULL) {
		ECDSA_SIG_get0(sig, &r, &s);
		if (BN_bn2binpad(r, rs, 32) == 32 &&
		    BN_bn2binpad(s, rs + 32, 32) == 32)
			out = b64url(rs, sizeof rs);
	}
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(ctx);
	return out;
}

static int
nonce_get(struct acme *a)
{
	struct reply r;
	const char *u = jsonx_str(a->dir, "newNonce");

	if (u == NULL)
		return fail(a, "the ACME directory has no newNonce");
	if (http(a, u, NULL, 1, &r) == -1)
		return -1;
	reply_free(&r);
	if (a->nonce == NULL)
		return fail(a, "the ACME server gave no nonce");
	return 0;
}

/* The problem document's words, for the error. */
static char *
problem(struct reply *r)
{
	json_t *j = json_loadb(r->body.data ? r->body.data : "", r->body.len,
	    0, NULL);
	char *s;

	if (jsonx_str(j, "detail"))
		s = xasprintf("%.300s (%.100s)", jsonx_str(j, "detail"),
		    jsonx_str(j, "type") ? jsonx_str(j, "type") : "?");
	else
		s = xasprintf("HTTP %ld", r->status);
	json_decref(j);
	return s;
}

/* A signed POST (payload NULL: POST-as-GET). Retries a badNonce. The
 * answer's JSON in *out when it is JSON. */
static int
post(struct acme *a, const char *url, const char *payload, struct reply *r,
    json_t **out)
{
	int tries;

	for (tries = 0; tries < 3; tries++) {
		char *prot, *p64, *pl64, *input, *sig, *body;
		json_t *j;

		if (a->nonce == NULL && nonce_get(a) == -1)
			return -1;
		prot = a->kid ? xasprintf("{\"alg\":\"ES256\",\"kid\":\"%s\","
		    "\"nonce\":\"%s\",\"url\":\"%s\"}", a->kid, a->nonce, url) :
		    xasprintf("{\"alg\":\"ES256\",\"jwk\":%s,\"nonce\":\"%s\","
		    "\"url\":\"%s\"}", a->jwk, a->nonce, url);
		free(a->nonce);
		a->nonce = NULL;
		p64 = b64url_str(prot);
		pl64 = payload ? b64url_str(payload) : xstrdup("");
		input = xasprintf("%s.%s", p64, pl64);
		sig = sign(a, input);
		if (sig == NULL) {
			free(prot); free(p64); free(pl64); free(input);
			return fail(a, "cannot sign with the account key");
		}
		body = xasprintf("{\"protected\":\"%s\",\"payload\":\"%s\","
		    "\"signature\":\"%s\"}", p64, pl64, sig);
		free(prot); free(p64); free(pl64); free(input); free(sig);
		if (http(a, url, body, 0, r) == -1) {
			free(body);
			return -1;
		}
		free(body);
		j = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0,
		    NULL);
		if (r->status == 400 && jsonx_str(j, "type") && strcmp(jsonx_str(
		    j, "type"), "urn:ietf:params:acme:error:badNonce") == 0) {
			json_decref(j);
			reply_free(r);
			continue;
		}
		if (r->status < 200 || r->status > 299) {
			char *why = problem(r);

			json_decref(j);
			fail(a, "the ACME server refused %.100s: %s", url, why);
			free(why);
			reply_free(r);
			return -1;
		}
		if (out)
			*out = j;
		else
			json_decref(j);
		return 0;
	}
	return fail(a, "the ACME server kept refusing our nonces");
}

static EVP_PKEY *
key_load_or_make(struct acme *a, const char *path)
{
	EVP_PKEY *k = NULL;
	FILE *f = fopen(path, "r");
	BIO *b;
	char *pem;
	long n;

	if (f) {
		k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (k == NULL)
			fail(a, "cannot read the ACME account key %s", path);
		return k;
	}
	if (errno != ENOENT) {
		fail(a, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	b = BIO_new(BIO_s_mem());
	if (k == NULL || b == NULL || PEM_write_bio_PrivateKey(b, k, NULL,
	    NULL, 0, NULL, NULL) != 1 || (n = BIO_get_mem_data(b, &pem)) <= 0 ||
	    util_write_file(path, pem, (size_t)n, 0600) == -1) {
		fail(a, "cannot make the ACME account key %s: %s", path,
		    strerror(errno));
		EVP_PKEY_free(k);
		k = NULL;
	}
	BIO_free(b);
	return k;
}

/* The directory and the account (made or found by its key). */
static int
account(struct acme *a, const char *directory, const char *email,
    const char *keyfile)
{
	struct reply r;
	char *payload;
	int rc;

	if ((a->key = key_load_or_make(a, keyfile)) == NULL ||
	    jwk_make(a) == -1)
		return -1;
	if (http(a, directory, NULL, 0, &r) == -1)
		return -1;
	a->dir = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0,
	    NULL);
	if (r.status != 200 || !json_is_object(a->dir)) {
		rc = fail(a, "%s is not an ACME directory (HTTP %ld)",
		    directory, r.status);
		reply_free(&r);
		return rc;
	}
	reply_free(&r);
	if (!jsonx_str(a->dir, "newAccount") || !jsonx_str(a->dir, "newOrder"))
		return fail(a, "the ACME directory lacks newAccount/newOrder");
	if (email) {
		json_t *j = json_pack("{s:b,s:[s+]}", "termsOfServiceAgreed", 1,
		    "contact", "mailto:", email);

		payload = json_dumps(j, JSON_COMPACT);
		json_decref(j);
	} else
		payload = xstrdup("{\"termsOfServiceAgreed\":true}");
	rc = post(a, jsonx_str(a->dir, "newAccount"), payload, &r, NULL);
	free(payload);
	if (rc == -1)
		return -1;
	if (r.location == NULL) {
		reply_free(&r);
		return fail(a, "the ACME server gave no account URL");
	}
	a->kid = r.location;
	r.location = NULL;
	reply_free(&r);
	return 0;
}

/* POST-as-GET url until its status is not pending/processing. */
static json_t *
poll_status(struct acme *a, const char *url, const char *what)
{
	int i;

	for (i = 0; i < ACME_POLL_SECONDS * 2; i++) {
		struct reply r;
		json_t *j = NULL;
		const char *st;

		if (post(a, url, NULL, &r, &j) == -1)
			return NULL;
		reply_free(&r);
		st = jsonx_str(j, "status");
		if (st == NULL) {
			json_decref(j);
			fail(a, "the ACME server's %s has no status", what);
			return NULL;
		}
		if (strcmp(st, "pending") != 0 && strcmp(st, "processing") != 0)
			return j;
		json_decref(j);
		usleep(500 * 1000);
	}
	fail(a, "the ACME server's %s stayed pending for %d s", what,
	    ACME_POLL_SECONDS);
	return NULL;
}

/* A token is base64url (RFC 8555 §8.3): safe as a file name. */
static int
token_ok(const char *t)
{
	size_t n = t ? strlen(t) : 0, i;

	if (n < 16 || n > 256)
		return 0;
	for (i = 0; i < n; i++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw"
		    "xyz0123456789-_", t[i]))
			return 0;
	return 1;
}

/* One authorization: answer its http-01 challenge, wait until valid. */
static int
authorize(struct acme *a, const char *url)
{
	struct reply r;
	json_t *az = NULL, *ch, *done = NULL;
	const char *token = NULL, *curl = NULL, *name;
	char *path = NULL, *ka = NULL;
	size_t i;
	int rc = -1;

	if (post(a, url, NULL, &r, &az) == -1)
		return -1;
	reply_free(&r);
	name = jsonx_str(json_object_get(az, "identifier"), "value");
	if (jsonx_str(az, "status") && strcmp(jsonx_str(az, "status"),
	    "valid") == 0) {
		rc = 0;
		goto out;
	}
	json_array_foreach(json_object_get(az, "challenges"), i, ch) {
		if (jsonx_str(ch, "type") && strcmp(jsonx_str(ch, "type"),
		    "http-01") == 0) {
			token = jsonx_str(ch, "token");
			curl = jsonx_str(ch, "url");
		}
	}
	if (!token_ok(token) || curl == NULL) {
		fail(a, "the ACME server offers no usable http-01 challenge "
		    "for %.100s", name ? name : "?");
		goto out;
	}
	ka = xasprintf("%s.%s", token, a->thumb);
	path = xasprintf("%s/%s", a->webroot, token);
	if (util_write_file(path, ka, strlen(ka), 0644) == -1) {
		fail(a, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	if (post(a, curl, "{}", &r, NULL) == -1)
		goto out;
	reply_free(&r);
	if ((done = poll_status(a, url, "authorization")) == NULL)
		goto out;
	if (strcmp(jsonx_str(done, "status"), "valid") != 0) {
		json_t *c2, *err = NULL;

		json_array_foreach(json_object_get(done, "challenges"), i, c2)
			if (json_object_get(c2, "error"))
				err = json_object_get(c2, "error");
		fail(a, "the ACME server did not validate %.100s: %.300s",
		    name ? name : "?", jsonx_str(err, "detail") ?
		    jsonx_str(err, "detail") : jsonx_str(done, "status"));
		goto out;
	}
	rc = 0;
out:
	if (path)
		unlink(path);
	free(path);
	free(ka);
	json_decref(az);
	json_decref(done);
	return rc;
}

/* A CSR for names with a new P-256 key: base64url DER. */
static char *
csr_make(struct acme *a, EVP_PKEY *k, const char **names, int n)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *sub = X509_NAME_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *ext;
	struct buf san;
	unsigned char *der = NULL;
	char *out = NULL;
	int i, len;

	buf_init(&san, 0);
	for (i = 0; i < n; i++)
		buf_printf(&san, "%sDNS:%s", i ? "," : "", names[i]);
	X509_NAME_add_entry_by_txt(sub, "CN", MBSTRING_ASC,
	    (const unsigned char *)names[0], -1, -1, 0);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
	    buf_cstr(&san));
	if (req && ext && X509_REQ_set_version(req, 0) == 1 &&
	    X509_REQ_set_subject_name(req, sub) == 1 &&
	    X509_REQ_set_pubkey(req, k) == 1 &&
	    sk_X509_EXTENSION_push(exts, ext) > 0 &&
	    X509_REQ_add_extensions(req, exts) == 1 &&
	    X509_REQ_sign(req, k, EVP_sha256()) > 0 &&
	    (len = i2d_X509_REQ(req, &der)) > 0)
		out = b64url(der, (size_t)len);
	else
		fail(a, "cannot make the certificate request");
	OPENSSL_free(der);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(sub);
	X509_REQ_free(req);
	buf_release(&san);
	return out;
}

int
acme_order(const struct acme_conf *conf, const char **names, int n,
    char **cert_pem, char **key_pem, char **why)
{
	struct acme a;
	struct reply r;
	json_t *order = NULL, *done = NULL, *v;
	EVP_PKEY *k = NULL;
	BIO *b = NULL;
	struct buf ids;
	char *order_url = NULL, *csr = NULL, *payload, *pem;
	const char *cu;
	size_t i;
	long len;
	int rc = -1, prc;

	memset(&a, 0, sizeof a);
	memset(&r, 0, sizeof r);
	a.ca = conf->ca;
	a.webroot = conf->webroot;
	*cert_pem = *key_pem = *why = NULL;
	if (account(&a, conf->directory, conf->email, conf->account_key) == -1)
		goto out;
	buf_init(&ids, 0);
	buf_printf(&ids, "{\"identifiers\":[");
	for (i = 0; i < (size_t)n; i++)
		buf_printf(&ids, "%s{\"type\":\"dns\",\"value\":\"%s\"}",
		    i ? "," : "", names[i]);
	buf_printf(&ids, "]}");
	payload = buf_detach(&ids);
	prc = post(&a, jsonx_str(a.dir, "newOrder"), payload, &r, &order);
	free(payload);
	if (prc == -1)
		goto out;
	order_url = r.location;
	r.location = NULL;
	reply_free(&r);
	if (order_url == NULL || !jsonx_str(order, "finalize") ||
	    !json_is_array(json_object_get(order, "authorizations"))) {
		fail(&a, "the ACME server's order lacks its URL, finalize or "
		    "authorizations");
		goto out;
	}
	json_array_foreach(json_object_get(order, "authorizations"), i, v) {
		if (!json_is_string(v)) {
			fail(&a, "the ACME server's order has a bad "
			    "authorization");
			goto out;
		}
		if (authorize(&a, json_string_value(v)) == -1)
			goto out;
	}
	k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (k == NULL || (csr = csr_make(&a, k, names, n)) == NULL) {
		fail(&a, "cannot make the certificate's key");
		goto out;
	}
	payload = xasprintf("{\"csr\":\"%s\"}", csr);
	prc = post(&a, jsonx_str(order, "finalize"), payload, &r, NULL);
	free(payload);
	if (prc == -1)
		goto out;
	reply_free(&r);
	if ((done = poll_status(&a, order_url, "order")) == NULL)
		goto out;
	cu = jsonx_str(done, "certificate");
	if (strcmp(jsonx_str(done, "status"), "valid") != 0 || cu == NULL) {
		fail(&a, "the ACME server's order ended %s", jsonx_str(done,
		    "status"));
		goto out;
	}
	if (post(&a, cu, NULL, &r, NULL) == -1)
		goto out;
	if (r.body.len == 0 || memmem(r.body.data, r.body.len,
	    "-----BEGIN CERTIFICATE-----", 27) == NULL) {
		reply_free(&r);
		fail(&a, "the ACME server's certificate is not PEM");
		goto out;
	}
	*cert_pem = xstrndup(r.body.data, r.body.len);
	reply_free(&r);
	b = BIO_new(BIO_s_mem());
	if (b == NULL || PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL,
	    NULL) != 1 || (len = BIO_get_mem_data(b, &pem)) <= 0) {
		fail(&a, "cannot write the certificate's key");
		free(*cert_pem);
		*cert_pem = NULL;
		goto out;
	}
	*key_pem = xstrndup(pem, (size_t)len);
	rc = 0;
out:
	if (rc == -1)
		*why = a.why ? xstrdup(a.why) : xstrdup("the ACME order failed");
	BIO_free(b);
	EVP_PKEY_free(k);
	EVP_PKEY_free(a.key);
	free(csr);
	free(order_url);
	json_decref(order);
	json_decref(done);
	json_decref(a.dir);
	free(a.jwk);
	free(a.thumb);
	free(a.kid);
	free(a.nonce);
	free(a.why);
	return rc;
}

int
acme_cert_times(const char *pem, time_t *not_before, time_t *not_after,
    char ***names, int *nnames)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	GENERAL_NAMES *gn;
	struct tm tb, ta;
	int i, rc = -1;

	*names = NULL;
	*nnames = 0;
	if (x && ASN1_TIME_to_tm(X509_get0_notBefore(x), &tb) == 1 &&
	    ASN1_TIME_to_tm(X509_get0_notAfter(x), &ta) == 1) {
		*not_before = timegm(&tb);
		*not_after = timegm(&ta);
		rc = 0;
		gn = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
		for (i = 0; gn && i < sk_GENERAL_NAME_num(gn); i++) {
			GENERAL_NAME *g = sk_GENERAL_NAME_value(gn, i);
			const unsigned char *d;

			if (g->type != GEN_DNS)
				continue;
			d = ASN1_STRING_get0_data(g->d.dNSName);
			*names = xrealloc(*names, (size_t)(*nnames + 1) *
			    sizeof **names);
			(*names)[(*nnames)++] = xstrndup((const char *)d,
			    (size_t)ASN1_STRING_length(g->d.dNSName));
		}
		GENERAL_NAMES_free(gn);
	}
	X509_free(x);
	BIO_free(b);
	return rc;
}
