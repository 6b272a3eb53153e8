#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "xmalloc.h"

/* A random (version 4) UUID in lowercase, as util_uuid() writes them. */
#define STORE_SQL_UUID \
	"(lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) ||" \
	" '-4' || substr(lower(hex(randomblob(2))), 2) || '-' ||" \
	" substr('89ab', 1 + (abs(random()) % 4), 1) ||" \
	" substr(lower(hex(randomblob(2))), 2) || '-' ||" \
	" lower(hex(randomblob(6))))"

/* Schema versions, applied in order inside one transaction each. Never edit
 * a released step: add a new one. The number is PRAGMA user_version. */
static const char *const store_schema[] = {
	/* 1: foundation — users, keys, apps, members, nodes, environments,
	 * activity, jobs. */
	"CREATE TABLE users ("
	"  id INTEGER PRIMARY KEY,"
	"  email TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	"  name TEXT NOT NULL DEFAULT '',"
	"  password_hash TEXT,"
	"  is_admin INTEGER NOT NULL DEFAULT 0,"
	"  created_at TEXT NOT NULL);"
	"CREATE TABLE api_keys ("
	"  id INTEGER PRIMARY KEY,"
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  prefix TEXT NOT NULL,"
	"  hash TEXT NOT NULL UNIQUE,"
	"  name TEXT NOT NULL DEFAULT '',"
	"  read_only INTEGER NOT NULL DEFAULT 0,"
	"  apps_json TEXT,"
	"  expires_at TEXT,"
	"  revoked_at TEXT,"
	"  created_at TEXT NOT NULL);"
	"CREATE TABLE apps ("
	"  id INTEGER PRIMARY KEY,"
	"  uuid TEXT NOT NULL UNIQUE,"
	"  subdomain TEXT NOT NULL UNIQUE,"
	"  name TEXT NOT NULL,"
	"  technical_contact INTEGER NOT NULL REFERENCES users(id),"
	"  sandbox INTEGER NOT NULL DEFAULT 0,"
	"  temporary INTEGER NOT NULL DEFAULT 0,"
	"  created_at TEXT NOT NULL);"
	"CREATE TABLE members ("
	"  app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,"
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  created_at TEXT NOT NULL,"
	"  PRIMARY KEY (app_id, user_id));"
	"CREATE TABLE member_permissions ("
	"  app_id INTEGER NOT NULL,"
	"  user_id INTEGER NOT NULL,"
	"  permission TEXT NOT NULL CHECK (permission IN"
	"    ('transport','backups','settings','logs','manage')),"
	"  environment TEXT NOT NULL DEFAULT '*',"
	"  PRIMARY KEY (app_id, user_id, permission, environment),"
	"  FOREIGN KEY (app_id, user_id) REFERENCES members(app_id, user_id)"
	"    ON DELETE CASCADE);"
	"CREATE TABLE nodes ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  generation TEXT NOT NULL CHECK (generation IN ('v3','v4')),"
	"  status TEXT NOT NULL DEFAULT 'available' CHECK (status IN"
	"    ('available','linked','offboarding','offboarded')),"
	"  technical_contact INTEGER REFERENCES users(id),"
	"  app_id INTEGER UNIQUE REFERENCES apps(id),"
	"  is_sandbox INTEGER NOT NULL DEFAULT 0,"
	"  token_hash TEXT UNIQUE,"
	"  agent_url TEXT,"
	"  agent_secret TEXT,"
	"  last_seen_at TEXT,"
	"  created_at TEXT NOT NULL);"
	"CREATE TABLE environments ("
	"  id INTEGER PRIMARY KEY,"
	"  node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  app_id INTEGER REFERENCES apps(id) ON DELETE CASCADE,"
	"  state TEXT NOT NULL DEFAULT 'notdeployed',"
	"  created_at TEXT NOT NULL);"
	"CREATE UNIQUE INDEX environments_name ON environments"
	"  (node_id, name COLLATE NOCASE, IFNULL(app_id, 0));"
	"CREATE TABLE activity ("
	"  id INTEGER PRIMARY KEY,"
	"  at TEXT NOT NULL,"
	"  user_id INTEGER,"
	"  app_id INTEGER,"
	"  node_id INTEGER,"
	"  action TEXT NOT NULL,"
	"  detail TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX activity_app ON activity (app_id, id);"
	"CREATE TABLE jobs ("
	"  id INTEGER PRIMARY KEY,"
	"  kind TEXT NOT NULL,"
	"  state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN"
	"    ('queued','running','completed','failed')),"
	"  app_id INTEGER,"
	"  node_id INTEGER,"
	"  environment TEXT,"
	"  params_json TEXT,"
	"  progress_json TEXT,"
	"  result_json TEXT,"
	"  error TEXT,"
	"  created_by INTEGER,"
	"  created_at TEXT NOT NULL,"
	"  started_at TEXT,"
	"  finished_at TEXT);"
	"CREATE INDEX jobs_state ON jobs (state, id);",
	/* 2: auth — a key created with another key records its parent, so
	 * revoking a key revokes every key made with it. */
	"ALTER TABLE api_keys ADD COLUMN parent_id INTEGER"
	"  REFERENCES api_keys(id);"
	"CREATE INDEX api_keys_parent ON api_keys (parent_id);"
	"CREATE INDEX api_keys_user ON api_keys (user_id, id);",

	/* 3: environment settings (route-settings.c, settings.c): one
	 * document per environment, secrets sealed inside it. */
	"CREATE TABLE environment_settings ("
	"  environment_id INTEGER PRIMARY KEY"
	"    REFERENCES environments(id) ON DELETE CASCADE,"
	"  doc_json TEXT NOT NULL DEFAULT '{}',"
	"  restart_pending INTEGER NOT NULL DEFAULT 0,"
	"  version INTEGER NOT NULL DEFAULT 0,"
	"  updated_at TEXT,"
	"  updated_by INTEGER);",
	/* 4: node runtime — what the portal wants of each environment and
	 * what the node last reported; where each node's router listens. */
	"ALTER TABLE environments ADD COLUMN package TEXT;"
	"ALTER TABLE environments ADD COLUMN instances INTEGER NOT NULL"
	"  DEFAULT 1;"
	"ALTER TABLE environments ADD COLUMN memory_mb INTEGER NOT NULL"
	"  DEFAULT 512;"
	"ALTER TABLE environments ADD COLUMN maintenance INTEGER NOT NULL"
	"  DEFAULT 0;"
	"ALTER TABLE environments ADD COLUMN status_json TEXT;"
	"ALTER TABLE nodes ADD COLUMN router TEXT;"
	"ALTER TABLE nodes ADD COLUMN agent_version TEXT;",
	/* 5: node runtime — the manifest of the package an environment runs
	 * (settings read its constants and scheduled events). */
	"ALTER TABLE environments ADD COLUMN package_manifest TEXT;",
	/* 6: migrations (migrate.c): the journal of every migration and its
	 * steps, and offboarding requests (offboarding.c). */
	"CREATE TABLE migrations ("
	"  id INTEGER PRIMARY KEY,"
	"  uuid TEXT NOT NULL UNIQUE,"
	"  app_id INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,"
	"  source_node_id INTEGER NOT NULL REFERENCES nodes(id),"
	"  target_node_id INTEGER NOT NULL REFERENCES nodes(id),"
	"  temp_app_id INTEGER REFERENCES apps(id) ON DELETE SET NULL,"
	"  environments_json TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('created','copying','copied',"
	"    'rehearsing','cutting-over','cut-over','finalizing','completed',"
	"    'aborting','aborted','rolling-back','rolled-back')),"
	"  phase TEXT NOT NULL,"
	"  round INTEGER NOT NULL DEFAULT 0,"
	"  run_all INTEGER NOT NULL DEFAULT 0,"
	"  serving TEXT NOT NULL DEFAULT 'source' CHECK (serving IN"
	"    ('source','target','linked')),"
	"  job_id INTEGER,"
	"  offboarding_request_id INTEGER,"
	"  downtime_ms INTEGER,"
	"  report_json TEXT,"
	"  error TEXT,"
	"  created_by INTEGER NOT NULL REFERENCES users(id),"
	"  created_at TEXT NOT NULL,"
	"  updated_at TEXT NOT NULL,"
	"  finished_at TEXT);"
	"CREATE INDEX migrations_app ON migrations (app_id, id);"
	"CREATE TABLE migration_steps ("
	"  id INTEGER PRIMARY KEY,"
	"  migration_id INTEGER NOT NULL REFERENCES migrations(id)"
	"    ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL,"
	"  phase TEXT NOT NULL,"
	"  round INTEGER NOT NULL,"
	"  name TEXT NOT NULL,"
	"  environment TEXT,"
	"  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN"
	"    ('pending','running','done','failed','skipped')),"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  progress_json TEXT,"
	"  result_json TEXT,"
	"  error TEXT,"
	"  started_at TEXT,"
	"  finished_at TEXT,"
	"  UNIQUE (migration_id, seq));"
	"CREATE TABLE offboarding_requests ("
	"  id INTEGER PRIMARY KEY,"
	"  node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
	"  app_id INTEGER REFERENCES apps(id) ON DELETE SET NULL,"
	"  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN"
	"    ('pending','approved','cancelled')),"
	"  forced INTEGER NOT NULL DEFAULT 0,"
	"  reason TEXT,"
	"  unsaved_json TEXT,"
	"  saved_json TEXT,"
	"  requested_by INTEGER REFERENCES users(id),"
	"  requested_at TEXT NOT NULL,"
	"  approved_by INTEGER REFERENCES users(id),"
	"  approved_at TEXT,"
	"  keep_until TEXT);"
	"CREATE UNIQUE INDEX offboarding_pending ON offboarding_requests"
	"  (node_id) WHERE state = 'pending';",
	/* 7: package repositories — the portal's record of every package on
	 * every node (refreshed from the node; answers while it is down). */
	"CREATE TABLE packages ("
	"  id INTEGER PRIMARY KEY,"
	"  node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
	"  package TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  version TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  sha256 TEXT NOT NULL,"
	"  file_name TEXT,"
	"  uploaded_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
	"  uploaded_at TEXT NOT NULL,"
	"  manifest_json TEXT,"
	"  synced_at TEXT NOT NULL,"
	"  UNIQUE (node_id, package));",
	/* 8: backups — snapshots and restores (route-backups.c), the nightly
	 * time of each node */
	"CREATE TABLE snapshots ("
	"  id INTEGER PRIMARY KEY,"
	"  uuid TEXT NOT NULL UNIQUE,"
	"  environment_id INTEGER NOT NULL REFERENCES environments(id)"
	"    ON DELETE CASCADE,"
	"  app_id INTEGER REFERENCES apps(id) ON DELETE SET NULL,"
	"  node_id INTEGER NOT NULL,"
	"  type TEXT NOT NULL CHECK (type IN ('manual','nightly','uploaded')),"
	"  state TEXT NOT NULL CHECK (state IN"
	"    ('uploading','queued','running','completed','failed')),"
	"  comment TEXT NOT NULL DEFAULT '',"
	"  created_by INTEGER,"
	"  created_at TEXT NOT NULL,"
	"  finished_at TEXT,"
	"  expires_at TEXT,"
	"  nightly_run TEXT,"
	"  package TEXT,"
	"  model_version TEXT,"
	"  dump_size INTEGER,"
	"  database_size INTEGER,"
	"  files_size INTEGER,"
	"  archive_size INTEGER,"
	"  error TEXT,"
	"  job_id INTEGER);"
	"CREATE INDEX snapshots_env ON snapshots(environment_id, created_at);"
	"CREATE INDEX snapshots_expires ON snapshots(expires_at);"
	"CREATE TABLE restores ("
	"  id INTEGER PRIMARY KEY,"
	"  uuid TEXT NOT NULL UNIQUE,"
	"  snapshot_uuid TEXT NOT NULL,"
	"  environment_id INTEGER NOT NULL REFERENCES environments(id)"
	"    ON DELETE CASCADE,"
	"  database_only INTEGER NOT NULL DEFAULT 0,"
	"  state TEXT NOT NULL,"
	"  error TEXT,"
	"  created_by INTEGER,"
	"  created_at TEXT NOT NULL,"
	"  finished_at TEXT,"
	"  job_id INTEGER);"
	"ALTER TABLE nodes ADD COLUMN backup_time TEXT NOT NULL"
	"  DEFAULT '02:00';",
	/* 9: offboarding (seed §3.3: "make sure you have downloaded the
	 * latest backup and deployment package"): when a full snapshot and a
	 * package were last handed out for download. */
	"ALTER TABLE snapshots ADD COLUMN downloaded_at TEXT;"
	"ALTER TABLE packages ADD COLUMN downloaded_at TEXT;",
	/* 10: offboarding purge (offboarding.c): when the node confirmed
	 * that an offboarded node's data is deleted, and the last failed
	 * attempt (retried with a growing pause). */
	"ALTER TABLE offboarding_requests ADD COLUMN purged_at TEXT;"
	"ALTER TABLE offboarding_requests ADD COLUMN purge_error TEXT;"
	"ALTER TABLE offboarding_requests ADD COLUMN purge_attempts INTEGER"
	"  NOT NULL DEFAULT 0;"
	"ALTER TABLE offboarding_requests ADD COLUMN purge_tried_at TEXT;",
	/* 11: password login lockout (lockout.c): failed logins per subject
	 * ("account:<sha256 of the email>" or "address:<ip>"), times in unix
	 * seconds of util_now(); a row is void once expires passed. */
	"CREATE TABLE login_failures ("
	"  subject TEXT PRIMARY KEY,"
	"  failures INTEGER NOT NULL,"
	"  window_start INTEGER NOT NULL,"
	"  locked_until INTEGER NOT NULL DEFAULT 0,"
	"  expires INTEGER NOT NULL);"
	"CREATE INDEX login_failures_expires ON login_failures(expires);",
	/* 12: the address a node's last registration came from
	 * (route-agent.c): trusted with the connections kept for nodes
	 * when others take the rest (src/common/httpd.c). */
	"ALTER TABLE nodes ADD COLUMN registered_from TEXT;",
	/* 13: packages belong to an app — app_id NULL: the node's repository
	 * (the linked app's); else the app's own repository on the sandbox
	 * node. One record per (node, repository, package). */
	"CREATE TABLE packages_new ("
	"  id INTEGER PRIMARY KEY,"
	"  node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
	"  app_id INTEGER REFERENCES apps(id) ON DELETE CASCADE,"
	"  package TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  version TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  sha256 TEXT NOT NULL,"
	"  file_name TEXT,"
	"  uploaded_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
	"  uploaded_at TEXT NOT NULL,"
	"  manifest_json TEXT,"
	"  synced_at TEXT NOT NULL,"
	"  downloaded_at TEXT);"
	"INSERT INTO packages_new (id, node_id, package, name, version, size,"
	"  sha256, file_name, uploaded_by, uploaded_at, manifest_json,"
	"  synced_at, downloaded_at) SELECT id, node_id, package, name,"
	"  version, size, sha256, file_name, uploaded_by, uploaded_at,"
	"  manifest_json, synced_at, downloaded_at FROM packages;"
	"DROP TABLE packages;"
	"ALTER TABLE packages_new RENAME TO packages;"
	"CREATE UNIQUE INDEX packages_key ON packages"
	"  (node_id, IFNULL(app_id, 0), package);",
	/* 14: facts about the portal itself (portal.c): the id of the key
	 * that seals the store's secrets (a one-way digest), so that the
	 * portal never starts with another key, and never makes a new one
	 * for a store with sealed secrets. From now on nodes.agent_secret
	 * is sealed too (settings_seal), clear values sealed at start. */
	"CREATE TABLE portal_meta ("
	"  name TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL);",
	/* 15: the address a platform admin set for a node's agent
	 * (route-nodes.c): a registration's agent URL must name it or the
	 * address the registration came from (route-agent.c). */
	"ALTER TABLE nodes ADD COLUMN address TEXT;",
	/* 16: the node's disk as its last heartbeat reported it
	 * (route-agent.c): free, total, the reserve it keeps, low. */
	"ALTER TABLE nodes ADD COLUMN disk_json TEXT;",
	/* 17: what an accepted backup archive had odd about it (a .metadata
	 * filesSize that differs from tree/: informational in Mendix) */
	"ALTER TABLE snapshots ADD COLUMN warning TEXT;",
	/* 18: TLS (route-agent.c): the key of the certificate a node
	 * presented at its first registration over HTTPS (libcurl's
	 * "sha256//…" pin; the portal's calls to the node check it), and
	 * another key it presented since, refused until a platform admin
	 * trusts it (POST /nodes/{node}/trust). */
	"ALTER TABLE nodes ADD COLUMN tls_pin TEXT;"
	"ALTER TABLE nodes ADD COLUMN tls_pin_pending TEXT;",
	/* 19: whether the node's sandboxes reach the outside world (nubod
	 * node --egress), as its heartbeat says */
	"ALTER TABLE nodes ADD COLUMN egress_json TEXT;",
	/* 20: browser sessions (route-users.c) are api_keys rows with a
	 * CSRF token: their secret is accepted only as the session cookie,
	 * and a state-changing request needs the token in X-CSRF-Token. */
	"ALTER TABLE api_keys ADD COLUMN csrf_token TEXT;",
	/* 21: an id of every environment that stays when it moves (the
	 * Mendix APIs' EnvironmentId, docs/MENDIX-API.md); rows inserted
	 * without one get one from the trigger */
	"ALTER TABLE environments ADD COLUMN uuid TEXT;"
	"CREATE TRIGGER environments_uuid AFTER INSERT ON environments"
	"  WHEN NEW.uuid IS NULL BEGIN"
	"  UPDATE environments SET uuid = " STORE_SQL_UUID " WHERE id = NEW.id;"
	"  END;"
	"UPDATE environments SET uuid = " STORE_SQL_UUID " WHERE uuid IS NULL;"
	"CREATE UNIQUE INDEX environments_uuid ON environments (uuid);",
	/* 22: where the node's router answers over HTTPS (nubod node
	 * --router-tls-listen), as its registration says; NULL: plain
	 * only (nodes.router) */
	"ALTER TABLE nodes ADD COLUMN router_tls TEXT;",
	/* 23: personal access tokens (the Mendix Deploy API v4,
	 * docs/MENDIX-API.md): an API key with scopes
	 * ["mx:deployment:read", "mx:deployment:write"], valid only on
	 * /api/v4 */
	"ALTER TABLE api_keys ADD COLUMN scopes_json TEXT;",
	/* 24: the labels of the Mendix Build and Team Server APIs
	 * (docs/MENDIX-API.md): the branch and revision a package was
	 * uploaded with (the node keeps them too), and the version label and
	 * description a "build" gave it */
	"ALTER TABLE packages ADD COLUMN branch TEXT;"
	"ALTER TABLE packages ADD COLUMN revision INTEGER;"
	"ALTER TABLE packages ADD COLUMN version_label TEXT;"
	"ALTER TABLE packages ADD COLUMN description TEXT;",
	/* 25: environment tags (the Mendix Deploy API's, route-envs.c) */
	"CREATE TABLE environment_tags ("
	"  environment_id INTEGER NOT NULL REFERENCES environments(id)"
	"    ON DELETE CASCADE,"
	"  tag TEXT NOT NULL,"
	"  PRIMARY KEY (environment_id, tag));",
	/* 26: measured durations the migration's downtime estimate scales
	 * from before anything was copied (migrate-estimate.c): a
	 * snapshot's pg_dump, a job's run (both in milliseconds) */
	"ALTER TABLE snapshots ADD COLUMN dump_ms INTEGER;"
	"ALTER TABLE jobs ADD COLUMN run_ms INTEGER;",
	/* 27: how a migration copies the database (migrate-repl.c):
	 * 'dump' (a dump restored at every copy) or 'replicate' (the
	 * schema, then logical replication until the cutover) */
	"ALTER TABLE migrations ADD COLUMN method TEXT NOT NULL DEFAULT"
	"  'dump' CHECK (method IN ('dump','replicate'));",
	/* 28: what a step was asked to do beyond its kind: a rehearse's
	 * data steps {resync: ["schema.table", …]} (migrate-repl.c) */
	"ALTER TABLE migration_steps ADD COLUMN input_json TEXT;",
	/* 29: why a migration that was not told how copies with the dump
	 * (what replication cannot carry; route-migrations.c) */
	"ALTER TABLE migrations ADD COLUMN method_reason TEXT;",
	/* 30: off-node copies of snapshots (snapcopy.c): a node's backup
	 * target, and where each snapshot has (or is getting) a copy */
	"ALTER TABLE nodes ADD COLUMN backup_target INTEGER REFERENCES"
	"  nodes(id) ON DELETE SET NULL;"
	"CREATE TABLE snapshot_copies ("
	"  snapshot_uuid TEXT NOT NULL REFERENCES snapshots(uuid)"
	"    ON DELETE CASCADE,"
	"  node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
	"  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN"
	"    ('pending','copying','completed','failed')),"
	"  error TEXT,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt_at TEXT,"
	"  job_id INTEGER,"
	"  blobs_fetched INTEGER,"
	"  bytes_fetched INTEGER,"
	"  blobs_total INTEGER,"
	"  created_at TEXT NOT NULL,"
	"  finished_at TEXT,"
	"  PRIMARY KEY (snapshot_uuid, node_id));"
	"CREATE INDEX snapshot_copies_state ON snapshot_copies"
	"  (state, next_attempt_at);",
	/* 31: copies whose snapshot's record went (its environment was
	 * deleted) while their node could not delete them: tried again
	 * until it does (snapcopy.c) */
	"CREATE TABLE copy_deletions ("
	"  snapshot_uuid TEXT NOT NULL,"
	"  node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
	"  attempts INTEGER NOT NULL DEFAULT 1,"
	"  next_attempt_at TEXT NOT NULL,"
	"  error TEXT,"
	"  created_at TEXT NOT NULL,"
	"  PRIMARY KEY (snapshot_uuid, node_id));",
	/* 32: an app's id is never given again. SQLite gives a new row
	 * max(id) + 1, so the next app took the id of the newest one
	 * deleted, and what jobs and activity (no foreign key) kept under
	 * it. app_id_high holds the highest id an app ever had (the
	 * trigger keeps it on every insert); new apps take the next one
	 * (STORE_APP_NEW_ID). AUTOINCREMENT would need apps rebuilt, and
	 * its DROP, in this step's transaction with foreign keys on, would
	 * cascade to members, environments, packages and migrations. Rows
	 * that are not their app's — left by a deleted app, or older than
	 * the app that took its id — are detached (app_id NULL), as a
	 * deleted app's are from now on (apps_detach()). The node's
	 * activity gets an index of its own. */
	"CREATE TABLE app_id_high (id INTEGER NOT NULL);"
	"INSERT INTO app_id_high SELECT max(IFNULL((SELECT max(id) FROM"
	"  apps), 0), IFNULL((SELECT max(app_id) FROM jobs), 0),"
	"  IFNULL((SELECT max(app_id) FROM activity), 0));"
	"CREATE TRIGGER apps_id_high AFTER INSERT ON apps BEGIN"
	"  UPDATE app_id_high SET id = max(id, NEW.id);"
	"END;"
	"UPDATE jobs SET app_id = NULL WHERE app_id IS NOT NULL AND NOT EXISTS"
	"  (SELECT 1 FROM apps a WHERE a.id = jobs.app_id AND"
	"  a.created_at <= jobs.created_at);"
	"UPDATE activity SET app_id = NULL WHERE app_id IS NOT NULL AND"
	"  NOT EXISTS (SELECT 1 FROM apps a WHERE a.id = activity.app_id AND"
	"  a.created_at <= activity.at);"
	"CREATE INDEX activity_node ON activity (node_id, id);",
};

