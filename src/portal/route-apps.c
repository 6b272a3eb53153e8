/* Apps: create, list, show, rename, delete; members and permissions;
 * the Technical Contact. */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "env-delete.h"
#include "portal.h"
#include "settings.h"
#include "store.h"
#include "util.h"
#include "waits.h"
#include "xmalloc.h"

/* One app as the API shows it. */
#define APP_SELECT \
	"SELECT a.uuid AS id, a.subdomain, a.name, u.email AS technical_contact," \
	" a.sandbox, a.temporary, n.name AS node," \
	" CASE WHEN n.id IS NULL THEN 'free' ELSE 'licensed' END AS status," \
	" a.created_at FROM apps a JOIN users u ON u.id = a.technical_contact" \
	" LEFT JOIN nodes n ON n.app_id = a.id"

/* 1 when name is a display name: 1 to NUBO_NAME_MAX bytes, no control
 * characters. */
static int
apps_valid_name(const char *name)
{
	const unsigned char *p;

	if (name == NULL || *name == '\0' || strlen(name) > NUBO_NAME_MAX)
		return 0;
	for (p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

json_t *
apps_json(sqlite3 *db, long long app_id)
{
	json_t *app = store_row(db, APP_SELECT " WHERE a.id = ?", "i", app_id);

	if (app) {
		json_object_set_new(app, "sandbox", json_boolean(
		    jsonx_int(app, "sandbox", 0)));
		json_object_set_new(app, "temporary", json_boolean(
		    jsonx_int(app, "temporary", 0)));
	}
	return app;
}

/* The app a request names by its uuid or its subdomain: its id, or 0
 * when there is none. The uuid is matched first: a subdomain never has a
 * uuid's form (apps_create()), but a store may hold one from before, and
 * a name must never reach two apps. */
long long
apps_find(sqlite3 *db, const char *ref)
{
	return store_int(db, 0, "SELECT id FROM apps WHERE uuid = ?1 OR"
	    " subdomain = ?1 ORDER BY uuid = ?1 DESC LIMIT 1", "s", ref);
}

/* GET /apps: apps the caller is a member of (admins: all), narrowed to
 * the key's app scope. */
void
apps_list(struct preq *r)
{
	char *apps = NULL, *scope = NULL;

	/* The hot read of the API (bench/api): the JSON text is written
	 * straight from the rows, no per-row objects. The fields are
	 * APP_SELECT's as apps_json() shows them; keep the two in step. */
	if (r->who.app_scope)
		scope = json_dumps(r->who.app_scope, JSON_COMPACT);
	apps = store_rows_text(r->db, "apps", "SELECT a.uuid AS id,"
	    " a.subdomain, a.name, u.email AS technical_contact,"
	    " a.sandbox AS sandbox_bool, a.temporary AS temporary_bool,"
	    " n.name AS node, CASE WHEN n.id IS NULL THEN 'free' ELSE"
	    " 'licensed' END AS status, a.created_at FROM apps a JOIN users u"
	    " ON u.id = a.technical_contact LEFT JOIN nodes n ON n.app_id ="
	    " a.id WHERE (?1 OR a.technical_contact = ?2 OR EXISTS (SELECT 1"
	    " FROM members m WHERE m.app_id = a.id AND m.user_id = ?2)) AND"
	    " (?3 IS NULL OR a.uuid IN (SELECT value FROM json_each(?3)))"
	    " ORDER BY a.subdomain", "iis", (long long)r->who.is_admin,
	    r->who.user_id, scope);
	free(scope);
	if (apps == NULL) {
		reply_store_error(r);
		return;
	}
	reply_text(r, 200, apps);
}

/* An app's cloud hostnames `<subdomain>-<env>.<cloud domain>` must not be
 * another environment's custom domain (settings.c keeps custom domains
 * unique and out of the cloud's domain; this covers names held from
 * before or under another cloud domain). -1 after replying (and rolling
 * back) when one is. */
static int
apps_hostname_taken(struct preq *r, const char *sub)
{
	static const char *const envs[] = { "test", "acceptance",
	    "production", "sandbox", NULL };
	int i, held = 0;
	char *h = NULL;

	for (i = 0; envs[i] && held == 0; i++) {
		free(h);
		h = xasprintf("%s-%s.%s", sub, envs[i],
		    r->portal->cloud_domain);
		held = settings_domain_held(r->db, h);
	}
	if (held == 0) {
		free(h);
		return 0;
	}
	store_rollback(r->db);
	if (held == -1)
		reply_store_error(r);
	else
		reply_error(r, 409, "SUBDOMAIN_TAKEN", "subdomain '%s' is "
		    "taken: its hostname '%s' is another app's custom domain",
		    sub, h);
	free(h);
	return -1;
}

/* POST /apps {subdomain, name?, sandbox?: true, temporary?: false}: a Free
 * App whose Technical Contact is the caller. With a sandbox it gets one
 * environment on the portal's sandbox node (SPEC §2). */
void
apps_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "subdomain", JT_STRING, 1 }, { "name", JT_STRING, 0 },
		{ "sandbox", JT_BOOL, 0 }, { "temporary", JT_BOOL, 0 },
		{ "id", JT_STRING, 0 }, { NULL } };
	const char *sub, *name, *id;
	long long sandbox_node = 0;
	int sandbox, rc;
	char *uuid = NULL;
	char now[32];

	if (body_check(r, fields) == -1)
		return;
	sub = jsonx_str(r->body, "subdomain");
	name = jsonx_str(r->body, "name");
	sandbox = jsonx_bool(r->body, "sandbox", 1);
	if (!util_valid_subdomain(sub)) {
		reply_error(r, 400, "INVALID_SUBDOMAIN", "subdomain '%s' must "
		    "match [a-z][a-z0-9-]{1,38}", sub);
		return;
	}
	/* {app} is a subdomain or a uuid: a subdomain shaped as a uuid
	 * (one starting with a-f is valid) would name another app too */
	if (util_valid_uuid(sub)) {
		reply_error(r, 400, "INVALID_SUBDOMAIN", "subdomain '%s' has "
		    "the form of an app id (a uuid), which names apps too; "
		    "choose another", sub);
		return;
	}
	if (name && !apps_valid_name(name)) {
		reply_error(r, 400, "INVALID_NAME", "an app name has 1 to %d "
		    "printable characters", NUBO_NAME_MAX);
		return;
	}
	/* the app's id may be given (a project that has one elsewhere, as
	 * the Mendix API's ProjectId): a lowercase uuid nobody has */
	id = jsonx_str(r->body, "id");
	if (id && !util_valid_uuid(id)) {
		reply_error(r, 400, "INVALID_APP_ID", "an app id is a lowercase "
		    "uuid, not '%s'", id);
		return;
	}
	if (r->who.user_id == 0) {
		reply_error(r, 403, "FORBIDDEN", "an app needs a user as "
		    "Technical Contact");
		return;
	}
	if (store_begin(r->db) == -1) {
		reply_store_error(r);
		return;
	}
	if (sandbox) {
		sandbox_node = store_int(r->db, 0, "SELECT id FROM nodes WHERE"
		    " is_sandbox = 1 AND status != 'offboarded' ORDER BY id"
		    " LIMIT 1", "");
		if (sandbox_node == 0) {
			store_rollback(r->db);
			reply_error(r, 409, "SANDBOX_UNAVAILABLE", "this cloud "
			    "has no sandbox node; create the app with "
			    "--no-sandbox");
			return;
		}
	}
	if (apps_hostname_taken(r, sub) == -1)
		return;
	/* nor may a new id be an app's subdomain (one from before the
	 * check above) */
	if (id && apps_find(r->db, id) != 0) {
		store_rollback(r->db);
		reply_error(r, 409, "APP_ID_TAKEN", "an app with id (or "
		    "subdomain) '%s' exists already", id);
		return;
	}
	uuid = id ? xstrdup(id) : util_uuid();
	util_time_iso(util_now(), now, sizeof now);
	rc = store_run(r->db, "INSERT INTO apps (id, uuid, subdomain, name,"
	    " technical_contact, sandbox, temporary, created_at)"
	    " VALUES (" STORE_APP_NEW_ID ", ?, ?, ?, ?, ?, ?, ?)", "sssiiis",
	    uuid, sub, name ? name : sub, r->who.user_id, (long long)sandbox,
	    (long long)jsonx_bool(r->body, "temporary", 0), now);
	if (rc == STORE_CONFLICT) {
		store_rollback(r->db);
		reply_error(r, 409, "SUBDOMAIN_TAKEN", "subdomain '%s' is "
		    "taken", sub);
		goto out;
	}
	r->app_id = store_last_id(r->db);
	if (rc != STORE_OK ||
	    store_run(r->db, "INSERT INTO members (app_id, user_id,"
	    " created_at) VALUES (?, ?, ?)", "iis", r->app_id,
	    r->who.user_id, now) != STORE_OK ||
	    (sandbox && store_run(r->db, "INSERT INTO environments (node_id,"
	    " name, app_id, created_at) VALUES (?, 'Sandbox', ?, ?)", "iis",
	    sandbox_node, r->app_id, now) != STORE_OK)) {
		reply_store_error(r);
		store_rollback(r->db);
		goto out;
	}
	activity_log(r, "app.create", "created app '%s'%s", sub,
	    sandbox ? " with a sandbox" : " without a sandbox");
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	reply(r, 201, apps_json(r->db, r->app_id));
out:
	free(uuid);
}

