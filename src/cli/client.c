/* The CLI's side of the REST API: config, login storage, JSON calls. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "buf.h"
#include "cli.h"
#include "tls.h"
#include "util.h"
#include "xmalloc.h"

#define API_RESPONSE_MAX (64 * 1024 * 1024)

static char *cfg_url, *cfg_key, *cfg_ca;
static const char *opt_ca;	/* --ca */
static int cfg_loaded;

static char *
config_path(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");

	if (xdg && *xdg)
		return xasprintf("%s/nubo/config", xdg);
	return xasprintf("%s/.config/nubo/config", home ? home : ".");
}

static void
config_load(void)
{
	const char *env;
	char *path, *text;
	json_t *j;

	if (cfg_loaded)
		return;
	cfg_loaded = 1;
	path = config_path();
	text = util_read_file(path, 65536, NULL);
	free(path);
	if (text) {
		const char *v;

		j = json_loads(text, 0, NULL);
		if ((v = jsonx_str(j, "url")) != NULL)
			cfg_url = xstrdup(v);
		if ((v = jsonx_str(j, "key")) != NULL)
			cfg_key = xstrdup(v);
		if ((v = jsonx_str(j, "ca")) != NULL)
			cfg_ca = xstrdup(v);
		json_decref(j);
		free(text);
	}
	if ((env = getenv("NUBO_URL")) != NULL && *env) {
		free(cfg_url);
		cfg_url = xstrdup(env);
	}
	if ((env = getenv("NUBO_API_KEY")) != NULL && *env) {
		free(cfg_key);
		cfg_key = xstrdup(env);
	}
	if ((env = getenv("NUBO_CA")) != NULL && *env) {
		free(cfg_ca);
		cfg_ca = xstrdup(env);
	}
	if (opt_ca) {
		free(cfg_ca);
		cfg_ca = xstrdup(opt_ca);
	}
	if (cfg_url) {
		size_t n = strlen(cfg_url);

		while (n > 0 && cfg_url[n - 1] == '/')
			cfg_url[--n] = '\0';
	}
}

const char *
api_url(void)
{
	config_load();
	return cfg_url;
}

const char *
api_key(void)
{
	config_load();
	return cfg_key;
}

void
api_set_ca(const char *file)
{
	opt_ca = file;
}

const char *
api_ca(void)
{
	config_load();
	return cfg_ca;
}

void
api_curl_url(void *c, const char *url)
{
	tls_curl_url(c, url, api_ca());
}

int
api_save_login(const char *url, const char *key)
{
	char *path = config_path(), *dir, *slash;
	/* the CA the login verified the portal with, for later commands */
	char *ca = api_ca() ? realpath(api_ca(), NULL) : NULL;
	json_t *j = json_pack("{s:s,s:s,s:s?}", "url", url, "key", key, "ca",
	    ca ? ca : api_ca());
	char *text = json_dumps(j, JSON_INDENT(2));
	int rc;

	dir = xstrdup(path);
	slash = strrchr(dir, '/');
	*slash = '\0';
	rc = util_mkdir_p(dir, 0700);
	if (rc == 0)
		rc = util_write_file(path, text, strlen(text), 0600);
	if (rc == -1)
		out_fail("cannot write %s: %s", path, strerror(errno));
	free(dir);
	free(text);
	free(path);
	free(ca);
	json_decref(j);
	return rc;
}

char *
api_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *out = xstrdup(e);

	curl_free(e);
	return out;
}

static size_t
on_body(char *data, size_t size, size_t n, void *cls)
{
	return buf_append(cls, data, size * n) == 0 ? size * n : 0;
}

int
api_call(const char *method, const char *path, json_t *body, json_t **out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct buf resp;
	char *url, *auth = NULL, *text = NULL;
	long status = -1;
	CURLcode cc;

	if (out)
		*out = NULL;
	buf_init(&resp, API_RESPONSE_MAX);
	url = xasprintf("%s/api/v1%s", api_url(), path);
	if (api_key()) {
		auth = xasprintf("Authorization: Bearer %s", api_key());
		h = curl_slist_append(h, auth);
	}
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
	}
	api_curl_url(c, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		out_fail("cannot reach %s: %s", api_url(),
		    curl_easy_strerror(cc));
		status = -1;
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (out && resp.len > 0)
		*out = json_loadb(resp.data, resp.len, 0, NULL);
out:
	buf_release(&resp);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	free(text);
	free(auth);
	free(url);
	return (int)status;
}

int
api_ok(const char *method, const char *path, json_t *body, json_t **out)
{
	json_t *resp = NULL;
	int status = api_call(method, path, body, &resp);

	if (status == -1)
		return -1;
	if (status >= 400) {
		json_t *err = json_object_get(resp, "error");
		const char *msg = jsonx_str(err, "message");

		out_fail("%s", msg ? msg : "the portal answered an error");
		json_decref(resp);
		if (out)
			*out = NULL;
		return -1;
	}
	if (out)
		*out = resp;
	else
		json_decref(resp);
	return status;
}

int
api_wait_job(const char *job_id, const char *what)
{
	return api_wait_job_get(job_id, what, NULL);
}

int
api_wait_job_get(const char *job_id, const char *what, json_t **out)
{
	char *path = xasprintf("/jobs/%s", job_id), *ask = xstrdup(path);
	int tty = isatty(STDERR_FILENO), rc = CLI_FAILED;
	/* the portal holds each GET until the job changes (long polling:
	 * ?wait with the revision last seen); one that answers at once with
	 * nothing new (no revision: an older portal) is polled soon, every
	 * 100 ms at most for the first 3 s, then less often */
	useconds_t pause = 25 * 1000;
	double t0 = util_mono();
	char last[512] = "";

	for (;;) {
		json_t *job = NULL;
		const char *state, *msg, *rev;
		char line[512];

		if (api_ok("GET", ask, NULL, &job) == -1)
			break;
		state = jsonx_str(job, "state");
		msg = jsonx_str(json_object_get(job, "progress"), "message");
		snprintf(line, sizeof line, "%s: %s%s%s", what,
		    state ? state : "?", msg ? " — " : "", msg ? msg : "");
		if (strcmp(line, last) != 0) {
			fprintf(stderr, tty ? "\r\033[K%s" : "%s\n", line);
			snprintf(last, sizeof last, "%s", line);
		}
		if (state && strcmp(state, "completed") == 0) {
			rc = CLI_OK;
			if (out)
				*out = json_incref(job);
			json_decref(job);
			break;
		}
		if (state && strcmp(state, "failed") == 0) {
			if (tty)
				fputc('\n', stderr);
			out_fail("%s failed: %s", what, jsonx_str(job, "error") ?
			    jsonx_str(job, "error") : "unknown error");
			json_decref(job);
			break;
		}
		free(ask);
		rev = jsonx_str(job, "revision");
		ask = rev ? xasprintf("%s?wait=%d&revision=%s", path,
		    API_WAIT_SECS, rev) : xstrdup(path);
		json_decref(job);
		if (rev)
			continue;
		usleep(pause);
		if (pause < 100 * 1000 || (pause < 300 * 1000 &&
		    util_mono() - t0 > 3))
			pause *= 2;
	}
	if (tty && rc == CLI_OK)
		fputc('\n', stderr);
	free(ask);
	free(path);
	return rc;
}
