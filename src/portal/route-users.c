/* Users, sessions (password login) and API keys. */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "portal.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* POST /sessions {email, password, name?, expires_in?}: log in; the
 * answer carries a new API key, shown once (what `nubo login` stores). */
void
users_session_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "email", JT_STRING, 1 }, { "password", JT_STRING, 1 },
		{ "name", JT_STRING, 0 }, { "expires_in", JT_INT, 0 }, { NULL } };
	json_t *user = NULL;
	char *key = NULL;
	char expires[32];
	long long ttl;

	if (body_check(r, fields) == -1)
		return;
	ttl = jsonx_int(r->body, "expires_in", 0);
	if (ttl < 0 || ttl > 10LL * 365 * 86400) {
		reply_error(r, 400, "BAD_REQUEST",
		    "expires_in must be between 0 and 10 years in seconds");
		return;
	}
	user = store_row(r->db, "SELECT id, password_hash FROM users"
	    " WHERE email = ?", "s", jsonx_str(r->body, "email"));
	if (user == NULL || !auth_password_ok(jsonx_str(user, "password_hash"),
	    jsonx_str(r->body, "password"))) {
		reply_error(r, 401, "BAD_CREDENTIALS",
		    "wrong email or password");
		goto out;
	}
	r->who.user_id = jsonx_int(user, "id", 0);
	if (ttl)
		util_time_iso(util_now() + ttl, expires, sizeof expires);
	key = auth_key_create(r->db, r->who.user_id,
	    jsonx_str(r->body, "name") ? jsonx_str(r->body, "name") : "login",
	    0, NULL, ttl ? expires : NULL, NULL);
	if (key == NULL) {
		reply_store_error(r);
		goto out;
	}
	reply(r, 201, json_pack("{s:s,s:I}", "key", key, "user_id",
	    r->who.user_id));
out:
	free(key);
	json_decref(user);
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
	reply(r, 200, me);
}

/* GET /users (admin) */
void
users_list(struct preq *r)
{
	json_t *rows = store_rows(r->db, "SELECT id, email, name, is_admin,"
	    " created_at FROM users ORDER BY id", "");

	if (rows == NULL)
		reply_store_error(r);
	else
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
	activity_log(r, "user.create", "created user %s", email);
	reply(r, 201, store_row(r->db, "SELECT id, email, name, is_admin,"
	    " created_at FROM users WHERE id = ?", "i", store_last_id(r->db)));
}

/* GET /keys: the caller's keys, never their secrets. */
void
keys_list(struct preq *r)
{
	json_t *rows = store_rows(r->db, "SELECT id, prefix, name, read_only,"
	    " apps_json, expires_at, revoked_at, created_at FROM api_keys"
	    " WHERE user_id = ? ORDER BY id", "i", r->who.user_id);

	if (rows == NULL)
		reply_store_error(r);
	else
		reply(r, 200, json_pack("{s:o}", "keys", rows));
}

/* POST /keys {name?, read_only?, apps?: [app…], expires_at?} */
void
keys_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "name", JT_STRING, 0 }, { "read_only", JT_BOOL, 0 },
		{ "apps", JT_ARRAY, 0 }, { "expires_at", JT_STRING, 0 },
		{ NULL } };
	const char *expires = jsonx_str(r->body, "expires_at");
	const char *name = jsonx_str(r->body, "name");
	json_t *apps = json_object_get(r->body, "apps"), *scope = NULL, *v;
	long long key_id = 0;
	char *key = NULL;
	time_t t;
	size_t i;

	if (body_check(r, fields) == -1)
		return;
	if (name && strlen(name) > NUBO_NAME_MAX) {
		reply_error(r, 400, "INVALID_NAME", "a key name has at most %d "
		    "characters", NUBO_NAME_MAX);
		return;
	}
	if (expires && (util_parse_iso(expires, &t) == -1 ||
	    t <= util_now())) {
		reply_error(r, 400, "INVALID_EXPIRY", "expires_at must be a "
		    "future time like 2030-01-31T00:00:00Z, not '%s'", expires);
		return;
	}
	/* A key can never do more than its user: scope only to apps the
	 * caller can see, stored by uuid so renames don't matter. */
	if (apps) {
		scope = json_array();
		json_array_foreach(apps, i, v) {
			char *uuid;

			if (!json_is_string(v)) {
				reply_error(r, 400, "BAD_REQUEST",
				    "field 'apps' must list app names");
				goto out;
			}
			uuid = store_text(r->db, "SELECT a.uuid FROM apps a"
			    " WHERE (a.subdomain = ?1 OR a.uuid = ?1) AND (?2"
			    " OR a.technical_contact = ?3 OR EXISTS (SELECT 1"
			    " FROM members m WHERE m.app_id = a.id AND"
			    " m.user_id = ?3))", "sii", json_string_value(v),
			    (long long)r->who.is_admin, r->who.user_id);
			if (uuid == NULL) {
				reply_error(r, 404, "APP_NOT_FOUND", "no app "
				    "'%s'", json_string_value(v));
				goto out;
			}
			json_array_append_new(scope, json_string(uuid));
			free(uuid);
		}
	}
	key = auth_key_create(r->db, r->who.user_id, name ? name : "",
	    jsonx_bool(r->body, "read_only", 0) || r->who.read_only,
	    scope ? scope : r->who.app_scope, expires, &key_id);
	if (key == NULL) {
		reply_store_error(r);
		goto out;
	}
	activity_log(r, "key.create", "created API key %lld", key_id);
	v = store_row(r->db, "SELECT id, prefix, name, read_only, apps_json,"
	    " expires_at, created_at FROM api_keys WHERE id = ?", "i", key_id);
	json_object_set_new(v, "key", json_string(key));
	reply(r, 201, v);
out:
	free(key);
	json_decref(scope);
}

/* DELETE /keys/{key}: revoke (by id or prefix). */
void
keys_revoke(struct preq *r)
{
	const char *which = preq_param(r, "key");
	char now[32];
	long long id;

	id = store_int(r->db, 0, "SELECT id FROM api_keys WHERE user_id = ?1"
	    " AND (CAST(id AS TEXT) = ?2 OR prefix = ?2)", "is",
	    r->who.user_id, which);
	if (id == 0) {
		reply_error(r, 404, "KEY_NOT_FOUND", "no API key '%s'", which);
		return;
	}
	util_time_iso(util_now(), now, sizeof now);
	if (store_run(r->db, "UPDATE api_keys SET revoked_at = ? WHERE id = ?"
	    " AND revoked_at IS NULL", "si", now, id) != STORE_OK) {
		reply_store_error(r);
		return;
	}
	activity_log(r, "key.revoke", "revoked API key %lld", id);
	reply(r, 200, json_pack("{s:I,s:s}", "id", id, "revoked_at", now));
}
