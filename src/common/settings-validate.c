/* Validators for environment settings; see settings-validate.h. */
#include "settings-validate.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "nubo_limits.h"
#include "util.h"
#include "xmalloc.h"

static int
fail(char **cause, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(char **cause, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	*cause = xvasprintf(fmt, ap);
	va_end(ap);
	return -1;
}

static const char *const sv_type_names[] = {
	[SV_STRING] = "string", [SV_INTEGER] = "integer",
	[SV_DECIMAL] = "decimal", [SV_BOOLEAN] = "boolean",
	[SV_DATETIME] = "datetime",
};

int
sv_type_parse(const char *name, enum sv_type *out)
{
	size_t i;

	for (i = 0; name && i < sizeof sv_type_names / sizeof *sv_type_names;
	    i++)
		if (strcmp(name, sv_type_names[i]) == 0) {
			*out = (enum sv_type)i;
			return 0;
		}
	return -1;
}

const char *
sv_type_name(enum sv_type t)
{
	return sv_type_names[t];
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM). */
static int
valid_datetime(const char *s)
{
	int y, mo, d, h, mi, sec, n = 0;
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };

	if (strlen(s) < 20 || sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 ||
	    n != 10 || (s[10] != 'T' && s[10] != 't') ||
	    sscanf(s + 11, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3 || n != 8)
		return 0;
	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[5]) ||
	    !isdigit((unsigned char)s[8]) || !isdigit((unsigned char)s[11]) ||
	    !isdigit((unsigned char)s[14]) || !isdigit((unsigned char)s[17]))
		return 0;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
	    mi > 59 || sec > 60 || h < 0 || mi < 0 || sec < 0)
		return 0;
	if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) ||
	    y % 400 == 0))
		return 0;
	s += 19;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return 0;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if ((*s == 'Z' || *s == 'z') && s[1] == '\0')
		return 1;
	if ((*s == '+' || *s == '-') && strlen(s) == 6 &&
	    isdigit((unsigned char)s[1]) && isdigit((unsigned char)s[2]) &&
	    s[3] == ':' && isdigit((unsigned char)s[4]) &&
	    isdigit((unsigned char)s[5]))
		return (s[1] - '0') * 10 + (s[2] - '0') <= 23 &&
		    (s[4] - '0') * 10 + (s[5] - '0') <= 59;
	return 0;
}

int
sv_constant_value(enum sv_type t, const char *v, char **canon, char **cause)
{
	const char *p;
	long long n;

	*canon = NULL;
	switch (t) {
	case SV_STRING:
		if (sv_text(v, NUBO_SETTING_VALUE_MAX, cause) == -1)
			return -1;
		*canon = xstrdup(v);
		return 0;
	case SV_INTEGER:
		if (util_parse_int(v, LLONG_MIN, LLONG_MAX, &n) == -1 ||
		    strchr(v, ' ') != NULL)
			return fail(cause, "'%.64s' is not an integer", v);
		*canon = xasprintf("%lld", n);
		return 0;
	case SV_DECIMAL: {
		int digits = 0, dot = 0;

		p = v;
		if (*p == '-' || *p == '+')
			p++;
		if (!isdigit((unsigned char)*p))
			return fail(cause, "'%.64s' is not a decimal number",
			    v);
		for (; *p; p++) {
			if (isdigit((unsigned char)*p))
				digits++;
			else if (*p == '.' && !dot && isdigit((unsigned char)
			    p[1]))
				dot = 1;
			else
				return fail(cause, "'%.64s' is not a decimal "
				    "number", v);
		}
		if (digits > 38)
			return fail(cause, "decimal '%.64s' has more than 38 "
			    "digits", v);
		*canon = xstrdup(v[0] == '+' ? v + 1 : v);
		return 0;
	}
	case SV_BOOLEAN:
		if (strcasecmp(v, "true") == 0)
			*canon = xstrdup("true");
		else if (strcasecmp(v, "false") == 0)
			*canon = xstrdup("false");
		else
			return fail(cause, "'%.64s' is not a boolean (true or "
			    "false)", v);
		return 0;
	case SV_DATETIME:
		if (!valid_datetime(v))
			return fail(cause, "'%.64s' is not an RFC 3339 date-time"
			    " (2026-01-31T12:00:00Z)", v);
		*canon = xstrdup(v);
		return 0;
	}
	return fail(cause, "unknown type");
}

