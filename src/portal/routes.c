/* THE route table of the REST API (SPEC §5), and the one place where every
 * request is routed, authenticated, resolved, permission-checked and its
 * JSON body parsed before a handler runs. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "mx.h"
#include "portal.h"
#include "store.h"
#include "xmalloc.h"

/* route-meta.c */
void meta_openapi(struct preq *);
/* route-users.c */
void users_session_create(struct preq *);
void web_session_create(struct preq *);
void web_session_delete(struct preq *);
void users_me(struct preq *);
void users_create(struct preq *);
void users_list(struct preq *);
void keys_create(struct preq *);
void keys_list(struct preq *);
void keys_revoke(struct preq *);
/* route-apps.c */
void apps_list(struct preq *);
void apps_create(struct preq *);
void apps_show(struct preq *);
void apps_rename(struct preq *);
void apps_delete(struct preq *);
void apps_unlink_sandbox(struct preq *);
void apps_transfer_technical_contact(struct preq *);
void apps_activity(struct preq *);
/* route-members.c */
void members_list(struct preq *);
void members_add(struct preq *);
void members_remove(struct preq *);
void members_set_permissions(struct preq *);
/* route-nodes.c */
void nodes_create(struct preq *);
void nodes_list(struct preq *);
void nodes_show(struct preq *);
void nodes_set_technical_contact(struct preq *);
void nodes_set_address(struct preq *);
/* snapcopy.c */
void nodes_set_backup_target(struct preq *);
void nodes_token_rotate(struct preq *);
void nodes_trust(struct preq *);
void nodes_link(struct preq *);
void nodes_activity(struct preq *);
/* route-settings.c */
void settings_show(struct preq *);
void settings_export(struct preq *);
void settings_import(struct preq *);
void settings_patch(struct preq *);
void settings_diff_route(struct preq *);
void settings_constant_put(struct preq *);
void settings_constant_delete(struct preq *);
void settings_event_put(struct preq *);
void settings_domain_put(struct preq *);
void settings_domain_delete(struct preq *);
void settings_access_put(struct preq *);
void settings_headers_put(struct preq *);
void settings_header_put(struct preq *);
void settings_header_delete(struct preq *);
void settings_runtime_patch(struct preq *);
void settings_env_var_put(struct preq *);
void settings_env_var_delete(struct preq *);
void settings_window_put(struct preq *);
void settings_window_delete(struct preq *);
/* route-envs.c */
void envs_list(struct preq *);
void envs_show(struct preq *);
void envs_start(struct preq *);
void envs_stop(struct preq *);
void envs_restart(struct preq *);
void envs_clean(struct preq *);
void envs_transport(struct preq *);
void envs_scale(struct preq *);
void envs_maintenance(struct preq *);
void envs_logs(struct preq *);
void envs_run_create(struct preq *);
void envs_run_show(struct preq *);
void envs_run_stop(struct preq *);
void envs_psql(struct preq *);
void envs_db_credentials(struct preq *);
void envs_tags_list(struct preq *);
void envs_logs_day(struct preq *);
void envs_access_logs_day(struct preq *);
void envs_tag_put(struct preq *);
void envs_tag_delete(struct preq *);
/* route-agent.c */
void agent_register(struct preq *);
void agent_status(struct preq *);
void agent_downloads(struct preq *);
void agent_snapshot_upload_refused(struct preq *);
void agent_store_check(struct preq *);
/* jobs.c */
void jobs_show(struct preq *);
/* route-packages.c */
void packages_list(struct preq *);
void packages_show(struct preq *);
void packages_upload(struct preq *);
void packages_download(struct preq *);
void packages_delete(struct preq *);
void packages_app_list(struct preq *);
void packages_app_upload(struct preq *);
void packages_app_show(struct preq *);
void packages_app_download(struct preq *);
void packages_app_delete(struct preq *);
void packages_app_label(struct preq *);
/* route-migrations.c */
void migrations_create(struct preq *);
void migrations_list(struct preq *);
void migrations_show(struct preq *);
void migrations_rehearse(struct preq *);
void migrations_cutover(struct preq *);
void migrations_resume(struct preq *);
void migrations_abort(struct preq *);
void migrations_rollback(struct preq *);
void offboarding_create(struct preq *);
void offboarding_list(struct preq *);
void offboarding_approve_route(struct preq *);
void offboarding_show(struct preq *);
void offboarding_purge_route(struct preq *);

/* route-backups.c */
void backups_list(struct preq *);
void backups_create(struct preq *);
void backups_show(struct preq *);
void backups_comment(struct preq *);
void backups_delete(struct preq *);
void backups_download(struct preq *);
void backups_upload_begin(struct preq *);
void backups_upload_complete(struct preq *);
void backups_restore(struct preq *);
void backups_restores_list(struct preq *);
/* mx-deploy.c: the Mendix faces (docs/MENDIX-API.md) */
void mx_apps_list(struct preq *);
void mx_apps_create(struct preq *);
void mx_apps_show(struct preq *);
void mx_envs_list(struct preq *);
void mx_envs_show(struct preq *);
void mx_envs_start(struct preq *);
void mx_envs_start_status(struct preq *);
void mx_envs_stop(struct preq *);
void mx_envs_clean(struct preq *);
void mx_envs_transport(struct preq *);
void mx_envs_scale(struct preq *);
void mx_envs_package(struct preq *);
void mx_packages_list(struct preq *);
void mx_packages_show(struct preq *);
void mx_packages_delete(struct preq *);
void mx_packages_download(struct preq *);
void mx_builds_create(struct preq *);
void mx_branches_list(struct preq *);
void mx_branches_show(struct preq *);
void mx_branches_revisions(struct preq *);
void mx_packages_upload_v1(struct preq *);
void mx_packages_upload_v2(struct preq *);
void mx_jobs_show_v2(struct preq *);
void mx_settings_show(struct preq *);
void mx_settings_set(struct preq *);
void mx_tags_list(struct preq *);
void mx_logs_day(struct preq *);
void mx_access_logs_day(struct preq *);
void mx_tags_add(struct preq *);
void mx_tags_delete(struct preq *);
/* mx-v4.c */
void mx4_apps_list(struct preq *);
void mx4_apps_show(struct preq *);
void mx4_apps_patch(struct preq *);
void mx4_envs_list(struct preq *);
void mx4_envs_show(struct preq *);
void mx4_permissions_show(struct preq *);
void mx4_permissions_patch(struct preq *);
/* mx-backups.c */
void mx_snapshots_list(struct preq *);
void mx_snapshots_create(struct preq *);
void mx_snapshots_show(struct preq *);
void mx_snapshots_update(struct preq *);
void mx_snapshots_delete(struct preq *);
void mx_archives_create(struct preq *);
void mx_archives_show(struct preq *);
void mx_restores_create(struct preq *);
void mx_restores_show(struct preq *);

