/* Apps: create, list, show, rename, delete; members and permissions;
 * the Technical Contact. */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "portal.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* One app as the API shows it. */
#define APP_SELECT \
	"SELECT a.uuid AS id, a.subdomain, a.name, u.email AS technical_contact," \
	" a.sandbox, a.temporary, n.name AS node," \
	" CASE WHEN n.id IS NULL THEN 'free' ELSE 'licensed' END AS status," \
	" a.created_at FROM apps a JOIN users u ON u.id = a.technical_contact" \
	" LEFT JOIN nodes n ON n.app_id = a.id"

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

/* GET /apps: apps the caller is a member of (admins: all), narrowed to
 * the key's app scope. */
void
apps_list(struct preq *r)
{
	json_t *rows, *out = json_array(), *app;
	size_t i;

	rows = store_rows(r->db, APP_SELECT " WHERE ?1 OR a.technical_contact"
	    " = ?2 OR EXISTS (SELECT 1 FROM members m WHERE m.app_id = a.id"
	    " AND m.user_id = ?2) ORDER BY a.subdomain", "ii",
	    (long long)r->who.is_admin, r->who.user_id);
	if (rows == NULL) {
		json_decref(out);
		reply_store_error(r);
		return;
	}
	json_array_foreach(rows, i, app) {
		json_t *v;
		size_t j;
		int ok = r->who.app_scope == NULL;

		json_array_foreach(r->who.app_scope, j, v)
			if (json_equal(v, json_object_get(app, "id")))
				ok = 1;
		if (!ok)
			continue;
		json_object_set_new(app, "sandbox", json_boolean(
		    jsonx_int(app, "sandbox", 0)));
		json_object_set_new(app, "temporary", json_boolean(
		    jsonx_int(app, "temporary", 0)));
		json_array_append(out, app);
	}
	json_decref(rows);
	reply(r, 200, json_pack("{s:o}", "apps", out));
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
		{ NULL } };
	const char *sub, *name;
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
	if (name && (strlen(name) == 0 || strlen(name) > NUBO_NAME_MAX)) {
		reply_error(r, 400, "INVALID_NAME", "an app name has 1 to %d "
		    "characters", NUBO_NAME_MAX);
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
	uuid = util_uuid();
	util_time_iso(util_now(), now, sizeof now);
	rc = store_run(r->db, "INSERT INTO apps (uuid, subdomain, name,"
	    " technical_contact, sandbox, temporary, created_at)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?)", "sssiiis", uuid, sub,
	    name ? name : sub, r->who.user_id, (long long)sandbox,
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
