/* Whole-archive snapshots into the snapshot store (issue #16): a
 * snapshot kept as DIR/snapshots/<uuid>/archive.tar.gz (uploaded or
 * taken before the store) becomes a manifest — on first touch (a
 * download that starts at byte 0, a restore), at start for one a killed
 * node left half done, or by `nubod node convert-snapshots` for all.
 *
 * Order, for kill -9 at any point: snapshot.json loses the archive's
 * sizes (a store download is another size, found on its first request),
 * then snapstore_import() writes the blobs and, last, manifest.json;
 * only then do archive.tar.gz and the downloads derived from it go.
 * Killed before the manifest: still a whole-archive snapshot, its blobs
 * unreferenced (swept). Killed after: the manifest wins (snap_in_store()),
 * and the leftovers go at the next touch or start.
 *
 * A conversion holds the snapshot's folder locked (flock): a DELETE
 * meanwhile is refused, a second conversion (the command while the node
 * runs, two first downloads) waits and then finds it done. The store's
 * own lock keeps the sweep away from blobs no manifest names yet. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "jsonx.h"
#include "log.h"
#include "node.h"
#include "snapstore.h"
#include "testhook.h"
#include "util.h"
#include "xmalloc.h"

/* What a whole-archive snapshot has besides snapshot.json: what
 * derived_open() (backup.c) made of the archive, and the archive, which
 * goes last (its presence says a conversion is not finished). */
static const char *const leftovers[] = { "database.backup", "files.tar.gz",
	"archive.tar.gz", NULL };

static char *
convert_file(const char *id, const char *name)
{
	return xasprintf("%s/snapshots/%s/%s", node->data_dir, id, name);
}

int
snapshot_lock(const char *id, int wait)
{
	char *dir = xasprintf("%s/snapshots/%s", node->data_dir, id);
	int fd, e;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* 1 when the snapshot has a leftover of its whole archive. */
static int
has_leftovers(const char *id)
{
	char *p;
	int i, has = 0;

	for (i = 0; leftovers[i] != NULL && !has; i++) {
		p = convert_file(id, leftovers[i]);
		has = access(p, F_OK) == 0;
		free(p);
	}
	return has;
}

/* The archive and what was made of it go (its manifest is durable):
 * also the temp files of a derived download cut short. */
static int
remove_leftovers(const char *id, char **cause)
{
	char *dir = xasprintf("%s/snapshots/%s", node->data_dir, id), *p;
	struct dirent *de;
	DIR *d;
	int i, rc = 0;

	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			size_t n = strlen(de->d_name);

			if (n < 4 || strcmp(de->d_name + n - 4, ".tmp") != 0 ||
			    (strncmp(de->d_name, "database.backup.", 16) != 0 &&
			    strncmp(de->d_name, "files.tar.gz.", 13) != 0))
				continue;
			p = xasprintf("%s/%s", dir, de->d_name);
			unlink(p);
			free(p);
		}
		closedir(d);
	}
	for (i = 0; leftovers[i] != NULL; i++) {
		p = convert_file(id, leftovers[i]);
		if (unlink(p) < 0 && errno != ENOENT && rc == 0) {
			*cause = xasprintf("cannot remove '%s': %s", p,
			    strerror(errno));
			rc = -1;
		}
		free(p);
	}
	p = convert_file(id, "snapshot.json");
	if (util_fsync_dir(p) < 0 && rc == 0) {
		*cause = xasprintf("cannot sync '%s': %s", dir, strerror(errno));
		rc = -1;
	}
	free(p);
	free(dir);
	return rc;
}

