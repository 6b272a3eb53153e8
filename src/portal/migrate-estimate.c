/* How long an environment will be down at cutover, from what was
 * measured: each environment is down from the source's first refused
 * request (`maintenance`) to the target's first served one (`served`),
 * and its database is copied meanwhile. In order of trust:
 *   1. a cutover to the same target node (this app's environment's
 *      last, else the latest of any app): the downtime measured there;
 *   2. this app's own copies to that node before a cutover (the start
 *      or a rehearsal): the copy, verify and start steps' measured
 *      seconds, plus a second to stop, route and serve (only measured
 *      at a cutover);
 *   3. nothing copied to that node yet: the cutover's parts from what
 *      was measured elsewhere: the dump (this environment's last
 *      snapshot's pg_dump), the load (the target node's last restore,
 *      else as long as the dump), the verify (as long as the dump: each
 *      side reads its database once, both at once), the start (this
 *      environment's last start or restart job), plus a second to stop,
 *      route and serve; each part not measured assumed, and said so;
 *   4. nothing measured at all: said so, with an assumed rate, and how
 *      to measure it.
 * Each corrects for a database of another size at the rate its copy
 * (or dump, or restore) measured when it was large enough to tell a
 * rate from fixed costs (64 MB), else at the assumed rate, and says
 * which. */
#include "migrate-estimate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* a copy smaller than this is mostly fixed costs: no rate from it */
#define ESTIMATE_RATE_MIN_BYTES	(64LL * 1048576)
/* with nothing measured: the copy rate and the fixed part assumed */
#define ESTIMATE_ASSUMED_RATE	(30.0 * 1048576)
#define ESTIMATE_ASSUMED_FIXED	3.0
/* stop the source, point the router, first request: not measured
 * before a cutover */
#define ESTIMATE_SWITCH		1.0
/* an app's start, when none was measured */
#define ESTIMATE_ASSUMED_START	2.0
/* a replicating cutover: the last writes, the sequences, the
 * verification of what changed */
#define REPL_ASSUMED		1.0

static json_t *
estimate(double seconds, json_t *basis)
{
	return json_pack("{s:f,s:o}", "seconds", seconds, "basis", basis);
}

/* The seconds a copy of bytes takes more (or less) than the measured
 * copy of bytes0 that took secs0: at the rate measured there when that
 * copy was large enough to tell a rate from fixed costs, else growth at
 * the assumed rate and no shrinking. *how says which. */
static double
growth(long long bytes, long long bytes0, double secs0, const char **how)
{
	if (bytes0 >= ESTIMATE_RATE_MIN_BYTES && secs0 > 0) {
		*how = "measured rate";
		return (double)(bytes - bytes0) * secs0 / (double)bytes0;
	}
	if (bytes <= bytes0) {
		*how = "same size";
		return 0;
	}
	*how = "growth at the assumed rate";
	return (double)(bytes - bytes0) / ESTIMATE_ASSUMED_RATE;
}

/* 1: cutovers to target, this app's environment first. NULL when there
 * was none. */
static json_t *
from_cutovers(sqlite3 *db, long long app_id, long long target,
    const char *env, long long bytes)
{
	json_t *rows = store_rows(db, "SELECT m.id AS migration,"
	    " d.environment, d.result_json AS data_json,"
	    " s.result_json AS served_json FROM migration_steps d"
	    " JOIN migrations m ON m.id = d.migration_id"
	    " JOIN migration_steps s ON s.migration_id = d.migration_id AND"
	    " s.round = d.round AND s.phase = 'cutover' AND"
	    " s.name = 'served' AND s.environment = d.environment AND"
	    " s.state = 'done'"
	    " WHERE m.target_node_id = ? AND d.phase = 'cutover' AND"
	    " d.name = 'data' AND d.state = 'done' AND"
	    " json_extract(d.result_json, '$.skipped') IS NULL AND"
	    " m.method IS NOT 'replicate'"
	    " ORDER BY m.app_id = ? AND d.environment = ? COLLATE NOCASE DESC,"
	    " d.id DESC LIMIT 1", "iis", target, app_id, env);
	json_t *row = json_array_get(rows, 0), *d, *out = NULL;
	double down, copy, secs;
	long long bytes0;
	const char *how;
	char size[32];

	d = json_object_get(row, "data");
	down = jsonx_int(json_object_get(row, "served"), "downtime_ms", 0) /
	    1000.0;
	copy = json_number_value(json_object_get(d, "seconds"));
	if (row == NULL || down <= 0 || copy <= 0)
		goto out;
	bytes0 = jsonx_int(d, "database_bytes", 0);
	secs = down + growth(bytes, bytes0, copy, &how);
	/* never less than what did not depend on the data */
	if (secs < down - copy)
		secs = down - copy;
	util_human_bytes(bytes0, size, sizeof size);
	out = estimate(secs, json_pack("{s:s,s:I,s:s,s:f,s:I,s:f,s:s}",
	    "measured", "cutover", "migration", (json_int_t)jsonx_int(row,
	    "migration", 0), "environment", jsonx_str(row, "environment"),
	    "downtime_seconds", down, "database_bytes", (json_int_t)bytes0,
	    "copy_seconds", copy, "size_difference", how));
	json_object_set_new(json_object_get(out, "basis"), "text",
	    json_sprintf("measured at a cutover to this node (migration "
	    "%lld, %s): down %.1f s with %s of database, of which the copy "
	    "took %.1f s; the size difference: %s", jsonx_int(row,
	    "migration", 0), jsonx_str(row, "environment"), down, size, copy,
	    how));
out:
	json_decref(rows);
	return out;
}

