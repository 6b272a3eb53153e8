/* THE route table of the node agent API, and the one place where requests
 * are routed, authenticated and their bodies parsed. */
#include "agent-routes.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "jsonx.h"
#include "log.h"
#include "nubo_limits.h"
#include "signed-url.h"
#include "util.h"
#include "xmalloc.h"

/* agent-envs.c */
void agent_env_put(struct areq *);
void agent_env_show(struct areq *);
void agent_env_list(struct areq *);
void agent_env_start(struct areq *);
void agent_env_stop(struct areq *);
void agent_env_restart(struct areq *);
void agent_env_clean(struct areq *);
void agent_env_transport(struct areq *);
void agent_env_logs(struct areq *);
void agent_env_logs_day(struct areq *);
void agent_env_access_logs_day(struct areq *);
void agent_node_show(struct areq *);
/* packages.c */
void agent_packages_list(struct areq *);
void agent_packages_show(struct areq *);
void agent_packages_upload(struct areq *);
int agent_packages_upload_sink(struct http_req *, const char *, size_t);
void agent_packages_download(struct areq *);
void agent_packages_delete(struct areq *);
/* runs.c */
void agent_run_create(struct areq *);
void agent_run_show(struct areq *);
void agent_run_stop(struct areq *);
/* env-delete.c */
void agent_env_delete(struct areq *);
/* dbcred.c */
void agent_dbcred_create(struct areq *);

/* transfer.c (migrations) */
void transfer_checksums(struct areq *);
void transfer_dump(struct areq *);
void transfer_dump_schema(struct areq *);
void transfer_dump_tables(struct areq *);
void transfer_files_export(struct areq *);
void transfer_files_manifest(struct areq *);
void transfer_package(struct areq *);
void transfer_import(struct areq *);
void transfer_import_show(struct areq *);
/* replication.c, subscription.c (migrations by logical replication) */
void agent_replication_create(struct areq *);
void agent_replication_show(struct areq *);
void agent_replication_delete(struct areq *);
void agent_replication_sequences(struct areq *);
void agent_replication_schema(struct areq *);
void agent_subscription_create(struct areq *);
void agent_subscription_show(struct areq *);
void agent_subscription_delete(struct areq *);
void agent_subscription_sequences(struct areq *);
void agent_subscription_resync(struct areq *);
/* changes.c (the cutover's verify of what changed) */
void agent_changes_mark(struct areq *);
void agent_changes_keys(struct areq *);
void agent_changes_sums(struct areq *);
void agent_changes_delete(struct areq *);
/* backup.c */
void agent_snapshot_create(struct areq *);
void agent_snapshot_show(struct areq *);
void agent_snapshot_delete(struct areq *);
void agent_snapshot_download(struct areq *);
void agent_snapshot_upload(struct areq *);
int agent_snapshot_upload_sink(struct http_req *, const char *, size_t);
void agent_restore_create(struct areq *);
void agent_restore_show(struct areq *);
/* snapcopy.c */
void snapcopy_manifest_get(struct areq *);
void snapcopy_blobs_get(struct areq *);
void snapcopy_create(struct areq *);
void snapcopy_show(struct areq *);
void snapcopy_delete(struct areq *);