#define MX1_ENV "/api/1/apps/{AppId}/environments/{Mode}"
#define MXB_ENV "/api/v2/apps/{ProjectId}/environments/{EnvironmentId}"
#define MX4_ENV "/api/v4/apps/{appId}/environments/{environmentId}"

/* nubo's own routes leave face and flags out: FACE_NUBO, none */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
const struct route routes[] = {
	/* meta */
	{ "GET", "/openapi.json", meta_openapi, ACCESS_PUBLIC,
	  "this API as an OpenAPI document" },

	/* users, sessions and API keys (route-users.c) */
	{ "POST", "/sessions", users_session_create, ACCESS_PUBLIC,
	  "log in with email and password; returns a new API key (after "
	  "too many failed logins for the email or from the address: 429 "
	  "TOO_MANY_ATTEMPTS with Retry-After)" },
	{ "POST", "/session", web_session_create, ACCESS_PUBLIC,
	  "sign in a browser with email and password (Content-Type: "
	  "application/json only, never cross-site): a session cookie "
	  "(HttpOnly, SameSite=Strict; __Host-, Secure under TLS) and its "
	  "CSRF token, which every request of the session but GET must "
	  "carry in X-CSRF-Token; lockout as POST /sessions" },
	{ "DELETE", "/session", web_session_delete, ACCESS_USER,
	  "sign out: the calling browser session ends" },
	{ "GET", "/me", users_me, ACCESS_USER, "the calling user (a browser "
	  "session: with its csrf_token)" },
	{ "GET", "/users", users_list, ACCESS_ADMIN, "list users" },
	{ "POST", "/users", users_create, ACCESS_ADMIN, "create a user" },
	{ "GET", "/keys", keys_list, ACCESS_USER, "list your API keys" },
	{ "POST", "/keys", keys_create, ACCESS_USER,
	  "create an API key (shown once)" },
	{ "DELETE", "/keys/{key}", keys_revoke, ACCESS_USER,
	  "revoke one of your API keys" },

	/* apps, members, permissions (route-apps.c) */
	{ "GET", "/apps", apps_list, ACCESS_USER, "list the apps you can see" },
	{ "POST", "/apps", apps_create, ACCESS_USER, "create a Free App" },
	{ "GET", "/apps/{app}", apps_show, ACCESS_APP_MEMBER, "show an app" },
	{ "PATCH", "/apps/{app}", apps_rename, ACCESS_APP_MANAGE,
	  "rename an app (its display name; the subdomain is permanent)" },
	{ "DELETE", "/apps/{app}", apps_delete, ACCESS_APP_TC,
	  "delete an app (refused while it is linked to a node)" },
	{ "POST", "/apps/{app}/unlink-sandbox", apps_unlink_sandbox,
	  ACCESS_APP_TC, "remove the app's sandbox and its data "
	  "(needs {\"confirm\": true})" },
	{ "POST", "/apps/{app}/technical-contact",
	  apps_transfer_technical_contact, ACCESS_APP_TC,
	  "hand the Technical Contact role to another user" },
	{ "GET", "/apps/{app}/activity", apps_activity, ACCESS_APP_MEMBER,
	  "the app's activity log, newest first" },
	{ "GET", "/apps/{app}/members", members_list, ACCESS_APP_MEMBER,
	  "list the app's members and their permissions" },
	{ "POST", "/apps/{app}/members", members_add, ACCESS_APP_MANAGE,
	  "add a member" },
	{ "DELETE", "/apps/{app}/members/{user}", members_remove,
	  ACCESS_APP_MANAGE, "remove a member (not the Technical Contact)" },
	{ "PUT", "/apps/{app}/members/{user}/permissions",
	  members_set_permissions, ACCESS_APP_MANAGE,
	  "replace a member's permissions" },


	/* nodes, linking, sandbox (route-nodes.c) */
	{ "GET", "/nodes", nodes_list, ACCESS_USER, "list the nodes you can see" },
	{ "POST", "/nodes", nodes_create, ACCESS_ADMIN,
	  "create a node (answers its agent token, shown once)" },
	{ "GET", "/nodes/{node}", nodes_show, ACCESS_NODE_VIEW,
	  "show a node: status, generation, Technical Contact, app, "
	  "environments" },
	{ "PUT", "/nodes/{node}/technical-contact",
	  nodes_set_technical_contact, ACCESS_ADMIN,
	  "set the node's Technical Contact" },
	{ "PUT", "/nodes/{node}/address", nodes_set_address, ACCESS_ADMIN,
	  "set the address the node's agent URL may name besides the one it "
	  "registers from (\"\" clears it)" },
	{ "PUT", "/nodes/{node}/backup-target", nodes_set_backup_target,
	  ACCESS_ADMIN, "copy every snapshot completed on the node to another "
	  "node {target} (\"\" : no copies)" },
	{ "POST", "/nodes/{node}/trust", nodes_trust, ACCESS_ADMIN,
	  "accept the certificate a node presented instead of its pinned "
	  "one {pin?}" },
	{ "POST", "/nodes/{node}/token", nodes_token_rotate, ACCESS_ADMIN,
	  "rotate the node's agent token (shown once)" },
	{ "POST", "/nodes/{node}/link", nodes_link, ACCESS_NODE_TC,
	  "link an app to the node; an app already linked is unlinked "
	  "automatically" },
	{ "GET", "/nodes/{node}/activity", nodes_activity, ACCESS_NODE_VIEW,
	  "the node's activity log, newest first" },


	/* environments (route-envs.c) */
	{ "GET", "/apps/{app}/environments", envs_list, ACCESS_APP_MEMBER,
	  "list the app's environments and their state" },
	{ "GET", "/apps/{app}/environments/{env}", envs_show,
	  ACCESS_APP_MEMBER, "show an environment: state, instances, URL" },
	{ "POST", "/apps/{app}/environments/{env}/start", envs_start,
	  ACCESS_APP_TRANSPORT, "start the environment (job)" },
	{ "POST", "/apps/{app}/environments/{env}/stop", envs_stop,
	  ACCESS_APP_TRANSPORT, "stop the environment (job)" },
	{ "POST", "/apps/{app}/environments/{env}/restart", envs_restart,
	  ACCESS_APP_TRANSPORT, "restart the environment (job)" },
	{ "POST", "/apps/{app}/environments/{env}/clean", envs_clean,
	  ACCESS_APP_TRANSPORT,
	  "wipe the environment's database and files; stopped only (job)" },
	{ "POST", "/apps/{app}/environments/{env}/transport", envs_transport,
	  ACCESS_APP_TRANSPORT,
	  "deploy a package of the node's repository; stopped only (job)" },
	{ "PUT", "/apps/{app}/environments/{env}/scale", envs_scale,
	  ACCESS_APP_SETTINGS,
	  "set instances (v4) and memory per instance (job)" },
	{ "POST", "/apps/{app}/environments/{env}/maintenance",
	  envs_maintenance, ACCESS_APP_TRANSPORT,
	  "turn the maintenance page on or off" },
	{ "GET", "/apps/{app}/environments/{env}/logs", envs_logs,
	  ACCESS_APP_LOGS, "the app's log (offset, lines; instance: only "
	  "what instance N printed; offset with wait=S: held until there is "
	  "something after the offset, or S seconds)" },
	{ "POST", "/apps/{app}/environments/{env}/runs", envs_run_create,
	  ACCESS_APP_TRANSPORT, "run a one-off command in a fresh instance "
	  "(command, timeout, input)" },
	{ "POST", "/apps/{app}/environments/{env}/psql", envs_psql,
	  ACCESS_APP_SETTINGS, "run SQL through psql on the environment's "
	  "database (a one-off run)" },
	{ "POST", "/apps/{app}/environments/{env}/db-credentials",
	  envs_db_credentials, ACCESS_APP_SETTINGS, "a short-lived login to "
	  "the environment's database (ttl; nubo envs db-url)" },
	{ "GET", "/apps/{app}/environments/{env}/logs/{date}", envs_logs_day,
	  ACCESS_APP_LOGS, "a signed URL, valid an hour, of the app log's "
	  "lines of one day (YYYY-MM-DD, UTC)" },
	{ "GET", "/apps/{app}/environments/{env}/access-logs/{date}",
	  envs_access_logs_day, ACCESS_APP_LOGS, "a signed URL, valid an "
	  "hour, of the router's access log lines of one day (YYYY-MM-DD)" },
	{ "GET", "/apps/{app}/environments/{env}/tags", envs_tags_list,
	  ACCESS_APP_MEMBER, "the environment's tags" },
	{ "PUT", "/apps/{app}/environments/{env}/tags/{tag}", envs_tag_put,
	  ACCESS_APP_SETTINGS, "tag the environment (answers its tags)" },
	{ "DELETE", "/apps/{app}/environments/{env}/tags/{tag}",
	  envs_tag_delete, ACCESS_APP_SETTINGS, "remove a tag of the "
	  "environment (answers its tags)" },
	{ "GET", "/apps/{app}/environments/{env}/runs/{run}", envs_run_show,
	  ACCESS_APP_MEMBER, "a one-off run you started: state, exit status, "
	  "output from offset (base64)" },
	{ "DELETE", "/apps/{app}/environments/{env}/runs/{run}", envs_run_stop,
	  ACCESS_APP_MEMBER, "stop a one-off run you started" },


	/* packages (route-packages.c) */
	{ "GET", "/nodes/{node}/packages", packages_list, ACCESS_NODE_VIEW,
	  "list the node's package repository (the portal's records when "
	  "the node is down)" },
	{ "POST", "/nodes/{node}/packages/uploads", packages_upload,
	  ACCESS_NODE_TC, "{size}: a single-use signed URL, valid for 10 "
	  "minutes, to upload a package of exactly that size to the node "
	  "(POST the archive to it; the node's quota must have room)" },
	{ "GET", "/nodes/{node}/packages/{package}", packages_show,
	  ACCESS_NODE_VIEW, "show a package: version, size, sha256, "
	  "uploader, environments that have it deployed" },
	{ "GET", "/nodes/{node}/packages/{package}/download",
	  packages_download, ACCESS_NODE_TRANSPORT,
	  "a signed URL to download the package (Range works; the node's "
	  "Technical Contact, or transport on an environment of its app)" },
	{ "DELETE", "/nodes/{node}/packages/{package}", packages_delete,
	  ACCESS_NODE_TC,
	  "delete a package (refused while an environment has it deployed)" },
	{ "GET", "/apps/{app}/packages", packages_app_list,
	  ACCESS_APP_TRANSPORT, "the app's package repository: its linked "
	  "node's, or its own on the sandbox node" },
	{ "POST", "/apps/{app}/packages/uploads", packages_app_upload,
	  ACCESS_APP_TRANSPORT, "{size}: a single-use signed URL to upload a "
	  "package of exactly that size to the app's repository" },
	{ "GET", "/apps/{app}/packages/{package}", packages_app_show,
	  ACCESS_APP_TRANSPORT, "show a package of the app's repository" },
	{ "GET", "/apps/{app}/packages/{package}/download",
	  packages_app_download, ACCESS_APP_TRANSPORT,
	  "a signed URL to download a package of the app's repository" },
	{ "PATCH", "/apps/{app}/packages/{package}", packages_app_label,
	  ACCESS_APP_TRANSPORT, "label a package of the app's repository "
	  "{description?, version_label?} (the Mendix Build API's build)" },
	{ "DELETE", "/apps/{app}/packages/{package}", packages_app_delete,
	  ACCESS_APP_TRANSPORT, "delete a package of the app's repository "
	  "(refused while an environment has it deployed)" },


	/* settings (route-settings.c) */
	{ "GET", "/apps/{app}/environments/{env}/settings", settings_show,
	  ACCESS_APP_SETTINGS, "an environment's settings (secrets masked) and whether a restart is pending" },
	{ "PUT", "/apps/{app}/environments/{env}/settings", settings_import,
	  ACCESS_APP_SETTINGS, "import a whole settings document (all or nothing)" },
	{ "PATCH", "/apps/{app}/environments/{env}/settings", settings_patch,
	  ACCESS_APP_SETTINGS, "replace the settings sections given" },
	{ "GET", "/apps/{app}/environments/{env}/settings/export", settings_export,
	  ACCESS_APP_SETTINGS, "export the settings as one document (?secrets=include: Technical Contact)" },
	{ "GET", "/apps/{app}/environments/{env}/settings/diff", settings_diff_route,
	  ACCESS_APP_SETTINGS, "compare with another environment (?app=&env=)" },
	{ "PUT", "/apps/{app}/environments/{env}/settings/constants/{name}", settings_constant_put,
	  ACCESS_APP_SETTINGS, "set a constant's value" },
	{ "DELETE", "/apps/{app}/environments/{env}/settings/constants/{name}", settings_constant_delete,
	  ACCESS_APP_SETTINGS, "reset a constant to the package default" },
	{ "PUT", "/apps/{app}/environments/{env}/settings/scheduled-events/{name}", settings_event_put,
	  ACCESS_APP_SETTINGS, "enable or disable a scheduled event" },
	{ "PUT", "/apps/{app}/environments/{env}/settings/domains/{domain}", settings_domain_put,
	  ACCESS_APP_SETTINGS, "add or replace a custom domain with its TLS certificate and key" },
	{ "DELETE", "/apps/{app}/environments/{env}/settings/domains/{domain}", settings_domain_delete,
	  ACCESS_APP_SETTINGS, "remove a custom domain" },
	{ "PUT", "/apps/{app}/environments/{env}/settings/access", settings_access_put,
	  ACCESS_APP_SETTINGS, "set the access restriction profiles and where they apply" },
	{ "PUT", "/apps/{app}/environments/{env}/settings/headers", settings_headers_put,
	  ACCESS_APP_SETTINGS, "set all HTTP response headers" },
	{ "PUT", "/apps/{app}/environments/{env}/settings/headers/{header}", settings_header_put,
	  ACCESS_APP_SETTINGS, "set one HTTP response header" },
	{ "DELETE", "/apps/{app}/environments/{env}/settings/headers/{header}", settings_header_delete,
	  ACCESS_APP_SETTINGS, "remove an HTTP response header" },
	{ "PATCH", "/apps/{app}/environments/{env}/settings/runtime", settings_runtime_patch,
	  ACCESS_APP_SETTINGS, "change instances, memory or custom runtime settings" },
	{ "PUT", "/apps/{app}/environments/{env}/settings/env-vars/{name}", settings_env_var_put,
	  ACCESS_APP_SETTINGS, "set a custom environment variable (optionally secret)" },
	{ "DELETE", "/apps/{app}/environments/{env}/settings/env-vars/{name}", settings_env_var_delete,
	  ACCESS_APP_SETTINGS, "remove a custom environment variable" },
	{ "PUT", "/apps/{app}/environments/{env}/settings/maintenance-window", settings_window_put,
	  ACCESS_APP_SETTINGS, "set the weekly maintenance window" },
	{ "DELETE", "/apps/{app}/environments/{env}/settings/maintenance-window", settings_window_delete,
	  ACCESS_APP_SETTINGS, "remove the maintenance window" },


	/* snapshots and restores (route-backups.c) */
	{ "GET", "/apps/{app}/environments/{env}/snapshots", backups_list,
	  ACCESS_APP_BACKUPS, "the environment's snapshots, newest first" },
	{ "POST", "/apps/{app}/environments/{env}/snapshots", backups_create,
	  ACCESS_APP_BACKUPS, "create a manual snapshot {comment?} (a job)" },
	{ "GET", "/apps/{app}/environments/{env}/snapshots/{snapshot}",
	  backups_show, ACCESS_APP_BACKUPS, "a snapshot's details" },
	{ "PATCH", "/apps/{app}/environments/{env}/snapshots/{snapshot}",
	  backups_comment, ACCESS_APP_BACKUPS, "edit a snapshot's comment" },
	{ "DELETE", "/apps/{app}/environments/{env}/snapshots/{snapshot}",
	  backups_delete, ACCESS_APP_BACKUPS, "delete a snapshot" },
	{ "POST", "/apps/{app}/environments/{env}/snapshots/{snapshot}/download",
	  backups_download, ACCESS_APP_BACKUPS, "a short-lived signed URL "
	  "to download a snapshot {kind?: full|database|files}" },
	{ "POST", "/apps/{app}/environments/{env}/snapshot-uploads",
	  backups_upload_begin, ACCESS_APP_BACKUPS, "begin an upload: a "
	  "signed PUT URL on the node for a backup archive" },
	{ "POST", "/apps/{app}/environments/{env}/snapshot-uploads/{snapshot}",
	  backups_upload_complete, ACCESS_APP_BACKUPS, "finish an upload the "
	  "node accepted: it becomes an uploaded snapshot {comment?}" },
	{ "GET", "/apps/{app}/environments/{env}/restores",
	  backups_restores_list, ACCESS_APP_BACKUPS, "the environment's "
	  "restores, newest first" },
	{ "POST", "/apps/{app}/environments/{env}/restores", backups_restore,
	  ACCESS_APP_BACKUPS, "restore a snapshot of this app into the "
	  "stopped environment {snapshot, database_only?} (a job)" },


	/* migrations and offboarding (route-migrations.c) */
	{ "POST", "/migrations", migrations_create, ACCESS_USER,
	  "plan (dry run), start, or run a migration of an app to a node" },
	{ "GET", "/migrations", migrations_list, ACCESS_USER,
	  "list migrations (?app=APP)" },
	{ "GET", "/migrations/{migration}", migrations_show, ACCESS_USER,
	  "a migration: state, steps, progress, report (wait=S&revision=R: "
	  "held until it differs from revision R, or S seconds)" },
	{ "POST", "/migrations/{migration}/rehearse", migrations_rehearse,
	  ACCESS_USER, "copy again (files changed since the last copy only; "
	  "{resync: [table]}: a replica makes those tables again and copies "
	  "their rows again)" },
	{ "POST", "/migrations/{migration}/cutover", migrations_cutover,
	  ACCESS_USER, "cut over: the target serves the app from now on" },
	{ "POST", "/migrations/{migration}/resume", migrations_resume,
	  ACCESS_USER, "run the current phase again from its failed step" },
	{ "POST", "/migrations/{migration}/abort", migrations_abort,
	  ACCESS_USER, "abort before the cutover (the source keeps serving)" },
	{ "POST", "/migrations/{migration}/rollback", migrations_rollback,
	  ACCESS_USER, "after the cutover: serve from the source again" },
	{ "POST", "/nodes/{node}/offboarding-requests", offboarding_create,
	  ACCESS_NODE_TC, "request the offboarding of a node" },
	{ "GET", "/offboarding-requests", offboarding_list, ACCESS_USER,
	  "list offboarding requests" },
	{ "POST", "/offboarding-requests/{request}/approve",
	  offboarding_approve_route, ACCESS_ADMIN,
	  "approve an offboarding request" },
	{ "GET", "/offboarding-requests/{request}", offboarding_show,
	  ACCESS_USER, "an offboarding request: state, data kept until, "
	  "purged at" },
	{ "POST", "/offboarding-requests/{request}/purge",
	  offboarding_purge_route, ACCESS_ADMIN, "delete an offboarded "
	  "node's data now, before its keep-until date (a job)" },


	/* node agents (route-agent.c) */
	{ "POST", "/agent/register", agent_register, ACCESS_AGENT,
	  "a node agent registers its URL; returns the portal secret and "
	  "environment specs" },
	{ "POST", "/agent/status", agent_status, ACCESS_AGENT,
	  "a node agent reports the true state of its environments" },
	{ "POST", "/agent/downloads", agent_downloads, ACCESS_AGENT,
	  "a node agent reports a full snapshot archive or a package file "
	  "downloaded completely (offboarding counts it)" },
	{ "POST", "/agent/snapshot-uploads/{snapshot}/refused",
	  agent_snapshot_upload_refused, ACCESS_AGENT, "a node agent "
	  "refused an upload's archive: the upload's record goes" },
	{ "POST", "/agent/store-check", agent_store_check, ACCESS_AGENT,
	  "a node agent reports damage its snapshot store's check found: "
	  "kept in the activity of the node and of the apps whose "
	  "snapshots it breaks" },


	/* jobs (jobs.c) */
	{ "GET", "/jobs/{id}", jobs_show, ACCESS_USER,
	  "a job: state, progress, error, result (wait=S&revision=R: held "
	  "until it differs from revision R, or S seconds)" },


	/* Mendix Deploy API v1 (mx-deploy.c): the same operations and
	 * access checks as above, in the Mendix Cloud's paths, fields and
	 * errors; Mendix-Username + Mendix-ApiKey headers */
	{ "GET", "/api/1/apps", mx_apps_list, ACCESS_USER,
	  "Mendix Deploy API v1: the apps you can see", FACE_MX, 0 },
	{ "POST", "/api/1/apps", mx_apps_create, ACCESS_USER,
	  "Mendix Deploy API v1: a Free App environment {ProjectId}: an app "
	  "with a sandbox whose id is the ProjectId", FACE_MX, 0 },
	{ "GET", "/api/1/apps/{AppId}", mx_apps_show, ACCESS_APP_MEMBER,
	  "Mendix Deploy API v1: an app (AppId: its subdomain)", FACE_MX, 0 },
	{ "GET", "/api/1/apps/{AppId}/environments", mx_envs_list,
	  ACCESS_APP_MEMBER, "Mendix Deploy API v1: the app's environments",
	  FACE_MX, 0 },
	{ "GET", MX1_ENV, mx_envs_show, ACCESS_APP_MEMBER,
	  "Mendix Deploy API v1: an environment (Mode: its name, any case)",
	  FACE_MX, 0 },
	{ "POST", MX1_ENV "/start", mx_envs_start, ACCESS_APP_TRANSPORT,
	  "Mendix Deploy API v1: start the environment {AutoSyncDb?}: "
	  "{JobId}", FACE_MX, 0 },
	{ "GET", MX1_ENV "/start/{JobId}", mx_envs_start_status,
	  ACCESS_APP_MEMBER, "Mendix Deploy API v1: a start job: {Status: "
	  "Starting | Started}", FACE_MX, 0 },
	{ "POST", MX1_ENV "/stop", mx_envs_stop, ACCESS_APP_TRANSPORT,
	  "Mendix Deploy API v1: stop the environment (answers when "
	  "stopped)", FACE_MX, 0 },
	{ "POST", MX1_ENV "/transport", mx_envs_transport, ACCESS_APP_TRANSPORT,
	  "Mendix Deploy API v1: deploy {PackageId} to the stopped "
	  "environment", FACE_MX, 0 },
	{ "POST", MX1_ENV "/clean", mx_envs_clean, ACCESS_APP_TRANSPORT,
	  "Mendix Deploy API v1: wipe the stopped environment's data",
	  FACE_MX, 0 },
	{ "GET", MX1_ENV "/package", mx_envs_package, ACCESS_APP_TRANSPORT,
	  "Mendix Deploy API v1: the package the environment runs "
	  "(?url=true: with a download URL)", FACE_MX, 0 },
	{ "GET", MX1_ENV "/settings", mx_settings_show, ACCESS_APP_SETTINGS,
	  "Mendix Deploy API v1: constants, custom settings, scheduled "
	  "events", FACE_MX, 0 },
	{ "POST", MX1_ENV "/settings", mx_settings_set, ACCESS_APP_SETTINGS,
	  "Mendix Deploy API v1: change constants, custom settings, "
	  "scheduled events", FACE_MX, 0 },
	{ "POST", MX1_ENV "/scale", mx_envs_scale, ACCESS_APP_SETTINGS,
	  "Mendix Deploy API v1: {Instances, MemoryPerInstance} (v4 nodes)",
	  FACE_MX, 0 },
	{ "GET", MX1_ENV "/logs/{Date}", mx_logs_day, ACCESS_APP_LOGS,
	  "Mendix Deploy API v1: a download URL of the day's application "
	  "log", FACE_MX, 0 },
	{ "GET", MX1_ENV "/access-logs/{Date}", mx_access_logs_day,
	  ACCESS_APP_LOGS, "Mendix Deploy API v1: a download URL of the day's "
	  "router access log", FACE_MX, 0 },
	{ "GET", MX1_ENV "/tags", mx_tags_list, ACCESS_APP_MEMBER,
	  "Mendix Deploy API v1: the environment's tags", FACE_MX, 0 },
	{ "POST", MX1_ENV "/tags", mx_tags_add, ACCESS_APP_SETTINGS,
	  "Mendix Deploy API v1: tag the environment {Tag}", FACE_MX, 0 },
	{ "DELETE", MX1_ENV "/tags", mx_tags_delete, ACCESS_APP_SETTINGS,
	  "Mendix Deploy API v1: remove a tag {Tag} (a DELETE with a body)",
	  FACE_MX, ROUTE_DELETE_BODY },
	{ "DELETE", MX1_ENV "/tags/{Tag}", mx_tags_delete, ACCESS_APP_SETTINGS,
	  "Mendix Deploy API v1: remove a tag", FACE_MX, 0 },
	{ "GET", "/api/1/apps/{AppId}/packages", mx_packages_list,
	  ACCESS_APP_TRANSPORT, "Mendix Build API v1: the app's packages",
	  FACE_MX, 0 },
	{ "GET", "/api/1/apps/{AppId}/packages/{PackageId}", mx_packages_show,
	  ACCESS_APP_TRANSPORT, "Mendix Build API v1: a package (?url=true: "
	  "with a download URL)", FACE_MX, 0 },
	{ "POST", "/api/1/apps/{AppId}/packages", mx_builds_create,
	  ACCESS_APP_TRANSPORT, "Mendix Build API v1: \"build\" {Branch, "
	  "Revision?, Version, Description?}: the newest package uploaded "
	  "with that branch (and revision) label", FACE_MX, 0 },
	{ "GET", "/api/1/apps/{AppId}/branches", mx_branches_list,
	  ACCESS_APP_TRANSPORT, "Mendix Team Server API v1: the branches of "
	  "the app's package labels", FACE_MX, 0 },
	{ "GET", "/api/1/apps/{AppId}/branches/{Name}", mx_branches_show,
	  ACCESS_APP_TRANSPORT, "Mendix Team Server API v1: a branch",
	  FACE_MX, 0 },
	{ "GET", "/api/1/apps/{AppId}/branches/{Name}/revisions",
	  mx_branches_revisions, ACCESS_APP_TRANSPORT, "Mendix Team Server "
	  "API v1: a branch's revisions, newest first", FACE_MX, 0 },
	{ "GET", "/api/1/apps/{AppId}/packages/{PackageId}/download",
	  mx_packages_download, ACCESS_APP_TRANSPORT, "Mendix Build API v1: "
	  "the package's bytes (a redirect to its signed URL on the node)",
	  FACE_MX, 0 },
	{ "DELETE", "/api/1/apps/{AppId}/packages/{PackageId}",
	  mx_packages_delete, ACCESS_APP_TRANSPORT, "Mendix Build API v1: "
	  "delete a package (409 PACKAGE_IN_USE while deployed)", FACE_MX, 0 },
	{ "POST", "/api/1/apps/{AppId}/packages/upload", mx_packages_upload_v1,
	  ACCESS_APP_TRANSPORT, "Mendix Deploy API v1: upload a package "
	  "(multipart part 'file'; ?name=N), answered when stored", FACE_MX,
	  ROUTE_MULTIPART },

	/* Mendix Deploy API v2 (mx-deploy.c) */
	{ "POST", "/api/v2/apps/{AppId}/packages/upload", mx_packages_upload_v2,
	  ACCESS_APP_TRANSPORT, "Mendix Deploy API v2: upload a package "
	  "(multipart part 'file'; ?name=N): {PackageId, JobId}", FACE_MX,
	  ROUTE_MULTIPART },
	{ "GET", "/api/v2/apps/{AppId}/jobs/{JobId}", mx_jobs_show_v2,
	  ACCESS_APP_MEMBER, "Mendix Deploy API v2: a job of the app: "
	  "{Status: Queued | Running | Completed | Failed}", FACE_MX, 0 },

	/* Mendix Backups API v2 (mx-backups.c) */
	{ "GET", MXB_ENV "/snapshots", mx_snapshots_list, ACCESS_APP_BACKUPS,
	  "Mendix Backups API v2: the environment's snapshots (offset, "
	  "limit)", FACE_MX, 0 },
	{ "POST", MXB_ENV "/snapshots", mx_snapshots_create, ACCESS_APP_BACKUPS,
	  "Mendix Backups API v2: create a snapshot {comment?}", FACE_MX, 0 },
	{ "GET", MXB_ENV "/snapshots/{SnapshotId}", mx_snapshots_show,
	  ACCESS_APP_BACKUPS, "Mendix Backups API v2: a snapshot", FACE_MX, 0 },
	{ "PUT", MXB_ENV "/snapshots/{SnapshotId}", mx_snapshots_update,
	  ACCESS_APP_BACKUPS, "Mendix Backups API v2: a snapshot's comment "
	  "{comment}", FACE_MX, 0 },
	{ "DELETE", MXB_ENV "/snapshots/{SnapshotId}", mx_snapshots_delete,
	  ACCESS_APP_BACKUPS, "Mendix Backups API v2: delete a snapshot",
	  FACE_MX, 0 },
	{ "POST", MXB_ENV "/snapshots/{SnapshotId}/archives",
	  mx_archives_create, ACCESS_APP_BACKUPS, "Mendix Backups API v2: an "
	  "archive of a snapshot (?data_type=files_and_database | "
	  "database_only | files_only)", FACE_MX, 0 },
	{ "GET", MXB_ENV "/snapshots/{SnapshotId}/archives/{ArchiveId}",
	  mx_archives_show, ACCESS_APP_BACKUPS, "Mendix Backups API v2: an "
	  "archive, with its download URL", FACE_MX, 0 },
	{ "POST", MXB_ENV "/restores", mx_restores_create, ACCESS_APP_BACKUPS,
	  "Mendix Backups API v2: restore a snapshot of the app into the "
	  "stopped environment (?source_snapshot_id=&db_only=)", FACE_MX, 0 },
	{ "GET", MXB_ENV "/restores/{RestoreId}", mx_restores_show,
	  ACCESS_APP_BACKUPS, "Mendix Backups API v2: a restore", FACE_MX, 0 },

	/* Mendix Deploy API v4 (mx-v4.c): Authorization: MxToken <personal
	 * access token> */
	{ "GET", "/api/v4/apps", mx4_apps_list, ACCESS_USER,
	  "Mendix Deploy API v4: the apps you can see (offset, limit, "
	  "licenseType)", FACE_MX4, 0 },
	{ "GET", "/api/v4/apps/{appId}", mx4_apps_show, ACCESS_APP_MEMBER,
	  "Mendix Deploy API v4: an app (appId: its uuid)", FACE_MX4, 0 },
	{ "PATCH", "/api/v4/apps/{appId}", mx4_apps_patch, ACCESS_APP_TC,
	  "Mendix Deploy API v4: hand the Technical Contact role to "
	  "{technicalContact: {userId}}", FACE_MX4, 0 },
	{ "GET", "/api/v4/apps/{appId}/environments", mx4_envs_list,
	  ACCESS_APP_MEMBER, "Mendix Deploy API v4: the app's environments "
	  "(offset, limit, sort, expand=package)", FACE_MX4, 0 },
	{ "GET", MX4_ENV, mx4_envs_show, ACCESS_APP_MEMBER,
	  "Mendix Deploy API v4: an environment (expand=package)", FACE_MX4,
	  0 },
	{ "GET", MX4_ENV "/permissions", mx4_permissions_show,
	  ACCESS_APP_MEMBER, "Mendix Deploy API v4: the members' permissions "
	  "on the environment (userId, offset, limit)", FACE_MX4, 0 },
	{ "PATCH", MX4_ENV "/permissions", mx4_permissions_patch,
	  ACCESS_APP_MANAGE, "Mendix Deploy API v4: change members' "
	  "permissions on the environment {permissions: [...]}", FACE_MX4, 0 },
};
#pragma GCC diagnostic pop
const size_t routes_count = sizeof routes / sizeof routes[0];

