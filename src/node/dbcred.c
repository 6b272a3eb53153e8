/* Short-lived database credentials (nubo envs db-url): a login role of
 * its own per request, `nubo_cred_<env id>_<hex>`, with a password, VALID
 * UNTIL its expiry and a few sessions, member of the environment's role
 * env_<id> and switched to it at login (ALTER ROLE … SET role), so a
 * session has the environment role's rights and what it creates is the
 * environment's — nothing more: not superuser, createdb, createrole,
 * replication or bypassrls.
 *
 * It logs in where the node's PostgreSQL listens for the node itself
 * (TCP on 127.0.0.1 of the node's host for the node's own cluster, the
 * --pg server otherwise); pg_hba lets roles into other databases than
 * their own name only over that TCP listener, never on the socket the
 * sandboxes reach, so an app cannot use one.
 *
 * After the expiry PostgreSQL refuses the password; a thread drops
 * expired roles every NUBO_DBCRED_SWEEP seconds, ending their sessions
 * first and handing what they own to the environment's role. */
#include "node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "agent-routes.h"
#include "jsonx.h"
#include "log.h"
#include "nubo_limits.h"
#include "util.h"
#include "xmalloc.h"

/* 1 while credentials may exist (at start: unknown) */
static volatile int dbcred_maybe = 1;

/* POST /agent/v1/environments/{id}/db-credentials {ttl?}: 201 {user,
 * password, host, port, database, url, expires_at}. */
void
agent_dbcred_create(struct areq *r)
{
	static const struct jfield fields[] = {
		{ "ttl", JT_INT, 0 }, { NULL } };
	long long ttl = jsonx_int(r->body, "ttl", NUBO_DBCRED_TTL), id, port;
	char *url, *at, *slash, *colon, *user = NULL, *pw = NULL, *sql = NULL;
	char *cause = NULL, *lit = NULL, expires[32], dbname[64];
	PGconn *c = NULL;

	if (abody_check(r, fields) == -1)
		return;
	if (ttl < NUBO_DBCRED_TTL_MIN || ttl > NUBO_DBCRED_TTL_MAX) {
		areply_error(r, 400, "BAD_REQUEST", "ttl must be %d to %d "
		    "seconds", NUBO_DBCRED_TTL_MIN, NUBO_DBCRED_TTL_MAX);
		return;
	}
	pthread_mutex_lock(&node->lock);
	id = r->env->id;
	url = pg_env_url(r->env);
	pthread_mutex_unlock(&node->lock);
	snprintf(dbname, sizeof dbname, "env_%lld", id);
	/* postgresql://env_<id>:<password>@<host>:<port>/env_<id> */
	at = url ? strrchr(url, '@') : NULL;
	slash = at ? strchr(at, '/') : NULL;
	colon = at ? strrchr(at, ':') : NULL;
	if (at == NULL || slash == NULL || colon == NULL || colon > slash ||
	    (c = pg_admin_connect(&cause)) == NULL ||
	    pg_db_exists(c, dbname) != 1) {
		if (cause)
			areply_error(r, 503, "DATABASE_UNAVAILABLE", "%s",
			    cause);
		else
			areply_error(r, 409, "DATABASE_NOT_CREATED",
			    "environment %lld has no database yet: it is made "
			    "at its first start", id);
		goto out;
	}
	pw = util_random_hex(6);
	user = xasprintf("nubo_cred_%lld_%s", id, pw);
	free(pw);
	pw = util_random_hex(24);
	util_time_iso(time(NULL) + ttl, expires, sizeof expires);
	lit = PQescapeLiteral(c, pw, strlen(pw));
	sql = xasprintf("CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB"
	    " NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT CONNECTION LIMIT"
	    " %d PASSWORD %s VALID UNTIL '%s' IN ROLE env_%lld; ALTER ROLE %s"
	    " SET role = 'env_%lld'", user, NUBO_DBCRED_CONNECTIONS, lit,
	    expires, id, user, id);
	dbcred_maybe = 1;
	if (pg_admin_exec(c, sql, &cause) == -1) {
		areply_error(r, 503, "DATABASE_UNAVAILABLE", "%s", cause);
		goto out;
	}
	*at = *colon = *slash = '\0';
	if (util_parse_int(colon + 1, 1, 65535, &port) == -1)
		port = 0;
	log_info("environment %lld: database credential %s made, valid until "
	    "%s", id, user, expires);
	{
		char *u = xasprintf("postgresql://%s:%s@%s:%s/%s", user, pw,
		    at + 1, colon + 1, dbname);

		areply(r, 201, json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:s}",
		    "user", user, "password", pw, "host", at + 1, "port",
		    (int)port, "database", dbname, "url", u,
		    "expires_at", expires));
		free(u);
	}
