/* Logical replication of an environment's database from this node (the
 * source, the v3 node of a migration) to another node's (the target), so
 * that a migration's cutover waits for the last changes instead of
 * copying the database (issue #14). The portal drives both sides through
 * the agent API; the node makes and drops what PostgreSQL needs, keyed by
 * the migration's key, every call idempotent:
 *
 * source  POST …/replication {migration, target_address}: a role of the
 *         migration's own (LOGIN REPLICATION, a random password, SELECT on
 *         the environment's tables), REPLICA IDENTITY FULL on the tables
 *         without a primary key (else the app's UPDATE and DELETE on them
 *         fail once they are published), a publication FOR ALL TABLES and
 *         a logical slot (pgoutput) in the environment's database, and a
 *         pg_hba.conf rule admitting the role into that database from the
 *         target's address alone (over TLS when that is another host's:
 *         the cluster serves it on the node's own address, pg.c);
 *         answers what the target connects with.
 *         GET reports the slot's lag; DELETE drops all of it.
 * target  subscription.c: the subscription that follows it.
 * Sequences are not replicated: GET …/replication/sequences reads them on
 * the source (subscription.c sets them on the target). This file also
 * holds what both sides share: errors, queries, names (replication.h).
 *
 * Names (all [a-z0-9_], so they are written into SQL unquoted): role
 * nubo_repl_<env id>_<key>, slot nubo_slot_<env id>_<key>, publication
 * nubo_pub_<key>, subscription nubo_sub_<key> (the key's '-' as '_').
 * What a replication from here is (its key, target address, password) is
 * kept in DIR/replication/<env id>-<key>.json (root 0600): written before
 * anything is made in PostgreSQL, marked "deleting" before anything is
 * dropped, removed last — so a node killed in between has a record to
 * finish with, and pg_hba.conf (pg.c) is rendered from these records at
 * every start. Only the node's own cluster can be a source: a --pg
 * server's pg_hba.conf and wal_level are its operator's. */
#include "replication.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "agent-routes.h"
#include "jsonx.h"
#include "log.h"
#include "node.h"
#include "util.h"
#include "xmalloc.h"

/* Sessions one replication role may have: the subscription's apply
 * worker and its table-sync workers (two by default), and room for a
 * reconnect. */
#define REPL_ROLE_CONNECTIONS	8
/* How long making a slot may wait for the transactions running when it
 * starts (PostgreSQL waits for them), and a table's lock for REPLICA
 * IDENTITY FULL. */
#define REPL_SLOT_TIMEOUT	"60s"
#define REPL_LOCK_TIMEOUT	"30s"

pthread_mutex_t replication_lock = PTHREAD_MUTEX_INITIALIZER;

int
repl_fail(struct repl_err *e, unsigned status, const char *code,
    const char *fmt, ...)
{
	va_list ap;

	free(e->cause);
	e->status = status;
	e->code = code;
	va_start(ap, fmt);
	if (vasprintf(&e->cause, fmt, ap) == -1)
		e->cause = NULL;
	va_end(ap);
	return -1;
}

int
repl_fail_cause(struct repl_err *e, unsigned status, const char *code,
    char *cause)
{
	repl_fail(e, status, code, "%s", cause ? cause : "PostgreSQL failed");
	free(cause);
	return -1;
}

/* A failure of PostgreSQL itself (cause: its words, taken over). */
static int
repl_fail_pg(struct repl_err *e, char *cause)
{
	return repl_fail_cause(e, 503, "DATABASE_UNAVAILABLE", cause);
}

/* pg_admin_exec() with e filled when it fails. */
int
repl_exec(PGconn *c, const char *sql, struct repl_err *e)
{
	char *cause = NULL;

	if (pg_admin_exec(c, sql, &cause) == 0)
		return 0;
	return repl_fail_pg(e, cause);
}

void
repl_reply_error(struct areq *r, struct repl_err *e)
{
	areply_error(r, e->status ? e->status : 500, e->code ? e->code :
	    "INTERNAL", "%s", e->cause ? e->cause : "replication failed");
	free(e->cause);
	e->cause = NULL;
}

int
replication_key_valid(const char *key)
{
	size_t i, n;

	if (key == NULL || (n = strlen(key)) == 0 || n > REPLICATION_KEY_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((key[i] >= 'a' && key[i] <= 'z') ||
		    (key[i] >= '0' && key[i] <= '9') || key[i] == '-'))
			return 0;
	return key[0] != '-' && key[n - 1] != '-';
}

int
replication_address_parse(const char *text, char *out, size_t outlen,
    int *loopback)
{
	unsigned char a[16];

	if (text == NULL || strlen(text) > 45 || outlen < INET6_ADDRSTRLEN)
		return -1;
	if (inet_pton(AF_INET, text, a) == 1) {
		/* a host's: not 0.0.0.0/8, multicast or broadcast */
		if (a[0] == 0 || a[0] >= 224)
			return -1;
		*loopback = a[0] == 127;
		return inet_ntop(AF_INET, a, out, outlen) ? 0 : -1;
	}
	if (inet_pton(AF_INET6, text, a) != 1)
		return -1;
	if (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
		/* IPv4-mapped: the address PostgreSQL sees is the IPv4 one */
		if (a[12] == 0 || a[12] >= 224)
			return -1;
		*loopback = a[12] == 127;
		return inet_ntop(AF_INET, a + 12, out, outlen) ? 0 : -1;
	}
	/* not multicast, not :: */
	if (a[0] == 0xff || memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
	    16) == 0)
		return -1;
	*loopback = memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) == 0;
	return inet_ntop(AF_INET6, a, out, outlen) ? 0 : -1;
}

