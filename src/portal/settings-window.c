/* Maintenance windows (SPEC §2 Maintenance): "changes that need a restart
 * are applied at the next start or, if asked, in the window". A portal
 * thread looks every few seconds for running environments whose settings
 * are "restart pending" and whose weekly window asks for pending restarts
 * (apply_pending_restarts) and is open now, and queues an env.restart job
 * for each (one at a time: not when one is already queued or running).
 * The restart job clears "restart pending" when it sends the settings. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobs.h"
#include "jsonx.h"
#include "log.h"
#include "portal.h"
#include "settings.h"
#include "settings-validate.h"
#include "store.h"
#include "util.h"

#define SETTINGS_WINDOW_TICK	5	/* seconds between looks */

static pthread_t window_thread;
static volatile int window_stop;
static int window_started;

int
settings_window_open(json_t *w, time_t now)
{
	static const char *const days[] = { "monday", "tuesday", "wednesday",
	    "thursday", "friday", "saturday", "sunday" };
	const char *day = jsonx_str(w, "day"), *start = jsonx_str(w, "start");
	long long dur = jsonx_int(w, "duration_minutes", 0);
	int i, smin, wday = -1;
	long long now_m, start_m;
	struct tm tm;
	char *cause = NULL;

	if (day == NULL || start == NULL || dur <= 0 ||
	    sv_window_start(start, &smin, &cause) == -1) {
		free(cause);
		return 0;
	}
	for (i = 0; i < 7; i++)
		if (strcmp(day, days[i]) == 0)
			wday = i;
	if (wday < 0)
		return 0;
	gmtime_r(&now, &tm);
	/* minutes since Monday 00:00 UTC; a window may run past midnight
	 * and past Sunday into Monday */
	now_m = ((tm.tm_wday + 6) % 7) * 1440LL + tm.tm_hour * 60 + tm.tm_min;
	start_m = wday * 1440LL + smin;
	return ((now_m - start_m) % 10080 + 10080) % 10080 < dur;
}

static void
window_tick(sqlite3 *db)
{
	json_t *rows, *row;
	size_t i;

	rows = store_rows(db, "SELECT s.environment_id AS env_id,"
	    " s.doc_json, e.name, e.node_id,"
	    " IFNULL(e.app_id, n.app_id) AS app_id"
	    " FROM environment_settings s"
	    " JOIN environments e ON e.id = s.environment_id"
	    " JOIN nodes n ON n.id = e.node_id"
	    " WHERE s.restart_pending = 1 AND e.state = 'running'", "");
	json_array_foreach(rows, i, row) {
		json_t *w = json_object_get(json_object_get(row, "doc"),
		    "maintenance_window");
		long long env_id = jsonx_int(row, "env_id", 0);
		long long job;
		json_t *params;

		if (!jsonx_bool(w, "apply_pending_restarts", 0) ||
		    !settings_window_open(w, util_now()))
			continue;
		if (store_int(db, 0, "SELECT 1 FROM jobs WHERE kind IN"
		    " ('env.restart','env.start','env.stop') AND node_id = ?"
		    " AND environment = ? AND state IN ('queued','running')",
		    "is", jsonx_int(row, "node_id", 0), jsonx_str(row, "name"))
		    == 1)
			continue;
		params = json_pack("{s:I,s:b}", "env_id", (json_int_t)env_id,
		    "maintenance_window", 1);
		job = job_submit(db, "env.restart", jsonx_int(row, "app_id", 0),
		    jsonx_int(row, "node_id", 0), jsonx_str(row, "name"), params,
		    0);
		json_decref(params);
		if (job == 0)
			continue;
		activity_record(db, 0, jsonx_int(row, "app_id", 0),
		    jsonx_int(row, "node_id", 0), "settings.window_restart",
		    "restarted environment '%s' in its maintenance window to "
		    "apply pending settings (job %lld)", jsonx_str(row, "name"),
		    job);
		log_info("maintenance window: restarting environment %lld "
		    "(job %lld)", env_id, job);
	}
	json_decref(rows);
}

static void *
window_loop(void *arg)
{
	(void)arg;
	while (!window_stop) {
		int s;

		window_tick(store_db());
		for (s = 0; s < SETTINGS_WINDOW_TICK && !window_stop; s++)
			sleep(1);
	}
	store_close_thread();
	return NULL;
}

void
settings_window_start(void)
{
	if (pthread_create(&window_thread, NULL, window_loop, NULL) != 0)
		log_error("cannot start the maintenance window thread");
	else
		window_started = 1;
}

void
settings_window_stop(void)
{
	window_stop = 1;
	if (window_started)
		pthread_join(window_thread, NULL);
	window_started = 0;
}
