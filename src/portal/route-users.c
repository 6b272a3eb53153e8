/* Users, sessions (password login) and API keys. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "lockout.h"
#include "log.h"
#include "portal.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

static char *session_dummy;

static void
session_dummy_make(void)
{
	char *pw = util_random_hex(16);

	session_dummy = auth_password_hash(pw);
	free(pw);
}

/* An argon2id hash of a random password, made once. */
static const char *
session_dummy_hash(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, session_dummy_make);
	return session_dummy;
}

/* A failed login: 401, and a log line when it locked the email or the
 * address (what an operator or fail2ban watches). */
static void
session_failed(struct preq *r, const char *address, int locking)
{
	const char *email = jsonx_str(r->body, "email");

	if (locking & LOCKOUT_ACCOUNT)
		log_warn("login lockout: '%s' locked for %d s after %d failed "
		    "logins", util_valid_email(email) ? email : "(not an email)",
		    NUBO_LOGIN_LOCKOUT_SECS, NUBO_LOGIN_ACCOUNT_FAILURES);
	if (locking & LOCKOUT_ADDRESS)
		log_warn("login lockout: %s locked for %d s after %d failed "
		    "logins", address + strlen("address:"),
		    NUBO_LOGIN_LOCKOUT_SECS, NUBO_LOGIN_ADDRESS_FAILURES);
	reply_error(r, 401, "BAD_CREDENTIALS", "wrong email or password");
}

/* Check the body's email and password under the lockout rules: 0 with
 * r->who.user_id set, or -1 after replying (401 BAD_CREDENTIALS; 429
 * TOO_MANY_ATTEMPTS with Retry-After, the password unchecked, after too
 * many failed logins for the email or from the client's address,
 * lockout.h). The body was checked to hold both as strings. */
static int
session_login(struct preq *r)
{
	json_t *user = NULL;
	char address[80], wait[32];
	long long retry_after, minutes;
	enum lockout lock;
	int locking, rc = -1;

	lockout_address(r->http, address, sizeof address);
	lock = lockout_begin(r->db, jsonx_str(r->body, "email"), address,
	    &retry_after, &locking);
	if (lock == LOCKOUT_ERROR) {
		reply_store_error(r);
		goto out;
	}
	if (lock != LOCKOUT_NONE) {
		/* Refused before the password is looked at: the answer is the
		 * same whether it was right, and costs no argon2id. */
		minutes = (retry_after + 59) / 60;
		if (lock == LOCKOUT_ACCOUNT)
			reply_error(r, 429, "TOO_MANY_ATTEMPTS", "too many "
			    "failed logins for '%.*s'; try again in %lld "
			    "minute%s", NUBO_EMAIL_MAX,
			    jsonx_str(r->body, "email"), minutes,
			    minutes == 1 ? "" : "s");
		else
			reply_error(r, 429, "TOO_MANY_ATTEMPTS", "too many "
			    "failed logins from %s; try again in %lld "
			    "minute%s", address + strlen("address:"), minutes,
			    minutes == 1 ? "" : "s");
		snprintf(wait, sizeof wait, "%lld", retry_after);
		http_add_header(r->http, "Retry-After", wait);
		goto out;
	}
	if (strlen(jsonx_str(r->body, "password")) > NUBO_PASSWORD_MAX) {
		session_failed(r, address, locking);
		goto out;
	}
	user = store_row(r->db, "SELECT id, password_hash FROM users"
	    " WHERE email = ?", "s", jsonx_str(r->body, "email"));
	if (user == NULL || json_is_null(json_object_get(user,
	    "password_hash"))) {
		/* Same work as a wrong password, so timing does not tell
		 * which emails exist. */
		auth_password_ok(session_dummy_hash(),
		    jsonx_str(r->body, "password"));
		session_failed(r, address, locking);
		goto out;
	}
	if (!auth_password_ok(jsonx_str(user, "password_hash"),
	    jsonx_str(r->body, "password"))) {
		session_failed(r, address, locking);
		goto out;
	}
	lockout_success(r->db, jsonx_str(r->body, "email"), address);
	r->who.user_id = jsonx_int(user, "id", 0);
	rc = 0;
out:
	json_decref(user);
	return rc;
}

/* POST /sessions {email, password, name?, expires_in?}: log in; the
 * answer carries a new API key, shown once (what `nubo login` stores).
 * Lockout as session_login(). */
