/* What the files of the snapshot store share among themselves (not for
 * its users: snapstore.h). Defined in snapstore.c. */
#ifndef NUBO_SNAPSTORE_INT_H
#define NUBO_SNAPSTORE_INT_H

#include <jansson.h>

/* 64 lowercase hex digits: a blob's name. */
int snapstore_valid_hex(const char *s);
/* STORE/blobs/ab/cdef… (caller frees). */
char *snapstore_blob_path(const char *store, const char *hex);
/* STORE/lock taken with flock(how): the fd, or -1 with *cause. */
int snapstore_lock(const char *store, int how, char **cause);
/* A manifest read and its shape checked, or NULL with *cause. */
json_t *snapstore_manifest_load(const char *path, char **cause);
/* A tree entry's path bytes when it is a safe relative path in the one
 * form of nubo's JSON, else NULL (a damaged manifest); caller frees. */
char *snapstore_entry_path(json_t *e);

#endif
