/* Helpers shared by the `nubo settings …` commands. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "settings-cli.h"
#include "util.h"
#include "xmalloc.h"

#define SETTINGS_CLI_FILE_MAX (1024 * 1024)

char *
settings_cli_path(const char *app, const char *env, const char *suffix,
    const char *item)
{
	char *a = api_escape(app), *e = api_escape(env);
	char *i = item ? api_escape(item) : NULL;
	char *p = xasprintf("/apps/%s/environments/%s/settings%s%s%s", a, e,
	    suffix ? suffix : "", i ? "/" : "", i ? i : "");

	free(a);
	free(e);
	free(i);
	return p;
}

int
settings_cli_change(struct cmd_args *a, const char *method, const char *path,
    json_t *body)
{
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok(method, path, body, &resp) == -1) {
		/* name every setting the portal refused */
		goto out;
	}
	if (out_maybe_json(a, resp) == -1) {
		printf("settings of %s (%s) saved, version %lld\n",
		    jsonx_str(resp, "environment") ? jsonx_str(resp,
		    "environment") : "?", jsonx_str(resp, "node") ?
		    jsonx_str(resp, "node") : "?", jsonx_int(resp, "version",
		    0));
		if (jsonx_bool(resp, "restart_pending", 0))
			printf("restart pending: restart the environment to "
			    "apply the change\n");
	}
	rc = CLI_OK;
out:
	json_decref(body);
	json_decref(resp);
	return rc;
}

char *
settings_cli_read(const char *path, const char *what)
{
	char *text = util_read_file(path, SETTINGS_CLI_FILE_MAX, NULL);

	if (text == NULL)
		out_fail("cannot read %s '%s': %s", what, path, errno ?
		    strerror(errno) : "too large");
	return text;
}
