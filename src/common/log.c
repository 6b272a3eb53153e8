#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static const char *log_role = "nubo";

void
log_init(const char *role)
{
	log_role = role;
}

static void
log_write(const char *level, const char *fmt, va_list ap)
{
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	char line[4096];

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
	vsnprintf(line, sizeof line, fmt, ap);
	fprintf(stderr, "%s %s %s: %s\n", stamp, log_role, level, line);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_write("info", fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_write("warn", fmt, ap);
	va_end(ap);
}

void
log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_write("error", fmt, ap);
	va_end(ap);
}

int
error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_write("error", fmt, ap);
	va_end(ap);
	return -1;
}
