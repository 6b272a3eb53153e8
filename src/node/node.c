/* `nubod node`: start-up, the OS user, registration with the portal and
 * the heartbeat; `nubod node stop-all` stops everything a node runs. */
#include "node.h"
#include "acme.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "buf.h"
#include "jsonx.h"
#include "log.h"
#include "opts.h"
#include "testhook.h"
#include "tls.h"
#include "util.h"
#include "xmalloc.h"

struct node *node;

/* Every option of `nubod node` (and `node stop-all`): this table parses
 * the command line and --config files, and prints --help and nubod(8). */
static const struct opt node_opts[] = {
	OPT_ROW_DEFAULT_CONFIG(NUBO_CONFDIR "/node.conf"),
	{ "data", "DIR", 'd', 0,
	    "the node's data folder: environments, packages, its PostgreSQL "
	    "cluster and nginx. Required (the installed node.conf says "
	    "/var/lib/nubo/node)" },
	{ "portal", "URL", 'P', 0,
	    "the portal's URL (https://HOST:PORT across hosts). Required" },
	{ "token", "TOKEN", 't', OPT_SECRET,
	    "the node's token, from 'nubo admin nodes create'. Required" },
	{ "listen", "IP:PORT", 'l', 0,
	    "where the agent listens for the portal (default 127.0.0.1:7080). "
	    "An address outside 127.0.0.0/8 and ::1 needs --tls-cert or "
	    "--insecure-http" },
	{ "url", "URL", 'u', 0,
	    "the agent's URL as the portal and other nodes reach it (default "
	    "http(s)://<listen>)" },
	{ "tls-cert", "FILE", 'C', 0,
	    "the agent's certificate (PEM): it speaks HTTPS only (read again on "
	    "SIGHUP) and presents it to the portal, which pins its key" },
	OPT_ROW_TLS_KEY,
	{ "portal-ca", "FILE", 'K', 0,
	    "the CA an https --portal's certificate is verified against "
	    "(default: the system's)" },
	OPT_ROW_INSECURE_HTTP,
	{ "router-listen", "IP:PORT", 'L', OPT_REPEAT,
	    "where the router (nginx) serves apps over plain HTTP; repeatable. "
	    "Outside loopback it redirects to the first HTTPS listener, is "
	    "refused without one, and serves apps only with --insecure-http "
	    "(default 127.0.0.1:8080 unless a router address is given)" },
	{ "router-tls-listen", "IP:PORT", 'H', OPT_REPEAT,
	    "where the router serves apps over HTTPS; repeatable. App hostnames "
	    "with --router-tls-cert, custom domains with their own certificates" },
	{ "router-tls-cert", "FILE", 'B', 0,
	    "the certificate (PEM) for the app hostnames <app>-<env>.<domain>; "
	    "read again on SIGHUP. Goes with --router-tls-key" },
	{ "router-tls-key", "FILE", 'X', 0,
	    "the router certificate's private key (PEM)" },
	{ "acme-directory", "URL", 'a', 0,
	    "an ACME (RFC 8555) directory (https): the node obtains and renews "
	    "certificates for the app hostnames there, answering HTTP-01 on "
	    "its plain router listener; a --router-tls-cert stays the fallback" },
	{ "acme-email", "ADDRESS", 'm', 0,
	    "the contact address of the node's ACME account" },
	{ "acme-ca", "FILE", 'k', 0,
	    "the CA (PEM) the ACME server's certificate is verified against "
	    "(default: the system's), for a private ACME server" },
	{ "router-port", "PORT", 'r', 0,
	    "the router's plain HTTP on 127.0.0.1:PORT (as --router-listen "
	    "127.0.0.1:PORT)" },
	{ "router-tls-port", "PORT", 'R', 0,
	    "the router's HTTPS on 127.0.0.1:PORT (as --router-tls-listen)" },
	{ "pg-port", "PORT", 'g', 0,
	    "the port of the node's own PostgreSQL cluster under DIR, on "
	    "127.0.0.1 (default 5433)" },
	{ "pg", "URI", 'G', OPT_SECRET,
	    "use this PostgreSQL server (postgresql://...) instead of a cluster "
	    "of the node's own" },
	{ "user", "NAME", 'U', 0,
	    "the system user that runs nginx; NAME-pg runs PostgreSQL (made "
	    "when missing; default nubo)" },
	{ "ports", "LO-HI", 'p', 0,
	    "the ports app instances get, 1024 to 65535 (default 20000-32767)" },
	{ "uids", "LO-HI", 'i', 0,
	    "the user ids environments run as, 100000 to 2000000000 (default "
	    "700000-799999)" },
	{ "egress", NULL, 'E', 0,
	    "instances reach the outside world too, through slirp4netns, never "
	    "the host's loopback (default: their database only)" },
	{ "start-timeout", "SECONDS", 'T', 0,
	    "how long an instance has to answer its health path, 1 to 3600 "
	    "(default 60)" },
	{ "stop-grace", "SECONDS", 'S', 0,
	    "how long a stopping instance has after SIGTERM, 1 to 3600 "
	    "(default 10)" },
	{ "package-quota", "SIZE", 'Q', 0,
	    "the node's package repository's size (e.g. 20G; default 20G)" },
	{ "app-package-quota", "SIZE", 'A', 0,
	    "the packages of one app (default: one package's maximum size)" },
	{ "env-disk-max", "MB", 'D', 0,
	    "the most disk an environment's data may take; a restore must fit "
	    "(default: no limit)" },
	{ "json", NULL, 'J', OPT_CMDLINE,
	    "fsck: print what the check found as JSON" },
	OPT_ROW_HELP,
	OPT_ROW_END };

