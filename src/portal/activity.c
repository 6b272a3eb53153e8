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

/* The node's own entries that name no app: what a platform admin or the
 * node's Technical Contact did to the node, or what its agent said of
 * itself — its name, Technical Contact, token, address, certificate,
 * backup target and offboarding, all of which GET /nodes/{node} shows
 * its viewers anyway. Not listed, so seen by platform admins only: an
 * app's entries detached when the app was deleted (app_id NULL, any
 * action), node.cleaned (the counts of what the previous app left) and
 * node.store-damaged (the snapshots, copies of other nodes' among them,
 * and their files' names). */
#define ACTIVITY_NODE_OWN \
	"('node.create', 'node.register', 'node.technical-contact'," \
	" 'node.token', 'node.address', 'node.certificate-pinned'," \
	" 'node.certificate-refused', 'node.certificate-trusted'," \
	" 'node.backup-target', 'node.offboarding-request', 'node.offboarded'," \
	" 'node.purge', 'node.purged', 'node.purge-failed')"

void
activity_reply_page(struct preq *r, enum activity_of of)
{
	const char *l = preq_query(r, "limit");
	long long limit = 100;
	char *scope = NULL;
	json_t *rows;

	if (l && util_parse_int(l, 1, NUBO_ACTIVITY_PAGE_MAX, &limit) == -1) {
		reply_error(r, 400, "BAD_REQUEST", "limit must be 1 to %d, not "
		    "'%s'", NUBO_ACTIVITY_PAGE_MAX, l);
		return;
	}
	if (of == ACTIVITY_OF_APP) {
		rows = store_rows(r->db, "SELECT a.id, a.at, u.email AS user,"
		    " a.action, a.detail, n.name AS node FROM activity a"
		    " LEFT JOIN users u ON u.id = a.user_id"
		    " LEFT JOIN nodes n ON n.id = a.node_id"
		    " WHERE a.app_id = ? ORDER BY a.id DESC LIMIT ?", "ii",
		    r->app_id, limit);
	} else {
		/* A node hosts one app after another (relinks), and a backup
		 * target keeps other nodes' apps' copies: a non-admin sees
		 * the entries of the apps they are a member (or Technical
		 * Contact) of and the node's own; a key limited to named
		 * apps, of those apps only. */
		if (r->who.app_scope)
			scope = json_dumps(r->who.app_scope, JSON_COMPACT);
		rows = store_rows(r->db, "SELECT a.id, a.at, u.email AS user,"
		    " a.action, a.detail, p.subdomain AS app FROM activity a"
		    " LEFT JOIN users u ON u.id = a.user_id"
		    " LEFT JOIN apps p ON p.id = a.app_id"
		    " WHERE a.node_id = ?1 AND CASE WHEN a.app_id IS NULL"
		    " THEN ?3 OR a.action IN " ACTIVITY_NODE_OWN
		    " ELSE (?3 OR p.technical_contact = ?4 OR EXISTS (SELECT 1"
		    " FROM members m WHERE m.app_id = a.app_id AND"
		    " m.user_id = ?4)) AND (?5 IS NULL OR p.uuid IN"
		    " (SELECT value FROM json_each(?5))) END"
		    " ORDER BY a.id DESC LIMIT ?2", "iiiis", r->node_id, limit,
		    (long long)r->who.is_admin, r->who.user_id, scope);
		free(scope);
	}
	if (rows == NULL)
		reply_store_error(r);
	else
		reply(r, 200, json_pack("{s:o}", "activity", rows));
}