int
sv_cidr(const char *s, char **canon, char **cause)
{
	char addr[INET6_ADDRSTRLEN + 1], out[INET6_ADDRSTRLEN];
	unsigned char bin[16];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	long long prefix;
	int af, max, i;

	if (alen == 0 || alen >= sizeof addr)
		return fail(cause, "'%.64s' is not an IP address or CIDR", s);
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, bin) == 1) {
		af = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, bin) == 1) {
		af = AF_INET6;
		max = 128;
	} else {
		return fail(cause, "'%.64s' is not an IP address or CIDR", s);
	}
	prefix = max;
	if (slash && util_parse_int(slash + 1, 0, max, &prefix) == -1)
		return fail(cause, "'%.64s' has an invalid prefix length "
		    "(0..%d)", s, max);
	if (slash && (slash[1] == '+' || slash[1] == '-'))
		return fail(cause, "'%.64s' has an invalid prefix length "
		    "(0..%d)", s, max);
	for (i = 0; i < max / 8; i++) {
		int bits = (int)prefix - i * 8;
		unsigned char mask = bits >= 8 ? 0xff : bits <= 0 ? 0 :
		    (unsigned char)(0xff << (8 - bits));

		if (bin[i] & ~mask)
			return fail(cause, "'%.64s' has host bits set after "
			    "/%lld", s, prefix);
	}
	inet_ntop(af, bin, out, sizeof out);
	*canon = xasprintf("%s/%lld", out, prefix);
	return 0;
}

int
sv_domain(const char *s, char **canon, char **cause)
{
	size_t n = strlen(s), label = 0, labels = 1, i;
	char *c;

	if (n == 0 || n > 253)
		return fail(cause, "a domain name has 1 to 253 characters");
	if (s[0] == '*')
		return fail(cause, "'%.64s': a custom domain cannot be a "
		    "wildcard (the certificate may be)", s);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '.') {
			if (label == 0 || s[i - 1] == '-')
				return fail(cause, "'%.64s' is not a valid "
				    "domain name (empty label or label ending "
				    "in '-')", s);
			label = 0;
			labels++;
			continue;
		}
		if (!isalnum(ch) && ch != '-')
			return fail(cause, "'%.64s' is not a valid domain name "
			    "(character '%c')", s, isprint(ch) ? ch : '?');
		if (label == 0 && ch == '-')
			return fail(cause, "'%.64s' is not a valid domain name "
			    "(label starting with '-')", s);
		if (++label > 63)
			return fail(cause, "'%.64s' has a label longer than 63 "
			    "characters", s);
	}
	if (label == 0 || s[n - 1] == '-')
		return fail(cause, "'%.64s' is not a valid domain name", s);
	if (labels < 2)
		return fail(cause, "'%.64s' is not a fully qualified domain "
		    "name", s);
	for (i = n; i > 0 && s[i - 1] != '.'; i--)
		;
	if (isdigit((unsigned char)s[i]) && strspn(s + i, "0123456789") ==
	    n - i)
		return fail(cause, "'%.64s' is an address, not a domain name",
		    s);
	c = xstrdup(s);
	for (i = 0; i < n; i++)
		c[i] = (char)tolower((unsigned char)c[i]);
	*canon = c;
	return 0;
}

static const char *
ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : "unreadable";
}

/* One PEM block: its type ("CERTIFICATE", "PRIVATE KEY", …), where it
 * starts and its decoded bytes. */
struct pem_block {
	char		*type;
	int		 line;
	unsigned char	*der;
	long		 len;
};

static void
pem_blocks_free(struct pem_block *b, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		OPENSSL_free(b[i].type);
		if (b[i].der) {
			OPENSSL_cleanse(b[i].der, (size_t)b[i].len);
			OPENSSL_free(b[i].der);
		}
	}
	free(b);
}

/* The type of a "-----BEGIN TYPE-----" / "-----END TYPE-----" line of
 * length n, or NULL. */
