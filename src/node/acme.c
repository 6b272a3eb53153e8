/* Automatic certificates for the app hostnames (ACME, RFC 8555): a
 * thread orders, for every environment with hostnames, one certificate
 * covering them all from --acme-directory (HTTP-01, answered by the
 * router: every plain server serves DIR/acme/www/.well-known/
 * acme-challenge/), and renews it at two thirds of its lifetime. A
 * failed order keeps the current certificate and is tried again after
 * 30 s, 1, 2, 4 … 60 min; the failure is reported with the environment
 * (certificate_error) and so shows in `nubo envs show` and the activity
 * log. Files: DIR/acme/account.key, DIR/acme/env-<id>-<hash>.{crt,key}
 * and DIR/acme/env-<id>.json naming the current pair (root 0600, written
 * atomically). */
#include "node.h"
#include "acme.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonx.h"
#include "log.h"
#include "settings-validate.h"
#include "util.h"
#include "xmalloc.h"

#define ACME_BACKOFF_FIRST	30
#define ACME_BACKOFF_MAX	3600

struct acert {
	long long	 env;		/* the environment (of a domain: the
					 * one that last listed it) */
	char		*domain;	/* a custom domain's, NULL: the app
					 * hostnames' of env */
	char		*crt, *key;	/* the current pair, or NULL */
	char		**names;	/* what it covers */
	int		 nnames;
	time_t		 not_before, not_after;
	char		*error;		/* the last failure, NULL after a success */
	time_t		 next_try;
	int		 fails;
	struct acert	*next;
};

static pthread_mutex_t acme_lock = PTHREAD_MUTEX_INITIALIZER;
static struct acert *acme_certs;
static char *acme_loc;

int
acme_enabled(void)
{
	return node->acme_directory != NULL;
}

static char *
acme_path(const char *sub)
{
	return xasprintf("%s/acme%s%s", node->data_dir, *sub ? "/" : "", sub);
}

const char *
acme_location(void)
{
	if (!acme_enabled())
		return "";
	if (acme_loc == NULL) {
		char *www = acme_path("www");

		acme_loc = xasprintf("    location ^~ %s {\n      root %s;\n"
		    "      default_type text/plain;\n    }\n",
		    SV_ACME_CHALLENGE, www);
		free(www);
	}
	return acme_loc;
}

