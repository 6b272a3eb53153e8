#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <openssl/evp.h>

#include "jsonx.h"
#include "log.h"
#include "tls.h"
#include "util.h"
#include "xmalloc.h"

struct http_server {
	struct MHD_Daemon		*daemon;
	const struct http_server_ops	*ops;
	void				*app;
	unsigned			 port;

	/* Connection limits: libmicrohttpd caps the total and each address
	 * (MHD_OPTION_CONNECTION_LIMIT, _PER_IP_CONNECTION_LIMIT); the last
	 * `reserve` of the total are for trusted addresses only. */
	pthread_mutex_t			 lock;
	unsigned			 total;
	unsigned			 reserve;
	unsigned			 untrusted;	/* open, not trusted */
	unsigned char			(*trusted)[16];
	size_t				 ntrusted;
	time_t				 refused_at;	/* last logged refusal */
	unsigned			 refused;	/* since then */
	unsigned			 begun;		/* requests not completed */

	char				*tls_cert;	/* PEM files, or NULL */
	char				*tls_key;
	char				*tls_trust;	/* asks for client certificates */
};

/* A certificate chain and its key as GnuTLS presents them. The pair in
 * use is tls_current; a reload puts a new one in front, and the older
 * ones stay (a handshake may hold their pointers) until the server
 * stops. */
#define TLS_CHAIN_MAX	16

struct tls_pair {
	gnutls_pcert_st		 pcerts[TLS_CHAIN_MAX];
	unsigned		 npcerts;
	gnutls_privkey_t	 key;
	struct tls_pair		*older;
};

static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_pair *tls_current;

/* A connection's socket context: which count it is in. */
static char conn_trusted, conn_untrusted;

/* An IPv4 or IPv6 address as 16 bytes (IPv4 mapped into IPv6); -1 for
 * another family. */
static int
addr_key(const struct sockaddr *sa, unsigned char key[16])
{
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		memset(key, 0, 10);
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)(const void *)
		    sa)->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr, 16);
		return 0;
	}
	return -1;
}

/* Caller holds srv->lock. */
static int
trusted_locked(struct http_server *srv, const struct sockaddr *sa)
{
	unsigned char key[16];
	size_t i;

	if (addr_key(sa, key) == -1)
		return 0;
	for (i = 0; i < srv->ntrusted; i++)
		if (memcmp(srv->trusted[i], key, 16) == 0)
			return 1;
	return 0;
}

int
http_server_trust(struct http_server *srv, const char *ip)
{
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;
	const struct sockaddr *sa;
	unsigned char key[16];
	int rc = 0;

	memset(&s4, 0, sizeof s4);
	memset(&s6, 0, sizeof s6);
	if (inet_pton(AF_INET, ip, &s4.sin_addr) == 1) {
		s4.sin_family = AF_INET;
		sa = (const struct sockaddr *)&s4;
	} else if (inet_pton(AF_INET6, ip, &s6.sin6_addr) == 1) {
		s6.sin6_family = AF_INET6;
		sa = (const struct sockaddr *)&s6;
	} else {
		return -1;
	}
	addr_key(sa, key);
	pthread_mutex_lock(&srv->lock);
	if (!trusted_locked(srv, sa)) {
		if (srv->ntrusted >= NUBO_HTTP_TRUSTED_MAX) {
			rc = -1;
		} else {
			srv->trusted = xrealloc(srv->trusted,
			    (srv->ntrusted + 1) * sizeof *srv->trusted);
			memcpy(srv->trusted[srv->ntrusted++], key, 16);
		}
	}
	pthread_mutex_unlock(&srv->lock);
	return rc;
}

/* libmicrohttpd's accept policy: an untrusted address gets a connection
 * only while the untrusted ones leave the reserve free. */
static enum MHD_Result
http_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct http_server *srv = cls;
	time_t now = time(NULL);
	unsigned refused = 0;
	int ok;

	(void)addrlen;
	pthread_mutex_lock(&srv->lock);
	ok = srv->untrusted < srv->total - srv->reserve ||
	    trusted_locked(srv, addr);
	if (!ok) {
		srv->refused++;
		if (now - srv->refused_at >= 10) {
			refused = srv->refused;
			srv->refused = 0;
			srv->refused_at = now;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	if (refused)
		log_warn("%u connection(s) refused: %u open, the last %u are "
		    "kept for trusted addresses", refused, srv->total -
		    srv->reserve, srv->reserve);
	return ok ? MHD_YES : MHD_NO;
}

/* Count connections by kind; a new one must send its request's headers
 * without pausing NUBO_HTTP_HEADER_SECS. */
static void
http_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
    enum MHD_ConnectionNotificationCode code)
{
	struct http_server *srv = cls;
	const union MHD_ConnectionInfo *ci;
	int trusted;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(conn,
		    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		pthread_mutex_lock(&srv->lock);
		trusted = ci && trusted_locked(srv, ci->client_addr);
		if (!trusted)
			srv->untrusted++;
		pthread_mutex_unlock(&srv->lock);
		*socket_ctx = trusted ? &conn_trusted : &conn_untrusted;
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
		    (unsigned)NUBO_HTTP_HEADER_SECS);
	} else if (*socket_ctx == &conn_untrusted) {
		pthread_mutex_lock(&srv->lock);
		srv->untrusted--;
		pthread_mutex_unlock(&srv->lock);
		*socket_ctx = NULL;
	}
}