static const char *
pem_marker(const char *line, size_t n, const char *word, size_t *tlen)
{
	size_t w = strlen(word);

	if (n < w + 10 || strncmp(line, "-----", 5) != 0 ||
	    strncmp(line + 5, word, w) != 0 || line[5 + w] != ' ' ||
	    strncmp(line + n - 5, "-----", 5) != 0)
		return NULL;
	*tlen = n - (5 + w + 1) - 5;
	return *tlen > 0 ? line + 5 + w + 1 : NULL;
}

/* Split text (what names it in errors) into its PEM blocks, at most max.
 * Strict, so that what is stored is exactly what it says: nothing but
 * blank lines outside the blocks (no text before, between or after them,
 * no block cut short), no headers in a block (an encrypted legacy key
 * has them) and base64 that decodes. The number of blocks (> 0), or -1
 * with *cause. */
static int
pem_split(const char *text, const char *what, int max, struct pem_block **out,
    char **cause)
{
	struct pem_block *b = NULL;
	const char *p, *begin = NULL, *type = NULL;
	size_t tlen = 0, n;
	int nb = 0, line = 0, begin_line = 0;

	*out = NULL;
	if (text == NULL || strlen(text) > NUBO_PEM_MAX) {
		fail(cause, "the %s is missing or larger than %d bytes", what,
		    NUBO_PEM_MAX);
		return -1;
	}
	for (p = text; *p; p += n + (p[n] == '\n')) {
		const char *t;
		size_t len, etlen;

		n = strcspn(p, "\n");
		line++;
		for (len = n; len > 0 && strchr(" \t\r", p[len - 1]); len--)
			;
		if (begin == NULL) {
			if (len == 0)
				continue;	/* blank */
			if ((type = pem_marker(p, len, "BEGIN", &tlen)) == NULL) {
				fail(cause, "the %s has text outside a PEM block "
				    "on line %d (only -----BEGIN …----- … "
				    "-----END …----- blocks may be given)", what,
				    line);
				goto bad;
			}
			if (nb == max) {
				fail(cause, "the %s holds more than %d PEM "
				    "blocks", what, max);
				goto bad;
			}
			begin = p;
			begin_line = line;
			continue;
		}
		if (pem_marker(p, len, "BEGIN", &etlen) != NULL)
			break;			/* a block without its END */
		if ((t = pem_marker(p, len, "END", &etlen)) == NULL)
			continue;
		if (etlen != tlen || strncmp(t, type, tlen) != 0) {
			fail(cause, "block %d of the %s (line %d) begins as "
			    "'%.*s' but ends as '%.*s'", nb + 1, what,
			    begin_line, (int)(tlen > 40 ? 40 : tlen), type,
			    (int)(etlen > 40 ? 40 : etlen), t);
			goto bad;
		}
		{
			BIO *bio = BIO_new_mem_buf(begin, (int)(p + n - begin));
			char *name = NULL, *header = NULL;
			unsigned char *der = NULL;
			long dlen = 0;
			int ok;

			ERR_clear_error();
			ok = PEM_read_bio(bio, &name, &header, &der, &dlen) == 1;
			BIO_free(bio);
			ERR_clear_error();
			if (ok && header && *header) {
				OPENSSL_free(name);
				OPENSSL_free(header);
				OPENSSL_cleanse(der, (size_t)dlen);
				OPENSSL_free(der);
				fail(cause, "block %d of the %s (line %d) has "
				    "headers (an encrypted key?): give it "
				    "unencrypted, without headers", nb + 1, what,
				    begin_line);
				goto bad;
			}
			OPENSSL_free(header);
			if (!ok || dlen <= 0) {
				OPENSSL_free(name);
				OPENSSL_free(der);
				fail(cause, "block %d of the %s (line %d) is not "
				    "valid base64", nb + 1, what, begin_line);
				goto bad;
			}
			b = xrealloc(b, (size_t)(nb + 1) * sizeof *b);
			b[nb].type = name;
			b[nb].line = begin_line;
			b[nb].der = der;
			b[nb].len = dlen;
			nb++;
		}
		begin = NULL;
	}
	if (begin != NULL) {
		fail(cause, "block %d of the %s (line %d) has no -----END "
		    "%.*s----- line", nb + 1, what, begin_line,
		    (int)(tlen > 40 ? 40 : tlen), type);
		goto bad;
	}
	if (nb == 0) {
		fail(cause, "the %s is not PEM (no -----BEGIN …----- block)",
		    what);
		goto bad;
	}
	*out = b;
	return nb;
bad:
	pem_blocks_free(b, nb);
	return -1;
}

