/* Migrations (SPEC §4) and offboarding requests (seed §3.3): the REST
 * side. The state machine is migrate.c; its phases run as jobs of kind
 * "migration" (jobs.c), one job per phase, re-queued after a restart. */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "jobs.h"
#include "jsonx.h"
#include "log.h"
#include "migrate.h"
#include "migrate-node.h"
#include "migrate-repl.h"
#include "migrate-steps.h"
#include "offboarding.h"
#include "pgtool.h"
#include "portal.h"
#include "store.h"
#include "util.h"
#include "waits.h"
#include "xmalloc.h"

/* The migration {migration} names (its number), or 0 after replying 404
 * or 403. want_act: the caller must be allowed to act on it. A key
 * limited to named apps is told that another app's migration is not
 * there (SPEC §2), as jobs_show tells it of another app's job. */
static long long
migration_resolve(struct preq *r, int want_act)
{
	const char *ref = preq_param(r, "migration");
	long long id = 0, app, user = r->who.user_id;
	json_t *m = NULL;

	if (util_parse_int(ref, 1, 1LL << 62, &id) == -1 || (m = store_row(
	    r->db, "SELECT app_id, source_node_id, target_node_id, created_by"
	    " FROM migrations WHERE id = ?", "i", id)) == NULL ||
	    !auth_key_allows_app(r, jsonx_int(m, "app_id", 0))) {
		json_decref(m);
		reply_error(r, 404, "MIGRATION_NOT_FOUND", "no migration '%s'",
		    ref);
		return 0;
	}
	app = jsonx_int(m, "app_id", 0);
	r->app_id = app;
	if (!r->who.is_admin) {
		int tc = auth_is_app_tc(r, app), ok;

		if (want_act)
			ok = tc && auth_is_node_tc(r, jsonx_int(m,
			    "source_node_id", 0)) && auth_is_node_tc(r,
			    jsonx_int(m, "target_node_id", 0));
		else
			ok = tc || jsonx_int(m, "created_by", 0) == user ||
			    store_int(r->db, 0, "SELECT 1 FROM members WHERE"
			    " app_id = ? AND user_id = ?", "ii", app, user) == 1;
		if (!ok) {
			json_decref(m);
			reply_error(r, want_act ? 403 : 404, want_act ?
			    "NOT_TECHNICAL_CONTACT" : "MIGRATION_NOT_FOUND",
			    want_act ? "only the Technical Contact of the app "
			    "and of both nodes may do this" :
			    "no migration '%s'", ref);
			return 0;
		}
	}
	json_decref(m);
	return id;
}

/* Queue the migration's current phase as a job, remember the job and
 * reply 202 with the job and the migration. */
static void
migration_submit(struct preq *r, long long id, const char *verb)
{
	json_t *params = json_pack("{s:I}", "migration", id);
	long long job, node = store_int(r->db, 0, "SELECT target_node_id FROM"
	    " migrations WHERE id = ?", "i", id);
	json_t *out;
	char *loc;

	job = job_submit(r->db, "migration", r->app_id, node, NULL, params,
	    r->who.user_id);
	json_decref(params);
	if (job == 0 || store_run(r->db, "UPDATE migrations SET job_id = ?"
	    " WHERE id = ?", "ii", job, id) != STORE_OK) {
		store_rollback(r->db);
		reply_store_error(r);
		return;
	}
	activity_log(r, "migration", "migration %lld: %s", id, verb);
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		return;
	}
	out = migrate_json(r->db, id);
	json_object_set_new(out, "job", job_json(r->db, job));
	loc = xasprintf("/api/v1/jobs/%lld", job);
	http_add_header(r->http, "Location", loc);
	free(loc);
	reply(r, 202, out);
}

/* Is a job of this migration queued or running? */
static int
migration_busy(struct preq *r, long long id)
{
	return store_int(r->db, 0, "SELECT 1 FROM jobs j JOIN migrations m ON"
	    " m.job_id = j.id WHERE m.id = ? AND j.state IN ('queued',"
	    "'running')", "i", id) == 1;
}

