/* Counted file replies (httpd.c, used by the node's downloads that count
 * for offboarding): a real server on loopback serves a file; when each
 * request is over, cleanup sees the range, the bytes the connection took
 * and whether it completed OK — for a whole file, a Range, a client that
 * went away midway, and an error reply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "httpd.h"

#define FILE_SIZE	(64LL * 1024 * 1024)	/* far above socket buffers */

static char file_path[] = "/tmp/nubo-test-httpd-count.XXXXXX";

/* What the last request's cleanup saw. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int		 done;
	int		 served;	/* http_file_served() == 0 */
	int		 completed_ok;
	uint64_t	 start, sent, total;
} seen;

static void
t_begin(struct http_req *h)
{
	(void)h;
}

static void
t_finish(struct http_req *h)
{
	int fd;

	if (strcmp(h->url, "/error") == 0) {
		http_reply_error(h, 404, "NOT_FOUND", "no such thing");
		return;
	}
	fd = open(file_path, O_RDONLY | O_CLOEXEC);
	http_reply_file_counted(h, fd, (uint64_t)FILE_SIZE,
	    "application/octet-stream", "f.bin");
}

static void
t_cleanup(struct http_req *h)
{
	uint64_t start = 0, sent = 0, total = 0;
	int served = http_file_served(h, &start, &sent, &total) == 0;

	pthread_mutex_lock(&seen_lock);
	seen.served = served;
	seen.completed_ok = h->completed_ok;
	seen.start = start;
	seen.sent = sent;
	seen.total = total;
	seen.done = 1;
	pthread_mutex_unlock(&seen_lock);
}

static const struct http_server_ops ops = { .begin = t_begin,
    .finish = t_finish, .cleanup = t_cleanup };
static struct http_server *srv;

/* Send request (with an optional Range header) and read up to max bytes
 * of the answer (head and body), then close; the bytes read. */
static long long
fetch(const char *path, const char *range, long long max)
{
	struct sockaddr_in sa;
	char req[256], buf[65536];
	long long got = 0;
	int s = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)http_server_port(srv));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof sa), 0);
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n%s%s%s"
	    "Connection: close\r\n\r\n", path, range ? "Range: bytes=" : "",
	    range ? range : "", range ? "\r\n" : "");
	assert_int_equal(write(s, req, strlen(req)), (ssize_t)strlen(req));
	while (got < max) {
		ssize_t n = read(s, buf, sizeof buf);

		if (n <= 0)
			break;
		got += n;
	}
	close(s);
	return got;
}

/* Wait for the request's cleanup (up to 10 s). */
static void
wait_done(void)
{
	int i, done = 0;

	for (i = 0; i < 1000 && !done; i++) {
		pthread_mutex_lock(&seen_lock);
		done = seen.done;
		pthread_mutex_unlock(&seen_lock);
		if (!done)
			usleep(10000);
	}
	assert_true(done);
}

static void
reset(void)
{
	pthread_mutex_lock(&seen_lock);
	memset(&seen, 0, sizeof seen);
	pthread_mutex_unlock(&seen_lock);
}

static void
test_whole_file(void **state)
{
	(void)state;
	reset();
	assert_true(fetch("/file", NULL, FILE_SIZE * 2) > FILE_SIZE);
	wait_done();
	assert_true(seen.served);
	assert_true(seen.completed_ok);
	assert_int_equal(seen.start, 0);
	assert_int_equal(seen.sent, FILE_SIZE);
	assert_int_equal(seen.total, FILE_SIZE);
}

static void
test_range(void **state)
{
	(void)state;
	reset();
	fetch("/file", "1000-1999", FILE_SIZE);
	wait_done();
	assert_true(seen.served);
	assert_true(seen.completed_ok);
	assert_int_equal(seen.start, 1000);
	assert_int_equal(seen.sent, 1000);
	assert_int_equal(seen.total, FILE_SIZE);
}

/* A client that reads 1 MB and goes away: not completed, and credited
 * with no more than the bytes written before it broke. */
static void
test_broken(void **state)
{
	(void)state;
	reset();
	fetch("/file", NULL, 1024 * 1024);
	wait_done();
	assert_true(seen.served);
	assert_false(seen.completed_ok);
	assert_int_equal(seen.start, 0);
	assert_true(seen.sent < (uint64_t)FILE_SIZE);
}

static void
test_error_reply(void **state)
{
	(void)state;
	reset();
	fetch("/error", NULL, FILE_SIZE);
	wait_done();
	assert_false(seen.served);
	assert_true(seen.completed_ok);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole_file),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_broken),
		cmocka_unit_test(test_error_reply),
	};
	int fd, rc;

	fd = mkstemp(file_path);
	if (fd == -1 || ftruncate(fd, FILE_SIZE) == -1)
		return 1;
	close(fd);
	srv = http_server_start("127.0.0.1:0", &ops, NULL, 1);
	if (srv == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	http_server_stop(srv);
	unlink(file_path);
	return rc;
}