/* The seconds a done step of round measured, or -1. */
static double
step_seconds(json_t *steps, const char *name)
{
	json_t *s;
	size_t i;

	json_array_foreach(steps, i, s)
		if (strcmp(jsonx_str(s, "name"), name) == 0 &&
		    json_is_number(json_object_get(json_object_get(s,
		    "result"), "seconds")))
			return json_number_value(json_object_get(
			    json_object_get(s, "result"), "seconds"));
	return -1;
}

/* 2: this app's copies to target before a cutover. NULL when none. */
static json_t *
from_copies(sqlite3 *db, long long app_id, long long target,
    const char *env, long long bytes)
{
	json_t *last = store_row(db, "SELECT d.migration_id AS migration,"
	    " d.phase, d.round FROM migration_steps d"
	    " JOIN migrations m ON m.id = d.migration_id"
	    " WHERE m.app_id = ? AND m.target_node_id = ? AND"
	    " d.environment = ? COLLATE NOCASE AND d.name = 'data' AND"
	    " d.state = 'done' AND d.phase IN ('start','rehearse') AND"
	    " json_extract(d.result_json, '$.skipped') IS NULL AND"
	    " m.method IS NOT 'replicate'"
	    " ORDER BY d.id DESC LIMIT 1", "iis", app_id, target, env);
	json_t *steps = NULL, *out = NULL, *data = NULL;
	double copy, verify, start, secs;
	long long bytes0;
	const char *how;
	size_t i;
	json_t *s;

	if (last == NULL)
		return NULL;
	steps = store_rows(db, "SELECT name, result_json FROM migration_steps"
	    " WHERE migration_id = ? AND phase = ? AND round = ? AND"
	    " environment = ? COLLATE NOCASE AND state = 'done'", "isis",
	    jsonx_int(last, "migration", 0), jsonx_str(last, "phase"),
	    jsonx_int(last, "round", 0), env);
	json_array_foreach(steps, i, s)
		if (strcmp(jsonx_str(s, "name"), "data") == 0)
			data = json_object_get(s, "result");
	copy = step_seconds(steps, "data");
	verify = step_seconds(steps, "verify");
	start = step_seconds(steps, "start");
	if (copy < 0 || verify < 0 || start < 0)
		goto out;
	bytes0 = jsonx_int(data, "database_bytes", 0);
	secs = copy + growth(bytes, bytes0, copy, &how) + verify + start +
	    ESTIMATE_SWITCH;
	out = estimate(secs, json_pack("{s:s,s:I,s:s,s:f,s:f,s:f,s:f,s:I,"
	    "s:s}", "measured", jsonx_str(last, "phase"), "migration",
	    (json_int_t)jsonx_int(last, "migration", 0), "environment", env,
	    "copy_seconds", copy, "verify_seconds", verify, "start_seconds",
	    start, "switch_seconds_assumed", ESTIMATE_SWITCH,
	    "database_bytes", (json_int_t)bytes0, "size_difference", how));
	json_object_set_new(json_object_get(out, "basis"), "text",
	    json_sprintf("measured in the %s of migration %lld: copy %.1f s, "
	    "verify %.1f s, start %.1f s, plus %.0f s assumed to stop, "
	    "route and serve; the size difference: %s%s", strcmp(jsonx_str(
	    last, "phase"), "start") == 0 ? "first copy" : "rehearsal",
	    jsonx_int(last, "migration", 0), copy, verify, start,
	    ESTIMATE_SWITCH, how, strcmp(jsonx_str(last, "phase"), "start") ==
	    0 ? " (the first copy moved every file; a rehearsal measures the "
	    "cutover's copy)" : ""));
out:
	json_decref(steps);
	json_decref(last);
	return out;
}

