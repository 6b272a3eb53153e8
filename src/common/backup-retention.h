/* Snapshot retention and the nightly schedule (SPEC §2 Backups): nightly
 * snapshots are kept 2 weeks, weekly ones (taken on a Sunday) 3 months,
 * monthly ones (taken on the first Sunday of a month) 1 year; manual and
 * uploaded ones 3 months. Pure functions of UTC times, so tests can run a
 * simulated year in milliseconds. */
#ifndef NUBO_BACKUP_RETENTION_H
#define NUBO_BACKUP_RETENTION_H

#include <time.h>

enum snapshot_type {
	SNAPSHOT_MANUAL,
	SNAPSHOT_NIGHTLY,
	SNAPSHOT_UPLOADED,
};

/* "manual", "nightly", "uploaded"; -1 for anything else. */
int backup_snapshot_type_parse(const char *s);
const char *backup_snapshot_type_name(enum snapshot_type t);

/* When a snapshot of this type created at `created` expires. */
time_t backup_retention_expires(enum snapshot_type type, time_t created);

/* 1 when a snapshot is still kept at `now`. */
int backup_retention_keep(enum snapshot_type type, time_t created, time_t now);

/* The first time >= from at hh:mm UTC (the node's nightly time). */
time_t backup_schedule_next(time_t from, int hour, int minute);

/* Parse "HH:MM" (24h, UTC); 0 or -1. */
int backup_schedule_parse(const char *s, int *hour, int *minute);

/* A failed nightly is retried twice: the attempt number after `failed`
 * attempts at the nightly run that started at `run`, and when; -1 when
 * no attempt is left (3 in all, NUBO_NIGHTLY_RETRY_SECS apart). */
time_t backup_schedule_retry(time_t run, int failed);

#endif
