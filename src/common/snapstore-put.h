/* What snapstore.c shares with snapstore-import.c: a snapshot written
 * into the store piece by piece, as an archive's members arrive, with
 * the blobs, the dump's chunks and the manifest exactly as
 * snapstore_snapshot() makes them. Not for other callers. */
#ifndef NUBO_SNAPSTORE_PUT_H
#define NUBO_SNAPSTORE_PUT_H

#include <jansson.h>

#include "snapstore.h"

struct snapstore_put;

/* STORE prepared and its lock held shared (no sweep meanwhile) until
 * snapstore_put_close(); stats zeroed and filled as blobs are added
 * (may be NULL). NULL with *cause. */
struct snapstore_put *snapstore_put_open(const char *store,
    struct snapstore_stats *stats, char **cause);
/* One file's bytes into one blob: begin, add…, end (hex gets its
 * sha256, 65 bytes; size its length). Each 0, or -1 with *cause. */
int snapstore_put_file_begin(struct snapstore_put *, char **cause);
int snapstore_put_file_add(struct snapstore_put *, const void *data,
    size_t len, char **cause);
int snapstore_put_file_end(struct snapstore_put *, char *hex,
    long long *size, char **cause);
/* The dump's bytes cut into content-defined chunks: begin, add…, end
 * (dump gets size, sha256 and chunks, as the manifest keeps them). */
int snapstore_put_dump_begin(struct snapstore_put *, char **cause);
int snapstore_put_dump_add(struct snapstore_put *, const void *data,
    size_t len, char **cause);
void snapstore_put_dump_end(struct snapstore_put *, json_t *dump);
/* A manifest's head (format, created, model_version, database_size,
 * duration, dump); the caller adds tree and files_size. */
json_t *snapstore_manifest_new(long long created, const char *model_version,
    long long database_size, long long duration, json_t *dump);
/* A tree entry's path, in the manifest's form. */
void snapstore_entry_set_path(json_t *e, const char *rel);
/* The blobs made durable, then m written to path atomically. 0, or -1
 * with *cause. */
int snapstore_put_manifest(struct snapstore_put *, json_t *m,
    const char *path, char **cause);
/* The lock released; without ok, the blobs not yet in blobs/ go too. */
void snapstore_put_close(struct snapstore_put *, int ok);

#endif