#define API_PREFIX "/api/v1"

/* A face calling a handler keeps its first reply (mx_call). */
static int
reply_captured(struct preq *r, unsigned status, json_t *body,
    const char *code, const char *message)
{
	if (!r->capture)
		return 0;
	if (r->cap_status == 0) {
		r->cap_status = status;
		r->cap_body = body;
		r->cap_code = code ? xstrdup(code) : NULL;
		r->cap_message = message ? xstrdup(message) : NULL;
	} else {
		json_decref(body);
	}
	return 1;
}

void
reply(struct preq *r, unsigned status, json_t *body)
{
	if (!reply_captured(r, status, body, NULL, NULL))
		http_reply_json(r->http, status, body);
}

void
reply_text(struct preq *r, unsigned status, char *text)
{
	if (r->capture) {
		reply_captured(r, status, json_loads(text, 0, NULL), NULL,
		    NULL);
		free(text);
		return;
	}
	http_reply_json_text(r->http, status, text);
}

void
reply_empty(struct preq *r, unsigned status)
{
	if (!reply_captured(r, status, NULL, NULL, NULL))
		http_reply_empty(r->http, status);
}

void
reply_error(struct preq *r, unsigned status, const char *code,
    const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (r->capture) {
		msg = xvasprintf(fmt, ap);
		reply_captured(r, status, NULL, code, msg);
		free(msg);
	} else {
		http_reply_verror(r->http, status, code, fmt, ap);
	}
	va_end(ap);
}

