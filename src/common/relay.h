/* A byte relay: an epoll loop that accepts connections on listening
 * sockets and joins each to a new outgoing connection, copying bytes both
 * ways with half-close. It is the bridge across a sandbox's network
 * namespace: the router's unix socket → the instance's 127.0.0.1:$PORT,
 * and the instance's 127.0.0.1:5432 → the database's unix socket
 * (nubo-init, inside each sandbox), and the node's per-environment
 * database socket → an existing PostgreSQL server (`--pg` over TCP).
 * Plain libc only: nubo-init links this file and nothing else. */
#ifndef NUBO_RELAY_H
#define NUBO_RELAY_H

#include <stddef.h>

#define RELAY_BUF		(64 * 1024)	/* per direction and connection */
#define RELAY_CONNECTIONS_MAX	1024		/* joined pairs at once */

struct relay;

/* Open a new non-blocking outgoing connection (connect() may still be in
 * progress): its fd, or -1. arg is what relay_listen() was given. */
typedef int (*relay_dial_fn)(void *arg);
/* A watched fd is readable. */
typedef void (*relay_ready_fn)(int fd, void *arg);

struct relay *relay_new(void);
/* Accept on lfd (listening, taken over) and join each connection to one
 * that dial opens. Safe from any thread; the loop picks it up. id names
 * it for relay_unlisten(); 0 when unused. */
int relay_listen(struct relay *, int lfd, relay_dial_fn dial, void *arg,
    long long id);
/* Close every listener given with id (connections already joined go on).
 * Safe from any thread. */
void relay_unlisten(struct relay *, long long id);
/* Call ready whenever fd is readable (a signalfd, say). Loop thread or
 * before relay_run(). */
int relay_watch(struct relay *, int fd, relay_ready_fn ready, void *arg);
/* Run until relay_stop(). */
void relay_run(struct relay *);
void relay_stop(struct relay *);
/* Close and free everything once relay_run() has returned (the watched
 * fds stay the caller's). */
void relay_free(struct relay *);

/* Dialers: a TCP connection to host:port (numeric IPv4 or IPv6 address)
 * and a unix socket path. Non-blocking; the fd or -1. */
int relay_dial_tcp(const char *host, int port);
int relay_dial_unix(const char *path);
/* A listening socket: TCP on a numeric address, or a unix path (an old
 * socket file there is replaced). Non-blocking, close-on-exec; -1 with
 * errno set. */
int relay_listen_tcp(const char *host, int port);
int relay_listen_unix(const char *path, unsigned mode);

#endif