const struct opts_cmd node_cmd = {
	"node",
	"node [--config FILE] --data DIR --portal URL --token TOKEN\n"
	"    [--listen IP:PORT] [--tls-cert FILE --tls-key FILE] [options]\n"
	"node stop-all --data DIR\n"
	"node fsck --data DIR [--json]\n"
	"node convert-snapshots --data DIR",
	"run a cloud node: its agent, the apps' instances in sandboxes, its "
	"router (nginx) and PostgreSQL; 'stop-all' stops the apps, the router "
	"and the database a node left running; 'fsck' re-hashes the node's "
	"snapshot store, moves damaged blobs to DIR/store/quarantine and "
	"says which snapshots they break (safe while the node runs; exit "
	"status 0 whole, 1 damage found, 2 it could not run; the node also "
	"runs it weekly); 'convert-snapshots' puts the snapshots kept as "
	"whole archives into the snapshot store (safe while the node runs)",
	"An instance gets 512 MB of memory unless scaled (nubo envs scale "
	"--memory); a one-off run (nubo envs run) 600 s. The node runs as root: "
	"it makes a system user for every environment.",
	node_opts, NUBO_CONFDIR "/node.conf", 0,
};

void
node_chown(const char *path)
{
	if (node->uid != (uid_t)-1 && chown(path, node->uid, node->gid) == -1)
		log_warn("cannot chown %s: %s", path, strerror(errno));
}

