/* The Mendix Cloud API faces, what every face request shares
 * (docs/MENDIX-API.md): the prefixes, the Mendix-Username and
 * Mendix-ApiKey headers, the error shape, the path parameters given
 * nubo's names, and mx_call(), which runs nubo's own handler for an
 * operation and keeps its reply for the face to translate. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "mx.h"
#include "nubo_limits.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* The prefixes of the faces: Deploy v1 (/api/1), Deploy v2 (/api/v2). */
static const char *const mx_prefixes[] = { "/api/1", "/api/v2", NULL };

int
mx_url(const char *url)
{
	size_t i, n;

	for (i = 0; mx_prefixes[i]; i++) {
		n = strlen(mx_prefixes[i]);
		if (strncmp(url, mx_prefixes[i], n) == 0 &&
		    (url[n] == '/' || url[n] == '\0'))
			return 1;
	}
	return 0;
}

int
mx4_url(const char *url)
{
	return strncmp(url, "/api/v4", 7) == 0 && (url[7] == '/' ||
	    url[7] == '\0');
}

void
mx4_error_reply(struct http_req *h, unsigned status, const char *code,
    const char *message)
{
	json_t *e = json_pack("{s:I,s:s,s:s}", "code", (json_int_t)status,
	    "message", message, "x-nubo-code", code);

	/* a bad request names the parameter when the message does
	 * ("field 'limit' …") */
	if (status == 400) {
		const char *q = strchr(message, '\''), *qe = q ?
		    strchr(q + 1, '\'') : NULL;
		char *name = q && qe ? xstrndup(q + 1, (size_t)(qe - q - 1)) :
		    xstrdup("body");

		json_object_set_new(e, "invalid-params", json_pack(
		    "[{s:s,s:s}]", "name", name, "reason", message));
		free(name);
	}
	http_reply_json(h, status, json_pack("{s:o}", "error", e));
}

int
mx4_authenticate(struct preq *r)
{
	const char *h = http_header(r->http, "Authorization");

	if (h == NULL || strncasecmp(h, "MxToken ", 8) != 0 || h[8] == '\0') {
		reply_error(r, 401, "UNAUTHENTICATED", "send 'Authorization: "
		    "MxToken <personal access token>' (nubo keys create --pat "
		    "--scope mx:deployment:read,mx:deployment:write)");
		return -1;
	}
	return auth_key(r, h + 8);
}

/* nubo's generic error codes and the Mendix APIs' words for them; the
 * codes of the reference (APP_NOT_FOUND, PACKAGE_IN_USE, …) are nubo's
 * already, and codes the faces give on purpose pass unchanged. */
static const char *const mx_codes[][2] = {
	{ "BAD_REQUEST", "INVALID_PARAMETERS" },
	{ "BAD_JSON", "INVALID_PARAMETERS" },
	{ "BODY_NOT_ALLOWED", "INVALID_PARAMETERS" },
	{ "FORBIDDEN", "NO_ACCESS" },
	{ "KEY_SCOPE", "NO_ACCESS" },
};

const char *
mx_code(const char *code)
{
	size_t i;

	for (i = 0; i < sizeof mx_codes / sizeof mx_codes[0]; i++)
		if (strcmp(mx_codes[i][0], code) == 0)
			return mx_codes[i][1];
	return code;
}

void
mx_error_reply(struct http_req *h, unsigned status, const char *code,
    const char *message)
{
	http_reply_json(h, status, json_pack("{s:s,s:s}", "errorCode",
	    mx_code(code), "errorMessage", message));
}

/* Both headers, the key one of that user's (header names in any case:
 * libmicrohttpd compares them so). */
int
mx_authenticate(struct preq *r)
{
	const char *user = http_header(r->http, "Mendix-Username");
	const char *key = http_header(r->http, "Mendix-ApiKey");

	if (user == NULL || *user == '\0' || key == NULL || *key == '\0') {
		reply_error(r, 401, "UNAUTHENTICATED", "send the headers "
		    "Mendix-Username (your email) and Mendix-ApiKey (an API "
		    "key of yours: nubo keys create)");
		return -1;
	}
	if (auth_key(r, key) == -1)
		return -1;
	if (store_int(r->db, 0, "SELECT 1 FROM users WHERE id = ? AND"
	    " email = ? COLLATE NOCASE", "is", r->who.user_id, user) != 1) {
		json_decref(r->who.app_scope);
		memset(&r->who, 0, sizeof r->who);
		reply_error(r, 401, "UNAUTHENTICATED", "this API key is not "
		    "one of user '%s'", user);
		return -1;
	}
	return 0;
}

