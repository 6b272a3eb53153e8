/* Shared by the `nubo migrate …` commands: find an app's migration, show
 * it, and follow a running phase with progress (SPEC §4 "Progress is shown
 * as it goes (bytes, rows, files, ETA)"): a live line on a terminal,
 * plain lines otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "migrate-cli.h"
#include "util.h"
#include "xmalloc.h"

int
migrate_cli_find(const char *app, const char *to, json_t **out)
{
	char *esc = api_escape(app), *path = xasprintf("/migrations?app=%s",
	    esc);
	json_t *resp = NULL, *list, *m, *best = NULL;
	size_t i;
	int rc = -1;

	*out = NULL;
	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	list = json_object_get(resp, "migrations");
	json_array_foreach(list, i, m) {
		if (to && strcmp(jsonx_str(m, "target"), to) != 0)
			continue;
		best = m;	/* the newest matching one */
	}
	if (best == NULL) {
		out_fail("app '%s' has no migration%s%s: start one with 'nubo "
		    "migrate start %s --to NODE'", app, to ? " to " : "",
		    to ? to : "", app);
		goto out;
	}
	*out = json_incref(best);
	rc = 0;
out:
	json_decref(resp);
	free(path);
	free(esc);
	return rc;
}

/* "data Production: 120.0 MB / 980.0 MB, 1200/5000 files, 30000 rows,
 * ETA 42s" */
static void
step_line(json_t *step, char *out, size_t len)
{
	json_t *p = json_object_get(step, "progress");
	const char *env = jsonx_str(step, "environment");
	const char *msg = jsonx_str(p, "message");
	const char *warning = jsonx_str(json_object_get(step, "result"),
	    "warning");
	long long bytes = jsonx_int(p, "bytes", -1);
	long long total = jsonx_int(p, "bytes_total", -1);
	long long files = jsonx_int(p, "files", -1);
	long long ftotal = jsonx_int(p, "files_total", -1);
	long long rows = jsonx_int(p, "rows", -1);
	long long eta = jsonx_int(p, "eta_seconds", -1);
	size_t n;

	n = (size_t)snprintf(out, len, "%s%s%s", jsonx_str(step, "name"),
	    env ? " " : "", env ? env : "");
	/* a step done with a warning: the warning, not its last progress */
	if (warning && n < len)
		n += (size_t)snprintf(out + n, len - n, ": warning: %s",
		    warning);
	else if (msg && *msg && n < len)
		n += (size_t)snprintf(out + n, len - n, ": %s", msg);
	if (bytes >= 0 && n < len) {
		char a[32], b[32];

		util_human_bytes(bytes, a, sizeof a);
		util_human_bytes(total, b, sizeof b);
		n += (size_t)snprintf(out + n, len - n, total > 0 ?
		    " — %s / %s" : " — %s", a, b);
	}
	if (files >= 0 && n < len)
		n += (size_t)snprintf(out + n, len - n, ftotal >= 0 ?
		    ", %lld/%lld files" : ", %lld files", files, ftotal);
	if (rows >= 0 && n < len)
		n += (size_t)snprintf(out + n, len - n, ", %lld rows", rows);
	if (eta >= 0 && n < len)
		snprintf(out + n, len - n, ", ETA %lldm%02llds", eta / 60,
		    eta % 60);
}

/* Before a cutover: how long each environment will be down, and what
 * the figure comes from. */
static void
print_estimates(json_t *m)
{
	json_t *est = json_object_get(m, "cutover_estimates"), *e;
	const char *env;

	if (json_object_size(est) == 0)
		return;
	printf("\ndowntime at cutover, estimated:\n");
	json_object_foreach(est, env, e)
		printf("  %-12s %.1f s — %s\n", env, json_number_value(
		    json_object_get(e, "seconds")), jsonx_str(json_object_get(e,
		    "basis"), "text"));
}

/* While the target follows the source: each environment's slot on the
 * source, its lag and the WAL it keeps there. */
