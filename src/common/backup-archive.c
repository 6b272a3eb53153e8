/* Backup archives: streaming writer and validating reader (SPEC §3, §6).
 *
 * Writer: pg_dump -Z0 into an unlinked spool file (the tar header needs the
 * dump's size, and pg_dump's own compression is wasted inside gzip), then a
 * pax tar (libarchive) of db/db.backup, tree/, .metadata and
 * .nubo/checksums piped through pigz, which compresses on every core: gzip
 * on one core is what bounds the raw `tar czf` script.
 *
 * Reader: our own gzip layer (zlib, so the CRC of every member is checked,
 * concatenated members are accepted, and the expansion ratio is watched for
 * gzip bombs) feeding libarchive's tar reader; every member is checked
 * before anything it carries is used. */
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "backup-archive.h"
#include "backup-dump.h"
#include "buf.h"
#include "jsonx.h"
#include "log.h"
#include "nubo_limits.h"
#include "util.h"
#include "xmalloc.h"

extern char **environ;

#define CHECKSUMS_NAME	".nubo/checksums"
#define DUMP_NAME	"db/db.backup"

static void
set_cause(char **cause, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_cause(char **cause, const char *fmt, ...)
{
	va_list ap;
	char *text;

	if (cause == NULL || *cause != NULL)
		return;
	va_start(ap, fmt);
	text = xvasprintf(fmt, ap);
	va_end(ap);
	/* a member's name may be any bytes; the cause goes into JSON */
	*cause = util_utf8_clean(text);
	free(text);
}

/* Pipes to helper processes close early (pg_restore --list stops reading
 * after the table of contents): a closed pipe must be EPIPE, not death. */
static void
ignore_sigpipe(void)
{
	struct sigaction sa;

	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		sa.sa_handler = SIG_IGN;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = 0;
		sigaction(SIGPIPE, &sa, NULL);
	}
}

/* Spawn argv with the given stdin/stdout/stderr (-1: /dev/null). */
static pid_t
spawn(char *const argv[], int in, int out, int err)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int rc;

	posix_spawn_file_actions_init(&fa);
	if (in >= 0)
		posix_spawn_file_actions_adddup2(&fa, in, 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out >= 0)
		posix_spawn_file_actions_adddup2(&fa, out, 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (err >= 0)
		posix_spawn_file_actions_adddup2(&fa, err, 2);
	else
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return pid;
}

/* Wait for pid; its exit status, or -1 when it was killed. */
static int
wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return -1;
}

/* First line of what a helper wrote to its stderr memfd. */
static char *
err_text(int fd)
{
	return util_fd_first_line(fd);
}

/* ------------------------------------------------------------------ */
/* Compressed output                                                   */

/* A pax archive written through pigz (on every core) into an fd, or
 * through libarchive's own gzip when pigz cannot run. When a write fails
 * the error names the output and the real cause: pigz's own words when it
 * died (a full disk: "pigz: write error (No space left on device)"), else
 * the system's reason — never libarchive's bare "Write error" on the pipe
 * pigz left behind. */
struct zout {
	struct archive	*a;
	const char	*name;		/* what errors call the output */
	int		 pipe;		/* into pigz, or -1 */
	int		 errfd;		/* pigz's stderr (memfd), or -1 */
	pid_t		 pid;		/* pigz, or -1 */
};

/* What pigz said on its stderr, less its "abort: " and " on <stdout>"
 * (ours is the output the caller names): "" when nothing. */
static char *
pigz_words(int errfd)
{
	char *t = err_text(errfd), *p;

	if ((p = strstr(t, "abort: ")) != NULL)
		memmove(p, p + 7, strlen(p + 7) + 1);
	if ((p = strstr(t, " on <stdout>")) != NULL)
		memmove(p, p + 12, strlen(p + 12) + 1);
	return t;
}

/* *cause for pigz ended with wait status st: its own words, else how it
 * ended. */
static void
zout_pigz_cause(struct zout *z, int st, char **cause)
{
	char *words = pigz_words(z->errfd);

	if (*words != '\0')
		set_cause(cause, "cannot write %s: %s", z->name, words);
	else if (WIFEXITED(st))
		set_cause(cause, "cannot write %s: pigz exited with status %d",
		    z->name, WEXITSTATUS(st));
	else
		set_cause(cause, "cannot write %s: pigz was killed (%s)",
		    z->name, strsignal(WTERMSIG(st)));
	free(words);
}

/* Set *cause for a failed write to z (member: the member being written,
 * or NULL). pigz is reaped here when it has died. */
