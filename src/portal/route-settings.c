/* Environment settings routes under /apps/{app}/environments/{env}/settings
 * (SPEC §2 Configuration, seed §3.2.3): show, export, import (PUT of the
 * whole document, all or nothing), partial changes per setting, and diff
 * against another environment. Every write validates against the
 * environment's generation and deployed package; errors name each setting
 * and reason (code SETTINGS_INVALID, details [{setting, reason}]). */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "portal.h"
#include "settings.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* One settings request: the environment and what it validates against. */
struct sctx {
	long long		 env_id;
	char			*generation;
	json_t			*manifest;
	json_t			*current;	/* stored document */
	struct settings_target	 target;
	int			 in_txn;
};

static void
sctx_close(struct preq *r, struct sctx *c)
{
	if (c->in_txn)
		store_rollback(r->db);
	free(c->generation);
	json_decref(c->manifest);
	json_decref(c->current);
}

/* Resolve the environment; for writes, start the transaction so the
 * read-modify-write is atomic. -1 after replying. */
static int
sctx_open(struct preq *r, struct sctx *c, int write)
{
	memset(c, 0, sizeof *c);
	if (settings_seal_init(r->portal->secrets_key) == -1) {
		reply_error(r, 500, "SETTINGS_KEY", "the portal cannot load its "
		    "settings key");
		return -1;
	}
	if (write) {
		if (store_begin(r->db) == -1) {
			reply_store_error(r);
			return -1;
		}
		c->in_txn = 1;
	}
	c->env_id = settings_env_id(r->db, r->node_id, r->app_id, r->env);
	c->generation = c->env_id ? settings_generation(r->db, c->env_id) :
	    NULL;
	if (c->generation == NULL) {
		reply_error(r, 404, "ENVIRONMENT_NOT_FOUND", "no environment "
		    "'%s'", r->env);
		return -1;
	}
	c->manifest = settings_manifest(r->db, c->env_id);
	c->current = settings_load(r->db, c->env_id);
	c->target.generation = c->generation;
	c->target.manifest = c->manifest;
	c->target.current = c->current;
	c->target.now = util_now();
	return 0;
}

/* 400 SETTINGS_INVALID naming every setting and reason. */
static void
reply_invalid(struct preq *r, json_t *errors)
{
	char *text = settings_errors_text(errors);

	reply(r, 400, json_pack("{s:{s:s,s:s,s:O}}", "error", "code",
	    "SETTINGS_INVALID", "message", text, "details", errors));
	free(text);
}

/* The settings as GET /settings shows them (secrets masked). */
static json_t *
settings_view(struct preq *r, long long env_id, const char *generation)
{
	json_t *stored = settings_load(r->db, env_id);
	json_t *row = store_row(r->db, "SELECT e.name AS environment,"
	    " n.name AS node, e.state,"
	    " IFNULL(s.restart_pending, 0) AS restart_pending,"
	    " IFNULL(s.version, 0) AS version, s.updated_at"
	    " FROM environments e JOIN nodes n ON n.id = e.node_id"
	    " LEFT JOIN environment_settings s ON s.environment_id = e.id"
	    " WHERE e.id = ?", "i", env_id);

	if (row == NULL)
		row = json_object();
	json_object_set_new(row, "generation", json_string(generation));
	json_object_set_new(row, "restart_pending", json_boolean(
	    jsonx_int(row, "restart_pending", 0)));
	json_object_set_new(row, "settings", settings_render(stored, 0));
	json_decref(stored);
	return row;
}

/* Save doc (stored form) as the environment's settings, log, commit and
 * reply with the new view. Takes over doc. */
static void
commit_doc(struct preq *r, struct sctx *c, json_t *doc, const char *what)
{
	int restart = settings_restart_needed(c->current, doc), st;
	json_t *errors = json_array();

	st = settings_save(r->db, c->env_id, doc, restart, r->who.user_id,
	    r->portal->cloud_domain, errors);
	if (st == SETTINGS_DOMAIN_TAKEN || st == SETTINGS_DOMAIN_RESERVED) {
		/* 409 naming each domain and what holds it */
		char *text = settings_errors_text(errors);

		reply(r, 409, json_pack("{s:{s:s,s:s,s:O}}", "error", "code",
		    st == SETTINGS_DOMAIN_TAKEN ? "DOMAIN_TAKEN" :
		    "DOMAIN_RESERVED", "message", text, "details", errors));
		free(text);
		goto out;
	}
	if (st != 0) {
		reply_store_error(r);
		goto out;
	}
	activity_log(r, "settings.change", "%s of environment '%s'%s", what,
	    r->env, restart ? " (restart pending)" : "");
	if (store_commit(r->db) == -1) {
		c->in_txn = 0;
		reply_store_error(r);
		goto out;
	}
	c->in_txn = 0;
	reply(r, 200, settings_view(r, c->env_id, c->generation));
out:
	json_decref(errors);
	json_decref(doc);
}

