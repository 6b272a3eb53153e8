/* nubo admin users create EMAIL [--password PW] [--admin] [--name N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_admin_users_create_exec(struct cmd_args *a)
{
	json_t *body, *resp = NULL;
	char *password = NULL, *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = CLI_FAILED;

	if (cmd_opt(a, "password") && strcmp(cmd_opt(a, "password"), "-") != 0) {
		password = xstrdup(cmd_opt(a, "password"));
	} else {
		/* From standard input, so it stays out of `ps`. */
		n = getline(&line, &cap, stdin);
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n <= 0) {
			free(line);
			return out_fail("no password given (--password PW, or "
			    "one line on standard input)");
		}
		password = line;
	}
	body = json_pack("{s:s,s:s,s:b}", "email", a->argv[0], "password",
	    password, "admin", cmd_flag(a, "admin"));
	if (cmd_opt(a, "name"))
		json_object_set_new(body, "name", json_string(cmd_opt(a, "name")));
	if (api_ok("POST", "/users", body, &resp) == -1) {
		json_decref(body);
		goto out;
	}
	json_decref(body);
	if (out_maybe_json(a, resp) == -1)
		printf("created %suser %s\n", jsonx_int(resp, "is_admin", 0) ?
		    "platform admin " : "", jsonx_str(resp, "email"));
	rc = CLI_OK;
out:
	json_decref(resp);
	free(password);
	return rc;
}

const struct cmd_entry cmd_admin_users_create_entry = {
	"admin users", "create", "EMAIL", "password=,admin,name=,json", 1, 1,
	"create a user (platform admins only)",
	"Without --password (or with --password -) the password is read as\n"
	"one line from standard input. --admin makes a platform admin.",
	cmd_admin_users_create_exec, 0,
};
