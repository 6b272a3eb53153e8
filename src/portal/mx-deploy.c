/* Deploy API v1 (/api/1) and v2 (/api/v2) of the Mendix Cloud
 * (docs/MENDIX-API.md): each handler translates the request, runs nubo's
 * own handler for the operation (mx_call: the same checks, jobs and
 * activity log) and translates its answer — ids (AppId = subdomain,
 * ProjectId = app uuid, Mode = environment name, EnvironmentId =
 * environment uuid), PascalCase fields, epoch-millisecond dates, state
 * words and error codes. v1 actions that Mendix answers when done (stop,
 * clean, transport, scale, upload) wait for nubo's job; start answers
 * its JobId, which GET …/start/{JobId} follows. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jobs.h"
#include "mx.h"
#include "settings.h"
#include "store.h"
#include "testhook.h"
#include "util.h"
#include "xmalloc.h"

/* Longest a v1 action waits for its job before answering (the job goes
 * on; a client then sees the state move). */
#define MX_WAIT_SECS		900

/* nubo's handlers (route-*.c) that the faces call */
void apps_list(struct preq *);
void apps_show(struct preq *);
void apps_create(struct preq *);
void envs_list(struct preq *);
void envs_show(struct preq *);
void envs_start(struct preq *);
void envs_stop(struct preq *);
void envs_clean(struct preq *);
void envs_transport(struct preq *);
void envs_scale(struct preq *);
void packages_app_list(struct preq *);
void packages_app_show(struct preq *);
void packages_app_download(struct preq *);
void packages_app_delete(struct preq *);
void packages_app_label(struct preq *);
void settings_show(struct preq *);
void settings_patch(struct preq *);
void envs_tags_list(struct preq *);
void envs_logs_day(struct preq *);
void envs_access_logs_day(struct preq *);
void envs_tag_put(struct preq *);
void envs_tag_delete(struct preq *);

/* nubo's environment states in the v1 words (docs/MENDIX-API.md). */
static const char *const mx_states[][2] = {
	{ "notdeployed", "Empty" },
	{ "stopped", "Stopped" },
	{ "failed", "Stopped" },
	{ "starting", "Stopped" },
	{ "running", "Running" },
	{ "degraded", "Running" },
	{ "stopping", "Running" },
};

static const char *
mx_status(const char *state)
{
	size_t i;

	for (i = 0; state && i < sizeof mx_states / sizeof mx_states[0]; i++)
		if (strcmp(mx_states[i][0], state) == 0)
			return mx_states[i][1];
	return "Stopped";
}

/* The store id of {env} (mx_resolved made it the environment's name). */
static long long
mx_env_id(struct preq *r)
{
	return store_int(r->db, 0, "SELECT id FROM environments WHERE name = ?"
	    " AND ((node_id = ? AND app_id IS NULL) OR app_id = ?)", "sii",
	    r->env ? r->env : "", r->node_id, r->app_id);
}

/* An environment (nubo's JSON) in v1 fields. */
static json_t *
mx_env_v1(struct preq *r, json_t *e)
{
	const char *name = jsonx_str(e, "name");
	json_t *row = store_row(r->db, "SELECT uuid, json_extract("
	    "package_manifest, '$.version') AS version FROM environments WHERE"
	    " name = ? AND ((node_id = ? AND app_id IS NULL) OR app_id = ?)",
	    "sii", name, r->node_id, r->app_id);
	long long n = jsonx_int(e, "instances", 1);
	long long mb = jsonx_int(e, "memory_mb", 512);
	json_t *out;

	out = json_pack("{s:s,s:s?,s:s,s:s,s:s,s:s,s:b,s:I,s:I,s:I}",
	    "Status", mx_status(jsonx_str(e, "state")),
	    "EnvironmentId", jsonx_str(row, "uuid"),
	    "Url", jsonx_str(e, "url") ? jsonx_str(e, "url") : "",
	    "Mode", name,
	    "ModelVersion", jsonx_str(row, "version") && !json_is_null(
	    json_object_get(e, "package")) ? jsonx_str(row, "version") : "",
	    "MendixVersion", "",
	    "Production", strcasecmp(name, "Production") == 0,
	    "Instances", (json_int_t)n,
	    "MemoryPerInstance", (json_int_t)mb,
	    "TotalMemory", (json_int_t)(n * mb));
	json_decref(row);
	return out;
}

/* {env} as nubo shows it; NULL after replying. */
static json_t *
mx_env(struct preq *r)
{
	json_t *e;

	if (mx_call(r, envs_show, NULL, &e) / 100 != 2) {
		mx_reply_captured(r);
		return NULL;
	}
	return e;
}

/* The URL of an app: its Production environment's, else its first. */
static char *
mx_app_url(struct preq *r, long long app_id)
{
	long long app = r->app_id, node = r->node_id;
	json_t *out = NULL, *e, *list;
	const char *url = NULL;
	char *res;
	size_t i;

	r->app_id = app_id;
	r->node_id = store_int(r->db, 0, "SELECT id FROM nodes WHERE"
	    " app_id = ?", "i", app_id);
	if (mx_call(r, envs_list, NULL, &out) / 100 == 2) {
		list = json_object_get(out, "environments");
		json_array_foreach(list, i, e)
			if (url == NULL || strcasecmp(jsonx_str(e, "name"),
			    "Production") == 0)
				url = jsonx_str(e, "url");
	}
	res = xstrdup(url ? url : "");
	json_decref(out);
	r->app_id = app;
	r->node_id = node;
	return res;
}

