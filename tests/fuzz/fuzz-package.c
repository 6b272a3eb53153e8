/* libFuzzer target: package archives (and their nubo.json) from arbitrary
 * bytes. Validation must refuse or accept without crashing, leaking or
 * reading out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "package.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct package_manifest m;
	char *cause = NULL;
	int fd;

	/* the manifest parser on its own */
	if (package_manifest_parse((const char *)data, size, &m, &cause) == 0)
		package_manifest_release(&m);
	free(cause);
	cause = NULL;

	/* the whole archive path */
	fd = memfd_create("fuzz-package", MFD_CLOEXEC);
	if (fd == -1)
		return 0;
	if (write(fd, data, size) == (ssize_t)size && lseek(fd, 0, SEEK_SET) == 0) {
		if (package_validate_fd(fd, &m, &cause) == 0)
			package_manifest_release(&m);
		free(cause);
	}
	close(fd);
	return 0;
}
