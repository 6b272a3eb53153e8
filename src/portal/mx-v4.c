/* Deploy API v4 of the Mendix Cloud (docs/MENDIX-API.md) under /api/v4:
 * apps, the Technical Contact, environments (expand=package) and the
 * members' permissions per environment — each mapped onto nubo's own
 * handler through mx_call() (the same checks, grant rules and activity
 * log), in camelCase fields with ISO dates and offset/limit pagination.
 * Authorization: MxToken <personal access token>. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "mx.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

#define MX4_PAGE_DEFAULT	100
#define MX4_PAGE_MAX		1000

/* nubo's handlers */
void apps_list(struct preq *);
void apps_show(struct preq *);
void apps_transfer_technical_contact(struct preq *);
void envs_list(struct preq *);
void envs_show(struct preq *);
void members_list(struct preq *);
void members_set_permissions(struct preq *);
void packages_app_show(struct preq *);

/* ?offset=&limit=: 0, or -1 after replying 400. */
static int
mx4_page(struct preq *r, long long *offset, long long *limit)
{
	const char *o = preq_query(r, "offset"), *l = preq_query(r, "limit");

	*offset = 0;
	*limit = MX4_PAGE_DEFAULT;
	if (o && util_parse_int(o, 0, 1LL << 40, offset) == -1) {
		reply_error(r, 400, "INVALID_PARAMETERS", "'offset' must be 0 "
		    "or more");
		return -1;
	}
	if (l && util_parse_int(l, 1, MX4_PAGE_MAX, limit) == -1) {
		reply_error(r, 400, "INVALID_PARAMETERS", "'limit' must be 1 "
		    "to %d", MX4_PAGE_MAX);
		return -1;
	}
	return 0;
}

/* Reply {key: page of items, pagination: {offset, limit, size}}. */
static void
mx4_reply_page(struct preq *r, const char *key, json_t *items,
    long long offset, long long limit)
{
	json_t *page = json_array();
	size_t i;

	for (i = (size_t)offset; i < json_array_size(items) &&
	    i < (size_t)(offset + limit); i++)
		json_array_append(page, json_array_get(items, i));
	reply(r, 200, json_pack("{s:o,s:{s:I,s:I,s:I}}", key, page,
	    "pagination", "offset", (json_int_t)offset, "limit",
	    (json_int_t)limit, "size", (json_int_t)json_array_size(page)));
	json_decref(items);
}

/* An app (nubo's JSON) in v4 fields. */
static json_t *
mx4_app(struct preq *r, json_t *a)
{
	const char *tc = jsonx_str(a, "technical_contact");
	char *name = store_text(r->db, "SELECT name FROM users WHERE email = ?",
	    "s", tc ? tc : "");
	json_t *out;

	out = json_pack("{s:s,s:s,s:s,s:s,s:{s:s?,s:s,s:s},s:s}",
	    "id", jsonx_str(a, "id"),
	    "name", jsonx_str(a, "name"),
	    "licenseType", jsonx_str(a, "node") ? "licensed" : "free",
	    "subdomain", jsonx_str(a, "subdomain"),
	    "technicalContact", "userId", tc, "name", name ? name : "",
	    "status", "active",
	    "region", jsonx_str(a, "node") ? jsonx_str(a, "node") : "sandbox");
	free(name);
	return out;
}

/* GET /api/v4/apps?offset=&limit=&licenseType= */
void
mx4_apps_list(struct preq *r)
{
	const char *lt = preq_query(r, "licenseType");
	json_t *out, *items, *a, *app;
	long long offset, limit;
	size_t i;

	if (mx4_page(r, &offset, &limit) == -1)
		return;
	if (lt && strcmp(lt, "free") != 0 && strcmp(lt, "licensed") != 0) {
		reply_error(r, 400, "INVALID_PARAMETERS", "'licenseType' must "
		    "be free or licensed");
		return;
	}
	if (mx_call(r, apps_list, NULL, &out) / 100 != 2) {
		mx_reply_captured(r);
		return;
	}
	items = json_array();
	json_array_foreach(json_object_get(out, "apps"), i, a) {
		app = mx4_app(r, a);
		if (lt && strcmp(jsonx_str(app, "licenseType"), lt) != 0)
			json_decref(app);
		else
			json_array_append_new(items, app);
	}
	json_decref(out);
	mx4_reply_page(r, "apps", items, offset, limit);
}