int
node_run(char *const argv[], int as, char *out, size_t outlen)
{
	int p[2] = { -1, -1 }, status;
	size_t got = 0;
	pid_t pid;

	/* Without out, output goes to /dev/null: a daemon started this way
	 * (nginx, pg_ctl) must not keep our pipe open. */
	if (out && pipe2(p, O_CLOEXEC) == -1)
		return -1;
	pid = fork();
	if (pid == -1) {
		if (out) {
			close(p[0]);
			close(p[1]);
		}
		return -1;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		setsid();
		dup2(devnull, 0);
		dup2(out ? p[1] : devnull, 1);
		dup2(out ? p[1] : devnull, 2);
		close_range(3, ~0U, 0);
		if (as == NODE_RUN_PG && node->pg_uid != (uid_t)-1) {
			if (setgroups(0, NULL) == -1 ||
			    setgid(node->pg_gid) == -1 ||
			    setuid(node->pg_uid) == -1)
				_exit(126);
		}
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], argv);
		_exit(127);
	}
	if (out) {
		close(p[1]);
		for (;;) {
			char tmp[4096];
			ssize_t n = read(p[0], tmp, sizeof tmp);

			if (n <= 0)
				break;
			if (got + 1 < outlen) {
				size_t k = (size_t)n < outlen - 1 - got ?
				    (size_t)n : outlen - 1 - got;

				memcpy(out + got, tmp, k);
				got += k;
			}
		}
		close(p[0]);
		if (outlen)
			out[got] = '\0';
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return status;
}

/* A system user, created when missing. */
static struct passwd *
node_system_user(const char *name)
{
	struct passwd *pw = getpwnam(name);

	if (pw == NULL) {
		char *argv[] = { "/usr/sbin/useradd", "--system",
			"--no-create-home", "--shell", "/usr/sbin/nologin",
			(char *)name, NULL };
		char out[512];
		int st = node_run(argv, NODE_RUN_ROOT, out, sizeof out);

		pw = getpwnam(name);
		if (pw == NULL) {
			error("cannot create OS user '%s' (status %d): %s",
			    name, st, out);
			return NULL;
		}
		log_info("created OS user '%s'", name);
	}
	return pw;
}

/* The OS users: --user for nginx's workers, --user + "-pg" for the
 * PostgreSQL cluster; each environment gets its own (sandbox.c). Not
 * root: everything runs as ourselves. */
static int
node_user_setup(void)
{
	struct passwd *pw;
	char *pgname;

	node->uid = node->pg_uid = (uid_t)-1;
	node->gid = node->pg_gid = (gid_t)-1;
	if (geteuid() != 0)
		return 0;
	if ((pw = node_system_user(node->user)) == NULL)
		return -1;
	node->uid = pw->pw_uid;
	node->gid = pw->pw_gid;
	pgname = xasprintf("%s-pg", node->user);
	pw = node_system_user(pgname);
	free(pgname);
	if (pw == NULL)
		return -1;
	node->pg_uid = pw->pw_uid;
	node->pg_gid = pw->pw_gid;
	return 0;
}

static int
node_load_agent(void)
{
	char *path = xasprintf("%s/agent.json", node->data_dir);
	char *text = util_read_file(path, 65536, NULL);
	json_t *j;

	free(path);
	if (text == NULL)
		return 0;
	j = json_loads(text, 0, NULL);
	free(text);
	if (!json_is_object(j)) {
		json_decref(j);
		return error("agent.json is damaged");
	}
	if (jsonx_str(j, "portal_secret"))
		node->secret = xstrdup(jsonx_str(j, "portal_secret"));
	if (jsonx_str(j, "node"))
		node->name = xstrdup(jsonx_str(j, "node"));
	if (jsonx_str(j, "generation"))
		node->generation = xstrdup(jsonx_str(j, "generation"));
	if (jsonx_str(j, "cloud_domain"))
		node->cloud_domain = xstrdup(jsonx_str(j, "cloud_domain"));
	json_decref(j);
	return 0;
}

/* Caller holds the lock. */
int
node_save_agent(void)
{
	char *path = xasprintf("%s/agent.json", node->data_dir);
	json_t *j = json_pack("{s:s?,s:s?,s:s?,s:s?,s:s}",
	    "portal_secret", node->secret, "node", node->name,
	    "generation", node->generation, "cloud_domain", node->cloud_domain,
	    "portal", node->portal_url);
	char *text = json_dumps(j, JSON_INDENT(2));
	int rc = util_write_file(path, text, strlen(text), 0600);

	free(text);
	free(path);
	json_decref(j);
	return rc;
}