/* Every certificate in pem, in order (leaf first for a chain): only
 * CERTIFICATE blocks, each one whole DER certificate. NULL with *cause
 * on error. */
static STACK_OF(X509) *
pem_certs(const char *pem, const char *what, char **cause)
{
	STACK_OF(X509) *certs = NULL;
	struct pem_block *b = NULL;
	int n, i;

	if ((n = pem_split(pem, what, NUBO_PEM_CERTS_MAX, &b, cause)) == -1)
		return NULL;
	certs = sk_X509_new_null();
	for (i = 0; i < n; i++) {
		const unsigned char *p = b[i].der;
		X509 *x;

		if (strcmp(b[i].type, "CERTIFICATE") != 0) {
			fail(cause, "block %d of the %s (line %d) is a '%.40s', "
			    "not a CERTIFICATE%s", i + 1, what, b[i].line,
			    b[i].type, strstr(b[i].type, "PRIVATE KEY") ?
			    " (the private key has a field of its own)" : "");
			goto bad;
		}
		x = d2i_X509(NULL, &p, b[i].len);
		if (x == NULL || p != b[i].der + b[i].len) {
			X509_free(x);
			fail(cause, "block %d of the %s (line %d) is not a "
			    "certificate", i + 1, what, b[i].line);
			goto bad;
		}
		sk_X509_push(certs, x);
	}
	pem_blocks_free(b, n);
	ERR_clear_error();
	return certs;
bad:
	pem_blocks_free(b, n);
	sk_X509_pop_free(certs, X509_free);
	ERR_clear_error();
	return NULL;
}

/* The one private key in pem: a PRIVATE KEY (PKCS#8), RSA PRIVATE KEY
 * or EC PRIVATE KEY block, unencrypted, optionally after the EC
 * PARAMETERS block `openssl ecparam -genkey` writes. NULL with *cause. */
static EVP_PKEY *
pem_key(const char *pem, char **cause)
{
	struct pem_block *b = NULL;
	EVP_PKEY *key = NULL;
	int n, i, found = -1;

	if ((n = pem_split(pem, "private key", 2, &b, cause)) == -1)
		return NULL;
	for (i = 0; i < n; i++) {
		const char *t = b[i].type;

		if (strcmp(t, "ENCRYPTED PRIVATE KEY") == 0) {
			fail(cause, "the private key is encrypted: give it "
			    "unencrypted (the router reads it without a "
			    "password)");
			goto out;
		}
		if (strcmp(t, "EC PARAMETERS") == 0 && i == 0 && n == 2)
			continue;
		if (found == -1 && (strcmp(t, "PRIVATE KEY") == 0 ||
		    strcmp(t, "RSA PRIVATE KEY") == 0 ||
		    strcmp(t, "EC PRIVATE KEY") == 0)) {
			found = i;
			continue;
		}
		fail(cause, "block %d of the private key (line %d) is a "
		    "'%.40s': the field takes one PRIVATE KEY, RSA PRIVATE KEY "
		    "or EC PRIVATE KEY block", i + 1, b[i].line, t);
		goto out;
	}
	if (found == -1) {
		fail(cause, "the private key holds no private key block");
		goto out;
	}
	{
		const unsigned char *p = b[found].der;
		const char *t = b[found].type;

		ERR_clear_error();
		if (strcmp(t, "PRIVATE KEY") == 0) {
			PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL,
			    &p, b[found].len);

			if (p8)
				key = EVP_PKCS82PKEY(p8);
			PKCS8_PRIV_KEY_INFO_free(p8);
		} else {
			key = d2i_PrivateKey(strcmp(t, "RSA PRIVATE KEY") == 0 ?
			    EVP_PKEY_RSA : EVP_PKEY_EC, NULL, &p, b[found].len);
		}
		if (key == NULL || p != b[found].der + b[found].len) {
			EVP_PKEY_free(key);
			key = NULL;
			fail(cause, "the private key block (line %d) is not a "
			    "valid %s (%s)", b[found].line, t, ssl_reason());
		}
	}
