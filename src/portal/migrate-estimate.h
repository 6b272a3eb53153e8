/* Cutover downtime estimates from measured figures (migrate-estimate.c). */
#ifndef NUBO_MIGRATE_ESTIMATE_H
#define NUBO_MIGRATE_ESTIMATE_H

#include <jansson.h>
#include <sqlite3.h>

/* How long env of app_id will be down when it is cut over to node
 * target with database_bytes of database (-1: nothing deployed there),
 * the database copied or (replicate) followed by replication:
 * {seconds, basis: {measured: "cutover"|"start"|"rehearse"|"nothing"|
 * "nothing deployed", text, the figures used}}. */
json_t *migrate_estimate(sqlite3 *db, long long app_id, long long target,
    const char *env, long long database_bytes, int replicate);

#endif