static const struct agent_route agent_routes[] = {
	/* the node */
	{ "GET", "/agent/v1/node", agent_node_show, AGENT_PORTAL, NULL,
	  "the node: name, generation, router, database server" },

	/* environments (agent-envs.c) */
	{ "GET", "/agent/v1/environments", agent_env_list, AGENT_PORTAL, NULL,
	  "every environment and its true state" },
	{ "PUT", "/agent/v1/environments/{id}", agent_env_put, AGENT_PORTAL,
	  NULL, "the portal's desired spec of an environment" },
	{ "DELETE", "/agent/v1/environments/{id}", agent_env_delete,
	  AGENT_PORTAL, NULL, "delete for real: instances, database, files, "
	  "route" },
	{ "GET", "/agent/v1/environments/{id}", agent_env_show, AGENT_PORTAL,
	  NULL, "one environment's true state" },
	{ "POST", "/agent/v1/environments/{id}/start", agent_env_start,
	  AGENT_PORTAL, NULL, "start (answers at once; poll the state)" },
	{ "POST", "/agent/v1/environments/{id}/stop", agent_env_stop,
	  AGENT_PORTAL, NULL, "stop: SIGTERM, SIGKILL after the grace time" },
	{ "POST", "/agent/v1/environments/{id}/restart", agent_env_restart,
	  AGENT_PORTAL, NULL, "stop, then start" },
	{ "POST", "/agent/v1/environments/{id}/clean", agent_env_clean,
	  AGENT_PORTAL, NULL, "wipe database and files (stopped only)" },
	{ "POST", "/agent/v1/environments/{id}/transport", agent_env_transport,
	  AGENT_PORTAL, NULL, "unpack a repository package (stopped only)" },
	{ "POST", "/agent/v1/environments/{id}/runs", agent_run_create,
	  AGENT_PORTAL, NULL, "run a one-off command in a fresh sandbox" },
	{ "GET", "/agent/v1/environments/{id}/runs/{run}", agent_run_show,
	  AGENT_PORTAL, NULL, "a one-off run: state, exit status, output "
	  "from an offset" },
	{ "DELETE", "/agent/v1/environments/{id}/runs/{run}", agent_run_stop,
	  AGENT_PORTAL, NULL, "stop a one-off run" },
	{ "POST", "/agent/v1/environments/{id}/db-credentials",
	  agent_dbcred_create, AGENT_PORTAL, NULL, "a short-lived login to "
	  "the environment's database" },
	{ "GET", "/agent/v1/environments/{id}/logs", agent_env_logs,
	  AGENT_SIGNED, NULL, "the app log: last lines, or from an offset" },
	{ "GET", "/agent/v1/environments/{id}/logs/{day}", agent_env_logs_day,
	  AGENT_SIGNED, NULL, "the app log's lines of one day (YYYY-MM-DD), "
	  "as a file" },
	{ "GET", "/agent/v1/environments/{id}/access-logs/{day}",
	  agent_env_access_logs_day, AGENT_SIGNED, NULL, "the router's access "
	  "log lines of one day (YYYY-MM-DD), as a file" },


	/* packages (packages.c) */
	{ "GET", "/agent/v1/packages", agent_packages_list, AGENT_PORTAL, NULL,
	  "every package in the repository" },
	{ "POST", "/agent/v1/packages/uploads/{upload}", agent_packages_upload,
	  AGENT_SIGNED, agent_packages_upload_sink, "upload a package through "
	  "a single-use URL for its size (the body is the archive; validated "
	  "before it is listed)" },
	{ "GET", "/agent/v1/packages/{package}", agent_packages_show,
	  AGENT_PORTAL, NULL, "one package and the environments running it" },
	{ "GET", "/agent/v1/packages/{package}/file", agent_packages_download,
	  AGENT_SIGNED, NULL, "the package file (Range works)" },
	{ "DELETE", "/agent/v1/packages/{package}", agent_packages_delete,
	  AGENT_PORTAL, NULL, "delete a package (409 while deployed)" },
	/* the same for the repository of one app (a Free App's on the
	 * sandbox node; {app} is its uuid) */
	{ "GET", "/agent/v1/apps/{app}/packages", agent_packages_list,
	  AGENT_PORTAL, NULL, "every package in the app's repository" },
	{ "POST", "/agent/v1/apps/{app}/packages/uploads/{upload}",
	  agent_packages_upload, AGENT_SIGNED, agent_packages_upload_sink,
	  "upload a package to the app's repository" },
	{ "GET", "/agent/v1/apps/{app}/packages/{package}", agent_packages_show,
	  AGENT_PORTAL, NULL, "one package of the app's repository" },
	{ "GET", "/agent/v1/apps/{app}/packages/{package}/file",
	  agent_packages_download, AGENT_SIGNED, NULL, "the package file" },
	{ "DELETE", "/agent/v1/apps/{app}/packages/{package}",
	  agent_packages_delete, AGENT_PORTAL, NULL, "delete a package of the "
	  "app's repository (409 while deployed)" },


	/* backups (backup.c) */
	{ "POST", "/agent/v1/environments/{id}/snapshots",
	  agent_snapshot_create, AGENT_PORTAL, NULL,
	  "start a snapshot {snapshot, type?, model_version?}; poll it" },
	{ "PUT", "/agent/v1/environments/{id}/snapshots/{snapshot}/archive",
	  agent_snapshot_upload, AGENT_SIGNED, agent_snapshot_upload_sink,
	  "upload a backup archive (validated before it exists)" },
	{ "POST", "/agent/v1/environments/{id}/restores", agent_restore_create,
	  AGENT_PORTAL, NULL, "restore a snapshot into the stopped "
	  "environment {restore, snapshot, database_only?, source_url?}" },
	{ "GET", "/agent/v1/snapshots/{snapshot}", agent_snapshot_show,
	  AGENT_PORTAL, NULL, "a snapshot: state, progress, sizes" },
	{ "DELETE", "/agent/v1/snapshots/{snapshot}", agent_snapshot_delete,
	  AGENT_PORTAL, NULL, "delete a snapshot" },
	/* off-node copies (snapcopy.c): the source's side, then the
	 * target's (before {kind}: the first route matching wins) */
	{ "GET", "/agent/v1/snapshots/{snapshot}/manifest",
	  snapcopy_manifest_get, AGENT_SIGNED, NULL,
	  "the manifest of a snapshot in the store, for a node copying it" },
	{ "POST", "/agent/v1/snapshots/{snapshot}/blobs", snapcopy_blobs_get,
	  AGENT_SIGNED, NULL, "blobs of a snapshot {blobs: [sha256…]}, "
	  "concatenated in that order" },
	{ "POST", "/agent/v1/copies", snapcopy_create, AGENT_PORTAL, NULL,
	  "copy another node's snapshot here {snapshot, manifest_url, "
	  "blobs_url, record}; only the blobs this store lacks travel" },
	{ "GET", "/agent/v1/copies/{snapshot}", snapcopy_show, AGENT_PORTAL,
	  NULL, "a copy: state, progress, what it fetched" },
	{ "DELETE", "/agent/v1/copies/{snapshot}", snapcopy_delete,
	  AGENT_PORTAL, NULL, "delete a copy (the sweep frees its blobs)" },
	{ "GET", "/agent/v1/snapshots/{snapshot}/{kind}",
	  agent_snapshot_download, AGENT_SIGNED, NULL,
	  "download full, database or files (Range)" },
	{ "GET", "/agent/v1/restores/{restore}", agent_restore_show,
	  AGENT_PORTAL, NULL, "a restore: state, progress, error" },


	/* migrations: node-to-node transfer (transfer.c) */
	{ "GET", "/agent/v1/environments/{id}/checksums", transfer_checksums,
	  AGENT_PORTAL, NULL, "per table rows and checksums, per file sha256" },
	{ "GET", "/agent/v1/environments/{id}/dump", transfer_dump,
	  AGENT_SIGNED, NULL, "the database as a streamed pg_dump -Fc" },
	{ "GET", "/agent/v1/environments/{id}/dump/schema",
	  transfer_dump_schema, AGENT_SIGNED, NULL,
	  "the database's schema alone (a replicating migration's first copy)" },
	{ "GET", "/agent/v1/environments/{id}/dump/schema/{tables}",
	  transfer_dump_tables, AGENT_SIGNED, NULL, "the schema of the listed "
	  "tables alone ([schema.]name,…: a replica re-makes them)" },
	{ "POST", "/agent/v1/environments/{id}/files/export",
	  transfer_files_export, AGENT_SIGNED, NULL,
	  "the listed files of the file store, streamed" },
	{ "GET", "/agent/v1/environments/{id}/files/manifest",
	  transfer_files_manifest, AGENT_SIGNED, NULL,
	  "every file of the file store with its size and sha256" },
	{ "GET", "/agent/v1/environments/{id}/package", transfer_package,
	  AGENT_SIGNED, NULL, "the package file the environment runs" },
	{ "POST", "/agent/v1/environments/{id}/import", transfer_import,
	  AGENT_PORTAL, NULL, "pull package, files and database from a node" },
	{ "GET", "/agent/v1/environments/{id}/import", transfer_import_show,
	  AGENT_PORTAL, NULL, "progress of the import" },

	/* migrations: logical replication, the source (replication.c) and
	 * the target (subscription.c) */
	{ "POST", "/agent/v1/environments/{id}/replication",
	  agent_replication_create, AGENT_PORTAL, NULL, "publish the "
	  "database to a target node {migration, target_address}: role, "
	  "publication, slot, pg_hba rule; answers the connection" },
	{ "GET", "/agent/v1/environments/{id}/replication",
	  agent_replication_show, AGENT_PORTAL, NULL, "the slot's lag and "
	  "retained WAL (?migration=KEY), or every replication" },
	{ "DELETE", "/agent/v1/environments/{id}/replication",
	  agent_replication_delete, AGENT_PORTAL, NULL, "drop slot, "
	  "publication, role and rule (?migration=KEY)" },
	{ "GET", "/agent/v1/environments/{id}/replication/sequences",
	  agent_replication_sequences, AGENT_PORTAL, NULL, "every sequence's "
	  "last value (logical replication does not carry them)" },
	{ "GET", "/agent/v1/environments/{id}/replication/schema",
	  agent_replication_schema, AGENT_PORTAL, NULL, "every table's "
	  "columns (nor does it carry DDL: the cutover compares them)" },
	{ "POST", "/agent/v1/environments/{id}/subscription",
	  agent_subscription_create, AGENT_PORTAL, NULL, "subscribe to a "
	  "source's replication (its answer): copy, then follow" },
	{ "GET", "/agent/v1/environments/{id}/subscription",
	  agent_subscription_show, AGENT_PORTAL, NULL, "per-table sync state "
	  "and received LSN (?migration=KEY), or every subscription" },
	{ "DELETE", "/agent/v1/environments/{id}/subscription",
	  agent_subscription_delete, AGENT_PORTAL, NULL, "disable, detach the "
	  "slot and drop the subscription (?migration=KEY)" },
	{ "POST", "/agent/v1/environments/{id}/subscription/sequences",
	  agent_subscription_sequences, AGENT_PORTAL, NULL, "set sequences "
	  "to the source's values {sequences}, all or none" },
	{ "POST", "/agent/v1/environments/{id}/subscription/resync",
	  agent_subscription_resync, AGENT_PORTAL, NULL, "make tables again "
	  "from the source's schema {migration, tables, drop, dump_url, "
	  "check} and copy their rows again" },
	{ "POST", "/agent/v1/environments/{id}/changes",
	  agent_changes_mark, AGENT_PORTAL, NULL, "make the change slot "
	  "(?migration=KEY), hold a snapshot, sum every table in it" },
	{ "GET", "/agent/v1/environments/{id}/changes/keys",
	  agent_changes_keys, AGENT_PORTAL, NULL, "every key the change slot "
	  "saw touched, per table" },
	{ "POST", "/agent/v1/environments/{id}/changes/sums",
	  agent_changes_sums, AGENT_PORTAL, NULL, "sum the rows of keys "
	  "{tables, held} (held: in the mark's snapshot, then ended)" },
	{ "DELETE", "/agent/v1/environments/{id}/changes",
	  agent_changes_delete, AGENT_PORTAL, NULL, "drop the change slot "
	  "and a held snapshot (?migration=KEY)" },

	/* settings */
};

