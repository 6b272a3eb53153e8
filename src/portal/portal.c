/* `nubod portal init` and `nubod portal`: set up and run the control plane. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "auth.h"
#include "jobs.h"
#include "log.h"
#include "offboarding.h"
#include "opts.h"
#include "portal.h"
#include "settings.h"
#include "store.h"
#include "util.h"
#include "waits.h"
#include "xmalloc.h"

void backups_scheduler_start(void);

/* Every option of `nubod portal` (and `portal init`): this table parses
 * the command line and --config files, and prints --help and nubod(8). */
static const struct opt portal_opts[] = {
	OPT_ROW_DEFAULT_CONFIG(NUBO_CONFDIR "/portal.conf"),
	{ "data", "DIR", 'd', 0,
	    "the portal's data folder: its store (portal.db). Required (the "
	    "installed portal.conf says /var/lib/nubo/portal)" },
	{ "listen", "IP:PORT", 'l', 0,
	    "where the API listens (default 127.0.0.1:7070). An address outside "
	    "127.0.0.0/8 and ::1 needs --tls-cert or --insecure-http" },
	{ "domain", "DOMAIN", 'D', 0,
	    "the cloud domain: apps answer at <app>-<env>.DOMAIN on each node's "
	    "router (default nubo.localhost)" },
	{ "url", "URL", 'u', 0,
	    "the portal's public URL, given to nodes and used in the links it "
	    "hands out (default http(s)://<listen>)" },
	{ "threads", "N", 't', 0,
	    "threads answering requests, 1 to 256 (default 4)" },
	{ "mx-rate", "N", 'M', 0,
	    "requests a minute each API key may make to the Mendix APIs "
	    "(/api/1, /api/v2, /api/v4; over it 429 with Retry-After), 1 to "
	    "1000000 (default 600)" },
	{ "offboarding-keep-days", "N", 'K', 0,
	    "days an offboarded node's data is kept before it is deleted, 0 to "
	    "3650 (default 30)" },
	{ "secrets-key", "FILE", 'k', 0,
	    "the key that seals every secret in the store, kept outside the "
	    "data folder, made at the first start, 0600 (default "
	    NUBO_SECRETS_KEY_DEFAULT ")" },
	{ "tls-cert", "FILE", 'C', 0,
	    "the certificate (PEM, the chain may follow): the API speaks HTTPS "
	    "only; read again on SIGHUP. Goes with --tls-key" },
	OPT_ROW_TLS_KEY,
	OPT_ROW_INSECURE_HTTP,
	{ "email", "EMAIL", 'e', 0,
	    "init: the first platform admin's email (default "
	    "admin@nubo.localhost)" },
	{ "password", "PASSWORD", 'p', OPT_SECRET,
	    "init: the first platform admin's password, at least 8 characters "
	    "(default: none; log in with the API key init prints)" },
	OPT_ROW_HELP,
	OPT_ROW_END };

const struct opts_cmd portal_cmd = {
	"portal",
	"portal init --data DIR [--email EMAIL] [--password PASSWORD]\n"
	"portal [--config FILE] --data DIR [--listen IP:PORT] [--domain DOMAIN]\n"
	"    [--url URL] [--tls-cert FILE --tls-key FILE] [options]",
	"run the portal, the control plane (REST API, store, jobs); 'init' "
	"makes its store and first platform admin and prints the admin's API "
	"key once",
	NULL, portal_opts, NUBO_CONFDIR "/portal.conf", 0,
};

