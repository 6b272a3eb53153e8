/* Deployment packages: manifest checks, streaming validation and safe
 * extraction (SPEC §2 Packages, §6 bad input). One pass over the archive
 * does both: every entry is checked as it streams by and, when extracting,
 * written below a private temporary folder through O_NOFOLLOW directory
 * handles, which is renamed into place only when the whole archive passed. */
#include "package.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "buf.h"
#include "jsonx.h"
#include "nubo_limits.h"
#include "util.h"
#include "xmalloc.h"

/* ---- manifest ------------------------------------------------------- */

static const char *const package_ctype_names[] = {
	[PACKAGE_CONST_STRING] = "string",
	[PACKAGE_CONST_INTEGER] = "integer",
	[PACKAGE_CONST_DECIMAL] = "decimal",
	[PACKAGE_CONST_BOOLEAN] = "boolean",
	[PACKAGE_CONST_DATETIME] = "datetime",
};

const char *
package_ctype_name(enum package_ctype t)
{
	if ((unsigned)t >= sizeof package_ctype_names / sizeof *package_ctype_names)
		return "string";
	return package_ctype_names[t];
}

void
package_manifest_init(struct package_manifest *m)
{
	memset(m, 0, sizeof *m);
}

void
package_manifest_release(struct package_manifest *m)
{
	size_t i;

	if (m == NULL)
		return;
	free(m->name);
	free(m->version);
	free(m->start);
	free(m->health);
	for (i = 0; i < m->nconstants; i++) {
		free(m->constants[i].name);
		if (m->constants[i].dflt)
			json_decref(m->constants[i].dflt);
	}
	free(m->constants);
	for (i = 0; i < m->nevents; i++) {
		free(m->events[i].name);
		free(m->events[i].every);
	}
	free(m->events);
	package_manifest_init(m);
}

long long
package_parse_every(const char *s)
{
	long long n = 0, unit;
	const char *p;

	if (s == NULL || *s < '1' || *s > '9')
		return -1;
	for (p = s; isdigit((unsigned char)*p); p++) {
		n = n * 10 + (*p - '0');
		if (n > 366LL * 86400)
			return -1;
	}
	switch (*p) {
	case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	default: return -1;
	}
	if (p[1] != '\0' || n * unit > 366LL * 86400)
		return -1;
	return n * unit;
}

/* 1 when s is 1..max characters, starts with an allowed first character
 * class and continues with the second one. */
static int
package_word(const char *s, size_t max, const char *first, const char *rest)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *set = i == 0 ? first : rest;

		if (!isalnum(c) && strchr(set, c) == NULL)
			return 0;
		if (c >= 0x80)
			return 0;
	}
	return 1;
}

/* Normalise a path inside the package: strips "./" and repeated slashes;
 * NULL when it is absolute, uses "..", has a NUL-less control character or
 * is too long. "" means the root itself. */
static char *
package_normalise(const char *raw, const char **why)
{
	struct buf b;
	const char *p = raw, *e;
	size_t n;

	if (raw == NULL || *raw == '\0') {
		*why = "has an empty name";
		return NULL;
	}
	if (*raw == '/') {
		*why = "is an absolute path";
		return NULL;
	}
	if (strlen(raw) > NUBO_PACKAGE_PATH_MAX) {
		*why = "has a name longer than the limit";
		return NULL;
	}
	buf_init(&b, 0);
	while (*p) {
		e = strchr(p, '/');
		n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.')) {
			/* empty or "." component: skip */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			buf_release(&b);
			*why = "escapes the package root ('..')";
			return NULL;
		} else if (n > NAME_MAX) {
			buf_release(&b);
			*why = "has a path component longer than 255 bytes";
			return NULL;
		} else {
			size_t i;

			for (i = 0; i < n; i++) {
				if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
					buf_release(&b);
					*why = "has a control character in its name";
					return NULL;
				}
			}
			if (b.len)
				buf_append(&b, "/", 1);
			buf_append(&b, p, n);
		}
		p += n;
		if (*p == '/')
			p++;
	}
	return buf_detach(&b);
}

