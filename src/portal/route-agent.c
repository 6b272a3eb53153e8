/* The node agents' side of the portal (node-contract.md): registration and
 * the 2-second heartbeat that mirrors every environment's true state. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "log.h"
#include "portal.h"
#include "settings.h"
#include "store.h"
#include "tls.h"
#include "util.h"
#include "xmalloc.h"

/* route-envs.c */
json_t *envs_specs(sqlite3 *db, const char *cloud_domain, long long node_id);
json_t *envs_status(json_t *node_env);

/* The host of an http(s):// URL into out (without IPv6 brackets); -1 when
 * it has none, carries user info, or is longer than out. */
static int
url_host(const char *url, char *out, size_t outlen)
{
	const char *p = strstr(url, "://"), *end, *h, *he;

	if (p == NULL)
		return -1;
	p += 3;
	end = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(end - p)) != NULL)
		return -1;
	if (*p == '[') {
		h = p + 1;
		he = memchr(h, ']', (size_t)(end - h));
		if (he == NULL)
			return -1;
	} else {
		h = p;
		he = memchr(p, ':', (size_t)(end - p));
		if (he == NULL)
			he = end;
	}
	if (he == h || (size_t)(he - h) >= outlen)
		return -1;
	memcpy(out, h, (size_t)(he - h));
	out[he - h] = '\0';
	return 0;
}

/* An IP address as 16 bytes (IPv4 mapped into IPv6); -1 when s is none. */
static int
ip_bytes(const char *s, unsigned char b[16])
{
	struct in_addr a4;

	if (inet_pton(AF_INET6, s, b) == 1)
		return 0;
	if (inet_pton(AF_INET, s, &a4) != 1)
		return -1;
	memset(b, 0, 10);
	b[10] = b[11] = 0xff;
	memcpy(b + 12, &a4, 4);
	return 0;
}

/* 1 when host names address: the same IP address (however written), or
 * the same name. */
static int
same_address(const char *host, const char *address)
{
	unsigned char a[16], b[16];

	if (ip_bytes(host, a) == 0 && ip_bytes(address, b) == 0)
		return memcmp(a, b, 16) == 0;
	return strcasecmp(host, address) == 0;
}

/* Unknown fields already noted: "node-id route field", at most
 * AGENT_NOTES_MAX (a node sending ever new names stops being noted). */
#define AGENT_NOTES_MAX	128
static char *agent_notes[AGENT_NOTES_MAX];
static size_t agent_notes_n;
static pthread_mutex_t agent_notes_lock = PTHREAD_MUTEX_INITIALIZER;

/* Log once per node, route and field that a node sent a field this
 * portal does not know. */
static void
agent_note_unknown(struct preq *r, const char *where, const char *field)
{
	/* where: "environments[3]" — every item has the same fields */
	int wlen = where ? (int)strcspn(where, "[") : 0;
	char *key = xasprintf("%lld %s %.*s.%.64s", r->who.node_id,
	    r->route->pattern, wlen, where ? where : "", field);
	char *name;
	size_t i;
	int fresh = 1;

	pthread_mutex_lock(&agent_notes_lock);
	for (i = 0; i < agent_notes_n && fresh; i++)
		fresh = strcmp(agent_notes[i], key) != 0;
	if (fresh && agent_notes_n < AGENT_NOTES_MAX)
		agent_notes[agent_notes_n++] = key;
	else {
		fresh = 0;
		free(key);
	}
	pthread_mutex_unlock(&agent_notes_lock);
	if (!fresh)
		return;
	name = store_text(r->db, "SELECT name FROM nodes WHERE id = ?", "i",
	    r->who.node_id);
	log_info("node '%s' sent the field '%.64s'%s%.*s in %s %s, which this "
	    "portal does not know: ignored (a node newer than the portal)",
	    name ? name : "?", field, where ? " of " : "", wlen,
	    where ? where : "", r->route->method, r->route->pattern);
	free(name);
}