/* How a migration copies the database. Asked for ("method": "dump" or
 * "replicate"; "replicate": true or false as before), or else
 * replication unless an environment holds what it cannot carry
 * (unlogged tables, large objects): then the dump, and *reason says
 * why (caller frees). For a plan, *tables gets the replication plan of
 * each environment, by name, when replicating; the source's schemas
 * are read only for a plan or to choose. -1 when the request is bad
 * (answered). */
static int
migration_method(struct preq *r, long long src, int plan,
    const char **method, char **reason, json_t **tables)
{
	const char *asked = jsonx_str(r->body, "method");
	json_t *flag = json_object_get(r->body, "replicate"), *envs, *env;
	size_t i;

	*reason = NULL;
	*tables = json_object();
	if (asked && strcmp(asked, "dump") != 0 && strcmp(asked,
	    "replicate") != 0) {
		reply_error(r, 400, "BAD_REQUEST", "method must be dump or "
		    "replicate, not '%s'", asked);
		return -1;
	}
	if (asked && flag && json_is_true(flag) != (strcmp(asked,
	    "replicate") == 0)) {
		reply_error(r, 400, "BAD_REQUEST", "method '%s' and "
		    "replicate %s contradict each other", asked,
		    json_is_true(flag) ? "true" : "false");
		return -1;
	}
	if (asked == NULL && flag)
		asked = json_is_true(flag) ? "replicate" : "dump";
	*method = asked ? asked : "replicate";
	if (asked && (strcmp(asked, "dump") == 0 || !plan))
		return 0;
	envs = migrate_source_envs(r->db, src);
	json_array_foreach(envs, i, env) {
		const char *name = json_string_value(env);
		json_t *t = migrate_repl_plan(r->db, src, name);
		const char *why;

		if (t == NULL)
			continue;
		/* a schema that cannot be read now (the node away) is
		 * not a reason: the migration's steps wait for the node */
		why = jsonx_str(t, "uncarried");
		if (why && asked == NULL && *reason == NULL) {
			*method = "dump";
			*reason = xasprintf("replication cannot carry what "
			    "environment %s holds: %s", name, why);
		}
		json_object_set_new(*tables, name, t);
	}
	json_decref(envs);
	if (strcmp(*method, "dump") == 0)
		json_object_clear(*tables);
	return 0;
}

/* POST /migrations {app, to, mode: plan|start|run, method: dump|replicate}
 * (replicate: true|false, the older spelling of method) */