static size_t
on_body(char *data, size_t size, size_t n, void *cls)
{
	return buf_append(cls, data, size * n) == 0 ? size * n : 0;
}

/* Why the last call of the heartbeat thread reached no portal. */
static __thread char portal_error[CURL_ERROR_SIZE];

int
portal_post(const char *path, json_t *body, json_t **out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct buf resp;
	char *url = xasprintf("%s/api/v1%s", node->portal_url, path);
	char *auth = xasprintf("Authorization: Bearer %s", node->token);
	char *text = json_dumps(body, JSON_COMPACT);
	long status = -1;

	*out = NULL;
	buf_init(&resp, 16 * 1024 * 1024);
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	tls_curl_url(c, url, node->portal_ca);
	if (node->tls.cert) {
		/* read at each call: a renewed certificate goes at once */
		curl_easy_setopt(c, CURLOPT_SSLCERT, node->tls.cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, node->tls.key);
	}
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	portal_error[0] = '\0';
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, portal_error);
	if (curl_easy_perform(c) == CURLE_OK) {
		char *ip = NULL;

		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (resp.len)
			*out = json_loadb(resp.data, resp.len, 0, NULL);
		/* the portal's calls may use the connections kept for it */
		if (status == 200 && node->http &&
		    curl_easy_getinfo(c, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK &&
		    ip)
			http_server_trust(node->http, ip);
	}
	buf_release(&resp);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	free(text);
	free(auth);
	free(url);
	return (int)status;
}

/* 1 when the portal PUT environment `id`'s spec at or after `asked`
 * (util_mono()): the list of specs asked for then may have been read
 * before that change was stored, and would undo it until the next
 * heartbeat (a custom domain just added unserved, maintenance just
 * turned on lifted). The next heartbeat brings it. Caller holds the
 * lock. */
static int
node_put_since(long long id, double asked)
{
	struct env *e = env_find(id);

	return e && e->put_at >= asked;
}

/* The specs of every environment the portal has, as it answered a call
 * made at `asked` (util_mono()). */
static void
node_apply_specs(json_t *specs, double asked)
{
	json_t *spec;
	size_t i;

	struct env *e;

	if (!json_is_array(specs))
		return;
	/* t3g: a heartbeat answered before a change the portal PUT */
	testhook_pause("heartbeat-answered");
	pthread_mutex_lock(&node->lock);
	/* Not an environment deleted here (DELETE .../environments/{id})
	 * that the portal still listed when it answered. */
	json_array_foreach(specs, i, spec)
		if (json_is_object(spec) &&
		    !env_delete_tombstoned(jsonx_int(spec, "id", 0)) &&
		    !node_put_since(jsonx_int(spec, "id", 0), asked))
			env_apply_spec(spec, NULL);
	env_delete_listed(specs);
	/* The list is complete: an environment the portal no longer has
	 * stops serving. Its data stays on disk until the portal deletes it
	 * (DELETE /agent/v1/environments/{id}: src/node/env-delete.c). */
	for (e = node->envs; e; e = e->next) {
		int listed = 0;

		json_array_foreach(specs, i, spec)
			if (jsonx_int(spec, "id", 0) == e->id)
				listed = 1;
		if (listed || e->removed || e->put_at >= asked)
			continue;
		e->removed = 1;
		if (json_array_size(json_object_get(e->spec, "hostnames")))
			node->router_dirty = 1;
		json_object_set_new(e->spec, "hostnames", json_array());
		if (e->want_running || e->state == ENV_STARTING ||
		    e->state == ENV_RUNNING) {
			unsigned st;
			const char *code;
			char *cause = NULL;

			env_log(e, "the portal no longer has this environment; "
			    "stopping it");
			env_stop(e, &st, &code, &cause);
			free(cause);
		}
		env_save(e);
	}
	pthread_mutex_unlock(&node->lock);
}