out:
	pem_blocks_free(b, n);
	ERR_clear_error();
	return key;
}

/* "certificate N (CN=…)" for messages about a chain. */
static char *
cert_label(STACK_OF(X509) *certs, int i)
{
	char cn[128] = "";
	X509_NAME *name = X509_get_subject_name(sk_X509_value(certs, i));

	if (name == NULL || X509_NAME_get_text_by_NID(name, NID_commonName, cn,
	    sizeof cn) <= 0)
		return xasprintf("certificate %d", i + 1);
	return xasprintf("certificate %d (CN=%s)", i + 1, cn);
}

/* Load the chain and key the way the router (nginx) does at (re)load:
 * an SSL_CTX under the system's OpenSSL configuration, so its security
 * level (key sizes, signature digests) refuses what nginx would refuse. */
static int
tls_loadable(STACK_OF(X509) *certs, EVP_PKEY *key, char **cause)
{
	SSL_CTX *ctx;
	int i, rc = -1;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return fail(cause, "cannot check the certificate: %s",
		    ssl_reason());
	if (SSL_CTX_use_certificate(ctx, sk_X509_value(certs, 0)) != 1) {
		fail(cause, "the router cannot use the certificate: %s",
		    ssl_reason());
		goto out;
	}
	for (i = 1; i < sk_X509_num(certs); i++) {
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(certs, i)) !=
		    1) {
			char *l = cert_label(certs, i);

			fail(cause, "the router cannot use %s of the chain: %s",
			    l, ssl_reason());
			free(l);
			goto out;
		}
	}
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		fail(cause, "the router cannot use the private key: %s",
		    ssl_reason());
		goto out;
	}
	rc = 0;
out:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

/* Each certificate after the first signs the one before it. */
static int
chain_ordered(STACK_OF(X509) *certs, char **cause)
{
	int i;

	for (i = 1; i < sk_X509_num(certs); i++) {
		X509 *sub = sk_X509_value(certs, i - 1);
		X509 *iss = sk_X509_value(certs, i);
		EVP_PKEY *pk = X509_get0_pubkey(iss);

		if (X509_check_issued(iss, sub) != X509_V_OK || pk == NULL ||
		    X509_verify(sub, pk) != 1) {
			char *a = cert_label(certs, i), *b = cert_label(certs,
			    i - 1);

			fail(cause, "%s does not sign %s: the chain goes leaf "
			    "first, then the issuer of each certificate in "
			    "turn", a, b);
			free(a);
			free(b);
			ERR_clear_error();
			return -1;
		}
	}
	ERR_clear_error();
	return 0;
}

int
sv_certificate(const char *cert_pem, const char *key_pem, const char *domain,
    time_t now, time_t *not_after, char **cause)
{
	STACK_OF(X509) *certs;
	EVP_PKEY *key = NULL;
	X509 *leaf;
	struct tm tm;
	int i, rc = -1;

	if ((certs = pem_certs(cert_pem, "certificate", cause)) == NULL)
		return -1;
	leaf = sk_X509_value(certs, 0);
	if (key_pem == NULL || strlen(key_pem) > NUBO_PEM_MAX) {
		fail(cause, "the private key is missing or larger than %d bytes",
		    NUBO_PEM_MAX);
		goto out;
	}
	if ((key = pem_key(key_pem, cause)) == NULL)
		goto out;
	if (X509_check_private_key(leaf, key) != 1) {
		fail(cause, "the private key does not match the certificate%s",
		    sk_X509_num(certs) > 1 ? " (the first one, the leaf)" : "");
		goto out;
	}
	if (chain_ordered(certs, cause) == -1)
		goto out;
	for (i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		char *l;

		if (X509_cmp_time(X509_get0_notBefore(x), &now) <= 0 &&
		    X509_cmp_time(X509_get0_notAfter(x), &now) >= 0)
			continue;
		l = i == 0 ? xstrdup("the certificate") :
		    cert_label(certs, i);
		fail(cause, "%s%s %s", l, i == 0 ? "" : " of the chain",
		    X509_cmp_time(X509_get0_notBefore(x), &now) > 0 ?
		    "is not valid yet" : "has expired");
		free(l);
		goto out;
	}
	if (domain && X509_check_host(leaf, domain, 0, 0, NULL) != 1) {
		fail(cause, "the certificate does not cover '%s'", domain);
		goto out;
	}
	if (tls_loadable(certs, key, cause) == -1)
		goto out;
	if (not_after) {
		memset(&tm, 0, sizeof tm);
		ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm);
		*not_after = timegm(&tm);
	}
	rc = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(key);
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

