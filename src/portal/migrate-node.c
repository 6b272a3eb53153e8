/* What migrations and offboarding ask of the nodes (migrate-node.h), built
 * on the node protocol (nodeclient.c), the environment actions
 * (route-envs.c), settings (settings.c) and packages; the bulk data goes
 * node to node (src/node/transfer.c), the portal only signs and polls. */
#include "migrate-node.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "jobs.h"
#include "jsonx.h"
#include "log.h"
#include "migrate.h"
#include "migrate-changes.h"
#include "migrate-repl.h"
#include "migrate-steps.h"
#include "nodeclient.h"
#include "portal.h"
#include "settings.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* route-envs.c */
json_t *envs_spec(sqlite3 *db, const char *domain, long long env_id);

/* How long a node may be unreachable while we poll it before the step
 * fails (and migrate_run() tries it again, with back-off). */
#define MIGRATE_NODE_GRACE_SECONDS	10
/* Signed URLs for the node-to-node copy. */
#define MIGRATE_URL_TTL			(6 * 3600)

static struct portal *migrate_portal;

void
migrate_node_set_portal(struct portal *p)
{
	migrate_portal = p;
}

const char *
migrate_node_cloud_domain(void)
{
	return migrate_portal && migrate_portal->cloud_domain ?
	    migrate_portal->cloud_domain : "nubo.localhost";
}

static int
fail(char **cause, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	*cause = xvasprintf(fmt, ap);
	va_end(ap);
	return -1;
}

long long
migrate_node_now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void
migrate_steps_job_progress(struct migrate_ctx *c, json_t *progress)
{
	struct job j;
	const char *msg = jsonx_str(progress, "message");

	memset(&j, 0, sizeof j);
	j.id = c->job_id;
	j.db = c->db;
	j.portal = migrate_portal;
	job_progress(&j, json_deep_copy(progress), "%s", msg ? msg : "");
}

/* node_call_timeout, retried while the node cannot be reached (it may be
 * restarting) for up to MIGRATE_NODE_GRACE_SECONDS. */
int
migrate_node_call(sqlite3 *db, long long node, const char *method, const char *path,
    json_t *body, json_t **out, char **cause, long timeout)
{
	long long start = migrate_node_now_ms();
	int st;

	for (;;) {
		st = node_call_timeout(db, node, method, path, body, out, cause,
		    timeout);
		if (st != -1 || migrate_node_now_ms() - start >
		    MIGRATE_NODE_GRACE_SECONDS * 1000)
			return st;
		free(*cause);
		*cause = NULL;
		sleep(1);
	}
}

/* An environment action through route-envs.c's job function: push the
 * spec, act, wait until settled. */
static int
env_action_job(sqlite3 *db, long long job_id, long long node_id,
    long long env_id, const char *action, json_t *extra, char **cause)
{
	struct job j;
	json_t *result = NULL;
	char *kind = xasprintf("env.%s", action);
	int rc;

	memset(&j, 0, sizeof j);
	j.id = job_id;
	j.kind = kind;
	j.node_id = node_id;
	j.params = json_pack("{s:I}", "env_id", (json_int_t)env_id);
	if (extra)
		json_object_update(j.params, extra);
	j.db = db;
	j.portal = migrate_portal;
	*cause = NULL;
	rc = envs_job_action(&j, &result, cause);
	json_decref(result);
	json_decref(j.params);
	free(kind);
	return rc;
}

int
migrate_node_env_action(sqlite3 *db, long long node_id, long long env_id,
    const char *action, char **cause)
{
	return env_action_job(db, 0, node_id, env_id, action, NULL, cause);
}

int
migrate_node_push_node(sqlite3 *db, long long node_id, char **cause)
{
	json_t *rows = store_rows(db, "SELECT id FROM environments WHERE"
	    " node_id = ?", "i", node_id), *row;
	size_t i;
	int rc = 0;

	json_array_foreach(rows, i, row) {
		long long id = jsonx_int(row, "id", 0);
		json_t *spec = envs_spec(db, migrate_node_cloud_domain(), id);
		char *path = xasprintf("/agent/v1/environments/%lld", id);
		char *why = NULL;
		int st = node_call(db, node_id, "PUT", path, spec, NULL, &why);

		if (st < 200 || st >= 300) {
			rc = fail(cause, "cannot update environment %lld on "
			    "its node: %s", id, why ? why : "?");
			free(why);
			free(path);
			json_decref(spec);
			break;
		}
		free(why);
		free(path);
		json_decref(spec);
	}
	json_decref(rows);
	return rc;
}

int
migrate_node_maintenance(sqlite3 *db, long long node_id, long long env_id,
    int on, char **cause)
{
	json_t *spec;
	char *path, *why = NULL;
	int st;

	if (store_run(db, "UPDATE environments SET maintenance = ? WHERE"
	    " id = ?", "ii", (long long)on, env_id) != STORE_OK)
		return fail(cause, "store: %s", store_errmsg(db));
	spec = envs_spec(db, migrate_node_cloud_domain(), env_id);
	path = xasprintf("/agent/v1/environments/%lld", env_id);
	st = node_call(db, node_id, "PUT", path, spec, NULL, &why);
	json_decref(spec);
	free(path);
	if (st < 200 || st >= 300) {
		fail(cause, "cannot turn maintenance %s: %s", on ? "on" : "off",
		    why ? why : "?");
		free(why);
		return -1;
	}
	free(why);
	return 0;
}

