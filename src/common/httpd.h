/* The HTTP server glue shared by the portal and the node agent
 * (libmicrohttpd). A server has three callbacks:
 *   begin   — headers are known: route, authenticate, and choose how the
 *             body is taken (buffered up to body_max, or streamed to
 *             body_sink). May reply at once (an error); the body is then
 *             discarded.
 *   finish  — the body is complete: run the handler, which must reply.
 *   cleanup — the request is over (sent or dropped): free ctx.
 */
#ifndef NUBO_HTTPD_H
#define NUBO_HTTPD_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <microhttpd.h>

#include "buf.h"
#include "jsonx.h"
#include "nubo_limits.h"

struct http_req;
struct http_file_count;

struct http_server_ops {
	void	(*begin)(struct http_req *);
	void	(*finish)(struct http_req *);
	void	(*cleanup)(struct http_req *);
	/* A request that finish suspended (http_suspend) was resumed:
	 * reply now. */
	void	(*resume)(struct http_req *);
	/* Memory per connection (0: libmicrohttpd's 32 KB). Half of it is
	 * the read buffer: a server that takes bulk bodies reads them in
	 * fewer, larger reads with more. */
	size_t	  conn_memory;
};

struct http_req {
	struct MHD_Connection	*conn;
	const char		*method;
	const char		*url;
	void			*app;		/* the server's user data */
	const void		*route;		/* set by begin */
	void			*ctx;		/* handler state, freed by cleanup */

	/* Path parameters filled by the router: {app} → params[i]. */
	const char		*param_names[NUBO_PATH_PARAMS_MAX];
	char			*param_values[NUBO_PATH_PARAMS_MAX];
	int			 nparams;

	/* Body: buffered into `body` (capped by body_max; 0 = no body
	 * allowed) unless body_sink is set, which then gets every chunk and
	 * returns 0, or -1 after replying with an error. */
	struct buf		 body;
	size_t			 body_max;
	int			(*body_sink)(struct http_req *, const char *, size_t);
	long long		 body_total;

	struct MHD_Response	*resp;
	unsigned		 status;
	int			 queued;
	int			 head;		/* a HEAD request (method says GET) */
	/* HTTP/1.1 or later: an answer of unknown size is chunked, and may
	 * end with trailers (MHD_add_response_footer) */
	int			 chunked;
	/* Any origin may read the answer (Access-Control-Allow-Origin: *):
	 * for signed URLs, which carry their own authority and no cookie, so
	 * that the portal's pages can upload straight to a node. */
	int			 cors_any;

	/* Valid in cleanup: the whole response reached the connection
	 * (MHD_REQUEST_TERMINATED_COMPLETED_OK), and what a counted file
	 * reply (http_reply_file_counted) served. */
	int			 completed_ok;
	struct http_file_count	*file_count;

	/* An API with an error shape of its own (the Mendix faces) sets this
	 * in begin: every error reply of the request, httpd's own included
	 * (a body too large, no reply), is written by it. */
	void			(*error_reply)(struct http_req *, unsigned status,
				    const char *code, const char *message);

	/* http_suspend(): 1 while suspended, 2 once resumed */
	int			 suspended;
	void			(*on_suspended)(struct http_req *);
};

struct http_server;

/* Start listening on "ip:port" (numeric IPv4 or [IPv6]); NULL on error.
 * Plain HTTP, which is refused on an address outside 127.0.0.0/8 and ::1
 * (http_server_start_tls with insecure_http allows it). */
struct http_server *http_server_start(const char *listen,
    const struct http_server_ops *ops, void *app, unsigned threads);

/* How a listener speaks: HTTPS only when cert and key (PEM files) are
 * set; plain HTTP otherwise, on loopback only unless insecure_http (then
 * a warning is logged). client_certs: clients are asked for a
 * certificate (optional; http_peer_pin tells its key). */
struct http_tls {
	const char	*cert;
	const char	*key;
	int		 client_certs;
	int		 insecure_http;
};
/* Whether listen may be served as tls says (before anything starts):
 * 0, or -1 with the cause in error() for plain HTTP outside loopback
 * without insecure_http (or a bad address). http_server_start_tls checks
 * it again. */
int http_listen_check(const char *listen, const struct http_tls *tls);
/* Whether listen is "IP:PORT" (numeric IPv4 or [IPv6]): 1 when its
 * address is in 127.0.0.0/8 or ::1, 0 when it is another (the wildcards
 * 0.0.0.0 and [::] included), -1 when it is not an address. */
int http_listen_loopback(const char *listen);
/* Whether cert and key (PEM files) load and belong together: 0, or -1
 * with the cause in error(). */
int http_tls_pair_check(const char *cert, const char *key);
/* One process has at most one HTTPS listener (the certificate callback
 * of GnuTLS has no user data). */
struct http_server *http_server_start_tls(const char *listen,
    const struct http_server_ops *ops, void *app, unsigned threads,
    const struct http_tls *tls);
/* Read the certificate and key files again (on SIGHUP): handshakes from
 * now on present the new pair, open connections keep theirs. 0, or -1
 * with the old pair kept (the cause logged); 0 for a plain listener. */
int http_server_reload_tls(struct http_server *);
/* The pin (tls.h) of the certificate the client proved it holds the key
 * of, into out: 1, or 0 when it presented none (or over plain HTTP). */
