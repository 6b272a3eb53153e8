/* Change slots: which rows of an environment's database changed since a
 * point, so that a migration's cutover compares those rows only instead
 * of reading every table while the app is down (issue #14; ARCHITECTURE,
 * "Cloud nodes", Replication, the cutover's verify).
 *
 * A change slot is a logical replication slot with PostgreSQL's
 * test_decoding plugin, nubo_chg_<env>_<key>, on the source's and on the
 * target's database alike; nothing consumes it: each look is a peek, so
 * it names every key touched since it was made. The portal's `baseline`
 * step (before the maintenance page) marks both sides — slot, then a
 * REPEATABLE READ snapshot held open here and every table summed in it —,
 * asks both for the keys touched so far, and has each side hash those
 * keys' rows in its held snapshot: what is left of the sums is the part
 * of each table no one touched, and must be equal on both sides. At the
 * cutover, with the source stopped and the target caught up, the keys
 * touched since the slots are compared row by row; every other row is
 * as both sides verified it.
 *
 *   POST   …/changes?migration=KEY        mark
 *   GET    …/changes/keys?migration=KEY   the keys touched since the slot
 *   POST   …/changes/sums?migration=KEY   {tables: {name: [[v, …], …]},
 *                                         held: bool} their rows hashed
 *   DELETE …/changes?migration=KEY        slot and snapshot dropped
 */
#include "replication.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "agent-routes.h"
#include "buf.h"
#include "decoding.h"
#include "httpd.h"
#include "jsonx.h"
#include "log.h"
#include "node.h"
#include "xmalloc.h"

/* Touched keys kept per table: beyond, the table is compared whole. */
#define CHANGES_KEYS_MAX	100000
/* Keys a sums request may name in all. */
#define CHANGES_SUMS_MAX	1000000
/* A held snapshot nobody asked for ends on its own (PostgreSQL's
 * idle_in_transaction_session_timeout): it keeps the vacuum back. */
#define CHANGES_HELD_SECONDS	300

/* A snapshot held open between a mark and its sums. */
struct held {
	long long	 env;
	char		 key[REPLICATION_KEY_MAX + 1];
	PGconn		*c;
	json_t		*tables;	/* the mark's {name: {rows, checksum}} */
	struct held	*next;
};

static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static struct held *held_list;

static void
held_free(struct held *h)
{
	if (h == NULL)
		return;
	if (h->c)
		PQfinish(h->c);
	json_decref(h->tables);
	free(h);
}

/* Take env's snapshot for key out of the list (NULL when there is none);
 * key NULL: any of env's. */
static struct held *
held_take(long long env, const char *key)
{
	struct held **p, *h = NULL;

	pthread_mutex_lock(&held_lock);
	for (p = &held_list; *p; p = &(*p)->next)
		if ((*p)->env == env && (key == NULL || strcmp((*p)->key,
		    key) == 0)) {
			h = *p;
			*p = h->next;
			h->next = NULL;
			break;
		}
	pthread_mutex_unlock(&held_lock);
	return h;
}

static void
held_put(struct held *h)
{
	held_free(held_take(h->env, h->key));
	pthread_mutex_lock(&held_lock);
	h->next = held_list;
	held_list = h;
	pthread_mutex_unlock(&held_lock);
}

void
changes_env_release(long long env)
{
	struct held *h;

	while ((h = held_take(env, NULL)) != NULL)
		held_free(h);
}

/* Every table of d's database: {name: {key: [{name, type}] or null,
 * why}} where why says why a table has no key to compare by (no primary
 * key, partitioned, not logged: test_decoding never sees an unlogged
 * table's changes). NULL with e. */
