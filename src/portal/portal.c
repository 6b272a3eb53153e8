/* `nubod portal init` and `nubod portal`: set up and run the control plane. */
#include <errno.h>
#include <getopt.h>
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
#include "portal.h"
#include "settings.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

void backups_scheduler_start(void);

static const char portal_usage[] =
    "usage: nubod portal init --data DIR [--email EMAIL] [--password PW]\n"
    "       nubod portal --data DIR [--listen IP:PORT] [--domain DOMAIN]\n"
    "                    [--url PUBLIC_URL] [--threads N]\n"
    "                    [--offboarding-keep-days N]\n";

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

static volatile sig_atomic_t portal_stop;

static void
on_signal(int sig)
{
	(void)sig;
	portal_stop = 1;
}

int
portal_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "domain", required_argument, NULL, 'D' },
		{ "url", required_argument, NULL, 'u' },
		{ "threads", required_argument, NULL, 't' },
		{ "offboarding-keep-days", required_argument, NULL, 'K' },
		{ "email", required_argument, NULL, 'e' },
		{ "password", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 } };
	static const struct http_server_ops ops = {
		routes_begin, routes_finish, routes_cleanup };
	struct portal p;
	const char *email = "admin@nubo.localhost", *password = NULL;
	char *own_url = NULL;
	int init = 0, c, rc = 1;
	long long n;

	memset(&p, 0, sizeof p);
	p.listen = "127.0.0.1:7070";
	p.cloud_domain = "nubo.localhost";
	p.threads = 4;
	if (argc > 1 && strcmp(argv[1], "init") == 0) {
		init = 1;
		argv++;
		argc--;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': p.data_dir = optarg; break;
		case 'l': p.listen = optarg; break;
		case 'D': p.cloud_domain = optarg; break;
		case 'u': p.public_url = optarg; break;
		case 'e': email = optarg; break;
		case 'p': password = optarg; break;
		case 't':
			if (util_parse_int(optarg, 1, 256, &n) == -1) {
				fputs(portal_usage, stderr);
				return 2;
			}
			p.threads = (unsigned)n;
			break;
		case 'K':
			/* how long an offboarded node's data is kept */
			if (util_parse_int(optarg, 0, 3650, &n) == -1) {
				fputs(portal_usage, stderr);
				return 2;
			}
			offboarding_keep_days = n;
			break;
		case 'h':
			fputs(portal_usage, stdout);
			return 0;
		default:
			fputs(portal_usage, stderr);
			return 2;
		}
	}
	if (p.data_dir == NULL || optind != argc) {
		fputs(portal_usage, stderr);
		return 2;
	}
	if (init)
		return portal_init(p.data_dir, email, password);

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
	/* environment settings: the key that seals their secrets */
	if (settings_seal_init(p.data_dir) == -1)
		goto out;
	if (p.public_url == NULL)
		p.public_url = own_url = xasprintf("http://%s", p.listen);
	/* Fixed malloc thresholds: with the default dynamic ones glibc keeps
	 * trimming and refaulting the per-thread heaps that every request's
	 * reply buffers come from (seen in bench/api profiles). */
	mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	jobs_start(&p, 4);
	backups_scheduler_start();
	settings_window_start();
	p.http = http_server_start(p.listen, &ops, &p, p.threads);
	if (p.http == NULL)
		goto out;
	portal_trust_nodes(&p);
	log_info("listening on %s (cloud domain %s)", p.listen,
	    p.cloud_domain);
	while (!portal_stop)
		pause();
	log_info("stopping");
	http_server_stop(p.http);
	settings_window_stop();
	jobs_stop();
	rc = 0;
out:
	store_close_thread();
	free(own_url);
	free(p.store_path);
	return rc;
}