void
users_session_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "email", JT_STRING, 1 }, { "password", JT_STRING, 1 },
		{ "name", JT_STRING, 0 }, { "expires_in", JT_INT, 0 }, { NULL } };
	char *key = NULL;
	char expires[32];
	long long ttl;

	if (body_check(r, fields) == -1)
		return;
	if (jsonx_str(r->body, "name") &&
	    strlen(jsonx_str(r->body, "name")) > NUBO_NAME_MAX) {
		reply_error(r, 400, "INVALID_NAME", "a key name has at most %d "
		    "characters", NUBO_NAME_MAX);
		return;
	}
	ttl = jsonx_int(r->body, "expires_in", 0);
	if (ttl < 0 || ttl > 10LL * 365 * 86400) {
		reply_error(r, 400, "BAD_REQUEST",
		    "expires_in must be between 0 and 10 years in seconds");
		return;
	}
	if (session_login(r) == -1)
		return;
	if (ttl)
		util_time_iso(util_now() + ttl, expires, sizeof expires);
	key = auth_key_create(r->db, r->who.user_id,
	    jsonx_str(r->body, "name") ? jsonx_str(r->body, "name") : "login",
	    0, NULL, ttl ? expires : NULL, 0, NULL);
	if (key == NULL) {
		reply_store_error(r);
		goto out;
	}
	reply(r, 201, json_pack("{s:s,s:I}", "key", key, "user_id",
	    r->who.user_id));
out:
	free(key);
}

/* The session cookie: its secret (NULL: clear it), HttpOnly and
 * SameSite=Strict always, Secure under TLS. */
static void
web_session_cookie(struct preq *r, const char *secret)
{
	char *c = xasprintf("%s=%s; Path=/; Max-Age=%d; HttpOnly; "
	    "SameSite=Strict%s", auth_session_cookie(r), secret ? secret : "",
	    secret ? NUBO_WEB_SESSION_SECS : 0,
	    r->portal->tls ? "; Secure" : "");

	http_add_header(r->http, "Set-Cookie", c);
	http_add_header(r->http, "Cache-Control", "no-store");
	free(c);
}

/* POST /session {email, password}: sign in a browser. The session is an
 * api_keys row with a CSRF token (store.c, step 20), its secret only in
 * the HttpOnly cookie, ending NUBO_WEB_SESSION_SECS from now or at
 * DELETE /session. The answer tells the CSRF token that every
 * state-changing request of the session must carry in X-CSRF-Token
 * (GET /me tells it again after a reload). Lockout as session_login(). */
void
web_session_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "email", JT_STRING, 1 }, { "password", JT_STRING, 1 },
		{ NULL } };
	const char *site = http_header(r->http, "Sec-Fetch-Site");
	char *hash, *prefix, *secret = NULL, *csrf = NULL;
	char now[32], expires[32];

	/* Login CSRF: another site's page must not sign a browser in as
	 * someone else (who then sees what the victim uploads). A form can
	 * post a body that parses as JSON (enctype=text/plain), never with
	 * this type; a script of another origin can set it only after a
	 * preflight, which nubo never allows. */
	if (!util_media_listed(http_header(r->http, "Content-Type"),
	    "application/json")) {
		reply_error(r, 415, "UNSUPPORTED_MEDIA_TYPE", "sign-in takes "
		    "a JSON body (Content-Type: application/json)");
		return;
	}
	if (site && strcasecmp(site, "cross-site") == 0) {
		reply_error(r, 403, "CROSS_SITE", "a sign-in sent from another "
		    "site is refused");
		return;
	}
	if (body_check(r, fields) == -1 || session_login(r) == -1)
		return;
	secret = auth_key_new(&hash, &prefix);
	csrf = util_random_hex(20);
	util_time_iso(util_now(), now, sizeof now);
	util_time_iso(util_now() + NUBO_WEB_SESSION_SECS, expires,
	    sizeof expires);
	if (store_run(r->db, "INSERT INTO api_keys (user_id, prefix, hash,"
	    " name, read_only, expires_at, created_at, csrf_token)"
	    " VALUES (?, ?, ?, 'browser session', 0, ?, ?, ?)", "isssss",
	    r->who.user_id, prefix, hash, expires, now, csrf) != STORE_OK) {
		reply_store_error(r);
	} else {
		reply(r, 201, json_pack("{s:I,s:s,s:s}", "user_id",
		    r->who.user_id, "csrf_token", csrf, "expires_at",
		    expires));
		web_session_cookie(r, secret);
	}
	free(hash);
	free(prefix);
	free(secret);
	free(csrf);
}

