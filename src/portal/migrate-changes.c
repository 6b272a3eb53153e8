/* The cutover of a replicating migration verifies, while the app is
 * down, only the rows written since a verification made just before the
 * maintenance page (issue #14: a downtime that does not grow with the
 * database). The nodes' part is src/node/changes.c: a change slot on each
 * side's database, a snapshot held open and summed, the keys the slots
 * saw touched, and the sums of those keys' rows.
 *
 * `baseline` (a cutover step before `maintenance`, the app still
 * serving): both sides marked — the source first; the target once it has
 * applied everything the source's snapshot holds —, the keys touched
 * since asked of both, and each side's sums of every table taken without
 * those keys' rows, in its own snapshot: a table equal there is equal in
 * every row nobody touched since the slots were made. `verify` (source
 * stopped, target caught up): the keys both slots saw since are the only
 * rows of those tables compared; a row touched on neither side still
 * holds the value both sides verified equal. A table without a primary
 * key, truncated, not logged, or with too many keys is read whole, as
 * is one the baseline did not find equal. */
#include "migrate-changes.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonx.h"
#include "log.h"
#include "migrate-node.h"
#include "migrate-repl.h"
#include "migrate-steps.h"
#include "store.h"
#include "xmalloc.h"

/* How far behind the source the target may be when the baseline is
 * taken: beyond, the cutover's verify reads every table, as without. */
#define CHANGES_CATCHUP_SECONDS	60

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

/* METHOD …/environments/{env}/what?migration=KEY on node: the status,
 * *out the answer. */
static int
changes_call(struct migrate_ctx *c, long long node, const char *method,
    long long env, const char *what, json_t *body, json_t **out,
    char **cause)
{
	char *path = xasprintf("/agent/v1/environments/%lld/%s?migration=%s",
	    env, what, jsonx_str(c->row, "uuid"));
	int st;

	*out = NULL;
	st = migrate_node_call(c->db, node, method, path, body, out, cause,
	    300);
	free(path);
	return st;
}

/* One side's call that must answer 200: its answer, or NULL with *cause
 * naming the node (c->unreachable when it did not answer). */
static json_t *
side(struct migrate_ctx *c, long long node, const char *node_name,
    const char *method, long long env, const char *what, json_t *body,
    char **cause)
{
	json_t *out = NULL;
	char *why = NULL;
	int st = changes_call(c, node, method, env, what, body, &out, &why);

	if (st == 200) {
		free(why);
		return out;
	}
	if (st == -1)
		c->unreachable = 1;
	fail(cause, "node '%s': %s %s of '%s': %s", node_name, method, what,
	    c->env, why ? why : "no answer");
	free(why);
	json_decref(out);
	return NULL;
}

/* POST …/changes/sums body on both sides: 0 with *ss and *st (the
 * source's and the target's answers), or -1 with *cause. */
static int
sums_both(struct migrate_ctx *c, long long s, long long t, json_t *body,
    json_t **ss, json_t **st, char **cause)
{
	if ((*ss = side(c, c->source_node, c->source_name, "POST", s,
	    "changes/sums", body, cause)) == NULL)
		return -1;
	*st = side(c, c->target_node, c->target_name, "POST", t,
	    "changes/sums", body, cause);
	return *st == NULL ? -1 : 0;
}

/* An LSN ("16/B374D848") as a number; 0 when it is not one. */
static unsigned long long
lsn(const char *s)
{
	unsigned hi, lo;

	return s && sscanf(s, "%X/%X", &hi, &lo) == 2 ?
	    ((unsigned long long)hi << 32) | lo : 0;
}

/* Wait until the target confirmed the source's WAL up to end: 1, 0 when
 * it did not within CHANGES_CATCHUP_SECONDS, -1 with *cause. */
static int
applied(struct migrate_ctx *c, long long s, unsigned long long end,
    char **cause)
{
	long long t0 = migrate_node_now_ms();
	char *path = xasprintf("/agent/v1/environments/%lld/replication"
	    "?migration=%s", s, jsonx_str(c->row, "uuid"));
	int rc = -1;

	for (;;) {
		json_t *slot = NULL;
		char *why = NULL;

		if (migrate_node_call(c->db, c->source_node, "GET", path, NULL,
		    &slot, &why, 300) != 200) {
			c->unreachable = 1;
			fail(cause, "node '%s': cannot read the replication "
			    "slot of '%s': %s", c->source_name, c->env, why ?
			    why : "?");
			free(why);
			json_decref(slot);
			break;
		}
		free(why);
		if (lsn(jsonx_str(slot, "confirmed_flush_lsn")) >= end) {
			json_decref(slot);
			rc = 1;
			break;
		}
		json_decref(slot);
		if (migrate_node_now_ms() - t0 > CHANGES_CATCHUP_SECONDS *
		    1000LL) {
			rc = 0;
			break;
		}
		usleep(100 * 1000);
	}
	free(path);
	return rc;
}

