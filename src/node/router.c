/* The router: nginx run from its own prefix DIR/nginx (own pid, logs and
 * temp paths), listening where --router-listen and --router-tls-listen
 * say (127.0.0.1:8080 by default), with one rendered config for every
 * environment. A change is rendered to a new file,
 * checked with `nginx -t`, renamed over the old one and applied with
 * SIGHUP — never a half-written config (SPEC §1).
 *
 * The config is built per environment from separate pieces, so other
 * areas add theirs without touching the rest: router_render_upstream(),
 * router_render_server() which calls router_piece_*() in order.
 *
 * One environment's bad configuration never freezes the router for the
 * others (a certificate nginx cannot load made every later `nginx -t`
 * fail, so no other app's restart was ever routed). Each environment
 * gives separate parts: its core (upstream and server on the router
 * port) and one TLS server per custom domain. When nginx refuses the
 * whole, every part not known to be good is checked on its own (`nginx
 * -t` of the main config plus that part, a domain's part with its
 * environment's core); the parts refused there are left out — a core is
 * replaced by a server answering its hostnames with an error page, a
 * domain is dropped — and the reason is kept on the environment
 * (env->router_error, shown by the portal), while the others carry on.
 * Before that, the main part is checked alone: when nginx refuses it
 * (its error log or pid file cannot be opened, a listener is wrong), the
 * fault is the node's, no part is blamed and the reload fails whole.
 * Verdicts are remembered by the part's hash, so a part that stays bad
 * costs no further checks. */
#include "node.h"
#include "acme.h"
#include "testhook.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "httpd.h"
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
	int		 healthy[NUBO_INSTANCES_MAX];	/* instances, 1-based */
	int		 nhealthy;
	char		*acme_crt;	/* its ACME certificate, or NULL */
	char		*acme_key;
};

static char *
router_path(const char *sub)
{
	return xasprintf("%s/nginx/%s", node->data_dir, sub);
}

static int router_nginx(const char *conf, int test, char *out, size_t outlen);

/* --- where the router listens --- */

int
router_listen_add(const char *addr, int tls)
{
	const char *colon = strrchr(addr, ':');
	struct router_listener *l;
	long long port;
	int i;

	if (http_listen_loopback(addr) == -1 || colon == NULL ||
	    util_parse_int(colon + 1, 1, 65535, &port) == -1)
		return error("bad router address '%s' (want IP:PORT, an IPv6 "
		    "address in brackets)", addr);
	for (i = 0; i < node->nrouter_listeners; i++)
		if (strcmp(node->router_listeners[i].addr, addr) == 0)
			return error("router address '%s' given twice", addr);
	node->router_listeners = xrealloc(node->router_listeners,
	    (size_t)(node->nrouter_listeners + 1) *
	    sizeof *node->router_listeners);
	l = &node->router_listeners[node->nrouter_listeners++];
	l->addr = xstrdup(addr);
	l->tls = tls;
	l->redirect = 0;
	return 0;
}

/* The first HTTPS listener, or NULL. */
static struct router_listener *
router_first_tls(void)
{
	int i;

	for (i = 0; i < node->nrouter_listeners; i++)
		if (node->router_listeners[i].tls)
			return &node->router_listeners[i];
	return NULL;
}

int
router_listen_setup(void)
{
	struct router_listener *t;
	char addr[32];
	int i, plain = 0, tls_given = 0;

	for (i = 0; i < node->nrouter_listeners; i++)
		tls_given |= node->router_listeners[i].tls;
	if (node->router_port) {
		snprintf(addr, sizeof addr, "127.0.0.1:%u", node->router_port);
		if (router_listen_add(addr, 0) == -1)
			return -1;
	}
	if (node->router_tls_port) {
		snprintf(addr, sizeof addr, "127.0.0.1:%u",
		    node->router_tls_port);
		if (router_listen_add(addr, 1) == -1)
			return -1;
	}
	for (i = 0; i < node->nrouter_listeners; i++)
		plain += !node->router_listeners[i].tls;
	/* the default of a one-machine cloud, also next to the custom
	 * domains' --router-tls-port; --router-tls-listen alone means
	 * HTTPS only */
	if (plain == 0 && !tls_given &&
	    router_listen_add("127.0.0.1:8080", 0) == -1)
		return -1;
	t = router_first_tls();
	for (i = 0; i < node->nrouter_listeners; i++) {
		struct router_listener *l = &node->router_listeners[i];

		if (l->tls || http_listen_loopback(l->addr) == 1)
			continue;
		/* the same rule as every listener, with what an operator
		 * expects of port 80: the way to the HTTPS listener */
		if (node->tls.insecure_http)
			log_warn("router: serving apps with plain HTTP on %s "
			    "(--insecure-http): their traffic crosses the "
			    "network in clear", l->addr);
		else if (t)
			l->redirect = 1;
		else
			return error("refusing plain HTTP for apps on %s, an "
			    "address outside loopback: give an HTTPS "
			    "listener (--router-tls-listen; this one then "
			    "redirects to it) or --insecure-http", l->addr);
	}
	if ((node->router_tls_cert == NULL) != (node->router_tls_key == NULL))
		return error("--router-tls-cert and --router-tls-key go "
		    "together");
	if (node->acme_directory && router_first_tls() == NULL)
		return error("--acme-directory needs an HTTPS listener "
		    "(--router-tls-listen or --router-tls-port)");
	if (node->router_tls_cert) {
		if (t == NULL)
			return error("--router-tls-cert needs an HTTPS listener "
			    "(--router-tls-listen or --router-tls-port)");
		if (http_tls_pair_check(node->router_tls_cert,
		    node->router_tls_key) == -1)
			return -1;
	}
	return 0;
}

/* The host of the agent's URL (caller frees), "127.0.0.1" without one. */
static char *
router_agent_host(void)
{
	const char *u = node->agent_url, *p;
	size_t n;

	if (u == NULL || (p = strstr(u, "://")) == NULL)
		return xstrdup("127.0.0.1");
	p += 3;
	n = *p == '[' ? strcspn(p, "]") + 1 : strcspn(p, ":/");
	return xstrndup(p, n);
}

