/* One-off runs: a command in a fresh sandbox of an environment (nubo envs
 * run), and psql on its database (nubo envs psql), both run by the node
 * (runs.c) and read back by whoever started them. Starting a command
 * needs the transport permission on the environment, psql the settings
 * permission; both are in the activity log. And the database's
 * short-lived credentials (nubo envs db-url; the node's dbcred.c), with
 * the settings permission, logged too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "nodeclient.h"
#include "nubo_limits.h"
#include "portal.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* What the activity log keeps of a command: its words, at most 200
 * bytes. */
static char *
run_summary(json_t *cmd)
{
	char *out = xstrdup(""), *next;
	json_t *w;
	size_t i;

	json_array_foreach(cmd, i, w) {
		next = xasprintf("%s%s%s", out, i ? " " : "",
		    json_string_value(w) ? json_string_value(w) : "");
		free(out);
		out = next;
		if (strlen(out) > 200) {
			memcpy(out + 197, "...", 4);
			break;
		}
	}
	return out;
}

/* Ask the environment's node to run body's command for the caller;
 * replies 201 {id} or the node's refusal. */
static void
run_start(struct preq *r, json_t *row, json_t *body)
{
	json_t *resp = NULL;
	char *cause = NULL, *path;
	int st;

	json_object_set_new(body, "user", json_integer(r->who.user_id));
	path = xasprintf("/agent/v1/environments/%lld/runs", jsonx_int(row,
	    "id", 0));
	st = node_call(r->db, jsonx_int(row, "node_id", 0), "POST", path, body,
	    &resp, &cause);
	if (st == 201 && jsonx_str(resp, "id"))
		reply(r, 201, json_pack("{s:s,s:s}", "id", jsonx_str(resp,
		    "id"), "state", "running"));
	else if (st >= 400 && st < 500 && json_object_get(resp, "error"))
		reply(r, (unsigned)st, json_incref(resp));
	else
		reply_error(r, 502, "NODE_UNAVAILABLE", "cannot run in '%s': "
		    "%s", jsonx_str(row, "name"), cause ? cause : "?");
	json_decref(resp);
	free(cause);
	free(path);
}

/* POST /apps/{app}/environments/{env}/runs
 * {command: [words], timeout?: seconds, input?: text} */
void
envs_run_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "command", JT_ARRAY, 1 }, { "timeout", JT_INT, 0 },
		{ "input", JT_STRING, 0 }, { NULL } };
	json_t *row, *body;
	char *what;

	if (body_check(r, fields) == -1 || (row = envs_row(r)) == NULL)
		return;
	what = run_summary(json_object_get(r->body, "command"));
	body = json_deep_copy(r->body);
	r->node_id = jsonx_int(row, "node_id", 0);
	activity_log(r, "env.run", "ran '%s' in environment '%s'", what,
	    jsonx_str(row, "name"));
	run_start(r, row, body);
	json_decref(body);
	json_decref(row);
	free(what);
}

/* POST /apps/{app}/environments/{env}/psql {sql: text, timeout?}: the
 * statements through psql on the environment's database, as a run. */
void
envs_psql(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "sql", JT_STRING, 1 }, { "timeout", JT_INT, 0 }, { NULL } };
	json_t *row, *body;

	if (body_check(r, fields) == -1 || (row = envs_row(r)) == NULL)
		return;
	body = json_pack("{s:[s,s,s],s:O}", "command", "/bin/sh", "-c",
	    "exec psql -X -q -v ON_ERROR_STOP=1 \"$DATABASE_URL\"", "input",
	    json_object_get(r->body, "sql"));
	if (json_object_get(r->body, "timeout"))
		json_object_set(body, "timeout", json_object_get(r->body,
		    "timeout"));
	r->node_id = jsonx_int(row, "node_id", 0);
	activity_log(r, "env.psql", "ran psql on environment '%s'",
	    jsonx_str(row, "name"));
	run_start(r, row, body);
	json_decref(body);
	json_decref(row);
}

/* GET or DELETE the run, as its node answers it; only who started it
 * sees it (others: 404). */
static void
run_call(struct preq *r, const char *method)
{
	const char *run = preq_param(r, "run"), *off = preq_query(r, "offset");
	json_t *row, *resp = NULL;
	long long o = 0;
	char *cause = NULL, *path;
	int st;

	if (!util_valid_uuid(run) || (off && util_parse_int(off, 0, 1LL << 50,
	    &o) == -1)) {
		reply_error(r, 404, "RUN_NOT_FOUND", "no such run");
		return;
	}
	if ((row = envs_row(r)) == NULL)
		return;
	path = xasprintf("/agent/v1/environments/%lld/runs/%s?user=%lld"
	    "&offset=%lld", jsonx_int(row, "id", 0), run, r->who.user_id, o);
	st = node_call(r->db, jsonx_int(row, "node_id", 0), method, path, NULL,
	    &resp, &cause);
	if ((st == 200 || st == 202) && resp) {
		json_object_del(resp, "user");
		reply(r, (unsigned)st, json_incref(resp));
	} else if (st >= 400 && st < 500 && json_object_get(resp, "error")) {
		reply(r, (unsigned)st, json_incref(resp));
	} else {
		reply_error(r, 502, "NODE_UNAVAILABLE", "cannot reach the run "
		    "in '%s': %s", jsonx_str(row, "name"), cause ? cause :
		    "?");
	}
	json_decref(resp);
	json_decref(row);
	free(cause);
	free(path);
}