void
migrations_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "app", JT_STRING, 1 }, { "to", JT_STRING, 1 },
		{ "mode", JT_STRING, 0 }, { "method", JT_STRING, 0 },
		{ "replicate", JT_BOOL, 0 }, { NULL } };
	const char *app, *to, *mode, *code, *method;
	struct migrate_who who;
	long long target, src, id;
	char *cause = NULL, *reason = NULL;
	unsigned status;
	json_t *plan, *tables = NULL;

	if (body_check(r, fields) == -1)
		return;
	app = jsonx_str(r->body, "app");
	to = jsonx_str(r->body, "to");
	mode = jsonx_str(r->body, "mode");
	if (mode == NULL)
		mode = "plan";
	if (strcmp(mode, "plan") != 0 && strcmp(mode, "start") != 0 &&
	    strcmp(mode, "run") != 0) {
		reply_error(r, 400, "BAD_REQUEST", "mode must be plan, start or "
		    "run, not '%s'", mode);
		return;
	}
	r->app_id = apps_find(r->db, app);
	if (r->app_id == 0 || (!r->who.is_admin && !auth_is_app_tc(r,
	    r->app_id) && store_int(r->db, 0, "SELECT 1 FROM members WHERE"
	    " app_id = ? AND user_id = ?", "ii", r->app_id,
	    r->who.user_id) != 1)) {
		reply_error(r, 404, "APP_NOT_FOUND", "no app '%s'", app);
		return;
	}
	target = store_int(r->db, 0, "SELECT id FROM nodes WHERE name = ?",
	    "s", to);
	if (target == 0) {
		reply_error(r, 404, "NODE_NOT_FOUND", "no node '%s'", to);
		return;
	}
	who.user_id = r->who.user_id;
	who.is_admin = r->who.is_admin;
	if (migrate_check(r->db, &who, r->app_id, target, 0, &code, &status,
	    &cause) == -1) {
		reply_error(r, status, code, "%s", cause);
		free(cause);
		return;
	}
	src = store_int(r->db, 0, "SELECT id FROM nodes WHERE app_id = ?",
	    "i", r->app_id);
	if (migration_method(r, src, strcmp(mode, "plan") == 0, &method,
	    &reason, &tables) == -1)
		goto out;
	if (strcmp(mode, "plan") == 0) {
		char *from = store_text(r->db, "SELECT name FROM nodes WHERE"
		    " id = ?", "i", src);
		json_t *e;
		size_t i;

		plan = migrate_plan(r->db, r->app_id, target, strcmp(method,
		    "replicate") == 0);
		/* with replication: how each table is carried */
		json_array_foreach(json_object_get(plan, "environments"), i,
		    e) {
			json_t *t = json_object_get(tables, jsonx_str(e,
			    "environment"));

			if (t)
				json_object_set(e, "replication", t);
		}
		json_object_set_new(plan, "method", json_string(method));
		json_object_set_new(plan, "method_reason", reason ?
		    json_string(reason) : json_null());
		json_object_set_new(plan, "app", json_string(app));
		json_object_set_new(plan, "to", json_string(to));
		json_object_set_new(plan, "from", from ? json_string(from) :
		    json_null());
		free(from);
		reply(r, 200, plan);
		goto out;
	}
	if (store_begin(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	id = migrate_create(r->db, &who, r->app_id, target,
	    strcmp(mode, "run") == 0, &cause);
	/* replicate: the database copied once, then followed
	 * (migrate-repl.c) */
	if (id && store_run(r->db, "UPDATE migrations SET method = ?,"
	    " method_reason = ? WHERE id = ?", "ssi", method, reason, id) !=
	    STORE_OK) {
		cause = xasprintf("store: %s", store_errmsg(r->db));
		id = 0;
	}
	if (id == 0 || migrate_phase(r->db, id, "start", &code, &cause) ==
	    -1) {
		store_rollback(r->db);
		reply_error(r, 500, "STORE_ERROR", "%s", cause);
		free(cause);
		goto out;
	}
	migration_submit(r, id, mode);
out:
	free(reason);
	json_decref(tables);
}

/* GET /migrations[?app=APP]: the migrations the caller may see (with a
 * key limited to named apps, only theirs). */
void
migrations_list(struct preq *r)
{
	const char *app = preq_query(r, "app");
	json_t *rows, *out = json_array(), *row;
	size_t i;

	/* ?app= names one app, as {app} does (apps_find()); -1: all */
	rows = store_rows(r->db, "SELECT m.id, m.app_id FROM migrations m"
	    " JOIN apps a ON a.id = m.app_id WHERE (?1 = -1 OR m.app_id = ?1)"
	    " AND (?2 OR m.created_by = ?3 OR a.technical_contact = ?3 OR"
	    " EXISTS (SELECT 1 FROM members mb WHERE mb.app_id = a.id AND"
	    " mb.user_id = ?3))"
	    " ORDER BY m.id", "iii", app ? apps_find(r->db, app) : -1LL,
	    (long long)r->who.is_admin, r->who.user_id);
	if (rows == NULL) {
		json_decref(out);
		reply_store_error(r);
		return;
	}
	json_array_foreach(rows, i, row) {
		json_t *m;

		if (!auth_key_allows_app(r, jsonx_int(row, "app_id", 0)))
			continue;
		m = migrate_json(r->db, jsonx_int(row, "id", 0));
		if (m) {
			json_object_del(m, "steps");
			json_array_append_new(out, m);
		}
	}
	json_decref(rows);
	reply(r, 200, json_pack("{s:o}", "migrations", out));
}

/* The states in which a replicating migration's slots exist: after the
 * first copy, until the cutover drops them (a cutover that failed keeps
 * them, with the change slots of its baseline, until it goes on or is
 * rolled back). */
static int
replicating(const char *state)
{
	static const char *const states[] = { "copying", "copied",
		"rehearsing", "cutting-over", NULL };
	int i;

	for (i = 0; state && states[i]; i++)
		if (strcmp(state, states[i]) == 0)
			return 1;
	return 0;
}

/* A migration as the store has it: its record, steps and job (what
 * GET /migrations/{id} answers but the replication's live figures). */
static json_t *
migration_stored(sqlite3 *db, long long id)
{
	json_t *m = migrate_json(db, id);

	if (m)
		json_object_set_new(m, "job", job_json(db, jsonx_int(m,
		    "job_id", 0)));
	return m;
}

/* The longest a GET /migrations/{id}?wait= is held (seconds). */
#define MIGRATION_WAIT_MAX	60

/* wait_reply()'s check: the migration changed (or is gone). */
static int
migration_changed(sqlite3 *db, struct preq *r)
{
	json_t *m = migration_stored(db, r->wait_job);
	int changed = m == NULL || wait_revision(m) != r->wait_rev;

	json_decref(m);
	return changed;
}

static void migrations_show_now(struct preq *r);

/* GET /migrations/{migration}[?wait=S&revision=R]: with a revision, held
 * until the migration's record, steps or job differ from what the
 * client saw, or S seconds (long polling: the page follows a migration
 * without asking again and again) */
void
migrations_show(struct preq *r)
{
	long long id = migration_resolve(r, 0), secs;
	unsigned long long seen;
	json_t *m;

	if (id == 0)
		return;
	switch (wait_query(r, MIGRATION_WAIT_MAX, &secs, &seen)) {
	case -1:
		return;
	case 1:
		m = migration_stored(r->db, id);
		if (m && wait_revision(m) == seen) {
			json_decref(m);
			r->wait_job = id;
			r->wait_rev = seen;
			wait_reply(r, (int)secs, migration_changed,
			    migrations_show_now, NULL);
			return;
		}
		json_decref(m);
	}
	r->wait_job = id;
	migrations_show_now(r);
}

/* The migration r->wait_job as it is now, with its revision and, while
 * it replicates, the slot, its lag and the WAL it holds. */
static void
migrations_show_now(struct preq *r)
{
	long long id = r->wait_job;
	json_t *m = migration_stored(r->db, id);
	char hex[17];

	if (m == NULL) {
		reply_store_error(r);
		return;
	}
	snprintf(hex, sizeof hex, "%016llx", wait_revision(m));
	json_object_set_new(m, "revision", json_string(hex));
	if (migrate_repl_on(m) && store_int(r->db, 0, "SELECT 1 FROM"
	    " migration_steps WHERE migration_id = ? AND phase = 'start' AND"
	    " name = 'data' AND state = 'done'", "i", id) == 1 &&
	    replicating(jsonx_str(m, "state")))
		json_object_set_new(m, "replication", migrate_repl_status(r->db,
		    id));
	reply(r, 200, m);
}

static void migrations_phase(struct preq *r, const char *phase);

/* job_wait_reply()'s continuation: the phase asked for once the job that
 * was retrying a step ended. */
static void
migrations_phase_then(struct preq *r)
{
	migrations_phase(r, r->wait_arg);
}

/* The step of a migration whose job waits to try it again (retry_wait()
 * in migrate.c): the current phase's failed step with a retry_in. */
#define STEP_WAITING " FROM migration_steps s WHERE s.migration_id =" \
	" migrations.id AND s.phase = migrations.phase AND s.round =" \
	" migrations.round AND s.state = 'failed' AND" \
	" json_extract(s.progress_json, '$.retry_in') IS NOT NULL"

/* Abort or rollback of a migration whose job waits to try a step again
 * (status retrying: a node cannot be reached): the job is told to stop —
 * the migration's error set, in one statement with the check that the
 * step still waits (a try under way is not cut), which retry_wait() sees
 * within a second — and the request goes on once the job ended. 1 when
 * so (the request waits), 0 when the migration is not retrying. */
static int
migration_stop_retries(struct preq *r, long long id, const char *phase)
{
	long long job = store_int(r->db, 0, "SELECT job_id FROM migrations"
	    " WHERE id = ?", "i", id);
	char *why;
	int st;

	if (strcmp(phase, "abort") != 0 && strcmp(phase, "rollback") != 0)
		return 0;
	why = xasprintf(" (stopped by %s)", phase);
	st = store_run(r->db, "UPDATE migrations SET error = (SELECT s.error"
	    " || ?2" STEP_WAITING ") WHERE id = ?1 AND error IS NULL AND"
	    " EXISTS (SELECT 1" STEP_WAITING ")", "is", id, why);
	free(why);
	if (st != STORE_OK || sqlite3_changes(r->db) != 1)
		return 0;
	job_wait_reply(r, job, 30, migrations_phase_then, phase);
	return 1;
}

/* A rehearse's {resync: [TABLE]} checked (names, the migration's
 * method, both nodes' schemas): the tables as canonical names into
 * *tables (NULL when none are asked), or -1 after replying. */
static int
migrations_resync(struct preq *r, long long id, json_t **tables)
{
	json_t *list = json_object_get(r->body, "resync"), *v;
	char canon[PGTOOL_TABLE_MAX], *cause = NULL;
	json_t *m;
	size_t i;
	int repl;

	*tables = NULL;
	if (json_array_size(list) == 0)
		return 0;
	if (json_array_size(list) > NUBO_RESYNC_TABLES_MAX) {
		reply_error(r, 413, "TOO_MANY_TABLES", "at most %d tables in "
		    "one resync", NUBO_RESYNC_TABLES_MAX);
		return -1;
	}
	*tables = json_array();
	json_array_foreach(list, i, v) {
		if (pgtool_table_name(json_string_value(v), canon,
		    sizeof canon) == -1) {
			reply_error(r, 400, "BAD_TABLE", "resync: '%.80s' is not "
			    "a table's name: [schema.]name, each 1 to 63 of "
			    "a-z, 0-9, '_' and '$', starting with a letter or "
			    "'_'", json_is_string(v) ? json_string_value(v) :
			    "(not a string)");
			goto fail;
		}
		json_array_append_new(*tables, json_string(canon));
	}
	m = store_row(r->db, "SELECT method FROM migrations WHERE id = ?", "i",
	    id);
	repl = migrate_repl_on(m);
	json_decref(m);
	if (!repl) {
		reply_error(r, 409, "MIGRATION_NOT_REPLICATING", "migration "
		    "%lld copies the database with a dump at every rehearse: "
		    "--resync is for a migration that replicates (the "
		    "default, not --dump)", id);
		goto fail;
	}
	if (migrate_repl_resync_check(r->db, id, *tables, &cause) == -1) {
		reply_error(r, 409, "RESYNC_REFUSED", "%s%s", cause,
		    strstr(cause, "nothing was changed") ? "" :
		    "; nothing was changed");
		free(cause);
		goto fail;
	}
	return 0;
fail:
	json_decref(*tables);
	*tables = NULL;
	return -1;
}

/* A cutover of a migration that replicates and is copied: refused
 * before anything is queued (it stays copied: a rehearse --resync may
 * follow) when DDL on the source changed a table. A node that does not
 * answer within seconds does not hold the request: the cutover's first
 * step checks again, before anything goes down. -1 after replying. */
static int
migrations_schema_check(struct preq *r, long long id, const char *phase)
{
	struct migrate_ctx c;
	char *cause = NULL;
	int rc = 0;

	if (strcmp(phase, "cutover") != 0 ||
	    migrate_ctx_load(r->db, id, &c) == -1)
		return 0;
	c.in_request = 1;
	if (migrate_repl_on(c.row) && strcmp(jsonx_str(c.row, "state"),
	    "copied") == 0 && migrate_repl_schema_check(&c, &cause) == -1
	    && !c.unreachable) {
		reply_error(r, 409, "SCHEMA_CHANGED", "%s", cause);
		rc = -1;
	}
	free(cause);
	json_decref(c.row);
	return rc;
}

/* POST /migrations/{migration}/<phase>: rehearse, cutover, abort,
 * rollback — add the phase's steps and run them as a job. A rehearse
 * may name tables to copy again {resync} (its data steps' input). */
static void
migrations_phase(struct preq *r, const char *phase)
{
	static const struct jfield fields[] = { { NULL } };
	static const struct jfield rehearse[] = {
		{ "resync", JT_ARRAY, 0 }, { NULL } };
	json_t *tables = NULL;
	long long id;
	const char *code;
	char *cause = NULL;

	if (body_check(r, strcmp(phase, "rehearse") == 0 ? rehearse :
	    fields) == -1 || (id = migration_resolve(r, 1)) == 0)
		return;
	if (migration_busy(r, id) && migration_stop_retries(r, id, phase))
		return;
	if (migration_busy(r, id)) {
		reply_error(r, 409, "MIGRATION_BUSY", "migration %lld is running "
		    "a step: wait for it (nubo migrate status)", id);
		return;
	}
	if (migrations_schema_check(r, id, phase) == -1 ||
	    migrations_resync(r, id, &tables) == -1)
		return;
	if (store_begin(r->db) == -1) {
		json_decref(tables);
		reply_store_error(r);
		return;
	}
	if (migrate_phase(r->db, id, phase, &code, &cause) == -1) {
		store_rollback(r->db);
		reply_error(r, strcmp(code, "STORE_ERROR") == 0 ? 500 : 409,
		    code, "%s", cause);
		free(cause);
		json_decref(tables);
		return;
	}
	/* the round's data steps make those tables again (migrate-repl.c) */
	if (tables && store_run(r->db, "UPDATE migration_steps SET input_json"
	    " = json_object('resync', json(?)) WHERE migration_id = ? AND"
	    " name = 'data' AND phase = 'rehearse' AND round = (SELECT round"
	    " FROM migrations WHERE id = ?2)", "ji", tables, id) != STORE_OK) {
		store_rollback(r->db);
		json_decref(tables);
		reply_store_error(r);
		return;
	}
	json_decref(tables);
	migration_submit(r, id, phase);
}

void migrations_rehearse(struct preq *r) { migrations_phase(r, "rehearse"); }
void migrations_cutover(struct preq *r) { migrations_phase(r, "cutover"); }
void migrations_abort(struct preq *r) { migrations_phase(r, "abort"); }
void migrations_rollback(struct preq *r) { migrations_phase(r, "rollback"); }

/* POST /migrations/{migration}/resume: run the current phase again from
 * its first step that is not done (after a failure or a crash). */
void
migrations_resume(struct preq *r)
{
	static const struct jfield fields[] = { { NULL } };
	long long id;
	json_t *m;
	const char *state;

	if (body_check(r, fields) == -1 || (id = migration_resolve(r, 1)) == 0)
		return;
	if (migration_busy(r, id)) {
		/* A restarted portal re-queued it by itself: resuming means
		 * following it. */
		m = migrate_json(r->db, id);
		json_object_set_new(m, "job", job_json(r->db, jsonx_int(m,
		    "job_id", 0)));
		reply(r, 202, m);
		return;
	}
	m = store_row(r->db, "SELECT state FROM migrations WHERE id = ?", "i",
	    id);
	state = jsonx_str(m, "state");
	if (state && (strcmp(state, "completed") == 0 ||
	    strcmp(state, "aborted") == 0 ||
	    strcmp(state, "rolled-back") == 0 ||
	    strcmp(state, "copied") == 0 || strcmp(state, "cut-over") == 0)) {
		reply_error(r, 409, "MIGRATION_WRONG_STATE", "migration %lld "
		    "is %s: nothing to resume", id, state);
		json_decref(m);
		return;
	}
	json_decref(m);
	if (store_begin(r->db) == -1 || store_run(r->db, "UPDATE migrations"
	    " SET error = NULL WHERE id = ?", "i", id) != STORE_OK) {
		reply_store_error(r);
		return;
	}
	migration_submit(r, id, "resume");
}

/* The job kind "migration": run the current phase (see migrate_run). When
 * the phase ended and the migration moved on to another one (mode run, or
 * an offboarding approval), keep going. */
int
migrations_job(struct job *j, json_t **result, char **cause)
{
	long long id = jsonx_int(j->params, "migration", 0);

	migrate_node_set_portal(j->portal);
	if (migrate_run(id, j->id, cause) == -1)
		return -1;
	*result = migrate_json(j->db, id);
	if (*result)
		json_object_del(*result, "steps");
	return 0;
}

/* POST /nodes/{node}/offboarding-requests {force?, reason?} (node TC) */
void
offboarding_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "force", JT_BOOL, 0 }, { "reason", JT_STRING, 0 },
		{ NULL } };
	const char *reason, *code;
	char *cause = NULL;
	long long id;

	if (body_check(r, fields) == -1)
		return;
	reason = jsonx_str(r->body, "reason");
	if (reason && strlen(reason) > NUBO_COMMENT_MAX) {
		reply_error(r, 400, "BAD_REQUEST", "a reason has at most %d "
		    "characters", NUBO_COMMENT_MAX);
		return;
	}
	if (store_begin(r->db) == -1) {
		reply_store_error(r);
		return;
	}
	id = offboarding_file(r->db, r->node_id, r->who.user_id,
	    jsonx_bool(r->body, "force", 0), reason, &code, &cause);
	if (id == 0) {
		store_rollback(r->db);
		reply_error(r, strcmp(code, "STORE_ERROR") == 0 ? 500 : 409,
		    code, "%s", cause);
		free(cause);
		return;
	}
	r->app_id = store_int(r->db, 0, "SELECT app_id FROM nodes WHERE"
	    " id = ?", "i", r->node_id);
	activity_log(r, "node.offboarding-request", "requested offboarding of "
	    "node '%s'%s", preq_param(r, "node"),
	    jsonx_bool(r->body, "force", 0) ? " (forced)" : "");
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		return;
	}
	reply(r, 201, offboarding_json(r->db, id));
}

