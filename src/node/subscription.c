/* The target side of a migration's logical replication (issue #14): the
 * environment's database on this node subscribes to the publication a
 * source node made for the migration (replication.c), using the source's
 * slot (create_slot = false) and copying every table first (copy_data =
 * true) into a database that holds the schema already and no rows.
 *
 * POST …/subscription {migration, connection} makes it, GET reports the
 * tables' sync states and the received LSN, DELETE disables it, detaches
 * the slot (the source's to drop: it may be unreachable by now) and drops
 * it; POST …/subscription/sequences sets the sequences to the source's
 * values, which logical replication does not carry. The subscription is
 * nubo_sub_<key> (the key's '-' as '_'); nothing of it is kept outside
 * PostgreSQL. */
#include "replication.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "agent-routes.h"
#include "buf.h"
#include "jsonx.h"
#include "log.h"
#include "node.h"
#include "tls.h"
#include "util.h"
#include "xmalloc.h"

/* The connection a source answered, checked: an IP address, a port, and
 * the database, role, slot and publication names the source makes for
 * this migration key (of one source environment id) — nothing else gets
 * into the subscription's conninfo. 0 with host (canonical) and
 * *loopback, or -1 with e (400). */
static int
sub_connection_check(json_t *b, const char *key, char *host,
    size_t hostlen, int *loopback, struct repl_err *e)
{
	const char *role = jsonx_str(b, "role"), *pw = jsonx_str(b, "password");
	struct repl_names src;
	long long port = jsonx_int(b, "port", 0), sid;
	char digits[20];
	size_t i, len;

	if (replication_address_parse(jsonx_str(b, "host"), host, hostlen,
	    loopback) == -1)
		return repl_fail(e, 400, "BAD_ADDRESS", "host must be the IPv4 "
		    "or IPv6 address of the source's PostgreSQL (no name, port "
		    "or prefix)");
	if (port < 1 || port > 65535)
		return repl_fail(e, 400, "BAD_REQUEST", "port must be 1 to "
		    "65535");
	len = strspn(role + (strncmp(role, "nubo_repl_", 10) == 0 ? 10 : 0),
	    "0123456789");
	if (strncmp(role, "nubo_repl_", 10) != 0 || len == 0 || len > 16 ||
	    (memcpy(digits, role + 10, len), digits[len] = '\0',
	    util_parse_int(digits, 1, 1LL << 53, &sid) == -1))
		return repl_fail(e, 400, "BAD_CONNECTION", "role must be the "
		    "replication role the source answered (nubo_repl_…)");
	repl_names(sid, key, &src);
	if (strcmp(role, src.role) != 0 || strcmp(jsonx_str(b, "database"),
	    src.database) != 0 || strcmp(jsonx_str(b, "slot"), src.slot) != 0 ||
	    strcmp(jsonx_str(b, "publication"), src.publication) != 0)
		return repl_fail(e, 400, "BAD_CONNECTION", "database, role, "
		    "slot and publication must be those the source answered "
		    "for migration %s", key);
	len = strlen(pw);
	for (i = 0; i < len; i++)
		if (!((pw[i] >= '0' && pw[i] <= '9') || (pw[i] >= 'a' &&
		    pw[i] <= 'z') || (pw[i] >= 'A' && pw[i] <= 'Z')))
			break;
	if (len < 16 || len > 128 || i < len)
		return repl_fail(e, 400, "BAD_CONNECTION", "password must be "
		    "the one the source answered (16 to 128 letters and "
		    "digits)");
	return 0;
}

/* The subscription sub in d's database: {subscription, enabled, slot,
 * publication, state, tables: [{table, state}], received_lsn,
 * latest_end_lsn, seconds_since_message}; NULL with e (404 when there is
 * none). */
json_t *
subscription_report(PGconn *d, const char *sub, const char *key,
    struct repl_err *e)
{
	static const char *const names[] = { "i", "init", "d", "copying",
	    "f", "copied", "s", "synchronized", "r", "ready", NULL };
	const char *p[1] = { sub };
	PGresult *res = NULL;
	json_t *out = NULL, *tables;
	int i, k, ready = 0, n, enabled;