static int
portal_init(const char *data, const char *email, const char *password)
{
	char *path = xasprintf("%s/portal.db", data);
	char *hash = NULL, *key = NULL;
	sqlite3 *db;
	char now[32];
	int rc = 1;

	/* the folder's own name is synced too (the store syncs its own) */
	if (util_mkdir_p(data, 0700) == -1 || util_fsync_dir(data) == -1) {
		error("cannot create %s: %s", data, strerror(errno));
		goto out;
	}
	if (store_open(path) == -1)
		goto out;
	db = store_db();
	if (store_int(db, 0, "SELECT COUNT(*) FROM users", "") > 0) {
		error("%s is already initialised", data);
		goto out;
	}
	if (!util_valid_email(email)) {
		error("'%s' is not an email address", email);
		goto out;
	}
	if (password) {
		if (strlen(password) < NUBO_PASSWORD_MIN) {
			error("a password has at least %d characters",
			    NUBO_PASSWORD_MIN);
			goto out;
		}
		hash = auth_password_hash(password);
	}
	util_time_iso(util_now(), now, sizeof now);
	if (store_begin(db) == -1 ||
	    store_run(db, "INSERT INTO users (email, name, password_hash,"
	    " is_admin, created_at) VALUES (?, 'Platform admin', ?, 1, ?)",
	    "sss", email, hash, now) != STORE_OK)
		goto out;
	key = auth_key_create(db, store_last_id(db), "init", 0, NULL, NULL,
	    0, NULL);
	if (key == NULL || store_commit(db) == -1)
		goto out;
	printf("platform admin: %s\n", email);
	printf("API key (shown once): %s\n", key);
	rc = 0;
out:
	if (rc)
		store_rollback(store_db());
	free(key);
	free(hash);
	free(path);
	return rc;
}

void
portal_trust(struct portal *p, const char *ip)
{
	/* NULL only for a request served while the server is starting: the
	 * node's next heartbeat trusts it */
	if (p->http && http_server_trust(p->http, ip) == -1)
		log_warn("cannot trust node address '%s'", ip);
}

/* Trust the addresses the nodes registered from (before any heartbeat
 * after a restart). */
static void
portal_trust_nodes(struct portal *p)
{
	json_t *rows = store_rows(store_db(), "SELECT registered_from FROM"
	    " nodes WHERE registered_from IS NOT NULL", ""), *row;
	size_t i;

	json_array_foreach(rows, i, row)
		portal_trust(p, jsonx_str(row, "registered_from"));
	json_decref(rows);
}

/* Seal the node agent secrets an older portal stored in clear (64 hex
 * characters), and leave no trace of them in the store's files. */
static int
portal_seal_agent_secrets(sqlite3 *db)
{
	json_t *rows = store_rows(db, "SELECT id, name, agent_secret FROM"
	    " nodes WHERE agent_secret IS NOT NULL", ""), *row;
	size_t i;
	int n = 0, rc = -1;

	if (rows == NULL)
		return error("cannot read the nodes' agent secrets");
	/* the clear values are overwritten, not only unlinked from pages */
	if (sqlite3_exec(db, "PRAGMA secure_delete=ON", NULL, NULL, NULL) !=
	    SQLITE_OK || store_begin(db) == -1)
		goto out;
	json_array_foreach(rows, i, row) {
		const char *v = jsonx_str(row, "agent_secret");
		char *plain = settings_unseal(v), *sealed;

		if (plain) {
			sodium_memzero(plain, strlen(plain));
			free(plain);
			continue;
		}
		if (strlen(v) != 64 || strspn(v, "0123456789abcdef") != 64) {
			error("the agent secret of node '%s' is neither sealed "
			    "with this key nor a clear secret",
			    jsonx_str(row, "name"));
			store_rollback(db);
			goto out;
		}
		sealed = settings_seal(v);
		if (store_run(db, "UPDATE nodes SET agent_secret = ? WHERE"
		    " id = ?", "si", sealed, jsonx_int(row, "id", 0)) !=
		    STORE_OK) {
			free(sealed);
			store_rollback(db);
			goto out;
		}
		free(sealed);
		n++;
	}
	if (store_commit(db) == -1)
		goto out;
	if (n) {
		/* the pages with the clear values leave the WAL too */
		sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL,
		    NULL);
		log_info("sealed the agent secrets of %d node(s)", n);
	}
	rc = 0;
out:
	sqlite3_exec(db, "PRAGMA secure_delete=OFF", NULL, NULL, NULL);
	json_decref(rows);
	return rc;
}

/* Load the key that seals every secret in the store, kept outside the
 * data folder (--secrets-key) so that a copy of the store, or of the
 * whole data folder, reveals no secret. An older portal's key
 * (DATA/settings.key) moves there. A store whose secrets were sealed with
 * another key (its id is in portal_meta) never gets a new one. */