static void
acert_names_free(struct acert *c)
{
	int i;

	for (i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	c->names = NULL;
	c->nnames = 0;
}

/* Take crt/key as the current pair of c when crt is a certificate. */
static int
acert_take(struct acert *c, char *crt, char *key)
{
	char *pem = util_read_file(crt, 1 << 20, NULL);
	char **names;
	time_t nb, na;
	int n;

	if (pem == NULL || acme_cert_times(pem, &nb, &na, &names, &n) == -1 ||
	    access(key, R_OK) != 0) {
		free(pem);
		return -1;
	}
	free(pem);
	acert_names_free(c);
	free(c->crt);
	free(c->key);
	c->crt = crt;
	c->key = key;
	c->names = names;
	c->nnames = n;
	c->not_before = nb;
	c->not_after = na;
	return 0;
}

/* The unit of env, loaded from DIR/acme/env-<id>.json the first time.
 * Under acme_lock. */
/* The files' stem of a unit: env-<id> or domain-<name>. */
static char *
acert_stem(long long env, const char *domain)
{
	return domain ? xasprintf("domain-%s", domain) :
	    xasprintf("env-%lld", env);
}

static struct acert *
acert_get(long long env, const char *domain)
{
	struct acert *c;
	char *p, *text, *stem;
	json_t *j;

	for (c = acme_certs; c; c = c->next)
		if (domain ? c->domain && strcmp(c->domain, domain) == 0 :
		    c->domain == NULL && c->env == env)
			return c;
	c = xcalloc(1, sizeof *c);
	c->env = env;
	c->domain = domain ? xstrdup(domain) : NULL;
	c->next = acme_certs;
	acme_certs = c;
	stem = acert_stem(env, domain);
	p = xasprintf("%s/acme/%s.json", node->data_dir, stem);
	free(stem);
	text = util_read_file(p, 1 << 16, NULL);
	j = text ? json_loads(text, 0, NULL) : NULL;
	if (jsonx_str(j, "crt") && jsonx_str(j, "key") &&
	    acert_take(c, xstrdup(jsonx_str(j, "crt")),
	    xstrdup(jsonx_str(j, "key"))) == -1)
		log_warn("acme: %s names a certificate that cannot be read: "
		    "ordering a new one", p);
	json_decref(j);
	free(text);
	free(p);
	return c;
}

static int
covers(struct acert *c, json_t *hosts)
{
	json_t *h;
	size_t i;
	int k, found;

	if (c->crt == NULL)
		return 0;
	json_array_foreach(hosts, i, h) {
		found = 0;
		for (k = 0; k < c->nnames; k++)
			found |= strcmp(c->names[k], json_string_value(h)) == 0;
		if (!found)
			return 0;
	}
	return 1;
}

static time_t
renew_at(struct acert *c)
{
	const char *t = getenv("NUBO_TEST_ACME_RENEW_AT");
	double f = 2.0 / 3.0;

	/* tests make a certificate due at once: a fraction of its life */
	if (t && *t)
		f = atof(t);
	return c->not_before + (time_t)((double)(c->not_after - c->not_before)
	    * f);
}

/* The current pair of a unit, loaded from disk here too: a restarted
 * node's first router config already serves the certificates it had. */
static int
acert_files(long long env, const char *domain, char **crt, char **key)
{
	struct acert *c;
	int rc = -1;

	if (!acme_enabled())
		return -1;
	pthread_mutex_lock(&acme_lock);
	c = acert_get(env, domain);
	if (c->crt && c->not_after > util_now()) {
		*crt = xstrdup(c->crt);
		*key = xstrdup(c->key);
		rc = 0;
	}
	pthread_mutex_unlock(&acme_lock);
	return rc;
}

int
acme_env_files(long long env_id, char **crt, char **key)
{
	return acert_files(env_id, NULL, crt, key);
}

int
acme_domain_files(const char *domain, char **crt, char **key)
{
	return domain ? acert_files(0, domain, crt, key) : -1;
}

void
acme_env_report(long long env_id, json_t *out)
{
	struct acert *c;
	char nb[32], na[32], ra[32];
	struct buf errs;

	if (!acme_enabled())
		return;
	buf_init(&errs, 0);
	pthread_mutex_lock(&acme_lock);
	for (c = acme_certs; c; c = c->next) {
		if (c->env != env_id)
			continue;
		if (c->domain) {
			if (c->error)
				buf_printf(&errs, "%scustom domain '%s': %s",
				    errs.len ? "; " : "", c->domain, c->error);
			continue;
		}
		if (c->error)
			buf_printf(&errs, "%s%s", errs.len ? "; " : "",
			    c->error);
		if (c->crt) {
			json_t *names = json_array();
			int i;

			for (i = 0; i < c->nnames; i++)
				json_array_append_new(names,
				    json_string(c->names[i]));
			util_time_iso(c->not_before, nb, sizeof nb);
			util_time_iso(c->not_after, na, sizeof na);
			util_time_iso(renew_at(c), ra, sizeof ra);
			json_object_set_new(out, "certificate", json_pack(
			    "{s:s,s:o,s:s,s:s,s:s}", "source", "acme", "names",
			    names, "not_before", nb, "not_after", na,
			    "renews_at", ra));
		}
	}
	pthread_mutex_unlock(&acme_lock);
	json_object_set_new(out, "certificate_error", errs.len ?
	    json_string(buf_cstr(&errs)) : json_null());
	buf_release(&errs);
}

/* Write the new pair and DIR/acme/env-<id>.json naming it; the pair
 * before it stays (a config being checked may still name it), older
 * ones go. */
static int
acme_store(const char *stem, const char *cert, const char *key, char **crtp,
    char **keyp)
{
	char *h = util_sha256_hex(cert, strlen(cert)), *dir = acme_path("");
	char *crt, *kp, *meta, *text;
	json_t *j;
	int rc = -1;

	h[16] = '\0';
	/* '@' is in no domain name: one stem is never the start of
	 * another's pairs (env-1 / env-10, domain-a.b / domain-a.b-c) */
	crt = xasprintf("%s/%s@%s.crt", dir, stem, h);
	kp = xasprintf("%s/%s@%s.key", dir, stem, h);
	meta = xasprintf("%s/%s.json", dir, stem);
	j = json_pack("{s:s,s:s}", "crt", crt, "key", kp);
	text = json_dumps(j, JSON_COMPACT);
	if (util_write_file(kp, key, strlen(key), 0600) == 0 &&
	    util_write_file(crt, cert, strlen(cert), 0600) == 0 &&
	    util_write_file(meta, text, strlen(text), 0600) == 0) {
		*crtp = crt;
		*keyp = kp;
		crt = kp = NULL;
		rc = 0;
	}
	free(text);
	json_decref(j);
	free(crt);
	free(kp);
	free(meta);
	free(dir);
	free(h);
	return rc;
}

static void
acme_remove_old(const char *stem, const char *keep1, const char *keep2)
{
	char *dir = acme_path(""), *pre = xasprintf("%s@", stem);
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d && (de = readdir(d)) != NULL) {
		char *p;

		if (strncmp(de->d_name, pre, strlen(pre)) != 0)
			continue;
		p = xasprintf("%s/%s", dir, de->d_name);
		if (strncmp(p, keep1 ? keep1 : "", strlen(p) - 4) != 0 &&
		    strncmp(p, keep2 ? keep2 : "", strlen(p) - 4) != 0)
			unlink(p);
		free(p);
	}
	if (d)
		closedir(d);
	free(pre);
	free(dir);
}