/* GET /api/v4/apps/{appId} */
void
mx4_apps_show(struct preq *r)
{
	json_t *out;

	if (mx_call(r, apps_show, NULL, &out) / 100 != 2) {
		mx_reply_captured(r);
		return;
	}
	reply(r, 200, mx4_app(r, out));
	json_decref(out);
}

/* PATCH /api/v4/apps/{appId} {technicalContact: {userId: email}} */
void
mx4_apps_patch(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "technicalContact", JT_OBJECT, 1 }, { NULL } };
	static const struct jfield tc_fields[] = {
		{ "userId", JT_STRING, 1 }, { NULL } };
	json_t *tc, *out;
	char *cause = NULL;

	if (body_check(r, fields) == -1)
		return;
	tc = json_object_get(r->body, "technicalContact");
	if (jsonx_check(tc, tc_fields, &cause) == -1) {
		reply_error(r, 400, "INVALID_PARAMETERS", "technicalContact: %s",
		    cause);
		free(cause);
		return;
	}
	if (mx_call(r, apps_transfer_technical_contact, json_pack("{s:s}",
	    "email", jsonx_str(tc, "userId")), &out) / 100 != 2) {
		mx_reply_captured(r);
		return;
	}
	json_decref(out);
	mx4_apps_show(r);
}

/* nubo's environment states in the v4 words (stopped | running |
 * notdeployed). */
static const char *
mx4_state(const char *s)
{
	if (s == NULL || strcmp(s, "notdeployed") == 0)
		return "notdeployed";
	if (strcmp(s, "running") == 0 || strcmp(s, "degraded") == 0 ||
	    strcmp(s, "stopping") == 0)
		return "running";
	return "stopped";
}

/* The deployed package of an environment, in v4 fields (null: none). */
static json_t *
mx4_package(struct preq *r, json_t *e, const char *app_uuid)
{
	json_t *p;

	if (!json_is_string(json_object_get(e, "package")))
		return json_null();
	http_param_set(r->http, "package", jsonx_str(e, "package"));
	if (mx_call(r, packages_app_show, NULL, &p) / 100 != 2)
		return json_null();
	e = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:n,s:s,s:s?,s:I}",
	    "id", jsonx_str(p, "id"),
	    "appId", app_uuid,
	    "modelVersion", jsonx_str(p, "version") ? jsonx_str(p, "version")
	    : "",
	    "runtimeVersion", "",
	    "createdOn", jsonx_str(p, "uploaded_at"),
	    "expiresOn",
	    "description", "",
	    "fileName", jsonx_str(p, "file_name"),
	    "fileSize", (json_int_t)jsonx_int(p, "size", 0));
	json_decref(p);
	return e;
}

/* An environment (nubo's JSON) in v4 fields, its package with
 * expand=package. The route is app-member level, the package nubo's
 * transport level (packages_app_show): a face route has the level of the
 * nubo route it runs (docs/MENDIX-API.md), so the package is expanded
 * only for a caller with the transport permission on this environment
 * and left out for others — the field is absent, not null (null says
 * that nothing is deployed). */