static json_t *
mx_app_v1(struct preq *r, json_t *a)
{
	long long id = store_int(r->db, 0, "SELECT id FROM apps WHERE"
	    " uuid = ?", "s", jsonx_str(a, "id"));
	char *url = mx_app_url(r, id);
	json_t *out = json_pack("{s:s,s:s,s:s,s:s}", "AppId",
	    jsonx_str(a, "subdomain"), "Name", jsonx_str(a, "name"),
	    "ProjectId", jsonx_str(a, "id"), "Url", url);

	free(url);
	return out;
}

/* What turns one of nubo's answers into the face's. */
typedef json_t *(*mx_map)(struct preq *, json_t *);

/* Reply the list under key of handler fn's answer, each item mapped. */
static void
mx_reply_list(struct preq *r, route_handler fn, const char *key, mx_map map)
{
	json_t *out, *list, *item;
	size_t i;

	if (mx_call(r, fn, NULL, &out) / 100 != 2) {
		mx_reply_captured(r);
		return;
	}
	list = json_array();
	json_array_foreach(json_object_get(out, key), i, item)
		json_array_append_new(list, map(r, item));
	json_decref(out);
	reply(r, 200, list);
}

/* GET /api/1/apps */
void
mx_apps_list(struct preq *r)
{
	mx_reply_list(r, apps_list, "apps", mx_app_v1);
}

/* POST /api/1/apps {ProjectId}: a Free App environment for the project:
 * nubo's app (with a sandbox) whose id is the ProjectId, its subdomain
 * made from it ("app-" and the uuid's first hex digits). */
void
mx_apps_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "ProjectId", JT_STRING, 1 }, { NULL } };
	const char *pid;
	json_t *out = NULL;
	char *sub = NULL;
	size_t n;

	if (body_check(r, fields) == -1)
		return;
	pid = jsonx_str(r->body, "ProjectId");
	if (!util_valid_uuid(pid)) {
		reply_error(r, 400, "INVALID_PROJECTID", "ProjectId '%s' is not "
		    "a lowercase uuid", pid);
		return;
	}
	if (store_int(r->db, 0, "SELECT 1 FROM apps WHERE uuid = ?", "s", pid)
	    == 1) {
		reply_error(r, 400, "APPLICATION_ALREADY_EXISTS", "project '%s' "
		    "has an app already", pid);
		return;
	}
	/* 8 hex digits, more when those are taken */
	for (n = 8; n <= 32; n += 4) {
		char hex[33];
		size_t i, k = 0;

		for (i = 0; pid[i] && k < n; i++)
			if (pid[i] != '-')
				hex[k++] = pid[i];
		hex[k] = '\0';
		free(sub);
		sub = xasprintf("app-%s", hex);
		if (store_int(r->db, 0, "SELECT 1 FROM apps WHERE subdomain = ?",
		    "s", sub) != 1)
			break;
	}
	if (mx_call(r, apps_create, json_pack("{s:s,s:s,s:b}", "subdomain",
	    sub, "id", pid, "sandbox", 1), &out) / 100 != 2)
		mx_reply_captured(r);
	else
		reply(r, 200, mx_app_v1(r, json_object_get(out, "app") ?
		    json_object_get(out, "app") : out));
	json_decref(out);
	free(sub);
}

/* GET /api/1/apps/{AppId} */
void
mx_apps_show(struct preq *r)
{
	json_t *out;

	if (mx_call(r, apps_show, NULL, &out) / 100 != 2) {
		mx_reply_captured(r);
		return;
	}
	reply(r, 200, mx_app_v1(r, out));
	json_decref(out);
}

/* GET /api/1/apps/{AppId}/environments */
void
mx_envs_list(struct preq *r)
{
	mx_reply_list(r, envs_list, "environments", mx_env_v1);
}

/* GET /api/1/apps/{AppId}/environments/{Mode} */
void
mx_envs_show(struct preq *r)
{
	json_t *e = mx_env(r);

	if (e) {
		reply(r, 200, mx_env_v1(r, e));
		json_decref(e);
	}
}

/* Reply {env} in v1 fields, as it is now. */
static void
mx_reply_env(struct preq *r)
{
	json_t *e = mx_env(r);

	if (e) {
		reply(r, 200, mx_env_v1(r, e));
		json_decref(e);
	}
}

/* What a v1 action answers once its job is done: then's reply, or 500
 * failed with the job's error. */
struct mx_after {
	const char	*failed;
	route_handler	 then;
};

/* job_wait_reply()'s continuation of a v1 action. */
static void
mx_action_done(struct preq *r)
{
	const struct mx_after *a = r->wait_arg;
	json_t *job = store_row(r->db, "SELECT state, error FROM jobs WHERE"
	    " id = ?", "i", r->wait_job);
	const char *st = jsonx_str(job, "state");

	if (job == NULL)
		reply_store_error(r);
	else if (strcmp(st, "failed") == 0)
		reply_error(r, 500, a->failed, "%s", jsonx_str(job, "error") ?
		    jsonx_str(job, "error") : "the job failed");
	else if (strcmp(st, "completed") != 0)
		reply_error(r, 500, a->failed, "job %lld is still %s after %d "
		    "seconds; it goes on (GET /api/v1/jobs/%lld)", r->wait_job,
		    st, MX_WAIT_SECS, r->wait_job);
	else
		a->then(r);
	json_decref(job);
}

/* The codes the reference gives for nubo's refusals: {nubo code,
 * status, Mendix code}. */
struct mx_refusal {
	const char	*code;
	unsigned	 status;
	const char	*mx;
};

/* Run an environment action's handler with body; once its job is done
 * answer as after says (job_wait_reply: no thread waits). A refusal
 * named in refusals is answered in the reference's words. */
