/* App members and their permissions (SPEC §2 "Members and permissions"):
 * transport, backups, settings, logs and manage, each for all
 * environments ("*") or for named ones. The Technical Contact holds them
 * all and cannot be removed. Nobody grants or takes away more than they
 * hold (auth_may_grant()). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "buf.h"
#include "portal.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

static const char *const members_perms[] = {
	"transport", "backups", "settings", "logs", "manage",
};
#define MEMBERS_NPERMS (sizeof members_perms / sizeof members_perms[0])

/* {transport: [...], …} for one member; the Technical Contact holds
 * every permission on every environment. */
static json_t *
members_perms_json(sqlite3 *db, long long app_id, long long user_id,
    int is_tc)
{
	json_t *out = json_object(), *rows, *row;
	size_t i;

	for (i = 0; i < MEMBERS_NPERMS; i++)
		json_object_set_new(out, members_perms[i], is_tc ?
		    json_pack("[s]", "*") : json_array());
	if (is_tc)
		return out;
	rows = store_rows(db, "SELECT permission, environment FROM"
	    " member_permissions WHERE app_id = ? AND user_id = ?"
	    " ORDER BY permission, environment = '*' DESC, rowid", "ii",
	    app_id, user_id);
	json_array_foreach(rows, i, row) {
		json_t *list = json_object_get(out, jsonx_str(row,
		    "permission"));

		if (list)
			json_array_append_new(list, json_string(jsonx_str(row,
			    "environment")));
	}
	json_decref(rows);
	return out;
}

/* The members of an app with their permissions. */
static json_t *
members_json(sqlite3 *db, long long app_id, long long only_user)
{
	json_t *rows, *row;
	size_t i;

	rows = store_rows(db, "SELECT u.id AS user_id, u.email, u.name,"
	    " u.id = a.technical_contact AS technical_contact, m.created_at"
	    " FROM members m JOIN users u ON u.id = m.user_id"
	    " JOIN apps a ON a.id = m.app_id WHERE m.app_id = ?1"
	    " AND (?2 = 0 OR m.user_id = ?2) ORDER BY u.email", "ii", app_id,
	    only_user);
	json_array_foreach(rows, i, row) {
		int tc = (int)jsonx_int(row, "technical_contact", 0);

		json_object_set_new(row, "technical_contact",
		    json_boolean(tc));
		json_object_set_new(row, "permissions", members_perms_json(db,
		    app_id, jsonx_int(row, "user_id", 0), tc));
	}
	return rows;
}

/* One member as members_json shows it. */
static json_t *
members_one(sqlite3 *db, long long app_id, long long user_id)
{
	json_t *rows = members_json(db, app_id, user_id);
	json_t *one = json_incref(json_array_get(rows, 0));

	json_decref(rows);
	return one;
}

/* GET /apps/{app}/members */
void
members_list(struct preq *r)
{
	json_t *rows = members_json(r->db, r->app_id, 0);

	if (rows == NULL)
		reply_store_error(r);
	else
		reply(r, 200, json_pack("{s:o}", "members", rows));
}

/* The app's environment names (its linked node's, or its sandbox). */
static json_t *
members_app_envs(struct preq *r)
{
	return store_rows(r->db, "SELECT name FROM environments WHERE"
	    " (node_id = ? AND app_id IS NULL) OR app_id = ? ORDER BY id",
	    "ii", r->node_id, r->app_id);
}

/* Check a permissions object {perm: ["*"] | [env, …]}; replies 4xx and
 * returns -1 when it is bad. *rows gets [[perm, env], …] to store, with
 * environment names spelled as the app's environments are. An app without
 * environments yet (a Free App without sandbox) takes any valid name. */
