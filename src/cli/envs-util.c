#include "envs-util.h"

#include <stdio.h>
#include <stdlib.h>

#include "xmalloc.h"

char *
envs_util_path(const char *app, const char *env, const char *suffix)
{
	char *a = api_escape(app), *e = api_escape(env);
	char *p = xasprintf("/apps/%s/environments/%s%s", a, e,
	    suffix ? suffix : "");

	free(a);
	free(e);
	return p;
}

void
envs_util_print(json_t *env)
{
	out_fields(env, "name,state,reason,node,node_online,generation,package,"
	    "instances,memory_mb,restart_pending,restart_reason,maintenance,"
	    "url,router,router_error,certificate,certificate_error,error");
	if (json_array_size(json_object_get(env, "running"))) {
		printf("\n");
		out_table(json_object_get(env, "running"), "index:INSTANCE,"
		    "state:STATE,pid:PID,port:PORT,memory_mb:MEMORY MB,"
		    "restarts:RESTARTS,last_exit:LAST EXIT");
	}
}

int
envs_util_action(struct cmd_args *a, const char *method, const char *suffix,
    json_t *body, const char *what)
{
	char *path = envs_util_path(a->argv[0], a->argv[1], suffix);
	char *show = envs_util_path(a->argv[0], a->argv[1], NULL);
	json_t *resp = NULL, *env = NULL;
	const char *job;
	int rc = CLI_FAILED;

	if (body == NULL)
		body = json_object();
	if (api_ok(method, path, body, &resp) == -1)
		goto out;
	job = jsonx_str(json_object_get(resp, "job"), "id");
	if (job && api_wait_job(job, what) != CLI_OK)
		goto out;
	if (api_ok("GET", show, NULL, &env) == -1)
		goto out;
	if (out_maybe_json(a, env) == -1)
		printf("%s: %s is %s\n", what, jsonx_str(env, "name"),
		    jsonx_str(env, "state"));
	rc = CLI_OK;
out:
	json_decref(body);
	json_decref(resp);
	json_decref(env);
	free(path);
	free(show);
	return rc;
}
