/* The node's PostgreSQL: by default a cluster of its own under DIR/pg
 * (initdb and pg_ctl from PostgreSQL 15, run as the node's OS user,
 * listening on 127.0.0.1:<pg port> and on a socket in DIR/pg/run), or an
 * existing server given with --pg. One database and one role with a
 * generated password per environment: env_<id>. */
#include "node.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "jsonx.h"
#include "log.h"
#include "util.h"
#include "xmalloc.h"

#define PG_BIN		"/usr/lib/postgresql/15/bin"
#define PG_SUPERUSER	"nubo_admin"

static char pg_initdb[] = PG_BIN "/initdb";
static char pg_ctl[] = PG_BIN "/pg_ctl";

static char *pg_admin_password;	/* own cluster */
static char *pg_host;		/* what apps connect to */
static unsigned pg_port_used;

static char *
pg_path(const char *sub)
{
	return xasprintf("%s/pg%s%s", node->data_dir, sub ? "/" : "",
	    sub ? sub : "");
}

char *
pg_admin_conninfo(void)
{
	char *pw;

	if (node->pg_uri)
		return xstrdup(node->pg_uri);
	pw = pg_admin_password ? pg_admin_password : "";
	return xasprintf("host=127.0.0.1 port=%u user=" PG_SUPERUSER
	    " password=%s dbname=postgres connect_timeout=10", node->pg_port,
	    pw);
}

