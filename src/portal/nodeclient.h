/* The portal's side of the node protocol (node-contract.md): calls to
 * {agent url}/agent/v1/... with `Authorization: Bearer <portal_secret>`. */
#ifndef NUBO_NODECLIENT_H
#define NUBO_NODECLIENT_H

#include <jansson.h>
#include <sqlite3.h>

/* Call the agent of node_id. Returns the HTTP status (with *out the JSON
 * body or NULL), or -1 with *cause set when the node is unknown, has never
 * registered or cannot be reached. For status >= 400, *cause gets the
 * node's error message too (the caller frees it). */
int node_call(sqlite3 *db, long long node_id, const char *method,
    const char *path, json_t *body, json_t **out, char **cause);
/* The start of *cause when the node could not be reached at all (down,
 * restarting): the call may be tried again once it is back. */
#define NODE_UNREACHABLE	"cannot reach the node at "
/* Same with an explicit timeout in seconds (node_call uses 30). */
int node_call_timeout(sqlite3 *db, long long node_id, const char *method,
    const char *path, json_t *body, json_t **out, char **cause, long timeout);
/* A signed data-plane URL on the node for path (/agent/v1/...), valid
 * ttl seconds for user; NULL with *cause when the node never registered. */
char *node_signed_url(sqlite3 *db, long long node_id, const char *method,
    const char *path, long long user, long ttl, char **cause);
/* POST file (its bytes, streamed) to a signed upload URL of a node: the
 * HTTP status with *out the node's JSON answer (or NULL), or -1 with
 * *cause; for status >= 400 *cause gets the node's message too. */
int node_upload_file(const char *url, const char *file, json_t **out,
    char **cause);

#endif