#define AGENT_ROUTES_COUNT (sizeof agent_routes / sizeof agent_routes[0])

void
areply(struct areq *r, unsigned status, json_t *body)
{
	http_reply_json(r->http, status, body);
}

void
areply_error(struct areq *r, unsigned status, const char *code,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	http_reply_verror(r->http, status, code, fmt, ap);
	va_end(ap);
}

int
abody_check(struct areq *r, const struct jfield *fields)
{
	return http_body_check(r->http, r->body, fields);
}

/* The portal secret, or (AGENT_SIGNED) a valid signature. */
static int
agent_authenticate(struct areq *r)
{
	const char *h = http_header(r->http, "Authorization");
	const char *why = NULL;
	char *secret;
	int ok = 0;

	pthread_mutex_lock(&node->lock);
	secret = node->secret ? xstrdup(node->secret) : NULL;
	pthread_mutex_unlock(&node->lock);
	if (secret == NULL) {
		areply_error(r, 503, "NOT_REGISTERED", "this node has not "
		    "registered with its portal yet");
		return -1;
	}
	if (h && strncmp(h, "Bearer ", 7) == 0 && strlen(h + 7) ==
	    strlen(secret) && sodium_memcmp(h + 7, secret, strlen(secret)) ==
	    0)
		ok = 1;
	else if (r->route->access == AGENT_SIGNED && http_query(r->http, "sig")) {
		long long user;

		if (signed_url_check(secret, r->http->method, r->http->url,
		    http_query(r->http, "expires"), http_query(r->http, "user"),
		    http_query(r->http, "sig"), &why) == 0 &&
		    util_parse_int(http_query(r->http, "user"), 0, 1LL << 53,
		    &user) == 0) {
			r->user = user;
			ok = 1;
		}
	}
	free(secret);
	if (!ok) {
		areply_error(r, 401, "UNAUTHENTICATED", "%s", why ? why :
		    "missing or wrong portal credential");
		return -1;
	}
	return 0;
}