static int
package_check_constant(json_t *c, size_t idx, struct package_constant *out,
    char **cause)
{
	static const struct jfield fields[] = {
		{ "name", JT_STRING, 1 }, { "type", JT_STRING, 1 },
		{ "default", JT_ANY, 0 }, { NULL, 0, 0 } };
	const char *name, *type;
	json_t *d;
	char *why = NULL;
	size_t t;
	int ok;

	if (!json_is_object(c)) {
		*cause = xasprintf("nubo.json: constants[%zu] must be an object", idx);
		return -1;
	}
	if (jsonx_check(c, fields, &why) == -1) {
		*cause = xasprintf("nubo.json: constants[%zu]: %s", idx, why);
		free(why);
		return -1;
	}
	name = jsonx_str(c, "name");
	type = jsonx_str(c, "type");
	if (!package_word(name, 64, "", "_")) {
		*cause = xasprintf("nubo.json: constant name '%s' must be letters, "
		    "digits and '_' (at most 64)", name);
		return -1;
	}
	for (t = 0; t < sizeof package_ctype_names / sizeof *package_ctype_names; t++)
		if (strcmp(type, package_ctype_names[t]) == 0)
			break;
	if (t == sizeof package_ctype_names / sizeof *package_ctype_names) {
		*cause = xasprintf("nubo.json: constant '%s' has unknown type '%s' "
		    "(string, integer, decimal, boolean or datetime)", name, type);
		return -1;
	}
	d = json_object_get(c, "default");
	if (d != NULL) {
		time_t tm;

		switch ((enum package_ctype)t) {
		case PACKAGE_CONST_STRING:
			ok = json_is_string(d) &&
			    json_string_length(d) <= NUBO_PACKAGE_CONST_VALUE_MAX;
			break;
		case PACKAGE_CONST_INTEGER: ok = json_is_integer(d); break;
		case PACKAGE_CONST_DECIMAL: ok = json_is_number(d); break;
		case PACKAGE_CONST_BOOLEAN: ok = json_is_boolean(d); break;
		case PACKAGE_CONST_DATETIME:
			ok = json_is_string(d) &&
			    util_parse_iso(json_string_value(d), &tm) == 0;
			break;
		default: ok = 0;
		}
		if (!ok) {
			*cause = xasprintf("nubo.json: default of constant '%s' is "
			    "not a valid %s", name, type);
			return -1;
		}
	}
	out->name = xstrdup(name);
	out->type = (enum package_ctype)t;
	out->dflt = d ? json_deep_copy(d) : NULL;
	return 0;
}

static int
package_check_event(json_t *ev, size_t idx, struct package_event *out,
    char **cause)
{
	static const struct jfield fields[] = {
		{ "name", JT_STRING, 1 }, { "every", JT_STRING, 1 }, { NULL, 0, 0 } };
	const char *name, *every;
	char *why = NULL;
	long long secs;

	if (!json_is_object(ev)) {
		*cause = xasprintf("nubo.json: scheduled_events[%zu] must be an "
		    "object", idx);
		return -1;
	}
	if (jsonx_check(ev, fields, &why) == -1) {
		*cause = xasprintf("nubo.json: scheduled_events[%zu]: %s", idx, why);
		free(why);
		return -1;
	}
	name = jsonx_str(ev, "name");
	every = jsonx_str(ev, "every");
	if (!package_word(name, 64, "", "_-")) {
		*cause = xasprintf("nubo.json: scheduled event name '%s' must be "
		    "letters, digits, '_' and '-' (at most 64)", name);
		return -1;
	}
	if ((secs = package_parse_every(every)) < 0) {
		*cause = xasprintf("nubo.json: scheduled event '%s': every '%s' "
		    "must be a number and s, m, h or d (e.g. \"5m\", at most 366d)",
		    name, every);
		return -1;
	}
	out->name = xstrdup(name);
	out->every = xstrdup(every);
	out->every_seconds = secs;
	return 0;
}

int
package_manifest_from_json(json_t *obj, struct package_manifest *m,
    char **cause)
{
	static const struct jfield fields[] = {
		{ "name", JT_STRING, 1 }, { "version", JT_STRING, 1 },
		{ "start", JT_STRING, 1 }, { "health", JT_STRING, 0 },
		{ "constants", JT_ARRAY, 0 }, { "scheduled_events", JT_ARRAY, 0 },
		{ NULL, 0, 0 } };
	const char *s, *why = NULL;
	char *err = NULL;
	json_t *arr, *v;
	size_t i, j;

	package_manifest_init(m);
	if (!json_is_object(obj)) {
		*cause = xstrdup("nubo.json: must be a JSON object");
		return -1;
	}
	if (jsonx_check(obj, fields, &err) == -1) {
		*cause = xasprintf("nubo.json: %s", err);
		free(err);
		return -1;
	}
	s = jsonx_str(obj, "name");
	if (!package_word(s, 64, "", "._-")) {
		*cause = xasprintf("nubo.json: name '%s' must be letters, digits, "
		    "'.', '_' and '-' (at most 64)", s);
		goto fail;
	}
	m->name = xstrdup(s);
	s = jsonx_str(obj, "version");
	if (!package_word(s, 64, "", ".+_-")) {
		*cause = xasprintf("nubo.json: version '%s' must be letters, "
		    "digits, '.', '+', '_' and '-' (at most 64)", s);
		goto fail;
	}
	m->version = xstrdup(s);
	s = jsonx_str(obj, "start");
	m->start = package_normalise(s, &why);
	if (m->start == NULL || *m->start == '\0') {
		*cause = xasprintf("nubo.json: start '%s' is outside the package "
		    "(it must be a relative path inside it)", s);
		goto fail;
	}
	s = jsonx_str(obj, "health");
	if (s == NULL)
		s = "/";
	if (s[0] != '/' || strlen(s) > 256 || strpbrk(s, " \t\r\n\"<>\\") ||
	    strstr(s, "..")) {
		*cause = xasprintf("nubo.json: health '%s' must be a URL path "
		    "starting with '/' (at most 256 characters)", s);
		goto fail;
	}
	for (i = 0; s[i]; i++) {
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] >= 0x7f) {
			*cause = xasprintf("nubo.json: health must be printable ASCII");
			goto fail;
		}
	}
	m->health = xstrdup(s);

	arr = json_object_get(obj, "constants");
	if (arr != NULL) {
		if (json_array_size(arr) > NUBO_PACKAGE_CONSTANTS_MAX) {
			*cause = xasprintf("nubo.json: more than %d constants",
			    NUBO_PACKAGE_CONSTANTS_MAX);
			goto fail;
		}
		m->constants = xcalloc(json_array_size(arr) + 1, sizeof *m->constants);
		json_array_foreach(arr, i, v) {
			if (package_check_constant(v, i, &m->constants[i], cause) == -1)
				goto fail;
			m->nconstants++;
			for (j = 0; j < i; j++) {
				if (strcasecmp(m->constants[j].name,
				    m->constants[i].name) == 0) {
					*cause = xasprintf("nubo.json: constant '%s' is "
					    "declared twice", m->constants[i].name);
					goto fail;
				}
			}
		}
	}
	arr = json_object_get(obj, "scheduled_events");
	if (arr != NULL) {
		if (json_array_size(arr) > NUBO_PACKAGE_EVENTS_MAX) {
			*cause = xasprintf("nubo.json: more than %d scheduled events",
			    NUBO_PACKAGE_EVENTS_MAX);
			goto fail;
		}
		m->events = xcalloc(json_array_size(arr) + 1, sizeof *m->events);
		json_array_foreach(arr, i, v) {
			if (package_check_event(v, i, &m->events[i], cause) == -1)
				goto fail;
			m->nevents++;
			for (j = 0; j < i; j++) {
				if (strcmp(m->events[j].name, m->events[i].name) == 0) {
					*cause = xasprintf("nubo.json: scheduled event "
					    "'%s' is declared twice", m->events[i].name);
					goto fail;
				}
			}
		}
	}
	return 0;
