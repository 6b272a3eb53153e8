/* nubo keys revoke KEY */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_keys_revoke_exec(struct cmd_args *a)
{
	char *which = api_escape(a->argv[0]);
	char *path = xasprintf("/keys/%s", which);
	json_t *resp = NULL;
	int rc = CLI_FAILED;

	if (api_ok("DELETE", path, NULL, &resp) == -1)
		goto out;
	if (out_maybe_json(a, resp) == -1)
		printf("revoked API key %lld\n", jsonx_int(resp, "id", 0));
	rc = CLI_OK;
out:
	json_decref(resp);
	free(path);
	free(which);
	return rc;
}

const struct cmd_entry cmd_keys_revoke_entry = {
	"keys", "revoke", "KEY", "json", 1, 1,
	"revoke one of your API keys",
	"KEY is the key's id or prefix (as 'nubo keys list' shows them).",
	cmd_keys_revoke_exec, 0,
};
