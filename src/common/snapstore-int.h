/* What the files of the snapshot store share among themselves (not for
 * its users: snapstore.h). Defined in snapstore.c. */
#ifndef NUBO_SNAPSTORE_INT_H
#define NUBO_SNAPSTORE_INT_H

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <zlib.h>

/* 64 lowercase hex digits: a blob's name. */
int snapstore_valid_hex(const char *s);
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

#endif
