/* The node's PostgreSQL: by default a cluster of its own under DIR/pg
 * (initdb and pg_ctl from PostgreSQL 15, run as its own OS user — the
 * node's user with "-pg" appended — listening on 127.0.0.1:<pg port> for
 * the node and on a socket in DIR/pg/run for the sandboxes), or an
 * existing server given with --pg. One database and one role with a
 * generated password per environment: env_<id>, which may connect to its
 * own database only (pg_hba "sameuser" on the socket; CONNECT revoked
 * from PUBLIC on every database, postgres and template1 included).
 *
 * Apps reach their database through the sandbox's 127.0.0.1:5432, which
 * nubo-init relays to a unix socket bound into the sandbox: the cluster's
 * own socket folder, the --pg server's when it is given as a socket
 * folder, or else a per-environment socket that this file relays to the
 * --pg server's TCP address (DIR/run/db-<id>/db.sock, the environment's
 * user's alone). */
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "jsonx.h"
#include "log.h"
#include "pgtool.h"
#include "relay.h"
#include "tls.h"
#include "replication.h"
#include "util.h"
#include "xmalloc.h"

#define PG_BIN		"/usr/lib/postgresql/15/bin"
#define PG_SUPERUSER	"nubo_admin"
#define PG_ROLE_CONNECTIONS	64	/* per environment role */

/* What the cluster accepts: environment roles on the socket (the
 * sandboxes) only into their own database; the node (nubo_admin, restore
 * and import roles, db-url logins) over TCP on loopback, which no sandbox
 * can reach; nothing from any other address, whatever listen_addresses
 * says (the cluster listens on 127.0.0.1, and on the node's own address
 * when its agent serves HTTPS there: see pg_node_address()). Which
 * database a role may enter is its CONNECT privilege (revoked from
 * PUBLIC).
 *
 * Between the socket's rule and the loopback ones come the rules of
 * migrations replicating from this node (replication.c): each admits its
 * own replication role into its environment's database from the target
 * node's address alone (hostssl, TLS only, when that is another host's);
 * every other login of a replication role (members
 * of nubo_replication) is rejected before the loopback rules could let
 * it in. PostgreSQL 15 has no include in pg_hba.conf (16 has), so the
 * file is rendered whole — these rules plus the replication ones, kept in
 * DIR/replication — at every start and whenever a replication is made or
 * dropped (pg_hba_apply(): write, then reload). */
static const char pg_hba_head[] =
    "# rendered by nubod node at every start - do not edit\n"
    "local   sameuser   all                  scram-sha-256\n";
static const char pg_hba_tail[] =
    "host    all        +" REPLICATION_GROUP "   all   reject\n"
    "host    all        all   127.0.0.1/32   scram-sha-256\n"
    "host    all        all   ::1/128        scram-sha-256\n"
    "host    all        all   0.0.0.0/0      reject\n"
    "host    all        all   ::/0           reject\n";

/* What logical replication needs (issue #14), set at every start of the
 * cluster: a slot and a sender per migration replicating from here (and
 * the table-sync workers' own, two per subscription while it copies), the
 * apply and sync workers of migrations replicating to here. */
#define PG_REPLICATION_SETTINGS	"-c wal_level=logical" \
	" -c max_replication_slots=32 -c max_wal_senders=32" \
	" -c max_worker_processes=16 -c max_logical_replication_workers=12"

static char pg_initdb[] = PG_BIN "/initdb";
static char pg_ctl[] = PG_BIN "/pg_ctl";

static char *pg_admin_password;	/* own cluster */
static int pg_fresh;		/* initdb ran in this process */
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
	/* no TLS on loopback (the cluster has it for other hosts) */
	return xasprintf("host=127.0.0.1 port=%u user=" PG_SUPERUSER
	    " password=%s dbname=postgres connect_timeout=10 sslmode=disable",
	    node->pg_port, pw);
}

PGconn *
pg_admin_connect(char **cause)
{
	return pg_admin_connect_db(NULL, cause);
}

