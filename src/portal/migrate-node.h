/* What the migration and offboarding ask of nodes, on top of the node
 * protocol (nodeclient.c), packages, backups and settings. Every function
 * returns 0, or -1 with *cause (caller frees). */
#ifndef NUBO_MIGRATE_NODE_H
#define NUBO_MIGRATE_NODE_H

#include <jansson.h>
#include <sqlite3.h>

struct portal;

/* The portal (cloud domain) the environment actions need; set by the
 * job and the routes before they call the functions below. */
void migrate_node_set_portal(struct portal *);
/* Its cloud domain (environment hostnames). */
const char *migrate_node_cloud_domain(void);

/* start | stop | restart on environment env_id of node. */
int migrate_node_env_action(sqlite3 *db, long long node_id, long long env_id,
    const char *action, char **cause);

/* Evidence that the latest backup and deployed package of an environment
 * were downloaded ({environment, kept_by: "download", snapshot, package}),
 * or NULL with *cause saying what was not. */
json_t *migrate_node_saved(sqlite3 *db, long long node_id, long long env_id,
    const char *env, char **cause);

struct migrate_ctx;

/* Push the desired spec of every environment of node again (after a
 * link, or when the hostnames it answers for change). */
int migrate_node_push_node(sqlite3 *db, long long node_id, char **cause);
/* Maintenance page on (1) or off (0). */
int migrate_node_maintenance(sqlite3 *db, long long node_id,
    long long env_id, int on, char **cause);
/* Start env and wait until it is running and healthy. */
int migrate_node_start_healthy(struct migrate_ctx *, long long node_id,
    long long env_id, char **cause);
/* The copy steps (seed §3.2.1–§3.2.3) from environment s (source node) to
 * environment t (target node); *result says what was copied. */
int migrate_node_copy_package(struct migrate_ctx *, long long s,
    long long t, json_t **result, char **cause);
int migrate_node_copy_settings(struct migrate_ctx *, long long s,
    long long t, json_t **result, char **cause);
int migrate_node_copy_data(struct migrate_ctx *, long long s, long long t,
    json_t **result, char **cause);
/* The signed URLs a target pulls environment s's data from: the database
 * (dump: "dump" or "dump/schema"; NULL for none), the files and their
 * list (caller frees). */
int migrate_node_data_urls(struct migrate_ctx *, long long s,
    const char *dump, char **dump_url, char **files_url,
    char **manifest_url, char **cause);
/* Start an import on the target environment t (transfer.c) and poll it
 * to the end, reporting progress; *task gets its last state. */
int migrate_node_import(struct migrate_ctx *, long long t, json_t *body,
    long long total, long long files_total, json_t **task, char **cause);
/* node_call_timeout, retried while the node cannot be reached (it may be
 * restarting) for up to a few seconds. */
int migrate_node_call(sqlite3 *db, long long node, const char *method,
    const char *path, json_t *body, json_t **out, char **cause,
    long timeout);
/* The id of node's own environment name (0 when it has none). */
long long migrate_node_env_id(sqlite3 *db, long long node, const char *name);
/* Was nothing ever deployed to (nor restored into) the environment? */
int migrate_node_env_empty(sqlite3 *db, long long env_id);
/* Is the environment stopped (as the portal last saw it)? */
int migrate_node_env_stopped(sqlite3 *db, long long env_id);
/* Compare the checksums of s and t; a difference fails, listing them. */
int migrate_node_verify(struct migrate_ctx *, long long s, long long t,
    json_t **result, char **cause);
/* Poll the target's router with the app's own hostname until it serves;
 * *at_ms the time of the first served request. */
int migrate_node_first_served(struct migrate_ctx *, long long node_id,
    long long env_id, char **host, long long *at_ms, char **cause);
long long migrate_node_now_ms(void);
/* A backup of env_id on node, kept by the migration under comment (made
 * once: found again by its comment after a crash). 0 with *uuid (caller
 * frees; NULL when nothing was ever deployed there), or -1 with *cause. */
int migrate_node_keep_snapshot(struct migrate_ctx *, long long node_id,
    long long env_id, const char *comment, char **uuid, char **cause);
/* Sizes of one environment and estimates, for the plan. */
json_t *migrate_node_env_plan(sqlite3 *db, long long source_node,
    long long target_node, const char *env);

#endif
