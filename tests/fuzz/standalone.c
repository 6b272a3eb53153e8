/* Without libFuzzer (gcc builds): replay every seed of a corpus folder,
 * then mutate the seeds (bit flips, byte runs, truncations, splices) for
 * a few seconds. Usage: fuzz-X CORPUS_DIR [SECONDS]. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
main(int argc, char **argv)
{
	char *seeds[256];
	size_t lens[256], n = 0, i, len;
	unsigned long runs = 0;
	unsigned seed;
	DIR *d;
	struct dirent *de;
	time_t end;
	char *path;
	uint8_t *buf;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR [SECONDS]\n", argv[0]);
		return 2;
	}
	if ((d = opendir(argv[1])) == NULL) {
		perror(argv[1]);
		return 1;
	}
	while ((de = readdir(d)) != NULL && n < 256) {
		if (de->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s", argv[1], de->d_name);
		seeds[n] = util_read_file(path, 64 * 1024 * 1024, &lens[n]);
		free(path);
		if (seeds[n] != NULL) {
			LLVMFuzzerTestOneInput((uint8_t *)seeds[n], lens[n]);
			n++;
		}
	}
	closedir(d);
	if (n == 0) {
		fprintf(stderr, "%s: empty corpus\n", argv[1]);
		return 1;
	}
	/* the seed is printed before any mutation, so that a crash's output
	 * names it; NUBO_FUZZ_SEED replays the same sequence of inputs */
	seed = getenv("NUBO_FUZZ_SEED") ? (unsigned)strtoul(
	    getenv("NUBO_FUZZ_SEED"), NULL, 10) : (unsigned)time(NULL) ^
	    ((unsigned)getpid() << 16);
	printf("%s: seed %u (NUBO_FUZZ_SEED=%u %s %s replays it)\n", argv[0],
	    seed, seed, argv[0], argv[1]);
	fflush(stdout);
	srand(seed);
	end = time(NULL) + (argc > 2 ? strtol(argv[2], NULL, 10) : 5);
	while (time(NULL) < end) {
		i = (size_t)rand() % n;
		len = lens[i];
		buf = xmalloc(len + 1);
		memcpy(buf, seeds[i], len);
		switch (rand() % 4) {
		case 0:
			buf[(size_t)rand() % len] ^= (uint8_t)(1 << (rand() % 8));
			break;
		case 1: {
			size_t at = (size_t)rand() % len;
			size_t k = (size_t)rand() % 64;

			if (at + k > len)
				k = len - at;
			memset(buf + at, rand() & 0xff, k);
			break;
		}
		case 2:
			len = (size_t)rand() % len;
			break;
		default: {
			size_t j = (size_t)rand() % n;
			size_t at = (size_t)rand() % len;
			size_t k = lens[j] < len - at ? lens[j] : len - at;

			memcpy(buf + at, seeds[j], k);
			break;
		}
		}
		LLVMFuzzerTestOneInput(buf, len);
		free(buf);
		runs++;
	}
	printf("%s: %zu seeds, %lu mutations, no crash\n", argv[0], n, runs);
	for (i = 0; i < n; i++)
		free(seeds[i]);
	return 0;
}
