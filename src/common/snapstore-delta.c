/* The database dump at the grain of its rows (issue #16): a snapshot's
 * dump stored as the changes since the environment's previous one — a
 * delta blob — on top of that one's chain, and read back by applying
 * the chain to its base as a stream. docs/ARCHITECTURE.md, "Snapshot
 * store", says why and what it costs.
 *
 * A delta blob (raw bytes; packed like any blob):
 *   "nubodlt1", varint in (the size of the version it applies to),
 *   varint out (the size of the version it makes), then operations until
 *   'e': 'c' n (the next n bytes of the input to the output), 's' n (the
 *   next n bytes of the input dropped), 'i' n and n bytes (to the
 *   output). Varints: 7 bits a byte, low first, high bit "more".
 *
 * The delta is made a unit at a time: a unit ends after a newline or at
 * UNIT_MAX bytes. A custom-format dump without compression writes each
 * COPY row as a block of its own ("length, row, newline"), so a unit is
 * a row: a row changed anywhere in a table makes a unit that is new,
 * and every row around it is copied. Units are compared by a keyed
 * 128-bit hash and their length (SipHash, a key drawn per delta: no
 * row can be made to collide with another on purpose). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <zlib.h>

#include "buf.h"
#include "jsonx.h"
#include "nubo_limits.h"
#include "snapstore-int.h"
#include "util.h"
#include "xmalloc.h"

#define DELTA_MAGIC	"nubodlt1"
#define UNIT_MAX	(64 * 1024)
/* A unit found further ahead than this in the previous version is taken
 * as a move only when its hash is there once (a line that repeats — an
 * empty one, a default row — is not a landmark). */
#define FAR_UNITS	4096
/* Insert data written out in pieces of at most this. */
#define INSERT_MAX	(1024 * 1024)
#define NONE		UINT32_MAX
/* the store's files share one (snapstore-int.h) */
#define fail		snapstore_fail

/* ------------------------------------------------------------------ */
/* The chain's shape                                                   */

static int
crc_ok(json_t *o)
{
	long long v = jsonx_int(o, "crc32", -1);

	return v >= 0 && v <= 0xffffffffLL;
}

/* The manifest is damaged: what its dump's sizes add up to passes
 * NUBO_SNAPSHOT_SIZE_MAX. */
static int
too_big(const char *what, char **cause)
{
	return fail(cause, "the snapshot's manifest is damaged: its dump's "
	    "%s add up to more than %lld bytes", what,
	    (long long)NUBO_SNAPSHOT_SIZE_MAX);
}