static void
mx_env_action(struct preq *r, route_handler fn, json_t *body,
    const struct mx_refusal *refusals, const struct mx_after *after)
{
	json_t *out = NULL;
	long long id;

	if (mx_call(r, fn, body, &out) / 100 != 2) {
		for (; refusals && refusals->code; refusals++)
			if (r->cap_code && strcmp(r->cap_code,
			    refusals->code) == 0) {
				reply_error(r, refusals->status, refusals->mx,
				    "%s", r->cap_message);
				return;
			}
		mx_reply_captured(r);
		return;
	}
	id = mx_job_id(out);
	json_decref(out);
	testhook_pause("mx-action-queued");	/* its job recorded, not held */
	if (id == 0)
		after->then(r);		/* nothing to wait for */
	else
		job_wait_reply(r, id, MX_WAIT_SECS, mx_action_done, after);
}

static const struct jfield mx_no_fields[] = { { NULL } };

/* POST …/{Mode}/start {AutoSyncDb?} → {JobId} */
void
mx_envs_start(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "AutoSyncDb", JT_BOOL, 0 }, { NULL } };
	json_t *e, *out;
	long long id;
	char *sid;

	/* nubo's app brings its own schema changes: AutoSyncDb changes
	 * nothing (docs/MENDIX-API.md) */
	if (body_check(r, fields) == -1 || (e = mx_env(r)) == NULL)
		return;
	if (strcmp(jsonx_str(e, "state"), "notdeployed") == 0) {
		reply_error(r, 500, "NO_MDA_HAS_BEEN_DEPLOYED", "no package "
		    "has been transported to '%s' yet", r->env);
		json_decref(e);
		return;
	}
	/* serving already (v1 Status Running): the reference's 200 */
	if (strcmp(jsonx_str(e, "state"), "running") == 0 ||
	    strcmp(jsonx_str(e, "state"), "degraded") == 0) {
		reply_error(r, 200, "ALREADY_STARTED", "'%s' is %s already",
		    r->env, jsonx_str(e, "state"));
		json_decref(e);
		return;
	}
	json_decref(e);
	id = store_int(r->db, 0, "SELECT id FROM jobs WHERE kind = 'env.start'"
	    " AND state IN ('queued', 'running') AND app_id = ? AND"
	    " environment = ?", "is", r->app_id, r->env);
	if (id != 0) {
		reply_error(r, 500, "APP_ALREADY_HAS_A_STARTING_JOB", "'%s' is "
		    "being started already (job %lld)", r->env, id);
		return;
	}
	if (mx_call(r, envs_start, json_object(), &out) / 100 != 2) {
		mx_reply_captured(r);
		return;
	}
	sid = xasprintf("%lld", mx_job_id(out));
	reply(r, 200, json_pack("{s:s}", "JobId", sid));
	free(sid);
	json_decref(out);
}

/* The reference's code for a failed start job, by the code of the
 * node's refusal the job kept (jobs.c: a failed job's result {code}). */
static const char *
mx_start_failure(const char *code)
{
	static const char *const codes[][2] = {
		{ "MISSING_CONSTANT", "MISSING_CONSTANT" },
		/* the node could not make the environment's database */
		{ "DATABASE_UNAVAILABLE", "DB_SYNC_FAILED" },
	};
	size_t i;

	for (i = 0; code && i < sizeof codes / sizeof codes[0]; i++)
		if (strcmp(codes[i][0], code) == 0)
			return codes[i][1];
	return "START_FAILED";
}

/* GET …/{Mode}/start/{JobId} → {Status: Starting | Started} */
void
mx_envs_start_status(struct preq *r)
{
	long long id;
	json_t *job = NULL;
	const char *st;

	if (util_parse_int(preq_param(r, "id"), 1, 1LL << 53, &id) == 0)
		job = store_row(r->db, "SELECT state, error, json_extract("
		    "result_json, '$.code') AS code FROM jobs WHERE id = ? AND"
		    " kind = 'env.start' AND app_id = ? AND environment = ?",
		    "iis", id, r->app_id, r->env);
	if (job == NULL) {
		reply_error(r, 404, "NO_SUCH_STARTJOB", "'%s' has no start job "
		    "'%s'", r->env, preq_param(r, "id"));
		return;
	}
	st = jsonx_str(job, "state");
	if (strcmp(st, "failed") == 0)
		reply_error(r, 500, mx_start_failure(jsonx_str(job, "code")),
		    "%s", jsonx_str(job, "error") ? jsonx_str(job, "error") :
		    "the start failed");
	else
		reply(r, 200, json_pack("{s:s}", "Status", strcmp(st,
		    "completed") == 0 ? "Started" : "Starting"));
	json_decref(job);
}

/* POST …/{Mode}/stop → the environment, stopped */
void
mx_envs_stop(struct preq *r)
{
	static const struct mx_after after = { "STOP_FAILED", mx_reply_env };

	if (body_check(r, mx_no_fields) == -1)
		return;
	mx_env_action(r, envs_stop, json_object(), NULL, &after);
}

/* The answer of a clean: [{Status, Mode, Url}] */
static void
mx_reply_cleaned(struct preq *r)
{
	json_t *e = mx_env(r);

	if (e == NULL)
		return;
	reply(r, 200, json_pack("[{s:s,s:s,s:s}]", "Status",
	    mx_status(jsonx_str(e, "state")), "Mode", r->env, "Url",
	    jsonx_str(e, "url") ? jsonx_str(e, "url") : ""));
	json_decref(e);
}