/* DELETE /session: sign out — the calling browser session is revoked and
 * its cookie cleared. An API key is not a session (400 NOT_A_SESSION). */
void
web_session_delete(struct preq *r)
{
	char now[32];

	if (!r->who.session) {
		reply_error(r, 400, "NOT_A_SESSION", "this request was signed "
		    "with an API key, not a browser session; revoke API keys "
		    "with DELETE /keys/{key}");
		return;
	}
	util_time_iso(util_now(), now, sizeof now);
	if (store_run(r->db, "UPDATE api_keys SET revoked_at = ?"
	    " WHERE id = ? AND revoked_at IS NULL", "si", now,
	    r->who.key_id) != STORE_OK) {
		reply_store_error(r);
		return;
	}
	reply(r, 200, json_pack("{s:b}", "signed_out", 1));
	web_session_cookie(r, NULL);
}

/* Subdomains of the apps a key is scoped to (apps deleted since are
 * left out). */
static json_t *
keys_app_names(sqlite3 *db, json_t *uuids)
{
	json_t *out = json_array(), *v;
	size_t i;

	json_array_foreach(uuids, i, v) {
		char *sub = store_text(db, "SELECT subdomain FROM apps"
		    " WHERE uuid = ?", "s", json_string_value(v));

		if (sub)
			json_array_append_new(out, json_string(sub));
		free(sub);
	}
	return out;
}

/* A key row as the API shows it: never the secret or its hash. */
static void
keys_decorate(sqlite3 *db, json_t *k)
{
	json_t *apps = json_object_get(k, "apps");

	json_object_set_new(k, "read_only",
	    json_boolean(jsonx_int(k, "read_only", 0)));
	json_object_set_new(k, "app_names", json_is_array(apps) ?
	    keys_app_names(db, apps) : json_null());
}

/* GET /me */
void
users_me(struct preq *r)
{
	json_t *me = store_row(r->db, "SELECT id, email, name, is_admin,"
	    " created_at FROM users WHERE id = ?", "i", r->who.user_id);

	if (me == NULL) {
		reply_store_error(r);
		return;
	}
	json_object_set_new(me, "is_admin", json_boolean(r->who.is_admin));
	json_object_set_new(me, "key_read_only",
	    json_boolean(r->who.read_only));
	json_object_set_new(me, "key_id", json_integer(r->who.key_id));
	json_object_set_new(me, "key_expires_at", json_null());
	if (r->who.expires_at[0])
		json_object_set_new(me, "key_expires_at",
		    json_string(r->who.expires_at));
	json_object_set_new(me, "key_apps", r->who.app_scope ?
	    keys_app_names(r->db, r->who.app_scope) : json_null());
	json_object_set_new(me, "session", json_boolean(r->who.session));
	if (r->who.session)
		json_object_set_new(me, "csrf_token",
		    json_string(r->who.csrf));
	reply(r, 200, me);
}

/* GET /users (admin) */
void
users_list(struct preq *r)
{
	json_t *rows = store_rows(r->db, "SELECT id, email, name, is_admin,"
	    " created_at FROM users ORDER BY id", "");

	json_t *u;
	size_t i;

	if (rows == NULL) {
		reply_store_error(r);
		return;
	}
	json_array_foreach(rows, i, u)
		json_object_set_new(u, "is_admin",
		    json_boolean(jsonx_int(u, "is_admin", 0)));
	reply(r, 200, json_pack("{s:o}", "users", rows));
}