void
reply_store_error(struct preq *r)
{
	reply_error(r, 500, "STORE_ERROR", "store error: %s",
	    store_errmsg(r->db));
}

int
body_check(struct preq *r, const struct jfield *fields)
{
	char *cause = NULL;

	if (jsonx_check(r->body, fields, &cause) == 0)
		return 0;
	reply_error(r, 400, "BAD_REQUEST", "%s", cause);
	free(cause);
	return -1;
}

/* Resolve {app} (subdomain or uuid), {node} (name) and {env}; reply 404
 * for unknown ones. */
static int
resolve_path(struct preq *r)
{
	const char *app = http_param(r->http, "app");
	const char *node = http_param(r->http, "node");

	if (app) {
		r->app_id = apps_find(r->db, app);
		if (r->app_id == 0) {
			reply_error(r, 404, "APP_NOT_FOUND",
			    "no app '%s'", app);
			return -1;
		}
		if (!auth_key_allows_app(r, r->app_id)) {
			reply_error(r, 403, "KEY_SCOPE", "this API key "
			    "is not valid for app '%s'", app);
			return -1;
		}
		/* The node whose environments the app uses: the linked node. */
		r->node_id = store_int(r->db, 0,
		    "SELECT id FROM nodes WHERE app_id = ?", "i", r->app_id);
	}
	if (node) {
		r->node_id = store_int(r->db, 0, "SELECT id FROM nodes"
		    " WHERE name = ?", "s", node);
		if (r->node_id == 0) {
			reply_error(r, 404, "NODE_NOT_FOUND",
			    "no node '%s'", node);
			return -1;
		}
	}
	r->env = http_param(r->http, "env");
	if (r->env && app && store_int(r->db, 0, "SELECT 1 FROM environments"
	    " WHERE name = ? COLLATE NOCASE AND ((node_id = ? AND app_id IS NULL)"
	    " OR app_id = ?)", "sii", r->env, r->node_id, r->app_id) != 1) {
		reply_error(r, 404, "ENVIRONMENT_NOT_FOUND",
		    "app '%s' has no environment '%s'", app, r->env);
		return -1;
	}
	return 0;
}