static char *store_path_global;
static pthread_key_t store_key;
static pthread_once_t store_once = PTHREAD_ONCE_INIT;

#define STMT_CACHE 96

struct store_conn {
	sqlite3		*db;
	struct {
		const char	*sql;
		sqlite3_stmt	*stmt;
	} cache[STMT_CACHE];
	int		 ncache;
};

static void
conn_free(void *p)
{
	struct store_conn *c = p;
	int i;

	for (i = 0; i < c->ncache; i++)
		sqlite3_finalize(c->cache[i].stmt);
	sqlite3_close(c->db);
	free(c);
}

static void
key_make(void)
{
	pthread_key_create(&store_key, conn_free);
}

static sqlite3 *
conn_open(const char *path)
{
	sqlite3 *db = NULL;
	char *err = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		error("cannot open store %s: %s", path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 10000);
	/* What the API confirmed stays confirmed: with synchronous=FULL
	 * every commit syncs the WAL before it returns, so a reply never
	 * leaves before its write is on disk (NORMAL syncs only at
	 * checkpoints: a power loss or OS crash lost confirmed writes). */
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	    "PRAGMA foreign_keys=ON;", NULL, NULL, &err) != SQLITE_OK) {
		error("cannot set up store %s: %s", path, err ? err :
		    sqlite3_errmsg(db));
		sqlite3_free(err);
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

static struct store_conn *
conn_get(void)
{
	struct store_conn *c;

	pthread_once(&store_once, key_make);
	c = pthread_getspecific(store_key);
	if (c == NULL) {
		c = xcalloc(1, sizeof *c);
		c->db = conn_open(store_path_global);
		if (c->db == NULL)
			fatal("store unavailable");
		pthread_setspecific(store_key, c);
	}
	return c;
}

sqlite3 *
store_db(void)
{
	return conn_get()->db;
}

void
store_close_thread(void)
{
	struct store_conn *c;

	pthread_once(&store_once, key_make);
	c = pthread_getspecific(store_key);
	if (c) {
		conn_free(c);
		pthread_setspecific(store_key, NULL);
	}
}

int
store_open(const char *path)
{
	sqlite3 *db;
	int version, i, n = (int)(sizeof store_schema / sizeof store_schema[0]);
	char *err = NULL;

	/* One connection per thread, never shared: SQLite's own mutexes and
	 * its global allocation statistics (a mutex per malloc) only cost.
	 * Must precede any other use of SQLite; harmless if too late. */
	sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	free(store_path_global);
	store_path_global = xstrdup(path);
	db = store_db();
	version = (int)store_int(db, 0, "PRAGMA user_version", "");
	if (version > n)
		return error("store %s has schema %d, newer than this nubod "
		    "(%d)", path, version, n);
	for (i = version; i < n; i++) {
		char *pragma = xasprintf("PRAGMA user_version=%d", i + 1);

		if (store_begin(db) == -1 ||
		    sqlite3_exec(db, store_schema[i], NULL, NULL, &err) !=
		    SQLITE_OK ||
		    sqlite3_exec(db, pragma, NULL, NULL, &err) != SQLITE_OK) {
			error("store schema step %d: %s", i + 1,
			    err ? err : sqlite3_errmsg(db));
			sqlite3_free(err);
			free(pragma);
			store_rollback(db);
			return -1;
		}
		free(pragma);
		if (store_commit(db) == -1)
			return -1;
		log_info("store schema now at version %d", i + 1);
	}
	/* a new store's name in its folder reaches the disk too */
	if (version == 0 && util_fsync_dir(path) == -1)
		return error("cannot sync the folder of %s: %s", path,
		    strerror(errno));
	return 0;
}

/* A prepared statement for sql from this thread's cache, reset and with
 * bindings cleared. SQL strings are literals, so the pointer is the key. */
static sqlite3_stmt *
stmt_get(sqlite3 *db, const char *sql)
{
	struct store_conn *c = conn_get();
	sqlite3_stmt *st = NULL;
	int i;

	if (c->db == db) {
		for (i = 0; i < c->ncache; i++) {
			if (c->cache[i].sql == sql) {
				sqlite3_reset(c->cache[i].stmt);
				sqlite3_clear_bindings(c->cache[i].stmt);
				return c->cache[i].stmt;
			}
		}
	}
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
	    NULL) != SQLITE_OK) {
		error("sql: %s: %s", sqlite3_errmsg(db), sql);
		return NULL;
	}
	if (c->db == db && c->ncache < STMT_CACHE) {
		c->cache[c->ncache].sql = sql;
		c->cache[c->ncache].stmt = st;
		c->ncache++;
	}
	return st;
}

