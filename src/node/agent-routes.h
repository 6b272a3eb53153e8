/* The node agent's own route table (same shape as the portal's routes.c):
 * every request under /agent/v1 is matched, authenticated (the portal
 * secret, or a signed URL for the data plane), and its JSON body parsed
 * before a handler runs. */
#ifndef NUBO_AGENT_ROUTES_H
#define NUBO_AGENT_ROUTES_H

#include <jansson.h>

#include "httpd.h"
#include "jsonx.h"
#include "node.h"

enum agent_access {
	AGENT_PORTAL,	/* Authorization: Bearer <portal_secret> */
	AGENT_SIGNED,	/* ?expires=&user=&sig= (signed-url.c), or the secret */
};

struct areq;
typedef void (*agent_handler)(struct areq *);

struct agent_route {
	const char		*method;
	const char		*pattern;	/* /agent/v1/environments/{id} */
	agent_handler		 handler;
	enum agent_access	 access;
	/* Streamed bodies (uploads): called with every chunk instead of
	 * buffering JSON; 0, or -1 after replying. NULL: JSON body. */
	int			(*sink)(struct http_req *, const char *, size_t);
	const char		*summary;
};

struct areq {
	struct http_req		*http;
	const struct agent_route *route;
	json_t			*body;		/* JSON object or NULL */
	long long		 user;		/* signed URLs: the user id */
	struct env		*env;		/* {id}, when the route has it */
	void			*ctx;		/* handler state (streaming) */
	void			(*ctx_free)(void *);
	/* Called when the request is over (sent or dropped), before ctx
	 * is freed: downloads count what they delivered. */
	void			(*done)(struct areq *);
};

void areply(struct areq *, unsigned status, json_t *body);
void areply_error(struct areq *, unsigned status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int abody_check(struct areq *, const struct jfield *fields);

#endif