int
agent_fields_check(struct preq *r, json_t *obj, const struct jfield *fields,
    const char *where, char **cause)
{
	const struct jfield *f;
	const char *key, *unknown;
	json_t *v;

	if (jsonx_check_known(obj, fields, &unknown, cause) == -1)
		return -1;
	if (unknown == NULL)
		return 0;
	json_object_foreach(obj, key, v) {
		for (f = fields; f->name && strcmp(f->name, key) != 0; f++)
			;
		if (f->name == NULL)
			agent_note_unknown(r, where, key);
	}
	return 0;
}

int
agent_body_check(struct preq *r, const struct jfield *fields)
{
	char *cause = NULL;

	if (agent_fields_check(r, r->body, fields, NULL, &cause) == 0)
		return 0;
	reply_error(r, 400, "BAD_REQUEST", "%s", cause);
	free(cause);
	return -1;
}

/* Every agent call (auth.c): a node that registered over HTTPS with a
 * certificate has its key pinned (agent_register); a call that presents
 * another key, or none, is refused until a platform admin trusts what it
 * presented (POST /nodes/{node}/trust), and the first such call of each
 * key goes into the activity log. 0, or -1 after replying. */
int
agent_pin_check(struct preq *r)
{
	char pin[TLS_PIN_LEN] = "", seen[TLS_PIN_LEN];
	const char *pinned, *pending, *name;
	json_t *n;
	int rc = -1;

	if (!http_peer_pin(r->http, pin, sizeof pin))
		pin[0] = '\0';
	n = store_row(r->db, "SELECT name, tls_pin, tls_pin_pending FROM"
	    " nodes WHERE id = ?", "i", r->who.node_id);
	if (n == NULL) {
		reply_store_error(r);
		return -1;
	}
	name = jsonx_str(n, "name");
	pinned = jsonx_str(n, "tls_pin");
	if (pinned == NULL || strcmp(pinned, pin) == 0) {
		rc = 0;
		goto out;
	}
	snprintf(seen, sizeof seen, "%s", *pin ? pin : "none");
	pending = jsonx_str(n, "tls_pin_pending");
	if (pending == NULL || strcmp(pending, seen) != 0) {
		if (store_run(r->db, "UPDATE nodes SET tls_pin_pending = ?"
		    " WHERE id = ?", "si", seen, r->who.node_id) != STORE_OK) {
			reply_store_error(r);
			goto out;
		}
		activity_record(r->db, 0, 0, r->who.node_id,
		    "node.certificate-refused", "node '%s' presented %s%s "
		    "instead of its pinned certificate (key %s): refused until"
		    " a platform admin trusts it", name, *pin ?
		    "a certificate with key " : "no certificate", pin, pinned);
		log_warn("node '%s' presented %s%s instead of its pinned "
		    "certificate (key %s): refused", name, *pin ?
		    "a certificate with key " : "no certificate", pin, pinned);
	}
	reply_error(r, 403, "NODE_CERTIFICATE_CHANGED", "node '%s' presented "
	    "%s%s, not the certificate pinned at its first registration (key "
	    "%s): a platform admin accepts it with 'nubo admin nodes trust "
	    "%s'", name, *pin ? "a certificate with key " : "no certificate",
	    pin, pinned, name);
out:
	json_decref(n);
	return rc;
}

/* A router address of the registration ("IP:PORT", "[IPv6]:PORT"), NULL
 * when absent or not one: the portal builds URLs and its probes from it
 * (envs_url(), migrate_node_first_served()). */
static const char *
agent_router_addr(struct preq *r, const char *field)
{
	const char *a = jsonx_str(r->body, field);

	if (a == NULL || *a == '\0' || strlen(a) > 64 ||
	    strspn(a, "0123456789abcdefABCDEF.:[]") != strlen(a) ||
	    strrchr(a, ':') == NULL)
		return NULL;
	return a;
}

/* POST /agent/register {url, router, router_tls, generation, version}:
 * remember where
 * the node's agent listens; answer its identity, the portal secret (made
 * once per node and kept) and the desired environment specs. The portal
 * calls that URL with the secret, so its host must be the address the
 * registration came from, or the one a platform admin set for the node
 * (PUT /nodes/{node}/address): a stolen node token cannot send the
 * portal's calls, and the secret, elsewhere. */
