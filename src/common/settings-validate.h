/* Validators for environment settings (SPEC §2 Configuration): each takes
 * one value as the outside world gave it and returns 0, or -1 with *cause
 * set to a lowercase reason the caller prefixes with the setting's name
 * ("setting 'domains.x': <cause>"). Pure functions, no I/O. */
#ifndef NUBO_SETTINGS_VALIDATE_H
#define NUBO_SETTINGS_VALIDATE_H

#include <stddef.h>
#include <time.h>

/* Constant types a package manifest may declare. */
enum sv_type { SV_STRING, SV_INTEGER, SV_DECIMAL, SV_BOOLEAN, SV_DATETIME };

/* "string" → SV_STRING …; -1 for an unknown type name. */
int sv_type_parse(const char *name, enum sv_type *out);
const char *sv_type_name(enum sv_type);
/* Check value against type; *canon gets the canonical text (booleans
 * lowercased, integers without leading zeros or '+'). */
int sv_constant_value(enum sv_type, const char *value, char **canon,
    char **cause);

/* IPv4 or IPv6 address, with optional /prefix; host bits must be zero.
 * *canon: the normalised form ("10.0.0.0/8", "2001:db8::/32"; a bare
 * address gets /32 or /128). */
int sv_cidr(const char *s, char **canon, char **cause);
/* A DNS name for a custom domain: LDH labels of 1..63, 2+ labels, <= 253,
 * no wildcard. *canon is lowercase. */
int sv_domain(const char *s, char **canon, char **cause);

/* A PEM certificate chain (leaf first) and PEM private key for domain,
 * checked in full so that nothing the router (nginx) cannot load is ever
 * accepted: nothing but whole PEM blocks (no text before, between or
 * after them, no block cut short, no headers), only CERTIFICATE blocks in
 * the chain (a private key there is refused: it would be shown as a
 * certificate), one unencrypted private key block in the key; each next
 * certificate signs the previous one; the key matches the leaf; now is
 * within the validity of every certificate; the leaf covers the domain
 * (wildcards per RFC 6125); and an SSL_CTX under the system's OpenSSL
 * configuration — what nginx uses — takes the chain and key (security
 * level: key sizes, signature digests). *not_after gets the leaf's
 * expiry. */
int sv_certificate(const char *cert_pem, const char *key_pem,
    const char *domain, time_t now, time_t *not_after, char **cause);
/* One or more PEM CA certificates (client-certificate authority): whole
 * CERTIFICATE blocks only, as for sv_certificate, each one a CA. */
int sv_ca_bundle(const char *pem, char **cause);
/* sha256 fingerprint of the first certificate, as hex; NULL on error. */
char *sv_cert_fingerprint(const char *cert_pem);

/* HTTP response headers: is name allowed on generation ("v3"/"v4")? The
 * canonical spelling of the name goes to *canon_name. */
int sv_header_name(const char *name, const char *generation,
    const char **canon_name, char **cause);
/* The value for a (canonical) header name. */
int sv_header_value(const char *canon_name, const char *value, char **cause);

/* Names: environment variables [A-Za-z_][A-Za-z0-9_]{0,127}, not reserved
 * by nubo (PORT, DATABASE_URL, NUBO_*, LD_*); runtime setting keys
 * [A-Za-z][A-Za-z0-9_.-]{0,127}; constants [A-Za-z][A-Za-z0-9_.]{0,127};
 * profile names [a-z0-9][a-z0-9-]{0,62}; basic-auth users
 * [A-Za-z0-9._@-]{1,64}; scheduled events like constants. */
int sv_env_var_name(const char *s, char **cause);
int sv_runtime_key(const char *s, char **cause);
int sv_constant_name(const char *s, char **cause);
int sv_profile_name(const char *s, char **cause);
int sv_basic_auth_user(const char *s, char **cause);
/* The prefix of the router's ACME HTTP-01 location (acme_location()). */
#define SV_ACME_CHALLENGE "/.well-known/acme-challenge/"
/* A URL path prefix for an access rule: starts with '/', no spaces,
 * quotes, '..', control characters or regex/brace characters, not at or
 * under SV_ACME_CHALLENGE. */
int sv_path_prefix(const char *s, char **cause);
/* A text value with no NUL/control characters other than tab, at most
 * max bytes. */
int sv_text(const char *s, size_t max, char **cause);

/* Maintenance window: day name (monday…sunday or mon…sun, any case) →
 * canonical full lowercase name; "HH:MM" 00:00..23:59 → minutes; the
 * duration in minutes, 30..1440. */
int sv_window_day(const char *s, const char **canon, char **cause);
int sv_window_start(const char *s, int *minutes, char **cause);
int sv_window_duration(long long minutes, char **cause);

/* A scheduled event interval from a manifest ("30s", "5m", "1h", "1d") in
 * seconds; -1 on error. */
long long sv_interval(const char *s);

#endif