fail:
	package_manifest_release(m);
	return -1;
}

int
package_manifest_parse(const char *data, size_t len, struct package_manifest *m,
    char **cause)
{
	char *err = NULL;
	json_t *obj;
	int rc;

	package_manifest_init(m);
	if (len > NUBO_MANIFEST_MAX) {
		*cause = xasprintf("nubo.json: larger than %d bytes",
		    NUBO_MANIFEST_MAX);
		return -1;
	}
	if (memchr(data, '\0', len) != NULL) {
		*cause = xstrdup("nubo.json: contains a NUL byte");
		return -1;
	}
	obj = jsonx_parse_object(data, len, &err);
	if (obj == NULL) {
		*cause = xasprintf("nubo.json: %s", err);
		free(err);
		return -1;
	}
	rc = package_manifest_from_json(obj, m, cause);
	json_decref(obj);
	return rc;
}

json_t *
package_manifest_json(const struct package_manifest *m)
{
	json_t *o, *arr, *c;
	size_t i;

	o = json_object();
	json_object_set_new(o, "name", json_string(m->name));
	json_object_set_new(o, "version", json_string(m->version));
	json_object_set_new(o, "start", json_string(m->start));
	json_object_set_new(o, "health", json_string(m->health));
	arr = json_array();
	for (i = 0; i < m->nconstants; i++) {
		c = json_object();
		json_object_set_new(c, "name", json_string(m->constants[i].name));
		json_object_set_new(c, "type",
		    json_string(package_ctype_name(m->constants[i].type)));
		if (m->constants[i].dflt)
			json_object_set(c, "default", m->constants[i].dflt);
		json_array_append_new(arr, c);
	}
	json_object_set_new(o, "constants", arr);
	arr = json_array();
	for (i = 0; i < m->nevents; i++) {
		c = json_object();
		json_object_set_new(c, "name", json_string(m->events[i].name));
		json_object_set_new(c, "every", json_string(m->events[i].every));
		json_array_append_new(arr, c);
	}
	json_object_set_new(o, "scheduled_events", arr);
	return o;
}

/* ---- the set of entry paths seen so far ------------------------------ */

enum pkind { PK_NONE, PK_IMPLICIT_DIR, PK_DIR, PK_FILE, PK_SYMLINK };

struct pslot {
	char		*path;
	enum pkind	 kind;
};

struct pathset {
	struct pslot	*slots;
	size_t		 cap;
	size_t		 n;
};

static uint64_t
pathset_hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static struct pslot *
pathset_find(struct pathset *ps, const char *s, size_t len)
{
	size_t i;

	if (ps->cap == 0)
		return NULL;
	i = pathset_hash(s, len) & (ps->cap - 1);
	while (ps->slots[i].path != NULL) {
		if (strlen(ps->slots[i].path) == len &&
		    memcmp(ps->slots[i].path, s, len) == 0)
			return &ps->slots[i];
		i = (i + 1) & (ps->cap - 1);
	}
	return NULL;
}

static enum pkind
pathset_kind(struct pathset *ps, const char *s, size_t len)
{
	struct pslot *sl = pathset_find(ps, s, len);

	return sl ? sl->kind : PK_NONE;
}