/* A part of 3 measured as ms for bytes0 (NULL row: not measured), for
 * bytes: its seconds; *text says where they come from (what, then the
 * row's "id"). */
static double
part(json_t *row, long long bytes, const char *what, char **text)
{
	double secs0 = jsonx_int(row, "ms", 0) / 1000.0;
	long long bytes0 = jsonx_int(row, "bytes", 0);
	const char *how;
	double secs;
	char size[32];

	secs = secs0 + growth(bytes, bytes0, secs0, &how);
	util_human_bytes(bytes0, size, sizeof size);
	*text = xasprintf("%.1f s (%s %s: %.1f s for %s; the size difference: "
	    "%s)", secs, what, jsonx_str(row, "id"), secs0, size, how);
	return secs;
}

/* The start of env measured last (its "id" and "ms"), or NULL. */
static json_t *
last_start(sqlite3 *db, long long app_id, const char *env)
{
	return store_row(db, "SELECT CAST(id AS TEXT) AS id, run_ms AS ms"
	    " FROM jobs WHERE app_id = ? AND environment = ? COLLATE NOCASE"
	    " AND kind IN ('env.start','env.restart') AND"
	    " state = 'completed' AND run_ms > 0 ORDER BY id DESC LIMIT 1",
	    "is", app_id, env);
}

/* 3: nothing copied to target yet. NULL when none of the parts was
 * measured. */
static json_t *
from_elsewhere(sqlite3 *db, long long app_id, long long target,
    const char *env, long long bytes)
{
	json_t *snap = store_row(db, "SELECT s.uuid AS id, s.dump_ms AS ms,"
	    " s.dump_size AS bytes FROM snapshots s JOIN environments e ON"
	    " e.id = s.environment_id WHERE s.app_id = ? AND"
	    " e.name = ? COLLATE NOCASE AND s.state = 'completed' AND"
	    " s.dump_ms > 0 ORDER BY s.id DESC LIMIT 1", "is", app_id, env);
	json_t *load = store_row(db, "SELECT r.uuid AS id, j.run_ms AS ms,"
	    " IFNULL(s.dump_size, 0) + CASE WHEN r.database_only THEN 0"
	    " ELSE IFNULL(s.files_size, 0) END AS bytes FROM restores r"
	    " JOIN jobs j ON j.id = r.job_id JOIN environments e ON"
	    " e.id = r.environment_id JOIN snapshots s ON"
	    " s.uuid = r.snapshot_uuid WHERE e.node_id = ? AND"
	    " r.state = 'completed' AND j.run_ms > 0 ORDER BY r.id DESC"
	    " LIMIT 1", "i", target);
	json_t *start = last_start(db, app_id, env);
	char *dump_text = NULL, *load_text = NULL, *start_text = NULL;
	double dump, loading, starting;
	json_t *out = NULL;

	if (snap == NULL && load == NULL && start == NULL)
		goto out;
	if (snap)
		dump = part(snap, bytes, "this environment's snapshot",
		    &dump_text);
	else {
		dump = bytes / ESTIMATE_ASSUMED_RATE;
		dump_text = xasprintf("%.1f s (no snapshot of this environment "
		    "measured its dump: assumed 30 MB/s)", dump);
	}
	if (load)
		loading = part(load, bytes, "this node's restore", &load_text);
	else {
		loading = dump;
		load_text = xasprintf("%.1f s (no restore on this node: "
		    "assumed as long as the dump)", loading);
	}
	if (start) {
		starting = jsonx_int(start, "ms", 0) / 1000.0;
		start_text = xasprintf("%.1f s (this environment's last start, "
		    "job %s)", starting, jsonx_str(start, "id"));
	} else {
		starting = ESTIMATE_ASSUMED_START;
		start_text = xasprintf("%.1f s (no start of this environment "
		    "measured: assumed)", starting);
	}
	out = estimate(dump + loading + dump + starting + ESTIMATE_SWITCH,
	    json_pack("{s:s,s:O*,s:O*,s:O*,s:f,s:f,s:f,s:f,s:f}",
	    "measured", "elsewhere", "snapshot", snap, "restore", load,
	    "start_job", start, "dump_seconds", dump, "load_seconds", loading,
	    "verify_seconds", dump, "start_seconds", starting,
	    "switch_seconds_assumed", ESTIMATE_SWITCH));
	json_object_set_new(json_object_get(out, "basis"), "text",
	    json_sprintf("nothing copied to this node yet; measured elsewhere:"
	    " dump %s, load %s, verify %.1f s (assumed as long as the dump), "
	    "start %s, plus %.0f s assumed to stop, route and serve; `nubo "
	    "migrate start` and `nubo migrate rehearse` measure the copy to "
	    "this node", dump_text, load_text, dump, start_text,
	    ESTIMATE_SWITCH));
out:
	free(dump_text);
	free(load_text);
	free(start_text);
	json_decref(snap);
	json_decref(load);
	json_decref(start);
	return out;
}

