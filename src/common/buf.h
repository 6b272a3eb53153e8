/* A growable byte buffer with a hard cap: appends past `max` fail. */
#ifndef NUBO_BUF_H
#define NUBO_BUF_H

#include <stddef.h>

struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 max;	/* 0: no cap */
};

void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b);
/* 0 on success, -1 when the cap would be crossed (buffer unchanged). */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* NUL-terminated view of the contents (the terminator is not counted). */
const char *buf_cstr(struct buf *b);
/* Hand the contents over to the caller (NUL-terminated); the buffer is reset. */
char *buf_detach(struct buf *b);

#endif
