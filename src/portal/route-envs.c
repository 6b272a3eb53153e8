/* Environments (SPEC §2 Environments): list, show, and the actions —
 * start, stop, restart, clean, transport, scale, maintenance — which run as
 * jobs that push the desired spec to the node and then ask it to act. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobs.h"
#include "nodeclient.h"
#include "portal.h"
#include "settings.h"
#include "store.h"
#include "util.h"
#include "waits.h"
#include "xmalloc.h"

/* Longest a start (or scale) may take before the job gives up waiting; the
 * node itself fails a start after its own start timeout. */
#define ENVS_JOB_WAIT_MAX	900
/* Longest a node's stop grace may be (an instance restarting onto a new
 * memory limit is stopped first). */
#define ENVS_STOP_GRACE_MAX	30
/* How long a signed URL of a day's log is valid. */
#define ENVS_LOG_URL_TTL	3600
/* A migration's target environment serves the original app (its
 * hostnames) once that environment's own cutover took its route step —
 * not before: the cutover goes environment by environment, and until its
 * turn the source serves them (migrate-steps.c). */
#define ENV_ROUTED_APP \
	"(SELECT ma.subdomain FROM migrations m JOIN apps ma ON ma.id =" \
	" m.app_id WHERE m.target_node_id = n.id AND m.serving = 'target'" \
	" AND e.app_id IS NULL AND EXISTS (SELECT 1 FROM migration_steps st" \
	" WHERE st.migration_id = m.id AND st.phase = 'cutover' AND" \
	" st.name = 'route' AND st.state = 'done' AND st.environment =" \
	" e.name COLLATE NOCASE))"
/* The app an environment serves: its own (sandbox), the original app of
 * a migration routed to it, or the node's linked app; a sandbox deploys
 * from its app's package repository (its uuid). `stand_in`: it serves a
 * migration's temporary app, under that app's hostname only. */
#define ENV_SELECT \
	"SELECT e.id, e.name, e.state, e.package, e.instances, e.memory_mb," \
	" e.maintenance, e.status_json, n.name AS node, n.id AS node_id," \
	" sa.uuid AS repository," \
	" n.generation, n.router, n.router_tls, n.last_seen_at," \
	" COALESCE(sa.subdomain, " \
	ENV_ROUTED_APP ", la.subdomain) AS app, (e.app_id IS NULL AND" \
	" EXISTS (SELECT 1 FROM migrations m WHERE m.temp_app_id = la.id)" \
	" AND " ENV_ROUTED_APP " IS NULL) AS stand_in" \
	" FROM environments e JOIN nodes n ON n.id = e.node_id" \
	" LEFT JOIN apps sa ON sa.id = e.app_id" \
	" LEFT JOIN apps la ON la.id = n.app_id AND e.app_id IS NULL"

char *
envs_url(const char *router, const char *router_tls, const char *host)
{
	const char *colon = router_tls ? strrchr(router_tls, ':') : router ?
	    strrchr(router, ':') : NULL;

	if (router_tls)
		return xasprintf("https://%s%s", host, strcmp(colon, ":443") ==
		    0 ? "" : colon);
	return xasprintf("http://%s%s", host, colon ? colon : "");
}