/* A browser's CORS preflight for a signed URL (the portal's pages upload
 * with a progress bar, which needs one): any origin may send the signed
 * route's method, as the signature is the authority and no cookie is
 * involved. 1 after replying 204, or 0: no signed route at this path. */
static int
agent_preflight(struct areq *r)
{
	struct http_req *h = r->http;
	size_t i;

	for (i = 0; i < AGENT_ROUTES_COUNT; i++) {
		http_params_clear(h);
		if (agent_routes[i].access != AGENT_SIGNED ||
		    !http_route_match(h, agent_routes[i].pattern, h->url))
			continue;
		http_params_clear(h);
		h->cors_any = 1;
		http_reply_empty(h, 204);
		http_add_header(h, "Access-Control-Allow-Methods",
		    agent_routes[i].method);
		http_add_header(h, "Access-Control-Allow-Headers",
		    "Content-Type");
		http_add_header(h, "Access-Control-Max-Age", "600");
		return 1;
	}
	http_params_clear(h);
	return 0;
}

static void
agent_begin(struct http_req *h)
{
	struct areq *r = xcalloc(1, sizeof *r);
	int method_seen = 0;
	size_t i;

	h->ctx = r;
	r->http = h;
	for (i = 0; i < AGENT_ROUTES_COUNT; i++) {
		http_params_clear(h);
		if (!http_route_match(h, agent_routes[i].pattern, h->url))
			continue;
		method_seen = 1;
		if (strcmp(agent_routes[i].method, h->method) == 0) {
			r->route = &agent_routes[i];
			break;
		}
	}
	if (r->route == NULL && strcmp(h->method, "OPTIONS") == 0 &&
	    agent_preflight(r))
		return;
	if (r->route == NULL) {
		http_params_clear(h);
		if (method_seen)
			areply_error(r, 405, "METHOD_NOT_ALLOWED", "%s is not "
			    "allowed on '%s'", h->method, h->url);
		else
			areply_error(r, 404, "NOT_FOUND", "no such path '%s'",
			    h->url);
		return;
	}
	h->route = r->route;
	/* the portal's pages upload and download through signed URLs */
	h->cors_any = r->route->access == AGENT_SIGNED;
	if (agent_authenticate(r) == -1)
		return;
	if (http_param(h, "id")) {
		long long id;

		if (util_parse_int(http_param(h, "id"), 1, 1LL << 53, &id) ==
		    -1) {
			areply_error(r, 404, "ENVIRONMENT_NOT_FOUND",
			    "no environment '%s'", http_param(h, "id"));
			return;
		}
		pthread_mutex_lock(&node->lock);
		r->env = env_find(id);
		pthread_mutex_unlock(&node->lock);
		/* PUT creates it; everything else needs it */
		if (r->env == NULL && strcmp(h->method, "PUT") != 0) {
			areply_error(r, 404, "ENVIRONMENT_NOT_FOUND",
			    "no environment %lld on this node", id);
			return;
		}
	}
	if (r->route->sink)
		h->body_sink = r->route->sink;
	else if (strcmp(h->method, "GET") != 0 &&
	    strcmp(h->method, "DELETE") != 0)
		h->body_max = NUBO_JSON_BODY_MAX;
}

