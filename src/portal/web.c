/* The portal's pages (SPEC: the Developer Portal in a browser): GET / and
 * the files of web/ built into nubod, each served as is or gzip-compressed
 * when the browser accepts it, with a strong ETag per representation
 * (304 on If-None-Match), and the page's security headers: a strict
 * Content-Security-Policy (scripts and styles of this origin only, no
 * inline script, never framed), nosniff, no referrer. The pages talk to
 * /api/v1 only (docs/ARCHITECTURE.md, *Web portal*). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "log.h"
#include "portal.h"
#include "store.h"
#include "util.h"
#include "web.h"
#include "xmalloc.h"

struct web_file {
	const struct web_asset	*asset;
	const unsigned char	*data;		/* index.html: versioned */
	size_t			 len;
	const char		*ctype;
	char			 etag[40];	/* "\"<32 hex>\"" */
	char			 etag_gz[44];	/* "\"<32 hex>-gz\"" */
	unsigned char		*gz;		/* NULL: not worth it */
	size_t			 gz_len;
};

static struct web_file *web_files;
static pthread_once_t web_once = PTHREAD_ONCE_INIT;
/* The assets' version (a digest of them all): index.html names the files
 * under /v/<version>/, which are cached for a year (immutable), so that a
 * warm load asks for index.html alone; another nubod has another
 * version, and its index.html names other URLs. */
static char web_version[17];

/* index.html's bytes with every "/@V@/" made "/v/<version>/" (new). */
static unsigned char *
web_versioned(const unsigned char *data, size_t len, size_t *out_len)
{
	struct buf b;
	size_t i = 0;

	buf_init(&b, 0);
	while (i < len) {
		if (len - i >= 5 && memcmp(data + i, "/@V@/", 5) == 0) {
			buf_printf(&b, "/v/%s/", web_version);
			i += 5;
		} else {
			buf_append(&b, data + i, 1);
			i++;
		}
	}
	*out_len = b.len;
	return (unsigned char *)buf_detach(&b);
}

static const char *
web_ctype(const char *path)
{
	static const struct { const char *ext, *ctype; } types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".json", "application/json" },
		{ ".txt", "text/plain; charset=utf-8" },
	};
	const char *dot = strrchr(path, '.');
	size_t i;

	for (i = 0; dot && i < sizeof types / sizeof types[0]; i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].ctype;
	return "application/octet-stream";
}

/* gzip of data (zlib, level 9); NULL when it would not be smaller. */
static unsigned char *
web_gzip(const unsigned char *data, size_t len, size_t *out_len)
{
	z_stream z;
	unsigned char *out;
	size_t cap = len + len / 100 + 64;

	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	out = xmalloc(cap);
	z.next_in = (unsigned char *)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END || z.total_out >= len) {
		deflateEnd(&z);
		free(out);
		return NULL;
	}
	*out_len = z.total_out;
	deflateEnd(&z);
	return out;
}

/* Once per process: the ETags and compressed forms of every file. */
static void
web_prepare(void)
{
	size_t i;

	struct buf all;
	char *digest;

	buf_init(&all, 0);
	for (i = 0; i < web_assets_count; i++) {
		char *hex = util_sha256_hex(web_assets[i].data,
		    web_assets[i].len);

		buf_printf(&all, "%s %s\n", web_assets[i].path, hex);
		free(hex);
	}
	digest = util_sha256_hex(all.data, all.len);
	snprintf(web_version, sizeof web_version, "%.16s", digest);
	free(digest);
	buf_release(&all);
	web_files = xcalloc(web_assets_count + 1, sizeof *web_files);
	for (i = 0; i < web_assets_count; i++) {
		struct web_file *f = &web_files[i];
		char *hex;

		f->asset = &web_assets[i];
		f->data = web_assets[i].data;
		f->len = web_assets[i].len;
		if (strcmp(web_assets[i].path, "/index.html") == 0)
			f->data = web_versioned(f->data, f->len, &f->len);
		hex = util_sha256_hex(f->data, f->len);
		f->ctype = web_ctype(web_assets[i].path);
		snprintf(f->etag, sizeof f->etag, "\"%.32s\"", hex);
		snprintf(f->etag_gz, sizeof f->etag_gz, "\"%.32s-gz\"", hex);
		free(hex);
		f->gz = web_gzip(f->data, f->len, &f->gz_len);
	}
}

/* 1 when the Accept-Encoding header accepts gzip (not as "gzip;q=0"). */
static int
web_accepts_gzip(const char *ae)
{
	const char *p;

	for (p = ae; p && (p = strstr(p, "gzip")) != NULL; p += 4) {
		const char *q = p + 4;

		if ((p != ae && p[-1] != ' ' && p[-1] != ',') ||
		    (*q != '\0' && *q != ',' && *q != ';' && *q != ' '))
			continue;
		while (*q == ' ')
			q++;
		if (*q == ';') {
			q++;
			while (*q == ' ')
				q++;
			if (strncmp(q, "q=0", 3) == 0 && strspn(q + 3, ".0") ==
			    strcspn(q + 3, ", "))
				return 0;
		}
		return 1;
	}
	return 0;
}

