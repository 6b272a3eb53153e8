/* The snapshot store: content-addressed blobs, manifests, the archive
 * assembled again from them, and the sweep (snapstore.h). */
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <glob.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "backup-archive.h"
#include "buf.h"
#include "jsonx.h"
#include "nubo_limits.h"
#include "snapstore.h"
#include "snapstore-int.h"
#include "snapstore-put.h"
#include "util.h"
#include "xmalloc.h"

#define MANIFEST_FORMAT	1
#define MANIFEST_MAX	(256LL * 1024 * 1024)	/* a manifest's size cap */
#define DUMP_NAME	"db/db.backup"
#define CHECKSUMS_NAME	".nubo/checksums"
/* New blobs synced and moved into blobs/ together, at most. */
#define PENDING_MAX	4096
/* Up to this many new blobs are synced one file at a time; more with one
 * syncfs() (see put_sync_data()). */
#define SYNC_FILES_MAX	64

/* the store's files share one (snapstore-int.h) */
#define fail	snapstore_fail

/* A manifest dump's blobs: its base's chunks, then its deltas. */
static const char *const dump_blob_keys[] = { "chunks", "deltas" };

static int
valid_hex(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != 64)
		return 0;
	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static char *
blob_path(const char *store, const char *hex)
{
	return xasprintf("%s/blobs/%.2s/%s", store, hex, hex + 2);
}

/* STORE/lock taken shared (writing a snapshot) or exclusive (sweeping);
 * the fd, or -1 with *cause. The kernel drops it when a process dies. */
