/* The job runner: a table of job kinds, worker threads claiming queued jobs
 * from the store, progress and results written back to the jobs table. */
#include "jobs.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "store.h"
#include "util.h"
#include "waits.h"
#include "xmalloc.h"

/* route-migrations.c */
int migrations_job(struct job *, json_t **, char **);
/* offboarding.c */
int offboarding_purge_job(struct job *, json_t **, char **);

/* THE table of job kinds; add yours in your area's section. */
int backups_job_restore(struct job *, json_t **, char **);
/* snapcopy.c */
int snapcopy_job(struct job *, json_t **, char **);
/* route-packages.c */
int packages_job_upload(struct job *, json_t **, char **);

static const struct job_kind job_kinds[] = {
	{ "snapshot.create", backups_job_create },
	{ "snapshot.restore", backups_job_restore },
	{ "snapshot.copy", snapcopy_job },
	/* environments (route-envs.c) */
	{ "env.start", envs_job_action },
	{ "env.stop", envs_job_action },
	{ "env.restart", envs_job_action },
	{ "env.clean", envs_job_action },
	{ "env.transport", envs_job_action },
	{ "env.scale", envs_job_action },


	/* packages (route-packages.c): an upload the portal received */
	{ "package.upload", packages_job_upload },

	/* backups (route-backups.c) */


	/* settings (route-settings.c) */


	/* migrations (route-migrations.c) */
	{ "migration", migrations_job },
	{ "offboarding.purge", offboarding_purge_job },
};

#define JOB_WORKERS_MAX 16
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_cond = PTHREAD_COND_INITIALIZER;
static pthread_t jobs_threads[JOB_WORKERS_MAX];
static unsigned jobs_nthreads;
static int jobs_stopping;
static struct portal *jobs_portal;

static const struct job_kind *
kind_find(const char *kind)
{
	size_t i;

	for (i = 0; i < sizeof job_kinds / sizeof job_kinds[0]; i++)
		if (strcmp(job_kinds[i].kind, kind) == 0)
			return &job_kinds[i];
	return NULL;
}

long long
job_submit(sqlite3 *db, const char *kind, long long app_id, long long node_id,
    const char *environment, json_t *params, long long created_by)
{
	char now[32];
	long long id;

	util_time_iso(util_now(), now, sizeof now);
	if (store_run(db, "INSERT INTO jobs (kind, app_id, node_id,"
	    " environment, params_json, progress_json, created_by, created_at)"
	    " VALUES (?, NULLIF(?, 0), NULLIF(?, 0), ?, ?, ?, NULLIF(?, 0), ?)",
	    "siisjsis", kind, app_id, node_id, environment, params,
	    "{\"message\":\"queued\"}", created_by, now) != STORE_OK)
		return 0;
	id = store_last_id(db);
	pthread_mutex_lock(&jobs_lock);
	pthread_cond_broadcast(&jobs_cond);
	pthread_mutex_unlock(&jobs_lock);
	return id;
}

void
job_submit_reply(struct preq *r, const char *kind, const char *environment,
    json_t *params)
{
	long long id;
	char *loc;

	if (params == NULL)
		params = json_object();
	id = job_submit(r->db, kind, r->app_id, r->node_id, environment,
	    params, r->who.user_id);
	json_decref(params);
	if (id == 0) {
		reply_store_error(r);
		return;
	}
	loc = xasprintf("/api/v1/jobs/%lld", id);
	reply(r, 202, json_pack("{s:o}", "job", job_json(r->db, id)));
	http_add_header(r->http, "Location", loc);
	free(loc);
}

void
job_progress(struct job *j, json_t *extra, const char *fmt, ...)
{
	json_t *p = extra ? extra : json_object();
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	json_object_set_new(p, "message", json_string(msg));
	store_run(j->db, "UPDATE jobs SET progress_json = ? WHERE id = ?",
	    "ji", p, j->id);
	json_decref(p);
	free(msg);
	waits_changed();
}