/* Fill n for environment id and a valid key. */
void
repl_names(long long id, const char *key, struct repl_names *n)
{
	char k[REPLICATION_KEY_MAX + 1];
	size_t i;

	for (i = 0; i < REPLICATION_KEY_MAX && key[i]; i++)
		k[i] = key[i] == '-' ? '_' : key[i];
	k[i] = '\0';
	n->id = id;
	snprintf(n->key, sizeof n->key, "%s", key);
	snprintf(n->database, sizeof n->database, "env_%lld", id);
	snprintf(n->role, sizeof n->role, "nubo_repl_%lld_%s", id, k);
	snprintf(n->slot, sizeof n->slot, "nubo_slot_%lld_%s", id, k);
	snprintf(n->publication, sizeof n->publication, "nubo_pub_%s", k);
	snprintf(n->subscription, sizeof n->subscription, "nubo_sub_%s", k);
	snprintf(n->change_slot, sizeof n->change_slot, "nubo_chg_%lld_%s", id,
	    k);
}

/* Run sql with nparams text parameters: the result when it succeeded,
 * else NULL with e filled (503, PostgreSQL's words). */
PGresult *
repl_query(PGconn *c, struct repl_err *e, const char *sql, int nparams,
    const char *const *params)
{
	PGresult *res = PQexecParams(c, sql, nparams, NULL, params, NULL,
	    NULL, 0);

	if (PQresultStatus(res) == PGRES_TUPLES_OK ||
	    PQresultStatus(res) == PGRES_COMMAND_OK)
		return res;
	repl_fail(e, 503, "DATABASE_UNAVAILABLE", "PostgreSQL: %.*s",
	    (int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
	PQclear(res);
	return NULL;
}

/* The rows sql answers (-1 with e filled when it failed). */
int
repl_count(PGconn *c, struct repl_err *e, const char *sql, int nparams,
    const char *const *params)
{
	PGresult *res = repl_query(c, e, sql, nparams, params);
	int n;

	if (res == NULL)
		return -1;
	n = PQntuples(res);
	PQclear(res);
	return n;
}

/* A connection as the admin to database db: NULL with e filled. */
PGconn *
repl_connect(const char *db, struct repl_err *e)
{
	char *cause = NULL;
	PGconn *c = pg_admin_connect_db(db, &cause);

	if (c == NULL)
		repl_fail_pg(e, cause);
	return c;
}

/* The environment's id, and whether it has a database yet (its role's
 * password is made with it). */
long long
repl_env_id(struct areq *r, int *has_db)
{
	long long id;

	pthread_mutex_lock(&node->lock);
	id = r->env->id;
	*has_db = r->env->db_password != NULL;
	pthread_mutex_unlock(&node->lock);
	return id;
}

PGconn *
repl_env_db(struct areq *r, long long *id, struct repl_err *e)
{
	char db[32];
	int has_db;

	*id = repl_env_id(r, &has_db);
	if (!has_db) {
		repl_fail(e, 409, "DATABASE_NOT_CREATED", "environment %lld "
		    "has no database yet: it is made at its first start", *id);
		return NULL;
	}
	snprintf(db, sizeof db, "env_%lld", *id);
	return repl_connect(db, e);
}

int
repl_key_check(const char *key, struct repl_err *e)
{
	if (replication_key_valid(key))
		return 0;
	return repl_fail(e, 400, "BAD_MIGRATION_KEY", "the migration key "
	    "must be 1 to 36 of a-z, 0-9 and '-', starting and ending with a "
	    "letter or digit");
}

/* The migration key of a DELETE or GET (?migration=): 0, -1 after
 * replying 400 (or when absent and not required, 0 with *key NULL). */
int
repl_query_key(struct areq *r, int required, const char **key)
{
	*key = http_query(r->http, "migration");
	if (*key == NULL && !required)
		return 0;
	if (!replication_key_valid(*key)) {
		areply_error(r, 400, "BAD_MIGRATION_KEY", "%s", *key == NULL ?
		    "give the migration's key: ?migration=KEY" :
		    "the migration key must be 1 to 36 of a-z, 0-9 and '-', "
		    "starting and ending with a letter or digit");
		return -1;
	}
	return 0;
}

/* The replication records (DIR/replication/<id>-<key>.json). */

static char *
repl_dir(void)
{
	return xasprintf("%s/replication", node->data_dir);
}

static char *
repl_record_path(long long id, const char *key)
{
	return xasprintf("%s/replication/%lld-%s.json", node->data_dir, id,
	    key);
}

/* The record of environment id's replication for key, checked (a damaged
 * one is not used: its address goes into pg_hba.conf); NULL when there is
 * none. */
static json_t *
repl_record_read(long long id, const char *key)
{
	char *path = repl_record_path(id, key), *text, canon[64];
	json_t *j = NULL;
	int loopback;

	text = util_read_file(path, 4096, NULL);
	if (text)
		j = json_loads(text, 0, NULL);
	if (j && (jsonx_int(j, "environment", -1) != id ||
	    jsonx_str(j, "migration") == NULL ||
	    strcmp(jsonx_str(j, "migration"), key) != 0 ||
	    replication_address_parse(jsonx_str(j, "target_address"), canon,
	    sizeof canon, &loopback) == -1 ||
	    jsonx_str(j, "password") == NULL)) {
		log_warn("%s is damaged: ignored", path);
		json_decref(j);
		j = NULL;
	}
	free(text);
	free(path);
	return j;
}

static int
repl_record_write(long long id, const char *key, json_t *j)
{
	char *dir = repl_dir(), *path = repl_record_path(id, key);
	char *text = json_dumps(j, JSON_SORT_KEYS);
	int rc = -1;

	if (util_mkdir_p(dir, 0700) == -1)
		error("cannot create %s: %s", dir, strerror(errno));
	else if (util_write_file(path, text, strlen(text), 0600) == -1)
		error("cannot write %s: %s", path, strerror(errno));
	else
		rc = 0;
	free(dir);
	free(path);
	free(text);
	return rc;
}

/* Call fn for every record's environment id and key (id 0: all). */
static void
repl_records_each(long long id, void (*fn)(long long, const char *, void *),
    void *arg)
{
	char *dir = repl_dir(), key[REPLICATION_KEY_MAX + 1];
	struct dirent *de;
	DIR *d = opendir(dir);
	long long rid;
	int used;

	free(dir);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0 ||
		    sscanf(de->d_name, "%lld-%36[a-z0-9-].json%n", &rid, key,
		    &used) != 2 || (size_t)used != len ||
		    !replication_key_valid(key) || (id && rid != id))
			continue;
		fn(rid, key, arg);
	}
	closedir(d);
}