/* `<subdomain>-<environment>.<cloud domain>`, lowercase (SPEC §1). */
static char *
envs_hostname(const char *app, const char *env, const char *domain)
{
	char *h = xasprintf("%s-%s.%s", app, env, domain), *p;

	for (p = h; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return h;
}

/* The settings part (settings.c): env (constants, custom variables),
 * scheduled events, domains, access, headers, maintenance window, and the
 * runtime's instances and memory, which `envs scale` writes there too. */
static void
envs_spec_settings(sqlite3 *db, long long env_id, json_t *spec)
{
	json_t *s = settings_node_spec(db, env_id), *v;
	const char *k;

	json_object_foreach(s, k, v) {
		if ((strcmp(k, "instances") == 0 || strcmp(k, "memory_mb") == 0)
		    && !json_is_integer(v))
			continue;	/* not set: the default stays */
		json_object_set(spec, k, v);
	}
	json_decref(s);
}

/* The desired spec of one environment as the node receives it
 * (PUT /agent/v1/environments/{id}). Other areas add their pieces here
 * (settings: constants, env vars, domains, access restrictions, headers). */
static json_t *
envs_spec_from_row(sqlite3 *db, json_t *row, const char *domain)
{
	json_t *spec, *hosts = json_array();
	const char *app = jsonx_str(row, "app");

	if (app) {
		char *h = envs_hostname(app, jsonx_str(row, "name"), domain);

		json_array_append_new(hosts, json_string(h));
		free(h);
	}
	spec = json_pack("{s:I,s:s,s:s?,s:s?,s:s,s:o,s:O,s:I,s:I,s:b,s:{}}",
	    "id", (json_int_t)jsonx_int(row, "id", 0),
	    "name", jsonx_str(row, "name"),
	    "app", app,
	    "repository", jsonx_str(row, "repository"),
	    "generation", jsonx_str(row, "generation"),
	    "hostnames", hosts,
	    "package", json_object_get(row, "package"),
	    "instances", (json_int_t)jsonx_int(row, "instances", 1),
	    "memory_mb", (json_int_t)jsonx_int(row, "memory_mb", 512),
	    "maintenance", (int)jsonx_int(row, "maintenance", 0),
	    "env");
	envs_spec_settings(db, jsonx_int(row, "id", 0), spec);
	/* the custom domains are the original app's: they move with its
	 * hostnames, at the cutover's route step */
	if (jsonx_int(row, "stand_in", 0))
		json_object_del(spec, "domains");
	return spec;
}

json_t *
envs_spec(sqlite3 *db, const char *domain, long long env_id)
{
	json_t *row = store_row(db, ENV_SELECT " WHERE e.id = ?", "i", env_id);
	json_t *spec;

	if (row == NULL)
		return NULL;
	spec = envs_spec_from_row(db, row, domain);
	json_decref(row);
	return spec;
}

/* Every environment of a node, for registration and heartbeats. */
json_t *
envs_specs(sqlite3 *db, const char *domain, long long node_id)
{
	json_t *rows = store_rows(db, ENV_SELECT " WHERE e.node_id = ?"
	    " ORDER BY e.id", "i", node_id), *out = json_array(), *row;
	size_t i;

	json_array_foreach(rows, i, row)
		json_array_append_new(out, envs_spec_from_row(db, row, domain));
	json_decref(rows);
	return out;
}

/* restart_pending and restart_reason of an environment as the API shows
 * it: a new memory limit the node is rolling out to the instances, or
 * settings saved that apply at the next restart. */
static void
envs_json_restart(sqlite3 *db, json_t *row, json_t *out)
{
	json_t *st = json_object_get(row, "status");
	const char *reason = jsonx_str(st, "restart_reason");
	int settings = store_int(db, 0, "SELECT restart_pending FROM"
	    " environment_settings WHERE environment_id = ?", "i",
	    jsonx_int(row, "id", 0)) == 1;

	if (!jsonx_bool(st, "restart_pending", 0))
		reason = NULL;
	if (reason == NULL && settings)
		reason = "settings were changed that apply when the "
		    "environment restarts (nubo envs restart, or its "
		    "maintenance window)";
	json_object_set_new(out, "restart_pending", json_boolean(reason !=
	    NULL));
	json_object_set_new(out, "restart_reason", reason ?
	    json_string(reason) : json_null());
}

/* An environment as the API shows it. */
static json_t *
envs_json(sqlite3 *db, json_t *row, const char *domain)
{
	json_t *st = json_object_get(row, "status");
	const char *app = jsonx_str(row, "app");
	json_t *out, *spec = envs_spec_from_row(db, row, domain);

	out = json_pack("{s:s,s:s,s:s,s:s,s:O,s:I,s:I,s:b,s:O,s:O,s:s?}",
	    "name", jsonx_str(row, "name"),
	    "state", jsonx_str(row, "state"),
	    "node", jsonx_str(row, "node"),
	    "generation", jsonx_str(row, "generation"),
	    "package", json_object_get(row, "package"),
	    "instances", (json_int_t)jsonx_int(spec, "instances", 1),
	    "memory_mb", (json_int_t)jsonx_int(spec, "memory_mb", 512),
	    "maintenance", (int)jsonx_int(row, "maintenance", 0),
	    "running", json_is_object(st) && json_object_get(st, "instances") ?
	    json_object_get(st, "instances") : json_null(),
	    "error", json_is_object(st) && json_object_get(st, "error") ?
	    json_object_get(st, "error") : json_null(),
	    "router", jsonx_str(row, "router"));
	json_object_set_new(out, "router_tls", jsonx_str(row, "router_tls") ?
	    json_string(jsonx_str(row, "router_tls")) : json_null());
	/* degraded: why (the node's database or router is down) */
	json_object_set(out, "reason", json_is_object(st) &&
	    json_object_get(st, "reason") ? json_object_get(st, "reason") :
	    json_null());
	envs_json_restart(db, row, out);
	/* what the node's router could not load of it (the rest is served) */
	json_object_set(out, "router_error", json_is_object(st) &&
	    json_object_get(st, "router_error") ? json_object_get(st,
	    "router_error") : json_null());
	/* the app hostnames' ACME certificate and why its last order failed
	 * (src/node/acme.c) */
	json_object_set(out, "certificate", json_is_object(st) &&
	    json_object_get(st, "certificate") ? json_object_get(st,
	    "certificate") : json_null());
	json_object_set(out, "certificate_error", json_is_object(st) &&
	    json_object_get(st, "certificate_error") ? json_object_get(st,
	    "certificate_error") : json_null());
	if (app) {
		char *h = envs_hostname(app, jsonx_str(row, "name"), domain);
		char *url = envs_url(jsonx_str(row, "router"), jsonx_str(row,
		    "router_tls"), h);

		json_object_set_new(out, "hostname", json_string(h));
		json_object_set_new(out, "url", json_string(url));
		free(url);
		free(h);
	}
	/* the state is the node's last report: say how fresh it is */
	json_object_set(out, "node_seen_at", json_object_get(row,
	    "last_seen_at") ? json_object_get(row, "last_seen_at") :
	    json_null());
	{
		time_t seen;

		json_object_set_new(out, "node_online", json_boolean(
		    jsonx_str(row, "last_seen_at") && util_parse_iso(jsonx_str(
		    row, "last_seen_at"), &seen) == 0 && util_now() - seen <=
		    PORTAL_NODE_FRESH));
	}
	json_decref(spec);
	return out;
}

json_t *
envs_row(struct preq *r)
{
	json_t *row = store_row(r->db, ENV_SELECT " WHERE e.name = ? COLLATE"
	    " NOCASE AND ((e.node_id = ? AND e.app_id IS NULL) OR"
	    " e.app_id = ?)", "sii", r->env, r->node_id, r->app_id);

	if (row == NULL)
		reply_error(r, 404, "ENVIRONMENT_NOT_FOUND", "app has no "
		    "environment '%s'", r->env);
	return row;
}

/* GET /apps/{app}/environments */
void
envs_list(struct preq *r)
{
	json_t *rows = store_rows(r->db, ENV_SELECT " WHERE (e.node_id = ? AND"
	    " e.app_id IS NULL) OR e.app_id = ? ORDER BY e.id", "ii",
	    r->node_id, r->app_id), *out = json_array(), *row;
	size_t i;

	if (rows == NULL) {
		json_decref(out);
		reply_store_error(r);
		return;
	}
	json_array_foreach(rows, i, row)
		json_array_append_new(out, envs_json(r->db, row,
		    r->portal->cloud_domain));
	json_decref(rows);
	reply(r, 200, json_pack("{s:o}", "environments", out));
}

/* GET /apps/{app}/environments/{env} */
void
envs_show(struct preq *r)
{
	json_t *row = envs_row(r);

	if (row == NULL)
		return;
	reply(r, 200, envs_json(r->db, row, r->portal->cloud_domain));
	json_decref(row);
}

static int
state_is_stopped(const char *s)
{
	return strcmp(s, "stopped") == 0 || strcmp(s, "notdeployed") == 0 ||
	    strcmp(s, "failed") == 0;
}

/* 0 when the environment's node has registered its agent (jobs would only
 * fail otherwise); -1 after replying 409. */
static int
envs_node_ready(struct preq *r, json_t *row)
{
	if (store_int(r->db, 0, "SELECT agent_url IS NOT NULL FROM nodes WHERE"
	    " id = ?", "i", jsonx_int(row, "node_id", 0)) == 1)
		return 0;
	reply_error(r, 409, "NODE_NOT_REGISTERED", "node '%s' has not "
	    "registered yet (start 'nubod node' with its token)",
	    jsonx_str(row, "node"));
	return -1;
}

/* Submit an action job on {env}; params gets env_id. For transport and
 * clean the environment must be stopped (SPEC §2). */
static void
envs_action(struct preq *r, const char *kind, const char *verb,
    json_t *params)
{
	static const struct jfield none[] = { { NULL } };
	json_t *row;

	if (params == NULL && body_check(r, none) == -1)
		return;
	row = envs_row(r);

	if (row == NULL) {
		json_decref(params);
		return;
	}
	if (envs_node_ready(r, row) == -1) {
		json_decref(params);
		json_decref(row);
		return;
	}
	if ((strcmp(verb, "transport") == 0 || strcmp(verb, "clean") == 0) &&
	    !state_is_stopped(jsonx_str(row, "state"))) {
		reply_error(r, 409, "ENVIRONMENT_NOT_STOPPED", "cannot %s%s "
		    "'%s': environment is %s", verb,
		    strcmp(verb, "transport") == 0 ? " into" : "",
		    jsonx_str(row, "name"), jsonx_str(row, "state"));
		json_decref(params);
		json_decref(row);
		return;
	}
	if (params == NULL)
		params = json_object();
	json_object_set_new(params, "env_id", json_integer(jsonx_int(row,
	    "id", 0)));
	r->node_id = jsonx_int(row, "node_id", 0);
	activity_log(r, kind, "%s environment '%s'", verb,
	    jsonx_str(row, "name"));
	job_submit_reply(r, kind, jsonx_str(row, "name"), params);
	json_decref(row);
}

void envs_start(struct preq *r) { envs_action(r, "env.start", "start", NULL); }
void envs_stop(struct preq *r) { envs_action(r, "env.stop", "stop", NULL); }
void envs_restart(struct preq *r)
{
	envs_action(r, "env.restart", "restart", NULL);
}

/* POST …/clean: wipe the database and files (stopped only). */
void
envs_clean(struct preq *r)
{
	envs_action(r, "env.clean", "clean", NULL);
}

/* POST …/transport {package} */
void
envs_transport(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "package", JT_STRING, 1 }, { NULL } };
	const char *pkg;

	if (body_check(r, fields) == -1)
		return;
	pkg = jsonx_str(r->body, "package");
	if (*pkg == '\0' || strlen(pkg) > NUBO_NAME_MAX ||
	    strchr(pkg, '/') != NULL) {
		reply_error(r, 400, "INVALID_PACKAGE", "'%s' is not a package "
		    "id", pkg);
		return;
	}
	envs_action(r, "env.transport", "transport", json_pack("{s:s}",
	    "package", pkg));
}