/* What a job is, in words: "the backup of Test". */
static char *
job_what(const char *kind, const char *env)
{
	static const char *const names[][2] = {
		{ "snapshot.create", "backup" }, { "snapshot.restore",
		"restore" }, { "snapshot.copy", "off-node copy" }, { "env.start", "start" }, { "env.stop", "stop" },
		{ "env.restart", "restart" }, { "env.clean", "clean" },
		{ "env.transport", "transport" }, { "env.scale", "scale" },
		{ "migration", "migration" }, { "offboarding.purge", "purge" },
		{ "package.upload", "package upload" },
	};
	const char *what = kind;
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(names[i][0], kind) == 0)
			what = names[i][1];
	return env ? xasprintf("the %s of %s", what, env) :
	    xasprintf("the %s", what);
}

/* A queued job waits for the job of its environment that runs (or, none
 * running yet, for the one queued before it): say which, in its progress
 * message and as waiting_for {id, kind}. */
static void
job_waiting(sqlite3 *db, long long id, json_t *j)
{
	json_t *w = store_row(db, "SELECT r.id, r.kind, r.environment, r.state"
	    " FROM jobs q, jobs r WHERE q.id = ?1 AND r.id != q.id AND"
	    " r.state IN ('running','queued') AND r.node_id IS q.node_id AND"
	    " r.app_id IS q.app_id AND r.environment = q.environment AND"
	    " (r.state = 'running' OR r.id < q.id)"
	    " ORDER BY r.state = 'running' DESC, r.id LIMIT 1", "i", id);
	char *what, *sid;

	if (w == NULL)
		return;
	what = job_what(jsonx_str(w, "kind"), jsonx_str(w, "environment"));
	sid = xasprintf("%lld", jsonx_int(w, "id", 0));
	json_object_set_new(j, "progress", json_pack("{s:s++}", "message",
	    "waiting for ", what, " to finish"));
	json_object_set_new(j, "waiting_for", json_pack("{s:s,s:s}", "id",
	    sid, "kind", jsonx_str(w, "kind")));
	free(sid);
	free(what);
	json_decref(w);
}

json_t *
job_json(sqlite3 *db, long long id)
{
	json_t *j = store_row(db, "SELECT j.id, j.kind, j.state, a.subdomain"
	    " AS app, j.environment, j.progress_json, j.result_json, j.error,"
	    " j.created_at, j.started_at, j.finished_at, j.run_ms FROM jobs j"
	    " LEFT JOIN apps a ON a.id = j.app_id WHERE j.id = ?", "i", id);

	if (j) {
		/* ids are strings in the API, as everywhere else */
		char *s = xasprintf("%lld", id);

		json_object_set_new(j, "id", json_string(s));
		free(s);
		if (strcmp(jsonx_str(j, "state"), "queued") == 0)
			job_waiting(db, id, j);
	}
	return j;
}

/* Claim the oldest queued job whose environment has no running job. */
static long long
job_claim(sqlite3 *db)
{
	long long id;
	char now[32];

	if (store_begin(db) == -1)
		return 0;
	id = store_int(db, 0, "SELECT id FROM jobs q WHERE state = 'queued'"
	    " AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.state = 'running'"
	    " AND r.node_id IS q.node_id AND r.app_id IS q.app_id"
	    " AND r.environment = q.environment)"
	    " ORDER BY id LIMIT 1", "");
	util_time_iso(util_now(), now, sizeof now);
	if (id && store_run(db, "UPDATE jobs SET state = 'running',"
	    " started_at = ? WHERE id = ?", "si", now, id) != STORE_OK)
		id = 0;
	if (store_commit(db) == -1)
		return 0;
	if (id)
		waits_changed();
	return id;
}

