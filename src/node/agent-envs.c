/* Agent API handlers for environments: the portal pushes specs and asks
 * for actions; start/stop/restart answer at once and the portal polls the
 * state, transport and clean finish before answering. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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
	char *router = router_public(0), *router_tls = router_public(1);

	pthread_mutex_lock(&node->lock);
	areply(r, 200, json_pack("{s:s?,s:s?,s:s?,s:s?,s:s,s:s,s:b}", "node",
	    node->name, "generation", node->generation, "router", router,
	    "router_tls", router_tls, "version", NODE_VERSION, "data_dir",
	    node->data_dir, "egress", node->egress));
	pthread_mutex_unlock(&node->lock);
	free(router);
	free(router_tls);
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
	if (e)
		e->put_at = util_mono();
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

/* The lines of text that instance n printed (nubo-init stamps them
 * "<time> [instance n] "), the last max of them; text is changed. */
static char *
logs_of_instance(char *text, long long n, long long max)
{
	char tag[48], *line, *next, **keep = NULL, *out;
	size_t nkeep = 0, i, len = 0, taglen;

	taglen = (size_t)snprintf(tag, sizeof tag, "[instance %lld] ", n);
	for (line = text; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		/* 2026-12-02T09:00:00Z [instance n] … */
		if (strlen(line) > 21 + taglen && line[20] == ' ' &&
		    strncmp(line + 21, tag, taglen) == 0) {
			keep = xrealloc(keep, (nkeep + 1) * sizeof *keep);
			keep[nkeep++] = line;
			len += strlen(line) + 1;
		}
	}
	i = nkeep > (size_t)max ? nkeep - (size_t)max : 0;
	out = xmalloc(len + 1);
	*out = '\0';
	for (len = 0; i < nkeep; i++) {
		size_t l = strlen(keep[i]);

		memcpy(out + len, keep[i], l);
		out[len + l] = '\n';
		len += l + 1;
	}
	out[len] = '\0';
	free(keep);
	return out;
}

/* GET /agent/v1/environments/{id}/logs?lines=N | ?offset=O [&instance=I]:
 * the last N lines, or everything after byte offset O (for --follow);
 * with instance, only what that instance printed (whole lines). Answers
 * {offset: where the next read starts, text}. */
void
agent_env_logs(struct areq *r)
{
	const char *ls = http_query(r->http, "lines");
	const char *os = http_query(r->http, "offset");
	const char *is = http_query(r->http, "instance");
	long long lines = 100, off = -1, inst = 0;
	char *path, *text = NULL, *only;
	struct stat st;
	int fd;

	if ((ls && util_parse_int(ls, 1, NUBO_LOG_LINES_MAX, &lines) == -1) ||
	    (os && util_parse_int(os, -1, 1LL << 50, &off) == -1) ||
	    (is && util_parse_int(is, 1, NUBO_INSTANCES_MAX, &inst) == -1)) {
		areply_error(r, 400, "BAD_REQUEST", "lines must be 1 to %d, "
		    "offset a byte offset and instance 1 to %d",
		    NUBO_LOG_LINES_MAX, NUBO_INSTANCES_MAX);
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
		text = env_log_tail(r->env, inst ? NUBO_LOG_LINES_MAX :
		    (int)lines);
		if (inst) {
			only = logs_of_instance(text, inst, lines);
			free(text);
			text = only;
		}
		areply(r, 200, json_pack("{s:I,s:s}", "offset",
		    (json_int_t)st.st_size, "text", text));
	} else {
		long long len;
		ssize_t got;
		char *end;

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
		if (inst) {
			/* whole lines only: the rest comes with the next read */
			end = memrchr(text, '\n', (size_t)got);
			got = end ? end - text + 1 : 0;
			text[got] = '\0';
			only = logs_of_instance(text, inst, NUBO_LOG_LINES_MAX);
			free(text);
			/* apps print anything: what is not UTF-8 goes as
			 * \xNN */
			text = util_utf8_clean(only);
			free(only);
		} else {
			/* a character cut by the chunk's end comes whole with
			 * the next read */
			got -= (ssize_t)util_utf8_cut(text, (size_t)got);
			text[got] = '\0';
			only = util_utf8_clean_n(text, (size_t)got);
			free(text);
			text = only;
		}
		areply(r, 200, json_pack("{s:I,s:s}", "offset",
		    (json_int_t)(off + got), "text", text));
	}
	free(text);
}

/* 1 when s is a date YYYY-MM-DD. */
static int
logs_valid_day(const char *s)
{
	int i;

	if (s == NULL || strlen(s) != 10)
		return 0;
	for (i = 0; i < 10; i++)
		if (i == 4 || i == 7 ? s[i] != '-' : !isdigit((unsigned char)
		    s[i]))
			return 0;
	return 1;
}

/* Copy the lines of path that begin with day ("YYYY-MM-DD", every line
 * of the app log begins with its time) to out, through a fixed buffer. */
static void
logs_copy_day(const char *path, const char *day, FILE *out)
{
	FILE *in = fopen(path, "re");
	char line[8192];
	int keep = 0, at_start = 1;

	if (in == NULL)
		return;
	while (fgets(line, sizeof line, in) != NULL) {
		size_t n = strlen(line);

		/* a line longer than the buffer goes as its start said */
		if (at_start)
			keep = strncmp(line, day, 10) == 0;
		if (keep)
			fwrite(line, 1, n, out);
		at_start = n > 0 && line[n - 1] == '\n';
	}
	fclose(in);
}

/* The lines of day of the log at path and its rotated copies, oldest
 * first, as a text file named after the environment, day and what. */
static void
logs_reply_day(struct areq *r, const char *path, const char *what)
{
	const char *day = http_param(r->http, "day");
	char *old, *fname;
	FILE *out;
	struct stat st;
	int i, fd;

	if (!logs_valid_day(day)) {
		areply_error(r, 400, "BAD_REQUEST", "'%s' is not a date "
		    "YYYY-MM-DD", day ? day : "");
		return;
	}
	if ((out = tmpfile()) == NULL) {
		areply_error(r, 500, "STORAGE_ERROR", "cannot gather the log: "
		    "%s", strerror(errno));
		return;
	}
	for (i = 3; i >= 1; i--) {
		old = xasprintf("%s.%d", path, i);
		logs_copy_day(old, day, out);
		free(old);
	}
	logs_copy_day(path, day, out);
	fflush(out);
	fd = dup(fileno(out));
	fclose(out);
	if (fd == -1 || fstat(fd, &st) == -1 || lseek(fd, 0, SEEK_SET) == -1) {
		if (fd != -1)
			close(fd);
		areply_error(r, 500, "STORAGE_ERROR", "cannot gather the log");
		return;
	}
	fname = xasprintf("%s-%s%s.log", env_name(r->env), what, day);
	http_reply_file(r->http, fd, (uint64_t)st.st_size,
	    "text/plain; charset=utf-8", fname);
	free(fname);
}

/* GET /agent/v1/environments/{id}/logs/{day} (signed URL): the app log's
 * lines of that day (UTC) as a text file (the Mendix Deploy API's
 * logs/{date}). */
void
agent_env_logs_day(struct areq *r)
{
	char *path = env_log_path(r->env);

	logs_reply_day(r, path, "");
	free(path);
}

/* GET /agent/v1/environments/{id}/access-logs/{day} (signed URL): the
 * router's access log lines of that day (the node's local time, nginx's
 * $time_iso8601) as a text file (access-logs/{date}). */
void
agent_env_access_logs_day(struct areq *r)
{
	char *path = router_access_log_path(r->env->id);

	logs_reply_day(r, path, "access-");
	free(path);
}