static void
pathset_put(struct pathset *ps, const char *s, size_t len, enum pkind kind)
{
	struct pslot *sl, *old;
	size_t i, oldcap;

	if ((sl = pathset_find(ps, s, len)) != NULL) {
		sl->kind = kind;
		return;
	}
	if ((ps->n + 1) * 2 > ps->cap) {
		old = ps->slots;
		oldcap = ps->cap;
		ps->cap = oldcap ? oldcap * 2 : 256;
		ps->slots = xcalloc(ps->cap, sizeof *ps->slots);
		for (i = 0; i < oldcap; i++) {
			size_t j;

			if (old[i].path == NULL)
				continue;
			j = pathset_hash(old[i].path, strlen(old[i].path)) &
			    (ps->cap - 1);
			while (ps->slots[j].path != NULL)
				j = (j + 1) & (ps->cap - 1);
			ps->slots[j] = old[i];
		}
		free(old);
	}
	i = pathset_hash(s, len) & (ps->cap - 1);
	while (ps->slots[i].path != NULL)
		i = (i + 1) & (ps->cap - 1);
	ps->slots[i].path = xstrndup(s, len);
	ps->slots[i].kind = kind;
	ps->n++;
}

static void
pathset_release(struct pathset *ps)
{
	size_t i;

	for (i = 0; i < ps->cap; i++)
		free(ps->slots[i].path);
	free(ps->slots);
	memset(ps, 0, sizeof *ps);
}

/* ---- gzip source with CRC checks -------------------------------------- */

/* libarchive's gzip filter does not verify the trailer, so a bit-flipped
 * .tar.gz could pass; zlib's gzip mode checks CRC-32 and length. It also
 * counts expanded bytes against the bomb ratio. */
struct gzsrc {
	int		 fd;
	package_reader	 fn;		/* instead of read(fd) when set */
	void		*arg;
	z_stream	 z;
	int		 eof;
	int		 ended;		/* a member ended; more may follow */
	long long	 compressed;	/* file size */
	long long	 expanded;
	unsigned char	 in[64 * 1024];
	unsigned char	 out[NUBO_IO_CHUNK];
};

static ssize_t
gzsrc_read(struct archive *a, void *arg, const void **bufp)
{
	struct gzsrc *g = arg;
	ssize_t n;
	int zr;

	*bufp = g->out;
	g->z.next_out = g->out;
	g->z.avail_out = sizeof g->out;
	while (g->z.avail_out == sizeof g->out) {
		if (g->z.avail_in == 0 && !g->eof) {
			n = g->fn ? g->fn(g->arg, g->in, sizeof g->in) :
			    read(g->fd, g->in, sizeof g->in);
			if (n < 0) {
				archive_set_error(a, errno, "read error");
				return -1;
			}
			if (n == 0)
				g->eof = 1;
			g->z.next_in = g->in;
			g->z.avail_in = (uInt)n;
		}
		if (g->ended) {
			if (g->z.avail_in == 0 && g->eof)
				return 0;
			if (g->z.avail_in == 0)
				continue;
			/* another gzip member follows (gzip allows it) */
			inflateReset(&g->z);
			g->ended = 0;
		}
		if (g->z.avail_in == 0 && g->eof) {
			archive_set_error(a, EIO, "truncated gzip stream");
			return -1;
		}
		zr = inflate(&g->z, Z_NO_FLUSH);
		if (zr == Z_STREAM_END) {
			g->ended = 1;
		} else if (zr != Z_OK && zr != Z_BUF_ERROR) {
			archive_set_error(a, EIO, "corrupt gzip data (%s)",
			    g->z.msg ? g->z.msg : "inflate failed");
			return -1;
		}
	}
	n = (ssize_t)(sizeof g->out - g->z.avail_out);
	g->expanded += n;
	if (g->expanded > NUBO_PACKAGE_EXPANDED_MAX) {
		archive_set_error(a, EFBIG, "expands to more than %lld bytes",
		    (long long)NUBO_PACKAGE_EXPANDED_MAX);
		return -1;
	}
	if (g->expanded > NUBO_ARCHIVE_RATIO_MIN_BYTES &&
	    g->expanded / NUBO_ARCHIVE_RATIO_MAX > g->compressed) {
		archive_set_error(a, EFBIG, "expands more than %d times its "
		    "size (gzip bomb)", NUBO_ARCHIVE_RATIO_MAX);
		return -1;
	}
	return n;
}

/* ---- the scan -------------------------------------------------------- */

struct symlink_rec {
	char	*path;
	char	*target;
};

struct scan {
	struct archive		*a;
	struct gzsrc		*gz;
	struct pathset		 set;
	struct buf		 manifest;
	int			 have_manifest;
	struct symlink_rec	*links;
	size_t			 nlinks, linkcap;
	long long		 file_size;
	long long		 expanded;
	size_t			 nentries;
	int			 rootfd;	/* extraction root, or -1 */
	unsigned char		*data;
};

/* Walk (creating as needed) the parent folders of path below rootfd, never
 * following a symlink. Returns an fd of the parent and sets *base to the
 * last component, or -1. */
static int
scan_parent(struct scan *s, const char *path, const char **base)
{
	char comp[NAME_MAX + 1];
	const char *p = path, *e;
	int fd, nfd;

	fd = dup(s->rootfd);
	if (fd == -1)
		return -1;
	while ((e = strchr(p, '/')) != NULL) {
		size_t n = (size_t)(e - p);

		memcpy(comp, p, n);
		comp[n] = '\0';
		if (mkdirat(fd, comp, 0755) == -1 && errno != EEXIST) {
			close(fd);
			return -1;
		}
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		close(fd);
		if (nfd == -1)
			return -1;
		fd = nfd;
		p = e + 1;
	}
	*base = p;
	return fd;
}

