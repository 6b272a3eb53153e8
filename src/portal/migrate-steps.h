/* The steps of a migration: what each asks the portal store and the two
 * nodes to do. Used by migrate.c only. */
#ifndef NUBO_MIGRATE_STEPS_H
#define NUBO_MIGRATE_STEPS_H

#include <jansson.h>
#include <sqlite3.h>

/* One running step and its migration. */
struct migrate_ctx {
	sqlite3		*db;
	long long	 id;		/* migration */
	json_t		*row;		/* the migrations row (+ names) */
	long long	 app_id, source_node, target_node, temp_app;
	long long	 round, created_by, job_id, step_id;
	const char	*app_subdomain, *source_name, *target_name, *phase;
	const char	*env;		/* per-environment steps: its name */
	json_t		*prior;		/* the step's result of an earlier
					 * attempt (ids it made), or NULL */
	json_t		*input;		/* what the step was asked beyond
					 * its kind (migration_steps.input):
					 * {resync: [table]}, or NULL */
	int		 unreachable;	/* set by a failing step when a node
					 * could not be reached (the stream
					 * between them broke): tried again
					 * by itself, as a cause holding
					 * NODE_UNREACHABLE is */
	int		 in_request;	/* in an API request, not a step:
					 * node calls answer within seconds */
};

struct migrate_step_kind {
	const char	*name;
	const char	*summary;
	/* 0 with *result (what it made / measured), or -1 with *cause. A
	 * failing step may still set *result (kept for the next attempt). */
	int		(*run)(struct migrate_ctx *, json_t **result,
			    char **cause);
};

const struct migrate_step_kind *migrate_steps_kind(const char *name);
const char *migrate_steps_summary(const char *name, const char *phase,
    int replicate);
/* Sizes and estimates of one environment for the plan. */
json_t *migrate_steps_env_plan(sqlite3 *db, long long source_node,
    long long target_node, const char *env);
/* run_all: after a phase ended in state, queue the next one; 1 when one
 * was queued, 0 when the migration waits (for offboarding approval). */
int migrate_steps_next_phase(struct migrate_ctx *, const char *state);
/* What the user can do next, for GET /migrations/{id}. */
json_t *migrate_steps_next_hint(sqlite3 *db, json_t *migration);
/* Mirror a step's progress into its job (takes no reference). */
void migrate_steps_job_progress(struct migrate_ctx *, json_t *progress);

/* migrate.c: load what a step needs to know about migration id into c
 * (c->row the caller's to json_decref()); 0, or -1 when there is none. */
int migrate_ctx_load(sqlite3 *db, long long id, struct migrate_ctx *c);
/* migrate.c: record progress of the running step (takes the reference). */
void migrate_progress(struct migrate_ctx *, json_t *progress);

#endif
