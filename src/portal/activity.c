/* The activity log: every state change, with who, when and what. */
#include <stdarg.h>
#include <stdlib.h>

#include "portal.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

static void
activity_row(sqlite3 *db, long long user_id, long long app_id,
    long long node_id, const char *action, const char *detail)
{
	char now[32];

	util_time_iso(util_now(), now, sizeof now);
	store_run(db, "INSERT INTO activity (at, user_id, app_id, node_id,"
	    " action, detail) VALUES (?, NULLIF(?, 0), NULLIF(?, 0),"
	    " NULLIF(?, 0), ?, ?)", "siiiss", now, user_id, app_id,
	    node_id, action, detail);
}

static void
activity_insert(struct preq *r, long long app_id, long long node_id,
    const char *action, const char *detail)
{
	activity_row(r->db, r->who.user_id, app_id, node_id, action, detail);
}

void
activity_record(sqlite3 *db, long long user_id, long long app_id,
    long long node_id, const char *action, const char *fmt, ...)
{
	va_list ap;
	char *detail;

	va_start(ap, fmt);
	detail = xvasprintf(fmt, ap);
	va_end(ap);
	activity_row(db, user_id, app_id, node_id, action, detail);
	free(detail);
}

void
activity_log(struct preq *r, const char *action, const char *fmt, ...)
{
	va_list ap;
	char *detail;

	va_start(ap, fmt);
	detail = xvasprintf(fmt, ap);
	va_end(ap);
	activity_insert(r, r->app_id, r->node_id, action, detail);
	free(detail);
}

void
activity_log_at(struct preq *r, long long app_id, long long node_id,
    const char *action, const char *fmt, ...)
{
	va_list ap;
	char *detail;

	va_start(ap, fmt);
	detail = xvasprintf(fmt, ap);
	va_end(ap);
	activity_insert(r, app_id, node_id, action, detail);
	free(detail);
}
