/* A migration that replicates (migrations.method = 'replicate', issue
 * #14): the first copy gives the target the source's schema and files,
 * then PostgreSQL logical replication keeps the target's database equal
 * to the source's (the nodes' part: src/node/replication.c, source, and
 * subscription.c, target); the cutover waits until the target has
 * received the source's last write instead of copying the database. */
#include "migrate-repl.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "jsonx.h"
#include "log.h"
#include "migrate-node.h"
#include "migrate-steps.h"
#include "nodeclient.h"
#include "pgtool.h"
#include "store.h"
#include "testhook.h"
#include "tls.h"
#include "util.h"
#include "xmalloc.h"

/* How long the cutover waits for the target to receive the source's last
 * write before it gives up (the source stays stopped: `rollback` serves
 * it again, `resume` waits again). */
#define REPL_CATCHUP_SECONDS	120
/* How long the first copy of every table may take. */
#define REPL_COPY_SECONDS	(6 * 3600)
/* A table's copy that failed this many times (PostgreSQL tries it again
 * every few seconds, for ever) fails the step. */
#define REPL_SYNC_ERRORS	5

static int
fail(char **cause, const char *fmt, ...)
{
	va_list ap;

	free(*cause);
	va_start(ap, fmt);
	if (vasprintf(cause, fmt, ap) == -1)
		*cause = NULL;
	va_end(ap);
	return -1;
}

int
migrate_repl_on(json_t *migration)
{
	const char *m = jsonx_str(migration, "method");

	return m != NULL && strcmp(m, "replicate") == 0;
}

/* An LSN ("16/B374D848") as a number; 0 when it is not one. */
static uint64_t
lsn_parse(const char *s)
{
	unsigned hi, lo;

	if (s == NULL || sscanf(s, "%X/%X", &hi, &lo) != 2)
		return 0;
	return (uint64_t)hi << 32 | lo;
}

/* The address the source's PostgreSQL sees the target's connections come
 * from: the host of the target node's agent URL (127.0.0.1 for any
 * loopback address); NULL with *cause when that is a name. */
