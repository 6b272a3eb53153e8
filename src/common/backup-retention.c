/* Snapshot retention and nightly schedule (SPEC §2 Backups). */
#include <stdio.h>
#include <string.h>

#include "backup-retention.h"
#include "nubo_limits.h"

int
backup_snapshot_type_parse(const char *s)
{
	if (strcmp(s, "manual") == 0)
		return SNAPSHOT_MANUAL;
	if (strcmp(s, "nightly") == 0)
		return SNAPSHOT_NIGHTLY;
	if (strcmp(s, "uploaded") == 0)
		return SNAPSHOT_UPLOADED;
	return -1;
}

const char *
backup_snapshot_type_name(enum snapshot_type t)
{
	switch (t) {
	case SNAPSHOT_NIGHTLY: return "nightly";
	case SNAPSHOT_UPLOADED: return "uploaded";
	default: return "manual";
	}
}

/* created + months calendar months (same day and time, clamped to the
 * month's end: 31 May + 3 months = 31 Aug, 30 Nov + 3 = 28/29 Feb). */
static time_t
add_months(time_t t, int months)
{
	struct tm tm, probe;
	int mday;

	gmtime_r(&t, &tm);
	mday = tm.tm_mday;
	tm.tm_mon += months;
	tm.tm_mday = 1;
	probe = tm;
	timegm(&probe);		/* normalises year/month */
	tm.tm_year = probe.tm_year;
	tm.tm_mon = probe.tm_mon;
	for (tm.tm_mday = mday; tm.tm_mday > 28; tm.tm_mday--) {
		probe = tm;
		timegm(&probe);
		if (probe.tm_mon == tm.tm_mon)
			break;
	}
	return timegm(&tm);
}

time_t
backup_retention_expires(enum snapshot_type type, time_t created)
{
	struct tm tm;

	if (type != SNAPSHOT_NIGHTLY)
		return add_months(created, 3);
	gmtime_r(&created, &tm);
	if (tm.tm_wday == 0 && tm.tm_mday <= 7)
		return add_months(created, 12);		/* monthly */
	if (tm.tm_wday == 0)
		return add_months(created, 3);		/* weekly */
	return created + 14 * 24 * 3600;		/* nightly */
}

int
backup_retention_keep(enum snapshot_type type, time_t created, time_t now)
{
	return now < backup_retention_expires(type, created);
}

time_t
backup_schedule_next(time_t from, int hour, int minute)
{
	struct tm tm;
	time_t t;

	gmtime_r(&from, &tm);
	tm.tm_hour = hour;
	tm.tm_min = minute;
	tm.tm_sec = 0;
	t = timegm(&tm);
	return t >= from ? t : t + 24 * 3600;
}

int
backup_schedule_parse(const char *s, int *hour, int *minute)
{
	unsigned h, m;
	char tail;

	if (strlen(s) != 5 || sscanf(s, "%2u:%2u%c", &h, &m, &tail) != 2 ||
	    s[2] != ':' || h > 23 || m > 59)
		return -1;
	*hour = (int)h;
	*minute = (int)m;
	return 0;
}

time_t
backup_schedule_retry(time_t run, int failed)
{
	if (failed >= NUBO_NIGHTLY_ATTEMPTS)
		return -1;
	return run + (time_t)failed * NUBO_NIGHTLY_RETRY_SECS;
}