/* GET /apps/{app} */
void
apps_show(struct preq *r)
{
	json_t *app = apps_json(r->db, r->app_id);

	if (app == NULL) {
		reply_store_error(r);
		return;
	}
	json_object_set_new(app, "environments", store_rows(r->db,
	    "SELECT e.name, e.state, n.name AS node FROM environments e"
	    " JOIN nodes n ON n.id = e.node_id WHERE (e.node_id = ? AND"
	    " e.app_id IS NULL) OR e.app_id = ? ORDER BY e.id", "ii",
	    r->node_id, r->app_id));
	reply(r, 200, app);
}

/* PATCH /apps/{app} {name}: rename the display name (Technical Contact or
 * 'manage'). The subdomain is permanent (SPEC §2). */
void
apps_rename(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "name", JT_STRING, 1 }, { "subdomain", JT_ANY, 0 },
		{ NULL } };
	const char *name;
	char *old = NULL;

	if (body_check(r, fields) == -1)
		return;
	if (json_object_get(r->body, "subdomain")) {
		reply_error(r, 400, "SUBDOMAIN_IMMUTABLE", "an app's subdomain "
		    "cannot change; create a new app instead");
		return;
	}
	name = jsonx_str(r->body, "name");
	if (!apps_valid_name(name)) {
		reply_error(r, 400, "INVALID_NAME", "an app name has 1 to %d "
		    "printable characters", NUBO_NAME_MAX);
		return;
	}
	old = store_text(r->db, "SELECT name FROM apps WHERE id = ?", "i",
	    r->app_id);
	if (store_begin(r->db) == -1 ||
	    store_run(r->db, "UPDATE apps SET name = ? WHERE id = ?", "si",
	    name, r->app_id) != STORE_OK) {
		reply_store_error(r);
		goto out;
	}
	activity_log(r, "app.rename", "renamed from '%s' to '%s'",
	    old ? old : "", name);
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	reply(r, 200, apps_json(r->db, r->app_id));
out:
	free(old);
}

