/* Helpers shared by the `nubo settings …` commands (cmd-settings-*.c). */
#ifndef NUBO_SETTINGS_CLI_H
#define NUBO_SETTINGS_CLI_H

#include <jansson.h>

/* "/apps/APP/environments/ENV/settings" + suffix (escaped; caller frees).
 * item, when not NULL, is escaped and appended after suffix. */
char *settings_cli_path(const char *app, const char *env, const char *suffix,
    const char *item);
/* Send a change; print what the portal says (and "restart pending" when
 * the change needs one). CLI_OK or CLI_FAILED. With --json prints the
 * answer. Takes over body. */
int settings_cli_change(struct cmd_args *, const char *method,
    const char *path, json_t *body);
/* Read a small text file (certificate, key, document); NULL after
 * printing why. */
char *settings_cli_read(const char *path, const char *what);

#endif