static json_t *
tables_read(PGconn *d, struct repl_err *e)
{
	PGresult *res = repl_query(d, e, "SELECT quote_ident(n.nspname) ||"
	    " '.' || quote_ident(c.relname), c.relkind, c.relpersistence,"
	    " (SELECT json_agg(json_build_object('name', a.attname, 'type',"
	    " format_type(a.atttypid, a.atttypmod)) ORDER BY k.ord) FROM"
	    " pg_index i, unnest(i.indkey) WITH ORDINALITY k(att, ord),"
	    " pg_attribute a WHERE i.indrelid = c.oid AND i.indisprimary AND"
	    " a.attrelid = c.oid AND a.attnum = k.att) FROM pg_class c JOIN"
	    " pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN"
	    " ('r','p') AND n.nspname NOT IN ('pg_catalog',"
	    "'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND"
	    " n.nspname NOT LIKE 'pg_temp%' ORDER BY 1", 0, NULL);
	json_t *out;
	int i;

	if (res == NULL)
		return NULL;
	out = json_object();
	for (i = 0; i < PQntuples(res); i++) {
		json_t *key = PQgetisnull(res, i, 3) ? NULL :
		    json_loads(PQgetvalue(res, i, 3), 0, NULL);
		const char *why = PQgetvalue(res, i, 1)[0] == 'p' ?
		    "partitioned" : PQgetvalue(res, i, 2)[0] != 'p' ?
		    "not logged" : key == NULL ? "no primary key" : NULL;

		json_object_set_new(out, PQgetvalue(res, i, 0), why ?
		    json_pack("{s:n,s:s}", "key", "why", why) :
		    json_pack("{s:o}", "key", key));
		if (why)
			json_decref(key);
	}
	PQclear(res);
	return out;
}

/* Run sql (a SELECT of a count and a checksum) on c inside a savepoint:
 * 0 with the two values, 1 when PostgreSQL has no hash function for a
 * column's type (42883: the caller sums md5 of the text instead), -1
 * with e. */
