/* Uploads and downloads through signed URLs, with progress. */
#include "transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "buf.h"
#include "cli.h"
#include "nubo_limits.h"
#include "util.h"
#include "xmalloc.h"

#define TRANSFER_RESPONSE_MAX (1024 * 1024)

struct progress {
	const char	*what;
	long long	 total;
	long long	 done;
	long long	 base;		/* resumed from */
	int		 tty;
	int		 last_pct;
	double		 started;
	double		 last_draw;
};

static void
progress_init(struct progress *p, const char *what, long long total)
{
	memset(p, 0, sizeof *p);
	p->what = what;
	p->total = total;
	p->tty = isatty(STDERR_FILENO);
	p->last_pct = -1;
	p->started = p->last_draw = util_mono();
}

/* Draw the bar (terminal, at most 10 times a second) or a line per 10%. */
static void
progress_show(struct progress *p, int final)
{
	double t = util_mono(), el = t - p->started;
	double rate = el > 0 ? (p->done - p->base) / el : 0;
	int pct = p->total > 0 ? (int)(p->done * 100 / p->total) : 0;
	char done[32], total[32], speed[32], bar[31];
	int i, fill;

	if (pct > 100)
		pct = 100;
	util_human_bytes(p->done, done, sizeof done);
	util_human_bytes(p->total, total, sizeof total);
	util_human_bytes((long long)rate, speed, sizeof speed);
	if (p->tty) {
		if (!final && t - p->last_draw < 0.1)
			return;
		p->last_draw = t;
		fill = pct * 30 / 100;
		for (i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : ' ';
		bar[30] = '\0';
		fprintf(stderr, "\r%s [%s] %3d%% %s / %s  %s/s", p->what, bar,
		    pct, done, total, speed);
		if (!final && rate > 0 && p->total > p->done)
			fprintf(stderr, "  ETA %.0fs  ",
			    (p->total - p->done) / rate);
		else
			fprintf(stderr, "            ");
		if (final)
			fputc('\n', stderr);
		return;
	}
	/* a line per 10%, and the last one unless it was just printed */
	if (pct / 10 != p->last_pct / 10 || (final && pct != p->last_pct)) {
		p->last_pct = pct;
		fprintf(stderr, "%s: %d%% (%s of %s, %s/s)\n", p->what, pct, done,
		    total, speed);
	}
}

struct up {
	int				 fd;
	struct progress			 prog;
	int				 err;
};

/* The file's sha256, computed by a thread of its own while curl sends it,
 * so that sending never waits for hashing. */
struct hasher {
	int				 fd;
	long long			 size;
	unsigned char			 digest[EVP_MAX_MD_SIZE];
	int				 err;	/* errno, or 0 */
};

static void *
hash_file(void *arg)
{
	struct hasher *hs = arg;
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	char *buf = xmalloc(NUBO_IO_CHUNK);
	long long off = 0;
	unsigned dlen = 0;
	ssize_t n;

	if (sha == NULL || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1)
		hs->err = ENOMEM;
	while (hs->err == 0 && off < hs->size) {
		n = pread(hs->fd, buf, NUBO_IO_CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			hs->err = n == 0 ? EIO : errno;	/* 0: it shrank */
			break;
		}
		EVP_DigestUpdate(sha, buf, (size_t)n);
		off += n;
	}
	if (hs->err == 0)
		EVP_DigestFinal_ex(sha, hs->digest, &dlen);
	EVP_MD_CTX_free(sha);
	free(buf);
	return NULL;
}

static size_t
up_read(char *buf, size_t size, size_t n, void *cls)
{
	struct up *u = cls;
	ssize_t got;

	do
		got = read(u->fd, buf, size * n);
	while (got < 0 && errno == EINTR);
	if (got < 0) {
		u->err = errno;
		return CURL_READFUNC_ABORT;
	}
	u->prog.done += got;
	progress_show(&u->prog, 0);
	return (size_t)got;
}

static size_t
on_body(char *data, size_t size, size_t n, void *cls)
{
	return buf_append(cls, data, size * n) == 0 ? size * n : 0;
}

int
transfer_upload(const char *url, const char *method, const char *file,
    const char *what, json_t **resp, char sha[65])
{
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *h = NULL;
	struct hasher hs;
	pthread_t hasher;
	int hashing = 0;
	struct buf body;
	struct stat st;
	struct up u;
	long status = -1;
	CURL *c = NULL;
	CURLcode cr;

	*resp = NULL;
	memset(&u, 0, sizeof u);
	buf_init(&body, TRANSFER_RESPONSE_MAX);
	if ((u.fd = open(file, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(u.fd, &st) == -1) {
		out_fail("cannot read '%s': %s", file, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		out_fail("'%s' is not a regular file", file);
		goto out;
	}
	hs = (struct hasher){ .fd = u.fd, .size = (long long)st.st_size };
	if ((errno = pthread_create(&hasher, NULL, hash_file, &hs)) != 0) {
		out_fail("cannot hash '%s': %s", file, strerror(errno));
		goto out;
	}
	hashing = 1;
	progress_init(&u.prog, what, (long long)st.st_size);
	c = curl_easy_init();
	h = curl_slist_append(h, "Content-Type: application/octet-stream");
	/* no "Expect: 100-continue": curl would wait up to a second for a
	 * 100 that libmicrohttpd does not send before the handler runs */
	h = curl_slist_append(h, "Expect:");
	api_curl_url(c, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, up_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &u);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, (long)CURL_MAX_READ_SIZE);
	curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
	cr = curl_easy_perform(c);
	if (cr != CURLE_OK) {
		if (u.prog.tty)
			fputc('\n', stderr);
		if (u.err)
			out_fail("cannot read '%s': %s", file, strerror(u.err));
		else
			out_fail("upload failed: %s", errbuf[0] ? errbuf :
			    curl_easy_strerror(cr));
		goto out;
	}
	progress_show(&u.prog, 1);
	pthread_join(hasher, NULL);
	hashing = 0;
	if (hs.err != 0) {
		out_fail("cannot read '%s': %s", file, strerror(hs.err));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	util_hex(hs.digest, 32, sha);
	if (body.len)
		*resp = json_loadb(body.data, body.len, 0, NULL);
out:
	if (hashing)
		pthread_join(hasher, NULL);
	if (u.fd != -1)
		close(u.fd);
	curl_slist_free_all(h);
	if (c)
		curl_easy_cleanup(c);
	buf_release(&body);
	return (int)status;
}

struct down {
	int				 fd;
	EVP_MD_CTX			*sha;
	struct progress			 prog;
	int				 err;
	long				 status;
	long long			 have;	/* resumed from */
	CURL				*c;
	struct buf			 errbody;
};

static size_t
down_write(char *data, size_t size, size_t n, void *cls)
{
	struct down *d = cls;
	size_t len = size * n, left = len;

	if (d->status == 0) {
		curl_easy_getinfo(d->c, CURLINFO_RESPONSE_CODE, &d->status);
		if (d->status == 200 && d->have > 0) {
			/* the server sent it all again: start over */
			if (ftruncate(d->fd, 0) == -1 ||
			    lseek(d->fd, 0, SEEK_SET) != 0) {
				d->err = errno;
				return 0;
			}
			EVP_DigestInit_ex(d->sha, EVP_sha256(), NULL);
			d->prog.done = d->prog.base = 0;
			d->have = 0;
		}
	}
	if (d->status >= 300) {
		buf_append(&d->errbody, data, len);
		return len;
	}
	EVP_DigestUpdate(d->sha, data, len);
	while (left > 0) {
		ssize_t w = write(d->fd, data, left);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			d->err = errno;
			return 0;
		}
		data += w;
		left -= (size_t)w;
	}
	d->prog.done += (long long)len;
	progress_show(&d->prog, 0);
	return len;
}

/* Hash what an earlier attempt left in fd; its length. */
static long long
hash_existing(int fd, EVP_MD_CTX *sha)
{
	unsigned char *buf = xmalloc(NUBO_IO_CHUNK);
	long long total = 0;
	ssize_t n;

	while ((n = read(fd, buf, NUBO_IO_CHUNK)) > 0) {
		EVP_DigestUpdate(sha, buf, (size_t)n);
		total += n;
	}
	free(buf);
	return n < 0 ? -1 : total;
}

int
transfer_download(const char *url, const char *dest, long long size,
    const char *sha_expected, const char *what)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	char errbuf[CURL_ERROR_SIZE] = "", sha[65];
	unsigned dlen = 0;
	char *part = xasprintf("%s.part", dest);
	long long have = 0;
	struct down d;
	CURLcode cr;
	int rc = CLI_FAILED;

	memset(&d, 0, sizeof d);
	buf_init(&d.errbody, TRANSFER_RESPONSE_MAX);
	d.sha = EVP_MD_CTX_new();
	EVP_DigestInit_ex(d.sha, EVP_sha256(), NULL);
	if ((d.fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) == -1) {
		out_fail("cannot write '%s': %s", part, strerror(errno));
		goto out;
	}
	have = hash_existing(d.fd, d.sha);
	if (have < 0 || (size >= 0 && have > size)) {
		/* unreadable or longer than the package: start again */
		if (ftruncate(d.fd, 0) == -1 || lseek(d.fd, 0, SEEK_SET) != 0) {
			out_fail("cannot write '%s': %s", part, strerror(errno));
			goto out;
		}
		EVP_DigestInit_ex(d.sha, EVP_sha256(), NULL);
		have = 0;
	}
	progress_init(&d.prog, what, size);
	d.prog.done = d.prog.base = d.have = have;
	if (have > 0 && !d.prog.tty)
		fprintf(stderr, "%s: resuming at byte %lld\n", what, have);
	d.c = curl_easy_init();
	api_curl_url(d.c, url);
	curl_easy_setopt(d.c, CURLOPT_WRITEFUNCTION, down_write);
	curl_easy_setopt(d.c, CURLOPT_WRITEDATA, &d);
	curl_easy_setopt(d.c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(d.c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(d.c, CURLOPT_BUFFERSIZE, (long)CURL_MAX_READ_SIZE);
	if (have > 0 && have < size)
		curl_easy_setopt(d.c, CURLOPT_RESUME_FROM_LARGE,
		    (curl_off_t)have);
	if (have == size && size > 0) {
		cr = CURLE_OK;		/* already complete: just check it */
		d.status = 200;
	} else {
		cr = curl_easy_perform(d.c);
		curl_easy_getinfo(d.c, CURLINFO_RESPONSE_CODE, &d.status);
	}
	if (cr != CURLE_OK) {
		if (d.prog.tty)
			fputc('\n', stderr);
		if (d.err)
			out_fail("cannot write '%s': %s", part, strerror(d.err));
		else
			out_fail("download failed (run the command again to "
			    "resume): %s", errbuf[0] ? errbuf :
			    curl_easy_strerror(cr));
		goto out;
	}
	if (d.status >= 300) {
		json_t *j = json_loadb(d.errbody.data ? d.errbody.data : "",
		    d.errbody.len, 0, NULL);
		const char *msg = jsonx_str(json_object_get(j, "error"),
		    "message");

		if (d.prog.tty)
			fputc('\n', stderr);
		out_fail("download failed: HTTP %ld%s%s", d.status,
		    msg ? ": " : "", msg ? msg : "");
		json_decref(j);
		goto out;
	}
	progress_show(&d.prog, 1);
	if (fsync(d.fd) == -1) {
		out_fail("cannot write '%s': %s", part, strerror(errno));
		goto out;
	}
	EVP_DigestFinal_ex(d.sha, digest, &dlen);
	util_hex(digest, 32, sha);
	if (sha_expected != NULL && strcmp(sha, sha_expected) != 0) {
		out_fail("download of '%s' is corrupt: sha256 %s, expected %s "
		    "(removed)", dest, sha, sha_expected);
		unlink(part);
		goto out;
	}
	if (util_rename_sync(part, dest) == -1) {
		out_fail("cannot rename '%s' to '%s': %s", part, dest,
		    strerror(errno));
		goto out;
	}
	rc = CLI_OK;
out:
	if (d.fd != -1)
		close(d.fd);
	if (d.sha != NULL)
		EVP_MD_CTX_free(d.sha);
	if (d.c)
		curl_easy_cleanup(d.c);
	buf_release(&d.errbody);
	free(part);
	return rc;
}
