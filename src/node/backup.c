/* Snapshots on the node (SPEC §2 Backups): create, show, delete, download
 * (full, database only, files only; signed URLs with Range), upload
 * (validated before it exists), and restore into a stopped environment —
 * into a NEW database and a NEW files folder, swapped in only when complete
 * and verified, journaled so that a node killed at any moment comes back
 * with either the old data or the new, never a mix.
 *
 * Layout: DIR/snapshots/<uuid>/{snapshot.json, manifest.json} for a
 * snapshot taken here or uploaded: its contents are in the snapshot
 * store, DIR/store (snapstore.h), and every download is assembled from
 * it. One taken before the store has archive.tar.gz instead (and
 * database.backup, files.tar.gz made from it on first download) until
 * it is converted (snapshot-convert.c).
 * DIR/restores/<uuid>.json (outcome of a restore); DIR/envs/<id>/restore.json
 * (the journal of a restore in progress). */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent-routes.h"
#include "backup-archive.h"
#include "jsonx.h"
#include "log.h"
#include "restore-role.h"
#include "snapstore.h"
#include "testhook.h"
#include "tls.h"
#include "util.h"
#include "xmalloc.h"

/* Work in progress, by uuid (snapshots and restores). */
struct task {
	char		 id[40];
	long long	 env_id;
	long long	 done;
	long long	 total;
	struct task	*next;
};

/* What "archive_size" in a snapshot.json is the size of: 2, the
 * download of precompressed segments (docs/ARCHITECTURE.md, "Snapshot
 * store"); none, the level-6 stream assembled before, whose size is not
 * what is served now. */
#define ARCHIVE_FORMAT	2
/* How often a restore journal that could not be settled, or a refused
 * upload the portal was not told of, is tried again. */
#define SETTLE_RETRY_SECS	5
/* How long a refused upload is remembered when its URL names no expiry
 * (as long as the portal keeps an upload that never completed). */
#define REFUSED_KEEP_SECS	(24 * 3600)

static pthread_mutex_t backup_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t backup_cond = PTHREAD_COND_INITIALIZER;
static int backup_kicked;	/* the settling thread has work now */
static pthread_cond_t sweep_cond = PTHREAD_COND_INITIALIZER;
static int sweep_wanted;	/* a snapshot went: sweep the store */
static struct task *tasks;

static char *
snap_dir(const char *id)
{
	return xasprintf("%s/snapshots/%s", node->data_dir, id);
}

static char *
snap_file(const char *id, const char *name)
{
	return xasprintf("%s/snapshots/%s/%s", node->data_dir, id, name);
}

static char *
store_path(void)
{
	return xasprintf("%s/store", node->data_dir);
}

/* The manifest of snapshot id: its own, or this node's copy of another
 * node's snapshot (snapcopy.c) when it has no snapshot of its own. */
static char *
snap_manifest(const char *id)
{
	char *man = snap_file(id, "manifest.json"), *copy;

	if (access(man, F_OK) != 0 && (copy = snapcopy_manifest(id)) != NULL) {
		free(man);
		return copy;
	}
	return man;
}

/* Where snapshot id's record is: its snapshot.json, or the record of
 * this node's copy of it. */
static char *
snap_record(const char *id)
{
	char *state = snap_file(id, "snapshot.json"), *copy;

	if (access(state, F_OK) != 0 && (copy = snapcopy_manifest(id)) != NULL) {
		free(copy);
		free(state);
		return snapcopy_record_path(id);
	}
	return state;
}

/* 1 when snapshot id's contents are in the store (it has a manifest, or
 * this node a copy of it), 0 when it is a whole archive.tar.gz
 * (uploaded, or from before). */
static int
snap_in_store(const char *id)
{
	char *man = snap_manifest(id);
	int in = access(man, F_OK) == 0;

	free(man);
	return in;
}

/* 0 when every blob store snapshot id's download of kind needs is in
 * the store (a stat each), else -1 with *cause naming the files whose
 * blobs a check of the store quarantined or that are missing: a restore
 * or download is refused before anything is read or written. */
static int
store_whole(const char *id, enum snapstore_kind kind, char **cause)
{
	char *store = store_path(), *man = snap_manifest(id);
	int rc = snapstore_present(store, man, kind, cause);

	free(store);
	free(man);
	return rc;
}

/* 1 when snapshot id still has its whole archive.tar.gz: not converted
 * into the store yet, or converted by a process killed before it
 * removed it (snapshot-convert.c). */
static int
snap_has_archive(const char *id)
{
	char *arch = snap_file(id, "archive.tar.gz");
	int has = access(arch, F_OK) == 0;

	free(arch);
	return has;
}

/* Free the store's blobs that no snapshot's manifest names, on the
 * sweeper thread: the sweep waits for every snapshot being written
 * (they hold the store's lock shared), which a DELETE must not. */
static void
store_sweep_soon(void)
{
	pthread_mutex_lock(&backup_lock);
	sweep_wanted = 1;
	pthread_cond_signal(&sweep_cond);
	pthread_mutex_unlock(&backup_lock);
}

void
backup_store_sweep_soon(void)
{
	store_sweep_soon();
}

/* 1 when dir is a folder the sweep can list: glob(3) takes one that is
 * not for one without manifests, and every blob would go. */
static int
sweep_dir_ok(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode) ||
	    access(dir, R_OK | X_OK) == -1) {
		log_error("cannot sweep the snapshot store: '%s' is not a "
		    "readable folder", dir);
		return 0;
	}
	return 1;
}

static void *
sweep_thread(void *arg)
{
	char *store = store_path(), *cause;
	char *snaps = xasprintf("%s/snapshots", node->data_dir);
	char *copies = xasprintf("%s/copies", node->data_dir);
	/* the node's snapshots, its complete copies of other nodes'
	 * snapshots and what copies under way have received (snapcopy.c) */
	char *roots = xasprintf("%s/{snapshots/*/manifest,copies/*/manifest,"
	    "copies/*/partial}.json", node->data_dir);
	long long blobs, bytes;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&backup_lock);
		while (!sweep_wanted)
			pthread_cond_wait(&sweep_cond, &backup_lock);
		sweep_wanted = 0;
		pthread_mutex_unlock(&backup_lock);
		cause = NULL;
		if (!sweep_dir_ok(snaps) || !sweep_dir_ok(copies))
			;	/* said why */
		else if (snapstore_sweep(store, roots, &blobs, &bytes,
		    &cause) < 0) {
			/* the next delete or start sweeps again */
			log_error("cannot sweep the snapshot store: %s", cause);
			free(cause);
		} else if (blobs > 0)
			log_info("snapshot store: %lld blobs (%lld bytes) no "
			    "snapshot names freed", blobs, bytes);
		testhook_mark("store-sweep");
	}
	free(store);
	free(snaps);
	free(copies);
	free(roots);
	return NULL;
}

static char *
journal_path(long long env_id)
{
	return xasprintf("%s/envs/%lld/restore.json", node->data_dir, env_id);
}

static json_t *
load_json(const char *path)
{
	return json_load_file(path, 0, NULL);
}

static int
save_json(const char *path, json_t *j)
{
	return jsonx_save(path, j);
}

/* Register work in progress; 0, or -1 when that id is already running. */
static int
task_add(const char *id, long long env_id)
{
	struct task *t;

	pthread_mutex_lock(&backup_lock);
	for (t = tasks; t; t = t->next)
		if (strcmp(t->id, id) == 0 || (env_id && t->env_id == env_id)) {
			pthread_mutex_unlock(&backup_lock);
			return -1;
		}
	t = xcalloc(1, sizeof *t);
	snprintf(t->id, sizeof t->id, "%s", id);
	t->env_id = env_id;
	t->next = tasks;
	tasks = t;
	pthread_mutex_unlock(&backup_lock);
	return 0;
}

static void
task_remove(const char *id)
{
	struct task **tp, *t;

	pthread_mutex_lock(&backup_lock);
	for (tp = &tasks; (t = *tp) != NULL; tp = &t->next)
		if (strcmp(t->id, id) == 0) {
			*tp = t->next;
			free(t);
			break;
		}
	pthread_mutex_unlock(&backup_lock);
}

static void
task_progress(void *arg, long long done, long long total)
{
	const char *id = arg;
	struct task *t;

	pthread_mutex_lock(&backup_lock);
	for (t = tasks; t; t = t->next)
		if (strcmp(t->id, id) == 0) {
			t->done = done;
			t->total = total;
		}
	pthread_mutex_unlock(&backup_lock);
}

/* 1 while a snapshot or restore of this environment runs, or a restore
 * is not settled yet: its database and files must not change under it
 * (start refused). */
int
backup_env_busy(long long env_id)
{
	struct task *t;
	int busy = 0;
	char *jp;

	pthread_mutex_lock(&backup_lock);
	for (t = tasks; t; t = t->next)
		if (t->env_id == env_id)
			busy = 1;
	pthread_mutex_unlock(&backup_lock);
	if (!busy) {
		/* a restore not settled yet: its data may be half swapped */
		jp = journal_path(env_id);
		busy = access(jp, F_OK) == 0;
		free(jp);
	}
	return busy;
}

/* Work of snapcopy.c in the same list (a copy of another node's
 * snapshot, by its uuid: never one of this node's own). */