/* A migration that replicates does not copy the database during the
 * downtime: the downtime of a replicating cutover to target (this app's
 * environment's first), as it was; else the environment's start, the
 * switch, and REPL_ASSUMED for the last writes, the sequences and the
 * verification of what changed. */
static json_t *
replicated(sqlite3 *db, long long app_id, long long target, const char *env)
{
	json_t *row = store_row(db, "SELECT m.id AS migration,"
	    " s.environment, json_extract(s.result_json, '$.downtime_ms')"
	    " AS ms FROM migration_steps s JOIN migrations m ON"
	    " m.id = s.migration_id WHERE m.target_node_id = ? AND"
	    " m.method = 'replicate' AND s.phase = 'cutover' AND"
	    " s.name = 'served' AND s.state = 'done' AND"
	    " json_extract(s.result_json, '$.downtime_ms') > 0"
	    " ORDER BY m.app_id = ? AND s.environment = ? COLLATE NOCASE DESC,"
	    " s.id DESC LIMIT 1", "iis", target, app_id, env);
	json_t *start, *out;
	double down, starting;

	if (row) {
		down = jsonx_int(row, "ms", 0) / 1000.0;
		out = estimate(down, json_pack("{s:s,s:I,s:s,s:f}", "measured",
		    "cutover", "migration", (json_int_t)jsonx_int(row,
		    "migration", 0), "environment", jsonx_str(row,
		    "environment"), "downtime_seconds", down));
		json_object_set_new(json_object_get(out, "basis"), "text",
		    json_sprintf("measured at a replicating cutover to this "
		    "node (migration %lld, %s): down %.1f s; it does not copy "
		    "the database, whose size does not change the estimate",
		    jsonx_int(row, "migration", 0), jsonx_str(row,
		    "environment"), down));
		json_decref(row);
		return out;
	}
	start = last_start(db, app_id, env);
	starting = start ? jsonx_int(start, "ms", 0) / 1000.0 :
	    ESTIMATE_ASSUMED_START;
	out = estimate(starting + ESTIMATE_SWITCH + REPL_ASSUMED, json_pack(
	    "{s:s,s:O*,s:f,s:f,s:f}", "measured", start ? "elsewhere" :
	    "nothing", "start_job", start, "start_seconds", starting,
	    "switch_seconds_assumed", ESTIMATE_SWITCH,
	    "replication_seconds_assumed", REPL_ASSUMED));
	json_object_set_new(json_object_get(out, "basis"), "text",
	    json_sprintf("replicating: the database is not copied during the "
	    "downtime; start %.1f s (%s), plus %.0f s assumed to stop, route "
	    "and serve and %.0f s assumed to receive the last writes, set the "
	    "sequences and verify what changed since the last verification "
	    "(the tables written since are read whole)", starting, start ?
	    "this environment's last start" : "assumed", ESTIMATE_SWITCH,
	    REPL_ASSUMED));
	json_decref(start);
	return out;
}

json_t *
migrate_estimate(sqlite3 *db, long long app_id, long long target,
    const char *env, long long database_bytes, int replicate)
{
	json_t *e;

	if (database_bytes < 0)
		return estimate(0, json_pack("{s:s,s:s}", "measured",
		    "nothing deployed", "text", "nothing deployed: nothing is "
		    "copied and nothing is served"));
	if (replicate)
		return replicated(db, app_id, target, env);
	if ((e = from_cutovers(db, app_id, target, env, database_bytes)))
		return e;
	if ((e = from_copies(db, app_id, target, env, database_bytes)))
		return e;
	if ((e = from_elsewhere(db, app_id, target, env, database_bytes)))
		return e;
	e = estimate(ESTIMATE_ASSUMED_FIXED + database_bytes /
	    ESTIMATE_ASSUMED_RATE, json_pack("{s:s}", "measured", "nothing"));
	json_object_set_new(json_object_get(e, "basis"), "text",
	    json_string("nothing measured on this node yet: assumed 30 MB/s "
	    "and 3 s to stop, verify and start; `nubo migrate start` and "
	    "`nubo migrate rehearse` measure it"));
	return e;
}