static void
agent_finish(struct http_req *h)
{
	struct areq *r = h->ctx;
	char *cause = NULL;

	if (h->body_max) {
		r->body = h->body.len == 0 ? json_object() :
		    jsonx_parse_object(h->body.data, h->body.len, &cause);
		if (r->body == NULL) {
			areply_error(r, 400, "BAD_JSON", "%s", cause);
			free(cause);
			return;
		}
	}
	r->route->handler(r);
}

static void
agent_cleanup(struct http_req *h)
{
	struct areq *r = h->ctx;

	if (r) {
		if (r->done)
			r->done(r);
		if (r->ctx && r->ctx_free)
			r->ctx_free(r->ctx);
		json_decref(r->body);
		free(r);
	}
	h->ctx = NULL;
	http_params_clear(h);
}

struct http_server *
agent_routes_listen(const char *listen, const struct http_tls *tls)
{
	/* packages, backups and migrations arrive here: 128 KB reads
	 * (at most NUBO_HTTP_PER_ADDRESS × 256 KB from one address) */
	static const struct http_server_ops ops = {
		.begin = agent_begin, .finish = agent_finish,
		.cleanup = agent_cleanup,
		.conn_memory = NUBO_HTTP_BULK_CONN_MEMORY };

	return http_server_start_tls(listen, &ops, node, 8, tls);
}
