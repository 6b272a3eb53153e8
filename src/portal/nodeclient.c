#include "nodeclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "buf.h"
#include "jsonx.h"
#include "settings.h"
#include "signed-url.h"
#include "store.h"
#include "tls.h"
#include "xmalloc.h"

#define NODE_RESPONSE_MAX (16 * 1024 * 1024)

static size_t
on_body(char *data, size_t size, size_t n, void *cls)
{
	return buf_append(cls, data, size * n) == 0 ? size * n : 0;
}

/* What every call to a node sets: the answer into resp (capped), no
 * signals, a connect timeout, the error's words into errbuf. */
static void
node_curl_setup(CURL *c, struct buf *resp, char *errbuf)
{
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
}

/* The node's agent URL, secret and the key its certificate must have
 * (NULL: none pinned); -1 with *cause when not registered. */
static int
node_endpoint(sqlite3 *db, long long node_id, char **url, char **secret,
    char **pin, char **cause)
{
	json_t *n = store_row(db, "SELECT name, agent_url, agent_secret,"
	    " tls_pin FROM nodes WHERE id = ?", "i", node_id);

	*url = *secret = *pin = NULL;
	if (n == NULL) {
		*cause = xasprintf("no node %lld", node_id);
		return -1;
	}
	if (jsonx_str(n, "agent_url") == NULL ||
	    jsonx_str(n, "agent_secret") == NULL) {
		*cause = xasprintf("node '%s' has not registered yet (start "
		    "'nubod node' with its token)", jsonx_str(n, "name"));
		json_decref(n);
		return -1;
	}
	*secret = settings_unseal(jsonx_str(n, "agent_secret"));
	if (*secret == NULL) {
		*cause = xasprintf("cannot unseal the agent secret of node '%s'",
		    jsonx_str(n, "name"));
		json_decref(n);
		return -1;
	}
	*url = xstrdup(jsonx_str(n, "agent_url"));
	if (jsonx_str(n, "tls_pin") && strncmp(*url, "https://", 8) == 0)
		*pin = xstrdup(jsonx_str(n, "tls_pin"));
	json_decref(n);
	return 0;
}

int
node_call_timeout(sqlite3 *db, long long node_id, const char *method,
    const char *path, json_t *body, json_t **out, char **cause, long timeout)
{
	CURL *c = NULL;
	struct curl_slist *h = NULL;
	struct buf resp;
	char *base = NULL, *secret = NULL, *url = NULL, *auth = NULL, *pin = NULL;
	char *text = NULL, errbuf[CURL_ERROR_SIZE] = "";
	long status = -1;
	json_t *j = NULL;

	if (out)
		*out = NULL;
	*cause = NULL;
	buf_init(&resp, NODE_RESPONSE_MAX);
	if (node_endpoint(db, node_id, &base, &secret, &pin, cause) == -1)
		goto out;
	c = curl_easy_init();
	url = xasprintf("%s%s", base, path);
	if (pin) {
		char *pinned = tls_url_pinned(url, pin);

		free(url);
		url = pinned;
	}
	auth = xasprintf("Authorization: Bearer %s", secret);
	h = curl_slist_append(h, auth);
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	}
	tls_curl_url(c, url, NULL);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	node_curl_setup(c, &resp, errbuf);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout);
	if (curl_easy_perform(c) != CURLE_OK) {
		*cause = xasprintf(NODE_UNREACHABLE "%s: %s", base,
		    errbuf);
		status = -1;
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (resp.len > 0)
		j = json_loadb(resp.data, resp.len, 0, NULL);
	if (status >= 400) {
		const char *msg = jsonx_str(json_object_get(j, "error"),
		    "message");

		*cause = xstrdup(msg ? msg : "the node answered an error");
	}
	if (out) {
		*out = j;
		j = NULL;
	}
out:
	json_decref(j);
	buf_release(&resp);
	curl_slist_free_all(h);
	if (c)
		curl_easy_cleanup(c);
	free(text);
	free(auth);
	free(url);
	free(base);
	free(secret);
	free(pin);
	return (int)status;
}

int
node_call(sqlite3 *db, long long node_id, const char *method,
    const char *path, json_t *body, json_t **out, char **cause)
{
	return node_call_timeout(db, node_id, method, path, body, out, cause,
	    30);
}

char *
node_signed_url(sqlite3 *db, long long node_id, const char *method,
    const char *path, long long user, long ttl, char **cause)
{
	char *base, *secret, *pin, *url;

	if (node_endpoint(db, node_id, &base, &secret, &pin, cause) == -1)
		return NULL;
	url = signed_url_make(secret, base, method, path, user, ttl);
	if (pin) {
		/* who fetches it (the CLI, another node) checks the key */
		char *pinned = tls_url_pinned(url, pin);

		free(url);
		url = pinned;
	}
	free(base);
	free(secret);
	free(pin);
	return url;
}

int
node_upload_file(const char *url, const char *file, json_t **out,
    char **cause)
{
	CURL *c = NULL;
	struct curl_slist *h = NULL;
	struct buf resp;
	char errbuf[CURL_ERROR_SIZE] = "";
	long status = -1;
	struct stat st;
	FILE *f;

	*out = NULL;
	*cause = NULL;
	if ((f = fopen(file, "rbe")) == NULL || fstat(fileno(f), &st) == -1) {
		*cause = xasprintf("cannot read the upload '%s'", file);
		if (f)
			fclose(f);
		return -1;
	}
	buf_init(&resp, NODE_RESPONSE_MAX);
	c = curl_easy_init();
	h = curl_slist_append(h, "Content-Type: application/octet-stream");
	h = curl_slist_append(h, "Expect:");
	tls_curl_url(c, url, NULL);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
	curl_easy_setopt(c, CURLOPT_READDATA, f);
	curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	node_curl_setup(c, &resp, errbuf);
	if (curl_easy_perform(c) != CURLE_OK) {
		*cause = xasprintf(NODE_UNREACHABLE "%s", errbuf);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (resp.len > 0)
		*out = json_loadb(resp.data, resp.len, 0, NULL);
	if (status >= 400) {
		const char *msg = jsonx_str(json_object_get(*out, "error"),
		    "message");

		*cause = xstrdup(msg ? msg : "the node answered an error");
	}
out:
	fclose(f);
	buf_release(&resp);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return (int)status;
}
