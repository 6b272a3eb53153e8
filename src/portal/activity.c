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

void
activity_reply_page(struct preq *r, enum activity_of of)
{
	/* Fixed statements, one per WHERE column: nothing is spliced in. */
	static const char *const sql[] = {
		[ACTIVITY_OF_APP] = "SELECT a.id, a.at, u.email AS user,"
		    " a.action, a.detail, n.name AS node FROM activity a"
		    " LEFT JOIN users u ON u.id = a.user_id"
		    " LEFT JOIN nodes n ON n.id = a.node_id"
		    " WHERE a.app_id = ? ORDER BY a.id DESC LIMIT ?",
		[ACTIVITY_OF_NODE] = "SELECT a.id, a.at, u.email AS user,"
		    " a.action, a.detail, p.subdomain AS app FROM activity a"
		    " LEFT JOIN users u ON u.id = a.user_id"
		    " LEFT JOIN apps p ON p.id = a.app_id"
		    " WHERE a.node_id = ? ORDER BY a.id DESC LIMIT ?",
	};
	const char *l = preq_query(r, "limit");
	long long limit = 100;
	json_t *rows;

	if (l && util_parse_int(l, 1, NUBO_ACTIVITY_PAGE_MAX, &limit) == -1) {
		reply_error(r, 400, "BAD_REQUEST", "limit must be 1 to %d, not "
		    "'%s'", NUBO_ACTIVITY_PAGE_MAX, l);
		return;
	}
	rows = store_rows(r->db, sql[of], "ii", of == ACTIVITY_OF_APP ?
	    r->app_id : r->node_id, limit);
	if (rows == NULL)
		reply_store_error(r);
	else
		reply(r, 200, json_pack("{s:o}", "activity", rows));
}