/* POST …/{Mode}/clean → [{Status, Mode, Url}] */
void
mx_envs_clean(struct preq *r)
{
	static const struct mx_refusal refusals[] = {
		{ "ENVIRONMENT_NOT_STOPPED", 403, "ENVIRONMENT_NOT_STOPPED" },
		{ NULL, 0, NULL } };
	static const struct mx_after after = { "CLEAN_FAILED",
	    mx_reply_cleaned };
	json_t *e;

	if (body_check(r, mx_no_fields) == -1 || (e = mx_env(r)) == NULL)
		return;
	if (strcmp(jsonx_str(e, "state"), "notdeployed") == 0) {
		reply_error(r, 422, "ENVIRONMENT_NOT_DEPLOYED", "nothing was "
		    "ever transported to '%s': nothing to clean", r->env);
		json_decref(e);
		return;
	}
	json_decref(e);
	mx_env_action(r, envs_clean, json_object(), refusals, &after);
}

/* POST …/{Mode}/transport {PackageId} → the environment */
void
mx_envs_transport(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "PackageId", JT_STRING, 1 }, { NULL } };
	static const struct mx_refusal refusals[] = {
		{ "ENVIRONMENT_NOT_STOPPED", 403, "APP_IS_RUNNING" },
		{ NULL, 0, NULL } };
	static const struct mx_after after = { "TRANSPORT_FAILED",
	    mx_reply_env };
	const char *pkg;
	json_t *out;

	if (body_check(r, fields) == -1)
		return;
	pkg = jsonx_str(r->body, "PackageId");
	/* the package must be in the app's repository (404 otherwise) */
	http_param_set(r->http, "package", pkg);
	if (mx_call(r, packages_app_show, NULL, &out) / 100 != 2) {
		mx_reply_captured(r);
		return;
	}
	json_decref(out);
	mx_env_action(r, envs_transport, json_pack("{s:s}", "package", pkg),
	    refusals, &after);
}

/* POST …/{Mode}/scale {Instances?, MemoryPerInstance?} */
void
mx_envs_scale(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "Instances", JT_INT, 0 }, { "MemoryPerInstance", JT_INT, 0 },
		{ NULL } };
	static const struct mx_refusal refusals[] = {
		{ "BAD_REQUEST", 400, "INVALID_REQUEST" },
		{ "INVALID_INSTANCES", 400, "INVALID_REQUEST" },
		{ "INVALID_MEMORY", 400, "INVALID_REQUEST" },
		{ "NOT_SUPPORTED_ON_V3", 400, "NOT_ALLOWED" },
		{ NULL, 0, NULL } };
	static const struct mx_after after = { "SCALE_FAILED", mx_reply_env };
	json_t *body = json_object();

	if (body_check(r, fields) == -1) {
		json_decref(body);
		return;
	}
	if (json_object_get(r->body, "Instances"))
		json_object_set(body, "instances", json_object_get(r->body,
		    "Instances"));
	if (json_object_get(r->body, "MemoryPerInstance"))
		json_object_set(body, "memory_mb", json_object_get(r->body,
		    "MemoryPerInstance"));
	mx_env_action(r, envs_scale, body, refusals, &after);
}

/* A package of the app's repository (the {package} parameter), with the
 * download URL when ?url=true; NULL after replying. */
static json_t *
mx_package(struct preq *r)
{
	const char *url = preq_query(r, "url");
	json_t *p, *out = NULL, *d;

	if (mx_call(r, packages_app_show, NULL, &p) / 100 != 2) {
		mx_reply_captured(r);
		return NULL;
	}
	out = mx_package_v1(p);
	json_decref(p);
	if (url && strcasecmp(url, "true") == 0) {
		if (mx_call(r, packages_app_download, NULL, &d) / 100 != 2) {
			json_decref(out);
			mx_reply_captured(r);
			return NULL;
		}
		json_object_set_new(out, "Url", json_pack("{s:s?,s:I}",
		    "Location", jsonx_str(d, "url"), "TTL", (json_int_t)
		    (mx_epoch_ms(jsonx_str(d, "expires_at")) / 1000 -
		    util_now())));
		json_decref(d);
	}
	return out;
}

/* GET …/{Mode}/package[?url=true]: the package the environment runs */
void
mx_envs_package(struct preq *r)
{
	json_t *e = mx_env(r), *p;

	if (e == NULL)
		return;
	if (!json_is_string(json_object_get(e, "package"))) {
		reply_error(r, 404, "PACKAGE_NOT_FOUND", "no package is "
		    "deployed to '%s'", r->env);
		json_decref(e);
		return;
	}
	http_param_set(r->http, "package", jsonx_str(e, "package"));
	json_decref(e);
	if ((p = mx_package(r)) != NULL)
		reply(r, 200, p);
}

static json_t *
mx_package_item(struct preq *r, json_t *p)
{
	(void)r;
	return mx_package_v1(p);
}

/* GET /api/1/apps/{AppId}/packages */
void
mx_packages_list(struct preq *r)
{
	mx_reply_list(r, packages_app_list, "packages", mx_package_item);
}

/* GET /api/1/apps/{AppId}/packages/{PackageId}[?url=true] */
void
mx_packages_show(struct preq *r)
{
	json_t *p = mx_package(r);

	if (p)
		reply(r, 200, p);
}

/* GET /api/1/apps/{AppId}/packages/{PackageId}/download (deprecated by
 * Mendix): a redirect to the package's signed URL on the node — the bytes
 * never pass the portal (curl -L follows it). */
