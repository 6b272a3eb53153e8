/* A node's report of its snapshot store's damage (issue #16): the weekly
 * check (src/node/fsck.c) found blobs damaged or missing. The portal
 * keeps it where people look: the node's activity log (`nubo nodes
 * activity`) and, for each snapshot it breaks that the portal knows,
 * the activity of the snapshot's app. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "jsonx.h"
#include "portal.h"
#include "snapcopy.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* What one report may name: the node sends at most 20 snapshots with 5
 * files each; more is refused, not stored. */
#define STORE_CHECK_SNAPSHOTS	50
#define STORE_CHECK_FILES	10
#define STORE_CHECK_NAME	512	/* bytes of one file's name */

/* The snapshots of the report: 0, or -1 with *cause. */
static int
snapshots_check(struct preq *r, json_t *snaps, char **cause)
{
	static const struct jfield fields[] = {
		{ "id", JT_STRING, 1 }, { "files", JT_ARRAY, 1 },
		{ "files_total", JT_INT, 0 }, { "copy", JT_BOOL, 0 },
		{ NULL } };
	json_t *s, *f;
	size_t i, k;
	char where[32];

	if (json_array_size(snaps) > STORE_CHECK_SNAPSHOTS) {
		*cause = xasprintf("'snapshots' holds more than %d entries",
		    STORE_CHECK_SNAPSHOTS);
		return -1;
	}
	json_array_foreach(snaps, i, s) {
		snprintf(where, sizeof where, "snapshots[%zu]", i);
		if (!json_is_object(s) || agent_fields_check(r, s, fields, where,
		    cause) == -1) {
			if (*cause == NULL)
				*cause = xasprintf("%s must be an object", where);
			return -1;
		}
		if (!util_valid_uuid(jsonx_str(s, "id"))) {
			*cause = xasprintf("%s.id must be a lowercase uuid", where);
			return -1;
		}
		if (json_array_size(json_object_get(s, "files")) >
		    STORE_CHECK_FILES) {
			*cause = xasprintf("%s.files holds more than %d names",
			    where, STORE_CHECK_FILES);
			return -1;
		}
		json_array_foreach(json_object_get(s, "files"), k, f)
			if (!json_is_string(f) || json_string_length(f) >
			    STORE_CHECK_NAME || strpbrk(json_string_value(f),
			    "\n\r") != NULL) {
				*cause = xasprintf("%s.files[%zu] must be a file's "
				    "name", where, k);
				return -1;
			}
	}
	return 0;
}

/* "'tree/a', 'db/db.backup' and 3 more" of a snapshot's entry. */
static void
files_text(struct buf *b, json_t *s)
{
	json_t *f;
	size_t i, n = json_array_size(json_object_get(s, "files"));
	long long total = jsonx_int(s, "files_total", (long long)n);

	json_array_foreach(json_object_get(s, "files"), i, f)
		buf_printf(b, "%s'%s'", i == 0 ? "" : ", ",
		    json_string_value(f));
	if (total > (long long)n)
		buf_printf(b, " and %lld more", total - (long long)n);
}

/* A damaged copy s (an entry of the report) of another node's snapshot:
 * failed and copied again (snapcopy_damaged()), said in its app's
 * activity. */
static void
store_check_copy(struct preq *r, json_t *s)
{
	struct buf one;
	char *why, *node;
	long long app;

	buf_init(&one, 0);
	files_text(&one, s);
	node = store_text(r->db, "SELECT name FROM nodes WHERE id = ?", "i",
	    r->node_id);
	why = xasprintf("a check of the snapshot store of node '%s' found the"
	    " data of %.*s damaged or missing", node ? node : "?",
	    (int)one.len, one.data);
	app = snapcopy_damaged(r->db, jsonx_str(s, "id"), r->node_id, why);
	if (app > 0)
		activity_record(r->db, 0, app, r->node_id, "snapshot.damaged",
		    "the copy of snapshot %.8s on node '%s' cannot be used: %s;"
		    " it is copied again", jsonx_str(s, "id"), node ? node : "?",
		    why);
	buf_release(&one);
	free(why);
	free(node);
}

/* POST /agent/store-check {blobs, bytes, damaged, missing, quarantined,
 * bad_manifests, snapshots_total, snapshots: [{id, files, files_total,
 * copy?}]} (copy: the node's copy of another node's snapshot) */
void
agent_store_check(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "blobs", JT_INT, 1 }, { "bytes", JT_INT, 0 },
		{ "damaged", JT_INT, 1 }, { "missing", JT_INT, 1 },
		{ "quarantined", JT_INT, 0 }, { "bad_manifests", JT_INT, 0 },
		{ "snapshots_total", JT_INT, 0 },
		{ "snapshots", JT_ARRAY, 1 }, { NULL } };
	json_t *snaps, *s, *row;
	struct buf b, one;
	char *cause = NULL;
	size_t i;
	int copy;

	if (agent_body_check(r, fields) == -1)
		return;
	snaps = json_object_get(r->body, "snapshots");
	if (snapshots_check(r, snaps, &cause) == -1) {
		reply_error(r, 400, "BAD_REQUEST", "%s", cause);
		free(cause);
		return;
	}
	r->node_id = r->who.node_id;
	buf_init(&b, 0);
	buf_printf(&b, "a check of the node's snapshot store found %lld "
	    "damaged blob(s) (%lld moved to quarantine), %lld missing and "
	    "%lld unreadable manifest(s) among %lld blobs",
	    jsonx_int(r->body, "damaged", 0), jsonx_int(r->body, "quarantined",
	    0), jsonx_int(r->body, "missing", 0), jsonx_int(r->body,
	    "bad_manifests", 0), jsonx_int(r->body, "blobs", 0));
	if (json_array_size(snaps) > 0)
		buf_printf(&b, "; %lld snapshot(s) cannot be restored:",
		    jsonx_int(r->body, "snapshots_total",
		    (long long)json_array_size(snaps)));
	json_array_foreach(snaps, i, s) {
		copy = json_is_true(json_object_get(s, "copy"));
		buf_printf(&b, "%s %s%.8s (", i == 0 ? "" : ";", copy ?
		    "the copy of " : "", jsonx_str(s, "id"));
		files_text(&b, s);
		buf_printf(&b, ")");
		if (copy) {
			store_check_copy(r, s);
			continue;
		}
		/* the app's members see their snapshot broken */
		row = store_row(r->db, "SELECT s.app_id, e.name AS env FROM"
		    " snapshots s LEFT JOIN environments e ON e.id ="
		    " s.environment_id WHERE s.uuid = ? AND s.node_id = ?",
		    "si", jsonx_str(s, "id"), r->node_id);
		if (row != NULL && jsonx_int(row, "app_id", 0) > 0) {
			buf_init(&one, 0);
			files_text(&one, s);
			activity_record(r->db, 0, jsonx_int(row, "app_id", 0),
			    r->node_id, "snapshot.damaged", "snapshot %.8s of "
			    "environment '%s' cannot be restored: a check of its "
			    "node's snapshot store found the data of %.*s "
			    "damaged or missing", jsonx_str(s, "id"),
			    jsonx_str(row, "env") ? jsonx_str(row, "env") : "?",
			    (int)one.len, one.data);
			buf_release(&one);
		}
		json_decref(row);
	}
	activity_record(r->db, 0, 0, r->node_id, "node.store-damaged", "%.*s",
	    (int)b.len, b.data);
	buf_release(&b);
	reply(r, 200, json_pack("{s:b}", "recorded", 1));
}