int
snapstore_dump_chain_ok(json_t *dump, char **cause)
{
	json_t *chunks = json_object_get(dump, "chunks"), *deltas, *e, *of;
	long long sum = 0, zsum = 0, size, zsize, out = -1;
	size_t i;

	/* its sha256 names the chain's download copy (chains/<sha256>), as
	 * a delta's "of" names the one it replaces: a digest a manifest
	 * gives goes into a path only as 64 lowercase hex digits, whoever
	 * wrote the manifest (an off-node copy's source; SPEC §6) */
	if (!snapstore_valid_hex(jsonx_str(dump, "sha256")))
		return fail(cause, "the snapshot's manifest is damaged: the "
		    "dump's sha256");
	/* sizes bounded and their sums checked: a copy's need for room, a
	 * download's length are sums of them */
	json_array_foreach(chunks, i, e) {
		size = jsonx_int(e, "size", -1);
		if (!snapstore_valid_hex(jsonx_str(e, "sha256")) ||
		    !snapstore_valid_size(size))
			return fail(cause, "the snapshot's manifest is damaged: "
			    "dump chunk %zu", i);
		if (snapstore_size_add(&sum, size) < 0)
			return too_big("chunks", cause);
	}
	if (!json_is_array(chunks))
		return fail(cause, "the snapshot's manifest is damaged: no "
		    "dump");
	deltas = json_object_get(dump, "deltas");
	if (deltas == NULL)
		return sum == jsonx_int(dump, "size", -1) ? 0 : fail(cause,
		    "the snapshot's manifest is damaged: no dump");
	json_array_foreach(deltas, i, e) {
		out = jsonx_int(e, "out", -1);
		of = json_object_get(e, "of");
		if (!snapstore_valid_hex(jsonx_str(e, "sha256")) ||
		    !snapstore_valid_size(jsonx_int(e, "size", -1)) ||
		    !snapstore_valid_size(out) ||
		    (of != NULL && !snapstore_valid_hex(json_string_value(of))))
			return fail(cause, "the snapshot's manifest is damaged: "
			    "dump delta %zu", i);
	}
	if (!json_is_array(deltas) || json_array_size(deltas) == 0 ||
	    json_array_size(deltas) > SNAPSTORE_CHAIN_MAX ||
	    out != jsonx_int(dump, "size", -1) || !crc_ok(dump))
		return fail(cause, "the snapshot's manifest is damaged: no "
		    "dump");
	/* the download's segments: the whole dump, cut */
	sum = 0;
	json_array_foreach(json_object_get(dump, "segments"), i, e) {
		size = jsonx_int(e, "size", -1);
		zsize = jsonx_int(e, "zsize", -1);
		if (!snapstore_valid_size(size) || !snapstore_valid_size(zsize) ||
		    !crc_ok(e))
			return fail(cause, "the snapshot's manifest is "
			    "damaged: dump segment %zu", i);
		if (snapstore_size_add(&sum, size) < 0 ||
		    snapstore_size_add(&zsum, zsize) < 0)
			return too_big("segments", cause);
	}
	if (json_array_size(json_object_get(dump, "segments")) == 0 ||
	    sum != out)
		return fail(cause, "the snapshot's manifest is damaged: no "
		    "dump");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Reading a version                                                   */

struct level {
	/* level 0: the base's chunks */
	json_t		*chunks;
	size_t		 ci;
	long long	 csize;		/* the open chunk's manifest size */
	/* levels 1…: a delta applied to the level below */
	long long	 bsize;		/* the delta blob's, as the manifest */
	long long	 out, made;
	unsigned char	*buf;
	size_t		 pos, len;
	int		 op;		/* 0: read the next one */
	long long	 rem;
	int		 ended;
	/* both */
	struct snapstore_blob b;
	int		 open;
};

struct snapstore_dver {
	const char	*store;
	struct level	*lv;
	size_t		 n;		/* levels */
	unsigned char	*scratch;	/* what a skip of level 0 reads */
};

static int
lv_open(struct snapstore_dver *d, struct level *l, const char *hex,
    char **cause)
{
	char *why = NULL;

	snapstore_blob_init(&l->b);
	if (snapstore_blob_open(&l->b, d->store, hex, &why) < 0) {
		if (l->b.missing)
			fail(cause, "the snapshot's blob for 'db/db.backup' "
			    "is missing from the store: %s", strerror(ENOENT));
		else
			fail(cause, "the snapshot's blob for 'db/db.backup' "
			    "is damaged (%s %s)", l->b.path, why);
		free(why);
		snapstore_blob_close(&l->b);
		return -1;
	}
	l->open = 1;
	return 0;
}

static int
lv_damaged(struct level *l, const char *why, char **cause)
{
	return fail(cause, "the snapshot's blob for 'db/db.backup' is "
	    "damaged (%s %s)", l->b.path ? l->b.path : "?", why);
}

/* The end of a blob: its size and (packed) crc32 checked. */
static int
lv_close(struct level *l, long long want, char **cause)
{
	char *why = NULL;
	int rc = 0;

	if (snapstore_blob_done(&l->b, &why) < 0)
		rc = lv_damaged(l, why, cause);
	else if (want >= 0 && l->b.got != want)
		rc = lv_damaged(l, "holds another size than the manifest's",
		    cause);
	free(why);
	snapstore_blob_close(&l->b);
	l->open = 0;
	return rc;
}

/* Up to n bytes of a delta's own stream at l->buf + l->pos: the bytes
 * there, 0 at its end, -1. */
static ssize_t
lv_fill(struct level *l, char **cause)
{
	char *why = NULL;
	ssize_t r;

	if (l->pos < l->len)
		return (ssize_t)(l->len - l->pos);
	r = snapstore_blob_read(&l->b, l->buf, NUBO_IO_CHUNK, &why);
	if (r < 0) {
		lv_damaged(l, why, cause);
		free(why);
		return -1;
	}
	l->pos = 0;
	l->len = (size_t)r;
	return r;
}

static int
lv_byte(struct level *l, unsigned char *c, char **cause)
{
	ssize_t r = lv_fill(l, cause);

	if (r < 0)
		return -1;
	if (r == 0) {
		lv_damaged(l, "ends early", cause);
		return -1;
	}
	*c = l->buf[l->pos++];
	return 0;
}

static int
lv_varint(struct level *l, long long *v, char **cause)
{
	unsigned char c;
	int shift;

	*v = 0;
	for (shift = 0; shift < 63; shift += 7) {
		if (lv_byte(l, &c, cause) < 0)
			return -1;
		*v |= (long long)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return *v >= 0 ? 0 : lv_damaged(l, "has a bad length",
			    cause);
	}
	return lv_damaged(l, "has a bad length", cause);
}

static long long lv_read(struct snapstore_dver *d, size_t i,
    unsigned char *buf, long long n, char **cause);

/* Level 0: the base's chunks in turn. */
static long long
base_read(struct snapstore_dver *d, unsigned char *buf, long long n,
    char **cause)
{
	struct level *l = &d->lv[0];
	long long done = 0;
	ssize_t r;
	size_t want;
	char *why = NULL;

	while (done < n) {
		if (!l->open) {
			json_t *ch = json_array_get(l->chunks, l->ci);

			if (ch == NULL)
				break;
			if (lv_open(d, l, jsonx_str(ch, "sha256"), cause) < 0)
				return -1;
			l->csize = jsonx_int(ch, "size", 0);
		}
		want = n - done < NUBO_IO_CHUNK ? (size_t)(n - done) :
		    NUBO_IO_CHUNK;
		r = snapstore_blob_read(&l->b, buf ? buf + done : d->scratch,
		    want, &why);
		if (r < 0) {
			lv_damaged(l, why, cause);
			free(why);
			return -1;
		}
		if (r == 0) {
			if (lv_close(l, l->csize, cause) < 0)
				return -1;
			l->ci++;
			continue;
		}
		done += r;
	}
	return done;
}

/* Level i ≥ 1: its delta's operations on the level below. */
static long long
delta_read(struct snapstore_dver *d, size_t i, unsigned char *buf,
    long long n, char **cause)
{
	struct level *l = &d->lv[i];
	long long done = 0, m, r;
	unsigned char c;
	ssize_t have;

	while (done < n && !l->ended) {
		if (l->op == 0) {
			if (lv_byte(l, &c, cause) < 0)
				return -1;
			if (c == 'e') {
				/* nothing after it, and the blob whole */
				if ((have = lv_fill(l, cause)) < 0)
					return -1;
				if (have > 0)
					return lv_damaged(l, "goes on after "
					    "its end", cause);
				if (lv_close(l, l->bsize, cause) < 0)
					return -1;
				l->ended = 1;
				break;
			}
			if (c != 'c' && c != 's' && c != 'i')
				return lv_damaged(l, "has an unknown "
				    "operation", cause);
			if (lv_varint(l, &l->rem, cause) < 0)
				return -1;
			l->op = c;
		}
		m = l->rem < n - done ? l->rem : n - done;
		switch (l->op) {
		case 'c':
			r = lv_read(d, i - 1, buf ? buf + done : NULL, m, cause);
			if (r < 0)
				return -1;
			if (r != m)
				return lv_damaged(l, "copies past its input's "
				    "end", cause);
			break;
		case 's':
			m = l->rem;
			r = lv_read(d, i - 1, NULL, m, cause);
			if (r < 0)
				return -1;
			if (r != m)
				return lv_damaged(l, "skips past its input's "
				    "end", cause);
			l->rem = 0;
			l->op = 0;
			continue;
		default:
			if ((have = lv_fill(l, cause)) < 0)
				return -1;
			if (have == 0)
				return lv_damaged(l, "ends early", cause);
			if (m > have)
				m = have;
			if (buf != NULL)
				memcpy(buf + done, l->buf + l->pos, (size_t)m);
			l->pos += (size_t)m;
			break;
		}
		done += m;
		l->rem -= m;
		if (l->rem == 0)
			l->op = 0;
	}
	l->made += done;
	if (l->made > l->out)
		return lv_damaged(l, "makes more than it says", cause);
	return done;
}

/* n bytes of level i into buf (NULL: dropped): the bytes, fewer only at
 * its end, or -1 with *cause. */
static long long
lv_read(struct snapstore_dver *d, size_t i, unsigned char *buf, long long n,
    char **cause)
{
	return i == 0 ? base_read(d, buf, n, cause) : delta_read(d, i, buf, n,
	    cause);
}

void
snapstore_dver_close(struct snapstore_dver *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->n; i++) {
		if (d->lv[i].open)
			snapstore_blob_close(&d->lv[i].b);
		free(d->lv[i].buf);
	}
	free(d->lv);
	free(d->scratch);
	free(d);
}