/* POST /users {email, password, name?, admin?} (admin) */
void
users_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "email", JT_STRING, 1 }, { "password", JT_STRING, 1 },
		{ "name", JT_STRING, 0 }, { "admin", JT_BOOL, 0 }, { NULL } };
	const char *email, *password, *name;
	json_t *user;
	long long id;
	char *hash = NULL;
	char now[32];
	int rc;

	if (body_check(r, fields) == -1)
		return;
	email = jsonx_str(r->body, "email");
	password = jsonx_str(r->body, "password");
	name = jsonx_str(r->body, "name");
	if (!util_valid_email(email)) {
		reply_error(r, 400, "INVALID_EMAIL", "'%s' is not an email "
		    "address", email);
		return;
	}
	if (strlen(password) < NUBO_PASSWORD_MIN ||
	    strlen(password) > NUBO_PASSWORD_MAX) {
		reply_error(r, 400, "INVALID_PASSWORD", "a password has %d to "
		    "%d characters", NUBO_PASSWORD_MIN, NUBO_PASSWORD_MAX);
		return;
	}
	if (name && strlen(name) > NUBO_NAME_MAX) {
		reply_error(r, 400, "INVALID_NAME", "a name has at most %d "
		    "characters", NUBO_NAME_MAX);
		return;
	}
	hash = auth_password_hash(password);
	if (hash == NULL) {
		reply_error(r, 500, "INTERNAL", "cannot hash password");
		return;
	}
	util_time_iso(util_now(), now, sizeof now);
	rc = store_run(r->db, "INSERT INTO users (email, name, password_hash,"
	    " is_admin, created_at) VALUES (?, ?, ?, ?, ?)", "sssis", email,
	    name ? name : "", hash, (long long)jsonx_bool(r->body, "admin", 0),
	    now);
	free(hash);
	if (rc == STORE_CONFLICT) {
		reply_error(r, 409, "USER_EXISTS", "a user '%s' exists",
		    email);
		return;
	}
	if (rc != STORE_OK) {
		reply_store_error(r);
		return;
	}
	id = store_last_id(r->db);
	activity_log(r, "user.create", "created user %s", email);
	user = store_row(r->db, "SELECT id, email, name, is_admin,"
	    " created_at FROM users WHERE id = ?", "i", id);
	if (user == NULL) {
		reply_store_error(r);
		return;
	}
	json_object_set_new(user, "is_admin",
	    json_boolean(jsonx_int(user, "is_admin", 0)));
	reply(r, 201, user);
}

/* 1 when uuid is in the JSON array scope. */
static int
keys_scope_has(json_t *scope, const char *uuid)
{
	json_t *v;
	size_t i;

	if (uuid == NULL)
		return 0;
	json_array_foreach(scope, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), uuid) == 0)
			return 1;
	return 0;
}

/* 1 when a key limited to apps (a JSON array of uuids; else: all apps)
 * reaches no further than the caller's key. A key limited to named apps
 * works only on those (SPEC §2): it lists and revokes only keys limited
 * to (some of) the same apps, never one that names or reaches another. */
static int
keys_within_scope(struct preq *r, json_t *apps)
{
	json_t *v;
	size_t i;

	if (r->who.app_scope == NULL)
		return 1;
	if (!json_is_array(apps))
		return 0;
	json_array_foreach(apps, i, v)
		if (!keys_scope_has(r->who.app_scope, json_string_value(v)))
			return 0;
	return 1;
}

/* GET /keys: the caller's keys, never their secrets (with a key limited
 * to named apps, those within its scope). */
void
keys_list(struct preq *r)
{
	json_t *rows = store_rows(r->db, "SELECT id, prefix, name, read_only,"
	    " apps_json, expires_at, revoked_at, created_at, parent_id,"
	    " scopes_json FROM api_keys WHERE user_id = ? AND csrf_token IS"
	    " NULL ORDER BY id", "i", r->who.user_id);
	json_t *out, *k;
	size_t i;

	if (rows == NULL) {
		reply_store_error(r);
		return;
	}
	out = json_array();
	json_array_foreach(rows, i, k) {
		if (!keys_within_scope(r, json_object_get(k, "apps")))
			continue;
		keys_decorate(r->db, k);
		json_array_append(out, k);
	}
	json_decref(rows);
	reply(r, 200, json_pack("{s:o}", "keys", out));
}

/* The scopes of a personal access token: mx:deployment:read, and
 * mx:deployment:write or not (*write). 0, or -1 after replying 400. */
static int
keys_scopes_check(struct preq *r, json_t *scopes, int *write)
{
	int read = 0;
	json_t *v;
	size_t i;

	*write = 0;
	json_array_foreach(scopes, i, v) {
		const char *s = json_string_value(v);

		if (s && strcmp(s, "mx:deployment:read") == 0)
			read = 1;
		else if (s && strcmp(s, "mx:deployment:write") == 0)
			*write = 1;
		else {
			reply_error(r, 400, "INVALID_SCOPE", "field 'scopes': "
			    "no scope %s%s%s (mx:deployment:read, "
			    "mx:deployment:write)", s ? "'" : "", s ? s :
			    "that is not a string", s ? "'" : "");
			return -1;
		}
	}
	if (!read) {
		reply_error(r, 400, "INVALID_SCOPE", "field 'scopes': a personal "
		    "access token needs mx:deployment:read");
		return -1;
	}
	return 0;
}

