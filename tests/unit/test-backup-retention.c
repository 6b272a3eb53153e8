/* Retention over a simulated year (SPEC §2 Backups): the set of kept
 * snapshots matches the rule exactly, computed here independently with
 * day arithmetic instead of the calendar functions the code uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backup-retention.h"

#define DAY (24 * 3600)

struct snap {
	int		 type;
	time_t		 created;
	long		 day;		/* days since 1970-01-01 */
	int		 alive;
};

/* Howard Hinnant's civil_from_days: y/m/d of a day number. */
static void
civil(long z, int *y, int *m, int *d)
{
	long era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static long
days_from_civil(int y, int m, int d)
{
	long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Day number of `day` plus n months (clamped to the month's end). */
static long
plus_months(long day, int n)
{
	int y, m, d, last;

	civil(day, &y, &m, &d);
	m += n;
	while (m > 12) {
		m -= 12;
		y++;
	}
	last = (int)(days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) -
	    days_from_civil(y, m, 1));
	return days_from_civil(y, m, d < last ? d : last);
}

/* The rule, independently: is a snapshot of day `s` kept on day `now`
 * (both at the same time of day)? */
static int
expected(const struct snap *s, long now)
{
	int y, m, d, wday = (int)((s->day + 4) % 7);	/* 1970-01-01: Thu */

	civil(s->day, &y, &m, &d);
	if (s->type != SNAPSHOT_NIGHTLY)
		return now < plus_months(s->day, 3);
	if (wday == 0 && d <= 7)
		return now < plus_months(s->day, 12);
	if (wday == 0)
		return now < plus_months(s->day, 3);
	return now < s->day + 14;
}

static void
test_simulated_year(void **state)
{
	static struct snap snaps[1000];
	long start = days_from_civil(2026, 1, 1), day, kept = 0, weekly = 0,
	    monthly = 0;
	int n = 0, i, days = 420;
	time_t at = 2 * 3600;	/* nightly at 02:00 UTC */

	(void)state;
	for (day = start; day < start + days; day++) {
		time_t now = (time_t)day * DAY + at;

		/* the node's nightly, and a manual snapshot now and then */
		snaps[n++] = (struct snap){ SNAPSHOT_NIGHTLY, now, day, 1 };
		if (day % 17 == 0)
			snaps[n++] = (struct snap){ SNAPSHOT_MANUAL, now, day, 1 };
		if (day % 53 == 0)
			snaps[n++] = (struct snap){ SNAPSHOT_UPLOADED, now, day, 1 };
		/* retention pass, as the node runs it after each nightly */
		for (i = 0; i < n; i++)
			if (snaps[i].alive && !backup_retention_keep(
			    (enum snapshot_type)snaps[i].type, snaps[i].created,
			    now))
				snaps[i].alive = 0;
		/* every day, the kept set is exactly the rule's */
		for (i = 0; i < n; i++)
			if (snaps[i].alive != expected(&snaps[i], day)) {
				int y, m, d;

				civil(snaps[i].day, &y, &m, &d);
				fail_msg("snapshot %d of %04d-%02d-%02d (type %d) "
				    "alive=%d on day %ld", i, y, m, d,
				    snaps[i].type, snaps[i].alive, day - start);
			}
	}
	/* and the end state looks like Mendix Cloud's: 14 nightlies, about
	 * 13 Sundays, 12 first Sundays */
	for (i = 0; i < n; i++) {
		if (!snaps[i].alive || snaps[i].type != SNAPSHOT_NIGHTLY)
			continue;
		kept++;
		if ((snaps[i].day + 4) % 7 == 0) {
			int y, m, d;

			civil(snaps[i].day, &y, &m, &d);
			if (d <= 7)
				monthly++;
			else
				weekly++;
		}
	}
	assert_int_equal(monthly, 12);
	assert_true(weekly >= 9 && weekly <= 11);
	assert_true(kept >= 14 + 9 + 12 - 2 && kept <= 14 + 11 + 12);
}

static void
test_expires(void **state)
{
	struct tm tm = { .tm_year = 126, .tm_mon = 10, .tm_mday = 30,
	    .tm_hour = 2 };	/* Mon 2026-11-30 */
	time_t t = timegm(&tm), e;

	(void)state;
	e = backup_retention_expires(SNAPSHOT_MANUAL, t);
	gmtime_r(&e, &tm);
	assert_int_equal(tm.tm_year, 127);	/* 2027-02-28: clamped */
	assert_int_equal(tm.tm_mon, 1);
	assert_int_equal(tm.tm_mday, 28);
	assert_int_equal(backup_retention_expires(SNAPSHOT_NIGHTLY, t),
	    t + 14 * DAY);
	assert_int_equal(backup_snapshot_type_parse("nightly"), SNAPSHOT_NIGHTLY);
	assert_int_equal(backup_snapshot_type_parse("weekly"), -1);
}

static void
test_schedule(void **state)
{
	int h, m;
	time_t day = 1795000000 - 1795000000 % DAY;

	(void)state;
	assert_int_equal(backup_schedule_parse("02:30", &h, &m), 0);
	assert_int_equal(h * 60 + m, 150);
	assert_int_equal(backup_schedule_parse("24:00", &h, &m), -1);
	assert_int_equal(backup_schedule_parse("2:30", &h, &m), -1);
	assert_int_equal(backup_schedule_parse("02:30x", &h, &m), -1);
	assert_int_equal(backup_schedule_next(day + 3600, 2, 30),
	    day + 2 * 3600 + 1800);
	assert_int_equal(backup_schedule_next(day + 3 * 3600, 2, 30),
	    day + DAY + 2 * 3600 + 1800);
	assert_int_equal(backup_schedule_next(day + 2 * 3600 + 1800, 2, 30),
	    day + 2 * 3600 + 1800);
	/* two retries, then none */
	assert_true(backup_schedule_retry(day, 1) > day);
	assert_true(backup_schedule_retry(day, 2) > backup_schedule_retry(day, 1));
	assert_int_equal(backup_schedule_retry(day, 3), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simulated_year),
		cmocka_unit_test(test_expires),
		cmocka_unit_test(test_schedule),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