/* The app's sandbox environment (0: none) and its node's name. */
static long long
apps_sandbox_env(struct preq *r, char **node)
{
	json_t *row = store_row(r->db, "SELECT e.id, n.name FROM environments"
	    " e JOIN nodes n ON n.id = e.node_id WHERE e.app_id = ? AND"
	    " n.is_sandbox = 1", "i", r->app_id);
	long long id = jsonx_int(row, "id", 0);

	*node = row && jsonx_str(row, "name") ? xstrdup(jsonx_str(row,
	    "name")) : NULL;
	json_decref(row);
	return id;
}

/* What a deleted app leaves under its id, detached from it inside the
 * caller's transaction: its activity log and its jobs (no foreign key;
 * each other table with an app_id cascades or sets NULL itself). Their
 * creators still see their jobs. A job still queued never runs: it fails,
 * saying why; one running ends under the id, which no app takes again
 * (STORE_APP_NEW_ID). sub: the app's subdomain, NULL for the migration's
 * temporary app. STORE_OK, or the store's error. */
int
apps_detach(sqlite3 *db, long long app_id, const char *sub)
{
	char now[32];
	char *why;
	int rc;

	util_time_iso(util_now(), now, sizeof now);
	why = sub ? xasprintf("app '%s' was deleted before the job ran",
	    sub) : xstrdup("the migration's temporary app was deleted before "
	    "the job ran");
	rc = store_run(db, "UPDATE jobs SET state = 'failed', error = ?,"
	    " finished_at = ? WHERE app_id = ? AND state = 'queued'", "ssi",
	    why, now, app_id);
	if (rc == STORE_OK)
		rc = store_run(db, "UPDATE jobs SET app_id = NULL WHERE"
		    " app_id = ?", "i", app_id);
	if (rc == STORE_OK)
		rc = store_run(db, "UPDATE activity SET app_id = NULL WHERE"
		    " app_id = ?", "i", app_id);
	free(why);
	return rc;
}

