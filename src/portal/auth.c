#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "store.h"
#include "util.h"
#include "xmalloc.h"

char *
auth_password_hash(const char *password)
{
	char out[crypto_pwhash_STRBYTES];

	if (crypto_pwhash_str_alg(out, password, strlen(password),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE / 4,
	    crypto_pwhash_ALG_ARGON2ID13) != 0)
		return NULL;
	return xstrdup(out);
}

int
auth_password_ok(const char *hash, const char *password)
{
	return hash && crypto_pwhash_str_verify(hash, password,
	    strlen(password)) == 0;
}

char *
auth_key_new(char **hash, char **prefix)
{
	char *secret = util_random_hex(20);
	char *key = xasprintf("nubo_%s", secret);

	free(secret);
	*hash = util_sha256_hex(key, strlen(key));
	*prefix = xstrndup(key, 12);
	return key;
}

char *
auth_key_create(sqlite3 *db, long long user_id, const char *name,
    int read_only, json_t *apps, const char *expires_at, long long parent_id,
    long long *key_id)
{
	char *hash, *prefix, *key = auth_key_new(&hash, &prefix);
	char now[32];

	util_time_iso(util_now(), now, sizeof now);
	if (store_run(db, "INSERT INTO api_keys (user_id, prefix, hash, name,"
	    " read_only, apps_json, expires_at, created_at, parent_id)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULLIF(?, 0))", "isssijssi",
	    user_id, prefix, hash, name ? name : "", (long long)read_only,
	    apps, expires_at, now, parent_id) != STORE_OK) {
		free(key);
		key = NULL;
	} else if (key_id) {
		*key_id = store_last_id(db);
	}
	free(hash);
	free(prefix);
	return key;
}

/* A state-changing request of a browser session carries the session's
 * CSRF token in X-CSRF-Token (a page of another site can make the browser
 * send the cookie, but cannot read the token): 0, or -1 after replying
 * 403. */
static int
auth_csrf_check(struct preq *r, const char *token)
{
	const char *m = r->http->method;
	const char *got = http_header(r->http, "X-CSRF-Token");

	if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
		return 0;
	if (got == NULL || got[0] == '\0') {
		reply_error(r, 403, "CSRF_TOKEN_MISSING", "a request signed in "
		    "with the browser session cookie must carry the session's "
		    "CSRF token in the X-CSRF-Token header (GET /me tells it)");
		return -1;
	}
	if (token == NULL || strlen(got) != strlen(token) ||
	    sodium_memcmp(got, token, strlen(token)) != 0) {
		reply_error(r, 403, "CSRF_TOKEN_WRONG", "the X-CSRF-Token "
		    "header is not this session's CSRF token; reload the page");
		return -1;
	}
	return 0;
}

/* Fill r->who from the key (or session secret, by_cookie) whose sha256
 * is hash: 0, or -1 after replying 401 (403 for a session's CSRF). */
static int auth_hash(struct preq *r, const char *hash, int by_cookie);

const char *
auth_session_cookie(const struct preq *r)
{
	return r->portal->tls ? AUTH_SESSION_COOKIE_TLS : AUTH_SESSION_COOKIE;
}

int
auth_authenticate(struct preq *r)
{
	const char *h = http_header(r->http, "Authorization");
	const char *name = auth_session_cookie(r);
	const char *cookie = http_cookie(r->http, name);
	char *hash = NULL;
	int rc = -1, by_cookie;

	/* An Authorization header wins over a cookie; node agents never
	 * use cookies. */
	by_cookie = h == NULL && cookie != NULL && cookie[0] != '\0' &&
	    r->route->access != ACCESS_AGENT;
	if (by_cookie && http_cookie_count(r->http, name) > 1) {
		/* another host of the domain set one too (plain HTTP: with
		 * TLS the cookie is __Host-): which is ours is unknown, and
		 * taking the first would sign the browser in as whoever
		 * that host chose */
		reply_error(r, 401, "SESSION_COOKIE_TWICE", "the browser sent "
		    "two %s cookies, one set by another site of this domain; "
		    "clear this site's cookies and sign in again", name);
		return -1;
	}
	if (by_cookie) {
		hash = util_sha256_hex(cookie, strlen(cookie));
	} else if (h == NULL || strncmp(h, "Bearer ", 7) != 0 ||
	    h[7] == '\0') {
		reply_error(r, 401, "UNAUTHENTICATED",
		    "missing API key (send 'Authorization: Bearer <key>')");
		return -1;
	} else {
		hash = util_sha256_hex(h + 7, strlen(h + 7));
	}
	if (r->route->access == ACCESS_AGENT) {
		r->who.node_id = store_int(r->db, 0,
		    "SELECT id FROM nodes WHERE token_hash = ?", "s", hash);
		if (r->who.node_id == 0)
			reply_error(r, 401, "UNAUTHENTICATED",
			    "unknown node token");
		else
			rc = agent_pin_check(r);
	} else {
		rc = auth_hash(r, hash, by_cookie);
	}
	free(hash);
	return rc;
}