static void
print_replication(json_t *m)
{
	json_t *list = json_object_get(m, "replication"), *e, *lag, *chg;
	size_t i;

	if (json_array_size(list) == 0)
		return;
	printf("\nreplication (the source's slot, per environment):\n");
	json_array_foreach(list, i, e) {
		if (jsonx_str(e, "error")) {
			printf("  %-12s %s\n", jsonx_str(e, "environment"),
			    jsonx_str(e, "error"));
			continue;
		}
		lag = json_object_get(e, "lag_seconds");
		printf("  %-12s slot %s, %s, lag %lld bytes", jsonx_str(e,
		    "environment"), jsonx_str(e, "slot"), jsonx_bool(e,
		    "active", 0) ? "active" : "inactive", jsonx_int(e,
		    "lag_bytes", 0));
		if (json_is_number(lag))
			printf(" / %.1f s", json_number_value(lag));
		printf(", WAL held %lld bytes (%s)\n", jsonx_int(e,
		    "retained_wal_bytes", 0), jsonx_str(e, "wal_status") ?
		    jsonx_str(e, "wal_status") : "?");
		if ((chg = json_object_get(e, "change_slot")) != NULL)
			printf("  %-12s change slot %s (the cutover's, until its "
			    "verify passes), WAL held %lld bytes\n", "",
			    jsonx_str(chg, "slot"), jsonx_int(chg,
			    "retained_wal_bytes", 0));
	}
}

void
migrate_cli_print(json_t *m)
{
	json_t *steps = json_object_get(m, "steps"), *s;
	size_t i;

	out_fields(m, "id,app,source,target,temporary_app,method,"
	    "method_reason,state,"
	    "status,phase,round,downtime_ms,offboarding_request_id,error,"
	    "created_at,updated_at");
	if (json_array_size(steps)) {
		json_t *rows = json_array();

		json_array_foreach(steps, i, s) {
			char line[512];

			step_line(s, line, sizeof line);
			json_array_append_new(rows, json_pack("{s:O,s:O,s:O,"
			    "s:O,s:O,s:s}", "seq", json_object_get(s, "seq"),
			    "phase", json_object_get(s, "phase"), "round",
			    json_object_get(s, "round"), "state",
			    json_object_get(s, "state"), "attempts",
			    json_object_get(s, "attempts"), "step", line));
		}
		printf("\n");
		out_table(rows, "seq:#,phase:PHASE,round:ROUND,state:STATE,"
		    "attempts:TRIES,step:STEP");
		json_decref(rows);
	}
	print_estimates(m);
	print_replication(m);
	if (jsonx_str(m, "next"))
		printf("\nnext: %s\n", jsonx_str(m, "next"));
}

/* Warnings and reports the finished steps left (settings not carried
 * over, verification figures). */
static void
print_reports(json_t *m, long long from_seq)
{
	json_t *steps = json_object_get(m, "steps"), *s;
	size_t i, j;

	json_array_foreach(steps, i, s) {
		json_t *res = json_object_get(s, "result"), *w;

		if (jsonx_int(s, "seq", 0) < from_seq || res == NULL)
			continue;
		json_array_foreach(json_object_get(res, "not_carried_over"),
		    j, w)
			printf("  settings %s: not carried over: %s\n",
			    jsonx_str(s, "environment"), json_is_string(w) ?
			    json_string_value(w) : jsonx_str(w, "message"));
		if (jsonx_str(res, "warning"))
			printf("  warning: %s\n", jsonx_str(res, "warning"));
		if (strcmp(jsonx_str(s, "name"), "verify") == 0 &&
		    strcmp(jsonx_str(s, "state"), "done") == 0 &&
		    json_is_object(json_object_get(res, "by_key"))) {
			/* a cutover after a baseline: rows written since */
			const char *k;
			json_t *n;
			long long keys = 0;

			json_object_foreach(json_object_get(res, "by_key"), k,
			    n)
				keys += json_integer_value(n);
			printf("  verified %s (%s): %lld tables (%zu by the %lld "
			    "key(s) written since the baseline, %zu read whole: "
			    "%lld rows), %lld files identical on both nodes\n",
			    jsonx_str(s, "environment"), jsonx_str(s, "phase"),
			    jsonx_int(res, "tables", 0), json_object_size(
			    json_object_get(res, "by_key")), keys,
			    json_array_size(json_object_get(res, "rechecked")),
			    jsonx_int(res, "rows", 0), jsonx_int(res, "files",
			    0));
		} else if (strcmp(jsonx_str(s, "name"), "verify") == 0 &&
		    strcmp(jsonx_str(s, "state"), "done") == 0)
			printf("  verified %s (%s): %lld tables, %lld rows, "
			    "%lld files identical on both nodes\n",
			    jsonx_str(s, "environment"), jsonx_str(s, "phase"),
			    jsonx_int(res,
			    "tables", 0), jsonx_int(res, "rows", 0),
			    jsonx_int(res, "files", 0));
	}
}