struct snapstore_dver *
snapstore_dver_open(const char *store, json_t *dump, char **cause)
{
	struct snapstore_dver *d;
	json_t *deltas, *e;
	long long in = 0;
	size_t i;
	unsigned char magic[8];

	if (snapstore_dump_chain_ok(dump, cause) < 0)
		return NULL;
	deltas = json_object_get(dump, "deltas");
	d = xcalloc(1, sizeof(*d));
	d->store = store;
	d->n = 1 + json_array_size(deltas);
	d->lv = xcalloc(d->n, sizeof(*d->lv));
	d->scratch = xmalloc(NUBO_IO_CHUNK);
	d->lv[0].chunks = json_object_get(dump, "chunks");
	json_array_foreach(d->lv[0].chunks, i, e)
		in += jsonx_int(e, "size", 0);
	json_array_foreach(deltas, i, e) {
		struct level *l = &d->lv[i + 1];
		long long v;
		size_t k;

		l->bsize = jsonx_int(e, "size", 0);
		l->out = jsonx_int(e, "out", 0);
		l->buf = xmalloc(NUBO_IO_CHUNK);
		if (lv_open(d, l, jsonx_str(e, "sha256"), cause) < 0)
			goto bad;
		for (k = 0; k < sizeof magic; k++)
			if (lv_byte(l, &magic[k], cause) < 0)
				goto bad;
		if (memcmp(magic, DELTA_MAGIC, sizeof magic) != 0) {
			lv_damaged(l, "is not a delta", cause);
			goto bad;
		}
		if (lv_varint(l, &v, cause) < 0)
			goto bad;
		if (v != in) {
			lv_damaged(l, "applies to another version", cause);
			goto bad;
		}
		if (lv_varint(l, &v, cause) < 0)
			goto bad;
		if (v != l->out) {
			lv_damaged(l, "makes another size than the "
			    "manifest's", cause);
			goto bad;
		}
		in = l->out;
	}
	return d;
bad:
	snapstore_dver_close(d);
	return NULL;
}