/* The app's delete, in a transaction the caller ends: STORE_OK, or
 * -1 after replying. */
static int
apps_delete_rows(struct preq *r, const char *app, const char *sub)
{
	char *node;
	int rc;

	if (store_begin(r->db) == -1) {
		reply_store_error(r);
		return -1;
	}
	/* Checked inside the transaction: a link cannot slip in between. */
	node = store_text(r->db, "SELECT name FROM nodes WHERE app_id = ?",
	    "i", r->app_id);
	if (node) {
		store_rollback(r->db);
		reply_error(r, 409, "APP_LINKED", "app '%s' is linked to node "
		    "'%s'; link another app to that node first", app, node);
		free(node);
		return -1;
	}
	if (apps_detach(r->db, r->app_id, sub) != STORE_OK) {
		reply_store_error(r);
		store_rollback(r->db);
		return -1;
	}
	/* Members, permissions and the sandbox environment row cascade. */
	rc = store_run(r->db, "DELETE FROM apps WHERE id = ?", "i", r->app_id);
	if (rc == STORE_CONFLICT) {
		store_rollback(r->db);
		reply_error(r, 409, "APP_IN_USE", "app '%s' is still referenced "
		    "(a migration or job uses it)", sub);
		return -1;
	}
	if (rc != STORE_OK) {
		reply_store_error(r);
		store_rollback(r->db);
		return -1;
	}
	return STORE_OK;
}

/* DELETE /apps/{app} (Technical Contact): refused while a node is linked
 * (SPEC §2); a sandbox environment goes with the app, deleted for real on
 * the sandbox node first (refused, nothing changed, when that node cannot
 * do it). */