void
routes_begin(struct http_req *h)
{
	struct preq *r = xcalloc(1, sizeof *r);
	const char *url = h->url;
	enum face face = FACE_NUBO;
	int method_seen = 0;
	size_t i;

	h->ctx = r;
	r->http = h;
	r->portal = h->app;
	if (mx4_url(url)) {
		face = FACE_MX4;
		h->error_reply = mx4_error_reply;
	} else if (mx_url(url)) {
		face = FACE_MX;
		h->error_reply = mx_error_reply;
	} else if (strncmp(url, API_PREFIX, strlen(API_PREFIX)) != 0 ||
	    (url[strlen(API_PREFIX)] != '/' &&
	    url[strlen(API_PREFIX)] != '\0')) {
		web_serve(r);
		return;
	} else {
		url += strlen(API_PREFIX);
	}
	for (i = 0; i < routes_count; i++) {
		if (routes[i].face != face)
			continue;
		http_params_clear(h);
		if (!http_route_match(h, routes[i].pattern, url))
			continue;
		method_seen = 1;
		if (strcmp(routes[i].method, h->method) == 0) {
			r->route = &routes[i];
			break;
		}
	}
	if (r->route == NULL) {
		http_params_clear(h);
		if (method_seen)
			reply_error(r, 405, "METHOD_NOT_ALLOWED",
			    "%s is not allowed on '%s'", h->method, h->url);
		else
			reply_error(r, 404, "NOT_FOUND", "no such path '%s'",
			    h->url);
		return;
	}
	h->route = r->route;
	r->db = store_db();
	if (r->route->access != ACCESS_PUBLIC && (face == FACE_MX ?
	    mx_authenticate(r) : face == FACE_MX4 ? mx4_authenticate(r) :
	    auth_authenticate(r)) == -1)
		return;
	if (r->who.pat && face != FACE_MX4) {
		reply_error(r, 401, "UNAUTHENTICATED", "a personal access token "
		    "is valid only on the Mendix Deploy API v4 (/api/v4)");
		return;
	}
	if (face != FACE_NUBO && mx_rate_check(r) == -1)
		return;
	if (r->who.read_only && strcmp(h->method, "GET") != 0) {
		reply_error(r, 403, "KEY_READ_ONLY",
		    "this API key is read-only");
		return;
	}
	if (face != FACE_NUBO && mx_params(r) == -1)
		return;
	if (resolve_path(r) == -1 || (face != FACE_NUBO && mx_resolved(r) ==
	    -1) || auth_check_access(r) == -1)
		return;
	if (r->route->flags & ROUTE_MULTIPART)
		mx_upload_begin(r);
	else if ((strcmp(h->method, "GET") != 0 &&
	    strcmp(h->method, "DELETE") != 0) ||
	    (r->route->flags & ROUTE_DELETE_BODY))
		h->body_max = NUBO_JSON_BODY_MAX;
}