static int
node_register(void)
{
	char *router = router_public(0), *router_tls = router_public(1);
	json_t *body, *resp = NULL;
	double asked;
	int st, rc = -1;

	/* absent rather than null (a portal takes no null for a string);
	 * router_tls: a field older portals ignore (ARCHITECTURE) */
	body = json_pack("{s:s,s:s}", "url", node->agent_url, "version",
	    NODE_VERSION);
	if (router)
		json_object_set_new(body, "router", json_string(router));
	if (router_tls)
		json_object_set_new(body, "router_tls", json_string(router_tls));
	free(router);
	free(router_tls);
	asked = util_mono();
	st = portal_post("/agent/register", body, &resp);
	json_decref(body);
	if (st != 200) {
		const char *msg = jsonx_str(json_object_get(resp, "error"),
		    "message");

		log_warn("cannot register with %s: %s%s", node->portal_url,
		    st == -1 ? "portal unreachable: " : "", st == -1 ?
		    portal_error : msg ? msg : "error");
		goto out;
	}
	pthread_mutex_lock(&node->lock);
	free(node->secret);
	free(node->name);
	free(node->generation);
	free(node->cloud_domain);
	node->secret = xstrdup(jsonx_str(resp, "portal_secret") ?
	    jsonx_str(resp, "portal_secret") : "");
	node->name = xstrdup(jsonx_str(resp, "node") ?
	    jsonx_str(resp, "node") : "?");
	node->generation = xstrdup(jsonx_str(resp, "generation") ?
	    jsonx_str(resp, "generation") : "v3");
	node->cloud_domain = xstrdup(jsonx_str(resp, "cloud_domain") ?
	    jsonx_str(resp, "cloud_domain") : "nubo.localhost");
	node->registered = 1;
	node->router_dirty = 1;
	node_save_agent();
	pthread_mutex_unlock(&node->lock);
	node_apply_specs(json_object_get(resp, "environments"), asked);
	log_info("registered as node '%s' (%s) with %s", node->name,
	    node->generation, node->portal_url);
	rc = 0;
out:
	json_decref(resp);
	return rc;
}

static unsigned hb_failing;

/* The disk's figures for the heartbeat; a warning in the log when free
 * space falls below twice the reserve (once, until it is back). */
static json_t *
node_disk(void)
{
	static int was_low;
	json_t *d = space_json();
	int low = jsonx_bool(d, "low", 0);

	if (low && !was_low)
		log_warn("the node's disk is nearly full: %lld MB free of %lld "
		    "MB (work that would leave less than %lld MB is refused)",
		    (long long)(jsonx_int(d, "free_bytes", 0) >> 20),
		    (long long)(jsonx_int(d, "total_bytes", 0) >> 20),
		    (long long)(jsonx_int(d, "reserve_bytes", 0) >> 20));
	was_low = low;
	return d;
}

static void
node_heartbeat(void)
{
	json_t *envs = json_array(), *body, *resp = NULL;
	struct env *e;
	double asked;
	int st;

	pthread_mutex_lock(&node->lock);
	for (e = node->envs; e; e = e->next)
		json_array_append_new(envs, env_json(e));
	pthread_mutex_unlock(&node->lock);
	body = json_pack("{s:o,s:o,s:b}", "environments", envs, "disk",
	    node_disk(), "egress", node->egress);
	asked = util_mono();
	st = portal_post("/agent/status", body, &resp);
	json_decref(body);
	if (st == 200) {
		if (hb_failing)
			log_info("heartbeat to %s works again", node->portal_url);
		hb_failing = 0;
		node_apply_specs(json_object_get(resp, "environments"),
		    asked);
	} else if (hb_failing++ % 30 == 0) {
		const char *msg = jsonx_str(json_object_get(resp, "error"),
		    "message");

		log_warn("heartbeat to %s failed: %s%s", node->portal_url,
		    st == -1 ? "portal unreachable: " : "", st == -1 ?
		    portal_error : msg ? msg : "error");
	}
	json_decref(resp);
	testhook_mark("heartbeat");
}

