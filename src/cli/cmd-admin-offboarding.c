/* nubo admin offboarding list | show ID | approve ID | purge ID --yes */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "xmalloc.h"

static int
cmd_admin_offboarding_list_exec(struct cmd_args *a)
{
	json_t *resp = NULL;

	if (api_ok("GET", "/offboarding-requests", NULL, &resp) == -1)
		return CLI_FAILED;
	if (out_maybe_json(a, resp) == -1)
		out_table(json_object_get(resp, "offboarding_requests"),
		    "id:ID,node:NODE,app:APP,state:STATE,forced:FORCED,"
		    "requested_by:BY,requested_at:AT,keep_until:DATA KEPT UNTIL,"
		    "purged_at:DATA DELETED,reason:REASON");
	json_decref(resp);
	return CLI_OK;
}

/* METHOD /offboarding-requests/ID[suffix] for the ID argument: the HTTP
 * status with *resp, or -1 (the error is printed). */
static int
cmd_admin_offboarding_call(struct cmd_args *a, const char *method,
    const char *suffix, json_t **resp)
{
	char *id = api_escape(a->argv[0]);
	char *path = xasprintf("/offboarding-requests/%s%s", id, suffix);
	json_t *body = strcmp(method, "GET") == 0 ? NULL : json_object();
	int st;

	st = api_ok(method, path, body, resp);
	json_decref(body);
	free(path);
	free(id);
	return st;
}

static int
cmd_admin_offboarding_show_exec(struct cmd_args *a)
{
	json_t *resp = NULL;

	if (cmd_admin_offboarding_call(a, "GET", "", &resp) == -1)
		return CLI_FAILED;
	if (out_maybe_json(a, resp) == -1)
		out_fields(resp, "id,node,app,state,forced,reason,requested_by,"
		    "requested_at,approved_by,approved_at,keep_until,purged_at,"
		    "purge_error,purge_attempts");
	json_decref(resp);
	return CLI_OK;
}

static int
cmd_admin_offboarding_purge_exec(struct cmd_args *a)
{
	json_t *resp = NULL, *o = NULL;
	const char *job;
	int rc = CLI_FAILED;

	if (!cmd_flag(a, "yes"))
		return out_usage(cmd_current, "purge deletes the offboarded "
		    "node's databases, files, backups and packages for good; "
		    "add --yes to confirm");
	if (cmd_admin_offboarding_call(a, "POST", "/purge", &resp) == -1)
		goto out;
	job = jsonx_str(json_object_get(resp, "job"), "id");
	if (job && api_wait_job(job, "purge") != CLI_OK)
		goto out;
	if (cmd_admin_offboarding_call(a, "GET", "", &o) == -1)
		goto out;
	if (out_maybe_json(a, o) == -1)
		printf("the data of node '%s' is deleted (%s)\n",
		    jsonx_str(o, "node"), jsonx_str(o, "purged_at"));
	rc = CLI_OK;
out:
	json_decref(resp);
	json_decref(o);
	return rc;
}

static int
cmd_admin_offboarding_approve_exec(struct cmd_args *a)
{
	json_t *resp = NULL;

	if (cmd_admin_offboarding_call(a, "POST", "/approve", &resp) == -1)
		return CLI_FAILED;
	if (out_maybe_json(a, resp) == -1) {
		printf("node '%s' is offboarded; its data is kept until %s\n",
		    jsonx_str(resp, "node"), jsonx_str(resp, "keep_until"));
		/* one thing said of the app: a migration waiting for the
		 * approval links it to its new node, else it stays free */
		if (json_array_size(json_object_get(resp, "migrations")))
			printf("app '%s' is detached from it; its migration "
			    "goes on with the final link to the new node "
			    "(nubo migrate status %s --follow)\n",
			    jsonx_str(resp, "app"), jsonx_str(resp, "app"));
		else if (jsonx_str(resp, "app"))
			printf("app '%s' is detached and stays a Free App\n",
			    jsonx_str(resp, "app"));
	}
	json_decref(resp);
	return CLI_OK;
}

const struct cmd_entry cmd_admin_offboarding_list_entry = {
	"admin offboarding", "list", NULL, "json", 0, 0,
	"list offboarding requests", NULL,
	cmd_admin_offboarding_list_exec, 0,
};

const struct cmd_entry cmd_admin_offboarding_show_entry = {
	"admin offboarding", "show", "ID", "json", 1, 1,
	"show an offboarding request: its state, until when the node's data "
	"is kept, when it was deleted",
	NULL,
	cmd_admin_offboarding_show_exec, 0,
};

const struct cmd_entry cmd_admin_offboarding_purge_entry = {
	"admin offboarding", "purge", "ID", "yes,json", 1, 1,
	"delete an offboarded node's data now (platform admins only)",
	"The portal deletes an offboarded node's data by itself once the\n"
	"request's keep-until date has passed. This does it now: every\n"
	"environment's database, role and files, its backups and the packages\n"
	"of the node's repository go for good. Only after the request is\n"
	"approved. Needs --yes.",
	cmd_admin_offboarding_purge_exec, 0,
};

const struct cmd_entry cmd_admin_offboarding_approve_entry = {
	"admin offboarding", "approve", "ID", "json", 1, 1,
	"approve an offboarding request (platform admins only)",
	"The node's environments stop, its app is detached and stays a Free\n"
	"App, the node becomes offboarded and its data is kept for the\n"
	"configured number of days (the portal's --offboarding-keep-days),\n"
	"then deleted on the node. A migration waiting for it links the app\n"
	"to its new node.",
	cmd_admin_offboarding_approve_exec, 0,
};