/* PUT …/scale {instances?, memory_mb?}: the runtime settings (v4 only,
 * SPEC §2 Runtime), kept in the environment's settings document so that
 * settings export/import/diff carry them; a running environment is
 * scaled at once by the job. */
void
envs_scale(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "instances", JT_INT, 0 }, { "memory_mb", JT_INT, 0 },
		{ NULL } };
	json_t *row = NULL, *stored = NULL, *rt;
	json_t *n = NULL, *mb = NULL;

	if (body_check(r, fields) == -1 || (row = envs_row(r)) == NULL)
		return;
	n = json_object_get(r->body, "instances");
	mb = json_object_get(r->body, "memory_mb");
	if (n == NULL && mb == NULL) {
		reply_error(r, 400, "BAD_REQUEST", "give instances and/or "
		    "memory_mb");
		goto out;
	}
	if (strcmp(jsonx_str(row, "generation"), "v4") != 0) {
		reply_error(r, 409, "NOT_SUPPORTED_ON_V3", "cannot scale '%s': "
		    "node '%s' is a v3 node (one instance, fixed memory)",
		    jsonx_str(row, "name"), jsonx_str(row, "node"));
		goto out;
	}
	if (n && (json_integer_value(n) < 1 ||
	    json_integer_value(n) > NUBO_INSTANCES_MAX)) {
		reply_error(r, 400, "INVALID_INSTANCES", "instances must be "
		    "1 to %d", NUBO_INSTANCES_MAX);
		goto out;
	}
	if (mb && (json_integer_value(mb) < NUBO_MEMORY_MB_MIN ||
	    json_integer_value(mb) > NUBO_MEMORY_MB_MAX)) {
		reply_error(r, 400, "INVALID_MEMORY", "memory_mb must be %d to "
		    "%d", NUBO_MEMORY_MB_MIN, NUBO_MEMORY_MB_MAX);
		goto out;
	}
	if (envs_node_ready(r, row) == -1)
		goto out;
	if (store_begin(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	stored = settings_load(r->db, jsonx_int(row, "id", 0));
	rt = json_object_get(stored, "runtime");
	if (!json_is_object(rt)) {
		rt = json_object();
		json_object_set_new(stored, "runtime", rt);
	}
	if (n)
		json_object_set(rt, "instances", n);
	if (mb)
		json_object_set(rt, "memory_mb", mb);
	if (settings_save(r->db, jsonx_int(row, "id", 0), stored, 0,
	    r->who.user_id, r->portal->cloud_domain, NULL) != 0 ||
	    store_commit(r->db) == -1) {
		store_rollback(r->db);
		reply_store_error(r);
		goto out;
	}
	envs_action(r, "env.scale", "scale", json_pack("{s:O?,s:O?}",
	    "instances", n, "memory_mb", mb));
out:
	json_decref(stored);
	json_decref(row);
}

/* POST …/maintenance {on}: the router answers 503 with a page. */
void
envs_maintenance(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "on", JT_BOOL, 1 }, { NULL } };
	json_t *row, *spec = NULL, *resp = NULL;
	char *cause = NULL, *path = NULL;
	int on, st;

	if (body_check(r, fields) == -1 || (row = envs_row(r)) == NULL)
		return;
	on = jsonx_bool(r->body, "on", 0);
	if (store_run(r->db, "UPDATE environments SET maintenance = ? WHERE"
	    " id = ?", "ii", (long long)on, jsonx_int(row, "id", 0)) !=
	    STORE_OK) {
		reply_store_error(r);
		goto out;
	}
	/* Push now so the page is up when we answer; the heartbeat would
	 * carry it within seconds anyway. */
	spec = envs_spec(r->db, r->portal->cloud_domain, jsonx_int(row, "id",
	    0));
	path = xasprintf("/agent/v1/environments/%lld", jsonx_int(row, "id",
	    0));
	st = node_call(r->db, jsonx_int(row, "node_id", 0), "PUT", path, spec,
	    &resp, &cause);
	activity_log(r, "env.maintenance", "maintenance %s for '%s'",
	    on ? "on" : "off", jsonx_str(row, "name"));
	json_decref(row);
	row = envs_row(r);
	if (row) {
		json_t *out = envs_json(r->db, row, r->portal->cloud_domain);

		/* not applied yet: the node gets it with its next heartbeat */
		json_object_set_new(out, "applied", json_boolean(st >= 200 &&
		    st < 300));
		if (cause && !(st >= 200 && st < 300))
			json_object_set_new(out, "apply_error",
			    json_string(cause));
		reply(r, 200, out);
	}
