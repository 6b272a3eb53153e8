/* Signed-URL transfers of the `nubo backups` commands: bytes go straight
 * between the CLI and the node (never through the portal), in fixed-size
 * chunks, with a progress bar when stderr is a terminal. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "backups-util.h"
#include "buf.h"
#include "cli.h"
#include "util.h"
#include "xmalloc.h"

char *
backups_path(const char *app, const char *env, const char *rest)
{
	char *a = api_escape(app), *e = api_escape(env);
	char *p = xasprintf("/apps/%s/environments/%s%s", a, e, rest);

	free(a);
	free(e);
	return p;
}

struct xfer {
	int		 tty;
	const char	*what;
	curl_off_t	 base;		/* bytes already there (resume) */
	double		 last;
	FILE		*f;
	struct buf	 err;		/* body of an error answer */
	long		 status;
	CURL		*c;
};

static int
xfer_progress(void *p, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
	struct xfer *x = p;
	curl_off_t total = ultotal ? ultotal : dltotal + x->base;
	curl_off_t now = ultotal ? ulnow : dlnow + x->base;
	double t;

	if (!x->tty)
		return 0;
	t = util_mono();
	if (t - x->last < 0.2 && !(total && now == total))
		return 0;
	x->last = t;
	if (total > 0)
		fprintf(stderr, "\r\033[K%s: %3d%% %lld / %lld MB", x->what,
		    (int)(now * 100 / total), (long long)(now >> 20),
		    (long long)(total >> 20));
	else
		fprintf(stderr, "\r\033[K%s: %lld MB", x->what,
		    (long long)(now >> 20));
	return 0;
}

static size_t
xfer_write(char *data, size_t size, size_t n, void *p)
{
	struct xfer *x = p;

	if (x->status == 0)
		curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->status >= 300) {
		buf_append(&x->err, data, size * n);
		return size * n;
	}
	return fwrite(data, size, n, x->f) == n ? size * n : 0;
}

static void
xfer_error(struct xfer *x)
{
	json_t *j = json_loadb(x->err.data ? x->err.data : "", x->err.len, 0,
	    NULL);
	const char *m = jsonx_str(json_object_get(j, "error"), "message");

	out_fail("%s failed (HTTP %ld)%s%s", x->what, x->status, m ? ": " : "",
	    m ? m : "");
	json_decref(j);
}

/* sha256 (hex) of the first len bytes of file; -1 when it cannot be read
 * whole. */
static int
prefix_sha256(const char *file, long long len, char hex[65])
{
	unsigned char md[32], *buf = xmalloc(256 * 1024);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	FILE *f = fopen(file, "rb");
	long long off = 0;
	size_t n;

	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	while (f != NULL && off < len && (n = fread(buf, 1, len - off <
	    256 * 1024 ? (size_t)(len - off) : 256 * 1024, f)) > 0) {
		EVP_DigestUpdate(c, buf, n);
		off += (long long)n;
	}
	EVP_DigestFinal_ex(c, md, NULL);
	EVP_MD_CTX_free(c);
	free(buf);
	if (f != NULL)
		fclose(f);
	util_hex(md, 32, hex);
	return off == len ? 0 : -1;
}

