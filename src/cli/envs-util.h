/* Shared by the `nubo envs …` commands. */
#ifndef NUBO_ENVS_UTIL_H
#define NUBO_ENVS_UTIL_H

#include <jansson.h>

#include "cli.h"

/* "/apps/<app>/environments/<env><suffix>", escaped (caller frees). */
char *envs_util_path(const char *app, const char *env, const char *suffix);
/* Submit an action that answers a job, wait for it, print the result.
 * CLI_OK or CLI_FAILED. */
int envs_util_action(struct cmd_args *, const char *method,
    const char *suffix, json_t *body, const char *what);
/* Print one environment for people. */
void envs_util_print(json_t *env);

#endif