char *
router_public(int tls)
{
	const char *colon;
	char *host, *out;
	int i;

	/* HTTPS listeners without the app hostnames' certificate serve
	 * custom domains only: users reach the apps in plain there */
	if (tls && node->router_tls_cert == NULL && !acme_enabled())
		return NULL;
	for (i = 0; i < node->nrouter_listeners; i++) {
		struct router_listener *l = &node->router_listeners[i];

		if (l->tls != tls || l->redirect)
			continue;
		colon = strrchr(l->addr, ':');
		if (strncmp(l->addr, "0.0.0.0:", 8) != 0 &&
		    strncmp(l->addr, "[::]:", 5) != 0)
			return xstrdup(l->addr);
		host = router_agent_host();
		out = xasprintf("%s%s", host, colon);
		free(host);
		return out;
	}
	return NULL;
}

char *
router_listen_text(void)
{
	struct buf b;
	int i;

	buf_init(&b, 0);
	for (i = 0; i < node->nrouter_listeners; i++) {
		struct router_listener *l = &node->router_listeners[i];

		buf_printf(&b, "%s%s (%s)", i ? ", " : "", l->addr, l->tls ?
		    "HTTPS" : l->redirect ? "redirects to HTTPS" : "plain HTTP");
	}
	if (node->router_tls_cert == NULL && !acme_enabled() &&
	    router_first_tls())
		buf_printf(&b, "; app hostnames not over HTTPS (no "
		    "--router-tls-cert), custom domains are");
	return buf_detach(&b);
}

/* listen lines of a server: the plain listeners that serve apps, and
 * with tls the HTTPS ones; how many. */
static int
router_listens(struct buf *b, int tls, const char *extra)
{
	int i, n = 0;

	for (i = 0; i < node->nrouter_listeners; i++) {
		struct router_listener *l = &node->router_listeners[i];

		if (l->tls ? !tls : l->redirect)
			continue;
		buf_printf(b, "    listen %s%s%s;\n", l->addr, l->tls ?
		    " ssl" : "", extra);
		n++;
	}
	return n;
}

/* The app hostnames' certificate as nginx loads it: a copy under
 * DIR/nginx/tls named by its content's hash, so a renewed file (read at
 * each reload: SIGHUP sends one) changes the config and nginx loads it;
 * a file that cannot be read keeps the last good copy. Under
 * router_lock. */
static char *router_cert_path, *router_key_path;

static char *
router_tls_copy(const char *src, const char *ext, unsigned mode)
{
	size_t len = 0;
	char *text = util_read_file(src, 1 << 20, &len), *h, *dir, *path;

	if (text == NULL) {
		log_warn("router: cannot read %s: %s (the last copy stays)",
		    src, strerror(errno));
		return NULL;
	}
	h = util_sha256_hex(text, len);
	h[16] = '\0';
	dir = router_path("tls");
	util_mkdir_p(dir, 0700);
	path = xasprintf("%s/app-hostnames-%s.%s", dir, h, ext);
	if (access(path, F_OK) != 0 &&
	    util_write_file(path, text, len, mode) == -1) {
		log_warn("router: cannot write %s: %s", path, strerror(errno));
		free(path);
		path = NULL;
	}
	explicit_bzero(text, len);
	free(text);
	free(h);
	free(dir);
	return path;
}

static void
router_tls_files(void)
{
	char *c, *k;

	if (node->router_tls_cert == NULL)
		return;
	c = router_tls_copy(node->router_tls_cert, "crt", 0600);
	k = router_tls_copy(node->router_tls_key, "key", 0600);
	if (c && k) {
		free(router_cert_path);
		free(router_key_path);
		router_cert_path = c;
		router_key_path = k;
	} else {
		free(c);
		free(k);
	}
}

/* The TLS lines of a server answering app hostnames. */
static void
router_tls_lines(struct buf *b, struct route_env *re)
{
	const char *c = router_cert_path, *k = router_key_path;

	/* the environment's own ACME certificate wins over the node-wide
	 * fallback */
	if (re && re->acme_crt) {
		c = re->acme_crt;
		k = re->acme_key;
	}
	if (c == NULL)
		return;
	buf_printf(b, "    ssl_certificate %s;\n    ssl_certificate_key %s;\n"
	    "    ssl_protocols TLSv1.2 TLSv1.3;\n", c, k);
}

/* A hostname safe to put in the config (and to order a certificate
 * for): [a-z0-9.-] only. */
int
router_host_ok(const char *h)
{
	if (h == NULL || *h == '\0' || strlen(h) > 253)
		return 0;
	for (; *h; h++)
		if (!islower((unsigned char)*h) && !isdigit((unsigned char)*h)
		    && *h != '.' && *h != '-')
			return 0;
	return 1;
}

/* Plain listeners outside loopback (without --insecure-http) send every
 * request to the first HTTPS listener: 308 keeps the method and body. */
static void
router_render_redirect(struct buf *b)
{
	struct router_listener *t = router_first_tls();
	const char *port = t ? strrchr(t->addr, ':') : NULL;
	int i, n = 0;

	if (port == NULL)
		return;		/* no HTTPS listener: nothing redirects */
	for (i = 0; i < node->nrouter_listeners; i++) {
		struct router_listener *l = &node->router_listeners[i];

		if (!l->redirect)
			continue;
		if (n++ == 0)
			buf_printf(b, "  server {\n");
		buf_printf(b, "    listen %s default_server;\n", l->addr);
	}
	if (n == 0)
		return;
	/* in a location: a server-level return would answer the ACME
	 * challenge with the redirect too */
	buf_printf(b, "    server_name _;\n%s"
	    "    location / {\n      return 308 https://$host%s$request_uri;\n"
	    "    }\n  }\n", acme_location(),
	    strcmp(port, ":443") == 0 ? "" : port);
}

/* nginx's worker processes (a reload is live once this many of the new
 * config accept connections, router_settled()). */
#define ROUTER_WORKERS		2
#define ROUTER_STR_(x)		#x
#define ROUTER_STR(x)		ROUTER_STR_(x)