int
auth_key(struct preq *r, const char *key)
{
	char *hash = util_sha256_hex(key, strlen(key));
	int rc = auth_hash(r, hash, 0);

	free(hash);
	return rc;
}

static int
auth_hash(struct preq *r, const char *hash, int by_cookie)
{
	char *exp = NULL, *apps = NULL, *csrf = NULL, *scopes = NULL;
	long long key_id, user_id, read_only, is_admin, revoked;
	char now[32];
	int rc = -1, found;

	/* The hot path of every request: plain columns, no JSON objects. */
	found = store_scan(r->db, "SELECT k.id, k.user_id, k.read_only,"
	    " u.is_admin, k.revoked_at IS NOT NULL, k.expires_at, k.apps_json,"
	    " k.csrf_token, k.scopes_json FROM api_keys k JOIN users u ON"
	    " u.id = k.user_id WHERE k.hash = ?", "s", "iiiiissss", hash,
	    &key_id, &user_id, &read_only, &is_admin, &revoked, &exp, &apps,
	    &csrf, &scopes);
	if (found == 1 && by_cookie != (csrf != NULL)) {
		/* a session's secret is no API key, nor a key a cookie */
		found = 0;
	}
	if (found != 1) {
		if (found == -1)
			reply_store_error(r);
		else if (by_cookie)
			reply_error(r, 401, "UNAUTHENTICATED",
			    "unknown session: sign in again");
		else
			reply_error(r, 401, "UNAUTHENTICATED",
			    "unknown API key");
		goto out;
	}
	if (revoked) {
		if (by_cookie)
			reply_error(r, 401, "SESSION_ENDED", "this session was "
			    "signed out: sign in again");
		else
			reply_error(r, 401, "KEY_REVOKED",
			    "API key was revoked");
		goto out;
	}
	if (exp) {
		util_time_iso(util_now(), now, sizeof now);
		if (strcmp(exp, now) <= 0) {
			if (by_cookie)
				reply_error(r, 401, "SESSION_EXPIRED", "this "
				    "session ended at %s: sign in again", exp);
			else
				reply_error(r, 401, "KEY_EXPIRED", "API key "
				    "expired at %s", exp);
			goto out;
		}
		snprintf(r->who.expires_at, sizeof r->who.expires_at, "%s",
		    exp);
	}
	if (by_cookie) {
		if (auth_csrf_check(r, csrf) == -1)
			goto out;
		r->who.session = 1;
		snprintf(r->who.csrf, sizeof r->who.csrf, "%s", csrf);
	}
	r->who.key_id = key_id;
	r->who.user_id = user_id;
	r->who.read_only = (int)read_only;
	r->who.pat = scopes != NULL;
	r->who.is_admin = (int)is_admin;
	if (apps) {
		r->who.app_scope = json_loads(apps, 0, NULL);
		if (!json_is_array(r->who.app_scope)) {
			/* never written so: refuse rather than widen */
			json_decref(r->who.app_scope);
			r->who.app_scope = NULL;
			reply_error(r, 500, "STORE_ERROR", "API key %lld has a "
			    "corrupt app scope", key_id);
			goto out;
		}
	}
	rc = 0;
out:
	free(exp);
	free(apps);
	free(csrf);
	free(scopes);
	return rc;
}

int
auth_is_app_tc(struct preq *r, long long app_id)
{
	return r->who.user_id != 0 && store_int(r->db, 0,
	    "SELECT technical_contact FROM apps WHERE id = ?", "i",
	    app_id) == r->who.user_id;
}

int
auth_is_node_tc(struct preq *r, long long node_id)
{
	return r->who.user_id != 0 && store_int(r->db, 0,
	    "SELECT technical_contact FROM nodes WHERE id = ?", "i",
	    node_id) == r->who.user_id;
}

static int
is_member(struct preq *r, long long app_id)
{
	return store_int(r->db, 0, "SELECT 1 FROM members"
	    " WHERE app_id = ? AND user_id = ?", "ii", app_id,
	    r->who.user_id) == 1;
}

/* auth_has() for app_id: a row for perm on '*' or on env (env NULL: on
 * any environment; env "*": on all environments). */
static int
has_on(struct preq *r, long long app_id, const char *perm, const char *env)
{
	if (r->who.is_admin || auth_is_app_tc(r, app_id))
		return 1;
	if (env == NULL)
		return store_int(r->db, 0, "SELECT 1 FROM member_permissions"
		    " WHERE app_id = ? AND user_id = ? AND permission = ?",
		    "iis", app_id, r->who.user_id, perm) == 1;
	return store_int(r->db, 0, "SELECT 1 FROM member_permissions"
	    " WHERE app_id = ? AND user_id = ? AND permission = ?"
	    " AND (environment = '*' OR environment = ? COLLATE NOCASE)",
	    "iiss", app_id, r->who.user_id, perm, env) == 1;
}

int
auth_can_see_app(struct preq *r, long long app_id)
{
	return auth_key_allows_app(r, app_id) && (r->who.is_admin ||
	    is_member(r, app_id) || auth_is_app_tc(r, app_id));
}