/* GET /apps/{app}/environments/{env}/runs/{run}?offset=N */
void
envs_run_show(struct preq *r)
{
	run_call(r, "GET");
}

/* DELETE /apps/{app}/environments/{env}/runs/{run} */
void
envs_run_stop(struct preq *r)
{
	run_call(r, "DELETE");
}

/* Where a credential's URL can be used: the node's own cluster listens on
 * the node's loopback only; a --pg server wherever it listens. */
static json_t *
dbcred_reachable(sqlite3 *db, json_t *row, json_t *cred)
{
	char *agent = store_text(db, "SELECT agent_url FROM nodes WHERE id = ?",
	    "i", jsonx_int(row, "node_id", 0));
	const char *h = jsonx_str(cred, "host");
	long long port = jsonx_int(cred, "port", 0);
	char host[256] = "NODE-HOST";
	json_t *out;

	/* the node's host as the portal reaches its agent */
	if (agent && strncmp(agent, "http://", 7) == 0)
		sscanf(agent + 7, "%255[^:/]", host);
	else if (agent && strncmp(agent, "https://", 8) == 0)
		sscanf(agent + 8, "%255[^:/]", host);
	if (strcmp(h, "127.0.0.1") == 0 || strcmp(h, "localhost") == 0)
		out = json_sprintf("on the host of node '%s' only, where its "
		    "PostgreSQL listens on %s:%lld; from elsewhere through an "
		    "SSH tunnel to that host (ssh -N -L %lld:127.0.0.1:%lld %s), "
		    "with the URL as it is", jsonx_str(row, "node"), h, port,
		    port, port, host);
	else
		out = json_sprintf("wherever %s:%lld, the PostgreSQL server of "
		    "node '%s', can be reached", h, port, jsonx_str(row,
		    "node"));
	free(agent);
	return out;
}

/* POST /apps/{app}/environments/{env}/db-credentials {ttl?: seconds}:
 * 201 {url, user, password, host, port, database, expires_at, reachable},
 * a login to the environment's database with its role's rights, refused
 * by PostgreSQL once expired. */
void
envs_db_credentials(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "ttl", JT_INT, 0 }, { NULL } };
	long long ttl;
	json_t *row, *resp = NULL, *body;
	char *cause = NULL, *path;
	int st;

	if (body_check(r, fields) == -1)
		return;
	ttl = jsonx_int(r->body, "ttl", NUBO_DBCRED_TTL);
	if (ttl < NUBO_DBCRED_TTL_MIN || ttl > NUBO_DBCRED_TTL_MAX) {
		reply_error(r, 400, "BAD_REQUEST", "ttl must be %d to %d "
		    "seconds", NUBO_DBCRED_TTL_MIN, NUBO_DBCRED_TTL_MAX);
		return;
	}
	if ((row = envs_row(r)) == NULL)
		return;
	path = xasprintf("/agent/v1/environments/%lld/db-credentials",
	    jsonx_int(row, "id", 0));
	body = json_pack("{s:I}", "ttl", (json_int_t)ttl);
	st = node_call(r->db, jsonx_int(row, "node_id", 0), "POST", path, body,
	    &resp, &cause);
	json_decref(body);
	if (st == 201 && jsonx_str(resp, "url") && jsonx_str(resp, "host")) {
		r->node_id = jsonx_int(row, "node_id", 0);
		activity_log(r, "env.db-url", "made database credential '%s' "
		    "of environment '%s', valid until %s", jsonx_str(resp,
		    "user"), jsonx_str(row, "name"), jsonx_str(resp,
		    "expires_at"));
		json_object_set_new(resp, "reachable", dbcred_reachable(r->db,
		    row, resp));
		reply(r, 201, json_incref(resp));
	} else if (st >= 400 && st < 500 && json_object_get(resp, "error")) {
		reply(r, (unsigned)st, json_incref(resp));
	} else {
		reply_error(r, 502, "NODE_UNAVAILABLE", "cannot make a database "
		    "credential for '%s': %s", jsonx_str(row, "name"), cause ?
		    cause : "?");
	}
	json_decref(resp);
	json_decref(row);
	free(cause);
	free(path);
}