static void
router_render_main(struct buf *b)
{
	char *prefix = router_path("");
	struct buf l;

	buf_printf(b, "# rendered by nubod node — do not edit\n");
	if (node->uid != (uid_t)-1)
		buf_printf(b, "user %s;\n", node->user);
	buf_printf(b,
	    "worker_processes " ROUTER_STR(ROUTER_WORKERS) ";\n"
	    "pid %snginx.pid;\n"
	    "error_log %slogs/error.log warn;\n"
	    "events { worker_connections 4096; }\n"
	    "http {\n"
	    "  access_log off;\n"
	    /* an environment's servers log to ROUTER_ACCESS_LOG (the Mendix
	     * Deploy API's access-logs/{date}: each line begins with its
	     * time, so a day's lines can be picked) */
	    "  log_format nubo_access '$time_iso8601 $remote_addr $host "
	    "\"$request\" $status $body_bytes_sent \"$http_referer\" "
	    "\"$http_user_agent\" $request_time';\n"
	    "  server_tokens off;\n"
	    "  client_body_temp_path %stmp/body;\n"
	    "  proxy_temp_path %stmp/proxy;\n"
	    "  fastcgi_temp_path %stmp/fastcgi;\n"
	    "  uwsgi_temp_path %stmp/uwsgi;\n"
	    "  scgi_temp_path %stmp/scgi;\n"
	    "  client_max_body_size 1g;\n"
	    /* an exact name takes its length + 2 + a pointer, aligned,
	     * and a bucket ends in a pointer: 512 holds the 253 characters
	     * sv_domain() allows (128 refused names over ~115) */
	    "  server_names_hash_bucket_size 512;\n"
	    "  proxy_http_version 1.1;\n"
	    "  proxy_set_header Connection \"\";\n"
	    "  proxy_set_header Host $host;\n"
	    "  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
	    "  proxy_set_header X-Forwarded-Proto $scheme;\n"
	    "  proxy_set_header X-Real-IP $remote_addr;\n"
	    "  proxy_next_upstream error timeout http_502;\n"
	    "  default_type text/html;\n", prefix, prefix, prefix, prefix,
	    prefix, prefix, prefix);
	free(prefix);
	buf_init(&l, 0);
	if (router_listens(&l, 0, " default_server") > 0)
		buf_printf(b, "  server {\n%s    server_name _;\n%s"
		    "    location / {\n"
		    "      return 404 \"<!doctype html><title>Not found</title>"
		    "<h1>No app here</h1><p>No environment answers to this "
		    "hostname.</p>\\n\";\n    }\n  }\n", buf_cstr(&l),
		    acme_location());
	buf_release(&l);
	router_render_redirect(b);
}

/* upstream env_<id>: the healthy instances, round robin (v4 balancing). */
static void
router_render_upstream(struct buf *b, struct route_env *re)
{
	int i;

	if (re->nhealthy == 0)
		return;
	buf_printf(b, "  upstream env_%lld {\n", re->id);
	for (i = 0; i < re->nhealthy; i++) {
		char *sock = sandbox_socket_path(re->id, re->healthy[i]);

		buf_printf(b, "    server unix:%s max_fails=1 "
		    "fail_timeout=2s;\n", sock);
		free(sock);
	}
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
		if (router_host_ok(json_string_value(h)))
			buf_printf(b, " %s", json_string_value(h));
	buf_printf(b, ";\n");
}

char *
router_access_log_path(long long env_id)
{
	char *sub = xasprintf("logs/env-%lld.access.log", env_id);
	char *path = router_path(sub);

	free(sub);
	return path;
}

void
router_access_log_remove(long long env_id)
{
	char *path = router_access_log_path(env_id), *rot;
	int i;

	/* env_log_rotate_file() keeps .1 to .3 */
	for (i = 0; i <= 3; i++) {
		rot = i ? xasprintf("%s.%d", path, i) : xstrdup(path);
		if (unlink(rot) == -1 && errno != ENOENT)
			log_warn("cannot remove %s: %s", rot, strerror(errno));
		free(rot);
	}
	free(path);
}

/* The environment's access log (router_access_log_path()). */
void
router_piece_access_log(struct buf *b, long long env_id)
{
	char *path = router_access_log_path(env_id);

	buf_printf(b, "    access_log %s nubo_access;\n", path);
	free(path);
}

/* 1 when re's locations proxy to its instances (with @nubo_down), else
 * they answer a page. */
static int
router_proxies(struct route_env *re)
{
	return !jsonx_bool(re->spec, "maintenance", 0) && re->nhealthy > 0;
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
	if (re->nhealthy == 0)
		return xasprintf("      return 503 \"<!doctype html><title>Not "
		    "running</title><h1>This app is not running</h1><p>"
		    "Environment %s is %s.</p>\\n\";\n", re->name,
		    env_state_name(re->state));
	return xasprintf("      proxy_pass http://env_%lld;\n"
	    "      proxy_read_timeout 300s;\n"
	    "      error_page 502 504 = @nubo_down;\n", re->id);
}

/* The locations: `location /` and, with access restrictions (settings),
 * one per restricted path (router-settings.c). */
static void
router_piece_location(struct buf *b, struct route_env *re)
{
	char *inner = router_piece_inner(re);
	char *dir = xasprintf("%s/nginx", node->data_dir);

	router_settings_locations(b, dir, re->id, re->spec, inner);
	/* no instance answers (stopped, starting, restarting, crashed):
	 * nubo's page, not nginx's 502; the same whatever the state, so
	 * that a start or a stop needs no reload */
	if (router_proxies(re))
		buf_printf(b, "    location @nubo_down {\n      return 503 "
		    "\"<!doctype html><title>Not answering</title><h1>This app "
		    "is not answering</h1><p>No instance of environment %s "
		    "answers: it is stopped, starting or restarting.</p>\\n"
		    "\";\n    }\n", re->name);
	free(dir);
	free(inner);
}

/* "server {" and the listen lines of a server answering an environment's
 * hostnames: the plain listeners serving apps and, with the app
 * hostnames' certificate, the HTTPS ones; nothing (0) when there are
 * none. */
static int
router_server_open(struct buf *b, struct route_env *re)
{
	struct buf l;
	int n;

	buf_init(&l, 0);
	n = router_listens(&l, router_cert_path != NULL || re->acme_crt !=
	    NULL, "");
	if (n > 0) {
		buf_printf(b, "  server {\n%s", buf_cstr(&l));
		router_tls_lines(b, re);
		buf_printf(b, "%s", acme_location());
	}
	buf_release(&l);
	return n;
}

/* The environment's core part: its upstream and its server on the router
 * port (cloud hostnames). Empty when no app is linked: nothing to route. */
static void
router_render_server(struct buf *b, struct route_env *re)
{
	if (json_array_size(json_object_get(re->spec, "hostnames")) == 0)
		return;
	router_render_upstream(b, re);
	buf_printf(b, "  # environment %lld (%s)\n", re->id, re->name);
	if (router_server_open(b, re) == 0)
		return;		/* HTTPS only, no certificate: domains only */
	router_piece_names(b, re);
	router_piece_access_log(b, re->id);
	router_settings_headers(b, re->spec);
	router_piece_location(b, re);
	buf_printf(b, "  }\n");
}

