/* The byte relay (relay.h): level-triggered epoll, one buffer per
 * direction, EPOLLIN on an end only while its buffer has room, EPOLLOUT
 * only while the other direction has bytes for it (or its connect is in
 * progress). A read of 0 shuts the other end's write side once its
 * buffer is drained; an end hung up for good leaves epoll once its EOF
 * is read (its hang-up is reported on every wait otherwise); a pair is
 * closed when both directions ended, or at the first error. Pairs closed during a batch of events are freed after
 * it, so a later event of the same batch never touches freed memory. */
#include "relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * K_GONE: a listener closed by relay_unlisten. The batch of events being
 * handled may still name it, so it is freed only after the batch.
 */
enum relay_kind { K_LISTEN, K_END, K_WATCH, K_WAKE, K_GONE };

struct relay_listener {
	enum relay_kind		 kind;
	int			 fd;
	relay_dial_fn		 dial;
	void			*arg;
	long long		 id;
	struct relay_listener	*next;
};

struct relay_watcher {
	enum relay_kind		 kind;
	int			 fd;
	relay_ready_fn		 ready;
	void			*arg;
	struct relay_watcher	*next;
};

struct relay_pair;

struct relay_end {
	enum relay_kind		 kind;
	int			 fd;
	int			 side;		/* 0: accepted, 1: dialled */
	unsigned		 events;	/* registered with epoll */
	int			 removed;	/* done both ways: out of epoll */
	struct relay_pair	*pair;
};

struct relay_pair {
	struct relay_end	 end[2];
	char			 buf[2][RELAY_BUF];	/* read from end[i] */
	size_t			 off[2], len[2];
	int			 eof[2];	/* end[i] said EOF */
	int			 shut[2];	/* end[i]'s write side shut */
	int			 connecting;	/* end[1] */
	int			 dead;
	struct relay_pair	*next;		/* live list, then dead list */
	struct relay_pair	*prev;
};

enum relay_op_kind { OP_LISTEN, OP_UNLISTEN };

struct relay_op {
	enum relay_op_kind	 kind;
	struct relay_listener	*l;
	long long		 id;
	struct relay_op		*next;
};

struct relay {
	int			 ep;
	int			 stop;
	struct relay_watcher	 wake;
	struct relay_listener	*listeners;
	struct relay_watcher	*watchers;
	struct relay_pair	*pairs;
	struct relay_pair	*dead;
	struct relay_listener	*gone;		/* K_GONE, freed after a batch */
	int			 npairs;
	pthread_mutex_t		 lock;		/* ops */
	struct relay_op		*ops;
};

static int
nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl == -1 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

struct relay *
relay_new(void)
{
	struct relay *r = calloc(1, sizeof *r);
	struct epoll_event ev;

	if (r == NULL)
		return NULL;
	r->ep = epoll_create1(EPOLL_CLOEXEC);
	r->wake.kind = K_WAKE;
	r->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&r->lock, NULL);
	if (r->ep == -1 || r->wake.fd == -1) {
		if (r->ep != -1)
			close(r->ep);
		if (r->wake.fd != -1)
			close(r->wake.fd);
		free(r);
		return NULL;
	}
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.ptr = &r->wake;
	epoll_ctl(r->ep, EPOLL_CTL_ADD, r->wake.fd, &ev);
	return r;
}

static void
relay_poke(struct relay *r)
{
	uint64_t one = 1;

	if (write(r->wake.fd, &one, sizeof one) < 0) {
		/* the counter is full: a wake-up is pending anyway */
	}
}

static void
relay_queue(struct relay *r, struct relay_op *op)
{
	struct relay_op **tail;

	pthread_mutex_lock(&r->lock);
	for (tail = &r->ops; *tail; tail = &(*tail)->next)
		;
	*tail = op;
	pthread_mutex_unlock(&r->lock);
	relay_poke(r);
}

int
relay_listen(struct relay *r, int lfd, relay_dial_fn dial, void *arg,
    long long id)
{
	struct relay_listener *l = calloc(1, sizeof *l);
	struct relay_op *op = calloc(1, sizeof *op);

	if (l == NULL || op == NULL || nonblock(lfd) == -1) {
		free(l);
		free(op);
		return -1;
	}
	l->kind = K_LISTEN;
	l->fd = lfd;
	l->dial = dial;
	l->arg = arg;
	l->id = id;
	op->kind = OP_LISTEN;
	op->l = l;
	relay_queue(r, op);
	return 0;
}