/* Set section to val (stored form) in a copy of the current document;
 * an empty object or null removes the section. */
static json_t *
doc_with(struct sctx *c, const char *section, json_t *val)
{
	json_t *doc = json_deep_copy(c->current);

	if (val == NULL || json_is_null(val) || (json_is_object(val) &&
	    json_object_size(val) == 0))
		json_object_del(doc, section);
	else
		json_object_set(doc, section, val);
	return doc;
}

/* Normalise {name: input} for a map section and merge the result into the
 * current section; NULL (after replying) when invalid or too many. */
static json_t *
merge_item(struct preq *r, struct sctx *c, const char *section,
    const char *name, json_t *input)
{
	json_t *errors = json_array(), *one = json_object(), *norm, *sec;
	const char *k;
	json_t *v;

	json_object_set(one, name, input);
	norm = settings_normalize_section(&c->target, section, one, errors);
	json_decref(one);
	if (norm == NULL) {
		reply_invalid(r, errors);
		json_decref(errors);
		return NULL;
	}
	sec = json_object_get(c->current, section);
	sec = json_is_object(sec) ? json_deep_copy(sec) : json_object();
	json_object_foreach(norm, k, v)
		json_object_set(sec, k, v);
	json_decref(norm);
	if (json_object_size(sec) > NUBO_SETTINGS_ITEMS_MAX) {
		settings_error(errors, section, "has more than %d entries",
		    NUBO_SETTINGS_ITEMS_MAX);
		reply_invalid(r, errors);
		json_decref(errors);
		json_decref(sec);
		return NULL;
	}
	json_decref(errors);
	return sec;
}

/* Remove one entry of a map section; 404 when it is not set. */
static void
delete_item(struct preq *r, const char *section, const char *label,
    const char *name)
{
	struct sctx c;
	json_t *sec;

	if (sctx_open(r, &c, 1) == -1)
		goto out;
	sec = json_object_get(c.current, section);
	if (json_object_get(sec, name) == NULL) {
		reply_error(r, 404, "SETTING_NOT_FOUND", "environment '%s' has "
		    "no %s '%s'", r->env, label, name);
		goto out;
	}
	sec = json_deep_copy(sec);
	json_object_del(sec, name);
	{
		char *what = xasprintf("removed %s '%s'", label, name);

		commit_doc(r, &c, doc_with(&c, section, sec), what);
		free(what);
	}
	json_decref(sec);
out:
	sctx_close(r, &c);
}

/* PUT of one entry of a map section with body field `field` as input. */
static void
put_item(struct preq *r, const char *section, const char *label,
    const char *name, json_t *input)
{
	struct sctx c;
	json_t *sec;
	char *what;

	if (sctx_open(r, &c, 1) == -1)
		goto out;
	if ((sec = merge_item(r, &c, section, name, input)) == NULL)
		goto out;
	what = xasprintf("set %s '%s'", label, name);
	commit_doc(r, &c, doc_with(&c, section, sec), what);
	free(what);
	json_decref(sec);
out:
	sctx_close(r, &c);
}

/* GET /settings */
void
settings_show(struct preq *r)
{
	struct sctx c;

	if (sctx_open(r, &c, 0) == 0)
		reply(r, 200, settings_view(r, c.env_id, c.generation));
	sctx_close(r, &c);
}

/* GET /settings/export[?secrets=include]: the whole configuration as one
 * document (docs/FORMATS.md). Secrets only for the app's Technical
 * Contact or a platform admin, and never to a read-only key. */
