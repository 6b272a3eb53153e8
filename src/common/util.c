#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "xmalloc.h"

void
util_hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

char *
util_random_hex(size_t nbytes)
{
	unsigned char *raw = xmalloc(nbytes);
	char *out = xmalloc(2 * nbytes + 1);

	randombytes_buf(raw, nbytes);
	util_hex(raw, nbytes, out);
	free(raw);
	return out;
}

char *
util_uuid(void)
{
	unsigned char b[16];

	randombytes_buf(b, sizeof b);
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	return xasprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
	    b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

int
util_valid_uuid(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

char *
util_sha256_hex(const void *data, size_t len)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char *out = xmalloc(2 * sizeof h + 1);

	crypto_hash_sha256(h, data, len);
	util_hex(h, sizeof h, out);
	return out;
}

time_t
util_now(void)
{
	const char *off = getenv("NUBO_CLOCK_OFFSET");
	time_t now = time(NULL);

	if (off && *off)
		now += (time_t)strtoll(off, NULL, 10);
	return now;
}

double
util_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
util_human_bytes(long long n, char *out, size_t outlen)
{
	if (n >= 1LL << 30)
		snprintf(out, outlen, "%.2f GB", (double)n / (1 << 30));
	else if (n >= 1 << 20)
		snprintf(out, outlen, "%.1f MB", (double)n / (1 << 20));
	else if (n >= 1 << 10)
		snprintf(out, outlen, "%.1f kB", (double)n / (1 << 10));
	else
		snprintf(out, outlen, "%lld B", n);
}

void
util_time_iso(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int
util_parse_iso(const char *s, time_t *out)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof tm);
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0')
		return -1;
	*out = timegm(&tm);
	return 0;
}

int
util_mkdir_p(const char *path, unsigned mode)
{
	char *p = xstrdup(path);
	char *s;
	int rc = 0;

	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) == -1 && errno != EEXIST) {
			rc = -1;
			goto out;
		}
		*s = '/';
	}
	if (mkdir(p, mode) == -1 && errno != EEXIST)
		rc = -1;
out:
	free(p);
	return rc;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) == -1 && errno != ENOENT ? -1 : 0;
}

int
util_rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == -1)
		return errno == ENOENT ? 0 : -1;
	return nftw(path, rm_one, 64, FTW_DEPTH | FTW_PHYS);
}

/* The folder part of path ("." when there is none), caller frees. */
static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

/* fsync(2) a folder: its entries (names made, renamed, removed) reach
 * the disk. 0 or -1 (errno set). */
static int
fsync_folder(const char *dir)
{
	int fd, rc, saved;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
util_fsync_dir(const char *path)
{
	char *dir = dir_of(path);
	int rc = fsync_folder(dir);

	free(dir);
	return rc;
}

int
util_rename_sync(const char *from, const char *to)
{
	char *a, *b;
	int rc;

	if (rename(from, to) == -1)
		return -1;
	rc = util_fsync_dir(to);
	a = dir_of(from);
	b = dir_of(to);
	if (rc == 0 && strcmp(a, b) != 0)
		rc = util_fsync_dir(from);
	free(a);
	free(b);
	return rc;
}

int
util_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			return -1;
		}
		/* a short write: the next one says why (ENOSPC, EIO) */
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

char *
util_fd_first_line(int fd)
{
	char tmp[512];
	ssize_t n = fd >= 0 ? pread(fd, tmp, sizeof(tmp) - 1, 0) : -1;

	tmp[n > 0 ? n : 0] = '\0';
	tmp[strcspn(tmp, "\n")] = '\0';
	return xstrdup(tmp);
}

/* A line of a tool's stderr that says what went wrong: PostgreSQL's
 * tools write "pg_restore: error: …", the server's words "ERROR:  …" or
 * "FATAL:  …" (psql: "psql:<stdin>:1: ERROR:  …"). */
static int
tool_error_line(const char *line, size_t n)
{
	static const char *const marks[] = { ": error: ", "ERROR:", "FATAL:",
		"PANIC:", NULL };
	char *l = xstrndup(line, n);
	int i, hit = strncmp(l, "error: ", 7) == 0;

	for (i = 0; marks[i] && !hit; i++)
		hit = strstr(l, marks[i]) != NULL;
	free(l);
	return hit;
}

/* What the line adds to the error line before it ("pg_dump: detail:
 * Query was: LOCK TABLE …", "DETAIL:  …"). */
static int
tool_detail_line(const char *line, size_t n)
{
	char *l = xstrndup(line, n);
	int hit = strstr(l, ": detail: ") != NULL || strstr(l, "DETAIL:") !=
	    NULL || strncmp(l, "Command was: ", 13) == 0;

	free(l);
	return hit;
}

#define TOOL_ERROR_READ		8192
#define TOOL_ERROR_LINE_MAX	300

