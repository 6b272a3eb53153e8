/* The throwaway role a dump is loaded as (restore-role.h).
 *
 * Why: pg_restore runs whatever SQL a custom-format dump's table of
 * contents holds. Run as the environment's own role it could drop or
 * alter the live database (DROP DATABASE env_<id>), the role itself
 * (ALTER ROLE env_<id> SET default_transaction_read_only = on) or anything
 * that role may touch. Run as a role that owns nothing but the new,
 * still unused database, those statements fail for lack of privilege and
 * the restore fails with them; what the dump may legitimately change on
 * its own database (settings, connection limit, grants) is reset before
 * the database is handed to the environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "restore-role.h"
#include "util.h"
#include "xmalloc.h"

/* Run a statement built from fmt with identifiers quoted by the caller. */
static int
exec_fmt(PGconn *c, char **cause, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
exec_fmt(PGconn *c, char **cause, const char *fmt, ...)
{
	va_list ap;
	char *sql;
	int rc;

	va_start(ap, fmt);
	sql = xvasprintf(fmt, ap);
	va_end(ap);
	rc = pg_admin_exec(c, sql, cause);
	free(sql);
	return rc;
}

static char *
ident(PGconn *c, const char *s)
{
	char *q = PQescapeIdentifier(c, s, strlen(s));
	char *r = xstrdup(q ? q : "\"\"");

	PQfreemem(q);
	return r;
}

/* The throwaway role rr for a load into database db, and its URL: 0, or
 * -1 with *cause (*made 1 once the role exists). */
static int
role_create(struct pg_conn *admin, const char *kind, long long env_id,
    const char *env_url, const char *db, struct restore_role *rr,
    int *made, char **cause)
{
	PQconninfoOption *o = NULL, *p;
	char *hex = util_random_hex(4), *pw = util_random_hex(24);
	char *lit = NULL, *host = NULL, *port = NULL;
	int rc = -1;

	memset(rr, 0, sizeof(*rr));
	*made = 0;
	snprintf(rr->name, sizeof(rr->name), "nubo_%s_%lld_%s", kind, env_id,
	    hex);
	if ((o = PQconninfoParse(env_url, NULL)) == NULL) {
		*cause = xstrdup("the environment's database URL does not parse");
		goto out;
	}
	for (p = o; p->keyword != NULL; p++) {
		if (strcmp(p->keyword, "host") == 0 && p->val)
			host = xstrdup(p->val);
		if (strcmp(p->keyword, "port") == 0 && p->val)
			port = xstrdup(p->val);
	}
	lit = PQescapeLiteral(admin, pw, strlen(pw));
	/* the role: nothing but LOGIN; a connection per pg_restore job */
	if (exec_fmt(admin, cause, "CREATE ROLE %s LOGIN PASSWORD %s"
	    " NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
	    " NOBYPASSRLS CONNECTION LIMIT 64", rr->name, lit) == -1)
		goto out;
	*made = 1;
	rr->url = xasprintf("host=%s port=%s user=%s password=%s dbname=%s",
	    host ? host : "127.0.0.1", port ? port : "5432", rr->name, pw, db);
	rc = 0;
out:
	if (o)
		PQconninfoFree(o);
	PQfreemem(lit);
	explicit_bzero(pw, strlen(pw));
	free(pw);
	free(hex);
	free(host);
	free(port);
	return rc;
}

int
restore_role_begin(struct pg_conn *admin, const char *kind, long long env_id,
    const char *env_url, const char *newdb, struct restore_role *rr,
    char **cause)
{
	char *qdb = NULL;
	int rc = -1, made = 0;

	if (role_create(admin, kind, env_id, env_url, newdb, rr, &made,
	    cause) == -1)
		goto out;
	qdb = ident(admin, newdb);
	/* the cluster's sessions, memberships and dependencies
	 * closed before the dump runs in it (a table made of them would
	 * outlive it) */
	if (exec_fmt(admin, cause, "CREATE DATABASE %s OWNER %s ENCODING"
	    " 'UTF8' TEMPLATE template0", qdb, rr->name) == -1 ||
	    exec_fmt(admin, cause, "REVOKE ALL ON DATABASE %s FROM PUBLIC",
	    qdb) == -1 || pg_db_close_catalogs(newdb, cause) == -1)
		goto out;
	rc = 0;
out:
	if (rc == -1 && made) {
		char *ignored = NULL;

		restore_role_drop(admin, rr->name, &ignored);
		free(ignored);
	}
	free(qdb);
	return rc;
}

int
restore_role_begin_in(struct pg_conn *db, const char *kind,
    long long env_id, const char *env_url, const char *dbname,
    struct restore_role *rr, char **cause)
{
	char *qdb = ident(db, dbname);
	int made = 0, rc = -1;

	if (role_create(db, kind, env_id, env_url, dbname, rr, &made,
	    cause) == 0 && exec_fmt(db, cause, "GRANT CONNECT ON DATABASE %s"
	    " TO %s", qdb, rr->name) == 0)
		rc = 0;
	if (rc == -1 && made) {
		char *ignored = NULL;

		restore_role_end_in(db, env_id, rr->name, &ignored);
		free(ignored);
	}
	free(qdb);
	return rc;
}

int
restore_role_end_in(struct pg_conn *db, long long env_id, const char *name,
    char **cause)
{
	/* no new sessions, none left; what it made or was given to the
	 * environment's role, its grants gone (here and on the database) */
	if (exec_fmt(db, cause, "ALTER ROLE \"%s\" NOLOGIN", name) == -1 ||
	    exec_fmt(db, cause, "SELECT pg_terminate_backend(pid) FROM"
	    " pg_stat_activity WHERE usename = '%s'", name) == -1 ||
	    exec_fmt(db, cause, "REASSIGN OWNED BY \"%s\" TO env_%lld", name,
	    env_id) == -1 ||
	    exec_fmt(db, cause, "DROP OWNED BY \"%s\"", name) == -1 ||
	    exec_fmt(db, cause, "DROP ROLE \"%s\"", name) == -1)
		return -1;
	return 0;
}

/* Revoke every privilege on database qdb from anyone but its owner. */
static int
reset_db_acl(PGconn *admin, const char *newdb, const char *qdb, char **cause)
{
	const char *pv[1] = { newdb };
	PGresult *r = PQexecParams(admin, "SELECT DISTINCT CASE WHEN"
	    " a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(g.rolname) END FROM"
	    " pg_database d, aclexplode(d.datacl) a LEFT JOIN pg_roles g ON"
	    " g.oid = a.grantee WHERE d.datname = $1 AND a.grantee !="
	    " d.datdba", 1, NULL, pv, NULL, NULL, 0);
	int i, rc = 0;

	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		*cause = xasprintf("PostgreSQL: %s", PQerrorMessage(admin));
		PQclear(r);
		return -1;
	}
	for (i = 0; rc == 0 && i < PQntuples(r); i++)
		rc = exec_fmt(admin, cause, "REVOKE ALL ON DATABASE %s FROM %s",
		    qdb, PQgetvalue(r, i, 0));
	PQclear(r);
	return rc;
}