/* What answers an environment's hostnames when nginx refused its core:
 * an error page, built from nothing but checked hostnames. */
static void
router_render_refused(struct buf *b, struct route_env *re)
{
	buf_printf(b, "  # environment %lld (%s): left out, nginx refused "
	    "it\n", re->id, re->name);
	if (router_server_open(b, re) == 0)
		return;
	router_piece_names(b, re);
	buf_printf(b, "    location / {\n      return 503 \"<!doctype html>"
	    "<title>Configuration error</title><h1>This app cannot be "
	    "served</h1><p>The router could not load the configuration of "
	    "environment %s; its Technical Contact sees why.</p>\\n\";\n"
	    "    }\n  }\n", re->name);
}

/* On the TLS port, a name no custom domain serves (or one left out)
 * gets its handshake refused rather than another environment's server,
 * which nginx would otherwise pick as the port's default. */
static void
router_render_tls_default(struct buf *b)
{
	int i;

	if (router_first_tls() == NULL)
		return;
	buf_printf(b, "  server {\n");
	for (i = 0; i < node->nrouter_listeners; i++)
		if (node->router_listeners[i].tls)
			buf_printf(b, "    listen %s ssl default_server;\n",
			    node->router_listeners[i].addr);
	buf_printf(b, "    ssl_reject_handshake on;\n  }\n");
}

/* One part of the config (see the top of this file). */
struct part {
	long long	 env;		/* environment id */
	int		 ei;		/* its index in the snapshot */
	char		*domain;	/* NULL: the environment's core */
	char		*text;
	char		*hash;		/* sha256 of text */
	char		*error;		/* nginx's words when left out */
	int		 left_out;
	int		 checked;	/* checked on its own in this reload */
};

/* The last config nginx refused (or that could not be written) and
 * when: the same text is not checked again for ROUTER_RETRY_SECONDS. */
#define ROUTER_RETRY_SECONDS	2.0
static char *router_failed;
static double router_failed_at;

/* The config nginx serves (confirmed: started with it, or its old
 * workers stopped accepting after the SIGHUP) and the master that does;
 * why the last start failed; nginx's restarts (heal.c). Under
 * router_lock. */
static char *router_live;
static pid_t router_live_pid;
static char *router_start_error;
static struct heal router_heal = { .what = "router (nginx)" };

/* Verdicts of earlier reloads by part hash: JSON null for a part that
 * was live, the reason for one nginx refused on its own. Only the parts
 * of the latest reload are kept. Under router_lock. */
static json_t *router_known;

static void
router_part_add(struct part **v, int *n, struct route_env *re, int ei,
    const char *domain, struct buf *b)
{
	struct part *p;

	if (b->len == 0) {
		buf_release(b);
		return;
	}
	*v = xrealloc(*v, (size_t)(*n + 1) * sizeof **v);
	p = &(*v)[(*n)++];
	memset(p, 0, sizeof *p);
	p->env = re->id;
	p->ei = ei;
	p->domain = domain ? xstrdup(domain) : NULL;
	p->text = buf_detach(b);
	p->hash = util_sha256_hex(p->text, strlen(p->text));
}

/* Every environment's parts, in order: its core, then one per custom
 * domain. */
static int
router_parts(struct route_env *envs, int n, struct part **out)
{
	char *dir = xasprintf("%s/nginx", node->data_dir), *tls_listens;
	struct part *v = NULL;
	struct buf tl;
	int i, np = 0;

	/* a custom domain answers on every HTTPS listener */
	buf_init(&tl, 0);
	for (i = 0; i < node->nrouter_listeners; i++)
		if (node->router_listeners[i].tls)
			buf_printf(&tl, "    listen %s ssl;\n",
			    node->router_listeners[i].addr);
	tls_listens = buf_detach(&tl);

	for (i = 0; i < n; i++) {
		struct route_env *re = &envs[i];
		struct buf b;
		json_t *d;
		char *inner;
		size_t k;

		buf_init(&b, 0);
		router_render_server(&b, re);
		if (b.len == 0) {
			buf_release(&b);
			continue;	/* no app: no core, no domains */
		}
		router_part_add(&v, &np, re, i, NULL, &b);
		inner = router_piece_inner(re);
		json_array_foreach(json_object_get(re->spec, "domains"), k, d) {
			char *ac = NULL, *ak = NULL;

			buf_init(&b, 0);
			if (jsonx_str(d, "certificate") == NULL)
				acme_domain_files(router_settings_domain(d),
				    &ac, &ak);
			router_settings_tls_server(&b, dir, re->id, re->spec, d,
			    tls_listens, inner, ac, ak);
			free(ac);
			free(ak);
			router_part_add(&v, &np, re, i,
			    router_settings_domain(d), &b);
		}
		free(inner);
	}
	free(dir);
	free(tls_listens);
	*out = v;
	return np;
}

static void
router_parts_free(struct part *v, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		free(v[i].domain);
		free(v[i].text);
		free(v[i].hash);
		free(v[i].error);
	}
	free(v);
}

/* The core part of environment index ei, or NULL. */
static struct part *
router_core_of(struct part *v, int n, int ei)
{
	int i;

	for (i = 0; i < n; i++)
		if (v[i].ei == ei && v[i].domain == NULL)
			return &v[i];
	return NULL;
}

/* The whole config: the main part, then the parts not left out (an
 * environment whose core is left out answers with the error page, and
 * its domains are left out with it). With only >= 0, the config that
 * checks part only on its own: the main part, its environment's core
 * and, for a domain's part, that part. */
static char *
router_render(struct route_env *envs, struct part *v, int n, int only)
{
	struct buf b;
	int i;

	buf_init(&b, 0);
	router_render_main(&b);
	router_render_tls_default(&b);
	for (i = 0; i < n; i++) {
		struct part *core = router_core_of(v, n, v[i].ei);

		if (only >= 0) {
			if (v[i].ei == v[only].ei && (v[i].domain == NULL ||
			    i == only))
				buf_printf(&b, "%s", v[i].text);
		} else if (v[i].domain == NULL && v[i].left_out) {
			router_render_refused(&b, &envs[v[i].ei]);
		} else if (!v[i].left_out && !(core && core->left_out)) {
			buf_printf(&b, "%s", v[i].text);
		}
	}
	buf_printf(&b, "}\n");
	return buf_detach(&b);
}

