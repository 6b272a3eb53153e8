/* A replicating migration's cutover verifies only the rows written since
 * its baseline (migrate-changes.c; the nodes' part: src/node/changes.c). */
#ifndef NUBO_MIGRATE_CHANGES_H
#define NUBO_MIGRATE_CHANGES_H

#include <jansson.h>

struct migrate_ctx;

/* The cutover's `baseline` step (before the maintenance page): a change
 * slot and a held snapshot on both sides, every table summed without the
 * rows touched since the slots; *result {baseline, slots, tables, by_key
 * (the tables equal outside those rows), whole {table: why}} — or
 * {baseline: false, why} when the target was too far behind, or
 * {skipped} for a copying migration. 0, or -1 with *cause. */
int migrate_changes_baseline(struct migrate_ctx *, long long s, long long t,
    json_t **result, char **cause);
/* The cutover's verify after a baseline: the rows of every key either
 * slot saw touched compared (a difference appended to diffs), *query
 * (?database=listed&full=…) reading whole only the other tables
 * (*rechecked), *by_key {table: keys compared}. *query NULL when there is
 * no baseline to build on (the caller reads as before). 0, or -1 with
 * *cause. */
int migrate_changes_verify(struct migrate_ctx *, long long s, long long t,
    char **query, json_t **by_key, json_t **rechecked, json_t *diffs,
    char **cause);
/* Drop the change slots (and held snapshots) of s and t (0: none). 0, or
 * -1 with *cause. */
int migrate_changes_drop(struct migrate_ctx *, long long s, long long t,
    char **cause);

#endif
