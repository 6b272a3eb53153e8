/* A blob's stored forms (snapstore-int.h; docs/ARCHITECTURE.md,
 * "Snapshot store", *Precompressed blobs*): raw (STORE/blobs/ab/cdef…,
 * the bytes themselves, as stores before precompression hold them) or
 * packed (…cdef….z: a header, then a raw deflate stream made by a fresh
 * deflater and ended with Z_SYNC_FLUSH, so it can be spliced into any
 * deflate stream at a byte boundary). One reader yields the raw bytes
 * of either; one packer makes the packed form, and the same packer
 * deflates a raw blob on the fly for a download, so a download's bytes
 * do not depend on the form its blobs are stored in. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "snapstore-int.h"
#include "util.h"
#include "xmalloc.h"

#define PACK_MAGIC	"nuboblz1"	/* 8 bytes, then size, crc, 0 */
/* The level of a blob is chosen from its first bytes: */
#define PROBE_BYTES	(64 * 1024)
#define PROBE_MIN	(4 * 1024)	/* below this, level 1 unprobed */
#define PACK_OUT	(64 * 1024)	/* the packer's output buffer */
#define READ_IN		(64 * 1024)	/* the reader's input buffer */

/* Read up to n bytes, fewer only at the end: bytes read, or -1. */
static ssize_t
read_full(int fd, void *buf, size_t n)
{
	size_t done = 0;
	ssize_t r;

	while (done < n) {
		r = read(fd, (unsigned char *)buf + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

char *
snapstore_packed_path(const char *store, const char *hex)
{
	return xasprintf("%s/blobs/%.2s/%s.z", store, hex, hex + 2);
}

int
snapstore_blob_exists(const char *store, const char *hex)
{
	char *p = snapstore_packed_path(store, hex);
	int ok = access(p, F_OK) == 0;

	free(p);
	if (!ok) {
		p = snapstore_blob_path(store, hex);
		ok = access(p, F_OK) == 0;
		free(p);
	}
	return ok;
}

void
snapstore_le_put(unsigned char *p, uint64_t v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

uint64_t
snapstore_le_get(const unsigned char *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void
snapstore_pack_head_put(unsigned char *out, long long size, uint32_t crc)
{
	memcpy(out, PACK_MAGIC, 8);
	snapstore_le_put(out + 8, (uint64_t)size, 8);
	snapstore_le_put(out + 16, crc, 4);
	snapstore_le_put(out + 20, 0, 4);
}

int
snapstore_pack_head_get(const unsigned char *in, long long *size,
    uint32_t *crc)
{
	uint64_t s = snapstore_le_get(in + 8, 8);

	if (memcmp(in, PACK_MAGIC, 8) != 0 ||
	    snapstore_le_get(in + 20, 4) != 0 || s > INT64_MAX)
		return -1;
	*size = (long long)s;
	*crc = (uint32_t)snapstore_le_get(in + 16, 4);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Packing                                                             */

void
snapstore_pack_init(struct snapstore_pack *pk)
{
	memset(pk, 0, sizeof *pk);
}

void
snapstore_pack_release(struct snapstore_pack *pk)
{
	if (pk->zinit)
		deflateEnd(&pk->z);
	free(pk->probe);
	free(pk->zbuf);
	memset(pk, 0, sizeof *pk);
}

void
snapstore_pack_begin(struct snapstore_pack *pk, int stored,
    snapstore_out_fn out, void *arg)
{
	if (!pk->zinit) {
		/* raw deflate; memLevel 8, as zlib's default */
		if (deflateInit2(&pk->z, 1, Z_DEFLATED, -15, 8,
		    Z_DEFAULT_STRATEGY) != Z_OK)
			fatal("deflateInit2 failed");
		pk->zinit = 1;
		pk->zbuf = xmalloc(PACK_OUT);
		pk->probe = xmalloc(PROBE_BYTES);
	}
	pk->stored = stored;
	pk->chosen = 0;
	pk->nprobe = 0;
	pk->size = 0;
	pk->crc = crc32(0L, Z_NULL, 0);
	pk->out = out;
	pk->arg = arg;
	pk->level = pk->strategy = -1;
}

/* Deflate with the current settings into the output; 0, or -1 when
 * the output failed. */
static int
pack_deflate(struct snapstore_pack *pk, const unsigned char *data,
    size_t len, int flush)
{
	size_t have;
	int zr;

	pk->z.next_in = (unsigned char *)data;
	pk->z.avail_in = (uInt)len;
	do {
		pk->z.next_out = pk->zbuf;
		pk->z.avail_out = PACK_OUT;
		zr = deflate(&pk->z, flush);
		if (zr == Z_STREAM_ERROR)
			fatal("deflate failed");
		have = PACK_OUT - pk->z.avail_out;
		if (have > 0 && pk->out(pk->arg, pk->zbuf, have) < 0)
			return -1;
	} while (pk->z.avail_out == 0 || pk->z.avail_in > 0);
	return 0;
}

/* How many bytes the probe deflates to with (level, strategy) and a
 * fresh stream. */
static size_t
probe_size(struct snapstore_pack *pk, int level, int strategy)
{
	size_t total = 0;
	int zr;

	deflateReset(&pk->z);
	deflateParams(&pk->z, level, strategy);
	pk->z.next_in = pk->probe;
	pk->z.avail_in = (uInt)pk->nprobe;
	do {
		pk->z.next_out = pk->zbuf;
		pk->z.avail_out = PACK_OUT;
		zr = deflate(&pk->z, Z_FINISH);
		total += PACK_OUT - pk->z.avail_out;
	} while (zr == Z_OK);
	return total;
}

/* Choose the blob's level from its first bytes (docs/ARCHITECTURE.md
 * gives the figures): data that Huffman coding alone barely shrinks
 * (images, archives, encrypted files) goes as stored blocks; data that
 * LZ77 shrinks much further than Huffman coding alone (a database dump,
 * text) at zlib's level 1; the rest (base64, …) Huffman-only, which is
 * as small there and five times faster. Then deflate the probe. */
static int
pack_choose(struct snapstore_pack *pk)
{
	size_t n = pk->nprobe, huff, lz;

	pk->chosen = 1;
	if (pk->stored) {
		pk->level = 0;
		pk->strategy = Z_DEFAULT_STRATEGY;
	} else if (n < PROBE_MIN) {
		/* a tar header, a small file: the probes would cost more
		 * (a reset clears a 64 KiB hash table) than they could save;
		 * zlib stores a block that would not shrink anyway */
		pk->level = 1;
		pk->strategy = Z_DEFAULT_STRATEGY;
	} else if ((huff = probe_size(pk, 1, Z_HUFFMAN_ONLY)) * 20 >= n * 19) {
		pk->level = 0;
		pk->strategy = Z_DEFAULT_STRATEGY;
	} else if ((lz = probe_size(pk, 1, Z_DEFAULT_STRATEGY)) * 5 < huff * 4) {
		pk->level = 1;
		pk->strategy = Z_DEFAULT_STRATEGY;
	} else {
		pk->level = 1;
		pk->strategy = Z_HUFFMAN_ONLY;
	}
	deflateReset(&pk->z);
	deflateParams(&pk->z, pk->level, pk->strategy);
	return n > 0 ? pack_deflate(pk, pk->probe, n, Z_NO_FLUSH) : 0;
}

int
snapstore_pack_add(struct snapstore_pack *pk, const void *data, size_t len)
{
	const unsigned char *d = data;
	size_t n;

	if (len == 0)
		return 0;
	pk->crc = crc32_z(pk->crc, d, len);
	pk->size += (long long)len;
	if (!pk->chosen && pk->stored && pack_choose(pk) < 0)
		return -1;
	if (!pk->chosen) {
		n = PROBE_BYTES - pk->nprobe < len ? PROBE_BYTES - pk->nprobe :
		    len;
		memcpy(pk->probe + pk->nprobe, d, n);
		pk->nprobe += n;
		d += n;
		len -= n;
		if (pk->nprobe < PROBE_BYTES)
			return 0;
		if (pack_choose(pk) < 0)
			return -1;
	}
	while (len > 0) {
		/* avail_in is 32 bits */
		n = len < (1U << 30) ? len : (1U << 30);
		if (pack_deflate(pk, d, n, Z_NO_FLUSH) < 0)
			return -1;
		d += n;
		len -= n;
	}
	return 0;
}

int
snapstore_pack_end(struct snapstore_pack *pk)
{
	if (!pk->chosen && pack_choose(pk) < 0)
		return -1;
	/* byte aligned, not final: the next segment follows it */
	return pack_deflate(pk, NULL, 0, Z_SYNC_FLUSH);
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */

void
snapstore_blob_init(struct snapstore_blob *b)
{
	memset(b, 0, sizeof *b);
	b->fd = -1;
}

static int
blob_open_at(struct snapstore_blob *b, const char *path, int packed,
    char **why)
{
	unsigned char head[SNAPSTORE_PACK_HEAD];
	struct stat st;

	snapstore_blob_close(b);
	b->path = xstrdup(path);
	b->packed = packed;
	b->crc_run = crc32(0L, Z_NULL, 0);
	if ((b->fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		*why = xasprintf("cannot be read: %s", strerror(errno));
		return -1;
	}
	if (fstat(b->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*why = xstrdup("is not a regular file");
		return -1;
	}
	posix_fadvise(b->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	if (!packed) {
		b->size = b->zsize = st.st_size;
		return 0;
	}
	if (st.st_size < SNAPSTORE_PACK_HEAD || read_full(b->fd, head,
	    sizeof head) != (ssize_t)sizeof head ||
	    snapstore_pack_head_get(head, &b->size, &b->crc) < 0) {
		*why = xstrdup("has no packed blob's header");
		return -1;
	}
	b->zsize = st.st_size - SNAPSTORE_PACK_HEAD;
	b->zin = xmalloc(READ_IN);
	if (inflateInit2(&b->z, -15) != Z_OK)
		fatal("inflateInit2 failed");
	b->zinit = 1;
	return 0;
}

int
snapstore_blob_open_path(struct snapstore_blob *b, const char *path,
    int packed, char **why)
{
	return blob_open_at(b, path, packed, why);
}

int
snapstore_blob_open(struct snapstore_blob *b, const char *store,
    const char *hex, char **why)
{
	char *p = snapstore_packed_path(store, hex);
	int rc;

	if (access(p, F_OK) == 0) {
		rc = blob_open_at(b, p, 1, why);
		free(p);
		return rc;
	}
	free(p);
	p = snapstore_blob_path(store, hex);
	rc = blob_open_at(b, p, 0, why);
	free(p);
	if (rc < 0 && b->fd < 0)
		b->missing = 1;
	return rc;
}

ssize_t
snapstore_blob_read(struct snapstore_blob *b, void *buf, size_t max,
    char **why)
{
	ssize_t n;
	size_t got;
	uInt left, in;
	int zr;

	if (!b->packed) {
		do
			n = read(b->fd, buf, max);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			*why = xasprintf("cannot be read: %s", strerror(errno));
		if (n > 0)
			b->got += n;
		return n;
	}
	b->z.next_out = buf;
	b->z.avail_out = (uInt)(max < (1U << 30) ? max : (1U << 30));
	for (;;) {
		if (b->z.avail_in == 0 && !b->eof) {
			if ((n = read_full(b->fd, b->zin, READ_IN)) < 0) {
				*why = xasprintf("cannot be read: %s",
				    strerror(errno));
				return -1;
			}
			b->eof = n == 0;
			b->z.next_in = b->zin;
			b->z.avail_in = (uInt)n;
		}
		left = b->z.avail_out;
		in = b->z.avail_in;
		/* stops at each block's end: at the last, data_type says
		 * whether the blob ends where a segment may */
		zr = inflate(&b->z, Z_BLOCK);
		if (zr == Z_STREAM_END) {
			*why = xstrdup("is damaged: its packed bytes hold a "
			    "final deflate block");
			return -1;
		}
		if (zr != Z_OK && zr != Z_BUF_ERROR) {
			*why = xasprintf("is damaged: its packed bytes do not "
			    "inflate (%s)", b->z.msg ? b->z.msg : "?");
			return -1;
		}
		/* a call that moved: at a block's end, byte aligned, not
		 * the last block? (a call that did not would say no) */
		if (b->z.avail_out != left || b->z.avail_in != in)
			b->boundary = b->z.data_type == 128;
		/* full, or the file ended and nothing more came out */
		if (b->z.avail_out == 0 || (b->eof && b->z.avail_out == left &&
		    b->z.avail_in == in))
			break;
	}
	got = (size_t)((unsigned char *)b->z.next_out - (unsigned char *)buf);
	b->crc_run = crc32_z(b->crc_run, buf, got);
	b->got += (long long)got;
	if (b->got > b->size) {
		*why = xasprintf("is damaged: it inflates to more than the "
		    "%lld bytes its header says", b->size);
		return -1;
	}
	return (ssize_t)got;
}

int
snapstore_blob_done(struct snapstore_blob *b, char **why)
{
	if (!b->packed)
		return 0;
	if (b->got != b->size) {
		*why = xasprintf("is damaged: it inflates to %lld bytes, its "
		    "header says %lld", b->got, b->size);
		return -1;
	}
	if (b->crc_run != b->crc) {
		*why = xasprintf("is damaged: its bytes' crc32 is %08lx, its "
		    "header says %08lx", (unsigned long)b->crc_run,
		    (unsigned long)b->crc);
		return -1;
	}
	/* at a block boundary, byte aligned, no final block: spliceable */
	if (b->z.avail_in != 0 || !b->boundary) {
		*why = xstrdup("is damaged: its packed bytes do not end at a "
		    "byte-aligned block boundary");
		return -1;
	}
	return 0;
}

void
snapstore_blob_close(struct snapstore_blob *b)
{
	if (b->fd >= 0)
		close(b->fd);
	if (b->zinit)
		inflateEnd(&b->z);
	free(b->zin);
	free(b->path);
	snapstore_blob_init(b);
}
