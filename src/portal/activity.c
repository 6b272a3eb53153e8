/* The activity log: every state change, with who, when and what. */
#include <stdarg.h>
#include <stdlib.h>

#include "portal.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

void
activity_log(struct preq *r, const char *action, const char *fmt, ...)
{
	va_list ap;
	char now[32];
	char *detail;

	va_start(ap, fmt);
	detail = xvasprintf(fmt, ap);
	va_end(ap);
	util_time_iso(util_now(), now, sizeof now);
	store_run(r->db, "INSERT INTO activity (at, user_id, app_id, node_id,"
	    " action, detail) VALUES (?, NULLIF(?, 0), NULLIF(?, 0),"
	    " NULLIF(?, 0), ?, ?)", "siiiss", now, r->who.user_id, r->app_id,
	    r->node_id, action, detail);
	free(detail);
}
