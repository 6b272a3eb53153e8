/* The portal (control plane): shared types for the route table, the
 * handlers, the store and the job runner. */
#ifndef NUBO_PORTAL_H
#define NUBO_PORTAL_H

#include <jansson.h>
#include <sqlite3.h>

#include "httpd.h"
#include "jsonx.h"
#include "opts.h"

/* Where the sealing key lives unless --secrets-key says otherwise:
 * outside the data folder, so that a copy of it reveals no secret. */
#define NUBO_SECRETS_KEY_DEFAULT NUBO_CONFDIR "/secrets.key"
/* A node that reported within this many seconds is online (it reports
 * every 2 s): environments' node_online, nodes' online. */
#define PORTAL_NODE_FRESH	10

struct portal {
	char			*data_dir;
	char			*store_path;
	char			*secrets_key;	/* the sealing key's file */
	char			*listen;
	char			*cloud_domain;	/* environment hostnames */
	char			*public_url;	/* how clients and nodes reach us */
	unsigned		 threads;
	int			 tls;		/* HTTPS: cookies are Secure */
	unsigned		 mx_rate;	/* Mendix faces: requests per
						 * minute and API key */
	struct http_server	*http;
};

/* Trust connections from a node's address (ip): they may use the
 * connections kept for nodes (http_server_trust). portal.c */
void portal_trust(struct portal *, const char *ip);

/* Who may call a route. Platform admins pass every check but ACCESS_AGENT. */
enum access {
	ACCESS_PUBLIC,		/* no key needed */
	ACCESS_USER,		/* any valid API key */
	ACCESS_ADMIN,		/* a platform admin */
	ACCESS_AGENT,		/* a node agent (node token) */
	ACCESS_APP_MEMBER,	/* any member of {app} */
	ACCESS_APP_TRANSPORT,	/* the permission on {env}, or on any env */
	ACCESS_APP_BACKUPS,
	ACCESS_APP_SETTINGS,
	ACCESS_APP_LOGS,
	ACCESS_APP_MANAGE,
	ACCESS_APP_TC,		/* the Technical Contact of {app} */
	ACCESS_NODE_VIEW,	/* node TC, or a member of the node's app */
	ACCESS_NODE_TRANSPORT,	/* node TC, or transport on some environment
				 * of the node's app */
	ACCESS_NODE_TC,		/* the Technical Contact of {node} */
};

struct preq;
typedef void (*route_handler)(struct preq *);

/* The faces of the API (docs/MENDIX-API.md): nubo's own under /api/v1,
 * and the Mendix Cloud APIs — each a prefix, an authentication and an
 * error shape of its own, mapped onto the same handlers (mx.c). */
enum face {
	FACE_NUBO,		/* /api/v1, patterns relative to it */
	FACE_MX,		/* /api/1 and /api/v2, patterns absolute */
	FACE_MX4,		/* /api/v4 (personal access tokens) */
};

/* Route flags. */
#define ROUTE_MULTIPART	0x1	/* the body is a multipart upload, streamed
				 * to a file (mx_upload_begin) */
#define ROUTE_DELETE_BODY 0x2	/* a DELETE that takes a JSON body (the
				 * Mendix tags) */

struct route {
	const char	*method;
	const char	*pattern;	/* /apps/{app}/environments/{env} */
	route_handler	 handler;
	enum access	 access;
	const char	*summary;	/* one line, for the OpenAPI document */
	enum face	 face;
	unsigned	 flags;
};

/* The caller, as authenticated by routes.c. */
struct principal {
	long long	 user_id;	/* 0 for agents and anonymous calls */
	int		 is_admin;
	long long	 key_id;
	int		 read_only;
	json_t		*app_scope;	/* NULL, or array of app uuids */
	char		 expires_at[32];	/* the key's expiry, or "" */
	long long	 node_id;	/* agent calls: the node */
	/* A browser session (the cookie) rather than an API key: its CSRF
	 * token, which GET /me tells the page. */
	int		 session;
	char		 csrf[48];
	/* A personal access token (a key with scopes): valid only on the
	 * Mendix Deploy API v4; without the write scope it is read-only. */
	int		 pat;
};

/* One API request as handlers see it: path objects already resolved and
 * access already checked. */
struct preq {
	struct http_req		*http;
	struct portal		*portal;
	sqlite3			*db;
	const struct route	*route;
	struct principal	 who;
	json_t			*body;		/* parsed JSON object or NULL */

	long long		 app_id;	/* {app}, when the route has it */
	long long		 node_id;	/* {node}, or the app's node */
	const char		*env;		/* {env} as given */

	/* A face calling a handler (mx_call): its reply is kept here
	 * instead of being sent. */
	int			 capture;
	unsigned		 cap_status;
	json_t			*cap_body;	/* a 2xx answer, or NULL */
	char			*cap_code;	/* an error's code and message */
	char			*cap_message;
	void			*face_ctx;	/* the face's own state (mx.c) */