out:
	free(cause);
	free(path);
	json_decref(spec);
	json_decref(resp);
	json_decref(row);
}

/* The longest a GET …/logs?wait= is held (seconds), and the time limit
 * of each look at the node meanwhile. */
#define ENVS_LOG_WAIT_MAX	60
#define ENVS_LOG_LOOK_SECS	5

/* 1 when a node's log answer has no text. */
static int
log_empty(json_t *resp)
{
	const char *text = jsonx_str(resp, "text");

	return text == NULL || *text == '\0';
}

/* wait_reply_thread()'s check of a followed log: the node's answer has
 * text (kept as r->wait_data's "answer"), or the node cannot be asked
 * (the last answer stands; the next GET says why). */
static int
envs_log_grown(sqlite3 *db, struct preq *r)
{
	json_t *resp = NULL;
	char *cause = NULL;
	int st = node_call_timeout(db, jsonx_int(r->wait_data, "node", 0),
	    "GET", jsonx_str(r->wait_data, "path"), NULL, &resp, &cause,
	    ENVS_LOG_LOOK_SECS);

	free(cause);
	if (st != 200 || !json_is_object(resp)) {
		json_decref(resp);
		return 1;
	}
	json_object_set_new(r->wait_data, "answer", resp);
	return !log_empty(resp);
}