static void
zout_fail(struct zout *z, const char *member, char **cause)
{
	int err = archive_errno(z->a), st = 0;
	const char *astr = archive_error_string(z->a);
	pid_t done = 0;

	if (z->pid > 0) {
		/* EPIPE: pigz closed its input, it is exiting */
		while ((done = waitpid(z->pid, &st, err == EPIPE ? 0 :
		    WNOHANG)) < 0 && errno == EINTR)
			;
		if (done == z->pid)
			z->pid = -1;
	}
	if (done > 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		zout_pigz_cause(z, st, cause);
	else if (err > 0 && err != EPIPE)
		set_cause(cause, "cannot write %s: %s", z->name, strerror(err));
	else if (member != NULL)
		set_cause(cause, "cannot write %s: member '%s': %s", z->name,
		    member, astr ? astr : "unknown error");
	else
		set_cause(cause, "cannot write %s: %s", z->name,
		    astr ? astr : "unknown error");
}

/* Open z onto out_fd at gzip level 1..9 with threads (0: pigz's default,
 * every core); 0, or -1 with *cause. */
static int
zout_open(struct zout *z, int out_fd, int level, int threads,
    const char *name, char **cause)
{
	char lv[8], th[16];
	char *argv[] = { "pigz", "-c", lv, "-p", th, NULL };
	int p[2];

	memset(z, 0, sizeof(*z));
	z->name = name;
	z->pipe = z->errfd = -1;
	z->pid = -1;
	snprintf(lv, sizeof(lv), "-%d", level);
	snprintf(th, sizeof(th), "%d", threads);
	if (threads <= 0)
		argv[3] = NULL;
	z->a = archive_write_new();
	archive_write_set_format_pax_restricted(z->a);
	archive_write_set_bytes_per_block(z->a, 64 * 1024);
	archive_write_set_bytes_in_last_block(z->a, 1);
	if (pipe2(p, O_CLOEXEC) < 0)
		fatal("pipe: %s", strerror(errno));
	z->errfd = memfd_create("pigz-stderr", MFD_CLOEXEC);
	z->pid = spawn(argv, p[0], out_fd, z->errfd);
	close(p[0]);
	if (z->pid > 0) {
		z->pipe = p[1];
		if (archive_write_open_fd(z->a, p[1]) == ARCHIVE_OK)
			return 0;
	} else {
		z->pid = -1;
		close(p[1]);
		archive_write_add_filter_gzip(z->a);
		snprintf(lv, sizeof(lv), "%d", level);
		archive_write_set_filter_option(z->a, "gzip",
		    "compression-level", lv);
		if (archive_write_open_fd(z->a, out_fd) == ARCHIVE_OK)
			return 0;
	}
	zout_fail(z, NULL, cause);
	return -1;
}

/* Finish z: the archive's end written and pigz done with it; 0, or -1
 * with *cause. */
static int
zout_close(struct zout *z, char **cause)
{
	int st = 0;

	if (archive_write_close(z->a) != ARCHIVE_OK) {
		zout_fail(z, NULL, cause);
		return -1;
	}
	if (z->pipe >= 0) {
		close(z->pipe);
		z->pipe = -1;
	}
	if (z->pid <= 0)
		return 0;
	while (waitpid(z->pid, &st, 0) < 0 && errno == EINTR)
		;
	z->pid = -1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	/* pigz failed at the end (its last write, its close) */
	zout_pigz_cause(z, st, cause);
	return -1;
}

/* Release z; a pigz still running is stopped. */
static void
zout_free(struct zout *z)
{
	if (z->a != NULL)
		archive_write_free(z->a);
	z->a = NULL;
	if (z->pipe >= 0)
		close(z->pipe);
	z->pipe = -1;
	if (z->pid > 0) {
		kill(z->pid, SIGTERM);
		wait_child(z->pid);
	}
	z->pid = -1;
	if (z->errfd >= 0)
		close(z->errfd);
	z->errfd = -1;
}

void
backup_checksum_line(struct buf *b, const unsigned char md[32], const char *path)
{
	char hex[65];
	const char *p;

	util_hex(md, 32, hex);
	if (strpbrk(path, "\\\n") != NULL)
		buf_append(b, "\\", 1);
	buf_append(b, hex, 64);
	buf_append(b, "  ", 2);
	for (p = path; *p != '\0'; p++) {
		if (*p == '\\')
			buf_append(b, "\\\\", 2);
		else if (*p == '\n')
			buf_append(b, "\\n", 2);
		else
			buf_append(b, p, 1);
	}
	buf_append(b, "\n", 1);
}

/* "<prefix>-<first 8 of id>-<YYYYmmddHHMM UTC>.<ext>" */
static char *
archive_name(const char *prefix, const char *id, long long created,
    const char *ext)
{
	char ts[16];
	time_t t = (time_t)created;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y%m%d%H%M", &tm);
	return xasprintf("%s-%.8s-%s.%s", prefix, id, ts, ext);
}

char *
backup_archive_name_full(const char *id, long long created)
{
	return archive_name("files_and_database", id, created, "tar.gz");
}

char *
backup_archive_name_db(const char *id, long long created)
{
	return archive_name("database", id, created, "backup");
}

char *
backup_archive_name_files(const char *id, long long created)
{
	return archive_name("files", id, created, "tar.gz");
}

/* ------------------------------------------------------------------ */
/* Writer                                                              */

struct wctx {
	struct archive	*a;
	struct zout	 z;
	int		 spool;		/* checksums spool (unlinked file) */
	struct buf	 line;
	unsigned char	*iobuf;
	long long	 done;
	long long	 total;
	long long	 files_size;
	double		 last_progress;
	time_t		 now;		/* db/, tree/, .metadata, .nubo/ */
	const struct backup_write_opts *o;
	char		*name;		/* "the backup archive <path>" */
	char		**cause;
};

static void
w_progress(struct wctx *w, int force)
{
	double t;

	if (w->o->progress == NULL)
		return;
	t = util_mono();
	if (!force && t - w->last_progress < 0.2)
		return;
	w->last_progress = t;
	w->o->progress(w->o->progress_arg, w->done, w->total);
}

/* archive_write_header() for a pax archive, 0 or -1. A name that is not
 * UTF-8 (nubod runs in a UTF-8 locale: main()) cannot go into a UTF-8
 * pax "path" record: libarchive then stores its bytes as they are, under
 * "hdrcharset=BINARY" (POSIX pax), and says ARCHIVE_WARN — the member is
 * written all the same (docs/FORMATS.md, File names). */
static int
header_write(struct archive *a, struct archive_entry *e)
{
	int r = archive_write_header(a, e);

	return r == ARCHIVE_OK || r == ARCHIVE_WARN ? 0 : -1;
}

static int
w_header(struct wctx *w, const char *name, mode_t type, mode_t perm,
    long long size, time_t mtime)
{
	struct archive_entry *e;
	int r;

	e = archive_entry_new();
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm);
	archive_entry_set_size(e, type == AE_IFREG ? size : 0);
	archive_entry_set_mtime(e, mtime, 0);
	archive_entry_set_uname(e, "nubo");
	archive_entry_set_gname(e, "nubo");
	r = header_write(w->a, e);
	archive_entry_free(e);
	if (r != 0) {
		zout_fail(&w->z, name, w->cause);
		return -1;
	}
	return 0;
}

/* Copy exactly size bytes of fd into the current member (zero padding if
 * the file shrank meanwhile), hashing them; md gets the sha256. */
static int
w_copy(struct wctx *w, int fd, long long size, const char *name,
    unsigned char md[32])
{
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	long long left = size;
	ssize_t n;
	size_t want;
	int rc = -1;

	EVP_DigestInit_ex(mc, EVP_sha256(), NULL);
	while (left > 0) {
		want = left < NUBO_IO_CHUNK ? (size_t)left : NUBO_IO_CHUNK;
		n = fd >= 0 ? read(fd, w->iobuf, want) : 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			set_cause(w->cause, "cannot read '%s': %s", name,
			    strerror(errno));
			goto out;
		}
		if (n == 0) {
			/* the file shrank since its header: pad */
			memset(w->iobuf, 0, want);
			n = (ssize_t)want;
			fd = -1;
		}
		EVP_DigestUpdate(mc, w->iobuf, (size_t)n);
		if (archive_write_data(w->a, w->iobuf, (size_t)n) != n) {
			zout_fail(&w->z, NULL, w->cause);
			goto out;
		}
		left -= n;
		w->done += n;
		w_progress(w, 0);
	}
	EVP_DigestFinal_ex(mc, md, NULL);
	rc = 0;
out:
	EVP_MD_CTX_free(mc);
	return rc;
}