/* With the folder locked: convert, or finish what a conversion left. */
static int
convert_locked(const char *id, struct snapstore_stats *st, char **cause)
{
	struct snapstore_import_opts o;
	char *state = convert_file(id, "snapshot.json");
	char *man = convert_file(id, "manifest.json");
	char *arch = convert_file(id, "archive.tar.gz");
	char *store = xasprintf("%s/store", node->data_dir);
	json_t *j = json_load_file(state, 0, NULL);
	char *why = NULL;
	int rc = 0, n;

	if (j == NULL || jsonx_str(j, "state") == NULL ||
	    strcmp(jsonx_str(j, "state"), "completed") != 0)
		goto out;	/* being taken, failed, or deleted meanwhile */
	if (access(man, F_OK) == 0) {
		/* converted before (killed before the leftovers went), or a
		 * snapshot of the store */
		if (has_leftovers(id)) {
			rc = remove_leftovers(id, cause) < 0 ? -1 : 2;
			if (rc == 2)
				log_info("snapshot %s: the whole archive a "
				    "conversion left is removed", id);
		}
		goto out;
	}
	if (access(arch, F_OK) != 0)
		goto out;
	/* 1. the archive's sizes go before the manifest comes: a download
	 * of the store's archive must never be told the old size */
	if (json_object_get(j, "archive_size") != NULL ||
	    json_object_get(j, "files_archive_size") != NULL) {
		json_object_del(j, "archive_size");
		json_object_del(j, "files_archive_size");
		if (jsonx_save(state, j) < 0) {
			*cause = xasprintf("cannot write '%s': %s", state,
			    strerror(errno));
			rc = -1;
			goto out;
		}
	}
	/* 2. the blobs, then the manifest */
	testhook_pause("snapshot-convert-start");
	memset(&o, 0, sizeof(o));
	o.store = store;
	o.manifest = man;
	if ((o.archive_fd = open(arch, O_RDONLY | O_CLOEXEC)) < 0) {
		*cause = xasprintf("cannot read '%s': %s", arch, strerror(errno));
		rc = -1;
		goto out;
	}
	n = snapstore_import(&o, NULL, st, cause);
	close(o.archive_fd);
	if (n < 0) {
		rc = -1;
		goto out;
	}
	testhook_pause("snapshot-convert");
	/* 3. the manifest wins: what it replaces goes (or at the next
	 * start or touch) */
	if (remove_leftovers(id, &why) < 0) {
		log_warn("snapshot %s: %s", id, why);
		free(why);
	}
	json_object_set_new(j, "converted", json_integer(util_now()));
	json_object_set_new(j, "store", json_pack("{s:I,s:I,s:I,s:I,s:I}",
	    "files", (json_int_t)st->files, "hashed", (json_int_t)st->hashed,
	    "reused", (json_int_t)0, "blobs_added",
	    (json_int_t)st->blobs_added, "bytes_added",
	    (json_int_t)st->bytes_added));
	if (jsonx_save(state, j) < 0)
		log_warn("cannot write %s: %s", state, strerror(errno));
	rc = 1;
out:
	json_decref(j);
	free(state);
	free(man);
	free(arch);
	free(store);
	return rc;
}

int
snapshot_convert(const char *id, struct snapstore_stats *st, char **cause)
{
	struct snapstore_stats st0;
	int fd, rc;

	if (!util_valid_uuid(id))
		return 0;
	if ((fd = snapshot_lock(id, 1)) < 0) {
		if (errno == ENOENT)
			return 0;
		*cause = xasprintf("cannot lock snapshot %s: %s", id,
		    strerror(errno));
		return -1;
	}
	memset(&st0, 0, sizeof(st0));
	rc = convert_locked(id, st != NULL ? st : &st0, cause);
	close(fd);
	return rc;
}

void
snapshot_convert_touch(const char *id, int convert)
{
	char *man = convert_file(id, "manifest.json"), *cause = NULL;
	struct snapstore_stats st;
	int in_store = access(man, F_OK) == 0, rc;

	free(man);
	if (in_store ? !has_leftovers(id) : !convert)
		return;
	memset(&st, 0, sizeof(st));
	rc = snapshot_convert(id, &st, &cause);
	if (rc < 0)
		log_warn("snapshot %s stays a whole archive: %s", id, cause ?
		    cause : "?");
	else if (rc == 1)
		log_info("snapshot %s converted into the store: %lld files, "
		    "%lld new blobs (%lld bytes)", id, st.files, st.blobs_added,
		    st.bytes_added);
	free(cause);
}

int
snapshot_convert_main(void)
{
	char *dir = xasprintf("%s/snapshots", node->data_dir), *cause;
	struct snapstore_stats st;
	struct dirent *de;
	DIR *d;
	int rc, failed = 0, converted = 0, settled = 0;

	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT) {
			printf("no snapshots in %s\n", node->data_dir);
			free(dir);
			return 0;
		}
		error("cannot read %s: %s", dir, strerror(errno));
		free(dir);
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!util_valid_uuid(de->d_name))
			continue;
		cause = NULL;
		memset(&st, 0, sizeof(st));
		rc = snapshot_convert(de->d_name, &st, &cause);
		if (rc < 0) {
			fprintf(stderr, "snapshot %s: not converted: %s\n",
			    de->d_name, cause ? cause : "?");
			failed++;
		} else if (rc == 1) {
			printf("snapshot %s: converted (%lld files, %lld new "
			    "blobs, %lld bytes)\n", de->d_name, st.files,
			    st.blobs_added, st.bytes_added);
			converted++;
		} else if (rc == 2) {
			printf("snapshot %s: the leftovers of its conversion "
			    "removed\n", de->d_name);
			settled++;
		}
		free(cause);
	}
	closedir(d);
	free(dir);
	printf("%d snapshots converted, %d finished, %d failed\n", converted,
	    settled, failed);
	return failed ? 1 : 0;
}