int
backup_task_add(const char *id)
{
	return task_add(id, 0);
}

void
backup_task_remove(const char *id)
{
	task_remove(id);
}

void
backup_task_progress(const char *id, long long done, long long total)
{
	task_progress((void *)id, done, total);
}

/* The state of a snapshot or restore as the agent API shows it: the
 * record, plus progress while running. */
static json_t *
with_progress(json_t *j, const char *id)
{
	struct task *t;

	pthread_mutex_lock(&backup_lock);
	for (t = tasks; t; t = t->next)
		if (strcmp(t->id, id) == 0)
			json_object_set_new(j, "progress", json_pack("{s:I,s:I}",
			    "done", (json_int_t)t->done, "total",
			    (json_int_t)t->total));
	pthread_mutex_unlock(&backup_lock);
	return j;
}

json_t *
backup_with_progress(json_t *j, const char *id)
{
	return with_progress(j, id);
}

static void
meta_into(json_t *j, const struct backup_meta *m)
{
	json_object_set_new(j, "dump_size", json_integer(m->dump_size));
	if (m->dump_ms > 0)
		json_object_set_new(j, "dump_ms", json_integer(m->dump_ms));
	json_object_set_new(j, "database_size", json_integer(m->database_size));
	json_object_set_new(j, "files_size", json_integer(m->files_size));
	json_object_set_new(j, "model_version", json_string(m->model_version));
	json_object_set_new(j, "duration", json_integer(m->duration));
}

/* ------------------------------------------------------------------ */
/* Create                                                              */

struct snap_job {
	char		 id[40];
	long long	 env_id;
	char		*dburl;
	char		*files;
	char		*model_version;
};

/* fn(arg, id, record) for each snapshot of environment env_id on the
 * node but except (NULL: none), its snapshot.json read. */
static void
env_snapshots_each(long long env_id, const char *except,
    void (*fn)(void *, const char *, json_t *), void *arg)
{
	char *dir = xasprintf("%s/snapshots", node->data_dir), *path;
	struct dirent *de;
	DIR *d = opendir(dir);
	json_t *j;

	while (d && (de = readdir(d)) != NULL) {
		if (!util_valid_uuid(de->d_name) || (except != NULL &&
		    strcmp(de->d_name, except) == 0))
			continue;
		path = snap_file(de->d_name, "snapshot.json");
		j = load_json(path);
		free(path);
		if (j != NULL && jsonx_int(j, "environment", 0) == env_id)
			fn(arg, de->d_name, j);
		json_decref(j);
	}
	if (d)
		closedir(d);
	free(dir);
}

struct latest {
	char		*manifest;
	long long	 created;
};

static void
latest_one(void *arg, const char *id, json_t *j)
{
	struct latest *l = arg;
	long long created = jsonx_int(j, "created", -1);

	if (jsonx_str(j, "state") != NULL && strcmp(jsonx_str(j, "state"),
	    "completed") == 0 && created > l->created && snap_in_store(id)) {
		free(l->manifest);
		l->manifest = snap_file(id, "manifest.json");
		l->created = created;
	}
}

/* The manifest of environment env_id's latest completed snapshot in the
 * store, other than except: the files it lists unchanged (size, times,
 * inode) are not read again. NULL when there is none. */
static char *
prev_manifest(long long env_id, const char *except)
{
	struct latest l = { NULL, -1 };

	env_snapshots_each(env_id, except, latest_one, &l);
	return l.manifest;
}

/* Take snapshot sj into the store (snapstore_take(): pg_dump into a
 * spool on a snapshot of the database taken first, the files into the
 * store while it runs — unchanged ones unread, after the environment's
 * last manifest —, then the dump, then the manifest); the full
 * download's size is found by a dry run of its writer (HEAD,
 * Content-Length, the portal's list). */
static int
snap_store(struct snap_job *sj, json_t *j, char **cause)
{
	struct snapstore_take_opts o;
	struct snapstore_taken t;
	char *dir = snap_dir(sj->id), *man = snap_file(sj->id, "manifest.json");
	char *store = store_path(), *prev = prev_manifest(sj->env_id, sj->id);
	int rc = -1;

	memset(&o, 0, sizeof o);
	o.dburl = sj->dburl;
	o.spool_dir = dir;
	o.files_dir = sj->files;
	o.store = store;
	o.prev = prev;
	o.manifest = man;
	o.model_version = sj->model_version;
	o.created = jsonx_int(j, "created", 0);
	o.tree_size = space_tree;
	o.progress = task_progress;
	o.progress_arg = sj->id;
	if (snapstore_take(&o, &t, cause) < 0)
		goto out;
	json_object_set_new(j, "dump_size", json_integer(t.dump_size));
	json_object_set_new(j, "dump_ms", json_integer(t.dump_ms));
	json_object_set_new(j, "database_size", json_integer(t.database_size
	    >= 0 ? t.database_size : t.dump_size));
	json_object_set_new(j, "files_size", json_integer(t.stats.files_bytes));
	json_object_set_new(j, "model_version", json_string(sj->model_version));
	json_object_set_new(j, "duration", json_integer(t.duration));
	json_object_set_new(j, "archive_size", json_integer(t.archive_size));
	json_object_set_new(j, "archive_format", json_integer(ARCHIVE_FORMAT));
	json_object_set_new(j, "store", json_pack("{s:I,s:I,s:I,s:I,s:I,s:b,"
	    "s:I,s:b,s:I}", "files", (json_int_t)t.stats.files, "hashed",
	    (json_int_t)t.stats.hashed, "reused", (json_int_t)t.stats.reused,
	    "blobs_added", (json_int_t)t.stats.blobs_added, "bytes_added",
	    (json_int_t)t.stats.bytes_added, "dump_delta",
	    t.stats.dump_delta, "dump_inserted",
	    (json_int_t)t.stats.dump_inserted, "dump_index_early",
	    t.stats.dump_index_early, "index_ms", (json_int_t)t.index_ms));
	log_info("snapshot %s of environment %lld: a %lld-byte archive, %lld "
	    "of %lld files read, %lld new blobs (%lld bytes) in the store, "
	    "the dump %s", sj->id, sj->env_id, t.archive_size, t.stats.hashed,
	    t.stats.files, t.stats.blobs_added, t.stats.bytes_added,
	    t.stats.dump_delta ? "as a delta" : "in chunks");
	rc = 0;
out:
	free(dir);
	free(man);
	free(store);
	free(prev);
	return rc;
}

/* A snapshot's own thread: take it, then record how it ended in its
 * snapshot.json, which the portal polls. */
static void *
snap_thread(void *arg)
{
	struct snap_job *sj = arg;
	json_t *j;
	char *state, *cause = NULL;

	testhook_pause("snapshot-write");
	state = snap_file(sj->id, "snapshot.json");
	if ((j = load_json(state)) == NULL)
		j = json_object();
	if (snap_store(sj, j, &cause) == 0) {
		json_object_set_new(j, "state", json_string("completed"));
	} else {
		json_object_set_new(j, "state", json_string("failed"));
		json_object_set_new(j, "error", json_string(cause ? cause :
		    "the backup failed"));
		log_warn("snapshot %s of environment %lld failed: %s", sj->id,
		    sj->env_id, cause ? cause : "?");
		store_sweep_soon();	/* the blobs it wrote */
	}
	/* a manifest whose snapshot.json does not say completed is removed
	 * at the next start (backup_recover) */
	save_json(state, j);
	task_remove(sj->id);
	json_decref(j);
	free(cause);
	free(state);
	free(sj->dburl);
	free(sj->files);
	free(sj->model_version);
	free(sj);
	return NULL;
}

static json_t *
snap_show_json(const char *id)
{
	char *state = snap_file(id, "snapshot.json");
	json_t *j = load_json(state);

	free(state);
	return j ? with_progress(j, id) : NULL;
}

/* POST /agent/v1/environments/{id}/snapshots {snapshot, type?,
 * model_version?}: start a snapshot (idempotent: an existing one is
 * answered as it is). 202 while it runs; poll GET /agent/v1/snapshots/{s}. */