static int
members_check_perms(struct preq *r, json_t *perms, json_t **rows)
{
	json_t *out = json_array(), *envs = members_app_envs(r), *list, *v;
	const char *perm;
	size_t i, j, k;

	json_object_foreach(perms, perm, list) {
		for (k = 0; k < MEMBERS_NPERMS; k++)
			if (strcmp(perm, members_perms[k]) == 0)
				break;
		if (k == MEMBERS_NPERMS) {
			reply_error(r, 400, "UNKNOWN_PERMISSION", "no permission "
			    "'%s' (transport, backups, settings, logs, manage)",
			    perm);
			goto fail;
		}
		if (!json_is_array(list)) {
			reply_error(r, 400, "BAD_REQUEST", "permission '%s' must "
			    "be a list of environments, or [\"*\"] for all",
			    perm);
			goto fail;
		}
		json_array_foreach(list, i, v) {
			const char *env = json_string_value(v), *canon = NULL;
			json_t *e;

			if (env == NULL) {
				reply_error(r, 400, "BAD_REQUEST", "permission "
				    "'%s' must list environment names", perm);
				goto fail;
			}
			if (strcmp(env, "*") == 0) {
				if (json_array_size(list) != 1) {
					reply_error(r, 400, "BAD_REQUEST",
					    "permission '%s': \"*\" (all "
					    "environments) stands alone", perm);
					goto fail;
				}
				json_array_append_new(out, json_pack("[ss]",
				    perm, "*"));
				continue;
			}
			if (!util_valid_env_name(env)) {
				reply_error(r, 400, "INVALID_ENVIRONMENT_NAME",
				    "environment name '%s' must match "
				    "[A-Za-z][A-Za-z0-9-]{0,31}", env);
				goto fail;
			}
			json_array_foreach(envs, j, e) {
				if (strcasecmp(jsonx_str(e, "name"), env) == 0)
					canon = jsonx_str(e, "name");
			}
			if (canon == NULL && json_array_size(envs) > 0) {
				reply_error(r, 404, "ENVIRONMENT_NOT_FOUND",
				    "app '%s' has no environment '%s'",
				    preq_param(r, "app"), env);
				goto fail;
			}
			json_array_append_new(out, json_pack("[ss]", perm,
			    canon ? canon : env));
		}
	}
	json_decref(envs);
	*rows = out;
	return 0;
fail:
	json_decref(envs);
	json_decref(out);
	return -1;
}

/* Replace user's permissions with rows [[perm, env], …]; in the caller's
 * transaction. */
static int
members_store_perms(struct preq *r, long long user, json_t *rows)
{
	json_t *row;
	size_t i;

	if (store_run(r->db, "DELETE FROM member_permissions WHERE app_id = ?"
	    " AND user_id = ?", "ii", r->app_id, user) != STORE_OK)
		return -1;
	json_array_foreach(rows, i, row) {
		if (store_run(r->db, "INSERT OR IGNORE INTO member_permissions"
		    " (app_id, user_id, permission, environment) VALUES"
		    " (?, ?, ?, ?)", "iiss", r->app_id, user,
		    json_string_value(json_array_get(row, 0)),
		    json_string_value(json_array_get(row, 1))) != STORE_OK)
			return -1;
	}
	return 0;
}

/* 1 when rows ([[perm, env], …]) holds perm on env, spelled the same. */
static int
members_rows_have(json_t *rows, const char *perm, const char *env)
{
	json_t *row;
	size_t i;

	json_array_foreach(rows, i, row)
		if (strcmp(json_string_value(json_array_get(row, 0)), perm) ==
		    0 && strcmp(json_string_value(json_array_get(row, 1)), env)
		    == 0)
			return 1;
	return 0;
}

/* Nobody grants more than they hold (SPEC §6): every row that changes
 * between user's rows now and want must be one the caller may grant
 * (auth_may_grant()). 0, or -1 after replying 403 PERMISSION_NOT_HELD;
 * want NULL: every row goes (the member is removed). */