int
migrate_cli_follow(long long id, int json)
{
	char *path = xasprintf("/migrations/%lld", id);
	int tty = isatty(STDERR_FILENO), rc = CLI_FAILED;
	const char *rev;
	long long last_seq = -1, first_seq = -1, printed = 0;
	char last[640] = "";
	time_t last_plain = 0;

	for (;;) {
		json_t *m = NULL, *job, *steps, *s, *cur = NULL;
		const char *jstate;
		long long total = 0, done = 0;
		size_t i;
		char line[512], full[640];

		if (api_ok("GET", path, NULL, &m) == -1)
			break;
		job = json_object_get(m, "job");
		jstate = jsonx_str(job, "state");
		steps = json_object_get(m, "steps");
		json_array_foreach(steps, i, s) {
			if (strcmp(jsonx_str(s, "phase"), jsonx_str(m,
			    "phase")) != 0 || jsonx_int(s, "round", 0) !=
			    jsonx_int(m, "round", 0))
				continue;
			if (first_seq < 0)
				first_seq = jsonx_int(s, "seq", 0);
			total++;
			if (strcmp(jsonx_str(s, "state"), "done") == 0 ||
			    strcmp(jsonx_str(s, "state"), "skipped") == 0)
				done++;
			else if (cur == NULL)
				cur = s;
		}
		/* steps finished since the last poll, one line each */
		json_array_foreach(steps, i, s) {
			long long seq = jsonx_int(s, "seq", 0);

			if (seq <= printed || strcmp(jsonx_str(s, "state"),
			    "done") != 0 || jsonx_str(s, "finished_at") == NULL)
				continue;
			if (first_seq >= 0 && seq < first_seq)
				continue;
			step_line(s, line, sizeof line);
			if (!json)
				fprintf(stderr, tty ? "\r\033[K  done  %s\n" :
				    "  done  %s\n", line);
			printed = seq;
		}
		if (cur && !json) {
			step_line(cur, line, sizeof line);
			snprintf(full, sizeof full, "[%s %lld/%lld] %s",
			    jsonx_str(m, "phase"), done + 1, total, line);
			if (tty) {
				if (strcmp(full, last) != 0)
					fprintf(stderr, "\r\033[K%.*s", 160, full);
			} else if (jsonx_int(cur, "seq", 0) != last_seq ||
			    (strcmp(full, last) != 0 &&
			    time(NULL) - last_plain >= 2)) {
				fprintf(stderr, "%s\n", full);
				last_plain = time(NULL);
			}
			snprintf(last, sizeof last, "%s", full);
			last_seq = jsonx_int(cur, "seq", 0);
		}
		if (jstate && (strcmp(jstate, "completed") == 0 ||
		    strcmp(jstate, "failed") == 0)) {
			if (tty && !json)
				fputs("\r\033[K", stderr);
			if (json) {
				out_json(m);
			} else {
				print_reports(m, first_seq);
				printf("migration %lld: %s\n", id,
				    jsonx_str(m, "state"));
				/* measured only by a cutover that served */
				if (jsonx_int(m, "downtime_ms", -1) >= 0 &&
				    strcmp(jsonx_str(m, "state"), "cut-over") ==
				    0)
					printf("downtime: %.3f s (first refused "
					    "request to first served one)\n",
					    jsonx_int(m, "downtime_ms", 0) /
					    1000.0);
				if (jsonx_str(m, "next"))
					printf("next: %s\n", jsonx_str(m,
					    "next"));
			}
			if (strcmp(jstate, "completed") == 0)
				rc = CLI_OK;
			else
				out_fail("migration %lld: %s", id,
				    jsonx_str(m, "error") ? jsonx_str(m,
				    "error") : jsonx_str(job, "error"));
			json_decref(m);
			break;
		}
		/* the next read is held by the portal until the migration
		 * differs from this one (long polling) */
		rev = jsonx_str(m, "revision");
		free(path);
		path = rev ? xasprintf("/migrations/%lld?wait=%d&revision=%s",
		    id, API_WAIT_SECS, rev) : xasprintf("/migrations/%lld",
		    id);
		json_decref(m);
		if (rev == NULL)
			usleep(250 * 1000);
	}
	free(path);
	return rc;
}