static volatile sig_atomic_t node_stopping, node_reload;

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		node_reload = 1;
	else
		node_stopping = 1;
}

static void *
heartbeat_thread(void *arg)
{
	(void)arg;
	while (!node_stopping) {
		if (!node->registered)
			node_register();
		else
			node_heartbeat();
		sleep(NODE_HEARTBEAT_SECONDS);
	}
	return NULL;
}

/* The key the portal pins, for the operator who compares it with what
 * 'nubo nodes show' says. */
static void
node_log_pin(void)
{
	char pin[TLS_PIN_LEN], *cause = NULL;

	if (node->tls.cert == NULL)
		return;
	if (tls_pin_file(node->tls.cert, pin, sizeof pin, &cause) == -1) {
		log_warn("%s", cause);
		free(cause);
		return;
	}
	log_info("agent certificate key: %s", pin);
}

/* "LO-HI" within [min,max], LO < HI. */
static int
parse_range(const char *s, long long min, long long max, long long *lo,
    long long *hi)
{
	char *dash = strchr(s, '-'), *a;
	int rc;

	if (dash == NULL)
		return -1;
	a = xstrndup(s, (size_t)(dash - s));
	rc = util_parse_int(a, min, max, lo) == -1 ||
	    util_parse_int(dash + 1, min, max, hi) == -1 || *lo >= *hi ?
	    -1 : 0;
	free(a);
	return rc;
}

/* Stop every app instance, the router and the database of a data dir. */
static int
node_stop_all(void)
{
	struct env *e;

	if (env_load() == -1)
		return 1;
	for (e = node->envs; e; e = e->next) {
		supervisor_adopt(e);
		supervisor_kill_all(e);
		sandbox_uid_release(e->uid, e->id);
	}
	router_stop();
	pg_stop();
	return 0;
}

static int
node_dirs(void)
{
	/* root's; others may only pass through (bubblewrap binds an
	 * environment's folders as its user, nginx's workers reach the
	 * instances' sockets in run/) */
	static const char *const subs[] = { "envs", "packages", NULL };
	int i;

	if (util_mkdir_p(node->data_dir, 0711) == -1)
		return error("cannot create %s: %s", node->data_dir,
		    strerror(errno));
	chmod(node->data_dir, 0711);
	for (i = 0; subs[i]; i++) {
		char *p = xasprintf("%s/%s", node->data_dir, subs[i]);

		chmod(p, i == 0 ? 0711 : 0700);
		if (util_mkdir_p(p, i == 0 ? 0711 : 0700) == -1) {
			error("cannot create %s: %s", p, strerror(errno));
			free(p);
			return -1;
		}
		free(p);
	}
	return 0;
}

