/* Nodes as the portal keeps them (SPEC §2): the platform admin creates
 * them, sets their Technical Contact and rotates their agent token;
 * Technical Contacts link an app to them (seed §3.1, §3.4). */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "offboarding.h"
#include "portal.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* One node as the API shows it. */
#define NODE_SELECT \
	"SELECT n.name, n.generation, n.status, u.email AS technical_contact," \
	" a.subdomain AS app, n.app_id AS app_ref, n.is_sandbox AS sandbox," \
	" n.agent_url, n.address, n.tls_pin, n.tls_pin_pending,"\
	" n.router, n.router_tls,"\
	" (SELECT t.name FROM nodes t WHERE t.id = n.backup_target)" \
	" AS backup_target,"\
	" (SELECT count(*) FROM copy_deletions d WHERE d.node_id = n.id)" \
	" AS copy_deletions_pending," \
	" (SELECT d.error FROM copy_deletions d WHERE d.node_id = n.id" \
	" ORDER BY d.next_attempt_at DESC LIMIT 1) AS copy_deletions_error," \
	" n.last_seen_at, n.disk_json, n.egress_json, n.created_at" \
	" FROM nodes n" \
	" LEFT JOIN users u ON u.id = n.technical_contact" \
	" LEFT JOIN apps a ON a.id = n.app_id"

/* The environments every node has unless told otherwise (SPEC §2). */
static const char *const nodes_standard_envs[] = {
	"Test", "Acceptance", "Production",
};
#define NODES_NSTANDARD \
	(sizeof nodes_standard_envs / sizeof nodes_standard_envs[0])

static void
nodes_fix_bools(json_t *node, int admin)
{
	const char *seen_at = jsonx_str(node, "last_seen_at");
	time_t seen;

	json_object_set_new(node, "sandbox", json_boolean(
	    jsonx_int(node, "sandbox", 0)));
	json_object_del(node, "app_ref");
	/* copies of deleted environments' snapshots it has yet to delete
	 * (snapcopy.c): how many, and why the last try failed — platform
	 * admins only, as those snapshots were other apps' (a backup target
	 * keeps other nodes' apps' copies; a relinked node, its earlier
	 * app's) */
	if (admin && jsonx_int(node, "copy_deletions_pending", 0) > 0)
		json_object_set_new(node, "copy_deletions", json_pack(
		    "{s:I,s:O?}", "pending", (json_int_t)jsonx_int(node,
		    "copy_deletions_pending", 0), "error", json_object_get(
		    node, "copy_deletions_error")));
	json_object_del(node, "copy_deletions_pending");
	json_object_del(node, "copy_deletions_error");
	/* reachable: it reported lately (a node whose link is down, or
	 * whose agent stopped, is not) */
	json_object_set_new(node, "online", json_boolean(seen_at &&
	    util_parse_iso(seen_at, &seen) == 0 && util_now() - seen <=
	    PORTAL_NODE_FRESH));
}

json_t *
nodes_json(struct preq *r, long long node_id)
{
	json_t *node = store_row(r->db, NODE_SELECT " WHERE n.id = ?", "i",
	    node_id);

	if (node)
		nodes_fix_bools(node, r->who.is_admin);
	return node;
}

/* The user an API body or path names: an email, or a numeric user id.
 * Returns the id, or 0 when there is no such user. */
long long
nodes_user_id(sqlite3 *db, const char *ref)
{
	if (ref == NULL || *ref == '\0')
		return 0;
	return store_int(db, 0, "SELECT id FROM users WHERE email = ?1"
	    " OR CAST(id AS TEXT) = ?1", "s", ref);
}

/* The standard name env stands for ("test" → "Test"), or NULL for a
 * flexible environment name. */
static const char *
nodes_standard_name(const char *env)
{
	size_t i;

	for (i = 0; i < NODES_NSTANDARD; i++)
		if (strcasecmp(env, nodes_standard_envs[i]) == 0)
			return nodes_standard_envs[i];
	return NULL;
}

/* Check the environments of a new node; replies 400 and returns -1 on a
 * bad list. *names gets the names to create (canonical spelling). */
