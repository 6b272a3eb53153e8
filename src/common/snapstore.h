/* The snapshot store (issue #16): a node's snapshot contents kept once by
 * content. STORE/blobs/ab/cdef….z holds each distinct file of tree/ and
 * each chunk of a database dump under its sha256, packed: deflated once,
 * ready to be spliced into a download (stores written before packing
 * hold raw blobs, STORE/blobs/ab/cdef…, which keep working; every reader
 * goes through one function, snapstore-int.h); a snapshot is a
 * manifest (JSON) naming its blobs, with what a Mendix-layout archive
 * needs to be assembled again: the same members, in the same order, as
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
	int		 dump_delta;	/* the dump went in as a delta on the
					 * previous snapshot's */
	long long	 dump_inserted;	/* the delta's new bytes */
	int		 dump_index_early; /* on the index made while pg_dump
					 * ran (snapstore_prev_dump_index()) */
};

/* The previous dump's rows, indexed for a delta on it. */
struct snapstore_dindex;

struct snapstore_snap_opts {
	const char	*store;		/* STORE (created when missing) */
	const char	*files_dir;	/* the file store; missing or empty: no
					 * tree/ */
	int		 dump_fd;	/* the pg_dump -Fc output, read from 0 */
	/* When set, the dump is still being made (dump_fd unused): the
	 * files are put first, then this waits for it and gives its fd,
	 * its size and the seconds the snapshot took until it was done
	 * (duration's); 0, or -1 with *cause. total counts dump_estimate
	 * bytes for the dump until then. */
	int		(*dump_wait)(void *arg, int *fd, long long *size,
			    long long *duration, char **cause);
	void		*dump_wait_arg;
	long long	 dump_estimate;
	const char	*prev;		/* the environment's previous manifest;
					 * NULL or missing: hash every file */
	/* prev's dump read back and indexed before (while pg_dump ran:
	 * snapstore_prev_dump_index()), or NULL; taken over */
	struct snapstore_dindex *prev_dump_index;
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

/* Put a snapshot into the store and write its manifest: the files, then
 * (dump_wait'ed for, when given) the dump. 0 with *stats filled (may be
 * NULL), or -1 with *cause; no manifest then. */
int snapstore_snapshot(const struct snapstore_snap_opts *o,
    struct snapstore_stats *stats, char **cause);

/* The dump of manifest prev read back from store and indexed, ahead of
 * the snapshot that may store its own dump as a delta on it — taken
 * without the store's lock, so the snapshot checks that what it names is
 * still there; NULL when no delta would build on it (or it does not read
 * back: the snapshot finds out again, and why). */
struct snapstore_dindex *snapstore_prev_dump_index(const char *store,
    const char *prev);
void snapstore_dindex_free(struct snapstore_dindex *);

/* Taking a snapshot from a live database (snapstore-take.c). */
struct snapstore_take_opts {
	const char	*dburl;		/* the database to pg_dump */
	const char	*spool_dir;	/* where the dump is spooled */
	const char	*files_dir;	/* as snapstore_snap_opts */
	const char	*store;
	const char	*prev;
	const char	*manifest;
	const char	*model_version;	/* NULL: "" */
	long long	 created;
	/* the files' total, for progress (NULL: not counted) */
	long long	(*tree_size)(const char *dir);
	backup_progress_fn progress;
	void		*progress_arg;
};

/* What taking it did. */
struct snapstore_taken {
	struct snapstore_stats stats;
	long long	 dump_size;
	long long	 dump_ms;	/* pg_dump's wall time (the early
					 * index's, when that took longer) */
	long long	 index_ms;	/* the previous dump read back and
					 * indexed, while pg_dump ran */
	long long	 database_size;	/* pg_database_size(), -1: unknown */
	long long	 duration;	/* seconds until the dump was done */
	long long	 archive_size;	/* the full download's bytes */
};

/* pg_dump the database into a spool, put it and the files into the
 * store, write the manifest, then find the full download's size by a dry
 * run of its writer (a failure there removes the manifest). 0 with *t, or
 * -1 with *cause. */
int snapstore_take(const struct snapstore_take_opts *o,
    struct snapstore_taken *t, char **cause);

struct snapstore_import_opts {
	const char	*store;		/* STORE (created when missing) */
	int		 archive_fd;	/* a Mendix-layout .tar.gz, read from
					 * where it is to its end */
	const char	*manifest;	/* written atomically, last */
	const char	*pg_restore;	/* backup_read_opts.pg_restore: the
					 * dump checked with pg_restore
					 * --list; NULL: its PGDMP magic */
	backup_progress_fn progress;	/* compressed bytes read */
	void		*progress_arg;
};

/* Put the snapshot an archive holds into the store and write its
 * manifest, as snapstore_snapshot() would have for the same contents:
 * each tree/ file a blob (modes and mtimes from its member, the manifest
 * in the order a snapshot walks the folder), the dump cut into the same
 * chunks; created is db/db.backup's mtime (what backup_archive_write()
 * gives every member it makes up), model_version, duration and the
 * sizes from .metadata. The archive is read once, through
 * backup_archive_read() with every check it makes; the manifest is
 * written only when all of them held.
 * 0 with *info (may be NULL) and *stats (may be NULL) filled;
 * -1 when the archive is refused, *cause the reader's reason;
 * -2 when the store failed (disk full, …), *cause saying so.
 * On failure there is no manifest; blobs already moved into the store
 * are freed by the next sweep. */
int snapstore_import(const struct snapstore_import_opts *o,
    struct backup_info *info, struct snapstore_stats *stats, char **cause);

/* Which download. */
enum snapstore_kind {
	SNAPSTORE_FULL,		/* db/, tree/, .metadata, .nubo/checksums */
	SNAPSTORE_FILES,	/* tree/ only */
	SNAPSTORE_DATABASE	/* the dump itself (not a tar.gz) */
};

/* Write the download of the snapshot the manifest describes to out_fd,
 * from the store: the same bytes for the same manifest on every call
 * and whatever form its blobs are stored in (one gzip member of
 * segments: docs/ARCHITECTURE.md, "Snapshot store"). Packed blobs are
 * spliced unread by this process (no inflate, no re-hash): a blob
 * damaged on disk makes bytes whose gzip crc32 fails at the client; a
 * missing blob, one whose size is not the manifest's and a raw blob
 * (re-hashed as it is deflated) fail the write, naming the file. 0, or
 * -1 with *cause. */
int snapstore_archive_write(const char *store, const char *manifest,
    enum snapstore_kind kind, int out_fd, char **cause);

/* The same download from byte from on (a Range): segments wholly
 * before it are not made — a packed blob's is not even read. */
int snapstore_archive_write_from(const char *store, const char *manifest,
    enum snapstore_kind kind, long long from, int out_fd, char **cause);

/* The same archive — members, headers, contents — for a reader on the
 * same host, a restore: packed blobs spliced as they are (the reader
 * inflates them once), the rest as gzip's stored blocks (no deflate to
 * be undone). Not the download's bytes. Blobs are not re-hashed here:
 * the reader checks every file against .nubo/checksums and the gzip
 * crc32; when it fails, snapstore_verify() names the file. 0, or -1
 * with *cause. */
int snapstore_archive_stream(const char *store, const char *manifest,
    enum snapstore_kind kind, int out_fd, char **cause);

/* That stream of the full archive made into a pipe by a thread of its
 * own, for a restore in this process to read as it reads an
 * archive.tar.gz: the pipe's read end with *sp, or -1 with *cause.
 * snapstore_pipe_end() closes the read end (the writer stops at its
 * next write), waits for the thread and returns why the writer failed
 * for a reason of its own (a blob missing or damaged, named) — or, when
 * the reader failed (reader_failed) and the writer did not, the file
 * whose blob is damaged (snapstore_verify()) — else NULL. */
struct snapstore_pipe;
int snapstore_pipe_start(const char *store, const char *manifest,
    struct snapstore_pipe **sp, char **cause);
char *snapstore_pipe_end(struct snapstore_pipe *sp, int rfd,
    int reader_failed);

/* Every blob manifest m names, in order — the dump's (its chunks, then
 * the deltas on them) and tree/'s files — to fn(arg, sha256, size,
 * member); -1 with *cause at the first entry that is not well formed,
 * or when fn returns -1. */
int snapstore_manifest_blobs(json_t *m, int (*fn)(void *, const char *,
    long long, const char *), void *arg, char **cause);

/* Re-hash every blob a download of kind reads (inflating packed
 * ones): 0 when all are whole, or -1 with *cause naming the first file
 * whose blob is damaged or missing (as a download would). What a
 * restore whose reader failed asks, to say which file broke it. */
int snapstore_verify(const char *store, const char *manifest,
    enum snapstore_kind kind, char **cause);

/* The size of that download without writing it: the segments' sizes,
 * a packed blob's from its file's size (not read), the tar headers and
 * raw blobs deflated and counted (the dump's size for
 * SNAPSTORE_DATABASE): what a HEAD or a Content-Length says. 0 with
 * *size, or -1 with *cause. */
int snapstore_archive_size(const char *store, const char *manifest,
    enum snapstore_kind kind, long long *size, char **cause);

/* An off-node copy's wire: the blobs listed ([{sha256, size}], each
 * of that size) in order, to out_fd, in one of three forms:
 *  RAW     their raw bytes, concatenated;
 *  GZIP    one gzip member made as a download is (packed blobs spliced
 *          unread, raw ones deflated here), which the receiver inflates;
 *  PACKED  each blob as a packed file (snapstore-int.h: the header, then
 *          the deflate segment), preceded by its length in bytes (8,
 *          little-endian): packed blobs spliced unread, raw ones packed
 *          here (twice: counted first). The receiver keeps the bytes as
 *          they come (snapstore_recv_packed()): nothing is deflated
 *          again on either side.
 * With out_fd -1 only the size is counted. *size (may be NULL) gets the
 * bytes made. 0, or -1 with *cause (a blob missing, damaged or of
 * another size, named by its sha256). */
enum snapstore_wire {
	SNAPSTORE_WIRE_RAW,
	SNAPSTORE_WIRE_GZIP,
	SNAPSTORE_WIRE_PACKED,
};
/* The PACKED form's media type (what a receiver asks for in Accept). */
#define SNAPSTORE_WIRE_PACKED_TYPE	"application/x-nubo-packed-blobs"
int snapstore_blobs_write(const char *store, json_t *blobs,
    enum snapstore_wire form, int out_fd, long long *size, char **cause);

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

/* ------------------------------------------------------------------ */
/* Checking the store (snapstore-fsck.c)                               */

/* A snapshot's file that a blob holds: which snapshot (the name of its
 * manifest's folder, the snapshot's id), whether that manifest is a copy
 * of it (its folder is under a folder named copies/: another node's
 * snapshot kept here) and which member of its archive ("tree/<path>",
 * the path as nubo's JSON names files, or "db/db.backup"). */
struct snapstore_fsck_ref {
	char		*snapshot;
	int		 copy;
	char		*file;
};

/* A damaged or missing blob and what it breaks. */
struct snapstore_fsck_blob {
	char		 sha256[65];
	char		*why;		/* damaged: what is wrong with it */
	char		*quarantine;	/* where it is now under STORE/quarantine
					 * (damaged: moved there by this run;
					 * missing: left there by an earlier
					 * one), NULL: not there */
	struct snapstore_fsck_ref *refs;	/* the files it holds */
	size_t		 nrefs;
};

/* A manifest that could not be read: its snapshot cannot be checked. */
struct snapstore_fsck_bad {
	char		*manifest;
	char		*why;
};

/* What snapstore_fsck() found; snapstore_fsck_release() frees it. */
struct snapstore_fsck {
	long long	 blobs;		/* blobs re-hashed */
	long long	 bytes;
	long long	 snapshots;	/* manifests read */
	long long	 quarantined;	/* blobs moved to quarantine now */
	struct snapstore_fsck_blob *damaged;	/* sorted by sha256 */
	size_t		 ndamaged;
	struct snapstore_fsck_blob *missing;	/* named, not in blobs/ */
	size_t		 nmissing;
	struct snapstore_fsck_bad *bad;
	size_t		 nbad;
	/* download copies of chains (snapstore_chain_check()) found
	 * damaged and removed: no snapshot broken, not damage found */
	struct snapstore_fsck_bad *dropped;
	size_t		 ndropped;
	double		 seconds;
};

/* Re-hash every blob of the store; a blob whose bytes do not hash to
 * its name, or that cannot be read, is moved to STORE/quarantine/
 * (durably; never deleted). Then read every manifest matching roots (as
 * snapstore_sweep() takes it) and say which snapshots' files each
 * damaged blob held, and which blobs they name that are not in the
 * store (missing). Holds the store's lock shared: snapshots go on being
 * taken meanwhile, sweeps wait. 0 with *r filled (damage or not), or -1
 * with *cause when the check could not run. */
int snapstore_fsck(const char *store, const char *roots,
    struct snapstore_fsck *r, char **cause);
void snapstore_fsck_release(struct snapstore_fsck *r);
/* fsck(8)'s exit status for r: 0 clean, 1 damage found. */
int snapstore_fsck_status(const struct snapstore_fsck *r);
/* r as JSON: {blobs, bytes, snapshots, quarantined, seconds, damaged:
 * [{sha256, why, quarantine, files: [{snapshot, file}]}], missing: […],
 * bad_manifests: [{manifest, why}], download_copies_removed: [{manifest,
 * why}]}. */
json_t *snapstore_fsck_json(const struct snapstore_fsck *r);

/* Before restoring or downloading a snapshot: 0 when every blob the
 * manifest names (for that kind of download) is in the store (a stat
 * each, not a re-hash), or -1 with *cause naming the files whose blobs
 * are not there (quarantined by fsck, or missing). */
int snapstore_present(const char *store, const char *manifest,
    enum snapstore_kind kind, char **cause);

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
/* Feed bytes of the PACKED wire form (snapstore_blobs_write()): each
 * blob's packed file is written as it comes, then inflated from there
 * to check it (the header, the deflate stream's end, size and sha256);
 * kept as it is when sound. 0, or -1 with *cause (more bytes than asked
 * for, a length out of bounds, a damaged blob named). */
int snapstore_recv_packed(struct snapstore_recv *, const void *data,
    size_t len, char **cause);
/* The batch complete: its blobs made durable and moved into the store;
 * with partial, every blob received so far listed there in manifest
 * form, a root for the sweep, so a copy killed later resumes without
 * them. 0, or -1 with *cause. */
int snapstore_recv_sync(struct snapstore_recv *, const char *partial,
    char **cause);
/* Every blob here: the manifest file snapstore_recv_begin() read moved
 * to manifest, last (made durable first): the source's bytes as they
 * came, not written again. 0 with *stats (blobs_added, bytes_added; may
 * be NULL), or -1 with *cause. */
int snapstore_recv_commit(struct snapstore_recv *, const char *manifest,
    struct snapstore_stats *stats, char **cause);
/* End (the lock released; blobs not made durable dropped). */
void snapstore_recv_free(struct snapstore_recv *);
/* The download copy of the chain whose latest snapshot the manifest is,
 * made where the snapshot was not taken (an off-node copy's target): its
 * dump read back whole into a spool, cut and deflated as the snapshot
 * did, each segment checked against the manifest's, then moved into
 * chains/; the copy of the dump it built on (its last delta's "of")
 * goes. room (may be NULL) is asked first for the bytes it will write
 * (the dump, then the copy), and refuses with -1 and *cause. 1 made, 0
 * none to make (no chain, or one there), -1 with *cause (a damaged
 * manifest — a dump's sha256 or "of" that is not 64 lowercase hex
 * digits among them —, no room, a dump that does not cut as its
 * manifest says; nothing kept: it is only ever a faster way to the same
 * bytes). */
int snapstore_chain_build(const char *store, const char *manifest,
    int (*room)(long long need, char **cause), char **cause);

#endif