	res = repl_query(d, e, "SELECT s.subenabled, s.subslotname,"
	    " array_to_string(s.subpublications, ',') FROM pg_subscription s"
	    " JOIN pg_database db ON db.oid = s.subdbid WHERE db.datname ="
	    " current_database() AND s.subname = $1", 1, p);
	if (res == NULL)
		goto out;
	if (PQntuples(res) == 0) {
		repl_fail(e, 404, "SUBSCRIPTION_NOT_FOUND", "no subscription "
		    "for migration %s in this environment's database", key);
		goto out;
	}
	enabled = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	out = json_pack("{s:s,s:s,s:b,s:s?,s:s}", "migration", key,
	    "subscription", sub, "enabled", enabled, "slot",
	    PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1),
	    "publication", PQgetvalue(res, 0, 2));
	PQclear(res);
	res = repl_query(d, e, "SELECT sr.srrelid::regclass::text,"
	    " sr.srsubstate, sr.srsublsn FROM pg_subscription_rel sr JOIN"
	    " pg_subscription s ON s.oid = sr.srsubid JOIN pg_database db ON"
	    " db.oid = s.subdbid WHERE db.datname = current_database() AND"
	    " s.subname = $1 ORDER BY 1", 1, p);
	if (res == NULL)
		goto fail;
	tables = json_array();
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		const char *st = PQgetvalue(res, i, 1);

		for (k = 0; names[k] && strcmp(names[k], st) != 0; k += 2)
			;
		ready += strcmp(st, "r") == 0;
		json_array_append_new(tables, json_pack("{s:s,s:s,s:s?}",
		    "table", PQgetvalue(res, i, 0), "state", names[k] ?
		    names[k + 1] : st, "lsn", PQgetisnull(res, i, 2) ? NULL :
		    PQgetvalue(res, i, 2)));
	}
	json_object_set_new(out, "tables", tables);
	PQclear(res);
	/* the apply worker's row (a table-sync worker's has its relid) */
	res = repl_query(d, e, "SELECT st.received_lsn, st.latest_end_lsn,"
	    " extract(epoch FROM now() - st.last_msg_receipt_time)::float8"
	    " FROM pg_stat_subscription st JOIN pg_subscription s ON s.oid ="
	    " st.subid JOIN pg_database db ON db.oid = s.subdbid WHERE"
	    " db.datname = current_database() AND s.subname = $1 AND"
	    " st.relid IS NULL AND st.pid IS NOT NULL", 1, p);
	if (res == NULL)
		goto fail;
	json_object_set_new(out, "worker", json_boolean(PQntuples(res) == 1));
	if (PQntuples(res) == 1) {
		json_t *w = json_pack("{s:s?,s:s?,s:o}", "received_lsn",
		    PQgetisnull(res, 0, 0) ? NULL : PQgetvalue(res, 0, 0),
		    "latest_end_lsn", PQgetisnull(res, 0, 1) ? NULL :
		    PQgetvalue(res, 0, 1), "seconds_since_message",
		    PQgetisnull(res, 0, 2) ? json_null() :
		    json_real(atof(PQgetvalue(res, 0, 2))));

		json_object_update(out, w);
		json_decref(w);
	}
	/* copying: a table's first copy is not done; streaming: every
	 * table is ready and the apply worker runs */
	json_object_set_new(out, "state", json_string(!enabled ? "disabled" :
	    ready < n ? "copying" : PQntuples(res) == 1 ? "streaming" :
	    "stopped"));
	/* the workers' errors since the subscription was made (a table's
	 * copy that fails is tried again and again: the portal gives up).
	 * The view is the cluster's: the migration's other environments
	 * have subscriptions of the same name in their databases */
	PQclear(res);
	res = repl_query(d, e, "SELECT ss.sync_error_count,"
	    " ss.apply_error_count FROM pg_stat_subscription_stats ss"
	    " JOIN pg_subscription s ON s.oid = ss.subid JOIN pg_database db"
	    " ON db.oid = s.subdbid WHERE db.datname = current_database() AND"
	    " s.subname = $1", 1, p);
	if (res == NULL)
		goto fail;
	json_object_set_new(out, "sync_errors", json_integer(PQntuples(res) ?
	    atoll(PQgetvalue(res, 0, 0)) : 0));
	json_object_set_new(out, "apply_errors", json_integer(PQntuples(res) ?
	    atoll(PQgetvalue(res, 0, 1)) : 0));
	goto out;