static void
stmt_done(sqlite3 *db, sqlite3_stmt *st)
{
	struct store_conn *c = conn_get();
	int i;

	if (c->db == db)
		for (i = 0; i < c->ncache; i++)
			if (c->cache[i].stmt == st) {
				sqlite3_reset(st);
				sqlite3_clear_bindings(st);
				return;
			}
	sqlite3_finalize(st);
}

static sqlite3_stmt *
stmt_bind(sqlite3 *db, const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *st = stmt_get(db, sql);
	int i;

	if (st == NULL)
		return NULL;
	for (i = 0; types[i]; i++) {
		int rc = SQLITE_OK;

		switch (types[i]) {
		case 's': {
			const char *s = va_arg(ap, const char *);

			rc = s ? sqlite3_bind_text(st, i + 1, s, -1,
			    SQLITE_TRANSIENT) : sqlite3_bind_null(st, i + 1);
			break;
		}
		case 'i':
			rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, long long));
			break;
		case 'j': {
			json_t *j = va_arg(ap, json_t *);
			char *s = j ? json_dumps(j, JSON_COMPACT |
			    JSON_ENCODE_ANY) : NULL;

			rc = s ? sqlite3_bind_text(st, i + 1, s, -1,
			    SQLITE_TRANSIENT) : sqlite3_bind_null(st, i + 1);
			free(s);
			break;
		}
		default:
			fatal("store: bad bind type '%c'", types[i]);
		}
		if (rc != SQLITE_OK) {
			error("sql bind %d: %s", i + 1, sqlite3_errmsg(db));
			stmt_done(db, st);
			return NULL;
		}
	}
	return st;
}