static void
job_run(sqlite3 *db, long long id)
{
	json_t *row, *result = NULL;
	const struct job_kind *k;
	struct job j;
	char *cause = NULL;
	char now[32];
	double t0 = util_mono();
	long long ms;
	int rc = -1;

	memset(&j, 0, sizeof j);
	row = store_row(db, "SELECT kind, IFNULL(app_id, 0) AS app_id,"
	    " IFNULL(node_id, 0) AS node_id, environment, params_json,"
	    " IFNULL(created_by, 0) AS created_by FROM jobs WHERE id = ?",
	    "i", id);
	if (row == NULL)
		return;
	j.id = id;
	j.db = db;
	j.portal = jobs_portal;
	j.kind = jsonx_str(row, "kind");
	j.app_id = jsonx_int(row, "app_id", 0);
	j.node_id = jsonx_int(row, "node_id", 0);
	j.created_by = jsonx_int(row, "created_by", 0);
	if (jsonx_str(row, "environment"))
		j.environment = xstrdup(jsonx_str(row, "environment"));
	j.params = json_object_get(row, "params");
	j.params = json_is_object(j.params) ? json_incref(j.params) :
	    json_object();
	k = kind_find(j.kind);
	if (k == NULL)
		cause = xasprintf("unknown job kind '%s'", j.kind);
	else
		rc = k->run(&j, &result, &cause);
	util_time_iso(util_now(), now, sizeof now);
	ms = (long long)((util_mono() - t0) * 1000 + 0.5);
	if (rc == 0)
		store_run(db, "UPDATE jobs SET state = 'completed', result_json"
		    " = ?, finished_at = ?, run_ms = ? WHERE id = ?", "jsii",
		    result, now, ms, id);
	else	/* a failure's stable code, when it has one: {code} */
		store_run(db, "UPDATE jobs SET state = 'failed', error = ?,"
		    " result_json = ?, finished_at = ?, run_ms = ? WHERE id = ?",
		    "sjsii", cause ? cause : "failed", jsonx_str(result,
		    "code") ? result : NULL, now, ms, id);
	if (rc != 0)
		log_warn("job %lld (%s) failed: %s", id, j.kind,
		    cause ? cause : "?");
	json_decref(result);
	json_decref(j.params);
	free(j.environment);
	free(cause);
	json_decref(row);
	/* a finished job may unblock another on the same environment */
	pthread_mutex_lock(&jobs_lock);
	pthread_cond_broadcast(&jobs_cond);
	pthread_mutex_unlock(&jobs_lock);
	waits_changed();
}

static void *
jobs_worker(void *arg)
{
	sqlite3 *db = store_db();

	(void)arg;
	for (;;) {
		long long id;

		pthread_mutex_lock(&jobs_lock);
		if (jobs_stopping) {
			pthread_mutex_unlock(&jobs_lock);
			break;
		}
		pthread_mutex_unlock(&jobs_lock);
		id = job_claim(db);
		if (id) {
			job_run(db, id);
			continue;
		}
		pthread_mutex_lock(&jobs_lock);
		if (!jobs_stopping) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&jobs_cond, &jobs_lock, &ts);
		}
		pthread_mutex_unlock(&jobs_lock);
	}
	store_close_thread();
	return NULL;
}

/* job_wait_reply()'s check: the job finished, is gone, or (with a
 * revision) changed. */
static int
job_wait_check(sqlite3 *db, struct preq *r)
{
	char *st = store_text(db, "SELECT state FROM jobs WHERE id = ?", "i",
	    r->wait_job);
	int done = st == NULL || strcmp(st, "completed") == 0 ||
	    strcmp(st, "failed") == 0;

	free(st);
	if (!done && r->wait_rev) {
		json_t *j = job_json(db, r->wait_job);

		done = j == NULL || wait_revision(j) != r->wait_rev;
		json_decref(j);
	}
	return done;
}

void
job_wait_reply(struct preq *r, long long id, int secs, route_handler then,
    const void *arg)
{
	r->wait_job = id;
	wait_reply(r, secs, job_wait_check, then, arg);
}