PGconn *
pg_admin_connect_db(const char *db, char **cause)
{
	char *ci = pg_admin_conninfo();
	/* in an environment's database: whatever settings a dump left on
	 * it, this session writes and is not cut short. A --pg server that
	 * does not answer fails the connection after 10 s (unless its URI
	 * says otherwise: later keywords win) instead of blocking the
	 * thread that asked */
	const char *keys[] = { "connect_timeout", "dbname", "dbname",
	    "options", NULL };
	const char *vals[] = { "10", ci, db,
	    "-c default_transaction_read_only=off"
	    " -c statement_timeout=0 -c lock_timeout=0", NULL };
	PGconn *c;

	if (db == NULL)
		keys[2] = NULL;
	c = PQconnectdbParams(keys, vals, 1);
	free(ci);
	if (PQstatus(c) != CONNECTION_OK) {
		*cause = db ? xasprintf("cannot connect to database '%s': %s",
		    db, PQerrorMessage(c)) : xasprintf("cannot connect to "
		    "PostgreSQL: %s", PQerrorMessage(c));
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

/* chown to the cluster's OS user (when running as root). */
static void
pg_chown(const char *path)
{
	if (node->pg_uid != (uid_t)-1 && chown(path, node->pg_uid,
	    node->pg_gid) == -1)
		log_warn("cannot chown %s: %s", path, strerror(errno));
}

/* Replication to another host (issue #14): a node whose agent serves
 * HTTPS on an address of its own has its cluster listen on that address
 * too, with ssl = on, from every start — listen_addresses takes effect at
 * a start only, and restarting a source in the middle of a migration
 * would cut its app's sessions. pg_hba.conf refuses every login from the
 * network but a migration's replication role, over TLS, from its target's
 * address (hostssl, replication.c). The cluster presents a certificate of
 * its own for the agent's key (self-signed, naming the node's address):
 * a target verifies it with sslmode=verify-full against that certificate,
 * which the portal hands it from the source (it checks its key is the one
 * it pins for the node); a CA-issued agent certificate would need its
 * root, which neither node nor portal has. */

/* The node's own address (its agent's --listen) into out: 0, or -1 when
 * the agent has no TLS or listens on loopback or a wildcard. */
static int
pg_node_address(char *out, size_t outlen)
{
	const char *l = node->listen, *end;
	char host[64];
	int loopback;

	if (node->pg_uri || node->tls.cert == NULL || node->tls.key == NULL ||
	    l == NULL)
		return -1;
	if (*l == '[')
		end = strchr(++l, ']');
	else
		end = strrchr(l, ':');
	if (end == NULL || end == l || (size_t)(end - l) >= sizeof host)
		return -1;
	memcpy(host, l, (size_t)(end - l));
	host[end - l] = '\0';
	if (replication_address_parse(host, out, outlen, &loopback) == -1 ||
	    loopback)
		return -1;
	return 0;
}

/* DIR/pg/tls, the cluster's user's: the agent's key, copied (PostgreSQL
 * wants its key file 0600 and its own), and the certificate made for it
 * and addr, kept while it fits (targets trust that one). 0, or -1 with
 * *cause. */
static int
pg_tls_files(const char *addr, char **cause)
{
	char *dir = pg_path("tls"), *crt = pg_path("tls/server.crt");
	char *key = pg_path("tls/server.key"), *text = NULL, *pem = NULL;
	size_t len = 0;
	int rc = -1;

	if (util_mkdir_p(dir, 0700) == -1) {
		*cause = xasprintf("cannot create %s: %s", dir,
		    strerror(errno));
		goto out;
	}
	chmod(dir, 0700);
	pg_chown(dir);
	if ((text = util_read_file(node->tls.key, NUBO_PEM_MAX, &len)) ==
	    NULL) {
		*cause = xasprintf("cannot read %s", node->tls.key);
		goto out;
	}
	if (util_write_file(key, text, len, 0600) == -1) {
		*cause = xasprintf("cannot write %s: %s", key,
		    strerror(errno));
		goto out;
	}
	pg_chown(key);
	if (!tls_self_signed_fits(crt, key, addr)) {
		if ((pem = tls_self_signed(key, addr, cause)) == NULL)
			goto out;
		if (util_write_file(crt, pem, strlen(pem), 0644) == -1) {
			*cause = xasprintf("cannot write %s: %s", crt,
			    strerror(errno));
			goto out;
		}
		log_info("PostgreSQL: certificate %s made for %s (the agent's "
		    "key, self-signed)", crt, addr);
	}
	pg_chown(crt);
	rc = 0;
out:
	if (text) {
		explicit_bzero(text, len);
		free(text);
	}
	free(pem);
	free(dir);
	free(crt);
	free(key);
	return rc;
}

int
pg_tls_serving(char *addr, size_t addrlen, char **cause)
{
	PGconn *c;
	PGresult *r;
	int rc = -1;

	if (pg_node_address(addr, addrlen) == -1) {
		*cause = xstrdup("its agent serves no HTTPS on an address of "
		    "its own (--listen IP:PORT with --tls-cert and --tls-key), "
		    "so its PostgreSQL serves loopback only, without TLS");
		return -1;
	}
	if ((c = pg_admin_connect(cause)) == NULL)
		return -1;
	r = PQexecParams(c, "SELECT current_setting('ssl') = 'on' AND $1 ="
	    " ANY(string_to_array(replace(current_setting('listen_addresses'),"
	    " ' ', ''), ','))", 1, NULL, (const char *[]){ addr }, NULL, NULL,
	    0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		*cause = xasprintf("PostgreSQL: %.*s",
		    (int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
	else if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
		*cause = xasprintf("its PostgreSQL was started without TLS on "
		    "%s (by an older node, or before the agent had it): it "
		    "needs a restart (nubod node stop-all, then start the "
		    "node)", addr);
	else
		rc = 0;
	PQclear(r);
	PQfinish(c);
	return rc;
}

char *
pg_tls_cert_pem(void)
{
	char *crt = pg_path("tls/server.crt");
	char *pem = util_read_file(crt, NUBO_PEM_MAX, NULL);

	free(crt);
	return pem;
}

static char *
pg_tls_root_path(const char *subscription)
{
	return xasprintf("%s/pg/tls/source-%s.crt", node->data_dir,
	    subscription);
}

char *
pg_tls_root_write(const char *subscription, const char *pem, char **cause)
{
	char *dir = pg_path("tls"), *path = pg_tls_root_path(subscription);

	if (util_mkdir_p(dir, 0700) == -1 || (chmod(dir, 0700), pg_chown(dir),
	    util_write_file(path, pem, strlen(pem), 0644) == -1)) {
		*cause = xasprintf("cannot write %s: %s", path,
		    strerror(errno));
		free(path);
		path = NULL;
	} else {
		pg_chown(path);
	}
	free(dir);
	return path;
}

void
pg_tls_root_remove(const char *subscription)
{
	char *path = pg_tls_root_path(subscription);

	if (unlink(path) == -1 && errno != ENOENT)
		log_warn("cannot remove %s: %s", path, strerror(errno));
	free(path);
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
	if (util_mkdir_p(base, 0711) == -1) {
		error("cannot create %s: %s", base, strerror(errno));
		goto out;
	}
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
	pg_chown(pwfile);
	if (util_mkdir_p(data, 0700) == -1) {
		error("cannot create %s: %s", data, strerror(errno));
		goto out;
	}
	pg_chown(data);
	pwopt = xasprintf("--pwfile=%s", pwfile);
	{
		char *argv[] = { pg_initdb, "-D", data, "-U",
			PG_SUPERUSER, pwopt, "--auth-local=scram-sha-256",
			"--auth-host=scram-sha-256", "-E", "UTF8",
			"--no-locale", "--no-sync", NULL };

		log_info("initialising the PostgreSQL cluster in %s", data);
		st = node_run(argv, NODE_RUN_PG, out, sizeof out);
	}
	unlink(pwfile);
	if (st != 0) {
		error("initdb failed (status %d): %s", st, out);
		goto out;
	}
	pg_fresh = 1;
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

/* Hand a cluster made by an older node (everything as the node's user)
 * to the cluster's own user, recursively. */
static void
pg_adopt_owner(const char *data)
{
	struct stat st;
	char *argv[] = { "/bin/chown", "-R", NULL, NULL, NULL };
	char owner[64];

	if (node->pg_uid == (uid_t)-1 || stat(data, &st) == -1 ||
	    st.st_uid == node->pg_uid)
		return;
	snprintf(owner, sizeof owner, "%u:%u", (unsigned)node->pg_uid,
	    (unsigned)node->pg_gid);
	argv[2] = owner;
	argv[3] = (char *)data;
	log_info("PostgreSQL cluster: data now owned by its own OS user");
	node_run(argv, NODE_RUN_ROOT, NULL, 0);
}

/* What shows the cluster's sessions, memberships and dependencies:
 * shared catalogs and the views over them (pg_user and pg_group show no
 * more than pg_roles). Their privileges are kept per database (in its
 * pg_class), so every environment's database closes them to PUBLIC (and
 * template1, for databases made from it). What stays open, as
 * PostgreSQL and hosted PostgreSQL services leave it (PG_OPEN): the
 * lists of the cluster's databases and roles with their settings,
 * comments and security labels — names, owners, attributes, nothing of
 * another database's content — which pg_dump reads (all five in its
 * custom, directory and tar formats), so a user's own pg_dump with the
 * environment's credentials works (issue #10; ARCHITECTURE, "Security
 * model"). */
static const char *const pg_closed_catalogs[] = {
	"pg_user", "pg_group", "pg_auth_members", "pg_shdepend",
	"pg_replication_origin", "pg_stat_activity", "pg_stat_database",
	"pg_stat_database_conflicts", "pg_stat_ssl", "pg_stat_gssapi",
	"pg_prepared_xacts", "pg_replication_slots", "pg_stat_replication",
	"pg_stat_subscription", "pg_stat_progress_analyze",
	"pg_stat_progress_cluster", "pg_stat_progress_copy",
	"pg_stat_progress_create_index", "pg_stat_progress_vacuum", NULL
};
#define PG_CLOSED_FUNCTION	"pg_catalog.pg_stat_get_activity(integer)"
/* What stays open; a node before issue #10 closed these too. */
#define PG_OPEN		"pg_catalog.pg_database, pg_catalog.pg_roles," \
	" pg_catalog.pg_db_role_setting, pg_catalog.pg_shdescription," \
	" pg_catalog.pg_shseclabel"

/* "pg_catalog.a<sep>pg_catalog.b…" of pg_closed_catalogs (caller frees). */
static char *
pg_closed_catalogs_join(const char *sep)
{
	char *s = xstrdup(""), *t;
	int i;

	for (i = 0; pg_closed_catalogs[i] != NULL; i++) {
		t = xasprintf("%s%spg_catalog.%s", s, i ? sep : "",
		    pg_closed_catalogs[i]);
		free(s);
		s = t;
	}
	return s;
}

/* The SQL that closes them (caller frees). */
static char *
pg_catalogs_close_sql(void)
{
	char *list = pg_closed_catalogs_join(", ");
	char *sql = xasprintf("REVOKE SELECT ON %s FROM PUBLIC; REVOKE EXECUTE"
	    " ON FUNCTION " PG_CLOSED_FUNCTION " FROM PUBLIC", list);

	free(list);
	return sql;
}

int
pg_db_close_catalogs(const char *db, char **cause)
{
	PGconn *c = pg_admin_connect_db(db, cause);
	char *sql;
	int rc;

	if (c == NULL)
		return -1;
	sql = pg_catalogs_close_sql();
	rc = pg_admin_exec(c, sql, cause);
	free(sql);
	PQfinish(c);
	return rc;
}

/* In c's database: *lists 1 when PUBLIC may read all of PG_OPEN, *open
 * how many of the closed catalogs (and the function)
 * PUBLIC may still read; -1 when the query failed. */
static int
pg_catalogs_state(PGconn *c, int *lists, int *open)
{
	char *list = pg_closed_catalogs_join(","), *sql;
	PGresult *r;
	long long n;
	int rc = -1;

	sql = xasprintf("SELECT (SELECT bool_and(has_table_privilege("
	    "'public', t, 'SELECT')) FROM unnest('{%s}'::regclass[]) t),"
	    " (SELECT count(*) FROM unnest('{%s}'::regclass[]) t WHERE"
	    " has_table_privilege('public', t, 'SELECT')) +"
	    " has_function_privilege('public', '" PG_CLOSED_FUNCTION "',"
	    " 'EXECUTE')::int", PG_OPEN, list);
	r = PQexec(c, sql);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	    util_parse_int(PQgetvalue(r, 0, 1), 0, 1000, &n) == 0) {
		*lists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		*open = (int)n;
		rc = 0;
	}
	PQclear(r);
	free(sql);
	free(list);
	return rc;
}

/* At start, for the databases of an older node (and template1), once
 * (then there is nothing left to do): reopen the lists of databases and
 * roles where a node before issue #10 closed them, and close the other
 * catalogs where a node before those were closed left them open. A
 * server that does not let the admin (--pg, not a superuser) is warned
 * about per database, not refused. */
static void
pg_catalogs_settle(void)
{
	char *cause = NULL, *close_sql = pg_catalogs_close_sql();
	PGconn *c = pg_admin_connect(&cause);
	PGresult *r;
	int i, reopened = 0, closed = 0;

	if (c == NULL) {
		log_warn("%s", cause);
		free(cause);
		free(close_sql);
		return;
	}
	r = PQexec(c, "SELECT datname FROM pg_catalog.pg_database WHERE"
	    " datname = 'template1' OR datname LIKE 'env\\_%' ORDER BY 1");
	for (i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r);
	    i++) {
		const char *db = PQgetvalue(r, i, 0);
		PGconn *d = pg_admin_connect_db(db, &cause);
		int lists = 0, open = 0, ok;

		ok = d != NULL && pg_catalogs_state(d, &lists, &open) == 0;
		if (ok && !lists && pg_admin_exec(d, "GRANT SELECT ON "
		    PG_OPEN " TO PUBLIC", &cause) == 0 &&
		    pg_catalogs_state(d, &lists, &open) == 0 && lists)
			reopened++;
		if (ok && open > 0 && pg_admin_exec(d, close_sql,
		    cause ? NULL : &cause) == 0 &&
		    pg_catalogs_state(d, &lists, &open) == 0 && open == 0)
			closed++;
		if (!ok || !lists || open > 0)
			log_warn("PostgreSQL: in database %s, %s%s%s", db,
			    !ok ? "cannot read the catalogs' privileges" :
			    !lists ? "app roles still may not list the "
			    "cluster's databases and roles (pg_dump needs them)" :
			    "app roles still may read the cluster's sessions, "
			    "memberships or dependencies",
			    cause ? ": " : "", cause ? cause : "");
		free(cause);
		cause = NULL;
		if (d)
			PQfinish(d);
	}
	PQclear(r);
	PQfinish(c);
	free(close_sql);
	if (reopened)
		log_info("PostgreSQL: the lists of the cluster's databases and "
		    "roles (pg_database, pg_roles, their settings, comments and "
		    "labels) reopened to app roles, as "
		    "PostgreSQL has them, in %d database%s an earlier node had "
		    "closed them in", reopened, reopened == 1 ? "" : "s");
	if (closed)
		log_info("PostgreSQL: the cluster's sessions, memberships "
		    "and dependencies closed to app roles in %d "
		    "database%s that still had them open", closed,
		    closed == 1 ? "" : "s");
}

/* Set once pg_lock_down() succeeded: a cluster that could not start
 * with the agent is locked down once the heal thread started it. */
static int pg_locked;

/* No role connects to postgres or the templates but the superuser. */
static int
pg_lock_down(void)
{
	char *cause = NULL;
	PGconn *c = pg_admin_connect(&cause);
	int rc;

	if (c == NULL) {
		error("%s", cause);
		free(cause);
		return -1;
	}
	rc = pg_admin_exec(c, "REVOKE CONNECT, TEMPORARY ON DATABASE postgres,"
	    " template1 FROM PUBLIC", &cause);
	if (rc == -1) {
		error("%s", cause);
		free(cause);
	}
	PQfinish(c);
	if (rc == 0) {
		pg_catalogs_settle();
		pg_locked = 1;
	}
	return rc;
}

static int
pg_running(void)
{
	char *data = pg_path("data"), out[512];
	char *argv[] = { pg_ctl, "status", "-D", data, NULL };
	int st = node_run(argv, NODE_RUN_PG, out, sizeof out);

	free(data);
	return st == 0;
}

/* The postmaster of the own cluster (postmaster.pid, a live "postgres"
 * process), or 0. */
static pid_t
pg_postmaster(void)
{
	char *path = pg_path("data/postmaster.pid");
	pid_t pid = heal_pidfile(path, "postgres");

	free(path);
	return pid;
}

/* Kill what a dead postmaster left: its backends and helpers still run
 * in the data folder (every process of the cluster has it as its working
 * folder, so another cluster's never matches) and keep the old shared
 * memory, which a new postmaster refuses to start beside. */
static void
pg_orphans_kill(void)
{
	char *data = pg_path("data"), real[PATH_MAX];
	pid_t pids[1024];
	int n, i;

	if (realpath(data, real) == NULL) {
		free(data);
		return;
	}
	free(data);
	n = heal_proc_in_dir(real, "postgres", pids, 1024);
	if (n <= 0)
		return;
	log_warn("PostgreSQL: killing %d process%s the dead postmaster left",
	    n, n == 1 ? "" : "es");
	for (i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	for (i = 0; i < 50 && heal_proc_in_dir(real, "postgres", pids, 1) > 0;
	    i++)
		usleep(100 * 1000);
}

static int pg_cluster_start(char **cause);

/* The server log's last FATAL or PANIC line, after the lines its
 * process wrote right before it (at most 3; caller frees), or NULL. */
static char *
pg_log_why(const char *logfile)
{
	char buf[4096], tag[32], *p, *last = NULL, *from, *prev;
	int fd = open(logfile, O_RDONLY | O_CLOEXEC), k;
	off_t size;
	ssize_t n = 0;
	size_t taglen;

	if (fd != -1) {
		size = lseek(fd, 0, SEEK_END);
		lseek(fd, size > (off_t)sizeof buf - 1 ? size -
		    (off_t)sizeof buf + 1 : 0, SEEK_SET);
		n = read(fd, buf, sizeof buf - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	for (p = buf; (p = strstr(p, "FATAL:")) != NULL; p++)
		last = p;
	for (p = buf; (p = strstr(p, "PANIC:")) != NULL; p++)
		if (last == NULL || p > last)
			last = p;
	if (last == NULL)
		return NULL;
	for (from = last; from > buf && from[-1] != '\n'; from--)
		;
	/* "… UTC [pid] FATAL:": the same process's lines before it */
	p = memchr(from, '[', (size_t)(last - from));
	taglen = p ? strcspn(p, "]") + 1 : 0;
	if (p == NULL || taglen >= sizeof tag)
		taglen = 0;
	memcpy(tag, p ? p : "", taglen);
	tag[taglen] = '\0';
	for (k = 0; taglen && k < 3 && from > buf; k++) {
		for (prev = from - 1; prev > buf && prev[-1] != '\n'; prev--)
			;
		p = memchr(prev, '\n', (size_t)(from - prev));
		if (p == NULL || memmem(prev, (size_t)(p - prev), tag,
		    taglen) == NULL)
			break;
		from = prev;
	}
	p = xstrndup(from, strcspn(last, "\n") + (size_t)(last - from));
	for (last = p; *last; last++)
		if (*last == '\n')
			*last = ' ';
	return p;
}

/* postmaster.pid and the socket's lock file name a postmaster that is
 * gone: remove them (a zombie the system has not reaped yet still
 * answers kill(pid, 0), and PostgreSQL would take it as running). */
static void
pg_stale_locks_remove(void)
{
	char *files[2];
	int i;

	files[0] = pg_path("data/postmaster.pid");
	files[1] = xasprintf("%s/pg/run/.s.PGSQL.%u.lock", node->data_dir,
	    node->pg_port);
	for (i = 0; i < 2; i++) {
		char *text = util_read_file(files[i], 4096, NULL);
		long long pid = 0;

		if (text) {
			text[strcspn(text, "\n")] = '\0';
			if (util_parse_int(text, 1, 1 << 22, &pid) == 0 &&
			    !heal_proc_is((pid_t)pid, "postgres") &&
			    unlink(files[i]) == 0)
				log_info("removed %s: its postmaster (pid "
				    "%lld) is gone", files[i], pid);
		}
		free(text);
		free(files[i]);
	}
}

/* Held while pg_hba.conf is rendered, written and applied. */
static pthread_mutex_t pg_hba_lock = PTHREAD_MUTEX_INITIALIZER;

/* Write DIR/pg/data/pg_hba.conf: the fixed rules and the replication
 * rules (caller holds pg_hba_lock). 0, or -1 with *cause. */
static int
pg_hba_write(char **cause)
{
	char *hba = pg_path("data/pg_hba.conf");
	char *rules = replication_hba_rules();
	char *text = xasprintf("%s%s%s", pg_hba_head, rules, pg_hba_tail);
	int rc;

	rc = util_write_file(hba, text, strlen(text), 0600);
	if (rc == -1)
		*cause = xasprintf("cannot write pg_hba.conf: %s",
		    strerror(errno));
	else
		pg_chown(hba);
	free(hba);
	free(rules);
	free(text);
	return rc;
}

/* The server's last configuration load, as a new session sees it (it
 * inherits the postmaster's), into out; -1 when it cannot be asked. */
static int
pg_conf_loaded(char *out, size_t outlen)
{
	char *cause = NULL;
	PGconn *c = pg_admin_connect(&cause);
	PGresult *r;
	int rc = -1;

	free(cause);
	if (c == NULL)
		return -1;
	r = PQexec(c, "SELECT pg_conf_load_time()");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
		snprintf(out, outlen, "%s", PQgetvalue(r, 0, 0));
		rc = 0;
	}
	PQclear(r);
	PQfinish(c);
	return rc;
}

int
pg_wal_level_ok(char **cause)
{
	PGconn *c = pg_admin_connect(cause);
	PGresult *r;
	int rc = -1;

	if (c == NULL)
		return -1;
	r = PQexec(c, "SHOW wal_level");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		*cause = xasprintf("PostgreSQL: %s", PQerrorMessage(c));
	else if (strcmp(PQgetvalue(r, 0, 0), "logical") == 0)
		rc = 0;
	else if (node->pg_uri)
		*cause = xasprintf("the PostgreSQL server given with --pg runs "
		    "with wal_level = %s: logical replication needs "
		    "wal_level = logical (its operator's to set)",
		    PQgetvalue(r, 0, 0));
	else
		*cause = xasprintf("the node's PostgreSQL runs with wal_level "
		    "= %s since before this node's version: logical "
		    "replication needs it restarted (nubod node stop-all, then "
		    "start the node), which switches it to logical",
		    PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return rc;
}

int
pg_hba_apply(char **cause)
{
	char before[64], now[64];
	PGconn *c = NULL;
	PGresult *r;
	int rc = -1, i;

	if (node->pg_uri) {
		*cause = xstrdup("the PostgreSQL server given with --pg has "
		    "its operator's pg_hba.conf");
		return -1;
	}
	pthread_mutex_lock(&pg_hba_lock);
	if (pg_conf_loaded(before, sizeof before) == -1) {
		*cause = xstrdup("cannot reach the node's PostgreSQL to "
		    "reload pg_hba.conf");
		goto out;
	}
	if (pg_hba_write(cause) == -1 || (c = pg_admin_connect(cause)) ==
	    NULL)
		goto out;
	/* a file PostgreSQL cannot read keeps the rules it had */
	r = PQexec(c, "SELECT line_number, error FROM pg_hba_file_rules"
	    " WHERE error IS NOT NULL");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) > 0) {
		*cause = xasprintf("PostgreSQL refuses the rendered "
		    "pg_hba.conf: %s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 1) :
		    PQerrorMessage(c));
		PQclear(r);
		goto out;
	}
	PQclear(r);
	if (pg_admin_exec(c, "SELECT pg_reload_conf()", cause) == -1)
		goto out;
	/* the reload is the postmaster's, a moment later: the rules are
	 * live once a new session was forked after it */
	for (i = 0; i < 100; i++) {
		if (pg_conf_loaded(now, sizeof now) == 0 && strcmp(now,
		    before) != 0) {
			rc = 0;
			goto out;
		}
		usleep(50 * 1000);
	}
	*cause = xstrdup("PostgreSQL did not reload pg_hba.conf within 5 s");
out:
	if (c)
		PQfinish(c);
	pthread_mutex_unlock(&pg_hba_lock);
	return rc;
}

/* Before the cluster starts: the wal_level it last ran with (its control
 * file), and a line saying so when this start switches it to logical (a
 * cluster an older node made; wal_level takes effect at a start only). */
static void
pg_wal_level_switch(const char *data)
{
	char bin[] = PG_BIN "/pg_controldata", out[8192], *p, *end;
	char *argv[] = { bin, "-D", (char *)data, NULL };

	if (pg_fresh || node_run(argv, NODE_RUN_PG, out, sizeof out) != 0 ||
	    (p = strstr(out, "wal_level setting:")) == NULL)
		return;
	p += strlen("wal_level setting:");
	p += strspn(p, " \t");
	end = p + strcspn(p, "\n");
	*end = '\0';
	if (strcmp(p, "logical") != 0)
		log_info("PostgreSQL: wal_level switched from %s to logical "
		    "with this start (logical replication for migrations; "
		    "max_replication_slots 32, max_wal_senders 32)", p);
}

static struct heal pg_heal = { .what = "PostgreSQL" };
static int pg_external_pending;	/* --pg unreachable at the start */
static void pg_external_ready(PGconn *);

void
pg_watch(void)
{
	char *cause = NULL;

	pg_heal.slot = &node->pg_down;
	if (node->pg_uri) {
		/* a server of its own: it is not ours to restart */
		static double last;

		pg_heal.external = 1;
		if (util_mono() - last < 2)
			return;
		last = util_mono();
		if (pg_reachable(&cause) == 0) {
			PGconn *c;

			/* unreachable when the agent started: checked and
			 * settled now, as pg_start() does */
			if (pg_external_pending && (c = pg_admin_connect(
			    &cause)) != NULL) {
				pg_external_pending = 0;
				pg_external_ready(c);
			}
			free(cause);
			heal_alive(&pg_heal);
			return;
		}
		heal_gone(&pg_heal, cause);
		free(cause);
		return;
	}
	if (pg_postmaster() > 0) {
		static double lock_tried;

		heal_alive(&pg_heal);
		/* started by this thread, never by the agent's start */
		if (!pg_locked && util_mono() - lock_tried > 5) {
			lock_tried = util_mono();
			pg_lock_down();
		}
		return;
	}
	if (!heal_gone(&pg_heal, "its postmaster is gone"))
		return;
	pg_orphans_kill();
	pg_stale_locks_remove();
	if (pg_cluster_start(&cause) == -1) {
		heal_tried(&pg_heal, cause);
		free(cause);
		return;
	}
	heal_tried(&pg_heal, NULL);
}

/* Start the own cluster (rendering pg_hba.conf first); -1 with *cause
 * (the server log's last lines). */
static int
pg_cluster_start(char **cause)
{
	char *data = pg_path("data"), *run = pg_path("run");
	char *logdir = pg_path("log");
	char *logfile = xasprintf("%s/postgres.log", logdir);
	char *tlsdir = pg_path("tls"), *opts = NULL, *tls = NULL;
	char out[1024] = "", addr[64];
	int rc = -1, st;

	pg_adopt_owner(data);
	{
		/* DIR/pg is the node's: sandboxes only pass through it to
		 * the socket folder (bubblewrap binds it as their user) */
		char *base = pg_path(NULL);

		if (node->uid != (uid_t)-1 && chown(base, 0, 0) == -1)
			log_warn("cannot chown %s: %s", base, strerror(errno));
		chmod(base, 0711);
		free(base);
	}
	util_mkdir_p(run, 0711);
	util_mkdir_p(logdir, 0700);
	chmod(run, 0711);
	chmod(logdir, 0700);
	pg_chown(run);
	pg_chown(logdir);
	pthread_mutex_lock(&pg_hba_lock);
	st = pg_hba_write(cause);
	pthread_mutex_unlock(&pg_hba_lock);
	if (st == -1)
		goto out;
	if (access(logfile, F_OK) == 0)
		pg_chown(logfile);
	pg_wal_level_switch(data);
	if (pg_node_address(addr, sizeof addr) == 0) {
		char *why = NULL;

		if (pg_tls_files(addr, &why) == 0)
			tls = xasprintf(",%s -c ssl=on -c ssl_cert_file=%s/"
			    "server.crt -c ssl_key_file=%s/server.key", addr,
			    tlsdir, tlsdir);
		else
			log_warn("PostgreSQL serves loopback only, without "
			    "TLS (no replication to other hosts): %s", why);
		free(why);
	}
	opts = xasprintf("-c port=%u -c listen_addresses=127.0.0.1%s"
	    " -c unix_socket_directories=%s -c max_connections=200"
	    " -c shared_buffers=32MB -c fsync=on " PG_REPLICATION_SETTINGS,
	    node->pg_port, tls ? tls : "", run);
	{
		/* with -l the server's output goes to the log, so only
		 * pg_ctl's own words come through the pipe */
		char *argv[] = { pg_ctl, "start", "-D", data, "-l",
			logfile, "-w", "-t", "60", "-o", opts, NULL };

		st = node_run(argv, NODE_RUN_PG, out, sizeof out);
	}
	if (st != 0) {
		char *why = pg_log_why(logfile);

		out[strcspn(out, "\n")] = '\0';
		*cause = xasprintf("PostgreSQL did not start (pg_ctl: %s)%s%s",
		    *out ? out : "no message", why ? ": " : "", why ? why : "");
		free(why);
		goto out;
	}
	if (tls)
		log_info("PostgreSQL listens on %s:%u too, with TLS: for "
		    "migrations replicating to other hosts (pg_hba.conf admits "
		    "their roles alone, each from its target's address)", addr,
		    node->pg_port);
	rc = 0;
out:
	free(data);
	free(run);
	free(logdir);
	free(logfile);
	free(tlsdir);
	free(tls);
	free(opts);
	return rc;
}

/* --pg on another host: the environments' roles come from this node's
 * address (the relay of their sockets), and nothing else should reach
 * them. Say which rules of the server's pg_hba.conf let them in from
 * elsewhere (or without scram); the server is the operator's to fix. */
static void
pg_hba_check(PGconn *c)
{
	PGresult *r;
	int i, open = 0;

	if (pg_host == NULL || *pg_host == '/' || strcmp(pg_host,
	    "localhost") == 0 || strncmp(pg_host, "127.", 4) == 0 ||
	    strcmp(pg_host, "::1") == 0)
		return;		/* on this host: its loopback is the node's */
	r = PQexec(c, "SELECT line_number, type, user_name::text, address,"
	    " netmask, auth_method FROM pg_hba_file_rules WHERE error IS NULL"
	    " ORDER BY line_number");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *msg = PQerrorMessage(c);

		log_warn("cannot read the pg_hba.conf rules of the PostgreSQL "
		    "server at %s (%.*s): make sure they admit the "
		    "environments' roles (env_*, nubo_*) from this node's "
		    "address only, with scram-sha-256", pg_host,
		    (int)strcspn(msg, "\n"), msg);
		PQclear(r);
		return;
	}
	for (i = 0; i < PQntuples(r); i++) {
		char *why = pgtool_hba_open(PQgetvalue(r, i, 1),
		    PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2),
		    PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3),
		    PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4),
		    PQgetvalue(r, i, 5));

		if (why == NULL)
			continue;
		open++;
		log_warn("the PostgreSQL server at %s: pg_hba.conf line %s %s: "
		    "other hosts may try the environments' roles; admit them "
		    "from this node's address only, with scram-sha-256",
		    pg_host, PQgetvalue(r, i, 0), why);
		free(why);
	}
	if (open == 0)
		log_info("the PostgreSQL server at %s admits the environments' "
		    "roles from single hosts only, with scram-sha-256 (its "
		    "pg_hba.conf)", pg_host);
	PQclear(r);
}

/* --pg: the server answers (c, closed here): say so, check its
 * pg_hba.conf and settle the catalogs' grants. */
static void
pg_external_ready(PGconn *c)
{
	log_info("using the PostgreSQL server at %s:%u", pg_host,
	    pg_port_used);
	pg_hba_check(c);
	PQfinish(c);
	pg_catalogs_settle();
}

int
pg_start(void)
{
	char *cause = NULL;
	PGconn *c;

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
			/* the agent runs on: pg_watch() tries the server
			 * every 2 s, environments say degraded meanwhile,
			 * and it is checked and settled once it answers */
			error("%s", cause);
			pg_heal.slot = &node->pg_down;
			pg_heal.external = 1;
			heal_gone(&pg_heal, cause);
			free(cause);
			pg_external_pending = 1;
			return 0;
		}
		pg_external_ready(c);
		return 0;
	}
	pg_host = xstrdup("127.0.0.1");
	pg_port_used = node->pg_port;
	if (pg_init() == -1)
		return -1;
	/* pg_ctl status takes a postmaster killed while the agent was
	 * away for a live one while it is a zombie: its process must live */
	if (pg_running() && pg_postmaster() > 0) {
		log_info("PostgreSQL cluster already running; adopted");
		/* one that does not answer yet is locked down by pg_watch */
		pg_lock_down();
		if (pg_wal_level_ok(&cause) == -1) {
			log_warn("%s", cause);
			free(cause);
		}
		return 0;
	}
	/* a postmaster killed while the agent was away left these */
	pg_orphans_kill();
	pg_stale_locks_remove();
	if (pg_cluster_start(&cause) == -1) {
		/* the agent runs on: the heal thread (pg_watch) tries again
		 * with back-off, environments say degraded meanwhile */
		error("%s", cause);
		pg_heal.slot = &node->pg_down;
		heal_not_started(&pg_heal, cause);
		free(cause);
		return 0;
	}
	log_info("PostgreSQL cluster started on 127.0.0.1:%u", node->pg_port);
	return pg_lock_down();
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

		node_run(argv, NODE_RUN_PG, out, sizeof out);
	}
	free(data);
}

