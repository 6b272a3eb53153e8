/* The router: nginx run from its own prefix DIR/nginx (own pid, logs and
 * temp paths), listening on 127.0.0.1:<router port>, with one rendered
 * config for every environment. A change is rendered to a new file,
 * checked with `nginx -t`, renamed over the old one and applied with
 * SIGHUP — never a half-written config (SPEC §1).
 *
 * The config is built per environment from separate pieces, so other
 * areas add theirs without touching the rest: router_render_upstream(),
 * router_render_server() which calls router_piece_*() in order. */
#include "node.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "jsonx.h"
#include "log.h"
#include "router-settings.h"
#include "util.h"
#include "xmalloc.h"

#define NGINX_BIN "/usr/sbin/nginx"

static pthread_mutex_t router_lock = PTHREAD_MUTEX_INITIALIZER;

/* What the renderer needs of one environment, copied under node->lock so
 * rendering and nginx -t run without it. */
struct route_env {
	long long	 id;
	char		*name;
	json_t		*spec;
	enum env_state	 state;
	int		 ports[NUBO_INSTANCES_MAX];
	int		 nports;
};

static char *
router_path(const char *sub)
{
	return xasprintf("%s/nginx/%s", node->data_dir, sub);
}

/* A hostname safe to put in the config: [a-z0-9.-] only. */
static int
host_ok(const char *h)
{
	if (h == NULL || *h == '\0' || strlen(h) > 253)
		return 0;
	for (; *h; h++)
		if (!islower((unsigned char)*h) && !isdigit((unsigned char)*h)
		    && *h != '.' && *h != '-')
			return 0;
	return 1;
}

static void
router_render_main(struct buf *b)
{
	char *prefix = router_path("");

	buf_printf(b, "# rendered by nubod node — do not edit\n");
	if (node->uid != (uid_t)-1)
		buf_printf(b, "user %s;\n", node->user);
	buf_printf(b,
	    "worker_processes 2;\n"
	    "pid %snginx.pid;\n"
	    "error_log %slogs/error.log warn;\n"
	    "events { worker_connections 4096; }\n"
	    "http {\n"
	    "  access_log off;\n"
	    "  server_tokens off;\n"
	    "  client_body_temp_path %stmp/body;\n"
	    "  proxy_temp_path %stmp/proxy;\n"
	    "  fastcgi_temp_path %stmp/fastcgi;\n"
	    "  uwsgi_temp_path %stmp/uwsgi;\n"
	    "  scgi_temp_path %stmp/scgi;\n"
	    "  client_max_body_size 1g;\n"
	    "  server_names_hash_bucket_size 128;\n"
	    "  proxy_http_version 1.1;\n"
	    "  proxy_set_header Connection \"\";\n"
	    "  proxy_set_header Host $host;\n"
	    "  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
	    "  proxy_set_header X-Forwarded-Proto $scheme;\n"
	    "  proxy_set_header X-Real-IP $remote_addr;\n"
	    "  proxy_next_upstream error timeout http_502;\n"
	    "  default_type text/html;\n"
	    "  server {\n"
	    "    listen 127.0.0.1:%u default_server;\n"
	    "    server_name _;\n"
	    "    return 404 \"<!doctype html><title>Not found</title>"
	    "<h1>No app here</h1><p>No environment answers to this "
	    "hostname.</p>\\n\";\n"
	    "  }\n", prefix, prefix, prefix, prefix, prefix, prefix, prefix,
	    node->router_port);
	free(prefix);
}

/* upstream env_<id>: the healthy instances, round robin (v4 balancing). */
static void
router_render_upstream(struct buf *b, struct route_env *re)
{
	int i;

	if (re->nports == 0)
		return;
	buf_printf(b, "  upstream env_%lld {\n", re->id);
	for (i = 0; i < re->nports; i++)
		buf_printf(b, "    server 127.0.0.1:%d max_fails=1 "
		    "fail_timeout=2s;\n", re->ports[i]);
	buf_printf(b, "    keepalive 32;\n  }\n");
}

/* Pieces of a server block, in order. Settings add theirs here: custom
 * domains + TLS (server_name/listen), access restrictions (allow/deny,
 * auth_basic), custom response headers (add_header). */
static void
router_piece_names(struct buf *b, struct route_env *re)
{
	json_t *h;
	size_t i;

	buf_printf(b, "    server_name");
	json_array_foreach(json_object_get(re->spec, "hostnames"), i, h)
		if (host_ok(json_string_value(h)))
			buf_printf(b, " %s", json_string_value(h));
	buf_printf(b, ";\n");
}

/* What a location does: the maintenance page, the "not running" page or
 * the proxy to the instances (caller frees). */