out:
	if (lit)
		PQfreemem(lit);
	if (c)
		PQfinish(c);
	free(cause);
	free(sql);
	free(pw);
	free(user);
	free(url);
}

/* Drop one expired credential: its sessions end, what it made in its
 * environment's database becomes the environment's, then it goes. */
static void
dbcred_drop(PGconn *c, const char *role)
{
	long long id = 0;
	char *sql, *cause = NULL, *ci, db[64];
	PGconn *dc;

	sscanf(role, "nubo_cred_%lld_", &id);
	snprintf(db, sizeof db, "env_%lld", id);
	sql = xasprintf("SELECT pg_terminate_backend(pid) FROM"
	    " pg_stat_activity WHERE usename = '%s'", role);
	pg_admin_exec(c, sql, NULL);
	free(sql);
	if (pg_db_exists(c, db) == 1) {
		const char *keys[] = { "dbname", "dbname", NULL };
		const char *vals[] = { NULL, db, NULL };

		ci = pg_admin_conninfo();
		vals[0] = ci;
		dc = PQconnectdbParams(keys, vals, 1);
		free(ci);
		if (PQstatus(dc) == CONNECTION_OK) {
			sql = xasprintf("REASSIGN OWNED BY %s TO env_%lld; DROP"
			    " OWNED BY %s", role, id, role);
			pg_admin_exec(dc, sql, NULL);
			free(sql);
		}
		PQfinish(dc);
	}
	sql = xasprintf("DROP ROLE IF EXISTS %s", role);
	if (pg_admin_exec(c, sql, &cause) == -1)
		log_warn("cannot drop the expired database credential %s: %s",
		    role, cause);
	else
		log_info("environment %lld: database credential %s expired "
		    "and dropped", id, role);
	free(cause);
	free(sql);
}

/* One sweep: drop every expired credential; remember whether any is
 * left. */
static void
dbcred_sweep(void)
{
	PGconn *c;
	PGresult *res;
	char *cause = NULL;
	int i;

	if ((c = pg_admin_connect(&cause)) == NULL) {
		free(cause);
		return;
	}
	res = PQexec(c, "SELECT rolname, rolvaliduntil < now() FROM pg_roles"
	    " WHERE rolname ~ '^nubo_cred_[0-9]+_[0-9a-f]+$'");
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		int left = 0;

		for (i = 0; i < PQntuples(res); i++) {
			if (strcmp(PQgetvalue(res, i, 1), "t") == 0)
				dbcred_drop(c, PQgetvalue(res, i, 0));
			else
				left = 1;
		}
		dbcred_maybe = left;
	}
	PQclear(res);
	PQfinish(c);
}

static void *
dbcred_loop(void *arg)
{
	(void)arg;
	for (;;) {
		sleep(NUBO_DBCRED_SWEEP);
		if (dbcred_maybe)
			dbcred_sweep();
	}
	return NULL;
}

void
dbcred_start(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, dbcred_loop, NULL) == 0)
		pthread_detach(t);
	else
		log_warn("cannot start the sweep of database credentials");
}
