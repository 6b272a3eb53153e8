/* libFuzzer target: the backup archive reader/validator (SPEC §6). Any
 * input must be accepted or refused with a cause, never crash, leak or
 * hang. `make fuzz` runs it under clang; the regular build links it with
 * tests/fuzz/standalone.c, which replays the seed corpus and mutations of
 * it briefly as part of `make test`. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "backup-archive.h"

struct src {
	const uint8_t	*p;
	size_t		 len;
	size_t		 off;
};

static ssize_t
src_read(void *ctx, void *buf, size_t len)
{
	struct src *s = ctx;
	size_t n = s->len - s->off;

	/* odd read sizes exercise the buffering */
	if (n > len)
		n = len;
	if (n > 7777)
		n = 7777;
	memcpy(buf, s->p + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct backup_read_opts o;
	struct backup_info info;
	struct src s = { data, size, 0 };
	char *cause = NULL;

	backup_read_opts_init(&o);
	o.max_entries = 1000;
	o.ratio_min_bytes = 4 * 1024 * 1024;
	o.allow_files_only = 1;
	if (backup_archive_read(src_read, &s, &o, &info, &cause) < 0 &&
	    cause == NULL)
		abort();	/* every refusal says why */
	free(cause);
	return 0;
}
