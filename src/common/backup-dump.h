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
};

/* Start pg_dump of the database behind dburl (a libpq URI) into an
 * unlinked file under tmp_dir. 0, or -1 with *cause; either way
 * backup_dump_release() ends it. */
int backup_dump_start(struct backup_dump *d, const char *dburl,
    const char *tmp_dir, char **cause);
/* Wait for pg_dump: 0 with d->fd at the dump's start and d->size,
 * d->ms set, or -1 with *cause (pg_dump's own words). */
int backup_dump_finish(struct backup_dump *d, char **cause);
/* Stop pg_dump if it still runs and close the spool. */
void backup_dump_release(struct backup_dump *d);

/* pg_database_size() of the database behind url; -1 when unknown. */
long long backup_database_size(const char *url);

#endif