static void
repl_hba_rule(long long id, const char *key, void *arg)
{
	char **rules = arg, canon[64], *t;
	struct repl_names n;
	json_t *j = repl_record_read(id, key);
	int loopback;

	if (j == NULL || jsonx_bool(j, "deleting", 0) ||
	    replication_address_parse(jsonx_str(j, "target_address"), canon,
	    sizeof canon, &loopback) == -1) {
		json_decref(j);
		return;
	}
	repl_names(id, key, &n);
	/* from another host: over TLS only (pg.c serves it there) */
	t = xasprintf("%s%s %s   %s   %s/%d   scram-sha-256\n", *rules,
	    loopback ? "host   " : "hostssl", n.database, n.role, canon,
	    strchr(canon, ':') ? 128 : 32);
	free(*rules);
	*rules = t;
	json_decref(j);
}

char *
replication_hba_rules(void)
{
	char *rules = xstrdup("");

	repl_records_each(0, repl_hba_rule, &rules);
	return rules;
}

/* Source side. */

/* The role, its group and its right to connect (in c: postgres). */
static int
repl_role_make(PGconn *c, const struct repl_names *n, const char *password,
    struct repl_err *e)
{
	const char *p[1] = { n->role };
	char *lit, *sql, *cause = NULL;
	int group, exists, rc;

	if ((group = repl_count(c, e, "SELECT 1 FROM pg_roles WHERE rolname ="
	    " '" REPLICATION_GROUP "'", 0, NULL)) == -1 ||
	    (exists = repl_count(c, e, "SELECT 1 FROM pg_roles WHERE rolname"
	    " = $1", 1, p)) == -1)
		return -1;
	if (group == 0 && pg_admin_exec(c, "CREATE ROLE " REPLICATION_GROUP
	    " NOLOGIN", &cause) == -1)
		return repl_fail_pg(e, cause);
	lit = PQescapeLiteral(c, password, strlen(password));
	sql = xasprintf("%s ROLE %s LOGIN REPLICATION NOSUPERUSER NOCREATEDB"
	    " NOCREATEROLE NOBYPASSRLS NOINHERIT CONNECTION LIMIT %d PASSWORD"
	    " %s; GRANT " REPLICATION_GROUP " TO %s; GRANT CONNECT ON DATABASE"
	    " %s TO %s", exists ? "ALTER" : "CREATE", n->role,
	    REPL_ROLE_CONNECTIONS, lit ? lit : "NULL", n->role, n->database,
	    n->role);
	PQfreemem(lit);
	rc = pg_admin_exec(c, sql, &cause);
	free(sql);
	return rc == 0 ? 0 : repl_fail_pg(e, cause);
}

/* The environment's schemas and tables: USAGE and SELECT for the role
 * (the subscription's first copy reads them as it). */
static int
repl_grants(PGconn *d, const struct repl_names *n, struct repl_err *e)
{
	PGresult *res;
	int i, rc = 0;

	res = repl_query(d, e, "SELECT quote_ident(nspname) FROM pg_namespace"
	    " WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'"
	    " ORDER BY 1", 0, NULL);
	if (res == NULL)
		return -1;
	for (i = 0; rc == 0 && i < PQntuples(res); i++) {
		char *sql = xasprintf("GRANT USAGE ON SCHEMA %s TO %s; GRANT "
		    "SELECT ON ALL TABLES IN SCHEMA %s TO %s",
		    PQgetvalue(res, i, 0), n->role, PQgetvalue(res, i, 0),
		    n->role);

		rc = repl_exec(d, sql, e);
		free(sql);
	}
	PQclear(res);
	return rc;
}

/* The environment's ordinary tables (not the system's) matching cond on
 * pg_class c, as qualified names, into a JSON array (NULL with e). */
json_t *
repl_tables(PGconn *d, const char *cond, struct repl_err *e)
{
	char *sql = xasprintf("SELECT c.oid::regclass::text FROM pg_class c"
	    " JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE c.relkind ="
	    " 'r' AND ns.nspname !~ '^pg_' AND ns.nspname <>"
	    " 'information_schema' AND %s ORDER BY 1", cond);
	PGresult *res = repl_query(d, e, sql, 0, NULL);
	json_t *out;
	int i;

	free(sql);
	if (res == NULL)
		return NULL;
	out = json_array();
	for (i = 0; i < PQntuples(res); i++)
		json_array_append_new(out, json_string(PQgetvalue(res, i, 0)));
	PQclear(res);
	return out;
}

#define REPL_NO_PKEY	"NOT EXISTS (SELECT 1 FROM pg_index i WHERE" \
	" i.indrelid = c.oid AND i.indisprimary)"

/* In the environment's database d: REPLICA IDENTITY FULL where a logged
 * table has no primary key (nor an identity index), the publication and
 * the slot. What logical replication leaves out is reported in out:
 * replica_identity_full, unlogged_tables, large_objects. */
static int
repl_source_objects(PGconn *d, const struct repl_names *n, json_t *out,
    struct repl_err *e)
{
	const char *p[2] = { n->slot, n->database }, *pub[1] = {
	    n->publication };
	json_t *full = NULL, *unlogged = NULL;
	PGresult *res = NULL;
	size_t i;
	int rc = -1, have;