int
store_run(sqlite3 *db, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc;

	va_start(ap, types);
	st = stmt_bind(db, sql, types, ap);
	va_end(ap);
	if (st == NULL)
		return STORE_ERROR;
	do
		rc = sqlite3_step(st);
	while (rc == SQLITE_ROW);
	stmt_done(db, st);
	if (rc == SQLITE_DONE)
		return STORE_OK;
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return STORE_CONFLICT;
	error("sql: %s: %s", sqlite3_errmsg(db), sql);
	return STORE_ERROR;
}

static json_t *
row_object(sqlite3_stmt *st)
{
	json_t *o = json_object();
	int i, n = sqlite3_column_count(st);

	for (i = 0; i < n; i++) {
		const char *name = sqlite3_column_name(st, i);
		size_t nl = strlen(name);
		json_t *v;

		switch (sqlite3_column_type(st, i)) {
		case SQLITE_INTEGER:
			v = json_integer(sqlite3_column_int64(st, i));
			break;
		case SQLITE_FLOAT:
			v = json_real(sqlite3_column_double(st, i));
			break;
		case SQLITE_NULL:
			v = json_null();
			break;
		default: {
			const char *t = (const char *)sqlite3_column_text(st, i);

			if (nl > 5 && strcmp(name + nl - 5, "_json") == 0) {
				v = json_loads(t, JSON_DECODE_ANY, NULL);
				if (v == NULL)
					v = json_null();
			} else {
				v = json_string(t);
			}
		}
		}
		if (nl > 5 && strcmp(name + nl - 5, "_json") == 0) {
			char *k = xstrndup(name, nl - 5);

			json_object_set_new(o, k, v);
			free(k);
		} else {
			json_object_set_new(o, name, v);
		}
	}
	return o;
}