char *
pg_env_dbname(struct env *e)
{
	return xasprintf("env_%lld", e->id);
}

char *
pg_env_app_url(struct env *e)
{
	if (e->db_password == NULL)
		return NULL;
	return xasprintf("postgresql://env_%lld:%s@127.0.0.1:%d/env_%lld",
	    e->id, e->db_password, sandbox_db_port(), e->id);
}

/* --pg over TCP: one relay thread for every environment's socket. */
static struct relay *pg_relay;
static pthread_mutex_t pg_relay_lock = PTHREAD_MUTEX_INITIALIZER;
static long long *pg_relayed;	/* environment ids with a listener */
static size_t pg_nrelayed;

static int
pg_relay_dial(void *arg)
{
	(void)arg;
	return relay_dial_tcp(pg_host, (int)pg_port_used);
}

static void *
pg_relay_thread(void *arg)
{
	relay_run(arg);
	return NULL;
}

/* DIR/run/db-<id>/db.sock, listening for environment e (idempotent). */
static int
pg_relay_env(struct env *e, const char *dir, const char *sock)
{
	size_t i;
	int fd, rc = -1;

	pthread_mutex_lock(&pg_relay_lock);
	for (i = 0; i < pg_nrelayed; i++)
		if (pg_relayed[i] == e->id) {
			struct stat st;

			if (stat(sock, &st) == 0) {
				rc = 0;
				goto out;
			}
			relay_unlisten(pg_relay, e->id);
			pg_relayed[i] = pg_relayed[--pg_nrelayed];
			break;
		}
	if (pg_relay == NULL) {
		pthread_t t;

		pg_relay = relay_new();
		if (pg_relay == NULL || pthread_create(&t, NULL,
		    pg_relay_thread, pg_relay) != 0) {
			error("cannot start the database relay");
			goto out;
		}
		pthread_detach(t);
	}
	if (util_mkdir_p(dir, 0700) == -1) {
		error("cannot create %s: %s", dir, strerror(errno));
		goto out;
	}
	env_chown(e, dir);
	fd = relay_listen_unix(sock, 0600);
	if (fd == -1) {
		error("cannot listen on %s: %s", sock, strerror(errno));
		goto out;
	}
	env_chown(e, sock);
	if (relay_listen(pg_relay, fd, pg_relay_dial, NULL, e->id) == -1) {
		close(fd);
		goto out;
	}
	pg_relayed = xrealloc(pg_relayed, (pg_nrelayed + 1) *
	    sizeof *pg_relayed);
	pg_relayed[pg_nrelayed++] = e->id;
	rc = 0;
out:
	pthread_mutex_unlock(&pg_relay_lock);
	return rc;
}

