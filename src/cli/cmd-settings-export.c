/* nubo settings export APP ENV [--include-secrets] [--output FILE] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "settings-cli.h"
#include "util.h"
#include "xmalloc.h"

static int
cmd_settings_export_exec(struct cmd_args *a)
{
	int secrets = cmd_flag(a, "include-secrets");
	char *path = settings_cli_path(a->argv[0], a->argv[1],
	    secrets ? "/export?secrets=include" : "/export", NULL);
	const char *file = cmd_opt(a, "output");
	json_t *resp = NULL;
	char *text = NULL;
	int rc = CLI_FAILED;

	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	text = json_dumps(resp, JSON_INDENT(2));
	if (file) {
		char *t = xasprintf("%s\n", text);

		if (util_write_file(file, t, strlen(t), 0600) == -1) {
			out_fail("cannot write '%s': %s", file,
			    strerror(errno));
			free(t);
			goto out;
		}
		free(t);
	} else {
		printf("%s\n", text);
	}
	rc = CLI_OK;
out:
	free(text);
	json_decref(resp);
	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_export_entry = {
	"settings", "export", "APP ENV", "include-secrets,output=", 2, 2,
	"export an environment's whole configuration as one JSON document",
	"Secret values (environment variables, TLS private keys, basic-auth\n"
	"password hashes) are masked unless --include-secrets is given, which\n"
	"needs the app's Technical Contact. A masked secret in an imported\n"
	"document keeps the target's current value. --output writes the file\n"
	"with mode 0600. Format: docs/FORMATS.md (nubo-settings/1).",
	cmd_settings_export_exec, 0,
};