/* The environment's row: state and package. */
static json_t *
env_row(sqlite3 *db, long long env_id)
{
	/* empty: never deployed, nor restored into (a restore into a
	 * never-started environment leaves its data there) */
	return store_row(db, "SELECT e.id, e.name, e.state, e.package,"
	    " e.node_id, (e.package IS NULL AND e.state = 'notdeployed' AND"
	    " NOT EXISTS (SELECT 1 FROM restores r WHERE r.environment_id ="
	    " e.id AND r.state = 'completed')) AS empty FROM environments e"
	    " WHERE e.id = ?", "i", env_id);
}

long long
migrate_node_env_id(sqlite3 *db, long long node, const char *name)
{
	return store_int(db, 0, "SELECT id FROM environments WHERE"
	    " node_id = ? AND app_id IS NULL AND name = ? COLLATE NOCASE",
	    "is", node, name);
}

int
migrate_node_env_empty(sqlite3 *db, long long env_id)
{
	json_t *e = env_row(db, env_id);
	int empty = e && jsonx_int(e, "empty", 0) == 1;

	json_decref(e);
	return empty;
}

int
migrate_node_keep_snapshot(struct migrate_ctx *c, long long node_id,
    long long env_id, const char *comment, char **uuid, char **cause)
{
	struct job j;
	/* the target holds what the source held: nothing to keep when the
	 * source environment is empty */
	long long src = migrate_node_env_id(c->db, c->source_node, c->env ?
	    c->env : "");
	json_t *e = env_row(c->db, src ? src : env_id);
	int none = e && jsonx_int(e, "empty", 0) == 1;

	json_decref(e);
	*uuid = NULL;
	if (none)
		return 0;	/* nothing deployed: nothing to keep */
	memset(&j, 0, sizeof j);
	j.id = c->job_id;
	j.kind = "snapshot.create";
	j.node_id = node_id;
	j.db = c->db;
	j.portal = migrate_portal;
	return backups_snapshot_kept(&j, env_id, comment, uuid, cause);
}

int
migrate_node_start_healthy(struct migrate_ctx *c, long long node_id,
    long long env_id, char **cause)
{
	json_t *e = env_row(c->db, env_id);
	int rc;

	if (e == NULL)
		return fail(cause, "no environment %lld", env_id);
	if (json_is_null(json_object_get(e, "package"))) {
		json_decref(e);
		return 0;	/* nothing deployed: nothing to start */
	}
	json_decref(e);
	migrate_progress(c, json_pack("{s:s}", "message", "starting, waiting "
	    "for the health check"));
	rc = env_action_job(c->db, c->job_id, node_id, env_id, "start", NULL,
	    cause);
	return rc;
}

/* 1 when the store says env is not running (the heartbeat keeps it
 * true): no stop needed. */
int
migrate_node_env_stopped(sqlite3 *db, long long env_id)
{
	return store_int(db, 0, "SELECT state IN ('stopped','notdeployed',"
	    "'failed') FROM environments WHERE id = ?", "i", env_id) == 1;
}

/* ---- configuration ---- */

/* seed §3.2.3 "make sure it has the same configurations as the v3 node":
 * the source's whole document (secrets included, they never leave the
 * portal) is translated to the target's generation and imported section by
 * section against the target's package; a section the target cannot take
 * keeps the target's own and is listed as not carried over. */
int
migrate_node_copy_settings(struct migrate_ctx *c, long long s, long long t,
    json_t **result, char **cause)
{
	json_t *stored = settings_load(c->db, s), *doc = NULL, *tr = NULL;
	json_t *errors = json_array(), *cur = settings_load(c->db, t);
	json_t *out = json_object(), *not = json_array(), *diff = NULL, *v;
	json_t *smanifest = NULL;
	char *sgen = settings_generation(c->db, s);
	char *tgen = settings_generation(c->db, t);
	struct settings_target tg;
	size_t i;
	int rc = -1, carried = 0, st;

	memset(&tg, 0, sizeof tg);
	doc = settings_render(stored, 1);
	tr = settings_translate(doc, sgen, tgen, errors);
	if (tr == NULL) {
		char *text = settings_errors_text(errors);

		fail(cause, "the configuration cannot be translated from %s to "
		    "%s: %s", sgen, tgen, text);
		free(text);
		goto out;
	}
	tg.generation = tgen;
	tg.manifest = settings_manifest(c->db, t);
	tg.current = cur;
	tg.now = util_now();
	for (i = 0; settings_sections[i]; i++) {
		const char *sec = settings_sections[i];
		json_t *in = json_object_get(tr, sec), *errs, *n;

		if (in == NULL || json_is_null(in))
			continue;
		errs = json_array();
		n = settings_normalize_section(&tg, sec, in, errs);
		if (n) {
			json_object_set_new(out, sec, n);
			carried++;
		} else {
			char *text = settings_errors_text(errs);

			json_array_append_new(not, json_pack("{s:s,s:s}",
			    "setting", sec, "message", text));
			free(text);
			if (json_object_get(cur, sec))
				json_object_set(out, sec,
				    json_object_get(cur, sec));
		}
		json_decref(errs);
	}
	if (store_begin(c->db) == -1) {
		fail(cause, "cannot save the configuration: %s",
		    store_errmsg(c->db));
		goto out;
	}
	/* a custom domain another app holds refuses the step, changing
	 * nothing (migrate_check() refused it at the start already; this is
	 * a claim made in between). The source's own domains are no claim:
	 * the temporary app stands for the app. */
	json_array_clear(errors);
	st = settings_save(c->db, t, out, 1, c->created_by, migrate_node_cloud_domain(),
	    errors);
	if (st != 0 || store_commit(c->db) == -1) {
		char *text = st < -1 ? settings_errors_text(errors) : NULL;

		store_rollback(c->db);
		fail(cause, "cannot save the configuration: %s", text ? text :
		    store_errmsg(c->db));
		free(text);
		goto out;
	}
	/* What still differs, for the report (settings diff, SPEC §2). */
	smanifest = settings_manifest(c->db, s);
	diff = settings_diff(stored, sgen, smanifest, out, tgen, tg.manifest);
	json_array_foreach(json_object_get(diff, "unsupported"), i, v)
		json_array_append_new(not, json_pack("{s:O,s:O}", "setting",
		    json_object_get(v, "setting"), "message",
		    json_object_get(v, "reason")));
	*result = json_pack("{s:s,s:s,s:i,s:O,s:O}", "from", sgen, "to", tgen,
	    "sections", carried, "not_carried_over", not, "differences",
	    json_object_get(diff, "differences") ? json_object_get(diff,
	    "differences") : json_array());
	rc = 0;
out:
	json_decref(stored);
	json_decref(doc);
	json_decref(tr);
	json_decref(errors);
	json_decref(cur);
	json_decref(out);
	json_decref(not);
	json_decref(diff);
	json_decref(tg.manifest);
	json_decref(smanifest);
	free(sgen);
	free(tgen);
	return rc;
}

