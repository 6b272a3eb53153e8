/* A replica's tables made again (issue #14, `nubo migrate rehearse
 * --resync TABLE`): logical replication carries no DDL, so a table whose
 * columns changed on the source after the start stops the apply worker
 * ("missing replicated column") and a table made there since is missing
 * here. POST …/subscription/resync {migration, tables, drop, dump_url}:
 *
 * - tables: made again from the source's current definition (dump_url,
 *   the source's signed GET …/dump/schema/{tables}), in one transaction
 *   (pg_restore --clean --single-transaction), as a throwaway role that
 *   owns the tables it replaces and may create in their schemas and
 *   nothing more (restore-role.h: the dump is the source node's word);
 *   dropping a table takes it out of the subscription, and REFRESH
 *   PUBLICATION (copy_data) puts it back: a table-sync worker copies its
 *   rows again while the apply worker follows the others;
 * - drop: tables dropped on the source, dropped here.
 *
 * A table that a table outside the list references by a foreign key is
 * refused with nothing changed (dropping it would take their constraint
 * along); {check: true} answers that alone. */
#include "replication.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "agent-routes.h"
#include "jsonx.h"
#include "log.h"
#include "node.h"
#include "pgtool.h"
#include "restore-role.h"
#include "util.h"
#include "xmalloc.h"

/* The list body[name] checked (at most NUBO_RESYNC_TABLES_MAX table
 * names), canonical (schema.name) into out. 0, or -1 with e (400). */
static int
resync_names(json_t *body, const char *name, json_t *out,
    struct repl_err *e)
{
	json_t *list = json_object_get(body, name), *v;
	char canon[PGTOOL_TABLE_MAX];
	size_t i;

	if (list == NULL)
		return 0;
	if (json_array_size(list) > NUBO_RESYNC_TABLES_MAX)
		return repl_fail(e, 413, "TOO_MANY_TABLES", "at most %d tables "
		    "in one resync", NUBO_RESYNC_TABLES_MAX);
	json_array_foreach(list, i, v)
		if (pgtool_table_name(json_string_value(v), canon,
		    sizeof canon) == -1)
			return repl_fail(e, 400, "BAD_TABLE", "%s[%zu] is not a "
			    "table's name ([schema.]name: a-z, 0-9, '_' and "
			    "'$', at most 63 each)", name, i);
		else
			json_array_append_new(out, json_string(canon));
	return 0;
}

/* A statement of the resync refused (cause: PostgreSQL's words, taken
 * over): -1 with e (409). */
static int
resync_failed(struct repl_err *e, char *cause)
{
	return repl_fail_cause(e, 409, "RESYNC_FAILED", cause);
}

/* pg_admin_exec() with e filled (409) when it fails. */
static int
resync_exec(PGconn *d, const char *sql, struct repl_err *e)
{
	char *cause = NULL;

	return pg_admin_exec(d, sql, &cause) == 0 ? 0 :
	    resync_failed(e, cause);
}

/* The names of set as a PostgreSQL text[] literal (checked names: no
 * quoting needed). */
static char *
resync_array(json_t *set)
{
	char *out = xstrdup("{"), *n;
	json_t *v;
	size_t i;

	json_array_foreach(set, i, v) {
		n = xasprintf("%s%s%s", out, i ? "," : "",
		    json_string_value(v));
		free(out);
		out = n;
	}
	n = xasprintf("%s}", out);
	free(out);
	return n;
}

/* A foreign key of a table outside set to a table of set: -1 with e (409
 * naming both), else 0. */
static int
resync_referenced(PGconn *d, json_t *set, struct repl_err *e)
{
	char *arr = resync_array(set);
	const char *p[1] = { arr };
	PGresult *res = repl_query(d, e, "SELECT format('%I.%I', rn.nspname,"
	    " rc.relname), format('%I.%I', tn.nspname, tc.relname), k.conname"
	    " FROM pg_constraint k JOIN pg_class rc ON rc.oid = k.confrelid"
	    " JOIN pg_namespace rn ON rn.oid = rc.relnamespace JOIN pg_class tc"
	    " ON tc.oid = k.conrelid JOIN pg_namespace tn ON tn.oid ="
	    " tc.relnamespace WHERE k.contype = 'f' AND rn.nspname || '.' ||"
	    " rc.relname = ANY ($1::text[]) AND NOT tn.nspname || '.' ||"
	    " tc.relname = ANY ($1::text[]) ORDER BY 1, 2 LIMIT 1", 1, p);
	int rc = -1;

	free(arr);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 1)
		repl_fail(e, 409, "TABLE_REFERENCED", "cannot make %s again: "
		    "table %s references it (foreign key %s), whose constraint "
		    "would go with it; resync %s too: nothing was changed",
		    PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
		    PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 1));
	else
		rc = 0;
	PQclear(res);
	return rc;
}