char *
util_fd_tool_error(int fd, int st)
{
	char *text = xmalloc(TOOL_ERROR_READ), *p, *pick = NULL;
	ssize_t n = fd >= 0 ? pread(fd, text, TOOL_ERROR_READ - 1, 0) : -1;
	struct buf out;
	size_t len;
	int details = 0;

	text[n > 0 ? n : 0] = '\0';
	for (p = text; *p && pick == NULL; p += len + (p[len] == '\n')) {
		len = strcspn(p, "\n");
		if (tool_error_line(p, len))
			pick = p;
	}
	/* none says "error": its first line that says anything */
	for (p = text; *p && pick == NULL; p += len + (p[len] == '\n'))
		if ((len = strcspn(p, "\n")) > 0)
			pick = p;
	buf_init(&out, 0);
	for (p = pick; p && *p && details < 2; p += len + (p[len] ==
	    '\n')) {
		len = strcspn(p, "\n");
		if (p != pick && !tool_detail_line(p, len))
			break;
		buf_printf(&out, "%s%.*s%s", p == pick ? "" : "; ",
		    (int)(len < TOOL_ERROR_LINE_MAX ? len :
		    TOOL_ERROR_LINE_MAX), p, len > TOOL_ERROR_LINE_MAX ? "…" :
		    "");
		details += p != pick;
	}
	free(text);
	if (out.len > 0 || st == -1)
		return buf_detach(&out);
	buf_release(&out);
	if (WIFEXITED(st))
		return xasprintf("exited with status %d", WEXITSTATUS(st));
	if (WIFSIGNALED(st))
		return xasprintf("killed by signal %d (%s)", WTERMSIG(st),
		    strsignal(WTERMSIG(st)));
	return xstrdup("ended without a message");
}

/* Write len bytes of data to a new temp file next to path, synced; its
 * name into *tmpp. 0, or -1 (errno set, nothing left behind). */
static int
write_temp(const char *path, const void *data, size_t len, unsigned mode,
    char **tmpp)
{
	char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	const char *p = data;
	int fd, saved;

	*tmpp = NULL;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd == -1)
		goto fail;
	if (util_write_all(fd, p, len) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		goto fail_unlink;
	}
	if (fsync(fd) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		goto fail_unlink;
	}
	if (close(fd) == -1)
		goto fail_unlink;
	*tmpp = tmp;
	return 0;
fail_unlink:
	saved = errno;
	unlink(tmp);
	errno = saved;
fail:
	free(tmp);
	return -1;
}

int
util_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
	char *tmp;
	int rc, saved;

	if (write_temp(path, data, len, mode, &tmp) == -1)
		return -1;
	rc = util_rename_sync(tmp, path);
	if (rc == -1) {
		saved = errno;
		unlink(tmp);
		errno = saved;
	}
	free(tmp);
	return rc;
}

int
util_write_file_once(const char *path, const void *data, size_t len,
    unsigned mode)
{
	char *tmp;
	int rc, saved;

	if (write_temp(path, data, len, mode, &tmp) == -1)
		return -1;
	/* link(2) never replaces: EEXIST when path is already there */
	rc = link(tmp, path);
	saved = errno;
	unlink(tmp);
	if (rc == 0)
		rc = util_fsync_dir(path);
	else
		errno = saved;
	free(tmp);
	return rc;
}

int
util_remove_temps(const char *dir, const char *base)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t blen = base ? strlen(base) : 0;
	int removed = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		const char *t = strstr(de->d_name, ".tmp.");
		const char *pid;
		char *path;
		struct stat st;

		/* only <name>.tmp.<pid>, as write_temp() names them */
		if (t == NULL || t == de->d_name)
			continue;
		if (base && ((size_t)(t - de->d_name) != blen ||
		    strncmp(de->d_name, base, blen) != 0))
			continue;
		for (pid = t + 5; *pid >= '0' && *pid <= '9'; pid++)
			;
		if (pid == t + 5 || *pid != '\0')
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    unlink(path) == 0)
			removed++;
		free(path);
	}
	closedir(d);
	if (removed)
		fsync_folder(dir);
	return removed;
}

char *
util_read_file(const char *path, size_t max, size_t *lenp)
{
	FILE *f = fopen(path, "re");
	char *data = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			data = xrealloc(data, cap);
		}
		n = fread(data + len, 1, cap - len - 1, f);
		len += n;
		if (len > max) {
			free(data);
			fclose(f);
			return NULL;
		}
		if (n == 0)
			break;
	}
	fclose(f);
	data[len] = '\0';
	if (lenp)
		*lenp = len;
	return data;
}

int
util_media_listed(const char *list, const char *type)
{
	size_t tl = strlen(type), n;
	const char *end;

	while (list != NULL && *list != '\0') {
		list += strspn(list, " \t,");
		end = list + strcspn(list, ",");
		n = strcspn(list, ";, \t");
		if (n == tl && strncasecmp(list, type, tl) == 0)
			return 1;
		list = end;
	}
	return 0;
}