static char *
router_piece_inner(struct route_env *re)
{
	if (jsonx_bool(re->spec, "maintenance", 0))
		return xasprintf("      return 503 \"<!doctype html><title>"
		    "Maintenance</title><h1>Down for maintenance</h1><p>%s is "
		    "being worked on and will be back soon.</p>\\n\";\n",
		    re->name);
	if (re->nports == 0)
		return xasprintf("      return 503 \"<!doctype html><title>Not "
		    "running</title><h1>This app is not running</h1><p>"
		    "Environment %s is %s.</p>\\n\";\n", re->name,
		    env_state_name(re->state));
	return xasprintf("      proxy_pass http://env_%lld;\n"
	    "      proxy_read_timeout 300s;\n", re->id);
}

/* The locations: `location /` and, with access restrictions (settings),
 * one per restricted path (router-settings.c). */
static void
router_piece_location(struct buf *b, struct route_env *re)
{
	char *inner = router_piece_inner(re);
	char *dir = xasprintf("%s/nginx", node->data_dir);

	router_settings_locations(b, dir, re->id, re->spec, inner);
	free(dir);
	free(inner);
}

static void
router_render_server(struct buf *b, struct route_env *re)
{
	char *inner, *dir;

	if (json_array_size(json_object_get(re->spec, "hostnames")) == 0)
		return;		/* no app linked: nothing to route */
	buf_printf(b, "  # environment %lld (%s)\n  server {\n"
	    "    listen 127.0.0.1:%u;\n", re->id, re->name, node->router_port);
	router_piece_names(b, re);
	router_settings_headers(b, re->spec);
	router_piece_location(b, re);
	buf_printf(b, "  }\n");
	/* custom domains, over TLS, with the same headers and locations */
	inner = router_piece_inner(re);
	dir = xasprintf("%s/nginx", node->data_dir);
	router_settings_tls_servers(b, dir, re->id, re->spec,
	    node->router_tls_port, inner);
	free(dir);
	free(inner);
}

/* The whole config for a snapshot of the environments. */
static char *
router_render(struct route_env *envs, int n)
{
	struct buf b;
	int i;

	buf_init(&b, 0);
	router_render_main(&b);
	for (i = 0; i < n; i++) {
		router_render_upstream(&b, &envs[i]);
		router_render_server(&b, &envs[i]);
	}
	buf_printf(&b, "}\n");
	return buf_detach(&b);
}

/* Env names are [A-Za-z][A-Za-z0-9-]*; anything else is dropped from the
 * page text. */
static char *
safe_text(const char *s)
{
	char *out = xstrdup(s ? s : "?"), *p;

	for (p = out; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != ' ')
			*p = '_';
	return out;
}

static int
router_snapshot(struct route_env **out)
{
	struct route_env *v = NULL;
	struct env *e;
	int n = 0, i;

	pthread_mutex_lock(&node->lock);
	node->router_dirty = 0;
	for (e = node->envs; e; e = e->next) {
		struct route_env *re;

		v = xrealloc(v, (size_t)(n + 1) * sizeof *v);
		re = &v[n++];
		memset(re, 0, sizeof *re);
		re->id = e->id;
		re->name = safe_text(env_name(e));
		re->spec = json_deep_copy(e->spec);
		re->state = e->state;
		if (e->state == ENV_RUNNING || e->state == ENV_STARTING ||
		    e->state == ENV_STOPPING)
			for (i = 0; i < NUBO_INSTANCES_MAX; i++)
				if (e->inst[i].state == INST_RUNNING &&
				    e->inst[i].pid > 0)
					re->ports[re->nports++] =
					    e->inst[i].port;
	}
	pthread_mutex_unlock(&node->lock);
	*out = v;
	return n;
}

static pid_t
router_pid(void)
{
	char *pidfile = router_path("nginx.pid");
	char *text = util_read_file(pidfile, 64, NULL), comm[64] = "";
	long long pid = 0;
	char *path;
	FILE *f;

	free(pidfile);
	if (text == NULL)
		return 0;
	text[strcspn(text, "\n")] = '\0';
	if (util_parse_int(text, 1, 1 << 22, &pid) == -1)
		pid = 0;
	free(text);
	if (pid == 0)
		return 0;
	path = xasprintf("/proc/%lld/comm", pid);
	f = fopen(path, "r");
	free(path);
	if (f == NULL)
		return 0;
	if (fgets(comm, sizeof comm, f) == NULL)
		comm[0] = '\0';
	fclose(f);
	return strncmp(comm, "nginx", 5) == 0 ? (pid_t)pid : 0;
}

/* The worker pids of the nginx master (for waiting out a reload). */
static int
router_workers(pid_t master, pid_t *out, int max)
{
	char path[64], buf[4096], *p, *end;
	FILE *f;
	int n = 0;

	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)master,
	    (int)master);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	if (fgets(buf, sizeof buf, f) == NULL)
		buf[0] = '\0';
	fclose(f);
	for (p = buf; n < max; p = end) {
		long v = strtol(p, &end, 10);

		if (end == p)
			break;
		out[n++] = (pid_t)v;
	}
	return n;
}

