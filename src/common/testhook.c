/* The test hook that lets an end-to-end test stop a process at a named
 * point (a migration step, the middle of a data stream) so that a kill -9
 * lands exactly there. Inert unless NUBO_TEST_PAUSE_FILE names an
 * existing file. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "testhook.h"
#include "util.h"
#include "xmalloc.h"

void
testhook_pause(const char *point)
{
	const char *file = getenv("NUBO_TEST_PAUSE_FILE");
	const char *at = getenv("NUBO_TEST_PAUSE_AT");
	char *want = NULL, *reached;
	struct stat st;
	int i;

	/* The point is NUBO_TEST_PAUSE_AT, or the file's first line. */
	if (file == NULL || stat(file, &st) == -1)
		return;
	want = at ? xstrdup(at) : util_read_file(file, 256, NULL);
	if (want == NULL)
		return;
	want[strcspn(want, "\n")] = '\0';
	if (strcmp(want, point) != 0) {
		free(want);
		return;
	}
	free(want);
	reached = xasprintf("%s.reached", file);
	util_write_file(reached, point, strlen(point), 0644);
	free(reached);
	log_info("test hook: paused at '%s' while %s exists", point, file);
	/* at most 10 minutes, so a forgotten file cannot hang CI */
	for (i = 0; i < 6000 && stat(file, &st) == 0; i++)
		usleep(100 * 1000);
}