void
agent_register(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "url", JT_STRING, 1 }, { "router", JT_STRING, 0 },
		{ "router_tls", JT_STRING, 0 },
		{ "generation", JT_STRING, 0 }, { "version", JT_STRING, 0 },
		{ NULL } };
	const char *url, *gen;
	json_t *node = NULL;
	char *secret = NULL, *sealed = NULL;
	char now[32], from[64], host[256], pin[TLS_PIN_LEN];

	if (agent_body_check(r, fields) == -1)
		return;
	/* the first registration with a certificate pins its key */
	if (!http_peer_pin(r->http, pin, sizeof pin))
		pin[0] = '\0';
	http_client_ip(r->http, from, sizeof from);
	url = jsonx_str(r->body, "url");
	gen = jsonx_str(r->body, "generation");
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		reply_error(r, 400, "INVALID_URL", "agent url '%s' must start "
		    "with http:// or https://", url);
		return;
	}
	r->node_id = r->who.node_id;
	if (store_begin(r->db) == -1) {
		reply_store_error(r);
		return;
	}
	node = store_row(r->db, "SELECT name, generation, agent_secret, status,"
	    " address, tls_pin FROM nodes WHERE id = ?", "i", r->node_id);
	if (node == NULL) {
		store_rollback(r->db);
		reply_store_error(r);
		return;
	}
	if (url_host(url, host, sizeof host) == -1) {
		store_rollback(r->db);
		reply_error(r, 400, "INVALID_URL", "agent url '%s' has no host",
		    url);
		goto out;
	}
	if (!same_address(host, from) && (jsonx_str(node, "address") == NULL ||
	    !same_address(host, jsonx_str(node, "address")))) {
		store_rollback(r->db);
		reply_error(r, 403, "AGENT_URL_NOT_ALLOWED", "agent url host "
		    "'%s' is not the address this registration came from (%s)"
		    " nor the one set for node '%s' (%s)", host, from,
		    jsonx_str(node, "name"), jsonx_str(node, "address") ?
		    jsonx_str(node, "address") : "none; a platform admin sets "
		    "it with 'nubo admin nodes set-address'");
		goto out;
	}
	if (gen && strcmp(gen, jsonx_str(node, "generation")) != 0) {
		store_rollback(r->db);
		reply_error(r, 409, "GENERATION_MISMATCH", "node '%s' is a %s "
		    "node, but the agent says %s", jsonx_str(node, "name"),
		    jsonx_str(node, "generation"), gen);
		goto out;
	}
	/* the secret is kept sealed (src/portal/settings.c): a copy of the
	 * store alone does not let anyone call the node */
	if (jsonx_str(node, "agent_secret")) {
		secret = settings_unseal(jsonx_str(node, "agent_secret"));
		if (secret == NULL) {
			store_rollback(r->db);
			reply_error(r, 500, "SECRETS_KEY", "cannot unseal the "
			    "agent secret of node '%s'", jsonx_str(node,
			    "name"));
			goto out;
		}
		sealed = xstrdup(jsonx_str(node, "agent_secret"));
	} else {
		secret = util_random_hex(32);
		sealed = settings_seal(secret);
	}
	util_time_iso(util_now(), now, sizeof now);
	if (store_run(r->db, "UPDATE nodes SET agent_url = ?, agent_secret = ?,"
	    " router = ?, router_tls = ?, agent_version = ?, last_seen_at = ?,"
	    " registered_from = ? WHERE id = ?",
	    "sssssssi", url, sealed, agent_router_addr(r, "router"),
	    agent_router_addr(r, "router_tls"), jsonx_str(r->body, "version"),
	    now, from, r->node_id) != STORE_OK) {
		store_rollback(r->db);
		reply_store_error(r);
		goto out;
	}
	activity_log(r, "node.register", "node '%s' registered its agent at %s",
	    jsonx_str(node, "name"), url);
	if (*pin && jsonx_str(node, "tls_pin") == NULL) {
		if (store_run(r->db, "UPDATE nodes SET tls_pin = ?,"
		    " tls_pin_pending = NULL WHERE id = ?", "si", pin,
		    r->node_id) != STORE_OK) {
			store_rollback(r->db);
			reply_store_error(r);
			goto out;
		}
		activity_log(r, "node.certificate-pinned", "node '%s' is known "
		    "by its certificate's key %s from now on",
		    jsonx_str(node, "name"), pin);
	}
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	portal_trust(r->portal, from);
	log_info("node '%s' registered at %s", jsonx_str(node, "name"), url);
	reply(r, 200, json_pack("{s:s,s:s,s:s,s:s,s:o}",
	    "node", jsonx_str(node, "name"),
	    "generation", jsonx_str(node, "generation"),
	    "portal_secret", secret,
	    "cloud_domain", r->portal->cloud_domain,
	    "environments", envs_specs(r->db, r->portal->cloud_domain, r->node_id)));