static int
nodes_check_envs(struct preq *r, json_t *list, int v4, json_t **names)
{
	json_t *out = json_array(), *v;
	size_t i, j;

	if (list == NULL) {
		for (i = 0; i < NODES_NSTANDARD; i++)
			json_array_append_new(out,
			    json_string(nodes_standard_envs[i]));
		*names = out;
		return 0;
	}
	if (json_array_size(list) == 0 ||
	    json_array_size(list) > NUBO_NODE_ENVS_MAX) {
		reply_error(r, 400, "INVALID_ENVIRONMENTS", "a node has 1 to "
		    "%d environments", NUBO_NODE_ENVS_MAX);
		goto fail;
	}
	json_array_foreach(list, i, v) {
		const char *name = json_string_value(v), *std;

		if (name == NULL || !util_valid_env_name(name)) {
			reply_error(r, 400, "INVALID_ENVIRONMENT_NAME",
			    "environment name '%s' must match "
			    "[A-Za-z][A-Za-z0-9-]{0,31}",
			    name ? name : "(not a string)");
			goto fail;
		}
		std = nodes_standard_name(name);
		if (std == NULL && !v4) {
			reply_error(r, 400, "FLEXIBLE_ENVIRONMENTS_V4_ONLY",
			    "environment '%s': a v3 node has only Test, "
			    "Acceptance and Production", name);
			goto fail;
		}
		for (j = 0; j < i; j++) {
			if (strcasecmp(json_string_value(json_array_get(list,
			    j)), name) == 0) {
				reply_error(r, 400, "DUPLICATE_ENVIRONMENT",
				    "environment '%s' is listed twice", name);
				goto fail;
			}
		}
		json_array_append_new(out, json_string(std ? std : name));
	}
	*names = out;
	return 0;
fail:
	json_decref(out);
	return -1;
}

/* A new node token ("nubonode_<48 hex>"); *hash gets its sha256, which is
 * all the store keeps. */
static char *
nodes_token_new(char **hash)
{
	char *secret = util_random_hex(24);
	char *token = xasprintf("nubonode_%s", secret);

	free(secret);
	*hash = util_sha256_hex(token, strlen(token));
	return token;
}

/* POST /nodes {name, generation, environments?, technical_contact?,
 * sandbox?} (admin). The answer carries the node token, shown once. */