/* Order (or renew) environment env's certificate for hosts. */
static void
acme_run(long long env, const char *domain, json_t *hosts)
{
	const char **names = xcalloc(json_array_size(hosts) + 1,
	    sizeof *names);
	char *acct = acme_path("account.key"), *www = acme_path(
	    "www/.well-known/acme-challenge"), *cert, *key, *why, *crt, *kp;
	char *stem;
	struct acme_conf conf = { node->acme_directory, node->acme_email,
	    node->acme_ca, acct, www };
	struct acert *c;
	json_t *h;
	size_t i;
	int n = 0, rc, renewal;

	json_array_foreach(hosts, i, h)
		names[n++] = json_string_value(h);
	pthread_mutex_lock(&acme_lock);
	c = acert_get(env, domain);
	renewal = c->crt != NULL;
	pthread_mutex_unlock(&acme_lock);
	if (domain)
		log_info("acme: %s the certificate of custom domain %s "
		    "(environment %lld)", renewal ? "renewing" : "ordering",
		    domain, env);
	else
		log_info("acme: %s the certificate of environment %lld "
		    "(%s%s)", renewal ? "renewing" : "ordering", env, names[0],
		    n > 1 ? ", …" : "");
	rc = acme_order(&conf, names, n, &cert, &key, &why);
	pthread_mutex_lock(&acme_lock);
	c = acert_get(env, domain);
	stem = acert_stem(env, domain);
	if (rc == 0 && acme_store(stem, cert, key, &crt, &kp) == 0) {
		char *old = c->crt ? xstrdup(c->crt) : NULL;

		if (acert_take(c, crt, kp) == 0) {
			free(c->error);
			c->error = NULL;
			c->fails = 0;
			c->next_try = 0;
			acme_remove_old(stem, crt, old);
			if (domain)
				log_info("acme: custom domain %s has a new "
				    "certificate", domain);
			else
				log_info("acme: environment %lld has a new "
				    "certificate for %s%s", env, names[0], n > 1
				    ? ", …" : "");
		} else {
			free(crt);
			free(kp);
			why = xstrdup("the ACME server's certificate cannot be "
			    "read");
			rc = -1;
		}
		free(old);
	} else if (rc == 0) {
		why = xasprintf("cannot store the certificate: %s",
		    strerror(errno));
		rc = -1;
	}
	if (rc == -1) {
		int wait = ACME_BACKOFF_FIRST << (c->fails < 7 ? c->fails : 7);
		char until[32];

		if (wait > ACME_BACKOFF_MAX)
			wait = ACME_BACKOFF_MAX;
		c->fails++;
		c->next_try = util_now() + wait;
		free(c->error);
		if (c->crt) {
			util_time_iso(c->not_after, until, sizeof until);
			c->error = xasprintf("%s failed: %s; the current "
			    "certificate (valid until %s) stays; next try in "
			    "%d s", renewal ? "renewal" : "order", why, until,
			    wait);
		} else
			c->error = xasprintf("no certificate yet: %s; next try "
			    "in %d s", why, wait);
		if (domain)
			log_warn("acme: custom domain %s: %s", domain,
			    c->error);
		else
			log_warn("acme: environment %lld: %s", env, c->error);
	}
	free(stem);
	pthread_mutex_unlock(&acme_lock);
	if (rc == 0) {
		pthread_mutex_lock(&node->lock);
		node->router_dirty = 1;
		pthread_mutex_unlock(&node->lock);
	}
	if (cert)
		free(cert);
	if (key) {
		explicit_bzero(key, strlen(key));
		free(key);
	}
	free(why);
	free(names);
	free(acct);
	free(www);
}

