/* The byte relay (relay.h) that bridges a sandbox's network namespace:
 * bytes arrive whole and in order both ways for bodies many times its
 * buffer, each side's end of stream is passed on (half-close), many
 * connections run at once, a backend that is not there closes the
 * client's connection instead of hanging it, and a client gone while its
 * backend keeps quiet costs no CPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "relay.h"

#define UPLOAD		(3 * 1024 * 1024 + 17)	/* client → backend */
#define DOWNLOAD	(5 * 1024 * 1024 + 3)	/* backend → client */

static int backend_port, quiet_port;
static char sock_path[108];

static unsigned char
pattern(size_t i, unsigned seed)
{
	return (unsigned char)((i * 31 + seed) ^ (i >> 9));
}

/* The backend: reads until the client's EOF, checking every byte, then
 * answers DOWNLOAD bytes, or "BAD" when something differed. */
static void *
backend_conn(void *arg)
{
	int c = (int)(intptr_t)arg;
	unsigned char buf[65536];
	size_t got = 0, sent = 0;
	int bad = 0;
	ssize_t n;

	/* a slow start, as an app has: the relay's buffer fills up */
	usleep(300 * 1000);
	while ((n = read(c, buf, sizeof buf)) > 0) {
		for (ssize_t k = 0; k < n; k++)
			if (buf[k] != pattern(got + (size_t)k, 1))
				bad = 1;
		got += (size_t)n;
	}
	if (bad || got != UPLOAD) {
		if (write(c, "BAD", 3) < 0)
			bad = 1;
		close(c);
		return NULL;
	}
	while (sent < DOWNLOAD) {
		size_t k, len = DOWNLOAD - sent < sizeof buf ? DOWNLOAD - sent :
		    sizeof buf;

		for (k = 0; k < len; k++)
			buf[k] = pattern(sent + k, 2);
		n = write(c, buf, len);
		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	close(c);
	return NULL;
}

static void *
backend(void *arg)
{
	int l = (int)(intptr_t)arg;

	for (;;) {
		int c = accept(l, NULL, NULL);
		pthread_t t;

		if (c == -1)
			return NULL;
		pthread_create(&t, NULL, backend_conn, (void *)(intptr_t)c);
		pthread_detach(t);
	}
}

static int
dial_backend(void *arg)
{
	(void)arg;
	return relay_dial_tcp("127.0.0.1", backend_port);
}

/* A backend that accepts and then neither reads, writes nor closes (an
 * app's idle pooled connection to its database). */
static void *
quiet_backend(void *arg)
{
	int l = (int)(intptr_t)arg;

	while (accept(l, NULL, NULL) != -1)
		;
	return NULL;
}

static int
dial_quiet(void *arg)
{
	(void)arg;
	return relay_dial_tcp("127.0.0.1", quiet_port);
}

static int
dial_nowhere(void *arg)
{
	(void)arg;
	return relay_dial_tcp("127.0.0.1", 1);	/* nothing listens */
}

static void *
relay_thread(void *arg)
{
	relay_run(arg);
	return NULL;
}

static int
client_connect(void)
{
	struct sockaddr_un sa;
	int s = socket(AF_UNIX, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, sock_path);
	if (connect(s, (struct sockaddr *)&sa, sizeof sa) == -1) {
		close(s);
		return -1;
	}
	return s;
}

static void *
client_upload(void *arg)
{
	int s = (int)(intptr_t)arg;
	unsigned char buf[40000];
	size_t sent = 0;

	while (sent < UPLOAD) {
		size_t k, len = UPLOAD - sent < sizeof buf ? UPLOAD - sent :
		    sizeof buf;
		ssize_t n;

		for (k = 0; k < len; k++)
			buf[k] = pattern(sent + k, 1);
		n = write(s, buf, len);
		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	shutdown(s, SHUT_WR);
	return NULL;
}

/* One whole exchange through the relay: 1 when every byte came back. */
static void *
client_exchange(void *arg)
{
	int s = client_connect(), ok = 1;
	unsigned char buf[65536];
	size_t got = 0;
	pthread_t up;
	ssize_t n;

	(void)arg;
	if (s == -1)
		return (void *)0;
	pthread_create(&up, NULL, client_upload, (void *)(intptr_t)s);
	for (;;) {
		struct pollfd p = { .fd = s, .events = POLLIN };

		/* a stalled relay fails the test instead of hanging it */
		if (poll(&p, 1, 10000) != 1) {
			ok = 0;
			shutdown(s, SHUT_RDWR);
			break;
		}
		if ((n = read(s, buf, sizeof buf)) <= 0)
			break;
		for (ssize_t k = 0; k < n; k++)
			if (buf[k] != pattern(got + (size_t)k, 2))
				ok = 0;
		got += (size_t)n;
	}
	pthread_join(up, NULL);
	close(s);
	return (void *)(intptr_t)(ok && got == DOWNLOAD);
}

static pthread_t relay_tid;

/* A relay listening on sock_path (listener id 1), its loop running; a
 * watcher named first is in place before the loop starts. */
static struct relay *
start_relay_watching(relay_dial_fn dial, int fd, relay_ready_fn ready,
    void *arg)
{
	struct relay *r = relay_new();
	int l;

	assert_non_null(r);
	if (ready)
		assert_int_equal(relay_watch(r, fd, ready, arg), 0);
	snprintf(sock_path, sizeof sock_path, "/tmp/nubo-relay-%d.sock",
	    (int)getpid());
	l = relay_listen_unix(sock_path, 0600);
	assert_true(l >= 0);
	assert_int_equal(relay_listen(r, l, dial, NULL, 1), 0);
	pthread_create(&relay_tid, NULL, relay_thread, r);
	return r;
}

static struct relay *
start_relay(relay_dial_fn dial)
{
	return start_relay_watching(dial, -1, NULL, NULL);
}

/* Stop the relay, wait for its loop and free it. */
static void
end_relay(struct relay *r)
{
	relay_stop(r);
	pthread_join(relay_tid, NULL);
	relay_free(r);
	unlink(sock_path);
}

static void
test_large_both_ways(void **state)
{
	struct relay *r;

	(void)state;
	r = start_relay(dial_backend);
	assert_int_equal((int)(intptr_t)client_exchange(NULL), 1);
	end_relay(r);
}

static void
test_many_at_once(void **state)
{
	pthread_t t[24];
	struct relay *r;
	int i, ok = 0;

	(void)state;
	r = start_relay(dial_backend);
	for (i = 0; i < 24; i++)
		pthread_create(&t[i], NULL, client_exchange, NULL);
	for (i = 0; i < 24; i++) {
		void *res;

		pthread_join(t[i], &res);
		ok += (int)(intptr_t)res;
	}
	assert_int_equal(ok, 24);
	end_relay(r);
}

static void
test_backend_missing(void **state)
{
	struct relay *r;
	struct pollfd p;
	char c;
	int s;

	(void)state;
	r = start_relay(dial_nowhere);
	s = client_connect();
	assert_true(s >= 0);
	p.fd = s;
	p.events = POLLIN;
	/* closed by the relay, not left hanging */
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_int_equal(read(s, &c, 1), 0);
	close(s);
	end_relay(r);
}

/* CPU seconds the relay's thread has used. */
static double
relay_cpu(void)
{
	struct timespec ts;
	clockid_t c;

	assert_int_equal(pthread_getcpuclockid(relay_tid, &c), 0);
	assert_int_equal(clock_gettime(c, &ts), 0);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The client closes its socket (a Unix socket: the relay's end of it is
 * hung up for good) while the backend stays open and quiet. Its EOF is
 * passed on, and the hung-up end leaves the relay's epoll: kept there,
 * its hang-up was reported on every wait, the relay spinning a core until
 * the backend closed — in nubo-init, an app's database connection closed
 * by PostgreSQL while the app kept it. */
static void
test_client_gone_backend_quiet(void **state)
{
	struct relay *r;
	double before, used;
	int s;

	(void)state;
	r = start_relay(dial_quiet);
	s = client_connect();
	assert_true(s >= 0);
	close(s);
	usleep(200 * 1000);
	before = relay_cpu();
	usleep(1000 * 1000);
	used = relay_cpu() - before;
	if (used > 0.1)
		fail_msg("the relay used %.2f s of CPU in 1 s with nothing to "
		    "do", used);
	end_relay(r);
}

static void
test_unlisten(void **state)
{
	struct relay *r;
	int i, refused = 0;

	(void)state;
	r = start_relay(dial_backend);
	relay_unlisten(r, 1);
	/* the socket file stays, its listener is closed: refused */
	for (i = 0; i < 50 && !refused; i++) {
		int s = client_connect();

		refused = s == -1;
		if (s != -1)
			close(s);
		usleep(10000);
	}
	assert_true(refused);
	end_relay(r);
}

/* The pipes of a watcher that holds the relay's loop until let go. */
struct hold {
	int	 poke[2];	/* the test wakes the watcher */
	int	 held[2];	/* the watcher says it holds the loop */
	int	 go[2];		/* the test lets it go */
};

static void
hold_loop(int fd, void *arg)
{
	struct hold *h = arg;
	char c;

	assert_int_equal(read(fd, &c, 1), 1);
	assert_int_equal(write(h->held[1], "h", 1), 1);
	assert_int_equal(read(h->go[0], &c, 1), 1);
}

/*
 * A listener is closed while its own connection waits in the same batch of
 * events: the wake-up that closes it comes first, the listener's event
 * after it. The loop is held in a watcher while both become ready, so the
 * next wait returns them together, in that order.
 */
static void
test_unlisten_while_ready(void **state)
{
	struct relay *r;
	struct hold h;
	int s, i;
	char c;

	(void)state;
	assert_int_equal(pipe(h.poke), 0);
	assert_int_equal(pipe(h.held), 0);
	assert_int_equal(pipe(h.go), 0);
	r = start_relay_watching(dial_backend, h.poke[0], hold_loop, &h);
	/* the listener is in place once a client gets an answer through it */
	s = client_connect();
	assert_true(s >= 0);
	shutdown(s, SHUT_WR);	/* the backend answers "BAD" to no upload */
	assert_int_equal(read(s, &c, 1), 1);
	close(s);

	assert_int_equal(write(h.poke[1], "p", 1), 1);
	assert_int_equal(read(h.held[0], &c, 1), 1);
	relay_unlisten(r, 1);
	s = client_connect();	/* queued on the listener, not yet accepted */
	assert_true(s >= 0);
	assert_int_equal(write(h.go[1], "g", 1), 1);
	/* the listener closes: the waiting client is dropped, not served */
	assert_true(read(s, &c, 1) <= 0);
	close(s);
	end_relay(r);
	for (i = 0; i < 2; i++) {
		close(h.poke[i]);
		close(h.held[i]);
		close(h.go[i]);
	}
}

/* A listening socket on a free port of 127.0.0.1: its fd, or -1. */
static int
listen_loopback(int *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	int l = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l == -1 || bind(l, (struct sockaddr *)&sa, sizeof sa) == -1 ||
	    listen(l, 64) == -1 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) == -1)
		return -1;
	*port = ntohs(sa.sin_port);
	return l;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_large_both_ways),
		cmocka_unit_test(test_many_at_once),
		cmocka_unit_test(test_backend_missing),
		cmocka_unit_test(test_client_gone_backend_quiet),
		cmocka_unit_test(test_unlisten),
		cmocka_unit_test(test_unlisten_while_ready),
	};
	pthread_t t;
	int l = listen_loopback(&backend_port), q = listen_loopback(
	    &quiet_port);

	if (l == -1 || q == -1)
		return 1;
	pthread_create(&t, NULL, backend, (void *)(intptr_t)l);
	pthread_detach(t);
	pthread_create(&t, NULL, quiet_backend, (void *)(intptr_t)q);
	pthread_detach(t);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