static char *
target_address(struct migrate_ctx *c, char **cause)
{
	char *url = store_text(c->db, "SELECT agent_url FROM nodes WHERE"
	    " id = ?", "i", c->target_node), *host = NULL, *addr = NULL;
	unsigned char buf[16];
	CURLU *u = curl_url();

	if (url == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK
	    || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		fail(cause, "node '%s' has no agent URL", c->target_name);
		goto out;
	}
	if (host[0] == '[') {		/* an IPv6 literal */
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	if (inet_pton(AF_INET, host, buf) == 1)
		addr = xstrdup(buf[0] == 127 ? "127.0.0.1" : host);
	else if (inet_pton(AF_INET6, host, buf) == 1)
		addr = xstrdup(strcmp(host, "::1") == 0 ? "127.0.0.1" : host);
	else
		fail(cause, "replication needs the address of node '%s', and "
		    "its agent URL names the host '%s'", c->target_name, host);
out:
	curl_free(host);
	curl_url_cleanup(u);
	free(url);
	return addr;
}

/* A request's node calls (the plan, the cutover's schema check, a
 * resync's check) answer within this many seconds, a node down or not:
 * a step's wait 300. */
#define REQUEST_CALL_SECONDS	15

static int
call_seconds(const struct migrate_ctx *c)
{
	return c->in_request ? REQUEST_CALL_SECONDS : 300;
}

/* POST …/environments/{env}/what, or GET or DELETE it with
 * ?migration=KEY, on node: the status, *out the answer. */
static int
repl_call(struct migrate_ctx *c, long long node, const char *method,
    long long env, const char *what, json_t *body, json_t **out,
    char **cause)
{
	const char *key = jsonx_str(c->row, "uuid");
	char *path = strcmp(method, "POST") == 0 ? xasprintf(
	    "/agent/v1/environments/%lld/%s", env, what) : xasprintf(
	    "/agent/v1/environments/%lld/%s?migration=%s", env, what, key);
	int st;

	*out = NULL;
	st = migrate_node_call(c->db, node, method, path, body, out, cause,
	    call_seconds(c));
	free(path);
	return st;
}

/* The certificate a source on another host answered, which the target
 * verifies its PostgreSQL with: its key must be the one this portal pins
 * for the source node (the agent's, pg.c), so what the target trusts is
 * what the portal trusts. 0, or -1 with *cause. */
static int
repl_cert_check(struct migrate_ctx *c, json_t *source, char **cause)
{
	const char *pem = jsonx_str(source, "ssl_root_cert");
	char *pinned, pin[TLS_PIN_LEN];
	int rc = -1;

	if (pem == NULL)
		return 0;
	pinned = store_text(c->db, "SELECT tls_pin FROM nodes WHERE id = ?",
	    "i", c->source_node);
	if (tls_pin_pem(pem, pin, sizeof pin) == -1)
		fail(cause, "node '%s' answered no readable certificate for its "
		    "PostgreSQL", c->source_name);
	else if (pinned == NULL || strcmp(pin, pinned) != 0)
		fail(cause, "node '%s' answered a certificate for its "
		    "PostgreSQL whose key is not the one this portal pins for "
		    "it (%s): replication to another host is refused",
		    c->source_name, pinned ? pinned : "no pin: plain HTTP");
	else
		rc = 0;
	free(pinned);
	return rc;
}

/* The source's side of the replication of environment s, made (or found:
 * the same answer); *source its answer, the connection the target's
 * subscription takes. */
static int
repl_make(struct migrate_ctx *c, long long s, long long t,
    json_t **source, char **cause)
{
	char *addr = target_address(c, cause), *why = NULL;
	json_t *body = NULL;
	int st, rc = -1;

	*source = NULL;
	if (addr == NULL)
		return -1;
	body = json_pack("{s:s,s:s}", "migration", jsonx_str(c->row, "uuid"),
	    "target_address", addr);
	st = repl_call(c, c->source_node, "POST", s, "replication", body,
	    source, &why);
	if (st != 200 && st != 201) {
		fail(cause, "node '%s' cannot replicate environment '%s': %s",
		    c->source_name, c->env, why ? why : "?");
		goto out;
	}
	if (repl_cert_check(c, *source, cause) == -1) {
		json_decref(*source);
		*source = NULL;
		goto out;
	}
	rc = 0;
out:
	json_decref(body);
	free(addr);
	free(why);
	return rc;
}

/* The target's subscription: its state (copying, streaming, …) and
 * tables; NULL when it has none (*missing set) or cannot say. */
static json_t *
subscription_get(struct migrate_ctx *c, long long t, int *missing,
    char **cause)
{
	json_t *out = NULL;
	int st = repl_call(c, c->target_node, "GET", t, "subscription", NULL,
	    &out, cause);

	/* 409: the environment has no database yet (never started), so no
	 * subscription either */
	*missing = st == 404 || st == 409;
	if (st == 200)
		return out;
	json_decref(out);
	return NULL;
}

/* Append an item to a list said in words ("a, b, c"; *list NULL when
 * empty). */
static void
list_add(char **list, const char *fmt, ...)
{
	va_list ap;
	char *item, *n;

	va_start(ap, fmt);
	if (vasprintf(&item, fmt, ap) == -1)
		item = NULL;
	va_end(ap);
	n = xasprintf("%s%s%s", *list ? *list : "", *list ? ", " : "",
	    item ? item : "?");
	free(item);
	free(*list);
	*list = n;
}

/* Wait until every table's first copy is done and the target follows
 * the source; progress in tables. */
static int
wait_streaming(struct migrate_ctx *c, long long t, char **cause)
{
	long long t0 = migrate_node_now_ms(), errors0 = -1;

	for (;;) {
		int missing;
		char *why = NULL;
		json_t *sub = subscription_get(c, t, &missing, &why), *tb, *v;
		const char *state = jsonx_str(sub, "state");
		char *copying = NULL;
		long long ready = 0, total;
		size_t i;

		if (sub == NULL) {
			if (!missing)
				c->unreachable = 1;
			fail(cause, "node '%s': %s", c->target_name, missing ?
			    "the subscription is gone" : why ? why : "?");
			free(why);
			return -1;
		}
		free(why);
		if (state && strcmp(state, "streaming") == 0) {
			json_decref(sub);
			return 0;
		}
		if (state && strcmp(state, "disabled") == 0) {
			json_decref(sub);
			return fail(cause, "node '%s': the subscription of "
			    "'%s' is disabled", c->target_name, c->env);
		}
		tb = json_object_get(sub, "tables");
		total = (long long)json_array_size(tb);
		json_array_foreach(tb, i, v)
			if (strcmp(jsonx_str(v, "state") ? jsonx_str(v,
			    "state") : "", "ready") == 0)
				ready++;
			else
				list_add(&copying, "%s", jsonx_str(v, "table"));
		if (errors0 == -1)
			errors0 = jsonx_int(sub, "sync_errors", 0);
		if (jsonx_int(sub, "sync_errors", 0) - errors0 >=
		    REPL_SYNC_ERRORS) {
			json_decref(sub);
			fail(cause, "node '%s': the copy of %s of '%s' failed %d "
			    "times (the node's PostgreSQL log says why)",
			    c->target_name, copying ? copying : "a table",
			    c->env, REPL_SYNC_ERRORS);
			free(copying);
			return -1;
		}
		free(copying);
		migrate_progress(c, json_pack("{s:s,s:I,s:I}", "message",
		    "replicating: the first copy of each table", "tables",
		    (json_int_t)ready, "tables_total", (json_int_t)total));
		json_decref(sub);
		if (migrate_node_now_ms() - t0 > REPL_COPY_SECONDS * 1000LL)
			return fail(cause, "the first copy of '%s' did not end "
			    "within %d hours", c->env, REPL_COPY_SECONDS / 3600);
		usleep(250 * 1000);
	}
}

/* The source's slot as GET …/replication reports it, or NULL (*status
 * the node's answer, 404 when it has no such replication). */
static json_t *
slot_get(struct migrate_ctx *c, long long s, int *status, char **cause)
{
	json_t *out = NULL;

	if ((*status = repl_call(c, c->source_node, "GET", s, "replication",
	    NULL, &out, cause)) == 200)
		return out;
	json_decref(out);
	return NULL;
}

/* GET …/replication/schema of environment env on node, answered within
 * seconds: its tables, their columns and keys; NULL with *cause. */
static json_t *
schema_read(sqlite3 *db, long long node, const char *node_name,
    long long env, const char *env_name, int seconds, char **cause)
{
	char *path = xasprintf("/agent/v1/environments/%lld/replication/"
	    "schema", env), *why = NULL;
	json_t *out = NULL;

	if (migrate_node_call(db, node, "GET", path, NULL, &out, &why,
	    seconds) != 200) {
		fail(cause, "node '%s': cannot read the schema of '%s': %s",
		    node_name, env_name, why ? why : "?");
		json_decref(out);
		out = NULL;
	}
	free(path);
	free(why);
	return out;
}

/* An environment's tables → their columns; NULL with *cause (and
 * c->unreachable: the node did not answer). refs, when given, gains
 * table → [tables whose foreign keys reference it]. */
static json_t *
schema_get(struct migrate_ctx *c, long long node, const char *node_name,
    long long env, json_t *refs, char **cause)
{
	json_t *out = schema_read(c->db, node, node_name, env, c->env,
	    call_seconds(c), cause);
	json_t *idx, *v, *r;
	size_t i, j;

	if (out == NULL) {
		c->unreachable = 1;
		return NULL;
	}
	idx = json_object();
	json_array_foreach(json_object_get(out, "tables"), i, v) {
		const char *name = jsonx_str(v, "table");

		json_object_set(idx, name, json_object_get(v, "columns"));
		if (refs == NULL)
			continue;
		json_array_foreach(json_object_get(v, "referenced_by"), j, r) {
			json_t *by = json_object_get(refs, name);

			if (by == NULL)
				json_object_set_new(refs, name, by =
				    json_object());
			if (json_is_string(r))
				json_object_set_new(by, json_string_value(r),
				    json_true());
		}
	}
	json_decref(out);
	return idx;
}

/* names (an object of table names) gains every table that references
 * one of them by a foreign key, and those referencing these, and so on:
 * what a resync of names must take along (refs: schema_get's). */
static void
referencing_closure(json_t *names, json_t *refs)
{
	size_t before;

	do {
		json_t *more = json_object(), *by, *v, *yes;
		const char *k, *r;

		before = json_object_size(names);
		json_object_foreach(names, k, v) {
			by = json_object_get(refs, k);
			json_object_foreach(by, r, yes)
				json_object_set(more, r, yes);
		}
		json_object_update(names, more);
		json_decref(more);
	} while (json_object_size(names) > before);
}

/* How replication carries a table of a schema answer. */
static const char *
table_method(json_t *table)
{
	const char *key = jsonx_str(table, "key");

	if (jsonx_bool(table, "unlogged", 0))
		return "not carried: an unlogged table is not replicated "
		    "(the dump copies it)";
	if (json_array_size(json_object_get(table, "not_valid")))
		return "not carried as it is: a CHECK added NOT VALID, which "
		    "the replica's first copy would hold every row to (the "
		    "dump adds it after the rows, as the source has it)";
	if (key && strcmp(key, "primary key") == 0)
		return "replicated (primary key)";
	if (key && strcmp(key, "index") == 0)
		return "replicated (replica identity index)";
	return "replicated with replica identity full (no primary key: "
	    "each update and delete is matched on the whole row)";
}

/* What replication cannot carry in a schema answer, in words; NULL when
 * there is nothing. */
static char *
uncarried(json_t *schema)
{
	json_t *v, *c;
	char *list = NULL;
	size_t i, j;

	json_array_foreach(json_object_get(schema, "tables"), i, v) {
		if (jsonx_bool(v, "unlogged", 0))
			list_add(&list, "table %s is unlogged", jsonx_str(v,
			    "table"));
		json_array_foreach(json_object_get(v, "not_valid"), j, c)
			list_add(&list, "table %s has CHECK %s added NOT VALID "
			    "(a replica's first copy would hold the older rows "
			    "to it, VALIDATE CONSTRAINT on the source lets it "
			    "replicate)", jsonx_str(v, "table"),
			    json_string_value(c));
	}
	json_array_foreach(json_object_get(schema, "not_valid_domains"), i, c)
		list_add(&list, "domain constraint %s was added NOT VALID",
		    json_string_value(c));
	if (jsonx_int(schema, "large_objects", 0) > 0)
		list_add(&list, "%lld large objects", jsonx_int(schema,
		    "large_objects", 0));
	return list;
}

json_t *
migrate_repl_plan(sqlite3 *db, long long source_node, const char *env)
{
	long long s = migrate_node_env_id(db, source_node, env);
	char *node = store_text(db, "SELECT name FROM nodes WHERE id = ?", "i",
	    source_node), *cause = NULL, *not;
	json_t *schema, *out, *v;
	size_t i;

	if (s == 0 || migrate_node_env_empty(db, s)) {
		free(node);
		return NULL;
	}
	schema = schema_read(db, source_node, node, s, env,
	    REQUEST_CALL_SECONDS, &cause);
	free(node);
	if (schema == NULL) {
		out = json_pack("{s:s?}", "error", cause);
		free(cause);
		return out;
	}
	out = json_pack("{s:[]}", "tables");
	json_array_foreach(json_object_get(schema, "tables"), i, v)
		json_array_append_new(json_object_get(out, "tables"), json_pack(
		    "{s:s,s:s}", "table", jsonx_str(v, "table"), "method",
		    table_method(v)));
	if ((not = uncarried(schema)) != NULL) {
		json_object_set_new(out, "uncarried", json_string(not));
		json_object_set_new(out, "refused", json_sprintf("cannot "
		    "replicate: %s (migrate with --dump: the dump copies "
		    "them)", not));
		free(not);
	}
	json_decref(schema);
	return out;
}

/* The files that changed (the delta), and with schema the database's
 * schema too, pulled by the target. */
static int
pull(struct migrate_ctx *c, long long s, long long t, int schema,
    json_t **task, char **cause)
{
	char *dump = NULL, *files = NULL, *manifest = NULL, *key;
	json_t *body;
	int rc;

	*task = NULL;
	if (migrate_node_data_urls(c, s, schema ? "dump/schema" : NULL, &dump,
	    &files, &manifest, cause) == -1)
		return -1;
	key = xasprintf("migration-%lld-step-%lld", c->id, c->step_id);
	body = json_pack("{s:s,s:s,s:s}", "key", key, "files_url", files,
	    "manifest_url", manifest);
	if (dump)
		json_object_set_new(body, "dump_url", json_string(dump));
	rc = migrate_node_import(c, t, body, 0, -1, task, cause);
	json_decref(body);
	free(key);
	free(dump);
	free(files);
	free(manifest);
	return rc;
}

/* An environment's tables by their canonical names (schema.name, as
 * pgtool_table_name() writes them) → their columns; NULL with *cause. */
static json_t *
schema_canonical(struct migrate_ctx *c, long long node, const char *name,
    long long env, char **cause)
{
	json_t *idx = schema_get(c, node, name, env, NULL, cause), *out, *col;
	char canon[PGTOOL_TABLE_MAX];
	const char *k;

	if (idx == NULL)
		return NULL;
	out = json_object();
	json_object_foreach(idx, k, col)
		if (pgtool_table_name(k, canon, sizeof canon) == 0)
			json_object_set(out, canon, col);
	json_decref(idx);
	return out;
}

/* What a resync of tables does in environment c->env (s → t): *remake
 * the tables the source has (made again from its schema, copied again),
 * *drop those the target alone has; the names found on either side are
 * set in found. A table only on the source that is not listed is
 * refused: the subscription's refresh would stop at it. 0, or -1 with
 * *cause. */
static int
resync_plan(struct migrate_ctx *c, long long s, long long t, json_t *tables,
    json_t **remake, json_t **drop, json_t *found, char **cause)
{
	json_t *a = schema_canonical(c, c->source_node, c->source_name, s,
	    cause), *b = a ? schema_canonical(c, c->target_node,
	    c->target_name, t, cause) : NULL, *v, *col;
	const char *k;
	char *missing = NULL;
	size_t i;

	*remake = *drop = NULL;
	if (b == NULL) {
		json_decref(a);
		return -1;
	}
	*remake = json_array();
	*drop = json_array();
	json_array_foreach(tables, i, v) {
		const char *n = json_string_value(v);

		if (json_object_get(a, n))
			json_array_append(*remake, v);
		else if (json_object_get(b, n))
			json_array_append(*drop, v);
		else
			continue;
		json_object_set_new(found, n, json_true());
	}
	json_object_foreach(a, k, col) {
		int listed = 0;

		json_array_foreach(tables, i, v)
			listed |= strcmp(json_string_value(v), k) == 0;
		if (!listed && json_object_get(b, k) == NULL)
			list_add(&missing, "%s", k);
	}
	json_decref(a);
	json_decref(b);
	if (missing) {
		fail(cause, "table %s of '%s' is only on the source: resync it "
		    "too (--resync %s)", missing, c->env, missing);
		free(missing);
		json_decref(*remake);
		json_decref(*drop);
		*remake = *drop = NULL;
		return -1;
	}
	return 0;
}

/* POST …/subscription/resync on the target for c->env: the tables made
 * again from the source's schema (its signed URL) and copied again, or
 * (check) only what would refuse it; *status the node's answer. */
static int
resync_call(struct migrate_ctx *c, long long s, long long t, json_t *remake,
    json_t *drop, int check, json_t **out, char **cause)
{
	char *dump = NULL, *files = NULL, *manifest = NULL, *list = NULL;
	char *why = NULL, *path;
	json_t *body, *v;
	size_t i;
	int st;

	*out = NULL;
	body = json_pack("{s:s,s:O,s:O,s:b}", "migration", jsonx_str(c->row,
	    "uuid"), "tables", remake, "drop", drop, "check", check);
	if (!check && json_array_size(remake)) {
		json_array_foreach(remake, i, v) {
			path = xasprintf("%s%s%s", list ? list : "", list ?
			    "," : "", json_string_value(v));
			free(list);
			list = path;
		}
		path = xasprintf("dump/schema/%s", list);
		st = migrate_node_data_urls(c, s, path, &dump, &files,
		    &manifest, cause);
		free(path);
		free(list);
		free(files);
		free(manifest);
		if (st == -1) {
			json_decref(body);
			return -1;
		}
		json_object_set_new(body, "dump_url", json_string(dump));
		free(dump);
	}
	st = repl_call(c, c->target_node, "POST", t, "subscription/resync",
	    body, out, &why);
	json_decref(body);
	if (st == 200) {
		free(why);
		return 0;
	}
	if (st < 0)
		c->unreachable = 1;
	fail(cause, "node '%s' cannot copy the tables of '%s' again: %s",
	    c->target_name, c->env, why ? why : "?");
	free(why);
	json_decref(*out);
	*out = NULL;
	return -1;
}

int
migrate_repl_resync_check(sqlite3 *db, long long id, json_t *tables,
    char **cause)
{
	struct migrate_ctx c;
	json_t *v, *remake, *drop, *out, *found = json_object();
	int rc = 0;
	size_t i;

	if (migrate_ctx_load(db, id, &c) == -1) {
		json_decref(found);
		return fail(cause, "no migration %lld", id);
	}
	c.in_request = 1;
	json_array_foreach(json_object_get(c.row, "environments"), i, v) {
		long long s, t;

		c.env = json_string_value(v);
		s = migrate_node_env_id(db, c.source_node, c.env);
		t = migrate_node_env_id(db, c.target_node, c.env);
		if (s == 0 || migrate_node_env_empty(db, s))
			continue;
		out = NULL;
		if ((rc = resync_plan(&c, s, t, tables, &remake, &drop, found,
		    cause)) == 0) {
			if (json_array_size(remake) + json_array_size(drop))
				rc = resync_call(&c, s, t, remake, drop, 1,
				    &out, cause);
			json_decref(out);
		}
		json_decref(remake);
		json_decref(drop);
		if (rc == -1)
			break;
	}
	json_array_foreach(tables, i, v)
		if (rc == 0 && json_object_get(found, json_string_value(v)) ==
		    NULL)
			rc = fail(cause, "no environment has table %s on either "
			    "node", json_string_value(v));
	json_decref(found);
	json_decref(c.row);
	return rc;
}

/* A rehearse asked to copy tables again (c->input's resync): each
 * environment's made again on the target and copied through the
 * subscription; *done what was made and dropped. */
static int
resync(struct migrate_ctx *c, long long s, long long t, json_t **done,
    char **cause)
{
	json_t *tables = json_object_get(c->input, "resync"), *remake, *drop;
	json_t *out = NULL, *found = json_object();
	int rc = 0;

	*done = NULL;
	if (json_array_size(tables) == 0)
		return 0;
	migrate_progress(c, json_pack("{s:s}", "message",
	    "making the tables again on the target"));
	rc = resync_plan(c, s, t, tables, &remake, &drop, found, cause);
	json_decref(found);
	if (rc == -1)
		return -1;
	/* the source's side made again (the same answer): its role may read
	 * the tables made since, and those without a key replicate whole
	 * rows */
	if (json_array_size(remake) && (rc = repl_make(c, s, t, &out,
	    cause)) == 0) {
		json_decref(out);
		out = NULL;
	}
	if (rc == 0 && json_array_size(remake) + json_array_size(drop))
		rc = resync_call(c, s, t, remake, drop, 0, &out, cause);
	if (rc == 0)
		*done = json_pack("{s:O,s:O}", "resynced", remake, "dropped",
		    drop);
	json_decref(out);
	json_decref(remake);
	json_decref(drop);
	return rc;
}

int
migrate_repl_copy(struct migrate_ctx *c, long long s, long long t,
    json_t **result, char **cause)
{
	json_t *src = NULL, *task = NULL, *source = NULL, *sub = NULL;
	json_t *slot = NULL, *ack = NULL, *resynced = NULL;
	char *path = NULL, *why = NULL;
	long long t0 = migrate_node_now_ms();
	int st, missing, first, rc = -1;

	if (migrate_node_env_empty(c->db, s)) {
		*result = json_pack("{s:s}", "skipped", "nothing was ever "
		    "deployed to this environment on the source");
		return 0;
	}
	migrate_progress(c, json_pack("{s:s}", "message",
	    "checksums of the source"));
	path = xasprintf("/agent/v1/environments/%lld/checksums", s);
	st = migrate_node_call(c->db, c->source_node, "GET", path, NULL, &src,
	    &why, 3600);
	if (st != 200) {
		fail(cause, "node '%s': cannot compute checksums: %s",
		    c->source_name, why ? why : "?");
		goto out;
	}
	/* the target's app does not run on a replica: its writes would
	 * collide with the source's */
	if (!migrate_node_env_stopped(c->db, t) && migrate_node_env_action(
	    c->db, c->target_node, t, "stop", cause) == -1)
		goto out;
	free(why);
	why = NULL;
	sub = subscription_get(c, t, &missing, &why);
	if (sub == NULL && !missing) {
		c->unreachable = 1;
		fail(cause, "node '%s': %s", c->target_name, why ? why : "?");
		goto out;
	}
	first = sub == NULL;
	if (first) {
		/* refused before anything is made: what replication would
		 * leave behind */
		json_t *schema = schema_read(c->db, c->source_node,
		    c->source_name, s, c->env, call_seconds(c), cause);
		char *not = schema ? uncarried(schema) : NULL;

		json_decref(schema);
		if (schema == NULL)
			goto out;
		if (not) {
			fail(cause, "cannot replicate '%s': %s; migrate "
			    "with --dump (the dump copies them)",
			    c->env, not);
			free(not);
			goto out;
		}
		if (repl_make(c, s, t, &source, cause) == -1)
			goto out;
	}
	/* the first copy: the schema (the subscription copies the rows);
	 * later ones: the files that changed */
	if (pull(c, s, t, first, &task, cause) == -1)
		goto out;
	if (!first && resync(c, s, t, &resynced, cause) == -1)
		goto out;
	if (first) {
		char *point = xasprintf("repl-subscribing:%s", c->env);

		/* the schema is on the target, nothing subscribes yet */
		testhook_pause(point);
		free(point);
		free(why);
		why = NULL;
		st = repl_call(c, c->target_node, "POST", t, "subscription",
		    source, &ack, &why);
		if (st != 200 && st != 201) {
			fail(cause, "node '%s' cannot follow '%s': %s",
			    c->target_name, c->env, why ? why : "?");
			goto out;
		}
	}
	testhook_pause("repl-copying");
	if (wait_streaming(c, t, cause) == -1)
		goto out;
	free(why);
	why = NULL;
	slot = slot_get(c, s, &st, &why);
	*result = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:f}", "method",
	    "replicate", "replication", first ? "started" : "following",
	    "files_copied", (json_int_t)jsonx_int(task, "files_total", 0),
	    "files_unchanged", (json_int_t)jsonx_int(task, "files_unchanged",
	    0), "files_deleted", (json_int_t)jsonx_int(task, "files_deleted",
	    0), "database_bytes", (json_int_t)jsonx_int(src, "database_bytes",
	    0), "seconds", (migrate_node_now_ms() - t0) / 1000.0);
	if (slot) {
		json_object_set(*result, "lag_bytes", json_object_get(slot,
		    "lag_bytes"));
		json_object_set(*result, "lag_seconds", json_object_get(slot,
		    "lag_seconds"));
		json_object_set(*result, "retained_wal_bytes",
		    json_object_get(slot, "retained_wal_bytes"));
	}
	if (source && json_array_size(json_object_get(source,
	    "replica_identity_full")))
		json_object_set(*result, "replica_identity_full",
		    json_object_get(source, "replica_identity_full"));
	if (resynced)
		json_object_update(*result, resynced);
	json_object_set(*result, "source_tables", json_object_get(src,
	    "tables"));
	json_object_set(*result, "source_files", json_object_get(src,
	    "files"));
	rc = 0;