void
pg_relay_forget(long long id)
{
	size_t i;

	pthread_mutex_lock(&pg_relay_lock);
	for (i = 0; i < pg_nrelayed; i++)
		if (pg_relayed[i] == id) {
			relay_unlisten(pg_relay, id);
			pg_relayed[i] = pg_relayed[--pg_nrelayed];
			break;
		}
	pthread_mutex_unlock(&pg_relay_lock);
}

int
pg_app_socket(struct env *e, char **dir, char **name)
{
	if (node->pg_uri == NULL) {
		*dir = pg_path("run");
		*name = xasprintf(".s.PGSQL.%u", node->pg_port);
		return 0;
	}
	if (pg_host && pg_host[0] == '/') {
		*dir = xstrdup(pg_host);
		*name = xasprintf(".s.PGSQL.%u", pg_port_used);
		return 0;
	}
	*dir = xasprintf("%s/run/db-%lld", node->data_dir, e->id);
	*name = xstrdup("db.sock");
	{
		char *sock = xasprintf("%s/%s", *dir, *name);
		int rc = pg_relay_env(e, *dir, sock);

		free(sock);
		if (rc == 0)
			return 0;
	}
	free(*dir);
	free(*name);
	*dir = *name = NULL;
	return -1;
}

void
pg_relay_adopted(void)
{
	struct env *e;

	if (node->pg_uri == NULL || (pg_host && pg_host[0] == '/'))
		return;
	pthread_mutex_lock(&node->lock);
	for (e = node->envs; e; e = e->next) {
		char *dir, *name;

		if (!env_any_alive(e) || pg_app_socket(e, &dir, &name) == -1)
			continue;
		free(dir);
		free(name);
	}
	pthread_mutex_unlock(&node->lock);
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

char *
pg_env_dump_url(struct env *e)
{
	char *admin, *db, *url;

	if (e->db_password == NULL)
		return NULL;	/* no database yet */
	admin = pg_admin_conninfo();
	db = pg_env_dbname(e);
	url = pgtool_conninfo_db(admin, db);

	explicit_bzero(admin, strlen(admin));
	free(admin);
	free(db);
	return url;
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
		if (rc == 0) {
			sql = xasprintf("env_%lld", e->id);
			rc = pg_db_close_catalogs(sql, cause);
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
	sql = xasprintf("%s ROLE env_%lld LOGIN NOSUPERUSER NOCREATEDB "
	    "NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT %d "
	    "PASSWORD %s", exists ? "ALTER" : "CREATE", e->id,
	    PG_ROLE_CONNECTIONS, esc);
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
	/* a replication slot or subscription of a migration would keep
	 * DROP DATABASE from working (replication.c) */
	if (replication_env_drop(id, cause) == -1) {
		PQfinish(c);
		return -1;
	}
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