static int
w_checksum(struct wctx *w, const unsigned char md[32], const char *name)
{
	w->line.len = 0;
	backup_checksum_line(&w->line, md, name);
	if (util_write_all(w->spool, w->line.data, w->line.len) < 0) {
		set_cause(w->cause, "cannot spool checksums: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int
fts_byname(const FTSENT **a, const FTSENT **b)
{
	return strcmp((*a)->fts_name, (*b)->fts_name);
}

/* Sum of the sizes of the regular files under dir (progress total). */
static long long
tree_size(const char *dir)
{
	char *argv[] = { (char *)dir, NULL };
	FTS *f;
	FTSENT *e;
	long long sum = 0;

	if ((f = fts_open(argv, FTS_PHYSICAL | FTS_NOCHDIR, NULL)) == NULL)
		return 0;
	while ((e = fts_read(f)) != NULL)
		if (e->fts_info == FTS_F)
			sum += e->fts_statp->st_size;
	fts_close(f);
	return sum;
}

static int
w_tree(struct wctx *w, const char *dir)
{
	char *argv[] = { (char *)dir, NULL };
	FTS *f = NULL;
	FTSENT *e;
	char *name = NULL;
	unsigned char md[32];
	struct stat st;
	size_t rootlen = strlen(dir);
	int started = 0, fd = -1, rc = -1;

	if ((f = fts_open(argv, FTS_PHYSICAL | FTS_NOCHDIR, fts_byname)) == NULL) {
		set_cause(w->cause, "cannot read '%s': %s", dir, strerror(errno));
		goto out;
	}
	while ((e = fts_read(f)) != NULL) {
		if (e->fts_level == 0) {
			if (e->fts_info == FTS_D || e->fts_info == FTS_DP)
				continue;
			if (e->fts_info == FTS_NS && e->fts_errno == ENOENT)
				break;	/* no file store yet: no tree/ */
			set_cause(w->cause, "'%s' is not a directory", dir);
			goto out;
		}
		if (e->fts_info == FTS_DP)
			continue;
		if (e->fts_info == FTS_DNR || e->fts_info == FTS_ERR ||
		    e->fts_info == FTS_NS) {
			set_cause(w->cause, "cannot read '%s': %s", e->fts_path,
			    strerror(e->fts_errno));
			goto out;
		}
		if (e->fts_info != FTS_D && e->fts_info != FTS_F) {
			/* links and special files are not file documents and
			 * would be refused on restore (SPEC §3) */
			log_warn("backup: skipping '%s': not a regular file",
			    e->fts_path);
			continue;
		}
		if (!started) {
			if (w_header(w, "tree/", AE_IFDIR, 0755, 0, w->now) < 0)
				goto out;
			started = 1;
		}
		free(name);
		name = xasprintf("tree%s%s", e->fts_path + rootlen,
		    e->fts_info == FTS_D ? "/" : "");
		if (e->fts_info == FTS_D) {
			if (w_header(w, name, AE_IFDIR,
			    e->fts_statp->st_mode & 07777, 0,
			    e->fts_statp->st_mtime) < 0)
				goto out;
			continue;
		}
		fd = open(e->fts_accpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			if (errno == ENOENT)
				continue;	/* deleted meanwhile */
			set_cause(w->cause, "cannot read '%s': %s", e->fts_path,
			    strerror(errno));
			goto out;
		}
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		if (w_header(w, name, AE_IFREG, st.st_mode & 07777, st.st_size,
		    st.st_mtime) < 0 ||
		    w_copy(w, fd, st.st_size, e->fts_path, md) < 0 ||
		    w_checksum(w, md, name) < 0)
			goto out;
		w->files_size += st.st_size;
		close(fd);
		fd = -1;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(name);
	if (f != NULL)
		fts_close(f);
	return rc;
}

int
backup_archive_write(const struct backup_write_opts *o, int out_fd,
    struct backup_meta *meta, char **cause)
{
	struct wctx w;
	struct stat st;
	struct backup_dump d;
	unsigned char md[32];
	int dumpfd = -1, rc = -1, n;
	double t0 = util_mono();
	json_t *mj = NULL;
	char *mtext = NULL;
	long long dbsize, dumpsize, dump_ms = 0;
	time_t now = time(NULL);

	memset(&w, 0, sizeof(w));
	w.o = o;
	w.cause = cause;
	w.now = now;	/* one time for the members nubo makes up: the
			 * store assembles them from its created */
	w.spool = -1;
	w.z.pipe = w.z.errfd = -1;
	w.z.pid = -1;
	buf_init(&w.line, 0);
	w.iobuf = xmalloc(NUBO_IO_CHUNK);
	ignore_sigpipe();

	/* 1. the dump */
	memset(&d, 0, sizeof(d));
	d.pid = d.fd = d.errfd = -1;
	if (o->dump_path != NULL) {
		dumpfd = open(o->dump_path, O_RDONLY | O_CLOEXEC);
		if (dumpfd < 0) {
			set_cause(cause, "cannot open '%s': %s", o->dump_path,
			    strerror(errno));
			goto out;
		}
	} else if (backup_dump_start(&d, o->dburl, o->tmp_dir, cause) < 0)
		goto out;
	/* while pg_dump runs: the database's size and the files' total */
	dbsize = o->dburl != NULL ? backup_database_size(o->dburl) : -1;
	w.total = o->files_dir ? tree_size(o->files_dir) : 0;
	if (o->dump_path == NULL) {
		if (backup_dump_finish(&d, cause) < 0)
			goto out;
		dumpfd = d.fd;
		dump_ms = d.ms;
	}
	if (fstat(dumpfd, &st) < 0 || lseek(dumpfd, 0, SEEK_SET) < 0) {
		set_cause(cause, "cannot read the dump: %s", strerror(errno));
		goto out;
	}
	dumpsize = st.st_size;
	if (dbsize < 0)
		dbsize = st.st_size;
	w.total += st.st_size;
	w_progress(&w, 1);

	w.spool = open(o->tmp_dir ? o->tmp_dir : "/tmp",
	    O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (w.spool < 0) {
		set_cause(cause, "cannot create a spool file: %s", strerror(errno));
		goto out;
	}

	/* 2. the compressor: pigz on every core, else gzip in-process */
	n = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	free(w.name);
	w.name = o->out_name != NULL ? xasprintf("the backup archive %s",
	    o->out_name) : xstrdup("the backup archive");
	if (zout_open(&w.z, out_fd, o->level >= 1 && o->level <= 9 ? o->level :
	    6, n > 0 ? n : 1, w.name, cause) < 0)
		goto out;
	w.a = w.z.a;

	/* 3. db/ first: a restore can start pg_restore while tree/ unpacks */
	if (w_header(&w, "db/", AE_IFDIR, 0755, 0, now) < 0 ||
	    w_header(&w, DUMP_NAME, AE_IFREG, 0644, st.st_size, now) < 0 ||
	    w_copy(&w, dumpfd, st.st_size, DUMP_NAME, md) < 0 ||
	    w_checksum(&w, md, DUMP_NAME) < 0)
		goto out;

	/* 4. tree/ */
	if (o->files_dir != NULL && w_tree(&w, o->files_dir) < 0)
		goto out;

	/* 5. .metadata: Mendix keys, every value a string (SPEC §3) */
	mj = json_object();
	{
		char v[32];

		snprintf(v, sizeof(v), "%lld", (long long)(util_mono() - t0 + 0.5));
		json_object_set_new(mj, "duration", json_string(v));
		snprintf(v, sizeof(v), "%lld", dumpsize);
		json_object_set_new(mj, "dumpSize", json_string(v));
		json_object_set_new(mj, "modelVersion",
		    json_string(o->model_version ? o->model_version : ""));
		snprintf(v, sizeof(v), "%lld", dbsize);
		json_object_set_new(mj, "databaseSize", json_string(v));
		snprintf(v, sizeof(v), "%lld", w.files_size);
		json_object_set_new(mj, "filesSize", json_string(v));
		json_object_set_new(mj, "nuboFormat", json_string("1"));
	}
	mtext = json_dumps(mj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (w_header(&w, ".metadata", AE_IFREG, 0644, (long long)strlen(mtext),
	    now) < 0)
		goto out;
	if (archive_write_data(w.a, mtext, strlen(mtext)) !=
	    (la_ssize_t)strlen(mtext)) {
		zout_fail(&w.z, NULL, cause);
		goto out;
	}

	/* 6. .nubo/checksums, last: it covers every member before it */
	if (fstat(w.spool, &st) < 0 || lseek(w.spool, 0, SEEK_SET) < 0) {
		set_cause(cause, "cannot read the checksum spool: %s",
		    strerror(errno));
		goto out;
	}
	if (w_header(&w, ".nubo/", AE_IFDIR, 0755, 0, now) < 0 ||
	    w_header(&w, CHECKSUMS_NAME, AE_IFREG, 0644, st.st_size, now) < 0 ||
	    w_copy(&w, w.spool, st.st_size, CHECKSUMS_NAME, md) < 0)
		goto out;

	if (zout_close(&w.z, cause) < 0)
		goto out;
	if (meta != NULL) {
		memset(meta, 0, sizeof(*meta));
		meta->duration = (long long)(util_mono() - t0 + 0.5);
		meta->dump_ms = dump_ms;
		meta->dump_size = dumpsize;
		meta->database_size = dbsize;
		meta->files_size = w.files_size;
		snprintf(meta->model_version, sizeof(meta->model_version), "%s",
		    o->model_version ? o->model_version : "");
		meta->nubo_format = 1;
	}
	w_progress(&w, 1);
	rc = 0;
out:
	zout_free(&w.z);
	free(w.name);
	if (dumpfd >= 0 && dumpfd != d.fd)
		close(dumpfd);
	backup_dump_release(&d);
	if (w.spool >= 0)
		close(w.spool);
	json_decref(mj);
	free(mtext);
	free(w.iobuf);
	buf_release(&w.line);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Reader                                                              */

#define GZ_SLOTS	4

/* gzip layer under libarchive's tar reader. */
struct gzin {
	backup_read_fn	 rd;
	void		*ctx;
	z_stream	 z;
	unsigned char	*in;
	int		 in_member;
	int		 members;
	int		 eof;
	long long	 total_in;
	long long	 total_out;
	long long	 max_ratio;
	long long	 ratio_min;
	char		*err;		/* set by the inflate thread */
	int		 magic;		/* it began with gzip's magic bytes */
	/* the hand-over from the inflate thread to the tar reader */
	pthread_t	 th;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	unsigned char	*slot_data[GZ_SLOTS];
	ssize_t		 slot_len[GZ_SLOTS];	/* > 0 bytes, 0 end, -1 error */
	int		 head, tail, count, held, stop, started;
};

/* Inflate the next bytes into out (NUBO_IO_CHUNK): their count, 0 at the
 * end, -1 with g->err set. Runs on the inflate thread. */
static ssize_t
gz_fill(struct gzin *g, unsigned char *out)
{
	ssize_t n;
	size_t got;
	int ret;

	if (g->eof || g->err != NULL)
		return g->err != NULL ? -1 : 0;
	g->z.next_out = out;
	g->z.avail_out = NUBO_IO_CHUNK;
	while (g->z.avail_out == NUBO_IO_CHUNK) {
		if (g->z.avail_in == 0) {
			n = g->rd(g->ctx, g->in, NUBO_IO_CHUNK);
			if (n < 0) {
				g->err = xstrdup("cannot read the archive");
				break;
			}
			if (n == 0) {
				if (g->in_member || g->members == 0)
					g->err = xstrdup(g->members == 0 &&
					    !g->in_member ? "archive is empty" :
					    "archive is truncated (gzip data ends early)");
				else
					g->eof = 1;
				break;
			}
			if (g->total_in == 0)
				g->magic = n >= 2 && g->in[0] == 0x1f &&
				    g->in[1] == 0x8b;
			g->z.next_in = g->in;
			g->z.avail_in = (uInt)n;
			g->total_in += n;
		}
		if (!g->in_member) {
			inflateReset(&g->z);
			g->in_member = 1;
		}
		ret = inflate(&g->z, Z_NO_FLUSH);
		if (ret == Z_STREAM_END) {
			g->in_member = 0;
			g->members++;
		} else if (ret == Z_BUF_ERROR && g->z.avail_in == 0) {
			continue;
		} else if (ret != Z_OK) {
			g->err = !g->magic ?
			    xasprintf("archive is not gzip data (%s)",
				g->z.msg ? g->z.msg : "bad header") :
			    xasprintf("gzip data is corrupt: %s",
				g->z.msg ? g->z.msg : "inflate failed");
			break;
		}
	}
	got = NUBO_IO_CHUNK - g->z.avail_out;
	g->total_out += (long long)got;
	if (g->err == NULL && g->total_out > g->ratio_min &&
	    g->total_out / g->max_ratio > g->total_in)
		g->err = xasprintf("archive expands more than %lld times its "
		    "size (gzip bomb)", g->max_ratio);
	if (g->err != NULL)
		return -1;
	return (ssize_t)got;
}

/* Inflate on its own thread, GZ_SLOTS buffers ahead of the tar reader:
 * decompression and unpacking then use two cores, as `tar xzf` does with
 * its gzip child. */
static void *
gz_thread(void *arg)
{
	struct gzin *g = arg;
	ssize_t n;
	int slot;

	for (;;) {
		pthread_mutex_lock(&g->mu);
		while (g->count == GZ_SLOTS && !g->stop)
			pthread_cond_wait(&g->cv, &g->mu);
		if (g->stop) {
			pthread_mutex_unlock(&g->mu);
			break;
		}
		slot = g->tail;
		pthread_mutex_unlock(&g->mu);
		n = gz_fill(g, g->slot_data[slot]);
		pthread_mutex_lock(&g->mu);
		g->slot_len[slot] = n;
		g->tail = (g->tail + 1) % GZ_SLOTS;
		g->count++;
		pthread_cond_broadcast(&g->cv);
		pthread_mutex_unlock(&g->mu);
		if (n <= 0)
			break;
	}
	return NULL;
}

static la_ssize_t
gz_read(struct archive *a, void *vctx, const void **bufp)
{
	struct gzin *g = vctx;
	ssize_t n;

	pthread_mutex_lock(&g->mu);
	if (g->held) {
		g->head = (g->head + 1) % GZ_SLOTS;
		g->count--;
		g->held = 0;
		pthread_cond_broadcast(&g->cv);
	}
	while (g->count == 0)
		pthread_cond_wait(&g->cv, &g->mu);
	n = g->slot_len[g->head];
	if (n > 0) {
		g->held = 1;
		*bufp = g->slot_data[g->head];
	}
	pthread_mutex_unlock(&g->mu);
	if (n >= 0)
		return (la_ssize_t)n;
	archive_set_error(a, EINVAL, "%s", g->err);
	return ARCHIVE_FATAL;
}

static void
gz_start(struct gzin *g)
{
	int i;

	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	for (i = 0; i < GZ_SLOTS; i++)
		g->slot_data[i] = xmalloc(NUBO_IO_CHUNK);
	if (pthread_create(&g->th, NULL, gz_thread, g) != 0)
		fatal("cannot start the inflate thread");
	g->started = 1;
}

static void
gz_stop(struct gzin *g)
{
	int i;

	if (!g->started)
		return;
	pthread_mutex_lock(&g->mu);
	g->stop = 1;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->th, NULL);
	for (i = 0; i < GZ_SLOTS; i++)
		free(g->slot_data[i]);
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
	g->started = 0;
}

/* Per regular member: a hash of its path and the sha256 of its bytes. */
struct rec {
	unsigned char	 path[16];
	unsigned char	 sum[32];
};

struct rvec {
	struct rec	*v;
	size_t		 n, cap;
};

static void
rvec_push(struct rvec *r, const char *path, const unsigned char *sum)
{
	unsigned char md[32];

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 256;
		r->v = xrealloc(r->v, r->cap * sizeof(*r->v));
	}
	EVP_Digest(path, strlen(path), md, NULL, EVP_sha256(), NULL);
	memcpy(r->v[r->n].path, md, 16);
	if (sum != NULL)
		memcpy(r->v[r->n].sum, sum, 32);
	else
		memset(r->v[r->n].sum, 0, 32);
	r->n++;
}

static int
rec_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct rec));
}

static int
rec_cmp_path(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

/* A set of path hashes (the first 16 bytes of their sha256): which
 * members are files and which paths are folders above some member, so a
 * file with members below it is found whatever their order. */
struct hset {
	unsigned char	(*k)[16];
	size_t		 n, cap;
};

static size_t
hset_slot(const struct hset *h, const unsigned char *key)
{
	uint64_t v;
	size_t i;

	memcpy(&v, key, sizeof(v));
	for (i = (size_t)v & (h->cap - 1); ; i = (i + 1) & (h->cap - 1)) {
		static const unsigned char zero[16];

		if (memcmp(h->k[i], key, 16) == 0 ||
		    memcmp(h->k[i], zero, 16) == 0)
			return i;
	}
}

static int
hset_has(const struct hset *h, const unsigned char *key)
{
	return h->cap > 0 && memcmp(h->k[hset_slot(h, key)], key, 16) == 0;
}

static void
hset_add(struct hset *h, const unsigned char *key)
{
	size_t i, old;
	unsigned char (*ok)[16];

	if ((h->n + 1) * 2 > h->cap) {
		old = h->cap;
		ok = h->k;
		h->cap = h->cap ? h->cap * 2 : 1024;
		h->k = xcalloc(h->cap, 16);
		h->n = 0;
		for (i = 0; i < old; i++) {
			static const unsigned char zero[16];

			if (memcmp(ok[i], zero, 16) != 0)
				hset_add(h, ok[i]);
		}
		free(ok);
	}
	i = hset_slot(h, key);
	if (memcmp(h->k[i], key, 16) != 0) {
		memcpy(h->k[i], key, 16);
		h->n++;
	}
}

static void
path_key(const char *path, size_t len, unsigned char key[16])
{
	unsigned char md[32];

	EVP_Digest(path, len, md, NULL, EVP_sha256(), NULL);
	memcpy(key, md, 16);
	if (key[0] == 0)
		key[0] = 1;	/* all zeros marks a free slot */
}

struct rctx {
	const struct backup_read_opts *o;
	struct backup_info *info;
	struct archive	*a;
	struct archive	*files;		/* files-only output (fz.a), or NULL */
	struct zout	 fz;
	unsigned char	*iobuf;
	struct rvec	 paths;		/* every member: duplicates */
	struct rvec	 sums;		/* regular members: checksums */
	struct rvec	 listed;	/* lines of .nubo/checksums */
	struct buf	 metadata;
	struct hset	 file_set;	/* regular members */
	struct hset	 dir_set;	/* paths with members below them */
	int		 seen_checksums;
	int		 sinking;	/* this member's bytes go to o->sink */
	long long	 next_progress;
	char		**cause;
};

/* Reject anything but a plain relative path inside the archive root. */
static int
check_path(const char *name, char **cause)
{
	const char *p = name, *slash;
	size_t len;

	if (*name == '\0' || strlen(name) > 4000) {
		set_cause(cause, "archive member has an empty or too long name");
		return -1;
	}
	if (*name == '/') {
		set_cause(cause, "archive member '%s' has an absolute path", name);
		return -1;
	}
	for (;;) {
		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if ((len == 2 && p[0] == '.' && p[1] == '.')) {
			set_cause(cause, "archive member '%s' escapes the archive "
			    "root ('..')", name);
			return -1;
		}
		if (len == 0 || (len == 1 && p[0] == '.')) {
			set_cause(cause, "archive member '%s' has an empty or '.' "
			    "path component", name);
			return -1;
		}
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	return 0;
}

/* A member must not lie below a file member, and a file member must not
 * have members below it (`tree/a` a file, `tree/a/b` too): such an
 * archive could not be extracted, so it is refused when it is checked,
 * not when it is restored. */
static int
r_check_nesting(struct rctx *r, const char *name, int is_file)
{
	unsigned char key[16];
	size_t len = strlen(name);

	if (is_file) {
		path_key(name, len, key);
		if (hset_has(&r->dir_set, key)) {
			set_cause(r->cause, "archive member '%s' is a file, but "
			    "other members lie below it as in a folder", name);
			return -1;
		}
		hset_add(&r->file_set, key);
	}
	while (len > 0) {
		while (len > 0 && name[len - 1] != '/')
			len--;
		if (len == 0)
			break;
		len--;	/* the folder above, without its '/' */
		path_key(name, len, key);
		if (hset_has(&r->file_set, key)) {
			set_cause(r->cause, "archive member '%s' lies below "
			    "'%.*s', which is a file", name, (int)len, name);
			return -1;
		}
		if (hset_has(&r->dir_set, key))
			break;	/* and so is everything above it */
		hset_add(&r->dir_set, key);
	}
	return 0;
}

/* Decode one line "<hex>  <path>" of .nubo/checksums into r->listed. */
static int
r_checksum_line(struct rctx *r, char *line)
{
	unsigned char sum[32];
	char *path, *p, *q;
	int esc = 0, i;

	if (line[0] == '\\') {
		esc = 1;
		line++;
	}
	if (strlen(line) < 67 || line[64] != ' ' || line[65] != ' ')
		goto bad;
	for (i = 0; i < 32; i++) {
		unsigned hi, lo;
		char c1 = line[2 * i], c2 = line[2 * i + 1];

		if (!((c1 >= '0' && c1 <= '9') || (c1 >= 'a' && c1 <= 'f')) ||
		    !((c2 >= '0' && c2 <= '9') || (c2 >= 'a' && c2 <= 'f')))
			goto bad;
		hi = c1 <= '9' ? (unsigned)(c1 - '0') : (unsigned)(c1 - 'a' + 10);
		lo = c2 <= '9' ? (unsigned)(c2 - '0') : (unsigned)(c2 - 'a' + 10);
		sum[i] = (unsigned char)(hi << 4 | lo);
	}
	path = line + 66;
	if (esc) {
		for (p = q = path; *p != '\0'; p++) {
			if (*p == '\\') {
				if (p[1] == '\\')
					*q++ = '\\';
				else if (p[1] == 'n')
					*q++ = '\n';
				else
					goto bad;
				p++;
			} else
				*q++ = *p;
		}
		*q = '\0';
	}
	rvec_push(&r->listed, path, sum);
	return 0;
bad:
	set_cause(r->cause, "'%s' has a malformed line", CHECKSUMS_NAME);
	return -1;
}

static void
r_progress(struct rctx *r)
{
	long long done = r->info->compressed_bytes;

	if (r->o->progress == NULL || done < r->next_progress)
		return;
	r->next_progress = done + 4 * 1024 * 1024;
	r->o->progress(r->o->progress_arg, done, -1);
}

/* Stream one member's data: hash it and hand it to the sinks. */
static int
r_data(struct rctx *r, const char *name, int out_fd, int pgpipe,
    int is_dump, int is_checksums, struct archive *files, long long *bytes,
    unsigned char md[32])
{
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	struct buf line;
	la_ssize_t n;
	long long total = 0;
	int rc = -1;
	char *p, *nl;

	buf_init(&line, 8192);
	EVP_DigestInit_ex(mc, EVP_sha256(), NULL);
	for (;;) {
		n = archive_read_data(r->a, r->iobuf, NUBO_IO_CHUNK);
		if (n < 0) {
			set_cause(r->cause, "cannot read archive member '%s': %s",
			    name, archive_error_string(r->a));
			goto out;
		}
		if (n == 0)
			break;
		if (is_dump && total < 5 && (total + n < 5 ||
		    memcmp(r->iobuf, "PGDMP", 5) != 0)) {
			set_cause(r->cause, "'%s' is not a PostgreSQL custom-format "
			    "dump (no PGDMP header)", DUMP_NAME);
			goto out;
		}
		total += n;
		EVP_DigestUpdate(mc, r->iobuf, (size_t)n);
		if (out_fd >= 0 && util_write_all(out_fd, r->iobuf, (size_t)n) < 0) {
			set_cause(r->cause, "cannot write '%s': %s", name,
			    strerror(errno));
			goto out;
		}
		if (pgpipe >= 0 && util_write_all(pgpipe, r->iobuf, (size_t)n) < 0) {
			if (errno != EPIPE) {
				set_cause(r->cause, "cannot check '%s': %s", name,
				    strerror(errno));
				goto out;
			}
			pgpipe = -1;	/* pg_restore --list has what it needs */
		}
		if (r->sinking && r->o->sink->data(r->o->sink->arg, r->iobuf,
		    (size_t)n, r->cause) < 0)
			goto out;
		if (files != NULL && archive_write_data(files, r->iobuf,
		    (size_t)n) != n) {
			zout_fail(&r->fz, NULL, r->cause);
			goto out;
		}
		if (is_checksums) {
			char *end = (char *)r->iobuf + n;

			for (p = (char *)r->iobuf; p < end; p = nl + 1) {
				nl = memchr(p, '\n', (size_t)(end - p));
				if (buf_append(&line, p, (size_t)((nl ? nl : end) -
				    p)) < 0) {
					set_cause(r->cause, "'%s' has a line longer "
					    "than 8192 bytes", CHECKSUMS_NAME);
					goto out;
				}
				if (nl == NULL)
					break;
				if (r_checksum_line(r, (char *)buf_cstr(&line)) < 0)
					goto out;
				line.len = 0;
			}
		}
		r->info->compressed_bytes = archive_filter_bytes(r->a, -1);
		r_progress(r);
	}
	if (is_dump && total < 5) {
		set_cause(r->cause, "'%s' is not a PostgreSQL custom-format dump "
		    "(no PGDMP header)", DUMP_NAME);
		goto out;
	}
	if (is_checksums && line.len > 0) {
		set_cause(r->cause, "'%s' does not end with a newline",
		    CHECKSUMS_NAME);
		goto out;
	}
	EVP_DigestFinal_ex(mc, md, NULL);
	*bytes = total;
	rc = 0;
out:
	buf_release(&line);
	EVP_MD_CTX_free(mc);
	return rc;
}

/* Tell o->sink of member name (db/db.backup or under tree/) at its
 * header; a regular member's bytes then go to it too (r->sinking). */
static int
r_sink_start(struct rctx *r, const char *name, struct archive_entry *e,
    int type)
{
	const struct backup_member_sink *s = r->o->sink;

	if (s == NULL)
		return 0;
	if (s->start(s->arg, name, type, (int)(archive_entry_perm(e) & 07777),
	    (long long)archive_entry_mtime(e), archive_entry_size_is_set(e) ?
	    (long long)archive_entry_size(e) : 0, r->cause) < 0)
		return -1;
	r->sinking = type == AE_IFREG;
	return 0;
}

/* The end of a member r_sink_start() told of. */
static int
r_sink_end(struct rctx *r)
{
	if (!r->sinking)
		return 0;
	r->sinking = 0;
	return r->o->sink->end(r->o->sink->arg, r->cause);
}

/* Make the folders of tree_dir/rel (rel already checked) that are
 * missing, as 0750 and tree_uid's: a folder the archive names gets its
 * mode when its own member comes (r_extract_dir), one it only implies
 * keeps 0750, as umask 027 makes it for the app. */
static int
r_mkdirs(struct rctx *r, const char *rel)
{
	char *path = xasprintf("%s/%s", r->o->tree_dir, rel);
	char *s = path + strlen(r->o->tree_dir) + 1;
	int rc = -1, last;

	for (;;) {
		s += strcspn(s, "/");
		last = *s == '\0';
		*s = '\0';
		if (mkdir(path, 0750) == 0) {
			if (r->o->tree_uid != (uid_t)-1 && chown(path,
			    r->o->tree_uid, r->o->tree_gid) < 0) {
				set_cause(r->cause, "cannot chown '%s': %s",
				    path, strerror(errno));
				goto out;
			}
		} else if (errno != EEXIST) {
			set_cause(r->cause, "cannot create '%s': %s", path,
			    strerror(errno));
			goto out;
		}
		if (last)
			break;
		*s++ = '/';
	}
	rc = 0;
out:
	free(path);
	return rc;
}

/* Folder member tree/rel: made as r_mkdirs() does, with its own mode. */
static int
r_extract_dir(struct rctx *r, const char *rel, mode_t perm)
{
	char *path;
	int rc = 0;

	if (r_mkdirs(r, rel) < 0)
		return -1;
	path = xasprintf("%s/%s", r->o->tree_dir, rel);
	if (chmod(path, perm & 0777) < 0) {
		set_cause(r->cause, "cannot chmod '%s': %s", path,
		    strerror(errno));
		rc = -1;
	}
	free(path);
	return rc;
}

/* Regular member tree/rel: created (never there before) with the mode
 * it had when it was backed up and tree_uid as its owner. */
static int
r_extract_open(struct rctx *r, const char *rel, mode_t perm)
{
	char *path = xasprintf("%s/%s", r->o->tree_dir, rel), *slash;
	int fd = -1;

	slash = strrchr(rel, '/');
	if (slash != NULL) {
		char *parent = xstrndup(rel, (size_t)(slash - rel));
		int rc = r_mkdirs(r, parent);

		free(parent);
		if (rc < 0)
			goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd < 0) {
		set_cause(r->cause, errno == EEXIST ? "archive member 'tree/%s' "
		    "appears twice" : "cannot create 'tree/%s': %s", rel,
		    strerror(errno));
		goto out;
	}
	if ((r->o->tree_uid != (uid_t)-1 &&
	    fchown(fd, r->o->tree_uid, r->o->tree_gid) < 0) ||
	    fchmod(fd, perm & 0777) < 0) {
		set_cause(r->cause, "cannot chown or chmod '%s': %s", path,
		    strerror(errno));
		close(fd);
		fd = -1;
	}
out:
	free(path);
	return fd;
}

/* Start `pg_restore --list` reading the dump on a pipe; *wfd its stdin. */
static pid_t
r_pg_list_start(struct rctx *r, int *wfd, int *errfd)
{
	char *bin = strchr(r->o->pg_restore, '/') != NULL ?
	    xstrdup(r->o->pg_restore) : util_pg_tool(r->o->pg_restore);
	char *argv[] = { bin, "--list", NULL };
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		fatal("pipe: %s", strerror(errno));
	*errfd = memfd_create("pg_restore-stderr", MFD_CLOEXEC);
	pid = spawn(argv, p[0], -1, *errfd);
	free(bin);
	close(p[0]);
	if (pid < 0) {
		close(p[1]);
		set_cause(r->cause, "cannot run %s: %s", r->o->pg_restore,
		    strerror(errno));
		return -1;
	}
	*wfd = p[1];
	return pid;
}

static int
meta_number(json_t *m, const char *key, long long *out, char **cause)
{
	json_t *v = json_object_get(m, key);
	const char *s;

	if (v == NULL) {
		set_cause(cause, "'.metadata' lacks '%s'", key);
		return -1;
	}
	if (!json_is_string(v)) {
		set_cause(cause, "'.metadata': '%s' must be a string", key);
		return -1;
	}
	s = json_string_value(v);
	if (util_parse_int(s, 0, 1LL << 60, out) < 0) {
		set_cause(cause, "'.metadata': '%s' must be a decimal number in "
		    "a string, not '%.40s'", key, s);
		return -1;
	}
	return 0;
}

/* .metadata: a JSON object whose values are all strings (SPEC §3). */
static int
r_metadata(struct rctx *r, char **cause)
{
	struct backup_meta *m = &r->info->meta;
	json_error_t jerr;
	json_t *j, *v;
	const char *key, *s;
	int rc = -1;

	j = json_loadb(r->metadata.data ? r->metadata.data : "",
	    r->metadata.len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL || !json_is_object(j)) {
		set_cause(cause, "'.metadata' is not a JSON object%s%s",
		    j == NULL ? ": " : "", j == NULL ? jerr.text : "");
		goto out;
	}
	json_object_foreach(j, key, v) {
		if (!json_is_string(v)) {
			set_cause(cause, "'.metadata': '%s' must be a string", key);
			goto out;
		}
	}
	if (meta_number(j, "duration", &m->duration, cause) < 0 ||
	    meta_number(j, "dumpSize", &m->dump_size, cause) < 0 ||
	    meta_number(j, "databaseSize", &m->database_size, cause) < 0 ||
	    meta_number(j, "filesSize", &m->files_size, cause) < 0)
		goto out;
	if ((s = jsonx_str(j, "modelVersion")) == NULL) {
		set_cause(cause, "'.metadata' lacks 'modelVersion'");
		goto out;
	}
	if (strlen(s) > BACKUP_MODEL_VERSION_MAX) {
		set_cause(cause, "'.metadata': 'modelVersion' is longer than %d "
		    "characters", BACKUP_MODEL_VERSION_MAX);
		goto out;
	}
	snprintf(m->model_version, sizeof(m->model_version), "%s", s);
	if ((s = jsonx_str(j, "nuboFormat")) != NULL) {
		if (strcmp(s, "1") != 0) {
			set_cause(cause, "'.metadata': unsupported nuboFormat '%.20s'",
			    s);
			goto out;
		}
		m->nubo_format = 1;
	}
	rc = 0;
out:
	json_decref(j);
	return rc;
}

static int
r_files_open(struct rctx *r, char **cause)
{
	if (zout_open(&r->fz, r->o->files_fd, 6, 0, "the files archive",
	    cause) < 0)
		return -1;
	r->files = r->fz.a;
	return 0;
}

void
backup_read_opts_init(struct backup_read_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->dump_fd = -1;
	o->files_fd = -1;
	o->tree_uid = (uid_t)-1;
	o->tree_gid = (gid_t)-1;
}

int
backup_archive_read(backup_read_fn rd, void *ctx,
    const struct backup_read_opts *o, struct backup_info *info, char **cause)
{
	struct gzin g;
	struct rctx r;
	struct archive_entry *e;
	struct backup_info dummy;
	char *name = NULL;
	const char *raw, *rel;
	unsigned char md[32];
	long long bytes, max_entries;
	int ret, rc = -1, outfd, pgpipe = -1, pgerr = -1, type;
	size_t i, len;
	pid_t pglist = -1;

	if (info == NULL)
		info = &dummy;
	memset(info, 0, sizeof(*info));
	memset(&g, 0, sizeof(g));
	memset(&r, 0, sizeof(r));
	r.o = o;
	r.info = info;
	r.cause = cause;
	r.fz.pipe = r.fz.errfd = -1;
	r.fz.pid = -1;
	buf_init(&r.metadata, NUBO_METADATA_MAX);
	ignore_sigpipe();
	max_entries = o->max_entries > 0 ? o->max_entries :
	    NUBO_ARCHIVE_ENTRIES_MAX;

	g.rd = rd;
	g.ctx = ctx;
	g.in = xmalloc(NUBO_IO_CHUNK);
	g.max_ratio = o->max_ratio > 0 ? o->max_ratio : NUBO_ARCHIVE_RATIO_MAX;
	g.ratio_min = o->ratio_min_bytes > 0 ? o->ratio_min_bytes :
	    NUBO_ARCHIVE_RATIO_MIN_BYTES;
	if (inflateInit2(&g.z, 15 + 16) != Z_OK)
		fatal("inflateInit2 failed");
	r.iobuf = xmalloc(NUBO_IO_CHUNK);

	if (o->tree_dir != NULL && mkdir(o->tree_dir, 0750) < 0) {
		set_cause(cause, "cannot create '%s': %s", o->tree_dir,
		    strerror(errno));
		goto out;
	}
	if (o->tree_dir != NULL && o->tree_uid != (uid_t)-1 &&
	    chown(o->tree_dir, o->tree_uid, o->tree_gid) < 0) {
		set_cause(cause, "cannot chown '%s': %s", o->tree_dir,
		    strerror(errno));
		goto out;
	}
	if (o->files_fd >= 0 && r_files_open(&r, cause) < 0)
		goto out;

	gz_start(&g);
	r.a = archive_read_new();
	archive_read_support_format_tar(r.a);
	archive_read_support_format_gnutar(r.a);
	if (archive_read_open(r.a, &g, NULL, gz_read, NULL) != ARCHIVE_OK) {
		set_cause(cause, "%s", g.err ? g.err :
		    archive_error_string(r.a));
		goto out;
	}
	for (;;) {
		ret = archive_read_next_header(r.a, &e);
		if (ret == ARCHIVE_EOF)
			break;
		if (ret != ARCHIVE_OK && ret != ARCHIVE_WARN) {
			/* a damaged tar header in intact gzip data */
			if (g.err != NULL)
				set_cause(cause, "%s", g.err);
			else
				set_cause(cause, "archive is corrupt: %s",
				    archive_error_string(r.a) ?
				    archive_error_string(r.a) : "bad header");
			goto out;
		}
		if (++info->entries > max_entries) {
			set_cause(cause, "archive has more than %lld members",
			    max_entries);
			goto out;
		}
		raw = archive_entry_pathname(e);
		if (raw == NULL) {
			set_cause(cause, "archive member has no name");
			goto out;
		}
		while (raw[0] == '.' && raw[1] == '/')
			raw += 2;	/* `tar czf x.tar.gz ./…` style */
		if (*raw == '\0' || strcmp(raw, ".") == 0)
			continue;
		free(name);
		name = xstrdup(raw);
		len = strlen(name);
		type = (int)archive_entry_filetype(e);
		if (len > 1 && name[len - 1] == '/')
			name[--len] = '\0';
		if (check_path(name, cause) < 0)
			goto out;
		if (archive_entry_hardlink(e) != NULL) {
			set_cause(cause, "archive member '%s' is a hard link", name);
			goto out;
		}
		if (type == AE_IFLNK) {
			set_cause(cause, "archive member '%s' is a symbolic link",
			    name);
			goto out;
		}
		if (type != AE_IFREG && type != AE_IFDIR) {
			set_cause(cause, "archive member '%s' is a device, fifo or "
			    "socket", name);
			goto out;
		}
		if (r.seen_checksums) {
			set_cause(cause, "'%s' must be the last member of the "
			    "archive", CHECKSUMS_NAME);
			goto out;
		}
		rvec_push(&r.paths, name, NULL);
		if (r_check_nesting(&r, name, type == AE_IFREG) < 0)
			goto out;
		if (type == AE_IFREG && archive_entry_sparse_count(e) > 0) {
			/* decided (ARCHITECTURE, Backups): a sparse member's
			 * holes would be written as zeros, so its size on
			 * disk is not what the archive's size suggests */
			set_cause(cause, "archive member '%s' is a sparse file "
			    "(%lld bytes declared); sparse members are not "
			    "accepted", name, (long long)archive_entry_size(e));
			goto out;
		}
		if (type == AE_IFREG) {
			long long sz = archive_entry_size_is_set(e) ?
			    (long long)archive_entry_size(e) : 0;

			info->declared_bytes += sz > 0 ? sz : 0;
			if (o->max_bytes > 0 && info->declared_bytes >
			    o->max_bytes) {
				set_cause(cause, "not enough space: the archive's "
				    "members declare more than %lld bytes (at "
				    "'%s'), the room there is", o->max_bytes,
				    name);
				goto out;
			}
		}

		if (type == AE_IFDIR) {
			if (strcmp(name, "db") != 0 && strcmp(name, "tree") != 0 &&
			    strcmp(name, ".nubo") != 0 &&
			    strncmp(name, "tree/", 5) != 0) {
				set_cause(cause, "unexpected archive member '%s/'",
				    name);
				goto out;
			}
			if (strncmp(name, "tree/", 5) == 0 && o->tree_dir != NULL) {
				if (r_extract_dir(&r, name + 5,
				    archive_entry_perm(e)) < 0)
					goto out;
			}
			if (strncmp(name, "tree", 4) == 0 && r.files != NULL) {
				archive_entry_set_pathname(e, name);
				if (header_write(r.files, e) != 0) {
					zout_fail(&r.fz, name, cause);
					goto out;
				}
			}
			if (strncmp(name, "tree/", 5) == 0 &&
			    r_sink_start(&r, name, e, AE_IFDIR) < 0)
				goto out;
			continue;
		}

		if (strcmp(name, ".metadata") == 0) {
			la_ssize_t n;

			while ((n = archive_read_data(r.a, r.iobuf,
			    NUBO_IO_CHUNK)) > 0)
				if (buf_append(&r.metadata, r.iobuf, (size_t)n) < 0) {
					set_cause(cause, "'.metadata' is larger than "
					    "%d bytes", NUBO_METADATA_MAX);
					goto out;
				}
			if (n < 0) {
				set_cause(cause, "cannot read archive member "
				    "'.metadata': %s", archive_error_string(r.a));
				goto out;
			}
			if (info->has_metadata) {
				set_cause(cause, "archive member '.metadata' "
				    "appears twice");
				goto out;
			}
			info->has_metadata = 1;
			continue;
		}
		if (strcmp(name, DUMP_NAME) == 0) {
			if (info->has_db) {
				set_cause(cause, "archive member '%s' appears "
				    "twice", DUMP_NAME);
				goto out;
			}
			outfd = o->dump_fd;
			if (o->pg_restore != NULL &&
			    (pglist = r_pg_list_start(&r, &pgpipe, &pgerr)) < 0)
				goto out;
			if (o->pg_restore == NULL && o->dump_start != NULL &&
			    (pgpipe = o->dump_start(o->dump_done_arg,
			    (long long)archive_entry_size(e))) >= 0)
				outfd = -1;	/* streamed, not spooled */
			ret = r_sink_start(&r, name, e, AE_IFREG);
			if (ret == 0)
				ret = r_data(&r, name, outfd, pgpipe, 1, 0, NULL,
				    &bytes, md);
			if (ret == 0)
				ret = r_sink_end(&r);
			if (pglist < 0 && pgpipe >= 0) {
				close(pgpipe);	/* EOF to the dump's reader */
				pgpipe = -1;
			}
			if (ret < 0)
				goto out;
			if (pglist > 0) {
				close(pgpipe);
				pgpipe = -1;
				ret = wait_child(pglist);
				pglist = -1;
				if (ret != 0) {
					char *m = util_fd_tool_error(pgerr,
					    -1);

					set_cause(cause, "'%s' is not a valid "
					    "PostgreSQL custom-format dump: %s",
					    DUMP_NAME, *m ? m : "pg_restore "
					    "--list failed");
					free(m);
					goto out;
				}
			}
			info->has_db = 1;
			info->dump_bytes = bytes;
			rvec_push(&r.sums, name, md);
			if (o->dump_done != NULL)
				o->dump_done(o->dump_done_arg);
			continue;
		}
		if (strcmp(name, CHECKSUMS_NAME) == 0) {
			if (r_data(&r, name, -1, -1, 0, 1, NULL, &bytes, md) < 0)
				goto out;
			r.seen_checksums = 1;
			continue;
		}
		if (strncmp(name, "tree/", 5) != 0) {
			set_cause(cause, "unexpected archive member '%s'", name);
			goto out;
		}
		rel = name + 5;
		outfd = -1;
		if (o->tree_dir != NULL &&
		    (outfd = r_extract_open(&r, rel,
		    archive_entry_perm(e))) < 0)
			goto out;
		if (r.files != NULL) {
			archive_entry_set_pathname(e, name);
			if (header_write(r.files, e) != 0) {
				zout_fail(&r.fz, name, cause);
				if (outfd >= 0)
					close(outfd);
				goto out;
			}
		}
		ret = r_sink_start(&r, name, e, AE_IFREG);
		if (ret == 0)
			ret = r_data(&r, name, outfd, -1, 0, 0, r.files, &bytes,
			    md);
		if (ret == 0)
			ret = r_sink_end(&r);
		if (outfd >= 0) {
			struct timespec ts[2] = {
				{ archive_entry_mtime(e), 0 },
				{ archive_entry_mtime(e), 0 } };

			futimens(outfd, ts);
			if (close(outfd) < 0 && ret == 0) {
				set_cause(cause, "cannot write 'tree/%s': %s", rel,
				    strerror(errno));
				ret = -1;
			}
		}
		if (ret < 0)
			goto out;
		info->files++;
		info->files_bytes += bytes;
		rvec_push(&r.sums, name, md);
	}
	/* libarchive stops at the end-of-archive blocks: read the gzip
	 * stream to its end so the last CRC and length are checked too */
	{
		const void *p;
		la_ssize_t n;

		while ((n = gz_read(r.a, &g, &p)) > 0)
			;
		if (n < 0) {
			set_cause(cause, "%s", g.err);
			goto out;
		}
	}
	info->compressed_bytes = g.total_in;
	info->expanded_bytes = g.total_out;

	/* duplicates: the same path twice, whatever its type */
	if (r.paths.n > 0)
		qsort(r.paths.v, r.paths.n, sizeof(struct rec), rec_cmp_path);
	for (i = 1; i < r.paths.n; i++)
		if (memcmp(r.paths.v[i - 1].path, r.paths.v[i].path, 16) == 0) {
			set_cause(cause, "archive has duplicate members");
			goto out;
		}
	if (!info->has_db && !(o->allow_files_only && info->files > 0 &&
	    !info->has_metadata)) {
		set_cause(cause, "archive has no '%s'", DUMP_NAME);
		goto out;
	}
	if (info->has_db && !info->has_metadata) {
		set_cause(cause, "archive has no '.metadata'");
		goto out;
	}
	if (info->has_metadata) {
		if (r_metadata(&r, cause) < 0)
			goto out;
		if (info->meta.dump_size != info->dump_bytes) {
			set_cause(cause, "'.metadata': dumpSize is %lld but '%s' "
			    "has %lld bytes", info->meta.dump_size, DUMP_NAME,
			    info->dump_bytes);
			goto out;
		}
		/* informational in Mendix archives (some are made with
		 * `du -sb`, which counts folders too): a warning only */
		if (info->meta.files_size != info->files_bytes)
			snprintf(info->warning, sizeof(info->warning),
			    "'.metadata' says filesSize %lld but tree/ holds "
			    "%lld bytes", info->meta.files_size,
			    info->files_bytes);
	}
	if (r.seen_checksums) {
		if (r.sums.n > 0)
			qsort(r.sums.v, r.sums.n, sizeof(struct rec), rec_cmp);
		if (r.listed.n > 0)
			qsort(r.listed.v, r.listed.n, sizeof(struct rec),
			    rec_cmp);
		if (r.sums.n != r.listed.n) {
			set_cause(cause, "'%s' lists %zu files but the archive "
			    "holds %zu", CHECKSUMS_NAME, r.listed.n, r.sums.n);
			goto out;
		}
		for (i = 0; i < r.sums.n; i++)
			if (memcmp(&r.sums.v[i], &r.listed.v[i],
			    sizeof(struct rec)) != 0) {
				set_cause(cause, "checksum mismatch: an archive "
				    "member differs from '%s'", CHECKSUMS_NAME);
				goto out;
			}
		info->has_checksums = 1;
	} else if (info->meta.nubo_format) {
		set_cause(cause, "archive made by nubo lacks '%s' (truncated?)",
		    CHECKSUMS_NAME);
		goto out;
	}
	if (r.files != NULL && zout_close(&r.fz, cause) < 0)
		goto out;
	rc = 0;
out:
	if (pgpipe >= 0)
		close(pgpipe);
	if (pglist > 0)
		wait_child(pglist);
	if (pgerr >= 0)
		close(pgerr);
	if (r.a != NULL)
		archive_read_free(r.a);
	zout_free(&r.fz);
	gz_stop(&g);
	inflateEnd(&g.z);
	free(g.in);
	free(g.err);
	free(r.iobuf);
	free(r.paths.v);
	free(r.sums.v);
	free(r.listed.v);
	free(r.file_set.k);
	free(r.dir_set.k);
	buf_release(&r.metadata);
	free(name);
	if (rc < 0 && cause != NULL && *cause == NULL)
		*cause = xstrdup("archive is corrupt");
	return rc;
}

static ssize_t
fd_read(void *ctx, void *buf, size_t len)
{
	int fd = *(int *)ctx;
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

int
backup_archive_read_fd(int fd, const struct backup_read_opts *o,
    struct backup_info *info, char **cause)
{
	return backup_archive_read(fd_read, &fd, o, info, cause);
}
