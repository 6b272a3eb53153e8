/* The migration of an app from one node to another (SPEC §4, the seed's
 * whole procedure): a journaled state machine kept in the portal store.
 *
 * A migration is a row in `migrations`; what it does is a list of steps in
 * `migration_steps`, added a phase at a time (start, rehearse, cutover,
 * finalize, abort, rollback). The runner takes the first step of the
 * current phase that is not done, records it `running` (before), runs it,
 * and records it `done` or `failed` (after). Every step is idempotent and
 * keeps what it created (snapshot ids, package ids, the temporary app) in
 * its result, so running it again after a kill -9 of any process finishes
 * the work without duplicating it. Phases run as portal jobs (kind
 * "migration"), which jobs.c re-queues when the portal restarts. */
#ifndef NUBO_MIGRATE_H
#define NUBO_MIGRATE_H

#include <jansson.h>
#include <sqlite3.h>

/* What the caller may do, checked by the handlers and by the runner
 * before each phase: prerequisites of seed §2. */
struct migrate_who {
	long long	 user_id;
	int		 is_admin;
};

/* Check the prerequisites of moving app to the node named target. 0 when
 * all hold; -1 with *code (static) and *cause (caller frees) naming the
 * first that does not, and *status the HTTP status fitting it. */
int migrate_check(sqlite3 *db, const struct migrate_who *who,
    long long app_id, long long target_node, long long ignore_migration,
    const char **code, unsigned *status, char **cause);

/* The environments a migration of the app on node_id covers, by name
 * (a JSON array of strings). */
json_t *migrate_source_envs(sqlite3 *db, long long node_id);
/* The dry run: every step, what it will copy, sizes, estimated downtime
 * (replicate: of a migration that replicates). */
json_t *migrate_plan(sqlite3 *db, long long app_id, long long target_node,
    int replicate);

/* Create a migration row (state "created") and its first phase's steps.
 * Returns the id, or 0 with *cause. */
long long migrate_create(sqlite3 *db, const struct migrate_who *who,
    long long app_id, long long target_node, int run_all, char **cause);

/* Add the steps of phase ("start", "rehearse", "cutover", "finalize",
 * "abort", "rollback") and make it the current one. Refuses (-1 with
 * *code, *cause) a phase that the migration's state does not allow. */
int migrate_phase(sqlite3 *db, long long id, const char *phase,
    const char **code, char **cause);

/* Run the current phase's steps until done or one fails. Called by the
 * job runner; safe to call again after any crash. A step that failed as a
 * node could not be reached is tried again with back-off (the migration's
 * status is "retrying" meanwhile) for up to an hour, or until an abort or
 * rollback stops it. 0 when the phase is complete, -1 with *cause when a
 * step failed otherwise (the step and migration say so; `resume` runs it
 * again). job_id (0: none) gets progress. */
int migrate_run(long long id, long long job_id, char **cause);

/* The migration as the API shows it: state, steps with progress, report. */
json_t *migrate_json(sqlite3 *db, long long id);

/* Called by the offboarding approval of node: continues migrations that
 * waited for it (seed §3.4 follows §3.3). Returns migration ids to run. */
json_t *migrate_on_offboarded(sqlite3 *db, long long node_id);

#endif