void
settings_export(struct preq *r)
{
	const char *q = preq_query(r, "secrets");
	struct sctx c;
	json_t *doc, *src;
	int include;
	char now[32];

	if (q && strcmp(q, "include") != 0 && strcmp(q, "mask") != 0) {
		reply_error(r, 400, "BAD_REQUEST", "secrets must be 'include' or "
		    "'mask'");
		return;
	}
	include = q && strcmp(q, "include") == 0;
	if (include && r->who.read_only) {
		reply_error(r, 403, "KEY_READ_ONLY", "a read-only API key "
		    "never reveals secrets");
		return;
	}
	if (include && !r->who.is_admin && !auth_is_app_tc(r, r->app_id)) {
		reply_error(r, 403, "FORBIDDEN", "only the app's Technical "
		    "Contact may export secrets");
		return;
	}
	if (sctx_open(r, &c, 0) == -1)
		goto out;
	util_time_iso(util_now(), now, sizeof now);
	src = store_row(r->db, "SELECT a.subdomain AS app, e.name AS"
	    " environment, n.name AS node FROM environments e JOIN nodes n ON"
	    " n.id = e.node_id, apps a WHERE e.id = ? AND a.id = ?", "ii",
	    c.env_id, r->app_id);
	doc = json_pack("{s:s,s:s,s:o,s:s,s:s}", "format", SETTINGS_FORMAT,
	    "generation", c.generation, "source", src ? src : json_object(),
	    "exported_at", now, "secrets", include ? "included" : "masked");
	src = settings_render(c.current, include);
	json_object_update(doc, src);
	json_decref(src);
	if (include)
		activity_log(r, "settings.export", "exported settings of "
		    "environment '%s' with secrets", r->env);
	reply(r, 200, doc);
out:
	sctx_close(r, &c);
}

/* PUT /settings: import a whole document; the environment's settings
 * become exactly the document (sections left out are cleared), validated
 * against this environment's generation and package, all or nothing. A
 * document from a v3 environment is translated to v4 first. */
void
settings_import(struct preq *r)
{
	json_t *errors = json_array(), *doc = NULL, *norm;
	const char *from = jsonx_str(r->body, "generation");
	struct sctx c;

	if (sctx_open(r, &c, 1) == -1)
		goto out;
	if (from && strcmp(from, "v3") == 0 && strcmp(c.generation, "v4") == 0)
		doc = settings_translate(r->body, "v3", "v4", errors);
	else
		doc = json_incref(r->body);
	norm = doc ? settings_normalize(&c.target, doc, errors) : NULL;
	if (norm == NULL) {
		reply_invalid(r, errors);
		goto out;
	}
	commit_doc(r, &c, norm, "imported settings");
out:
	json_decref(doc);
	json_decref(errors);
	sctx_close(r, &c);
}

/* PATCH /settings: replace the sections given (null clears one). */
void
settings_patch(struct preq *r)
{
	json_t *errors = json_array(), *doc = NULL, *v;
	const char *k;
	struct sctx c;

	if (sctx_open(r, &c, 1) == -1)
		goto out;
	doc = json_deep_copy(c.current);
	json_object_foreach(r->body, k, v) {
		json_t *norm;

		if (!settings_section_known(k)) {
			settings_error(errors, k, "unknown setting");
			continue;
		}
		if (json_is_null(v)) {
			json_object_del(doc, k);
			continue;
		}
		norm = settings_normalize_section(&c.target, k, v, errors);
		if (norm && !json_is_null(norm) && !(json_is_object(norm) &&
		    json_object_size(norm) == 0))
			json_object_set(doc, k, norm);
		else if (norm)
			json_object_del(doc, k);
		json_decref(norm);
	}
	if (json_array_size(errors)) {
		reply_invalid(r, errors);
		goto out;
	}
	commit_doc(r, &c, doc, "changed settings");
	doc = NULL;
out:
	json_decref(doc);
	json_decref(errors);
	sctx_close(r, &c);
}

/* PUT /settings/constants/{name} {value} */
void
settings_constant_put(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "value", JT_STRING, 1 }, { NULL } };

	if (body_check(r, fields) == -1)
		return;
	put_item(r, "constants", "constant", preq_param(r, "name"),
	    json_object_get(r->body, "value"));
}

/* DELETE /settings/constants/{name}: back to the package's default. */
void
settings_constant_delete(struct preq *r)
{
	delete_item(r, "constants", "constant", preq_param(r, "name"));
}

/* PUT /settings/scheduled-events/{name} {enabled} */
void
settings_event_put(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "enabled", JT_BOOL, 1 }, { NULL } };

	if (body_check(r, fields) == -1)
		return;
	put_item(r, "scheduled_events", "scheduled event",
	    preq_param(r, "name"), json_object_get(r->body, "enabled"));
}

/* PUT /settings/domains/{domain} {certificate, private_key}, or {}: the
 * node obtains a certificate by ACME */
void
settings_domain_put(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "certificate", JT_STRING, 0 }, { "private_key", JT_STRING, 0 },
		{ NULL } };

	if (body_check(r, fields) == -1)
		return;
	put_item(r, "domains", "custom domain", preq_param(r, "domain"),
	    r->body);
}

/* DELETE /settings/domains/{domain} */
void
settings_domain_delete(struct preq *r)
{
	char *d = settings_domain_canon(preq_param(r, "domain"));

	delete_item(r, "domains", "custom domain", d);
	free(d);
}

