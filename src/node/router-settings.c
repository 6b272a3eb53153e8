/* The environment-settings pieces of the router's nginx config; see
 * router-settings.h. Everything taken from the spec is checked again with
 * the shared validators before it reaches the config: the portal validated
 * it, but a config line is only ever built from values that cannot break
 * out of their directive. */
#include "node.h"
#include "router-settings.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonx.h"
#include "log.h"
#include "settings-validate.h"
#include "util.h"
#include "xmalloc.h"

/* dir/settings/env_<id>/<stem>-<sha256[0:16]>.<ext> for content text.
 * The stem is cut to ROUTER_STEM_MAX characters: a domain may have 253,
 * a file name only 255 (the content's hash keeps names apart). */
#define ROUTER_STEM_MAX 128
static char *
content_path(const char *dir, long long env_id, const char *stem,
    const char *ext, const char *text)
{
	char *h = util_sha256_hex(text, strlen(text));
	char *p;

	h[16] = '\0';
	p = xasprintf("%s/settings/env_%lld/%.*s-%s.%s", dir, env_id,
	    ROUTER_STEM_MAX, stem, h, ext);
	free(h);
	return p;
}

static int
domain_ok(const char *d)
{
	char *canon = NULL, *cause = NULL;
	int ok = d && sv_domain(d, &canon, &cause) == 0 &&
	    strcmp(canon, d) == 0;

	free(canon);
	free(cause);
	return ok;
}

static int
path_ok(const char *p)
{
	char *cause = NULL;
	int ok = p && sv_path_prefix(p, &cause) == 0;

	free(cause);
	return ok;
}

/* The environment's client CA bundle: every profile's CAs, concatenated
 * (caller frees); NULL when no rule asks for client certificates. */
static char *
client_ca_bundle(json_t *spec)
{
	struct buf b;
	const char *path;
	json_t *rule;

	buf_init(&b, 0);
	json_object_foreach(json_object_get(spec, "access"), path, rule) {
		const char *ca = jsonx_str(rule, "client_ca");
		char *cause = NULL;

		if (ca == NULL)
			continue;
		if (sv_ca_bundle(ca, &cause) == 0)
			buf_printf(&b, "%s%s", ca, ca[strlen(ca) - 1] == '\n' ?
			    "" : "\n");
		free(cause);
	}
	if (b.len == 0) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b);
}

/* Write text to path unless the file already holds exactly it: a file
 * damaged or changed on disk is written again (by rename), so what nginx
 * loads is always what the spec says. */
static int
write_if_differs(const char *path, const char *text, unsigned mode,
    gid_t gid)
{
	size_t n = strlen(text), len = 0;
	char *old = util_read_file(path, n + 1, &len);
	int same = old && len == n && memcmp(old, text, n) == 0;

	free(old);
	if (same)
		return 0;
	if (util_write_file(path, text, n, mode) == -1)
		return error("router: cannot write %s: %s", path,
		    strerror(errno));
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) == -1)
		return error("router: cannot chown %s: %s", path,
		    strerror(errno));
	return 0;
}