out:
	if (secret)
		sodium_memzero(secret, strlen(secret));
	free(secret);
	free(sealed);
	json_decref(node);
}

/* degraded: running, but the node's database or router is down (the
 * node restarts it; "reason" says what). */
static const char *const agent_states[] = { "notdeployed", "stopped",
	"starting", "running", "stopping", "failed", "degraded", NULL };

static int
state_valid(const char *s)
{
	int i;

	for (i = 0; s && agent_states[i]; i++)
		if (strcmp(s, agent_states[i]) == 0)
			return 1;
	return 0;
}

/* The app hostnames' ACME certificate failing to be ordered or renewed,
 * and working again, goes into the activity log (src/node/acme.c). */
static void
agent_cert_change(sqlite3 *db, long long node_id, json_t *row, json_t *e)
{
	json_t *st = NULL;
	const char *was = NULL, *now = jsonx_str(e, "certificate_error");
	const char *sj = jsonx_str(row, "status_json");

	if (row == NULL || !json_object_get(e, "certificate_error"))
		return;		/* a node without ACME says nothing */
	if (sj)
		st = json_loads(sj, 0, NULL);
	was = jsonx_str(st, "certificate_error");
	if (now && (was == NULL || strcmp(was, now) != 0) &&
	    (was == NULL || strncmp(was, now, 40) != 0))
		activity_record(db, 0, jsonx_int(row, "app_id", 0), node_id,
		    "environment.certificate_failed", "%s: %s", jsonx_str(row,
		    "name"), now);
	else if (now == NULL && was)
		activity_record(db, 0, jsonx_int(row, "app_id", 0), node_id,
		    "environment.certificate_issued", "%s has its certificate "
		    "again", jsonx_str(row, "name"));
	json_decref(st);
}

/* An environment becoming degraded or healed goes into the activity
 * log (its app's and its node's). */
static void
agent_state_change(sqlite3 *db, long long node_id, json_t *e)
{
	json_t *row = store_row(db, "SELECT e.state, e.name, e.status_json,"
	    " COALESCE(e.app_id, n.app_id) AS app_id FROM environments e"
	    " JOIN nodes n ON n.id = e.node_id WHERE e.id = ? AND"
	    " e.node_id = ?", "ii", jsonx_int(e, "id", 0), node_id);
	const char *was = jsonx_str(row, "state"), *now = jsonx_str(e, "state");

	if (was && now && strcmp(was, now) != 0) {
		if (strcmp(now, "degraded") == 0)
			activity_record(db, 0, jsonx_int(row, "app_id", 0),
			    node_id, "environment.degraded", "%s is degraded: "
			    "%s", jsonx_str(row, "name"), jsonx_str(e,
			    "reason") ? jsonx_str(e, "reason") : "?");
		else if (strcmp(was, "degraded") == 0)
			activity_record(db, 0, jsonx_int(row, "app_id", 0),
			    node_id, "environment.healed", "%s is %s again",
			    jsonx_str(row, "name"), now);
	}
	agent_cert_change(db, node_id, row, e);
	json_decref(row);
}