PGconn *
pg_admin_connect(char **cause)
{
	char *ci = pg_admin_conninfo();
	PGconn *c = PQconnectdb(ci);

	free(ci);
	if (PQstatus(c) != CONNECTION_OK) {
		*cause = xasprintf("cannot connect to PostgreSQL: %s",
		    PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

int
pg_admin_exec(PGconn *c, const char *sql, char **cause)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
	    PQresultStatus(r) == PGRES_TUPLES_OK;

	if (!ok && cause)
		*cause = xasprintf("PostgreSQL: %s", PQerrorMessage(c));
	PQclear(r);
	return ok ? 0 : -1;
}

int
pg_db_exists(PGconn *c, const char *name)
{
	const char *p[1] = { name };
	PGresult *r = PQexecParams(c, "SELECT 1 FROM pg_database WHERE "
	    "datname = $1", 1, NULL, p, NULL, NULL, 0);
	int n = PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) : -1;

	PQclear(r);
	return n;
}

/* Initialise the cluster the first time. */
static int
pg_init(void)
{
	char *base = pg_path(NULL), *data = pg_path("data");
	char *pwfile = pg_path("pwfile"), *secret = pg_path("admin.json");
	char *version = xasprintf("%s/PG_VERSION", data);
	char *pwopt = NULL, out[4096];
	int rc = -1, st;

	if (access(version, F_OK) == 0) {
		char *text = util_read_file(secret, 4096, NULL);
		json_t *j = text ? json_loads(text, 0, NULL) : NULL;

		if (jsonx_str(j, "password"))
			pg_admin_password = xstrdup(jsonx_str(j, "password"));
		json_decref(j);
		free(text);
		rc = pg_admin_password ? 0 : error("%s is missing", secret);
		goto out;
	}
	if (util_mkdir_p(base, 0755) == -1) {
		error("cannot create %s: %s", base, strerror(errno));
		goto out;
	}
	node_chown(base);
	pg_admin_password = util_random_hex(24);
	{
		json_t *j = json_pack("{s:s}", "password", pg_admin_password);
		char *text = json_dumps(j, 0);

		rc = util_write_file(secret, text, strlen(text), 0600);
		free(text);
		json_decref(j);
		if (rc == -1 || util_write_file(pwfile, pg_admin_password,
		    strlen(pg_admin_password), 0600) == -1) {
			error("cannot write %s", secret);
			rc = -1;
			goto out;
		}
		rc = -1;
	}
	node_chown(pwfile);
	pwopt = xasprintf("--pwfile=%s", pwfile);
	{
		char *argv[] = { pg_initdb, "-D", data, "-U",
			PG_SUPERUSER, pwopt, "--auth-local=scram-sha-256",
			"--auth-host=scram-sha-256", "-E", "UTF8",
			"--no-locale", "--no-sync", NULL };

		log_info("initialising the PostgreSQL cluster in %s", data);
		st = node_run(argv, 1, out, sizeof out);
	}
	unlink(pwfile);
	if (st != 0) {
		error("initdb failed (status %d): %s", st, out);
		goto out;
	}
	rc = 0;
out:
	free(base);
	free(data);
	free(pwfile);
	free(secret);
	free(version);
	free(pwopt);
	return rc;
}

static int
pg_running(void)
{
	char *data = pg_path("data"), out[512];
	char *argv[] = { pg_ctl, "status", "-D", data, NULL };
	int st = node_run(argv, 1, out, sizeof out);

	free(data);
	return st == 0;
}

int
pg_start(void)
{
	char *data = NULL, *run = NULL, *logdir = NULL, *logfile = NULL;
	char *opts = NULL;
	char *cause = NULL;
	PGconn *c;
	int rc = -1, st;

	if (node->pg_uri) {
		PQconninfoOption *o = PQconninfoParse(node->pg_uri, NULL), *p;
		long long port;

		for (p = o; p && p->keyword; p++) {
			if (strcmp(p->keyword, "host") == 0 && p->val)
				pg_host = xstrdup(p->val);
			if (strcmp(p->keyword, "port") == 0 && p->val &&
			    util_parse_int(p->val, 1, 65535, &port) == 0)
				pg_port_used = (unsigned)port;
		}
		PQconninfoFree(o);
		if (pg_host == NULL)
			pg_host = xstrdup("127.0.0.1");
		if (pg_port_used == 0)
			pg_port_used = 5432;
		c = pg_admin_connect(&cause);
		if (c == NULL) {
			error("%s", cause);
			free(cause);
			return -1;
		}
		PQfinish(c);
		log_info("using the PostgreSQL server at %s:%u", pg_host,
		    pg_port_used);
		return 0;
	}
	pg_host = xstrdup("127.0.0.1");
	pg_port_used = node->pg_port;
	if (pg_init() == -1)
		return -1;
	if (pg_running()) {
		log_info("PostgreSQL cluster already running; adopted");
		return 0;
	}
	data = pg_path("data");
	run = pg_path("run");
	logdir = pg_path("log");
	logfile = xasprintf("%s/postgres.log", logdir);
	util_mkdir_p(run, 0755);
	util_mkdir_p(logdir, 0755);
	node_chown(run);
	node_chown(logdir);
	opts = xasprintf("-c port=%u -c listen_addresses=127.0.0.1"
	    " -c unix_socket_directories=%s -c max_connections=200"
	    " -c shared_buffers=32MB -c fsync=on", node->pg_port, run);
	{
		char *argv[] = { pg_ctl, "start", "-D", data, "-l",
			logfile, "-w", "-t", "60", "-o", opts, NULL };

		st = node_run(argv, 1, NULL, 0);
	}
	if (st != 0) {
		char *tail = util_read_file(logfile, 65536, NULL);

		error("PostgreSQL did not start (status %d):\n%s", st,
		    tail ? tail : "");
		free(tail);
		goto out;
	}
	log_info("PostgreSQL cluster started on 127.0.0.1:%u", node->pg_port);
	rc = 0;
out:
	free(data);
	free(run);
	free(logdir);
	free(logfile);
	free(opts);
	return rc;
}

void
pg_stop(void)
{
	char *data, out[1024];

	if (node->pg_uri)
		return;
	data = pg_path("data");
	{
		char *argv[] = { pg_ctl, "stop", "-D", data, "-m",
			"fast", "-w", "-t", "30", NULL };

		node_run(argv, 1, out, sizeof out);
	}
	free(data);
}

char *
pg_env_dbname(struct env *e)
{
	return xasprintf("env_%lld", e->id);
}

char *
pg_env_url(struct env *e)
{
	if (e->db_password == NULL)
		return NULL;
	return xasprintf("postgresql://env_%lld:%s@%s:%u/env_%lld", e->id,
	    e->db_password, pg_host ? pg_host : "127.0.0.1", pg_port_used,
	    e->id);
}

static int
pg_env_create_db(PGconn *c, struct env *e, char **cause)
{
	char *sql = xasprintf("SELECT 1 FROM pg_database WHERE datname ="
	    " 'env_%lld'", e->id);
	PGresult *r = PQexec(c, sql);
	int exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	int rc = 0;

	PQclear(r);
	free(sql);
	if (!exists) {
		sql = xasprintf("CREATE DATABASE env_%lld OWNER env_%lld"
		    " ENCODING 'UTF8' TEMPLATE template0", e->id, e->id);
		rc = pg_admin_exec(c, sql, cause);
		free(sql);
		if (rc == 0) {
			sql = xasprintf("REVOKE ALL ON DATABASE env_%lld FROM"
			    " PUBLIC", e->id);
			rc = pg_admin_exec(c, sql, cause);
			free(sql);
		}
	}
	return rc;
}

/* Caller holds the lock (for e->db_password). */
int
pg_env_ensure(struct env *e, char **cause)
{
	PGconn *c = pg_admin_connect(cause);
	char *sql, *esc;
	PGresult *r;
	int exists, rc = -1;

	if (c == NULL)
		return -1;
	if (e->db_password == NULL) {
		e->db_password = util_random_hex(16);
		env_save(e);
	}
	sql = xasprintf("SELECT 1 FROM pg_roles WHERE rolname = 'env_%lld'",
	    e->id);
	r = PQexec(c, sql);
	exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	PQclear(r);
	free(sql);
	esc = PQescapeLiteral(c, e->db_password, strlen(e->db_password));
	sql = xasprintf("%s ROLE env_%lld LOGIN PASSWORD %s", exists ? "ALTER" :
	    "CREATE", e->id, esc);
	PQfreemem(esc);
	rc = pg_admin_exec(c, sql, cause);
	free(sql);
	if (rc == 0)
		rc = pg_env_create_db(c, e, cause);
	PQfinish(c);
	return rc;
}

int
pg_env_wipe(struct env *e, char **cause)
{
	PGconn *c = pg_admin_connect(cause);
	char *sql;
	int rc;

	if (c == NULL)
		return -1;
	sql = xasprintf("DROP DATABASE IF EXISTS env_%lld WITH (FORCE)", e->id);
	rc = pg_admin_exec(c, sql, cause);
	free(sql);
	PQfinish(c);
	if (rc == 0) {
		pthread_mutex_lock(&node->lock);
		rc = pg_env_ensure(e, cause);
		pthread_mutex_unlock(&node->lock);
	}
	return rc;
}

int
pg_reachable(char **cause)
{
	PGconn *c = pg_admin_connect(cause);

	if (c == NULL)
		return -1;
	PQfinish(c);
	return 0;
}

int
pg_env_drop(long long id, char **cause)
{
	PGconn *c = pg_admin_connect(cause);
	PGresult *r;
	char *sql;
	int i, rc = 0;

	if (c == NULL)
		return -1;
	/* Its database, and what an interrupted restore or import left
	 * (env_<id>_new_…, env_<id>_old…, env_<id>_in: backup.c,
	 * transfer.c) — the role cannot go while it owns one. */
	sql = xasprintf("SELECT datname FROM pg_database WHERE datname ="
	    " 'env_%lld' OR datname LIKE 'env\\_%lld\\_%%'", id, id);
	r = PQexec(c, sql);
	free(sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		*cause = xasprintf("PostgreSQL: %s", PQerrorMessage(c));
		rc = -1;
	}
	for (i = 0; rc == 0 && i < PQntuples(r); i++) {
		const char *db = PQgetvalue(r, i, 0);
		char *q = PQescapeIdentifier(c, db, strlen(db));

		/* FORCE: sessions an instance left behind must not keep it
		 * alive */
		sql = xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)",
		    q ? q : "\"\"");
		PQfreemem(q);
		rc = pg_admin_exec(c, sql, cause);
		free(sql);
	}
	PQclear(r);
	if (rc == 0) {
		sql = xasprintf("DROP ROLE IF EXISTS env_%lld", id);
		rc = pg_admin_exec(c, sql, cause);
		free(sql);
	}
	PQfinish(c);
	return rc;
}
