/* Restore of a backup archive into a new database and a new files folder
 * (SPEC §2: "restore goes to a new database/files location and is swapped
 * in only when complete"). The swap itself is the node's job. */
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

#include "backup-archive.h"
#include "log.h"
#include "pgtool.h"
#include "util.h"
#include "xmalloc.h"

/* Below this much dump, pg_restore runs one job (see restore_jobs()). */
#define RESTORE_PARALLEL_MIN_BYTES	(32LL * 1024 * 1024)

struct restore_run {
	const struct backup_restore_opts *o;
	char		*dump_path;
	int		 dumpfd;
	int		 errfd;
	int		 streamed;	/* the dump went to pg_restore's stdin */
	pid_t		 pid;
	int		 spawn_errno;
};

/* pg_restore -j for a dump of this size: o->jobs when set; otherwise one
 * job for a small dump, where the workers' fork and connections cost more
 * than they save (~20 ms), and a job per CPU for a large one. */
static long
restore_jobs(const struct backup_restore_opts *o, long long dump_bytes)
{
	long n;

	if (o->jobs > 0)
		return o->jobs;
	if (dump_bytes < RESTORE_PARALLEL_MIN_BYTES)
		return 1;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? n : 1;
}

/* Start pg_restore: -j jobs on the spooled dump, or (in_fd >= 0) one job
 * reading the dump from in_fd as it streams. The password is not on its
 * command line (pgtool_spawn()). */
static void
restore_spawn(struct restore_run *rr, long jobs, int in_fd)
{
	const struct backup_restore_opts *o = rr->o;
	char jarg[24];
	char *args[] = { "--no-owner", "--no-privileges", "--exit-on-error",
	    "-j", jarg, in_fd >= 0 ? NULL : rr->dump_path, NULL };

	snprintf(jarg, sizeof(jarg), "%ld", jobs);
	rr->pid = pgtool_spawn(o->pg_restore ? o->pg_restore : "pg_restore",
	    o->dburl, args, in_fd, -1, rr->errfd);
	if (rr->pid < 0)
		rr->spawn_errno = errno;
}

/* At db/db.backup's header: a dump small enough for one job streams
 * straight into pg_restore's stdin (no spool, and pg_restore starts while
 * the dump is still being inflated); a larger one is spooled for -j. */
static int
restore_dump_start(void *arg, long long size)
{
	struct restore_run *rr = arg;
	int p[2];

	if (restore_jobs(rr->o, size) != 1)
		return -1;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	/* room for a few chunks: tree/ unpacking waits less on pg_restore */
	fcntl(p[1], F_SETPIPE_SZ, 1024 * 1024);
	restore_spawn(rr, 1, p[0]);
	close(p[0]);
	if (rr->pid < 0) {
		close(p[1]);
		return -1;
	}
	rr->streamed = 1;
	return p[1];
}

/* db/db.backup is complete: unless it streamed into pg_restore already,
 * start pg_restore -j on the spool now, so the database loads while tree/
 * is still being unpacked. */
static void
restore_dump_done(void *arg)
{
	struct restore_run *rr = arg;
	struct stat st;

	if (rr->streamed)
		return;
	restore_spawn(rr, restore_jobs(rr->o, fstat(rr->dumpfd, &st) == 0 ?
	    (long long)st.st_size : 0), -1);
}

/* Wait for pid: its wait status (-1 when it cannot be waited for). */
static int
restore_wait(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return st;
}

int
backup_restore(int archive_fd, const struct backup_restore_opts *o,
    struct backup_info *info, char **cause)
{
	struct backup_read_opts ro;
	struct restore_run rr;
	int dumpfd = -1, rc = -1, st;

	memset(&rr, 0, sizeof(rr));
	rr.o = o;
	rr.pid = -1;
	rr.errfd = memfd_create("pg_restore-stderr", MFD_CLOEXEC);
	rr.dump_path = xasprintf("%s/restore-XXXXXX", o->tmp_dir ? o->tmp_dir :
	    "/tmp");
	if ((rr.dumpfd = dumpfd = mkostemp(rr.dump_path, O_CLOEXEC)) < 0) {
		*cause = xasprintf("cannot create a spool file in '%s': %s",
		    o->tmp_dir, strerror(errno));
		goto out;
	}
	/* pg_restore may run as another user than us (the node's nubo user) */
	fchmod(dumpfd, 0644);
	backup_read_opts_init(&ro);
	ro.pg_restore = NULL;	/* pg_restore itself reads the whole dump next */
	ro.dump_fd = dumpfd;
	ro.tree_dir = o->tree_dir;
	ro.max_bytes = o->max_bytes;
	ro.tree_uid = o->uid;
	ro.tree_gid = o->gid;
	ro.dump_start = restore_dump_start;
	ro.dump_done = restore_dump_done;
	ro.dump_done_arg = &rr;
	ro.progress = o->progress;
	ro.progress_arg = o->progress_arg;
	if (backup_archive_read_fd(archive_fd, &ro, info, cause) < 0)
		goto out;
	if (rr.pid < 0) {
		*cause = xasprintf("cannot run pg_restore: %s",
		    strerror(rr.spawn_errno ? rr.spawn_errno : ENOENT));
		goto out;
	}
	st = restore_wait(rr.pid);
	rr.pid = -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char *why = util_fd_tool_error(rr.errfd, st);

		*cause = xasprintf("pg_restore failed: %s", why);
		free(why);
		goto out;
	}
	rc = 0;
out:
	if (rr.pid > 0) {
		kill(rr.pid, SIGTERM);
		restore_wait(rr.pid);
	}
	if (dumpfd >= 0) {
		close(dumpfd);
		unlink(rr.dump_path);
	}
	if (rr.errfd >= 0)
		close(rr.errfd);
	free(rr.dump_path);
	return rc;
}