int
router_settings_files(const char *dir, long long env_id, json_t *spec,
    gid_t gid)
{
	char *base = xasprintf("%s/settings/env_%lld", dir, env_id);
	const char *k;
	json_t *v;
	size_t i;
	char *ca;
	int rc = 0;

	if (json_array_size(json_object_get(spec, "domains")) == 0 &&
	    json_object_size(json_object_get(spec, "access")) == 0)
		goto out;
	/* settings/ is traversable; each env_<id>/ only by the workers'
	 * group, and keys only by their owner */
	{
		char *top = xasprintf("%s/settings", dir);

		if (util_mkdir_p(top, 0755) == 0)
			chmod(top, 0755);
		free(top);
	}
	if (util_mkdir_p(base, 0750) == -1) {
		rc = error("router: cannot create %s: %s", base,
		    strerror(errno));
		goto out;
	}
	if (gid != (gid_t)-1 && chown(base, (uid_t)-1, gid) == -1)
		rc = error("router: cannot chown %s: %s", base, strerror(errno));
	json_array_foreach(json_object_get(spec, "domains"), i, v) {
		const char *d = jsonx_str(v, "domain");
		const char *crt = jsonx_str(v, "certificate");
		const char *key = jsonx_str(v, "private_key");
		char *p;

		if (!domain_ok(d) || crt == NULL || key == NULL)
			continue;
		/* read by the nginx master at (re)load: owner only */
		p = content_path(dir, env_id, d, "crt", crt);
		if (write_if_differs(p, crt, 0600, (gid_t)-1) == -1)
			rc = -1;
		free(p);
		p = content_path(dir, env_id, d, "key", key);
		if (write_if_differs(p, key, 0600, (gid_t)-1) == -1)
			rc = -1;
		free(p);
	}
	json_object_foreach(json_object_get(spec, "access"), k, v) {
		const char *h = jsonx_str(v, "htpasswd");
		char *p;

		if (h == NULL || !path_ok(k))
			continue;
		/* read by the workers on every request */
		p = content_path(dir, env_id, "htpasswd", "txt", h);
		if (write_if_differs(p, h, 0640, gid) == -1)
			rc = -1;
		free(p);
	}
	if ((ca = client_ca_bundle(spec)) != NULL) {
		char *p = content_path(dir, env_id, "client-ca", "pem", ca);

		if (write_if_differs(p, ca, 0600, (gid_t)-1) == -1)
			rc = -1;
		free(p);
		free(ca);
	}
out:
	free(base);
	return rc;
}

/* 1 when conf names path as a whole word (followed by ';', '"' or a
 * space: one name is never taken for the start of another). */
static int
conf_names(const char *conf, const char *path)
{
	size_t n = strlen(path);
	const char *p;

	for (p = conf; (p = strstr(p, path)) != NULL; p += n)
		if (p[n] == ';' || p[n] == '"' || p[n] == ' ' ||
		    p[n] == '\n')
			return 1;
	return 0;
}

void
router_settings_prune(const char *dir, long long env_id, const char *conf)
{
	char *base = xasprintf("%s/settings/env_%lld", dir, env_id);
	DIR *d = opendir(base);
	struct dirent *de;

	while (d && (de = readdir(d)) != NULL) {
		char *p;

		if (de->d_name[0] == '.')
			continue;
		p = xasprintf("%s/%s", base, de->d_name);
		if (!conf_names(conf, p) && unlink(p) == -1 && errno != ENOENT)
			log_warn("router: cannot remove %s: %s", p,
			    strerror(errno));
		free(p);
	}
	if (d)
		closedir(d);
	free(base);
}

void
router_settings_remove(const char *dir, long long env_id)
{
	char *base = xasprintf("%s/settings/env_%lld", dir, env_id);

	if (util_rm_rf(base) == -1)
		log_warn("router: cannot remove %s: %s", base, strerror(errno));
	free(base);
}

void
router_settings_headers(struct buf *b, json_t *spec)
{
	const char *name, *canon;
	json_t *v;

	json_object_foreach(json_object_get(spec, "headers"), name, v) {
		char *cause = NULL;

		if (!json_is_string(v) ||
		    sv_header_name(name, "v4", &canon, &cause) == -1 ||
		    sv_header_value(canon, json_string_value(v), &cause) == -1) {
			log_warn("router: header '%s' skipped: %s", name,
			    cause ? cause : "not a string");
			free(cause);
			continue;
		}
		buf_printf(b, "    add_header %s \"%s\" always;\n", canon,
		    json_string_value(v));
	}
}

/* allow/deny lines: denied addresses first (first match wins in nginx),
 * then the allowed ones and `deny all` when there is an allow list. */