int
migrate_cli_action(struct cmd_args *a, const char *verb, json_t *body)
{
	json_t *m = NULL, *resp = NULL;
	char *path = NULL;
	long long id;
	int rc = CLI_FAILED;

	if (body == NULL)
		body = json_object();
	if (migrate_cli_find(a->argv[0], cmd_opt(a, "to"), &m) == -1)
		goto out;
	id = jsonx_int(m, "id", 0);
	path = xasprintf("/migrations/%lld/%s", id, verb);
	if (api_ok("POST", path, body, &resp) == -1)
		goto out;
	/* writes on the target: only once a cutover served there */
	if (strcmp(verb, "rollback") == 0 && jsonx_str(m, "state") &&
	    strcmp(jsonx_str(m, "state"), "cut-over") == 0)
		fprintf(stderr, "warning: writes made on node '%s' since the "
		    "cutover are not copied back to node '%s'\n",
		    jsonx_str(m, "target"), jsonx_str(m, "source"));
	if (cmd_flag(a, "no-wait")) {
		if (out_maybe_json(a, resp) == -1)
			printf("migration %lld: %s queued (nubo migrate status "
			    "%s)\n", id, verb, a->argv[0]);
		rc = CLI_OK;
		goto out;
	}
	rc = migrate_cli_follow(id, cmd_flag(a, "json"));
out:
	json_decref(body);
	json_decref(m);
	json_decref(resp);
	free(path);
	return rc;
}

json_t *
migrate_cli_body(struct cmd_args *a, const char *mode)
{
	json_t *body;

	if (cmd_opt(a, "to") == NULL) {
		out_usage(cmd_current, "--to NODE is required");
		return NULL;
	}
	if (cmd_flag(a, "replicate") && cmd_flag(a, "dump")) {
		out_usage(cmd_current, "--replicate and --dump exclude each "
		    "other");
		return NULL;
	}
	body = json_pack("{s:s,s:s,s:s}", "app", a->argv[0], "to",
	    cmd_opt(a, "to"), "mode", mode);
	if (cmd_flag(a, "replicate") || cmd_flag(a, "dump"))
		json_object_set_new(body, "method", json_string(cmd_flag(a,
		    "dump") ? "dump" : "replicate"));
	return body;
}

void
migrate_cli_method(json_t *m, FILE *to)
{
	const char *method = jsonx_str(m, "method");

	if (method == NULL)
		return;
	fprintf(to, "database copied by %s", strcmp(method, "replicate") ==
	    0 ? "replication (the schema, then PostgreSQL logical "
	    "replication until the cutover)" : "a dump restored at every "
	    "copy");
	if (jsonx_str(m, "method_reason"))
		fprintf(to, ": %s", jsonx_str(m, "method_reason"));
	fprintf(to, "\n");
}

int
migrate_cli_create(struct cmd_args *a, const char *mode)
{
	json_t *body, *resp = NULL;
	int rc = CLI_FAILED;

	if ((body = migrate_cli_body(a, mode)) == NULL)
		return CLI_USAGE;
	if (api_ok("POST", "/migrations", body, &resp) == -1)
		goto out;
	if (!cmd_flag(a, "json")) {
		fprintf(stderr, "migration %lld of app '%s': node '%s' → node "
		    "'%s'\n", jsonx_int(resp, "id", 0), a->argv[0],
		    jsonx_str(resp, "source"), jsonx_str(resp, "target"));
		migrate_cli_method(resp, stderr);
	}
	if (cmd_flag(a, "no-wait")) {
		if (out_maybe_json(a, resp) == -1)
			printf("migration %lld queued\n", jsonx_int(resp, "id",
			    0));
		rc = CLI_OK;
		goto out;
	}
	rc = migrate_cli_follow(jsonx_int(resp, "id", 0), cmd_flag(a, "json"));
out:
	json_decref(body);
	json_decref(resp);
	return rc;
}