/* 1 when the If-None-Match header names etag (or is "*"). */
static int
web_etag_matches(const char *inm, const char *etag)
{
	return inm && (strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL);
}

/* The origin (scheme://host:port) of url into out when it is plain
 * enough to stand in a header; 0, or -1. */
static int
web_origin(const char *url, char *out, size_t outlen)
{
	const char *host, *end;
	size_t n;

	if (strncmp(url, "https://", 8) == 0)
		host = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		host = url + 7;
	else
		return -1;
	end = host + strcspn(host, "/?#");
	n = (size_t)(end - url);
	if (end == host || n >= outlen ||
	    strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789.-:[]") != (size_t)(end - host))
		return -1;
	memcpy(out, url, n);
	out[n] = '\0';
	return 0;
}

void
web_security_headers(struct preq *r)
{
	/* The pages upload packages and backups straight to the node that
	 * keeps them (a signed URL, as the CLI does): those origins may be
	 * fetched from, and no other. */
	json_t *rows = store_rows(store_db(), "SELECT DISTINCT agent_url FROM"
	    " nodes WHERE agent_url IS NOT NULL ORDER BY agent_url", "");
	struct buf csp;
	char origin[300];
	json_t *row;
	size_t i;

	buf_init(&csp, 8192);
	buf_printf(&csp, "default-src 'none'; script-src 'self'; "
	    "style-src 'self'; img-src 'self'; font-src 'self'; "
	    "connect-src 'self'");
	json_array_foreach(rows, i, row)
		if (web_origin(jsonx_str(row, "agent_url"), origin,
		    sizeof origin) == 0)
			buf_printf(&csp, " %s", origin);
	buf_printf(&csp, "; form-action 'self'; base-uri 'none'; "
	    "frame-ancestors 'none'");
	json_decref(rows);
	http_add_header(r->http, "Content-Security-Policy", buf_cstr(&csp));
	http_add_header(r->http, "X-Frame-Options", "DENY");
	http_add_header(r->http, "Referrer-Policy", "no-referrer");
	http_add_header(r->http, "Cross-Origin-Opener-Policy", "same-origin");
	buf_release(&csp);
}

void
web_serve(struct preq *r)
{
	const char *url = r->http->url;
	const struct web_file *f = NULL;
	const char *etag;
	int gz, immutable = 0;
	size_t i, n;

	pthread_once(&web_once, web_prepare);
	if (strcmp(url, "/") == 0)
		url = "/index.html";
	if (strncmp(url, "/v/", 3) == 0 && (n = strcspn(url + 3, "/")) > 0 &&
	    url[3 + n] == '/') {
		/* another version's URL (a page from before an upgrade) gets
		 * this version's file, revalidated as an unversioned one */
		immutable = n == strlen(web_version) &&
		    strncmp(url + 3, web_version, n) == 0;
		url += 3 + n;
	}
	for (i = 0; i < web_assets_count && f == NULL; i++)
		if (strcmp(web_files[i].asset->path, url) == 0)
			f = &web_files[i];
	if (f == NULL) {
		reply_error(r, 404, "NOT_FOUND", "no such path '%s'",
		    r->http->url);
		return;
	}
	if (strcmp(r->http->method, "GET") != 0) {
		reply_error(r, 405, "METHOD_NOT_ALLOWED", "%s is not allowed "
		    "on '%s'", r->http->method, r->http->url);
		http_add_header(r->http, "Allow", "GET, HEAD");
		return;
	}
	gz = f->gz && web_accepts_gzip(http_header(r->http,
	    "Accept-Encoding"));
	etag = gz ? f->etag_gz : f->etag;
	if (web_etag_matches(http_header(r->http, "If-None-Match"), etag))
		http_reply_static(r->http, 304, f->ctype, "", 0);
	else if (gz)
		http_reply_static(r->http, 200, f->ctype, f->gz, f->gz_len);
	else
		http_reply_static(r->http, 200, f->ctype, f->data, f->len);
	if (gz)
		http_add_header(r->http, "Content-Encoding", "gzip");
	http_add_header(r->http, "ETag", etag);
	http_add_header(r->http, "Vary", "Accept-Encoding");
	/* a versioned URL never changes; others (and index.html, which
	 * names the version) are revalidated, cheap with the ETag */
	http_add_header(r->http, "Cache-Control", immutable && strcmp(url,
	    "/index.html") != 0 ? "public, max-age=31536000, immutable" :
	    "no-cache");
	web_security_headers(r);
}