/* PUT /settings/headers/{header} {value} */
void
settings_header_put(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "value", JT_STRING, 1 }, { NULL } };
	struct sctx c;
	const char *name = preq_param(r, "header");
	json_t *errors = json_array(), *one, *norm, *sec;
	const char *k;
	json_t *v;

	memset(&c, 0, sizeof c);
	if (body_check(r, fields) == -1 || sctx_open(r, &c, 1) == -1)
		goto out;
	one = json_pack("{s:O}", name, json_object_get(r->body, "value"));
	norm = settings_normalize_section(&c.target, "headers", one, errors);
	json_decref(one);
	if (norm == NULL) {
		reply_invalid(r, errors);
		goto out;
	}
	/* replace any other spelling of the same header */
	sec = json_deep_copy(json_object_get(c.current, "headers"));
	if (sec == NULL)
		sec = json_object();
	json_object_foreach(norm, k, v)
		json_object_set(sec, k, v);
	json_decref(norm);
	commit_doc(r, &c, doc_with(&c, "headers", sec), "set a response "
	    "header");
	json_decref(sec);
out:
	json_decref(errors);
	sctx_close(r, &c);
}

/* DELETE /settings/headers/{header} */
void
settings_header_delete(struct preq *r)
{
	const char *name = preq_param(r, "header");
	struct sctx c;
	json_t *sec;
	const char *k, *found = NULL;
	json_t *v;

	if (sctx_open(r, &c, 1) == -1)
		goto out;
	sec = json_object_get(c.current, "headers");
	json_object_foreach(sec, k, v)
		if (strcasecmp(k, name) == 0)
			found = k;
	if (found == NULL) {
		reply_error(r, 404, "SETTING_NOT_FOUND", "environment '%s' sets "
		    "no header '%s'", r->env, name);
		goto out;
	}
	sec = json_deep_copy(sec);
	json_object_del(sec, found);
	commit_doc(r, &c, doc_with(&c, "headers", sec), "removed a response "
	    "header");
	json_decref(sec);
out:
	sctx_close(r, &c);
}

/* PUT /settings/env-vars/{name} {value, secret?} */
void
settings_env_var_put(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "value", JT_STRING, 1 }, { "secret", JT_BOOL, 0 }, { NULL } };

	if (body_check(r, fields) == -1)
		return;
	put_item(r, "env_vars", "environment variable", preq_param(r, "name"),
	    r->body);
}

/* DELETE /settings/env-vars/{name} */
void
settings_env_var_delete(struct preq *r)
{
	delete_item(r, "env_vars", "environment variable",
	    preq_param(r, "name"));
}

/* Normalise a whole section from the body and store it. */
static void
put_section(struct preq *r, const char *section, json_t *input,
    const char *what)
{
	json_t *errors = json_array(), *norm;
	struct sctx c;

	if (sctx_open(r, &c, 1) == -1)
		goto out;
	norm = settings_normalize_section(&c.target, section, input, errors);
	if (norm == NULL) {
		reply_invalid(r, errors);
		goto out;
	}
	commit_doc(r, &c, doc_with(&c, section, norm), what);
	json_decref(norm);
out:
	json_decref(errors);
	sctx_close(r, &c);
}

/* PUT /settings/access {profiles, paths}: the access restriction profiles
 * and which applies where ("/" = the whole environment; other paths v4). */
void
settings_access_put(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "profiles", JT_OBJECT, 0 }, { "paths", JT_OBJECT, 0 },
		{ NULL } };

	if (body_check(r, fields) == -1)
		return;
	put_section(r, "access", r->body, "set access restrictions");
}

/* PUT /settings/headers {Name: value, …}: all response headers. */
void
settings_headers_put(struct preq *r)
{
	put_section(r, "headers", r->body, "set response headers");
}

/* PATCH /settings/runtime {instances?, memory_mb?, settings?: {k: v|null}}:
 * null removes a key. */