void
relay_unlisten(struct relay *r, long long id)
{
	struct relay_op *op = calloc(1, sizeof *op);

	if (op == NULL)
		return;
	op->kind = OP_UNLISTEN;
	op->id = id;
	relay_queue(r, op);
}

int
relay_watch(struct relay *r, int fd, relay_ready_fn ready, void *arg)
{
	struct relay_watcher *w = calloc(1, sizeof *w);
	struct epoll_event ev;

	if (w == NULL)
		return -1;
	w->kind = K_WATCH;
	w->fd = fd;
	w->ready = ready;
	w->arg = arg;
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.ptr = w;
	if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) == -1) {
		free(w);
		return -1;
	}
	w->next = r->watchers;
	r->watchers = w;
	return 0;
}

void
relay_stop(struct relay *r)
{
	r->stop = 1;
	relay_poke(r);
}

/* Apply what other threads asked for (in the loop thread). */
static void
relay_ops(struct relay *r)
{
	struct relay_op *op, *next;
	uint64_t n;

	if (read(r->wake.fd, &n, sizeof n) < 0) {
		/* nothing pending */
	}
	pthread_mutex_lock(&r->lock);
	op = r->ops;
	r->ops = NULL;
	pthread_mutex_unlock(&r->lock);
	for (; op; op = next) {
		next = op->next;
		if (op->kind == OP_LISTEN) {
			struct epoll_event ev;

			memset(&ev, 0, sizeof ev);
			ev.events = EPOLLIN;
			ev.data.ptr = op->l;
			if (epoll_ctl(r->ep, EPOLL_CTL_ADD, op->l->fd, &ev) ==
			    -1) {
				close(op->l->fd);
				free(op->l);
			} else {
				op->l->next = r->listeners;
				r->listeners = op->l;
			}
		} else {
			struct relay_listener **lp = &r->listeners, *l;

			while ((l = *lp) != NULL) {
				if (l->id != op->id) {
					lp = &l->next;
					continue;
				}
				*lp = l->next;
				epoll_ctl(r->ep, EPOLL_CTL_DEL, l->fd, NULL);
				close(l->fd);
				l->kind = K_GONE;
				l->next = r->gone;
				r->gone = l;
			}
		}
		free(op);
	}
}

static void
pair_close(struct relay *r, struct relay_pair *p)
{
	int i;

	if (p->dead)
		return;
	p->dead = 1;
	for (i = 0; i < 2; i++) {
		if (!p->end[i].removed)
			epoll_ctl(r->ep, EPOLL_CTL_DEL, p->end[i].fd, NULL);
		close(p->end[i].fd);
	}
	if (p->prev)
		p->prev->next = p->next;
	else
		r->pairs = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->next = r->dead;
	r->dead = p;
	r->npairs--;
}

/* Register what each end waits for now. */
static void
pair_update(struct relay *r, struct relay_pair *p)
{
	int i;

	if (p->dead)
		return;
	if (p->eof[0] && p->eof[1] && p->len[0] == p->off[0] &&
	    p->len[1] == p->off[1]) {
		pair_close(r, p);
		return;
	}
	for (i = 0; i < 2; i++) {
		struct relay_end *e = &p->end[i];
		unsigned want = 0;
		struct epoll_event ev;

		if (p->eof[i] && p->shut[i]) {
			/* nothing more to read or write here: out of epoll,
			 * or its hang-up would be reported on every wait */
			if (!e->removed)
				epoll_ctl(r->ep, EPOLL_CTL_DEL, e->fd, NULL);
			e->removed = 1;
			continue;
		}
		if (i == 1 && p->connecting)
			want = EPOLLOUT;
		else {
			if (!p->eof[i] && p->len[i] < RELAY_BUF)
				want |= EPOLLIN;
			if (p->len[1 - i] > p->off[1 - i])
				want |= EPOLLOUT;
		}
		if (want == e->events)
			continue;
		memset(&ev, 0, sizeof ev);
		ev.events = want;
		ev.data.ptr = e;
		if (epoll_ctl(r->ep, EPOLL_CTL_MOD, e->fd, &ev) == -1) {
			pair_close(r, p);
			return;
		}
		e->events = want;
	}
}