void
apps_delete(struct preq *r)
{
	const char *app = preq_param(r, "app");
	char *sub = NULL, *node = NULL, *cause = NULL;
	long long env_id;
	const char *code = "NODE_ERROR";
	unsigned status = 503;

	sub = store_text(r->db, "SELECT subdomain FROM apps WHERE id = ?",
	    "i", r->app_id);
	env_id = apps_sandbox_env(r, &node);
	if (env_id) {
		/* Everything that would refuse the delete, before the
		 * sandbox data goes: a dry run. */
		if (apps_delete_rows(r, app, sub) == -1)
			goto out;
		store_rollback(r->db);
		if (env_delete_on_node(r->db, env_id, &status, &code, &cause)
		    == -1) {
			reply_error(r, status, code, "cannot delete app '%s' "
			    "with its sandbox: %s", app, cause);
			goto out;
		}
	}
	if (apps_delete_rows(r, app, sub) == -1)
		goto out;
	if (env_id)
		activity_log_at(r, 0, 0, "app.delete", "deleted app '%s' and "
		    "its sandbox environment, deleted for real on node '%s' "
		    "(instances stopped, database and files removed)", sub,
		    node ? node : "?");
	else
		activity_log_at(r, 0, 0, "app.delete", "deleted app '%s'",
		    sub);
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	waits_changed();	/* its queued jobs failed (apps_detach()) */
	reply(r, 200, json_pack("{s:s,s:b}", "subdomain", sub, "deleted", 1));
out:
	free(cause);
	free(sub);
	free(node);
}

/* POST /apps/{app}/unlink-sandbox {confirm: true} (Technical Contact):
 * remove the app's sandbox so it can be linked to a licensed node (SPEC
 * §2; seed "How to Unlink Your Free App from a Sandbox Environment"). The
 * sandbox node deletes the environment for real first: instances stopped,
 * database and role dropped, files, app and logs removed, hostname out of
 * its router; when it cannot (unreachable, failing), the unlink is refused
 * and nothing changes. The sandbox's snapshots go with it (the node
 * deletes them with the environment, the portal their copies on other
 * nodes: env_delete_on_node()); SPEC §2's "keep a backup" is the user's
 * to do first (`nubo backups download`), and the required confirmation
 * (`--yes` or typing the app's name in the CLI) is the safeguard. */