/* GET /offboarding-requests: admins see all, others the requests of
 * nodes they are Technical Contact of or that they filed. A key limited
 * to named apps works only on those (SPEC §2): it sees the requests filed
 * for one of them, as it sees only their nodes (nodes_list), and none of
 * a node that had no app (auth_key_allows_app() of 0). */
void
offboarding_list(struct preq *r)
{
	json_t *rows = store_rows(r->db, "SELECT o.id, o.app_id FROM"
	    " offboarding_requests o JOIN nodes n ON n.id = o.node_id"
	    " WHERE ? OR n.technical_contact = ? OR o.requested_by = ?"
	    " ORDER BY o.id", "iii", (long long)r->who.is_admin,
	    r->who.user_id, r->who.user_id);
	json_t *out = json_array(), *row;
	size_t i;

	json_array_foreach(rows, i, row)
		if (auth_key_allows_app(r, jsonx_int(row, "app_id", 0)))
			json_array_append_new(out, offboarding_json(r->db,
			    jsonx_int(row, "id", 0)));
	json_decref(rows);
	reply(r, 200, json_pack("{s:o}", "offboarding_requests", out));
}

/* The request {request} names, when the caller may see it (admins; the
 * node's Technical Contact; who filed it; with a key whose scope has its
 * app — as in the list); 0 after replying 404, the answer for a request
 * that does not exist. r->node_id becomes its node. */