/* Write what end `from` sent to the other end, as much as it takes:
 * 0, or -1 on a write error. */
static int
pair_flush(struct relay_pair *p, int from)
{
	int to = 1 - from;
	ssize_t n;

	if (to == 1 && p->connecting)
		return 0;
	while (p->len[from] > p->off[from]) {
		n = write(p->end[to].fd, p->buf[from] + p->off[from],
		    p->len[from] - p->off[from]);
		if (n > 0)
			p->off[from] += (size_t)n;
		else if (n == -1 && (errno == EAGAIN || errno == EINTR))
			break;
		else
			return -1;
	}
	if (p->off[from] == p->len[from])
		p->off[from] = p->len[from] = 0;	/* room again */
	/* all that end `from` sent is written: pass its EOF on */
	if (p->eof[from] && p->off[from] == p->len[from] && !p->shut[to]) {
		shutdown(p->end[to].fd, SHUT_WR);
		p->shut[to] = 1;
	}
	return 0;
}

/* Move bytes on end i: read into its buffer and pass them on; write
 * what the other end sent. */
static void
end_ready(struct relay *r, struct relay_end *e, unsigned events)
{
	struct relay_pair *p = e->pair;
	int i = e->side, o = 1 - i;
	ssize_t n;

	if (p->dead)
		return;
	if (events & EPOLLERR) {
		pair_close(r, p);
		return;
	}
	if (i == 1 && p->connecting) {
		int err = 0;
		socklen_t len = sizeof err;

		if (getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &len) ==
		    -1 || err != 0) {
			pair_close(r, p);
			return;
		}
		p->connecting = 0;
		events = EPOLLOUT;
	}
	if ((events & (EPOLLIN | EPOLLHUP)) && !p->eof[i] &&
	    p->len[i] < RELAY_BUF) {
		n = read(e->fd, p->buf[i] + p->len[i], RELAY_BUF - p->len[i]);
		if (n > 0)
			p->len[i] += (size_t)n;
		else if (n == 0)
			p->eof[i] = 1;
		else if (errno != EAGAIN && errno != EINTR) {
			pair_close(r, p);
			return;
		}
		if (pair_flush(p, i) == -1) {
			pair_close(r, p);
			return;
		}
	}
	if ((events & EPOLLOUT) && pair_flush(p, o) == -1) {
		pair_close(r, p);
		return;
	}
	/* Hung up for good (a Unix socket's peer closed it; a TCP one both
	 * ways) and its EOF read: nothing can be written to it either. The
	 * other end's bytes for it have nowhere to go; without them it
	 * leaves epoll (pair_update), where its hang-up would be reported on
	 * every wait for as long as the other end stays open and quiet. */
	if ((events & EPOLLHUP) && p->eof[i] && !p->shut[i]) {
		if (p->len[o] > p->off[o]) {
			pair_close(r, p);
			return;
		}
		p->shut[i] = 1;
	}
	pair_update(r, p);
}

static void
listener_ready(struct relay *r, struct relay_listener *l)
{
	for (;;) {
		int c = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC), d, one = 1;
		struct relay_pair *p;
		struct epoll_event ev;

		if (c == -1)
			return;
		if (r->npairs >= RELAY_CONNECTIONS_MAX ||
		    (d = l->dial(l->arg)) == -1) {
			close(c);
			continue;
		}
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		setsockopt(d, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		p = calloc(1, sizeof *p);
		if (p == NULL) {
			close(c);
			close(d);
			continue;
		}
		p->end[0].kind = p->end[1].kind = K_END;
		p->end[0].fd = c;
		p->end[1].fd = d;
		p->end[1].side = 1;
		p->end[0].pair = p->end[1].pair = p;
		p->connecting = 1;
		memset(&ev, 0, sizeof ev);
		ev.data.ptr = &p->end[0];
		if (epoll_ctl(r->ep, EPOLL_CTL_ADD, c, &ev) == -1) {
			close(c);
			close(d);
			free(p);
			continue;
		}
		ev.data.ptr = &p->end[1];
		if (epoll_ctl(r->ep, EPOLL_CTL_ADD, d, &ev) == -1) {
			epoll_ctl(r->ep, EPOLL_CTL_DEL, c, NULL);
			close(c);
			close(d);
			free(p);
			continue;
		}
		p->next = r->pairs;
		if (r->pairs)
			r->pairs->prev = p;
		r->pairs = p;
		r->npairs++;
		pair_update(r, p);
	}
}