void
nodes_create(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "name", JT_STRING, 1 }, { "generation", JT_STRING, 1 },
		{ "environments", JT_ARRAY, 0 },
		{ "technical_contact", JT_STRING, 0 },
		{ "sandbox", JT_BOOL, 0 }, { NULL } };
	const char *name, *gen, *tc;
	json_t *envs = NULL, *v, *node;
	char *token = NULL, *hash = NULL, *tc_email = NULL;
	long long tc_id = 0;
	int sandbox, rc;
	char now[32];
	size_t i;

	if (body_check(r, fields) == -1)
		return;
	name = jsonx_str(r->body, "name");
	gen = jsonx_str(r->body, "generation");
	tc = jsonx_str(r->body, "technical_contact");
	sandbox = jsonx_bool(r->body, "sandbox", 0);
	if (!util_valid_name(name)) {
		reply_error(r, 400, "INVALID_NAME", "node name '%s' must match "
		    "[a-z0-9][a-z0-9-]{0,62}", name);
		return;
	}
	if (strcmp(gen, "v3") != 0 && strcmp(gen, "v4") != 0) {
		reply_error(r, 400, "INVALID_GENERATION", "generation must be "
		    "'v3' or 'v4', not '%s'", gen);
		return;
	}
	/* The sandbox node hosts one 'Sandbox' environment per free app,
	 * created with the app; it has no environments of its own. */
	if (sandbox && json_object_get(r->body, "environments")) {
		reply_error(r, 400, "INVALID_ENVIRONMENTS", "a sandbox node "
		    "has no environments of its own");
		return;
	}
	if (!sandbox && nodes_check_envs(r, json_object_get(r->body,
	    "environments"), strcmp(gen, "v4") == 0, &envs) == -1)
		return;
	if (tc && (tc_id = nodes_user_id(r->db, tc)) == 0) {
		reply_error(r, 404, "USER_NOT_FOUND", "no user '%s'", tc);
		goto out;
	}
	if (tc_id)
		tc_email = store_text(r->db, "SELECT email FROM users"
		    " WHERE id = ?", "i", tc_id);
	token = nodes_token_new(&hash);
	util_time_iso(util_now(), now, sizeof now);
	if (store_begin(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	rc = store_run(r->db, "INSERT INTO nodes (name, generation,"
	    " technical_contact, is_sandbox, token_hash, created_at)"
	    " VALUES (?, ?, NULLIF(?, 0), ?, ?, ?)", "ssiiss", name, gen,
	    tc_id, (long long)sandbox, hash, now);
	if (rc == STORE_CONFLICT) {
		store_rollback(r->db);
		reply_error(r, 409, "NODE_EXISTS", "a node '%s' exists", name);
		goto out;
	}
	if (rc != STORE_OK)
		goto fail;
	r->node_id = store_last_id(r->db);
	json_array_foreach(envs, i, v) {
		if (store_run(r->db, "INSERT INTO environments (node_id, name,"
		    " created_at) VALUES (?, ?, ?)", "iss", r->node_id,
		    json_string_value(v), now) != STORE_OK)
			goto fail;
	}
	activity_log(r, "node.create", "created %s node '%s'%s", gen, name,
	    sandbox ? " (sandbox node)" : "");
	if (tc_id)
		activity_log(r, "node.technical-contact", "Technical Contact "
		    "of node '%s' is %s", name, tc_email);
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	node = nodes_json(r, r->node_id);
	json_object_set_new(node, "environments", store_rows(r->db,
	    "SELECT id, name, state FROM environments WHERE node_id = ?"
	    " ORDER BY id", "i", r->node_id));
	json_object_set_new(node, "token", json_string(token));
	reply(r, 201, node);
	goto out;
fail:
	reply_store_error(r);
	store_rollback(r->db);
out:
	json_decref(envs);
	free(tc_email);
	free(token);
	free(hash);
}

/* GET /nodes: admins see every node; others the nodes they are Technical
 * Contact of or whose linked app they are a member of. */
void
nodes_list(struct preq *r)
{
	json_t *rows, *node, *out;
	size_t i;

	rows = store_rows(r->db, NODE_SELECT " WHERE ?1 OR"
	    " n.technical_contact = ?2 OR a.technical_contact = ?2 OR"
	    " EXISTS (SELECT 1 FROM members m WHERE m.app_id = n.app_id AND"
	    " m.user_id = ?2) ORDER BY n.name", "ii",
	    (long long)r->who.is_admin, r->who.user_id);
	if (rows == NULL) {
		reply_store_error(r);
		return;
	}
	/* A key limited to named apps sees only their nodes. */
	out = json_array();
	json_array_foreach(rows, i, node) {
		if (r->who.app_scope && !auth_key_allows_app(r,
		    jsonx_int(node, "app_ref", 0)))
			continue;
		nodes_fix_bools(node, r->who.is_admin);
		json_array_append(out, node);
	}
	json_decref(rows);
	reply(r, 200, json_pack("{s:o}", "nodes", out));
}

/* GET /nodes/{node}: status, generation, Technical Contact, linked app
 * and environments. */
void
nodes_show(struct preq *r)
{
	json_t *node = nodes_json(r, r->node_id);

	if (node == NULL) {
		reply_store_error(r);
		return;
	}
	json_object_set_new(node, "environments", store_rows(r->db,
	    "SELECT e.id, e.name, e.state, a.subdomain AS app"
	    " FROM environments e LEFT JOIN apps a ON a.id = e.app_id"
	    " WHERE e.node_id = ? ORDER BY e.id", "i", r->node_id));
	reply(r, 200, node);
}

/* GET /nodes/{node}/activity?limit=N: the node's activity log (its
 * creation, Technical Contact, tokens, links), newest first. */
void
nodes_activity(struct preq *r)
{
	activity_reply_page(r, ACTIVITY_OF_NODE);
}

/* The app linked to the request's node, or 0; node events are logged
 * with it so that its members see them in the app's activity. */
static long long
nodes_linked_app(struct preq *r)
{
	return store_int(r->db, 0, "SELECT app_id FROM nodes WHERE id = ?",
	    "i", r->node_id);
}

/* PUT /nodes/{node}/technical-contact {email} (admin) */
void
nodes_set_technical_contact(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "email", JT_STRING, 1 }, { NULL } };
	const char *ref, *node = preq_param(r, "node");
	char *email = NULL;
	long long user;

	if (body_check(r, fields) == -1)
		return;
	ref = jsonx_str(r->body, "email");
	if ((user = nodes_user_id(r->db, ref)) == 0) {
		reply_error(r, 404, "USER_NOT_FOUND", "no user '%s'", ref);
		return;
	}
	email = store_text(r->db, "SELECT email FROM users WHERE id = ?", "i",
	    user);
	if (store_begin(r->db) == -1 ||
	    store_run(r->db, "UPDATE nodes SET technical_contact = ?"
	    " WHERE id = ?", "ii", user, r->node_id) != STORE_OK) {
		reply_store_error(r);
		goto out;
	}
	r->app_id = nodes_linked_app(r);
	activity_log(r, "node.technical-contact", "Technical Contact of node "
	    "'%s' is %s", node, email);
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	reply(r, 200, nodes_json(r, r->node_id));
out:
	free(email);
}

