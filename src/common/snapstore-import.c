/* An archive into the snapshot store (snapstore_import(), snapstore.h):
 * read once by backup_archive_read(), with all of its checks, its
 * members becoming blobs and dump chunks as they stream past (a
 * backup_member_sink), the manifest written last, only when the reader
 * found the archive valid as a whole. */
#include <stdlib.h>
#include <string.h>

#include <archive_entry.h>
#include <jansson.h>

#include "backup-archive.h"
#include "snapstore.h"
#include "snapstore-put.h"
#include "xmalloc.h"

#define DUMP_NAME	"db/db.backup"

/* A tree/ member's manifest entry, with its raw path for the sort. */
struct ent {
	char		*rel;
	json_t		*e;
};

struct imp {
	struct snapstore_put *sp;
	struct ent	*v;		/* tree/'s, in the archive's order */
	size_t		 n, cap;
	json_t		*cur;		/* the file whose bytes come */
	json_t		*dump;		/* once db/db.backup ended */
	int		 in_dump;
	long long	 created;
	int		 store_failed;	/* the store, not the archive */
};

/* rc of a store call: a failure there is the store's, not the
 * archive's. */
static int
store_rc(struct imp *ip, int rc)
{
	if (rc < 0)
		ip->store_failed = 1;
	return rc;
}

static int
imp_start(void *arg, const char *name, int type, int mode, long long mtime,
    long long size, char **cause)
{
	struct imp *ip = arg;
	json_t *e;

	(void)size;
	if (strcmp(name, DUMP_NAME) == 0) {
		ip->created = mtime;
		ip->in_dump = 1;
		return store_rc(ip, snapstore_put_dump_begin(ip->sp, cause));
	}
	/* a member under tree/ (the reader passes nothing else) */
	e = json_object();
	snapstore_entry_set_path(e, name + 5);
	json_object_set_new(e, "type", json_string(type == AE_IFDIR ? "d" :
	    "f"));
	json_object_set_new(e, "mode", json_integer(mode));
	json_object_set_new(e, "mtime", json_integer(mtime));
	if (ip->n == ip->cap) {
		ip->cap = ip->cap ? 2 * ip->cap : 256;
		ip->v = xrealloc(ip->v, ip->cap * sizeof(*ip->v));
	}
	ip->v[ip->n].rel = xstrdup(name + 5);
	ip->v[ip->n++].e = e;
	if (type == AE_IFDIR)
		return 0;
	ip->cur = e;
	return store_rc(ip, snapstore_put_file_begin(ip->sp, cause));
}

static int
imp_data(void *arg, const void *buf, size_t len, char **cause)
{
	struct imp *ip = arg;

	return store_rc(ip, ip->in_dump ? snapstore_put_dump_add(ip->sp, buf,
	    len, cause) : snapstore_put_file_add(ip->sp, buf, len, cause));
}

static int
imp_end(void *arg, char **cause)
{
	struct imp *ip = arg;
	long long size;
	char hex[65];

	if (ip->in_dump) {
		ip->in_dump = 0;
		ip->dump = json_object();
		snapstore_put_dump_end(ip->sp, ip->dump);
		return 0;
	}
	if (store_rc(ip, snapstore_put_file_end(ip->sp, hex, &size,
	    cause)) < 0)
		return -1;
	json_object_set_new(ip->cur, "size", json_integer(size));
	json_object_set_new(ip->cur, "sha256", json_string(hex));
	ip->cur = NULL;
	return 0;
}

/* The order a snapshot walks the folder in (fts, names sorted per
 * folder with strcmp): path by path component, a folder before what it
 * holds. */
static int
walk_order(const void *a, const void *b)
{
	const char *x = ((const struct ent *)a)->rel;
	const char *y = ((const struct ent *)b)->rel;
	size_t lx, ly;
	int c;

	for (;;) {
		lx = strcspn(x, "/");
		ly = strcspn(y, "/");
		if ((c = memcmp(x, y, lx < ly ? lx : ly)) != 0)
			return c;
		if (lx != ly)
			return lx < ly ? -1 : 1;
		if (x[lx] == '\0' || y[ly] == '\0')
			return (x[lx] != '\0') - (y[ly] != '\0');
		x += lx + 1;
		y += ly + 1;
	}
}

int
snapstore_import(const struct snapstore_import_opts *o,
    struct backup_info *info, struct snapstore_stats *stats, char **cause)
{
	struct backup_member_sink sink = { imp_start, imp_data, imp_end, NULL };
	struct backup_read_opts ro;
	struct backup_info info0;
	struct imp ip;
	json_t *m = NULL, *tree = json_array();
	size_t i;
	int rc = -2;

	if (info == NULL)
		info = &info0;
	memset(&ip, 0, sizeof(ip));
	if ((ip.sp = snapstore_put_open(o->store, stats, cause)) == NULL)
		goto out;
	sink.arg = &ip;
	backup_read_opts_init(&ro);
	ro.pg_restore = o->pg_restore;
	ro.sink = &sink;
	ro.progress = o->progress;
	ro.progress_arg = o->progress_arg;
	if (backup_archive_read_fd(o->archive_fd, &ro, info, cause) < 0) {
		rc = ip.store_failed ? -2 : -1;
		goto out;
	}
	if (ip.dump == NULL) {
		/* the reader refuses an archive without db/db.backup */
		rc = -1;
		if (cause != NULL && *cause == NULL)
			*cause = xstrdup("archive has no 'db/db.backup'");
		goto out;
	}
	/* the reader refused duplicate paths: the order is total */
	if (ip.n > 0)
		qsort(ip.v, ip.n, sizeof(*ip.v), walk_order);
	for (i = 0; i < ip.n; i++)
		json_array_append(tree, ip.v[i].e);
	m = snapstore_manifest_new(ip.created, info->meta.model_version,
	    info->meta.database_size, info->meta.duration, ip.dump);
	json_object_set(m, "tree", tree);
	json_object_set_new(m, "files_size",
	    json_integer(info->meta.files_size));
	if (snapstore_put_manifest(ip.sp, m, o->manifest, cause) < 0)
		goto out;
	rc = 0;
out:
	if (ip.sp != NULL)
		snapstore_put_close(ip.sp, rc == 0);
	for (i = 0; i < ip.n; i++) {
		free(ip.v[i].rel);
		json_decref(ip.v[i].e);
	}
	free(ip.v);
	json_decref(m);
	json_decref(tree);
	json_decref(ip.dump);
	return rc;
}
