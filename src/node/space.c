/* Room on the node's disk (the filesystem of its data folder, where
 * PostgreSQL, the files, snapshots and packages live). Work that writes
 * a lot — a snapshot, a restore, a migration import — first checks that
 * what it needs fits and leaves a reserve, and is refused with 507
 * NOT_ENOUGH_SPACE otherwise, before it writes anything: a full disk
 * fails that one operation, never PostgreSQL (a WAL write that fails is a
 * PANIC of the whole cluster, every environment with it). The reserve is
 * NUBO_NODE_DISK_RESERVE, or a tenth of a smaller filesystem. The
 * heartbeat reports the figures (space_json) and the portal shows them in
 * `nubo nodes show`, with a warning once less than twice the reserve is
 * free. */
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "agent-routes.h"
#include "jsonx.h"
#include "log.h"
#include "util.h"
#include "xmalloc.h"

#define MB(x)	((x) >> 20)

int
space_of(long long *free_bytes, long long *total, long long *reserve)
{
	struct statvfs sv;

	if (statvfs(node->data_dir, &sv) == -1)
		return -1;
	*free_bytes = (long long)sv.f_bavail * (long long)sv.f_frsize;
	*total = (long long)sv.f_blocks * (long long)sv.f_frsize;
	*reserve = *total / 10 < NUBO_NODE_DISK_RESERVE ? *total / 10 :
	    NUBO_NODE_DISK_RESERVE;
	return 0;
}

json_t *
space_json(void)
{
	long long free_bytes, total, reserve;

	if (space_of(&free_bytes, &total, &reserve) == -1)
		return json_null();
	return json_pack("{s:I,s:I,s:I,s:b}", "free_bytes",
	    (json_int_t)free_bytes, "total_bytes", (json_int_t)total,
	    "reserve_bytes", (json_int_t)reserve, "low",
	    free_bytes < 2 * reserve);
}

int
space_check(long long need, const char *what, char **cause)
{
	long long free_bytes, total, reserve;

	/* a need that is no size is a sum that wrapped, from sizes another
	 * node gave (an off-node copy's manifest): never room */
	if (need < 0) {
		*cause = xasprintf("cannot check the space on node '%s' for "
		    "%s: it needs %lld bytes, which is not a size",
		    node->name ? node->name : "?", what, need);
		return -1;
	}
	if (space_of(&free_bytes, &total, &reserve) == -1)
		return 0;	/* cannot tell: the work's own errors say */
	if (need <= free_bytes - reserve)
		return 0;
	*cause = xasprintf("not enough space on node '%s' for %s: it needs "
	    "%lld MB and the node keeps %lld MB free for PostgreSQL and the "
	    "other environments, but only %lld MB of %lld MB are free",
	    node->name ? node->name : "?", what, MB(need) + (need % (1 << 20) !=
	    0), MB(reserve), MB(free_bytes), MB(total));
	return -1;
}

int
space_refuse(struct areq *r, long long need, const char *what)
{
	char *cause = NULL;

	if (space_check(need, what, &cause) == 0)
		return 0;
	log_warn("%s", cause);
	areply_error(r, 507, "NOT_ENOUGH_SPACE", "%s", cause);
	free(cause);
	return -1;
}

static long long space_walked;

static int
space_walk(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)path;
	(void)f;
	if (flag == FTW_F)
		space_walked += st->st_size;
	return 0;
}

long long
space_tree(const char *dir)
{
	static pthread_mutex_t walk_lock = PTHREAD_MUTEX_INITIALIZER;
	long long n;

	pthread_mutex_lock(&walk_lock);
	space_walked = 0;
	nftw(dir, space_walk, 32, FTW_PHYS);
	n = space_walked;
	pthread_mutex_unlock(&walk_lock);
	return n;
}

long long
space_snapshot_need(struct env *e)
{
	char *files = xasprintf("%s/files", e->dir), *cause = NULL;
	char *db = xasprintf("env_%lld", e->id);
	struct pg_conn *c = pg_admin_connect(&cause);
	long long dbsize = 0;

	if (c) {
		const char *p[1] = { db };
		PGresult *res = PQexecParams(c, "SELECT pg_database_size($1)",
		    1, NULL, p, NULL, NULL, 0);

		if (PQresultStatus(res) == PGRES_TUPLES_OK &&
		    PQntuples(res) == 1)
			dbsize = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
		PQfinish(c);
	}
	free(cause);
	free(db);
	/* the dump (at most the database), then the archive (at most the
	 * dump and the files) */
	dbsize = 2 * dbsize + space_tree(files);
	free(files);
	return dbsize;
}

int
space_refuse_restore(struct areq *r, const char *snapshot, int database_only)
{
	char *path = xasprintf("%s/snapshots/%s/snapshot.json", node->data_dir,
	    snapshot);
	json_t *j;
	long long db, dump;
	int rc;

	if (access(path, F_OK) != 0) {
		/* a copy of another node's snapshot kept here (snapcopy.c) */
		free(path);
		path = snapcopy_record_path(snapshot);
	}
	j = json_load_file(path, 0, NULL);
	db = jsonx_int(j, "database_size", 0);
	dump = jsonx_int(j, "dump_size", 0);

	/* the database as it was, as much again for its WAL, the files */
	if (db < dump)
		db = dump;
	rc = space_refuse(r, 2 * db + (database_only ? 0 : jsonx_int(j,
	    "files_size", 0)), "this restore");
	json_decref(j);
	free(path);
	return rc;
}

int
space_refuse_import(struct areq *r, json_t *files, long long database)
{
	json_t *v;
	long long need = 2 * database;
	size_t i;

	json_array_foreach(files, i, v)
		need += jsonx_int(v, "size", 0);
	return space_refuse(r, need, "this migration import");
}

/* The ballast: DIR/pg/ballast, a file of SPACE_BALLAST_MAX (or a
 * twentieth of a smaller disk) the node keeps while there is room and
 * deletes the moment the disk is nearly full, so that PostgreSQL still
 * has room for its WAL (a WAL write that fails is a PANIC, and a cluster
 * cannot even start again on a full disk). Made again once the disk has
 * its reserve and the ballast free. */
#define SPACE_BALLAST_MAX	(64LL * 1024 * 1024)

void
space_watch(void)
{
	long long free_bytes, total, reserve, size;
	char *path;
	struct stat st;
	int have;

	if (node->pg_uri || space_of(&free_bytes, &total, &reserve) == -1)
		return;
	size = total / 20 < SPACE_BALLAST_MAX ? total / 20 : SPACE_BALLAST_MAX;
	path = xasprintf("%s/pg/ballast", node->data_dir);
	have = stat(path, &st) == 0;
	if (have && free_bytes < size / 2) {
		if (unlink(path) == 0)
			log_error("the node's disk is full (%lld MB free): "
			    "released the %lld MB kept for PostgreSQL's WAL; "
			    "free space on it now", MB(free_bytes),
			    MB((long long)st.st_size));
	} else if (!have && free_bytes > reserve + 2 * size) {
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);

		if (fd != -1) {
			if (posix_fallocate(fd, 0, (off_t)size) != 0) {
				close(fd);
				unlink(path);
			} else {
				fsync(fd);
				close(fd);
			}
		}
	}
	free(path);
}