fail:
	json_decref(out);
	out = NULL;
out:
	PQclear(res);
	return out;
}

/* The ordinary tables of d's database holding rows (at most 5 named in
 * *names; caller frees): their count, or -1 with e. */
static int
sub_tables_with_rows(PGconn *d, char **names, struct repl_err *e)
{
	json_t *tables = repl_tables(d, "c.relpersistence = 'p'", e);
	size_t i;
	int n = 0;

	*names = xstrdup("");
	if (tables == NULL)
		return -1;
	for (i = 0; i < json_array_size(tables); i++) {
		const char *t = json_string_value(json_array_get(tables, i));
		char *sql = xasprintf("SELECT 1 FROM %s LIMIT 1", t), *s;
		int rows = repl_count(d, e, sql, 0, NULL);

		free(sql);
		if (rows == -1) {
			n = -1;
			break;
		}
		if (rows == 0)
			continue;
		if (n++ < 5) {
			s = xasprintf("%s%s%s", *names, **names ? ", " : "", t);
			free(*names);
			*names = s;
		}
	}
	json_decref(tables);
	return n;
}

/* The conninfo's TLS for a source on another host (caller frees): its
 * certificate must chain to root and name the address connected to. */
static char *
sub_conninfo_ssl(const char *root)
{
	struct buf b;
	const char *p;

	buf_init(&b, 0);
	/* no client certificate: without sslcert, libpq looks for one in
	 * the home of the cluster's user and fails when it cannot read it
	 * (a path that cannot exist says there is none) */
	buf_printf(&b, "sslcert=/dev/null/none sslmode=verify-full "
	    "sslrootcert='");
	/* a conninfo value in quotes: \\ and ' escaped */
	for (p = root; *p; p++) {
		if (*p == '\\' || *p == '\'')
			buf_append(&b, "\\", 1);
		buf_append(&b, p, 1);
	}
	buf_append(&b, "'", 1);
	return buf_detach(&b);
}

/* POST /agent/v1/environments/{id}/subscription {migration, host, port,
 * database, role, password, publication, slot, and ssl_root_cert when
 * host is another host's} (what the source's POST …/replication
 * answered; target_address and the rest of its answer may come along and
 * are ignored): 201 (200 when it was there) and the
 * subscription's state. The environment's database must hold the schema
 * and no rows: the subscription copies every table first. */