out:
	json_decref(src);
	json_decref(task);
	json_decref(source);
	json_decref(sub);
	json_decref(slot);
	json_decref(ack);
	json_decref(resynced);
	free(path);
	free(why);
	return rc;
}

/* Both sides of the replication of one environment dropped: the target's
 * subscription, then the source's slot, publication, role and rule. */
int
migrate_repl_drop(struct migrate_ctx *c, long long s, long long t,
    char **cause)
{
	json_t *out = NULL;
	char *why = NULL;
	int st;

	if (t) {
		st = repl_call(c, c->target_node, "DELETE", t, "subscription",
		    NULL, &out, &why);
		json_decref(out);
		if (st != 200 && st != 404) {
			fail(cause, "node '%s' cannot drop the subscription of "
			    "'%s': %s", c->target_name, c->env, why ? why : "?");
			free(why);
			return -1;
		}
	}
	free(why);
	why = NULL;
	st = repl_call(c, c->source_node, "DELETE", s, "replication", NULL,
	    &out, &why);
	json_decref(out);
	if (st != 200 && st != 404) {
		fail(cause, "node '%s' cannot drop the replication of '%s': %s",
		    c->source_name, c->env, why ? why : "?");
		free(why);
		return -1;
	}
	free(why);
	return 0;
}