static int
members_check_grant(struct preq *r, long long user, json_t *want)
{
	json_t *rows, *have = json_array(), *row, *sets[2];
	const char *perm, *env;
	size_t i, k;
	int rc = 0;

	rows = store_rows(r->db, "SELECT permission, environment FROM"
	    " member_permissions WHERE app_id = ? AND user_id = ?", "ii",
	    r->app_id, user);
	if (rows == NULL) {
		json_decref(have);
		reply_store_error(r);
		return -1;
	}
	json_array_foreach(rows, i, row)
		json_array_append_new(have, json_pack("[ss]", jsonx_str(row,
		    "permission"), jsonx_str(row, "environment")));
	json_decref(rows);
	sets[0] = want;		/* granted: in want, not held now */
	sets[1] = have;		/* taken away: held now, not in want */
	for (k = 0; k < 2 && rc == 0; k++) {
		json_array_foreach(sets[k], i, row) {
			perm = json_string_value(json_array_get(row, 0));
			env = json_string_value(json_array_get(row, 1));
			if (members_rows_have(k == 0 ? have : want, perm, env) ||
			    auth_may_grant(r, perm, env))
				continue;
			if (strcmp(perm, "manage") == 0 && strcmp(env, "*") == 0)
				reply_error(r, 403, "PERMISSION_NOT_HELD", "only "
				    "the Technical Contact may %s 'manage' on all "
				    "environments", k == 0 ? "grant" : "take away");
			else
				reply_error(r, 403, "PERMISSION_NOT_HELD", "you "
				    "cannot %s '%s' on %s%s%s: you do not hold it "
				    "together with 'manage' there", k == 0 ?
				    "grant" : "take away", perm, strcmp(env, "*")
				    == 0 ? "all environments" : "environment '",
				    strcmp(env, "*") == 0 ? "" : env,
				    strcmp(env, "*") == 0 ? "" : "'");
			rc = -1;
			break;
		}
	}
	json_decref(have);
	return rc;
}

/* "transport Test,Acceptance; logs all" for the activity log. */
static char *
members_perms_text(json_t *rows)
{
	struct buf b;
	const char *last = NULL;
	json_t *row;
	size_t i;

	buf_init(&b, 0);
	json_array_foreach(rows, i, row) {
		const char *perm = json_string_value(json_array_get(row, 0));
		const char *env = json_string_value(json_array_get(row, 1));

		if (last == NULL || strcmp(last, perm) != 0)
			buf_printf(&b, "%s%s ", last ? "; " : "", perm);
		else
			buf_printf(&b, ",");
		buf_printf(&b, "%s", strcmp(env, "*") == 0 ? "all" : env);
		last = perm;
	}
	if (last == NULL)
		buf_printf(&b, "none");
	return buf_detach(&b);
}

/* The member {user} of the path (email or user id): its user id, or 0
 * after replying 404. */
static long long
members_path_user(struct preq *r)
{
	const char *ref = preq_param(r, "user");
	long long user = nodes_user_id(r->db, ref);

	if (user == 0 || store_int(r->db, 0, "SELECT 1 FROM members WHERE"
	    " app_id = ? AND user_id = ?", "ii", r->app_id, user) != 1) {
		reply_error(r, 404, "MEMBER_NOT_FOUND", "'%s' is not a member "
		    "of app '%s'", ref, preq_param(r, "app"));
		return 0;
	}
	return user;
}

/* POST /apps/{app}/members {email, permissions?} ('manage') */
void
members_add(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "email", JT_STRING, 1 }, { "permissions", JT_OBJECT, 0 },
		{ NULL } };
	const char *ref;
	json_t *perms = NULL, *rows = NULL;
	long long user;
	char *text = NULL, *email = NULL;
	char now[32];
	int rc;

	if (body_check(r, fields) == -1)
		return;
	ref = jsonx_str(r->body, "email");
	if ((user = nodes_user_id(r->db, ref)) == 0) {
		reply_error(r, 404, "USER_NOT_FOUND", "no user '%s'", ref);
		return;
	}
	perms = json_object_get(r->body, "permissions");
	if (perms && (members_check_perms(r, perms, &rows) == -1 ||
	    members_check_grant(r, user, rows) == -1)) {
		json_decref(rows);
		return;
	}
	email = store_text(r->db, "SELECT email FROM users WHERE id = ?", "i",
	    user);
	util_time_iso(util_now(), now, sizeof now);
	if (store_begin(r->db) == -1)
		goto fail;
	rc = store_run(r->db, "INSERT INTO members (app_id, user_id,"
	    " created_at) VALUES (?, ?, ?)", "iis", r->app_id, user, now);
	if (rc == STORE_CONFLICT) {
		store_rollback(r->db);
		reply_error(r, 409, "MEMBER_EXISTS", "%s is already a member of "
		    "app '%s'", email, preq_param(r, "app"));
		goto out;
	}
	if (rc != STORE_OK || (perms && members_store_perms(r, user, rows) == -1))
		goto fail;
	if (rows == NULL)
		rows = json_array();
	text = members_perms_text(rows);
	activity_log(r, "member.add", "added %s as a member (permissions: %s)",
	    email, text);
	if (store_commit(r->db) == -1)
		goto fail;
	reply(r, 201, members_one(r->db, r->app_id, user));
	goto out;