/* Run "fmt schema.name…" for each table of set that d's database has
 * (the name quoted): 0, or -1 with e. */
static int
resync_each(PGconn *d, json_t *set, const char *fmt, struct repl_err *e)
{
	json_t *v;
	size_t i;

	json_array_foreach(set, i, v) {
		const char *p[1] = { json_string_value(v) };
		PGresult *res = repl_query(d, e, "SELECT format('%I.%I',"
		    " n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n"
		    " ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p')"
		    " AND n.nspname || '.' || c.relname = $1", 1, p);
		char *sql;
		int rc;

		if (res == NULL)
			return -1;
		if (PQntuples(res) == 0) {
			PQclear(res);
			continue;
		}
		sql = xasprintf(fmt, PQgetvalue(res, 0, 0));
		PQclear(res);
		rc = resync_exec(d, sql, e);
		free(sql);
		if (rc == -1)
			return -1;
	}
	return 0;
}

/* The tables' schema from dump (a memfd at offset 0) loaded into d's
 * database as a throwaway role that owns the tables it replaces and may
 * create in their schemas (the dump's SQL is the source node's). */
static int
resync_load(PGconn *d, struct env *env, long long id, json_t *tables,
    int dump, struct repl_err *e)
{
	struct restore_role rr;
	char db[32], *env_url, *cause = NULL, *sql, *why;
	char *args[] = { "--clean", "--if-exists", "--single-transaction",
		"--exit-on-error", "--no-owner", "--no-privileges", NULL };
	int errfd = -1, status = 0, rc = -1;
	json_t *v;
	size_t i;
	pid_t pid;

	snprintf(db, sizeof db, "env_%lld", id);
	pthread_mutex_lock(&node->lock);
	env_url = pg_env_url(env);
	pthread_mutex_unlock(&node->lock);
	if (restore_role_begin_in(d, "resync", id, env_url, db, &rr,
	    &cause) == -1) {
		free(env_url);
		restore_role_release(&rr);
		return resync_failed(e, cause);
	}
	free(env_url);
	json_array_foreach(tables, i, v) {
		char schema[64], *q;

		snprintf(schema, sizeof schema, "%.*s", (int)strcspn(
		    json_string_value(v), "."), json_string_value(v));
		q = PQescapeIdentifier(d, schema, strlen(schema));
		sql = xasprintf("GRANT USAGE, CREATE ON SCHEMA %s TO %s; GRANT"
		    " REFERENCES ON ALL TABLES IN SCHEMA %s TO %s", q ? q :
		    "\"\"", rr.name, q ? q : "\"\"", rr.name);
		PQfreemem(q);
		if (resync_exec(d, sql, e) == -1) {
			free(sql);
			goto out;
		}
		free(sql);
	}
	sql = xasprintf("ALTER TABLE %%s OWNER TO %s", rr.name);
	if (resync_each(d, tables, sql, e) == -1) {
		free(sql);
		goto out;
	}
	free(sql);
	errfd = memfd_create("pg_restore-stderr", MFD_CLOEXEC);
	why = util_pg_tool("pg_restore");
	pid = pgtool_spawn(why, rr.url, args, dump, -1, errfd);
	free(why);
	if (pid == -1) {
		repl_fail(e, 500, "RESYNC_FAILED", "cannot run pg_restore: %s",
		    strerror(errno));
		goto out;
	}
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		why = util_fd_tool_error(errfd, status);
		repl_fail(e, 409, "RESYNC_FAILED", "cannot make the tables "
		    "again from the source's schema (nothing was changed): "
		    "pg_restore: %s", why);
		free(why);
		goto out;
	}
	rc = 0;
out:
	/* loaded or not: what the role owns is the environment's again */
	if (restore_role_end_in(d, id, rr.name, &cause) == -1) {
		log_warn("environment %lld: %s", id, cause);
		if (rc == 0)
			resync_failed(e, xstrdup(cause));
		rc = -1;
	}
	free(cause);
	restore_role_release(&rr);
	if (errfd >= 0)
		close(errfd);
	return rc;
}

/* POST /agent/v1/environments/{id}/subscription/resync {migration,
 * tables: [name], drop: [name], dump_url (with tables), check}: 200 and
 * the subscription's state (its tables copying again). */
