#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void
buf_release(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static void
buf_reserve(struct buf *b, size_t need)
{
	size_t cap = b->cap ? b->cap : 256;

	if (need + 1 <= b->cap)
		return;
	while (cap < need + 1)
		cap *= 2;
	b->data = xrealloc(b->data, cap);
	b->cap = cap;
}

int
buf_append(struct buf *b, const void *data, size_t len)
{
	if (b->max && b->len + len > b->max)
		return -1;
	buf_reserve(b, b->len + len);
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int rc;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	rc = buf_append(b, s, strlen(s));
	free(s);
	return rc;
}

const char *
buf_cstr(struct buf *b)
{
	buf_reserve(b, b->len);
	b->data[b->len] = '\0';
	return b->data;
}

char *
buf_detach(struct buf *b)
{
	char *s;

	buf_cstr(b);
	s = b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return s;
}
