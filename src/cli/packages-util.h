/* Shared by the `nubo packages …` commands. */
#ifndef NUBO_PACKAGES_UTIL_H
#define NUBO_PACKAGES_UTIL_H

#include <jansson.h>

#include "cli.h"

/* The repository a command names, + suffix: "/apps/<APP>/packages…" with
 * --app APP (the app's repository: its node's, or its own on the sandbox
 * node), else "/nodes/<NODE>/packages…" with NODE the first argument.
 * NULL after a usage error (*rc set) when the arguments do not fit:
 * commands take [NODE] ARG… with want arguments besides NODE. */
char *packages_util_path(struct cmd_args *, int want, const char *suffix,
    int *rc);
/* Add "deployed_to": "Acceptance (running), Test (stopped)" to each
 * package row. */
void packages_util_fix_rows(json_t *rows);

#endif