/* wait_reply_thread()'s continuation: the node's last answer. */
static void
envs_log_answer(struct preq *r)
{
	reply(r, 200, json_incref(json_object_get(r->wait_data, "answer")));
}

/* GET …/logs?offset=N&lines=N[&wait=S]: the app's log from the node;
 * with an offset and wait, held until there is something after the
 * offset, or S seconds (long polling: a followed log shows each line as
 * it comes). */
void
envs_logs(struct preq *r)
{
	json_t *row = envs_row(r), *resp = NULL;
	const char *off = preq_query(r, "offset"), *lines = preq_query(r,
	    "lines"), *inst = preq_query(r, "instance"), *wait =
	    preq_query(r, "wait");
	char *cause = NULL, *path;
	long long o = -1, n = 100, i = 0, secs = 0;
	int st;

	if (row == NULL)
		return;
	if ((off && util_parse_int(off, 0, 1LL << 50, &o) == -1) ||
	    (lines && util_parse_int(lines, 1, NUBO_LOG_LINES_MAX, &n) == -1) ||
	    (inst && util_parse_int(inst, 1, NUBO_INSTANCES_MAX, &i) == -1) ||
	    (wait && (off == NULL || util_parse_int(wait, 1,
	    ENVS_LOG_WAIT_MAX, &secs) == -1))) {
		reply_error(r, 400, "BAD_REQUEST", "offset must be a byte "
		    "offset, lines 1 to %d, instance 1 to %d and wait 1 to %d "
		    "seconds (with an offset)", NUBO_LOG_LINES_MAX,
		    NUBO_INSTANCES_MAX, ENVS_LOG_WAIT_MAX);
		json_decref(row);
		return;
	}
	path = xasprintf("/agent/v1/environments/%lld/logs?lines=%lld"
	    "&offset=%lld%s%.0lld", jsonx_int(row, "id", 0), n, o,
	    i ? "&instance=" : "", i);
	st = node_call(r->db, jsonx_int(row, "node_id", 0), "GET", path, NULL,
	    &resp, &cause);
	if (st == 200 && json_is_object(resp) && secs > 0 &&
	    log_empty(resp)) {
		r->wait_data = json_pack("{s:I,s:s,s:O}", "node",
		    (json_int_t)jsonx_int(row, "node_id", 0), "path", path,
		    "answer", resp);
		wait_reply_thread(r, (int)secs, envs_log_grown,
		    envs_log_answer, NULL);
	} else if (st == 200 && resp) {
		reply(r, 200, json_incref(resp));
	} else {
		reply_error(r, 502, "NODE_UNAVAILABLE", "cannot read the logs "
		    "of '%s': %s", jsonx_str(row, "name"), cause ? cause : "?");
	}
	json_decref(resp);
	json_decref(row);
	free(cause);
	free(path);
}

/* A signed URL, valid an hour, of a day's lines of a log of {env} on the
 * node: what is "logs" (the app log) or "access-logs" (the router's). */
