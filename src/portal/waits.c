/* Requests held until what they ask about changes (waits.h). */
#include "waits.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* How often the store checks run when nothing woke them (ms). */
#define WAITS_POLL_MS		100
/* How often a check that asks a node runs (ms), and how many such
 * requests may wait at once. */
#define WAITS_NODE_POLL_MS	300
#define WAITS_THREADS_MAX	64

struct waiter {
	struct preq		*r;
	struct waiter		*next;
};

static pthread_mutex_t waits_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t waits_cond = PTHREAD_COND_INITIALIZER;
/* the node checks' threads: told to stop, and telling they ended (not
 * woken by waits_changed(): a job's progress is not a log line) */
static pthread_cond_t threads_cond = PTHREAD_COND_INITIALIZER;
static struct waiter *waiters;		/* the store checks' */
static unsigned waits_threads;		/* wait_reply_thread()'s running */
static int waits_stopping;
static int waits_started;
static pthread_t waits_thread;

void
waits_changed(void)
{
	pthread_mutex_lock(&waits_lock);
	pthread_cond_broadcast(&waits_cond);
	pthread_mutex_unlock(&waits_lock);
}

/* Now plus ms, as pthread_cond_timedwait() takes it. */
static struct timespec
deadline_ms(long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	return ts;
}

/* 1 when r's wait is over. */
static int
wait_over(sqlite3 *db, struct preq *r)
{
	return util_mono() > r->wait_until || r->wait_check(db, r);
}

/* httpd: r's connection is suspended now (a store check). */
static void
waiter_suspended(struct http_req *h)
{
	struct waiter *w = xcalloc(1, sizeof *w);

	w->r = h->ctx;
	pthread_mutex_lock(&waits_lock);
	if (waits_stopping || !waits_started) {
		pthread_mutex_unlock(&waits_lock);
		free(w);
		http_resume(h);
		return;
	}
	w->next = waiters;
	waiters = w;
	pthread_mutex_unlock(&waits_lock);
}

static void
wait_set(struct preq *r, int secs, wait_check check, route_handler then,
    const void *arg)
{
	r->wait_check = check;
	r->wait_then = then;
	r->wait_arg = arg;
	r->wait_until = util_mono() + secs;
}

void
wait_reply(struct preq *r, int secs, wait_check check, route_handler then,
    const void *arg)
{
	wait_set(r, secs, check, then, arg);
	http_suspend(r->http, waiter_suspended);
}

static void *
waits_run(void *arg)
{
	sqlite3 *db = store_db();
	struct waiter **p, *w;
	struct timespec ts;

	(void)arg;
	pthread_mutex_lock(&waits_lock);
	while (!waits_stopping) {
		for (p = &waiters; (w = *p) != NULL;) {
			if (!wait_over(db, w->r)) {
				p = &w->next;
				continue;
			}
			*p = w->next;
			http_resume(w->r->http);
			free(w);
		}
		ts = deadline_ms(WAITS_POLL_MS);
		if (!waits_stopping)
			pthread_cond_timedwait(&waits_cond, &waits_lock, &ts);
	}
	pthread_mutex_unlock(&waits_lock);
	store_close_thread();
	return NULL;
}

/* A wait_reply_thread() request's own thread: its check every
 * WAITS_NODE_POLL_MS until it says so, the time is up or the portal
 * stops. */
static void *
waiter_thread(void *arg)
{
	struct preq *r = arg;
	sqlite3 *db = store_db();
	struct timespec ts;
	int over;

	for (;;) {
		over = wait_over(db, r);
		pthread_mutex_lock(&waits_lock);
		if (!over && !waits_stopping) {
			ts = deadline_ms(WAITS_NODE_POLL_MS);
			pthread_cond_timedwait(&threads_cond, &waits_lock, &ts);
			over = waits_stopping;
		}
		if (over) {
			http_resume(r->http);
			waits_threads--;
			pthread_cond_broadcast(&threads_cond);
			pthread_mutex_unlock(&waits_lock);
			break;
		}
		pthread_mutex_unlock(&waits_lock);
	}
	store_close_thread();
	return NULL;
}

/* httpd: r's connection is suspended now (a check on its own thread). */
static void
waiter_thread_suspended(struct http_req *h)
{
	pthread_attr_t attr;
	pthread_t t;
	int ok;

	pthread_mutex_lock(&waits_lock);
	ok = !waits_stopping && waits_threads < WAITS_THREADS_MAX;
	if (ok) {
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		ok = pthread_create(&t, &attr, waiter_thread, h->ctx) == 0;
		pthread_attr_destroy(&attr);
		if (ok)
			waits_threads++;
	}
	pthread_mutex_unlock(&waits_lock);
	if (!ok)
		http_resume(h);		/* answered as if it had not waited */
}

void
wait_reply_thread(struct preq *r, int secs, wait_check check,
    route_handler then, const void *arg)
{
	wait_set(r, secs, check, then, arg);
	http_suspend(r->http, waiter_thread_suspended);
}

void
waits_start(void)
{
	pthread_mutex_lock(&waits_lock);
	waits_stopping = 0;
	pthread_mutex_unlock(&waits_lock);
	if (pthread_create(&waits_thread, NULL, waits_run, NULL) == 0)
		waits_started = 1;
	else
		log_warn("no waits thread: held requests are answered at once");
}

void
waits_stop(void)
{
	struct waiter *w;

	pthread_mutex_lock(&waits_lock);
	waits_stopping = 1;
	pthread_cond_broadcast(&waits_cond);
	pthread_cond_broadcast(&threads_cond);
	while ((w = waiters) != NULL) {
		waiters = w->next;
		http_resume(w->r->http);
		free(w);
	}
	/* the node checks' threads answer their requests as they see it;
	 * one inside a node call ends with it */
	while (waits_threads > 0)
		pthread_cond_wait(&threads_cond, &waits_lock);
	pthread_mutex_unlock(&waits_lock);
	if (waits_started)
		pthread_join(waits_thread, NULL);
	waits_started = 0;
}

unsigned long long
wait_revision(json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS), *c;
	unsigned long long h = 1469598103934665603ULL;

	for (c = text; c && *c; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ULL;
	free(text);
	return h ? h : 1;
}

unsigned long long
wait_revision_parse(const char *s)
{
	unsigned long long v = 0;
	int i;

	if (s == NULL || strlen(s) != 16)
		return 0;
	for (i = 0; i < 16; i++) {
		int c = (unsigned char)s[i];

		if (c >= '0' && c <= '9')
			v = v << 4 | (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (unsigned)(c - 'a' + 10);
		else
			return 0;
	}
	return v;
}

int
wait_query(struct preq *r, int max, long long *secs, unsigned long long *seen)
{
	const char *wait = preq_query(r, "wait");

	if (wait == NULL && preq_query(r, "revision") == NULL)
		return 0;
	if (wait == NULL || util_parse_int(wait, 1, max, secs) == -1 ||
	    (*seen = wait_revision_parse(preq_query(r, "revision"))) == 0) {
		reply_error(r, 400, "BAD_QUERY", "wait must be 1 to %d seconds, "
		    "with the revision last answered (16 hexadecimal digits)",
		    max);
		return -1;
	}
	return 1;
}