	/* wait_reply() (waits.h): what is waited for (a job's or a
	 * migration's id), how it is checked, what then replies, its
	 * argument, and until when (util_mono()) */
	long long		 wait_job;
	int			(*wait_check)(sqlite3 *, struct preq *);
	route_handler		 wait_then;
	const void		*wait_arg;
	double			 wait_until;
	/* not 0: the wait also ends once the revision differs */
	unsigned long long	 wait_rev;
	/* what a check kept for the reply (a node's answer), or NULL */
	json_t			*wait_data;
};

extern const struct route routes[];
extern const size_t routes_count;

/* routes.c */
void routes_begin(struct http_req *);
void routes_finish(struct http_req *);
void routes_cleanup(struct http_req *);
void routes_resume(struct http_req *);
json_t *routes_describe(void);
/* The table as [{method, path, access}] for `nubod routes`. */
json_t *routes_table(void);

/* web.c: the portal's pages (GET / and the assets built into nubod),
 * for every path outside /api/v1. */
void web_serve(struct preq *);
/* The Content-Security-Policy and the other security headers of every
 * page and API answer. */
void web_security_headers(struct preq *);

/* Reply helpers for handlers (wrap httpd's). */
#define preq_param(r, n) http_param((r)->http, (n))
#define preq_query(r, n) http_query((r)->http, (n))
void reply(struct preq *, unsigned status, json_t *body);
/* The same with the JSON already written (taken over). */
void reply_text(struct preq *, unsigned status, char *text);
/* A reply without a body (204). */
void reply_empty(struct preq *, unsigned status);
void reply_error(struct preq *, unsigned status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Check the body against fields; on failure reply 400 BAD_REQUEST and
 * return -1 so handlers read `if (body_check(r, fields) == -1) return;` */
int body_check(struct preq *, const struct jfield *fields);
/* route-agent.c: body_check() for the node->portal protocol
 * (node-contract.md, *Compatibility*): a field this portal does not know,
 * sent by a node newer than the portal, is ignored (noted in the log once
 * per node and field); known fields are checked as body_check() does. */
int agent_body_check(struct preq *, const struct jfield *fields);
/* The same for an object inside the body (where: "environments[3]"): 0, or
 * -1 with *cause. */
int agent_fields_check(struct preq *, json_t *obj, const struct jfield *fields,
    const char *where, char **cause);
/* route-envs.c: the URL of an environment's hostname host on a node
 * whose router answers at router (plain) and router_tls (HTTPS, taken
 * first; either NULL), as users reach it, without a path (caller
 * frees). */
char *envs_url(const char *router, const char *router_tls, const char *host);
/* route-envs.c: the row of {env} for r's app; NULL after replying 404. */
json_t *envs_row(struct preq *r);
/* Reply 500 with the store's message; for "cannot happen" paths. */
void reply_store_error(struct preq *);

/* route-apps.c, route-nodes.c: an app / node as the API shows it to the
 * request's caller (NULL on a store error), the app a uuid or subdomain
 * names (0: no such app; the uuid first), and the user an email or
 * numeric id names (0: no such user). */
json_t *apps_json(sqlite3 *db, long long app_id);
long long apps_find(sqlite3 *db, const char *ref);
/* route-apps.c: detach what a deleted app leaves under its id (its
 * activity, its jobs) in the caller's transaction; STORE_OK or an error. */
int apps_detach(sqlite3 *db, long long app_id, const char *sub);
json_t *nodes_json(struct preq *, long long node_id);
long long nodes_user_id(sqlite3 *db, const char *ref);

/* Link app_id to node_id by SPEC §2's rules, in one transaction, logged
 * as user_id (0: the system, e.g. a migration job). Checking that the
 * caller is Technical Contact of both is the caller's business. Returns
 * 0 with *unlinked_app the app that was unlinked automatically (0: none;
 * linking an app already on the node changes nothing), or -1 with
 * *status (409/500), *code (a stable error code) and *cause (a message
 * to free). */
int nodes_link_app(sqlite3 *db, long long user_id, long long node_id,
    long long app_id, long long *unlinked_app, unsigned *status,
    const char **code, char **cause);

/* route-agent.c: an agent call presents the certificate whose key is
 * pinned for its node; 0, or -1 after replying 403. */
int agent_pin_check(struct preq *);

/* activity.c: record a state change (who, when, what). */
void activity_log(struct preq *, const char *action, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same for another app / node than the request's (0: none), e.g. the
 * app that linking unlinks automatically. */
void activity_log_at(struct preq *, long long app_id, long long node_id,
    const char *action, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The same outside a request (jobs): user_id 0 is "the system". */
void activity_record(sqlite3 *db, long long user_id, long long app_id,
    long long node_id, const char *action, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Reply with one page (?limit=N, 1 to NUBO_ACTIVITY_PAGE_MAX, default
 * 100; 400 BAD_REQUEST otherwise) of the activity log of the request's
 * app, each entry naming its node, or of its node, each entry naming its
 * app; newest first. */
enum activity_of { ACTIVITY_OF_APP, ACTIVITY_OF_NODE };
void activity_reply_page(struct preq *, enum activity_of);

#endif