int
auth_has(struct preq *r, const char *perm, const char *env)
{
	return has_on(r, r->app_id, perm, env);
}

int
auth_may_grant(struct preq *r, const char *perm, const char *env)
{
	if (r->who.is_admin || auth_is_app_tc(r, r->app_id))
		return 1;
	if (strcmp(perm, "manage") == 0 && strcmp(env, "*") == 0)
		return 0;
	return auth_has(r, "manage", env) && auth_has(r, perm, env);
}

static const char *
access_perm(enum access a)
{
	switch (a) {
	case ACCESS_APP_TRANSPORT: return "transport";
	case ACCESS_APP_BACKUPS: return "backups";
	case ACCESS_APP_SETTINGS: return "settings";
	case ACCESS_APP_LOGS: return "logs";
	case ACCESS_APP_MANAGE: return "manage";
	default: return NULL;
	}
}

int
auth_key_allows_app(struct preq *r, long long app_id)
{
	char *uuid;
	size_t i;
	json_t *v;
	int ok = 0;

	if (r->who.app_scope == NULL)
		return 1;
	if (app_id == 0)
		return 0;
	uuid = store_text(r->db, "SELECT uuid FROM apps WHERE id = ?", "i",
	    app_id);
	json_array_foreach(r->who.app_scope, i, v)
		if (uuid && json_is_string(v) &&
		    strcmp(json_string_value(v), uuid) == 0)
			ok = 1;
	free(uuid);
	return ok;
}

/* A key limited to named apps acts only on those apps (SPEC §2: a key can
 * never do more than it was given): app routes are checked when {app} is
 * resolved; a node route needs the node's linked app in scope; platform
 * routes (admin) are refused; of the caller's own routes only reads and
 * key management (which narrows further) remain. */
static int
check_scope(struct preq *r)
{
	enum access a = r->route->access;

	if (r->who.app_scope == NULL || r->app_id != 0)
		return 0;
	if (http_param(r->http, "node")) {
		long long app = store_int(r->db, 0,
		    "SELECT app_id FROM nodes WHERE id = ?", "i", r->node_id);

		if (auth_key_allows_app(r, app))
			return 0;
	} else if (a == ACCESS_USER && (strcmp(r->http->method, "GET") == 0 ||
	    strncmp(r->route->pattern, "/keys", 5) == 0)) {
		return 0;
	}
	reply_error(r, 403, "KEY_SCOPE", "this API key is limited to named "
	    "apps and cannot be used for %s %s", r->http->method,
	    r->route->pattern);
	return -1;
}

int
auth_check_access(struct preq *r)
{
	enum access a = r->route->access;
	const char *perm;

	if (a == ACCESS_PUBLIC || a == ACCESS_AGENT)
		return 0;
	if (check_scope(r) == -1)
		return -1;
	if (a == ACCESS_USER || r->who.is_admin)
		return 0;
	switch (a) {
	case ACCESS_ADMIN:
		reply_error(r, 403, "FORBIDDEN",
		    "only a platform admin may do this");
		return -1;
	case ACCESS_APP_MEMBER:
		if (is_member(r, r->app_id) || auth_is_app_tc(r, r->app_id))
			return 0;
		break;
	case ACCESS_APP_TC:
		if (auth_is_app_tc(r, r->app_id))
			return 0;
		reply_error(r, 403, "FORBIDDEN",
		    "only the app's Technical Contact may do this");
		return -1;
	case ACCESS_NODE_TC:
		if (auth_is_node_tc(r, r->node_id))
			return 0;
		reply_error(r, 403, "FORBIDDEN",
		    "only the node's Technical Contact may do this");
		return -1;
	case ACCESS_NODE_VIEW: {
		long long app = store_int(r->db, 0,
		    "SELECT app_id FROM nodes WHERE id = ?", "i", r->node_id);

		if (auth_is_node_tc(r, r->node_id) ||
		    (app && (is_member(r, app) || auth_is_app_tc(r, app))))
			return 0;
		break;
	}
	case ACCESS_NODE_TRANSPORT: {
		/* SPEC §2: packages are the transport permission's business
		 * (a package may hold the app's secrets in its files) */
		long long app = store_int(r->db, 0,
		    "SELECT app_id FROM nodes WHERE id = ?", "i", r->node_id);

		if (auth_is_node_tc(r, r->node_id) ||
		    (app && has_on(r, app, "transport", NULL)))
			return 0;
		reply_error(r, 403, "FORBIDDEN", "you need the node's Technical "
		    "Contact role or the 'transport' permission of its app");
		return -1;
	}
	default:
		perm = access_perm(a);
		if (perm && auth_has(r, perm, r->env))
			return 0;
		if (perm) {
			if (r->env)
				reply_error(r, 403, "FORBIDDEN", "you lack the "
				    "'%s' permission on environment '%s'", perm,
				    r->env);
			else
				reply_error(r, 403, "FORBIDDEN",
				    "you lack the '%s' permission", perm);
			return -1;
		}
	}
	reply_error(r, 403, "FORBIDDEN", "you are not a member of this %s",
	    r->app_id ? "app" : "node");
	return -1;
}
