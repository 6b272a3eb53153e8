/* Bulk transfers through the signed URLs the portal hands out
 * (node-contract.md): files stream through fixed buffers, sha256 is
 * computed on the way, and a progress bar is drawn on a terminal (plain
 * lines every 10% otherwise). */
#ifndef NUBO_TRANSFER_H
#define NUBO_TRANSFER_H

#include <jansson.h>

/* Send file as the body of method url. Returns the HTTP status with *resp
 * the JSON answer (or NULL) and sha the file's sha256 (65 bytes), or -1
 * after printing why. */
int transfer_upload(const char *url, const char *method, const char *file,
    const char *what, json_t **resp, char sha[65]);
/* Fetch url into dest (through dest.part, resumed with Range when a
 * previous attempt left one); the sha256 must equal sha_expected when
 * given. CLI_OK, or CLI_FAILED after printing why. */
int transfer_download(const char *url, const char *dest, long long size,
    const char *sha_expected, const char *what);

#endif