static long long
offboarding_resolve(struct preq *r)
{
	const char *ref = preq_param(r, "request");
	long long id;

	if (util_parse_int(ref, 1, 1LL << 62, &id) == -1 ||
	    store_int(r->db, 0, "SELECT 1 FROM offboarding_requests o JOIN"
	    " nodes n ON n.id = o.node_id WHERE o.id = ? AND (? OR"
	    " n.technical_contact = ? OR o.requested_by = ?)", "iiii", id,
	    (long long)r->who.is_admin, r->who.user_id, r->who.user_id) !=
	    1 || !auth_key_allows_app(r, store_int(r->db, 0, "SELECT app_id"
	    " FROM offboarding_requests WHERE id = ?", "i", id))) {
		reply_error(r, 404, "OFFBOARDING_REQUEST_NOT_FOUND",
		    "no offboarding request '%s'", ref);
		return 0;
	}
	r->node_id = store_int(r->db, 0, "SELECT node_id FROM"
	    " offboarding_requests WHERE id = ?", "i", id);
	return id;
}

/* GET /offboarding-requests/{request} */
void
offboarding_show(struct preq *r)
{
	long long id = offboarding_resolve(r);
	json_t *o;

	if (id == 0)
		return;
	if ((o = offboarding_json(r->db, id)) == NULL) {
		reply_store_error(r);
		return;
	}
	reply(r, 200, o);
}