static int
scan_fail(char **cause, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
scan_fail(char **cause, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	*cause = xvasprintf(fmt, ap);
	va_end(ap);
	return -1;
}

static const char *
scan_archive_error(struct scan *s)
{
	const char *m = archive_error_string(s->a);

	return m ? m : "unknown error";
}

/* Read (and when extracting, write) one regular file's contents. */
static int
scan_data(struct scan *s, const char *path, int is_manifest, int outfd,
    char **cause)
{
	long long total = 0;
	la_ssize_t n;

	for (;;) {
		n = archive_read_data(s->a, s->data, NUBO_IO_CHUNK);
		if (n == 0)
			break;
		if (n < 0)
			return scan_fail(cause, "broken archive at '%s': %s", path,
			    scan_archive_error(s));
		total += n;
		s->expanded += n;
		if (total > NUBO_PACKAGE_ENTRY_MAX)
			return scan_fail(cause, "entry '%s' is larger than %lld "
			    "bytes", path, (long long)NUBO_PACKAGE_ENTRY_MAX);
		if (s->expanded > NUBO_PACKAGE_EXPANDED_MAX)
			return scan_fail(cause, "package expands to more than "
			    "%lld bytes", (long long)NUBO_PACKAGE_EXPANDED_MAX);
		if (s->gz == NULL && s->expanded > NUBO_ARCHIVE_RATIO_MIN_BYTES &&
		    s->expanded / NUBO_ARCHIVE_RATIO_MAX > s->file_size)
			return scan_fail(cause, "package expands more than %d "
			    "times its size (zip bomb)", NUBO_ARCHIVE_RATIO_MAX);
		if (is_manifest && buf_append(&s->manifest, s->data,
		    (size_t)n) == -1)
			return scan_fail(cause, "nubo.json: larger than %d bytes",
			    NUBO_MANIFEST_MAX);
		if (outfd != -1) {
			const unsigned char *p = s->data;
			size_t left = (size_t)n;

			while (left > 0) {
				ssize_t w = write(outfd, p, left);

				if (w < 0) {
					if (errno == EINTR)
						continue;
					return scan_fail(cause, "cannot write "
					    "'%s': %s", path, strerror(errno));
				}
				p += w;
				left -= (size_t)w;
			}
		}
	}
	return 0;
}

/* Check one entry and (when extracting) create it. */
static int
scan_entry(struct scan *s, struct archive_entry *e, char **cause)
{
	const char *raw, *why = NULL, *hl, *base = NULL;
	char *path = NULL, *target = NULL;
	mode_t type;
	size_t i, len;
	enum pkind k;
	int rc = -1, dirfd = -1, fd = -1, exec;

	raw = archive_entry_pathname(e);
	if (raw == NULL)
		raw = archive_entry_pathname_utf8(e);
	if (raw == NULL)
		return scan_fail(cause, "an entry has an unreadable name");
	if ((path = package_normalise(raw, &why)) == NULL)
		return scan_fail(cause, "entry '%.200s' %s", raw, why);
	len = strlen(path);
	hl = archive_entry_hardlink(e);
	type = archive_entry_filetype(e);
	if (len == 0) {
		/* the root folder itself ("./") */
		if (hl == NULL && type == AE_IFDIR) {
			rc = 0;
			goto out;
		}
		scan_fail(cause, "entry '%.200s' is not inside the package", raw);
		goto out;
	}
	if (hl == NULL && type != AE_IFREG && type != AE_IFDIR &&
	    type != AE_IFLNK) {
		scan_fail(cause, "entry '%s' is a %s; only files, folders and "
		    "links are allowed", path,
		    type == AE_IFCHR || type == AE_IFBLK ? "device file" :
		    type == AE_IFIFO ? "named pipe" :
		    type == AE_IFSOCK ? "socket" : "special file");
		goto out;
	}
	/* every parent must be a folder (a file or a symlink used as a
	 * folder is how archives write outside their root) */
	for (i = 0; i < len; i++) {
		if (path[i] != '/')
			continue;
		k = pathset_kind(&s->set, path, i);
		if (k == PK_FILE || k == PK_SYMLINK) {
			scan_fail(cause, "entry '%s' is below '%.*s', which is "
			    "not a folder", path, (int)i, path);
			goto out;
		}
		if (k == PK_NONE)
			pathset_put(&s->set, path, i, PK_IMPLICIT_DIR);
	}
	k = pathset_kind(&s->set, path, len);
	if (k != PK_NONE && !(k == PK_IMPLICIT_DIR && hl == NULL &&
	    type == AE_IFDIR)) {
		scan_fail(cause, "duplicate entry '%s'", path);
		goto out;
	}
	if (archive_entry_size_is_set(e) &&
	    archive_entry_size(e) > NUBO_PACKAGE_ENTRY_MAX) {
		scan_fail(cause, "entry '%s' is larger than %lld bytes", path,
		    (long long)NUBO_PACKAGE_ENTRY_MAX);
		goto out;
	}
	if (s->rootfd != -1 && (dirfd = scan_parent(s, path, &base)) == -1) {
		scan_fail(cause, "cannot create the folder of '%s': %s", path,
		    strerror(errno));
		goto out;
	}

	if (hl != NULL) {
		if ((target = package_normalise(hl, &why)) == NULL ||
		    *target == '\0') {
			scan_fail(cause, "hardlink '%s' points outside the package "
			    "('%.200s')", path, hl);
			goto out;
		}
		if (pathset_kind(&s->set, target, strlen(target)) != PK_FILE) {
			scan_fail(cause, "hardlink '%s' does not point to a file "
			    "earlier in the package ('%.200s')", path, hl);
			goto out;
		}
		if (base != NULL && linkat(s->rootfd, target, dirfd, base,
		    0) == -1) {
			scan_fail(cause, "cannot link '%s': %s", path,
			    strerror(errno));
			goto out;
		}
		pathset_put(&s->set, path, len, PK_FILE);
	} else if (type == AE_IFDIR) {
		if (s->rootfd != -1 && mkdirat(dirfd, base, 0755) == -1 &&
		    errno != EEXIST) {
			scan_fail(cause, "cannot create '%s': %s", path,
			    strerror(errno));
			goto out;
		}
		pathset_put(&s->set, path, len, PK_DIR);
	} else if (type == AE_IFLNK) {
		const char *t = archive_entry_symlink(e);

		if (t == NULL || *t == '\0') {
			scan_fail(cause, "symlink '%s' has no target", path);
			goto out;
		}
		if (*t == '/') {
			scan_fail(cause, "symlink '%s' points outside the package "
			    "('%.200s' is absolute)", path, t);
			goto out;
		}
		if (strlen(t) > NUBO_PACKAGE_PATH_MAX) {
			scan_fail(cause, "symlink '%s' has a target longer than "
			    "the limit", path);
			goto out;
		}
		if (s->rootfd != -1 && symlinkat(t, dirfd, base) == -1) {
			scan_fail(cause, "cannot create symlink '%s': %s", path,
			    strerror(errno));
			goto out;
		}
		if (s->nlinks == s->linkcap) {
			s->linkcap = s->linkcap ? s->linkcap * 2 : 16;
			s->links = xrealloc(s->links, s->linkcap * sizeof *s->links);
		}
		s->links[s->nlinks].path = xstrdup(path);
		s->links[s->nlinks].target = xstrdup(t);
		s->nlinks++;
		pathset_put(&s->set, path, len, PK_SYMLINK);
	} else {
		int is_manifest = strcmp(path, "nubo.json") == 0;

		if (is_manifest)
			s->have_manifest = 1;
		if (s->rootfd != -1) {
			exec = (archive_entry_perm(e) & 0111) != 0;
			fd = openat(dirfd, base, O_WRONLY | O_CREAT | O_EXCL |
			    O_NOFOLLOW | O_CLOEXEC, exec ? 0755 : 0644);
			if (fd == -1) {
				scan_fail(cause, "cannot create '%s': %s", path,
				    strerror(errno));
				goto out;
			}
		}
		if (scan_data(s, path, is_manifest, fd, cause) == -1)
			goto out;
		if (fd != -1 && archive_entry_mtime_is_set(e)) {
			struct timespec ts[2];

			ts[0].tv_sec = ts[1].tv_sec = archive_entry_mtime(e);
			ts[0].tv_nsec = ts[1].tv_nsec = 0;
			futimens(fd, ts);
		}
		pathset_put(&s->set, path, len, PK_FILE);
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	if (dirfd != -1)
		close(dirfd);
	free(path);
	free(target);
	return rc;
}

/* A symlink may point anywhere inside the package: resolve its target
 * lexically from its folder; passing through another symlink is refused
 * (that one could point at the root and make ".." leave it). */
static int
scan_check_symlink(struct scan *s, const struct symlink_rec *l, char **cause)
{
	struct buf b;
	const char *p, *e;
	size_t n;
	int rc = -1;

	buf_init(&b, 0);
	p = strrchr(l->path, '/');
	if (p)
		buf_append(&b, l->path, (size_t)(p - l->path));
	p = l->target;
	while (*p) {
		e = strchr(p, '/');
		n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0 || (n == 1 && *p == '.')) {
			/* nothing */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			char *slash;

			if (b.len == 0) {
				scan_fail(cause, "symlink '%s' points outside the "
				    "package ('%.200s')", l->path, l->target);
				goto out;
			}
			buf_cstr(&b);
			slash = strrchr(b.data, '/');
			b.len = slash ? (size_t)(slash - b.data) : 0;
		} else {
			if (b.len)
				buf_append(&b, "/", 1);
			buf_append(&b, p, n);
			if (e != NULL && pathset_kind(&s->set, b.data, b.len) ==
			    PK_SYMLINK) {
				scan_fail(cause, "symlink '%s' points through "
				    "another symlink ('%.200s')", l->path,
				    l->target);
				goto out;
			}
		}
		p += n;
		if (*p == '/')
			p++;
	}
	rc = 0;
out:
	buf_release(&b);
	return rc;
}

/* The package's size, refused above NUBO_PACKAGE_MAX. */
static int
scan_size(struct scan *s, long long size, char **cause)
{
	s->file_size = size;
	if (size > NUBO_PACKAGE_MAX)
		return scan_fail(cause, "package is larger than %lld bytes",
		    (long long)NUBO_PACKAGE_MAX);
	return 0;
}

/* A tar.gz read from fd, or from fn when it is set. */
static int
scan_open_gzip(struct scan *s, int fd, package_reader fn, void *arg,
    char **cause)
{
	s->a = archive_read_new();
	s->gz = xcalloc(1, sizeof *s->gz);
	s->gz->fd = fd;
	s->gz->fn = fn;
	s->gz->arg = arg;
	s->gz->compressed = s->file_size;
	if (inflateInit2(&s->gz->z, 16 + MAX_WBITS) != Z_OK)
		fatal("inflateInit2 failed");
	archive_read_support_format_tar(s->a);
	archive_read_support_format_gnutar(s->a);
	if (archive_read_open(s->a, s->gz, NULL, gzsrc_read, NULL) !=
	    ARCHIVE_OK)
		return scan_fail(cause, "broken archive: %s",
		    scan_archive_error(s));
	return 0;
}

/* Open the archive on fd: gzip (checked by zlib) + tar, zip, or tar. */
static int
scan_open(struct scan *s, int fd, char **cause)
{
	unsigned char magic[512];
	struct stat st;
	ssize_t n;
	off_t start;

	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode))
		return scan_fail(cause, "package is not a regular file");
	if ((start = lseek(fd, 0, SEEK_CUR)) == -1)
		return scan_fail(cause, "cannot seek in the package");
	if (scan_size(s, (long long)(st.st_size - start), cause) == -1)
		return -1;
	n = pread(fd, magic, sizeof magic, start);
	if (n < 4)
		return scan_fail(cause, "not a package archive (empty or too "
		    "short; expected zip, tar.gz or tar)");
	if (magic[0] == 0x1f && magic[1] == 0x8b)
		return scan_open_gzip(s, fd, NULL, NULL, cause);
	s->a = archive_read_new();
	if (magic[0] == 'P' && magic[1] == 'K' &&
	    ((magic[2] == 3 && magic[3] == 4) || (magic[2] == 5 && magic[3] == 6)))
		archive_read_support_format_zip_seekable(s->a);
	else if (n >= 262 && memcmp(magic + 257, "ustar", 5) == 0) {
		archive_read_support_format_tar(s->a);
		archive_read_support_format_gnutar(s->a);
	} else
		return scan_fail(cause, "not a package archive (expected zip, "
		    "tar.gz or tar)");
	if (archive_read_open_fd(s->a, fd, 64 * 1024) != ARCHIVE_OK)
		return scan_fail(cause, "broken archive: %s", scan_archive_error(s));
	return 0;
}