/* 1 if s can be a node's address: a numeric IPv4 or IPv6 address, or a
 * host name ([a-z0-9-] labels, dots between, at most 253 characters). */
static int
nodes_valid_address(const char *s)
{
	unsigned char buf[16];
	size_t n = strlen(s), label = 0, i;

	if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
		return 1;
	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
		} else if (isalnum(c) || (c == '-' && label > 0)) {
			if (++label > 63)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0 && s[n - 1] != '-';
}

/* PUT /nodes/{node}/address {address} (admin): the address the node's
 * agent URL may name besides the one its registration comes from (a
 * node behind NAT or a proxy); "" clears it. */
void
nodes_set_address(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "address", JT_STRING, 1 }, { NULL } };
	const char *addr, *node = preq_param(r, "node");

	if (body_check(r, fields) == -1)
		return;
	addr = jsonx_str(r->body, "address");
	if (*addr && !nodes_valid_address(addr)) {
		reply_error(r, 400, "INVALID_ADDRESS", "'%s' is not an IP address"
		    " or a host name", addr);
		return;
	}
	if (store_begin(r->db) == -1 ||
	    store_run(r->db, "UPDATE nodes SET address = ? WHERE id = ?", "si",
	    *addr ? addr : NULL, r->node_id) != STORE_OK) {
		reply_store_error(r);
		return;
	}
	r->app_id = nodes_linked_app(r);
	if (*addr)
		activity_log(r, "node.address", "the agent of node '%s' may "
		    "register at %s", node, addr);
	else
		activity_log(r, "node.address", "the agent of node '%s' "
		    "registers at the address it calls from", node);
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		return;
	}
	reply(r, 200, nodes_json(r, r->node_id));
}

/* POST /nodes/{node}/trust {pin?}: accept the certificate the node
 * presented instead of its pinned one (agent_pin_check): its key is
 * pinned from now on, or, when it presented none, the node may call
 * without one. pin, when given, must be the key waiting (what the admin
 * checked). */
void
nodes_trust(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "pin", JT_STRING, 0 }, { NULL } };
	const char *node = preq_param(r, "node"), *want;
	char *pending = NULL, *pinned = NULL;

	if (body_check(r, fields) == -1)
		return;
	want = jsonx_str(r->body, "pin");
	if (store_begin(r->db) == -1) {
		reply_store_error(r);
		return;
	}
	pending = store_text(r->db, "SELECT tls_pin_pending FROM nodes WHERE"
	    " id = ?", "i", r->node_id);
	pinned = store_text(r->db, "SELECT tls_pin FROM nodes WHERE id = ?",
	    "i", r->node_id);
	if (pending == NULL) {
		store_rollback(r->db);
		reply_error(r, 409, "NO_CERTIFICATE_WAITING", "node '%s' "
		    "presented no other certificate than its pinned one",
		    node);
		goto out;
	}
	if (want && strcmp(want, pending) != 0) {
		store_rollback(r->db);
		reply_error(r, 409, "PIN_MISMATCH", "the certificate node '%s' "
		    "presented has key %s, not %s", node, pending, want);
		goto out;
	}
	if (store_run(r->db, "UPDATE nodes SET tls_pin = NULLIF(?, 'none'),"
	    " tls_pin_pending = NULL WHERE id = ?", "si", pending,
	    r->node_id) != STORE_OK) {
		store_rollback(r->db);
		reply_store_error(r);
		goto out;
	}
	r->app_id = nodes_linked_app(r);
	if (strcmp(pending, "none") == 0)
		activity_log(r, "node.certificate-trusted", "node '%s' may call "
		    "without a certificate from now on (its key was %s)", node,
		    pinned ? pinned : "none");
	else
		activity_log(r, "node.certificate-trusted", "node '%s' is known "
		    "by its certificate's key %s from now on (was %s)", node,
		    pending, pinned ? pinned : "none");
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	reply(r, 200, nodes_json(r, r->node_id));
out:
	free(pending);
	free(pinned);
}

/* POST /nodes/{node}/token (admin): a new agent token; the old one stops
 * working at once. */