/* POST /agent/status {environments: [{id, state, instances, package,
 * error, router_error, reason, restart_pending, restart_reason}], disk,
 * egress}: mirror
 * the node's true state; answer the desired specs so the node follows
 * changes made while it was away. */
void
agent_status(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "environments", JT_ARRAY, 1 }, { "disk", JT_ANY, 0 },
		{ "egress", JT_BOOL, 0 }, { NULL } };
	static const struct jfield disk_fields[] = {
		{ "free_bytes", JT_INT, 1 }, { "total_bytes", JT_INT, 1 },
		{ "reserve_bytes", JT_INT, 1 }, { "low", JT_BOOL, 1 },
		{ NULL } };
	static const struct jfield env_fields[] = {
		{ "id", JT_INT, 1 }, { "state", JT_STRING, 1 },
		{ "name", JT_STRING, 0 }, { "instances", JT_ARRAY, 0 },
		{ "instances_wanted", JT_INT, 0 }, { "package", JT_ANY, 0 },
		{ "error", JT_ANY, 0 }, { "router_error", JT_ANY, 0 },
		{ "reason", JT_ANY, 0 }, { "restart_pending", JT_BOOL, 0 },
		{ "restart_reason", JT_ANY, 0 },
		{ "certificate", JT_ANY, 0 }, { "certificate_error", JT_ANY, 0 },
		{ "start_timeout", JT_INT, 0 }, { NULL } };
	json_t *envs, *e;
	char now[32], from[64];
	size_t i;

	if (agent_body_check(r, fields) == -1)
		return;
	envs = json_object_get(r->body, "environments");
	if (json_array_size(envs) > NUBO_LIST_MAX) {
		reply_error(r, 400, "BAD_REQUEST", "too many environments");
		return;
	}
	json_array_foreach(envs, i, e) {
		char *cause = NULL, where[40];

		snprintf(where, sizeof where, "environments[%zu]", i);
		if (!json_is_object(e)) {
			reply_error(r, 400, "BAD_REQUEST", "%s must be an object",
			    where);
			return;
		}
		if (agent_fields_check(r, e, env_fields, where, &cause) == -1) {
			reply_error(r, 400, "BAD_REQUEST", "environments[%zu]: "
			    "%s", i, cause);
			free(cause);
			return;
		}
		if (!state_valid(jsonx_str(e, "state"))) {
			reply_error(r, 400, "BAD_REQUEST", "environments[%zu]: "
			    "unknown state", i);
			return;
		}
	}
	if (json_is_object(json_object_get(r->body, "disk"))) {
		char *cause = NULL;

		if (agent_fields_check(r, json_object_get(r->body, "disk"),
		    disk_fields, "disk", &cause) == -1) {
			reply_error(r, 400, "BAD_REQUEST", "disk: %s", cause);
			free(cause);
			return;
		}
	}
	r->node_id = r->who.node_id;
	/* a node whose address changed since it registered */
	http_client_ip(r->http, from, sizeof from);
	portal_trust(r->portal, from);
	util_time_iso(util_now(), now, sizeof now);
	if (store_begin(r->db) == -1) {
		reply_store_error(r);
		return;
	}
	json_array_foreach(envs, i, e) {
		json_t *st = envs_status(e);

		agent_state_change(r->db, r->node_id, e);
		store_run(r->db, "UPDATE environments SET state = ?,"
		    " status_json = ? WHERE id = ? AND node_id = ?", "sjii",
		    jsonx_str(e, "state"), st, jsonx_int(e, "id", 0),
		    r->node_id);
		json_decref(st);
	}
	store_run(r->db, "UPDATE nodes SET last_seen_at = ?, disk_json = ?,"
	    " egress_json = ? WHERE id = ?", "sjji", now, json_is_object(
	    json_object_get(r->body, "disk")) ? json_object_get(r->body,
	    "disk") : NULL, json_object_get(r->body, "egress"), r->node_id);
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		return;
	}
	reply(r, 200, json_pack("{s:o}", "environments",
	    envs_specs(r->db, r->portal->cloud_domain, r->node_id)));
}

