/* Off-node copies of snapshots (issue #16): a node's backup target, the
 * copy of every completed snapshot to it (table snapshot_copies), and
 * the node that serves a snapshot when its own is gone. The node's side
 * is src/node/snapcopy.c; docs/ARCHITECTURE.md, "Off-node copies". */
#ifndef NUBO_PORTAL_SNAPCOPY_H
#define NUBO_PORTAL_SNAPCOPY_H

#include <jansson.h>
#include <sqlite3.h>

#include "jobs.h"

/* Snapshot uuid of node_id completed: when the node has a backup target,
 * record a copy to make there and submit its job. */
void snapcopy_snapshot_completed(sqlite3 *db, const char *uuid,
    long long node_id, long long app_id);
/* Job snapshot.copy {snapshot, node}: copy the snapshot to node. */
int snapcopy_job(struct job *, json_t **result, char **cause);
/* The scheduler's pass: copies that failed are tried again when due,
 * copies whose job is gone (a portal restart) are submitted again, the
 * deletions of copies left by snapcopy_delete_all_later() too. */
void snapcopy_pass(sqlite3 *db);
/* Where snapshot uuid has copies: [{node, state, error?, finished?,
 * blobs_fetched?, bytes_fetched?}], oldest first. */
json_t *snapcopy_json(sqlite3 *db, const char *uuid);
/* Every row of rows (objects with "id", a snapshot uuid) gets its
 * "copies". */
void snapcopy_attach(sqlite3 *db, json_t *rows);
/* Delete snapshot uuid's copies on their nodes and their records: 0, or
 * -1 with *cause (a node that cannot be reached, or a copy running:
 * retention tries again). */
int snapcopy_delete_all(sqlite3 *db, const char *uuid, char **cause);
/* As snapcopy_delete_all(), for a snapshot whose record goes whatever
 * comes of it (its environment is deleted): a copy its node does not
 * delete now (why) is deleted by the scheduler's pass later, tried again
 * until its node does (table copy_deletions). */
void snapcopy_delete_all_later(sqlite3 *db, const char *uuid);
/* A check of node_id's store found its completed copy of snapshot uuid
 * damaged (why): the copy is failed, so no download or restore is
 * served from it, and due at once, so the scheduler has the node fetch
 * again what it lost. The snapshot's app (0: no such copy). */
long long snapcopy_damaged(sqlite3 *db, const char *uuid, long long node_id,
    const char *why);
/* The node that serves snapshot uuid (taken on node_id) now: node_id when
 * it answers that it has it completed, else a reachable node with a
 * completed copy of it, else node_id (its error then says why). */
long long snapcopy_serving_node(sqlite3 *db, const char *uuid,
    long long node_id);

#endif