/* POST /keys {name?, read_only?, apps?: [app…], expires_at?}
 * A key can never do more than its user nor than the key that creates it
 * (SPEC §2): it is read-only if that key is, limited to (a subset of) its
 * apps, and expires no later than it; revoking that key revokes this one. */
void
keys_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "name", JT_STRING, 0 }, { "read_only", JT_BOOL, 0 },
		{ "apps", JT_ARRAY, 0 }, { "expires_at", JT_STRING, 0 },
		{ "scopes", JT_ARRAY, 0 }, { NULL } };
	const char *expires, *name;
	json_t *apps, *scope = NULL, *v, *scopes;
	int write = 1;
	long long key_id = 0;
	char *key = NULL;
	char exp[32] = "";
	time_t t;
	size_t i;

	if (body_check(r, fields) == -1)
		return;
	expires = jsonx_str(r->body, "expires_at");
	name = jsonx_str(r->body, "name");
	apps = json_object_get(r->body, "apps");
	if (name && strlen(name) > NUBO_NAME_MAX) {
		reply_error(r, 400, "INVALID_NAME", "a key name has at most %d "
		    "characters", NUBO_NAME_MAX);
		return;
	}
	if (expires) {
		if (util_parse_iso(expires, &t) == -1 || t <= util_now()) {
			reply_error(r, 400, "INVALID_EXPIRY", "expires_at must "
			    "be a future time like 2030-01-31T00:00:00Z, not "
			    "'%s'", expires);
			return;
		}
		/* Stored in one canonical form: expiry compares as text. */
		util_time_iso(t, exp, sizeof exp);
	}
	/* A browser session is the user at full power for 12 hours: a key
	 * made in the portal's pages is the user's, not the session's child
	 * (it outlives the sign-out, as one made by `nubo keys create`). */
	if (r->who.expires_at[0] && !r->who.session) {
		if (exp[0] == '\0')
			snprintf(exp, sizeof exp, "%s", r->who.expires_at);
		else if (strcmp(exp, r->who.expires_at) > 0) {
			reply_error(r, 403, "KEY_SCOPE", "a new key cannot "
			    "outlive the key creating it (expires %s)",
			    r->who.expires_at);
			return;
		}
	}
	/* a personal access token (the Mendix Deploy API v4): its scopes,
	 * read needed, write optional */
	scopes = json_object_get(r->body, "scopes");
	if (scopes && keys_scopes_check(r, scopes, &write) == -1)
		return;
	if (apps && json_array_size(apps) > NUBO_LIST_MAX) {
		reply_error(r, 400, "BAD_REQUEST", "field 'apps' lists more "
		    "than %d apps", NUBO_LIST_MAX);
		return;
	}
	/* Scope only to apps the caller can see, stored by uuid so renames
	 * don't matter. */
	if (apps) {
		scope = json_array();
		json_array_foreach(apps, i, v) {
			char *uuid;

			if (!json_is_string(v)) {
				reply_error(r, 400, "BAD_REQUEST",
				    "field 'apps' must list app names");
				goto out;
			}
			/* the app {app} would name (apps_find()) */
			uuid = store_text(r->db, "SELECT a.uuid FROM apps a"
			    " WHERE a.id = ?1 AND (?2 OR a.technical_contact ="
			    " ?3 OR EXISTS (SELECT 1 FROM members m WHERE"
			    " m.app_id = a.id AND m.user_id = ?3))", "iii",
			    apps_find(r->db, json_string_value(v)),
			    (long long)r->who.is_admin, r->who.user_id);
			if (uuid == NULL) {
				reply_error(r, 404, "APP_NOT_FOUND", "no app "
				    "'%s'", json_string_value(v));
				goto out;
			}
			if (r->who.app_scope &&
			    !keys_scope_has(r->who.app_scope, uuid)) {
				free(uuid);
				reply_error(r, 403, "KEY_SCOPE", "this API key "
				    "is not valid for app '%s', so neither can "
				    "a key it creates", json_string_value(v));
				goto out;
			}
			if (!keys_scope_has(scope, uuid))
				json_array_append_new(scope, json_string(uuid));
			free(uuid);
		}
	}
	key = auth_key_create(r->db, r->who.user_id, name ? name : "",
	    jsonx_bool(r->body, "read_only", 0) || r->who.read_only || !write,
	    scope ? scope : r->who.app_scope, exp[0] ? exp : NULL,
	    r->who.session ? 0 : r->who.key_id, &key_id);
	if (key == NULL || (scopes && store_run(r->db, "UPDATE api_keys SET"
	    " scopes_json = ? WHERE id = ?", "ji", scopes, key_id) !=
	    STORE_OK)) {
		reply_store_error(r);
		goto out;
	}
	activity_log(r, "key.create", "created API key %lld", key_id);
	v = store_row(r->db, "SELECT id, prefix, name, read_only, apps_json,"
	    " expires_at, created_at, parent_id, scopes_json FROM api_keys"
	    " WHERE id = ?", "i", key_id);
	if (v == NULL) {
		reply_store_error(r);
		goto out;
	}
	keys_decorate(r->db, v);
	json_object_set_new(v, "key", json_string(key));
	reply(r, 201, v);