/* Wait until the target confirmed the source's WAL up to end (the source
 * is stopped: nothing of its app comes after). first: the slot as just
 * read, taken for the first pass (a node's answer less in the downtime). */
static int
wait_caught_up(struct migrate_ctx *c, long long s, uint64_t end,
    json_t *first, char **cause)
{
	long long t0 = migrate_node_now_ms();

	for (;;) {
		char *why = NULL;
		int st;
		json_t *slot = first ? json_incref(first) : slot_get(c, s, &st,
		    &why);
		uint64_t at;

		first = NULL;
		if (slot == NULL) {
			c->unreachable = 1;
			fail(cause, "node '%s': cannot read the replication "
			    "slot of '%s': %s", c->source_name, c->env, why ?
			    why : "?");
			free(why);
			return -1;
		}
		at = lsn_parse(jsonx_str(slot, "confirmed_flush_lsn"));
		migrate_progress(c, json_pack("{s:s,s:I}", "message",
		    "waiting for the target to receive the source's last "
		    "writes", "lag_bytes", (json_int_t)(at >= end ? 0 :
		    end - at)));
		json_decref(slot);
		if (at >= end)
			return 0;
		if (migrate_node_now_ms() - t0 > REPL_CATCHUP_SECONDS * 1000LL)
			return fail(cause, "the target did not receive the "
			    "source's last writes of '%s' within %d s (%" PRIu64
			    " bytes behind): the source stays stopped; "
			    "'nubo migrate resume' waits again, 'nubo migrate "
			    "rollback' serves the app from the source", c->env,
			    REPL_CATCHUP_SECONDS, end - at);
		usleep(100 * 1000);
	}
}