int
util_parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
util_valid_subdomain(const char *s)
{
	size_t n = strlen(s), i;

	if (n < 2 || n > 39 || !(s[0] >= 'a' && s[0] <= 'z'))
		return 0;
	for (i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || isdigit((unsigned char)s[i]) ||
		    s[i] == '-'))
			return 0;
	return 1;
}

int
util_valid_email(const char *s)
{
	const char *at = strchr(s, '@');
	size_t n = strlen(s), i;

	if (n < 3 || n > 254 || at == NULL || at == s || at[1] == '\0' ||
	    strchr(at + 1, '@') != NULL || strchr(at + 1, '.') == NULL)
		return 0;
	for (i = 0; i < n; i++)
		if (isspace((unsigned char)s[i]) || iscntrl((unsigned char)s[i]))
			return 0;
	return 1;
}

int
util_valid_env_name(const char *s)
{
	size_t n = strlen(s), i;

	if (n < 1 || n > 32 || !isalpha((unsigned char)s[0]))
		return 0;
	for (i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
	return 1;
}

int
util_valid_name(const char *s)
{
	size_t n = strlen(s), i;

	if (n < 1 || n > 63)
		return 0;
	if (!((s[0] >= 'a' && s[0] <= 'z') || isdigit((unsigned char)s[0])))
		return 0;
	for (i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || isdigit((unsigned char)s[i]) ||
		    s[i] == '-'))
			return 0;
	return 1;
}

char *
util_pg_tool(const char *name)
{
	char *pat = xasprintf("/usr/lib/postgresql/*/bin/%s", name);
	const char *best = NULL;
	char *path;
	glob_t g;
	size_t i;

	if (glob(pat, 0, NULL, &g) == 0)
		for (i = 0; i < g.gl_pathc; i++)
			if (access(g.gl_pathv[i], X_OK) == 0 && (best == NULL ||
			    strverscmp(g.gl_pathv[i], best) > 0))
				best = g.gl_pathv[i];
	path = xstrdup(best ? best : name);
	globfree(&g);
	free(pat);
	return path;
}

/* Length of the valid UTF-8 sequence at s (1-4), 0 when s does not start
 * one (a stray continuation byte, an overlong form, a surrogate, beyond
 * U+10FFFF, cut short). */
static size_t
utf8_seq(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n, i;
	unsigned long cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	cp = c & (0x3f >> (n - 1));
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

char *
util_name_encode(const char *raw)
{
	static const char digits[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)raw;
	char *out = xmalloc(3 * strlen(raw) + 1), *o = out;
	size_t n;

	while (*s) {
		n = utf8_seq(s);
		if (n == 0 || *s == '%' || *s < 0x20 || *s == 0x7f) {
			*o++ = '%';
			*o++ = digits[*s >> 4];
			*o++ = digits[*s & 15];
			s++;
			continue;
		}
		memcpy(o, s, n);
		o += n;
		s += n;
	}
	*o = '\0';
	return out;
}

static int
hex_digit(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ?
	    c - 'A' + 10 : -1;
}

char *
util_name_decode(const char *name)
{
	char *out = xmalloc(strlen(name) + 1), *o = out, *again;
	const char *s;
	int hi, lo;

	for (s = name; *s; s++) {
		if (*s != '%') {
			*o++ = *s;
			continue;
		}
		if ((hi = hex_digit(s[1])) < 0 || (lo = hex_digit(s[2])) < 0 ||
		    (hi == 0 && lo == 0))
			goto bad;
		*o++ = (char)(hi << 4 | lo);
		s += 2;
	}
	*o = '\0';
	/* one form per name: what encodes back to something else (an
	 * escaped letter, a raw control character) is not a name's form */
	again = util_name_encode(out);
	hi = strcmp(again, name);
	free(again);
	if (hi == 0)
		return out;
bad:
	free(out);
	return NULL;
}

char *
util_utf8_clean_n(const char *text, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)text, *end = s + len;
	char *out = xmalloc(4 * len + 1), *o = out;
	size_t n;

	while (s < end) {
		if (*s == '\0' || (n = utf8_seq(s)) == 0 ||
		    n > (size_t)(end - s)) {
			*o++ = '\\';
			*o++ = 'x';
			*o++ = digits[*s >> 4];
			*o++ = digits[*s & 15];
			s++;
			continue;
		}
		memcpy(o, s, n);
		o += n;
		s += n;
	}
	*o = '\0';
	return out;
}

char *
util_utf8_clean(const char *text)
{
	return util_utf8_clean_n(text, strlen(text));
}

size_t
util_utf8_cut(const char *text, size_t len)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t back, need;

	for (back = 1; back <= 3 && back <= len; back++) {
		unsigned c = s[len - back];

		if ((c & 0xc0) == 0x80)
			continue;	/* a continuation byte: look further */
		need = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ?
		    3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
		return need > back ? back : 0;
	}
	return 0;
}