static json_t *
rows_v(sqlite3 *db, int one, const char *sql, const char *types, va_list ap)
{
	sqlite3_stmt *st = stmt_bind(db, sql, types, ap);
	json_t *out = one ? NULL : json_array();
	int rc;

	if (st == NULL) {
		json_decref(out);
		return NULL;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (one) {
			out = row_object(st);
			rc = SQLITE_DONE;
			break;
		}
		json_array_append_new(out, row_object(st));
	}
	stmt_done(db, st);
	if (rc != SQLITE_DONE) {
		error("sql: %s: %s", sqlite3_errmsg(db), sql);
		json_decref(out);
		return NULL;
	}
	return out;
}

/* The output of store_rows_text(): a plain growable string, appended to
 * in place (this is the hottest loop of list endpoints). */
struct text {
	char	*p;
	size_t	 len, cap;
};

static void
text_need(struct text *t, size_t n)
{
	if (t->len + n + 1 <= t->cap)
		return;
	while (t->len + n + 1 > t->cap)
		t->cap = t->cap ? t->cap * 2 : 8192;
	t->p = xrealloc(t->p, t->cap);
}

static void
text_add(struct text *t, const void *s, size_t n)
{
	text_need(t, n);
	memcpy(t->p + t->len, s, n);
	t->len += n;
}