/* libmicrohttpd's messages, at most one of a kind every 10 s (a flood
 * refused per address would otherwise write a line per connection). */
static void
http_mhd_log(void *cls, const char *fmt, va_list ap)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static const char *last_fmt;
	static time_t last_at;
	static unsigned skipped;
	char msg[512];
	time_t now = time(NULL);
	unsigned n = 0;
	size_t len;

	(void)cls;
	pthread_mutex_lock(&lock);
	if (fmt == last_fmt && now - last_at < 10) {
		skipped++;
		pthread_mutex_unlock(&lock);
		return;
	}
	n = skipped;
	skipped = 0;
	last_fmt = fmt;
	last_at = now;
	pthread_mutex_unlock(&lock);
	vsnprintf(msg, sizeof msg, fmt, ap);
	len = strlen(msg);
	while (len > 0 && msg[len - 1] == '\n')
		msg[--len] = '\0';
	if (n)
		log_warn("httpd: %s (and %u more like it)", msg, n);
	else
		log_warn("httpd: %s", msg);
}

static void
req_free(struct http_server *srv, struct http_req *req)
{

	if (srv->ops->cleanup)
		srv->ops->cleanup(req);
	http_params_clear(req);
	buf_release(&req->body);
	if (req->resp)
		MHD_destroy_response(req->resp);
	free(req);
}

static enum MHD_Result
req_queue(struct http_req *req)
{
	enum MHD_Result rc;

	if (req->resp == NULL)
		http_reply_error(req, 500, "INTERNAL", "handler gave no reply");
	/* No answer is sniffed into a script or framed by another site;
	 * pages set a policy of their own (src/portal/web.c), the rest
	 * (JSON, files) needs none. */
	MHD_add_response_header(req->resp, "X-Content-Type-Options",
	    "nosniff");
	if (req->cors_any)
		MHD_add_response_header(req->resp,
		    "Access-Control-Allow-Origin", "*");
	if (MHD_get_response_header(req->resp,
	    "Content-Security-Policy") == NULL)
		MHD_add_response_header(req->resp, "Content-Security-Policy",
		    "default-src 'none'; frame-ancestors 'none'");
	rc = MHD_queue_response(req->conn, req->status, req->resp);
	req->queued = 1;
	return rc;
}

static enum MHD_Result
http_access(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_req *req = *con_cls;

	if (req == NULL) {
		req = xcalloc(1, sizeof *req);
		req->conn = conn;
		req->url = url;
		req->chunked = strcmp(version, MHD_HTTP_VERSION_1_0) != 0;
		/* HEAD is a GET whose body libmicrohttpd leaves out: the same
		 * route, signature and headers (Content-Length of a file) */
		req->head = strcmp(method, "HEAD") == 0;
		req->method = req->head ? "GET" : method;
		req->app = srv->app;
		buf_init(&req->body, 0);
		*con_cls = req;
		pthread_mutex_lock(&srv->lock);
		srv->begun++;
		pthread_mutex_unlock(&srv->lock);
		/* headers are in: now the body and the reply may each pause
		 * up to NUBO_HTTP_IO_SECS */
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
		    (unsigned)NUBO_HTTP_IO_SECS);
		if (strlen(url) > NUBO_HTTP_URL_MAX)
			http_reply_error(req, 414, "URL_TOO_LONG", "URL too long");
		else
			srv->ops->begin(req);
		req->body.max = req->body_max;
		/* libmicrohttpd: answer MHD_YES on the first call, or
		 * keep-alive is lost. */
		return MHD_YES;
	}
	if (req->queued) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		req->body_total += (long long)n;
		if (req->resp)
			return MHD_YES;	/* already answered: discard */
		if (req->body_sink) {
			if (req->body_sink(req, upload_data, n) == -1 &&
			    req->resp == NULL)
				http_reply_error(req, 400, "BAD_BODY",
				    "request body rejected");
		} else if (req->body_max == 0) {
			http_reply_error(req, 400, "BODY_NOT_ALLOWED",
			    "this request takes no body");
		} else if (buf_append(&req->body, upload_data, n) == -1) {
			http_reply_error(req, 413, "BODY_TOO_LARGE",
			    "request body larger than %zu bytes", req->body_max);
		}
		return MHD_YES;
	}
	if (req->suspended == 2) {
		req->suspended = 0;
		if (req->resp == NULL && srv->ops->resume)
			srv->ops->resume(req);
		return req_queue(req);
	}
	if (req->resp == NULL)
		srv->ops->finish(req);
	if (req->suspended == 1 && req->resp == NULL) {
		MHD_suspend_connection(conn);
		req->on_suspended(req);
		return MHD_YES;
	}
	req->suspended = 0;
	return req_queue(req);
}