static void
render_ip_rules(struct buf *b, json_t *rule)
{
	json_t *v;
	size_t i;
	int allows = 0;

	json_array_foreach(json_object_get(rule, "deny"), i, v) {
		char *canon = NULL, *cause = NULL;

		if (json_is_string(v) && sv_cidr(json_string_value(v), &canon,
		    &cause) == 0)
			buf_printf(b, "      deny %s;\n", canon);
		free(canon);
		free(cause);
	}
	json_array_foreach(json_object_get(rule, "allow"), i, v) {
		char *canon = NULL, *cause = NULL;

		if (json_is_string(v) && sv_cidr(json_string_value(v), &canon,
		    &cause) == 0) {
			buf_printf(b, "      allow %s;\n", canon);
			allows++;
		}
		free(canon);
		free(cause);
	}
	/* an allow list whose entries were all unusable still closes */
	if (allows > 0 || json_array_size(json_object_get(rule, "allow")) > 0)
		buf_printf(b, "      deny all;\n");
}

static void
render_location(struct buf *b, const char *dir, long long env_id,
    const char *path, json_t *rule, const char *inner)
{
	const char *h = jsonx_str(rule, "htpasswd");

	buf_printf(b, "    location %s {\n", path);
	if (rule) {
		render_ip_rules(b, rule);
		if (h) {
			char *p = content_path(dir, env_id, "htpasswd", "txt",
			    h);

			buf_printf(b, "      auth_basic \"%s\";\n"
			    "      auth_basic_user_file %s;\n",
			    "Restricted", p);
			free(p);
		}
		/* without a verified client certificate (or without TLS at
		 * all) a rule that asks for one refuses */
		if (jsonx_str(rule, "client_ca"))
			buf_printf(b, "      if ($ssl_client_verify != SUCCESS) "
			    "{ return 403; }\n");
	}
	buf_printf(b, "%s    }\n", inner);
}

void
router_settings_locations(struct buf *b, const char *dir, long long env_id,
    json_t *spec, const char *inner)
{
	json_t *access = json_object_get(spec, "access"), *rule;
	const char *path;

	if (json_object_get(access, "/") == NULL)
		render_location(b, dir, env_id, "/", NULL, inner);
	json_object_foreach(access, path, rule) {
		if (!path_ok(path)) {
			log_warn("router: access path '%.64s' skipped", path);
			continue;
		}
		render_location(b, dir, env_id, path, rule, inner);
	}
}

void
router_settings_tls_server(struct buf *b, const char *dir, long long env_id,
    json_t *spec, json_t *domain, const char *listens, const char *inner,
    const char *acme_crt, const char *acme_key)
{
	const char *d = jsonx_str(domain, "domain");
	const char *crt = jsonx_str(domain, "certificate");
	const char *key = jsonx_str(domain, "private_key");
	char *pc, *pk, *ca;

	if (listens == NULL || *listens == '\0' || !domain_ok(d))
		return;
	if (crt && key) {
		/* the user's certificate always wins */
		pc = content_path(dir, env_id, d, "crt", crt);
		pk = content_path(dir, env_id, d, "key", key);
	} else if (crt == NULL && key == NULL && acme_crt && acme_key) {
		pc = xstrdup(acme_crt);
		pk = xstrdup(acme_key);
	} else
		return;
	buf_printf(b, "  server {\n"
	    "%s"
	    "    server_name %s;\n"
	    "    ssl_certificate %s;\n"
	    "    ssl_certificate_key %s;\n"
	    "    ssl_protocols TLSv1.2 TLSv1.3;\n", listens, d, pc, pk);
	router_piece_access_log(b, env_id);
	if ((ca = client_ca_bundle(spec)) != NULL) {
		char *pca = content_path(dir, env_id, "client-ca", "pem", ca);

		buf_printf(b, "    ssl_client_certificate %s;\n"
		    "    ssl_verify_client optional;\n"
		    "    ssl_verify_depth 4;\n", pca);
		free(pca);
		free(ca);
	}
	router_settings_headers(b, spec);
	router_settings_locations(b, dir, env_id, spec, inner);
	buf_printf(b, "  }\n");
	free(pc);
	free(pk);
}

const char *
router_settings_domain(json_t *domain)
{
	const char *d = jsonx_str(domain, "domain");

	return domain_ok(d) ? d : NULL;
}