/* Each API key's request budget on the faces: a token bucket of
 * mx_rate requests, refilled at mx_rate a minute. Buckets live in a
 * table of NUBO_MX_RATE_KEYS slots (a key probes MX_RATE_PROBE of them;
 * when all are taken, the one used longest ago starts afresh). */
#define MX_RATE_PROBE	8

static struct mx_bucket {
	long long	 key;
	double		 tokens;
	double		 at;		/* util_mono() of the last request */
} mx_buckets[NUBO_MX_RATE_KEYS];
static pthread_mutex_t mx_rate_lock = PTHREAD_MUTEX_INITIALIZER;

int
mx_rate_check(struct preq *r)
{
	double cap = r->portal->mx_rate, per_s = cap / 60.0, now = util_mono();
	struct mx_bucket *b = NULL, *c;
	long long wait;
	size_t i, h = (size_t)r->who.key_id % NUBO_MX_RATE_KEYS;
	char after[32];

	if (r->who.key_id == 0)
		return 0;
	pthread_mutex_lock(&mx_rate_lock);
	for (i = 0; i < MX_RATE_PROBE; i++) {
		c = &mx_buckets[(h + i) % NUBO_MX_RATE_KEYS];
		if (c->key == r->who.key_id) {
			b = c;
			break;
		}
		if (b == NULL || c->key == 0 || (b->key != 0 && c->at < b->at))
			b = c;
	}
	if (b->key != r->who.key_id) {
		b->key = r->who.key_id;
		b->tokens = cap;
		b->at = now;
	}
	b->tokens += (now - b->at) * per_s;
	if (b->tokens > cap)
		b->tokens = cap;
	b->at = now;
	if (b->tokens >= 1) {
		b->tokens -= 1;
		pthread_mutex_unlock(&mx_rate_lock);
		return 0;
	}
	wait = (long long)((1 - b->tokens) / per_s) + 1;	/* rounded up */
	pthread_mutex_unlock(&mx_rate_lock);
	reply_error(r, 429, "RATE_LIMITED", "this API key made more than its "
	    "%u requests a minute to the Mendix APIs: retry in %lld s",
	    r->portal->mx_rate, wait);
	snprintf(after, sizeof after, "%lld", wait);
	http_add_header(r->http, "Retry-After", after);
	return -1;
}

/* The Mendix path parameters and the names nubo's handlers read. */
static const char *const mx_param_names[][2] = {
	{ "AppId", "app" },
	{ "ProjectId", "app" },
	{ "appId", "app" },
	{ "SnapshotId", "snapshot" },
	{ "Mode", "env" },
	{ "PackageId", "package" },
	{ "JobId", "id" },
};

int
mx_params(struct preq *r)
{
	struct http_req *h = r->http;
	const char *eid = http_param(h, "EnvironmentId") ?
	    http_param(h, "EnvironmentId") : http_param(h, "environmentId");
	const char *app = http_param(h, "AppId"), *mode = http_param(h, "Mode");
	int i, n = h->nparams;
	size_t k;

	/* what can name no app or environment is a bad request (the
	 * reference's 400s), not a 404: an AppId is a subdomain (nubo takes
	 * the app's uuid too), a Mode an environment name */
	if (app && !util_valid_subdomain(app) && !util_valid_uuid(app)) {
		reply_error(r, 400, "INVALID_APPID", "'%s' is no AppId: an app's "
		    "subdomain (lowercase letters, digits and '-')", app);
		return -1;
	}
	if (mode && !util_valid_env_name(mode)) {
		reply_error(r, 400, "INVALID_ENVIRONMENT", "'%s' is no "
		    "environment name (Mode: letters, digits and '-', as "
		    "'Acceptance')", mode);
		return -1;
	}

	/* an EnvironmentId names the environment by its uuid (mx_resolved
	 * checks that it is the app's); unknown, it stays as given for the
	 * 404 */
	if (eid) {
		char *name = store_text(r->db, "SELECT name FROM environments"
		    " WHERE uuid = ?", "s", eid);

		http_param_set(h, "env", name ? name : eid);
		free(name);
	}

	for (i = 0; i < n; i++)
		for (k = 0; k < sizeof mx_param_names /
		    sizeof mx_param_names[0]; k++)
			if (strcmp(h->param_names[i], mx_param_names[k][0])
			    == 0) {
				char *v = xstrdup(h->param_values[i]);

				http_param_set(h, mx_param_names[k][1], v);
				free(v);
			}
	return 0;
}