fail:
	reply_store_error(r);
	store_rollback(r->db);
out:
	free(text);
	free(email);
	json_decref(rows);
}

/* DELETE /apps/{app}/members/{user} ('manage', and every permission the
 * member holds must be one the caller may take away). The Technical
 * Contact cannot be removed: transfer the role first. */
void
members_remove(struct preq *r)
{
	long long user;
	char *email = NULL;

	if ((user = members_path_user(r)) == 0)
		return;
	if (store_int(r->db, 0, "SELECT technical_contact FROM apps"
	    " WHERE id = ?", "i", r->app_id) == user) {
		reply_error(r, 409, "MEMBER_IS_TECHNICAL_CONTACT", "'%s' is the "
		    "Technical Contact of app '%s'; transfer the role first",
		    preq_param(r, "user"), preq_param(r, "app"));
		return;
	}
	if (members_check_grant(r, user, NULL) == -1)
		return;
	email = store_text(r->db, "SELECT email FROM users WHERE id = ?", "i",
	    user);
	if (store_begin(r->db) == -1 ||
	    store_run(r->db, "DELETE FROM members WHERE app_id = ? AND"
	    " user_id = ?", "ii", r->app_id, user) != STORE_OK) {
		reply_store_error(r);
		store_rollback(r->db);
		goto out;
	}
	activity_log(r, "member.remove", "removed %s from the members", email);
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	reply(r, 200, json_pack("{s:s,s:b}", "email", email, "removed", 1));
out:
	free(email);
}

/* PUT /apps/{app}/members/{user}/permissions {permissions: {transport:
 * ["*"] | ["Test", …], backups, settings, logs, manage}}: replace the
 * member's permissions ('manage' changes others' permissions, and only
 * rows the caller may grant: members_check_grant(); the Technical Contact
 * and admins anyone's but the Technical Contact's, who holds them all). */
void
members_set_permissions(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "permissions", JT_OBJECT, 1 }, { NULL } };
	json_t *rows = NULL;
	long long user, tc;
	char *email = NULL, *text = NULL;

	if (body_check(r, fields) == -1)
		return;
	if ((user = members_path_user(r)) == 0)
		return;
	tc = store_int(r->db, 0, "SELECT technical_contact FROM apps"
	    " WHERE id = ?", "i", r->app_id);
	if (user == tc) {
		reply_error(r, 409, "MEMBER_IS_TECHNICAL_CONTACT", "'%s' is the "
		    "Technical Contact of app '%s' and holds every permission",
		    preq_param(r, "user"), preq_param(r, "app"));
		return;
	}
	if (user == r->who.user_id && !r->who.is_admin && r->who.user_id != tc) {
		reply_error(r, 403, "FORBIDDEN", "you cannot change your own "
		    "permissions; ask the Technical Contact");
		return;
	}
	if (members_check_perms(r, json_object_get(r->body, "permissions"),
	    &rows) == -1)
		return;
	if (members_check_grant(r, user, rows) == -1)
		goto out;
	email = store_text(r->db, "SELECT email FROM users WHERE id = ?", "i",
	    user);
	text = members_perms_text(rows);
	if (store_begin(r->db) == -1 ||
	    members_store_perms(r, user, rows) == -1) {
		reply_store_error(r);
		store_rollback(r->db);
		goto out;
	}
	activity_log(r, "member.permissions", "permissions of %s: %s", email,
	    text);
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	reply(r, 200, members_one(r->db, r->app_id, user));
out:
	free(email);
	free(text);
	json_decref(rows);
}