int
sv_ca_bundle(const char *pem, char **cause)
{
	STACK_OF(X509) *certs = pem_certs(pem, "client certificate CA", cause);
	int i;

	if (certs == NULL)
		return -1;
	for (i = 0; i < sk_X509_num(certs); i++) {
		if (X509_check_ca(sk_X509_value(certs, i)) == 0) {
			sk_X509_pop_free(certs, X509_free);
			return fail(cause, "certificate %d of the client "
			    "certificate CA is not a CA certificate", i + 1);
		}
	}
	sk_X509_pop_free(certs, X509_free);
	return 0;
}

char *
sv_cert_fingerprint(const char *cert_pem)
{
	STACK_OF(X509) *certs;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	char *cause = NULL, *out = NULL;

	certs = pem_certs(cert_pem, "certificate", &cause);
	free(cause);
	if (certs == NULL)
		return NULL;
	if (X509_digest(sk_X509_value(certs, 0), EVP_sha256(), md, &n) == 1) {
		out = xmalloc(2 * n + 1);
		util_hex(md, n, out);
	}
	sk_X509_pop_free(certs, X509_free);
	return out;
}

/* Response headers nubo lets an environment set (seed: Environment
 * Details → Network); v3 knows only X-Frame-Options. */
static const struct {
	const char	*name;
	int		 v3;
} sv_headers[] = {
	{ "Access-Control-Allow-Origin", 0 },
	{ "Content-Security-Policy", 0 },
	{ "Referrer-Policy", 0 },
	{ "X-Content-Type-Options", 0 },
	{ "X-Frame-Options", 1 },
	{ "X-Permitted-Cross-Domain-Policies", 0 },
	{ "X-XSS-Protection", 0 },
};

int
sv_header_name(const char *name, const char *generation,
    const char **canon_name, char **cause)
{
	size_t i;

	for (i = 0; i < sizeof sv_headers / sizeof *sv_headers; i++) {
		if (strcasecmp(name, sv_headers[i].name) != 0)
			continue;
		if (!sv_headers[i].v3 && strcmp(generation, "v3") == 0)
			return fail(cause, "header '%s' is not supported on v3 "
			    "nodes (only X-Frame-Options)", sv_headers[i].name);
		*canon_name = sv_headers[i].name;
		return 0;
	}
	return fail(cause, "header '%.64s' cannot be set (allowed: %s)", name,
	    strcmp(generation, "v3") == 0 ? "X-Frame-Options" :
	    "Access-Control-Allow-Origin, Content-Security-Policy, "
	    "Referrer-Policy, X-Content-Type-Options, X-Frame-Options, "
	    "X-Permitted-Cross-Domain-Policies, X-XSS-Protection");
}

static int
one_of(const char *v, const char *const *list)
{
	for (; *list; list++)
		if (strcasecmp(v, *list) == 0)
			return 1;
	return 0;
}

