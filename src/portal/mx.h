/* The Mendix Cloud API faces (docs/MENDIX-API.md): Deploy API v1 under
 * /api/1 and Deploy API v2 under /api/v2. Their routes are rows of THE
 * route table (routes.c, FACE_MX) that routes.c authenticates, resolves
 * and checks like any other; their handlers (mx-deploy.c, mx-upload.c)
 * translate ids, field names, dates, states and errors and run nubo's own
 * handler for the operation through mx_call() — never an operation of
 * their own. */
#ifndef NUBO_MX_H
#define NUBO_MX_H

#include "portal.h"

/* 1 when url is under a Mendix face's prefix (/api/1, /api/v2). */
int mx_url(const char *url);
/* httpd's error_reply for the faces: {"errorCode", "errorMessage"},
 * nubo's generic codes translated (mx_code). */
void mx_error_reply(struct http_req *, unsigned status, const char *code,
    const char *message);
/* The code a face answers for nubo's code. */
const char *mx_code(const char *code);

/* Deploy API v4 (/api/v4): its prefix, its error shape {"error":
 * {"code": <HTTP status>, "message", "invalid-params"?}}, and its
 * `Authorization: MxToken <token>` (a personal access token, or any API
 * key of the user). */
int mx4_url(const char *url);
void mx4_error_reply(struct http_req *, unsigned status, const char *code,
    const char *message);
int mx4_authenticate(struct preq *);

/* The API key's request budget (portal.mx_rate a minute): 0, or -1
 * after replying 429 with Retry-After. */
int mx_rate_check(struct preq *);

/* routes.c, around every face request: the Mendix-Username and
 * Mendix-ApiKey headers (0, or -1 after replying 401); the path's
 * Mendix parameters given nubo's names ({AppId} → {app}, {Mode} →
 * {env}, {PackageId} → {package}, {JobId} → {id}; an AppId or Mode that
 * can name none is 400 INVALID_APPID / INVALID_ENVIRONMENT); after
 * resolve_path, {env} becomes the environment's own name (0, or -1 after
 * replying). */
int mx_authenticate(struct preq *);
int mx_params(struct preq *);
int mx_resolved(struct preq *);
/* Free what the face kept for the request (an upload's file). */
void mx_cleanup(struct preq *);

/* Run nubo's handler fn for this request with body (taken over; NULL for
 * none) as its JSON body, keeping its reply: the status, with *out its
 * answer for a 2xx (the caller's), else r->cap_code and r->cap_message
 * say why. */
unsigned mx_call(struct preq *, route_handler fn, json_t *body,
    json_t **out);
/* Reply the error that the last mx_call() kept. */
void mx_reply_captured(struct preq *);
/* Wait at most secs for job id to finish: its row {state, error,
 * result}, or NULL on a store error. */
json_t *mx_job_wait(struct preq *, long long id, int secs);
/* The job id of a handler's 202 {job} answer, or 0. */
long long mx_job_id(json_t *answer);
/* An ISO-8601 UTC time as epoch milliseconds (v1 dates); 0 for NULL. */
long long mx_epoch_ms(const char *iso);
/* A package of the app's repository (nubo's package JSON) in v1 fields. */
json_t *mx_package_v1(json_t *pkg);

/* mx-upload.c: a multipart upload (part `file`) streamed to a file in
 * the portal's data folder, for routes flagged ROUTE_MULTIPART. */
void mx_upload_begin(struct preq *);
/* The upload as a package.upload job: 0 with *job_id and *package_id
 * (caller frees), or -1 after replying. */
int mx_upload_submit(struct preq *, long long *job_id, char **package_id);

#endif