void
nodes_token_rotate(struct preq *r)
{
	static const struct jfield fields[] = { { NULL } };
	const char *node = preq_param(r, "node");
	char *hash = NULL, *token = NULL;

	if (body_check(r, fields) == -1)
		return;
	token = nodes_token_new(&hash);
	if (store_begin(r->db) == -1 ||
	    store_run(r->db, "UPDATE nodes SET token_hash = ? WHERE id = ?",
	    "si", hash, r->node_id) != STORE_OK) {
		reply_store_error(r);
		goto out;
	}
	r->app_id = nodes_linked_app(r);
	activity_log(r, "node.token", "rotated the agent token of node '%s'",
	    node);
	if (store_commit(r->db) == -1) {
		reply_store_error(r);
		goto out;
	}
	reply(r, 200, json_pack("{s:s,s:s}", "node", node, "token", token));
out:
	free(hash);
	free(token);
}

/* Fill the error out-parameters of nodes_link_app; returns -1. */
static int
nodes_link_fail(unsigned *status, const char **code, char **cause,
    unsigned st, const char *c, char *msg)
{
	*status = st;
	*code = c;
	*cause = msg;
	return -1;
}

/* nodes_link_app(); with apply 0 only its refusals (nothing changes). */
static int
nodes_link_do(sqlite3 *db, long long user_id, long long node_id,
    long long app_id, int apply, long long *unlinked_app, unsigned *status,
    const char **code, char **cause)
{
	json_t *app = NULL, *n = NULL;
	char *other = NULL, *prev = NULL;
	const char *sub, *node, *st;
	long long other_node, prev_app;
	int rc = -1;

	*unlinked_app = 0;
	if (store_begin(db) == -1)
		return nodes_link_fail(status, code, cause, 500, "STORE_ERROR",
		    xasprintf("store error: %s", store_errmsg(db)));
	app = store_row(db, "SELECT subdomain, sandbox FROM apps WHERE id = ?",
	    "i", app_id);
	n = store_row(db, "SELECT name, status, is_sandbox, app_id FROM nodes"
	    " WHERE id = ?", "i", node_id);
	if (app == NULL || n == NULL) {
		nodes_link_fail(status, code, cause, 404, app ?
		    "NODE_NOT_FOUND" : "APP_NOT_FOUND", xstrdup(app ?
		    "no such node" : "no such app"));
		goto out;
	}
	sub = jsonx_str(app, "subdomain");
	node = jsonx_str(n, "name");
	st = jsonx_str(n, "status");
	prev_app = jsonx_int(n, "app_id", 0);
	if (jsonx_int(n, "is_sandbox", 0)) {
		nodes_link_fail(status, code, cause, 409, "NODE_IS_SANDBOX",
		    xasprintf("node '%s' is the sandbox node; apps cannot be "
		    "linked to it", node));
		goto out;
	}
	if (strcmp(st, "offboarding") == 0 || strcmp(st, "offboarded") == 0) {
		nodes_link_fail(status, code, cause, 409, "NODE_OFFBOARDED",
		    xasprintf("node '%s' is %s; apps cannot be linked to it",
		    node, st));
		goto out;
	}
	if (jsonx_int(app, "sandbox", 0)) {
		nodes_link_fail(status, code, cause, 409, "APP_HAS_SANDBOX",
		    xasprintf("app '%s' has a sandbox; run 'nubo apps "
		    "unlink-sandbox %s' first (its sandbox data will be gone)",
		    sub, sub));
		goto out;
	}
	other_node = store_int(db, 0, "SELECT id FROM nodes WHERE app_id = ?",
	    "i", app_id);
	if (other_node == node_id) {
		/* Already done: linking is idempotent so a resumed migration
		 * can repeat it. */
		rc = 0;
		goto out;
	}
	if (other_node) {
		other = store_text(db, "SELECT name FROM nodes WHERE id = ?",
		    "i", other_node);
		nodes_link_fail(status, code, cause, 409,
		    "APP_LINKED_ELSEWHERE", xasprintf("app '%s' is linked to "
		    "node '%s'; an app leaves a node only when another app is "
		    "linked to it or the node is offboarded", sub, other));
		goto out;
	}
	if (!apply) {
		rc = 0;
		goto out;
	}
	/* The environments were cleaned by the caller unless the node held
	 * a temporary app, whose environments the app linked next takes
	 * over (seed §3.4). The node agent learns the new hostnames from
	 * the environment specs the portal hands it. */
	if (store_run(db, "UPDATE nodes SET app_id = ?, status = 'linked'"
	    " WHERE id = ?", "ii", app_id, node_id) != STORE_OK) {
		nodes_link_fail(status, code, cause, 500, "STORE_ERROR",
		    xasprintf("store error: %s", store_errmsg(db)));
		goto out;
	}
	if (prev_app) {
		prev = store_text(db, "SELECT subdomain FROM apps WHERE id = ?",
		    "i", prev_app);
		activity_record(db, user_id, prev_app, node_id, "app.unlink",
		    "unlinked from node '%s' automatically because app '%s' was "
		    "linked to it; '%s' is a Free App again", node, sub, prev);
		activity_record(db, user_id, app_id, node_id, "app.link",
		    "linked to node '%s' (app '%s' was unlinked automatically)",
		    node, prev);
	} else {
		activity_record(db, user_id, app_id, node_id, "app.link",
		    "linked to node '%s'", node);
	}
	if (store_commit(db) == -1) {
		nodes_link_fail(status, code, cause, 500, "STORE_ERROR",
		    xasprintf("store error: %s", store_errmsg(db)));
		goto out;
	}
	*unlinked_app = prev_app;
	rc = 0;
out:
	store_rollback(db);	/* no-op after a commit */
	json_decref(app);
	json_decref(n);
	free(other);
	free(prev);
	return rc;
}

