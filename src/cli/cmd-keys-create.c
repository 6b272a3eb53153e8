/* nubo keys create [--name N] [--read-only] [--app APP]… [--expires T]
 * [--pat --scope S[,S…]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_keys_create_exec(struct cmd_args *a)
{
	const char *apps[CLI_MAXOPTS];
	json_t *body = json_object(), *resp = NULL, *list;
	int i, n;

	if (cmd_opt(a, "name"))
		json_object_set_new(body, "name", json_string(cmd_opt(a, "name")));
	if (cmd_flag(a, "read-only"))
		json_object_set_new(body, "read_only", json_true());
	n = cmd_opt_all(a, "app", apps, CLI_MAXOPTS);
	if (n > 0) {
		list = json_array();
		for (i = 0; i < n; i++)
			json_array_append_new(list, json_string(apps[i]));
		json_object_set_new(body, "apps", list);
	}
	if (cmd_opt(a, "expires"))
		json_object_set_new(body, "expires_at",
		    json_string(cmd_opt(a, "expires")));
	if (cmd_flag(a, "pat") != (cmd_opt(a, "scope") != NULL)) {
		json_decref(body);
		return out_usage(cmd_current, "--pat and --scope go together: "
		    "--pat --scope mx:deployment:read[,mx:deployment:write]");
	}
	if (cmd_opt(a, "scope")) {
		char *copy = xstrdup(cmd_opt(a, "scope")), *p, *save = NULL;

		list = json_array();
		for (p = strtok_r(copy, ",", &save); p;
		    p = strtok_r(NULL, ",", &save))
			json_array_append_new(list, json_string(p));
		json_object_set_new(body, "scopes", list);
		free(copy);
	}
	if (api_ok("POST", "/keys", body, &resp) == -1) {
		json_decref(body);
		return CLI_FAILED;
	}
	json_decref(body);
	if (out_maybe_json(a, resp) == -1) {
		printf("%s\n", jsonx_str(resp, "key"));
		fprintf(stderr, "created API key %lld (%s); it is shown only "
		    "once\n", jsonx_int(resp, "id", 0), jsonx_str(resp, "prefix"));
	}
	json_decref(resp);
	return CLI_OK;
}

const struct cmd_entry cmd_keys_create_entry = {
	"keys", "create", NULL, "name=,read-only,app=,expires=,pat,scope=,json",
	0, 0,
	"create an API key and print it (shown once)",
	"The key can never do more than you, nor more than the key you run\n"
	"this with. --read-only allows only reads; --app APP (repeatable)\n"
	"limits it to those apps; --expires takes an RFC 3339 UTC time such\n"
	"as 2030-01-31T00:00:00Z. The key goes to standard output, the rest\n"
	"to standard error, so `KEY=$(nubo keys create)` works. --pat --scope\n"
	"mx:deployment:read[,mx:deployment:write] makes a personal access\n"
	"token for the Mendix Deploy API v4 (Authorization: MxToken …), valid\n"
	"only there; without the write scope it only reads.",
	cmd_keys_create_exec, 0,
};
