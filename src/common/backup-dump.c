/* The database dump of a backup into a spool file (backup-dump.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "backup-dump.h"
#include "pgtool.h"
#include "testhook.h"
#include "util.h"
#include "xmalloc.h"

/* pg_dump of dburl into a spool file, on the exported snapshot `snap`
 * (NULL: its own). */
static int
dump_spawn(struct backup_dump *d, const char *dburl, const char *tmp_dir,
    const char *snap, char **cause)
{
	char *opt = snap ? xasprintf("--snapshot=%s", snap) : NULL;
	char *args[] = { "--no-owner", "--no-privileges", "--format=custom",
	    "--compress=0", opt, NULL };

	d->pid = -1;
	d->errfd = -1;
	d->t0 = util_mono();
	d->fd = open(tmp_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (d->fd < 0) {
		*cause = xasprintf("cannot create a spool file in '%s': %s",
		    tmp_dir, strerror(errno));
		free(opt);
		return -1;
	}
	d->errfd = memfd_create("pg_dump-stderr", MFD_CLOEXEC);
	d->pid = pgtool_spawn("pg_dump", dburl, args, -1, d->fd, d->errfd);
	free(opt);
	if (d->pid < 0) {
		*cause = xasprintf("cannot run pg_dump: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int
backup_dump_start(struct backup_dump *d, const char *dburl,
    const char *tmp_dir, char **cause)
{
	memset(d, 0, sizeof(*d));
	return dump_spawn(d, dburl, tmp_dir, NULL, cause);
}

int
backup_dump_start_held(struct backup_dump *d, const char *dburl,
    const char *tmp_dir, long long *dbsize, char **cause)
{
	PGconn *c;
	PGresult *res = NULL;
	char *snap = NULL;
	int rc;

	memset(d, 0, sizeof(*d));
	*dbsize = -1;
	c = PQconnectdb(dburl);
	if (PQstatus(c) == CONNECTION_OK) {
		PQclear(PQexec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ, "
		    "READ ONLY"));
		res = PQexec(c, "SELECT pg_export_snapshot(), "
		    "pg_database_size(current_database())");
	}
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK &&
	    PQntuples(res) == 1) {
		snap = xstrdup(PQgetvalue(res, 0, 0));
		*dbsize = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		d->held = c;
	} else {
		PQfinish(c);
	}
	PQclear(res);
	/* t5c: a row and a file added here — the row is not in the dump
	 * (pg_dump, started later, dumps the snapshot taken before), the
	 * file is in the snapshot */
	if (d->held != NULL)
		testhook_pause("snapshot-held");
	rc = dump_spawn(d, dburl, tmp_dir, snap, cause);
	free(snap);
	return rc;
}

int
backup_dump_finish(struct backup_dump *d, char **cause)
{
	struct stat st;
	char *msg;
	int status = 0;

	while (waitpid(d->pid, &status, 0) < 0)
		if (errno != EINTR) {
			status = -1;
			break;
		}
	d->pid = -1;
	PQfinish(d->held);	/* pg_dump is done with its snapshot */
	d->held = NULL;
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		msg = util_fd_tool_error(d->errfd, -1);
		*cause = xasprintf("pg_dump failed: %s", *msg ? msg : "killed");
		free(msg);
		return -1;
	}
	/* the migration's downtime estimate scales from it */
	d->ms = (long long)((util_mono() - d->t0) * 1000 + 0.5);
	if (fstat(d->fd, &st) < 0 || lseek(d->fd, 0, SEEK_SET) < 0) {
		*cause = xasprintf("cannot read the dump: %s", strerror(errno));
		return -1;
	}
	d->size = st.st_size;
	return 0;
}

void
backup_dump_release(struct backup_dump *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		while (waitpid(d->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	d->pid = -1;
	PQfinish(d->held);
	d->held = NULL;
	if (d->errfd >= 0)
		close(d->errfd);
	if (d->fd >= 0)
		close(d->fd);
	d->errfd = d->fd = -1;
}

long long
backup_database_size(const char *url)
{
	PGconn *c;
	PGresult *res;
	long long n = -1;

	c = PQconnectdb(url);
	if (PQstatus(c) == CONNECTION_OK) {
		res = PQexec(c, "SELECT pg_database_size(current_database())");
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
			n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
	}
	PQfinish(c);
	return n;
}