void
agent_subscription_create(struct areq *r)
{
	static const struct jfield fields[] = {
		{ "migration", JT_STRING, 1 }, { "host", JT_STRING, 1 },
		{ "port", JT_INT, 1 }, { "database", JT_STRING, 1 },
		{ "role", JT_STRING, 1 }, { "password", JT_STRING, 1 },
		{ "publication", JT_STRING, 1 }, { "slot", JT_STRING, 1 },
		{ "environment", JT_INT, 0 },
		{ "target_address", JT_STRING, 0 },
		{ "replica_identity_full", JT_ARRAY, 0 },
		{ "unlogged_tables", JT_ARRAY, 0 },
		{ "large_objects", JT_INT, 0 },
		{ "ssl_root_cert", JT_STRING, 0 }, { NULL } };
	struct repl_err e = { 0 };
	struct repl_names n;
	const char *key;
	const char *pem = jsonx_str(r->body, "ssl_root_cert");
	char host[64], pin[TLS_PIN_LEN], *conninfo = NULL, *lit = NULL;
	char *sql = NULL, *names = NULL, *root = NULL, *ssl = NULL;
	char *cause = NULL;
	PGconn *d = NULL;
	PGresult *res = NULL;
	json_t *out;
	long long id;
	int loopback, have, rows, locked = 0;

	if (abody_check(r, fields) == -1)
		return;
	key = jsonx_str(r->body, "migration");
	if (repl_key_check(key, &e) == -1)
		goto out;
	if (sub_connection_check(r->body, key, host, sizeof host, &loopback,
	    &e) == -1)
		goto out;
	/* a source on another host: verified with the certificate it
	 * answered (the portal checked its key) */
	if (!loopback && (pem == NULL || strlen(pem) > NUBO_PEM_MAX ||
	    tls_pin_pem(pem, pin, sizeof pin) == -1)) {
		repl_fail(&e, 400, "BAD_CONNECTION", "a source on another host "
		    "(%s) must give the certificate its PostgreSQL presents "
		    "(ssl_root_cert, PEM)", host);
		goto out;
	}
	if (!loopback && node->pg_uri) {
		repl_fail(&e, 409, "REPLICATION_UNAVAILABLE", "the PostgreSQL "
		    "server given with --pg cannot read the source's "
		    "certificate from this node: it cannot subscribe to "
		    "another host over TLS");
		goto out;
	}
	pthread_mutex_lock(&replication_lock);
	locked = 1;
	if ((d = repl_env_db(r, &id, &e)) == NULL)
		goto out;
	repl_names(id, key, &n);
	res = repl_query(d, &e, "SELECT s.subslotname = $2 AND"
	    " s.subpublications = ARRAY[$3]::text[] FROM pg_subscription s"
	    " JOIN pg_database db ON db.oid = s.subdbid WHERE db.datname ="
	    " current_database() AND s.subname = $1", 3, (const char *[]){
	    n.subscription, jsonx_str(r->body, "slot"),
	    jsonx_str(r->body, "publication") });
	if (res == NULL)
		goto out;
	have = PQntuples(res);
	if (have && strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		repl_fail(&e, 409, "SUBSCRIPTION_EXISTS", "environment %lld "
		    "subscribes for migration %s already, to another slot or "
		    "publication", id, key);
		goto out;
	}
	if (!have) {
		if ((rows = sub_tables_with_rows(d, &names, &e)) == -1)
			goto out;
		if (rows > 0) {
			repl_fail(&e, 409, "TARGET_NOT_EMPTY", "environment "
			    "%lld's database has rows in %d table%s (%s%s): "
			    "the subscription copies every table, so it needs "
			    "the schema alone", id, rows, rows == 1 ? "" : "s",
			    names, rows > 5 ? ", …" : "");
			goto out;
		}
		if (!loopback) {
			if ((root = pg_tls_root_write(n.subscription, pem,
			    &cause)) == NULL) {
				repl_fail(&e, 500, "INTERNAL", "%s", cause);
				goto out;
			}
			ssl = sub_conninfo_ssl(root);
		}
		/* values are checked above: nothing to quote in them */
		conninfo = xasprintf("host=%s port=%lld dbname=%s user=%s "
		    "password=%s %s connect_timeout=10 application_name=%s",
		    host, jsonx_int(r->body, "port", 0),
		    jsonx_str(r->body, "database"), jsonx_str(r->body, "role"),
		    jsonx_str(r->body, "password"), ssl ? ssl :
		    "sslmode=prefer", n.subscription);
		lit = PQescapeLiteral(d, conninfo, strlen(conninfo));
		sql = xasprintf("CREATE SUBSCRIPTION %s CONNECTION %s "
		    "PUBLICATION %s WITH (copy_data = true, create_slot = "
		    "false, slot_name = '%s', enabled = true)", n.subscription,
		    lit ? lit : "''", jsonx_str(r->body, "publication"),
		    jsonx_str(r->body, "slot"));
		PQclear(res);
		/* a failing statement is not written to the server's log:
		 * this one carries the source's password */
		if (repl_exec(d, "SET log_min_error_statement = panic", &e) ==
		    -1)
			goto out;
		res = PQexec(d, sql);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			const char *state = PQresultErrorField(res,
			    PG_DIAG_SQLSTATE), *msg = PQerrorMessage(d);
			int len = (int)strcspn(msg, "\n");

			if (state && strncmp(state, "08", 2) == 0)
				repl_fail(&e, 502, "SOURCE_UNREACHABLE",
				    "cannot reach the source database at %s: "
				    "%.*s",
				    host, len, msg);
			else if (state && strcmp(state, "42P01") == 0)
				repl_fail(&e, 409, "TARGET_SCHEMA_MISSING",
				    "environment %lld's database lacks a table "
				    "the source publishes: %.*s", id, len, msg);
			else
				repl_fail(&e, 409, "SUBSCRIPTION_FAILED",
				    "cannot subscribe: %.*s", len, msg);
			if (root)
				pg_tls_root_remove(n.subscription);
			goto out;
		}
		log_info("environment %lld: subscribed to %s:%lld/%s (slot %s, "
		    "migration %s%s)", id, host, jsonx_int(r->body, "port", 0),
		    jsonx_str(r->body, "database"), jsonx_str(r->body, "slot"),
		    key, root ? ", TLS verified against the source's "
		    "certificate" : "");
	}
	if ((out = subscription_report(d, n.subscription, key, &e)) !=
	    NULL)
		areply(r, have ? 200 : 201, out);
