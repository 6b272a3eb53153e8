/* Agent API handlers for environments: the portal pushes specs and asks
 * for actions; start/stop/restart answer at once and the portal polls the
 * state, transport and clean finish before answering. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-routes.h"
#include "jsonx.h"
#include "log.h"
#include "util.h"
#include "xmalloc.h"

/* GET /agent/v1/node */
void
agent_node_show(struct areq *r)
{
	char router[64];

	snprintf(router, sizeof router, "127.0.0.1:%u", node->router_port);
	pthread_mutex_lock(&node->lock);
	areply(r, 200, json_pack("{s:s?,s:s?,s:s,s:s,s:s}", "node", node->name,
	    "generation", node->generation, "router", router, "version",
	    NODE_VERSION, "data_dir", node->data_dir));
	pthread_mutex_unlock(&node->lock);
}

/* GET /agent/v1/environments */
void
agent_env_list(struct areq *r)
{
	json_t *out = json_array();
	struct env *e;

	pthread_mutex_lock(&node->lock);
	for (e = node->envs; e; e = e->next)
		json_array_append_new(out, env_json(e));
	pthread_mutex_unlock(&node->lock);
	areply(r, 200, json_pack("{s:o}", "environments", out));
}

static void
reply_env(struct areq *r, struct env *e)
{
	json_t *j;

	pthread_mutex_lock(&node->lock);
	j = env_json(e);
	pthread_mutex_unlock(&node->lock);
	areply(r, 200, j);
}

/* PUT /agent/v1/environments/{id}: the desired spec. */
void
agent_env_put(struct areq *r)
{
	long long id = 0;
	struct env *e;
	int dirty;

	util_parse_int(http_param(r->http, "id"), 1, 1LL << 53, &id);
	if (jsonx_int(r->body, "id", id) != id || jsonx_str(r->body, "name") ==
	    NULL || !util_valid_env_name(jsonx_str(r->body, "name"))) {
		areply_error(r, 400, "BAD_REQUEST", "a spec needs this id and "
		    "a valid environment name");
		return;
	}
	json_object_set_new(r->body, "id", json_integer(id));
	pthread_mutex_lock(&node->lock);
	env_delete_forget(id);
	e = env_apply_spec(r->body, &dirty);
	pthread_mutex_unlock(&node->lock);
	if (e == NULL) {
		areply_error(r, 400, "BAD_REQUEST", "bad spec");
		return;
	}
	/* hostnames or maintenance changed: live before we answer */
	if (dirty && router_reload() == -1) {
		areply_error(r, 500, "ROUTER_ERROR", "the router refused the "
		    "new configuration; see the node's log");
		return;
	}
	reply_env(r, e);
}

/* GET /agent/v1/environments/{id} */
void
agent_env_show(struct areq *r)
{
	reply_env(r, r->env);
}

typedef int (*env_action)(struct env *, unsigned *, const char **, char **);

static void
agent_env_act(struct areq *r, env_action fn, int locked)
{
	unsigned status = 500;
	const char *code = "INTERNAL";
	char *cause = NULL;
	int rc;

	if (locked)
		pthread_mutex_lock(&node->lock);
	rc = fn(r->env, &status, &code, &cause);
	if (locked)
		pthread_mutex_unlock(&node->lock);
	supervisor_wake();
	if (rc == -1) {
		areply_error(r, status, code, "%s", cause ? cause : "failed");
		free(cause);
		return;
	}
	reply_env(r, r->env);
}

void agent_env_start(struct areq *r) { agent_env_act(r, env_start, 1); }
void agent_env_stop(struct areq *r) { agent_env_act(r, env_stop, 1); }
void agent_env_restart(struct areq *r) { agent_env_act(r, env_restart, 1); }
void agent_env_clean(struct areq *r) { agent_env_act(r, env_clean, 0); }

/* POST /agent/v1/environments/{id}/transport {package} */
void
agent_env_transport(struct areq *r)
{
	static const struct jfield fields[] = {
		{ "package", JT_STRING, 1 }, { NULL } };
	unsigned status = 500;
	const char *code = "INTERNAL";
	char *cause = NULL;
	char *path, *text;
	json_t *j, *manifest;

	if (abody_check(r, fields) == -1)
		return;
	if (env_transport(r->env, jsonx_str(r->body, "package"), &status,
	    &code, &cause) == -1) {
		areply_error(r, status, code, "%s", cause ? cause : "failed");
		free(cause);
		return;
	}
	/* the manifest goes back to the portal (constants, events) */
	path = xasprintf("%s/app/nubo.json", r->env->dir);
	text = util_read_file(path, NUBO_MANIFEST_MAX, NULL);
	manifest = text ? json_loads(text, 0, NULL) : NULL;
	pthread_mutex_lock(&node->lock);
	j = env_json(r->env);
	pthread_mutex_unlock(&node->lock);
	json_object_set_new(j, "manifest", manifest ? manifest : json_null());
	areply(r, 200, j);
	free(text);
	free(path);
}

/* GET /agent/v1/environments/{id}/logs?lines=N | ?offset=O: the last N
 * lines, or everything after byte offset O (for --follow); answers
 * {offset: where the next read starts, text}. */
void
agent_env_logs(struct areq *r)
{
	const char *ls = http_query(r->http, "lines");
	const char *os = http_query(r->http, "offset");
	long long lines = 100, off = -1;
	char *path, *text = NULL;
	struct stat st;
	int fd;

	if ((ls && util_parse_int(ls, 1, NUBO_LOG_LINES_MAX, &lines) == -1) ||
	    (os && util_parse_int(os, -1, 1LL << 50, &off) == -1)) {
		areply_error(r, 400, "BAD_REQUEST", "lines must be 1 to %d and "
		    "offset a byte offset", NUBO_LOG_LINES_MAX);
		return;
	}
	path = env_log_path(r->env);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd == -1 || fstat(fd, &st) == -1) {
		if (fd != -1)
			close(fd);
		areply(r, 200, json_pack("{s:i,s:s}", "offset", 0, "text", ""));
		return;
	}
	if (off < 0) {
		close(fd);
		text = env_log_tail(r->env, (int)lines);
		areply(r, 200, json_pack("{s:I,s:s}", "offset",
		    (json_int_t)st.st_size, "text", text));
	} else {
		long long len;
		ssize_t got;

		if (off > st.st_size)
			off = 0;	/* rotated since */
		len = st.st_size - off;
		if (len > NUBO_LOG_CHUNK_MAX)
			len = NUBO_LOG_CHUNK_MAX;
		text = xmalloc((size_t)len + 1);
		got = pread(fd, text, (size_t)len, off);
		close(fd);
		if (got < 0)
			got = 0;
		text[got] = '\0';
		areply(r, 200, json_pack("{s:I,s:s%}", "offset",
		    (json_int_t)(off + got), "text", text, (size_t)got));
	}
	free(text);
}