/* s (n bytes) as a JSON string literal. */
static void
text_quote(struct text *t, const unsigned char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *o;
	size_t i;

	text_need(t, n * 6 + 2);
	o = t->p + t->len;
	*o++ = '"';
	for (i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (c >= 0x20 && c != '"' && c != '\\') {
			*o++ = (char)c;
		} else if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else {
			*o++ = '\\';
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o++ = '"';
	t->len = (size_t)(o - t->p);
}

#define ROWS_TEXT_COLS 64

char *
store_rows_text(sqlite3 *db, const char *wrap, const char *sql,
    const char *types, ...)
{
	struct text t = { NULL, 0, 0 }, keys[ROWS_TEXT_COLS];
	char kind[ROWS_TEXT_COLS];	/* 'b' _bool, 'j' _json, 'v' value */
	sqlite3_stmt *st;
	va_list ap;
	int rc, i, n, nrows = 0;

	va_start(ap, types);
	st = stmt_bind(db, sql, types, ap);
	va_end(ap);
	if (st == NULL)
		return NULL;
	n = sqlite3_column_count(st);
	if (n > ROWS_TEXT_COLS)
		fatal("store_rows_text: more than %d columns", ROWS_TEXT_COLS);
	/* Each column's `"key":` once, not per row. */
	for (i = 0; i < n; i++) {
		const char *name = sqlite3_column_name(st, i);
		size_t nl = strlen(name);

		kind[i] = 'v';
		if (nl > 5 && strcmp(name + nl - 5, "_bool") == 0)
			kind[i] = 'b';
		else if (nl > 5 && strcmp(name + nl - 5, "_json") == 0)
			kind[i] = 'j';
		keys[i].p = NULL;
		keys[i].len = keys[i].cap = 0;
		text_add(&keys[i], i ? "," : "{", 1);
		text_quote(&keys[i], (const unsigned char *)name,
		    kind[i] == 'v' ? nl : nl - 5);
		text_add(&keys[i], ":", 1);
	}
	if (wrap) {
		text_add(&t, "{", 1);
		text_quote(&t, (const unsigned char *)wrap, strlen(wrap));
		text_add(&t, ":", 1);
	}
	text_add(&t, "[", 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (nrows++)
			text_add(&t, ",", 1);
		for (i = 0; i < n; i++) {
			char num[32];
			int len;

			text_add(&t, keys[i].p, keys[i].len);
			switch (sqlite3_column_type(st, i)) {
			case SQLITE_NULL:
				text_add(&t, "null", 4);
				break;
			case SQLITE_INTEGER:
				if (kind[i] == 'b') {
					if (sqlite3_column_int64(st, i))
						text_add(&t, "true", 4);
					else
						text_add(&t, "false", 5);
					break;
				}
				len = snprintf(num, sizeof num, "%lld",
				    sqlite3_column_int64(st, i));
				text_add(&t, num, (size_t)len);
				break;
			case SQLITE_FLOAT:
				len = snprintf(num, sizeof num, "%.17g",
				    sqlite3_column_double(st, i));
				text_add(&t, num, (size_t)len);
				break;
			default: {
				const unsigned char *v = sqlite3_column_text(st,
				    i);
				size_t vl = (size_t)sqlite3_column_bytes(st, i);

				if (kind[i] == 'j')
					text_add(&t, v, vl);
				else
					text_quote(&t, v, vl);
			}
			}
		}
		text_add(&t, n ? "}" : "{}", n ? 1 : 2);
	}
	stmt_done(db, st);
	for (i = 0; i < n; i++)
		free(keys[i].p);
	if (rc != SQLITE_DONE) {
		error("sql: %s: %s", sqlite3_errmsg(db), sql);
		free(t.p);
		return NULL;
	}
	text_add(&t, wrap ? "]}" : "]", wrap ? 2 : 1);
	t.p[t.len] = '\0';
	return t.p;
}

json_t *
store_rows(sqlite3 *db, const char *sql, const char *types, ...)
{
	va_list ap;
	json_t *out;

	va_start(ap, types);
	out = rows_v(db, 0, sql, types, ap);
	va_end(ap);
	return out;
}

json_t *
store_row(sqlite3 *db, const char *sql, const char *types, ...)
{
	va_list ap;
	json_t *out;

	va_start(ap, types);
	out = rows_v(db, 1, sql, types, ap);
	va_end(ap);
	return out;
}

long long
store_int(sqlite3 *db, long long dflt, const char *sql, const char *types,
    ...)
{
	sqlite3_stmt *st;
	va_list ap;
	long long v = dflt;

	va_start(ap, types);
	st = stmt_bind(db, sql, types, ap);
	va_end(ap);
	if (st == NULL)
		return dflt;
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	stmt_done(db, st);
	return v;
}

char *
store_text(sqlite3 *db, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	char *v = NULL;

	va_start(ap, types);
	st = stmt_bind(db, sql, types, ap);
	va_end(ap);
	if (st == NULL)
		return NULL;
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = xstrdup((const char *)sqlite3_column_text(st, 0));
	stmt_done(db, st);
	return v;
}

int
store_scan(sqlite3 *db, const char *sql, const char *types,
    const char *cols, ...)
{
	sqlite3_stmt *st;
	va_list ap, binds;
	int i, rc;

	va_start(ap, cols);
	va_copy(binds, ap);
	st = stmt_bind(db, sql, types, binds);
	va_end(binds);
	if (st == NULL) {
		va_end(ap);
		return -1;
	}
	/* skip past the bind arguments stmt_bind consumed from its copy */
	for (i = 0; types[i]; i++) {
		if (types[i] == 'i') {
			long long skip_int = va_arg(ap, long long);

			(void)skip_int;
		} else {
			const void *skip_ptr = va_arg(ap, const void *);

			(void)skip_ptr;
		}
	}
	rc = sqlite3_step(st);
	for (i = 0; cols[i]; i++) {
		int null = rc != SQLITE_ROW ||
		    sqlite3_column_type(st, i) == SQLITE_NULL;

		if (cols[i] == 'i') {
			long long *out = va_arg(ap, long long *);

			*out = null ? 0 : sqlite3_column_int64(st, i);
		} else {
			char **out = va_arg(ap, char **);

			*out = null ? NULL : xstrdup((const char *)
			    sqlite3_column_text(st, i));
		}
	}
	va_end(ap);
	stmt_done(db, st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	error("sql: %s: %s", sqlite3_errmsg(db), sql);
	return -1;
}

long long
store_last_id(sqlite3 *db)
{
	return sqlite3_last_insert_rowid(db);
}

int
store_begin(sqlite3 *db)
{
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return error("store: begin: %s", sqlite3_errmsg(db));
	return 0;
}

int
store_commit(sqlite3 *db)
{
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		error("store: commit: %s", sqlite3_errmsg(db));
		store_rollback(db);
		return -1;
	}
	return 0;
}

void
store_rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

const char *
store_errmsg(sqlite3 *db)
{
	return sqlite3_errmsg(db);
}