/* The union of both sides' touched keys ({table: {keys} or {whole,
 * why}}, GET …/changes/keys): *keys {table: [key]} and *whole {table:
 * why}. */
static void
keys_union(json_t *a, json_t *b, json_t **keys, json_t **whole)
{
	json_t *sets = json_object(), *sides[2] = { a, b }, *t, *k, *set;
	const char *name;
	size_t i, j;

	*keys = json_object();
	*whole = json_object();
	for (i = 0; i < 2; i++)
		json_object_foreach(json_object_get(sides[i], "tables"), name,
		    t) {
			if (jsonx_bool(t, "whole", 0)) {
				json_object_set_new(*whole, name, json_string(
				    jsonx_str(t, "why") ? jsonx_str(t, "why") :
				    "?"));
				continue;
			}
			if ((set = json_object_get(sets, name)) == NULL) {
				set = json_object();
				json_object_set_new(sets, name, set);
			}
			json_array_foreach(json_object_get(t, "keys"), j, k) {
				char *text = json_dumps(k, JSON_COMPACT |
				    JSON_ENCODE_ANY);

				json_object_set(set, text, k);
				free(text);
			}
		}
	json_object_foreach(sets, name, set) {
		json_t *list = json_array();
		const char *text;

		if (json_object_get(*whole, name))
			continue;
		json_object_foreach(set, text, k)
			json_array_append(list, k);
		json_object_set_new(*keys, name, list);
	}
	json_decref(sets);
}

/* Table a of the source's mark (a table without a key to compare rows
 * by): 1 when neither slot saw it touched (ks, kt: both sides' keys) and
 * the target's mark (mt) sums it as the source's does. */
static int
untouched_equal(json_t *a, json_t *mt, json_t *ks, json_t *kt)
{
	const char *name = jsonx_str(a, "name");
	json_t *v;
	size_t i;

	/* not logged, partitioned: their changes are not seen by name */
	if (jsonx_str(a, "why") == NULL || strcmp(jsonx_str(a, "why"),
	    "no primary key") != 0 || json_object_get(json_object_get(ks,
	    "tables"), name) || json_object_get(json_object_get(kt, "tables"),
	    name))
		return 0;
	json_array_foreach(json_object_get(mt, "tables"), i, v)
		if (strcmp(jsonx_str(v, "name"), name) == 0)
			return jsonx_int(v, "rows", -1) == jsonx_int(a, "rows",
			    -2) && json_equal(json_object_get(v, "checksum"),
			    json_object_get(a, "checksum"));
	return 0;
}