	if (repl_grants(d, n, e) == -1)
		goto out;
	/* before the publication: once published, an UPDATE or DELETE on
	 * a table without a replica identity fails */
	full = repl_tables(d, "c.relpersistence = 'p' AND c.relreplident IN"
	    " ('d', 'n') AND " REPL_NO_PKEY, e);
	if (full == NULL)
		goto out;
	if (json_array_size(full) && repl_exec(d, "SET lock_timeout = '"
	    REPL_LOCK_TIMEOUT "'", e) == -1)
		goto out;
	for (i = 0; i < json_array_size(full); i++) {
		char *sql = xasprintf("ALTER TABLE %s REPLICA IDENTITY FULL",
		    json_string_value(json_array_get(full, i)));
		int st = repl_exec(d, sql, e);

		free(sql);
		if (st == -1)
			goto out;
	}
	json_decref(full);
	/* every table without a primary key that replicates whole rows,
	 * made so now or before (the answer is the same when asked again) */
	full = repl_tables(d, "c.relpersistence = 'p' AND c.relreplident ="
	    " 'f' AND " REPL_NO_PKEY, e);
	unlogged = repl_tables(d, "c.relpersistence = 'u'", e);
	if (full == NULL || unlogged == NULL)
		goto out;
	if ((have = repl_count(d, e, "SELECT 1 FROM pg_publication WHERE"
	    " pubname = $1", 1, pub)) == -1)
		goto out;
	if (have == 0) {
		char *sql = xasprintf("CREATE PUBLICATION %s FOR ALL TABLES",
		    n->publication);
		int st = repl_exec(d, sql, e);

		free(sql);
		if (st == -1)
			goto out;
	}
	res = repl_query(d, e, "SELECT d.datname = $2 AND s.plugin ="
	    " 'pgoutput' FROM pg_replication_slots s LEFT JOIN pg_database d"
	    " ON d.oid = s.datoid WHERE s.slot_name = $1", 2, p);
	if (res == NULL)
		goto out;
	if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		repl_fail(e, 409, "REPLICATION_CONFLICT", "a replication slot "
		    "'%s' exists that is not this environment's", n->slot);
		goto out;
	}
	if (PQntuples(res) == 0) {
		PGresult *made;

		/* it waits for the transactions running now to end */
		if (repl_exec(d, "SET statement_timeout = '"
		    REPL_SLOT_TIMEOUT "'", e) == -1)
			goto out;
		made = repl_query(d, e, "SELECT lsn FROM"
		    " pg_create_logical_replication_slot($1, 'pgoutput')", 1,
		    p);
		if (made == NULL)
			goto out;
		log_info("environment %lld: replication slot %s made at %s "
		    "(migration %s)", n->id, n->slot, PQgetvalue(made, 0, 0),
		    n->key);
		PQclear(made);
		pg_admin_exec(d, "SET statement_timeout = 0", NULL);
	}
	PQclear(res);
	res = repl_query(d, e, "SELECT count(*) FROM"
	    " pg_largeobject_metadata", 0, NULL);
	if (res == NULL)
		goto out;
	json_object_set_new(out, "large_objects", json_integer(atoll(
	    PQgetvalue(res, 0, 0))));
	json_object_set(out, "replica_identity_full", full);
	json_object_set(out, "unlogged_tables", unlogged);
	rc = 0;
out:
	PQclear(res);
	json_decref(full);
	json_decref(unlogged);
	return rc;
}

/* POST /agent/v1/environments/{id}/replication {migration,
 * target_address}: 201 (200 when it was there) {host, port, database,
 * role, password, publication, slot, target_address, replica_identity_full,
 * unlogged_tables, large_objects}, and ssl_root_cert (PEM) when the
 * target is another host: host is then this node's own address, where
 * its cluster serves TLS with that certificate (pg.c). */
void
agent_replication_create(struct areq *r)
{
	static const struct jfield fields[] = {
		{ "migration", JT_STRING, 1 },
		{ "target_address", JT_STRING, 1 }, { NULL } };
	struct repl_err e = { 0 };
	struct repl_names n;
	const char *key;
	char canon[64], source[64] = "127.0.0.1", *cause = NULL, *cert = NULL;
	json_t *rec = NULL, *out = NULL;
	PGconn *c = NULL, *d = NULL;
	long long id;
	int loopback, has_db, made = 0, locked = 0;

	if (abody_check(r, fields) == -1)
		return;
	key = jsonx_str(r->body, "migration");
	if (repl_key_check(key, &e) == -1)
		goto out;
	if (replication_address_parse(jsonx_str(r->body, "target_address"),
	    canon, sizeof canon, &loopback) == -1) {
		repl_fail(&e, 400, "BAD_ADDRESS", "target_address must be the "
		    "IPv4 or IPv6 address of the target node (no name, port or "
		    "prefix)");
		goto out;
	}
	id = repl_env_id(r, &has_db);
	repl_names(id, key, &n);
	if (node->pg_uri) {
		repl_fail(&e, 409, "REPLICATION_UNAVAILABLE", "cannot "
		    "replicate from the PostgreSQL server given with --pg: its "
		    "pg_hba.conf is its operator's");
		goto out;
	}
	/* another host's target connects over TLS to the node's address */
	if (!loopback && pg_tls_serving(source, sizeof source, &cause) ==
	    -1) {
		repl_fail(&e, 409, "REPLICATION_NEEDS_TLS", "cannot replicate "
		    "environment %lld to %s, another host: replication there "
		    "needs TLS, and this node has none: %s", id, canon, cause);
		goto out;
	}
	if (!loopback && (cert = pg_tls_cert_pem()) == NULL) {
		repl_fail(&e, 500, "INTERNAL", "the certificate of this node's "
		    "PostgreSQL cannot be read");
		goto out;
	}
	if (!has_db) {
		repl_fail(&e, 409, "DATABASE_NOT_CREATED", "environment %lld "
		    "has no database yet: it is made at its first start", id);
		goto out;
	}
	pthread_mutex_lock(&replication_lock);
	locked = 1;
	rec = repl_record_read(id, key);
	if (rec && jsonx_bool(rec, "deleting", 0)) {
		repl_fail(&e, 409, "REPLICATION_DELETING", "the replication of "
		    "environment %lld for migration %s is being deleted: "
		    "delete it again first", id, key);
		goto out;
	}
	if (rec && strcmp(jsonx_str(rec, "target_address"), canon) != 0) {
		repl_fail(&e, 409, "REPLICATION_EXISTS", "environment %lld "
		    "replicates to %s for migration %s already", id,
		    jsonx_str(rec, "target_address"), key);
		goto out;
	}
	if (pg_wal_level_ok(&cause) == -1) {
		repl_fail(&e, 409, "WAL_LEVEL_NOT_LOGICAL", "%s", cause);
		goto out;
	}
	if ((c = repl_connect(NULL, &e)) == NULL)
		goto out;
	if (pg_db_exists(c, n.database) != 1) {
		repl_fail(&e, 409, "DATABASE_NOT_CREATED", "environment %lld "
		    "has no database yet: it is made at its first start", id);
		goto out;
	}
	if (rec == NULL) {
		char *pw = util_random_hex(24);

		rec = json_pack("{s:I,s:s,s:s,s:s,s:b}", "environment",
		    (json_int_t)id, "migration", key, "target_address", canon,
		    "password", pw, "deleting", 0);
		free(pw);
		if (repl_record_write(id, key, rec) == -1) {
			repl_fail(&e, 500, "INTERNAL", "cannot keep the "
			    "replication's record on the node");
			goto out;
		}
		made = 1;
	}
	out = json_object();
	if (repl_role_make(c, &n, jsonx_str(rec, "password"), &e) == -1 ||
	    (d = repl_connect(n.database, &e)) == NULL ||
	    repl_source_objects(d, &n, out, &e) == -1)
		goto out;
	if (pg_hba_apply(&cause) == -1) {
		repl_fail(&e, 503, "DATABASE_UNAVAILABLE", "%s", cause);
		goto out;
	}
	if (made)
		log_info("environment %lld: replication to %s for migration %s "
		    "(role %s, publication %s)", id, canon, key, n.role,
		    n.publication);
	{
		json_t *conn = json_pack("{s:s,s:I,s:s,s:s,s:I,s:s,s:s,s:s,s:s,"
		    "s:s}", "migration", key, "environment", (json_int_t)id,
		    "target_address", canon, "host", source, "port",
		    (json_int_t)node->pg_port, "database", n.database, "role",
		    n.role, "password", jsonx_str(rec, "password"),
		    "publication", n.publication, "slot", n.slot);

		/* what the target verifies the server with (sslmode
		 * verify-full: the certificate names this address) */
		if (cert)
			json_object_set_new(conn, "ssl_root_cert",
			    json_string(cert));
		json_object_update(out, conn);
		json_decref(conn);
	}
	areply(r, made ? 201 : 200, out);
	out = NULL;
out:
	if (locked)
		pthread_mutex_unlock(&replication_lock);
	if (e.code)
		repl_reply_error(r, &e);
	free(cause);
	free(cert);
	json_decref(rec);
	json_decref(out);
	if (c)
		PQfinish(c);
	if (d)
		PQfinish(d);
}