void
mx_packages_download(struct preq *r)
{
	json_t *d;
	const char *url;

	if (mx_call(r, packages_app_download, NULL, &d) / 100 != 2) {
		mx_reply_captured(r);
		return;
	}
	url = jsonx_str(d, "url");
	reply(r, 302, json_pack("{s:s?}", "Location", url));
	if (url)
		http_add_header(r->http, "Location", url);
	json_decref(d);
}

/* DELETE /api/1/apps/{AppId}/packages/{PackageId} */
void
mx_packages_delete(struct preq *r)
{
	json_t *out;

	if (mx_call(r, packages_app_delete, NULL, &out) / 100 != 2) {
		mx_reply_captured(r);
		return;
	}
	json_decref(out);
	reply(r, 200, json_object());
}

/* The answer of a v1 upload: the package ({package}) */
static void
mx_reply_uploaded(struct preq *r)
{
	json_t *p = mx_package(r);

	if (p)
		reply(r, 200, p);
}

/* POST /api/1/apps/{AppId}/packages/upload?name=N (multipart `file`):
 * the package, once the node has it */
void
mx_packages_upload_v1(struct preq *r)
{
	static const struct mx_after after = { "UPLOAD_COPY_FAILED",
	    mx_reply_uploaded };
	long long id;
	char *pkg = NULL;

	if (mx_upload_submit(r, &id, &pkg) == -1)
		return;
	http_param_set(r->http, "package", pkg);
	free(pkg);
	job_wait_reply(r, id, MX_WAIT_SECS, mx_action_done, &after);
}

/* POST /api/v2/apps/{AppId}/packages/upload?name=N → {PackageId, JobId} */
void
mx_packages_upload_v2(struct preq *r)
{
	long long id;
	char *pkg = NULL, *sid;

	if (mx_upload_submit(r, &id, &pkg) == -1)
		return;
	sid = xasprintf("%lld", id);
	reply(r, 200, json_pack("{s:s,s:s}", "PackageId", pkg, "JobId", sid));
	free(sid);
	free(pkg);
}

/* GET /api/v2/apps/{AppId}/jobs/{JobId} → {Status} */
void
mx_jobs_show_v2(struct preq *r)
{
	static const char *const words[][2] = {
		{ "queued", "Queued" }, { "running", "Running" },
		{ "completed", "Completed" }, { "failed", "Failed" } };
	json_t *job = NULL, *out;
	const char *st;
	long long id;
	size_t i;

	if (util_parse_int(preq_param(r, "id"), 1, 1LL << 53, &id) == 0)
		job = store_row(r->db, "SELECT state, error FROM jobs WHERE"
		    " id = ? AND app_id = ?", "ii", id, r->app_id);
	if (job == NULL) {
		reply_error(r, 404, "JOB_NOT_FOUND", "app '%s' has no job "
		    "'%s'", preq_param(r, "app"), preq_param(r, "id"));
		return;
	}
	st = jsonx_str(job, "state");
	for (i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strcmp(words[i][0], st) == 0)
			st = words[i][1];
	out = json_pack("{s:s}", "Status", st);
	if (jsonx_str(job, "error"))
		json_object_set(out, "ErrorMessage", json_object_get(job,
		    "error"));
	reply(r, 200, out);
	json_decref(job);
}

/* ---- settings ---- */

/* A constant's type in the Mendix words. */
static const char *
mx_data_type(const char *t)
{
	static const char *const types[][2] = {
		{ "string", "String" }, { "integer", "Integer" },
		{ "decimal", "Decimal" }, { "boolean", "Boolean" },
		{ "datetime", "DateTime" } };
	size_t i;

	for (i = 0; t && i < sizeof types / sizeof types[0]; i++)
		if (strcmp(types[i][0], t) == 0)
			return types[i][1];
	return "String";
}

/* A default from the manifest as the string a constant's value is. */
static char *
mx_value_text(json_t *v)
{
	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	if (v == NULL || json_is_null(v))
		return xstrdup("");
	return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* The environment's settings (nubo's GET …/settings answer) with the
 * deployed package's declarations, in v1 fields. */
static json_t *
mx_settings_v1(struct preq *r, json_t *view)
{
	json_t *s = json_object_get(view, "settings");
	json_t *manifest = settings_manifest(r->db, mx_env_id(r));
	json_t *consts = json_array(), *events = json_array();
	json_t *custom = json_array(), *d, *v;
	const char *k;
	size_t i;

	json_array_foreach(json_object_get(manifest, "constants"), i, d) {
		const char *name = jsonx_str(d, "name");
		json_t *set = json_object_get(json_object_get(s, "constants"),
		    name ? name : "");
		char *val = mx_value_text(set ? set : json_object_get(d,
		    "default"));

		json_array_append_new(consts, json_pack("{s:s?,s:s,s:s,s:s}",
		    "Name", name, "DataType", mx_data_type(jsonx_str(d,
		    "type")), "Value", val, "DeployedValue", val));
		free(val);
	}
	json_array_foreach(json_object_get(manifest, "scheduled_events"), i,
	    d) {
		const char *name = jsonx_str(d, "name");
		const char *on = json_is_true(json_object_get(json_object_get(s,
		    "scheduled_events"), name ? name : "")) ? "Enabled" :
		    "Disabled";

		json_array_append_new(events, json_pack("{s:s?,s:s,s:s}",
		    "Name", name, "Value", on, "DeployedValue", on));
	}
	json_object_foreach(json_object_get(json_object_get(s, "runtime"),
	    "settings"), k, v)
		json_array_append_new(custom, json_pack("{s:s,s:O}", "Name", k,
		    "Value", v));
	json_decref(manifest);
	return json_pack("{s:o,s:o,s:o}", "Constants", consts,
	    "CustomSettings", custom, "ScheduledEvents", events);
}