int
nodes_link_app(sqlite3 *db, long long user_id, long long node_id,
    long long app_id, long long *unlinked_app, unsigned *status,
    const char **code, char **cause)
{
	return nodes_link_do(db, user_id, node_id, app_id, 1, unlinked_app,
	    status, code, cause);
}

/* POST /nodes/{node}/link {app} — SPEC §2 "Linking". The caller is
 * Technical Contact of the node (checked by the route) and of the app;
 * nodes_link_app() applies the rest. There is no plain unlink. */
void
nodes_link(struct preq *r)
{
	static const struct jfield fields[] = {
		{ "app", JT_STRING, 1 }, { NULL } };
	const char *ref, *code = NULL;
	long long prev = 0;
	unsigned status = 0;
	char *cause = NULL, *prev_sub = NULL;
	json_t *out;

	if (body_check(r, fields) == -1)
		return;
	ref = jsonx_str(r->body, "app");
	r->app_id = apps_find(r->db, ref);
	if (r->app_id == 0) {
		reply_error(r, 404, "APP_NOT_FOUND", "no app '%s'", ref);
		return;
	}
	if (!auth_key_allows_app(r, r->app_id)) {
		reply_error(r, 403, "KEY_SCOPE", "this API key is not valid for "
		    "app '%s'", ref);
		return;
	}
	if (!r->who.is_admin && !auth_is_app_tc(r, r->app_id)) {
		reply_error(r, 403, "FORBIDDEN", "only the Technical Contact of "
		    "app '%s' may link it to a node", ref);
		return;
	}
	if (nodes_link_do(r->db, r->who.user_id, r->node_id, r->app_id, 0,
	    &prev, &status, &code, &cause) == -1) {
		reply_error(r, status, code, "%s", cause);
		free(cause);
		return;
	}
	/* What another app left in the node's environments (settings,
	 * secrets, data, packages) is not the new app's: cleaned first, as
	 * on unlinking. A temporary app's environments are handed over. */
	prev = store_int(r->db, 0, "SELECT app_id FROM nodes WHERE id = ?",
	    "i", r->node_id);
	if (prev && prev != r->app_id && store_int(r->db, 0, "SELECT"
	    " temporary FROM apps WHERE id = ?", "i", prev) != 1 &&
	    offboarding_wipe_node(r->db, r->node_id, r->who.user_id,
	    "another app was linked", &cause) == -1) {
		reply_error(r, 503, "NODE_NOT_CLEANED", "cannot clean the "
		    "environments of the node before linking: %s; the app was "
		    "not linked, try again once the node works", cause);
		free(cause);
		return;
	}
	if (nodes_link_app(r->db, r->who.user_id, r->node_id, r->app_id,
	    &prev, &status, &code, &cause) == -1) {
		reply_error(r, status, code, "%s", cause);
		free(cause);
		return;
	}
	if (prev)
		prev_sub = store_text(r->db, "SELECT subdomain FROM apps"
		    " WHERE id = ?", "i", prev);
	out = nodes_json(r, r->node_id);
	json_object_set_new(out, "unlinked_app", prev_sub ?
	    json_string(prev_sub) : json_null());
	reply(r, 200, out);
	free(prev_sub);
}