void
http_suspend(struct http_req *req, void (*on_suspended)(struct http_req *))
{
	req->suspended = 1;
	req->on_suspended = on_suspended;
}

void
http_resume(struct http_req *req)
{
	req->suspended = 2;
	MHD_resume_connection(req->conn);
}

static void
http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct http_server *srv = cls;

	if (*con_cls) {
		struct http_req *req = *con_cls;

		req->completed_ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
		req_free(srv, req);
		*con_cls = NULL;
		pthread_mutex_lock(&srv->lock);
		srv->begun--;
		pthread_mutex_unlock(&srv->lock);
	}
	/* kept alive: the next request's headers come without pausing */
	if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
		    (unsigned)NUBO_HTTP_HEADER_SECS);
}

static int
parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *colon = strrchr(listen, ':');
	long long port;
	size_t hl;

	if (colon == NULL)
		return -1;
	hl = (size_t)(colon - listen);
	if (hl == 0 || hl >= sizeof host)
		return -1;
	memcpy(host, listen, hl);
	host[hl] = '\0';
	if (util_parse_int(colon + 1, 0, 65535, &port) == -1)
		return -1;
	memset(ss, 0, sizeof *ss);
	if (host[0] == '[' && host[hl - 1] == ']') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		host[hl - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			return -1;
		*len = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return -1;
		*len = sizeof *s4;
	}
	return 0;
}


static void
tls_pair_free(struct tls_pair *tp)
{
	unsigned i;

	while (tp) {
		struct tls_pair *older = tp->older;

		for (i = 0; i < tp->npcerts; i++)
			gnutls_pcert_deinit(&tp->pcerts[i]);
		if (tp->key)
			gnutls_privkey_deinit(tp->key);
		free(tp);
		tp = older;
	}
}

/* The DER public key of a certificate or a private key; 0, or -1. */
static int
tls_pubkey_der(gnutls_pubkey_t pub, gnutls_datum_t *out)
{
	return gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, out) < 0 ? -1 :
	    0;
}

/* The chain of cert and the key of key (PEM files), checked to belong
 * together; NULL with the cause in error(). */