out:
	if (locked)
		pthread_mutex_unlock(&replication_lock);
	if (e.code)
		repl_reply_error(r, &e);
	PQclear(res);
	if (lit)
		PQfreemem(lit);
	if (conninfo) {
		explicit_bzero(conninfo, strlen(conninfo));
		free(conninfo);
	}
	free(sql);
	free(names);
	free(root);
	free(ssl);
	free(cause);
	if (d)
		PQfinish(d);
}

/* GET /agent/v1/environments/{id}/subscription[?migration=KEY]: the
 * subscription for KEY, or {subscriptions: [...]} of every one in the
 * environment's database. */
void
agent_subscription_show(struct areq *r)
{
	struct repl_err e = { 0 };
	struct repl_names n;
	const char *key;
	PGconn *d = NULL;
	PGresult *res = NULL;
	json_t *out, *list = NULL;
	long long id;
	int i;

	if (repl_query_key(r, 0, &key) == -1)
		return;
	if ((d = repl_env_db(r, &id, &e)) == NULL)
		goto out;
	if (key) {
		repl_names(id, key, &n);
		if ((out = subscription_report(d, n.subscription, key, &e)) != NULL)
			areply(r, 200, out);
		goto out;
	}
	res = repl_query(d, &e, "SELECT s.subname FROM pg_subscription s JOIN"
	    " pg_database db ON db.oid = s.subdbid WHERE db.datname ="
	    " current_database() AND s.subname ~ '^nubo_sub_[a-z0-9_]+$'"
	    " ORDER BY 1", 0, NULL);
	if (res == NULL)
		goto out;
	list = json_array();
	for (i = 0; i < PQntuples(res); i++) {
		char k[REPLICATION_KEY_MAX + 1], *c;

		snprintf(k, sizeof k, "%s", PQgetvalue(res, i, 0) + 9);
		for (c = k; *c; c++)
			if (*c == '_')
				*c = '-';
		if ((out = subscription_report(d, PQgetvalue(res, i, 0), k,
		    &e)) == NULL)
			goto out;
		json_array_append_new(list, out);
	}
	areply(r, 200, json_pack("{s:O}", "subscriptions", list));
out:
	if (e.code)
		repl_reply_error(r, &e);
	json_decref(list);
	PQclear(res);
	if (d)
		PQfinish(d);
}

/* Drop subscription sub of d's database: disabled, its slot detached
 * (the source's to drop: it may be unreachable by now), dropped. 0
 * (*dropped 1 when it was there), or -1 with e. */
