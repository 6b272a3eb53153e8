/* The database dump a backup takes (SPEC §3: `pg_dump --no-owner
 * --no-privileges --format=custom`, uncompressed — the archive's gzip or
 * the snapshot store does the rest) into an unlinked spool file, while
 * the caller does other work (sizing the files). Shared by the archive
 * writer and the node's snapshots into the store. */
#ifndef NUBO_BACKUP_DUMP_H
#define NUBO_BACKUP_DUMP_H

#include <sys/types.h>

struct backup_dump {
	pid_t		 pid;		/* pg_dump while it runs, else -1 */
	int		 fd;		/* the spool (unlinked), read from 0
					 * once finished */
	int		 errfd;		/* pg_dump's stderr */
	double		 t0;
	long long	 size;		/* the dump's bytes, once finished */
	long long	 ms;		/* pg_dump's wall time */
	struct pg_conn	*held;		/* the session whose snapshot pg_dump
					 * dumps (backup_dump_start_held()),
					 * open until pg_dump ends */
};

/* Start pg_dump of the database behind dburl (a libpq URI) into an
 * unlinked file under tmp_dir. 0, or -1 with *cause; either way
 * backup_dump_release() ends it. */
int backup_dump_start(struct backup_dump *d, const char *dburl,
    const char *tmp_dir, char **cause);
/* Start pg_dump as backup_dump_start() does, on a snapshot this process
 * takes and exports first (pg_export_snapshot(), its transaction held
 * open until pg_dump ends): with d->held set on return, the dump holds
 * the database as it was before the call returned — what the caller
 * reads after (the file store) is no older than any row dumped, while
 * pg_dump runs on. *dbsize: pg_database_size() in that snapshot, -1
 * when unknown. A session that cannot be opened or cannot export leaves
 * d->held NULL: pg_dump takes its own snapshot, and says why it fails if
 * it does. 0, or -1 with *cause; backup_dump_release() ends it. */
int backup_dump_start_held(struct backup_dump *d, const char *dburl,
    const char *tmp_dir, long long *dbsize, char **cause);
/* Wait for pg_dump: 0 with d->fd at the dump's start and d->size,
 * d->ms set, or -1 with *cause (pg_dump's own words). */
int backup_dump_finish(struct backup_dump *d, char **cause);
/* Stop pg_dump if it still runs and close the spool. */
void backup_dump_release(struct backup_dump *d);

/* pg_database_size() of the database behind url; -1 when unknown. */
long long backup_database_size(const char *url);

#endif