int
mx_resolved(struct preq *r)
{
	const char *eid;
	char *name;

	if (r->env == NULL)
		return 0;
	eid = preq_param(r, "EnvironmentId") ? preq_param(r,
	    "EnvironmentId") : preq_param(r, "environmentId");
	if (eid && store_int(r->db, 0, "SELECT 1 FROM environments WHERE"
	    " uuid = ? AND ((node_id = ? AND app_id IS NULL) OR app_id = ?)",
	    "sii", eid, r->node_id, r->app_id) != 1) {
		reply_error(r, 404, "ENVIRONMENT_NOT_FOUND", "app '%s' has no "
		    "environment '%s'", preq_param(r, "app"), eid);
		return -1;
	}
	/* the environment's own name: the Mode may come in any case */
	name = store_text(r->db, "SELECT name FROM environments WHERE name = ?"
	    " COLLATE NOCASE AND ((node_id = ? AND app_id IS NULL) OR"
	    " app_id = ?)", "sii", r->env, r->node_id, r->app_id);
	if (name == NULL) {
		reply_error(r, 404, "ENVIRONMENT_NOT_FOUND", "app '%s' has no "
		    "environment '%s'", preq_param(r, "app"), r->env);
		return -1;
	}
	http_param_set(r->http, "env", name);
	r->env = http_param(r->http, "env");
	free(name);
	return 0;
}

unsigned
mx_call(struct preq *r, route_handler fn, json_t *body, json_t **out)
{
	json_t *saved = r->body;
	unsigned status;

	*out = NULL;
	json_decref(r->cap_body);
	free(r->cap_code);
	free(r->cap_message);
	r->cap_body = NULL;
	r->cap_code = r->cap_message = NULL;
	r->cap_status = 0;
	r->body = body;
	r->capture = 1;
	fn(r);
	r->capture = 0;
	json_decref(r->body);
	r->body = saved;
	status = r->cap_status ? r->cap_status : 500;
	if (r->cap_status == 0) {
		r->cap_code = xstrdup("INTERNAL");
		r->cap_message = xstrdup("handler gave no reply");
	} else if (r->cap_code == NULL && (status < 200 || status >= 300)) {
		/* an error written as a body (SETTINGS_INVALID: details) */
		json_t *e = json_object_get(r->cap_body, "error");

		r->cap_code = xstrdup(jsonx_str(e, "code") ?
		    jsonx_str(e, "code") : "INTERNAL");
		r->cap_message = xstrdup(jsonx_str(e, "message") ?
		    jsonx_str(e, "message") : "no message");
	}
	if (status >= 200 && status < 300) {
		*out = r->cap_body ? r->cap_body : json_object();
		r->cap_body = NULL;
	}
	return status;
}

void
mx_reply_captured(struct preq *r)
{
	reply_error(r, r->cap_status ? r->cap_status : 500, r->cap_code ?
	    r->cap_code : "INTERNAL", "%s", r->cap_message ? r->cap_message :
	    "no answer");
}

json_t *
mx_job_wait(struct preq *r, long long id, int secs)
{
	double until = util_mono() + secs;
	json_t *row;

	for (;;) {
		row = store_row(r->db, "SELECT state, error, result_json FROM"
		    " jobs WHERE id = ?", "i", id);
		if (row == NULL)
			return NULL;
		if (strcmp(jsonx_str(row, "state"), "completed") == 0 ||
		    strcmp(jsonx_str(row, "state"), "failed") == 0 ||
		    util_mono() > until)
			return row;
		json_decref(row);
		usleep(100 * 1000);
	}
}

long long
mx_job_id(json_t *answer)
{
	const char *id = jsonx_str(json_object_get(answer, "job"), "id");

	return id ? strtoll(id, NULL, 10) : 0;
}

long long
mx_epoch_ms(const char *iso)
{
	time_t t;

	if (iso == NULL || util_parse_iso(iso, &t) == -1)
		return 0;
	return (long long)t * 1000;
}

json_t *
mx_package_v1(json_t *p)
{
	const char *fname = jsonx_str(p, "file_name");

	const char *v = jsonx_str(p, "version_label") ? jsonx_str(p,
	    "version_label") : jsonx_str(p, "version");

	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:s,s:I}",
	    "PackageId", jsonx_str(p, "id"),
	    "Name", fname ? fname : jsonx_str(p, "id"),
	    "Description", jsonx_str(p, "description") ? jsonx_str(p,
	    "description") : "",
	    "Version", v ? v : "",
	    "Creator", jsonx_str(p, "uploaded_by") ?
	    jsonx_str(p, "uploaded_by") : "",
	    "CreationDate", (json_int_t)mx_epoch_ms(jsonx_str(p,
	    "uploaded_at")),
	    "Status", "Succeeded",
	    "Size", (json_int_t)jsonx_int(p, "size", 0));
}