static struct tls_pair *
tls_pair_load(const char *cert, const char *key)
{
	struct tls_pair *tp = xcalloc(1, sizeof *tp);
	gnutls_datum_t c = { NULL, 0 }, k = { NULL, 0 }, a = { NULL, 0 },
	    b = { NULL, 0 };
	gnutls_pubkey_t kpub = NULL;
	size_t len;
	int rc;

	c.data = (unsigned char *)util_read_file(cert, 1 << 20, &len);
	c.size = (unsigned)len;
	if (c.data == NULL) {
		error("cannot read %s: %s", cert, strerror(errno));
		goto fail;
	}
	k.data = (unsigned char *)util_read_file(key, 1 << 20, &len);
	k.size = (unsigned)len;
	if (k.data == NULL) {
		error("cannot read %s: %s", key, strerror(errno));
		goto fail;
	}
	tp->npcerts = TLS_CHAIN_MAX;
	rc = gnutls_pcert_list_import_x509_raw(tp->pcerts, &tp->npcerts, &c,
	    GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0 || tp->npcerts == 0) {
		tp->npcerts = 0;
		error("%s: no PEM certificate chain (%s)", cert,
		    rc < 0 ? gnutls_strerror(rc) : "empty");
		goto fail;
	}
	if ((rc = gnutls_privkey_init(&tp->key)) < 0 ||
	    (rc = gnutls_privkey_import_x509_raw(tp->key, &k,
	    GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		error("%s: no PEM private key (%s)", key, gnutls_strerror(rc));
		goto fail;
	}
	if (gnutls_pubkey_init(&kpub) < 0 ||
	    gnutls_pubkey_import_privkey(kpub, tp->key, 0, 0) < 0 ||
	    tls_pubkey_der(kpub, &a) == -1 ||
	    tls_pubkey_der(tp->pcerts[0].pubkey, &b) == -1 ||
	    a.size != b.size || memcmp(a.data, b.data, a.size) != 0) {
		error("%s is not the key of the certificate %s", key, cert);
		goto fail;
	}
	goto out;
fail:
	tls_pair_free(tp);
	tp = NULL;
out:
	if (kpub)
		gnutls_pubkey_deinit(kpub);
	gnutls_free(a.data);
	gnutls_free(b.data);
	if (k.data)
		explicit_bzero(k.data, k.size);
	free(k.data);
	free(c.data);
	return tp;
}

/* GnuTLS asks for the certificate at each handshake. */
static int
tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn,
    int nreqs, const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
    gnutls_pcert_st **pcert, unsigned int *pcert_length,
    gnutls_privkey_t *pkey)
{
	(void)session;
	(void)req_ca_dn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	pthread_mutex_lock(&tls_lock);
	if (tls_current == NULL) {
		pthread_mutex_unlock(&tls_lock);
		return -1;
	}
	*pcert = tls_current->pcerts;
	*pcert_length = tls_current->npcerts;
	*pkey = tls_current->key;
	pthread_mutex_unlock(&tls_lock);
	return 0;
}

int
http_server_reload_tls(struct http_server *srv)
{
	struct tls_pair *tp;

	if (srv->tls_cert == NULL)
		return 0;
	tp = tls_pair_load(srv->tls_cert, srv->tls_key);
	if (tp == NULL) {
		log_warn("TLS certificate not reloaded, the current one stays");
		return -1;
	}
	pthread_mutex_lock(&tls_lock);
	tp->older = tls_current;
	tls_current = tp;
	pthread_mutex_unlock(&tls_lock);
	log_info("TLS certificate reloaded from %s", srv->tls_cert);
	return 0;
}

int
http_peer_pin(struct http_req *req, char *out, size_t outlen)
{
	const union MHD_ConnectionInfo *ci;
	const gnutls_datum_t *certs;
	unsigned n = 0;

	ci = MHD_get_connection_info(req->conn,
	    MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci == NULL || ci->tls_session == NULL)
		return 0;
	/* GnuTLS checked the client's signature with this certificate's
	 * key during the handshake: the client holds the key */
	certs = gnutls_certificate_get_peers(ci->tls_session, &n);
	if (certs == NULL || n == 0)
		return 0;
	return tls_pin_der(certs[0].data, certs[0].size, out, outlen) == 0;
}

/* 1 when the address of ss is in 127.0.0.0/8 or ::1. */
static int
loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)ss)->
		    sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)
	    (const void *)ss)->sin6_addr);
}

int
http_listen_check(const char *listen, const struct http_tls *tls)
{
	struct sockaddr_storage ss;
	socklen_t sslen;

	if (parse_listen(listen, &ss, &sslen) == -1)
		return error("bad listen address '%s' (want IP:PORT)", listen);
	if ((tls && tls->cert) || loopback(&ss) || (tls && tls->insecure_http))
		return 0;
	return error("refusing plain HTTP on %s, an address outside loopback:"
	    " API keys, tokens and data would cross the network in clear "
	    "(give --tls-cert and --tls-key, or --insecure-http)", listen);
}

int
http_listen_loopback(const char *listen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;

	if (parse_listen(listen, &ss, &sslen) == -1)
		return -1;
	return loopback(&ss);
}

int
http_tls_pair_check(const char *cert, const char *key)
{
	struct tls_pair *tp = tls_pair_load(cert, key);

	if (tp == NULL)
		return -1;
	tls_pair_free(tp);
	return 0;
}

struct http_server *
http_server_start(const char *listen, const struct http_server_ops *ops,
    void *app, unsigned threads)
{
	return http_server_start_tls(listen, ops, app, threads, NULL);
}