/* Up to n bytes of the version into buf: n except at its end (0), or -1
 * with *cause — a version shorter or longer than the manifest's is
 * damaged. */
long long
snapstore_dver_read(struct snapstore_dver *d, void *buf, long long n,
    char **cause)
{
	long long r = lv_read(d, d->n - 1, buf, n, cause);
	struct level *top = &d->lv[d->n - 1];

	if (r < 0)
		return -1;
	if (r < n && d->n > 1 && top->made != top->out)
		return lv_damaged(top, "makes less than it says", cause);
	if (r < n && d->n == 1 && d->lv[0].ci != json_array_size(
	    d->lv[0].chunks))
		return fail(cause, "the snapshot's dump ends early");
	return r;
}

/* ------------------------------------------------------------------ */
/* The previous version's units                                        */

struct unit_hash {
	uint64_t	 a, b;
};

struct snapstore_dindex {
	unsigned char	 key[crypto_shorthash_siphashx24_KEYBYTES];
	struct unit_hash *h;
	uint32_t	*len;
	uint32_t	*next;		/* the next unit with the same hash */
	size_t		 n, cap;
	uint32_t	*head;		/* slot → first unit, NONE */
	uint32_t	*cur;		/* slot → where a lookup starts */
	size_t		 mask;
	long long	 size;
	char		 of[65];	/* the indexed dump's sha256 */
};