/* ---- checksums, from both nodes at once ---- */

struct sum_call {
	long long	 node, env;
	const char	*query;
	json_t		*out;
	char		*cause;
	int		 status;
};

static void *
sum_thread(void *arg)
{
	struct sum_call *sc = arg;
	char *path = xasprintf("/agent/v1/environments/%lld/checksums%s",
	    sc->env, sc->query);

	sc->status = migrate_node_call(store_db(), sc->node, "GET", path, NULL,
	    &sc->out, &sc->cause, 3600);
	free(path);
	store_close_thread();
	return NULL;
}

static int
checksums_both(struct migrate_ctx *c, long long s, long long t,
    const char *query, json_t **src, json_t **dst, char **cause)
{
	struct sum_call a = { c->source_node, s, query, NULL, NULL, 0 };
	struct sum_call b = { c->target_node, t, query, NULL, NULL, 0 };
	pthread_t ta, tb;
	int rc = -1;

	pthread_create(&ta, NULL, sum_thread, &a);
	pthread_create(&tb, NULL, sum_thread, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	if (a.status != 200)
		fail(cause, "node '%s': cannot compute checksums: %s",
		    c->source_name, a.cause ? a.cause : "?");
	else if (b.status != 200)
		fail(cause, "node '%s': cannot compute checksums: %s",
		    c->target_name, b.cause ? b.cause : "?");
	else
		rc = 0;
	if (rc == 0) {
		*src = a.out;
		*dst = b.out;
	} else {
		json_decref(a.out);
		json_decref(b.out);
	}
	free(a.cause);
	free(b.cause);
	return rc;
}

/* How many of a checksum list's relations are of kind ("table",
 * "sequence"): the plan and the verification count alike. */
static long long
count_kind(json_t *list, const char *kind)
{
	long long n = 0;
	json_t *v;
	size_t i;

	json_array_foreach(list, i, v)
		n += jsonx_str(v, "kind") && strcmp(jsonx_str(v, "kind"),
		    kind) == 0;
	return n;
}

static json_t *
index_by(json_t *list, const char *key)
{
	json_t *idx = json_object(), *v;
	size_t i;

	json_array_foreach(list, i, v)
		if (jsonx_str(v, key))
			json_object_set(idx, jsonx_str(v, key), v);
	return idx;
}

int
migrate_node_import(struct migrate_ctx *c, long long t, json_t *body,
    long long total, long long files_total, json_t **task, char **cause)
{
	char *path = xasprintf("/agent/v1/environments/%lld/import", t);
	char *why = NULL;
	long long t0 = migrate_node_now_ms(), last_ok;
	int st, rc = -1;

	*task = NULL;
	st = migrate_node_call(c->db, c->target_node, "POST", path, body, task, &why,
	    60);
	if (st != 200 && st != 202) {
		fail(cause, "node '%s': cannot start the copy: %s",
		    c->target_name, why ? why : "?");
		goto out;
	}
	last_ok = migrate_node_now_ms();
	for (;;) {
		const char *state = jsonx_str(*task, "state");
		long long bytes = jsonx_int(*task, "bytes", 0);
		double secs = (migrate_node_now_ms() - t0) / 1000.0;
		json_t *p;

		if (state && strcmp(state, "completed") == 0)
			break;
		if (state && strcmp(state, "failed") == 0) {
			/* the stream from the source broke off */
			c->unreachable = json_is_true(json_object_get(*task,
			    "unreachable"));
			fail(cause, "node '%s': %s", c->target_name,
			    jsonx_str(*task, "error") ? jsonx_str(*task,
			    "error") : "the copy failed");
			goto out;
		}
		if (total <= 0 || jsonx_int(*task, "bytes_total", 0) > total)
			total = jsonx_int(*task, "bytes_total", 0);
		if (bytes > total)	/* the plan's sizes are estimates */
			total = bytes;
		p = json_pack("{s:s,s:I,s:I,s:I,s:I}", "message", state &&
		    jsonx_str(*task, "phase") ? jsonx_str(*task, "phase") :
		    "waiting for the node", "bytes", (json_int_t)bytes,
		    "bytes_total", (json_int_t)total, "files", (json_int_t)
		    jsonx_int(*task, "files", 0), "files_total", (json_int_t)(
		    files_total >= 0 ? files_total : jsonx_int(*task,
		    "files_total", 0)));
		if (bytes > 0 && secs > 1 && total > bytes)
			json_object_set_new(p, "eta_seconds", json_integer(
			    (json_int_t)((total - bytes) / (bytes / secs))));
		migrate_progress(c, p);
		usleep(200 * 1000);
		json_decref(*task);
		*task = NULL;
		free(why);
		why = NULL;
		st = node_call(c->db, c->target_node, "GET", path, NULL, task,
		    &why);
		if (st == 200) {
			last_ok = migrate_node_now_ms();
			continue;
		}
		if (st == 404) {
			/* the target restarted and forgot the task: run
			 * again, the step starts it anew */
			c->unreachable = 1;
			fail(cause, "node '%s' restarted during the copy",
			    c->target_name);
			goto out;
		}
		if (migrate_node_now_ms() - last_ok >
		    MIGRATE_NODE_GRACE_SECONDS * 1000) {
			fail(cause, "node '%s' is unreachable: %s",
			    c->target_name, why ? why : "?");
			goto out;
		}
	}
	rc = 0;
out:
	free(path);
	free(why);
	return rc;
}

/* seed §3.2.2: download the deployed package from the source's
 * repository, upload it to the target's (node to node, checked by
 * sha256), transport it to the same-named environment. */
int
migrate_node_copy_package(struct migrate_ctx *c, long long s, long long t,
    json_t **result, char **cause)
{
	json_t *se = env_row(c->db, s), *sums = NULL, *body = NULL;
	json_t *task = NULL, *extra = NULL;
	char *path = NULL, *url = NULL, *key = NULL, *why = NULL;
	const char *name, *sha;
	int st, rc = -1;

	if (se == NULL || json_is_null(json_object_get(se, "package"))) {
		*result = json_pack("{s:s}", "skipped", "no package is deployed "
		    "to this environment on the source");
		json_decref(se);
		return 0;
	}
	path = xasprintf("/agent/v1/environments/%lld/checksums?files=0"
	    "&database=0", s);
	st = migrate_node_call(c->db, c->source_node, "GET", path, NULL, &sums, &why,
	    60);
	if (st != 200 || !json_is_object(json_object_get(sums, "package"))) {
		fail(cause, "node '%s' cannot give the package of '%s': %s",
		    c->source_name, c->env, why ? why : "it has none");
		goto out;
	}
	name = jsonx_str(json_object_get(sums, "package"), "name");
	sha = jsonx_str(json_object_get(sums, "package"), "sha256");
	free(path);
	path = xasprintf("/agent/v1/environments/%lld/package", s);
	url = node_signed_url(c->db, c->source_node, "GET", path,
	    c->created_by, MIGRATE_URL_TTL, &why);
	if (url == NULL) {
		fail(cause, "node '%s': %s", c->source_name, why ? why : "?");
		goto out;
	}
	if (env_action_job(c->db, c->job_id, c->target_node, t, "stop", NULL,
	    &why) == -1) {
		fail(cause, "cannot stop the target environment: %s", why);
		goto out;
	}
	key = xasprintf("migration-%lld-step-%lld", c->id, c->step_id);
	body = json_pack("{s:s,s:{s:s,s:s,s:s}}", "key", key, "package",
	    "name", name, "url", url, "sha256", sha);
	if (migrate_node_import(c, t, body, 0, 0, &task, cause) == -1)
		goto out;
	migrate_progress(c, json_pack("{s:s}", "message", "transporting"));
	extra = json_pack("{s:s}", "package", name);
	free(why);
	why = NULL;
	if (env_action_job(c->db, c->job_id, c->target_node, t, "transport",
	    extra, &why) == -1) {
		fail(cause, "cannot transport '%s' to the target: %s", name,
		    why ? why : "?");
		goto out;
	}
	*result = json_pack("{s:s,s:s,s:I}", "package", name, "sha256", sha,
	    "bytes", (json_int_t)jsonx_int(task, "bytes", 0));
	rc = 0;
out:
	json_decref(se);
	json_decref(sums);
	json_decref(body);
	json_decref(task);
	json_decref(extra);
	free(path);
	free(url);
	free(key);
	free(why);
	return rc;
}

/* ---- data ---- */

int
migrate_node_data_urls(struct migrate_ctx *c, long long s, const char *dump,
    char **dump_url, char **files_url, char **manifest_url, char **cause)
{
	char *path = NULL, *why = NULL;

	*dump_url = *files_url = *manifest_url = NULL;
	if (dump) {
		path = xasprintf("/agent/v1/environments/%lld/%s", s, dump);
		*dump_url = node_signed_url(c->db, c->source_node, "GET",
		    path, c->created_by, MIGRATE_URL_TTL, &why);
		free(path);
	}
	path = xasprintf("/agent/v1/environments/%lld/files/export", s);
	*files_url = node_signed_url(c->db, c->source_node, "POST", path,
	    c->created_by, MIGRATE_URL_TTL, &why);
	free(path);
	path = xasprintf("/agent/v1/environments/%lld/files/manifest", s);
	*manifest_url = node_signed_url(c->db, c->source_node, "GET", path,
	    c->created_by, MIGRATE_URL_TTL, &why);
	free(path);
	if ((dump && !*dump_url) || !*files_url || !*manifest_url) {
		fail(cause, "node '%s': %s", c->source_name, why ? why : "?");
		free(*dump_url);
		free(*files_url);
		free(*manifest_url);
		*dump_url = *files_url = *manifest_url = NULL;
		free(why);
		return -1;
	}
	free(why);
	return 0;
}

int
migrate_node_copy_data(struct migrate_ctx *c, long long s, long long t,
    json_t **result, char **cause)
{
	int cutover = strcmp(c->phase, "cutover") == 0;
	json_t *src = NULL, *body = NULL, *task = NULL, *se = env_row(c->db, s);
	char *dump_url = NULL, *files_url = NULL, *manifest_url = NULL;
	char *path = NULL, *key = NULL, *why = NULL;
	long long t0 = migrate_node_now_ms();
	int st, rc = -1;

	if (se && jsonx_int(se, "empty", 0) == 1) {
		*result = json_pack("{s:s}", "skipped", "nothing was ever "
		    "deployed to this environment on the source");
		json_decref(se);
		return 0;
	}
	/* The source as it is before the copy (kept to tell what a live
	 * source changed during the copy from copy errors); at cutover the
	 * source is stopped and only its size is needed. */
	migrate_progress(c, json_pack("{s:s}", "message", cutover ?
	    "sizing" : "checksums of the source"));
	path = xasprintf("/agent/v1/environments/%lld/checksums%s", s,
	    cutover ? "?files=0&database=0" : "");
	st = migrate_node_call(c->db, c->source_node, "GET", path, NULL, &src, &why,
	    3600);
	if (st != 200) {
		fail(cause, "node '%s': cannot compute checksums: %s",
		    c->source_name, why ? why : "?");
		goto out;
	}
	/* The target must be stopped to take a new database. */
	free(why);
	why = NULL;
	if (!migrate_node_env_stopped(c->db, t) && env_action_job(c->db,
	    c->job_id, c->target_node, t, "stop", NULL, &why) == -1) {
		fail(cause, "cannot stop the target environment: %s", why);
		goto out;
	}
	if (migrate_node_data_urls(c, s, "dump", &dump_url, &files_url,
	    &manifest_url, cause) == -1)
		goto out;
	/* The same key for every attempt of this step: a node that still
	 * runs (or finished) the import answers with it instead of copying
	 * again. The target compares the two file lists itself and pulls
	 * only what differs (the delta). */
	key = xasprintf("migration-%lld-step-%lld", c->id, c->step_id);
	body = json_pack("{s:s,s:s,s:s,s:s,s:I}", "key", key, "dump_url",
	    dump_url, "files_url", files_url, "manifest_url", manifest_url,
	    "database_bytes", (json_int_t)jsonx_int(src, "database_bytes", 0));
	/* At cutover the source's checksums are not computed while the
	 * target copies: on two cores pg_dump and pg_restore already use
	 * both, and the verify step computes both sides at once (measured
	 * with bench/migrate: less downtime this way). */
	if (migrate_node_import(c, t, body, 0, -1, &task, cause) == -1)
		goto out;
	*result = json_pack("{s:I,s:I,s:I,s:I,s:I,s:f}",
	    "files_copied", (json_int_t)jsonx_int(task, "files_total", 0),
	    "files_unchanged", (json_int_t)jsonx_int(task, "files_unchanged",
	    0), "files_deleted", (json_int_t)jsonx_int(task, "files_deleted",
	    0), "bytes", (json_int_t)jsonx_int(task, "bytes", 0),
	    "database_bytes", (json_int_t)jsonx_int(src, "database_bytes", 0),
	    "seconds", (migrate_node_now_ms() - t0) / 1000.0);
	if (!cutover) {
		json_object_set(*result, "source_tables", json_object_get(src,
		    "tables"));
		json_object_set(*result, "source_files", json_object_get(src,
		    "files"));
	}
	rc = 0;
out:
	json_decref(se);
	json_decref(src);
	json_decref(body);
	json_decref(task);
	free(dump_url);
	free(files_url);
	free(manifest_url);
	free(path);
	free(key);
	free(why);
	return rc;
}

/* ---- verify ---- */

/* Was item (a table or a file) the same on the source before the copy
 * (before) as it is now? Then a difference with the target is an error;
 * otherwise the live app changed it during the copy. */
static int
stable(json_t *before, const char *name, const char *key, json_t *now_item)
{
	json_t *b;

	if (before == NULL)
		return 1;
	b = json_object_get(before, name);
	if (b == NULL || now_item == NULL)
		return b == now_item;
	return json_equal(json_object_get(b, key), json_object_get(now_item,
	    key)) && (strcmp(key, "checksum") != 0 || json_equal(
	    json_object_get(b, "rows"), json_object_get(now_item, "rows")));
}

/* Mode and owner of a file or folder present on both sides: the same
 * mode, and the environment's own user on both (each side reports
 * "app" for that). A node of an older version reports neither. */
static void
verify_attrs(json_t *diffs, const char *what, const char *path, json_t *src,
    json_t *dst)
{
	json_t *sm = json_object_get(src, "mode"), *dm = json_object_get(dst,
	    "mode");
	const char *so = jsonx_str(src, "owner"), *dow = jsonx_str(dst, "owner");

	if (json_is_integer(sm) && json_is_integer(dm) && !json_equal(sm, dm))
		json_array_append_new(diffs, json_sprintf("%s %s: mode %04llo "
		    "on the source, %04llo on the target", what, path,
		    (unsigned long long)json_integer_value(sm),
		    (unsigned long long)json_integer_value(dm)));
	if (so && dow && strcmp(so, dow) != 0)
		json_array_append_new(diffs, json_sprintf("%s %s: owned by %s "
		    "on the source, by %s on the target", what, path,
		    strcmp(so, "app") == 0 ? "the app" : so,
		    strcmp(dow, "app") == 0 ? "the app" : dow));
}

int
migrate_node_verify(struct migrate_ctx *c, long long s, long long t,
    json_t **result, char **cause)
{
	int strict = strcmp(c->phase, "cutover") == 0;
	int follows = !strict && migrate_repl_on(c->row);
	json_t *src = NULL, *dst = NULL, *sidx = NULL, *didx = NULL;
	json_t *bt = NULL, *bf = NULL, *diffs = json_array();
	json_t *changed = json_array(), *data = NULL, *v, *d;
	json_t *writes = json_object(), *rechecked = NULL, *by_key = NULL;
	long long rows = 0, files = 0, bytes = 0, later = 0;
	char *query = NULL;
	const char *k;
	int rc = -1;

	if (migrate_node_env_empty(c->db, s)) {
		*result = json_pack("{s:s}", "skipped", "nothing deployed");
		json_decref(diffs);
		json_decref(changed);
		json_decref(writes);
		return 0;
	}
	if (!strict) {
		data = store_row(c->db, "SELECT result_json FROM migration_steps"
		    " WHERE migration_id = ? AND phase = ? AND round = ? AND"
		    " name = 'data' AND environment = ?", "isis", c->id,
		    c->phase, c->round, c->env);
		bt = index_by(json_object_get(json_object_get(data, "result"),
		    "source_tables"), "name");
		bf = index_by(json_object_get(json_object_get(data, "result"),
		    "source_files"), "path");
	}
	/* a replica with a baseline: the rows written since compared by
	 * key, the tables that cannot be read whole; else only the tables
	 * written since the last verification read whole, the others
	 * counted */
	if (strict && migrate_repl_on(c->row) && (migrate_changes_verify(c, s,
	    t, &query, &by_key, &rechecked, diffs, cause) == -1 ||
	    (query == NULL && migrate_repl_verify_query(c, s, &query,
	    &rechecked, cause) == -1)))
		goto out;
	migrate_progress(c, json_pack("{s:s}", "message", "computing "
	    "checksums on both nodes"));
	if (checksums_both(c, s, t, query ? query : "", &src, &dst, cause) ==
	    -1)
		goto out;
	/* tables */
	sidx = index_by(json_object_get(src, "tables"), "name");
	didx = index_by(json_object_get(dst, "tables"), "name");
	json_object_foreach(sidx, k, v) {
		d = json_object_get(didx, k);
		/* compared by key above */
		if (json_object_get(by_key, k))
			continue;
		rows += jsonx_int(v, "rows", 0);
		/* a replica's sequences are set at the cutover (logical
		 * replication does not carry them) */
		if (follows && strcmp(jsonx_str(v, "kind") ? jsonx_str(v,
		    "kind") : "", "sequence") == 0) {
			later++;
			continue;
		}
		if (d && jsonx_int(d, "rows", -1) == jsonx_int(v, "rows", -2) &&
		    json_equal(json_object_get(d, "checksum"),
		    json_object_get(v, "checksum"))) {
			/* equal with so many writes: the cutover reads it
			 * whole again only if it was written since */
			if (follows && json_is_integer(json_object_get(v,
			    "writes")))
				json_object_set(writes, k, json_object_get(v,
				    "writes"));
			continue;
		}
		json_array_append_new(stable(bt, k, "checksum", v) ? diffs :
		    changed, d ? json_sprintf("%s %s: %lld rows (checksum "
		    "%s) on the source, %lld rows (checksum %s) on the target",
		    jsonx_str(v, "kind"), k, jsonx_int(v, "rows", 0),
		    jsonx_str(v, "checksum"), jsonx_int(d, "rows", 0),
		    jsonx_str(d, "checksum")) : json_sprintf("%s %s: missing "
		    "on the target", jsonx_str(v, "kind"), k));
	}
	json_object_foreach(didx, k, v)
		if (json_object_get(sidx, k) == NULL)
			json_array_append_new(stable(bt, k, "checksum", NULL) ?
			    diffs : changed, json_sprintf("%s %s: only on "
			    "the target", jsonx_str(v, "kind"), k));
	json_decref(sidx);
	json_decref(didx);
	/* files */
	sidx = index_by(json_object_get(src, "files"), "path");
	didx = index_by(json_object_get(dst, "files"), "path");
	json_object_foreach(sidx, k, v) {
		d = json_object_get(didx, k);
		files++;
		bytes += jsonx_int(v, "size", 0);
		if (d && strcmp(jsonx_str(d, "sha256"), jsonx_str(v, "sha256"))
		    == 0) {
			verify_attrs(diffs, "file", k, v, d);
			continue;
		}
		json_array_append_new(stable(bf, k, "sha256", v) ? diffs :
		    changed, d ? json_sprintf("file %s: sha256 %.12s… on the "
		    "source, %.12s… on the target", k, jsonx_str(v, "sha256"),
		    jsonx_str(d, "sha256")) : json_sprintf("file %s: missing "
		    "on the target", k));
	}
	json_object_foreach(didx, k, v)
		if (json_object_get(sidx, k) == NULL)
			json_array_append_new(stable(bf, k, "sha256", NULL) ?
			    diffs : changed, json_sprintf("file %s: only on the "
			    "target", k));
	json_decref(sidx);
	json_decref(didx);
	/* folders: the same ones, with the same modes, the app's */
	sidx = index_by(json_object_get(src, "folders"), "path");
	didx = index_by(json_object_get(dst, "folders"), "path");
	json_object_foreach(sidx, k, v) {
		d = json_object_get(didx, k);
		if (d)
			verify_attrs(diffs, "folder", k, v, d);
		else
			json_array_append_new(strict ? diffs : changed,
			    json_sprintf("folder %s: missing on the target",
			    k));
	}
	json_object_foreach(didx, k, v)
		if (json_object_get(sidx, k) == NULL)
			json_array_append_new(strict ? diffs : changed,
			    json_sprintf("folder %s: only on the target", k));
	*result = json_pack("{s:I,s:I,s:I,s:I,s:I,s:O,s:O}", "tables",
	    (json_int_t)count_kind(json_object_get(src, "tables"), "table"),
	    "sequences", (json_int_t)count_kind(json_object_get(src,
	    "tables"), "sequence"), "rows", (json_int_t)rows, "files", (json_int_t)files, "bytes",
	    (json_int_t)bytes, "differences", diffs,
	    "changed_on_source_during_copy", changed);
	if (later)
		json_object_set_new(*result, "sequences_set_at_cutover",
		    json_integer(later));
	if (follows)
		json_object_set(*result, "source_writes", writes);
	if (by_key) {
		json_object_set(*result, "by_key", by_key);
		json_object_set(*result, "rechecked", rechecked);
	} else if (rechecked) {
		json_object_set(*result, "rechecked", rechecked);
		json_object_set_new(*result, "counted_only", json_integer(
		    count_kind(json_object_get(src, "tables"), "table") -
		    (long long)json_array_size(rechecked)));
	}
	if (json_array_size(changed) > 0)
		json_object_set_new(*result, "warning", json_sprintf("%zu "
		    "item(s) changed on the running source during the copy; "
		    "the cutover copies them with the source stopped",
		    json_array_size(changed)));
	if (json_array_size(diffs) > 0) {
		char *list = NULL;
		size_t i;

		for (i = 0; i < json_array_size(diffs) && i < 10; i++) {
			char *n = xasprintf("%s%s%s", list ? list : "",
			    list ? "; " : "", json_string_value(
			    json_array_get(diffs, i)));

			free(list);
			list = n;
		}
		fail(cause, "the target differs from the source in %zu "
		    "place(s): %s%s", json_array_size(diffs), list,
		    json_array_size(diffs) > 10 ? "; …" : "");
		free(list);
		goto out;
	}
	/* verified: the change slots have done their work (a repeat after
	 * one side's was dropped read as without them, and drops the
	 * other) */
	if (strict && migrate_repl_on(c->row) && migrate_changes_drop(c, s, t,
	    cause) == -1)
		goto out;
	rc = 0;
out:
	json_decref(src);
	json_decref(dst);
	json_decref(sidx);
	json_decref(didx);
	json_decref(by_key);
	json_decref(bt);
	json_decref(bf);
	json_decref(diffs);
	json_decref(changed);
	json_decref(data);
	json_decref(writes);
	json_decref(rechecked);
	free(query);
	return rc;
}

/* ---- downtime ---- */

static size_t
discard(char *d, size_t s, size_t n, void *u)
{
	(void)d;
	(void)u;
	return s * n;
}

int
migrate_node_first_served(struct migrate_ctx *c, long long node_id,
    long long env_id, char **host, long long *at_ms, char **cause)
{
	char *router = store_text(c->db, "SELECT router FROM nodes WHERE"
	    " id = ?", "i", node_id);
	char *router_tls = store_text(c->db, "SELECT router_tls FROM nodes"
	    " WHERE id = ?", "i", node_id);
	json_t *e = env_row(c->db, env_id);
	struct curl_slist *resolve = NULL;
	char *hdr = NULL, *url = NULL, *p;
	long long start = migrate_node_now_ms();
	int rc = -1;

	*host = xasprintf("%s-%s.%s", c->app_subdomain, jsonx_str(e, "name"),
	    migrate_node_cloud_domain());
	for (p = *host; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (e == NULL || json_is_null(json_object_get(e, "package"))) {
		*at_ms = migrate_node_now_ms();
		rc = 0;
		goto out;
	}
	if (router == NULL && router_tls == NULL) {
		fail(cause, "node '%s' never told where its router listens",
		    c->target_name);
		goto out;
	}
	hdr = xasprintf("Host: %s", *host);
	/* the app's own health check (its manifest), else its root */
	{
		json_t *mf = store_row(c->db, "SELECT package_manifest AS"
		    " manifest_json FROM environments WHERE id = ?", "i", env_id);
		const char *health = jsonx_str(json_object_get(mf, "manifest"),
		    "health");

		const char *path = health && *health == '/' ? health : "/";

		if (router_tls) {
			/* by name, as users come (SNI picks the server) */
			const char *colon = strrchr(router_tls, ':');
			char *r = xasprintf("%s%s:%.*s", *host, colon,
			    (int)(colon - router_tls), router_tls);

			resolve = curl_slist_append(NULL, r);
			free(r);
			url = xasprintf("https://%s%s%s", *host, colon, path);
		} else {
			url = xasprintf("http://%s%s", router, path);
		}
		json_decref(mf);
	}
	for (;;) {
		CURL *cu = curl_easy_init();
		struct curl_slist *h = curl_slist_append(NULL, hdr);
		long status = 0;

		curl_easy_setopt(cu, CURLOPT_URL, url);
		curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h);
		if (resolve) {
			/* the probe sends nothing secret and reads a status:
			 * whether the router routes the hostname to the app,
			 * whoever signed the certificate (ARCHITECTURE) */
			curl_easy_setopt(cu, CURLOPT_RESOLVE, resolve);
			curl_easy_setopt(cu, CURLOPT_SSL_VERIFYPEER, 0L);
			curl_easy_setopt(cu, CURLOPT_SSL_VERIFYHOST, 0L);
		}
		curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(cu, CURLOPT_TIMEOUT, 5L);
		if (curl_easy_perform(cu) == CURLE_OK)
			curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(cu);
		curl_slist_free_all(h);
		/* served: the app answered (not the router's 502/503/504 or
		 * its 404 for an unknown host) */
		if (status >= 200 && status < 500 && status != 404) {
			*at_ms = migrate_node_now_ms();
			rc = 0;
			break;
		}
		if (migrate_node_now_ms() - start > 120 * 1000) {
			fail(cause, "the router of node '%s' does not serve %s "
			    "(last answer %ld)", c->target_name, *host, status);
			break;
		}
		usleep(20 * 1000);
	}
out:
	json_decref(e);
	curl_slist_free_all(resolve);
	free(router);
	free(router_tls);
	free(hdr);
	free(url);
	return rc;
}

/* ---- plan ---- */

json_t *
migrate_node_env_plan(sqlite3 *db, long long source_node,
    long long target_node, const char *env)
{
	long long s = migrate_node_env_id(db, source_node, env);
	json_t *e = env_row(db, s), *sums = NULL, *out;
	char *path = xasprintf("/agent/v1/environments/%lld/checksums", s);
	char *why = NULL;
	int st;

	st = node_call_timeout(db, source_node, "GET", path, NULL, &sums,
	    &why, 600);
	out = json_pack("{s:s,s:O?,s:O?}", "environment", env, "package",
	    json_object_get(e, "package"), "state", json_object_get(e,
	    "state"));
	if (st == 200) {
		json_object_set_new(out, "database_bytes", json_integer(
		    jsonx_int(sums, "database_bytes", 0)));
		json_object_set_new(out, "tables", json_integer(count_kind(
		    json_object_get(sums, "tables"), "table")));
		json_object_set_new(out, "sequences", json_integer(count_kind(
		    json_object_get(sums, "tables"), "sequence")));
		json_object_set_new(out, "rows", json_integer(jsonx_int(sums,
		    "rows", 0)));
		json_object_set_new(out, "files_bytes", json_integer(
		    jsonx_int(sums, "files_bytes", 0)));
		json_object_set_new(out, "files", json_integer((json_int_t)
		    json_array_size(json_object_get(sums, "files"))));
	} else {
		json_object_set_new(out, "note", json_sprintf("sizes unknown: "
		    "%s", why ? why : "the node did not answer"));
	}
	(void)target_node;
	json_decref(sums);
	json_decref(e);
	free(path);
	free(why);
	return out;
}

/* ---- offboarding evidence ---- */

json_t *
migrate_node_saved(sqlite3 *db, long long node_id, long long env_id,
    const char *env, char **cause)
{
	/* Seed §3.3: the latest backup and the deployed package must have
	 * been downloaded before the node goes: downloaded_at is set only
	 * when the node reports a user's download that delivered the whole
	 * file (POST /agent/downloads, src/node/downloads.c), not when a
	 * download URL is handed out. An environment that never had a
	 * package nor a backup has nothing to keep. */
	char *pkg = store_text(db, "SELECT package FROM environments"
	    " WHERE id = ?", "i", env_id);
	json_t *snap = store_row(db, "SELECT uuid, downloaded_at FROM"
	    " snapshots WHERE environment_id = ? AND state = 'completed'"
	    " ORDER BY created_at DESC, id DESC LIMIT 1", "i", env_id);
	json_t *out = NULL;

	if (pkg == NULL && snap == NULL) {
		out = json_pack("{s:s,s:s}", "environment", env, "kept_by",
		    "nothing to keep");
		goto out;
	}
	if (snap == NULL) {
		*cause = xstrdup("there is no backup: create one and download "
		    "it");
		goto out;
	}
	if (json_is_null(json_object_get(snap, "downloaded_at"))) {
		*cause = xasprintf("the latest backup (snapshot %.8s) was never "
		    "downloaded completely", jsonx_str(snap, "uuid"));
		goto out;
	}
	if (pkg && store_int(db, 0, "SELECT COUNT(*) FROM packages WHERE"
	    " node_id = ? AND package = ? AND downloaded_at IS NOT NULL",
	    "is", node_id, pkg) == 0) {
		*cause = xasprintf("the deployed package '%s' was never "
		    "downloaded completely", pkg);
		goto out;
	}
	out = json_pack("{s:s,s:s,s:s,s:s?}", "environment", env, "kept_by",
	    "download", "snapshot", jsonx_str(snap, "uuid"), "package", pkg);
out:
	free(pkg);
	json_decref(snap);
	return out;
}