int
migrate_changes_baseline(struct migrate_ctx *c, long long s, long long t,
    json_t **result, char **cause)
{
	json_t *ms = NULL, *mt = NULL, *ks = NULL, *kt = NULL, *ss = NULL;
	json_t *st = NULL, *keys = NULL, *whole = NULL, *body = NULL, *v;
	json_t *by_key = NULL, *names = NULL;
	long long t0 = migrate_node_now_ms(), touched = 0;
	const char *name;
	size_t i;
	int rc = -1;

	if (!migrate_repl_on(c->row)) {
		*result = json_pack("{s:s}", "skipped", "the database is "
		    "copied at the cutover and verified whole");
		return 0;
	}
	if (migrate_node_env_empty(c->db, s)) {
		*result = json_pack("{s:s}", "skipped", "nothing deployed");
		return 0;
	}
	migrate_progress(c, json_pack("{s:s}", "message", "marking both "
	    "databases and summing every table"));
	if ((ms = side(c, c->source_node, c->source_name, "POST", s,
	    "changes", NULL, cause)) == NULL)
		goto fallback;
	/* the target's snapshot holds all the source's did */
	switch (applied(c, s, lsn(jsonx_str(ms, "lsn")), cause)) {
	case -1:
		goto out;
	case 0:
		*result = json_pack("{s:b,s:s}", "baseline", 0, "why", "the "
		    "target was too far behind: the cutover's verify reads "
		    "every table");
		rc = 0;
		goto out;
	}
	if ((mt = side(c, c->target_node, c->target_name, "POST", t,
	    "changes", NULL, cause)) == NULL ||
	    (ks = side(c, c->source_node, c->source_name, "GET", s,
	    "changes/keys", NULL, cause)) == NULL ||
	    (kt = side(c, c->target_node, c->target_name, "GET", t,
	    "changes/keys", NULL, cause)) == NULL)
		goto fallback;
	keys_union(ks, kt, &keys, &whole);
	/* every table with a key, its touched keys' rows taken out */
	body = json_pack("{s:{},s:b}", "tables", "held", 1);
	names = json_array();
	by_key = json_array();
	json_array_foreach(json_object_get(ms, "tables"), i, v) {
		name = jsonx_str(v, "name");
		json_array_append_new(names, json_string(name));
		if (json_object_get(whole, name))
			continue;
		/* a table without a key that neither slot saw touched: as
		 * both snapshots hold it, and as long as it stays untouched */
		if (!json_is_array(json_object_get(v, "key"))) {
			if (untouched_equal(v, mt, ks, kt))
				json_array_append_new(by_key, json_string(name));
			else
				json_object_set_new(whole, name, json_string(
				    jsonx_str(v, "why") ? jsonx_str(v, "why") :
				    "no primary key"));
			continue;
		}
		json_object_set(json_object_get(body, "tables"), name,
		    json_object_get(keys, name) ? json_object_get(keys, name) :
		    json_array());
		touched += (long long)json_array_size(json_object_get(keys,
		    name));
	}
	if (sums_both(c, s, t, body, &ss, &st, cause) == -1)
		goto fallback;
	json_object_foreach(json_object_get(body, "tables"), name, v) {
		json_t *a = json_object_get(json_object_get(ss, "tables"), name);
		json_t *b = json_object_get(json_object_get(st, "tables"), name);

		if (a && b && jsonx_int(a, "outside_rows", -1) == jsonx_int(b,
		    "outside_rows", -2) && json_equal(json_object_get(a,
		    "outside_checksum"), json_object_get(b,
		    "outside_checksum")))
			json_array_append_new(by_key, json_string(name));
		else
			json_object_set_new(whole, name, json_string(b ?
			    "differs from the source in rows not being "
			    "written" : "not on the target"));
	}
	*result = json_pack("{s:b,s:{s:s,s:s},s:O,s:O,s:O,s:I,s:f}",
	    "baseline", 1, "slots", "source", jsonx_str(ms, "slot"), "target",
	    jsonx_str(mt, "slot"), "tables", names, "by_key", by_key, "whole",
	    whole, "touched", (json_int_t)touched, "seconds",
	    (migrate_node_now_ms() - t0) / 1000.0);
	rc = 0;
	goto out;
fallback:
	/* a node that answered but could not (a line of its slot it cannot
	 * read, …): the cutover's verify reads as without a baseline; one
	 * that did not answer is waited for */
	if (!c->unreachable) {
		log_warn("migration %lld: no baseline for '%s': %s", c->id,
		    c->env, *cause ? *cause : "?");
		*result = json_pack("{s:b,s:s}", "baseline", 0, "why", *cause ?
		    *cause : "?");
		free(*cause);
		*cause = NULL;
		rc = 0;
	}
out:
	json_decref(ms);
	json_decref(mt);
	json_decref(ks);
	json_decref(kt);
	json_decref(ss);
	json_decref(st);
	json_decref(keys);
	json_decref(whole);
	json_decref(body);
	json_decref(by_key);
	json_decref(names);
	return rc;
}