int
node_main(int argc, char **argv)
{
	pthread_t hb;
	int c, stop_all = 0, fsck = 0, json = 0, convert = 0;
	long long n, lo, hi;
	static struct opts o;	/* its values stay until the node stops */
	char *arg;
	char *cause = NULL;

	node = xcalloc(1, sizeof *node);
	pthread_mutex_init(&node->lock, NULL);
	node->listen = "127.0.0.1:7080";
	node->user = "nubo";
	node->pg_port = 5433;
	node->port_lo = 20000;
	node->port_hi = 32767;
	node->uid_lo = 700000;
	node->uid_hi = 799999;
	node->start_timeout = 60;
	node->stop_grace = 10;
	node->package_quota = 20LL * 1024 * 1024 * 1024;
	node->app_package_quota = NUBO_PACKAGE_MAX;
	if (argc > 1 && strcmp(argv[1], "stop-all") == 0) {
		stop_all = 1;
		argv++;
		argc--;
	} else if (argc > 1 && strcmp(argv[1], "fsck") == 0) {
		fsck = 1;
		argv++;
		argc--;
	} else if (argc > 1 && strcmp(argv[1], "convert-snapshots") == 0) {
		convert = 1;
		argv++;
		argc--;
	}
	if (opts_parse(&o, &node_cmd, argc, argv, &cause) == -1)
		goto usage;
	while ((c = opts_next(&o, &arg)) != -1) {
		switch (c) {
		case 'd': node->data_dir = arg; break;
		case 'P': node->portal_url = arg; break;
		case 't': node->token = arg; break;
		case 'l':
			if (http_listen_loopback(arg) == -1) {
				cause = opts_bad_value(&o, "IP:PORT");
				goto usage;
			}
			node->listen = arg;
			break;
		case 'u': node->agent_url = arg; break;
		case 'G': node->pg_uri = arg; break;
		case 'U': node->user = arg; break;
		case 'C': node->tls.cert = arg; break;
		case 'Y': node->tls.key = arg; break;
		case 'K': node->portal_ca = arg; break;
		case 'I': node->tls.insecure_http = 1; break;
		case 'B': node->router_tls_cert = arg; break;
		case 'X': node->router_tls_key = arg; break;
		case 'a':
			if (strncmp(arg, "https://", 8) != 0 ||
			    strpbrk(arg, " \"\\\n") != NULL) {
				cause = opts_bad_value(&o, "an https:// URL");
				goto usage;
			}
			node->acme_directory = arg;
			break;
		case 'm':
			if (strchr(arg, '@') == NULL || strlen(arg) > 254 ||
			    strpbrk(arg, " \"\\\n<>,") != NULL) {
				cause = opts_bad_value(&o, "an e-mail address");
				goto usage;
			}
			node->acme_email = arg;
			break;
		case 'k': node->acme_ca = arg; break;
		case 'L':
		case 'H':
			if (router_listen_add(arg, c == 'H') == -1) {
				cause = opts_bad_value(&o, "IP:PORT (an IPv6 "
				    "address in brackets), each address once");
				goto usage;
			}
			break;
		case 'r':
		case 'g':
		case 'R':
			if (util_parse_int(arg, 1, 65535, &n) == -1) {
				cause = opts_bad_value(&o, "a port from 1 to "
				    "65535");
				goto usage;
			}
			if (c == 'r')
				node->router_port = (unsigned)n;
			else if (c == 'R')
				node->router_tls_port = (unsigned)n;
			else
				node->pg_port = (unsigned)n;
			break;
		case 'p':
			if (parse_range(arg, 1024, 65535, &lo, &hi) == -1) {
				cause = opts_bad_value(&o, "LO-HI, ports from "
				    "1024 to 65535, LO < HI");
				goto usage;
			}
			node->port_lo = (int)lo;
			node->port_hi = (int)hi;
			break;
		case 'i':
			if (parse_range(arg, 100000, 2000000000, &lo, &hi)
			    == -1) {
				cause = opts_bad_value(&o, "LO-HI, user ids "
				    "from 100000 to 2000000000, LO < HI");
				goto usage;
			}
			node->uid_lo = (uid_t)lo;
			node->uid_hi = (uid_t)hi;
			break;
		case 'T':
		case 'S':
			if (util_parse_int(arg, 1, 3600, &n) == -1) {
				cause = opts_bad_value(&o, "seconds from 1 to "
				    "3600");
				goto usage;
			}
			if (c == 'T')
				node->start_timeout = (int)n;
			else
				node->stop_grace = (int)n;
			break;
		case 'Q':
			if (packages_parse_size(arg, &node->package_quota) ==
			    -1) {
				cause = opts_bad_value(&o, "a size such as "
				    "500M or 20G");
				goto usage;
			}
			break;
		case 'A':
			if (packages_parse_size(arg,
			    &node->app_package_quota) == -1) {
				cause = opts_bad_value(&o, "a size such as "
				    "500M or 20G");
				goto usage;
			}
			break;
		case 'D':	/* MB; a restore's data must fit (backup.c) */
			if (util_parse_int(arg, 1, 1LL << 40, &n) == -1) {
				cause = opts_bad_value(&o, "megabytes, at least "
				    "1");
				goto usage;
			}
			node->env_disk_max = n * 1024 * 1024;
			break;
		case 'E':
			node->egress = 1;
			break;
		case 'J':
			json = 1;
			break;
		case 'h':
			opts_help(&node_cmd, "nubod", stdout);
			return 0;
		}
	}
	if (node->data_dir == NULL) {
		cause = xstrdup("--data DIR is needed (or a --config file "
		    "that says data = DIR)");
		goto usage;
	}
	if (json && !fsck) {
		cause = xstrdup("--json goes with fsck");
		goto usage;
	}
	if (fsck)	/* beside a running node too: the store's lock */
		return fsck_main(json);
	log_init("node");
	if (convert)	/* the data's own folder only: no user, no daemon */
		return snapshot_convert_main();
	if (!stop_all && (node->portal_url == NULL || node->token == NULL)) {
		cause = xstrdup("--portal URL and --token TOKEN are needed");
		goto usage;
	}
	if ((node->tls.cert == NULL) != (node->tls.key == NULL)) {
		error("--tls-cert and --tls-key go together");
		return 2;
	}
	if (!stop_all && (http_listen_check(node->listen, &node->tls) == -1 ||
	    router_listen_setup() == -1))
		return 1;
	if (node_user_setup() == -1 || (!stop_all && node_dirs() == -1))
		return 1;
	{
		/* absolute: nginx and pg_ctl get paths, apps get NUBO_FILES_DIR */
		static char abs[PATH_MAX];

		if (realpath(node->data_dir, abs) != NULL)
			node->data_dir = abs;
	}
	if (stop_all)
		return node_stop_all();
	packages_init();
	if (node->agent_url == NULL)
		node->agent_url = xasprintf("%s://%s", node->tls.cert ?
		    "https" : "http", node->listen);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGHUP, on_signal);
	env_remove_temps();
	if (sandbox_setup() == -1 || node_load_agent() == -1 ||
	    env_load() == -1)
		return 1;
	/* before the router's first config: the instances that kept
	 * serving while the agent was away stay routed through its start */
	supervisor_adopt_all();
	/* a PostgreSQL or nginx that does not start leaves the agent
	 * running: the heal thread retries them (heal.c) */
	if (pg_start() == -1)
		return 1;
	pg_relay_adopted();
	backup_recover();
	if (router_start() == -1)
		return 1;
	node->http = agent_routes_listen(node->listen, &node->tls);
	if (node->http == NULL)
		return 1;
	{
		char *where = router_listen_text();

		log_info("agent listening on %s (%s), router on %s",
		    node->listen, node->tls.cert ? "HTTPS" : "plain HTTP",
		    where);
		free(where);
	}
	node_log_pin();
	log_info(node->egress ? "egress: instances reach the outside world "
	    "(through slirp4netns; never the host's loopback)" : "egress: "
	    "none (instances reach their database only; --egress allows the "
	    "outside world)");
	supervisor_start();
	fsck_start();
	heal_start();
	events_start();
	downloads_start();
	dbcred_start();
	acme_start();
	if (pthread_create(&hb, NULL, heartbeat_thread, NULL) != 0)
		return error("cannot start the heartbeat");
	while (!node_stopping) {
		pause();
		if (node_reload) {
			node_reload = 0;
			http_server_reload_tls(node->http);
			node_log_pin();
			/* the app hostnames' certificate: read at the reload */
			pthread_mutex_lock(&node->lock);
			node->router_dirty = 1;
			pthread_mutex_unlock(&node->lock);
		}
	}
	/* Apps, router and database keep running: a restarted node adopts
	 * them (SPEC: restarting a node loses no running app). */
	log_info("stopping the agent; apps keep running");
	http_server_stop(node->http);
	return 0;
usage:
	fprintf(stderr, "nubod node: %s\n(nubod node --help tells every "
	    "option)\n", cause);
	free(cause);
	return 2;
}