struct http_server *
http_server_start_tls(const char *listen, const struct http_server_ops *ops,
    void *app, unsigned threads, const struct http_tls *tls)
{
	struct http_server *srv;
	struct sockaddr_storage ss;
	socklen_t sslen;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
	struct rlimit rl;
	struct tls_pair *tp = NULL;
	char *trust = NULL;
	int https = tls && tls->cert;

	if (http_listen_check(listen, tls) == -1 ||
	    parse_listen(listen, &ss, &sslen) == -1)
		return NULL;
	if (!https && !loopback(&ss))
		log_warn("listening on %s with plain HTTP (--insecure-http): "
		    "API keys, tokens and data cross the network in clear",
		    listen);
	if (https) {
		if (tls->key == NULL) {
			error("--tls-cert needs --tls-key");
			return NULL;
		}
		if (tls_current != NULL) {
			error("one HTTPS listener per process");
			return NULL;
		}
		if (!MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK)) {
			error("this libmicrohttpd has no TLS certificate "
			    "callback (built without GnuTLS?)");
			return NULL;
		}
		if ((tp = tls_pair_load(tls->cert, tls->key)) == NULL)
			return NULL;
		/* GnuTLS asks clients for a certificate only when it has a
		 * trust list; which CA signed theirs does not matter (their
		 * key is pinned), so the list is our own certificate */
		if (tls->client_certs &&
		    (trust = util_read_file(tls->cert, 1 << 20, NULL)) ==
		    NULL) {
			error("cannot read %s: %s", tls->cert, strerror(errno));
			tls_pair_free(tp);
			return NULL;
		}
		flags |= MHD_USE_TLS;
		pthread_mutex_lock(&tls_lock);
		tls_current = tp;
		pthread_mutex_unlock(&tls_lock);
	}
	srv = xcalloc(1, sizeof *srv);
	if (https) {
		srv->tls_cert = xstrdup(tls->cert);
		srv->tls_key = xstrdup(tls->key);
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	srv->ops = ops;
	srv->app = app;
	pthread_mutex_init(&srv->lock, NULL);
	/* the total fits in the descriptors, with room for files, the
	 * store, the database and calls to others */
	srv->total = NUBO_HTTP_CONNECTIONS;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)srv->total + 512)
		srv->total = rl.rlim_cur > 1024 ? (unsigned)rl.rlim_cur - 512 :
		    (unsigned)rl.rlim_cur / 2;
	srv->reserve = srv->total / NUBO_HTTP_RESERVE_DIV;
	srv->daemon = MHD_start_daemon(flags, 0, http_accept, srv,
	    http_access, srv,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_THREAD_POOL_SIZE, threads ? threads : 1,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)NUBO_HTTP_IO_SECS,
	    MHD_OPTION_CONNECTION_LIMIT, srv->total,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)NUBO_HTTP_PER_ADDRESS,
	    MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, ops->conn_memory ?
	    ops->conn_memory : (size_t)32 * 1024,
	    MHD_OPTION_NOTIFY_COMPLETED, http_completed, srv,
	    MHD_OPTION_NOTIFY_CONNECTION, http_connection, srv,
	    MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, srv,
	    https ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END,
	    tls_retrieve,
	    trust ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, trust,
	    MHD_OPTION_END);
	srv->tls_trust = trust;
	if (srv->daemon == NULL) {
		error("cannot listen on %s: %s", listen, strerror(errno));
		http_server_stop(srv);
		return NULL;
	}
	info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info ? info->port : 0;
	return srv;
}

/* Waits up to NUBO_HTTP_DRAIN_MS for the requests srv has begun to be
 * answered: libmicrohttpd's stop closes every connection at once, a
 * request its handler is still in, or one resumed a moment ago, with no
 * answer. */
static void
http_server_drain(struct http_server *srv)
{
	double until = util_mono() + NUBO_HTTP_DRAIN_MS / 1000.0;
	unsigned begun;

	for (;;) {
		pthread_mutex_lock(&srv->lock);
		begun = srv->begun;
		pthread_mutex_unlock(&srv->lock);
		if (begun == 0 || util_mono() > until)
			break;
		usleep(10 * 1000);
	}
	if (begun > 0)
		log_warn("http: stopping with %u request%s not answered",
		    begun, begun == 1 ? "" : "s");
}

void
http_server_stop(struct http_server *srv)
{
	if (srv == NULL)
		return;
	if (srv->daemon) {
		http_server_drain(srv);
		MHD_stop_daemon(srv->daemon);
	}
	pthread_mutex_destroy(&srv->lock);
	if (srv->tls_cert) {
		pthread_mutex_lock(&tls_lock);
		tls_pair_free(tls_current);
		tls_current = NULL;
		pthread_mutex_unlock(&tls_lock);
	}
	free(srv->tls_cert);
	free(srv->tls_key);
	free(srv->tls_trust);
	free(srv->trusted);
	free(srv);
}

unsigned
http_server_port(struct http_server *srv)
{
	return srv->port;
}

int
http_route_match(struct http_req *h, const char *pattern, const char *url)
{
	const char *p = pattern, *u = url;
	int n = 0;

	while (*p && *u) {
		if (*p == '{') {
			const char *pe = strchr(p, '}');
			const char *ue = strchr(u, '/');

			if (pe == NULL || n == NUBO_PATH_PARAMS_MAX)
				return 0;
			if (ue == NULL)
				ue = u + strlen(u);
			if (ue == u)
				return 0;
			h->param_values[n] = xstrndup(u, (size_t)(ue - u));
			h->param_names[n] = xstrndup(p + 1, (size_t)(pe - p - 1));
			h->nparams = ++n;
			p = pe + 1;
			u = ue;
			continue;
		}
		if (*p != *u)
			return 0;
		p++;
		u++;
	}
	if (*u == '/' && u[1] == '\0')
		u++;
	return *p == '\0' && *u == '\0';
}