static void
envs_log_url(struct preq *r, const char *what)
{
	const char *day = preq_param(r, "date");
	json_t *row;
	char *path, *url, *cause = NULL, when[32];
	int i, ok = day && strlen(day) == 10;

	for (i = 0; ok && i < 10; i++)
		ok = i == 4 || i == 7 ? day[i] == '-' : isdigit((unsigned char)
		    day[i]) != 0;
	if (!ok) {
		reply_error(r, 400, "BAD_REQUEST", "'%s' is not a date "
		    "YYYY-MM-DD", day ? day : "");
		return;
	}
	if ((row = envs_row(r)) == NULL)
		return;
	path = xasprintf("/agent/v1/environments/%lld/%s/%s", jsonx_int(row,
	    "id", 0), what, day);
	url = node_signed_url(r->db, jsonx_int(row, "node_id", 0), "GET", path,
	    r->who.user_id, ENVS_LOG_URL_TTL, &cause);
	if (url == NULL) {
		reply_error(r, 503, "NODE_UNREACHABLE", "%s", cause);
	} else {
		util_time_iso(util_now() + ENVS_LOG_URL_TTL, when, sizeof when);
		reply(r, 200, json_pack("{s:s,s:s,s:s,s:s}", "environment",
		    jsonx_str(row, "name"), "date", day, "url", url,
		    "expires_at", when));
	}
	free(url);
	free(cause);
	free(path);
	json_decref(row);
}

/* GET …/logs/{date}: the app log's lines of that day (UTC; the Mendix
 * Deploy API's logs/{date}) */
void
envs_logs_day(struct preq *r)
{
	envs_log_url(r, "logs");
}

/* GET …/access-logs/{date}: the router's access log lines of that day */
void
envs_access_logs_day(struct preq *r)
{
	envs_log_url(r, "access-logs");
}

/* What the portal keeps of a node's report on one environment
 * (environments.status_json; heartbeats and jobs). */
json_t *envs_status(json_t *node_env);
json_t *
envs_status(json_t *e)
{
	return json_pack("{s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:b,s:O?}",
	    "certificate", json_object_get(e, "certificate"),
	    "certificate_error", json_object_get(e, "certificate_error"),
	    "instances", json_object_get(e, "instances"),
	    "package", json_object_get(e, "package"),
	    "error", json_object_get(e, "error"),
	    "router_error", json_object_get(e, "router_error"),
	    "reason", json_object_get(e, "reason"),
	    "restart_pending", jsonx_bool(e, "restart_pending", 0),
	    "restart_reason", json_object_get(e, "restart_reason"));
}

/* Mirror the node's answer about one environment into the store. */
static void
envs_mirror(sqlite3 *db, long long env_id, json_t *e)
{
	json_t *st;

	if (!json_is_object(e) || jsonx_str(e, "state") == NULL)
		return;
	st = envs_status(e);
	/* written only when it changed: a wait polls it often */
	store_run(db, "UPDATE environments SET state = ?1, status_json = ?2"
	    " WHERE id = ?3 AND (state IS NOT ?1 OR status_json IS NOT ?2)",
	    "sji", jsonx_str(e, "state"), st, env_id);
	json_decref(st);
}

/* The node's state of the environment, mirrored into the store: 0 with
 * *e, or -1 with *cause when the node cannot say or says it failed. */
static int
envs_poll(struct job *j, long long env_id, const char *path, json_t **e,
    char **cause)
{
	const char *s;

	*e = NULL;
	if (node_call(j->db, j->node_id, "GET", path, NULL, e, cause) != 200) {
		json_decref(*e);
		*e = NULL;
		return -1;
	}
	envs_mirror(j->db, env_id, *e);
	s = jsonx_str(*e, "state");
	if (s && strcmp(s, "failed") == 0) {
		*cause = xstrdup(jsonx_str(*e, "error") ? jsonx_str(*e,
		    "error") : "the environment failed");
		json_decref(*e);
		*e = NULL;
		return -1;
	}
	return 0;
}

/* Poll the node until the environment reaches a settled state: every
 * 20 ms for the first second and 50 ms for the next (a stop or a quick
 * start is part of a migration's downtime, and of every deploy), then
 * every 250 ms. */
static int
envs_wait(struct job *j, long long env_id, const char *path, int want_running,
    json_t **last, char **cause)
{
	long long t0 = (long long)(util_mono() * 1000), waited;

	for (;;) {
		json_t *e = NULL;
		const char *s;

		if (envs_poll(j, env_id, path, &e, cause) == -1)
			return -1;
		s = jsonx_str(e, "state");
		/* degraded: started as far as the app goes, the node's
		 * database or router down (envs show says why); it runs
		 * once they are back */
		if (s && want_running && (strcmp(s, "running") == 0 ||
		    strcmp(s, "degraded") == 0)) {
			*last = e;
			return 0;
		}
		if (s && !want_running && state_is_stopped(s)) {
			*last = e;
			return 0;
		}
		waited = (long long)(util_mono() * 1000) - t0;
		if (s && want_running && state_is_stopped(s) && waited > 1000) {
			*cause = xasprintf("the environment is %s", s);
			json_decref(e);
			return -1;
		}
		job_progress(j, NULL, "%s", s ? s : "waiting for the node");
		json_decref(e);
		if (waited > ENVS_JOB_WAIT_MAX * 1000LL) {
			*cause = xstrdup("timed out waiting for the node");
			return -1;
		}
		usleep(waited < 1000 ? 20 * 1000 : waited < 2000 ? 50 * 1000 :
		    250 * 1000);
	}
}