void
routes_finish(struct http_req *h)
{
	struct preq *r = h->ctx;
	char *cause = NULL;

	if (h->body_max) {
		if (h->body.len == 0) {
			r->body = json_object();
		} else {
			r->body = jsonx_parse_object(h->body.data, h->body.len,
			    &cause);
			if (r->body == NULL) {
				reply_error(r, 400, "BAD_JSON", "%s", cause);
				free(cause);
				return;
			}
		}
	}
	r->route->handler(r);
}

/* A request that waited (wait_reply) replies now. */
void
routes_resume(struct http_req *h)
{
	struct preq *r = h->ctx;

	r->wait_then(r);
}

void
routes_cleanup(struct http_req *h)
{
	struct preq *r = h->ctx;

	if (r) {
		mx_cleanup(r);
		json_decref(r->cap_body);
		json_decref(r->wait_data);
		free(r->cap_code);
		free(r->cap_message);
		json_decref(r->body);
		json_decref(r->who.app_scope);
		if (r->db)
			store_rollback(r->db);	/* a handler that bailed */
		free(r);
	}
	h->ctx = NULL;
	http_params_clear(h);
}

static const char *
access_name(enum access a)
{
	switch (a) {
	case ACCESS_PUBLIC: return "public";
	case ACCESS_USER: return "user";
	case ACCESS_ADMIN: return "admin";
	case ACCESS_AGENT: return "agent";
	case ACCESS_APP_MEMBER: return "app-member";
	case ACCESS_APP_TRANSPORT: return "transport";
	case ACCESS_APP_BACKUPS: return "backups";
	case ACCESS_APP_SETTINGS: return "settings";
	case ACCESS_APP_LOGS: return "logs";
	case ACCESS_APP_MANAGE: return "manage";
	case ACCESS_APP_TC: return "app-technical-contact";
	case ACCESS_NODE_VIEW: return "node-view";
	case ACCESS_NODE_TRANSPORT: return "node-transport";
	case ACCESS_NODE_TC: return "node-technical-contact";
	}
	return "?";
}