/* Free the pairs and listeners closed while a batch of events was handled. */
static void
relay_reap(struct relay *r)
{
	while (r->dead) {
		struct relay_pair *p = r->dead;

		r->dead = p->next;
		free(p);
	}
	while (r->gone) {
		struct relay_listener *l = r->gone;

		r->gone = l->next;
		free(l);
	}
}

void
relay_run(struct relay *r)
{
	struct epoll_event evs[64];

	while (!r->stop) {
		int n = epoll_wait(r->ep, evs, 64, -1), i;

		if (n == -1 && errno != EINTR)
			break;
		for (i = 0; i < n; i++) {
			enum relay_kind *k = evs[i].data.ptr;

			switch (*k) {
			case K_LISTEN:
				listener_ready(r, evs[i].data.ptr);
				break;
			case K_END:
				end_ready(r, evs[i].data.ptr, evs[i].events);
				break;
			case K_WATCH: {
				struct relay_watcher *w = evs[i].data.ptr;

				w->ready(w->fd, w->arg);
				break;
			}
			case K_WAKE:
				relay_ops(r);
				break;
			case K_GONE:
				break;
			}
		}
		relay_reap(r);
	}
}

void
relay_free(struct relay *r)
{
	struct relay_listener *l;
	struct relay_watcher *w;
	struct relay_op *op;

	if (r == NULL)
		return;
	while (r->pairs)
		pair_close(r, r->pairs);
	relay_reap(r);
	while ((l = r->listeners) != NULL) {
		r->listeners = l->next;
		close(l->fd);
		free(l);
	}
	while ((w = r->watchers) != NULL) {
		r->watchers = w->next;
		free(w);
	}
	while ((op = r->ops) != NULL) {
		r->ops = op->next;
		if (op->kind == OP_LISTEN) {
			close(op->l->fd);
			free(op->l);
		}
		free(op);
	}
	close(r->ep);
	close(r->wake.fd);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int
relay_dial_tcp(const char *host, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int s;

	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr)
	    == 1) {
		ss.ss_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host,
	    &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		ss.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port =
		    htons((uint16_t)port);
		len = sizeof(struct sockaddr_in6);
	} else {
		errno = EINVAL;
		return -1;
	}
	s = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (s == -1)
		return -1;
	if (connect(s, (struct sockaddr *)&ss, len) == -1 &&
	    errno != EINPROGRESS) {
		close(s);
		return -1;
	}
	return s;
}

static int
unix_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa->sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

int
relay_dial_unix(const char *path)
{
	struct sockaddr_un sa;
	int s;

	if (unix_addr(path, &sa) == -1)
		return -1;
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s == -1)
		return -1;
	if (connect(s, (struct sockaddr *)&sa, sizeof sa) == -1 &&
	    errno != EINPROGRESS && errno != EAGAIN) {
		close(s);
		return -1;
	}
	return s;
}

int
relay_listen_tcp(const char *host, int port)
{
	struct sockaddr_in sa;
	int s, one = 1;

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		errno = EINVAL;
		return -1;
	}
	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s == -1)
		return -1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(s, (struct sockaddr *)&sa, sizeof sa) == -1 ||
	    listen(s, 128) == -1) {
		int e = errno;

		close(s);
		errno = e;
		return -1;
	}
	return s;
}

int
relay_listen_unix(const char *path, unsigned mode)
{
	struct sockaddr_un sa;
	int s;

	if (unix_addr(path, &sa) == -1)
		return -1;
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s == -1)
		return -1;
	unlink(path);
	if (bind(s, (struct sockaddr *)&sa, sizeof sa) == -1 ||
	    chmod(path, (mode_t)mode) == -1 || listen(s, 512) == -1) {
		int e = errno;

		close(s);
		unlink(path);
		errno = e;
		return -1;
	}
	return s;
}