static int
portal_secrets_load(struct portal *p)
{
	sqlite3 *db = store_db();
	char *legacy = xasprintf("%s/settings.key", p->data_dir);
	char *dir = xstrdup(p->secrets_key), *slash = strrchr(dir, '/');
	char *want = NULL, *id = NULL, *old = NULL, *cur = NULL;
	size_t oldlen = 0, curlen = 0;
	int rc = -1;

	if (slash)
		*slash = '\0';
	util_remove_temps(slash ? (*dir ? dir : "/") : ".",
	    slash ? slash + 1 : dir);
	want = store_text(db, "SELECT value FROM portal_meta WHERE name ="
	    " 'secrets_key_id'", "");
	old = util_read_file(legacy, 4096, &oldlen);
	cur = util_read_file(p->secrets_key, 4096, &curlen);
	if (cur == NULL && errno != ENOENT) {
		error("cannot read %s: %s", p->secrets_key, strerror(errno));
		goto out;
	}
	if (old && cur && (oldlen != curlen || memcmp(old, cur, oldlen) != 0)) {
		error("%s and %s are different keys: keep the one this "
		    "store's secrets were sealed with", legacy, p->secrets_key);
		goto out;
	}
	if (cur == NULL && want && old == NULL) {
		error("secrets key %s is missing, and this store's secrets are "
		    "sealed with key %s: give --secrets-key the file that "
		    "holds it", p->secrets_key, want);
		goto out;
	}
	if (cur == NULL && slash && *dir && (util_mkdir_p(dir, 0700) == -1 ||
	    util_fsync_dir(dir) == -1)) {
		error("cannot create %s: %s (give --secrets-key FILE)", dir,
		    strerror(errno));
		goto out;
	}
	if (cur == NULL && old && util_write_file_once(p->secrets_key, old,
	    oldlen, 0600) == -1) {
		error("cannot write %s: %s", p->secrets_key, strerror(errno));
		goto out;
	}
	if (settings_seal_init(p->secrets_key) == -1)
		goto out;
	id = settings_seal_key_id();
	if (want && strcmp(want, id) != 0) {
		error("%s is key %s, but this store's secrets are sealed with "
		    "key %s", p->secrets_key, id, want);
		goto out;
	}
	if (want == NULL && store_run(db, "INSERT INTO portal_meta (name,"
	    " value) VALUES ('secrets_key_id', ?)", "s", id) != STORE_OK)
		goto out;
	if (old) {
		if (unlink(legacy) == -1 || util_fsync_dir(legacy) == -1) {
			error("cannot remove %s: %s", legacy, strerror(errno));
			goto out;
		}
		log_info("the secrets key moved from %s to %s", legacy,
		    p->secrets_key);
	}
	rc = portal_seal_agent_secrets(db);
out:
	if (old)
		sodium_memzero(old, oldlen);
	if (cur)
		sodium_memzero(cur, curlen);
	free(old);
	free(cur);
	free(want);
	free(id);
	free(dir);
	free(legacy);
	return rc;
}

static volatile sig_atomic_t portal_stop, portal_reload;

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		portal_reload = 1;
	else
		portal_stop = 1;
}