void
http_params_clear(struct http_req *h)
{
	int i;

	for (i = 0; i < h->nparams; i++) {
		free(h->param_values[i]);
		free((char *)h->param_names[i]);
	}
	h->nparams = 0;
}

void
http_param_set(struct http_req *h, const char *name, const char *value)
{
	int i;

	for (i = 0; i < h->nparams; i++)
		if (strcmp(h->param_names[i], name) == 0) {
			free(h->param_values[i]);
			h->param_values[i] = xstrdup(value);
			return;
		}
	if (h->nparams == NUBO_PATH_PARAMS_MAX)
		return;
	h->param_names[h->nparams] = xstrdup(name);
	h->param_values[h->nparams++] = xstrdup(value);
}

const char *
http_header(struct http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *
http_cookie(struct http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, name);
}

struct cookie_count {
	const char	*name;
	int		 n;
};

static enum MHD_Result
cookie_count_one(void *arg, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct cookie_count *cc = arg;

	(void)kind;
	(void)value;
	if (key && strcmp(key, cc->name) == 0)
		cc->n++;
	return MHD_YES;
}

int
http_cookie_count(struct http_req *req, const char *name)
{
	struct cookie_count cc = { name, 0 };

	MHD_get_connection_values(req->conn, MHD_COOKIE_KIND,
	    cookie_count_one, &cc);
	return cc.n;
}

const char *
http_query(struct http_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
	    name);
}

const char *
http_param(struct http_req *req, const char *name)
{
	int i;

	for (i = 0; i < req->nparams; i++)
		if (strcmp(req->param_names[i], name) == 0)
			return req->param_values[i];
	return NULL;
}

void
http_client_ip(struct http_req *req, char *out, size_t outlen)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	snprintf(out, outlen, "?");
	ci = MHD_get_connection_info(req->conn,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || ci->client_addr == NULL)
		return;
	sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    out, (socklen_t)outlen);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
		    (socklen_t)outlen);
}

static void
reply_set(struct http_req *req, unsigned status, struct MHD_Response *resp)
{
	if (req->resp) {
		MHD_destroy_response(resp);
		return;
	}
	req->status = status;
	req->resp = resp;
}

void
http_reply_json(struct http_req *req, unsigned status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);

	json_decref(body);
	http_reply_json_text(req, status, text);
}

void
http_reply_json_text(struct http_req *req, unsigned status, char *text)
{
	size_t len = strlen(text);
	struct MHD_Response *resp;

	text = xrealloc(text, len + 2);
	text[len++] = '\n';
	text[len] = '\0';
	resp = MHD_create_response_from_buffer(len, text,
	    MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	reply_set(req, status, resp);
}

void
http_reply_verror(struct http_req *req, unsigned status, const char *code,
    const char *fmt, va_list ap)
{
	char *raw = xvasprintf(fmt, ap);
	char *msg = util_utf8_clean(raw);	/* it may name a file */

	if (req->error_reply) {
		req->error_reply(req, status, code, msg);
		free(raw);
		free(msg);
		return;
	}
	http_reply_json(req, status, json_pack("{s:{s:s,s:s}}", "error",
	    "code", code, "message", msg));
	free(raw);
	free(msg);
}

void
http_reply_error(struct http_req *req, unsigned status, const char *code,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	http_reply_verror(req, status, code, fmt, ap);
	va_end(ap);
}

int
http_body_check(struct http_req *req, json_t *body,
    const struct jfield *fields)
{
	char *cause = NULL;

	if (jsonx_check(body, fields, &cause) == 0)
		return 0;
	http_reply_error(req, 400, "BAD_REQUEST", "%s", cause);
	free(cause);
	return -1;
}

void
http_reply_text(struct http_req *req, unsigned status, const char *ctype,
    const char *text)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(strlen(text), xstrdup(text),
	    MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, "Content-Type", ctype);
	reply_set(req, status, resp);
}

void
http_reply_static(struct http_req *req, unsigned status, const char *ctype,
    const void *data, size_t len)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(len, (void *)data,
	    MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(resp, "Content-Type", ctype);
	reply_set(req, status, resp);
}

void
http_reply_empty(struct http_req *req, unsigned status)
{
	reply_set(req, status, MHD_create_response_from_buffer(0, NULL,
	    MHD_RESPMEM_PERSISTENT));
}

/* Parse "bytes=START-", "bytes=START-END" or "bytes=-SUFFIX" (the last
 * SUFFIX bytes) against total. */
