/* Portal jobs (node-contract.md "Jobs"): long operations run by worker
 * threads. A route submits a job and answers 202 + Location; the job kind's
 * function does the work (usually calling a node) and reports progress.
 * Jobs still running when the portal stops are re-queued when it starts
 * again, so every job function must be idempotent. */
#ifndef NUBO_JOBS_H
#define NUBO_JOBS_H

#include <jansson.h>
#include <sqlite3.h>

#include "portal.h"

struct job {
	long long	 id;
	const char	*kind;
	long long	 app_id;	/* 0 when none */
	long long	 node_id;
	char		*environment;	/* NULL when none */
	json_t		*params;	/* object, never NULL */
	long long	 created_by;
	sqlite3		*db;		/* the worker thread's connection */
	struct portal	*portal;
};

/* A job kind's function: 0 with *result set (may stay NULL), or -1 with
 * *cause set (the job's error, shown to the user) and *result, when the
 * failure has a stable code (the node's refusal), {code} (kept as the
 * job's result). */
typedef int (*job_fn)(struct job *, json_t **result, char **cause);

struct job_kind {
	const char	*kind;
	job_fn		 run;
};

/* Queue a job; returns its id, or 0 on a store error. Jobs on the same
 * node environment (of the same app: sandboxes share their name) run one
 * at a time, in order. params is the caller's still (copied into the
 * store). */
long long job_submit(sqlite3 *db, const char *kind, long long app_id,
    long long node_id, const char *environment, json_t *params,
    long long created_by);
/* Submit and reply 202 {job} + Location: /api/v1/jobs/{id}; takes params
 * (NULL: none). */
void job_submit_reply(struct preq *r, const char *kind, const char *environment,
    json_t *params);
/* Progress shown by GET /jobs/{id} and the CLI: {message, …extra}. */
void job_progress(struct job *, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A job as the API shows it; NULL when there is none. */
json_t *job_json(sqlite3 *db, long long id);

/* Job functions that other modules also call directly, with a struct job
 * of their own (the migration runs them inside its job). */
int envs_job_action(struct job *, json_t **result, char **cause);
int backups_job_create(struct job *, json_t **result, char **cause);
/* Poll a node record (snapshot, restore, copy) at path until it is no
 * longer running, as job j's progress (what: "backing up"); 0 with
 * *last, or -1 with *cause. */
int backups_poll(struct job *j, long long node_id, const char *path,
    const char *what, json_t **last, char **cause);
/* Delete a snapshot on its node, then its record. 0, or -1 with *cause. */
int backups_snapshot_delete(sqlite3 *db, const char *uuid, long long node_id,
    char **cause);
/* A snapshot of env_id on j->node_id made by the portal itself, found
 * again by its comment: an existing completed one is reused, a failed one
 * replaced, a queued or running one carried on, so calling it again after
 * a crash makes no second snapshot. 0 with *uuid (caller frees), or -1
 * with *cause. */
int backups_snapshot_kept(struct job *j, long long env_id,
    const char *comment, char **uuid, char **cause);

/* Reply to r once job id has finished (or, with r->wait_rev, changed),
 * or after secs (wait_reply() in waits.h): then(r) replies (r->wait_job
 * and r->wait_arg say what it waited for). Call it from a handler
 * instead of replying. */
void job_wait_reply(struct preq *r, long long id, int secs, route_handler then,
    const void *arg);

/* Start nthreads workers (re-queueing jobs left running); stop them. */
void jobs_start(struct portal *, unsigned nthreads);
void jobs_stop(void);

/* GET /jobs/{id} */
void jobs_show(struct preq *);

#endif