/* The route table as an OpenAPI 3 document; docs/openapi.json is this
 * output, and a test keeps the two equal. */
json_t *
routes_describe(void)
{
	json_t *paths = json_object();
	size_t i;

	for (i = 0; i < routes_count; i++) {
		const struct route *rt = &routes[i];
		json_t *item = json_object_get(paths, rt->pattern);
		json_t *params = json_array();
		json_t *op;
		char *m = xstrdup(rt->method);
		const char *p;
		char *k;

		if (item == NULL) {
			item = json_object();
			json_object_set_new(paths, rt->pattern, item);
			/* a Mendix face's path is absolute */
			if (rt->face != FACE_NUBO)
				json_object_set_new(item, "servers",
				    json_pack("[{s:s}]", "url", "/"));
		}
		for (p = rt->pattern; (p = strchr(p, '{')) != NULL; p++) {
			const char *e = strchr(p, '}');

			json_array_append_new(params, json_pack(
			    "{s:s%,s:s,s:b,s:{s:s}}", "name", p + 1,
			    (size_t)(e - p - 1), "in", "path", "required", 1,
			    "schema", "type", "string"));
		}
		op = json_pack("{s:s,s:s,s:o,s:{s:{s:s}}}",
		    "summary", rt->summary, "x-nubo-access",
		    access_name(rt->access), "parameters", params,
		    "responses", "default", "description",
		    rt->face == FACE_MX ? "a JSON body, or {\"errorCode\", "
		    "\"errorMessage\"}" : rt->face == FACE_MX4 ? "a JSON body, "
		    "or {\"error\":{\"code\",\"message\",\"invalid-params\"}}" :
		    "a JSON body, or {\"error\":{\"code\",\"message\"}}");
		if (rt->face == FACE_MX)
			json_object_set_new(op, "security", json_pack(
			    "[{s:[],s:[]}]", "mendixUsername", "mendixApiKey"));
		else if (rt->face == FACE_MX4)
			json_object_set_new(op, "security", json_pack(
			    "[{s:[]}]", "mxToken"));
		else if (rt->access == ACCESS_AGENT)
			json_object_set_new(op, "security",
			    json_pack("[{s:[]}]", "nodeToken"));
		else if (rt->access != ACCESS_PUBLIC)
			json_object_set_new(op, "security",
			    json_pack("[{s:[]},{s:[]}]", "apiKey",
			    "sessionCookie"));
		for (k = m; *k; k++)
			*k = (char)(*k - 'A' + 'a');
		json_object_set_new(item, m, op);
		free(m);
	}
	return json_pack("{s:s,s:{s:s,s:s},s:[{s:s}],s:o,s:{s:{s:{s:s,s:s},"
	    "s:{s:s,s:s,s:s,s:s},s:{s:s,s:s},s:{s:s,s:s,s:s},"
	    "s:{s:s,s:s,s:s},s:{s:s,s:s,s:s,s:s}}}}",
	    "openapi", "3.0.3",
	    "info", "title", "nubo API", "version", "1",
	    "servers", "url", API_PREFIX,
	    "paths", paths,
	    "components", "securitySchemes",
	    "apiKey", "type", "http", "scheme", "bearer",
	    "sessionCookie", "type", "apiKey", "in", "cookie", "name",
	    AUTH_SESSION_COOKIE, "description", "a browser session (POST "
	    "/session; named " AUTH_SESSION_COOKIE_TLS " under TLS);"
	    " requests other than GET carry its CSRF token in X-CSRF-Token",
	    "nodeToken", "type", "http", "scheme", "bearer",
	    "mendixUsername", "type", "apiKey", "in", "header", "name",
	    "Mendix-Username",
	    "mendixApiKey", "type", "apiKey", "in", "header", "name",
	    "Mendix-ApiKey",
	    "mxToken", "type", "apiKey", "in", "header", "name",
	    "Authorization", "description", "'MxToken <personal access "
	    "token>' (nubo keys create --pat --scope …)");
}

/* Every access level and its name, for `nubod routes` (the permission
 * matrix test reads the table this way). */
json_t *
routes_table(void)
{
	json_t *out = json_array();
	size_t i;

	for (i = 0; i < routes_count; i++)
		json_array_append_new(out, json_pack("{s:s,s:s,s:s}",
		    "method", routes[i].method, "path", routes[i].pattern,
		    "access", access_name(routes[i].access)));
	return out;
}