static int
parse_range(const char *h, uint64_t total, uint64_t *start, uint64_t *end)
{
	unsigned long long a, b;
	char dash;
	int n;

	if (strncmp(h, "bytes=", 6) != 0)
		return -1;
	h += 6;
	if (*h == '-') {
		if (sscanf(h + 1, "%llu%n", &b, &n) != 1 || h[1 + n] != '\0' ||
		    b == 0 || total == 0)
			return -1;
		*start = b >= total ? 0 : total - b;
		*end = total - 1;
		return 0;
	}
	if (sscanf(h, "%llu%c%n", &a, &dash, &n) < 2 || dash != '-')
		return -1;
	h += n;
	if (*h == '\0')
		b = total ? total - 1 : 0;
	else if (sscanf(h, "%llu", &b) != 1)
		return -1;
	if (b >= total)
		b = total ? total - 1 : 0;
	if (a > b || a >= total)
		return -1;
	*start = a;
	*end = b;
	return 0;
}

/* A body made on demand (http_reply_made): the maker writes it into a
 * pipe from a thread of its own, started when the first byte is wanted
 * (a HEAD never starts it); bytes before a range's start are read and
 * dropped, as the maker makes the same bytes every time. */
struct http_made {
	struct http_body_maker m;
	int		 rfd;		/* the pipe's read end; -1: not started */
	int		 wfd;
	pthread_t	 th;
	uint64_t	 pos;		/* bytes of the body read so far */
	uint64_t	 from;		/* where the maker started */
};

static void *
made_thread(void *arg)
{
	struct http_made *b = arg;

	/* a maker that fails ends the body early: the reader tells */
	if (b->from > 0)
		b->m.write_from(b->m.arg, b->wfd, b->from);
	else
		b->m.write(b->m.arg, b->wfd);
	close(b->wfd);
	return NULL;
}

/* Read up to max bytes of the body at off (>= what was read before):
 * bytes read, 0 at its end, -1 on error. */
static ssize_t
made_read(struct http_made *b, void *out, size_t max, uint64_t off)
{
	unsigned char drop[16384];
	ssize_t n;
	int p[2], skip;

	if (b->rfd < 0) {
		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		b->rfd = p[0];
		b->wfd = p[1];
		/* fewer wake-ups: the maker writes NUBO_IO_CHUNK pieces */
		(void)fcntl(b->wfd, F_SETPIPE_SZ, NUBO_IO_CHUNK);
		if (b->m.write_from != NULL)
			b->pos = b->from = off;
		if (pthread_create(&b->th, NULL, made_thread, b) != 0)
			fatal("cannot start a thread for a download");
	}
	if (off < b->pos)
		return -1;
	for (;;) {
		skip = off > b->pos;
		if (skip)
			n = read(b->rfd, drop, off - b->pos < sizeof drop ?
			    (size_t)(off - b->pos) : sizeof drop);
		else
			n = read(b->rfd, out, max);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n;
		b->pos += (uint64_t)n;
		if (!skip)
			return n;
	}
}

static void
made_free(struct http_made *b)
{
	if (b == NULL)
		return;
	if (b->rfd >= 0) {
		/* the maker's next write fails (EPIPE): it stops */
		close(b->rfd);
		pthread_join(b->th, NULL);
	}
	if (b->m.free != NULL)
		b->m.free(b->m.arg);
	free(b);
}

/* A file reply's reader state: a file (fd) or a made body; owned by the
 * response (freed with it, after the request's cleanup), so cleanup may
 * read what a counted one served. */
struct http_file_count {
	int		 fd;
	struct http_made *made;
	uint64_t	 start;		/* first byte of the range */
	uint64_t	 len;		/* bytes in the range */
	uint64_t	 total;		/* the file's size */
	uint64_t	 sent;		/* bytes of the range written */
};

/* Up to max bytes of the file or body at off; as pread. */
static ssize_t
body_read(int fd, struct http_made *made, void *out, size_t max,
    uint64_t off)
{
	ssize_t n;

	if (made != NULL)
		return made_read(made, out, max, off);
	do
		n = pread(fd, out, max, (off_t)off);
	while (n < 0 && errno == EINTR);
	return n;
}

static ssize_t
file_count_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct http_file_count *f = cls;
	ssize_t n;

	/* libmicrohttpd asks for more only once everything before pos was
	 * written to the connection */
	f->sent = pos;
	if (max > f->len - pos)
		max = (size_t)(f->len - pos);
	n = body_read(f->fd, f->made, out, max, f->start + pos);
	return n > 0 ? n : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void
file_count_free(void *cls)
{
	struct http_file_count *f = cls;

	if (f->fd >= 0)
		close(f->fd);
	made_free(f->made);
	free(f);
}

/* 1 when the first len bytes of fd (or the made body) hash to hex
 * (sha256), 0 when not. */