int
restore_role_finish(struct pg_conn *admin, long long env_id,
    const char *newdb, struct restore_role *rr, char **cause)
{
	char *qdb = ident(admin, newdb), *env_role = xasprintf("env_%lld",
	    env_id);
	PGconn *db = NULL;
	int rc = -1;

	/* no new sessions, none left */
	if (exec_fmt(admin, cause, "ALTER ROLE %s NOLOGIN", rr->name) == -1 ||
	    exec_fmt(admin, cause, "SELECT pg_terminate_backend(pid) FROM"
	    " pg_stat_activity WHERE usename = '%s'", rr->name) == -1)
		goto out;
	/* what the dump could set as the database's owner, back to plain
	 * (first: default_transaction_read_only = on would stop what
	 * follows) */
	if (exec_fmt(admin, cause, "ALTER DATABASE %s RESET ALL", qdb) == -1 ||
	    exec_fmt(admin, cause, "ALTER DATABASE %s WITH ALLOW_CONNECTIONS"
	    " true CONNECTION LIMIT -1 IS_TEMPLATE false", qdb) == -1)
		goto out;
	/* everything in it to the environment's role */
	if ((db = pg_admin_connect_db(newdb, cause)) == NULL)
		goto out;
	if (exec_fmt(db, cause, "REASSIGN OWNED BY %s TO %s", rr->name,
	    env_role) == -1 ||
	    exec_fmt(db, cause, "DROP OWNED BY %s", rr->name) == -1)
		goto out;
	PQfinish(db);
	db = NULL;
	if (exec_fmt(admin, cause, "ALTER DATABASE %s OWNER TO %s", qdb,
	    env_role) == -1 ||
	    reset_db_acl(admin, newdb, qdb, cause) == -1 ||
	    exec_fmt(admin, cause, "ALTER ROLE %s RESET ALL", env_role) == -1 ||
	    exec_fmt(admin, cause, "ALTER ROLE %s IN DATABASE %s RESET ALL",
	    env_role, qdb) == -1)
		goto out;
	if (exec_fmt(admin, cause, "DROP ROLE %s", rr->name) == -1)
		goto out;
	rc = 0;
out:
	if (db)
		PQfinish(db);
	free(qdb);
	free(env_role);
	return rc;
}