int
subscription_drop(PGconn *d, const char *sub, int *dropped,
    struct repl_err *e)
{
	const char *p[1] = { sub };
	PGresult *res;
	char *sql;
	int enabled, slot, rc;

	res = repl_query(d, e, "SELECT s.subenabled, s.subslotname IS NOT"
	    " NULL FROM pg_subscription s JOIN pg_database db ON db.oid ="
	    " s.subdbid WHERE db.datname = current_database() AND s.subname ="
	    " $1", 1, p);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	*dropped = 1;
	enabled = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	slot = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	/* one statement each: DROP SUBSCRIPTION may not run in the
	 * transaction a multi-statement string is */
	rc = 0;
	if (enabled) {
		sql = xasprintf("ALTER SUBSCRIPTION %s DISABLE", sub);
		rc = repl_exec(d, sql, e);
		free(sql);
	}
	if (rc == 0 && slot) {
		sql = xasprintf("ALTER SUBSCRIPTION %s SET (slot_name = NONE)",
		    sub);
		rc = repl_exec(d, sql, e);
		free(sql);
	}
	if (rc == 0) {
		sql = xasprintf("DROP SUBSCRIPTION IF EXISTS %s", sub);
		rc = repl_exec(d, sql, e);
		free(sql);
	}
	/* the source's certificate it verified with (another host's) */
	if (rc == 0)
		pg_tls_root_remove(sub);
	return rc;
}

/* DELETE /agent/v1/environments/{id}/subscription?migration=KEY: 200
 * {deleted} (false when there was none). */
void
agent_subscription_delete(struct areq *r)
{
	struct repl_err e = { 0 };
	struct repl_names n;
	const char *key;
	char db[32];
	PGconn *c = NULL, *d = NULL;
	long long id;
	int has_db, dropped = 0, exists;

	if (repl_query_key(r, 1, &key) == -1)
		return;
	id = repl_env_id(r, &has_db);
	repl_names(id, key, &n);
	snprintf(db, sizeof db, "env_%lld", id);
	pthread_mutex_lock(&replication_lock);
	if ((c = repl_connect(NULL, &e)) == NULL)
		goto out;
	if ((exists = pg_db_exists(c, db)) == -1) {
		repl_fail(&e, 503, "DATABASE_UNAVAILABLE", "PostgreSQL: %s",
		    PQerrorMessage(c));
		goto out;
	}
	if (exists && ((d = repl_connect(db, &e)) == NULL ||
	    subscription_drop(d, n.subscription, &dropped, &e) == -1))
		goto out;
	if (dropped)
		log_info("environment %lld: subscription for migration %s "
		    "dropped", id, key);
	areply(r, 200, json_pack("{s:s,s:b}", "migration", key, "deleted",
	    dropped));
out:
	pthread_mutex_unlock(&replication_lock);
	if (e.code)
		repl_reply_error(r, &e);
	if (c)
		PQfinish(c);
	if (d)
		PQfinish(d);
}

/* One sequence of a POST …/subscription/sequences body, checked: 0, or
 * -1 with e (400 naming its index). */
static int
sub_sequence_check(json_t *s, size_t i, struct repl_err *e)
{
	static const struct jfield fields[] = {
		{ "schema", JT_STRING, 1 }, { "name", JT_STRING, 1 },
		{ "last_value", JT_INT, 1 }, { "is_called", JT_BOOL, 1 },
		{ NULL } };
	char *cause = NULL;
	size_t a, b;

	if (!json_is_object(s) || jsonx_check(s, fields, &cause) == -1) {
		repl_fail(e, 400, "BAD_REQUEST", "sequences[%zu]: %s", i,
		    cause ? cause : "must be an object {schema, name, "
		    "last_value, is_called}");
		free(cause);
		return -1;
	}
	a = strlen(jsonx_str(s, "schema"));
	b = strlen(jsonx_str(s, "name"));
	if (a == 0 || a > 63 || b == 0 || b > 63)
		return repl_fail(e, 400, "BAD_REQUEST", "sequences[%zu]: "
		    "schema and name must be 1 to 63 bytes", i);
	return 0;
}