void
agent_snapshot_create(struct areq *r)
{
	static const struct jfield fields[] = {
		{ "snapshot", JT_STRING, 1 }, { "type", JT_STRING, 0 },
		{ "model_version", JT_STRING, 0 }, { NULL } };
	const char *id, *type, *mv;
	struct snap_job *sj;
	char *dir = NULL, *state = NULL, *down;
	json_t *j;
	pthread_t th;

	if (abody_check(r, fields) == -1)
		return;
	id = jsonx_str(r->body, "snapshot");
	type = jsonx_str(r->body, "type") ? jsonx_str(r->body, "type") : "manual";
	mv = jsonx_str(r->body, "model_version");
	if (!util_valid_uuid(id)) {
		areply_error(r, 400, "BAD_REQUEST", "'snapshot' must be a "
		    "lowercase uuid");
		return;
	}
	if ((j = snap_show_json(id)) != NULL) {
		areply(r, strcmp(jsonx_str(j, "state"), "running") == 0 ? 202 :
		    200, j);
		return;
	}
	/* the node's PostgreSQL is down (it is restarting it): say so
	 * rather than what pg_dump would (the portal retries a nightly) */
	pthread_mutex_lock(&node->lock);
	down = node->pg_down ? xstrdup(node->pg_down) : NULL;
	pthread_mutex_unlock(&node->lock);
	if (down != NULL) {
		areply_error(r, 503, "DATABASE_DOWN", "no snapshot of "
		    "environment %lld can be taken now: %s", r->env->id, down);
		free(down);
		return;
	}
	if (space_refuse(r, space_snapshot_need(r->env), "a snapshot") == -1)
		return;
	sj = xcalloc(1, sizeof *sj);
	snprintf(sj->id, sizeof sj->id, "%s", id);
	sj->env_id = r->env->id;
	pthread_mutex_lock(&node->lock);
	sj->dburl = pg_env_dump_url(r->env);
	sj->files = xasprintf("%s/files", r->env->dir);
	sj->model_version = xstrdup(mv ? mv : r->env->package ?
	    r->env->package : "");
	pthread_mutex_unlock(&node->lock);
	if (sj->dburl == NULL) {
		areply_error(r, 409, "ENVIRONMENT_HAS_NO_DATABASE", "environment "
		    "%lld has no database yet", r->env->id);
		goto fail;
	}
	if (task_add(id, 0) == -1) {
		areply_error(r, 409, "SNAPSHOT_RUNNING", "snapshot %s is "
		    "already running", id);
		goto fail;
	}
	dir = snap_dir(id);
	state = snap_file(id, "snapshot.json");
	j = json_pack("{s:s,s:I,s:s,s:s,s:I}", "id", id, "environment",
	    (json_int_t)r->env->id, "type", type, "state", "running", "created",
	    (json_int_t)util_now());
	if (util_mkdir_p(dir, 0700) == -1 || save_json(state, j) == -1) {
		areply_error(r, 500, "NODE_IO_ERROR", "cannot create '%s': %s",
		    dir, strerror(errno));
		task_remove(id);
		json_decref(j);
		goto fail;
	}
	if (pthread_create(&th, NULL, snap_thread, sj) != 0)
		fatal("cannot start a backup thread");
	pthread_detach(th);
	areply(r, 202, with_progress(j, id));
	free(dir);
	free(state);
	return;
fail:
	free(dir);
	free(state);
	free(sj->dburl);
	free(sj->files);
	free(sj->model_version);
	free(sj);
}

/* GET /agent/v1/snapshots/{snapshot} */
void
agent_snapshot_show(struct areq *r)
{
	const char *id = http_param(r->http, "snapshot");
	json_t *j = util_valid_uuid(id) ? snap_show_json(id) : NULL;

	if (j == NULL) {
		areply_error(r, 404, "SNAPSHOT_NOT_FOUND", "no snapshot '%s' on "
		    "this node", id);
		return;
	}
	areply(r, 200, j);
}

/* Snapshot id gone for good: its manifest removed durably first (no
 * snapshot is left naming a blob the sweep then frees), then its folder.
 * 0; -1 with errno EBUSY while it runs or is converted, else the errno
 * of the manifest's removal. The caller asks for the sweep. */
static int
snap_delete(const char *id)
{
	char *dir, *man;
	int lock, rc = 0, e = 0;

	if (task_add(id, 0) == -1) {
		errno = EBUSY;
		return -1;
	}
	/* a conversion into the store holds the folder (snapshot-convert.c) */
	if ((lock = snapshot_lock(id, 0)) == -1 && errno == EWOULDBLOCK) {
		task_remove(id);
		errno = EBUSY;
		return -1;
	}
	dir = snap_dir(id);
	man = snap_file(id, "manifest.json");
	if (unlink(man) == 0 ? util_fsync_dir(man) == -1 : errno != ENOENT) {
		e = errno;
		rc = -1;
	} else
		util_rm_rf(dir);
	if (lock >= 0)
		close(lock);
	task_remove(id);
	free(man);
	free(dir);
	errno = e;
	return rc;
}

/* DELETE /agent/v1/snapshots/{snapshot}: gone for good (idempotent),
 * then the sweep that frees the blobs no other snapshot names. */
void
agent_snapshot_delete(struct areq *r)
{
	const char *id = http_param(r->http, "snapshot");

	if (!util_valid_uuid(id)) {
		areply_error(r, 404, "SNAPSHOT_NOT_FOUND", "no snapshot '%s' on "
		    "this node", id);
		return;
	}
	if (snap_delete(id) == -1) {
		if (errno == EBUSY)
			areply_error(r, 409, "SNAPSHOT_RUNNING", "snapshot %s is "
			    "still running or being converted into the "
			    "snapshot store; try again when it is done", id);
		else
			areply_error(r, 500, "NODE_IO_ERROR", "cannot delete "
			    "snapshot %s: %s", id, strerror(errno));
		return;
	}
	store_sweep_soon();
	http_reply_empty(r->http, 204);
}

struct deleted {
	long long	 env_id;
	int		 n;
};

static void
deleted_one(void *arg, const char *id, json_t *j)
{
	struct deleted *dl = arg;

	if (snap_delete(id) == 0)
		dl->n++;
	else
		log_error("environment %lld: its snapshot %s stays: %s",
		    dl->env_id, id, errno == EBUSY ? "it is running" :
		    strerror(errno));
}

int
backup_env_deleted(long long env_id)
{
	struct deleted dl = { env_id, 0 };

	env_snapshots_each(env_id, NULL, deleted_one, &dl);
	if (dl.n > 0)
		store_sweep_soon();
	return dl.n;
}

/* ------------------------------------------------------------------ */
/* Download                                                            */

/* Make DIR/snapshots/<id>/<name> from the archive once (database.backup
 * or files.tar.gz); an fd open on it, or -1 after replying. */
static int
derived_open(struct areq *r, const char *id, const char *name, int files)
{
	char *path = snap_file(id, name), *tmp = NULL, *arch = NULL;
	char *cause = NULL, *rand;
	struct backup_read_opts o;
	int fd, in = -1, out = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0)
		goto out;
	arch = snap_file(id, "archive.tar.gz");
	rand = util_random_hex(4);
	tmp = xasprintf("%s.%s.tmp", path, rand);
	free(rand);
	in = open(arch, O_RDONLY | O_CLOEXEC);
	out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (in < 0 || out < 0) {
		areply_error(r, 500, "NODE_IO_ERROR", "cannot read snapshot %s: "
		    "%s", id, strerror(errno));
		goto out;
	}
	backup_read_opts_init(&o);
	o.allow_files_only = 1;
	if (files)
		o.files_fd = out;
	else
		o.dump_fd = out;
	if (backup_archive_read_fd(in, &o, NULL, &cause) == -1 ||
	    fsync(out) == -1 || util_rename_sync(tmp, path) == -1) {
		areply_error(r, 500, "SNAPSHOT_CORRUPT", "snapshot %s cannot be "
		    "read: %s", id, cause ? cause : strerror(errno));
		unlink(tmp);
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	free(cause);
	free(arch);
	free(tmp);
	free(path);
	return fd;
}

/* A download assembled from the store (http_body_maker's arg): the same
 * bytes for the same manifest every time. */
struct store_out {
	char			 id[40];
	char			*store;
	char			*manifest;
	enum snapstore_kind	 kind;
	char			*cause;		/* why the writer failed */
};

static struct store_out *
store_out_new(const char *id, enum snapstore_kind kind)
{
	struct store_out *so = xcalloc(1, sizeof *so);

	snprintf(so->id, sizeof so->id, "%s", id);
	so->store = store_path();
	so->manifest = snap_manifest(id);
	so->kind = kind;
	return so;
}

static void
store_out_free(void *arg)
{
	struct store_out *so = arg;

	free(so->store);
	free(so->manifest);
	free(so->cause);
	free(so);
}

/* The download from byte from on (a Range): segments before it are not
 * made, a packed blob's not even read. */
static int
store_out_write_from(void *arg, int fd, uint64_t from)
{
	struct store_out *so = arg;

	if (snapstore_archive_write_from(so->store, so->manifest, so->kind,
	    (long long)from, fd, &so->cause) == 0)
		return 0;
	/* a client that went away is no fault of the snapshot */
	if (so->cause == NULL || strstr(so->cause, strerror(EPIPE)) == NULL)
		log_warn("snapshot %s cannot be assembled from the store: %s",
		    so->id, so->cause ? so->cause : "?");
	return -1;
}

static int
store_out_write(void *arg, int fd)
{
	return store_out_write_from(arg, fd, 0);
}

/* The size of store snapshot id's download of kind: kept in its
 * snapshot.json (j) — the full one since it was taken, the dump's size,
 * the files-only one counted on first request and kept. Sizes kept
 * without "archive_format" 2 are of the stream assembled before
 * precompressed blobs (zlib level 6 over it all), another size than
 * what is served now: counted again. -1 after replying. */
static long long
store_download_size(struct areq *r, const char *id, json_t *j,
    enum snapstore_kind kind)
{
	static const char *keys[] = { [SNAPSTORE_FULL] = "archive_size",
		[SNAPSTORE_FILES] = "files_archive_size",
		[SNAPSTORE_DATABASE] = "dump_size" };
	char *store, *man, *state, *cause = NULL;
	long long size;

