/* nubo settings access-set APP ENV PROFILE [--allow CIDR]… [--deny CIDR]…
 *     [--user NAME:PASSWORD]… [--client-ca FILE] [--path PATH]… */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "settings-cli.h"
#include "xmalloc.h"

static int
cmd_settings_access_set_exec(struct cmd_args *a)
{
	const char *vals[CLI_MAXOPTS], *ca = cmd_opt(a, "client-ca");
	const char *profile = a->argv[2];
	char *path = settings_cli_path(a->argv[0], a->argv[1], NULL, NULL);
	char *put = settings_cli_path(a->argv[0], a->argv[1], "/access", NULL);
	json_t *resp = NULL, *access, *profiles, *paths, *p, *v;
	const char *k;
	void *tmp;
	int i, n, rc = CLI_FAILED;

	if (api_ok("GET", path, NULL, &resp) == -1)
		goto out;
	access = json_object_get(json_object_get(resp, "settings"), "access");
	access = access ? json_deep_copy(access) : json_object();
	profiles = json_object_get(access, "profiles");
	if (profiles == NULL) {
		profiles = json_object();
		json_object_set_new(access, "profiles", profiles);
	}
	paths = json_object_get(access, "paths");
	if (paths == NULL) {
		paths = json_object();
		json_object_set_new(access, "paths", paths);
	}
	p = json_object();
	n = cmd_opt_all(a, "allow", vals, CLI_MAXOPTS);
	if (n) {
		json_object_set_new(p, "allow", json_array());
		for (i = 0; i < n; i++)
			json_array_append_new(json_object_get(p, "allow"),
			    json_string(vals[i]));
	}
	n = cmd_opt_all(a, "deny", vals, CLI_MAXOPTS);
	if (n) {
		json_object_set_new(p, "deny", json_array());
		for (i = 0; i < n; i++)
			json_array_append_new(json_object_get(p, "deny"),
			    json_string(vals[i]));
	}
	n = cmd_opt_all(a, "user", vals, CLI_MAXOPTS);
	if (n) {
		json_t *users = json_object();

		for (i = 0; i < n; i++) {
			const char *colon = strchr(vals[i], ':');
			char *u;

			if (colon == NULL) {
				json_decref(users);
				json_decref(p);
				json_decref(access);
				rc = out_usage(cmd_current, "--user wants "
				    "NAME:PASSWORD");
				goto out;
			}
			u = xstrndup(vals[i], (size_t)(colon - vals[i]));
			json_object_set_new(users, u, json_pack("{s:s}",
			    "password", colon + 1));
			free(u);
		}
		json_object_set_new(p, "basic_auth", users);
	}
	if (ca) {
		char *pem = settings_cli_read(ca, "client certificate CA");

		if (pem == NULL) {
			json_decref(p);
			json_decref(access);
			goto out;
		}
		json_object_set_new(p, "client_ca", json_string(pem));
		free(pem);
	}
	json_object_set_new(profiles, profile, p);
	/* the profile applies exactly at the paths given (default '/') */
	json_object_foreach_safe(paths, tmp, k, v)
		if (json_is_string(v) && strcmp(json_string_value(v), profile)
		    == 0)
			json_object_del(paths, k);
	n = cmd_opt_all(a, "path", vals, CLI_MAXOPTS);
	if (n == 0)
		json_object_set_new(paths, "/", json_string(profile));
	for (i = 0; i < n; i++)
		json_object_set_new(paths, vals[i], json_string(profile));
	rc = settings_cli_change(a, "PUT", put, access);
out:
	json_decref(resp);
	free(put);
	free(path);
	return rc;
}

const struct cmd_entry cmd_settings_access_set_entry = {
	"settings", "access-set", "APP ENV PROFILE",
	"allow=,deny=,user=,client-ca=,path=,json", 3, 3,
	"define an access restriction profile and apply it",
	"--allow and --deny take IP addresses or CIDRs (IPv4 or IPv6) and may\n"
	"repeat; --user NAME:PASSWORD adds basic-auth users; --client-ca FILE\n"
	"requires client certificates signed by that PEM CA. The profile\n"
	"applies at each --path (default '/', the whole environment); paths\n"
	"other than '/' need a v4 node. Users of an existing profile that are\n"
	"not given again are dropped.",
	cmd_settings_access_set_exec, 0,
};