/* POST /agent/v1/environments/{id}/subscription/sequences {sequences:
 * [{schema, name, last_value, is_called}]} (what the source's GET
 * …/replication/sequences answered): all of them set with setval(), or
 * none. setval() is not undone by a ROLLBACK, so every sequence is found
 * and its value checked against its range first, and only then set.
 * 200 {sequences_set}. */
void
agent_subscription_sequences(struct areq *r)
{
	static const struct jfield fields[] = {
		{ "sequences", JT_ARRAY, 1 }, { NULL } };
	struct repl_err e = { 0 };
	json_t *seqs, *oids = json_array();
	char value[32];
	PGconn *d = NULL;
	PGresult *res;
	long long id;
	size_t i;

	if (abody_check(r, fields) == -1)
		goto out;
	seqs = json_object_get(r->body, "sequences");
	if (json_array_size(seqs) > NUBO_REPLICATION_SEQUENCES_MAX) {
		repl_fail(&e, 413, "TOO_MANY_SEQUENCES", "at most %d sequences "
		    "in one call", NUBO_REPLICATION_SEQUENCES_MAX);
		goto out;
	}
	for (i = 0; i < json_array_size(seqs); i++)
		if (sub_sequence_check(json_array_get(seqs, i), i, &e) == -1)
			goto out;
	if ((d = repl_env_db(r, &id, &e)) == NULL)
		goto out;
	for (i = 0; i < json_array_size(seqs); i++) {
		json_t *s = json_array_get(seqs, i);
		const char *p[3] = { jsonx_str(s, "schema"), jsonx_str(s,
		    "name"), value };

		snprintf(value, sizeof value, "%lld", jsonx_int(s,
		    "last_value", 0));
		res = repl_query(d, &e, "SELECT c.oid, $3::bigint BETWEEN"
		    " q.seqmin AND q.seqmax FROM pg_class c JOIN pg_namespace n"
		    " ON n.oid = c.relnamespace JOIN pg_sequence q ON"
		    " q.seqrelid = c.oid WHERE n.nspname = $1 AND c.relname ="
		    " $2", 3, p);
		if (res == NULL)
			goto out;
		if (PQntuples(res) == 0)
			repl_fail(&e, 409, "SEQUENCE_NOT_FOUND", "environment "
			    "%lld's database has no sequence %s.%s: no "
			    "sequence was set", id, p[0], p[1]);
		else if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
			repl_fail(&e, 409, "BAD_SEQUENCE_VALUE", "%s is "
			    "outside the range of sequence %s.%s in "
			    "environment %lld's database: no sequence was set",
			    value, p[0], p[1], id);
		else
			json_array_append_new(oids, json_string(PQgetvalue(res,
			    0, 0)));
		PQclear(res);
		if (e.code)
			goto out;
	}
	for (i = 0; i < json_array_size(seqs); i++) {
		json_t *s = json_array_get(seqs, i);
		const char *p[3] = { json_string_value(json_array_get(oids, i)),
		    value, jsonx_bool(s, "is_called", 0) ? "t" : "f" };

		snprintf(value, sizeof value, "%lld", jsonx_int(s,
		    "last_value", 0));
		res = repl_query(d, &e, "SELECT setval($1::oid::regclass,"
		    " $2::bigint, $3::boolean)", 3, p);
		if (res == NULL)
			goto out;
		PQclear(res);
	}
	log_info("environment %lld: %zu sequence%s set from the source", id,
	    json_array_size(seqs), json_array_size(seqs) == 1 ? "" : "s");
	areply(r, 200, json_pack("{s:I}", "sequences_set",
	    (json_int_t)json_array_size(seqs)));
out:
	if (e.code)
		repl_reply_error(r, &e);
	json_decref(oids);
	if (d)
		PQfinish(d);
}