	if (jsonx_int(j, "archive_format", 1) != ARCHIVE_FORMAT) {
		json_object_del(j, keys[SNAPSTORE_FULL]);
		json_object_del(j, keys[SNAPSTORE_FILES]);
		json_object_set_new(j, "archive_format",
		    json_integer(ARCHIVE_FORMAT));
	}
	size = jsonx_int(j, keys[kind], -1);

	if (size >= 0)
		return size;
	store = store_path();
	man = snap_manifest(id);
	if (snapstore_archive_size(store, man, kind, &size, &cause) < 0) {
		areply_error(r, 500, "SNAPSHOT_CORRUPT", "snapshot %s cannot be "
		    "read: %s", id, cause);
		size = -1;
	} else {
		/* two first requests at once write the same number */
		state = snap_record(id);
		json_object_set_new(j, keys[kind], json_integer(size));
		if (save_json(state, j) == -1)
			log_warn("cannot write %s: %s", state, strerror(errno));
		free(state);
	}
	free(cause);
	free(store);
	free(man);
	return size;
}

/* GET /agent/v1/snapshots/{snapshot}/{kind} (kind: full, database,
 * files), signed URL; Range supported so a download can continue. A
 * snapshot in the store streams as it is assembled; the same bytes on
 * every request, so a Range continues it. */