void
jobs_start(struct portal *p, unsigned nthreads)
{
	sqlite3 *db = store_db();
	unsigned i;

	jobs_portal = p;
	/* the portal stopped while these ran: run them again (idempotent) */
	store_run(db, "UPDATE jobs SET state = 'queued' WHERE state ="
	    " 'running'", "");
	if (nthreads > JOB_WORKERS_MAX)
		nthreads = JOB_WORKERS_MAX;
	waits_start();
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&jobs_threads[i], NULL, jobs_worker, NULL)
		    == 0)
			jobs_nthreads++;
}

/* Workers stop claiming jobs. Idle ones are joined; one still running is
 * waited for a moment only (it may be waiting on a node for minutes) and
 * is re-queued at the next start. */
void
jobs_stop(void)
{
	struct timespec ts;
	unsigned i;

	pthread_mutex_lock(&jobs_lock);
	jobs_stopping = 1;
	pthread_cond_broadcast(&jobs_cond);
	pthread_mutex_unlock(&jobs_lock);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	for (i = 0; i < jobs_nthreads; i++)
		if (pthread_timedjoin_np(jobs_threads[i], NULL, &ts) != 0)
			pthread_detach(jobs_threads[i]);
	jobs_nthreads = 0;
}

/* The longest a GET /jobs/{id}?wait= is held (seconds). */
#define JOB_WAIT_MAX	60

/* Answer j (taken) with its revision. */
static void
job_reply(struct preq *r, json_t *j, unsigned long long rev)
{
	char hex[17];

	snprintf(hex, sizeof hex, "%016llx", rev);
	json_object_set_new(j, "revision", json_string(hex));
	reply(r, 200, j);
}

/* job_wait_reply()'s continuation: the job as it is now (its access was
 * checked before the wait). */
static void
jobs_show_now(struct preq *r)
{
	json_t *j = job_json(r->db, r->wait_job);

	if (j == NULL) {
		reply_error(r, 404, "JOB_NOT_FOUND", "no job '%lld'",
		    r->wait_job);
		return;
	}
	job_reply(r, j, wait_revision(j));
}

/* GET /jobs/{id}: the caller's own jobs, jobs of apps they are a member
 * of, or any job for admins. */
void
jobs_show(struct preq *r)
{
	long long id, app_id, by, secs;
	unsigned long long rev, seen;
	json_t *j;

	if (util_parse_int(preq_param(r, "id"), 1, 1LL << 53, &id) == -1 ||
	    (j = job_json(r->db, id)) == NULL) {
		reply_error(r, 404, "JOB_NOT_FOUND", "no job '%s'",
		    preq_param(r, "id"));
		return;
	}
	app_id = store_int(r->db, 0, "SELECT app_id FROM jobs WHERE id = ?",
	    "i", id);
	by = store_int(r->db, 0, "SELECT created_by FROM jobs WHERE id = ?",
	    "i", id);
	/* A key limited to named apps sees only their jobs (and its own
	 * jobs that have no app). */
	if ((!r->who.is_admin && by != r->who.user_id && !(app_id &&
	    (auth_is_app_tc(r, app_id) || store_int(r->db, 0, "SELECT 1 FROM"
	    " members WHERE app_id = ? AND user_id = ?", "ii", app_id,
	    r->who.user_id) == 1))) ||
	    (app_id && !auth_key_allows_app(r, app_id))) {
		json_decref(j);
		reply_error(r, 404, "JOB_NOT_FOUND", "no job '%s'",
		    preq_param(r, "id"));
		return;
	}
	rev = wait_revision(j);
	/* ?wait=S&revision=R: a client that saw revision R is answered once
	 * the job changes, or after S seconds (long polling) */
	switch (wait_query(r, JOB_WAIT_MAX, &secs, &seen)) {
	case -1:
		json_decref(j);
		return;
	case 1:
		if (seen == rev && strcmp(jsonx_str(j, "state"), "completed")
		    != 0 && strcmp(jsonx_str(j, "state"), "failed") != 0) {
			json_decref(j);
			r->wait_rev = rev;
			job_wait_reply(r, id, (int)secs, jobs_show_now, NULL);
			return;
		}
	}
	job_reply(r, j, rev);
}