static void
scan_release(struct scan *s)
{
	size_t i;

	if (s->a)
		archive_read_free(s->a);
	if (s->gz) {
		inflateEnd(&s->gz->z);
		free(s->gz);
	}
	pathset_release(&s->set);
	buf_release(&s->manifest);
	for (i = 0; i < s->nlinks; i++) {
		free(s->links[i].path);
		free(s->links[i].target);
	}
	free(s->links);
	free(s->data);
}

/* Where package_scan reads: fd, or a tar.gz of size bytes from fn. */
struct scan_src {
	int		 fd;
	package_reader	 fn;
	void		*arg;
	long long	 size;
};

/* The whole check (and extraction below rootfd when it is not -1). */
static int
package_scan(const struct scan_src *src, int rootfd,
    struct package_manifest *out, char **cause)
{
	struct package_manifest m;
	struct archive_entry *e;
	struct scan s;
	size_t i;
	int r, rc = -1;

	package_manifest_init(&m);
	memset(&s, 0, sizeof s);
	s.rootfd = rootfd;
	buf_init(&s.manifest, NUBO_MANIFEST_MAX);
	s.data = xmalloc(NUBO_IO_CHUNK);
	if (src->fn != NULL) {
		if (scan_size(&s, src->size, cause) == -1 ||
		    scan_open_gzip(&s, -1, src->fn, src->arg, cause) == -1)
			goto out;
	} else if (scan_open(&s, src->fd, cause) == -1)
		goto out;
	for (;;) {
		r = archive_read_next_header(s.a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			scan_fail(cause, "broken archive: %s", scan_archive_error(&s));
			goto out;
		}
		if (++s.nentries > NUBO_PACKAGE_ENTRIES_MAX) {
			scan_fail(cause, "package has more than %d entries",
			    NUBO_PACKAGE_ENTRIES_MAX);
			goto out;
		}
		if (scan_entry(&s, e, cause) == -1)
			goto out;
	}
	/* a gzip stream may end after the tar end marker: read it all so a
	 * flipped CRC or a truncated trailer is still seen */
	if (s.gz != NULL) {
		const void *p;

		while ((r = (int)gzsrc_read(s.a, s.gz, &p)) > 0)
			;
		if (r < 0) {
			scan_fail(cause, "broken archive: %s", scan_archive_error(&s));
			goto out;
		}
	}
	if (!s.have_manifest) {
		scan_fail(cause, "no nubo.json at the root of the package");
		goto out;
	}
	if (package_manifest_parse(s.manifest.data ? s.manifest.data : "",
	    s.manifest.len, &m, cause) == -1)
		goto out;
	switch (pathset_kind(&s.set, m.start, strlen(m.start))) {
	case PK_FILE:
		break;
	case PK_NONE:
		scan_fail(cause, "start file '%s' is missing from the package",
		    m.start);
		goto out;
	default:
		scan_fail(cause, "start file '%s' is not a regular file", m.start);
		goto out;
	}
	for (i = 0; i < s.nlinks; i++)
		if (scan_check_symlink(&s, &s.links[i], cause) == -1)
			goto out;
	if (rootfd != -1 && fchmodat(rootfd, m.start, 0755, 0) == -1) {
		scan_fail(cause, "cannot make '%s' executable: %s", m.start,
		    strerror(errno));
		goto out;
	}
	rc = 0;
	if (out != NULL) {
		*out = m;
		package_manifest_init(&m);
	}
out:
	package_manifest_release(&m);
	scan_release(&s);
	return rc;
}

