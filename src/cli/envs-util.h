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
/* runs-util.c: start a one-off run (POST body to the environment's
 * suffix, /runs or /psql), print its output as it comes, stop it on
 * Ctrl-C, and return its exit status (CLI_FAILED when it did not exit
 * by itself, 130 when interrupted). */
int runs_util_run(const char *app, const char *env, const char *suffix,
    json_t *body, const char *what);
/* --input FILE of a run: its text (at most NUBO_RUN_INPUT_MAX bytes);
 * NULL after a message. */
char *runs_util_input(const char *file);
/* Print one environment for people. */
void envs_util_print(json_t *env);

#endif