int
migrate_changes_verify(struct migrate_ctx *c, long long s, long long t,
    char **query, json_t **by_key_out, json_t **rechecked, json_t *diffs,
    char **cause)
{
	json_t *base = store_row(c->db, "SELECT result_json FROM"
	    " migration_steps WHERE migration_id = ? AND name = 'baseline'"
	    " AND environment = ? AND phase = 'cutover' AND round = ? AND"
	    " state = 'done'", "isi", c->id, c->env, c->round);
	json_t *res = json_object_get(base, "result"), *ks = NULL, *kt = NULL;
	json_t *keys = NULL, *whole = NULL, *body = NULL, *ss = NULL;
	json_t *st = NULL, *full = NULL, *by_key = NULL, *v;
	const char *name;
	char *js, *enc, *why = NULL;
	size_t i;
	int rc = -1, sk, tk;

	*query = NULL;
	*by_key_out = NULL;
	*rechecked = NULL;
	if (!jsonx_bool(res, "baseline", 0)) {
		json_decref(base);
		return 0;
	}
	/* a slot gone (an earlier attempt dropped it): everything is read */
	sk = changes_call(c, c->source_node, "GET", s, "changes/keys", NULL,
	    &ks, &why);
	if (sk == 200 || sk == 404) {
		free(why);
		why = NULL;
		tk = changes_call(c, c->target_node, "GET", t, "changes/keys",
		    NULL, &kt, &why);
	} else
		tk = 200;
	if (sk == 404 || tk == 404) {
		rc = 0;
		goto out;
	}
	if (sk != 200 || tk != 200) {
		c->unreachable = sk == -1 || tk == -1;
		fail(cause, "node '%s': cannot read the keys written since the "
		    "baseline of '%s': %s", sk != 200 ? c->source_name :
		    c->target_name, c->env, why ? why : "no answer");
		goto fallback;
	}
	keys_union(ks, kt, &keys, &whole);
	body = json_pack("{s:{},s:b}", "tables", "held", 0);
	by_key = json_object();
	json_array_foreach(json_object_get(res, "by_key"), i, v) {
		json_t *k;

		name = json_string_value(v);
		if (json_object_get(whole, name))
			continue;
		k = json_object_get(keys, name);
		json_object_set_new(by_key, name, json_integer((json_int_t)
		    json_array_size(k)));
		if (json_array_size(k) > 0)
			json_object_set(json_object_get(body, "tables"), name, k);
	}
	full = json_array();
	json_array_foreach(json_object_get(res, "tables"), i, v)
		if (json_object_get(by_key, json_string_value(v)) == NULL)
			json_array_append(full, v);
	if (json_object_size(json_object_get(body, "tables")) > 0) {
		migrate_progress(c, json_pack("{s:s}", "message", "comparing "
		    "the rows written since the baseline"));
		if (sums_both(c, s, t, body, &ss, &st, cause) == -1)
			goto fallback;
	}
	json_object_foreach(json_object_get(body, "tables"), name, v) {
		json_t *a = json_object_get(json_object_get(ss, "tables"), name);
		json_t *b = json_object_get(json_object_get(st, "tables"), name);

		if (a && b && jsonx_int(a, "rows", -1) == jsonx_int(b, "rows",
		    -2) && json_equal(json_object_get(a, "checksum"),
		    json_object_get(b, "checksum")))
			continue;
		json_array_append_new(diffs, json_sprintf("table %s: the %zu "
		    "key(s) written since the baseline hold %lld rows "
		    "(checksum %s) on the source, %lld rows (checksum %s) on "
		    "the target", name, json_array_size(v), jsonx_int(a, "rows",
		    0), jsonx_str(a, "checksum") ? jsonx_str(a, "checksum") :
		    "?", jsonx_int(b, "rows", 0), jsonx_str(b, "checksum") ?
		    jsonx_str(b, "checksum") : "?"));
	}
	js = json_dumps(full, JSON_COMPACT);
	enc = curl_easy_escape(NULL, js, 0);
	*query = xasprintf("?database=listed&full=%s", enc);
	curl_free(enc);
	free(js);
	*by_key_out = by_key;
	by_key = NULL;
	*rechecked = full;
	full = NULL;
	rc = 0;
	goto out;
fallback:
	/* as in the baseline: read as without one, unless a node did not
	 * answer */
	if (!c->unreachable) {
		log_warn("migration %lld: the verify of '%s' reads every table: "
		    "%s", c->id, c->env, *cause ? *cause : "?");
		free(*cause);
		*cause = NULL;
		rc = 0;
	}
out:
	free(why);
	json_decref(base);
	json_decref(ks);
	json_decref(kt);
	json_decref(keys);
	json_decref(whole);
	json_decref(body);
	json_decref(ss);
	json_decref(st);
	json_decref(full);
	json_decref(by_key);
	return rc;
}

int
migrate_changes_drop(struct migrate_ctx *c, long long s, long long t,
    char **cause)
{
	long long envs[2] = { s, t }, nodes[2] = { c->source_node,
	    c->target_node };
	const char *node_names[2] = { c->source_name, c->target_name };
	size_t i;

	for (i = 0; i < 2; i++) {
		json_t *out = NULL;
		char *why = NULL;
		int st;

		if (envs[i] == 0)
			continue;
		st = changes_call(c, nodes[i], "DELETE", envs[i], "changes",
		    NULL, &out, &why);
		json_decref(out);
		/* 409: the environment has no database (nothing to drop) */
		if (st != 200 && st != 404 && st != 409) {
			c->unreachable = st == -1;
			fail(cause, "node '%s' cannot drop the change slot of "
			    "'%s': %s", node_names[i], c->env, why ? why : "?");
			free(why);
			return -1;
		}
		free(why);
	}
	return 0;
}