/* nginx's first complaint in out, without the node's paths (members of
 * the environment read it) and without the config file's line (caller
 * frees). */
static char *
router_nginx_error(const char *out)
{
	const char *p = out, *pick = NULL, *marks[] = { "[emerg]", "[crit]",
	    "[alert]", "[error]", NULL };
	char *line, *prefix = xasprintf("%s/nginx/", node->data_dir), *s = NULL;
	size_t n;
	int i;

	for (i = 0; marks[i] && pick == NULL; i++)
		if ((p = strstr(out, marks[i])) != NULL)
			pick = p;
	if (pick == NULL)
		return xstrdup(*out ? out : "nginx -t failed");
	for (p = pick; p > out && p[-1] != '\n'; p--)
		;
	n = strcspn(p, "\n");
	line = xstrndup(p, n);
	if (strncmp(line, "nginx: ", 7) == 0)
		memmove(line, line + 7, strlen(line + 7) + 1);
	for (p = line; (p = strstr(p, " in /")) != NULL; p++)
		s = (char *)p;	/* the last: " in /…/nginx.conf.part:35" */
	if (s && strchr(s, ':') != NULL)
		*s = '\0';
	while ((s = strstr(line, prefix)) != NULL)
		memmove(s, s + strlen(prefix), strlen(s + strlen(prefix)) + 1);
	free(prefix);
	return line;
}

/* Check text with `nginx -t` (from file name under the prefix). 0, -1
 * when nginx refuses it, -2 when it cannot even be written; *why says
 * why (caller frees). */
static int
router_check(const char *name, const char *text, char **why)
{
	char *path = router_path(name), out[4096] = "";
	int rc = 0;

	*why = NULL;
	if (util_write_file(path, text, strlen(text), 0644) == -1) {
		*why = xasprintf("cannot write %s: %s", path, strerror(errno));
		rc = -2;
	} else if (router_nginx(path, 1, out, sizeof out) != 0) {
		*why = router_nginx_error(out);
		rc = -1;
	}
	free(path);
	return rc;
}

/* The whole was refused: check the parts on their own and leave out the
 * ones nginx refuses. A part live in an earlier reload is taken on trust
 * unless all is set. */
static void
router_isolate(struct route_env *envs, struct part *v, int n, int all)
{
	int i;

	for (i = 0; i < n; i++) {
		struct part *core = router_core_of(v, n, v[i].ei);
		json_t *known = json_object_get(router_known, v[i].hash);
		char *text, *why = NULL;

		if (v[i].left_out || v[i].checked || (!all && known &&
		    json_is_null(known)))
			continue;
		if (v[i].domain && core && core->left_out) {
			v[i].left_out = 1;
			v[i].error = xstrdup("the environment's own part was "
			    "refused");
			continue;
		}
		text = router_render(envs, v, n, i);
		v[i].checked = 1;
		if (router_check("nginx.conf.part", text, &why) != 0) {
			v[i].left_out = 1;
			v[i].error = why;
			why = NULL;
			/* t3e: a fault of the node's own that ends here
			 * would leave this part out for good */
			testhook_pause("router-part-refused");
		}
		free(text);
		free(why);
	}
}

/* Keep the verdicts of this reload for the next (only_files_ok: not for
 * environments whose files could not be written — their parts may pass
 * once they are). */
static void
router_remember(struct part *v, int n, const int *files_ok)
{
	json_t *k = json_object();
	int i;

	for (i = 0; i < n; i++) {
		if (!v[i].left_out)
			json_object_set_new(k, v[i].hash, json_null());
		else if (v[i].error && files_ok[v[i].ei])
			json_object_set_new(k, v[i].hash, json_string(
			    v[i].error));
	}
	json_decref(router_known);
	router_known = k;
}

/* Tell each environment of the snapshot what the router left out of it:
 * env->router_error (NULL when it is served whole) and
 * env->router_refused (its core, hence its hostnames, are not served). */
static void
router_report(struct route_env *envs, int n, struct part *v, int np,
    char **file_errors)
{
	int i, j;

	pthread_mutex_lock(&node->lock);
	for (i = 0; i < n; i++) {
		struct env *e = env_find(envs[i].id);
		struct buf b;
		int refused = 0;

		if (e == NULL)
			continue;
		buf_init(&b, 0);
		if (file_errors[i])
			buf_printf(&b, "%s", file_errors[i]);
		for (j = 0; j < np; j++) {
			if (v[j].ei != i || !v[j].left_out)
				continue;
			if (v[j].domain == NULL)
				refused = 1;
			buf_printf(&b, "%s", b.len ? "; " : "");
			if (v[j].domain)
				buf_printf(&b, "custom domain '%s' is not "
				    "served: ", v[j].domain);
			else
				buf_printf(&b, "the router cannot serve this "
				    "environment: ");
			buf_printf(&b, "%s", v[j].error ? v[j].error :
			    "nginx refused it");
		}
		if (b.len && (e->router_error == NULL ||
		    strcmp(e->router_error, buf_cstr(&b)) != 0))
			log_warn("environment %lld (%s): %s", e->id,
			    env_name(e), buf_cstr(&b));
		free(e->router_error);
		e->router_error = NULL;
		if (b.len)
			e->router_error = buf_detach(&b);
		else
			buf_release(&b);
		e->router_refused = refused;
	}
	pthread_mutex_unlock(&node->lock);
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
		if (acme_env_files(e->id, &re->acme_crt, &re->acme_key) == -1)
			re->acme_crt = re->acme_key = NULL;
		if (e->state == ENV_RUNNING || e->state == ENV_STARTING ||
		    e->state == ENV_STOPPING)
			for (i = 0; i < NUBO_INSTANCES_MAX; i++)
				if (e->inst[i].state == INST_RUNNING &&
				    e->inst[i].pid > 0)
					re->healthy[re->nhealthy++] = i + 1;
		/* an environment of one instance is routed to its socket in
		 * every state but not deployed: a start or a stop changes
		 * nothing nginx serves, so neither waits for a reload (0.15 s,
		 * 0.1 s of it nginx's master waiting before the old workers
		 * stop), and a start is running once healthy. While nothing
		 * listens there, @nubo_down answers nginx's 502. Alone in its
		 * upstream, the socket is never marked failed */
		if (re->nhealthy == 0 && e->state != ENV_NOTDEPLOYED &&
		    e->package != NULL && env_instances_wanted(e) == 1)
			re->healthy[re->nhealthy++] = 1;
	}
	pthread_mutex_unlock(&node->lock);
	*out = v;
	return n;
}