int http_peer_pin(struct http_req *, char *out, size_t outlen);
/* Stops: the requests begun (in a handler, resumed, sending) are given
 * up to NUBO_HTTP_DRAIN_MS to be answered, then every connection is
 * closed. */
void http_server_stop(struct http_server *);
/* Trust connections from ip (numeric IPv4 or IPv6): they may use the
 * reserve of connections kept when untrusted addresses took the rest
 * (the portal trusts its nodes, a node its portal). 0, or -1 on a bad
 * address or when NUBO_HTTP_TRUSTED_MAX are trusted already. */
int http_server_trust(struct http_server *, const char *ip);
/* The port actually bound (useful with port 0). */
unsigned http_server_port(struct http_server *);

/* Match url against a route pattern ("/apps/{app}/environments/{env}");
 * 1 on a match, with the request's path parameters filled (one trailing
 * slash tolerated), else 0. Clear parameters before trying the next. */
int http_route_match(struct http_req *, const char *pattern, const char *url);
void http_params_clear(struct http_req *);
/* Set path parameter name to value (replacing one of that name): how an
 * API face names the parameters its handlers read. */
void http_param_set(struct http_req *, const char *name, const char *value);

const char *http_header(struct http_req *, const char *name);
/* The value of the request's cookie name, or NULL. */
const char *http_cookie(struct http_req *, const char *name);
/* How many cookies of that name the request carries (a browser sends
 * one per Domain/Path it was set for). */
int http_cookie_count(struct http_req *, const char *name);
const char *http_query(struct http_req *, const char *name);
const char *http_param(struct http_req *, const char *name);
/* The client's IP address as text into out. */
void http_client_ip(struct http_req *, char *out, size_t outlen);

/* Answer later (from finish, instead of replying): the connection is
 * suspended — no thread waits for it — and on_suspended(req) is called
 * once it is; http_resume() (any thread, once, only after on_suspended)
 * has the server call ops->resume, which replies. Suspended requests
 * must all be resumed before http_server_stop(). */
void http_suspend(struct http_req *, void (*on_suspended)(struct http_req *));
void http_resume(struct http_req *);

/* Replies. Each sets req->resp once; a second reply is ignored. */
void http_reply_json(struct http_req *, unsigned status, json_t *body);
/* Reply with JSON already serialised (e.g. by SQLite's json functions);
 * takes ownership of text (malloc'ed). */
void http_reply_json_text(struct http_req *, unsigned status, char *text);
void http_reply_error(struct http_req *, unsigned status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The same with the arguments as a va_list, for the portal's and the
 * agent's own reply wrappers. */
void http_reply_verror(struct http_req *, unsigned status, const char *code,
    const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
/* Check a JSON body against fields (jsonx_check: unknown fields rejected);
 * 0 if it fits, else -1 after replying 400 BAD_REQUEST with the cause. */
int http_body_check(struct http_req *, json_t *body,
    const struct jfield *fields);
void http_reply_text(struct http_req *, unsigned status, const char *ctype,
    const char *text);
void http_reply_empty(struct http_req *, unsigned status);
/* Reply with len bytes of data that outlive the server (e.g. assets built
 * into the binary): not copied. */
void http_reply_static(struct http_req *, unsigned status, const char *ctype,
    const void *data, size_t len);
/* Serve [offset, offset+size) of fd (taken over), with Range support when
 * the request asks for it and total is the full size. */
void http_reply_file(struct http_req *, int fd, uint64_t total,
    const char *ctype, const char *filename);
/* The same, served through a reader so that the request knows how many
 * bytes of the range the connection took (http_file_served). */
void http_reply_file_counted(struct http_req *, int fd, uint64_t total,
    const char *ctype, const char *filename);
/* A body made on demand, the same bytes every time: write() writes all
 * of it to fd (a pipe; 0, or -1 when it failed — the body then ends
 * early and the connection says so), on a thread of its own; free(arg)
 * once the reply is over (may be NULL). */
struct http_body_maker {
	int		(*write)(void *arg, int fd);
	/* NULL, or the body from byte from on: a Range whose prefix need
	 * not be made (no X-Nubo-Prefix-Sha256 to check) starts there */
	int		(*write_from)(void *arg, int fd, uint64_t from);
	void		*arg;
	void		(*free)(void *arg);
};
/* Serve a made body of total bytes as http_reply_file() serves a file
 * (Range, X-Nubo-Prefix-Sha256, HEAD), counted as
 * http_reply_file_counted() when counted. The maker starts only when a
 * byte is wanted; bytes before a range are made and dropped, unless the
 * maker can start at the range (write_from). */
void http_reply_made(struct http_req *, const struct http_body_maker *m,
    uint64_t total, const char *ctype, const char *filename, int counted);
/* For a counted file reply, in cleanup: the range's first byte, the
 * bytes of it written to the connection (the whole range when the
 * request completed OK) and the file's size; 0, or -1 when the request
 * served no counted file (an error reply, another handler). */
int http_file_served(struct http_req *, uint64_t *start, uint64_t *sent,
    uint64_t *total);
/* Stream from a reader callback (MHD_ContentReaderCallback semantics). */
void http_reply_stream(struct http_req *, unsigned status, uint64_t size,
    MHD_ContentReaderCallback reader, void *cls,
    MHD_ContentReaderFreeCallback free_cb, const char *ctype);
void http_add_header(struct http_req *, const char *name, const char *value);

#endif