out:
	free(key);
	json_decref(scope);
}

/* DELETE /keys/{key}: revoke one of the caller's keys (by id, prefix or
 * the key itself) and every key created with it. A key limited to apps
 * may revoke only keys limited to (some of) the same apps. */
void
keys_revoke(struct preq *r)
{
	const char *which = preq_param(r, "key");
	json_t *k = NULL;
	char *hash = NULL;
	char now[32];
	long long id, n;

	if (strncmp(which, "nubo_", 5) == 0 && strlen(which) > 12)
		hash = util_sha256_hex(which, strlen(which));
	n = store_int(r->db, 0, "SELECT COUNT(*) FROM api_keys WHERE"
	    " user_id = ?1 AND (CAST(id AS TEXT) = ?2 OR prefix = ?2 OR"
	    " hash = ?3)", "iss", r->who.user_id, which, hash);
	if (n > 1) {
		reply_error(r, 409, "KEY_AMBIGUOUS", "'%s' names %lld keys; "
		    "use the key's id", which, n);
		goto out;
	}
	k = store_row(r->db, "SELECT id, apps_json, revoked_at FROM api_keys"
	    " WHERE user_id = ?1 AND (CAST(id AS TEXT) = ?2 OR prefix = ?2"
	    " OR hash = ?3)", "iss", r->who.user_id, which, hash);
	if (k == NULL) {
		reply_error(r, 404, "KEY_NOT_FOUND", "no API key '%s'", which);
		goto out;
	}
	id = jsonx_int(k, "id", 0);
	if (id != r->who.key_id && !keys_within_scope(r,
	    json_object_get(k, "apps"))) {
		reply_error(r, 403, "KEY_SCOPE", "this API key is limited to "
		    "named apps and cannot revoke key '%s', which reaches "
		    "further", which);
		goto out;
	}
	if (jsonx_str(k, "revoked_at")) {
		reply(r, 200, json_pack("{s:I,s:s}", "id", id, "revoked_at",
		    jsonx_str(k, "revoked_at")));
		goto out;
	}
	util_time_iso(util_now(), now, sizeof now);
	if (store_begin(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	n = store_int(r->db, -1, "SELECT COUNT(*) FROM api_keys WHERE"
	    " revoked_at IS NULL AND id IN (WITH RECURSIVE d(id) AS"
	    " (SELECT ?1 UNION SELECT k.id FROM api_keys k JOIN d ON"
	    " k.parent_id = d.id) SELECT id FROM d)", "i", id);
	if (n < 0 || store_run(r->db, "UPDATE api_keys SET revoked_at = ?2"
	    " WHERE revoked_at IS NULL AND id IN (WITH RECURSIVE d(id) AS"
	    " (SELECT ?1 UNION SELECT k.id FROM api_keys k JOIN d ON"
	    " k.parent_id = d.id) SELECT id FROM d)", "is", id, now) !=
	    STORE_OK) {
		store_rollback(r->db);
		reply_store_error(r);
		goto out;
	}
	activity_log(r, "key.revoke", "revoked API key %lld%s", id,
	    n > 1 ? " and the keys created with it" : "");
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	reply(r, 200, json_pack("{s:I,s:s,s:I}", "id", id, "revoked_at", now,
	    "revoked", n));
out:
	json_decref(k);
	free(hash);
}