/* GET …/{Mode}/settings */
void
mx_settings_show(struct preq *r)
{
	json_t *view;

	if (mx_call(r, settings_show, NULL, &view) / 100 != 2) {
		mx_reply_captured(r);
		return;
	}
	reply(r, 200, mx_settings_v1(r, view));
	json_decref(view);
}

/* A declaration named name in the manifest's list. */
static int
mx_declared(json_t *manifest, const char *list, const char *name)
{
	json_t *d;
	size_t i;

	json_array_foreach(json_object_get(manifest, list), i, d)
		if (jsonx_str(d, "name") && strcmp(jsonx_str(d, "name"), name)
		    == 0)
			return 1;
	return 0;
}

/* Check one list of the v1 settings body: [{Name, Value, …}] with the
 * fields GET shows (clients send back what they read). 0, or -1 after
 * replying. */
static int
mx_settings_items(struct preq *r, const char *list)
{
	static const struct jfield fields[] = {
		{ "Name", JT_STRING, 1 }, { "Value", JT_STRING, 1 },
		{ "DataType", JT_STRING, 0 }, { "DeployedValue", JT_STRING, 0 },
		{ NULL } };
	json_t *items = json_object_get(r->body, list), *it;
	char *cause = NULL;
	size_t i;

	json_array_foreach(items, i, it)
		if (jsonx_check(it, fields, &cause) == -1) {
			reply_error(r, 400, "INVALID_PARAMETERS", "%s[%zu]: %s",
			    list, i, cause);
			free(cause);
			return -1;
		}
	return 0;
}

/* POST …/{Mode}/settings {Constants?, ScheduledEvents?, CustomSettings?}:
 * the values given change (others stay), through nubo's PATCH of those
 * sections; answers the settings as GET does. */
void
mx_settings_set(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "Constants", JT_ARRAY, 0 }, { "ScheduledEvents", JT_ARRAY, 0 },
		{ "CustomSettings", JT_ARRAY, 0 }, { NULL } };
	json_t *view = NULL, *manifest = NULL, *s, *patch = json_object();
	json_t *consts, *events, *runtime = NULL, *custom, *it, *out = NULL;
	size_t i;

	if (body_check(r, fields) == -1 ||
	    mx_settings_items(r, "Constants") == -1 ||
	    mx_settings_items(r, "ScheduledEvents") == -1 ||
	    mx_settings_items(r, "CustomSettings") == -1)
		goto out;
	if (mx_call(r, settings_show, NULL, &view) / 100 != 2) {
		mx_reply_captured(r);
		goto out;
	}
	s = json_object_get(view, "settings");
	manifest = settings_manifest(r->db, mx_env_id(r));
	consts = json_deep_copy(json_object_get(s, "constants"));
	if (consts == NULL)
		consts = json_object();
	json_object_set_new(patch, "constants", consts);
	json_array_foreach(json_object_get(r->body, "Constants"), i, it) {
		const char *name = jsonx_str(it, "Name");

		if (!mx_declared(manifest, "constants", name)) {
			reply_error(r, 400, "CONSTANT_NOT_FOUND", "the package "
			    "deployed to '%s' has no constant '%s'", r->env,
			    name);
			goto out;
		}
		json_object_set(consts, name, json_object_get(it, "Value"));
	}
	events = json_deep_copy(json_object_get(s, "scheduled_events"));
	if (events == NULL)
		events = json_object();
	json_object_set_new(patch, "scheduled_events", events);
	json_array_foreach(json_object_get(r->body, "ScheduledEvents"), i,
	    it) {
		const char *name = jsonx_str(it, "Name");
		const char *v = jsonx_str(it, "Value");

		if (!mx_declared(manifest, "scheduled_events", name)) {
			reply_error(r, 400, "SCHEDULED_EVENT_NOT_FOUND", "the "
			    "package deployed to '%s' has no scheduled event "
			    "'%s'", r->env, name);
			goto out;
		}
		if (strcasecmp(v, "Enabled") != 0 &&
		    strcasecmp(v, "Disabled") != 0) {
			reply_error(r, 400, "INVALID_PARAMETERS", "scheduled "
			    "event '%s': Value must be Enabled or Disabled",
			    name);
			goto out;
		}
		json_object_set_new(events, name, json_boolean(strcasecmp(v,
		    "Enabled") == 0));
	}
	if (json_array_size(json_object_get(r->body, "CustomSettings"))) {
		if (store_int(r->db, 0, "SELECT n.generation = 'v4' FROM"
		    " environments e JOIN nodes n ON n.id = e.node_id WHERE"
		    " e.id = ?", "i", mx_env_id(r)) != 1) {
			reply_error(r, 400, "CUSTOM_SETTING_NOT_SUPPORTED",
			    "custom runtime settings need a v4 node; '%s' is "
			    "on a v3 node", r->env);
			goto out;
		}
		runtime = json_deep_copy(json_object_get(s, "runtime"));
		if (!json_is_object(runtime)) {
			json_decref(runtime);
			runtime = json_object();
		}
		custom = json_object_get(runtime, "settings");
		if (!json_is_object(custom)) {
			custom = json_object();
			json_object_set_new(runtime, "settings", custom);
		}
		json_array_foreach(json_object_get(r->body, "CustomSettings"),
		    i, it)
			json_object_set(custom, jsonx_str(it, "Name"),
			    json_object_get(it, "Value"));
		json_object_set_new(patch, "runtime", runtime);
	}
	if (mx_call(r, settings_patch, patch, &out) / 100 != 2) {
		patch = NULL;
		mx_reply_captured(r);
		goto out;
	}
	patch = NULL;
	reply(r, 200, mx_settings_v1(r, out));