/* Drop every slot of database d's connection whose name matches the
 * regular expression re (ending the sessions that hold them first): 0
 * (*dropped 1 when there was one), or -1 with e when one is still held
 * after 5 s or the server failed. */
int
repl_slots_drop(PGconn *d, const char *re, int *dropped, struct repl_err *e)
{
	const char *p[1] = { re };
	PGresult *res;
	int i, left = 0;

	for (i = 0; i < 50; i++) {
		res = repl_query(d, e, "SELECT slot_name, active FROM"
		    " pg_replication_slots WHERE database = current_database()"
		    " AND slot_name ~ $1", 1, p);
		if (res == NULL)
			return -1;
		left = PQntuples(res);
		PQclear(res);
		if (left == 0)
			return 0;
		*dropped = 1;
		/* the walsender of a subscription still connected ends
		 * (its rule is gone from pg_hba.conf: it cannot come back) */
		res = repl_query(d, e, "SELECT pg_terminate_backend(active_pid)"
		    " FROM pg_replication_slots WHERE database ="
		    " current_database() AND slot_name ~ $1 AND active_pid IS"
		    " NOT NULL", 1, p);
		if (res == NULL)
			return -1;
		PQclear(res);
		/* one that became active again in between fails: next round */
		PQclear(PQexecParams(d, "SELECT pg_drop_replication_slot("
		    "slot_name) FROM pg_replication_slots WHERE database ="
		    " current_database() AND slot_name ~ $1 AND NOT active", 1,
		    NULL, p, NULL, NULL, 0));
		usleep(100 * 1000);
	}
	return repl_fail(e, 409, "REPLICATION_BUSY", "the replication slots "
	    "matching %s are still in use after 5 s", re);
}

/* Drop the source side of n's replication: sessions, slot (and the
 * table-sync slots a subscription left, when no other replication of the
 * environment could own them), publication, role. 0 (*dropped 1 when
 * something was there), or -1 with e. */
static int
repl_source_drop(const struct repl_names *n, int others, int *dropped,
    struct repl_err *e)
{
	const char *p[1] = { n->role };
	PGconn *c = NULL, *d = NULL;
	PGresult *res = NULL;
	char *sql = NULL, slot_re[80];
	int rc = -1, role, db;

	if ((c = repl_connect(NULL, e)) == NULL)
		goto out;
	if ((role = repl_count(c, e, "SELECT 1 FROM pg_roles WHERE rolname ="
	    " $1", 1, p)) == -1 || (db = pg_db_exists(c, n->database)) == -1)
		goto out;
	if (role) {
		*dropped = 1;
		res = repl_query(c, e, "SELECT pg_terminate_backend(pid) FROM"
		    " pg_stat_activity WHERE usename = $1", 1, p);
		if (res == NULL)
			goto out;
	}
	if (db == 1) {
		if ((d = repl_connect(n->database, e)) == NULL)
			goto out;
		snprintf(slot_re, sizeof slot_re, "^%s$", n->slot);
		if (repl_slots_drop(d, slot_re, dropped, e) == -1 ||
		    (!others && repl_slots_drop(d,
		    "^pg_[0-9]+_sync_[0-9]+_[0-9]+$", dropped, e) == -1))
			goto out;
		p[0] = n->publication;
		switch (repl_count(d, e, "SELECT 1 FROM pg_publication WHERE"
		    " pubname = $1", 1, p)) {
		case -1:
			goto out;
		case 0:
			break;
		default:
			*dropped = 1;
			sql = xasprintf("DROP PUBLICATION IF EXISTS %s",
			    n->publication);
			if (repl_exec(d, sql, e) == -1)
				goto out;
		}
		free(sql);
		/* its grants there (and CONNECT on the database) */
		sql = xasprintf("DROP OWNED BY %s", n->role);
		if (role && repl_exec(d, sql, e) == -1)
			goto out;
	}
	free(sql);
	sql = xasprintf("DROP OWNED BY %s; DROP ROLE IF EXISTS %s", n->role,
	    n->role);
	if (role && repl_exec(c, sql, e) == -1)
		goto out;
	rc = 0;
out:
	PQclear(res);
	free(sql);
	if (c)
		PQfinish(c);
	if (d)
		PQfinish(d);
	return rc;
}