void
agent_subscription_resync(struct areq *r)
{
	static const struct jfield fields[] = {
		{ "migration", JT_STRING, 1 }, { "tables", JT_ARRAY, 0 },
		{ "drop", JT_ARRAY, 0 }, { "dump_url", JT_STRING, 0 },
		{ "check", JT_BOOL, 0 }, { NULL } };
	struct repl_err e = { 0 };
	struct repl_names n;
	json_t *tables = json_array(), *drop = json_array(), *all, *out;
	const char *key, *url;
	char *cause = NULL, *sql;
	PGconn *d = NULL;
	long long id;
	int dump = -1, unreachable, locked = 0;

	if (abody_check(r, fields) == -1)
		goto out;
	key = jsonx_str(r->body, "migration");
	url = jsonx_str(r->body, "dump_url");
	if (repl_key_check(key, &e) == -1)
		goto out;
	if (resync_names(r->body, "tables", tables, &e) == -1 ||
	    resync_names(r->body, "drop", drop, &e) == -1)
		goto out;
	if (json_array_size(tables) + json_array_size(drop) == 0 ||
	    (json_array_size(tables) && url == NULL && !jsonx_bool(r->body,
	    "check", 0))) {
		repl_fail(&e, 400, "BAD_REQUEST", "name the tables to make "
		    "again (tables, with the source's dump_url) or to drop");
		goto out;
	}
	pthread_mutex_lock(&replication_lock);
	locked = 1;
	if ((d = repl_env_db(r, &id, &e)) == NULL)
		goto out;
	repl_names(id, key, &n);
	if (repl_count(d, &e, "SELECT 1 FROM pg_subscription s JOIN"
	    " pg_database db ON db.oid = s.subdbid WHERE db.datname ="
	    " current_database() AND s.subname = $1", 1, (const char *[]){
	    n.subscription }) != 1) {
		if (e.code == NULL)
			repl_fail(&e, 404, "SUBSCRIPTION_NOT_FOUND", "no "
			    "subscription for migration %s in this "
			    "environment's database", key);
		goto out;
	}
	all = json_copy(tables);
	json_array_extend(all, drop);
	if (resync_referenced(d, all, &e) == -1) {
		json_decref(all);
		goto out;
	}
	json_decref(all);
	if (jsonx_bool(r->body, "check", 0)) {
		areply(r, 200, json_pack("{s:s,s:O,s:O,s:b}", "migration", key,
		    "tables", tables, "drop", drop, "checked", 1));
		goto out;
	}
	if (restore_role_drop_stale_in(d, "resync", id, &cause) == -1) {
		resync_failed(&e, cause);
		cause = NULL;
		goto out;
	}
	if (json_array_size(tables)) {
		dump = memfd_create("resync-dump", MFD_CLOEXEC);
		if (transfer_fetch_fd(url, dump, NUBO_RESYNC_DUMP_MAX,
		    &unreachable, &cause) == -1) {
			repl_fail(&e, unreachable ? 502 : 409, unreachable ?
			    "SOURCE_UNREACHABLE" : "DUMP_FAILED", "the schema "
			    "of the tables from the source: %s", cause);
			goto out;
		}
		if (lseek(dump, 0, SEEK_SET) == -1 || resync_load(d, r->env,
		    id, tables, dump, &e) == -1)
			goto out;
	}
	if (resync_each(d, drop, "DROP TABLE %s", &e) == -1)
		goto out;
	/* the tables dropped above left the subscription: back in, copied */
	sql = xasprintf("ALTER SUBSCRIPTION %s REFRESH PUBLICATION WITH"
	    " (copy_data = true)", n.subscription);
	if (resync_exec(d, sql, &e) == -1) {
		free(sql);
		goto out;
	}
	free(sql);
	log_info("environment %lld: %zu table%s made again and copied, %zu "
	    "dropped (migration %s)", id, json_array_size(tables),
	    json_array_size(tables) == 1 ? "" : "s", json_array_size(drop),
	    key);
	if ((out = subscription_report(d, n.subscription, key, &e)) != NULL) {
		json_object_set(out, "resynced", tables);
		json_object_set(out, "dropped", drop);
		areply(r, 200, out);
	}
out:
	if (locked)
		pthread_mutex_unlock(&replication_lock);
	if (e.code)
		repl_reply_error(r, &e);
	if (dump >= 0)
		close(dump);
	if (d)
		PQfinish(d);
	json_decref(tables);
	json_decref(drop);
	free(cause);
}