int
restore_role_drop(struct pg_conn *admin, const char *name, char **cause)
{
	const char *pv[1] = { name };
	PGresult *r;
	int i, rc = 0;

	/* its databases: half-loaded ones (a finished load gave its
	 * database to the environment's role) */
	r = PQexecParams(admin, "SELECT quote_ident(d.datname) FROM pg_database"
	    " d JOIN pg_roles o ON o.oid = d.datdba WHERE o.rolname = $1", 1,
	    NULL, pv, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		*cause = xasprintf("PostgreSQL: %s", PQerrorMessage(admin));
		PQclear(r);
		return -1;
	}
	for (i = 0; rc == 0 && i < PQntuples(r); i++)
		rc = exec_fmt(admin, cause, "DROP DATABASE IF EXISTS %s WITH"
		    " (FORCE)", PQgetvalue(r, i, 0));
	PQclear(r);
	if (rc == 0)
		rc = exec_fmt(admin, cause, "DROP ROLE IF EXISTS \"%s\"", name);
	return rc;
}

/* Every nubo_<kind>_<env_id>_* role an earlier process left: dropped
 * with the databases it owns, or (in_db) after giving what it owns in
 * c's database to env_<env_id>. */
static int
stale_roles(struct pg_conn *c, const char *kind, long long env_id,
    int in_db, char **cause)
{
	char *pattern = xasprintf("nubo\\_%s\\_%lld\\_%%", kind, env_id);
	const char *pv[1] = { pattern };
	PGresult *r = PQexecParams(c, "SELECT rolname FROM pg_roles WHERE"
	    " rolname LIKE $1", 1, NULL, pv, NULL, NULL, 0);
	int i, rc = 0;

	free(pattern);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		*cause = xasprintf("PostgreSQL: %s", PQerrorMessage(c));
		PQclear(r);
		return -1;
	}
	for (i = 0; rc == 0 && i < PQntuples(r); i++) {
		log_info("dropping restore role '%s' and what it owns",
		    PQgetvalue(r, i, 0));
		rc = in_db ? restore_role_end_in(c, env_id, PQgetvalue(r, i, 0),
		    cause) : restore_role_drop(c, PQgetvalue(r, i, 0), cause);
	}
	PQclear(r);
	return rc;
}

int
restore_role_drop_stale(struct pg_conn *admin, const char *kind,
    long long env_id, char **cause)
{
	return stale_roles(admin, kind, env_id, 0, cause);
}

int
restore_role_drop_stale_in(struct pg_conn *db, const char *kind,
    long long env_id, char **cause)
{
	return stale_roles(db, kind, env_id, 1, cause);
}

void
restore_role_release(struct restore_role *rr)
{
	if (rr->url != NULL) {
		explicit_bzero(rr->url, strlen(rr->url));
		free(rr->url);
	}
	memset(rr, 0, sizeof(*rr));
}