static void
unit_hash(const unsigned char *key, const unsigned char *p, size_t len,
    struct unit_hash *h)
{
	unsigned char out[16];

	crypto_shorthash_siphashx24(out, p, len, key);
	memcpy(&h->a, out, 8);
	memcpy(&h->b, out + 8, 8);
}

static int
unit_same(struct snapstore_dindex *x, uint32_t u, const struct unit_hash *h,
    size_t len)
{
	return x->h[u].a == h->a && x->h[u].b == h->b && x->len[u] == len;
}

static void
index_add(struct snapstore_dindex *x, const unsigned char *p, size_t len)
{
	if (x->n == x->cap) {
		x->cap = x->cap ? x->cap * 2 : 65536;
		x->h = xrealloc(x->h, x->cap * sizeof(*x->h));
		x->len = xrealloc(x->len, x->cap * sizeof(*x->len));
	}
	unit_hash(x->key, p, len, &x->h[x->n]);
	x->len[x->n] = (uint32_t)len;
	x->n++;
}

/* Units of a byte stream, across the pieces it comes in. */
struct splitter {
	unsigned char	*carry;
	size_t		 ncarry;
};

typedef void (*unit_fn)(void *arg, const unsigned char *p, size_t len);

static void
split_feed(struct splitter *s, const unsigned char *p, size_t n, unit_fn fn,
    void *arg)
{
	const unsigned char *nl;
	size_t room, take;

	while (n > 0) {
		room = UNIT_MAX - s->ncarry;
		nl = memchr(p, '\n', n < room ? n : room);
		if (nl == NULL && n < room) {
			memcpy(s->carry + s->ncarry, p, n);
			s->ncarry += n;
			return;
		}
		take = nl != NULL ? (size_t)(nl - p) + 1 : room;
		if (s->ncarry == 0) {
			fn(arg, p, take);
		} else {
			memcpy(s->carry + s->ncarry, p, take);
			fn(arg, s->carry, s->ncarry + take);
			s->ncarry = 0;
		}
		p += take;
		n -= take;
	}
}

static void
split_end(struct splitter *s, unit_fn fn, void *arg)
{
	if (s->ncarry > 0)
		fn(arg, s->carry, s->ncarry);
	s->ncarry = 0;
}

static void
index_unit(void *arg, const unsigned char *p, size_t len)
{
	index_add(arg, p, len);
}

const char *
snapstore_dindex_of(const struct snapstore_dindex *x)
{
	return x->of;
}

void
snapstore_dindex_free(struct snapstore_dindex *x)
{
	if (x == NULL)
		return;
	free(x->h);
	free(x->len);
	free(x->next);
	free(x->head);
	free(x->cur);
	free(x);
}

