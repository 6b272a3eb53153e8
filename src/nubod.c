/* nubod: the nubo daemons. `nubod portal …` runs the control plane,
 * `nubod node …` a cloud node agent. */
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>
#include <curl/curl.h>
#include <jansson.h>

#include "portal.h"

int portal_main(int argc, char **argv);
int backup_tool_main(int argc, char **argv);
#ifdef NUBO_HAVE_NODE
int node_main(int argc, char **argv);
#endif

static const char nubod_usage[] =
    "usage: nubod portal [init] --data DIR …   run the portal (control plane)\n"
    "       nubod node --data DIR --portal URL --token T …   run a cloud node\n"
    "       nubod routes                         print the API route table\n"
    "       nubod openapi                        print the OpenAPI document\n"
    "       nubod archive create|check|restore   backup archives by hand\n";

static int
print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	putchar('\n');
	json_decref(j);
	return 0;
}

int
main(int argc, char **argv)
{
	/* file names are bytes: in a UTF-8 locale libarchive stores a UTF-8
	 * name as such and any other as raw bytes (backup-archive.c); in
	 * the C locale it could store no name that is not ASCII. Only
	 * LC_CTYPE: messages, numbers and sorting stay C's. */
	if (setlocale(LC_CTYPE, "C.UTF-8") == NULL &&
	    setlocale(LC_CTYPE, "C.utf8") == NULL)
		setlocale(LC_CTYPE, "en_US.UTF-8");
	if (sodium_init() < 0) {
		fputs("nubod: libsodium failed to start\n", stderr);
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (argc < 2) {
		fputs(nubod_usage, stderr);
		return 2;
	}
	if (strcmp(argv[1], "portal") == 0)
		return portal_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "archive") == 0)
		return backup_tool_main(argc - 1, argv + 1);
#ifdef NUBO_HAVE_NODE
	if (strcmp(argv[1], "node") == 0)
		return node_main(argc - 1, argv + 1);
#endif
	if (strcmp(argv[1], "routes") == 0)
		return print_json(routes_table());
	if (strcmp(argv[1], "openapi") == 0)
		return print_json(routes_describe());
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(nubod_usage, stdout);
		return 0;
	}
	fputs(nubod_usage, stderr);
	return 2;
}