static int
store_lock(const char *store, int how, char **cause)
{
	char *p = xasprintf("%s/lock", store);
	int fd;

	fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, how) < 0) {
		fail(cause, "cannot lock the snapshot store '%s': %s", store,
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	free(p);
	return fd;
}

static int
store_prepare(const char *store, char **cause)
{
	char *b = xasprintf("%s/blobs", store), *t = xasprintf("%s/tmp", store);
	int rc = 0;

	if (util_mkdir_p(b, 0700) < 0 || util_mkdir_p(t, 0700) < 0)
		rc = fail(cause, "cannot create the snapshot store '%s': %s",
		    store, strerror(errno));
	free(b);
	free(t);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Blobs                                                               */

struct put {
	const char	*store;
	unsigned char	*iobuf;
	json_t		*pending;	/* new blobs in tmp/: sha256 → tmp path */
	unsigned char	 dirty[256];	/* blobs/xx renamed into, not synced */
	int		 blobs_dirty;	/* blobs/ got a new folder */
	struct snapstore_stats *st;
	const struct snapstore_snap_opts *o;
	long long	 done;		/* bytes dealt with, for progress */
	struct snapstore_pack pk;	/* put_fd()'s packer */
	int		 werr;		/* errno of a blob that could not be
					 * written: no manifest then */
	struct snapstore_dindex *early;	/* o->prev_dump_index, not yet used */
	/* a chain's download copy (chain_path()): in tmp/, for the dump
	 * whose sha256 is keep_hex; the one of the dump it builds on goes
	 * once the manifest is written */
	char		*keep_tmp;
	int		 keep_fd;
	char		 keep_hex[65];
	char		 keep_prev[65];
	long long	 total;		/* of progress: o->total, the dump's
					 * size once known */
};

static void
put_progress(struct put *p, long long n)
{
	p->done += n;
	if (p->o != NULL && p->o->progress != NULL)
		p->o->progress(p->o->progress_arg, p->done, p->total);
}

/* A new blob being written to the store's tmp/ while it is hashed: its
 * raw bytes first (most blobs a snapshot meets are in the store already
 * — the dump's unchanged chunks are read and cut every night — and only
 * a new one is worth deflating), packed by blob_pack() once it is known
 * to be new. */
struct blob_w {
	EVP_MD_CTX	*mc;
	int		 fd;
	char		*tmp;
	long long	 size;
	struct snapstore_pack *pk;	/* the owner's, reused blob to blob */
	int		 werr;
};

static int
blob_begin(struct put *p, struct blob_w *b, struct snapstore_pack *pk,
    char **cause)
{
	char *rnd = util_random_hex(8);

	b->tmp = xasprintf("%s/tmp/%s", p->store, rnd);
	free(rnd);
	b->size = 0;
	b->werr = 0;
	b->pk = pk;
	b->mc = EVP_MD_CTX_new();
	EVP_DigestInit_ex(b->mc, EVP_sha256(), NULL);
	b->fd = open(b->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (b->fd < 0)
		return fail(cause, "cannot create '%s': %s", b->tmp,
		    strerror(errno));
	return 0;
}

static int
blob_add(struct blob_w *b, const void *data, size_t len, char **cause)
{
	EVP_DigestUpdate(b->mc, data, len);
	if (util_write_all(b->fd, data, len) < 0)
		return fail(cause, "cannot write '%s': %s", b->tmp,
		    strerror(errno));
	b->size += (long long)len;
	return 0;
}

static int
pack_out(void *arg, const void *data, size_t len)
{
	return util_write_all(*(int *)arg, data, len);
}

/* The raw bytes written to b->tmp packed into b->tmp.z (snapstore-int.h:
 * the header, written last, then the deflate stream); b->tmp is then
 * the packed file. 0, or -1 with b->werr. */
static int
blob_pack(struct blob_w *b)
{
	unsigned char head[SNAPSTORE_PACK_HEAD], *buf = xmalloc(64 * 1024);
	char *z = xasprintf("%s.z", b->tmp);
	off_t off = 0;
	ssize_t n = 0;
	int fd, rc = -1;

	memset(head, 0, sizeof head);
	fd = open(z, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || util_write_all(fd, head, sizeof head) < 0)
		goto out;
	snapstore_pack_begin(b->pk, 0, pack_out, &fd);
	while ((n = pread(b->fd, buf, 64 * 1024, off)) > 0) {
		if (snapstore_pack_add(b->pk, buf, (size_t)n) < 0)
			goto out;
		off += n;
	}
	if (n < 0 || off != b->size || snapstore_pack_end(b->pk) < 0)
		goto out;
	snapstore_pack_head_put(head, b->size, (uint32_t)b->pk->crc);
	if (pwrite(fd, head, sizeof head, 0) != (ssize_t)sizeof head)
		goto out;
	rc = 0;
out:
	if (rc < 0)
		b->werr = errno ? errno : EIO;
	if (fd >= 0)
		close(fd);
	/* the raw bytes go; b->tmp names what is kept */
	unlink(b->tmp);
	if (rc == 0) {
		free(b->tmp);
		b->tmp = z;
	} else {
		unlink(z);
		free(z);
	}
	free(buf);
	return rc;
}

/* b's sha256 into hex (65 bytes). */
static void
blob_digest(struct blob_w *b, char *hex)
{
	unsigned char md[32];

	EVP_DigestFinal_ex(b->mc, md, NULL);
	util_hex(md, 32, hex);
}

/* 1 when the blob hex is new: neither in the store nor pending. */
static int
blob_new(struct put *p, const char *hex)
{
	return !snapstore_blob_exists(p->store, hex) &&
	    json_object_get(p->pending, hex) == NULL;
}

/* Finish b, whose sha256 hex is (NULL: not kept): pending when new,
 * else its tmp goes. */
static void
blob_finish(struct put *p, struct blob_w *b, const char *hex)
{
	int kept = 0;

	if (hex != NULL && blob_new(p, hex)) {
		/* a blob that cannot be written leaves no manifest
		 * (manifest_put() says why) */
		if (b->fd < 0 || blob_pack(b) < 0) {
			if (p->werr == 0)
				p->werr = b->werr ? b->werr : EIO;
		} else {
			json_object_set_new(p->pending, hex,
			    json_string(b->tmp));
			p->st->blobs_added++;
			p->st->bytes_added += b->size;
			kept = 1;
		}
	}
	if (b->fd >= 0)
		close(b->fd);
	if (!kept)
		unlink(b->tmp);
	EVP_MD_CTX_free(b->mc);
	b->mc = NULL;
	free(b->tmp);
	b->tmp = NULL;
	b->fd = -1;
}

/* Finish b: with keep, its sha256 into hex (65 bytes) and the blob
 * pending, unless the store or this snapshot has it already. put_sync()
 * makes pending blobs durable and moves them into blobs/ before any
 * manifest names them: a blob under blobs/ is always complete, so its
 * presence is trusted. Without keep, or when not needed, tmp goes. */
static void
blob_end(struct put *p, struct blob_w *b, int keep, char *hex)
{
	if (keep)
		blob_digest(b, hex);
	blob_finish(p, b, keep ? hex : NULL);
}

/* Read fd to its end into one blob; *size gets the bytes read. */
static int
put_fd(struct put *p, int fd, const char *what, char *hex, long long *size,
    char **cause)
{
	struct blob_w b;
	ssize_t n;

	if (blob_begin(p, &b, &p->pk, cause) < 0) {
		blob_end(p, &b, 0, NULL);
		return -1;
	}
	for (;;) {
		n = read(fd, p->iobuf, NUBO_IO_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail(cause, "cannot read '%s': %s", what, strerror(errno));
		if (n <= 0)
			break;
		if (blob_add(&b, p->iobuf, (size_t)n, cause) < 0) {
			n = -1;
			break;
		}
		put_progress(p, n);
	}
	*size = b.size;
	blob_end(p, &b, n == 0, hex);
	return n == 0 ? 0 : -1;
}

/* Content-defined chunks of the dump (a gear rolling hash, as FastCDC):
 * a boundary where the hash's top CHUNK_BITS bits are zero, no chunk
 * under CHUNK_MIN nor over CHUNK_MAX. A change inside a table's data
 * moves the boundaries near it only, so the rest of the dump's chunks
 * are the same blobs as the night before. */
#define CHUNK_MIN	(256 * 1024)
#define CHUNK_BITS	20			/* 1 MiB between boundaries */
#define CHUNK_MAX	(4 * 1024 * 1024)

static uint64_t gear[256];
static pthread_once_t gear_once = PTHREAD_ONCE_INIT;

static void
gear_fill(void)
{
	uint64_t x = 0x6e75626f2d636463ULL;	/* fixed: the same boundaries
						 * on every node and build */
	int i;

	for (i = 0; i < 256; i++) {
		/* splitmix64 */
		uint64_t z = (x += 0x9e3779b97f4a7c15ULL);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		gear[i] = z ^ (z >> 31);
	}
}

/* The table, filled once (two snapshots starting together: neither cuts
 * with half of it). */
static void
gear_init(void)
{
	pthread_once(&gear_once, gear_fill);
}

/* Where the chunk being cut ends: the rolling hash and its length. */
struct cdc {
	uint64_t	 h;
	long long	 len;
};

/* The bytes of data that belong to the chunk being cut: up to and with
 * its boundary (*cut 1, k ready for the next chunk), or all of them. */
static size_t
cdc_scan(struct cdc *k, const unsigned char *data, size_t n, int *cut)
{
	const uint64_t mask = ~0ULL << (64 - CHUNK_BITS);
	size_t i;

	for (i = 0; i < n; i++) {
		k->h = (k->h << 1) + gear[data[i]];
		if (k->len + (long long)(i + 1) < CHUNK_MIN)
			continue;
		if ((k->h & mask) != 0 && k->len + (long long)(i + 1) <
		    CHUNK_MAX)
			continue;
		k->h = 0;
		k->len = 0;
		*cut = 1;
		return i + 1;
	}
	k->len += (long long)n;
	*cut = 0;
	return n;
}

/* A new chunk's packing (blob_pack(): its raw file deflated into its
 * .z) on a thread beside the chunker, while the next chunk is read,
 * hashed and cut: on a first snapshot every chunk is new, and the
 * deflating was half of the dump's put, after pg_dump (10 MB app:
 * docs/ARCHITECTURE.md, "Snapshot store"). At most PACKER_QUEUE chunks
 * wait (their raw files in tmp/); the chunker waits for all of them at
 * its end, before anything makes pending blobs durable. */
#define PACKER_QUEUE	4

struct packed_w {
	struct blob_w	 b;
	char		 hex[65];
};

struct packer {
	pthread_t	 t;
	int		 started;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct packed_w	*q[PACKER_QUEUE];
	size_t		 head, n;
	int		 closing;
	struct snapstore_pack pk;
	int		 werr;		/* the first pack that failed */
	json_t		*failed;	/* their sha256s */
};

static void *
packer_run(void *arg)
{
	struct packer *k = arg;
	struct packed_w *w;

	pthread_mutex_lock(&k->mu);
	for (;;) {
		while (k->n == 0 && !k->closing)
			pthread_cond_wait(&k->cv, &k->mu);
		if (k->n == 0)
			break;
		w = k->q[k->head];
		pthread_mutex_unlock(&k->mu);
		w->b.pk = &k->pk;
		if (blob_pack(&w->b) < 0) {
			pthread_mutex_lock(&k->mu);
			if (k->werr == 0)
				k->werr = w->b.werr ? w->b.werr : EIO;
			json_array_append_new(k->failed, json_string(w->hex));
			pthread_mutex_unlock(&k->mu);
		}
		close(w->b.fd);
		free(w->b.tmp);
		free(w);
		pthread_mutex_lock(&k->mu);
		k->head = (k->head + 1) % PACKER_QUEUE;
		k->n--;
		pthread_cond_broadcast(&k->cv);
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

static void
packer_start(struct packer *k)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	snapstore_pack_init(&k->pk);
	k->failed = json_array();
	k->started = pthread_create(&k->t, NULL, packer_run, k) == 0;
}

/* Hand b (new, sha256 hex) to the packer: pending under the name its
 * packed file will have. 0, or -1 when there is no packer. */
static int
packer_push(struct put *p, struct packer *k, struct blob_w *b,
    const char *hex)
{
	struct packed_w *w;
	char *z;

	if (!k->started || b->fd < 0)
		return -1;
	w = xcalloc(1, sizeof(*w));
	w->b = *b;
	snprintf(w->hex, sizeof w->hex, "%s", hex);
	z = xasprintf("%s.z", b->tmp);
	json_object_set_new(p->pending, hex, json_string(z));
	free(z);
	p->st->blobs_added++;
	p->st->bytes_added += b->size;
	EVP_MD_CTX_free(b->mc);
	b->mc = NULL;
	b->tmp = NULL;
	b->fd = -1;
	pthread_mutex_lock(&k->mu);
	while (k->n == PACKER_QUEUE)
		pthread_cond_wait(&k->cv, &k->mu);
	k->q[(k->head + k->n) % PACKER_QUEUE] = w;
	k->n++;
	pthread_cond_broadcast(&k->cv);
	pthread_mutex_unlock(&k->mu);
	return 0;
}

/* Every chunk packed, the thread gone; a pack that failed is no longer
 * pending, and leaves no manifest (p->werr). */
static void
packer_stop(struct put *p, struct packer *k)
{
	json_t *h;
	size_t i;

	if (k->failed == NULL)
		return;		/* never started, or stopped */
	if (k->started) {
		pthread_mutex_lock(&k->mu);
		k->closing = 1;
		pthread_cond_broadcast(&k->cv);
		pthread_mutex_unlock(&k->mu);
		pthread_join(k->t, NULL);
	}
	json_array_foreach(k->failed, i, h) {
		json_object_del(p->pending, json_string_value(h));
		p->st->blobs_added--;
	}
	if (k->werr != 0 && p->werr == 0)
		p->werr = k->werr;
	json_decref(k->failed);
	k->failed = NULL;
	snapstore_pack_release(&k->pk);
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cv);
}

/* The dump being cut into chunks as its bytes come (put_dump(), and
 * snapstore-import.c from an archive's db/db.backup). */
struct chunker {
	EVP_MD_CTX	*whole;		/* the whole dump's sha256 */
	uLong		 crc;		/* and crc32 */
	json_t		*chunks;	/* [{size, sha256}…] */
	struct blob_w	 b;		/* the chunk being written */
	struct snapstore_pack pk;
	struct cdc	 k;
	long long	 total;
	struct packer	 packer;
};

static int
chunk_begin(struct put *p, struct chunker *c, char **cause)
{
	gear_init();
	c->whole = EVP_MD_CTX_new();
	EVP_DigestInit_ex(c->whole, EVP_sha256(), NULL);
	c->crc = crc32(0L, Z_NULL, 0);
	c->chunks = json_array();
	c->k.h = 0;
	c->k.len = 0;
	c->total = 0;
	snapstore_pack_init(&c->pk);
	packer_start(&c->packer);
	return blob_begin(p, &c->b, &c->pk, cause);
}

/* The chunk written so far as the next one of the list, its sha256 into
 * hex: packed by the packer when new, else dropped. */
static void
chunk_seal(struct put *p, struct chunker *c, char *hex)
{
	json_array_append_new(c->chunks, json_pack("{s:I}", "size",
	    (json_int_t)c->b.size));
	blob_digest(&c->b, hex);
	if (!blob_new(p, hex) || packer_push(p, &c->packer, &c->b, hex) < 0)
		blob_finish(p, &c->b, hex);
	json_object_set_new(json_array_get(c->chunks,
	    json_array_size(c->chunks) - 1), "sha256", json_string(hex));
}

/* The chunk written so far as the next one. */
static int
chunk_cut(struct put *p, struct chunker *c, char **cause)
{
	char hex[65];

	chunk_seal(p, c, hex);
	return blob_begin(p, &c->b, &c->pk, cause);
}

static int
chunk_feed(struct put *p, struct chunker *c, const unsigned char *data,
    size_t n, char **cause)
{
	size_t take;
	int cut;

	EVP_DigestUpdate(c->whole, data, n);
	c->crc = crc32(c->crc, data, (uInt)n);
	c->total += (long long)n;
	while (n > 0) {
		take = cdc_scan(&c->k, data, n, &cut);
		if (blob_add(&c->b, data, take, cause) < 0 ||
		    (cut && chunk_cut(p, c, cause) < 0))
			return -1;
		data += take;
		n -= take;
	}
	return 0;
}

/* The last chunk (an empty dump is one empty chunk); dump gets size,
 * sha256 (of the whole dump, for .nubo/checksums) and chunks, every one
 * packed. */
static void
chunk_end(struct put *p, struct chunker *c, json_t *dump)
{
	unsigned char md[32];
	char hex[65];

	if (c->b.size > 0 || json_array_size(c->chunks) == 0)
		chunk_seal(p, c, hex);
	packer_stop(p, &c->packer);
	EVP_DigestFinal_ex(c->whole, md, NULL);
	util_hex(md, 32, hex);
	json_object_set_new(dump, "size", json_integer(c->total));
	json_object_set_new(dump, "sha256", json_string(hex));
	json_object_set_new(dump, "crc32", json_integer((json_int_t)c->crc));
	json_object_set(dump, "chunks", c->chunks);
}

static void
chunk_release(struct put *p, struct chunker *c)
{
	if (c->b.tmp != NULL)
		blob_end(p, &c->b, 0, NULL);
	packer_stop(p, &c->packer);
	EVP_MD_CTX_free(c->whole);
	json_decref(c->chunks);
	snapstore_pack_release(&c->pk);
	memset(c, 0, sizeof(*c));
	c->b.fd = -1;
}

/* The dump read from fd into chunks, into dump as chunk_end() says. */
static int
put_dump(struct put *p, int fd, json_t *dump, char **cause)
{
	struct chunker c;
	ssize_t n;
	int rc = -1;

	memset(&c, 0, sizeof(c));
	c.b.fd = -1;
	if (chunk_begin(p, &c, cause) < 0)
		goto out;
	for (;;) {
		n = read(fd, p->iobuf, NUBO_IO_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fail(cause, "cannot read the dump: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		put_progress(p, n);
		if (chunk_feed(p, &c, p->iobuf, (size_t)n, cause) < 0)
			goto out;
	}
	chunk_end(p, &c, dump);
	rc = 0;
out:
	chunk_release(p, &c);
	return rc;
}

static json_t *manifest_load(const char *path, char **cause);

/* A delta's bytes into the blob being written. */
struct delta_sink {
	struct blob_w	*b;
	char		*cause;
};

static int
delta_out(void *arg, const void *data, size_t len)
{
	struct delta_sink *ds = arg;

	return blob_add(ds->b, data, len, &ds->cause);
}

static int
count_out(void *arg, const void *data, size_t len)
{
	(void)data;
	*(long long *)arg += (long long)len;
	return 0;
}

/* A chain's download cuts its dump where a base's chunks would be cut
 * and deflates each piece as a packed chunk is: the same bytes as the
 * download of the same dump stored in chunks (an upload of it is
 * byte-equal). The segments' job finds, with runs of the packer, each
 * piece's size, deflated size and crc32 — so a download's size, and a
 * Range, need none of it made — on threads of their own beside the
 * delta's pass over the same file: the deflating is the biggest part of
 * a nightly's work, and each piece is deflated alone, so SEG_THREADS
 * deflate pieces while the first of them also finds where they end. */
#define SEG_THREADS	2

struct seg {
	long long	 off, size, zsize;
	uLong		 crc;
};

struct seg_job {
	int		 fd;
	long long	 size;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct seg	*s;		/* room for every piece there can be */
	size_t		 n;		/* pieces found */
	size_t		 next;		/* the next to deflate */
	int		 scanned;	/* every piece found */
	int		 err;		/* errno of a failed read */
	int		 stop;		/* set: the delta was given up */
	int		 scanner;	/* set: a thread finds the pieces */
	pthread_t	 t[SEG_THREADS];
	int		 nt;		/* threads started */
	/* the pieces deflated, in order, into the dump's download copy
	 * (chain_path()); -1: not kept */
	int		 keep_fd;
	size_t		 wnext;		/* the next piece to go there */
	long long	 woff;		/* where it goes */
	int		 keep_err;	/* set: the copy was given up */
};

/* pread() of len bytes at off whole; 0, or an errno. */
static int
seg_pread(struct seg_job *j, unsigned char *buf, size_t len, long long off)
{
	ssize_t n;

	while (len > 0) {
		n = pread(j->fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : EIO;
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* A piece found (size < 0: the last was found), the threads woken. */
static void
seg_found(struct seg_job *j, long long off, long long size)
{
	pthread_mutex_lock(&j->mu);
	if (size >= 0) {
		j->s[j->n].off = off;
		j->s[j->n].size = size;
		j->n++;
	} else
		j->scanned = 1;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

/* Where the pieces end: the chunker's boundaries (the last piece is what
 * is left; an empty dump is one empty piece). */
static int
seg_scan(struct seg_job *j, unsigned char *buf)
{
	struct cdc k = { 0, 0 };
	long long off = 0, start = 0;
	size_t take, got, len;
	int cut, err;

	while (off < j->size && !__atomic_load_n(&j->stop,
	    __ATOMIC_RELAXED)) {
		len = j->size - off < NUBO_IO_CHUNK ? (size_t)(j->size - off) :
		    NUBO_IO_CHUNK;
		if ((err = seg_pread(j, buf, len, off)) != 0)
			return err;
		for (got = 0; got < len; got += take) {
			take = cdc_scan(&k, buf + got, len - got, &cut);
			if (cut) {
				seg_found(j, start, off + (long long)(got +
				    take) - start);
				start = off + (long long)(got + take);
			}
		}
		off += (long long)len;
	}
	if (off == j->size && (start < j->size || j->n == 0))
		seg_found(j, start, j->size - start);
	seg_found(j, 0, -1);
	return 0;
}

static int
buf_out(void *arg, const void *data, size_t len)
{
	return buf_append(arg, data, len);
}

/* Piece s deflated as a packed chunk would be: its deflated size and
 * crc32, its deflated bytes in out when the job keeps them; 0, or an
 * errno. */
static int
seg_pack(struct seg_job *j, struct snapstore_pack *pk, unsigned char *buf,
    struct seg *s, struct buf *out)
{
	long long done = 0, zs = 0;
	size_t len;
	int err;

	out->len = 0;
	if (j->keep_fd >= 0)
		snapstore_pack_begin(pk, 0, buf_out, out);
	else
		snapstore_pack_begin(pk, 0, count_out, &zs);
	while (done < s->size) {
		len = s->size - done < NUBO_IO_CHUNK ? (size_t)(s->size - done) :
		    NUBO_IO_CHUNK;
		if ((err = seg_pread(j, buf, len, s->off + done)) != 0)
			return err;
		snapstore_pack_add(pk, buf, len);
		done += (long long)len;
	}
	snapstore_pack_end(pk);
	s->zsize = j->keep_fd >= 0 ? (long long)out->len : zs;
	s->crc = pk->crc;
	return 0;
}

/* Piece k's deflated bytes written where they go in the download copy,
 * once every piece before it is there (a failed write gives the copy
 * up, not the snapshot: it is only ever a faster way to the same bytes). */
static void
seg_keep(struct seg_job *j, size_t k, const struct buf *out)
{
	pthread_mutex_lock(&j->mu);
	while (j->wnext != k && j->err == 0 && !j->keep_err)
		pthread_cond_wait(&j->cv, &j->mu);
	if (j->wnext == k && !j->keep_err) {
		if (out->len > 0 && pwrite(j->keep_fd, out->data, out->len,
		    (off_t)j->woff) != (ssize_t)out->len)
			j->keep_err = 1;
		/* written back from now on, beside the rest of the
		 * snapshot: the fdatasync() before its manifest then has
		 * little left to wait for */
		else if (out->len > 0)
			(void)sync_file_range(j->keep_fd, (off_t)j->woff,
			    (off_t)out->len, SYNC_FILE_RANGE_WRITE);
		j->woff += (long long)out->len;
		j->wnext++;
		pthread_cond_broadcast(&j->cv);
	}
	pthread_mutex_unlock(&j->mu);
}

static void *
seg_thread(void *arg)
{
	struct seg_job *j = arg;
	struct snapstore_pack pk;
	unsigned char *buf = xmalloc(NUBO_IO_CHUNK);
	struct buf out;
	struct seg *s;
	int err = 0;

	buf_init(&out, 0);

	/* the first thread to run finds the pieces, then deflates too */
	if (!__atomic_exchange_n(&j->scanner, 1, __ATOMIC_RELAXED) &&
	    (err = seg_scan(j, buf)) != 0)
		seg_found(j, 0, -1);
	snapstore_pack_init(&pk);
	while (err == 0 && !__atomic_load_n(&j->stop, __ATOMIC_RELAXED)) {
		pthread_mutex_lock(&j->mu);
		while (j->next >= j->n && !j->scanned && j->err == 0)
			pthread_cond_wait(&j->cv, &j->mu);
		s = j->next < j->n && j->err == 0 ? &j->s[j->next++] : NULL;
		pthread_mutex_unlock(&j->mu);
		if (s == NULL)
			break;
		if ((err = seg_pack(j, &pk, buf, s, &out)) == 0 &&
		    j->keep_fd >= 0)
			seg_keep(j, (size_t)(s - j->s), &out);
	}
	if (err != 0) {
		pthread_mutex_lock(&j->mu);
		if (j->err == 0)
			j->err = err;
		pthread_cond_broadcast(&j->cv);
		pthread_mutex_unlock(&j->mu);
	}
	snapstore_pack_release(&pk);
	buf_release(&out);
	free(buf);
	return NULL;
}

/* Start the segments' job on fd (size bytes), the pieces deflated into
 * keep_fd (-1: none); 0, or an errno. */
static int
seg_start(struct seg_job *j, int fd, long long size, int keep_fd)
{
	int i, e;

	gear_init();
	memset(j, 0, sizeof(*j));
	j->fd = fd;
	j->keep_fd = keep_fd;
	j->size = size;
	j->s = xcalloc((size_t)(size / CHUNK_MIN) + 2, sizeof(*j->s));
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	for (i = 0; i < SEG_THREADS; i++) {
		if ((e = pthread_create(&j->t[i], NULL, seg_thread, j)) != 0)
			return e;
		j->nt++;
	}
	return 0;
}

/* Wait for the job (stop: give it up); its segments [{size, zsize,
 * crc32}…] and the whole file's crc32 in *crc, or NULL with errno set
 * when a read failed or it was given up. */
static json_t *
seg_finish(struct seg_job *j, int stop, uLong *crc)
{
	json_t *list = NULL;
	size_t i;
	int k;

	if (stop)
		__atomic_store_n(&j->stop, 1, __ATOMIC_RELAXED);
	for (k = 0; k < j->nt; k++)
		pthread_join(j->t[k], NULL);
	if (j->nt == SEG_THREADS && !stop && j->err == 0 && j->scanned &&
	    j->next == j->n) {
		list = json_array();
		*crc = crc32(0L, Z_NULL, 0);
		for (i = 0; i < j->n; i++) {
			json_array_append_new(list, json_pack("{s:I,s:I,s:I}",
			    "size", (json_int_t)j->s[i].size, "zsize",
			    (json_int_t)j->s[i].zsize, "crc32",
			    (json_int_t)j->s[i].crc));
			*crc = crc32_combine(*crc, j->s[i].crc,
			    (z_off_t)j->s[i].size);
		}
	} else
		errno = j->err ? j->err : EINTR;
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	free(j->s);
	return list;
}

/* The dump of the previous manifest pm (may be NULL) when a delta may
 * build on it — well formed, the chain under its limits; else NULL. */
static json_t *
delta_base(json_t *pm)
{
	json_t *pd = json_object_get(pm, "dump"), *deltas, *e;
	long long base = 0, chain = 0;
	char *why = NULL;
	size_t i;

	if (pm == NULL || snapstore_dump_chain_ok(pd, &why) < 0) {
		free(why);
		return NULL;
	}
	json_array_foreach(json_object_get(pd, "chunks"), i, e)
		base += jsonx_int(e, "size", 0);
	deltas = json_object_get(pd, "deltas");
	json_array_foreach(deltas, i, e)
		chain += jsonx_int(e, "size", 0);
	/* a chain read back costs its base and every delta: a new base
	 * once the deltas weigh what it does */
	if (json_array_size(deltas) + 1 >= SNAPSTORE_CHAIN_MAX ||
	    chain >= base)
		return NULL;
	return pd;
}

struct snapstore_dindex *
snapstore_prev_dump_index(const char *store, const char *prev)
{
	struct snapstore_dindex *x = NULL;
	json_t *pm = prev ? manifest_load(prev, NULL) : NULL;
	json_t *pd = delta_base(pm);
	char *why = NULL;

	/* the previous dump's size stands for the new one's, not known yet */
	if (pd != NULL && jsonx_int(pd, "size", 0) >= SNAPSTORE_DELTA_MIN)
		x = snapstore_dindex_build(store, pd, &why);
	free(why);
	json_decref(pm);
	return x;
}

/* p's early index if it is of dump pd and every blob pd names is still
 * in the store (it was made without the store's lock: a sweep may have
 * freed them since), else NULL; the store's lock is held. */
static struct snapstore_dindex *
take_early(struct put *p, json_t *pd)
{
	struct snapstore_dindex *x = p->early;
	json_t *e;
	size_t i, k;

	p->early = NULL;
	if (x == NULL || strcmp(snapstore_dindex_of(x), jsonx_str(pd,
	    "sha256") ? jsonx_str(pd, "sha256") : "") != 0)
		goto no;
	for (k = 0; k < 2; k++)
		json_array_foreach(json_object_get(pd, dump_blob_keys[k]), i,
		    e)
			if (!snapstore_blob_exists(p->store, jsonx_str(e,
			    "sha256")))
				goto no;
	p->st->dump_index_early = 1;
	return x;
no:
	snapstore_dindex_free(x);
	return NULL;
}

/* A chain's download copy: its dump cut and deflated as a download
 * makes it (asm_chain()), the segments one after another — what a
 * download of the chain sends instead of making them again. It is
 * derived, never needed: kept for the latest snapshot of each chain
 * only (a download of the night before makes its segments again), at
 * chains/<the dump's sha256>; gone with its snapshot in the sweep; one
 * that is not there or not its size is passed over; and fsck checks it
 * (snapstore_chain_check()). docs/ARCHITECTURE.md, "Snapshot store". */
static char *
chain_path(const char *store, const char *hex)
{
	return xasprintf("%s/chains/%s", store, hex);
}

int
snapstore_chain_check(const char *store, json_t *dump, unsigned char *iobuf,
    char **why)
{
	const char *hex = jsonx_str(dump, "sha256");
	long long size = jsonx_int(dump, "size", -1);
	unsigned char *out;
	uLong crc = crc32(0L, Z_NULL, 0);
	z_stream z;
	ssize_t n;
	char *p;
	int fd, zr = Z_OK;

	if (json_object_get(dump, "deltas") == NULL || !valid_hex(hex))
		return 0;
	p = chain_path(store, hex);
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0) {
		free(p);
		return 0;
	}
	memset(&z, 0, sizeof z);
	out = xmalloc(NUBO_IO_CHUNK);
	if (inflateInit2(&z, -15) != Z_OK)
		fatal("cannot start zlib");
	*why = NULL;
	while (*why == NULL && (n = read(fd, iobuf, NUBO_IO_CHUNK)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*why = xasprintf("cannot be read: %s", strerror(errno));
			break;
		}
		z.next_in = iobuf;
		z.avail_in = (uInt)n;
		do {
			z.next_out = out;
			z.avail_out = NUBO_IO_CHUNK;
			zr = inflate(&z, Z_NO_FLUSH);
			crc = crc32(crc, out, NUBO_IO_CHUNK - z.avail_out);
			if (zr == Z_BUF_ERROR)
				zr = Z_OK;	/* no progress: more input */
		} while (zr == Z_OK && (z.avail_in > 0 || z.avail_out == 0));
		if (zr != Z_OK)
			*why = xasprintf("does not inflate (%s)", z.msg ? z.msg :
			    "its segments end the stream");
	}
	if (*why == NULL && ((long long)z.total_out != size ||
	    crc != (uLong)jsonx_int(dump, "crc32", 0)))
		*why = xasprintf("inflates to %lld bytes%s, not the dump's "
		    "%lld", (long long)z.total_out, (long long)z.total_out ==
		    size ? " of another crc32" : "", size);
	inflateEnd(&z);
	close(fd);
	free(out);
	if (*why != NULL)
		unlink(p);
	free(p);
	return *why != NULL;
}

/* A temporary file for the copy the segments' job writes, if one can be
 * made (none: the snapshot goes on without it). */
static void
chain_keep_begin(struct put *p)
{
	char *rnd = util_random_hex(8);

	p->keep_tmp = xasprintf("%s/tmp/chain-%s", p->store, rnd);
	free(rnd);
	p->keep_fd = open(p->keep_tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600);
	if (p->keep_fd < 0) {
		free(p->keep_tmp);
		p->keep_tmp = NULL;
	}
}

/* The copy made durable and moved into chains/ before the manifest that
 * names its dump is written (never a copy whose bytes a crash lost). */
static void
chain_keep_commit(struct put *p)
{
	char *d, *to;

	if (p->keep_tmp == NULL || p->keep_hex[0] == '\0')
		return;
	d = xasprintf("%s/chains", p->store);
	to = chain_path(p->store, p->keep_hex);
	if ((mkdir(d, 0700) == 0 || errno == EEXIST) &&
	    fdatasync(p->keep_fd) == 0 && rename(p->keep_tmp, to) == 0) {
		free(p->keep_tmp);
		p->keep_tmp = NULL;
	} else
		p->keep_hex[0] = '\0';
	free(to);
	free(d);
}

/* After the manifest: the copy of the dump this one built on goes. */
static void
chain_keep_end(struct put *p)
{
	char *q;

	if (p->keep_hex[0] != '\0' && p->keep_prev[0] != '\0' &&
	    strcmp(p->keep_prev, p->keep_hex) != 0) {
		q = chain_path(p->store, p->keep_prev);
		unlink(q);
		free(q);
	}
	if (p->keep_fd >= 0)
		close(p->keep_fd);
	p->keep_fd = -1;
	if (p->keep_tmp != NULL)
		unlink(p->keep_tmp);
	free(p->keep_tmp);
	p->keep_tmp = NULL;
}

static int copy_chain(const char *, json_t *, long long, int, char **);

/* 0 when the segments the job found are the ones the manifest gives
 * (sizes, deflated sizes, crc32s) and every one is in the copy; else -1
 * with *cause naming the first that differs. */
static int
chain_segs_match(struct seg_job *j, json_t *segs, json_t *dump, uLong crc,
    char **cause)
{
	json_t *want = json_object_get(dump, "segments"), *a, *b;
	size_t i, n = json_array_size(want);

	for (i = 0; i < n || i < json_array_size(segs); i++) {
		a = json_array_get(segs, i);
		b = json_array_get(want, i);
		if (a == NULL || b == NULL || !json_equal(a, b))
			return fail(cause, "the dump does not cut as its "
			    "manifest says: segment %zu is %lld bytes, %lld "
			    "deflated, crc32 %lld; the manifest's %lld, %lld, "
			    "%lld", i, jsonx_int(a, "size", -1), jsonx_int(a,
			    "zsize", -1), jsonx_int(a, "crc32", -1),
			    jsonx_int(b, "size", -1), jsonx_int(b, "zsize",
			    -1), jsonx_int(b, "crc32", -1));
	}
	if (crc != (uLong)jsonx_int(dump, "crc32", -1))
		return fail(cause, "the dump does not cut as its manifest "
		    "says: its crc32");
	if (j->keep_err || j->wnext != n)
		return fail(cause, "cannot write the download copy");
	return 0;
}

int
snapstore_chain_build(const char *store, const char *manifest,
    int (*room)(long long need, char **cause), char **cause)
{
	json_t *m = NULL, *dump, *segs = NULL, *last, *g;
	char *tmpd = xasprintf("%s/tmp", store), *path = NULL;
	struct put p;
	struct seg_job sj;
	const char *of, *hex;
	long long size, need;
	uLong crc = 0;
	size_t i;
	int lock, fd = -1, rc = -1, e;

	memset(&p, 0, sizeof p);
	p.store = store;
	p.keep_fd = -1;
	if ((lock = store_lock(store, LOCK_SH, cause)) < 0) {
		free(tmpd);
		return -1;
	}
	if ((m = manifest_load(manifest, cause)) == NULL)
		goto out;
	dump = json_object_get(m, "dump");
	size = jsonx_int(dump, "size", -1);
	hex = jsonx_str(dump, "sha256");
	if (json_object_get(dump, "deltas") == NULL) {
		rc = 0;		/* a base: no copy to make */
		goto out;
	}
	/* the dump's sha256 and "of" name files in chains/: checked here
	 * too, whatever checked the manifest before (a copy's source made
	 * it) */
	if (!valid_hex(hex) || snapstore_dump_chain_ok(dump, cause) < 0) {
		if (*cause == NULL)
			fail(cause, "the snapshot's manifest is damaged: the "
			    "dump's sha256");
		goto out;
	}
	path = chain_path(store, hex);
	rc = 0;
	if (access(path, F_OK) == 0)
		goto out;
	rc = -1;
	/* the spool and the copy: each bounded (snapstore_dump_chain_ok()),
	 * the sum checked all the same */
	need = size;
	json_array_foreach(json_object_get(dump, "segments"), i, g)
		if (__builtin_add_overflow(need, jsonx_int(g, "zsize", 0),
		    &need)) {
			fail(cause, "the snapshot's manifest is damaged: its "
			    "dump's segments are too large");
			goto out;
		}
	if (room != NULL && room(need, cause) < 0)
		goto out;
	if ((fd = open(tmpd, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0) {
		fail(cause, "cannot create a spool in '%s': %s", tmpd,
		    strerror(errno));
		goto out;
	}
	if (copy_chain(store, dump, 0, fd, cause) < 0)
		goto out;
	chain_keep_begin(&p);
	if (p.keep_fd < 0) {
		fail(cause, "cannot create the download copy in '%s': %s",
		    tmpd, strerror(errno));
		goto out;
	}
	if ((e = seg_start(&sj, fd, size, p.keep_fd)) != 0) {
		fail(cause, "cannot start a thread: %s", strerror(e));
		seg_finish(&sj, 1, &crc);
		goto out;
	}
	segs = seg_finish(&sj, 0, &crc);
	if (segs == NULL) {
		fail(cause, "cannot cut the dump: %s", strerror(errno));
		goto out;
	}
	if (chain_segs_match(&sj, segs, dump, crc, cause) < 0)
		goto out;
	snprintf(p.keep_hex, sizeof p.keep_hex, "%s", hex);
	/* the copy of the dump it applies to goes with chain_keep_end() */
	last = json_array_get(json_object_get(dump, "deltas"),
	    json_array_size(json_object_get(dump, "deltas")) - 1);
	if (valid_hex(of = jsonx_str(last, "of")))
		snprintf(p.keep_prev, sizeof p.keep_prev, "%s", of);
	chain_keep_commit(&p);
	if (p.keep_hex[0] == '\0') {
		fail(cause, "cannot keep the download copy: %s",
		    strerror(errno));
		goto out;
	}
	rc = 1;
out:
	chain_keep_end(&p);
	if (fd >= 0)
		close(fd);
	json_decref(segs);
	json_decref(m);
	free(path);
	free(tmpd);
	close(lock);
	return rc;
}

/* The dump read from fd as a delta on the previous snapshot's dump (the
 * rows that changed; docs/ARCHITECTURE.md, "Snapshot store", says when
 * and why): 1 with dump filled — size, sha256, crc32, the download's
 * deflated size (zsize: what the download's deflater makes of it, found
 * here by a run of the same packer, so a download's size needs none of
 * it made) and the chain; 0 when not worth one or the previous dump does
 * not read back as its manifest says (the caller cuts the dump into
 * chunks); -1 with *cause when the store failed. */
static int
put_dump_delta(struct put *p, int fd, json_t *pm, json_t *dump,
    char **cause)
{
	struct snapstore_dindex *x = NULL;
	struct snapstore_denc *enc = NULL;
	struct snapstore_delta_stats ds;
	struct seg_job sj;
	struct delta_sink sink = { NULL, NULL };
	struct blob_w b;
	struct stat st;
	json_t *pd, *deltas;
	EVP_MD_CTX *mc = NULL;
	unsigned char md[32];
	char hex[65], *why = NULL;
	json_t *segs = NULL;
	long long total = 0;
	uLong crc = 0;
	ssize_t n = 0;
	int rc = 0, started = 0, e;

	b.fd = -1;
	b.tmp = NULL;
	gear_init();
	if (fstat(fd, &st) < 0 || st.st_size < SNAPSTORE_DELTA_MIN ||
	    (pd = delta_base(pm)) == NULL)
		goto out;
	deltas = json_object_get(pd, "deltas");
	chain_keep_begin(p);
	/* the segments are found while the previous dump is read back and
	 * indexed, not only beside the delta's pass */
	e = seg_start(&sj, fd, (long long)st.st_size, p->keep_fd);
	started = 1;
	if (e != 0) {
		rc = fail(cause, "cannot start a thread: %s", strerror(e));
		goto out;
	}
	if ((x = take_early(p, pd)) == NULL &&
	    (x = snapstore_dindex_build(p->store, pd, &why)) == NULL)
		goto out;
	if (lseek(fd, 0, SEEK_SET) < 0) {
		rc = fail(cause, "cannot read the dump: %s", strerror(errno));
		goto out;
	}
	if (blob_begin(p, &b, &p->pk, cause) < 0) {
		blob_end(p, &b, 0, NULL);
		rc = -1;
		goto out;
	}
	sink.b = &b;
	enc = snapstore_denc_begin(x, (long long)st.st_size, delta_out, &sink);
	mc = EVP_MD_CTX_new();
	EVP_DigestInit_ex(mc, EVP_sha256(), NULL);
	for (;;) {
		n = read(fd, p->iobuf, NUBO_IO_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail(cause, "cannot read the dump: %s", strerror(errno));
		if (n <= 0)
			break;
		put_progress(p, n);
		total += n;
		EVP_DigestUpdate(mc, p->iobuf, (size_t)n);
		if (snapstore_denc_feed(enc, p->iobuf, (size_t)n) < 0) {
			fail(cause, "%s", sink.cause ? sink.cause : "cannot "
			    "write the dump's delta");
			n = -1;
			break;
		}
	}
	if (n == 0 && snapstore_denc_end(enc, &ds) < 0) {
		fail(cause, "%s", sink.cause ? sink.cause : "cannot write the "
		    "dump's delta");
		n = -1;
	}
	segs = seg_finish(&sj, n < 0, &crc);
	started = 0;
	if (n == 0 && segs == NULL) {
		fail(cause, "cannot read the dump: %s", strerror(errno));
		n = -1;
	}
	if (n < 0 || total != (long long)st.st_size) {
		if (n == 0)
			fail(cause, "the dump changed while it was read");
		blob_end(p, &b, 0, NULL);
		rc = -1;
		goto out;
	}
	if (ds.inserted > total / 2) {
		/* most of it new: chunks serve it as well */
		blob_end(p, &b, 0, NULL);
		goto out;
	}
	blob_end(p, &b, 1, hex);
	deltas = deltas != NULL ? json_copy(deltas) : json_array();
	/* "of": the dump it applies to, whose download copy a copy's
	 * target drops once it has this one's (snapstore_chain_build()) */
	json_array_append_new(deltas, json_pack("{s:s,s:I,s:I}", "sha256", hex,
	    "size", (json_int_t)b.size, "out", (json_int_t)total));
	if (valid_hex(jsonx_str(pd, "sha256")))
		json_object_set_new(json_array_get(deltas,
		    json_array_size(deltas) - 1), "of",
		    json_string(jsonx_str(pd, "sha256")));
	EVP_DigestFinal_ex(mc, md, NULL);
	util_hex(md, 32, hex);
	json_object_set_new(dump, "size", json_integer(total));
	json_object_set_new(dump, "sha256", json_string(hex));
	json_object_set_new(dump, "crc32", json_integer((json_int_t)crc));
	json_object_set(dump, "segments", segs);
	json_object_set(dump, "chunks", json_object_get(pd, "chunks"));
	json_object_set_new(dump, "deltas", deltas);
	if (!sj.keep_err && sj.wnext == json_array_size(segs)) {
		/* the download copy whole: it is kept with the manifest */
		snprintf(p->keep_hex, sizeof p->keep_hex, "%s", hex);
		snprintf(p->keep_prev, sizeof p->keep_prev, "%s",
		    valid_hex(jsonx_str(pd, "sha256")) ? jsonx_str(pd,
		    "sha256") : "");
	}
	p->st->dump_delta = 1;
	p->st->dump_inserted = ds.inserted;
	rc = 1;
out:
	if (started)
		seg_finish(&sj, 1, &crc);
	if (rc == 0 && lseek(fd, 0, SEEK_SET) < 0)
		rc = fail(cause, "cannot read the dump: %s", strerror(errno));
	EVP_MD_CTX_free(mc);
	snapstore_denc_free(enc);
	snapstore_dindex_free(x);
	json_decref(segs);
	free(sink.cause);
	free(why);
	return rc;
}

/* fsync the folder d, or with whole_fs syncfs() its file system; 0 or
 * -1 with *cause. */
static int
dir_sync(const char *d, int whole_fs, char **cause)
{
	int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	rc = fd < 0 ? -1 : whole_fs ? syncfs(fd) : fsync(fd);
	if (rc < 0)
		fail(cause, "cannot sync '%s': %s", d, strerror(errno));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The data of the new blobs in tmp/ durable: each file's, or for more
 * than SYNC_FILES_MAX the whole file system's with one syncfs(). A
 * syncfs() writes every other writer's dirty pages too — the app's
 * PostgreSQL's after a day's updates: 0.17–0.19 s for 200 MB here, where
 * 30 files of 1 MB fdatasync()ed take 0.02 s — but for thousands of
 * small files (a first snapshot) it is the cheaper: 1000 files of 10 kB,
 * 0.02 s against 0.07 s one at a time. 0 or -1 with *cause. */
static int
put_sync_data(struct put *p, char **cause)
{
	const char *hex;
	json_t *tmp;
	char *d;
	int fd, rc;

	if (json_object_size(p->pending) > SYNC_FILES_MAX) {
		d = xasprintf("%s/tmp", p->store);
		rc = dir_sync(d, 1, cause);
		free(d);
		return rc;
	}
	json_object_foreach(p->pending, hex, tmp) {
		fd = open(json_string_value(tmp), O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fdatasync(fd) < 0) {
			fail(cause, "cannot sync '%s': %s",
			    json_string_value(tmp), strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

/* Make the new blobs durable: their data (put_sync_data()), then renamed
 * into blobs/ and those folders synced. */
static int
put_sync(struct put *p, char **cause)
{
	const char *hex;
	json_t *tmp;
	char *d;
	int i;

	if (put_sync_data(p, cause) < 0)
		return -1;
	json_object_foreach(p->pending, hex, tmp) {
		d = xasprintf("%s/blobs/%.2s", p->store, hex);
		if (mkdir(d, 0700) == 0)
			p->blobs_dirty = 1;
		else if (errno != EEXIST) {
			fail(cause, "cannot create '%s': %s", d, strerror(errno));
			free(d);
			return -1;
		}
		free(d);
		d = snapstore_packed_path(p->store, hex);
		if (rename(json_string_value(tmp), d) < 0) {
			fail(cause, "cannot rename '%s': %s",
			    json_string_value(tmp), strerror(errno));
			free(d);
			return -1;
		}
		free(d);
		p->dirty[(int)strtol((char[]){ hex[0], hex[1], 0 }, NULL, 16)] = 1;
	}
	for (i = 0; i < 256; i++) {
		if (!p->dirty[i])
			continue;
		d = xasprintf("%s/blobs/%02x", p->store, i);
		if (dir_sync(d, 0, cause) < 0) {
			free(d);
			return -1;
		}
		free(d);
	}
	d = xasprintf("%s/blobs/00", p->store);
	if (p->blobs_dirty && util_fsync_dir(d) < 0) {
		fail(cause, "cannot sync '%s/blobs': %s", p->store,
		    strerror(errno));
		free(d);
		return -1;
	}
	free(d);
	json_object_clear(p->pending);
	memset(p->dirty, 0, sizeof(p->dirty));
	p->blobs_dirty = 0;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Manifests                                                           */

/* A relative path with no empty, "." or ".." component. */
static int
path_ok(const char *p)
{
	const char *c = p, *end;
	size_t n;

	if (*p == '\0' || *p == '/')
		return 0;
	for (;;) {
		end = strchr(c, '/');
		n = end ? (size_t)(end - c) : strlen(c);
		if (n == 0 || (n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		if (end == NULL)
			return 1;
		c = end + 1;
	}
}

/* An entry's path: in the one form file names take in nubo's JSON
 * (util_name_encode(), docs/FORMATS.md "File names in JSON"). */
static void
path_set(json_t *e, const char *path)
{
	char *enc = util_name_encode(path);

	json_object_set_new(e, "path", json_string(enc));
	free(enc);
}

/* The entry's path bytes (caller frees), NULL when the manifest is
 * damaged: not such a form, or not a safe relative path. */
static char *
path_get(json_t *e)
{
	const char *s = jsonx_str(e, "path");
	char *out;

	if (s == NULL || (out = util_name_decode(s)) == NULL)
		return NULL;
	if (!path_ok(out)) {
		free(out);
		return NULL;
	}
	return out;
}

static json_t *
manifest_load(const char *path, char **cause)
{
	json_error_t err;
	json_t *m = json_load_file(path, 0, &err);

	if (m == NULL) {
		fail(cause, "cannot read the manifest '%s': %s", path, err.text);
		return NULL;
	}
	if (jsonx_int(m, "format", 0) != MANIFEST_FORMAT ||
	    !json_is_array(json_object_get(json_object_get(m, "dump"),
	    "chunks")) ||
	    !json_is_array(json_object_get(m, "tree"))) {
		fail(cause, "the manifest '%s' is not a snapshot manifest", path);
		json_decref(m);
		return NULL;
	}
	return m;
}

/* Files of the previous manifest m (may be NULL) by path key, for reuse
 * unread. */
static json_t *
prev_index(json_t *m)
{
	json_t *idx = json_object(), *e;
	size_t i;
	const char *p;

	json_array_foreach(json_object_get(m, "tree"), i, e) {
		if (strcmp(jsonx_str(e, "type") ? jsonx_str(e, "type") : "",
		    "f") == 0 && (p = jsonx_str(e, "path")) != NULL)
			json_object_set(idx, p, e);
	}
	return idx;
}

static int
fts_byname(const FTSENT **a, const FTSENT **b)
{
	return strcmp((*a)->fts_name, (*b)->fts_name);
}

static void
stat_into(json_t *e, const struct stat *st)
{
	json_object_set_new(e, "mode", json_integer(st->st_mode & 07777));
	json_object_set_new(e, "mtime", json_integer(st->st_mtime));
}

/* The unchanged file's entry in the previous manifest whose blob is
 * still there, or NULL: read and hash it. */
static json_t *
prev_same(struct put *p, json_t *idx, const char *rel, const struct stat *st)
{
	char *k = util_name_encode(rel);
	json_t *e = json_object_get(idx, k);
	const char *h;

	free(k);
	if (e == NULL || jsonx_int(e, "size", -1) != st->st_size ||
	    jsonx_int(e, "mtime_ns", -1) != (long long)st->st_mtim.tv_sec *
	    1000000000 + st->st_mtim.tv_nsec ||
	    jsonx_int(e, "ctime_ns", -1) != (long long)st->st_ctim.tv_sec *
	    1000000000 + st->st_ctim.tv_nsec ||
	    jsonx_int(e, "inode", -1) != (long long)st->st_ino ||
	    jsonx_int(e, "device", -1) != (long long)st->st_dev ||
	    !valid_hex(h = jsonx_str(e, "sha256")))
		return NULL;
	return snapstore_blob_exists(p->store, h) ? e : NULL;
}

static int
snap_tree(struct put *p, const char *dir, json_t *idx, json_t *tree,
    char **cause)
{
	char *argv[] = { (char *)dir, NULL };
	FTS *f;
	FTSENT *e;
	json_t *je, *old;
	struct stat st;
	size_t rootlen = strlen(dir);
	const char *rel;
	char hex[65];
	long long size;
	int fd, rc = -1;

	if ((f = fts_open(argv, FTS_PHYSICAL | FTS_NOCHDIR, fts_byname)) == NULL)
		return fail(cause, "cannot read '%s': %s", dir, strerror(errno));
	while ((e = fts_read(f)) != NULL) {
		if (e->fts_level == 0) {
			if (e->fts_info == FTS_D || e->fts_info == FTS_DP)
				continue;
			if (e->fts_info == FTS_NS && e->fts_errno == ENOENT)
				break;	/* no file store yet: no tree/ */
			fail(cause, "'%s' is not a directory", dir);
			goto out;
		}
		if (e->fts_info == FTS_DP)
			continue;
		if (e->fts_info == FTS_DNR || e->fts_info == FTS_ERR ||
		    e->fts_info == FTS_NS) {
			fail(cause, "cannot read '%s': %s", e->fts_path,
			    strerror(e->fts_errno));
			goto out;
		}
		if (e->fts_info != FTS_D && e->fts_info != FTS_F)
			continue;	/* as backup_archive_write(): skipped */
		rel = e->fts_path + rootlen + 1;
		je = json_object();
		path_set(je, rel);
		if (e->fts_info == FTS_D) {
			json_object_set_new(je, "type", json_string("d"));
			stat_into(je, e->fts_statp);
			json_array_append_new(tree, je);
			continue;
		}
		fd = open(e->fts_accpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			json_decref(je);
			if (fd < 0 && errno == ENOENT)
				continue;	/* deleted meanwhile */
			fail(cause, "cannot read '%s': %s", e->fts_path,
			    strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
		json_object_set_new(je, "type", json_string("f"));
		stat_into(je, &st);
		if ((old = prev_same(p, idx, rel, &st)) != NULL) {
			snprintf(hex, sizeof(hex), "%s", jsonx_str(old, "sha256"));
			size = st.st_size;
			p->st->reused++;
			put_progress(p, size);
		} else {
			posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
			if (put_fd(p, fd, e->fts_path, hex, &size, cause) < 0) {
				close(fd);
				json_decref(je);
				goto out;
			}
			p->st->hashed++;
		}
		/* new blobs are moved into the store in batches: what a
		 * snapshot holds in memory does not grow with its files */
		if (json_object_size(p->pending) >= PENDING_MAX &&
		    put_sync(p, cause) < 0) {
			close(fd);
			json_decref(je);
			goto out;
		}
		close(fd);
		json_object_set_new(je, "size", json_integer(size));
		json_object_set_new(je, "sha256", json_string(hex));
		json_object_set_new(je, "mtime_ns", json_integer(
		    (long long)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec));
		json_object_set_new(je, "ctime_ns", json_integer(
		    (long long)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec));
		json_object_set_new(je, "inode", json_integer((long long)st.st_ino));
		json_object_set_new(je, "device", json_integer((long long)st.st_dev));
		json_array_append_new(tree, je);
		p->st->files++;
		p->st->files_bytes += size;
	}
	rc = 0;
out:
	fts_close(f);
	return rc;
}

/* A manifest's head; tree and files_size follow. */
static json_t *
manifest_new(long long created, const char *model_version,
    long long database_size, long long duration, json_t *dump)
{
	return json_pack("{s:i,s:I,s:s,s:I,s:I,s:O}", "format",
	    MANIFEST_FORMAT, "created", (json_int_t)created, "model_version",
	    model_version ? model_version : "", "database_size",
	    (json_int_t)database_size, "duration", (json_int_t)duration,
	    "dump", dump);
}

/* Write manifest m to path once the blobs it names are durable (they
 * are, before any manifest names them). */
static int
manifest_put(struct put *p, json_t *m, const char *path, char **cause)
{
	char *text;
	int rc = 0;

	if (p->werr != 0)
		return fail(cause, "cannot write a blob into the snapshot "
		    "store '%s': %s", p->store, strerror(p->werr));
	if (put_sync(p, cause) < 0)
		return -1;
	chain_keep_commit(p);
	text = json_dumps(m, JSON_COMPACT);
	if (util_write_file(path, text, strlen(text), 0600) < 0)
		rc = fail(cause, "cannot write '%s': %s", path, strerror(errno));
	free(text);
	return rc;
}

int
snapstore_snapshot(const struct snapstore_snap_opts *o,
    struct snapstore_stats *stats, char **cause)
{
	struct snapstore_stats st0;
	struct put p;
	json_t *m = NULL, *tree = json_array(), *idx = NULL, *dump = NULL;
	json_t *pm = NULL;
	const char *h;
	json_t *pt;
	long long dsize, duration = o->duration;
	int lock = -1, rc = -1, r, dump_fd = o->dump_fd;

	memset(&st0, 0, sizeof(st0));
	memset(&p, 0, sizeof(p));
	p.store = o->store;
	p.o = o;
	p.early = o->prev_dump_index;
	p.st = stats != NULL ? stats : &st0;
	memset(p.st, 0, sizeof(*p.st));
	p.iobuf = xmalloc(NUBO_IO_CHUNK);
	p.pending = json_object();
	p.keep_fd = -1;
	p.total = o->total;
	if (store_prepare(o->store, cause) < 0 ||
	    (lock = store_lock(o->store, LOCK_SH, cause)) < 0)
		goto out;
	/* the previous manifest, read once: its files are reused unread,
	 * the dump's delta builds on it */
	if (o->prev != NULL)
		pm = manifest_load(o->prev, NULL);
	/* the files first: a dump still being made (dump_wait) is
	 * waited for after them */
	idx = prev_index(pm);
	if (o->files_dir != NULL && snap_tree(&p, o->files_dir, idx, tree,
	    cause) < 0)
		goto out;
	if (o->dump_wait != NULL) {
		/* the files' new blobs made durable while pg_dump runs */
		if (put_sync(&p, cause) < 0)
			goto out;
		if (o->dump_wait(o->dump_wait_arg, &dump_fd, &dsize, &duration,
		    cause) < 0)
			goto out;
		if (p.total >= 0)
			p.total += dsize - o->dump_estimate;
	}
	/* the dump: a delta on the previous one, or chunks
	 * (docs/ARCHITECTURE.md says why) */
	if (lseek(dump_fd, 0, SEEK_SET) < 0) {
		fail(cause, "cannot read the dump: %s", strerror(errno));
		goto out;
	}
	dump = json_object();
	if ((r = put_dump_delta(&p, dump_fd, pm, dump, cause)) < 0 ||
	    (r == 0 && put_dump(&p, dump_fd, dump, cause) < 0))
		goto out;
	dsize = jsonx_int(dump, "size", 0);
	m = manifest_new(o->created, o->model_version, o->database_size >= 0 ?
	    o->database_size : dsize, duration, dump);
	json_object_set(m, "tree", tree);
	json_object_set_new(m, "files_size", json_integer(p.st->files_bytes));
	if (manifest_put(&p, m, o->manifest, cause) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0)
		p.keep_hex[0] = '\0';
	chain_keep_end(&p);
	if (lock >= 0)
		close(lock);
	json_decref(m);
	json_decref(pm);
	json_decref(tree);
	json_decref(idx);
	json_decref(dump);
	/* blobs not moved into blobs/: gone (the sweep also empties tmp/) */
	json_object_foreach(p.pending, h, pt)
		if (rc < 0)
			unlink(json_string_value(pt));
	json_decref(p.pending);
	snapstore_pack_release(&p.pk);
	snapstore_dindex_free(p.early);
	free(p.iobuf);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Assembling the archive                                              */

/* A download is one gzip member whose deflate stream is a row of
 * segments, each made by a fresh raw deflater and ended with
 * Z_SYNC_FLUSH (byte aligned, no back-reference into the one before):
 * the tar headers and padding between two files' contents, deflated
 * here; a packed blob's stored bytes, spliced as they are (no inflate,
 * no hash: the gzip trailer's crc32, combined from the crc32 each blob
 * recorded when it was packed, lets the client find any damage); a raw
 * blob (a store from before packing) deflated here by the same packer,
 * so it gives the bytes its packed form would. Then the final empty
 * block and the trailer. docs/ARCHITECTURE.md, "Snapshot store". */

/* gzip's header: deflate, no name, no time, Unix. */
static const unsigned char gz_head[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0,
	0, 3 };
/* A final fixed-Huffman block holding only its end code. */
static const unsigned char gz_last[2] = { 0x03, 0x00 };

struct asm_ctx {
	int		 out_fd;	/* -1: counted only */
	long long	 from;		/* bytes before this are not written */
	long long	 written;	/* bytes of the download made so far */
	int		 werr;		/* errno of a failed write */
	int		 stored;	/* segments as stored blocks (restore) */
	uLong		 crc;		/* of the tar stream so far */
	long long	 rawlen;
	struct buf	 tar;		/* tar bytes waiting: headers, padding */
	int		 capture;	/* libarchive's output kept in tar (else
					 * it is a file's contents: dropped) */
	struct archive	*a;
	const char	*store;
	unsigned char	*iobuf;
	struct snapstore_pack pk;
	struct ahead	*ahead;		/* NULL: none */
};

/* Reading ahead. A download from disk reads a file per blob, each a
 * seek and a wait the sending cannot overlap: a thread of its own asks
 * the kernel for the next blobs (posix_fadvise(WILLNEED): their reads
 * queued, not waited for) while the current one is sent, up to
 * AHEAD_BYTES of them ahead of it (so a big snapshot's blobs are not
 * read into the page cache long before they are sent). */
#define AHEAD_BYTES	(32LL * 1024 * 1024)

struct ahead {
	const char	*store;
	json_t		*list;		/* [[sha256, size]…] in download order */
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	long long	 reached;	/* of the list's bytes, the download's
					 * blobs reached so far */
	int		 stop;
	pthread_t	 t;
};

static void *
ahead_thread(void *arg)
{
	struct ahead *h = arg;
	long long at = 0, size, reached;
	json_t *e;
	size_t i;
	char *p;
	int fd, stop;

	json_array_foreach(h->list, i, e) {
		size = json_integer_value(json_array_get(e, 1));
		pthread_mutex_lock(&h->mu);
		while (!h->stop && at - h->reached > AHEAD_BYTES)
			pthread_cond_wait(&h->cv, &h->mu);
		stop = h->stop;
		reached = h->reached;
		pthread_mutex_unlock(&h->mu);
		if (stop)
			break;
		/* a blob the download is past (a Range) is not read */
		if (at + size > reached) {
			p = snapstore_packed_path(h->store, json_string_value(
			    json_array_get(e, 0)));
			if ((fd = open(p, O_RDONLY | O_CLOEXEC)) >= 0) {
				(void)posix_fadvise(fd, 0, 0,
				    POSIX_FADV_WILLNEED);
				close(fd);
			}
			free(p);
		}
		at += size;
	}
	return NULL;
}

/* Start reading ahead of a download of m's kind; NULL when not worth it
 * (a blob or none). */
static struct ahead *
ahead_start(const char *store, json_t *m, enum snapstore_kind kind)
{
	json_t *list = json_array(), *dump = json_object_get(m, "dump"), *e;
	struct ahead *h;
	size_t i;

	if (kind == SNAPSTORE_FULL && json_object_get(dump, "deltas") == NULL)
		json_array_foreach(json_object_get(dump, "chunks"), i, e)
			json_array_append_new(list, json_pack("[s?,I]",
			    jsonx_str(e, "sha256"), jsonx_int(e, "size", 0)));
	json_array_foreach(json_object_get(m, "tree"), i, e)
		if (valid_hex(jsonx_str(e, "sha256")))
			json_array_append_new(list, json_pack("[s,I]",
			    jsonx_str(e, "sha256"), jsonx_int(e, "size", 0)));
	if (json_array_size(list) < 2) {
		json_decref(list);
		return NULL;
	}
	h = xcalloc(1, sizeof *h);
	h->store = store;
	h->list = list;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	if (pthread_create(&h->t, NULL, ahead_thread, h) != 0) {
		pthread_mutex_destroy(&h->mu);
		pthread_cond_destroy(&h->cv);
		json_decref(list);
		free(h);
		return NULL;
	}
	return h;
}

/* The download has reached size more bytes of the list's blobs. */
static void
ahead_reached(struct ahead *h, long long size)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	h->reached += size;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

static void
ahead_end(struct ahead *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = 1;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->t, NULL);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	json_decref(h->list);
	free(h);
}

/* Bytes of the download: written from c->from on, counted all. */
static int
emit(void *arg, const void *data, size_t len)
{
	struct asm_ctx *c = arg;
	const unsigned char *d = data;
	long long skip = c->from - c->written;

	if (skip >= (long long)len) {
		c->written += (long long)len;
		return 0;
	}
	if (skip > 0) {
		d += skip;
		len -= (size_t)skip;
		c->written += skip;
	}
	c->written += (long long)len;
	if (c->out_fd >= 0 && util_write_all(c->out_fd, d, len) < 0) {
		c->werr = errno;
		return -1;
	}
	return 0;
}

static int
asm_write_fail(struct asm_ctx *c, char **cause)
{
	return fail(cause, "cannot write the archive: %s",
	    strerror(c->werr ? c->werr : EIO));
}

/* The tar bytes waiting, as one segment. */
static int
asm_flush(struct asm_ctx *c, char **cause)
{
	if (c->tar.len == 0)
		return 0;
	snapstore_pack_begin(&c->pk, c->stored, emit, c);
	if (snapstore_pack_add(&c->pk, c->tar.data, c->tar.len) < 0 ||
	    snapstore_pack_end(&c->pk) < 0)
		return asm_write_fail(c, cause);
	c->crc = crc32_combine(c->crc, c->pk.crc, (z_off_t)c->tar.len);
	c->rawlen += (long long)c->tar.len;
	c->tar.len = 0;
	return 0;
}

/* The deflate stream's end and gzip's trailer: the crc32 of all the
 * segments' bytes, combined, and their length mod 2^32. */
static int
asm_end(struct asm_ctx *c, char **cause)
{
	unsigned char trailer[8];
	int i;

	for (i = 0; i < 4; i++) {
		trailer[i] = (unsigned char)(c->crc >> (8 * i));
		trailer[4 + i] = (unsigned char)((unsigned long long)c->rawlen >>
		    (8 * i));
	}
	if (emit(c, gz_last, sizeof gz_last) < 0 ||
	    emit(c, trailer, sizeof trailer) < 0)
		return asm_write_fail(c, cause);
	return 0;
}

static la_ssize_t
asm_write(struct archive *a, void *vctx, const void *buf, size_t len)
{
	struct asm_ctx *c = vctx;

	(void)a;
	if (c->capture)
		buf_append(&c->tar, buf, len);
	return (la_ssize_t)len;
}

static int
asm_header(struct asm_ctx *c, const char *name, mode_t type, mode_t perm,
    long long size, long long mtime, char **cause)
{
	struct archive_entry *e = archive_entry_new();
	int r;

	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm);
	archive_entry_set_size(e, type == AE_IFREG ? size : 0);
	archive_entry_set_mtime(e, (time_t)mtime, 0);
	archive_entry_set_uname(e, "nubo");
	archive_entry_set_gname(e, "nubo");
	r = archive_write_header(c->a, e);
	archive_entry_free(e);
	if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
		return fail(cause, "cannot write the archive: %s",
		    archive_error_string(c->a));
	return 0;
}

static int
asm_data(struct asm_ctx *c, const void *data, size_t len, char **cause)
{
	if (archive_write_data(c->a, data, len) != (la_ssize_t)len)
		return fail(cause, "cannot write the archive: %s",
		    archive_error_string(c->a));
	return 0;
}

/* A blob's raw bytes checked: its size and sha256 as the manifest
 * names them, and for a packed one its header's size and crc32 (see
 * snapstore_blob_done()); each byte to sink (NULL: none). A damaged or
 * missing blob fails, naming the file it holds. */
typedef int (*blob_sink)(void *ctx, const void *data, size_t len,
    char **cause);

static int
blob_copy(const char *store, const char *hex, long long size,
    const char *name, unsigned char *iobuf, blob_sink sink, void *ctx,
    char **cause)
{
	struct snapstore_blob b;
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	unsigned char md[32];
	char got[65], *why = NULL;
	ssize_t n;
	int rc = -1;

	snapstore_blob_init(&b);
	EVP_DigestInit_ex(mc, EVP_sha256(), NULL);
	if (snapstore_blob_open(&b, store, hex, &why) < 0) {
		if (b.missing)
			fail(cause, "the snapshot's blob for '%s' is missing "
			    "from the store: %s", name, strerror(ENOENT));
		else
			fail(cause, "the snapshot's blob for '%s' is damaged "
			    "(%s %s)", name, b.path, why);
		goto out;
	}
	while ((n = snapstore_blob_read(&b, iobuf, NUBO_IO_CHUNK, &why)) > 0) {
		EVP_DigestUpdate(mc, iobuf, (size_t)n);
		if (sink != NULL && sink(ctx, iobuf, (size_t)n, cause) < 0)
			goto out;
	}
	EVP_DigestFinal_ex(mc, md, NULL);
	util_hex(md, 32, got);
	if (n < 0 || snapstore_blob_done(&b, &why) < 0 || b.got != size ||
	    strcmp(got, hex) != 0) {
		fail(cause, "the snapshot's blob for '%s' is damaged (%s%s%s)",
		    name, b.path, why ? " " : "", why ? why : "");
		goto out;
	}
	rc = 0;
out:
	free(why);
	snapstore_blob_close(&b);
	EVP_MD_CTX_free(mc);
	return rc;
}

static int
sink_pack(void *ctx, const void *data, size_t len, char **cause)
{
	struct asm_ctx *c = ctx;

	if (snapstore_pack_add(&c->pk, data, len) < 0)
		return asm_write_fail(c, cause);
	return 0;
}

/* zsize bytes of the file fd (path) from offset head on, from where the
 * download is. */
static int
splice_fd(struct asm_ctx *c, int fd, long long head, long long zsize,
    const char *path, char **cause)
{
	long long skip = c->from - c->written, left;
	off_t off;
	ssize_t n;

	if (skip >= zsize || c->out_fd < 0) {
		c->written += zsize;	/* not read */
		return 0;
	}
	off = (off_t)(head + (skip > 0 ? skip : 0));
	left = zsize - (skip > 0 ? skip : 0);
	c->written += zsize - left;
	while (left > 0) {
		/* the kernel copies it (a pipe, a socket, a file) */
		n = sendfile(c->out_fd, fd, &off, left < (1 << 30) ?
		    (size_t)left : (1 << 30));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EINVAL || errno == ENOSYS))
			break;	/* read and write it below */
		if (n < 0) {
			c->werr = errno;
			return asm_write_fail(c, cause);
		}
		if (n == 0)
			return fail(cause, "'%s' ended early", path);
		left -= n;
		c->written += n;
	}
	while (left > 0) {
		n = pread(fd, c->iobuf, left < NUBO_IO_CHUNK ? (size_t)left :
		    NUBO_IO_CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail(cause, "cannot read '%s': %s",
			    path, n < 0 ? strerror(errno) : "it ended early");
		if (emit(c, c->iobuf, (size_t)n) < 0)
			return asm_write_fail(c, cause);
		off += n;
		left -= n;
	}
	return 0;
}

/* The stored bytes of a packed blob, from where the download is. */
static int
splice_out(struct asm_ctx *c, struct snapstore_blob *b, char **cause)
{
	return splice_fd(c, b->fd, SNAPSTORE_PACK_HEAD, b->zsize, b->path,
	    cause);
}

/* A blob's segment: a packed blob spliced, a raw one deflated here as
 * it is checked. */
static int
asm_segment(struct asm_ctx *c, const char *hex, long long size,
    const char *name, char **cause)
{
	struct snapstore_blob b;
	char *why = NULL;
	int rc = -1;

	ahead_reached(c->ahead, size);
	snapstore_blob_init(&b);
	if (snapstore_blob_open(&b, c->store, hex, &why) < 0 || !b.packed) {
		snapstore_blob_close(&b);
		free(why);
		snapstore_pack_begin(&c->pk, c->stored, emit, c);
		if (blob_copy(c->store, hex, size, name, c->iobuf, sink_pack, c,
		    cause) < 0)
			return -1;
		if (snapstore_pack_end(&c->pk) < 0)
			return asm_write_fail(c, cause);
		c->crc = crc32_combine(c->crc, c->pk.crc, (z_off_t)size);
		c->rawlen += size;
		return 0;
	}
	if (b.size != size) {
		fail(cause, "the snapshot's blob for '%s' is damaged (%s holds "
		    "%lld bytes, not %lld)", name, b.path, b.size, size);
		goto out;
	}
	if (splice_out(c, &b, cause) < 0)
		goto out;
	c->crc = crc32_combine(c->crc, b.crc, (z_off_t)size);
	c->rawlen += size;
	rc = 0;
out:
	free(why);
	snapstore_blob_close(&b);
	return rc;
}

/* libarchive told that size bytes of the member's contents went (they
 * went as segments of their own): its output dropped meanwhile. */
static int
asm_skip(struct asm_ctx *c, long long size, char **cause)
{
	static const unsigned char zeros[64 * 1024];
	size_t n;
	int rc = 0;

	c->capture = 0;
	while (size > 0 && rc == 0) {
		n = size < (long long)sizeof zeros ? (size_t)size : sizeof zeros;
		if (archive_write_data(c->a, zeros, n) != (la_ssize_t)n)
			rc = fail(cause, "cannot write the archive: %s",
			    archive_error_string(c->a));
		size -= (long long)n;
	}
	c->capture = 1;
	return rc;
}

static int
asm_blob(struct asm_ctx *c, const char *hex, long long size, const char *name,
    char **cause)
{
	if (asm_flush(c, cause) < 0 ||
	    asm_segment(c, hex, size, name, cause) < 0)
		return -1;
	return asm_skip(c, size, cause);
}


/* The chain's segments sent from its download copy (chain_path()) when
 * there is one of their size: 1; 0 when there is none; -1 with *cause. */
static int
chain_send(struct asm_ctx *c, json_t *dump, long long total, char **cause)
{
	const char *hex = jsonx_str(dump, "sha256");
	json_t *g;
	struct stat st;
	char *p;
	size_t i;
	int fd, rc;

	if (!valid_hex(hex))
		return 0;
	p = chain_path(c->store, hex);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size != total) {
		if (fd >= 0)
			close(fd);
		free(p);
		return 0;
	}
	rc = splice_fd(c, fd, 0, total, p, cause) < 0 ? -1 : 1;
	close(fd);
	free(p);
	json_array_foreach(json_object_get(dump, "segments"), i, g) {
		c->crc = crc32_combine(c->crc, (uLong)jsonx_int(g, "crc32", 0),
		    (z_off_t)jsonx_int(g, "size", 0));
		c->rawlen += jsonx_int(g, "size", 0);
	}
	return rc;
}

/* A dump that is a chain (a base and deltas): its bytes made by applying
 * the chain, cut and deflated into the segments the manifest lists (see
 * seg_pack()). A segment's deflated size and crc32 are the manifest's,
 * so a download's size needs none of it made and a Range none of the
 * deflating before it; made, each must be what the manifest says. */
static int
asm_chain(struct asm_ctx *c, json_t *dump, char **cause)
{
	json_t *segs = json_object_get(dump, "segments"), *g;
	long long size, zsize, start, total = 0, r;
	struct snapstore_dver *d = NULL;
	uLong crc;
	size_t i;
	int rc = -1, sent;

	json_array_foreach(segs, i, g)
		total += jsonx_int(g, "zsize", 0);
	if (!c->stored && c->out_fd >= 0 && c->from < c->written + total &&
	    (sent = chain_send(c, dump, total, cause)) != 0)
		return sent < 0 ? -1 : 0;
	if (!c->stored && (c->out_fd < 0 || c->from >= c->written + total))
		d = NULL;	/* none of it made */
	else if ((d = snapstore_dver_open(c->store, dump, cause)) == NULL)
		return -1;
	json_array_foreach(segs, i, g) {
		size = jsonx_int(g, "size", 0);
		zsize = jsonx_int(g, "zsize", 0);
		crc = (uLong)jsonx_int(g, "crc32", 0);
		if (d == NULL || (!c->stored && c->from >= c->written +
		    zsize)) {
			/* its bytes read past, not deflated */
			if (d != NULL && snapstore_dver_read(d, NULL, size,
			    cause) != size)
				goto short_read;
			c->written += zsize;
		} else {
			start = c->written;
			snapstore_pack_begin(&c->pk, c->stored, emit, c);
			for (r = 0; r < size; r += NUBO_IO_CHUNK) {
				long long want = size - r < NUBO_IO_CHUNK ?
				    size - r : NUBO_IO_CHUNK;

				if (snapstore_dver_read(d, c->iobuf, want,
				    cause) != want)
					goto short_read;
				if (snapstore_pack_add(&c->pk, c->iobuf,
				    (size_t)want) < 0) {
					asm_write_fail(c, cause);
					goto out;
				}
			}
			if (snapstore_pack_end(&c->pk) < 0) {
				asm_write_fail(c, cause);
				goto out;
			}
			if (c->pk.crc != crc || (!c->stored && c->written -
			    start != zsize))
				goto damaged;
		}
		c->crc = crc32_combine(c->crc, crc, (z_off_t)size);
		c->rawlen += size;
	}
	/* and nothing past the last segment */
	if (d != NULL && snapstore_dver_read(d, c->iobuf, 1, cause) != 0)
		goto short_read;
	rc = 0;
	goto out;
short_read:
	if (cause != NULL && *cause != NULL)
		goto out;
damaged:
	fail(cause, "the snapshot's dump is damaged: it does not read back "
	    "as its manifest says");
out:
	snapstore_dver_close(d);
	return rc;
}

/* db/db.backup's contents in the archive: a segment per chunk, or the
 * chain's one. */
static int
asm_dump(struct asm_ctx *c, json_t *dump, char **cause)
{
	json_t *ch;
	size_t i;

	if (snapstore_dump_chain_ok(dump, cause) < 0 || asm_flush(c, cause) < 0)
		return -1;
	if (json_object_get(dump, "deltas") != NULL) {
		if (asm_chain(c, dump, cause) < 0)
			return -1;
	} else {
		json_array_foreach(json_object_get(dump, "chunks"), i, ch)
			if (asm_segment(c, jsonx_str(ch, "sha256"), jsonx_int(
			    ch, "size", 0), DUMP_NAME, cause) < 0)
				return -1;
	}
	return asm_skip(c, jsonx_int(dump, "size", 0), cause);
}


static int
asm_tree(struct asm_ctx *c, json_t *m, struct buf *sums, char **cause)
{
	json_t *tree = json_object_get(m, "tree"), *e;
	long long created = jsonx_int(m, "created", 0);
	unsigned char md[32];
	const char *type, *hex;
	char *rel, *name;
	size_t i, k;
	int rc;

	if (json_array_size(tree) == 0)
		return 0;
	if (asm_header(c, "tree/", AE_IFDIR, 0755, 0, created, cause) < 0)
		return -1;
	json_array_foreach(tree, i, e) {
		type = jsonx_str(e, "type");
		hex = jsonx_str(e, "sha256");
		if ((rel = path_get(e)) == NULL || type == NULL ||
		    (strcmp(type, "d") != 0 && (strcmp(type, "f") != 0 ||
		    !valid_hex(hex))))
			return fail(cause, "the snapshot's manifest is damaged "
			    "at entry %zu", i);
		name = xasprintf("tree/%s%s", rel, *type == 'd' ? "/" : "");
		free(rel);
		if (*type == 'd')
			rc = asm_header(c, name, AE_IFDIR, jsonx_int(e, "mode",
			    0755) & 07777, 0, jsonx_int(e, "mtime", 0), cause);
		else {
			rc = asm_header(c, name, AE_IFREG, jsonx_int(e, "mode",
			    0644) & 07777, jsonx_int(e, "size", 0),
			    jsonx_int(e, "mtime", 0), cause);
			if (rc == 0)
				rc = asm_blob(c, hex, jsonx_int(e, "size", 0),
				    name, cause);
			if (rc == 0 && sums != NULL) {
				for (k = 0; k < 32; k++)
					sscanf(hex + 2 * k, "%2hhx", &md[k]);
				backup_checksum_line(sums, md, name);
			}
		}
		free(name);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* .metadata as backup_archive_write() writes it. */
static char *
metadata_text(json_t *m)
{
	json_t *mj = json_object();
	char v[32], *text;

	snprintf(v, sizeof(v), "%lld", jsonx_int(m, "duration", 0));
	json_object_set_new(mj, "duration", json_string(v));
	snprintf(v, sizeof(v), "%lld", jsonx_int(json_object_get(m, "dump"),
	    "size", 0));
	json_object_set_new(mj, "dumpSize", json_string(v));
	json_object_set_new(mj, "modelVersion", json_string(
	    jsonx_str(m, "model_version") ? jsonx_str(m, "model_version") : ""));
	snprintf(v, sizeof(v), "%lld", jsonx_int(m, "database_size", 0));
	json_object_set_new(mj, "databaseSize", json_string(v));
	snprintf(v, sizeof(v), "%lld", jsonx_int(m, "files_size", 0));
	json_object_set_new(mj, "filesSize", json_string(v));
	json_object_set_new(mj, "nuboFormat", json_string("1"));
	text = json_dumps(mj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(mj);
	return text;
}

static int
asm_full(struct asm_ctx *c, json_t *m, char **cause)
{
	json_t *dump = json_object_get(m, "dump");
	long long created = jsonx_int(m, "created", 0);
	long long dsize = jsonx_int(dump, "size", -1);
	const char *dhex = jsonx_str(dump, "sha256");
	unsigned char md[32];
	struct buf sums;
	char *meta = NULL;
	size_t k;
	int rc = -1;

	buf_init(&sums, 0);
	if (!valid_hex(dhex) || dsize < 0) {
		fail(cause, "the snapshot's manifest is damaged: no dump");
		goto out;
	}
	for (k = 0; k < 32; k++)
		sscanf(dhex + 2 * k, "%2hhx", &md[k]);
	backup_checksum_line(&sums, md, DUMP_NAME);
	if (asm_header(c, "db/", AE_IFDIR, 0755, 0, created, cause) < 0 ||
	    asm_header(c, DUMP_NAME, AE_IFREG, 0644, dsize, created, cause) < 0 ||
	    asm_dump(c, dump, cause) < 0 ||
	    asm_tree(c, m, &sums, cause) < 0)
		goto out;
	meta = metadata_text(m);
	if (asm_header(c, ".metadata", AE_IFREG, 0644, (long long)strlen(meta),
	    created, cause) < 0 || asm_data(c, meta, strlen(meta), cause) < 0 ||
	    asm_header(c, ".nubo/", AE_IFDIR, 0755, 0, created, cause) < 0 ||
	    asm_header(c, CHECKSUMS_NAME, AE_IFREG, 0644, (long long)sums.len,
	    created, cause) < 0 || asm_data(c, sums.data, sums.len, cause) < 0)
		goto out;
	rc = 0;
out:
	free(meta);
	buf_release(&sums);
	return rc;
}

/* The dump itself from byte from on: chunks wholly before it are not
 * read; every chunk read is checked against its sha256 (the dump is
 * not a gzip stream: nothing else would tell its reader). */
struct dump_out {
	int		 fd;
	long long	 skip;		/* bytes still to drop */
};

static int
sink_dump(void *ctx, const void *data, size_t len, char **cause)
{
	struct dump_out *d = ctx;
	const unsigned char *p = data;

	if (d->skip >= (long long)len) {
		d->skip -= (long long)len;
		return 0;
	}
	p += d->skip;
	len -= (size_t)d->skip;
	d->skip = 0;
	if (util_write_all(d->fd, p, len) < 0)
		return fail(cause, "cannot write the dump: %s", strerror(errno));
	return 0;
}

/* A chain's dump read back whole (its blobs are not hashed one by one:
 * the whole dump's sha256 is checked at its end), to out_fd from byte
 * from on (out_fd -1: only checked). */
static int
copy_chain(const char *store, json_t *dump, long long from, int out_fd,
    char **cause)
{
	struct snapstore_dver *d;
	unsigned char *iobuf, md[32];
	struct dump_out o = { out_fd, from };
	EVP_MD_CTX *mc;
	char got[65];
	long long r;

	if ((d = snapstore_dver_open(store, dump, cause)) == NULL)
		return -1;
	iobuf = xmalloc(NUBO_IO_CHUNK);
	mc = EVP_MD_CTX_new();
	EVP_DigestInit_ex(mc, EVP_sha256(), NULL);
	while ((r = snapstore_dver_read(d, iobuf, NUBO_IO_CHUNK, cause)) > 0) {
		EVP_DigestUpdate(mc, iobuf, (size_t)r);
		if (out_fd >= 0 && sink_dump(&o, iobuf, (size_t)r, cause) < 0) {
			r = -1;
			break;
		}
	}
	EVP_DigestFinal_ex(mc, md, NULL);
	util_hex(md, 32, got);
	if (r == 0 && strcmp(got, jsonx_str(dump, "sha256")) != 0)
		r = fail(cause, "the snapshot's dump is damaged: it does not "
		    "read back as its manifest says");
	EVP_MD_CTX_free(mc);
	free(iobuf);
	snapstore_dver_close(d);
	return r < 0 ? -1 : 0;
}

static int
copy_dump(const char *store, json_t *m, long long from, int out_fd,
    char **cause)
{
	json_t *dump = json_object_get(m, "dump"), *ch;
	unsigned char *iobuf = xmalloc(NUBO_IO_CHUNK);
	struct dump_out d = { out_fd, from };
	long long size;
	size_t i;
	int rc = -1;

	if (snapstore_dump_chain_ok(dump, cause) < 0)
		goto out;
	if (json_object_get(dump, "deltas") != NULL) {
		rc = copy_chain(store, dump, from, out_fd, cause);
		goto out;
	}
	json_array_foreach(json_object_get(dump, "chunks"), i, ch) {
		size = jsonx_int(ch, "size", 0);
		if (d.skip >= size) {
			d.skip -= size;
			continue;
		}
		if (blob_copy(store, jsonx_str(ch, "sha256"), size, DUMP_NAME,
		    iobuf, sink_dump, &d, cause) < 0)
			goto out;
	}
	rc = 0;
out:
	free(iobuf);
	return rc;
}

/* The manifest's entries a download of kind reads, checked before a
 * byte is written: 0, or -1 with *cause (the messages asm_tree() and
 * asm_full() would give midway). */
static int
manifest_check(json_t *m, enum snapstore_kind kind, char **cause)
{
	json_t *dump = json_object_get(m, "dump"), *e;
	const char *type;
	char *rel;
	size_t i;
	int ok;

	if (kind == SNAPSTORE_FULL && (!valid_hex(jsonx_str(dump, "sha256")) ||
	    jsonx_int(dump, "size", -1) < 0 || snapstore_dump_chain_ok(dump, cause) < 0))
		return fail(cause, "the snapshot's manifest is damaged: no dump");
	json_array_foreach(json_object_get(m, "tree"), i, e) {
		type = jsonx_str(e, "type");
		rel = path_get(e);
		ok = rel != NULL && type != NULL && (strcmp(type, "d") == 0 ||
		    (strcmp(type, "f") == 0 && valid_hex(jsonx_str(e,
		    "sha256"))));
		free(rel);
		if (!ok)
			return fail(cause, "the snapshot's manifest is damaged "
			    "at entry %zu", i);
	}
	return 0;
}

/* The download from byte from on to out_fd, or with out_fd -1 only its
 * size into *written (packed blobs not read: their segments' sizes are
 * their files'). */
static int
archive_out(const char *store, const char *manifest, enum snapstore_kind kind,
    int stored, long long from, int out_fd, long long *written, char **cause)
{
	struct asm_ctx c;
	json_t *m;
	int rc = -1;

	*written = 0;
	if ((m = manifest_load(manifest, cause)) == NULL)
		return -1;
	if (kind == SNAPSTORE_DATABASE) {
		*written = jsonx_int(json_object_get(m, "dump"), "size", 0);
		rc = out_fd >= 0 ? copy_dump(store, m, from, out_fd, cause) : 0;
		json_decref(m);
		return rc;
	}
	if (manifest_check(m, kind, cause) < 0) {
		json_decref(m);
		return -1;
	}
	memset(&c, 0, sizeof(c));
	c.out_fd = out_fd;
	c.from = from;
	c.store = store;
	c.stored = stored;
	c.capture = 1;
	c.crc = crc32(0L, Z_NULL, 0);
	buf_init(&c.tar, 0);
	snapstore_pack_init(&c.pk);
	c.iobuf = xmalloc(NUBO_IO_CHUNK);
	c.a = archive_write_new();
	archive_write_set_format_pax_restricted(c.a);
	/* unblocked: each header's bytes come as it is written */
	archive_write_set_bytes_per_block(c.a, 0);
	if (archive_write_open2(c.a, &c, NULL, asm_write, NULL, NULL) !=
	    ARCHIVE_OK) {
		fail(cause, "cannot write the archive: %s",
		    archive_error_string(c.a));
		goto out;
	}
	if (emit(&c, gz_head, sizeof gz_head) < 0) {
		asm_write_fail(&c, cause);
		goto out;
	}
	if (out_fd >= 0)
		c.ahead = ahead_start(store, m, kind);
	if ((kind == SNAPSTORE_FULL ? asm_full(&c, m, cause) :
	    asm_tree(&c, m, NULL, cause)) < 0)
		goto out;
	if (archive_write_close(c.a) != ARCHIVE_OK) {
		fail(cause, "cannot write the archive: %s",
		    archive_error_string(c.a));
		goto out;
	}
	if (asm_flush(&c, cause) < 0)
		goto out;
	if (asm_end(&c, cause) < 0)
		goto out;
	rc = 0;
out:
	ahead_end(c.ahead);
	c.capture = 0;
	archive_write_free(c.a);
	snapstore_pack_release(&c.pk);
	buf_release(&c.tar);
	free(c.iobuf);
	json_decref(m);
	*written = c.written;
	return rc;
}

int
snapstore_archive_write(const char *store, const char *manifest,
    enum snapstore_kind kind, int out_fd, char **cause)
{
	long long written;

	return archive_out(store, manifest, kind, 0, 0, out_fd, &written,
	    cause);
}

int
snapstore_archive_write_from(const char *store, const char *manifest,
    enum snapstore_kind kind, long long from, int out_fd, char **cause)
{
	long long written;

	return archive_out(store, manifest, kind, 0, from, out_fd, &written,
	    cause);
}

int
snapstore_archive_stream(const char *store, const char *manifest,
    enum snapstore_kind kind, int out_fd, char **cause)
{
	long long written;

	return archive_out(store, manifest, kind, 1, 0, out_fd, &written,
	    cause);
}

struct snapstore_pipe {
	char		*store;
	char		*manifest;
	int		 wfd;
	char		*cause;
	pthread_t	 th;
};

static void *
pipe_thread(void *arg)
{
	struct snapstore_pipe *sp = arg;

	snapstore_archive_stream(sp->store, sp->manifest, SNAPSTORE_FULL,
	    sp->wfd, &sp->cause);
	close(sp->wfd);
	return NULL;
}

int
snapstore_pipe_start(const char *store, const char *manifest,
    struct snapstore_pipe **spp, char **cause)
{
	struct snapstore_pipe *sp;
	int p[2];

	if (pipe2(p, O_CLOEXEC) == -1)
		return fail(cause, "cannot read the snapshot '%s': %s", manifest,
		    strerror(errno));
	(void)fcntl(p[1], F_SETPIPE_SZ, NUBO_IO_CHUNK);
	sp = xcalloc(1, sizeof *sp);
	sp->store = xstrdup(store);
	sp->manifest = xstrdup(manifest);
	sp->wfd = p[1];
	if (pthread_create(&sp->th, NULL, pipe_thread, sp) != 0)
		fatal("cannot start a thread to read a snapshot");
	*spp = sp;
	return p[0];
}

char *
snapstore_pipe_end(struct snapstore_pipe *sp, int rfd, int reader_failed)
{
	char *why = NULL;

	close(rfd);
	pthread_join(sp->th, NULL);
	/* a reader that stopped early is no fault of the snapshot */
	if (sp->cause != NULL && strstr(sp->cause, strerror(EPIPE)) == NULL)
		why = sp->cause;
	else
		free(sp->cause);
	/* packed blobs went to the reader unread: when it failed, which
	 * file's blob broke it, if one did */
	if (why == NULL && reader_failed && snapstore_verify(sp->store,
	    sp->manifest, SNAPSTORE_FULL, &why) == 0) {
		free(why);
		why = NULL;
	}
	free(sp->store);
	free(sp->manifest);
	free(sp);
	return why;
}

int
snapstore_archive_size(const char *store, const char *manifest,
    enum snapstore_kind kind, long long *size, char **cause)
{
	return archive_out(store, manifest, kind, 0, 0, -1, size, cause);
}


/* Re-hash one blob for snapstore_verify(). */
struct verify_run {
	const char	*store;
	enum snapstore_kind kind;
	unsigned char	*iobuf;
	char		*cause;
};

static int
verify_one(void *arg, const char *hex, long long size, const char *name)
{
	struct verify_run *v = arg;

	if (v->kind == SNAPSTORE_FILES && strcmp(name, DUMP_NAME) == 0)
		return 0;
	if (v->kind == SNAPSTORE_DATABASE && strcmp(name, DUMP_NAME) != 0)
		return 0;
	return blob_copy(v->store, hex, size, name, v->iobuf, NULL, NULL,
	    &v->cause);
}

int
snapstore_verify(const char *store, const char *manifest,
    enum snapstore_kind kind, char **cause)
{
	struct verify_run v = { store, kind, NULL, NULL };
	char *why = NULL;
	json_t *m;
	int rc;

	if ((m = manifest_load(manifest, cause)) == NULL)
		return -1;
	v.iobuf = xmalloc(NUBO_IO_CHUNK);
	rc = snapstore_manifest_blobs(m, verify_one, &v, cause);
	if (rc < 0 && v.cause != NULL) {
		fail(cause, "%s", v.cause);
		free(v.cause);
	}
	/* each blob sound, and the chain they make the dump recorded */
	if (rc == 0 && kind != SNAPSTORE_FILES && json_object_get(
	    json_object_get(m, "dump"), "deltas") != NULL)
		rc = copy_chain(store, json_object_get(m, "dump"), 0, -1, cause);
	/* the chain's download copy too: a damaged one goes (a download
	 * makes the segments again), the snapshot is whole */
	if (rc == 0 && kind == SNAPSTORE_FULL && snapstore_chain_check(store,
	    json_object_get(m, "dump"), v.iobuf, &why) > 0)
		free(why);
	free(v.iobuf);
	json_decref(m);
	return rc;
}

/* One blob in the PACKED wire form (snapstore.h): its length, then its
 * packed file — as stored, or a raw blob packed here: counted first (the
 * packer's output dropped) for the length and the header's crc32. */
static int
wire_packed(struct asm_ctx *c, const char *hex, long long size, char **cause)
{
	unsigned char len[8], head[SNAPSTORE_PACK_HEAD];
	struct snapstore_blob b;
	long long at = c->written, zsize;
	char *why = NULL;
	uint32_t crc;
	int fd = c->out_fd, rc = -1;

	snapstore_blob_init(&b);
	if (snapstore_blob_open(&b, c->store, hex, &why) == 0 && b.packed) {
		if (b.size != size) {
			fail(cause, "the blob %s is damaged (%s holds %lld bytes, "
			    "not %lld)", hex, b.path, b.size, size);
			goto out;
		}
		zsize = b.zsize;
		crc = b.crc;
	} else {
		c->out_fd = -1;
		rc = asm_segment(c, hex, size, hex, cause);
		c->out_fd = fd;
		zsize = c->written - at;
		c->written = at;
		crc = (uint32_t)c->pk.crc;
		if (rc < 0)
			goto out;
		rc = -1;
	}
	snapstore_le_put(len, (uint64_t)(SNAPSTORE_PACK_HEAD + zsize), 8);
	snapstore_pack_head_put(head, size, crc);
	if (emit(c, len, sizeof len) < 0 || emit(c, head, sizeof head) < 0) {
		asm_write_fail(c, cause);
		goto out;
	}
	rc = b.packed ? splice_out(c, &b, cause) : asm_segment(c, hex, size,
	    hex, cause);
out:
	free(why);
	snapstore_blob_close(&b);
	return rc;
}

/* An off-node copy's blobs on the wire (snapstore.h). */
int
snapstore_blobs_write(const char *store, json_t *blobs,
    enum snapstore_wire form, int out_fd, long long *size, char **cause)
{
	struct dump_out d = { out_fd, 0 };
	struct asm_ctx c;
	const char *hex;
	json_t *e;
	size_t i;
	int rc = -1;

	memset(&c, 0, sizeof(c));
	c.out_fd = out_fd;
	c.store = store;
	c.crc = crc32(0L, Z_NULL, 0);
	snapstore_pack_init(&c.pk);
	c.iobuf = xmalloc(NUBO_IO_CHUNK);
	if (form == SNAPSTORE_WIRE_GZIP && emit(&c, gz_head, sizeof gz_head) <
	    0) {
		asm_write_fail(&c, cause);
		goto out;
	}
	json_array_foreach(blobs, i, e) {
		hex = jsonx_str(e, "sha256");
		if (!valid_hex(hex)) {
			fail(cause, "not a blob: '%s'", hex ? hex : "");
			goto out;
		}
		if (form == SNAPSTORE_WIRE_PACKED) {
			if (wire_packed(&c, hex, jsonx_int(e, "size", 0),
			    cause) < 0)
				goto out;
		} else if (form == SNAPSTORE_WIRE_GZIP) {
			if (asm_segment(&c, hex, jsonx_int(e, "size", 0), hex,
			    cause) < 0)
				goto out;
		} else {
			c.written += jsonx_int(e, "size", 0);
			if (out_fd >= 0 && blob_copy(store, hex, jsonx_int(e,
			    "size", 0), hex, c.iobuf, sink_dump, &d, cause) < 0)
				goto out;
		}
	}
	if (form == SNAPSTORE_WIRE_GZIP && asm_end(&c, cause) < 0)
		goto out;
	rc = 0;
out:
	snapstore_pack_release(&c.pk);
	free(c.iobuf);
	if (size != NULL)
		*size = c.written;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Sweep                                                               */

/* Mark: every blob the manifests matching roots (a glob(3) pattern)
 * name, as keys of an object; the sha256 of each chain's dump as keys of
 * chains. Listed under the exclusive lock, so a snapshot that completed
 * a moment ago is a root too. */
static json_t *
sweep_mark(const char *roots, json_t *chains, char **cause)
{
	json_t *live = json_object(), *m, *e;
	const char *h;
	glob_t g;
	size_t i, r;
	int gr, k;

	gr = glob(roots, GLOB_ERR | GLOB_BRACE, NULL, &g);
	if (gr != 0 && gr != GLOB_NOMATCH) {
		fail(cause, "cannot list the snapshot manifests '%s'", roots);
		json_decref(live);
		return NULL;
	}
	for (r = 0; gr == 0 && r < g.gl_pathc; r++) {
		if ((m = manifest_load(g.gl_pathv[r], cause)) == NULL) {
			json_decref(live);
			live = NULL;
			break;
		}
		e = json_object_get(m, "dump");
		if (json_object_get(e, "deltas") != NULL &&
		    valid_hex(h = jsonx_str(e, "sha256")))
			json_object_set_new(chains, h, json_true());
		for (k = 0; k < 2; k++)
			json_array_foreach(json_object_get(json_object_get(m,
			    "dump"), dump_blob_keys[k]), i, e)
				if (valid_hex(h = jsonx_str(e, "sha256")))
					json_object_set_new(live, h,
					    json_true());
		json_array_foreach(json_object_get(m, "tree"), i, e)
			if (valid_hex(h = jsonx_str(e, "sha256")))
				json_object_set_new(live, h, json_true());
		json_decref(m);
	}
	if (gr == 0)
		globfree(&g);
	return live;
}

/* The download copies (chain_path()) of no kept chain's dump: gone. */
static void
sweep_chains(const char *store, json_t *chains)
{
	char *p = xasprintf("%s/chains", store), *f;
	DIR *d = opendir(p);
	struct dirent *de;

	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || json_object_get(chains,
		    de->d_name) != NULL)
			continue;
		f = xasprintf("%s/%s", p, de->d_name);
		unlink(f);
		free(f);
	}
	if (d != NULL)
		closedir(d);
	free(p);
}

int
snapstore_sweep(const char *store, const char *roots,
    long long *freed_blobs, long long *freed_bytes, char **cause)
{
	json_t *live = NULL, *chains = json_object();
	DIR *d = NULL, *sd;
	struct dirent *de, *se;
	struct stat st;
	char *p, *sub, hex[65];
	long long nb = 0, nbytes = 0;
	int lock, rc = -1, changed;

	if (store_prepare(store, cause) < 0 ||
	    (lock = store_lock(store, LOCK_EX, cause)) < 0)
		return -1;
	/* temp files of snapshots that were killed: nobody writes now */
	p = xasprintf("%s/tmp", store);
	util_rm_rf(p);
	util_mkdir_p(p, 0700);
	free(p);
	if ((live = sweep_mark(roots, chains, cause)) == NULL)
		goto out;
	sweep_chains(store, chains);
	p = xasprintf("%s/blobs", store);
	d = opendir(p);
	free(p);
	if (d == NULL) {
		fail(cause, "cannot read '%s/blobs': %s", store, strerror(errno));
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		if (strlen(de->d_name) != 2)
			continue;
		sub = xasprintf("%s/blobs/%s", store, de->d_name);
		if ((sd = opendir(sub)) == NULL) {
			free(sub);
			continue;
		}
		changed = 0;
		while ((se = readdir(sd)) != NULL) {
			/* both forms: raw (62 hex digits) and packed (.z) */
			if (se->d_name[0] == '.' || (strlen(se->d_name) != 62 &&
			    (strlen(se->d_name) != 64 ||
			    strcmp(se->d_name + 62, ".z") != 0)))
				continue;
			snprintf(hex, sizeof(hex), "%.2s%.62s", de->d_name, se->d_name);
			if (json_object_get(live, hex) != NULL)
				continue;
			p = xasprintf("%s/%s", sub, se->d_name);
			if (stat(p, &st) == 0 && unlink(p) == 0) {
				nb++;
				nbytes += st.st_size;
				changed = 1;
			}
			free(p);
		}
		closedir(sd);
		if (changed) {
			p = xasprintf("%s/x", sub);
			util_fsync_dir(p);
			free(p);
		}
		free(sub);
	}
	rc = 0;
out:
	if (d != NULL)
		closedir(d);
	close(lock);
	json_decref(live);
	json_decref(chains);
	if (freed_blobs != NULL)
		*freed_blobs = nb;
	if (freed_bytes != NULL)
		*freed_bytes = nbytes;
	return rc;
}

int
snapstore_count(const char *store, long long *blobs, long long *bytes)
{
	char *p = xasprintf("%s/blobs", store);
	char *argv[] = { p, NULL };
	FTS *f;
	FTSENT *e;

	*blobs = *bytes = 0;
	if ((f = fts_open(argv, FTS_PHYSICAL | FTS_NOCHDIR, NULL)) == NULL) {
		free(p);
		return -1;
	}
	while ((e = fts_read(f)) != NULL)
		if (e->fts_info == FTS_F && e->fts_level == 2) {
			(*blobs)++;
			*bytes += e->fts_statp->st_size;
		}
	fts_close(f);
	free(p);
	return 0;
}

/* ------------------------------------------------------------------ */
/* For the store's other files (snapstore-int.h)                       */

int
snapstore_fail(char **cause, const char *fmt, ...)
{
	va_list ap;

	if (cause != NULL && *cause == NULL) {
		va_start(ap, fmt);
		if (vasprintf(cause, fmt, ap) < 0)
			fatal("out of memory");
		va_end(ap);
	}
	return -1;
}

int
snapstore_valid_hex(const char *s)
{
	return valid_hex(s);
}

int
snapstore_valid_size(long long size)
{
	return size >= 0 && size <= NUBO_SNAPSHOT_SIZE_MAX;
}

int
snapstore_size_add(long long *sum, long long size)
{
	long long s;

	if (!snapstore_valid_size(size) ||
	    __builtin_add_overflow(*sum, size, &s) || !snapstore_valid_size(s))
		return -1;
	*sum = s;
	return 0;
}

char *
snapstore_blob_path(const char *store, const char *hex)
{
	return blob_path(store, hex);
}

int
snapstore_lock(const char *store, int how, char **cause)
{
	return store_lock(store, how, cause);
}

json_t *
snapstore_manifest_load(const char *path, char **cause)
{
	return manifest_load(path, cause);
}

char *
snapstore_entry_path(json_t *e)
{
	return path_get(e);
}

/* ------------------------------------------------------------------ */
/* Shared with snapstore-import.c (snapstore-put.h)                    */

struct snapstore_put {
	struct put		 p;
	struct blob_w		 file;	/* the tree/ file being written */
	struct chunker		 dump;
	struct snapstore_stats	 st0;
	int			 lock;
};

struct snapstore_put *
snapstore_put_open(const char *store, struct snapstore_stats *stats,
    char **cause)
{
	struct snapstore_put *sp = xcalloc(1, sizeof(*sp));

	sp->p.store = store;
	sp->p.st = stats != NULL ? stats : &sp->st0;
	memset(sp->p.st, 0, sizeof(*sp->p.st));
	sp->p.pending = json_object();
	sp->file.fd = sp->dump.b.fd = sp->lock = sp->p.keep_fd = -1;
	if (store_prepare(store, cause) < 0 ||
	    (sp->lock = store_lock(store, LOCK_SH, cause)) < 0) {
		snapstore_put_close(sp, 0);
		return NULL;
	}
	return sp;
}

int
snapstore_put_file_begin(struct snapstore_put *sp, char **cause)
{
	return blob_begin(&sp->p, &sp->file, &sp->p.pk, cause);
}

int
snapstore_put_file_add(struct snapstore_put *sp, const void *data,
    size_t len, char **cause)
{
	return blob_add(&sp->file, data, len, cause);
}

int
snapstore_put_file_end(struct snapstore_put *sp, char *hex, long long *size,
    char **cause)
{
	*size = sp->file.size;
	blob_end(&sp->p, &sp->file, 1, hex);
	if (sp->p.werr != 0)
		return fail(cause, "cannot write a blob into the snapshot "
		    "store '%s': %s", sp->p.store, strerror(sp->p.werr));
	sp->p.st->files++;
	sp->p.st->files_bytes += *size;
	sp->p.st->hashed++;
	/* as snap_tree(): memory does not grow with the file count */
	if (json_object_size(sp->p.pending) >= PENDING_MAX)
		return put_sync(&sp->p, cause);
	return 0;
}

int
snapstore_put_dump_begin(struct snapstore_put *sp, char **cause)
{
	return chunk_begin(&sp->p, &sp->dump, cause);
}

int
snapstore_put_dump_add(struct snapstore_put *sp, const void *data,
    size_t len, char **cause)
{
	return chunk_feed(&sp->p, &sp->dump, data, len, cause);
}

void
snapstore_put_dump_end(struct snapstore_put *sp, json_t *dump)
{
	chunk_end(&sp->p, &sp->dump, dump);
}

json_t *
snapstore_manifest_new(long long created, const char *model_version,
    long long database_size, long long duration, json_t *dump)
{
	return manifest_new(created, model_version, database_size, duration,
	    dump);
}

void
snapstore_entry_set_path(json_t *e, const char *rel)
{
	path_set(e, rel);
}

int
snapstore_put_manifest(struct snapstore_put *sp, json_t *m, const char *path,
    char **cause)
{
	return manifest_put(&sp->p, m, path, cause);
}

void
snapstore_put_close(struct snapstore_put *sp, int ok)
{
	const char *h;
	json_t *pt;

	if (sp->file.tmp != NULL)
		blob_end(&sp->p, &sp->file, 0, NULL);
	chunk_release(&sp->p, &sp->dump);
	/* blobs not moved into blobs/: gone (the sweep also empties tmp/) */
	json_object_foreach(sp->p.pending, h, pt)
		if (!ok)
			unlink(json_string_value(pt));
	json_decref(sp->p.pending);
	snapstore_pack_release(&sp->p.pk);
	if (sp->lock >= 0)
		close(sp->lock);
	free(sp);
}

/* ------------------------------------------------------------------ */
/* Receiving a copy of another store's snapshot                        */

struct snapstore_recv {
	struct put	 p;
	struct snapstore_stats st;
	struct snapstore_snap_opts o;	/* zero: no progress */
	json_t		*m;		/* the manifest received */
	char		*path;		/* its file */
	json_t		*missing;	/* [{sha256, size, name}] */
	json_t		*got;		/* blobs received and durable */
	json_t		*batch;		/* what the bytes fed now hold */
	size_t		 bi;		/* the blob being received */
	struct blob_w	 b;
	int		 in_blob;
	int		 lock;
	/* the PACKED form: the blob's length being read, then its file */
	unsigned char	 zlen[8];
	int		 nzlen;
	long long	 zleft;		/* of the packed file still to come */
	int		 zfd;
	char		*ztmp;
};

/* The manifest is damaged: its sizes add up to more than a snapshot
 * may hold. */
static int
sizes_too_big(char **cause)
{
	return fail(cause, "the snapshot's manifest is damaged: its sizes "
	    "add up to more than %lld bytes", (long long)NUBO_SNAPSHOT_SIZE_MAX);
}

/* The blob entries of manifest m in order: (sha256, size, name) to fn;
 * -1 with *cause at the first that is not well formed, or once the
 * sizes they give add up to more than NUBO_SNAPSHOT_SIZE_MAX (so no sum
 * of them wraps: a copy's room, a download's length). */
int
snapstore_manifest_blobs(json_t *m, int (*fn)(void *, const char *, long long,
    const char *), void *arg, char **cause)
{
	json_t *dump = json_object_get(m, "dump"), *e;
	long long size, total = 0;
	const char *h, *type;
	char *name;
	size_t i, k;
	int rc;

	if (snapstore_dump_chain_ok(dump, cause) < 0)
		return -1;
	for (k = 0; k < 2; k++)
		json_array_foreach(json_object_get(dump, dump_blob_keys[k]), i,
		    e) {
			size = jsonx_int(e, "size", 0);
			if (snapstore_size_add(&total, size) < 0)
				return sizes_too_big(cause);
			if (fn(arg, jsonx_str(e, "sha256"), size, DUMP_NAME) < 0)
				return -1;
		}
	json_array_foreach(json_object_get(m, "tree"), i, e) {
		type = jsonx_str(e, "type");
		if (type != NULL && strcmp(type, "d") == 0 &&
		    (name = path_get(e)) != NULL) {
			free(name);
			continue;
		}
		h = jsonx_str(e, "sha256");
		size = jsonx_int(e, "size", -1);
		if (type == NULL || strcmp(type, "f") != 0 || !valid_hex(h) ||
		    !snapstore_valid_size(size) || (name = path_get(e)) == NULL)
			return fail(cause, "the snapshot's manifest is damaged at "
			    "entry %zu", i);
		free(name);
		if (snapstore_size_add(&total, size) < 0)
			return sizes_too_big(cause);
		/* named in messages and JSON as the manifest writes it (a
		 * name that is not UTF-8 has no JSON string of its bytes) */
		name = xasprintf("tree/%s", jsonx_str(e, "path"));
		rc = fn(arg, h, size, name);
		free(name);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* Collect a blob the store lacks, once. */
static int
recv_want(void *arg, const char *hex, long long size, const char *name)
{
	struct snapstore_recv *r = arg;
	int have = snapstore_blob_exists(r->p.store, hex);

	if (!have && json_object_get(r->got, hex) == NULL) {
		json_object_set_new(r->got, hex, json_false());
		json_array_append_new(r->missing, json_pack("{s:s,s:I,s:s}",
		    "sha256", hex, "size", (json_int_t)size, "name", name));
	}
	return 0;
}

struct snapstore_recv *
snapstore_recv_begin(const char *store, const char *manifest, char **cause)
{
	struct snapstore_recv *r = xcalloc(1, sizeof(*r));

	r->lock = -1;
	r->p.store = store;
	r->p.o = &r->o;
	r->p.st = &r->st;
	/* each packed blob's read back (recv_packed_end()) */
	r->p.iobuf = xmalloc(NUBO_IO_CHUNK);
	r->p.pending = json_object();
	r->missing = json_array();
	r->got = json_object();
	r->b.fd = r->p.keep_fd = -1;
	r->zfd = -1;
	r->path = xstrdup(manifest);
	if (store_prepare(store, cause) < 0 ||
	    (r->lock = store_lock(store, LOCK_SH, cause)) < 0 ||
	    (r->m = manifest_load(manifest, cause)) == NULL ||
	    snapstore_manifest_blobs(r->m, recv_want, r, cause) < 0) {
		snapstore_recv_free(r);
		return NULL;
	}
	/* "got" holds the blobs received from here on */
	json_object_clear(r->got);
	return r;
}

json_t *
snapstore_recv_missing(struct snapstore_recv *r)
{
	return r->missing;
}

int
snapstore_recv_expect(struct snapstore_recv *r, json_t *batch, char **cause)
{
	if (r->in_blob || (r->batch != NULL && r->bi < json_array_size(
	    r->batch)))
		return fail(cause, "a batch of blobs is not complete");
	json_decref(r->batch);
	r->batch = json_incref(batch);
	r->bi = 0;
	return 0;
}

/* Finish the blob being received: it must be the size and sha256 the
 * manifest names, else it is dropped and the copy fails. */
static int
recv_blob_end(struct snapstore_recv *r, char **cause)
{
	json_t *e = json_array_get(r->batch, r->bi);
	const char *want = jsonx_str(e, "sha256");
	long long size = r->b.size;
	char hex[65];
	json_t *t;

	r->in_blob = 0;
	blob_end(&r->p, &r->b, 1, hex);
	if (r->p.werr != 0)
		return fail(cause, "cannot write a blob into the snapshot "
		    "store '%s': %s", r->p.store, strerror(r->p.werr));
	if (strcmp(hex, want) != 0) {
		if ((t = json_object_get(r->p.pending, hex)) != NULL) {
			unlink(json_string_value(t));
			json_object_del(r->p.pending, hex);
			r->st.blobs_added--;
			r->st.bytes_added -= size;
		}
		return fail(cause, "the blob for '%s' arrived damaged (sha256 "
		    "%s, not %s)", jsonx_str(e, "name"), hex, want);
	}
	json_object_set_new(r->got, want, json_true());
	r->bi++;
	return 0;
}

int
snapstore_recv_data(struct snapstore_recv *r, const void *data, size_t len,
    char **cause)
{
	const unsigned char *d = data;
	long long want, n;
	json_t *e;

	while (len > 0 || (!r->in_blob && r->bi < json_array_size(r->batch) &&
	    jsonx_int(json_array_get(r->batch, r->bi), "size", 0) == 0)) {
		if (r->bi >= json_array_size(r->batch))
			return fail(cause, "more bytes than the blobs asked for");
		e = json_array_get(r->batch, r->bi);
		want = jsonx_int(e, "size", 0);
		if (!r->in_blob) {
			if (blob_begin(&r->p, &r->b, &r->p.pk, cause) < 0) {
				blob_end(&r->p, &r->b, 0, NULL);
				return -1;
			}
			r->in_blob = 1;
		}
		n = want - r->b.size < (long long)len ? want - r->b.size :
		    (long long)len;
		if (n > 0 && blob_add(&r->b, d, (size_t)n, cause) < 0) {
			r->in_blob = 0;
			blob_end(&r->p, &r->b, 0, NULL);
			return -1;
		}
		d += n;
		len -= (size_t)n;
		if (r->b.size == want && recv_blob_end(r, cause) < 0)
			return -1;
	}
	return 0;
}

/* A packed blob's bytes on the wire: at most this much larger than the
 * blob (a deflate stream of stored blocks adds 5 bytes per block of at
 * least 16 KiB, and ends with 5 more): a length over it is refused
 * before anything is written. */
static long long
packed_max(long long size)
{
	return SNAPSTORE_PACK_HEAD + size + size / 1024 + 64;
}

/* Open the next blob's packed file in tmp/, its length read. */
static int
recv_packed_begin(struct snapstore_recv *r, char **cause)
{
	json_t *e = json_array_get(r->batch, r->bi);
	long long want = jsonx_int(e, "size", 0);
	uint64_t len = snapstore_le_get(r->zlen, 8);
	char *rnd;

	/* want is the manifest's (checked: no sum with it wraps) */
	if (!snapstore_valid_size(want) || len < SNAPSTORE_PACK_HEAD ||
	    len > (uint64_t)packed_max(want))
		return fail(cause, "the blob for '%s' arrived damaged (%llu "
		    "packed bytes for %lld)", jsonx_str(e, "name"),
		    (unsigned long long)len, want);
	rnd = util_random_hex(8);
	r->ztmp = xasprintf("%s/tmp/%s.z", r->p.store, rnd);
	free(rnd);
	r->zleft = (long long)len;
	r->zfd = open(r->ztmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (r->zfd < 0)
		return fail(cause, "cannot create '%s': %s", r->ztmp,
		    strerror(errno));
	return 0;
}

/* The blob's packed file is whole: read back through the one reader
 * (which checks its header, its stream and its crc32) and hashed; kept
 * pending when it is the blob asked for, else dropped. */
static int
recv_packed_end(struct snapstore_recv *r, char **cause)
{
	json_t *e = json_array_get(r->batch, r->bi);
	const char *want = jsonx_str(e, "sha256");
	struct snapstore_blob b;
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	unsigned char md[32], *buf = r->p.iobuf;
	char hex[65], *why = NULL;
	ssize_t n;
	int rc = -1;

	snapstore_blob_init(&b);
	EVP_DigestInit_ex(mc, EVP_sha256(), NULL);
	if (close(r->zfd) < 0) {
		r->zfd = -1;
		fail(cause, "cannot write '%s': %s", r->ztmp, strerror(errno));
		goto out;
	}
	r->zfd = -1;
	/* the header's size before a byte is inflated: the reader stops
	 * at it, so a stream made to inflate to far more than the blob
	 * asked for (a deflate bomb) costs no more than the blob */
	if (snapstore_blob_open_path(&b, r->ztmp, 1, &why) == 0 &&
	    b.size != jsonx_int(e, "size", 0))
		why = xasprintf("holds %lld bytes, not %lld", b.size,
		    jsonx_int(e, "size", 0));
	while (why == NULL && (n = snapstore_blob_read(&b, buf, NUBO_IO_CHUNK,
	    &why)) > 0)
		EVP_DigestUpdate(mc, buf, (size_t)n);
	EVP_DigestFinal_ex(mc, md, NULL);
	util_hex(md, 32, hex);
	if (why == NULL)
		snapstore_blob_done(&b, &why);
	if (why == NULL && strcmp(hex, want) != 0)
		why = xasprintf("sha256 %s, not %s", hex, want);
	if (why != NULL) {
		fail(cause, "the blob for '%s' arrived damaged (%s)",
		    jsonx_str(e, "name"), why);
		goto out;
	}
	if (!snapstore_blob_exists(r->p.store, hex) &&
	    json_object_get(r->p.pending, hex) == NULL) {
		json_object_set_new(r->p.pending, hex, json_string(r->ztmp));
		r->st.blobs_added++;
		r->st.bytes_added += b.size;
		free(r->ztmp);
		r->ztmp = NULL;
	}
	json_object_set_new(r->got, want, json_true());
	r->bi++;
	r->in_blob = 0;
	r->nzlen = 0;
	rc = 0;
out:
	if (r->ztmp != NULL)
		unlink(r->ztmp);
	free(r->ztmp);
	r->ztmp = NULL;
	snapstore_blob_close(&b);
	EVP_MD_CTX_free(mc);
	free(why);
	return rc;
}

int
snapstore_recv_packed(struct snapstore_recv *r, const void *data, size_t len,
    char **cause)
{
	const unsigned char *d = data;
	size_t n;

	while (len > 0) {
		if (!r->in_blob && r->bi >= json_array_size(r->batch))
			return fail(cause, "more bytes than the blobs asked for");
		r->in_blob = 1;
		if (r->nzlen < 8) {
			n = 8 - (size_t)r->nzlen < len ? 8 - (size_t)r->nzlen :
			    len;
			memcpy(r->zlen + r->nzlen, d, n);
			r->nzlen += (int)n;
			d += n;
			len -= n;
			if (r->nzlen == 8 && recv_packed_begin(r, cause) < 0)
				return -1;
			continue;
		}
		n = r->zleft < (long long)len ? (size_t)r->zleft : len;
		if (util_write_all(r->zfd, d, n) < 0)
			return fail(cause, "cannot write '%s': %s", r->ztmp,
			    strerror(errno));
		d += n;
		len -= n;
		r->zleft -= (long long)n;
		if (r->zleft == 0 && recv_packed_end(r, cause) < 0)
			return -1;
	}
	return 0;
}

int
snapstore_recv_sync(struct snapstore_recv *r, const char *partial,
    char **cause)
{
	json_t *chunks, *pm;
	const char *h;
	json_t *v;
	char *text;
	int rc;

	/* empty blobs at the end of the batch arrive with no bytes */
	if (snapstore_recv_data(r, "", 0, cause) < 0)
		return -1;
	if (r->in_blob || r->bi < json_array_size(r->batch))
		return fail(cause, "the blobs asked for did not all arrive "
		    "(%zu of %zu)", r->bi, json_array_size(r->batch));
	if (put_sync(&r->p, cause) < 0)
		return -1;
	if (partial == NULL)
		return 0;
	/* a root for the sweep: what arrived is kept for a resumed copy */
	chunks = json_array();
	json_object_foreach(r->got, h, v)
		json_array_append_new(chunks, json_pack("{s:s}", "sha256", h));
	pm = json_pack("{s:i,s:{s:o},s:[]}", "format", MANIFEST_FORMAT,
	    "dump", "chunks", chunks, "tree");
	text = json_dumps(pm, JSON_COMPACT);
	rc = util_write_file(partial, text, strlen(text), 0600);
	if (rc < 0)
		fail(cause, "cannot write '%s': %s", partial, strerror(errno));
	free(text);
	json_decref(pm);
	return rc;
}

int
snapstore_recv_commit(struct snapstore_recv *r, const char *manifest,
    struct snapstore_stats *stats, char **cause)
{
	int fd, rc;

	if (snapstore_recv_sync(r, NULL, cause) < 0)
		return -1;
	fd = open(r->path, O_RDONLY | O_CLOEXEC);
	rc = fd < 0 || fdatasync(fd) < 0 ? -1 : 0;
	if (fd >= 0)
		close(fd);
	if (rc < 0 || util_rename_sync(r->path, manifest) < 0)
		return fail(cause, "cannot write '%s': %s", manifest,
		    strerror(errno));
	if (stats != NULL)
		*stats = r->st;
	return 0;
}

void
snapstore_recv_free(struct snapstore_recv *r)
{
	const char *h;
	json_t *t;

	if (r == NULL)
		return;
	if (r->in_blob && r->b.mc != NULL)
		blob_end(&r->p, &r->b, 0, NULL);
	if (r->zfd >= 0)
		close(r->zfd);
	if (r->ztmp != NULL)
		unlink(r->ztmp);
	free(r->ztmp);
	/* blobs not made durable: gone (the sweep also empties tmp/) */
	json_object_foreach(r->p.pending, h, t)
		unlink(json_string_value(t));
	json_decref(r->p.pending);
	snapstore_pack_release(&r->p.pk);
	json_decref(r->missing);
	json_decref(r->got);
	json_decref(r->batch);
	json_decref(r->m);
	free(r->path);
	free(r->p.iobuf);
	if (r->lock >= 0)
		close(r->lock);
	free(r);
}
