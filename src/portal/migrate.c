/* The migration state machine and its journal (see migrate.h). The steps
 * themselves — what each one asks the nodes to do — live in
 * migrate-steps.c; this file knows phases, order, states and the journal. */
#include "migrate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jsonx.h"
#include "log.h"
#include "testhook.h"
#include "migrate-estimate.h"
#include "migrate-repl.h"
#include "migrate-node.h"
#include "migrate-steps.h"
#include "nodeclient.h"
#include "settings.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* A phase: which states it may start from, the state while it runs and
 * the state once its steps are all done. */
struct migrate_phase {
	const char	*name;
	const char	*from[6];
	const char	*running;
	const char	*done;
	const char	*global_before[4];	/* steps run once, first */
	const char	*per_env[12];		/* steps per environment */
	const char	*global_after[4];	/* steps run once, last */
};

static const struct migrate_phase migrate_phases[] = {
	{ "start", { "created" }, "copying", "copied",
	  { "prerequisites", "temp-app", "link-temp" },
	  { "package", "settings", "data", "start", "verify" }, { NULL } },
	{ "rehearse", { "copied" }, "rehearsing", "copied",
	  { "prerequisites" },
	  { "package", "settings", "data", "start", "verify" }, { NULL } },
	{ "cutover", { "copied" }, "cutting-over", "cut-over",
	  { "prerequisites" },
	  { "stop-target", "baseline", "maintenance", "stop-source", "data",
	    "verify", "route", "start", "served", "keep" },
	  { "offboard-request" } },
	{ "finalize", { "cut-over" }, "finalizing", "completed",
	  { "final-link", "delete-temp" }, { NULL }, { NULL } },
	{ "abort", { "created", "copying", "copied", "rehearsing" },
	  "aborting", "aborted",
	  { NULL }, { "abort-target" }, { "abort-temp" } },
	{ "rollback", { "cut-over", "cutting-over" }, "rolling-back",
	  "rolled-back",
	  { "rollback-offboarding" }, { "rollback-target", "rollback-source" },
	  { "abort-temp" } },
};

static const struct migrate_phase *
phase_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof migrate_phases / sizeof migrate_phases[0]; i++)
		if (name && strcmp(migrate_phases[i].name, name) == 0)
			return &migrate_phases[i];
	return NULL;
}

/* The environments a migration covers: every environment the app has on
 * the source node (seed §3.2), by name. */
json_t *
migrate_source_envs(sqlite3 *db, long long node_id)
{
	json_t *rows = store_rows(db, "SELECT name FROM environments"
	    " WHERE node_id = ? AND app_id IS NULL ORDER BY id", "i", node_id);
	json_t *out = json_array(), *row;
	size_t i;

	json_array_foreach(rows, i, row)
		json_array_append(out, json_object_get(row, "name"));
	json_decref(rows);
	return out;
}

static void
set_cause(char **cause, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	*cause = xvasprintf(fmt, ap);
	va_end(ap);
}

/* The custom domains of environment env on the source must be the
 * app's to move: held by no other app (SETTINGS_DOMAIN_TAKEN), as the
 * target's same-named environment will claim them for the app. */
static int
migrate_check_domains(sqlite3 *db, const struct migrate_who *who,
    long long app_id, const char *sub, long long source_node,
    long long target_node, const char *env, const char **code, char **cause)
{
	json_t *doc = settings_load(db, store_int(db, 0, "SELECT id FROM"
	    " environments WHERE node_id = ? AND app_id IS NULL AND name = ?"
	    " COLLATE NOCASE", "is", source_node, env));
	json_t *domains = json_array(), *errors = json_array(), *v;
	struct settings_claim cl;
	const char *d;
	char *text;
	int st;

	json_object_foreach(json_object_get(doc, "domains"), d, v)
		json_array_append_new(domains, json_string(d));
	memset(&cl, 0, sizeof cl);
	cl.env_id = store_int(db, 0, "SELECT id FROM environments WHERE"
	    " node_id = ? AND app_id IS NULL AND name = ? COLLATE NOCASE",
	    "is", target_node, env);
	cl.owner = app_id;
	cl.name = env;
	cl.subdomain = sub;
	cl.viewer = who->user_id;
	st = settings_domains_check(db, &cl, domains,
	    migrate_node_cloud_domain(), errors);
	if (st < -1) {
		text = settings_errors_text(errors);
		*code = st == SETTINGS_DOMAIN_TAKEN ? "DOMAIN_TAKEN" :
		    "DOMAIN_RESERVED";
		set_cause(cause, "the custom domains of environment '%s' cannot "
		    "move with the app: %s", env, text);
		free(text);
	} else if (st == -1) {
		*code = "STORE_ERROR";
		set_cause(cause, "store: %s", store_errmsg(db));
	}
	json_decref(doc);
	json_decref(domains);
	json_decref(errors);
	return st == 0 ? 0 : -1;
}