static void *
acme_loop(void *arg)
{
	(void)arg;
	for (;;) {
		json_t *todo = json_array(), *t;
		struct env *e;
		size_t i;

		pthread_mutex_lock(&node->lock);
		for (e = node->envs; e; e = e->next) {
			json_t *hosts = json_array(), *h;
			size_t k;

			json_array_foreach(json_object_get(e->spec,
			    "hostnames"), k, h)
				if (router_host_ok(json_string_value(h)))
					json_array_append(hosts, h);
			if (json_array_size(hosts) == 0 || e->removed) {
				json_decref(hosts);
				continue;
			}
			json_array_append_new(todo, json_pack("{s:I,s:o}",
			    "id", (json_int_t)e->id, "hosts", hosts));
			/* custom domains without a certificate of the
			 * user's (the user's always wins) */
			json_array_foreach(json_object_get(e->spec,
			    "domains"), k, h) {
				const char *d = jsonx_str(h, "domain");

				if (jsonx_str(h, "certificate") ||
				    !router_host_ok(d))
					continue;
				json_array_append_new(todo, json_pack(
				    "{s:I,s:s,s:[s]}", "id", (json_int_t)e->id,
				    "domain", d, "hosts", d));
			}
		}
		pthread_mutex_unlock(&node->lock);
		json_array_foreach(todo, i, t) {
			long long id = jsonx_int(t, "id", 0);
			json_t *hosts = json_object_get(t, "hosts");
			const char *dom = jsonx_str(t, "domain");
			struct acert *c;
			int due;

			pthread_mutex_lock(&acme_lock);
			c = acert_get(id, dom);
			c->env = id;	/* a domain reports with its holder */
			due = (!covers(c, hosts) || util_now() >= renew_at(c))
			    && util_now() >= c->next_try;
			pthread_mutex_unlock(&acme_lock);
			if (due)
				acme_run(id, dom, hosts);
		}
		json_decref(todo);
		sleep(2);
	}
	return NULL;
}

void
acme_start(void)
{
	char *www, *p;
	pthread_t t;

	if (!acme_enabled())
		return;
	www = acme_path("www/.well-known/acme-challenge");
	/* nginx's workers read the challenge files: the path is
	 * traversable, the account key and certificates are root's 0600 */
	p = acme_path("");
	util_mkdir_p(p, 0711);
	chmod(p, 0711);
	free(p);
	if (util_mkdir_p(www, 0755) == -1)
		log_warn("acme: cannot create %s: %s", www, strerror(errno));
	p = acme_path("www");
	chmod(p, 0755);
	free(p);
	p = acme_path("www/.well-known");
	chmod(p, 0755);
	free(p);
	chmod(www, 0755);
	free(www);
	log_info("acme: certificates for the app hostnames from %s",
	    node->acme_directory);
	if (pthread_create(&t, NULL, acme_loop, NULL) == 0)
		pthread_detach(t);
	else
		log_warn("acme: cannot start its thread");
}
