/* Authentication (passwords, API keys, node tokens) and the permission
 * matrix of SPEC §2. */
#ifndef NUBO_AUTH_H
#define NUBO_AUTH_H

#include "portal.h"

/* argon2id hash (libsodium's crypto_pwhash_str); NULL on failure. */
char *auth_password_hash(const char *password);
/* 1 when password matches hash. */
int auth_password_ok(const char *hash, const char *password);

/* A new API key "nubo_<40 hex>"; *hash gets its sha256 (what is stored)
 * and *prefix its first 12 characters (what lists show). */
char *auth_key_new(char **hash, char **prefix);

/* Create an API key row for user; returns the key (shown once) or NULL.
 * apps: NULL or a JSON array of app uuids; expires_at: NULL or RFC 3339
 * UTC as util_time_iso() writes it (compared as text); parent_id: the key
 * it was made with, or 0. */
char *auth_key_create(sqlite3 *db, long long user_id, const char *name,
    int read_only, json_t *apps, const char *expires_at, long long parent_id,
    long long *key_id);
/* 1 when the caller's key may act on app_id (keys without an app scope
 * may act on every app; the user's own rights are checked separately). */
int auth_key_allows_app(struct preq *r, long long app_id);

/* The browser session's cookie (POST /session): under TLS a __Host-
 * cookie, which a browser takes only from this host itself (Secure,
 * Path=/, no Domain) — an app on a sibling host of the same domain, whose
 * code its tenant writes, cannot set one in its place. */
#define AUTH_SESSION_COOKIE "nubo_session"
#define AUTH_SESSION_COOKIE_TLS "__Host-nubo_session"
const char *auth_session_cookie(const struct preq *r);

/* Fill r->who from the Authorization header, or else from the browser
 * session cookie (then a request other than GET/HEAD needs the session's
 * CSRF token in X-CSRF-Token: 403 CSRF_TOKEN_MISSING / CSRF_TOKEN_WRONG). Returns 0, or -1 after
 * replying 401 (missing, unknown, revoked or expired key). */
int auth_authenticate(struct preq *r);
/* The same for an API key given another way (a Mendix face's headers). */
int auth_key(struct preq *r, const char *key);
/* Check r->who against r->route->access for the resolved app/node/env.
 * Returns 0, or -1 after replying 403. */
int auth_check_access(struct preq *r);
/* 1 when the caller holds perm ("transport", …) on env of r->app_id
 * (env NULL: on at least one environment). Technical Contact and admins
 * hold everything. */
int auth_has(struct preq *r, const char *perm, const char *env);
/* 1 when the caller may grant or take away perm on env ("*": all
 * environments) of r->app_id (SPEC §6: nobody grants more than they
 * hold): admins and the Technical Contact anything; a member only a
 * permission they hold on env and with 'manage' on env too, and never
 * 'manage' on all environments, which is the Technical Contact's. */
int auth_may_grant(struct preq *r, const char *perm, const char *env);
/* 1 when the caller may see app_id at all: an admin, a member or its
 * Technical Contact, with a key whose scope allows the app. */
int auth_can_see_app(struct preq *r, long long app_id);
/* 1 when the caller is the Technical Contact of the app / node. */
int auth_is_app_tc(struct preq *r, long long app_id);
int auth_is_node_tc(struct preq *r, long long node_id);

#endif