int
backups_get(const char *url, const char *file, int resume)
{
	struct xfer x;
	struct stat st;
	CURLcode rc;
	char range[64];
	struct curl_slist *hdrs = NULL;
	int ret = -1;

	memset(&x, 0, sizeof x);
	x.tty = isatty(STDERR_FILENO);
	x.what = "download";
	buf_init(&x.err, 64 * 1024);
	if (resume && stat(file, &st) == 0 && st.st_size > 0)
		x.base = st.st_size;
	x.f = fopen(file, x.base ? "ab" : "wb");
	if (x.f == NULL) {
		out_fail("cannot write '%s': %s", file, strerror(errno));
		goto out;
	}
	x.c = curl_easy_init();
	api_curl_url(x.c, url);
	curl_easy_setopt(x.c, CURLOPT_WRITEFUNCTION, xfer_write);
	curl_easy_setopt(x.c, CURLOPT_WRITEDATA, &x);
	curl_easy_setopt(x.c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(x.c, CURLOPT_XFERINFOFUNCTION, xfer_progress);
	curl_easy_setopt(x.c, CURLOPT_XFERINFODATA, &x);
	curl_easy_setopt(x.c, CURLOPT_BUFFERSIZE, 256L * 1024);
	if (x.base) {
		char hdr[96], hex[65];

		snprintf(range, sizeof range, "%lld-", (long long)x.base);
		curl_easy_setopt(x.c, CURLOPT_RANGE, range);
		/* the node checks the bytes we have before it sends more */
		if (prefix_sha256(file, x.base, hex) == -1) {
			out_fail("cannot read '%s': %s", file, strerror(errno));
			goto out;
		}
		snprintf(hdr, sizeof hdr, "X-Nubo-Prefix-Sha256: %s", hex);
		hdrs = curl_slist_append(hdrs, hdr);
		curl_easy_setopt(x.c, CURLOPT_HTTPHEADER, hdrs);
	}
	rc = curl_easy_perform(x.c);
	curl_easy_getinfo(x.c, CURLINFO_RESPONSE_CODE, &x.status);
	if (x.tty)
		fputc('\n', stderr);
	if (fclose(x.f) != 0 && rc == CURLE_OK)
		rc = CURLE_WRITE_ERROR;
	x.f = NULL;
	if (rc != CURLE_OK) {
		out_fail("download failed: %s", curl_easy_strerror(rc));
		goto out;
	}
	if (x.status == 416 && x.base) {
		ret = 200;	/* already complete */
		goto out;
	}
	if (x.status == 412 && x.base) {
		out_fail("'%s' is not the start of this archive: its %lld "
		    "bytes differ from the snapshot's (the node checked "
		    "them); remove it or download without --continue", file,
		    (long long)x.base);
		goto out;
	}
	if (x.status >= 300) {
		xfer_error(&x);
		goto out;
	}
	if (x.base && x.status != 206) {
		out_fail("the node ignored the range: download again without "
		    "--continue");
		goto out;
	}
	ret = (int)x.status;
out:
	if (x.f)
		fclose(x.f);
	if (x.c)
		curl_easy_cleanup(x.c);
	curl_slist_free_all(hdrs);
	buf_release(&x.err);
	return ret;
}

static size_t
body_write(char *data, size_t size, size_t n, void *p)
{
	buf_append(p, data, size * n);
	return size * n;
}

int
backups_put(const char *url, const char *file, json_t **body)
{
	struct xfer x;
	struct stat st;
	struct curl_slist *h = NULL;
	CURLcode rc;
	int ret = -1;

	*body = NULL;
	memset(&x, 0, sizeof x);
	x.tty = isatty(STDERR_FILENO);
	x.what = "upload";
	buf_init(&x.err, 1024 * 1024);
	x.f = fopen(file, "rb");
	if (x.f == NULL || fstat(fileno(x.f), &st) == -1) {
		out_fail("cannot read '%s': %s", file, strerror(errno));
		goto out;
	}
	x.c = curl_easy_init();
	h = curl_slist_append(h, "Content-Type: application/gzip");
	h = curl_slist_append(h, "Expect:");
	api_curl_url(x.c, url);
	curl_easy_setopt(x.c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(x.c, CURLOPT_READDATA, x.f);
	curl_easy_setopt(x.c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
	curl_easy_setopt(x.c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(x.c, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(x.c, CURLOPT_WRITEDATA, &x.err);
	curl_easy_setopt(x.c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(x.c, CURLOPT_XFERINFOFUNCTION, xfer_progress);
	curl_easy_setopt(x.c, CURLOPT_XFERINFODATA, &x);
	curl_easy_setopt(x.c, CURLOPT_UPLOAD_BUFFERSIZE, 256L * 1024);
	rc = curl_easy_perform(x.c);
	curl_easy_getinfo(x.c, CURLINFO_RESPONSE_CODE, &x.status);
	if (x.tty)
		fputc('\n', stderr);
	if (rc != CURLE_OK) {
		out_fail("upload failed: %s", curl_easy_strerror(rc));
		goto out;
	}
	if (x.status >= 300) {
		xfer_error(&x);
		goto out;
	}
	*body = json_loadb(x.err.data ? x.err.data : "", x.err.len, 0, NULL);
	ret = (int)x.status;
out:
	if (x.f)
		fclose(x.f);
	if (x.c)
		curl_easy_cleanup(x.c);
	curl_slist_free_all(h);
	buf_release(&x.err);
	return ret;
}

void
backups_copy_words(json_t *snap)
{
	json_t *c;
	size_t i;
	char *out = xstrdup(""), *next;
	const char *state;

	json_array_foreach(json_object_get(snap, "copies"), i, c) {
		state = jsonx_str(c, "state") ? jsonx_str(c, "state") : "?";
		if (strcmp(state, "completed") == 0)
			next = xasprintf("%s%s%s", out, *out ? ", " : "",
			    jsonx_str(c, "node"));
		else
			next = xasprintf("%s%s%s (%s)", out, *out ? ", " : "",
			    jsonx_str(c, "node"), state);
		free(out);
		out = next;
	}
	json_object_set_new(snap, "copy", json_string(*out ? out : "-"));
	free(out);
}
