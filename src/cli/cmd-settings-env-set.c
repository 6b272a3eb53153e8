/* nubo settings env-set APP ENV NAME [VALUE] [--secret] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "cli.h"
#include "nubo_limits.h"
#include "settings-cli.h"

static int
cmd_settings_env_set_exec(struct cmd_args *a)
{
	struct buf in;
	char *path, chunk[4096];
	size_t n;
	int rc;

	buf_init(&in, NUBO_SETTING_VALUE_MAX + 1);
	if (a->argc == 4) {
		buf_append(&in, a->argv[3], strlen(a->argv[3]));
	} else {
		/* a secret read from stdin stays out of argv and history */
		while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
			if (buf_append(&in, chunk, n) == -1) {
				buf_release(&in);
				return out_fail("the value is longer than %d "
				    "bytes", NUBO_SETTING_VALUE_MAX);
			}
		while (in.len > 0 && (in.data[in.len - 1] == '\n' ||
		    in.data[in.len - 1] == '\r'))
			in.len--;
	}
	path = settings_cli_path(a->argv[0], a->argv[1], "/env-vars",
	    a->argv[2]);
	rc = settings_cli_change(a, "PUT", path, json_pack("{s:s,s:b}",
	    "value", buf_cstr(&in), "secret", cmd_flag(a, "secret")));
	if (in.data)
		sodium_memzero(in.data, in.len);
	buf_release(&in);
	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_env_set_entry = {
	"settings", "env-set", "APP ENV NAME [VALUE]", "secret,json", 3, 4,
	"set a custom environment variable for the app",
	"Without VALUE the value is read from standard input. --secret stores\n"
	"it encrypted; it is never shown again by the API, the CLI or a masked\n"
	"export. The app sees the variable after its next restart.",
	cmd_settings_env_set_exec, 0,
};
