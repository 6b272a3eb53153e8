/* Automatic certificates (ACME, RFC 8555) for the app hostnames: the
 * client (acme-client.c) and the node's side (acme.c), see
 * ARCHITECTURE "Automatic certificates". */
#ifndef NUBO_ACME_H
#define NUBO_ACME_H

#include <time.h>

struct acme_conf {
	const char	*directory;	/* https URL */
	const char	*email;		/* or NULL */
	const char	*ca;		/* the server's CA file, or NULL */
	const char	*account_key;	/* made on first use (0600) */
	const char	*webroot;	/* where challenge files go */
};

/* Order a certificate for names (n >= 1): 0 with the PEM chain and its
 * new key, or -1 with why (the caller frees all three). */
int acme_order(const struct acme_conf *conf, const char **names, int n,
    char **cert_pem, char **key_pem, char **why);

/* The first certificate of pem: its validity and DNS names (caller
 * frees names and each name); -1 when it is not a certificate. */
int acme_cert_times(const char *pem, time_t *not_before, time_t *not_after,
    char ***names, int *nnames);

/* The node's side (acme.c). */
int acme_enabled(void);
void acme_start(void);
/* Under node->lock: the certificate and key files that serve environment
 * env_id's hostnames, when one covers them all (caller frees), else -1. */
int acme_env_files(long long env_id, char **crt, char **key);
/* Under node->lock: certificate and certificate_error of env_id into
 * its report (nothing when ACME is off). */
#include <jansson.h>
void acme_env_report(long long env_id, json_t *out);
/* The same for a custom domain without a certificate of the user's. */
int acme_domain_files(const char *domain, char **crt, char **key);
/* The nginx location that serves the challenge files, or "" (static). */
const char *acme_location(void);

#endif