int
sv_header_value(const char *name, const char *v, char **cause)
{
	static const char *const xfo[] = { "DENY", "SAMEORIGIN", NULL };
	static const char *const xpcdp[] = { "none", "master-only",
	    "by-content-type", "by-ftp-filename", "all", NULL };
	static const char *const rp[] = { "no-referrer",
	    "no-referrer-when-downgrade", "origin", "origin-when-cross-origin",
	    "same-origin", "strict-origin", "strict-origin-when-cross-origin",
	    "unsafe-url", NULL };
	const char *p;

	if (*v == '\0')
		return fail(cause, "the value is empty");
	if (strlen(v) > NUBO_HEADER_VALUE_MAX)
		return fail(cause, "the value is longer than %d characters",
		    NUBO_HEADER_VALUE_MAX);
	/* The router writes the value into an nginx string. */
	for (p = v; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e ||
		    strchr("\"\\${}", *p))
			return fail(cause, "the value has a character that is "
			    "not allowed (control, non-ASCII, quote, "
			    "backslash, '$', braces)");
	if (strcmp(name, "X-Frame-Options") == 0 && !one_of(v, xfo) &&
	    strncasecmp(v, "ALLOW-FROM ", 11) != 0)
		return fail(cause, "'%.64s' is not DENY, SAMEORIGIN or "
		    "ALLOW-FROM <uri>", v);
	if (strcmp(name, "X-Content-Type-Options") == 0 &&
	    strcasecmp(v, "nosniff") != 0)
		return fail(cause, "'%.64s' is not nosniff", v);
	if (strcmp(name, "X-Permitted-Cross-Domain-Policies") == 0 &&
	    !one_of(v, xpcdp))
		return fail(cause, "'%.64s' is not none, master-only, "
		    "by-content-type, by-ftp-filename or all", v);
	if (strcmp(name, "Referrer-Policy") == 0) {
		char *copy = xstrdup(v), *tok, *save = NULL;
		int ok = 1;

		for (tok = strtok_r(copy, ", ", &save); tok;
		    tok = strtok_r(NULL, ", ", &save))
			if (!one_of(tok, rp))
				ok = 0;
		free(copy);
		if (!ok)
			return fail(cause, "'%.64s' is not a referrer policy",
			    v);
	}
	if (strcmp(name, "X-XSS-Protection") == 0 && strcmp(v, "0") != 0 &&
	    strcmp(v, "1") != 0 && strcmp(v, "1; mode=block") != 0 &&
	    strncmp(v, "1; report=", 10) != 0)
		return fail(cause, "'%.64s' is not 0, 1, '1; mode=block' or "
		    "'1; report=<uri>'", v);
	if (strcmp(name, "Access-Control-Allow-Origin") == 0 &&
	    strcmp(v, "*") != 0 && strcmp(v, "null") != 0 &&
	    strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0)
		return fail(cause, "'%.64s' is not '*', 'null' or an origin "
		    "(https://host)", v);
	if (strcmp(name, "Access-Control-Allow-Origin") == 0 &&
	    strchr(v, ' ') != NULL)
		return fail(cause, "'%.64s' names more than one origin", v);
	return 0;
}

/* first: allowed first characters; rest: allowed following ones. */
static int
name_ok(const char *s, size_t max, int (*first)(int), const char *extra_first,
    const char *extra)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > max)
		return 0;
	if (!(first(s[0]) || (extra_first && strchr(extra_first, s[0]))))
		return 0;
	for (i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) || (unsigned char)s[i] > 0x7f)
			if (!strchr(extra, s[i]))
				return 0;
	return 1;
}

static int
is_alpha(int c)
{
	return c < 0x80 && isalpha(c);
}

