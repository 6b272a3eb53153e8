/* Taking a snapshot into the store from a live database and file store:
 * what the node does for every snapshot (src/node/backup.c) and `nubod
 * archive snapshot` does by hand (bench/backup measures it): pg_dump into
 * an unlinked spool, on a snapshot of the database taken before the
 * files are read (backup_dump_start_held()), so that the files are put
 * into the store while pg_dump runs (their time hidden behind its own:
 * bench/backup's first snapshot against the raw script, 10 MB 0.54 →
 * 0.49, 200 MB 0.40 → 0.32); then the dump, the manifest, and the full
 * download's size by a dry run of its writer. Without the held snapshot
 * (the session could not export one), the files are read after the
 * dump, as the dump's snapshot is then only known to be older once
 * pg_dump is done. */
#include "snapstore.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup-dump.h"
#include "util.h"

struct take_wait {
	struct backup_dump *d;
	struct snapstore_taken *t;
	double		 t0;
};

/* snapstore_snap_opts.dump_wait: pg_dump done, after the files. */
static int
take_dump_wait(void *arg, int *fd, long long *size, long long *duration,
    char **cause)
{
	struct take_wait *w = arg;

	if (backup_dump_finish(w->d, cause) < 0)
		return -1;
	*fd = w->d->fd;
	*size = w->t->dump_size = w->d->size;
	w->t->dump_ms = w->d->ms;
	*duration = w->t->duration = (long long)(util_mono() - w->t0 + 0.5);
	return 0;
}

int
snapstore_take(const struct snapstore_take_opts *o, struct snapstore_taken *t,
    char **cause)
{
	struct snapstore_snap_opts so;
	struct backup_dump d;
	struct take_wait w = { &d, t, util_mono() };
	double t1;
	long long tree = 0;
	int rc = -1;

	memset(t, 0, sizeof *t);
	memset(&so, 0, sizeof so);
	if (backup_dump_start_held(&d, o->dburl, o->spool_dir,
	    &t->database_size, cause) < 0)
		goto out;
	/* while pg_dump runs: the database's size, the files' total */
	if (d.held == NULL)
		t->database_size = backup_database_size(o->dburl);
	if (o->tree_size)
		tree = o->tree_size(o->files_dir);
	/* and the previous dump read back and indexed for a delta on it
	 * (pg_dump's work is the server's, on another core) */
	t1 = util_mono();
	so.prev_dump_index = snapstore_prev_dump_index(o->store, o->prev);
	t->index_ms = (long long)((util_mono() - t1) * 1000 + 0.5);
	so.store = o->store;
	so.files_dir = o->files_dir;
	so.prev = o->prev;
	so.manifest = o->manifest;
	so.model_version = o->model_version ? o->model_version : "";
	so.created = o->created;
	so.database_size = t->database_size;
	so.progress = o->progress;
	so.progress_arg = o->progress_arg;
	if (d.held != NULL) {
		/* the files while pg_dump runs; until it is done, the
		 * database's size stands for the dump's in the progress */
		so.dump_wait = take_dump_wait;
		so.dump_wait_arg = &w;
		so.dump_estimate = t->database_size > 0 ? t->database_size : 0;
		so.total = so.dump_estimate + tree;
	} else {
		if (take_dump_wait(&w, &so.dump_fd, &so.total, &so.duration,
		    cause) < 0)
			goto out;
		so.total += tree;
	}
	rc = snapstore_snapshot(&so, &t->stats, cause);
	so.prev_dump_index = NULL;	/* snapstore_snapshot() took it */
	if (rc < 0)
		goto out;
	rc = -1;
	if (snapstore_archive_size(o->store, o->manifest, SNAPSTORE_FULL,
	    &t->archive_size, cause) < 0) {
		unlink(o->manifest);	/* no snapshot; a sweep frees its
					 * blobs */
		goto out;
	}
	rc = 0;
out:
	snapstore_dindex_free(so.prev_dump_index);
	backup_dump_release(&d);
	return rc;
}