/* POST /offboarding-requests/{request}/purge (admin): delete the
 * offboarded node's data now rather than at keep_until — the same job
 * the purge duty queues (offboarding.c). Only after approval, once. */
void
offboarding_purge_route(struct preq *r)
{
	static const struct jfield fields[] = { { NULL } };
	json_t *o;
	long long id, job;
	char *loc;

	if (body_check(r, fields) == -1 || (id = offboarding_resolve(r)) == 0)
		return;
	if ((o = offboarding_json(r->db, id)) == NULL) {
		reply_store_error(r);
		return;
	}
	if (strcmp(jsonx_str(o, "state"), "approved") != 0) {
		reply_error(r, 409, "OFFBOARDING_NOT_APPROVED", "offboarding "
		    "request %lld is %s: node '%s' keeps its data until the "
		    "request is approved", id, jsonx_str(o, "state"),
		    jsonx_str(o, "node"));
		goto out;
	}
	if (jsonx_str(o, "purged_at")) {
		reply_error(r, 409, "OFFBOARDING_PURGED", "the data of node "
		    "'%s' was deleted at %s", jsonx_str(o, "node"),
		    jsonx_str(o, "purged_at"));
		goto out;
	}
	if ((job = offboarding_purge_submit(r->db, id, r->who.user_id)) ==
	    0) {
		reply_store_error(r);
		goto out;
	}
	activity_log(r, "node.purge", "asked to delete the data of offboarded "
	    "node '%s' now (request %lld, job %lld)", jsonx_str(o, "node"),
	    id, job);
	loc = xasprintf("/api/v1/jobs/%lld", job);
	reply(r, 202, json_pack("{s:o}", "job", job_json(r->db, job)));
	http_add_header(r->http, "Location", loc);
	free(loc);
out:
	json_decref(o);
}

