/* Logging to stderr with a UTC timestamp and the process role. */
#ifndef NUBO_LOG_H
#define NUBO_LOG_H

void log_init(const char *role);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* git style: log the message and return -1, so code reads
 * `return error("cannot open '%s'", path);` */
int error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