/* 1 while an old worker may still accept connections: it exists and has
 * not yet retitled itself "worker process is shutting down" (nginx does so
 * right before it closes its listening sockets). */
static int
router_worker_accepting(pid_t pid)
{
	char path[64], buf[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strstr(buf, "worker process") != NULL &&
	    strstr(buf, "shutting down") == NULL;
}

/* SIGHUP, then wait (at most 5 s) until no worker of the old generation
 * accepts connections, so that a caller answering "done" tells the truth. */
static int
router_hup(pid_t master)
{
	pid_t old[64];
	int nold = router_workers(master, old, 64), i, round;

	if (kill(master, SIGHUP) == -1)
		return error("cannot reload nginx (pid %d): %s", (int)master,
		    strerror(errno));
	if (nold < 0)
		return 0;	/* no /proc children: cannot tell */
	for (round = 0; round < 500; round++) {
		int busy = 0;

		usleep(10 * 1000);
		for (i = 0; i < nold; i++)
			if (router_worker_accepting(old[i]))
				busy = 1;
		if (!busy) {
			usleep(20 * 1000);
			return 0;
		}
	}
	log_warn("old nginx workers still running 5 s after a reload");
	return 0;
}

static int
router_nginx(const char *conf, int test, char *out, size_t outlen)
{
	char *prefix = router_path(""), *errlog = router_path("logs/error.log");
	char *argv[] = { NGINX_BIN, "-p", prefix, "-c", (char *)conf, "-e",
		errlog, test ? "-t" : NULL, test ? "-q" : NULL, NULL };
	int st = node_run(argv, 0, out, outlen);

	free(prefix);
	free(errlog);
	return st;
}

int
router_reload(void)
{
	struct route_env *envs = NULL;
	char *conf = router_path("nginx.conf"), *next = NULL, *text = NULL;
	char *old = NULL, out[4096];
	int n, i, rc = -1;
	pid_t pid;

	pthread_mutex_lock(&router_lock);
	n = router_snapshot(&envs);
	{
		char *dir = xasprintf("%s/nginx", node->data_dir);

		for (i = 0; i < n; i++)
			router_settings_files(dir, envs[i].id, envs[i].spec,
			    node->uid != (uid_t)-1 ? node->gid : (gid_t)-1);
		free(dir);
	}
	text = router_render(envs, n);
	old = util_read_file(conf, 16 * 1024 * 1024, NULL);
	pid = router_pid();
	if (old && strcmp(old, text) == 0 && pid > 0) {
		rc = 0;		/* nothing changed */
		goto out;
	}
	next = router_path("nginx.conf.new");
	if (util_write_file(next, text, strlen(text), 0644) == -1) {
		error("cannot write %s: %s", next, strerror(errno));
		goto out;
	}
	if (router_nginx(next, 1, out, sizeof out) != 0) {
		error("nginx refused the rendered config: %s", out);
		goto out;
	}
	if (util_rename_sync(next, conf) == -1) {
		error("cannot install %s: %s", conf, strerror(errno));
		goto out;
	}
	if (pid > 0) {
		if (router_hup(pid) == 0)
			rc = 0;
	} else if (router_nginx(conf, 0, NULL, 0) != 0) {
		error("nginx did not start; see %s/nginx/logs/error.log",
		    node->data_dir);
	} else {
		log_info("router (nginx) started on 127.0.0.1:%u",
		    node->router_port);
		rc = 0;
	}
out:
	if (rc == -1) {
		pthread_mutex_lock(&node->lock);
		node->router_dirty = 1;	/* try again */
		pthread_mutex_unlock(&node->lock);
	}
	for (i = 0; i < n; i++) {
		free(envs[i].name);
		json_decref(envs[i].spec);
	}
	free(envs);
	free(text);
	free(old);
	free(next);
	free(conf);
	pthread_mutex_unlock(&router_lock);
	return rc;
}

int
router_start(void)
{
	static const char *const dirs[] = { "logs", "tmp", "tmp/body",
		"tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", NULL };
	int i;

	for (i = 0; dirs[i]; i++) {
		char *p = router_path(dirs[i]);

		if (util_mkdir_p(p, 0755) == -1) {
			error("cannot create %s: %s", p, strerror(errno));
			free(p);
			return -1;
		}
		if (strncmp(dirs[i], "tmp", 3) == 0)
			node_chown(p);
		free(p);
	}
	if (router_pid() > 0)
		log_info("router (nginx) already running; adopted");
	return router_reload();
}

void
router_stop(void)
{
	pid_t pid = router_pid();
	int i;

	if (pid <= 0)
		return;
	kill(pid, SIGQUIT);
	for (i = 0; i < 50 && router_pid() == pid; i++)
		usleep(100 * 1000);
}