static int
is_lower_or_digit(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int
sv_env_var_name(const char *s, char **cause)
{
	if (!name_ok(s, 128, is_alpha, "_", "_"))
		return fail(cause, "'%.64s' is not an environment variable "
		    "name ([A-Za-z_][A-Za-z0-9_]*, at most 128)", s);
	if (strcmp(s, "PORT") == 0 || strcmp(s, "DATABASE_URL") == 0 ||
	    strncmp(s, "NUBO_", 5) == 0 || strncmp(s, "LD_", 3) == 0)
		return fail(cause, "'%s' is reserved by nubo (PORT, "
		    "DATABASE_URL, NUBO_*, LD_*)", s);
	return 0;
}

int
sv_runtime_key(const char *s, char **cause)
{
	if (!name_ok(s, 128, is_alpha, NULL, "_.-"))
		return fail(cause, "'%.64s' is not a runtime setting name "
		    "([A-Za-z][A-Za-z0-9_.-]*, at most 128)", s);
	return 0;
}

int
sv_constant_name(const char *s, char **cause)
{
	if (!name_ok(s, 128, is_alpha, NULL, "_."))
		return fail(cause, "'%.64s' is not a constant name "
		    "([A-Za-z][A-Za-z0-9_.]*, at most 128)", s);
	return 0;
}

int
sv_profile_name(const char *s, char **cause)
{
	size_t i;

	if (!name_ok(s, 63, is_lower_or_digit, NULL, "-"))
		return fail(cause, "'%.64s' is not a profile name "
		    "([a-z0-9][a-z0-9-]*, at most 63)", s);
	for (i = 0; s[i]; i++)
		if (isupper((unsigned char)s[i]))
			return fail(cause, "'%.64s' is not a profile name "
			    "(lowercase only)", s);
	return 0;
}

int
sv_basic_auth_user(const char *s, char **cause)
{
	if (!name_ok(s, 64, is_alpha, "0123456789._@-", "._@-"))
		return fail(cause, "'%.64s' is not a user name "
		    "([A-Za-z0-9._@-], at most 64)", s);
	return 0;
}

int
sv_path_prefix(const char *s, char **cause)
{
	const char *p;

	if (s[0] != '/' || strlen(s) > 256)
		return fail(cause, "'%.64s' is not a path (it starts with '/', "
		    "at most 256 characters)", s);
	for (p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("\"'\\{}$;#~^*()|?[]", *p))
			return fail(cause, "path '%.64s' has a character that "
			    "is not allowed", s);
	if (strstr(s, "/..") || strstr(s, "//"))
		return fail(cause, "path '%.64s' has '..' or '//'", s);
	/* the router's ACME location (acme_location()): a second location
	 * of that name is a config nginx refuses, one under it would take
	 * challenges away; refused with ACME off too, so turning it on
	 * later breaks no stored setting */
	if (strncmp(s, SV_ACME_CHALLENGE, strlen(SV_ACME_CHALLENGE)) == 0)
		return fail(cause, "path '%.64s' is the router's ACME challenge "
		    "location (%s)", s, SV_ACME_CHALLENGE);
	return 0;
}

int
sv_text(const char *s, size_t max, char **cause)
{
	const unsigned char *p;

	if (strlen(s) > max)
		return fail(cause, "the value is longer than %zu bytes", max);
	for (p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7f)
			return fail(cause, "the value has a control character");
	return 0;
}

int
sv_window_day(const char *s, const char **canon, char **cause)
{
	static const char *const days[] = { "monday", "tuesday", "wednesday",
	    "thursday", "friday", "saturday", "sunday" };
	size_t i;

	for (i = 0; i < 7; i++)
		if (strcasecmp(s, days[i]) == 0 || (strlen(s) == 3 &&
		    strncasecmp(s, days[i], 3) == 0)) {
			*canon = days[i];
			return 0;
		}
	return fail(cause, "'%.32s' is not a day of the week (monday … "
	    "sunday)", s);
}

int
sv_window_start(const char *s, int *minutes, char **cause)
{
	if (strlen(s) != 5 || !isdigit((unsigned char)s[0]) ||
	    !isdigit((unsigned char)s[1]) || s[2] != ':' ||
	    !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
		return fail(cause, "'%.32s' is not a time HH:MM (UTC)", s);
	if ((s[0] - '0') * 10 + (s[1] - '0') > 23 || s[3] > '5')
		return fail(cause, "'%.32s' is not a time of day (00:00 … "
		    "23:59)", s);
	*minutes = ((s[0] - '0') * 10 + (s[1] - '0')) * 60 +
	    (s[3] - '0') * 10 + (s[4] - '0');
	return 0;
}

int
sv_window_duration(long long minutes, char **cause)
{
	if (minutes < 30 || minutes > 1440)
		return fail(cause, "a duration of %lld minutes is outside 30 "
		    "… 1440", minutes);
	return 0;
}

long long
sv_interval(const char *s)
{
	char *end;
	long long n;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno || n <= 0 || n > 1000000)
		return -1;
	if (strcmp(end, "s") == 0)
		return n;
	if (strcmp(end, "m") == 0)
		return n * 60;
	if (strcmp(end, "h") == 0)
		return n * 3600;
	if (strcmp(end, "d") == 0)
		return n * 86400;
	return -1;
}
