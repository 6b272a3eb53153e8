/* The test hook that lets an end-to-end test stop a process at a named
 * point (a migration step, the middle of a data stream) so that a kill -9
 * lands exactly there. Inert unless NUBO_TEST_PAUSE_FILE names an
 * existing file. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "testhook.h"
#include "util.h"
#include "xmalloc.h"

/* The point the hook names now: NUBO_TEST_PAUSE_AT, or the file's first
 * line; NULL when the file is gone. */
static char *
testhook_point(const char *file)
{
	const char *at = getenv("NUBO_TEST_PAUSE_AT");
	char *want;
	struct stat st;

	if (stat(file, &st) == -1)
		return NULL;
	want = at ? xstrdup(at) : util_read_file(file, 256, NULL);
	if (want)
		want[strcspn(want, "\n")] = '\0';
	return want;
}

/* Wait at POINT while the hook names it: a test releases the process by
 * removing the file or by naming the next point in it. */
void
testhook_pause(const char *point)
{
	const char *file = getenv("NUBO_TEST_PAUSE_FILE");
	char *want, *reached;
	int i, here;

	if (file == NULL || (want = testhook_point(file)) == NULL)
		return;
	here = strcmp(want, point) == 0;
	free(want);
	if (!here)
		return;
	reached = xasprintf("%s.reached", file);
	util_write_file(reached, point, strlen(point), 0644);
	free(reached);
	log_info("test hook: paused at '%s' while %s names it", point, file);
	/* at most 10 minutes, so a forgotten file cannot hang CI */
	for (i = 0; i < 6000; i++) {
		want = testhook_point(file);
		here = want && strcmp(want, point) == 0;
		free(want);
		if (!here)
			break;
		usleep(100 * 1000);
	}
}

void
testhook_mark(const char *point)
{
	const char *file = getenv("NUBO_TEST_MARK_FILE");
	char line[160];
	int fd, n;

	if (file == NULL)
		return;
	n = snprintf(line, sizeof line, "%s %d\n", point, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof line)
		return;
	fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd == -1)
		return;
	if (write(fd, line, (size_t)n) != n)
		log_warn("test hook: cannot append to %s", file);
	close(fd);
}