void
settings_runtime_patch(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "instances", JT_ANY, 0 }, { "memory_mb", JT_ANY, 0 },
		{ "settings", JT_OBJECT, 0 }, { NULL } };
	json_t *errors = json_array(), *rt = NULL, *v, *s;
	const char *k;
	struct sctx c;

	memset(&c, 0, sizeof c);
	if (body_check(r, fields) == -1 || sctx_open(r, &c, 1) == -1)
		goto out;
	rt = json_deep_copy(json_object_get(c.current, "runtime"));
	if (rt == NULL)
		rt = json_object();
	json_object_foreach(r->body, k, v) {
		if (strcmp(k, "settings") != 0) {
			if (json_is_null(v))
				json_object_del(rt, k);
			else
				json_object_set(rt, k, v);
			continue;
		}
		s = json_object_get(rt, "settings");
		if (s == NULL) {
			s = json_object();
			json_object_set_new(rt, "settings", s);
		}
		{
			const char *sk;
			json_t *sv;

			json_object_foreach(v, sk, sv) {
				if (json_is_null(sv))
					json_object_del(s, sk);
				else
					json_object_set(s, sk, sv);
			}
		}
		if (json_object_size(s) == 0)
			json_object_del(rt, "settings");
	}
	v = settings_normalize_section(&c.target, "runtime", rt, errors);
	if (v == NULL) {
		reply_invalid(r, errors);
		goto out;
	}
	commit_doc(r, &c, doc_with(&c, "runtime", v), "changed runtime "
	    "settings");
	json_decref(v);
out:
	json_decref(rt);
	json_decref(errors);
	sctx_close(r, &c);
}

/* PUT /settings/maintenance-window {day, start, duration_minutes,
 * apply_pending_restarts?} */
void
settings_window_put(struct preq *r)
{
	put_section(r, "maintenance_window", r->body, "set the maintenance "
	    "window");
}

/* DELETE /settings/maintenance-window */
void
settings_window_delete(struct preq *r)
{
	struct sctx c;

	if (sctx_open(r, &c, 1) == -1)
		goto out;
	if (json_object_get(c.current, "maintenance_window") == NULL) {
		reply_error(r, 404, "SETTING_NOT_FOUND", "environment '%s' has "
		    "no maintenance window", r->env);
		goto out;
	}
	commit_doc(r, &c, doc_with(&c, "maintenance_window", NULL),
	    "removed the maintenance window");
out:
	sctx_close(r, &c);
}

/* GET /settings/diff?app=OTHER&env=OTHER_ENV: compare this environment (a)
 * with another one (b), on any node and generation. The caller needs the
 * settings permission on both; an app the caller cannot see is 404 like
 * one that does not exist. */
void
settings_diff_route(struct preq *r)
{
	const char *oapp = preq_query(r, "app"), *oenv = preq_query(r, "env");
	long long app_a = r->app_id, app_b, node_b, env_b;
	const char *env_a = r->env;
	struct sctx c;
	json_t *cur_b = NULL, *man_b = NULL, *d;
	char *gen_b = NULL;
	int ok;

	memset(&c, 0, sizeof c);
	if (oapp == NULL || oenv == NULL) {
		reply_error(r, 400, "BAD_REQUEST", "diff needs ?app=APP&env=ENV "
		    "of the other environment");
		return;
	}
	if (sctx_open(r, &c, 0) == -1)
		goto out;
	/* an app or environment the caller cannot see answers as one that
	 * does not exist: a diff must not tell who has which */
	app_b = apps_find(r->db, oapp);
	if (app_b == 0 || !auth_can_see_app(r, app_b)) {
		reply_error(r, 404, "APP_NOT_FOUND", "no app '%s'", oapp);
		goto out;
	}
	node_b = store_int(r->db, 0, "SELECT id FROM nodes WHERE app_id = ?",
	    "i", app_b);
	env_b = settings_env_id(r->db, node_b, app_b, oenv);
	if (env_b == 0) {
		reply_error(r, 404, "ENVIRONMENT_NOT_FOUND", "app '%s' has no "
		    "environment '%s'", oapp, oenv);
		goto out;
	}
	r->app_id = app_b;
	ok = auth_has(r, "settings", oenv);
	r->app_id = app_a;
	if (!ok) {
		reply_error(r, 403, "FORBIDDEN", "you lack the 'settings' "
		    "permission on environment '%s' of app '%s'", oenv, oapp);
		goto out;
	}
	gen_b = settings_generation(r->db, env_b);
	cur_b = settings_load(r->db, env_b);
	man_b = settings_manifest(r->db, env_b);
	d = settings_diff(c.current, c.generation, c.manifest, cur_b,
	    gen_b ? gen_b : "v4", man_b);
	json_object_set_new(d, "a", json_pack("{s:s,s:s,s:s}", "app",
	    preq_param(r, "app"), "environment", env_a, "generation",
	    c.generation));
	json_object_set_new(d, "b", json_pack("{s:s,s:s,s:s}", "app", oapp,
	    "environment", oenv, "generation", gen_b ? gen_b : "?"));
	reply(r, 200, d);
out:
	free(gen_b);
	json_decref(cur_b);
	json_decref(man_b);
	sctx_close(r, &c);
}
