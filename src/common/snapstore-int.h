/* What the files of the snapshot store share among themselves (not for
 * its users: snapstore.h). Defined in snapstore.c. */
#ifndef NUBO_SNAPSTORE_INT_H
#define NUBO_SNAPSTORE_INT_H

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <zlib.h>

/* *cause (when NULL) set to the message; -1. */
int snapstore_fail(char **cause, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* 64 lowercase hex digits: a blob's name. */
int snapstore_valid_hex(const char *s);
/* 1 when size is one a manifest may give: 0 to NUBO_SNAPSHOT_SIZE_MAX. */
int snapstore_valid_size(long long size);
/* *sum += size (a valid size) when the sum stays within
 * NUBO_SNAPSHOT_SIZE_MAX: 0; else -1, *sum unchanged (a manifest whose
 * sizes add up to more is damaged; nothing of it wraps). */
int snapstore_size_add(long long *sum, long long size);
/* STORE/blobs/ab/cdef… (caller frees). */
char *snapstore_blob_path(const char *store, const char *hex);
/* STORE/lock taken with flock(how): the fd, or -1 with *cause. */
int snapstore_lock(const char *store, int how, char **cause);
/* A manifest read and its shape checked, or NULL with *cause. */
json_t *snapstore_manifest_load(const char *path, char **cause);
/* A tree entry's path bytes when it is a safe relative path in the one
 * form of nubo's JSON, else NULL (a damaged manifest); caller frees. */
char *snapstore_entry_path(json_t *e);

/* ------------------------------------------------------------------ */
/* A blob's stored forms (snapstore-blob.c)                            */

/* A packed blob: this header (magic "nuboblz1", the raw size and the
 * crc32 of the raw bytes, little-endian, then 4 zero bytes), then a raw
 * deflate stream from a fresh deflater ended with Z_SYNC_FLUSH. */
#define SNAPSTORE_PACK_HEAD	24

/* STORE/blobs/ab/cdef….z, the packed form's name (caller frees). */
char *snapstore_packed_path(const char *store, const char *hex);
/* 1 when blob hex is in the store, in either form. */
int snapstore_blob_exists(const char *store, const char *hex);
/* n bytes of v, little-endian, and back. */
void snapstore_le_put(unsigned char *p, uint64_t v, int n);
uint64_t snapstore_le_get(const unsigned char *p, int n);
void snapstore_pack_head_put(unsigned char *out, long long size,
    uint32_t crc);
/* 0 with *size and *crc, or -1: not a packed blob's header. */
int snapstore_pack_head_get(const unsigned char *in, long long *size,
    uint32_t *crc);

/* Where packed bytes go: 0, or -1 to stop. */
typedef int (*snapstore_out_fn)(void *arg, const void *data, size_t len);

/* One segment deflated by a fresh raw deflater (reset, not reallocated,
 * between segments), its level chosen from its first 64 KiB unless
 * stored (level 0), ended with Z_SYNC_FLUSH: the same bytes in give the
 * same bytes out. init (no allocation), then begin, add…, end per
 * segment, release. */
struct snapstore_pack {
	z_stream	 z;
	int		 zinit;
	int		 stored;
	int		 chosen;
	int		 level;		/* what was chosen */
	int		 strategy;
	unsigned char	*probe;		/* the first bytes, until chosen */
	size_t		 nprobe;
	unsigned char	*zbuf;
	uLong		 crc;		/* of the raw bytes */
	long long	 size;
	snapstore_out_fn out;
	void		*arg;
};
void snapstore_pack_init(struct snapstore_pack *);
void snapstore_pack_begin(struct snapstore_pack *, int stored,
    snapstore_out_fn out, void *arg);
/* 0, or -1 when out failed. */
int snapstore_pack_add(struct snapstore_pack *, const void *data,
    size_t len);
int snapstore_pack_end(struct snapstore_pack *);
void snapstore_pack_release(struct snapstore_pack *);

/* A blob opened for its raw bytes, whatever its stored form: every
 * reader of blobs goes through this. init, open, read… to 0, done (a
 * packed blob's size, crc32 and end checked), close. */
struct snapstore_blob {
	int		 fd;
	int		 packed;
	int		 missing;	/* open: in neither form */
	char		*path;
	long long	 size;		/* raw bytes (packed: its header's) */
	long long	 zsize;		/* stored bytes after the header */
	uint32_t	 crc;		/* packed: its header's */
	uLong		 crc_run;
	long long	 got;
	z_stream	 z;
	int		 zinit;
	int		 eof;
	int		 boundary;	/* inflate stopped where a segment may
					 * end */
	unsigned char	*zin;
};
void snapstore_blob_init(struct snapstore_blob *);
/* 0, or -1 with *why ("cannot be read: …", "has no packed blob's
 * header"; b->missing when in neither form). */
int snapstore_blob_open(struct snapstore_blob *, const char *store,
    const char *hex, char **why);
/* The file at path, packed or not (fsck walks the folders). */
int snapstore_blob_open_path(struct snapstore_blob *, const char *path,
    int packed, char **why);
/* Raw bytes read (up to max), 0 at the end, -1 with *why. */
ssize_t snapstore_blob_read(struct snapstore_blob *, void *buf, size_t max,
    char **why);
/* After the end: 0, or -1 with *why (a packed blob whose size, crc32
 * or end is not its header's). */
int snapstore_blob_done(struct snapstore_blob *, char **why);
void snapstore_blob_close(struct snapstore_blob *);

/* ------------------------------------------------------------------ */
/* The dump as a chain: a base and deltas (snapstore-delta.c)          */

/* Deltas on one base at most; a longer chain starts a new base. */
#define SNAPSTORE_CHAIN_MAX	64
/* Units (rows) of a previous dump indexed at most (about 40 bytes of
 * memory each); a bigger dump is stored as chunks. */
#define SNAPSTORE_UNITS_MAX	(8 * 1024 * 1024)
/* Dumps under this are stored as chunks only: a delta would save less
 * than its chain costs to read. */
#define SNAPSTORE_DELTA_MIN	(4LL * 1024 * 1024)

/* The download copy of a chain's dump (snapstore.c, chain_path()), when
 * there is one, inflated and checked against the dump's size and crc32
 * (iobuf: NUBO_IO_CHUNK bytes): 0 when none or whole; 1 when it was not,
 * and is removed, with *why (caller frees) saying what was wrong. */
int snapstore_chain_check(const char *store, json_t *dump,
    unsigned char *iobuf, char **why);

/* 0 when a manifest's dump is well formed: named by its sha256, its
 * base's chunks add up (to its size when there is no delta), and its
 * deltas each name a blob (and the dump they apply to, "of", where they
 * do), the last one making its size, with its crc32 and the segments
 * its download is cut into (each's size, deflated size and crc32,
 * adding up to the dump); else -1 with *cause. Every digest is 64
 * lowercase hex digits (they name files). */
int snapstore_dump_chain_ok(json_t *dump, char **cause);

/* A dump read back, its chain applied as a stream: each blob read once,
 * in order. Every blob's size (and a packed one's crc32) is checked as
 * it ends; the contents are not hashed here. */
struct snapstore_dver;
struct snapstore_dver *snapstore_dver_open(const char *store, json_t *dump,
    char **cause);
/* buf NULL: the bytes dropped. */
long long snapstore_dver_read(struct snapstore_dver *, void *buf,
    long long n, char **cause);
void snapstore_dver_close(struct snapstore_dver *);

/* The previous version's units, each by a keyed hash and its length:
 * read back whole and checked against its manifest's crc32 (sha256 for
 * a dump recorded before crc32s were). NULL with *cause. (Freed by
 * snapstore_dindex_free(), snapstore.h.) */
struct snapstore_dindex *snapstore_dindex_build(const char *store,
    json_t *dump, char **cause);
/* The sha256 of the dump x indexes (as its manifest names it). */
const char *snapstore_dindex_of(const struct snapstore_dindex *x);

struct snapstore_delta_stats {
	long long	 copied;	/* bytes taken from the previous */
	long long	 inserted;	/* bytes in the delta */
	long long	 ops;
};

/* A delta of a new version of out_size bytes, fed in pieces, against the
 * index; the delta blob's raw bytes to out. feed and end: 0, or -1 when
 * out failed. */
struct snapstore_denc;
struct snapstore_denc *snapstore_denc_begin(struct snapstore_dindex *,
    long long out_size, snapstore_out_fn out, void *arg);
int snapstore_denc_feed(struct snapstore_denc *, const void *data,
    size_t len);
int snapstore_denc_end(struct snapstore_denc *,
    struct snapstore_delta_stats *);
void snapstore_denc_free(struct snapstore_denc *);

#endif
