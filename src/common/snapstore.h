/* The snapshot store (issue #16): a node's snapshot contents kept once by
 * content. STORE/blobs/ab/cdef… holds each distinct file of tree/ and
 * each database dump under its sha256; a snapshot is a manifest (JSON)
 * naming its blobs, with what a Mendix-layout archive needs to be
 * assembled again: the same members, in the same order, as
 * backup_archive_write() writes, and the same bytes every time.
 *
 * Crash safety: a blob is durable (file and folder synced) before any
 * manifest names it, and a manifest is written by rename; the sweep runs
 * under an exclusive lock that every snapshot being written holds shared,
 * and only deletes blobs that no manifest given as a root names. Layout
 * and reasons: docs/ARCHITECTURE.md, "Snapshot store". */
#ifndef NUBO_SNAPSTORE_H
#define NUBO_SNAPSTORE_H

#include <jansson.h>

#include "backup-archive.h"

/* What making a snapshot did. */
struct snapstore_stats {
	long long	 files;		/* regular files of tree/ */
	long long	 files_bytes;
	long long	 hashed;	/* files read and hashed */
	long long	 reused;	/* taken unread from the previous
					 * manifest (size, mtime, ctime, inode
					 * unchanged) */
	long long	 blobs_added;	/* new blobs written to the store */
	long long	 bytes_added;
};

struct snapstore_snap_opts {
	const char	*store;		/* STORE (created when missing) */
	const char	*files_dir;	/* the file store; missing or empty: no
					 * tree/ */
	int		 dump_fd;	/* the pg_dump -Fc output, read from 0 */
	const char	*prev;		/* the environment's previous manifest;
					 * NULL or missing: hash every file */
	const char	*manifest;	/* written atomically, last */
	const char	*model_version;	/* "" when unknown */
	long long	 created;	/* the snapshot's time (archive mtimes) */
	long long	 database_size;	/* -1: the dump's size */
	long long	 duration;	/* seconds, for .metadata */
	/* bytes of the dump and the files dealt with (read, or taken
	 * unread), of total (-1: unknown) */
	backup_progress_fn progress;
	void		*progress_arg;
	long long	 total;
};

/* Put a snapshot into the store and write its manifest. 0 with *stats
 * filled (may be NULL), or -1 with *cause; no manifest then. */
int snapstore_snapshot(const struct snapstore_snap_opts *o,
    struct snapstore_stats *stats, char **cause);

/* Which download. */
enum snapstore_kind {
	SNAPSTORE_FULL,		/* db/, tree/, .metadata, .nubo/checksums */
	SNAPSTORE_FILES,	/* tree/ only */
	SNAPSTORE_DATABASE	/* the dump itself (not a tar.gz) */
};

/* Write the download of the snapshot the manifest describes to out_fd,
 * from the store: the same bytes for the same manifest on every call
 * (fixed gzip settings, member order and headers). 0, or -1 with *cause
 * (a missing or damaged blob is named with the file it holds). */
int snapstore_archive_write(const char *store, const char *manifest,
    enum snapstore_kind kind, int out_fd, char **cause);

/* The size of that download without writing it (a dry run of the
 * writer, blobs checked as they are read; the dump's size for
 * SNAPSTORE_DATABASE): what a HEAD or a Content-Length says. 0 with
 * *size, or -1 with *cause. */
int snapstore_archive_size(const char *store, const char *manifest,
    enum snapstore_kind kind, long long *size, char **cause);

/* Mark and sweep: delete the blobs that no manifest matching roots (a
 * glob(3) pattern matching every snapshot's manifest; braces allowed:
 * a node's own snapshots and its copies of others') names, and the temp
 * files of interrupted snapshots. The roots are listed once the lock is
 * held, so a snapshot completed meanwhile is one. Deleting a snapshot =
 * removing its manifest durably, then sweeping. A root that cannot be
 * read stops the sweep before anything is deleted. 0 with *freed_blobs /
 * *freed_bytes (may be NULL), or -1 with *cause. */
int snapstore_sweep(const char *store, const char *roots,
    long long *freed_blobs, long long *freed_bytes, char **cause);

/* Blobs in the store and their total size; -1 when it cannot be read. */
int snapstore_count(const char *store, long long *blobs, long long *bytes);

/* Receiving a copy of another node's snapshot (an off-node copy):
 * only the blobs this store lacks travel, each checked against the
 * sha256 its manifest names; they are made durable before the manifest
 * is written, and the store is locked shared throughout (no sweep frees
 * a blob the copy counts on). */
struct snapstore_recv;

/* Begin receiving the snapshot whose manifest (as its node holds it) is
 * the file manifest: checked entry by entry. NULL with *cause. */
struct snapstore_recv *snapstore_recv_begin(const char *store,
    const char *manifest, char **cause);
/* The distinct blobs the manifest names that the store lacks, in the
 * manifest's order: [{sha256, size, name}] (the receiver's). */
json_t *snapstore_recv_missing(struct snapstore_recv *);
/* The next bytes fed are the blobs of batch (entries of the missing
 * list), concatenated in its order. 0, or -1 when the last batch is not
 * complete. */
int snapstore_recv_expect(struct snapstore_recv *, json_t *batch,
    char **cause);
/* Feed bytes; a blob that ends is checked (size, sha256). 0, or -1 with
 * *cause (more bytes than asked for, a damaged blob named). */
int snapstore_recv_data(struct snapstore_recv *, const void *data,
    size_t len, char **cause);
/* The batch complete: its blobs made durable and moved into the store;
 * with partial, every blob received so far listed there in manifest
 * form, a root for the sweep, so a copy killed later resumes without
 * them. 0, or -1 with *cause. */
int snapstore_recv_sync(struct snapstore_recv *, const char *partial,
    char **cause);
/* Every blob here: the manifest written (atomically, last). 0 with
 * *stats (blobs_added, bytes_added; may be NULL), or -1 with *cause. */
int snapstore_recv_commit(struct snapstore_recv *, const char *manifest,
    struct snapstore_stats *stats, char **cause);
/* End (the lock released; blobs not made durable dropped). */
void snapstore_recv_free(struct snapstore_recv *);

#endif