void
agent_snapshot_download(struct areq *r)
{
	static const struct {
		const char		*kind;
		enum snapstore_kind	 sk;
		const char		*derived;	/* archive.tar.gz's */
		const char		*ctype;
		char			*(*name)(const char *, long long);
	} kinds[] = {
		{ "full", SNAPSTORE_FULL, NULL, "application/gzip",
		    backup_archive_name_full },
		{ "database", SNAPSTORE_DATABASE, "database.backup",
		    "application/octet-stream", backup_archive_name_db },
		{ "files", SNAPSTORE_FILES, "files.tar.gz", "application/gzip",
		    backup_archive_name_files },
	};
	const char *id = http_param(r->http, "snapshot");
	const char *kind = http_param(r->http, "kind");
	struct http_body_maker mk;
	json_t *j;
	char *name = NULL, *path = NULL, *cause = NULL;
	struct stat st;
	long long size;
	size_t k;
	int fd = -1, full;

	if (id == NULL || kind == NULL)
		return;
	j = util_valid_uuid(id) ? snap_show_json(id) : NULL;
	if (j == NULL && util_valid_uuid(id) && snap_in_store(id)) {
		/* a copy of another node's snapshot kept here */
		char *rec = snap_record(id);

		j = load_json(rec);
		free(rec);
	}
	if (j == NULL || jsonx_str(j, "state") == NULL ||
	    strcmp(jsonx_str(j, "state"), "completed") != 0) {
		areply_error(r, 404, "SNAPSHOT_NOT_FOUND", "no completed "
		    "snapshot '%s' on this node", id);
		goto out;
	}
	for (k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
		if (strcmp(kind, kinds[k].kind) == 0)
			break;
	if (k == sizeof kinds / sizeof kinds[0]) {
		areply_error(r, 404, "NOT_FOUND", "no download '%s' (full, "
		    "database, files)", kind);
		goto out;
	}
	/* first touch: a download from its start converts a whole-archive
	 * snapshot (a Range continues the archive's own bytes) */
	if (!snap_in_store(id) || snap_has_archive(id)) {
		snapshot_convert_touch(id, http_header(r->http, "Range") == NULL);
		if (snap_in_store(id)) {
			/* as the conversion left it (no archive sizes) */
			json_decref(j);
			if ((j = snap_show_json(id)) == NULL) {
				areply_error(r, 404, "SNAPSHOT_NOT_FOUND", "no "
				    "completed snapshot '%s' on this node", id);
				goto out;
			}
		}
	}
	json_object_del(j, "progress");
	name = kinds[k].name(id, jsonx_int(j, "created", 0));
	/* only the full archive counts as the backup downloaded (seed §3.3) */
	full = kinds[k].sk == SNAPSTORE_FULL;
	if (snap_in_store(id)) {
		if (store_whole(id, kinds[k].sk, &cause) < 0) {
			areply_error(r, 409, "SNAPSHOT_DAMAGED", "cannot "
			    "download snapshot %s: %s", id, cause);
			goto out;
		}
		if ((size = store_download_size(r, id, j, kinds[k].sk)) < 0)
			goto out;
		memset(&mk, 0, sizeof mk);
		mk.write = store_out_write;
		mk.write_from = store_out_write_from;
		mk.arg = store_out_new(id, kinds[k].sk);
		mk.free = store_out_free;
		if (full)
			downloads_serve_made(r, &mk, (uint64_t)size,
			    kinds[k].ctype, name, "snapshot", id);
		else
			http_reply_made(r->http, &mk, (uint64_t)size,
			    kinds[k].ctype, name, 0);
		goto out;
	}
	if (full) {
		path = snap_file(id, "archive.tar.gz");
		fd = open(path, O_RDONLY | O_CLOEXEC);
	} else
		fd = derived_open(r, id, kinds[k].derived, kinds[k].sk ==
		    SNAPSTORE_FILES);
	if (fd < 0 || fstat(fd, &st) < 0) {
		areply_error(r, 500, "NODE_IO_ERROR", "cannot open snapshot %s",
		    id);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (full)
		downloads_serve(r, fd, (uint64_t)st.st_size, kinds[k].ctype,
		    name, "snapshot", id);
	else
		http_reply_file(r->http, fd, (uint64_t)st.st_size,
		    kinds[k].ctype, name);
out:
	json_decref(j);
	free(name);
	free(path);
	free(cause);
}

/* ------------------------------------------------------------------ */
/* Upload                                                              */

struct upload {
	char	*tmp;
	int	 fd;
	int	 failed;
};

static void
upload_free(void *p)
{
	struct upload *u = p;

	if (u->fd >= 0)
		close(u->fd);
	if (u->tmp) {
		unlink(u->tmp);
		free(u->tmp);
	}
	free(u);
}

/* A refused upload leaves snapshots/.refused-<id> ({expires, error,
 * reported}): the settling thread tells the portal, which deletes its
 * record of the upload at once (none stays half-done, "uploading", for a
 * day), and until the upload's URL expires another PUT to it is refused
 * too, so no snapshot arrives that the portal has forgotten. */
static char *
refused_path(const char *id)
{
	return xasprintf("%s/snapshots/.refused-%s", node->data_dir, id);
}

static void
backup_kick(void)
{
	pthread_mutex_lock(&backup_lock);
	backup_kicked = 1;
	pthread_cond_signal(&backup_cond);
	pthread_mutex_unlock(&backup_lock);
}

/* Refuse upload id (a uuid): reply with status and code, and remember
 * the refusal. */
static void
upload_refuse(struct areq *r, const char *id, unsigned status,
    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
upload_refuse(struct areq *r, const char *id, unsigned status,
    const char *code, const char *fmt, ...)
{
	long long now = (long long)util_now(), expires;
	char *msg, *path = refused_path(id);
	va_list ap;
	json_t *j;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	areply_error(r, status, code, "%s", msg);
	/* the URL's own expiry (signed), within a day */
	if (http_query(r->http, "expires") == NULL ||
	    util_parse_int(http_query(r->http, "expires"), 1, 1LL << 53,
	    &expires) == -1 || expires > now + REFUSED_KEEP_SECS)
		expires = now + REFUSED_KEEP_SECS;
	j = json_pack("{s:I,s:s,s:b}", "expires", (json_int_t)expires,
	    "error", msg, "reported", 0);
	if (save_json(path, j) == -1)
		log_error("cannot remember the refused upload %s: %s", id,
		    strerror(errno));
	else
		backup_kick();
	json_decref(j);
	free(path);
	free(msg);
}

/* -1 (replied 409 UPLOAD_REFUSED) when upload id was refused before. */
static int
upload_refused_before(struct areq *r, const char *id)
{
	char *path = refused_path(id);
	json_t *j = load_json(path);

	free(path);
	if (j == NULL)
		return 0;
	areply_error(r, 409, "UPLOAD_REFUSED", "upload %s was refused (%s); "
	    "begin a new upload", id, jsonx_str(j, "error") ?
	    jsonx_str(j, "error") : "no reason kept");
	json_decref(j);
	return -1;
}

/* Tell the portal of the refused uploads it has not heard of; forget
 * those whose URL expired. */
static void
refused_pass(void)
{
	char *dir = xasprintf("%s/snapshots", node->data_dir), *path, *route;
	long long now = (long long)util_now();
	struct dirent *de;
	json_t *j, *body, *resp;
	DIR *d = opendir(dir);
	int st;

	while (d && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, ".refused-", 9) != 0 ||
		    !util_valid_uuid(de->d_name + 9))
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		j = load_json(path);
		if (j != NULL && !jsonx_bool(j, "reported", 0) &&
		    node->registered) {
			route = xasprintf("/agent/snapshot-uploads/%s/refused",
			    de->d_name + 9);
			body = json_pack("{s:s?}", "error", jsonx_str(j,
			    "error"));
			resp = NULL;
			st = portal_post(route, body, &resp);
			/* done unless the portal may take it later */
			if (st == 200 || (st >= 400 && st < 500 && st != 401 &&
			    st != 408 && st != 429)) {
				if (st != 200)
					log_warn("the portal refused the report "
					    "of refused upload %s (%d)",
					    de->d_name + 9, st);
				json_object_set_new(j, "reported", json_true());
				if (save_json(path, j) == -1)
					log_error("cannot write %s: %s", path,
					    strerror(errno));
			}
			json_decref(resp);
			json_decref(body);
			free(route);
		}
		if (j == NULL || (jsonx_bool(j, "reported", 0) &&
		    jsonx_int(j, "expires", 0) <= now))
			unlink(path);
		json_decref(j);
		free(path);
	}
	if (d)
		closedir(d);
	free(dir);
}

/* -1 (replied 404) when the upload's environment is not on this node:
 * the route is a PUT, which the agent lets through without one. */
static int
upload_env_missing(struct areq *r)
{
	if (r->env != NULL)
		return 0;
	areply_error(r, 404, "ENVIRONMENT_NOT_FOUND", "no environment %s on "
	    "this node", http_param(r->http, "id"));
	return -1;
}

/* The streamed body of an upload, straight to a spool file. */
int
agent_snapshot_upload_sink(struct http_req *h, const char *data, size_t len)
{
	struct areq *r = h->ctx;
	struct upload *u = r->ctx;
	const char *id = http_param(h, "snapshot");

	if (u == NULL) {
		char *dir, *rand;

		if (upload_env_missing(r) == -1)
			return -1;
		dir = xasprintf("%s/snapshots", node->data_dir);
		if (!util_valid_uuid(id)) {
			free(dir);
			areply_error(r, 400, "BAD_REQUEST", "'%s' is not a "
			    "snapshot uuid", id);
			return -1;
		}
		if (upload_refused_before(r, id) == -1) {
			free(dir);
			return -1;
		}
		u = xcalloc(1, sizeof *u);
		r->ctx = u;
		r->ctx_free = upload_free;
		util_mkdir_p(dir, 0700);
		rand = util_random_hex(4);
		u->tmp = xasprintf("%s/.upload-%s-%s", dir, id, rand);
		free(rand);
		free(dir);
		u->fd = open(u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
		if (u->fd < 0) {
			upload_refuse(r, id, 500, "NODE_IO_ERROR", "cannot spool "
			    "the upload: %s", strerror(errno));
			return -1;
		}
	}
	if (h->body_total > NUBO_BACKUP_UPLOAD_MAX) {
		upload_refuse(r, id, 413, "ARCHIVE_TOO_LARGE", "backup archives "
		    "are limited to %lld bytes",
		    (long long)NUBO_BACKUP_UPLOAD_MAX);
		return -1;
	}
	while (len > 0) {
		ssize_t n = write(u->fd, data, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			upload_refuse(r, id, 500, "NODE_IO_ERROR", "cannot spool "
			    "the upload: %s", strerror(errno));
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* PUT /agent/v1/environments/{id}/snapshots/{snapshot}/archive (signed):
 * the archive is validated completely (structure, .metadata, the dump
 * through pg_restore --list, every path, checksums) before the snapshot
 * exists; a bad one leaves nothing behind. It is read once, into the
 * snapshot store as it streams (snapstore_import()): a valid one becomes
 * a manifest, and the spool goes. */
void
agent_snapshot_upload(struct areq *r)
{
	struct upload *u = r->ctx;
	const char *id = http_param(r->http, "snapshot");
	struct snapstore_import_opts o;
	struct snapstore_stats st;
	struct backup_info info;
	char *cause = NULL, *dir = NULL, *man = NULL, *state = NULL;
	char *store = NULL;
	json_t *j = NULL;
	long long size;
	int fd = -1, n, claimed = 0;

	if (upload_env_missing(r) == -1)
		return;
	if (!util_valid_uuid(id)) {
		areply_error(r, 400, "BAD_REQUEST", "'%s' is not a snapshot "
		    "uuid", id);
		return;
	}
	if (u == NULL) {
		if (upload_refused_before(r, id) == 0)
			upload_refuse(r, id, 400, "ARCHIVE_INVALID", "the upload "
			    "is empty");
		return;
	}
	/* claimed: no delete, and no second upload of it, meanwhile */
	if ((j = snap_show_json(id)) != NULL || task_add(id, 0) == -1) {
		json_decref(j);
		areply_error(r, 409, "SNAPSHOT_EXISTS", "snapshot %s exists "
		    "already", id);
		return;
	}
	claimed = 1;
	j = NULL;
	dir = snap_dir(id);
	man = snap_file(id, "manifest.json");
	state = snap_file(id, "snapshot.json");
	store = store_path();
	fd = open(u->tmp, O_RDONLY | O_CLOEXEC);
	memset(&o, 0, sizeof o);
	o.store = store;
	o.archive_fd = fd;
	o.manifest = man;
	o.pg_restore = "pg_restore";
	if (fd < 0 || fsync(u->fd) < 0) {
		upload_refuse(r, id, 400, "ARCHIVE_INVALID", "cannot read the "
		    "upload");
		goto out;
	}
	if (util_mkdir_p(dir, 0700) == -1) {
		upload_refuse(r, id, 500, "NODE_IO_ERROR", "cannot store "
		    "snapshot %s: %s", id, strerror(errno));
		goto out;
	}
	if ((n = snapstore_import(&o, &info, &st, &cause)) < 0) {
		if (n == -1)
			upload_refuse(r, id, 400, "ARCHIVE_INVALID", "%s", cause);
		else
			upload_refuse(r, id, 500, "NODE_IO_ERROR", "cannot store "
			    "snapshot %s: %s", id, cause);
		goto out_rm;
	}
	/* what a HEAD and the portal's list say: the store's download */
	if (snapstore_archive_size(store, man, SNAPSTORE_FULL, &size,
	    &cause) < 0) {
		upload_refuse(r, id, 500, "NODE_IO_ERROR", "cannot store "
		    "snapshot %s: %s", id, cause);
		goto out_rm;
	}
	j = json_pack("{s:s,s:I,s:s,s:s,s:I,s:I,s:i}", "id", id, "environment",
	    (json_int_t)r->env->id, "type", "uploaded", "state", "completed",
	    "created", (json_int_t)util_now(), "archive_size",
	    (json_int_t)size, "archive_format", ARCHIVE_FORMAT);
	meta_into(j, &info.meta);
	/* what the archive holds (.metadata's filesSize is informational) */
	json_object_set_new(j, "files_size", json_integer(info.files_bytes));
	json_object_set_new(j, "expanded_size",
	    json_integer(info.declared_bytes));
	if (info.warning[0] != '\0')
		json_object_set_new(j, "warning", json_string(info.warning));
	json_object_set_new(j, "files", json_integer(info.files));
	json_object_set_new(j, "checksums", json_boolean(info.has_checksums));
	json_object_set_new(j, "store", json_pack("{s:I,s:I,s:I,s:I,s:I}",
	    "files", (json_int_t)st.files, "hashed", (json_int_t)st.hashed,
	    "reused", (json_int_t)0, "blobs_added", (json_int_t)st.blobs_added,
	    "bytes_added", (json_int_t)st.bytes_added));
	/* the manifest first, then the record that makes it a snapshot (a
	 * manifest without one goes at the next start) */
	if (save_json(state, j) == -1) {
		upload_refuse(r, id, 500, "NODE_IO_ERROR", "cannot store "
		    "snapshot %s: %s", id, strerror(errno));
		goto out_rm;
	}
	log_info("uploaded snapshot %s of environment %lld: %lld files, %lld "
	    "new blobs (%lld bytes) in the store", id, r->env->id, st.files,
	    st.blobs_added, st.bytes_added);
	areply(r, 201, json_incref(j));
	goto out;
out_rm:
	if (unlink(man) == 0)
		util_fsync_dir(man);
	util_rm_rf(dir);
	store_sweep_soon();	/* the blobs it wrote */
out:
	if (fd >= 0)
		close(fd);
	if (claimed)
		task_remove(id);
	json_decref(j);
	free(cause);
	free(dir);
	free(man);
	free(state);
	free(store);
}

/* ------------------------------------------------------------------ */
/* Restore                                                             */

static int
drop_db(PGconn *c, const char *name, char **cause)
{
	char *sql = xasprintf("DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)",
	    name);
	int rc = pg_admin_exec(c, sql, cause);

	free(sql);
	return rc;
}

static ino_t
inode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* Finish or roll back the restore a journal describes (at start, after a
 * failure, before the next restore, and every SETTLE_RETRY_SECS while one
 * is left): the swap of the databases is one transaction and the swap of
 * the folders one renameat2(RENAME_EXCHANGE), so the journal and what
 * exists tell exactly how far it went. The journal goes only once every
 * step is done: 0 when settled; -1 with *cause, the journal kept, when a
 * step failed (it is tried again). */
static int
journal_settle(long long env_id, json_t *jn, char **cause)
{
	const char *phase = jsonx_str(jn, "phase");
	const char *newdb = jsonx_str(jn, "newdb"), *olddb = jsonx_str(jn, "olddb");
	const char *newdir = jsonx_str(jn, "newdir");
	char *files = xasprintf("%s/envs/%lld/files", node->data_dir, env_id);
	char *jp = journal_path(env_id);
	PGconn *c = pg_admin_connect(cause);
	int rc = -1, swapped;

	if (c == NULL)
		goto out;
	swapped = phase && strcmp(phase, "swapping") == 0 ?
	    pg_db_exists(c, newdb) : 1;
	if (swapped < 0) {
		*cause = xstrdup("cannot tell how far the restore went");
		goto out;
	}
	swapped = !swapped;
	if (!swapped) {
		/* the old data was never touched: drop the new */
		if (drop_db(c, newdb, cause) == -1 ||
		    restore_role_drop_stale(c, "restore", env_id, cause) == -1)
			goto out;
		if (newdir && util_rm_rf(newdir) == -1 && errno != ENOENT) {
			*cause = xasprintf("cannot remove '%s': %s", newdir,
			    strerror(errno));
			goto out;
		}
	} else {
		/* the database is the new one: the folder must follow */
		if (newdir && (long long)inode_of(files) !=
		    jsonx_int(jn, "newdir_ino", -1) && access(newdir, F_OK) == 0 &&
		    renameat2(AT_FDCWD, newdir, AT_FDCWD, files,
		    access(files, F_OK) == 0 ? RENAME_EXCHANGE : 0) == -1) {
			*cause = xasprintf("cannot swap '%s' in: %s", newdir,
			    strerror(errno));
			goto out;
		}
		/* the swap is on disk before the journal goes */
		util_fsync_dir(files);
		if (drop_db(c, olddb, cause) == -1)
			goto out;
		/* the old files now */
		if (newdir && util_rm_rf(newdir) == -1 && errno != ENOENT) {
			*cause = xasprintf("cannot remove '%s': %s", newdir,
			    strerror(errno));
			goto out;
		}
	}
	if (unlink(jp) == -1 && errno != ENOENT) {
		*cause = xasprintf("cannot remove '%s': %s", jp, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (c)
		PQfinish(c);
	free(files);
	free(jp);
	return rc;
}

/* Settle the journal env_id's last restore left, if any: 0 when there is
 * none (any more), -1 with *cause when it stays. The caller has claimed
 * the environment (task_add). */
static int
journal_settle_left(long long env_id, char **cause)
{
	char *jp = journal_path(env_id);
	json_t *jn = load_json(jp);
	int rc = 0;

	if (jn == NULL && access(jp, F_OK) == 0) {
		*cause = xasprintf("cannot read '%s'", jp);
		rc = -1;
	} else if (jn != NULL) {
		log_warn("settling the restore left in environment %lld (%s)",
		    env_id, jsonx_str(jn, "phase"));
		rc = journal_settle(env_id, jn, cause);
		if (rc == 0)
			log_info("environment %lld: the restore left behind is "
			    "settled", env_id);
	}
	json_decref(jn);
	free(jp);
	return rc;
}

struct restore_job {
	char		 id[40];
	char		 snapshot[40];
	long long	 env_id;
	int		 database_only;
	char		*source_url;	/* snapshot on another node */
	char		*env_url;	/* the environment's own database URL */
	char		*envdir;
	long long	 size;		/* bytes the archive's members declare
					 * (a snapshot on another node), 0:
					 * from snapshot.json */
};

/* How many bytes a restore may write: the environment's budget
 * (--env-disk-max) and the node's free space less its reserve
 * (space.c), whichever is less; -1 when neither is known. */
static long long
restore_room(void)
{
	long long room = -1, free_bytes, total, reserve;

	if (space_of(&free_bytes, &total, &reserve) == 0)
		room = free_bytes > reserve ? free_bytes - reserve : 0;
	if (node->env_disk_max > 0 && (room < 0 || node->env_disk_max < room))
		room = node->env_disk_max;
	return room;
}

/* What restoring snapshot sid writes: the sizes its members declare
 * (the database alone when database_only). */
static long long
restore_need(const struct restore_job *rj)
{
	char *path;
	json_t *j;
	long long need;

	if (rj->source_url != NULL)
		return rj->size;
	path = snap_record(rj->snapshot);
	j = load_json(path);
	free(path);
	if (rj->database_only)
		need = jsonx_int(j, "dump_size", 0);
	else if (jsonx_int(j, "expanded_size", 0) > 0)
		need = jsonx_int(j, "expanded_size", 0);
	else
		need = jsonx_int(j, "dump_size", 0) + jsonx_int(j, "files_size", 0);
	json_decref(j);
	return need;
}

static int
fetch_url(const char *url, int fd, char **cause)
{
	CURL *c = curl_easy_init();
	FILE *f = fdopen(dup(fd), "w");
	long status = 0;
	CURLcode rc;

	/* another node: its key as the portal pinned it */
	tls_curl_url(c, url, node->portal_ca);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	if (fclose(f) != 0 && rc == CURLE_OK)
		rc = CURLE_WRITE_ERROR;
	if (rc == CURLE_OK && status >= 400) {
		/* the source node's words (a snapshot whose blob a check
		 * quarantined names its files), spooled instead */
		char text[4096];
		ssize_t n = pread(fd, text, sizeof text - 1, 0);
		json_t *j;

		text[n > 0 ? n : 0] = '\0';
		j = json_loads(text, 0, NULL);
		*cause = xasprintf("cannot fetch the snapshot from its node: "
		    "it answered %ld%s%s", status, jsonx_str(json_object_get(j,
		    "error"), "message") ? ": " : "", jsonx_str(
		    json_object_get(j, "error"), "message") ? jsonx_str(
		    json_object_get(j, "error"), "message") : "");
		json_decref(j);
		return -1;
	}
	if (rc != CURLE_OK) {
		*cause = xasprintf("cannot fetch the snapshot from its node: %s "
		    "(HTTP %ld)", curl_easy_strerror(rc), status);
		return -1;
	}
	return 0;
}

static void
restore_record(const char *id, long long env_id, const char *state,
    const char *error, json_t *extra)
{
	char *dir = xasprintf("%s/restores", node->data_dir);
	char *path = xasprintf("%s/%s.json", dir, id);
	json_t *j = json_pack("{s:s,s:I,s:s,s:s?}", "id", id, "environment",
	    (json_int_t)env_id, "state", state, "error", error);

	if (extra)
		json_object_update(j, extra);
	util_mkdir_p(dir, 0700);
	save_json(path, j);
	json_decref(j);
	free(path);
	free(dir);
}

/* Is the environment stopped (no instance may use the data)? */
static int
env_is_stopped(struct env *e)
{
	return e->state == ENV_STOPPED || e->state == ENV_NOTDEPLOYED;
}

/* Start assembling snapshot id for a restore: the pipe's read end, or
 * -1 with *cause. */
static int
store_stream_start(struct snapstore_pipe **sp, const char *id, char **cause)
{
	char *store = store_path(), *man = snap_manifest(id);
	int fd = snapstore_pipe_start(store, man, sp, cause);

	free(store);
	free(man);
	return fd;
}

static void *
restore_thread(void *arg)
{
	struct restore_job *rj = arg;
	struct backup_restore_opts o;
	struct backup_info info;
	char *cause = NULL, *jp = journal_path(rj->env_id);
	char *rand = util_random_hex(4);
	char *newdb = xasprintf("env_%lld_new_%s", rj->env_id, rand);
	char *olddb = xasprintf("env_%lld_old_%s", rj->env_id, rand);
	char *curdb = xasprintf("env_%lld", rj->env_id);
	char *newdir = xasprintf("%s/files.restore-%s", rj->envdir, rand);
	char *spool = NULL, *arch = NULL, *sql = NULL;
	struct restore_role role;
	struct snapstore_pipe *sp = NULL;
	long long room, need;
	json_t *jn = NULL;
	PGconn *c = NULL;
	struct env *e;
	int fd = -1, rc = -1, n;

	memset(&role, 0, sizeof role);
	/* 1. journal first: whatever happens next can be undone */
	jn = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:b}", "restore", rj->id, "phase",
	    "preparing", "newdb", newdb, "olddb", olddb, "newdir",
	    rj->database_only ? NULL : newdir, "database_only",
	    rj->database_only);
	if (save_json(jp, jn) == -1) {
		cause = xasprintf("cannot write '%s': %s", jp, strerror(errno));
		goto out;
	}
	/* 2. the archive: here, or fetched from the snapshot's node; a
	 * whole-archive snapshot here is converted on this first touch (it
	 * is read as it was when that fails) */
	if (rj->source_url == NULL)
		snapshot_convert_touch(rj->snapshot, 1);
	if (rj->source_url) {
		spool = xasprintf("%s/snapshots/.fetch-%s", node->data_dir,
		    rj->id);
		fd = open(spool, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || fetch_url(rj->source_url, fd, &cause) == -1) {
			if (cause == NULL)
				cause = xasprintf("cannot spool the snapshot: %s",
				    strerror(errno));
			goto out;
		}
		lseek(fd, 0, SEEK_SET);
	} else if (snap_in_store(rj->snapshot)) {
		/* a check of the store may have quarantined a blob since
		 * the restore was asked for */
		if (store_whole(rj->snapshot, SNAPSTORE_FULL, &cause) < 0) {
			char *why = cause;

			cause = xasprintf("cannot restore snapshot %s: %s",
			    rj->snapshot, why);
			free(why);
			goto out;
		}
		if ((fd = store_stream_start(&sp, rj->snapshot, &cause)) < 0)
			goto out;
	} else {
		arch = snap_file(rj->snapshot, "archive.tar.gz");
		if ((fd = open(arch, O_RDONLY | O_CLOEXEC)) < 0) {
			cause = xasprintf("snapshot %s has no archive on this "
			    "node", rj->snapshot);
			goto out;
		}
	}
	/* the archive's declared sizes must fit before anything is written;
	 * the reader holds every member to the same room as it streams */
	room = restore_room();
	need = restore_need(rj);
	if (room >= 0 && need > room) {
		cause = xasprintf("not enough space on node '%s': the restore "
		    "needs %lld bytes, there is room for %lld (%s)",
		    node->name ? node->name : "?", need, room,
		    node->env_disk_max > 0 && room == node->env_disk_max ?
		    "the environment's budget, --env-disk-max" :
		    "free space less the node's reserve");
		goto out;
	}
	/* 3. a new database, owned by a throwaway role that owns nothing
	 * else: the dump runs as that role (restore-role.c) */
	if ((c = pg_admin_connect(&cause)) == NULL ||
	    restore_role_drop_stale(c, "restore", rj->env_id, &cause) == -1 ||
	    restore_role_begin(c, "restore", rj->env_id, rj->env_url, newdb,
	    &role, &cause) == -1)
		goto out;
	/* 4. unpack and load, validating as it streams */
	memset(&o, 0, sizeof o);
	o.dburl = role.url;
	o.tree_dir = rj->database_only ? NULL : newdir;
	o.tmp_dir = rj->envdir;
	o.jobs = 0;	/* by the dump's size: backup_restore() */
	pthread_mutex_lock(&node->lock);
	e = env_find(rj->env_id);
	o.uid = e ? e->uid : (uid_t)-1;
	o.gid = e ? (gid_t)e->uid : (gid_t)-1;
	pthread_mutex_unlock(&node->lock);
	o.progress = task_progress;
	o.progress_arg = rj->id;
	o.max_bytes = rj->database_only || room < 0 ? 0 : room > 0 ? room : 1;
	n = backup_restore(fd, &o, &info, &cause);
	if (sp != NULL) {
		/* what broke the archive it assembled, rather than how the
		 * reader saw it end */
		char *why = snapstore_pipe_end(sp, fd, n == -1);

		sp = NULL;
		fd = -1;
		if (n == -1 && why != NULL) {
			free(cause);
			cause = why;
		} else
			free(why);
	}
	if (n == -1)
		goto out;
	if (!rj->database_only && access(newdir, F_OK) != 0 &&
	    util_mkdir_p(newdir, 0750) == 0 && o.uid != (uid_t)-1 &&
	    chown(newdir, o.uid, o.gid) == -1)	/* an archive without tree/ */
		log_warn("cannot chown %s: %s", newdir, strerror(errno));
	/* the environment's role gets the database; settings reset */
	if (restore_role_finish(c, rj->env_id, newdb, &role, &cause) == -1)
		goto out;
	/* 5. swap, with the environment still stopped */
	pthread_mutex_lock(&node->lock);
	e = env_find(rj->env_id);
	if (e == NULL || !env_is_stopped(e)) {
		pthread_mutex_unlock(&node->lock);
		cause = xstrdup("the environment was started during the restore");
		goto out;
	}
	json_object_set_new(jn, "phase", json_string("swapping"));
	json_object_set_new(jn, "newdir_ino", json_integer(rj->database_only ?
	    -1 : (json_int_t)inode_of(newdir)));
	if (save_json(jp, jn) == -1) {
		pthread_mutex_unlock(&node->lock);
		cause = xasprintf("cannot write '%s': %s", jp, strerror(errno));
		goto out;
	}
	free(sql);
	sql = xasprintf("BEGIN; SELECT pg_terminate_backend(pid) FROM "
	    "pg_stat_activity WHERE datname = '%s'; ALTER DATABASE \"%s\" RENAME "
	    "TO \"%s\"; ALTER DATABASE \"%s\" RENAME TO \"%s\"; COMMIT",
	    curdb, curdb, olddb, newdb, curdb);
	if (pg_admin_exec(c, sql, &cause) == -1) {
		pg_admin_exec(c, "ROLLBACK", NULL);
		pthread_mutex_unlock(&node->lock);
		goto out;
	}
	pthread_mutex_unlock(&node->lock);
	/* the database is swapped: from here on the journal finishes it */
	if (journal_settle(rj->env_id, jn, &cause) == -1)
		goto out_done;
	rc = 0;
	goto out_done;
out:
	if (access(jp, F_OK) == 0) {
		char *why = NULL;

		if (journal_settle(rj->env_id, jn, &why) == -1)
			log_warn("environment %lld: the failed restore is not "
			    "cleaned up yet (%s); trying again", rj->env_id, why);
		free(why);
	}
	if (c != NULL && role.name[0] != '\0') {
		char *ignored = NULL;

		if (restore_role_drop(c, role.name, &ignored) == -1)
			log_warn("environment %lld: %s", rj->env_id, ignored);
		free(ignored);
	}
out_done:
	if (rc == 0) {
		json_t *x = json_object();

		meta_into(x, &info.meta);
		restore_record(rj->id, rj->env_id, "completed", NULL, x);
		json_decref(x);
		log_info("restore %s of snapshot %s into environment %lld done",
		    rj->id, rj->snapshot, rj->env_id);
	} else {
		restore_record(rj->id, rj->env_id, "failed", cause ? cause :
		    "the restore failed", NULL);
		log_warn("restore %s into environment %lld failed: %s", rj->id,
		    rj->env_id, cause ? cause : "?");
	}
	if (c)
		PQfinish(c);
	if (sp != NULL) {
		free(snapstore_pipe_end(sp, fd, 0));
		fd = -1;
	}
	if (fd >= 0)
		close(fd);
	if (spool)
		unlink(spool);
	task_remove(rj->id);
	json_decref(jn);
	free(cause);
	free(jp);
	free(rand);
	free(newdb);
	free(olddb);
	free(curdb);
	free(newdir);
	free(spool);
	free(arch);
	free(sql);
	restore_role_release(&role);
	free(rj->source_url);
	free(rj->env_url);
	free(rj->envdir);
	free(rj);
	return NULL;
}

static json_t *
restore_show_json(const char *id)
{
	char *path = xasprintf("%s/restores/%s.json", node->data_dir, id);
	json_t *j = load_json(path);

	free(path);
	return j ? with_progress(j, id) : NULL;
}

/* POST /agent/v1/environments/{id}/restores {restore, snapshot,
 * database_only?, source_url?}: restore into this (stopped) environment;
 * 202 while it runs, poll GET /agent/v1/restores/{restore}. Idempotent. */
void
agent_restore_create(struct areq *r)
{
	static const struct jfield fields[] = {
		{ "restore", JT_STRING, 1 }, { "snapshot", JT_STRING, 1 },
		{ "database_only", JT_BOOL, 0 }, { "source_url", JT_STRING, 0 },
		{ "size", JT_INT, 0 }, { NULL } };
	const char *id, *sid, *src;
	struct restore_job *rj;
	char *arch = NULL, *path = NULL, *cause = NULL;
	json_t *j;
	pthread_t th;

	if (abody_check(r, fields) == -1)
		return;
	id = jsonx_str(r->body, "restore");
	sid = jsonx_str(r->body, "snapshot");
	src = jsonx_str(r->body, "source_url");
	if (!util_valid_uuid(id) || !util_valid_uuid(sid)) {
		areply_error(r, 400, "BAD_REQUEST", "'restore' and 'snapshot' "
		    "must be lowercase uuids");
		return;
	}
	if ((j = restore_show_json(id)) != NULL) {
		areply(r, 200, j);
		return;
	}
	if (src == NULL) {
		arch = snap_file(sid, "archive.tar.gz");
		if (access(arch, R_OK) != 0 && !snap_in_store(sid)) {
			free(arch);
			areply_error(r, 404, "SNAPSHOT_NOT_FOUND", "no snapshot "
			    "'%s' on this node", sid);
			return;
		}
		free(arch);
		if (space_refuse_restore(r, sid, jsonx_bool(r->body,
		    "database_only", 0)) == -1)
			return;
		/* refused before the environment is touched, naming the
		 * files (a restore reads the full archive) */
		if (snap_in_store(sid) && store_whole(sid, SNAPSTORE_FULL,
		    &cause) < 0) {
			areply_error(r, 409, "SNAPSHOT_DAMAGED", "cannot "
			    "restore snapshot %s: %s", sid, cause);
			free(cause);
			return;
		}
	}
	rj = xcalloc(1, sizeof *rj);
	snprintf(rj->id, sizeof rj->id, "%s", id);
	snprintf(rj->snapshot, sizeof rj->snapshot, "%s", sid);
	rj->env_id = r->env->id;
	rj->database_only = jsonx_bool(r->body, "database_only", 0);
	rj->source_url = src ? xstrdup(src) : NULL;
	rj->size = jsonx_int(r->body, "size", 0);
	pthread_mutex_lock(&node->lock);
	if (!env_is_stopped(r->env)) {
		pthread_mutex_unlock(&node->lock);
		areply_error(r, 409, "ENVIRONMENT_NOT_STOPPED", "cannot restore "
		    "into '%s': environment is %s", env_name(r->env),
		    env_state_name(r->env->state));
		goto fail;
	}
	/* never started: its role and an empty database first, as for a
	 * migration's target; the restore swaps its own in */
	if (r->env->db_password == NULL && pg_env_ensure(r->env, &cause) ==
	    -1) {
		pthread_mutex_unlock(&node->lock);
		areply_error(r, 503, "DATABASE_UNAVAILABLE", "%s", cause);
		free(cause);
		goto fail;
	}
	if ((rj->env_url = pg_env_url(r->env)) == NULL) {
		pthread_mutex_unlock(&node->lock);
		areply_error(r, 409, "ENVIRONMENT_HAS_NO_DATABASE", "environment "
		    "'%s' has no database yet", env_name(r->env));
		goto fail;
	}
	rj->envdir = xstrdup(r->env->dir);
	pthread_mutex_unlock(&node->lock);
	if (task_add(id, rj->env_id) == -1) {
		areply_error(r, 409, "RESTORE_RUNNING", "a backup or restore of "
		    "this environment is running");
		goto fail;
	}
	/* what an earlier restore left is finished first (or this one waits) */
	if (journal_settle_left(rj->env_id, &cause) == -1) {
		task_remove(id);
		areply_error(r, 409, "RESTORE_NOT_SETTLED", "the last restore of "
		    "'%s' is not cleaned up yet (retried every %d s): %s",
		    env_name(r->env), SETTLE_RETRY_SECS, cause);
		free(cause);
		goto fail;
	}
	restore_record(id, rj->env_id, "running", NULL, NULL);
	if (pthread_create(&th, NULL, restore_thread, rj) != 0)
		fatal("cannot start a restore thread");
	pthread_detach(th);
	areply(r, 202, restore_show_json(id));
	free(path);
	return;
fail:
	free(path);
	free(rj->source_url);
	free(rj->env_url);
	free(rj->envdir);
	free(rj);
}

/* GET /agent/v1/restores/{restore} */
void
agent_restore_show(struct areq *r)
{
	const char *id = http_param(r->http, "restore");
	json_t *j = util_valid_uuid(id) ? restore_show_json(id) : NULL;

	if (j == NULL) {
		areply_error(r, 404, "RESTORE_NOT_FOUND", "no restore '%s' on "
		    "this node", id);
		return;
	}
	areply(r, 200, j);
}

/* Remove dir/<prefix>* files left by a process that died. */
static void
spool_clean(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char *p;

	while (d && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
		    de->d_type == DT_DIR)
			continue;
		p = xasprintf("%s/%s", dir, de->d_name);
		unlink(p);
		free(p);
	}
	if (d)
		closedir(d);
}

/* Every SETTLE_RETRY_SECS, or when kicked: settle the restore journals
 * a failed step left (a database that could not be dropped, a folder
 * that could not be swapped), each with the environment claimed so no
 * restore starts meanwhile; tell the portal of refused uploads. */
static void *
settle_thread(void *arg)
{
	struct env *e;
	long long ids[NUBO_NODE_ENVS_MAX * 8];
	char claim[40], *jp, *cause;
	struct timespec ts;
	int n, i;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&backup_lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += SETTLE_RETRY_SECS;
		while (!backup_kicked && pthread_cond_timedwait(&backup_cond,
		    &backup_lock, &ts) != ETIMEDOUT)
			;
		backup_kicked = 0;
		pthread_mutex_unlock(&backup_lock);
		refused_pass();
		n = 0;
		pthread_mutex_lock(&node->lock);
		for (e = node->envs; e && n < (int)(sizeof ids / sizeof ids[0]);
		    e = e->next)
			ids[n++] = e->id;
		pthread_mutex_unlock(&node->lock);
		for (i = 0; i < n; i++) {
			jp = journal_path(ids[i]);
			if (access(jp, F_OK) == 0) {
				snprintf(claim, sizeof claim, "settle-%lld", ids[i]);
				cause = NULL;
				if (task_add(claim, ids[i]) == 0) {
					if (journal_settle_left(ids[i], &cause) == -1)
						log_warn("environment %lld: %s",
						    ids[i], cause);
					task_remove(claim);
				}
				free(cause);
			}
			free(jp);
		}
	}
	return NULL;
}

/* At start, after PostgreSQL is up: settle every restore a killed node
 * left half-done, and mark snapshots and restores that were running as
 * failed (their thread died with the old process). */
void
backup_recover(void)
{
	struct env *e;
	char *path, *cause, *dir;
	json_t *jn;
	PGconn *c;
	long long ids[4096];
	int n = 0, i;

	pthread_mutex_lock(&node->lock);
	for (e = node->envs; e && n < 4096; e = e->next)
		ids[n++] = e->id;
	pthread_mutex_unlock(&node->lock);
	for (i = 0; i < n; i++) {
		/* dump spools of restores that died with the old process */
		dir = xasprintf("%s/envs/%lld", node->data_dir, ids[i]);
		spool_clean(dir, "restore-");
		free(dir);
		path = journal_path(ids[i]);
		if ((jn = load_json(path)) != NULL) {
			cause = NULL;
			log_warn("settling the restore left by the last run in "
			    "environment %lld (%s)", ids[i],
			    jsonx_str(jn, "phase"));
			if (journal_settle(ids[i], jn, &cause) == -1)
				log_error("environment %lld: %s", ids[i], cause);
			else if (jsonx_str(jn, "restore"))
				restore_record(jsonx_str(jn, "restore"), ids[i],
				    "failed", "the node stopped during the restore",
				    NULL);
			free(cause);
			json_decref(jn);
		}
		free(path);
	}
	/* journals that could not be settled now are tried again */
	{
		pthread_t th;

		if (pthread_create(&th, NULL, settle_thread, NULL) != 0)
			fatal("cannot start the restore settling thread");
		pthread_detach(th);
	}
	/* throwaway roles of restores and imports that died with it (their
	 * half-loaded databases go with them) */
	if ((c = pg_admin_connect(&cause)) != NULL) {
		for (i = 0; i < n; i++)
			if (restore_role_drop_stale(c, "restore", ids[i],
			    &cause) == -1 || restore_role_drop_stale(c, "import",
			    ids[i], &cause) == -1) {
				log_error("environment %lld: %s", ids[i], cause);
				free(cause);
				cause = NULL;
			}
		PQfinish(c);
	} else {
		log_error("%s", cause);
		free(cause);
	}
	/* restores that were running without a journal yet */
	dir = xasprintf("%s/restores", node->data_dir);
	{
		DIR *d = opendir(dir);
		struct dirent *de;

		while (d && (de = readdir(d)) != NULL) {
			char *p;
			json_t *j;

			if (strlen(de->d_name) != 41)
				continue;
			p = xasprintf("%s/%s", dir, de->d_name);
			j = load_json(p);
			if (j && jsonx_str(j, "state") &&
			    strcmp(jsonx_str(j, "state"), "running") == 0) {
				json_object_set_new(j, "state",
				    json_string("failed"));
				json_object_set_new(j, "error", json_string(
				    "the node stopped during the restore"));
				save_json(p, j);
			}
			json_decref(j);
			free(p);
		}
		if (d)
			closedir(d);
	}
	free(dir);
	/* snapshots that were running */
	dir = xasprintf("%s/snapshots", node->data_dir);
	util_mkdir_p(dir, 0700);
	spool_clean(dir, ".upload-");
	spool_clean(dir, ".fetch-");
	{
		char *cmd = NULL;
		DIR *d = opendir(dir);
		struct dirent *de;

		while (d && (de = readdir(d)) != NULL) {
			json_t *j;

			if (!util_valid_uuid(de->d_name))
				continue;
			free(cmd);
			cmd = snap_file(de->d_name, "snapshot.json");
			j = load_json(cmd);
			if (j && jsonx_str(j, "state") &&
			    strcmp(jsonx_str(j, "state"), "running") == 0) {
				json_object_set_new(j, "state",
				    json_string("failed"));
				json_object_set_new(j, "error", json_string(
				    "the node stopped during the backup"));
				save_json(cmd, j);
			}
			/* a manifest written just before the node stopped:
			 * no snapshot, its blobs are swept below */
			if (j == NULL || jsonx_str(j, "state") == NULL ||
			    strcmp(jsonx_str(j, "state"), "completed") != 0) {
				free(cmd);
				cmd = snap_file(de->d_name, "manifest.json");
				if (unlink(cmd) == 0)
					util_fsync_dir(cmd);
				if (j == NULL) {
					/* an upload killed before its record:
					 * the folder it made, if empty */
					free(cmd);
					cmd = snap_dir(de->d_name);
					rmdir(cmd);
				}
			} else
				/* a conversion killed after its manifest:
				 * the manifest wins, the archive goes */
				snapshot_convert_touch(de->d_name, 0);
			json_decref(j);
		}
		if (d)
			closedir(d);
		free(cmd);
	}
	free(dir);
	/* copies that were running (their partial.json stays a root) */
	snapcopy_recover();
	/* what a killed snapshot or sweep left in the store goes */
	{
		pthread_t th;

		if (pthread_create(&th, NULL, sweep_thread, NULL) != 0)
			fatal("cannot start the snapshot store's sweeper");
		pthread_detach(th);
	}
	store_sweep_soon();
}
