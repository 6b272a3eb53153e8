/* Helpers shared by the `nubo backups` commands. */
#ifndef NUBO_BACKUPS_UTIL_H
#define NUBO_BACKUPS_UTIL_H

#include <jansson.h>

/* /apps/{app}/environments/{env}<rest> with both escaped (caller frees). */
char *backups_path(const char *app, const char *env, const char *rest);
/* Stream url to (or from) a file with a progress bar on a terminal. GET:
 * resume appends to an existing partial file with a Range request. The
 * HTTP status, or -1 (message printed); *body gets an error/JSON answer. */
int backups_get(const char *url, const char *file, int resume);
int backups_put(const char *url, const char *file, json_t **body);
/* Where a snapshot has copies, in words, as its "copy" key: "node-b",
 * "node-b (copying)", …; "-" when none. */
void backups_copy_words(json_t *snap);

#endif
