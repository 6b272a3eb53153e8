/* Requests held until what they ask about changes (long polling): the
 * connection is suspended, no HTTP thread waits, and the request is
 * answered once its check says so, or when its time is up. GET
 * /jobs/{id}?wait=, GET /migrations/{id}?wait= and GET …/logs?wait= are
 * such requests; so are the Mendix API's actions that answer when their
 * job ends. */
#ifndef NUBO_WAITS_H
#define NUBO_WAITS_H

#include <sqlite3.h>

#include "portal.h"

/* 1 when r is to be answered now (what it waits for changed, ended or is
 * gone), 0 to go on waiting; db is the caller's own store connection. */
typedef int (*wait_check)(sqlite3 *db, struct preq *r);

/* Hold r for at most secs seconds: check runs on the waits thread every
 * WAITS_POLL_MS and at once after waits_changed(); then then(r) replies
 * (r->wait_* say what was waited for). Call it from a handler instead of
 * replying. Checks that read the store only: one thread runs them all. */
void wait_reply(struct preq *r, int secs, wait_check check,
    route_handler then, const void *arg);
/* The same for a check that asks a node (slow, may fail): it runs on a
 * thread of its own every WAITS_NODE_POLL_MS, so that one slow node holds
 * up no other request. At most WAITS_THREADS_MAX such requests wait at
 * once; beyond that then(r) answers at once, as a request that did not
 * wait. */
void wait_reply_thread(struct preq *r, int secs, wait_check check,
    route_handler then, const void *arg);

/* Something waited for may have changed: the store checks run now. */
void waits_changed(void);

/* Start the waits thread; answer every waiting request now and wait no
 * more (before the HTTP server stops: it cannot stop with suspended
 * requests). */
void waits_start(void);
void waits_stop(void);

/* A long poll's revision: FNV-1a of j's canonical text, never 0; what
 * the client saw, as it said it (16 hexadecimal digits), or 0. */
unsigned long long wait_revision(json_t *j);
unsigned long long wait_revision_parse(const char *s);
/* ?wait=S&revision=R: 1 (with *secs and *seen) when the request asks to
 * be held, 0 when it does not, -1 when it asks wrongly (replied 400). */
int wait_query(struct preq *r, int max, long long *secs,
    unsigned long long *seen);

#endif