int
package_validate_fd(int fd, struct package_manifest *out, char **cause)
{
	*cause = NULL;
	if (out != NULL)
		package_manifest_init(out);
	return package_scan(&(struct scan_src){ .fd = fd }, -1, out, cause);
}

int
package_validate_gzip_stream(package_reader fn, void *arg, long long size,
    struct package_manifest *out, char **cause)
{
	struct scan_src src = { .fd = -1, .fn = fn, .arg = arg,
	    .size = size };

	*cause = NULL;
	if (out != NULL)
		package_manifest_init(out);
	return package_scan(&src, -1, out, cause);
}

int
package_validate(const char *path, struct package_manifest *out, char **cause)
{
	int fd, rc;

	*cause = NULL;
	if (out != NULL)
		package_manifest_init(out);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		*cause = xasprintf("cannot open package '%s': %s", path,
		    strerror(errno));
		return -1;
	}
	rc = package_scan(&(struct scan_src){ .fd = fd }, -1, out, cause);
	close(fd);
	return rc;
}

int
package_extract(const char *path, const char *dest_dir, char **cause)
{
	char *tmp = NULL, *dest = NULL, *slash;
	int fd = -1, rootfd = -1, rc = -1;
	struct stat st;

	*cause = NULL;
	dest = xstrdup(dest_dir);
	while (strlen(dest) > 1 && dest[strlen(dest) - 1] == '/')
		dest[strlen(dest) - 1] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		*cause = xasprintf("cannot open package '%s': %s", path,
		    strerror(errno));
		goto out;
	}
	if ((slash = strrchr(dest, '/')) != NULL && slash != dest) {
		*slash = '\0';
		if (util_mkdir_p(dest, 0755) == -1) {
			*cause = xasprintf("cannot create '%s': %s", dest,
			    strerror(errno));
			goto out;
		}
		*slash = '/';
	}
	tmp = xasprintf("%s.tmp-XXXXXX", dest);
	if (mkdtemp(tmp) == NULL) {
		*cause = xasprintf("cannot create a folder next to '%s': %s",
		    dest, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}
	chmod(tmp, 0755);
	if ((rootfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		*cause = xasprintf("cannot open '%s': %s", tmp, strerror(errno));
		goto out;
	}
	if (package_scan(&(struct scan_src){ .fd = fd }, rootfd, NULL,
	    cause) == -1)
		goto out;
	if (fsync(rootfd) == -1) {
		*cause = xasprintf("cannot sync '%s': %s", tmp, strerror(errno));
		goto out;
	}
	if (lstat(dest, &st) == 0) {
		/* swap atomically, then remove the old tree (now at tmp) */
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_EXCHANGE) == -1 ||
		    util_fsync_dir(dest) == -1) {
			*cause = xasprintf("cannot replace '%s': %s", dest,
			    strerror(errno));
			goto out;
		}
	} else if (util_rename_sync(tmp, dest) == -1) {
		*cause = xasprintf("cannot rename into '%s': %s", dest,
		    strerror(errno));
		goto out;
	} else {
		free(tmp);
		tmp = NULL;
	}
	rc = 0;
out:
	if (rootfd != -1)
		close(rootfd);
	if (fd != -1)
		close(fd);
	if (tmp != NULL) {
		util_rm_rf(tmp);
		free(tmp);
	}
	free(dest);
	return rc;
}

int
package_label_check(const char *branch, const char *revision, long long *rev,
    char **cause)
{
	size_t i, n = branch ? strlen(branch) : 0;

	*rev = -1;
	if (branch && (n == 0 || n > 128)) {
		*cause = xstrdup("a branch name has 1 to 128 characters");
		return -1;
	}
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)branch[i]) &&
		    strchr("._-", branch[i]) == NULL) {
			*cause = xasprintf("branch '%s': only letters, digits, "
			    "'.', '_' and '-'", branch);
			return -1;
		}
	if (revision && util_parse_int(revision, 0, 1000000000000000LL, rev)
	    == -1) {
		*cause = xasprintf("revision '%s' is not a number", revision);
		return -1;
	}
	return 0;
}
