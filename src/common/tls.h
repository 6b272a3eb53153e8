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
