/* The environment-settings pieces of the router's nginx config (SPEC §2
 * Network): custom domains served with TLS, access restrictions (allow /
 * deny CIDRs, basic auth, client-certificate CA; per path on v4) and
 * response headers. router.c calls these while rendering one environment;
 * they read only the environment's spec (what the portal's
 * settings_node_spec() put in it):
 *   "domains": [{domain, certificate, private_key}],
 *   "access": {"/path": {allow: [cidr], deny: [cidr], htpasswd?: text,
 *              client_ca?: pem, profile}},
 *   "headers": {Name: value}. */
#ifndef NUBO_ROUTER_SETTINGS_H
#define NUBO_ROUTER_SETTINGS_H

#include <sys/types.h>

#include <jansson.h>

#include "buf.h"

/* Write the files the pieces refer to under dir/settings/env_<id>/:
 * certificates and keys (0600), htpasswd files (0640, group of the nginx
 * worker user gid when not -1) and the client CA bundle. Names carry a
 * hash of the content, so a file an older config still uses is never
 * changed; a file whose content is not what its name says (damaged on
 * disk) is written again. 0, or -1 (logged) when a file cannot be
 * written. */
int router_settings_files(const char *dir, long long env_id, json_t *spec,
    gid_t worker_gid);

/* Remove the files of dir/settings/env_<id>/ that conf (the config nginx
 * serves now) does not name: keys, certificates, htpasswd files and CA
 * bundles of domains, users and profiles the settings no longer hold. */
void router_settings_prune(const char *dir, long long env_id,
    const char *conf);

/* Remove dir/settings/env_<id>/ and its files (the environment is
 * deleted). */
void router_settings_remove(const char *dir, long long env_id);

/* add_header lines (server level, `always`) for the response headers. */
void router_settings_headers(struct buf *b, json_t *spec);

/* The location blocks of a server: one per access path ("/" first, then
 * longer prefixes), each with its allow/deny/auth_basic/client-certificate
 * checks followed by inner (the proxy_pass or the 503 page, as rendered by
 * router.c). Without access rules: a plain `location /`. */
void router_settings_locations(struct buf *b, const char *dir,
    long long env_id, json_t *spec, const char *inner);

/* The TLS server block of one custom domain (an entry of the spec's
 * "domains") on the router's HTTPS listeners (listens: their "listen …
 * ssl;" lines), with the environment's headers and locations. Nothing
 * when listens is empty or the entry is unusable. The
 * router checks each domain's block on its own (router.c), so one that
 * nginx cannot load is left out without taking the others along.
 * acme_crt/acme_key (files, or NULL): the node's ACME certificate, used
 * only when the entry has no certificate of the user's. */
void router_settings_tls_server(struct buf *b, const char *dir,
    long long env_id, json_t *spec, json_t *domain, const char *listens,
    const char *inner, const char *acme_crt, const char *acme_key);

/* The domain name of a "domains" entry, NULL when it is not one. */
const char *router_settings_domain(json_t *domain);

#endif