static json_t *
mx4_env(struct preq *r, json_t *e)
{
	const char *name = jsonx_str(e, "name");
	const char *expand = preq_query(r, "expand");
	json_t *row = store_row(r->db, "SELECT e.uuid, e.id, a.uuid AS app"
	    " FROM environments e, apps a WHERE a.id = ?3 AND e.name = ?1 AND"
	    " ((e.node_id = ?2 AND e.app_id IS NULL) OR e.app_id = ?3)", "sii",
	    name, r->node_id, r->app_id);
	json_t *out;

	out = json_pack("{s:s?,s:s?,s:s,s:s,s:b,s:s,s:s,s:s,s:I}",
	    "id", jsonx_str(row, "uuid"),
	    "appId", jsonx_str(row, "app"),
	    "name", name,
	    "state", mx4_state(jsonx_str(e, "state")),
	    "isProduction", strcasecmp(name, "Production") == 0,
	    "url", jsonx_str(e, "url") ? jsonx_str(e, "url") : "",
	    "dbVersion", "",
	    "planName", jsonx_str(e, "generation") ? jsonx_str(e,
	    "generation") : "",
	    "index", (json_int_t)jsonx_int(row, "id", 0));
	if (expand && strcmp(expand, "package") == 0 &&
	    auth_has(r, "transport", name))
		json_object_set_new(out, "package", mx4_package(r, e,
		    jsonx_str(row, "app")));
	json_decref(row);
	return out;
}

/* The order of GET environments (qsort_r: handlers run on several
 * threads). */
struct mx4_sort {
	const char	*key;		/* name | index */
	int		 desc;
};

static int
mx4_env_cmp(const void *a, const void *b, void *arg)
{
	const struct mx4_sort *o = arg;
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int c;

	if (strcmp(o->key, "name") == 0)
		c = strcasecmp(jsonx_str(x, "name"), jsonx_str(y, "name"));
	else
		c = (jsonx_int(x, "index", 0) > jsonx_int(y, "index", 0)) -
		    (jsonx_int(x, "index", 0) < jsonx_int(y, "index", 0));
	return o->desc ? -c : c;
}

/* GET /api/v4/apps/{appId}/environments?offset=&limit=&sort=&expand= */
void
mx4_envs_list(struct preq *r)
{
	const char *sort = preq_query(r, "sort");
	struct mx4_sort order = { "index", 0 };
	json_t *out, *items, *e, **v;
	long long offset, limit;
	size_t i, n;

	if (mx4_page(r, &offset, &limit) == -1)
		return;
	if (sort) {
		order.key = sort;
		if (*order.key == '-' || *order.key == '+')
			order.desc = *order.key++ == '-';
		if (strcmp(order.key, "name") != 0 &&
		    strcmp(order.key, "index") != 0) {
			reply_error(r, 400, "INVALID_PARAMETERS", "'sort' must "
			    "be name or index (-name, -index: descending)");
			return;
		}
	}
	if (mx_call(r, envs_list, NULL, &out) / 100 != 2) {
		mx_reply_captured(r);
		return;
	}
	n = json_array_size(json_object_get(out, "environments"));
	v = xcalloc(n ? n : 1, sizeof(json_t *));
	json_array_foreach(json_object_get(out, "environments"), i, e)
		v[i] = mx4_env(r, e);
	qsort_r(v, n, sizeof(json_t *), mx4_env_cmp, &order);
	items = json_array();
	for (i = 0; i < n; i++) {
		json_object_del(v[i], "index");
		json_array_append_new(items, v[i]);
	}
	free(v);
	json_decref(out);
	mx4_reply_page(r, "environments", items, offset, limit);
}

/* GET /api/v4/apps/{appId}/environments/{environmentId}?expand= */
void
mx4_envs_show(struct preq *r)
{
	json_t *e, *out;

	if (mx_call(r, envs_show, NULL, &e) / 100 != 2) {
		mx_reply_captured(r);
		return;
	}
	out = mx4_env(r, e);
	json_object_del(out, "index");
	reply(r, 200, out);
	json_decref(e);
}

/* The v4 permissions and nubo's (canViewAlerts: nubo has no alerts; the
 * logs permission answers for both, docs/MENDIX-API.md). */
static const char *const mx4_perms[][2] = {
	{ "canDeployApp", "transport" },
	{ "canManageBackups", "backups" },
	{ "canViewAlerts", "logs" },
	{ "canViewLogs", "logs" },
	{ "canManagePrivileges", "manage" },
};
#define MX4_NPERMS (sizeof mx4_perms / sizeof mx4_perms[0])

/* 1 when the list of environments (["*"] or names) holds env. */
static int
mx4_holds(json_t *list, const char *env)
{
	json_t *v;
	size_t i;

	json_array_foreach(list, i, v)
		if (strcmp(json_string_value(v), "*") == 0 ||
		    strcasecmp(json_string_value(v), env) == 0)
			return 1;
	return 0;
}