void
apps_unlink_sandbox(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "confirm", JT_BOOL, 1 }, { NULL } };
	const char *app = preq_param(r, "app");
	char *node = NULL, *cause = NULL;
	long long env_id = 0;
	const char *code = "NODE_ERROR";
	unsigned status = 503;

	if (body_check(r, fields) == -1)
		return;
	if (!jsonx_bool(r->body, "confirm", 0)) {
		reply_error(r, 400, "CONFIRMATION_REQUIRED", "unlinking the "
		    "sandbox of app '%s' deletes its sandbox data; send "
		    "{\"confirm\": true}", app);
		return;
	}
	if (store_int(r->db, 0, "SELECT sandbox FROM apps WHERE id = ?", "i",
	    r->app_id) == 0) {
		reply_error(r, 409, "APP_HAS_NO_SANDBOX", "app '%s' has no "
		    "sandbox", app);
		return;
	}
	env_id = apps_sandbox_env(r, &node);
	if (env_id && env_delete_on_node(r->db, env_id, &status, &code,
	    &cause) == -1) {
		reply_error(r, status, code, "cannot unlink the sandbox of app "
		    "'%s': %s", app, cause);
		goto out;
	}
	if (store_begin(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	/* again inside the transaction: another unlink may have won */
	if (store_int(r->db, 0, "SELECT sandbox FROM apps WHERE id = ?", "i",
	    r->app_id) == 0) {
		store_rollback(r->db);
		reply_error(r, 409, "APP_HAS_NO_SANDBOX", "app '%s' has no "
		    "sandbox", app);
		goto out;
	}
	if (store_run(r->db, "DELETE FROM environments WHERE app_id = ? AND"
	    " node_id IN (SELECT id FROM nodes WHERE is_sandbox = 1)", "i",
	    r->app_id) != STORE_OK ||
	    store_run(r->db, "UPDATE apps SET sandbox = 0 WHERE id = ?", "i",
	    r->app_id) != STORE_OK) {
		reply_store_error(r);
		store_rollback(r->db);
		goto out;
	}
	activity_log(r, "app.unlink-sandbox", "unlinked the sandbox%s%s%s "
	    "(confirmed): the sandbox environment and its data are gone, "
	    "deleted on the node (instances stopped, database and files "
	    "removed); no snapshot was kept", node ? " on node '" : "",
	    node ? node : "", node ? "'" : "");
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	reply(r, 200, apps_json(r->db, r->app_id));
out:
	free(cause);
	free(node);
}

/* POST /apps/{app}/technical-contact {email} (Technical Contact): hand
 * the role to another user, who becomes a member if not one yet. An app
 * has exactly one Technical Contact; the previous one stays a member and
 * keeps every permission explicitly (they held them all). */
void
apps_transfer_technical_contact(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "email", JT_STRING, 1 }, { NULL } };
	static const char *const perms[] = {
		"transport", "backups", "settings", "logs", "manage" };
	const char *ref;
	long long user, old;
	char *old_email = NULL, *email = NULL;
	char now[32];
	size_t i;
	int added;

	if (body_check(r, fields) == -1)
		return;
	ref = jsonx_str(r->body, "email");
	if ((user = nodes_user_id(r->db, ref)) == 0) {
		reply_error(r, 404, "USER_NOT_FOUND", "no user '%s'", ref);
		return;
	}
	old = store_int(r->db, 0, "SELECT technical_contact FROM apps"
	    " WHERE id = ?", "i", r->app_id);
	if (old == user) {
		reply(r, 200, apps_json(r->db, r->app_id));
		return;
	}
	old_email = store_text(r->db, "SELECT email FROM users WHERE id = ?",
	    "i", old);
	email = store_text(r->db, "SELECT email FROM users WHERE id = ?", "i",
	    user);
	util_time_iso(util_now(), now, sizeof now);
	if (store_begin(r->db) == -1)
		goto fail;
	added = store_int(r->db, 0, "SELECT 1 FROM members WHERE app_id = ?"
	    " AND user_id = ?", "ii", r->app_id, user) == 0;
	if (store_run(r->db, "INSERT OR IGNORE INTO members (app_id, user_id,"
	    " created_at) VALUES (?, ?, ?)", "iis", r->app_id, user, now) !=
	    STORE_OK ||
	    store_run(r->db, "INSERT OR IGNORE INTO members (app_id, user_id,"
	    " created_at) VALUES (?, ?, ?)", "iis", r->app_id, old, now) !=
	    STORE_OK ||
	    store_run(r->db, "UPDATE apps SET technical_contact = ?"
	    " WHERE id = ?", "ii", user, r->app_id) != STORE_OK ||
	    store_run(r->db, "DELETE FROM member_permissions WHERE app_id = ?"
	    " AND user_id = ?", "ii", r->app_id, old) != STORE_OK)
		goto fail;
	for (i = 0; i < sizeof perms / sizeof perms[0]; i++)
		if (store_run(r->db, "INSERT INTO member_permissions (app_id,"
		    " user_id, permission, environment) VALUES (?, ?, ?, '*')",
		    "iis", r->app_id, old, perms[i]) != STORE_OK)
			goto fail;
	if (added)
		activity_log(r, "member.add", "added %s as a member", email);
	activity_log(r, "app.technical-contact", "Technical Contact changed "
	    "from %s to %s", old_email ? old_email : "?", email);
	if (store_commit(r->db) == -1)
		goto fail;
	reply(r, 200, apps_json(r->db, r->app_id));
	goto out;
fail:
	reply_store_error(r);
	store_rollback(r->db);
out:
	free(old_email);
	free(email);
}

/* GET /apps/{app}/activity?limit=N: the newest entries first. */
void
apps_activity(struct preq *r)
{
	activity_reply_page(r, ACTIVITY_OF_APP);
}