static int
prefix_matches(int fd, struct http_made *made, uint64_t len, const char *hex)
{
	unsigned char md[32], *buf = xmalloc(NUBO_IO_CHUNK);
	char got[65];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	uint64_t off = 0;
	ssize_t n = 0;

	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	while (off < len) {
		n = body_read(fd, made, buf, len - off < NUBO_IO_CHUNK ?
		    len - off : NUBO_IO_CHUNK, off);
		if (n <= 0)
			break;
		EVP_DigestUpdate(c, buf, (size_t)n);
		off += (uint64_t)n;
	}
	EVP_DigestFinal_ex(c, md, NULL);
	EVP_MD_CTX_free(c);
	free(buf);
	util_hex(md, 32, got);
	return off == len && strcasecmp(got, hex) == 0;
}

/* Serve fd, or the body made (fd -1), taking either over. */
static void
reply_file(struct http_req *req, int fd, struct http_made *made,
    uint64_t total, const char *ctype, const char *filename, int counted)
{
	const char *range = http_header(req, "Range"), *prefix;
	struct MHD_Response *resp;
	uint64_t start = 0, end = total ? total - 1 : 0, len;
	unsigned status = 200;
	char hdr[128];

	if (req->resp != NULL)
		goto refused;	/* answered already */
	if (range) {
		if (parse_range(range, total, &start, &end) == -1) {
			http_reply_error(req, 416, "RANGE_NOT_SATISFIABLE",
			    "range '%s' is outside 0-%llu", range,
			    (unsigned long long)total);
			snprintf(hdr, sizeof hdr, "bytes */%llu",
			    (unsigned long long)total);
			http_add_header(req, "Content-Range", hdr);
			goto refused;
		}
		status = 206;
		/* a client resuming says what it holds already: a file that
		 * changed meanwhile must not be stitched onto it */
		prefix = http_header(req, "X-Nubo-Prefix-Sha256");
		if (prefix != NULL && !prefix_matches(fd, made, start, prefix)) {
			http_reply_error(req, 412, "PREFIX_MISMATCH", "the first "
			    "%llu bytes you have differ from this file",
			    (unsigned long long)start);
			goto refused;
		}
	}
	len = total ? end - start + 1 : 0;
	if (counted || made != NULL) {
		struct http_file_count *f = xcalloc(1, sizeof *f);

		f->fd = fd;
		f->made = made;
		f->start = start;
		f->len = len;
		f->total = total;
		resp = MHD_create_response_from_callback(len, NUBO_IO_CHUNK,
		    file_count_read, f, file_count_free);
		if (counted)
			req->file_count = f;
	} else
		resp = MHD_create_response_from_fd_at_offset64(len, fd, start);
	MHD_add_response_header(resp, "Content-Type", ctype);
	MHD_add_response_header(resp, "Accept-Ranges", "bytes");
	if (status == 206) {
		snprintf(hdr, sizeof hdr, "bytes %llu-%llu/%llu",
		    (unsigned long long)start, (unsigned long long)end,
		    (unsigned long long)total);
		MHD_add_response_header(resp, "Content-Range", hdr);
	}
	if (filename) {
		char *cd = xasprintf("attachment; filename=\"%s\"", filename);

		MHD_add_response_header(resp, "Content-Disposition", cd);
		free(cd);
	}
	reply_set(req, status, resp);
	return;
refused:
	if (fd >= 0)
		close(fd);
	made_free(made);
}

void
http_reply_file(struct http_req *req, int fd, uint64_t total,
    const char *ctype, const char *filename)
{
	reply_file(req, fd, NULL, total, ctype, filename, 0);
}

void
http_reply_file_counted(struct http_req *req, int fd, uint64_t total,
    const char *ctype, const char *filename)
{
	reply_file(req, fd, NULL, total, ctype, filename, 1);
}

void
http_reply_made(struct http_req *req, const struct http_body_maker *m,
    uint64_t total, const char *ctype, const char *filename, int counted)
{
	struct http_made *b = xcalloc(1, sizeof *b);

	b->m = *m;
	b->rfd = b->wfd = -1;
	reply_file(req, -1, b, total, ctype, filename, counted);
}

int
http_file_served(struct http_req *req, uint64_t *start, uint64_t *sent,
    uint64_t *total)
{
	struct http_file_count *f = req->file_count;

	if (f == NULL || !req->queued || req->head)
		return -1;	/* a HEAD delivers no byte */
	*start = f->start;
	*sent = req->completed_ok ? f->len : f->sent;
	*total = f->total;
	return 0;
}

void
http_reply_stream(struct http_req *req, unsigned status, uint64_t size,
    MHD_ContentReaderCallback reader, void *cls,
    MHD_ContentReaderFreeCallback free_cb, const char *ctype)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_callback(size, NUBO_IO_CHUNK, reader,
	    cls, free_cb);
	MHD_add_response_header(resp, "Content-Type", ctype);
	reply_set(req, status, resp);
}

void
http_add_header(struct http_req *req, const char *name, const char *value)
{
	if (req->resp)
		MHD_add_response_header(req->resp, name, value);
}