/* The source's slot is gone or going: an earlier attempt of this step
 * dropped the replication — its last act, after the sequences and the
 * files — and was stopped before the journal said so. The data is then
 * complete if the target's subscription is gone too (it is dropped
 * first); what is left of the source's side is dropped. */
static int
dropped_earlier(struct migrate_ctx *c, long long s, long long t,
    json_t **result, char **cause)
{
	char *why = NULL;
	int missing;
	json_t *sub = subscription_get(c, t, &missing, &why);

	json_decref(sub);
	if (sub || !missing) {
		if (sub == NULL)
			c->unreachable = 1;
		fail(cause, "the replication slot of '%s' on node '%s' is "
		    "gone while node '%s' %s: the target cannot receive the "
		    "source's last writes; 'nubo migrate rollback' serves the "
		    "app from the source", c->env, c->source_name,
		    c->target_name, sub ? "still subscribes" : why ? why :
		    "cannot say if it still subscribes");
		free(why);
		return -1;
	}
	free(why);
	if (migrate_repl_drop(c, s, t, cause) == -1)
		return -1;
	*result = json_pack("{s:s,s:b,s:s}", "method", "replicate",
	    "dropped", 1, "note", "both sides were dropped by an earlier "
	    "attempt of this step, after its sequences and files");
	return 0;
}

