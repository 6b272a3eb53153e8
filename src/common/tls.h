/* TLS for what crosses hosts: the keys that identify a peer (pins) and
 * the verification of libcurl's calls. The listeners' side is in
 * httpd.c (libmicrohttpd over GnuTLS). */
#ifndef NUBO_TLS_H
#define NUBO_TLS_H

#include <stddef.h>

#include <curl/curl.h>

/* "sha256//" and the base64 of a SHA-256: libcurl's
 * CURLOPT_PINNEDPUBLICKEY form, with room for the end. */
#define TLS_PIN_LEN	(8 + 44 + 1)

/* The pin of a certificate's public key (the SHA-256 of its DER
 * SubjectPublicKeyInfo) into out: from a DER certificate, or from the
 * first certificate of a PEM file; 0, or -1 (with *cause for the file). */
int tls_pin_der(const unsigned char *der, size_t len, char *out,
    size_t outlen);
int tls_pin_file(const char *path, char *out, size_t outlen, char **cause);
/* The same from PEM text (its first certificate): 0, or -1 when it holds
 * none. */
int tls_pin_pem(const char *pem, char *out, size_t outlen);

/* A self-signed certificate (PEM, caller frees) for the private key in
 * key_path (PEM), naming the IP address ip (its subjectAltName, so that a
 * client checking names accepts it there), valid for ten years: a
 * certificate that is its own trust anchor, for a peer that has no CA
 * but learns it through a channel it trusts already. NULL with *cause. */
char *tls_self_signed(const char *key_path, const char *ip, char **cause);
/* Whether the PEM certificate in cert_path is one tls_self_signed() would
 * make for key_path and ip now: its key, its address, more than 30 days
 * left. 1 or 0. */
int tls_self_signed_fits(const char *cert_path, const char *key_path,
    const char *ip);

/* A URL that names the public key its server must present: url with
 * "#pin=PIN" appended (the fragment never leaves the client). */
char *tls_url_pinned(const char *url, const char *pin);

/* url (a signed URL, with a query already) with "&param" added to its
 * query, before a pin fragment. */
char *tls_url_query_add(const char *url, const char *param);

/* Set c's URL to url and how its server is verified: when url carries a
 * "#pin=" fragment (tls_url_pinned), its public key must be that one and
 * nothing else is checked (a node's certificate may be its own,
 * unsigned); otherwise its chain and name against cafile, or the
 * system's store when cafile is NULL. */
void tls_curl_url(CURL *c, const char *url, const char *cafile);

#endif