/* POST /offboarding-requests/{request}/approve (admin): seed §3.3 — the
 * node's environments stop, the app is detached and stays a Free App.
 * Migrations waiting for it go on with the final link (seed §3.4). */
void
offboarding_approve_route(struct preq *r)
{
	static const struct jfield fields[] = { { NULL } };
	const char *code;
	json_t *migs = NULL, *v, *out;
	char *cause = NULL;
	long long id;
	size_t i;

	if (body_check(r, fields) == -1 || (id = offboarding_resolve(r)) == 0)
		return;
	migrate_node_set_portal(r->portal);
	if (offboarding_approve(r->db, id, r->who.user_id, &migs, &code,
	    &cause) == -1) {
		reply_error(r, strcmp(code, "STORE_ERROR") == 0 ? 500 : 409,
		    code, "%s", cause);
		free(cause);
		return;
	}
	if (store_begin(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	activity_log(r, "node.offboarded", "approved offboarding request %lld",
	    id);
	json_array_foreach(migs, i, v) {
		json_t *params = json_pack("{s:I}", "migration",
		    json_integer_value(v));
		long long job = job_submit(r->db, "migration", 0, 0, NULL,
		    params, r->who.user_id);

		json_decref(params);
		store_run(r->db, "UPDATE migrations SET job_id = ? WHERE"
		    " id = ?", "ii", job, (long long)json_integer_value(v));
	}
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	out = offboarding_json(r->db, id);
	json_object_set_new(out, "migrations", json_incref(migs));
	reply(r, 200, out);
out:
	json_decref(migs);
}