static int
sum_run(PGconn *c, const char *sql, int nparams, const char *const *params,
    long long *rows, char **checksum, struct repl_err *e)
{
	PGresult *res;
	const char *state;

	if (repl_exec(c, "SAVEPOINT sum", e) == -1)
		return -1;
	res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		*rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		*checksum = xstrdup(PQgetvalue(res, 0, 1));
		PQclear(res);
		return repl_exec(c, "RELEASE SAVEPOINT sum", e);
	}
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state && strcmp(state, "42883") == 0) {
		PQclear(res);
		return repl_exec(c, "ROLLBACK TO SAVEPOINT sum", e) == -1 ? -1 :
		    1;
	}
	/* class 22: a key's value its column's type does not read */
	if (state && strncmp(state, "22", 2) == 0) {
		repl_fail(e, 400, "BAD_KEY", "a key cannot be read: %.*s",
		    (int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
		PQclear(res);
		return -1;
	}
	repl_fail(e, 503, "DATABASE_UNAVAILABLE", "PostgreSQL: %.*s",
	    (int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
	PQclear(res);
	return -1;
}

/* The row count and checksum of table name (quoted, from the catalog) on
 * c, of the rows whose key (cols, with their types) is among the JSON
 * array keys when keys is given: the sum of hash_record_extended() of
 * each row ("h…"), or of md5 of its text when a column's type has no
 * hash function (md5 1: that only). 0, or -1 with e. */
static int
table_sum(PGconn *c, const char *name, json_t *cols, const char *keys,
    int md5, long long *rows, char **checksum, struct repl_err *e)
{
	struct buf where;
	const char *p[1] = { keys };
	json_t *col;
	size_t i;
	char *sql;
	int rc = 1;

	buf_init(&where, 0);
	if (keys) {
		char *list;

		buf_printf(&where, " WHERE (");
		json_array_foreach(cols, i, col) {
			list = PQescapeIdentifier(c, jsonx_str(col, "name"),
			    strlen(jsonx_str(col, "name")));
			buf_printf(&where, "%s%s", i ? ", " : "", list);
			PQfreemem(list);
		}
		buf_printf(&where, ") IN (SELECT ");
		/* the type from the catalog (format_type), the value as the
		 * type's output function wrote it: its input reads it back */
		json_array_foreach(cols, i, col)
			buf_printf(&where, "%s(k->>%zu)::%s", i ? ", " : "", i,
			    jsonx_str(col, "type"));
		buf_printf(&where, " FROM jsonb_array_elements($1::jsonb) k)");
	}
	if (!md5) {
		sql = xasprintf("SELECT count(*), 'h' || COALESCE(sum("
		    "hash_record_extended(t, 0)::numeric), 0)::text FROM %s t%s",
		    name, buf_cstr(&where));
		rc = sum_run(c, sql, keys ? 1 : 0, p, rows, checksum, e);
		free(sql);
	}
	if (rc == 1) {
		sql = xasprintf("SELECT count(*), COALESCE(sum(('x' || substr("
		    "md5(t::text), 1, 16))::bit(64)::bigint::numeric), 0)::text"
		    " FROM %s t%s", name, buf_cstr(&where));
		rc = sum_run(c, sql, keys ? 1 : 0, p, rows, checksum, e);
		free(sql);
		if (rc == 1)
			rc = repl_fail(e, 503, "DATABASE_UNAVAILABLE", "cannot "
			    "sum %s", name);
	}
	buf_release(&where);
	return rc;
}

/* The key, the environment's database and the slot's name of a request:
 * the connection, or NULL after replying. */
static PGconn *
changes_open(struct areq *r, const char **key, long long *id, char *slot,
    size_t slotlen)
{
	struct repl_err e = { 0 };
	struct repl_names n;
	PGconn *d;

	if (repl_query_key(r, 1, key) == -1)
		return NULL;
	if ((d = repl_env_db(r, id, &e)) == NULL) {
		repl_reply_error(r, &e);
		return NULL;
	}
	repl_names(*id, *key, &n);
	snprintf(slot, slotlen, "%s", n.change_slot);
	return d;
}

/* 1 when slot is on d's server, 0 when not, -1 with e. */
static int
slot_exists(PGconn *d, const char *slot, struct repl_err *e)
{
	const char *p[1] = { slot };

	return repl_count(d, e, "SELECT 1 FROM pg_replication_slots WHERE"
	    " slot_name = $1 AND database = current_database()", 1, p);
}

/* POST …/changes?migration=KEY: the change slot made if it is not there
 * yet, then a snapshot taken and held (CHANGES_HELD_SECONDS at most) and
 * every table summed in it. 200 {slot, created, lsn (the WAL's end as
 * the snapshot was taken: every change it sees is before), tables: [{name,
 * rows, checksum, key: [{name, type}] or null, why}]}. */
void
agent_changes_mark(struct areq *r)
{
	struct repl_err e = { 0 };
	struct held *h = NULL;
	const char *key, *p[1];
	char slot[80], db[32], *sql;
	PGconn *d;
	PGresult *res = NULL;
	json_t *tables = NULL, *list = json_array(), *v, *out;
	long long id;
	const char *name;
	int exists;

	if ((d = changes_open(r, &key, &id, slot, sizeof slot)) == NULL) {
		json_decref(list);
		return;
	}
	p[0] = slot;
	if ((exists = slot_exists(d, slot, &e)) == -1)
		goto out;
	/* waits for the transactions running now to end: every later one
	 * is decoded */
	if (!exists && (res = repl_query(d, &e, "SELECT 1 FROM"
	    " pg_create_logical_replication_slot($1, 'test_decoding')", 1,
	    p)) == NULL)
		goto out;
	PQclear(res);
	res = NULL;
	if (!exists)
		log_info("environment %lld: change slot %s made for migration "
		    "%s", id, slot, key);
	h = xcalloc(1, sizeof *h);
	h->env = id;
	snprintf(h->key, sizeof h->key, "%s", key);
	snprintf(db, sizeof db, "env_%lld", id);
	if ((h->c = repl_connect(db, &e)) == NULL)
		goto out;
	sql = xasprintf("SET idle_in_transaction_session_timeout = '%ds';"
	    " BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	    CHANGES_HELD_SECONDS);
	if (repl_exec(h->c, sql, &e) == -1) {
		free(sql);
		goto out;
	}
	free(sql);
	/* the snapshot is taken by this first query */
	if ((res = repl_query(h->c, &e, "SELECT pg_current_wal_lsn()::text",
	    0, NULL)) == NULL || (tables = tables_read(h->c, &e)) == NULL)
		goto out;
	h->tables = json_object();
	json_object_foreach(tables, name, v) {
		long long rows;
		char *sum = NULL;

		if (table_sum(h->c, name, NULL, NULL, 0, &rows, &sum, &e) ==
		    -1)
			goto out;
		json_object_set_new(h->tables, name, json_pack("{s:I,s:s}",
		    "rows", (json_int_t)rows, "checksum", sum));
		json_array_append_new(list, json_pack("{s:s,s:I,s:s,s:O,s:O*}",
		    "name", name, "rows", (json_int_t)rows, "checksum", sum,
		    "key", json_object_get(v, "key"), "why",
		    json_object_get(v, "why")));
		free(sum);
	}
	out = json_pack("{s:s,s:b,s:s,s:o}", "slot", slot, "created",
	    !exists, "lsn", PQgetvalue(res, 0, 0), "tables", list);
	list = NULL;
	/* held before the answer: the portal's next call may come at once */
	held_put(h);
	h = NULL;
	areply(r, 200, out);
out:
	if (e.code)
		repl_reply_error(r, &e);
	held_free(h);
	PQclear(res);
	PQfinish(d);
	json_decref(tables);
	json_decref(list);
}

/* Add c's keys to touched ({table: {keys: {json: true}} or {whole: true,
 * why}}). */
static void
touched_add(json_t *touched, json_t *tables, struct decoding_change *c)
{
	json_t *t = json_object_get(touched, c->table);
	json_t *cols = json_object_get(json_object_get(tables, c->table),
	    "key"), *rows[2] = { c->old, c->row }, *col, *k;
	const char *why = NULL;
	size_t i, j;

	if (t == NULL) {
		t = json_pack("{s:{}}", "keys");
		json_object_set_new(touched, c->table, t);
	}
	if (jsonx_bool(t, "whole", 0))
		return;
	if (json_object_get(tables, c->table) == NULL)
		why = "made since the slot";
	else if (!json_is_array(cols))
		why = jsonx_str(json_object_get(tables, c->table), "why");
	else if (c->kind == 'T')
		why = "truncated";
	for (j = 0; why == NULL && j < 2; j++) {
		char *text;

		if (rows[j] == NULL)
			continue;
		k = json_array();
		json_array_foreach(cols, i, col) {
			json_t *val = json_object_get(rows[j], jsonx_str(col,
			    "name"));

			if (!json_is_string(val)) {
				why = "a key without its value in the change";
				break;
			}
			json_array_append(k, val);
		}
		if (why == NULL) {
			text = json_dumps(k, JSON_COMPACT);
			json_object_set_new(json_object_get(t, "keys"), text,
			    json_true());
			free(text);
		}
		json_decref(k);
		if (json_object_size(json_object_get(t, "keys")) >
		    CHANGES_KEYS_MAX)
			why = "more keys touched than are compared one by one";
	}
	if (why) {
		json_object_del(t, "keys");
		json_object_set_new(t, "whole", json_true());
		json_object_set_new(t, "why", json_string(why));
	}
}

/* GET …/changes/keys?migration=KEY: every key the change slot saw
 * touched (inserted, updated — old and new key —, deleted) since it was
 * made, per table. 200 {lsn, changes, tables: {name: {keys: [[v, …], …]}
 * or {whole: true, why}}}; 404 NO_CHANGE_SLOT. */
void
agent_changes_keys(struct areq *r)
{
	struct repl_err e = { 0 };
	const char *key, *p[1], *name;
	char slot[80], *cause = NULL;
	PGconn *d;
	PGresult *res = NULL;
	json_t *tables = NULL, *touched = json_object(), *t, *out;
	long long id, changes = 0;
	int ok = 0;

	if ((d = changes_open(r, &key, &id, slot, sizeof slot)) == NULL) {
		json_decref(touched);
		return;
	}
	p[0] = slot;
	switch (slot_exists(d, slot, &e)) {
	case -1:
		goto out;
	case 0:
		repl_fail(&e, 404, "NO_CHANGE_SLOT", "environment %lld has no "
		    "change slot for migration %s", id, key);
		goto out;
	}
	if ((tables = tables_read(d, &e)) == NULL)
		goto out;
	/* one row at a time: a slot made long ago may name many */
	if (!PQsendQueryParams(d, "SELECT data FROM"
	    " pg_logical_slot_peek_changes($1, NULL, NULL, 'skip-empty-xacts',"
	    " '1', 'include-xids', '0')", 1, NULL, p, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(d)) {
		repl_fail(&e, 503, "DATABASE_UNAVAILABLE", "PostgreSQL: %.*s",
		    (int)strcspn(PQerrorMessage(d), "\n"), PQerrorMessage(d));
		goto out;
	}
	while ((res = PQgetResult(d)) != NULL) {
		if (PQresultStatus(res) == PGRES_SINGLE_TUPLE) {
			struct decoding_change c;

			switch (decoding_parse(PQgetvalue(res, 0, 0), &c,
			    &cause)) {
			case 1:
				changes++;
				touched_add(touched, tables, &c);
				decoding_change_free(&c);
				break;
			case -1:
				if (e.code == NULL)
					repl_fail(&e, 500, "BAD_CHANGE", "the "
					    "change slot gave a line nubo "
					    "cannot read: %s", cause);
				free(cause);
				cause = NULL;
				break;
			}
		} else if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			ok = 1;
		} else if (e.code == NULL) {
			repl_fail(&e, 503, "DATABASE_UNAVAILABLE", "PostgreSQL: "
			    "%.*s", (int)strcspn(PQerrorMessage(d), "\n"),
			    PQerrorMessage(d));
		}
		PQclear(res);
	}
	res = NULL;
	if (e.code || !ok)
		goto out;
	/* the key sets become lists */
	json_object_foreach(touched, name, t) {
		json_t *keys = json_object_get(t, "keys"), *list, *v;
		const char *text;

		if (keys == NULL)
			continue;
		list = json_array();
		json_object_foreach(keys, text, v)
			json_array_append_new(list, json_loads(text, 0, NULL));
		json_object_set_new(t, "keys", list);
	}
	out = json_pack("{s:s,s:I,s:O}", "slot", slot, "changes",
	    (json_int_t)changes, "tables", touched);
	areply(r, 200, out);
out:
	if (e.code)
		repl_reply_error(r, &e);
	PQclear(res);
	PQfinish(d);
	json_decref(tables);
	json_decref(touched);
}

/* The body of a sums request, checked against the tables: 0, or -1 with
 * e (400 naming what is wrong). */
static int
sums_check(json_t *want, json_t *tables, struct repl_err *e)
{
	const char *name;
	json_t *keys, *k, *v;
	size_t i, j, total = 0;

	if (!json_is_object(want))
		return repl_fail(e, 400, "BAD_REQUEST", "tables must be an "
		    "object {table: [[value, …], …]}");
	json_object_foreach(want, name, keys) {
		json_t *cols = json_object_get(json_object_get(tables, name),
		    "key");

		if (!json_is_array(cols))
			return repl_fail(e, 400, "UNKNOWN_TABLE", "%s is not a "
			    "table with a primary key here", name);
		if (!json_is_array(keys))
			return repl_fail(e, 400, "BAD_REQUEST", "tables.%s must "
			    "be an array of keys", name);
		json_array_foreach(keys, i, k) {
			if (!json_is_array(k) || json_array_size(k) !=
			    json_array_size(cols))
				return repl_fail(e, 400, "BAD_REQUEST",
				    "tables.%s[%zu] must be an array of %zu "
				    "values", name, i, json_array_size(cols));
			json_array_foreach(k, j, v)
				if (!json_is_string(v))
					return repl_fail(e, 400, "BAD_REQUEST",
					    "tables.%s[%zu] must hold strings",
					    name, i);
		}
		if ((total += json_array_size(keys)) > CHANGES_SUMS_MAX)
			return repl_fail(e, 400, "BAD_REQUEST", "more than %d "
			    "keys", CHANGES_SUMS_MAX);
	}
	return 0;
}

/* POST …/changes/sums?migration=KEY {tables: {name: [[v, …], …]}, held}:
 * per table, the count and checksum of the rows with those keys; held:
 * in the snapshot the mark holds (and then released), with what is left
 * of the mark's figures once they are taken out (outside_rows,
 * outside_checksum); else as the database is now. 200 {tables: {name:
 * {rows, checksum[, outside_rows, outside_checksum]}}}; 404
 * NO_HELD_SNAPSHOT when none is held (or it ended). */
void
agent_changes_sums(struct areq *r)
{
	static const struct jfield fields[] = {
		{ "tables", JT_OBJECT, 1 }, { "held", JT_BOOL, 0 }, { NULL } };
	struct repl_err e = { 0 };
	struct held *h = NULL;
	const char *key, *name;
	char slot[80], db[32];
	PGconn *d = NULL, *c = NULL;
	json_t *tables = NULL, *want, *keys, *out = json_object();
	long long id;
	int held;

	if (abody_check(r, fields) == -1 || (d = changes_open(r, &key, &id,
	    slot, sizeof slot)) == NULL) {
		json_decref(out);
		return;
	}
	want = json_object_get(r->body, "tables");
	held = jsonx_bool(r->body, "held", 0);
	if ((tables = tables_read(d, &e)) == NULL || sums_check(want, tables,
	    &e) == -1)
		goto out;
	if (held) {
		h = held_take(id, key);
		if (h == NULL || PQstatus(h->c) != CONNECTION_OK ||
		    PQtransactionStatus(h->c) != PQTRANS_INTRANS) {
			repl_fail(&e, 404, "NO_HELD_SNAPSHOT", "environment "
			    "%lld holds no snapshot for migration %s (none was "
			    "taken, or it ended after %d s)", id, key,
			    CHANGES_HELD_SECONDS);
			goto out;
		}
		c = h->c;
	} else {
		snprintf(db, sizeof db, "env_%lld", id);
		if ((c = repl_connect(db, &e)) == NULL || repl_exec(c, "BEGIN"
		    " ISOLATION LEVEL REPEATABLE READ READ ONLY", &e) == -1)
			goto out;
	}
	json_object_foreach(want, name, keys) {
		json_t *mark = h ? json_object_get(h->tables, name) : NULL;
		const char *was = jsonx_str(mark, "checksum");
		char *text = json_dumps(keys, JSON_COMPACT), *sum = NULL;
		long long rows = 0;
		json_t *one;
		int rc;

		if (h && mark == NULL) {
			free(text);
			repl_fail(&e, 409, "TABLE_CHANGED", "%s was not there "
			    "when the snapshot was taken", name);
			goto out;
		}
		/* the mark's way of summing: md5 when it had to */
		rc = table_sum(c, name, json_object_get(json_object_get(tables,
		    name), "key"), text, was && was[0] != 'h', &rows, &sum,
		    &e);
		free(text);
		if (rc == -1)
			goto out;
		one = json_pack("{s:I,s:s}", "rows", (json_int_t)rows,
		    "checksum", sum);
		if (mark) {
			const char *p[2] = { was + (was[0] == 'h'), sum +
			    (sum[0] == 'h') };
			PGresult *res = repl_query(c, &e, "SELECT ($1::numeric"
			    " - $2::numeric)::text", 2, p);

			if (res == NULL) {
				free(sum);
				json_decref(one);
				goto out;
			}
			json_object_set_new(one, "outside_rows", json_integer(
			    jsonx_int(mark, "rows", 0) - rows));
			json_object_set_new(one, "outside_checksum",
			    json_sprintf("%s%s", was[0] == 'h' ? "h" : "",
			    PQgetvalue(res, 0, 0)));
			PQclear(res);
		}
		free(sum);
		json_object_set_new(out, name, one);
	}
	areply(r, 200, json_pack("{s:O}", "tables", out));
out:
	if (e.code)
		repl_reply_error(r, &e);
	if (h)
		held_free(h);
	else if (c)
		PQfinish(c);
	PQfinish(d);
	json_decref(tables);
	json_decref(out);
}

/* DELETE …/changes?migration=KEY: the change slot dropped and a held
 * snapshot ended. 200 {deleted} (false when there was neither). */
void
agent_changes_delete(struct areq *r)
{
	struct repl_err e = { 0 };
	struct held *h;
	const char *key;
	char slot[80], re[96];
	PGconn *d;
	long long id;
	int dropped = 0;

	if ((d = changes_open(r, &key, &id, slot, sizeof slot)) == NULL)
		return;
	if ((h = held_take(id, key)) != NULL) {
		dropped = 1;
		held_free(h);
	}
	snprintf(re, sizeof re, "^%s$", slot);
	if (repl_slots_drop(d, re, &dropped, &e) == -1) {
		repl_reply_error(r, &e);
	} else {
		if (dropped)
			log_info("environment %lld: change slot %s dropped", id,
			    slot);
		areply(r, 200, json_pack("{s:s,s:b}", "slot", slot, "deleted",
		    dropped));
	}
	PQfinish(d);
}