/* 1 when the list is ["*"]: every environment. */
static int
mx4_all(json_t *list)
{
	json_t *v;
	size_t i;

	json_array_foreach(list, i, v)
		if (strcmp(json_string_value(v), "*") == 0)
			return 1;
	return 0;
}

/* One member (nubo's JSON) as a v4 permission on {env}. */
static json_t *
mx4_permission(struct preq *r, json_t *m)
{
	json_t *perms = json_object_get(m, "permissions");
	json_t *out = json_pack("{s:{s:s},s:s}", "member", "userId",
	    jsonx_str(m, "email"), "canAccessAPI", "true");
	size_t k;

	for (k = 0; k < MX4_NPERMS; k++)
		json_object_set_new(out, mx4_perms[k][0], json_string(
		    mx4_holds(json_object_get(perms, mx4_perms[k][1]), r->env) ?
		    "true" : "false"));
	return out;
}

/* The members (nubo's members list); NULL after replying. */
static json_t *
mx4_members(struct preq *r)
{
	json_t *out;

	if (mx_call(r, members_list, NULL, &out) / 100 != 2) {
		mx_reply_captured(r);
		return NULL;
	}
	return out;
}

/* The permissions on {env} of every member of the app. */
static json_t *
mx4_permissions(struct preq *r, json_t *members)
{
	json_t *items = json_array(), *m;
	size_t i;

	json_array_foreach(json_object_get(members, "members"), i, m)
		json_array_append_new(items, mx4_permission(r, m));
	return items;
}

/* GET …/environments/{environmentId}/permissions?userId=&offset=&limit= */
void
mx4_permissions_show(struct preq *r)
{
	const char *only = preq_query(r, "userId");
	long long offset, limit;
	json_t *members, *items, *m, *tc = NULL;
	size_t i;

	if (mx4_page(r, &offset, &limit) == -1 ||
	    (members = mx4_members(r)) == NULL)
		return;
	items = json_array();
	json_array_foreach(json_object_get(members, "members"), i, m) {
		if (json_is_true(json_object_get(m, "technical_contact")))
			tc = m;
		if (only && strcasecmp(only, jsonx_str(m, "email")) != 0)
			continue;
		json_array_append_new(items, mx4_permission(r, m));
	}
	m = json_array();
	for (i = (size_t)offset; i < json_array_size(items) &&
	    i < (size_t)(offset + limit); i++)
		json_array_append(m, json_array_get(items, i));
	reply(r, 200, json_pack("{s:{s:s?,s:s?},s:o,s:{s:I,s:I,s:I}}",
	    "technicalContact", "userId", tc ? jsonx_str(tc, "email") : NULL,
	    "name", tc ? jsonx_str(tc, "name") : NULL, "permissions", m,
	    "pagination", "offset", (json_int_t)offset, "limit",
	    (json_int_t)limit, "size", (json_int_t)json_array_size(m)));
	json_decref(items);
	json_decref(members);
}

/* The member's nubo permissions with the v4 flags of patch applied on
 * {env}: a new {perm: [envs]} (a "*" that loses env becomes the app's
 * other environments). NULL after replying 400. */
