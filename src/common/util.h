/* Small helpers shared by every process: ids, tokens, time, files. */
#ifndef NUBO_UTIL_H
#define NUBO_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Random lowercase hex string of 2*nbytes characters (libsodium). */
char *util_random_hex(size_t nbytes);
/* A random (version 4) UUID, lowercase, 36 characters. */
char *util_uuid(void);
/* 1 when s is a UUID as util_uuid() writes them (lowercase). */
int util_valid_uuid(const char *s);
/* sha256 of a string, as 64 hex characters. */
char *util_sha256_hex(const void *data, size_t len);
void util_hex(const unsigned char *in, size_t len, char *out);
/* A file name as JSON carries it (docs/FORMATS.md, "File names"): its
 * bytes, with '%', control characters and every byte that is not part of
 * valid UTF-8 written %XX (upper-case hex). Always valid UTF-8; names
 * without those bytes are unchanged. */
char *util_name_encode(const char *raw);
/* The bytes a util_name_encode() form stands for; NULL when name is not
 * such a form (a bad or needless escape, %00, a raw control character). */
char *util_name_decode(const char *name);
/* text, with every byte that is not part of valid UTF-8 written \xNN:
 * for messages that may name a file. */
char *util_utf8_clean(const char *text);
/* The same for len bytes (text[len] must be '\0'), a NUL among them
 * written \x00 too: output that a program printed (logs). */
char *util_utf8_clean_n(const char *text, size_t len);
/* How many bytes at the end of text (len bytes) begin a UTF-8 sequence
 * that they do not finish (0 to 3): what a reader stopping there should
 * leave for its next read. */
size_t util_utf8_cut(const char *text, size_t len);

/* Seconds since the epoch; NUBO_CLOCK_OFFSET (seconds) shifts it for tests. */
time_t util_now(void);
/* Seconds on the monotonic clock (for durations, never for dates). */
double util_mono(void);
/* n bytes for people, in the unit that shows it: "512 B", "12.3 kB",
 * "1.1 MB", "2.05 GB" (powers of 1024). */
void util_human_bytes(long long n, char *out, size_t outlen);
/* RFC 3339 UTC time ("2026-11-26T01:02:03Z") into out (>= 21 bytes). */
void util_time_iso(time_t t, char *out, size_t outlen);
/* Parse RFC 3339 UTC ("...Z"); -1 on bad input. */
int util_parse_iso(const char *s, time_t *out);

/* mkdir -p with mode; 0 or -1 (errno set). */
int util_mkdir_p(const char *path, unsigned mode);
/* rm -rf; 0 or -1. A missing path is not an error. */
int util_rm_rf(const char *path);
/* Write a whole small file atomically and durably: a temp file next to it
 * (<path>.tmp.<pid>), fsync, rename over path, fsync of the folder — once
 * it returns 0 the new content survives a crash or power loss. -1 with
 * errno set (nothing left behind). */
int util_write_file(const char *path, const void *data, size_t len, unsigned mode);
/* Write all of data to fd, going on after short writes: 0, or -1 with
 * errno saying why (ENOSPC when the disk is full — never a short count
 * taken for an error with no reason). */
int util_write_all(int fd, const void *data, size_t len);
/* The first line a child process wrote to its stderr, kept in fd (a
 * memfd or file, read from its start); "" when none. */
char *util_fd_first_line(int fd);
/* Why a child (pg_dump, pg_restore, psql, any tool) failed, in its own
 * words, for an error: the first line of its stderr (fd as above, -1:
 * none) that says "error" (PostgreSQL's tools: "pg_restore: error: …",
 * the server's "ERROR:"/"FATAL:") with up to two detail lines after it
 * ("pg_dump: detail: Query was: …"), joined by "; " — not a warning
 * that came first; else its first line; else how it ended (wait status
 * st): "exited with status 1", "killed by signal 9 (Killed)" ("" for st
 * -1). */
char *util_fd_tool_error(int fd, int st);
/* The same for a file that must never be replaced (key material): the
 * synced temp file is linked to path, so -1 with EEXIST when path exists. */
int util_write_file_once(const char *path, const void *data, size_t len,
    unsigned mode);
/* rename(2), then fsync of the folder(s) involved, so the new name
 * survives a crash; every atomic replace in nubo goes through here.
 * 0 or -1 (errno set). */
int util_rename_sync(const char *from, const char *to);
/* fsync the folder that holds path. 0 or -1 (errno set). */
int util_fsync_dir(const char *path);
/* Remove the temp files a crash left in dir (regular files named
 * <name>.tmp.<digits>, as util_write_file() makes them; only of <base>
 * when base is not NULL). The number removed. */
int util_remove_temps(const char *dir, const char *base);
/* Read a whole small file, at most max bytes; NULL on error or when larger. */
char *util_read_file(const char *path, size_t max, size_t *lenp);
/* A PostgreSQL client program (pg_dump, pg_restore, …): the newest
 * /usr/lib/postgresql/N/bin/<name>, as Debian's pg_wrapper would pick for
 * a server given by URL but without its Perl start-up (~40 ms a run);
 * plain <name> (found on PATH) when there is none. Caller frees. */
char *util_pg_tool(const char *name);

/* 1 when the header value list (Content-Type, or Accept's
 * comma-separated list) names the media type `type` itself — compared
 * without case, its parameters (";q=…", "; boundary=…") and spaces
 * aside — not merely a type that begins with it. */
int util_media_listed(const char *list, const char *type);
/* Parse a decimal integer in [min,max]; -1 on anything else. */
int util_parse_int(const char *s, long long min, long long max, long long *out);
/* 1 if s matches [a-z][a-z0-9-]{1,38} (SPEC §2 app subdomains). */
int util_valid_subdomain(const char *s);
/* 1 if s is a plausible email address (one @, no spaces, <= 254). */
int util_valid_email(const char *s);
/* 1 if s is an environment name: [A-Za-z][A-Za-z0-9-]{0,31}. */
int util_valid_env_name(const char *s);
/* 1 if s is a resource name: [a-z0-9][a-z0-9-]{0,62} (nodes). */
int util_valid_name(const char *s);

#endif