int
migrate_repl_cutover(struct migrate_ctx *c, long long s, long long t,
    json_t **result, char **cause)
{
	json_t *slot = NULL, *seqs = NULL, *ack = NULL, *task = NULL;
	char *why = NULL;
	long long t0 = migrate_node_now_ms(), caught;
	uint64_t end;
	int st, rc = -1;

	if (migrate_node_env_empty(c->db, s)) {
		*result = json_pack("{s:s}", "skipped", "nothing was ever "
		    "deployed to this environment on the source");
		return 0;
	}
	/* resumed after both sides were dropped: the data is complete */
	if (c->prior && jsonx_bool(c->prior, "dropped", 0)) {
		*result = json_copy(c->prior);
		return 0;
	}
	slot = slot_get(c, s, &st, &why);
	if (slot == NULL && st != 404) {
		c->unreachable = 1;
		fail(cause, "node '%s': cannot read the replication slot of "
		    "'%s': %s", c->source_name, c->env, why ? why : "?");
		goto out;
	}
	if (slot == NULL || !jsonx_bool(slot, "slot_exists", 0) ||
	    strcmp(jsonx_str(slot, "state") ? jsonx_str(slot, "state") : "",
	    "deleting") == 0) {
		rc = dropped_earlier(c, s, t, result, cause);
		goto out;
	}
	/* where the source's WAL ends now that its app is stopped; an
	 * earlier attempt's end holds (nothing was written since) */
	end = c->prior && jsonx_str(c->prior, "end_lsn") ?
	    lsn_parse(jsonx_str(c->prior, "end_lsn")) :
	    lsn_parse(jsonx_str(slot, "current_wal_lsn"));
	*result = json_pack("{s:s,s:s}", "method", "replicate", "end_lsn",
	    jsonx_str(slot, "current_wal_lsn"));
	if (c->prior && jsonx_str(c->prior, "end_lsn"))
		json_object_set(*result, "end_lsn", json_object_get(c->prior,
		    "end_lsn"));
	if (wait_caught_up(c, s, end, slot, cause) == -1)
		goto out;
	caught = migrate_node_now_ms() - t0;
	/* sequences: logical replication does not carry them */
	free(why);
	why = NULL;
	st = repl_call(c, c->source_node, "GET", s, "replication/sequences",
	    NULL, &seqs, &why);
	if (st != 200) {
		fail(cause, "node '%s': cannot read the sequences of '%s': %s",
		    c->source_name, c->env, why ? why : "?");
		goto out;
	}
	free(why);
	why = NULL;
	st = repl_call(c, c->target_node, "POST", t, "subscription/sequences",
	    seqs, &ack, &why);
	if (st != 200) {
		fail(cause, "node '%s': cannot set the sequences of '%s': %s",
		    c->target_name, c->env, why ? why : "?");
		goto out;
	}
	if (pull(c, s, t, 0, &task, cause) == -1)
		goto out;
	testhook_pause("repl-dropping");
	if (migrate_repl_drop(c, s, t, cause) == -1)
		goto out;
	testhook_pause("repl-dropped");
	json_object_set_new(*result, "catchup_ms", json_integer(caught));
	json_object_set_new(*result, "sequences", json_integer((json_int_t)
	    json_array_size(json_object_get(seqs, "sequences"))));
	json_object_set_new(*result, "files_copied", json_integer(
	    jsonx_int(task, "files_total", 0)));
	json_object_set_new(*result, "files_deleted", json_integer(
	    jsonx_int(task, "files_deleted", 0)));
	json_object_set_new(*result, "dropped", json_true());
	json_object_set_new(*result, "seconds", json_real(
	    (migrate_node_now_ms() - t0) / 1000.0));
	rc = 0;
out:
	json_decref(slot);
	json_decref(seqs);
	json_decref(ack);
	json_decref(task);
	free(why);
	return rc;
}