static json_t *
mx4_apply(struct preq *r, json_t *member, json_t *patch, json_t *envs)
{
	json_t *perms = json_deep_copy(json_object_get(member, "permissions"));
	json_t *list, *v, *next;
	const char *perm;
	size_t k, i;
	int on;

	for (k = 0; k < MX4_NPERMS; k++) {
		v = json_object_get(patch, mx4_perms[k][0]);
		if (v == NULL)
			continue;
		on = json_is_true(v);
		/* canViewAlerts and canViewLogs are one permission here */
		if (k == 2 && json_object_get(patch, "canViewLogs") &&
		    json_is_true(json_object_get(patch, "canViewLogs")) != on) {
			reply_error(r, 400, "INVALID_PARAMETERS", "'canViewAlerts'"
			    " and canViewLogs differ: nubo's logs permission "
			    "gives both");
			json_decref(perms);
			return NULL;
		}
		perm = mx4_perms[k][1];
		list = json_object_get(perms, perm);
		if (list == NULL)
			continue;
		if (on == mx4_holds(list, r->env))
			continue;
		next = json_array();
		if (on) {
			json_array_extend(next, list);
			json_array_append_new(next, json_string(r->env));
		} else if (mx4_all(list)) {
			/* held on every environment ("*"): now on the others */
			json_array_foreach(envs, i, v)
				if (strcmp(jsonx_str(v, "name"), r->env) != 0)
					json_array_append_new(next, json_string(
					    jsonx_str(v, "name")));
		} else {
			json_array_foreach(list, i, v)
				if (strcasecmp(json_string_value(v), r->env) !=
				    0)
					json_array_append(next, v);
		}
		json_object_set_new(perms, perm, next);
	}
	return perms;
}

/* PATCH …/permissions {permissions: [{member: {userId}, canDeployApp?,
 * …}]}: each member's permissions on {env} through nubo's PUT of the
 * member's permissions (the grant rules), member by member. */
void
mx4_permissions_patch(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "permissions", JT_ARRAY, 1 }, { NULL } };
	static const struct jfield item_fields[] = {
		{ "member", JT_OBJECT, 1 }, { "canDeployApp", JT_BOOL, 0 },
		{ "canManageBackups", JT_BOOL, 0 }, { "canViewAlerts", JT_BOOL, 0 },
		{ "canAccessAPI", JT_BOOL, 0 }, { "canViewLogs", JT_BOOL, 0 },
		{ "canManagePrivileges", JT_BOOL, 0 }, { NULL } };
	json_t *members = NULL, *envs = NULL, *it, *m, *found, *perms, *out;
	char *cause = NULL;
	const char *user;
	size_t i, j;

	if (body_check(r, fields) == -1)
		return;
	json_array_foreach(json_object_get(r->body, "permissions"), i, it) {
		if (jsonx_check(it, item_fields, &cause) == -1 ||
		    jsonx_str(json_object_get(it, "member"), "userId") == NULL) {
			reply_error(r, 400, "INVALID_PARAMETERS", "permissions"
			    "[%zu]: %s", i, cause ? cause : "missing field "
			    "'member.userId'");
			free(cause);
			return;
		}
		if (json_is_false(json_object_get(it, "canAccessAPI"))) {
			reply_error(r, 400, "INVALID_PARAMETERS", "permissions"
			    "[%zu]: 'canAccessAPI' cannot be false: in nubo "
			    "every member may use the API with a key", i);
			return;
		}
	}
	envs = store_rows(r->db, "SELECT name FROM environments WHERE"
	    " (node_id = ? AND app_id IS NULL) OR app_id = ? ORDER BY id",
	    "ii", r->node_id, r->app_id);
	json_array_foreach(json_object_get(r->body, "permissions"), i, it) {
		user = jsonx_str(json_object_get(it, "member"), "userId");
		json_decref(members);
		if ((members = mx4_members(r)) == NULL)
			goto out;
		found = NULL;
		json_array_foreach(json_object_get(members, "members"), j, m)
			if (strcasecmp(jsonx_str(m, "email"), user) == 0)
				found = m;
		if (found == NULL) {
			reply_error(r, 404, "MEMBER_NOT_FOUND", "'%s' is not a "
			    "member of app '%s'", user, preq_param(r, "app"));
			goto out;
		}
		if ((perms = mx4_apply(r, found, it, envs)) == NULL)
			goto out;
		http_param_set(r->http, "user", user);
		if (mx_call(r, members_set_permissions, json_pack("{s:o}",
		    "permissions", perms), &out) / 100 != 2) {
			mx_reply_captured(r);
			goto out;
		}
		json_decref(out);
	}
	json_decref(members);
	if ((members = mx4_members(r)) == NULL)
		goto out;
	reply(r, 200, json_pack("{s:o}", "permissions", mx4_permissions(r,
	    members)));
out:
	json_decref(members);
	json_decref(envs);
}