/* Poll the node until a running environment runs the spec's instances,
 * all on its memory limit (the node rolls a new limit out one instance at
 * a time). Never longer than the node's start timeout (plus its stop
 * grace) without one more instance coming up on it: an instance that
 * does not, or a node that wants another count, fails the job with what
 * the node runs. */
static int
envs_wait_scale(struct job *j, long long env_id, const char *path,
    json_t *spec, json_t **last, char **cause)
{
	long long want = jsonx_int(spec, "instances", 1);
	long long mb = jsonx_int(spec, "memory_mb", 512);
	long long fresh, best = -1, up, timeout;
	double t_best = util_mono();
	json_t *e = NULL, *in;
	const char *s;
	size_t i;

	for (;;) {
		if (envs_poll(j, env_id, path, &e, cause) == -1)
			return -1;
		s = jsonx_str(e, "state");
		if (s == NULL || (strcmp(s, "running") != 0 &&
		    strcmp(s, "starting") != 0 &&
		    strcmp(s, "degraded") != 0)) {
			/* stopped meanwhile: the new scale applies at its
			 * next start */
			*last = e;
			return 0;
		}
		up = fresh = 0;
		json_array_foreach(json_object_get(e, "instances"), i, in) {
			if (jsonx_str(in, "state") == NULL ||
			    strcmp(jsonx_str(in, "state"), "running") != 0)
				continue;
			up++;
			fresh += jsonx_int(in, "memory_mb", mb) == mb;
		}
		if (jsonx_int(e, "instances_wanted", want) != want) {
			*cause = xasprintf("the node wants %lld instances, not "
			    "the %lld asked for", jsonx_int(e,
			    "instances_wanted", 0), want);
			json_decref(e);
			return -1;
		}
		/* degraded: running, the node's database or router down */
		if (strcmp(s, "starting") != 0 && up == want && fresh == want &&
		    !jsonx_bool(e, "restart_pending", 0)) {
			*last = e;
			return 0;
		}
		if (fresh > best) {
			best = fresh;
			t_best = util_mono();
		}
		timeout = jsonx_int(e, "start_timeout", 60) +
		    ENVS_STOP_GRACE_MAX;
		if (util_mono() - t_best > (double)timeout) {
			*cause = xasprintf("%lld of %lld instances run with %lld "
			    "MB, and none more came up within %llds (the "
			    "node's start timeout and stop grace): see `nubo "
			    "envs logs`", fresh, want, mb, timeout);
			json_decref(e);
			return -1;
		}
		job_progress(j, NULL, "%lld of %lld instances running with %lld "
		    "MB%s", fresh, want, mb, jsonx_bool(e, "restart_pending", 0)
		    ? " (restarting them one at a time)" : "");
		json_decref(e);
		e = NULL;
		usleep(100 * 1000);
	}
}

/* The job behind every environment action: push the spec, ask the node to
 * act, wait until it is done. Idempotent (a re-queued job runs again). */
int
envs_job_action(struct job *j, json_t **result, char **cause)
{
	const char *action = strchr(j->kind, '.') + 1;
	long long env_id = jsonx_int(j->params, "env_id", 0);
	json_t *spec = NULL, *resp = NULL, *last = NULL, *body = NULL;
	char *path = NULL, *apath = NULL;
	int st, rc = -1;

	spec = envs_spec(j->db, j->portal->cloud_domain, env_id);
	if (spec == NULL) {
		*cause = xstrdup("the environment no longer exists");
		return -1;
	}
	path = xasprintf("/agent/v1/environments/%lld", env_id);
	job_progress(j, NULL, "sending the environment to the node");
	st = node_call(j->db, j->node_id, "PUT", path, spec, NULL, cause);
	if (st != 200)
		goto out;
	free(*cause);
	*cause = NULL;
	if (strcmp(action, "scale") == 0) {
		const char *s = store_text(j->db, "SELECT state FROM"
		    " environments WHERE id = ?", "i", env_id);
		int running = s && (strcmp(s, "running") == 0 ||
		    strcmp(s, "starting") == 0);

		free((char *)s);
		if (!running) {
			rc = 0;
			goto out;
		}
		/* what the spec says: a scale that changes only the
		 * memory keeps the instance count */
		job_progress(j, NULL, "scaling to %lld instances of %lld MB",
		    jsonx_int(spec, "instances", 1), jsonx_int(spec,
		    "memory_mb", 512));
		rc = envs_wait_scale(j, env_id, path, spec, &last, cause);
		goto out;
	}
	apath = xasprintf("%s/%s", path, action);
	job_progress(j, NULL, "%s", strcmp(action, "transport") == 0 ?
	    "unpacking the package" : action);
	if (strcmp(action, "transport") == 0)
		body = json_pack("{s:O}", "package", json_object_get(j->params,
		    "package"));
	st = node_call_timeout(j->db, j->node_id, "POST", apath, body, &resp,
	    cause, 900);
	if (st < 200 || st >= 300)
		goto out;
	envs_mirror(j->db, env_id, resp);
	if (strcmp(action, "transport") == 0) {
		store_run(j->db, "UPDATE environments SET package = ?,"
		    " package_manifest = ? WHERE id = ?", "sji",
		    jsonx_str(j->params, "package"), json_object_get(resp,
		    "manifest"), env_id);
		json_object_del(resp, "manifest");
		rc = 0;
	} else if (strcmp(action, "clean") == 0) {
		rc = 0;
	} else {
		rc = envs_wait(j, env_id, path, strcmp(action, "stop") != 0,
		    &last, cause);
		/* started with the current settings */
		if (rc == 0 && strcmp(action, "stop") != 0)
			settings_restart_applied(j->db, env_id);
	}
out:
	if (rc == 0) {
		*result = last ? last : json_incref(resp);
	} else {
		json_decref(last);
		/* the node's refusal keeps its code (MISSING_CONSTANT, …) */
		if (jsonx_str(json_object_get(resp, "error"), "code"))
			*result = json_pack("{s:O}", "code", json_object_get(
			    json_object_get(resp, "error"), "code"));
	}
	json_decref(resp);
	json_decref(spec);
	json_decref(body);
	free(path);
	free(apath);
	return rc;
}

