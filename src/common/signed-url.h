/* Short-lived signed URLs for the data plane (node-contract.md): the portal
 * signs, the node checks, bulk bytes never pass through the portal.
 *   {agent url}{path}?expires=<unix>&user=<id>&sig=<hex HMAC-SHA256(secret,
 *   METHOD "\n" path "\n" expires "\n" user)>
 */
#ifndef NUBO_SIGNED_URL_H
#define NUBO_SIGNED_URL_H

#include <time.h>

/* The hex signature (64 characters + NUL) into sig. */
void signed_url_sig(const char *secret, const char *method, const char *path,
    long long expires, long long user, char sig[65]);
/* A signed URL for base + path valid for ttl seconds (caller frees). */
char *signed_url_make(const char *secret, const char *base, const char *method,
    const char *path, long long user, long ttl);
/* Check a request: 0 when sig is right and expires is in the future,
 * -1 with *why set to a static message otherwise. */
int signed_url_check(const char *secret, const char *method, const char *path,
    const char *expires, const char *user, const char *sig, const char **why);

#endif