static pid_t
router_pid(void)
{
	char *pidfile = router_path("nginx.pid");
	pid_t pid = heal_pidfile(pidfile, "nginx");

	free(pidfile);
	return pid;
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

/* The master's children as last seen (workers, cache helpers), with
 * their start times, also in DIR/nginx/workers so that a master killed
 * while the agent was away, or `stop-all`, still finds them: orphaned
 * workers keep the router's port and serve the old config. Under
 * router_lock. */
#define ROUTER_KIDS_MAX	64
static pid_t router_kids[ROUTER_KIDS_MAX];
static unsigned long long router_kids_start[ROUTER_KIDS_MAX];
static int router_nkids = -1;	/* -1: not loaded yet */

static void
router_kids_save(void)
{
	char *path = router_path("workers");
	struct buf b;
	int i;

	buf_init(&b, 0);
	for (i = 0; i < router_nkids; i++)
		buf_printf(&b, "%d %llu\n", (int)router_kids[i],
		    router_kids_start[i]);
	if (util_write_file(path, b.len ? b.data : "", b.len, 0600) == -1)
		log_warn("cannot write %s: %s", path, strerror(errno));
	buf_release(&b);
	free(path);
}

static void
router_kids_load(void)
{
	char *path = router_path("workers");
	char *text = util_read_file(path, 65536, NULL), *line, *save = NULL;

	free(path);
	router_nkids = 0;
	for (line = text ? strtok_r(text, "\n", &save) : NULL; line &&
	    router_nkids < ROUTER_KIDS_MAX; line = strtok_r(NULL, "\n",
	    &save)) {
		int pid;
		unsigned long long start;

		if (sscanf(line, "%d %llu", &pid, &start) == 2 && pid > 0) {
			router_kids[router_nkids] = pid;
			router_kids_start[router_nkids++] = start;
		}
	}
	free(text);
}

/* Record the live master's children (when they changed). */
static void
router_kids_record(pid_t master)
{
	pid_t now[ROUTER_KIDS_MAX];
	int n = router_workers(master, now, ROUTER_KIDS_MAX), i, same;

	/* none: a master dying (or not yet started) — keep what we know */
	if (n <= 0)
		return;
	if (router_nkids == -1)
		router_kids_load();
	same = n == router_nkids;
	for (i = 0; same && i < n; i++)
		same = now[i] == router_kids[i];
	if (same)
		return;
	for (i = 0; i < n; i++) {
		router_kids[i] = now[i];
		router_kids_start[i] = spawn_starttime(now[i]);
	}
	router_nkids = n;
	router_kids_save();
}

/* The session of a process (/proc/<pid>/stat's sixth field), 0 when
 * gone. */
static pid_t
router_session_of(pid_t pid)
{
	char buf[1024], *p, state;
	long ppid, pgrp, sid;

	if (spawn_proc_read(pid, "stat", buf, sizeof buf) == -1 ||
	    (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1, " %c %ld %ld %ld", &state, &ppid, &pgrp,
	    &sid) != 4)
		return 0;
	return (pid_t)sid;
}

/* Add to the recorded children the nginx processes of the session of the
 * master nginx.pid still names (nginx's master makes its own session and
 * its workers stay in it after it died): workers spawned by a reload the
 * master died in, before they could be recorded, hold the port too. */
static void
router_kids_add_session(void)
{
	char *pidfile = router_path("nginx.pid");
	char *text = util_read_file(pidfile, 64, NULL);
	long long master = 0;
	DIR *d;
	struct dirent *de;

	free(pidfile);
	if (text) {
		text[strcspn(text, "\n")] = '\0';
		if (util_parse_int(text, 2, 1 << 22, &master) == -1)
			master = 0;
		free(text);
	}
	if (master == 0 || heal_proc_is((pid_t)master, "nginx") ||
	    (d = opendir("/proc")) == NULL)
		return;		/* no master named, or it lives */
	while ((de = readdir(d)) != NULL && router_nkids < ROUTER_KIDS_MAX) {
		long long pid;
		int i, known = 0;

		if (util_parse_int(de->d_name, 2, 1 << 22, &pid) == -1 ||
		    router_session_of((pid_t)pid) != (pid_t)master ||
		    !heal_proc_is((pid_t)pid, "nginx"))
			continue;
		for (i = 0; i < router_nkids; i++)
			known |= router_kids[i] == (pid_t)pid;
		if (known)
			continue;
		router_kids[router_nkids] = (pid_t)pid;
		router_kids_start[router_nkids++] = spawn_starttime((pid_t)pid);
	}
	closedir(d);
}

/* Kill the children a dead master left, recorded or found in its session
 * (each still the same process: its start time matches): SIGTERM,
 * SIGKILL after 1 s. */
static void
router_kids_kill(void)
{
	int i, round, left = 0;

	if (router_nkids == -1)
		router_kids_load();
	router_kids_add_session();
	for (i = 0; i < router_nkids; i++)
		if (router_kids_start[i] && spawn_starttime(router_kids[i]) ==
		    router_kids_start[i] && heal_proc_is(router_kids[i],
		    "nginx")) {
			kill(router_kids[i], SIGTERM);
			left++;
		} else {
			router_kids_start[i] = 0;
		}
	if (left)
		log_warn("router: stopping %d nginx worker%s the dead master "
		    "left", left, left == 1 ? "" : "s");
	for (round = 0; left && round < 40; round++) {
		left = 0;
		for (i = 0; i < router_nkids; i++)
			if (router_kids_start[i] && spawn_starttime(
			    router_kids[i]) == router_kids_start[i])
				left++;
		if (left == 0)
			break;
		if (round == 10)
			for (i = 0; i < router_nkids; i++)
				if (router_kids_start[i] && spawn_starttime(
				    router_kids[i]) == router_kids_start[i])
					kill(router_kids[i], SIGKILL);
		usleep(100 * 1000);
	}
	router_nkids = 0;
	router_kids_save();
}

/* 1 while an old worker may still accept connections: it exists and has
 * not yet retitled itself "worker process is shutting down" (nginx does so
 * right before it closes its listening sockets). */
static int
router_worker_accepting(pid_t pid)
{
	char buf[256];

	if (spawn_proc_read(pid, "cmdline", buf, sizeof buf) == -1)
		return 0;
	return strstr(buf, "worker process") != NULL &&
	    strstr(buf, "shutting down") == NULL;
}

/* Now in clock ticks since boot, as /proc/<pid>/stat counts a process's
 * start time. */
static unsigned long long
router_ticks_now(void)
{
	struct timespec ts;
	long hz = sysconf(_SC_CLK_TCK);

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (unsigned long long)ts.tv_sec * (unsigned long long)hz +
	    (unsigned long long)ts.tv_nsec / (1000000000ULL /
	    (unsigned long long)hz);
}

/* Wait (5 s at most) until nginx's master serves with workers started
 * at or after tick `since` only, ROUTER_WORKERS of them accepting: every
 * worker of an older config has stopped accepting. Judging by start time
 * rather than by the workers seen before a reload tells a reload from an
 * earlier one (or the start) still under way, whose workers would serve
 * the config before ours. 0, or -1 when it did not happen or the master
 * died meanwhile (at once: the heal thread restarts it, router_watch(),
 * once this lets go of the router's lock); 0 when /proc shows no
 * children (cannot tell). */
static int
router_settled(pid_t master, unsigned long long since)
{
	pid_t kids[64];
	int n, i, round;

	for (round = 0; round < 500; round++) {
		int fresh = 0, stale = 0;

		if (spawn_starttime(master) == 0)
			return -1;	/* the master died meanwhile */
		/* the workers it spawns are recorded as they come: should it
		 * die now, router_kids_kill() knows every one holding the port */
		router_kids_record(master);
		if ((n = router_workers(master, kids, 64)) < 0)
			return 0;
		for (i = 0; i < n; i++) {
			if (!router_worker_accepting(kids[i]))
				continue;
			if (spawn_starttime(kids[i]) >= since)
				fresh++;
			else
				stale++;
		}
		if (stale == 0 && fresh >= ROUTER_WORKERS) {
			usleep(20 * 1000);
			return 0;
		}
		usleep(10 * 1000);
	}
	return -1;
}

/* SIGHUP, then wait (at most 5 s) until nginx serves the new config
 * only, so that a caller answering "done" tells the truth. */
static int
router_hup(pid_t master)
{
	unsigned long long since = router_ticks_now();

	if (kill(master, SIGHUP) == -1)
		return error("cannot reload nginx (pid %d): %s", (int)master,
		    strerror(errno));
	/* t3g kills the master here, its new workers spawning */
	testhook_pause("router-reload-wait");
	if (router_settled(master, since) == 0)
		return 0;
	/* nginx did not apply it (or has not yet): not live */
	return error("nginx (pid %d) did not apply the new configuration "
	    "within 5 s: workers of an older one still accept connections",
	    (int)master);
}

/* nginx's last complaint in its error log (caller frees). */
static char *
router_log_tail(void)
{
	char *path = router_path("logs/error.log"), buf[4096], *p, *last;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size;
	ssize_t n = 0;

	free(path);
	if (fd != -1) {
		size = lseek(fd, 0, SEEK_END);
		if (size > (off_t)sizeof buf - 1)
			lseek(fd, size - (off_t)sizeof buf + 1, SEEK_SET);
		else
			lseek(fd, 0, SEEK_SET);
		n = read(fd, buf, sizeof buf - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	for (last = NULL, p = buf; (p = strstr(p, "[emerg]")) != NULL; p++)
		last = p;
	if (last == NULL)
		return xstrdup("nginx did not start (nothing in its log)");
	while (last > buf && last[-1] != '\n')
		last--;
	return router_nginx_error(last);
}

static int
router_nginx(const char *conf, int test, char *out, size_t outlen)
{
	char *prefix = router_path(""), *errlog = router_path("logs/error.log");
	char *argv[] = { NGINX_BIN, "-p", prefix, "-c", (char *)conf, "-e",
		errlog, test ? "-t" : NULL, test ? "-q" : NULL, NULL };
	int st = node_run(argv, NODE_RUN_ROOT, out, outlen);

	free(prefix);
	free(errlog);
	return st;
}

int
router_reload(void)
{
	struct route_env *envs = NULL;
	struct part *parts = NULL;
	char *conf = router_path("nginx.conf"), *next = NULL, *text = NULL;
	char *why = NULL, *first = NULL, **file_errors = NULL;
	int *files_ok = NULL;
	int n, np = 0, i, st, rc = -1;
	pid_t pid;

	pthread_mutex_lock(&router_lock);
	router_tls_files();
	n = router_snapshot(&envs);
	file_errors = xcalloc((size_t)n + 1, sizeof *file_errors);
	files_ok = xcalloc((size_t)n + 1, sizeof *files_ok);
	{
		char *dir = xasprintf("%s/nginx", node->data_dir);

		for (i = 0; i < n; i++) {
			files_ok[i] = router_settings_files(dir, envs[i].id,
			    envs[i].spec, node->uid != (uid_t)-1 ? node->gid :
			    (gid_t)-1) == 0;
			if (!files_ok[i])
				file_errors[i] = xstrdup("the router cannot "
				    "write its certificate or access files "
				    "(see the node's log)");
		}
		free(dir);
	}
	np = router_parts(envs, n, &parts);
	/* parts nginx refused before, unchanged since, stay out unchecked */
	for (i = 0; i < np; i++) {
		json_t *k = json_object_get(router_known, parts[i].hash);

		if (json_is_string(k)) {
			parts[i].left_out = 1;
			parts[i].error = xstrdup(json_string_value(k));
		}
	}
	text = router_render(envs, parts, np, -1);
	pid = router_pid();
	if (router_live && strcmp(router_live, text) == 0 && pid > 0 &&
	    pid == router_live_pid) {
		rc = 0;		/* nothing changed */
		goto report;
	}
	/* nginx is down and its restart waits (back-off, router_watch) */
	if (pid <= 0 && util_mono() < router_heal.next_try)
		goto out;
	/* workers a dead master left hold the port and serve the old
	 * config: they go first, whatever comes of the start */
	if (pid <= 0)
		router_kids_kill();
	/* a config that failed moments ago is not checked again at once
	 * (the supervisor retries a failed reload on every pass) */
	if (router_failed && strcmp(router_failed, text) == 0 &&
	    util_mono() - router_failed_at < ROUTER_RETRY_SECONDS)
		goto out;
	first = xstrdup(text);
	next = router_path("nginx.conf.new");
	if ((st = router_check("nginx.conf.new", text, &why)) == -2) {
		error("router: %s", why);
		goto failed;
	}
	if (st == -1) {
		int all;

		/* nginx refuses the main part alone (its log, its pid file,
		 * a listener): no environment's part is to blame, and none
		 * is checked or left out for it */
		char *main_text = router_render(envs, parts, 0, -1);
		char *main_why = NULL;

		st = router_check("nginx.conf.part", main_text, &main_why);
		free(main_text);
		if (st != 0) {
			error("nginx refuses the router's main configuration, "
			    "before any environment's part: %s", main_why);
			free(why);
			why = main_why;
			goto failed;
		}
		/* isolate, first trusting parts that were live, then not */
		for (all = 0; all <= 1; all++) {
			log_warn("nginx refused the rendered config (%s); "
			    "checking each environment's part on its own",
			    why);
			free(why);
			router_isolate(envs, parts, np, all);
			free(text);
			text = router_render(envs, parts, np, -1);
			if ((st = router_check("nginx.conf.new", text, &why)) !=
			    -1)
				break;
		}
		if (st != 0) {
			error("nginx refused the rendered config even without "
			    "the parts it refuses on their own: %s", why);
			goto failed;
		}
	}
	if (util_rename_sync(next, conf) == -1) {
		error("cannot install %s: %s", conf, strerror(errno));
		goto out;
	}
	if (pid > 0) {
		int out = 0;

		if (router_hup(pid) == -1)
			goto failed;
		for (i = 0; i < np; i++)
			out += parts[i].left_out;
		log_info("router: nginx serves the new configuration (%d "
		    "part%s, %d left out)", np, np == 1 ? "" : "s", out);
		rc = 0;
	} else {
		free(router_start_error);
		router_start_error = NULL;
		/* no output captured: the daemon would keep the pipe */
		if (router_nginx(conf, 0, NULL, 0) != 0) {
			router_start_error = router_log_tail();
			error("nginx did not start: %s", router_start_error);
			goto out;
		}
		log_info("router (nginx) started");
		/* its workers all up before a reload may follow */
		if (router_pid() > 0 && router_settled(router_pid(), 0) == -1)
			log_warn("router: nginx's workers did not all start "
			    "within 5 s");
		rc = 0;
	}
	free(router_live);
	router_live = xstrdup(text);
	router_live_pid = router_pid();
	if (router_live_pid > 0)
		router_kids_record(router_live_pid);
report:
	if (rc == 0) {
		char *dir = xasprintf("%s/nginx", node->data_dir);

		/* nginx has loaded router_live: what it no longer names goes
		 * (a removed domain's key, a removed user's htpasswd) */
		for (i = 0; i < n; i++)
			router_settings_prune(dir, envs[i].id, router_live);
		free(dir);
		router_remember(parts, np, files_ok);
		router_report(envs, n, parts, np, file_errors);
		free(router_failed);
		router_failed = NULL;
	}
	goto out;
failed:
	if (pid <= 0) {
		free(router_start_error);
		router_start_error = xstrdup(why ? why : "nginx refused the "
		    "configuration");
	}
	free(router_failed);
	router_failed = first;
	first = NULL;
	router_failed_at = util_mono();
out:
	if (rc == -1) {
		pthread_mutex_lock(&node->lock);
		node->router_dirty = 1;	/* try again */
		pthread_mutex_unlock(&node->lock);
	}
	for (i = 0; i < n; i++) {
		free(envs[i].name);
		free(envs[i].acme_crt);
		free(envs[i].acme_key);
		json_decref(envs[i].spec);
		free(file_errors[i]);
	}
	router_parts_free(parts, np);
	free(file_errors);
	free(files_ok);
	free(envs);
	free(text);
	free(next);
	free(why);
	free(first);
	free(conf);
	pthread_mutex_unlock(&router_lock);
	return rc;
}

/* Why the last start of nginx failed (caller holds router_lock and
 * frees). */
static char *
router_why_down(void)
{
	return xstrdup(router_start_error ? router_start_error : "see the "
	    "node's log");
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
	if (router_reload() == 0)
		return 0;
	/* the agent runs on without its router: the heal thread
	 * (router_watch) tries again with back-off, environments say
	 * degraded meanwhile; a running nginx keeps its config and the
	 * supervisor retries the reload */
	pthread_mutex_lock(&router_lock);
	if (router_pid() <= 0) {
		char *cause = router_why_down();

		pthread_mutex_unlock(&router_lock);
		router_heal.slot = &node->router_down;
		heal_not_started(&router_heal, cause);
		free(cause);
		return 0;
	}
	pthread_mutex_unlock(&router_lock);
	return 0;
}

void
router_stop(void)
{
	pid_t pid;
	int i;

	pthread_mutex_lock(&router_lock);
	pid = router_pid();
	if (pid > 0) {
		router_kids_record(pid);
		kill(pid, SIGQUIT);
		for (i = 0; i < 50 && router_pid() == pid; i++)
			usleep(100 * 1000);
	}
	/* its workers go with it; those of a master killed before stay */
	router_kids_kill();
	pthread_mutex_unlock(&router_lock);
}

void
router_watch(void)
{
	pid_t pid;
	int rc;

	router_heal.slot = &node->router_down;
	pthread_mutex_lock(&router_lock);
	pid = router_pid();
	if (pid > 0) {
		router_kids_record(pid);
		pthread_mutex_unlock(&router_lock);
		heal_alive(&router_heal);
		return;
	}
	/* the workers a dead master left hold the port with the old
	 * config: they go at once, whatever the back-off */
	router_kids_kill();
	pthread_mutex_unlock(&router_lock);
	if (!heal_gone(&router_heal, "its master process is gone"))
		return;
	/* a reload with no master kills the workers it left and starts
	 * nginx with the whole config */
	rc = router_reload();
	pthread_mutex_lock(&router_lock);
	pid = router_pid();
	if (rc == 0 && pid > 0) {
		pthread_mutex_unlock(&router_lock);
		heal_tried(&router_heal, NULL);
		return;
	}
	{
		char *cause = router_why_down();

		pthread_mutex_unlock(&router_lock);
		heal_tried(&router_heal, cause);
		free(cause);
	}
}