struct snapstore_dindex *
snapstore_dindex_build(const char *store, json_t *dump, char **cause)
{
	struct snapstore_dindex *x = xcalloc(1, sizeof(*x));
	struct snapstore_dver *d;
	struct splitter s = { xmalloc(UNIT_MAX), 0 };
	unsigned char *buf = xmalloc(NUBO_IO_CHUNK), md[32];
	EVP_MD_CTX *mc = NULL;
	long long r, want_crc = jsonx_int(dump, "crc32", -1);
	uLong crc = crc32(0L, Z_NULL, 0);
	char hex[65];
	size_t i, slots;
	uint32_t u, s0;

	if (sodium_init() < 0) {
		fail(cause, "cannot start libsodium");
		goto bad;
	}
	randombytes_buf(x->key, sizeof x->key);
	snprintf(x->of, sizeof x->of, "%s", jsonx_str(dump, "sha256") ?
	    jsonx_str(dump, "sha256") : "");
	if ((d = snapstore_dver_open(store, dump, cause)) == NULL)
		goto bad;
	if (want_crc < 0) {
		mc = EVP_MD_CTX_new();
		EVP_DigestInit_ex(mc, EVP_sha256(), NULL);
	}
	while ((r = snapstore_dver_read(d, buf, NUBO_IO_CHUNK, cause)) > 0) {
		crc = crc32(crc, buf, (uInt)r);
		if (mc != NULL)
			EVP_DigestUpdate(mc, buf, (size_t)r);
		x->size += r;
		split_feed(&s, buf, (size_t)r, index_unit, x);
		if (x->n > SNAPSTORE_UNITS_MAX) {
			fail(cause, "the previous dump has over %d rows",
			    SNAPSTORE_UNITS_MAX);
			r = -1;
			break;
		}
	}
	snapstore_dver_close(d);
	if (r < 0)
		goto bad;
	split_end(&s, index_unit, x);
	/* the previous version as its manifest says, or no delta on it */
	if (mc != NULL) {
		EVP_DigestFinal_ex(mc, md, NULL);
		util_hex(md, 32, hex);
	}
	if (x->size != jsonx_int(dump, "size", -1) || (mc == NULL ?
	    (long long)crc != want_crc : strcmp(hex, jsonx_str(dump,
	    "sha256") ? jsonx_str(dump, "sha256") : "") != 0)) {
		fail(cause, "the previous dump does not read back as its "
		    "manifest says");
		goto bad;
	}
	for (slots = 1024; slots < 2 * x->n; slots *= 2)
		;
	x->mask = slots - 1;
	x->head = xmalloc(slots * sizeof(*x->head));
	x->cur = xmalloc(slots * sizeof(*x->cur));
	x->next = xmalloc((x->n ? x->n : 1) * sizeof(*x->next));
	memset(x->head, 0xff, slots * sizeof(*x->head));
	/* cur holds each chain's tail while the chains are made */
	for (i = 0; i < x->n; i++) {
		x->next[i] = NONE;
		for (s0 = (uint32_t)(x->h[i].a & x->mask);; s0 = (s0 + 1) &
		    (uint32_t)x->mask) {
			u = x->head[s0];
			if (u == NONE) {
				x->head[s0] = x->cur[s0] = (uint32_t)i;
				break;
			}
			if (unit_same(x, u, &x->h[i], x->len[i])) {
				x->next[x->cur[s0]] = (uint32_t)i;
				x->cur[s0] = (uint32_t)i;
				break;
			}
		}
	}
	memcpy(x->cur, x->head, slots * sizeof(*x->cur));
	EVP_MD_CTX_free(mc);
	free(s.carry);
	free(buf);
	return x;
bad:
	EVP_MD_CTX_free(mc);
	free(s.carry);
	free(buf);
	snapstore_dindex_free(x);
	return NULL;
}

/* The first unit at or after j the same as (h, len), NONE; *once when it
 * is the only such unit. */
static uint32_t
index_find(struct snapstore_dindex *x, const struct unit_hash *h, size_t len,
    size_t j, int *once)
{
	uint32_t s0, u;

	for (s0 = (uint32_t)(h->a & x->mask);; s0 = (s0 + 1) &
	    (uint32_t)x->mask) {
		u = x->head[s0];
		if (u == NONE)
			return NONE;
		if (!unit_same(x, u, h, len))
			continue;
		*once = x->next[u] == NONE;
		/* j only grows: the chain's start moves on with it */
		for (u = x->cur[s0]; u < j && x->next[u] != NONE;)
			u = x->next[u];
		x->cur[s0] = u;
		return u >= j ? u : NONE;
	}
}

/* ------------------------------------------------------------------ */
/* Making a delta                                                      */

struct snapstore_denc {
	struct snapstore_dindex *x;
	struct splitter	 s;
	size_t		 j;		/* the next unit of the old version */
	int		 op;		/* 'c', 's' pending, or 0 */
	long long	 opn;
	struct buf	 ins;		/* insert data pending */
	snapstore_out_fn out;
	void		*arg;
	int		 failed;
	long long	 size;		/* of the new version */
	struct snapstore_delta_stats st;
};