out:
	json_decref(patch);
	json_decref(view);
	json_decref(manifest);
	json_decref(out);
}

/* ---- Build API and Team Server API: labels, not builds ---- */

/* The app's packages (nubo's list, synchronised with the node); NULL
 * after replying. */
static json_t *
mx_packages(struct preq *r)
{
	json_t *out;

	if (mx_call(r, packages_app_list, NULL, &out) / 100 != 2) {
		mx_reply_captured(r);
		return NULL;
	}
	return out;
}

/* 1 when v is major.minor.patch (digits). */
static int
mx_version_ok(const char *v)
{
	int parts = 0, digits = 0;

	for (; *v; v++) {
		if (*v >= '0' && *v <= '9') {
			digits++;
			continue;
		}
		if (*v != '.' || digits == 0)
			return 0;
		parts++;
		digits = 0;
	}
	return parts == 2 && digits > 0;
}

/* POST /api/1/apps/{AppId}/packages {Branch, Revision?, Version,
 * Description?}: nubo builds nothing from source — the newest package
 * uploaded with that branch (and revision) label is the build; it gets
 * Version and Description (nubo's PATCH of the package) and is
 * Succeeded at once. */
void
mx_builds_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "Branch", JT_STRING, 1 }, { "Revision", JT_INT, 0 },
		{ "Version", JT_STRING, 1 }, { "Description", JT_STRING, 0 },
		{ NULL } };
	const char *branch, *best = NULL;
	long long want = -1, best_rev = -1;
	json_t *list, *p, *out, *body;
	char *id;
	size_t i;

	if (body_check(r, fields) == -1)
		return;
	branch = jsonx_str(r->body, "Branch");
	if (json_object_get(r->body, "Revision"))
		want = jsonx_int(r->body, "Revision", -1);
	if (!mx_version_ok(jsonx_str(r->body, "Version"))) {
		reply_error(r, 400, "INVALID_VERSION", "Version '%s' is not "
		    "major.minor.patch", jsonx_str(r->body, "Version"));
		return;
	}
	if ((list = mx_packages(r)) == NULL)
		return;
	json_array_foreach(json_object_get(list, "packages"), i, p) {
		long long rev = jsonx_int(p, "revision", -1);

		if (jsonx_str(p, "branch") == NULL || strcmp(jsonx_str(p,
		    "branch"), branch) != 0 || (want >= 0 && rev != want))
			continue;
		/* the newest: highest revision, then the last uploaded */
		if (best == NULL || rev >= best_rev) {
			best = jsonx_str(p, "id");
			best_rev = rev;
		}
	}
	if (best == NULL) {
		if (want >= 0)
			reply_error(r, 404, "PACKAGE_NOT_FOUND", "nubo builds no "
			    "packages from source: upload the package of branch "
			    "'%s' revision %lld (nubo packages upload --app %s "
			    "FILE --branch %s --revision %lld, or ?branch=&"
			    "revision= on the upload API)", branch, want,
			    preq_param(r, "app"), branch, want);
		else
			reply_error(r, 404, "PACKAGE_NOT_FOUND", "nubo builds no "
			    "packages from source: upload one of branch '%s' "
			    "(nubo packages upload --app %s FILE --branch %s "
			    "--revision N, or ?branch=&revision= on the upload "
			    "API)", branch, preq_param(r, "app"), branch);
		json_decref(list);
		return;
	}
	id = xstrdup(best);
	json_decref(list);
	http_param_set(r->http, "package", id);
	body = json_pack("{s:s}", "version_label", jsonx_str(r->body,
	    "Version"));
	if (jsonx_str(r->body, "Description"))
		json_object_set(body, "description", json_object_get(r->body,
		    "Description"));
	if (mx_call(r, packages_app_label, body, &out) / 100 != 2)
		mx_reply_captured(r);
	else
		reply(r, 200, json_pack("{s:s}", "PackageId", id));
	json_decref(out);
	free(id);
}

/* The branches of the app's packages: {name: {latest revision, its
 * package, the newest version label}}. */
static json_t *
mx_branch_map(json_t *list)
{
	json_t *map = json_object(), *p, *b;
	const char *name;
	size_t i;

	json_array_foreach(json_object_get(list, "packages"), i, p) {
		if ((name = jsonx_str(p, "branch")) == NULL)
			continue;
		if ((b = json_object_get(map, name)) == NULL) {
			b = json_pack("{s:I,s:n,s:o}", "latest", (json_int_t)-1,
			    "tagged", "revisions", json_object());
			json_object_set_new(map, name, b);
		}
		if (jsonx_int(p, "revision", -1) > jsonx_int(b, "latest", -1))
			json_object_set_new(b, "latest", json_integer(jsonx_int(p,
			    "revision", -1)));
		if (jsonx_str(p, "version_label"))
			json_object_set(b, "tagged", json_object_get(p,
			    "version_label"));
		if (jsonx_int(p, "revision", -1) >= 0) {
			char *k = xasprintf("%lld", jsonx_int(p, "revision", -1));

			json_object_set(json_object_get(b, "revisions"), k, p);
			free(k);
		}
	}
	return map;
}

static json_t *
mx_branch_v1(const char *name, json_t *b)
{
	long long latest = jsonx_int(b, "latest", -1);

	return json_pack("{s:s,s:s,s:o,s:s,s:O}", "Name", name,
	    "DisplayName", name, "LatestRevisionNumber", latest >= 0 ?
	    json_integer(latest) : json_null(), "LatestRevisionMendixVersion",
	    "", "LatestTaggedVersion", json_object_get(b, "tagged"));
}