int
migrate_repl_verify_query(struct migrate_ctx *c, long long s, char **query,
    json_t **rechecked, char **cause)
{
	json_t *before = store_row(c->db, "SELECT result_json FROM"
	    " migration_steps WHERE migration_id = ? AND name = 'verify' AND"
	    " environment = ? AND phase IN ('start','rehearse') AND state ="
	    " 'done' ORDER BY seq DESC LIMIT 1", "is", c->id, c->env);
	json_t *known = json_object_get(json_object_get(before, "result"),
	    "source_writes"), *now = NULL, *v, *list;
	char *path, *why = NULL, *enc, *js;
	size_t i;
	int rc = -1;

	*query = NULL;
	*rechecked = NULL;
	if (!json_is_object(known)) {
		json_decref(before);
		return 0;
	}
	/* the source's writes now (it is stopped: its app's are counted) */
	path = xasprintf("/agent/v1/environments/%lld/checksums?files=0"
	    "&database=writes", s);
	if (migrate_node_call(c->db, c->source_node, "GET", path, NULL, &now,
	    &why, 300) != 200) {
		fail(cause, "node '%s': cannot read the writes of '%s': %s",
		    c->source_name, c->env, why ? why : "?");
		goto out;
	}
	list = json_array();
	json_array_foreach(json_object_get(now, "tables"), i, v) {
		json_t *was = json_object_get(known, jsonx_str(v, "name"));

		if (strcmp(jsonx_str(v, "kind") ? jsonx_str(v, "kind") : "",
		    "table") != 0)
			continue;
		if (!json_is_integer(was) || json_integer_value(was) !=
		    jsonx_int(v, "writes", -1))
			json_array_append(list, json_object_get(v, "name"));
	}
	js = json_dumps(list, JSON_COMPACT);
	enc = curl_easy_escape(NULL, js, 0);
	*query = xasprintf("?database=counts&full=%s", enc);
	*rechecked = list;
	curl_free(enc);
	free(js);
	rc = 0;
out:
	json_decref(before);
	json_decref(now);
	free(path);
	free(why);
	return rc;
}