static void
put_varint(struct buf *b, unsigned long long v)
{
	unsigned char c;

	do {
		c = v & 0x7f;
		v >>= 7;
		if (v)
			c |= 0x80;
		buf_append(b, &c, 1);
	} while (v);
}

static void
enc_write(struct snapstore_denc *e, const void *p, size_t n)
{
	if (!e->failed && n > 0 && e->out(e->arg, p, n) < 0)
		e->failed = 1;
}

static void
enc_flush_insert(struct snapstore_denc *e)
{
	struct buf h;

	if (e->ins.len == 0)
		return;
	buf_init(&h, 0);
	buf_append(&h, "i", 1);
	put_varint(&h, e->ins.len);
	enc_write(e, h.data, h.len);
	enc_write(e, e->ins.data, e->ins.len);
	e->st.inserted += (long long)e->ins.len;
	e->ins.len = 0;
	buf_release(&h);
}

static void
enc_flush_op(struct snapstore_denc *e)
{
	struct buf h;
	char c = (char)e->op;

	if (e->op == 0)
		return;
	buf_init(&h, 0);
	buf_append(&h, &c, 1);
	put_varint(&h, (unsigned long long)e->opn);
	enc_write(e, h.data, h.len);
	buf_release(&h);
	e->st.ops++;
	e->op = 0;
	e->opn = 0;
}

static void
enc_op(struct snapstore_denc *e, int op, long long n)
{
	if (n == 0)
		return;
	enc_flush_insert(e);
	if (e->op != op)
		enc_flush_op(e);
	e->op = op;
	e->opn += n;
	if (op == 'c')
		e->st.copied += n;
}

static void
enc_unit(void *arg, const unsigned char *p, size_t len)
{
	struct snapstore_denc *e = arg;
	struct snapstore_dindex *x = e->x;
	struct unit_hash h;
	long long skip = 0;
	uint32_t u;
	size_t k;
	int once = 0;

	unit_hash(x->key, p, len, &h);
	if (e->j < x->n && unit_same(x, (uint32_t)e->j, &h, len)) {
		enc_op(e, 'c', (long long)len);
		e->j++;
		return;
	}
	u = index_find(x, &h, len, e->j, &once);
	if (u != NONE && (u - e->j <= FAR_UNITS || once)) {
		for (k = e->j; k < u; k++)
			skip += x->len[k];
		enc_op(e, 's', skip);
		enc_op(e, 'c', (long long)len);
		e->j = (size_t)u + 1;
		return;
	}
	enc_flush_op(e);
	buf_append(&e->ins, p, len);
	if (e->ins.len >= INSERT_MAX)
		enc_flush_insert(e);
}

struct snapstore_denc *
snapstore_denc_begin(struct snapstore_dindex *x, long long out_size,
    snapstore_out_fn out, void *arg)
{
	struct snapstore_denc *e = xcalloc(1, sizeof(*e));
	struct buf h;

	e->x = x;
	e->s.carry = xmalloc(UNIT_MAX);
	e->out = out;
	e->arg = arg;
	buf_init(&e->ins, 0);
	buf_init(&h, 0);
	buf_append(&h, DELTA_MAGIC, 8);
	put_varint(&h, (unsigned long long)x->size);
	put_varint(&h, (unsigned long long)out_size);
	enc_write(e, h.data, h.len);
	buf_release(&h);
	e->size = out_size;
	return e;
}

int
snapstore_denc_feed(struct snapstore_denc *e, const void *data, size_t len)
{
	split_feed(&e->s, data, len, enc_unit, e);
	return e->failed ? -1 : 0;
}

int
snapstore_denc_end(struct snapstore_denc *e, struct snapstore_delta_stats *st)
{
	split_end(&e->s, enc_unit, e);
	enc_flush_insert(e);
	enc_flush_op(e);
	enc_write(e, "e", 1);
	if (st != NULL)
		*st = e->st;
	return e->failed ? -1 : 0;
}

void
snapstore_denc_free(struct snapstore_denc *e)
{
	if (e == NULL)
		return;
	buf_release(&e->ins);
	free(e->s.carry);
	free(e);
}