/* POST /agent/downloads {kind: snapshot|package, id, user, at}: a user
 * downloaded this node's full snapshot archive or package file
 * completely (the node saw its last byte go; src/node/downloads.c). Sets
 * downloaded_at, which offboarding checks (seed §3.3); only for the
 * node's own snapshots (or those it keeps a copy of) and packages.
 * Idempotent: the same report again, or an older one, changes
 * nothing. */
void
agent_downloads(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "kind", JT_STRING, 1 }, { "id", JT_STRING, 1 },
		{ "user", JT_INT, 0 }, { "at", JT_STRING, 0 }, { NULL } };
	const char *kind, *id;
	json_t *row = NULL;
	long long user;
	char at[32];
	time_t t, now = util_now();
	int snap;

	if (agent_body_check(r, fields) == -1)
		return;
	kind = jsonx_str(r->body, "kind");
	id = jsonx_str(r->body, "id");
	snap = strcmp(kind, "snapshot") == 0;
	if (!snap && strcmp(kind, "package") != 0) {
		reply_error(r, 400, "BAD_REQUEST", "'kind' must be snapshot or "
		    "package");
		return;
	}
	if (jsonx_str(r->body, "at") == NULL)
		t = now;
	else if (util_parse_iso(jsonx_str(r->body, "at"), &t) == -1) {
		reply_error(r, 400, "BAD_REQUEST", "'at' must be a UTC time "
		    "like 2026-01-31T12:00:00Z");
		return;
	}
	if (t > now)
		t = now;	/* the node's clock is ahead */
	util_time_iso(t, at, sizeof at);
	r->node_id = r->who.node_id;
	user = store_int(r->db, 0, "SELECT id FROM users WHERE id = ?", "i",
	    jsonx_int(r->body, "user", 0));
	if (store_begin(r->db) == -1) {
		reply_store_error(r);
		return;
	}
	/* a snapshot's download is served by its node, or by a node that
	 * keeps a copy of it once its own is gone (snapcopy.c) */
	row = snap ? store_row(r->db, "SELECT uuid AS id, app_id,"
	    " downloaded_at FROM snapshots WHERE uuid = ?1 AND (node_id = ?2"
	    " OR uuid IN (SELECT snapshot_uuid FROM snapshot_copies WHERE"
	    " node_id = ?2 AND state = 'completed')) AND state = 'completed'",
	    "si", id, r->node_id) :
	    store_row(r->db, "SELECT p.package AS id, n.app_id,"
	    " p.downloaded_at FROM packages p JOIN nodes n ON n.id = p.node_id"
	    " WHERE p.package = ? AND p.node_id = ?", "si", id, r->node_id);
	if (row == NULL) {
		store_rollback(r->db);
		reply_error(r, 404, snap ? "SNAPSHOT_NOT_FOUND" :
		    "PACKAGE_NOT_FOUND", "no %s '%s' of this node", snap ?
		    "completed snapshot" : "package", id);
		return;
	}
	if (jsonx_str(row, "downloaded_at") == NULL ||
	    strcmp(jsonx_str(row, "downloaded_at"), at) < 0) {
		if (store_run(r->db, snap ? "UPDATE snapshots SET"
		    " downloaded_at = ? WHERE uuid = ?" : "UPDATE packages SET"
		    " downloaded_at = ? WHERE package = ? AND node_id = ?",
		    snap ? "ss" : "ssi", at, id, r->node_id) != STORE_OK) {
			store_rollback(r->db);
			reply_store_error(r);
			goto out;
		}
		activity_record(r->db, user, jsonx_int(row, "app_id", 0),
		    r->node_id, snap ? "snapshot.downloaded" :
		    "package.downloaded", snap ? "snapshot %.8s downloaded "
		    "completely (full archive)" : "package '%s' downloaded "
		    "completely", id);
	}
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	reply(r, 200, json_pack("{s:s,s:s,s:s}", "kind", kind, "id", id,
	    "downloaded_at", json_is_string(json_object_get(row,
	    "downloaded_at")) && strcmp(jsonx_str(row, "downloaded_at"), at) >
	    0 ? jsonx_str(row, "downloaded_at") : at));
out:
	json_decref(row);
}