int
migrate_repl_schema_check(struct migrate_ctx *c, char **cause)
{
	json_t *v, *names = json_object(), *refs = json_object();
	char *list = NULL, *remedy = NULL, canon[PGTOOL_TABLE_MAX];
	const char *k;
	size_t i;
	int rc = 0, quote = 0;

	json_array_foreach(json_object_get(c->row, "environments"), i, v) {
		long long s, t;
		json_t *a, *b, *col;

		c->env = json_string_value(v);
		s = migrate_node_env_id(c->db, c->source_node, c->env);
		t = migrate_node_env_id(c->db, c->target_node, c->env);
		if (s == 0 || migrate_node_env_empty(c->db, s))
			continue;
		a = schema_get(c, c->source_node, c->source_name, s, refs,
		    cause);
		b = a ? schema_get(c, c->target_node, c->target_name, t,
		    refs, cause) : NULL;
		if (b == NULL) {
			json_decref(a);
			json_decref(names);
			json_decref(refs);
			c->env = NULL;
			free(list);
			return -1;
		}
		json_object_foreach(a, k, col) {
			json_t *other = json_object_get(b, k);

			if (other == NULL || !json_equal(other, col)) {
				list_add(&list, "%s.%s (%s)", c->env, k, other ?
				    "its columns differ" : "only on the source");
				json_object_set_new(names, k, json_true());
			}
		}
		json_object_foreach(b, k, col)
			if (json_object_get(a, k) == NULL) {
				list_add(&list, "%s.%s (only on the target)",
				    c->env, k);
				json_object_set_new(names, k, json_true());
			}
		json_decref(a);
		json_decref(b);
	}
	c->env = NULL;
	/* the remedy as the CLI takes it: schema.name,… (a '$' escaped
	 * for a shell, in double quotes), with the tables that reference
	 * those by foreign keys (a resync refuses to leave them behind) */
	referencing_closure(names, refs);
	json_object_foreach(names, k, v) {
		char *n, *d;

		if (pgtool_table_name(k, canon, sizeof canon) == -1)
			continue;
		n = xasprintf("%s%s", remedy ? remedy : "", remedy ? "," : "");
		for (d = canon; *d; d++) {
			char *m = xasprintf("%s%s%c", n, *d == '$' ? "\\" : "",
			    *d);

			free(n);
			n = m;
		}
		quote |= strchr(canon, '$') != NULL;
		free(remedy);
		remedy = n;
	}
	if (list) {
		rc = fail(cause, "the schema changed on the source since the "
		    "replication started, which logical replication does not "
		    "carry: %s; nothing was stopped: 'nubo migrate rehearse %s "
		    "--resync %s%s%s' makes those tables again on the target "
		    "and copies their rows again (then cut over), or 'nubo "
		    "migrate %s' ends this migration (the source keeps "
		    "serving)", list, c->app_subdomain, quote ? "\"" : "",
		    remedy ? remedy : "TABLE", quote ? "\"" : "",
		    strcmp(c->phase, "cutover") == 0 ? "rollback" : "abort");
		free(list);
	}
	free(remedy);
	json_decref(names);
	json_decref(refs);
	return rc;
}


json_t *
migrate_repl_status(sqlite3 *db, long long id)
{
	json_t *m = store_row(db, "SELECT uuid, source_node_id, state,"
	    " environments_json FROM migrations WHERE id = ?", "i", id);
	int cutting = strcmp(jsonx_str(m, "state") ? jsonx_str(m, "state") :
	    "", "cutting-over") == 0;
	json_t *out = json_array(), *v;
	size_t i;

	json_array_foreach(json_object_get(m, "environments"), i, v) {
		const char *name = json_string_value(v);
		long long node = jsonx_int(m, "source_node_id", 0);
		long long s = migrate_node_env_id(db, node, name ? name : "");
		char *path, *why = NULL;
		json_t *slot = NULL, *e;
		int st;

		if (s == 0 || migrate_node_env_empty(db, s))
			continue;	/* nothing to replicate */
		path = xasprintf("/agent/v1/environments/%lld/replication"
		    "?migration=%s", s, jsonx_str(m, "uuid"));
		e = json_pack("{s:s?}", "environment", name);
		/* a status answers soon, even with a node down */
		st = node_call_timeout(db, node, "GET", path, NULL, &slot,
		    &why, 5);

		if (st == 200) {
			static const char *keys[] = { "slot", "active",
				"lag_bytes", "lag_seconds", "retained_wal_bytes",
				"wal_status", "change_slot", NULL };
			int k;

			for (k = 0; keys[k]; k++)
				json_object_set(e, keys[k], json_object_get(slot,
				    keys[k]));
		} else if (st == 404 && cutting) {
			/* the cutover dropped it already */
			json_decref(e);
			e = NULL;
		} else {
			json_object_set_new(e, "error", json_string(why ? why :
			    "no replication"));
		}
		if (e)
			json_array_append_new(out, e);
		json_decref(slot);
		free(path);
		free(why);
	}
	json_decref(m);
	return out;
}