int
migrate_check(sqlite3 *db, const struct migrate_who *who, long long app_id,
    long long target_node, long long ignore_migration, const char **code,
    unsigned *status, char **cause)
{
	json_t *app = NULL, *src = NULL, *dst = NULL, *envs = NULL, *e;
	const char *sub, *sgen, *tgen, *tname, *sname;
	long long tapp, other;
	size_t i;
	int rc = -1;

	*status = 409;
	app = store_row(db, "SELECT subdomain, technical_contact, sandbox"
	    " FROM apps WHERE id = ?", "i", app_id);
	src = store_row(db, "SELECT id, name, generation, status,"
	    " technical_contact FROM nodes WHERE app_id = ?", "i", app_id);
	dst = store_row(db, "SELECT id, name, generation, status, app_id,"
	    " technical_contact, is_sandbox, agent_url FROM nodes"
	    " WHERE id = ?", "i", target_node);
	if (app == NULL || dst == NULL) {
		*code = app ? "NODE_NOT_FOUND" : "APP_NOT_FOUND";
		*status = 404;
		set_cause(cause, app ? "no such target node" : "no such app");
		goto out;
	}
	sub = jsonx_str(app, "subdomain");
	tname = jsonx_str(dst, "name");
	if (src == NULL) {
		*code = "APP_NOT_LINKED";
		set_cause(cause, "app '%s' is not linked to a node: there is "
		    "nothing to migrate", sub);
		goto out;
	}
	sname = jsonx_str(src, "name");
	sgen = jsonx_str(src, "generation");
	tgen = jsonx_str(dst, "generation");
	if (jsonx_int(src, "id", 0) == target_node) {
		*code = "SAME_NODE";
		set_cause(cause, "app '%s' already runs on node '%s'", sub,
		    tname);
		goto out;
	}
	if (strcmp(tgen, "v4") != 0) {
		*code = "MIGRATION_REFUSED";
		if (strcmp(sgen, "v4") == 0)
			set_cause(cause, "migrating from a v4 node ('%s') to "
			    "a v3 node ('%s') is refused", sname, tname);
		else
			set_cause(cause, "target node '%s' is a v3 node: nubo "
			    "migrates to v4 nodes only", tname);
		goto out;
	}
	if (!who->is_admin && (jsonx_int(src, "technical_contact", 0) !=
	    who->user_id || jsonx_int(dst, "technical_contact", 0) !=
	    who->user_id)) {
		*code = "NOT_TECHNICAL_CONTACT";
		*status = 403;
		set_cause(cause, "you must be the Technical Contact of both "
		    "node '%s' and node '%s'", sname, tname);
		goto out;
	}
	if (!who->is_admin && jsonx_int(app, "technical_contact", 0) !=
	    who->user_id) {
		*code = "NOT_TECHNICAL_CONTACT";
		*status = 403;
		set_cause(cause, "you must be the Technical Contact of app "
		    "'%s'", sub);
		goto out;
	}
	if (jsonx_int(dst, "is_sandbox", 0)) {
		*code = "NODE_NOT_AVAILABLE";
		set_cause(cause, "node '%s' is the sandbox node, not a "
		    "licensed node", tname);
		goto out;
	}
	if (strcmp(jsonx_str(src, "status"), "linked") != 0) {
		*code = "NODE_NOT_AVAILABLE";
		set_cause(cause, "source node '%s' is %s", sname,
		    jsonx_str(src, "status"));
		goto out;
	}
	/* Available: no app, or only a temporary one (seed §3.1 links the
	 * temporary app; ours, once this migration created it). */
	tapp = jsonx_int(dst, "app_id", 0);
	if (strcmp(jsonx_str(dst, "status"), "offboarding") == 0 ||
	    strcmp(jsonx_str(dst, "status"), "offboarded") == 0) {
		*code = "NODE_NOT_AVAILABLE";
		set_cause(cause, "target node '%s' is %s", tname,
		    jsonx_str(dst, "status"));
		goto out;
	}
	if (tapp && store_int(db, 0, "SELECT temporary FROM apps WHERE id = ?",
	    "i", tapp) != 1) {
		char *other_sub = store_text(db, "SELECT subdomain FROM apps"
		    " WHERE id = ?", "i", tapp);

		*code = "NODE_NOT_AVAILABLE";
		set_cause(cause, "target node '%s' is not available: app '%s' "
		    "is linked to it", tname, other_sub ? other_sub : "?");
		free(other_sub);
		goto out;
	}
	if (jsonx_str(dst, "agent_url") == NULL) {
		*code = "NODE_NOT_AVAILABLE";
		set_cause(cause, "target node '%s' has never registered: start "
		    "its nubod node agent", tname);
		goto out;
	}
	other = store_int(db, 0, "SELECT id FROM migrations WHERE id != ?"
	    " AND (app_id = ? OR target_node_id = ? OR source_node_id = ?)"
	    " AND state NOT IN ('completed','aborted','rolled-back')",
	    "iiii", ignore_migration, app_id, target_node, target_node);
	if (other) {
		*code = "MIGRATION_IN_PROGRESS";
		set_cause(cause, "migration %lld is in progress for app '%s' or "
		    "node '%s'", other, sub, tname);
		goto out;
	}
	envs = migrate_source_envs(db, jsonx_int(src, "id", 0));
	json_array_foreach(envs, i, e) {
		if (store_int(db, 0, "SELECT 1 FROM environments WHERE"
		    " node_id = ? AND app_id IS NULL AND name = ? COLLATE NOCASE",
		    "is", target_node, json_string_value(e)) != 1) {
			*code = "ENVIRONMENT_NOT_FOUND";
			set_cause(cause, "target node '%s' has no environment "
			    "'%s' (node '%s' has one)", tname,
			    json_string_value(e), sname);
			goto out;
		}
		if (migrate_check_domains(db, who, app_id, sub, jsonx_int(src,
		    "id", 0), target_node, json_string_value(e), code,
		    cause) == -1) {
			if (strcmp(*code, "STORE_ERROR") == 0)
				*status = 500;
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(app);
	json_decref(src);
	json_decref(dst);
	json_decref(envs);
	return rc;
}

json_t *
migrate_plan(sqlite3 *db, long long app_id, long long target_node,
    int replicate)
{
	long long src = store_int(db, 0, "SELECT id FROM nodes WHERE"
	    " app_id = ?", "i", app_id);
	json_t *envs = migrate_source_envs(db, src), *steps = json_array(), *e;
	json_t *env_plans = json_array();
	const struct migrate_phase *ph;
	double downtime = 0;
	size_t i, k;
	const char *phases[] = { "start", "cutover", "finalize" };

	json_array_foreach(envs, i, e) {
		json_t *p = migrate_steps_env_plan(db, src, target_node,
		    json_string_value(e));
		json_t *est = migrate_estimate(db, app_id, target_node,
		    json_string_value(e), json_is_null(json_object_get(p,
		    "package")) ? -1 : jsonx_int(p, "database_bytes", 0), replicate);
		double secs = json_real_value(json_object_get(est, "seconds"));

		/* each environment is down during its own cutover only */
		if (secs > downtime)
			downtime = secs;
		json_object_set_new(p, "estimated_downtime_seconds",
		    json_real(secs));
		json_object_set(p, "estimate_basis", json_object_get(est,
		    "basis"));
		json_decref(est);
		json_array_append_new(env_plans, p);
	}
	for (k = 0; k < 3; k++) {
		ph = phase_find(phases[k]);
		for (i = 0; ph->global_before[i]; i++)
			json_array_append_new(steps, json_pack("{s:s,s:s,s:s}",
			    "phase", ph->name, "step", ph->global_before[i],
			    "does", migrate_steps_summary(ph->global_before[i],
			    ph->name, replicate)));
		json_array_foreach(envs, i, e) {
			size_t j;

			for (j = 0; ph->per_env[j]; j++)
				json_array_append_new(steps, json_pack(
				    "{s:s,s:s,s:O,s:s}", "phase", ph->name,
				    "step", ph->per_env[j], "environment", e,
				    "does", migrate_steps_summary(ph->per_env[j],
				    ph->name, replicate)));
		}
		for (i = 0; ph->global_after[i]; i++)
			json_array_append_new(steps, json_pack("{s:s,s:s,s:s}",
			    "phase", ph->name, "step", ph->global_after[i],
			    "does", migrate_steps_summary(ph->global_after[i],
			    ph->name, replicate)));
	}
	json_decref(envs);
	return json_pack("{s:o,s:o,s:f}", "steps", steps, "environments",
	    env_plans, "estimated_downtime_seconds", downtime);
}

/* Insert the steps of ph for round (idempotent: a phase/round that has
 * steps already keeps them). Inside the caller's transaction. */
static int
steps_add(sqlite3 *db, long long id, const struct migrate_phase *ph,
    long long round, json_t *envs)
{
	long long seq;
	size_t i, j;
	json_t *e;

	if (store_int(db, 0, "SELECT 1 FROM migration_steps WHERE"
	    " migration_id = ? AND phase = ? AND round = ?", "isi", id,
	    ph->name, round) == 1)
		return 0;
	seq = store_int(db, 0, "SELECT MAX(seq) FROM migration_steps WHERE"
	    " migration_id = ?", "i", id);
#define STEP_ADD(sname, env) \
	if (store_run(db, "INSERT INTO migration_steps (migration_id, seq," \
	    " phase, round, name, environment) VALUES (?, ?, ?, ?, ?, ?)", \
	    "iisiss", id, ++seq, ph->name, round, (sname), (env)) != STORE_OK) \
		return -1;
	for (i = 0; ph->global_before[i]; i++)
		STEP_ADD(ph->global_before[i], (const char *)NULL);
	json_array_foreach(envs, j, e)
		for (i = 0; ph->per_env[i]; i++)
			STEP_ADD(ph->per_env[i], json_string_value(e));
	for (i = 0; ph->global_after[i]; i++)
		STEP_ADD(ph->global_after[i], (const char *)NULL);
#undef STEP_ADD
	return 0;
}

long long
migrate_create(sqlite3 *db, const struct migrate_who *who, long long app_id,
    long long target_node, int run_all, char **cause)
{
	long long src, id = 0;
	json_t *envs = NULL;
	char *uuid = util_uuid();
	char now[32];

	util_time_iso(util_now(), now, sizeof now);
	src = store_int(db, 0, "SELECT id FROM nodes WHERE app_id = ?", "i",
	    app_id);
	envs = migrate_source_envs(db, src);
	if (store_run(db, "INSERT INTO migrations (uuid, app_id,"
	    " source_node_id, target_node_id, environments_json, state,"
	    " phase, round, run_all, created_by, created_at, updated_at)"
	    " VALUES (?, ?, ?, ?, ?, 'created', 'start', 0, ?, ?, ?, ?)",
	    "siiijiiss", uuid, app_id, src, target_node, envs,
	    (long long)run_all, who->user_id, now, now) != STORE_OK) {
		set_cause(cause, "cannot record the migration: %s",
		    store_errmsg(db));
		goto out;
	}
	id = store_last_id(db);
	if (steps_add(db, id, phase_find("start"), 0, envs) == -1) {
		set_cause(cause, "cannot record the steps: %s",
		    store_errmsg(db));
		id = 0;
	}
out:
	json_decref(envs);
	free(uuid);
	return id;
}

int
migrate_phase(sqlite3 *db, long long id, const char *phase,
    const char **code, char **cause)
{
	const struct migrate_phase *ph = phase_find(phase);
	json_t *m = store_row(db, "SELECT state, phase, round, error,"
	    " environments_json FROM migrations WHERE id = ?", "i", id);
	const char *state;
	long long round;
	char now[32];
	int ok = 0, rc = -1;
	size_t i;

	if (m == NULL || ph == NULL) {
		*code = "MIGRATION_NOT_FOUND";
		set_cause(cause, "no migration %lld", id);
		goto out;
	}
	state = jsonx_str(m, "state");
	for (i = 0; i < 6 && ph->from[i]; i++)
		if (strcmp(ph->from[i], state) == 0)
			ok = 1;
	/* A failed phase may be abandoned for abort (before cutover) or
	 * rollback (cutover): the running state of that phase is listed in
	 * their `from`. Any other running state is busy. */
	if (!ok) {
		*code = "MIGRATION_WRONG_STATE";
		if (strcmp(phase, "abort") == 0)
			set_cause(cause, "migration %lld is %s: abort is only "
			    "possible before the cutover (use rollback after "
			    "it)", id, state);
		else if (strcmp(phase, "rollback") == 0)
			set_cause(cause, "migration %lld is %s: rollback is "
			    "only possible after the cutover and before the "
			    "source node's offboarding is approved", id, state);
		else
			set_cause(cause, "migration %lld is %s: cannot %s now",
			    id, state, phase);
		goto out;
	}
	if (strcmp(phase, "rollback") == 0 && store_int(db, 0,
	    "SELECT 1 FROM offboarding_requests o JOIN migrations m ON"
	    " m.offboarding_request_id = o.id WHERE m.id = ? AND"
	    " o.state = 'approved'", "i", id) == 1) {
		*code = "MIGRATION_WRONG_STATE";
		set_cause(cause, "the source node's offboarding was approved: "
		    "rollback is no longer possible");
		goto out;
	}
	round = jsonx_int(m, "round", 0);
	if (strcmp(phase, "rehearse") == 0 || strcmp(phase, "cutover") == 0)
		round++;
	util_time_iso(util_now(), now, sizeof now);
	if (steps_add(db, id, ph, round, json_object_get(m, "environments"))
	    == -1 ||
	    store_run(db, "UPDATE migrations SET phase = ?, round = ?,"
	    " state = ?, error = NULL, updated_at = ? WHERE id = ?", "sissi",
	    phase, round, ph->running, now, id) != STORE_OK) {
		*code = "STORE_ERROR";
		set_cause(cause, "cannot record the %s: %s", phase,
		    store_errmsg(db));
		goto out;
	}
	rc = 0;
out:
	json_decref(m);
	return rc;
}

int
migrate_ctx_load(sqlite3 *db, long long id, struct migrate_ctx *c)
{
	json_t *m = store_row(db, "SELECT m.*, a.subdomain AS app_subdomain,"
	    " s.name AS source_name, t.name AS target_name"
	    " FROM migrations m JOIN apps a ON a.id = m.app_id"
	    " JOIN nodes s ON s.id = m.source_node_id"
	    " JOIN nodes t ON t.id = m.target_node_id WHERE m.id = ?", "i", id);

	if (m == NULL)
		return -1;
	memset(c, 0, sizeof *c);
	c->db = db;
	c->id = id;
	c->row = m;
	c->app_id = jsonx_int(m, "app_id", 0);
	c->source_node = jsonx_int(m, "source_node_id", 0);
	c->target_node = jsonx_int(m, "target_node_id", 0);
	c->temp_app = jsonx_int(m, "temp_app_id", 0);
	c->round = jsonx_int(m, "round", 0);
	c->created_by = jsonx_int(m, "created_by", 0);
	c->app_subdomain = jsonx_str(m, "app_subdomain");
	c->source_name = jsonx_str(m, "source_name");
	c->target_name = jsonx_str(m, "target_name");
	c->phase = jsonx_str(m, "phase");
	return 0;
}

void
migrate_progress(struct migrate_ctx *c, json_t *progress)
{
	char now[32];

	util_time_iso(util_now(), now, sizeof now);
	store_run(c->db, "UPDATE migration_steps SET progress_json = ?"
	    " WHERE id = ?", "ji", progress, c->step_id);
	if (c->job_id)
		migrate_steps_job_progress(c, progress);
	json_decref(progress);
}

/* A step that failed because a node could not be reached — the portal's
 * call to it (a cause holding NODE_UNREACHABLE) or the stream between the
 * two nodes (c->unreachable) — is tried again by the runner itself, after
 * MIGRATE_RETRY_FIRST seconds, twice as long each time up to
 * MIGRATE_RETRY_MAX, for MIGRATE_RETRY_WINDOW seconds; after that, as on
 * any other failure, the migration stops and waits for the user. */
#define MIGRATE_RETRY_FIRST	2
#define MIGRATE_RETRY_MAX	30
#define MIGRATE_RETRY_WINDOW	(60 * 60)

struct migrate_retry {
	long long	 step;		/* the step being retried */
	double		 since;		/* its first failure (util_mono) */
	int		 delay, tries;
};

/* Wait before running c's step again after it failed with why, saying so
 * in its progress. 0 when the wait is over; -1 when the window has passed
 * or the user stopped the retries (migrations_phase() sets the error). */
static int
retry_wait(struct migrate_ctx *c, const char *why, struct migrate_retry *rt)
{
	double end;

	if (rt->step != c->step_id) {
		rt->step = c->step_id;
		rt->since = util_mono();
		rt->delay = 0;
		rt->tries = 0;
	}
	if (util_mono() - rt->since > MIGRATE_RETRY_WINDOW)
		return -1;
	rt->delay = rt->delay == 0 ? MIGRATE_RETRY_FIRST :
	    rt->delay * 2 > MIGRATE_RETRY_MAX ? MIGRATE_RETRY_MAX :
	    rt->delay * 2;
	rt->tries++;
	log_warn("migration %lld: a node cannot be reached; trying again in "
	    "%d s (retry %d)", c->id, rt->delay, rt->tries);
	migrate_progress(c, json_pack("{s:s,s:s,s:i,s:i}", "message",
	    "a node cannot be reached: trying again", "retrying", why,
	    "retry_in", rt->delay, "retries", rt->tries));
	for (end = util_mono() + rt->delay; util_mono() < end;) {
		sleep(1);
		if (store_int(c->db, 0, "SELECT error IS NOT NULL FROM"
		    " migrations WHERE id = ?", "i", c->id) == 1)
			return -1;
	}
	return 0;
}

int
migrate_run(long long id, long long job_id, char **cause)
{
	sqlite3 *db = store_db();
	struct migrate_ctx c;
	const struct migrate_phase *ph;
	struct migrate_retry rt = { 0, 0, 0, 0 };
	json_t *step = NULL;
	char now[32];
	int rc = -1;

	*cause = NULL;
	for (;;) {
		const struct migrate_step_kind *k;
		json_t *result = NULL;
		char *why = NULL;
		char *point;
		double t0;
		int src;

		if (migrate_ctx_load(db, id, &c) == -1) {
			set_cause(cause, "no migration %lld", id);
			return -1;
		}
		c.job_id = job_id;
		ph = phase_find(c.phase);
		json_decref(step);
		step = store_row(db, "SELECT id, name, environment, state,"
		    " result_json, input_json FROM migration_steps WHERE migration_id = ?"
		    " AND phase = ? AND round = ? AND state NOT IN"
		    " ('done','skipped') ORDER BY seq LIMIT 1", "isi", id,
		    c.phase, c.round);
		if (step == NULL) {
			/* every step of the phase is done */
			util_time_iso(util_now(), now, sizeof now);
			store_run(db, "UPDATE migrations SET state = ?,"
			    " error = NULL, updated_at = ?, finished_at ="
			    " CASE WHEN ? IN ('completed','aborted',"
			    "'rolled-back') THEN ? ELSE finished_at END"
			    " WHERE id = ?", "ssssi", ph->done, now, ph->done,
			    now, id);
			log_info("migration %lld: %s done, now %s", id,
			    ph->name, ph->done);
			if (jsonx_int(c.row, "run_all", 0) &&
			    migrate_steps_next_phase(&c, ph->done) == 1) {
				json_decref(c.row);
				continue;
			}
			json_decref(c.row);
			rc = 0;
			break;
		}
		k = migrate_steps_kind(jsonx_str(step, "name"));
		c.step_id = jsonx_int(step, "id", 0);
		c.env = jsonx_str(step, "environment");
		c.prior = json_object_get(step, "result");
		c.input = json_object_get(step, "input");
		/* Journal before: the step is running (attempt n). */
		util_time_iso(util_now(), now, sizeof now);
		store_run(db, "UPDATE migration_steps SET state = 'running',"
		    " attempts = attempts + 1, started_at = ?, error = NULL"
		    " WHERE id = ?", "si", now, c.step_id);
		store_run(db, "UPDATE migrations SET state = ?, updated_at = ?"
		    " WHERE id = ?", "ssi", ph->running, now, id);
		point = c.env ? xasprintf("%s:%s", k->name, c.env) :
		    xstrdup(k->name);
		log_info("migration %lld: %s %s", id, ph->name, point);
		testhook_pause(point);
		testhook_pause(k->name);
		t0 = util_mono();
		src = k->run(&c, &result, &why);
		/* what each step took: the downtime estimates' figures */
		if (src == 0 && json_is_object(result) &&
		    json_object_get(result, "seconds") == NULL)
			json_object_set_new(result, "seconds", json_real(
			    util_mono() - t0));
		util_time_iso(util_now(), now, sizeof now);
		/* Journal after: done (with what it made) or failed. */
		if (src == 0) {
			store_run(db, "UPDATE migration_steps SET state = ?,"
			    " result_json = ?, finished_at = ? WHERE id = ?",
			    "sjsi", "done", result, now, c.step_id);
			free(point);
			json_decref(result);
			json_decref(c.row);
			continue;
		}
		log_warn("migration %lld: %s failed: %s", id, point, why);
		store_run(db, "UPDATE migration_steps SET state = 'failed',"
		    " result_json = COALESCE(?, result_json), error = ?,"
		    " finished_at = ? WHERE id = ?", "jssi", result, why, now,
		    c.step_id);
		if ((c.unreachable || (why && strstr(why, NODE_UNREACHABLE))) &&
		    retry_wait(&c, why, &rt) == 0) {
			free(point);
			free(why);
			json_decref(result);
			json_decref(c.row);
			continue;
		}
		util_time_iso(util_now(), now, sizeof now);
		store_run(db, "UPDATE migrations SET error = ?, updated_at = ?"
		    " WHERE id = ?", "ssi", why, now, id);
		set_cause(cause, "step %s failed: %s", point, why);
		free(point);
		free(why);
		json_decref(result);
		json_decref(c.row);
		break;
	}
	json_decref(step);
	return rc;
}

/* Before a cutover: how long each environment will be down, from the
 * database size the last copy saw. */
static json_t *
estimates(sqlite3 *db, json_t *m)
{
	json_t *envs = json_object_get(m, "environments"), *e, *out;
	long long id = jsonx_int(m, "id", 0);
	long long app = store_int(db, 0, "SELECT app_id FROM migrations"
	    " WHERE id = ?", "i", id);
	long long target = store_int(db, 0, "SELECT target_node_id FROM"
	    " migrations WHERE id = ?", "i", id);
	size_t i;

	out = json_object();
	json_array_foreach(envs, i, e) {
		const char *env = json_string_value(e);
		long long bytes = store_int(db, -1, "SELECT CASE WHEN"
		    " json_extract(result_json, '$.skipped') IS NULL THEN"
		    " json_extract(result_json, '$.database_bytes') ELSE -1 END"
		    " FROM migration_steps WHERE migration_id = ? AND"
		    " name = 'data' AND environment = ? AND state = 'done'"
		    " ORDER BY id DESC LIMIT 1", "is", id, env);

		if (env)
			json_object_set_new(out, env, migrate_estimate(db, app,
			    target, env, bytes, migrate_repl_on(m)));
	}
	return out;
}

json_t *
migrate_json(sqlite3 *db, long long id)
{
	json_t *m = store_row(db, "SELECT m.id, m.uuid, a.subdomain AS app,"
	    " s.name AS source, t.name AS target, ta.subdomain AS temporary_app,"
	    " m.method, m.method_reason, m.state, m.phase, m.round, m.run_all,"
	    " m.environments_json,"
	    " m.downtime_ms, m.report_json, m.error, m.job_id,"
	    " m.offboarding_request_id, u.email AS created_by, m.created_at,"
	    " m.updated_at, m.finished_at"
	    " FROM migrations m JOIN apps a ON a.id = m.app_id"
	    " JOIN nodes s ON s.id = m.source_node_id"
	    " JOIN nodes t ON t.id = m.target_node_id"
	    " LEFT JOIN apps ta ON ta.id = m.temp_app_id"
	    " LEFT JOIN users u ON u.id = m.created_by WHERE m.id = ?", "i", id);
	json_t *steps, *cur = NULL;
	const char *state;

	if (m == NULL)
		return NULL;
	steps = store_rows(db, "SELECT seq, phase, round, name, environment,"
	    " state, attempts, input_json, progress_json, result_json, error,"
	    " started_at,"
	    " finished_at FROM migration_steps WHERE migration_id = ?"
	    " ORDER BY seq", "i", id);
	cur = store_row(db, "SELECT name, environment, state, progress_json"
	    " FROM migration_steps WHERE migration_id = ? AND phase = ? AND"
	    " round = ? AND state NOT IN ('done','skipped') ORDER BY seq"
	    " LIMIT 1", "isi", id, jsonx_str(m, "phase"),
	    jsonx_int(m, "round", 0));
	json_object_set_new(m, "run_all", json_boolean(jsonx_int(m, "run_all",
	    0)));
	state = jsonx_str(m, "state");
	/* retrying: a step failed as a node could not be reached and
	 * the runner waits to try it again (retry_wait) */
	json_object_set_new(m, "status", json_string(
	    !json_is_null(json_object_get(m, "error")) ? "failed" :
	    cur && strcmp(jsonx_str(cur, "state"), "failed") == 0 &&
	    json_object_get(json_object_get(cur, "progress"), "retry_in") ?
	    "retrying" :
	    strcmp(state, "completed") == 0 || strcmp(state, "aborted") == 0 ||
	    strcmp(state, "rolled-back") == 0 ? "finished" :
	    strcmp(state, "copied") == 0 || strcmp(state, "created") == 0 ||
	    strcmp(state, "cut-over") == 0 ? "waiting" : "running"));
	json_object_set_new(m, "current_step", cur ? cur : json_null());
	json_object_set_new(m, "steps", steps ? steps : json_array());
	if (strcmp(state, "copied") == 0)
		json_object_set_new(m, "cutover_estimates", estimates(db, m));
	json_object_set_new(m, "next", migrate_steps_next_hint(db, m));
	return m;
}

json_t *
migrate_on_offboarded(sqlite3 *db, long long node_id)
{
	json_t *rows = store_rows(db, "SELECT id FROM migrations WHERE"
	    " source_node_id = ? AND state = 'cut-over'", "i", node_id);
	json_t *out = json_array(), *row;
	const char *code;
	char *cause = NULL;
	size_t i;

	json_array_foreach(rows, i, row) {
		long long id = jsonx_int(row, "id", 0);

		if (migrate_phase(db, id, "finalize", &code, &cause) == 0)
			json_array_append_new(out, json_integer(id));
		else
			log_warn("migration %lld: %s", id, cause);
		free(cause);
		cause = NULL;
	}
	json_decref(rows);
	return out;
}