/* ---- tags: labels on an environment (the Mendix Deploy API's) ---- */

/* 1 when t can be a tag: 1 to NUBO_TAG_MAX bytes, no control
 * characters, no '/' (it names a path). */
static int
envs_tag_valid(const char *t)
{
	const unsigned char *p;

	if (t == NULL || *t == '\0' || strlen(t) > NUBO_TAG_MAX)
		return 0;
	for (p = (const unsigned char *)t; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '/')
			return 0;
	return 1;
}

/* Reply {tags: [...]} of env_id, sorted. */
static void
envs_tags_reply(struct preq *r, long long env_id)
{
	json_t *rows = store_rows(r->db, "SELECT tag FROM environment_tags"
	    " WHERE environment_id = ? ORDER BY tag", "i", env_id);
	json_t *tags = json_array(), *row;
	size_t i;

	if (rows == NULL) {
		json_decref(tags);
		reply_store_error(r);
		return;
	}
	json_array_foreach(rows, i, row)
		json_array_append_new(tags, json_string(jsonx_str(row, "tag")));
	json_decref(rows);
	reply(r, 200, json_pack("{s:o}", "tags", tags));
}

/* GET …/environments/{env}/tags */
void
envs_tags_list(struct preq *r)
{
	json_t *row = envs_row(r);

	if (row == NULL)
		return;
	envs_tags_reply(r, jsonx_int(row, "id", 0));
	json_decref(row);
}

/* PUT / DELETE …/environments/{env}/tags/{tag}: add or remove a tag;
 * answers the tags. */
static void
envs_tag_change(struct preq *r, int add)
{
	static const struct jfield none[] = { { NULL } };
	const char *tag = preq_param(r, "tag");
	json_t *row;
	long long env_id, n;

	if (add && body_check(r, none) == -1)
		return;
	if (!envs_tag_valid(tag)) {
		reply_error(r, 400, "INVALID_TAG", "a tag has 1 to %d "
		    "characters, no control characters and no '/'",
		    NUBO_TAG_MAX);
		return;
	}
	if ((row = envs_row(r)) == NULL)
		return;
	env_id = jsonx_int(row, "id", 0);
	n = store_int(r->db, 0, "SELECT COUNT(*) FROM environment_tags WHERE"
	    " environment_id = ?", "i", env_id);
	if (!add && store_int(r->db, 0, "SELECT 1 FROM environment_tags WHERE"
	    " environment_id = ? AND tag = ?", "is", env_id, tag) != 1) {
		reply_error(r, 404, "TAG_NOT_FOUND", "environment '%s' has no "
		    "tag '%s'", jsonx_str(row, "name"), tag);
	} else if (add && n >= NUBO_TAGS_MAX && store_int(r->db, 0, "SELECT 1"
	    " FROM environment_tags WHERE environment_id = ? AND tag = ?",
	    "is", env_id, tag) != 1) {
		reply_error(r, 409, "TOO_MANY_TAGS", "environment '%s' has %d "
		    "tags already", jsonx_str(row, "name"), NUBO_TAGS_MAX);
	} else if (store_run(r->db, add ? "INSERT OR IGNORE INTO"
	    " environment_tags (environment_id, tag) VALUES (?, ?)" :
	    "DELETE FROM environment_tags WHERE environment_id = ? AND"
	    " tag = ?", "is", env_id, tag) != STORE_OK) {
		reply_store_error(r);
	} else {
		activity_log(r, add ? "env.tag" : "env.untag", "%s tag '%s' %s "
		    "environment '%s'", add ? "added" : "removed", tag,
		    add ? "to" : "from", jsonx_str(row, "name"));
		envs_tags_reply(r, env_id);
	}
	json_decref(row);
}

void envs_tag_put(struct preq *r) { envs_tag_change(r, 1); }
void envs_tag_delete(struct preq *r) { envs_tag_change(r, 0); }