int
portal_main(int argc, char **argv)
{
	static const struct http_server_ops ops = {
		.begin = routes_begin, .finish = routes_finish,
		.cleanup = routes_cleanup, .resume = routes_resume };
	struct portal p;
	/* nodes present their certificate: its key is pinned */
	struct http_tls tls = { NULL, NULL, 1, 0 };
	const char *email = "admin@nubo.localhost", *password = NULL;
	char *own_url = NULL;
	int init = 0, c, rc = 1;
	long long n;
	static struct opts o;	/* its values stay until the portal stops */
	char *arg;
	char *cause = NULL;

	memset(&p, 0, sizeof p);
	p.listen = "127.0.0.1:7070";
	p.cloud_domain = "nubo.localhost";
	p.threads = 4;
	p.mx_rate = NUBO_MX_RATE_DEFAULT;
	p.secrets_key = NUBO_SECRETS_KEY_DEFAULT;
	if (argc > 1 && strcmp(argv[1], "init") == 0) {
		init = 1;
		argv++;
		argc--;
	}
	if (opts_parse(&o, &portal_cmd, argc, argv, &cause) == -1)
		goto usage;
	while ((c = opts_next(&o, &arg)) != -1) {
		switch (c) {
		case 'd': p.data_dir = arg; break;
		case 'l':
			if (http_listen_loopback(arg) == -1) {
				cause = opts_bad_value(&o, "IP:PORT");
				goto usage;
			}
			p.listen = arg;
			break;
		case 'D': p.cloud_domain = arg; break;
		case 'u': p.public_url = arg; break;
		case 'k': p.secrets_key = arg; break;
		case 'e': email = arg; break;
		case 'p': password = arg; break;
		case 'C': tls.cert = arg; break;
		case 'Y': tls.key = arg; break;
		case 'I': tls.insecure_http = 1; break;
		case 't':
			if (util_parse_int(arg, 1, 256, &n) == -1) {
				cause = opts_bad_value(&o, "a number of "
				    "threads from 1 to 256");
				goto usage;
			}
			p.threads = (unsigned)n;
			break;
		case 'M':
			if (util_parse_int(arg, 1, 1000000, &n) == -1) {
				cause = opts_bad_value(&o, "a number of requests "
				    "a minute from 1 to 1000000");
				goto usage;
			}
			p.mx_rate = (unsigned)n;
			break;
		case 'K':
			/* how long an offboarded node's data is kept */
			if (util_parse_int(arg, 0, 3650, &n) == -1) {
				cause = opts_bad_value(&o, "a number of days "
				    "from 0 to 3650");
				goto usage;
			}
			offboarding_keep_days = n;
			break;
		case 'h':
			opts_help(&portal_cmd, "nubod", stdout);
			return 0;
		}
	}
	if (p.data_dir == NULL) {
		cause = xstrdup("--data DIR is needed (or a --config file "
		    "that says data = DIR)");
		goto usage;
	}
	if (init)
		return portal_init(p.data_dir, email, password);
	if ((tls.cert == NULL) != (tls.key == NULL)) {
		error("--tls-cert and --tls-key go together");
		return 2;
	}
	if (http_listen_check(p.listen, &tls) == -1)
		return 1;

	log_init("portal");
	p.store_path = xasprintf("%s/portal.db", p.data_dir);
	if (access(p.store_path, R_OK | W_OK) == -1) {
		error("no store in %s: run 'nubod portal init --data %s' first",
		    p.data_dir, p.data_dir);
		goto out;
	}
	/* what a crash left half-written (util_write_file's temp files) */
	util_remove_temps(p.data_dir, NULL);
	if (store_open(p.store_path) == -1)
		goto out;
	if (portal_secrets_load(&p) == -1)
		goto out;
	p.tls = tls.cert != NULL;
	if (p.public_url == NULL)
		p.public_url = own_url = xasprintf("%s://%s", tls.cert ?
		    "https" : "http", p.listen);
	/* Fixed malloc thresholds: with the default dynamic ones glibc keeps
	 * trimming and refaulting the per-thread heaps that every request's
	 * reply buffers come from (seen in bench/api profiles). */
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGHUP, on_signal);
	jobs_start(&p, 4);
	backups_scheduler_start();
	settings_window_start();
	p.http = http_server_start_tls(p.listen, &ops, &p, p.threads, &tls);
	if (p.http == NULL)
		goto out;
	portal_trust_nodes(&p);
	log_info("listening on %s (%s; cloud domain %s)", p.listen, tls.cert ?
	    "HTTPS" : "plain HTTP", p.cloud_domain);
	while (!portal_stop) {
		pause();
		if (portal_reload) {
			portal_reload = 0;
			http_server_reload_tls(p.http);
		}
	}
	log_info("stopping");
	waits_stop();	/* no request may stay suspended */
	http_server_stop(p.http);
	settings_window_stop();
	jobs_stop();
	rc = 0;
out:
	store_close_thread();
	free(own_url);
	free(p.store_path);
	return rc;
usage:
	fprintf(stderr, "nubod portal: %s\n(nubod portal --help tells "
	    "every option)\n", cause);
	free(cause);
	return 2;
}