/* Count the records of environment id other than key. */
struct repl_others {
	const char	*key;
	int		 n;
};

static void
repl_other(long long id, const char *key, void *arg)
{
	struct repl_others *o = arg;

	(void)id;
	if (strcmp(key, o->key) != 0)
		o->n++;
}

/* DELETE /agent/v1/environments/{id}/replication?migration=KEY: 200
 * {deleted} (false when there was nothing); the rule leaves pg_hba.conf
 * first, so the target cannot connect again while the rest goes. */
void
agent_replication_delete(struct areq *r)
{
	struct repl_err e = { 0 };
	struct repl_others others = { NULL, 0 };
	struct repl_names n;
	const char *key;
	char *path = NULL, *cause = NULL;
	json_t *rec = NULL;
	long long id;
	int has_db, dropped = 0;

	if (repl_query_key(r, 1, &key) == -1)
		return;
	id = repl_env_id(r, &has_db);
	repl_names(id, key, &n);
	if (node->pg_uri) {
		areply(r, 200, json_pack("{s:b}", "deleted", 0));
		return;
	}
	pthread_mutex_lock(&replication_lock);
	path = repl_record_path(id, key);
	rec = repl_record_read(id, key);
	if (rec) {
		dropped = 1;
		json_object_set_new(rec, "deleting", json_true());
		if (repl_record_write(id, key, rec) == -1) {
			repl_fail(&e, 500, "INTERNAL", "cannot keep the "
			    "replication's record on the node");
			goto out;
		}
		if (pg_hba_apply(&cause) == -1) {
			repl_fail(&e, 503, "DATABASE_UNAVAILABLE", "%s", cause);
			goto out;
		}
	}
	others.key = key;
	repl_records_each(id, repl_other, &others);
	if (repl_source_drop(&n, others.n, &dropped, &e) == -1)
		goto out;
	if (unlink(path) == -1 && errno != ENOENT) {
		repl_fail(&e, 500, "INTERNAL", "cannot remove %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if (dropped)
		log_info("environment %lld: replication for migration %s "
		    "dropped (slot, publication, role, pg_hba rule)", id, key);
	areply(r, 200, json_pack("{s:s,s:b}", "migration", key, "deleted",
	    dropped));
out:
	pthread_mutex_unlock(&replication_lock);
	if (e.code)
		repl_reply_error(r, &e);
	json_decref(rec);
	free(path);
	free(cause);
}

/* The state of n's replication, as GET answers it; NULL with e (404 when
 * there is neither a record nor a slot). */
static json_t *
repl_source_report(PGconn *c, const struct repl_names *n,
    struct repl_err *e)
{
	const char *p[1] = { n->slot };
	json_t *rec = repl_record_read(n->id, n->key), *out = NULL;
	PGresult *res;

	res = repl_query(c, e, "SELECT s.active, s.confirmed_flush_lsn,"
	    " s.restart_lsn, s.wal_status, pg_current_wal_lsn(),"
	    " greatest(pg_wal_lsn_diff(pg_current_wal_lsn(),"
	    " s.confirmed_flush_lsn), 0)::bigint,"
	    " greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn),"
	    " 0)::bigint, (SELECT extract(epoch FROM r.replay_lag)::float8"
	    " FROM pg_stat_replication r WHERE r.pid = s.active_pid)"
	    " FROM pg_replication_slots s WHERE s.slot_name = $1", 1, p);
	if (res == NULL)
		goto out;
	if (rec == NULL && PQntuples(res) == 0) {
		repl_fail(e, 404, "REPLICATION_NOT_FOUND", "environment %lld "
		    "has no replication for migration %s", n->id, n->key);
		goto out;
	}
	out = json_pack("{s:s,s:I,s:s?,s:s,s:s,s:s,s:b}", "migration",
	    n->key, "environment", (json_int_t)n->id, "target_address",
	    rec ? jsonx_str(rec, "target_address") : NULL, "state",
	    rec == NULL ? "orphaned" : jsonx_bool(rec, "deleting", 0) ?
	    "deleting" : "ready", "slot", n->slot, "publication",
	    n->publication, "slot_exists", PQntuples(res) == 1);
	if (PQntuples(res) == 1) {
		json_t *lag = PQgetisnull(res, 0, 7) ? json_null() :
		    json_real(atof(PQgetvalue(res, 0, 7)));

		json_t *slot = json_pack("{s:b,s:s?,s:s?,s:s?,"
		    "s:s,s:I,s:I,s:o}", "active",
		    strcmp(PQgetvalue(res, 0, 0), "t") == 0,
		    "confirmed_flush_lsn", PQgetisnull(res, 0, 1) ? NULL :
		    PQgetvalue(res, 0, 1), "restart_lsn", PQgetisnull(res, 0, 2)
		    ? NULL : PQgetvalue(res, 0, 2), "wal_status",
		    PQgetisnull(res, 0, 3) ? NULL : PQgetvalue(res, 0, 3),
		    "current_wal_lsn", PQgetvalue(res, 0, 4), "lag_bytes",
		    (json_int_t)atoll(PQgetvalue(res, 0, 5)),
		    "retained_wal_bytes", (json_int_t)atoll(PQgetvalue(res, 0,
		    6)), "lag_seconds", lag);

		json_object_update(out, slot);
		json_decref(slot);
	}
	/* the cutover's change slot (changes.c), from its baseline until
	 * its verify passes, holds WAL as well */
	PQclear(res);
	p[0] = n->change_slot;
	res = repl_query(c, e, "SELECT greatest(pg_wal_lsn_diff("
	    "pg_current_wal_lsn(), restart_lsn), 0)::bigint FROM"
	    " pg_replication_slots WHERE slot_name = $1", 1, p);
	if (res == NULL) {
		json_decref(out);
		out = NULL;
	} else if (PQntuples(res) == 1)
		json_object_set_new(out, "change_slot", json_pack("{s:s,s:I}",
		    "slot", n->change_slot, "retained_wal_bytes",
		    (json_int_t)atoll(PQgetvalue(res, 0, 0))));
out:
	PQclear(res);
	json_decref(rec);
	return out;
}

struct repl_list {
	PGconn		*c;
	json_t		*out;
	struct repl_err	*e;
};

static void
repl_list_one(long long id, const char *key, void *arg)
{
	struct repl_list *l = arg;
	struct repl_names n;
	json_t *one;

	if (l->e->code)
		return;
	repl_names(id, key, &n);
	if ((one = repl_source_report(l->c, &n, l->e)) != NULL)
		json_array_append_new(l->out, one);
}

/* GET /agent/v1/environments/{id}/replication[?migration=KEY]: the
 * replication for KEY (slot, its confirmed_flush_lsn, the current WAL
 * LSN, lag_bytes, retained_wal_bytes, lag_seconds while the target
 * replays), or {replications: [...]} of every one of the environment. */
void
agent_replication_show(struct areq *r)
{
	struct repl_err e = { 0 };
	struct repl_names n;
	struct repl_list l = { NULL, NULL, &e };
	const char *key;
	json_t *out;
	long long id;
	int has_db;

	if (repl_query_key(r, 0, &key) == -1)
		return;
	id = repl_env_id(r, &has_db);
	if ((l.c = repl_connect(NULL, &e)) == NULL)
		goto out;
	if (key) {
		repl_names(id, key, &n);
		if ((out = repl_source_report(l.c, &n, &e)) != NULL)
			areply(r, 200, out);
		goto out;
	}
	l.out = json_array();
	repl_records_each(id, repl_list_one, &l);
	if (e.code == NULL)
		areply(r, 200, json_pack("{s:o}", "replications", l.out));
	else
		json_decref(l.out);
out:
	if (e.code)
		repl_reply_error(r, &e);
	if (l.c)
		PQfinish(l.c);
}

/* GET /agent/v1/environments/{id}/replication/sequences: every sequence
 * of the environment's database with its last value ({sequences: [{schema,
 * name, last_value, is_called}]}), which logical replication does not
 * carry: read on the source once its app is stopped, set on the target
 * (POST …/subscription/sequences). A GET: it changes nothing. */
void
agent_replication_sequences(struct areq *r)
{
	struct repl_err e = { 0 };
	PGconn *d = NULL;
	PGresult *res = NULL;
	json_t *seqs = NULL;
	long long id;
	int i;

	if ((d = repl_env_db(r, &id, &e)) == NULL)
		goto out;
	res = repl_query(d, &e, "SELECT n.nspname, c.relname, format('%I.%I',"
	    " n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON"
	    " n.oid = c.relnamespace WHERE c.relkind = 'S' AND n.nspname !~"
	    " '^pg_' AND n.nspname <> 'information_schema' ORDER BY 1, 2", 0,
	    NULL);
	if (res == NULL)
		goto out;
	seqs = json_array();
	for (i = 0; i < PQntuples(res); i++) {
		/* the sequence itself: its last value and is_called as
		 * nextval() left them, or setval() set them */
		char *sql = xasprintf("SELECT last_value, is_called FROM %s",
		    PQgetvalue(res, i, 2));
		PGresult *v = repl_query(d, &e, sql, 0, NULL);

		free(sql);
		if (v == NULL)
			goto out;
		json_array_append_new(seqs, json_pack("{s:s,s:s,s:I,s:b}",
		    "schema", PQgetvalue(res, i, 0), "name", PQgetvalue(res, i,
		    1), "last_value", (json_int_t)atoll(PQgetvalue(v, 0, 0)),
		    "is_called", strcmp(PQgetvalue(v, 0, 1), "t") == 0));
		PQclear(v);
	}
	areply(r, 200, json_pack("{s:O}", "sequences", seqs));
out:
	if (e.code)
		repl_reply_error(r, &e);
	json_decref(seqs);
	PQclear(res);
	if (d)
		PQfinish(d);
}

/* The JSON array text of a query's json_agg; an empty array when it is
 * not one. */
static json_t *
json_array_of(const char *text)
{
	json_t *a = json_loads(text, 0, NULL);

	if (json_is_array(a))
		return a;
	json_decref(a);
	return json_array();
}

/* GET /agent/v1/environments/{id}/replication/schema: every ordinary
 * table of the environment's database with its columns as one line
 * ("name type [not null]", in order), for the cutover to compare both
 * sides' (logical replication does not carry DDL); how replication can
 * carry it (`key`: "primary key", "index" — a replica identity index —,
 * or "none": replica identity full; `unlogged`: not at all); the other
 * tables whose foreign keys reference it (`referenced_by`: a resync of it
 * takes them along); its CHECK constraints added NOT VALID (`not_valid`:
 * rows from before them may break them, and the replica's first copy
 * checks every row); and the database's large objects (not carried
 * either) and domain constraints added NOT VALID (`not_valid_domains`,
 * "schema.domain constraint"). Foreign keys added NOT VALID are no
 * matter: the subscription applies rows with session_replication_role =
 * replica, which fires no foreign key trigger. */
void
agent_replication_schema(struct areq *r)
{
	struct repl_err e = { 0 };
	PGconn *d = NULL;
	PGresult *res = NULL;
	json_t *tables = NULL;
	long long id;
	int i;

	if ((d = repl_env_db(r, &id, &e)) == NULL)
		goto out;
	res = repl_query(d, &e, "SELECT format('%I.%I', n.nspname, c.relname),"
	    " coalesce(string_agg(format('%I %s%s', a.attname,"
	    " format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull"
	    " THEN ' not null' ELSE '' END), ', ' ORDER BY a.attnum), ''),"
	    " CASE WHEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid ="
	    " c.oid AND i.indisprimary) THEN 'primary key' WHEN EXISTS"
	    " (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND"
	    " i.indisreplident) THEN 'index' ELSE 'none' END,"
	    " c.relpersistence = 'u', (SELECT count(*) FROM"
	    " pg_largeobject_metadata), (SELECT coalesce(json_agg(DISTINCT"
	    " format('%I.%I', tn.nspname, tc.relname)), '[]') FROM"
	    " pg_constraint k JOIN pg_class tc ON tc.oid = k.conrelid JOIN"
	    " pg_namespace tn ON tn.oid = tc.relnamespace WHERE k.contype ="
	    " 'f' AND k.confrelid = c.oid AND k.conrelid <> c.oid),"
	    " (SELECT coalesce(json_agg(k.conname ORDER BY k.conname), '[]')"
	    " FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype ="
	    " 'c' AND NOT k.convalidated), (SELECT coalesce(json_agg(format("
	    "'%I.%I', tn.nspname, t.typname) || ' ' || k.conname ORDER BY 1),"
	    " '[]') FROM pg_constraint k JOIN pg_type t ON t.oid = k.contypid"
	    " JOIN pg_namespace tn ON tn.oid = t.typnamespace WHERE"
	    " k.contype = 'c' AND NOT k.convalidated)"
	    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
	    " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0"
	    " AND NOT a.attisdropped WHERE c.relkind IN ('r','p') AND"
	    " n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'"
	    " GROUP BY c.oid, n.nspname, c.relname, c.relpersistence"
	    " ORDER BY 1", 0, NULL);
	if (res == NULL)
		goto out;
	tables = json_array();
	for (i = 0; i < PQntuples(res); i++)
		json_array_append_new(tables, json_pack("{s:s,s:s,s:s,s:b,s:o,"
		    "s:o}", "table", PQgetvalue(res, i, 0), "columns",
		    PQgetvalue(res, i, 1), "key", PQgetvalue(res, i, 2),
		    "unlogged", strcmp(PQgetvalue(res, i, 3), "t") == 0,
		    "referenced_by", json_array_of(PQgetvalue(res, i, 5)),
		    "not_valid", json_array_of(PQgetvalue(res, i, 6))));
	areply(r, 200, json_pack("{s:O,s:I,s:o}", "tables", tables,
	    "large_objects", (json_int_t)(PQntuples(res) ? atoll(
	    PQgetvalue(res, 0, 4)) : 0), "not_valid_domains",
	    json_array_of(PQntuples(res) ? PQgetvalue(res, 0, 7) : "[]")));
out:
	if (e.code)
		repl_reply_error(r, &e);
	json_decref(tables);
	PQclear(res);
	if (d)
		PQfinish(d);
}

/* Deleting an environment. */

struct replication_env_drop {
	struct repl_err	*e;
	int		 n;
};

static void
repl_env_drop_one(long long id, const char *key, void *arg)
{
	struct replication_env_drop *x = arg;
	struct repl_names n;
	json_t *rec = repl_record_read(id, key);
	char *path;
	int dropped = 0;

	if (x->e->code)
		return;
	if (rec) {
		json_object_set_new(rec, "deleting", json_true());
		repl_record_write(id, key, rec);
		json_decref(rec);
	}
	repl_names(id, key, &n);
	x->n++;
	/* the slots of the environment's database go below */
	if (repl_source_drop(&n, 1, &dropped, x->e) == 0) {
		path = repl_record_path(id, key);
		unlink(path);
		free(path);
	}
}

int
replication_env_drop(long long id, char **cause)
{
	struct repl_err e = { 0 };
	struct replication_env_drop x = { &e, 0 };
	PGconn *c = NULL, *d = NULL;
	PGresult *res = NULL;
	char db[32], *hba = NULL;
	int i, dropped = 0, rc = -1;

	snprintf(db, sizeof db, "env_%lld", id);
	/* a held snapshot's session would keep DROP DATABASE from working */
	changes_env_release(id);
	pthread_mutex_lock(&replication_lock);
	repl_records_each(id, repl_env_drop_one, &x);
	if (e.code)
		goto out;
	if (x.n && !node->pg_uri && pg_hba_apply(&hba) == -1) {
		repl_fail(&e, 503, "DATABASE_UNAVAILABLE", "%s", hba);
		goto out;
	}
	if ((c = repl_connect(NULL, &e)) == NULL)
		goto out;
	if (pg_db_exists(c, db) == 1) {
		if ((d = repl_connect(db, &e)) == NULL)
			goto out;
		/* subscriptions of migrations into it, and any slot left */
		res = repl_query(d, &e, "SELECT s.subname FROM pg_subscription"
		    " s JOIN pg_database db ON db.oid = s.subdbid WHERE"
		    " db.datname = current_database()", 0, NULL);
		if (res == NULL)
			goto out;
		for (i = 0; i < PQntuples(res); i++)
			if (subscription_drop(d, PQgetvalue(res, i, 0),
			    &dropped, &e) == -1)
				goto out;
		if (repl_slots_drop(d, ".", &dropped, &e) == -1)
			goto out;
	}
	rc = 0;
out:
	pthread_mutex_unlock(&replication_lock);
	if (rc == -1)
		*cause = xstrdup(e.cause ? e.cause : "cannot drop the "
		    "environment's replication");
	free(e.cause);
	free(hba);
	PQclear(res);
	if (c)
		PQfinish(c);
	if (d)
		PQfinish(d);
	return rc;
}