/* GET /api/1/apps/{AppId}/branches */
void
mx_branches_list(struct preq *r)
{
	json_t *list = mx_packages(r), *map, *b, *out;
	const char *name;

	if (list == NULL)
		return;
	map = mx_branch_map(list);
	out = json_array();
	json_object_foreach(map, name, b)
		json_array_append_new(out, mx_branch_v1(name, b));
	reply(r, 200, out);
	json_decref(map);
	json_decref(list);
}

/* {Name}'s entry of the branch map; NULL after replying 404. */
static json_t *
mx_branch(struct preq *r, json_t *map)
{
	json_t *b = json_object_get(map, preq_param(r, "Name"));

	if (b == NULL)
		reply_error(r, 404, "BRANCH_NOT_FOUND", "app '%s' has no package "
		    "of branch '%s' (nubo packages upload --app %s FILE "
		    "--branch %s --revision N)", preq_param(r, "app"),
		    preq_param(r, "Name"), preq_param(r, "app"),
		    preq_param(r, "Name"));
	return b;
}

/* GET /api/1/apps/{AppId}/branches/{Name} */
void
mx_branches_show(struct preq *r)
{
	json_t *list = mx_packages(r), *map, *b;

	if (list == NULL)
		return;
	map = mx_branch_map(list);
	if ((b = mx_branch(r, map)) != NULL)
		reply(r, 200, mx_branch_v1(preq_param(r, "Name"), b));
	json_decref(map);
	json_decref(list);
}

/* GET /api/1/apps/{AppId}/branches/{Name}/revisions: newest first */
void
mx_branches_revisions(struct preq *r)
{
	json_t *list = mx_packages(r), *map, *b, *out, *p;
	const char *k;
	size_t i;

	if (list == NULL)
		return;
	map = mx_branch_map(list);
	if ((b = mx_branch(r, map)) == NULL)
		goto out;
	out = json_array();
	json_object_foreach(json_object_get(b, "revisions"), k, p) {
		json_t *rev = json_pack("{s:I,s:s,s:I,s:s,s:s}", "Number",
		    (json_int_t)jsonx_int(p, "revision", 0), "CommitMessage",
		    jsonx_str(p, "description") ? jsonx_str(p, "description") :
		    "", "Date", (json_int_t)mx_epoch_ms(jsonx_str(p,
		    "uploaded_at")), "Author", jsonx_str(p, "uploaded_by") ?
		    jsonx_str(p, "uploaded_by") : "", "MendixVersion", "");

		/* newest first */
		for (i = 0; i < json_array_size(out) && jsonx_int(
		    json_array_get(out, i), "Number", 0) > jsonx_int(rev,
		    "Number", 0); i++)
			;
		json_array_insert_new(out, i, rev);
	}
	reply(r, 200, out);
out:
	json_decref(map);
	json_decref(list);
}

/* ---- tags ---- */

/* GET …/{Mode}/tags → ["tag", …] */
void
mx_tags_list(struct preq *r)
{
	json_t *out;

	if (mx_call(r, envs_tags_list, NULL, &out) / 100 != 2) {
		mx_reply_captured(r);
		return;
	}
	reply(r, 200, json_incref(json_object_get(out, "tags")));
	json_decref(out);
}

/* Add (fn envs_tag_put) or remove a tag: {Tag} in the body, or the
 * path's {Tag}; answers {Tag}. */
static void
mx_tag_change(struct preq *r, route_handler fn)
{
	static const struct jfield fields[] = {
		{ "Tag", JT_STRING, 1 }, { NULL } };
	json_t *out;
	char *tag;

	if (preq_param(r, "Tag") == NULL && body_check(r, fields) == -1)
		return;
	tag = xstrdup(preq_param(r, "Tag") ? preq_param(r, "Tag") :
	    jsonx_str(r->body, "Tag"));
	http_param_set(r->http, "tag", tag);
	if (mx_call(r, fn, fn == envs_tag_put ? json_object() : NULL, &out) /
	    100 != 2)
		mx_reply_captured(r);
	else
		reply(r, 200, json_pack("{s:s}", "Tag", tag));
	json_decref(out);
	free(tag);
}

/* POST …/{Mode}/tags {Tag} */
void
mx_tags_add(struct preq *r)
{
	mx_tag_change(r, envs_tag_put);
}

/* DELETE …/{Mode}/tags {Tag}, DELETE …/{Mode}/tags/{Tag} */
void
mx_tags_delete(struct preq *r)
{
	mx_tag_change(r, envs_tag_delete);
}

/* Reply {Environment, Date, DownloadUrl} of nubo's handler fn for
 * {Date}. */
static void
mx_reply_log(struct preq *r, route_handler fn)
{
	json_t *out;

	http_param_set(r->http, "date", preq_param(r, "Date"));
	if (mx_call(r, fn, NULL, &out) / 100 != 2) {
		mx_reply_captured(r);
		return;
	}
	reply(r, 200, json_pack("{s:O,s:O,s:O}", "Environment",
	    json_object_get(out, "environment"), "Date", json_object_get(out,
	    "date"), "DownloadUrl", json_object_get(out, "url")));
	json_decref(out);
}

/* GET …/{Mode}/logs/{Date}: the day's application log */
void
mx_logs_day(struct preq *r)
{
	mx_reply_log(r, envs_logs_day);
}

/* GET …/{Mode}/access-logs/{Date}: the day's router access log */
void
mx_access_logs_day(struct preq *r)
{
	mx_reply_log(r, envs_access_logs_day);
}
