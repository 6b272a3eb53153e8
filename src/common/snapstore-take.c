/* Taking a snapshot into the store from a live database and file store:
 * what the node does for every snapshot (src/node/backup.c) and `nubod
 * archive snapshot` does by hand (bench/backup measures it): pg_dump into
 * an unlinked spool, the dump and the files into the store (files
 * unchanged since prev unread), the manifest, then the full download's
 * size by a dry run of its writer. */
#include "snapstore.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup-dump.h"
#include "util.h"

int
snapstore_take(const struct snapstore_take_opts *o, struct snapstore_taken *t,
    char **cause)
{
	struct snapstore_snap_opts so;
	struct backup_dump d;
	double t0 = util_mono(), t1;
	long long tree = 0;
	int rc = -1;

	memset(t, 0, sizeof *t);
	memset(&so, 0, sizeof so);
	if (backup_dump_start(&d, o->dburl, o->spool_dir, cause) < 0)
		goto out;
	/* while pg_dump runs: the database's size, the files' total */
	t->database_size = backup_database_size(o->dburl);
	if (o->tree_size)
		tree = o->tree_size(o->files_dir);
	/* and the previous dump read back and indexed for a delta on it
	 * (pg_dump's work is the server's, on another core) */
	t1 = util_mono();
	so.prev_dump_index = snapstore_prev_dump_index(o->store, o->prev);
	t->index_ms = (long long)((util_mono() - t1) * 1000 + 0.5);
	if (backup_dump_finish(&d, cause) < 0)
		goto out;
	t->dump_size = d.size;
	t->dump_ms = d.ms;
	so.store = o->store;
	so.files_dir = o->files_dir;
	so.dump_fd = d.fd;
	so.prev = o->prev;
	so.manifest = o->manifest;
	so.model_version = o->model_version ? o->model_version : "";
	so.created = o->created;
	so.database_size = t->database_size;
	so.duration = (long long)(util_mono() - t0 + 0.5);
	so.progress = o->progress;
	so.progress_arg = o->progress_arg;
	so.total = d.size + tree;
	t->duration = so.duration;
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
