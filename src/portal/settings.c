/* Environment settings: the document, its validation, rendering, diff and
 * v3→v4 translation. See settings.h for the three forms of the document. */
#include "settings.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <sodium.h>

#include "buf.h"
#include "jsonx.h"
#include "log.h"
#include "nubo_limits.h"
#include "settings-validate.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

const char *const settings_sections[] = {
	"constants", "scheduled_events", "domains", "access", "headers",
	"runtime", "env_vars", "maintenance_window", NULL,
};

void
settings_error(json_t *errors, const char *setting, const char *fmt, ...)
{
	va_list ap;
	char *reason;

	va_start(ap, fmt);
	reason = xvasprintf(fmt, ap);
	va_end(ap);
	json_array_append_new(errors, json_pack("{s:s,s:s}", "setting",
	    setting, "reason", reason));
	free(reason);
}

char *
settings_errors_text(json_t *errors)
{
	struct buf b;
	json_t *e;
	size_t i;

	buf_init(&b, 0);
	json_array_foreach(errors, i, e) {
		if (i == 8) {
			buf_printf(&b, "; and %zu more", json_array_size(errors)
			    - i);
			break;
		}
		buf_printf(&b, "%ssetting '%s': %s", i ? "; " : "",
		    jsonx_str(e, "setting"), jsonx_str(e, "reason"));
	}
	return buf_detach(&b);
}

/* Take a validator's cause into errors. */
static void
add_cause(json_t *errors, const char *setting, char *cause)
{
	settings_error(errors, setting, "%s", cause ? cause : "invalid");
	free(cause);
}

/* ---- sealing ---------------------------------------------------------- */

static pthread_mutex_t seal_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char seal_key[crypto_secretbox_KEYBYTES];
static int seal_ready;

int
settings_seal_init(const char *path)
{
	char *data = NULL;
	size_t len = 0;
	int rc = -1;

	pthread_mutex_lock(&seal_lock);
	if (seal_ready) {
		rc = 0;
		goto out;
	}
	data = util_read_file(path, 4096, &len);
	if (data == NULL && errno == ENOENT) {
		/* Key material is written once, synced with its folder, and
		 * never replaced: every sealed secret depends on it. */
		crypto_secretbox_keygen(seal_key);
		if (util_write_file_once(path, seal_key, sizeof seal_key,
		    0600) == 0)
			goto loaded;
		if (errno != EEXIST) {
			error("cannot write %s: %s", path, strerror(errno));
			goto out;
		}
		data = util_read_file(path, 4096, &len);
	}
	if (data == NULL) {
		error("cannot read %s: %s", path, strerror(errno));
		goto out;
	} else if (len != sizeof seal_key) {
		error("%s is damaged (%zu bytes)", path, len);
		goto out;
	} else {
		memcpy(seal_key, data, sizeof seal_key);
	}
loaded:
	chmod(path, 0600);
	seal_ready = 1;
	rc = 0;
out:
	pthread_mutex_unlock(&seal_lock);
	if (data)
		sodium_memzero(data, len);
	free(data);
	return rc;
}

char *
settings_seal_key_id(void)
{
	unsigned char h[crypto_generichash_BYTES_MIN];
	char *out = xmalloc(2 * sizeof h + 1);

	if (!seal_ready)
		fatal("settings: sealing key not loaded");
	/* a one-way digest: naming the key reveals nothing of it */
	crypto_generichash(h, sizeof h, seal_key, sizeof seal_key,
	    (const unsigned char *)"nubo secrets key id", 19);
	util_hex(h, sizeof h, out);
	return out;
}

char *
settings_seal(const char *plain)
{
	size_t n = strlen(plain);
	size_t blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n;
	unsigned char *box = xmalloc(blen);
	size_t olen = sodium_base64_ENCODED_LEN(blen,
	    sodium_base64_VARIANT_ORIGINAL);
	char *out = xmalloc(olen);

	if (!seal_ready)
		fatal("settings: sealing key not loaded");
	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES,
	    (const unsigned char *)plain, n, box, seal_key);
	sodium_bin2base64(out, olen, box, blen, sodium_base64_VARIANT_ORIGINAL);
	free(box);
	return out;
}

char *
settings_unseal(const char *sealed)
{
	size_t slen, blen = 0;
	unsigned char *box;
	char *out = NULL;

	if (!seal_ready || sealed == NULL)
		return NULL;
	slen = strlen(sealed);
	box = xmalloc(slen + 1);
	if (sodium_base642bin(box, slen, sealed, slen, NULL, &blen, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    blen < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
		goto out;
	out = xmalloc(blen - crypto_secretbox_NONCEBYTES -
	    crypto_secretbox_MACBYTES + 1);
	if (crypto_secretbox_open_easy((unsigned char *)out, box +
	    crypto_secretbox_NONCEBYTES, blen - crypto_secretbox_NONCEBYTES,
	    box, seal_key) != 0) {
		free(out);
		out = NULL;
		goto out;
	}
	out[blen - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES] =
	    '\0';
out:
	free(box);
	return out;
}

/* ---- the manifest ----------------------------------------------------- */

/* The manifest's declaration of a constant or scheduled event, or NULL. */
static json_t *
manifest_find(json_t *manifest, const char *list, const char *name)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(manifest, list), i, v)
		if (jsonx_str(v, "name") && strcmp(jsonx_str(v, "name"),
		    name) == 0)
			return v;
	return NULL;
}

static const char *
manifest_label(json_t *manifest)
{
	static __thread char label[160];

	snprintf(label, sizeof label, "'%.64s' %.32s",
	    jsonx_str(manifest, "name") ? jsonx_str(manifest, "name") : "?",
	    jsonx_str(manifest, "version") ? jsonx_str(manifest, "version") :
	    "");
	return label;
}

/* ---- normalising input into the stored form ----------------------------- */

/* Check that v is an object of at most NUBO_SETTINGS_ITEMS_MAX entries. */
static int
is_map(json_t *errors, const char *setting, json_t *v)
{
	if (!json_is_object(v)) {
		settings_error(errors, setting, "must be an object");
		return 0;
	}
	if (json_object_size(v) > NUBO_SETTINGS_ITEMS_MAX) {
		settings_error(errors, setting, "has more than %d entries",
		    NUBO_SETTINGS_ITEMS_MAX);
		return 0;
	}
	return 1;
}

/* Only the listed keys, for nested objects ("unknown field" otherwise). */
static int
only_keys(json_t *errors, const char *setting, json_t *obj,
    const char *const *keys)
{
	const char *k;
	const char *const *p;
	json_t *v;
	int ok = 1;

	json_object_foreach(obj, k, v) {
		for (p = keys; *p; p++)
			if (strcmp(*p, k) == 0)
				break;
		if (*p == NULL) {
			settings_error(errors, setting, "unknown field '%.64s'",
			    k);
			ok = 0;
		}
	}
	return ok;
}

/* Normalises one entry `name` (the setting "section.name") of a map
 * section into out, or appends to errors. */
typedef void norm_entry_fn(const struct settings_target *t,
    const char *setting, const char *name, json_t *v, json_t *out,
    json_t *errors);

/* A map section (constants, scheduled_events, domains, headers,
 * env_vars): every entry through entry; NULL when any error was
 * appended. */
static json_t *
norm_map(const struct settings_target *t, const char *section, json_t *in,
    json_t *errors, norm_entry_fn *entry)
{
	json_t *out = json_object(), *v;
	const char *name;
	size_t before = json_array_size(errors);

	if (!is_map(errors, section, in))
		goto bad;
	json_object_foreach(in, name, v) {
		char *setting = xasprintf("%s.%s", section, name);

		entry(t, setting, name, v, out, errors);
		free(setting);
	}
	if (json_array_size(errors) == before)
		return out;
bad:
	json_decref(out);
	return NULL;
}

static void
norm_constant(const struct settings_target *t, const char *setting,
    const char *name, json_t *v, json_t *out, json_t *errors)
{
	char *cause = NULL, *canon = NULL, *text = NULL;
	enum sv_type type = SV_STRING;
	json_t *decl = NULL;

	if (sv_constant_name(name, &cause) == -1) {
		add_cause(errors, setting, cause);
		goto out;
	}
	if (t->manifest) {
		decl = manifest_find(t->manifest, "constants", name);
		if (decl == NULL) {
			settings_error(errors, setting, "not declared by the "
			    "deployed package %s", manifest_label(t->manifest));
			goto out;
		}
		if (jsonx_str(decl, "type") &&
		    sv_type_parse(jsonx_str(decl, "type"), &type) == -1)
			type = SV_STRING;
	}
	if (!json_is_string(v)) {
		settings_error(errors, setting, "must be a string (the value "
		    "as text, checked against the constant's type)");
		goto out;
	}
	text = xstrdup(json_string_value(v));
	if (sv_constant_value(type, text, &canon, &cause) == -1) {
		settings_error(errors, setting, "wrong type for %s: %s",
		    sv_type_name(type), cause);
		free(cause);
		goto out;
	}
	json_object_set_new(out, name, json_string(canon));
out:
	free(canon);
	free(text);
}

static void
norm_event(const struct settings_target *t, const char *setting,
    const char *name, json_t *v, json_t *out, json_t *errors)
{
	char *cause = NULL;

	if (sv_constant_name(name, &cause) == -1)
		add_cause(errors, setting, cause);
	else if (t->manifest && manifest_find(t->manifest, "scheduled_events",
	    name) == NULL)
		settings_error(errors, setting, "not declared by the deployed "
		    "package %s", manifest_label(t->manifest));
	else if (!json_is_boolean(v))
		settings_error(errors, setting, "must be true (enabled) or "
		    "false (disabled)");
	else
		json_object_set(out, name, v);
}

static void
norm_domain(const struct settings_target *t, const char *setting,
    const char *name, json_t *v, json_t *out, json_t *errors)
{
	static const char *const keys[] = { "certificate", "private_key", NULL };
	json_t *cur = json_object_get(t->current, "domains");
	char *cause = NULL, *domain = NULL, *key = NULL;
	const char *cert = jsonx_str(v, "certificate");
	json_t *old;
	char *trimmed = settings_domain_canon(name);
	int bad = sv_domain(trimmed, &domain, &cause);

	/* names are case-insensitive and the root's dot is no part of them:
	 * kept as settings_domain_canon() writes them */
	free(trimmed);
	if (bad == -1) {
		add_cause(errors, setting, cause);
		goto out;
	}
	if (json_object_get(out, domain)) {
		settings_error(errors, setting, "'%s' is listed twice (a domain "
		    "name ignores case and a trailing dot)", domain);
		goto out;
	}
	if (!json_is_object(v) || !only_keys(errors, setting, v, keys)) {
		if (!json_is_object(v))
			settings_error(errors, setting, "must be an object "
			    "{certificate, private_key}");
		goto out;
	}
	/* {}: no certificate of the user's, the node obtains one by ACME
	 * (src/node/acme.c) */
	if (json_object_size(v) == 0) {
		json_object_set_new(out, domain, json_object());
		goto out;
	}
	if (cert == NULL) {
		settings_error(errors, setting, "needs a certificate (PEM)");
		goto out;
	}
	if (json_object_get(v, "private_key") &&
	    !json_is_string(json_object_get(v, "private_key"))) {
		settings_error(errors, setting, "private_key must be a PEM "
		    "string");
		goto out;
	}
	if (jsonx_str(v, "private_key"))
		key = xstrdup(jsonx_str(v, "private_key"));
	else if ((old = json_object_get(cur, domain)) != NULL)
		key = settings_unseal(jsonx_str(old, "private_key_sealed"));
	if (key == NULL) {
		settings_error(errors, setting, "needs a private key (the "
		    "document was exported without secrets and the target has "
		    "no key for this domain)");
		goto out;
	}
	if (sv_certificate(cert, key, domain, t->now, NULL, &cause) == -1) {
		add_cause(errors, setting, cause);
		goto out;
	}
	{
		char *sealed = settings_seal(key);

		json_object_set_new(out, domain, json_pack("{s:s,s:s}",
		    "certificate", cert, "private_key_sealed", sealed));
		free(sealed);
	}
out:
	if (key) {
		sodium_memzero(key, strlen(key));
		free(key);
	}
	free(domain);
}

/* A crypt(3) SHA-512 hash nginx's auth_basic accepts (htpasswd format). */
static char *
password_hash(const char *password)
{
	static const char alphabet[] =
	    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	struct crypt_data *cd = xcalloc(1, sizeof *cd);
	char salt[3 + 16 + 2];
	unsigned char rnd[16];
	char *h, *out = NULL;
	int i;

	randombytes_buf(rnd, sizeof rnd);
	memcpy(salt, "$6$", 3);
	for (i = 0; i < 16; i++)
		salt[3 + i] = alphabet[rnd[i] & 63];
	salt[19] = '$';
	salt[20] = '\0';
	h = crypt_r(password, salt, cd);
	if (h && strncmp(h, "$6$", 3) == 0)
		out = xstrdup(h);
	free(cd);
	return out;
}

/* A hash already in htpasswd form ($6$, $5$, $apr1$, $2b$/$2y$). */
static int
valid_hash(const char *h)
{
	size_t i;

	if (strlen(h) < 20 || strlen(h) > 256 || (strncmp(h, "$6$", 3) != 0 &&
	    strncmp(h, "$5$", 3) != 0 && strncmp(h, "$apr1$", 6) != 0 &&
	    strncmp(h, "$2b$", 4) != 0 && strncmp(h, "$2y$", 4) != 0))
		return 0;
	for (i = 0; h[i]; i++)
		if (!(h[i] == '.' || h[i] == '/' || h[i] == '$' ||
		    (h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'z')
		    || (h[i] >= 'A' && h[i] <= 'Z') || h[i] == '='))
			return 0;
	return 1;
}

static json_t *
norm_cidrs(json_t *in, const char *setting, json_t *errors)
{
	json_t *out = json_array(), *v;
	size_t i;

	if (!json_is_array(in)) {
		settings_error(errors, setting, "must be a list of IP addresses "
		    "or CIDRs");
		json_decref(out);
		return NULL;
	}
	if (json_array_size(in) > NUBO_SETTINGS_ITEMS_MAX) {
		settings_error(errors, setting, "has more than %d entries",
		    NUBO_SETTINGS_ITEMS_MAX);
		json_decref(out);
		return NULL;
	}
	json_array_foreach(in, i, v) {
		char *canon = NULL, *cause = NULL;

		if (!json_is_string(v)) {
			settings_error(errors, setting, "entry %zu is not a "
			    "string", i + 1);
			continue;
		}
		if (sv_cidr(json_string_value(v), &canon, &cause) == -1) {
			add_cause(errors, setting, cause);
			continue;
		}
		json_array_append_new(out, json_string(canon));
		free(canon);
	}
	return out;
}

static json_t *
norm_profile(const char *pname, json_t *in, json_t *cur_profile,
    json_t *errors)
{
	static const char *const keys[] = { "allow", "deny", "basic_auth",
	    "client_ca", NULL };
	char *setting = xasprintf("access.profiles.%s", pname);
	json_t *out = json_object(), *v, *users;
	const char *user;
	char *cause = NULL;

	if (!json_is_object(in)) {
		settings_error(errors, setting, "must be an object {allow, deny,"
		    " basic_auth, client_ca}");
		goto out;
	}
	if (!only_keys(errors, setting, in, keys))
		goto out;
	if ((v = json_object_get(in, "allow")) != NULL) {
		char *s = xasprintf("%s.allow", setting);
		json_t *l = norm_cidrs(v, s, errors);

		if (l)
			json_object_set_new(out, "allow", l);
		free(s);
	}
	if ((v = json_object_get(in, "deny")) != NULL) {
		char *s = xasprintf("%s.deny", setting);
		json_t *l = norm_cidrs(v, s, errors);

		if (l)
			json_object_set_new(out, "deny", l);
		free(s);
	}
	if ((v = json_object_get(in, "client_ca")) != NULL) {
		char *s = xasprintf("%s.client_ca", setting);

		if (!json_is_string(v))
			settings_error(errors, s, "must be PEM text");
		else if (sv_ca_bundle(json_string_value(v), &cause) == -1)
			add_cause(errors, s, cause);
		else
			json_object_set(out, "client_ca", v);
		free(s);
	}
	if ((v = json_object_get(in, "basic_auth")) != NULL) {
		char *s = xasprintf("%s.basic_auth", setting);

		users = json_object();
		if (is_map(errors, s, v)) {
			json_t *u;

			json_object_foreach(v, user, u) {
				static const char *const ukeys[] = {
				    "password", "password_hash", NULL };
				char *us = xasprintf("%s.%s", s, user);
				const char *pw = jsonx_str(u, "password");
				const char *hash = jsonx_str(u, "password_hash");
				char *h = NULL;

				if (sv_basic_auth_user(user, &cause) == -1) {
					add_cause(errors, us, cause);
				} else if (!json_is_object(u) ||
				    !only_keys(errors, us, u, ukeys)) {
					if (!json_is_object(u))
						settings_error(errors, us, "must be"
						    " an object {password} or "
						    "{password_hash}");
				} else if (pw) {
					if (strlen(pw) < 8 || strlen(pw) > 1024)
						settings_error(errors, us, "a "
						    "password has 8 to 1024 "
						    "characters");
					else if ((h = password_hash(pw)) == NULL)
						settings_error(errors, us, "cannot "
						    "hash the password");
				} else if (hash) {
					if (!valid_hash(hash))
						settings_error(errors, us,
						    "password_hash is not an "
						    "htpasswd hash ($6$, $5$, "
						    "$apr1$, $2y$)");
					else
						h = xstrdup(hash);
				} else {
					json_t *old = json_object_get(
					    json_object_get(cur_profile,
					    "basic_auth"), user);

					if (jsonx_str(old, "password_hash"))
						h = xstrdup(jsonx_str(old,
						    "password_hash"));
					else
						settings_error(errors, us, "needs "
						    "a password (the document was "
						    "exported without secrets)");
				}
				if (h)
					json_object_set_new(users, user,
					    json_pack("{s:s}", "password_hash",
					    h));
				free(h);
				free(us);
			}
		}
		if (json_object_size(users))
			json_object_set(out, "basic_auth", users);
		json_decref(users);
		free(s);
	}
out:
	free(setting);
	return out;
}

static json_t *
norm_access(const struct settings_target *t, json_t *in, json_t *errors)
{
	static const char *const keys[] = { "profiles", "paths", NULL };
	json_t *out = json_object(), *profiles = json_object(),
	    *paths = json_object(), *v;
	json_t *cur = json_object_get(json_object_get(t->current, "access"),
	    "profiles");
	const char *name;
	size_t before = json_array_size(errors);

	json_object_set_new(out, "profiles", profiles);
	json_object_set_new(out, "paths", paths);
	if (!json_is_object(in)) {
		settings_error(errors, "access", "must be an object {profiles, "
		    "paths}");
		goto bad;
	}
	if (!only_keys(errors, "access", in, keys))
		goto bad;
	if ((v = json_object_get(in, "profiles")) != NULL &&
	    is_map(errors, "access.profiles", v)) {
		json_t *p;

		json_object_foreach(v, name, p) {
			char *cause = NULL;

			if (sv_profile_name(name, &cause) == -1) {
				char *s = xasprintf("access.profiles.%s", name);

				add_cause(errors, s, cause);
				free(s);
				continue;
			}
			json_object_set_new(profiles, name, norm_profile(name, p,
			    json_object_get(cur, name), errors));
		}
	}
	if ((v = json_object_get(in, "paths")) != NULL &&
	    is_map(errors, "access.paths", v)) {
		json_t *p;

		json_object_foreach(v, name, p) {
			char *s = xasprintf("access.paths.%s", name);
			char *cause = NULL;

			if (sv_path_prefix(name, &cause) == -1)
				add_cause(errors, s, cause);
			else if (strcmp(name, "/") != 0 &&
			    strcmp(t->generation, "v3") == 0)
				settings_error(errors, s, "per-path access "
				    "restrictions are not supported on v3 nodes "
				    "(only '/', the whole environment)");
			else if (!json_is_string(p))
				settings_error(errors, s, "must name a profile");
			else if (json_object_get(profiles,
			    json_string_value(p)) == NULL)
				settings_error(errors, s, "no access profile "
				    "'%.64s'", json_string_value(p));
			else
				json_object_set(paths, name, p);
			free(s);
		}
	}
	if (json_array_size(errors) == before)
		return out;
bad:
	json_decref(out);
	return NULL;
}

static void
norm_header(const struct settings_target *t, const char *setting,
    const char *name, json_t *v, json_t *out, json_t *errors)
{
	const char *canon = NULL;
	char *cause = NULL;

	if (sv_header_name(name, t->generation, &canon, &cause) == -1 ||
	    (json_is_string(v) && sv_header_value(canon, json_string_value(v),
	    &cause) == -1))
		add_cause(errors, setting, cause);
	else if (!json_is_string(v))
		settings_error(errors, setting, "must be a string");
	else if (json_object_get(out, canon))
		settings_error(errors, setting, "given twice");
	else
		json_object_set(out, canon, v);
}

static json_t *
norm_runtime(const struct settings_target *t, json_t *in, json_t *errors)
{
	static const char *const keys[] = { "instances", "memory_mb",
	    "settings", NULL };
	json_t *out = json_object(), *v;
	size_t before = json_array_size(errors);
	int v3 = strcmp(t->generation, "v3") == 0;

	if (!json_is_object(in)) {
		settings_error(errors, "runtime", "must be an object {instances,"
		    " memory_mb, settings}");
		goto bad;
	}
	if (!only_keys(errors, "runtime", in, keys))
		goto bad;
	if ((v = json_object_get(in, "instances")) != NULL) {
		if (v3)
			settings_error(errors, "runtime.instances", "not "
			    "supported on v3 nodes (fixed at one instance)");
		else if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > NUBO_INSTANCES_MAX)
			settings_error(errors, "runtime.instances", "must be an "
			    "integer from 1 to %d", NUBO_INSTANCES_MAX);
		else
			json_object_set(out, "instances", v);
	}
	if ((v = json_object_get(in, "memory_mb")) != NULL) {
		if (v3)
			settings_error(errors, "runtime.memory_mb", "not "
			    "supported on v3 nodes (fixed memory)");
		else if (!json_is_integer(v) || json_integer_value(v) <
		    NUBO_MEMORY_MB_MIN || json_integer_value(v) >
		    NUBO_MEMORY_MB_MAX)
			settings_error(errors, "runtime.memory_mb", "must be an "
			    "integer from %d to %d", NUBO_MEMORY_MB_MIN,
			    NUBO_MEMORY_MB_MAX);
		else
			json_object_set(out, "memory_mb", v);
	}
	if ((v = json_object_get(in, "settings")) != NULL &&
	    is_map(errors, "runtime.settings", v)) {
		json_t *s = json_object(), *sv;
		const char *k;

		json_object_foreach(v, k, sv) {
			char *setting = xasprintf("runtime.settings.%s", k);
			char *cause = NULL;

			if (sv_runtime_key(k, &cause) == -1 ||
			    (json_is_string(sv) && sv_text(json_string_value(
			    sv), NUBO_SETTING_VALUE_MAX, &cause) == -1))
				add_cause(errors, setting, cause);
			else if (!json_is_string(sv))
				settings_error(errors, setting, "must be a "
				    "string");
			else
				json_object_set(s, k, sv);
			free(setting);
		}
		json_object_set_new(out, "settings", s);
	}
	if (json_array_size(errors) == before)
		return out;
bad:
	json_decref(out);
	return NULL;
}

static void
norm_env_var(const struct settings_target *t, const char *setting,
    const char *name, json_t *v, json_t *out, json_t *errors)
{
	static const char *const keys[] = { "value", "secret", NULL };
	json_t *cur = json_object_get(t->current, "env_vars");
	char *cause = NULL, *kept = NULL;
	const char *value = NULL;
	int secret = 0;

	if (sv_env_var_name(name, &cause) == -1) {
		add_cause(errors, setting, cause);
		goto out;
	}
	if (json_is_string(v)) {
		value = json_string_value(v);
	} else if (json_is_object(v)) {
		if (!only_keys(errors, setting, v, keys))
			goto out;
		if (json_object_get(v, "secret") &&
		    !json_is_boolean(json_object_get(v, "secret"))) {
			settings_error(errors, setting, "secret must be true or "
			    "false");
			goto out;
		}
		if (json_object_get(v, "value") &&
		    !json_is_string(json_object_get(v, "value"))) {
			settings_error(errors, setting, "value must be a "
			    "string");
			goto out;
		}
		secret = jsonx_bool(v, "secret", 0);
		value = jsonx_str(v, "value");
		if (value == NULL && secret) {
			json_t *old = json_object_get(cur, name);

			if (old && jsonx_bool(old, "secret", 0))
				kept = settings_unseal(jsonx_str(old,
				    "sealed"));
			if (kept == NULL) {
				settings_error(errors, setting, "needs a value "
				    "(the document was exported without "
				    "secrets and the target has no such "
				    "secret)");
				goto out;
			}
			value = kept;
		} else if (value == NULL) {
			settings_error(errors, setting, "needs a value");
			goto out;
		}
	} else {
		settings_error(errors, setting, "must be a string or {value, "
		    "secret}");
		goto out;
	}
	if (sv_text(value, NUBO_SETTING_VALUE_MAX, &cause) == -1) {
		add_cause(errors, setting, cause);
		goto out;
	}
	if (secret) {
		char *sealed = settings_seal(value);

		json_object_set_new(out, name, json_pack("{s:b,s:s}", "secret",
		    1, "sealed", sealed));
		free(sealed);
	} else {
		json_object_set_new(out, name, json_pack("{s:s}", "value",
		    value));
	}
out:
	if (kept) {
		sodium_memzero(kept, strlen(kept));
		free(kept);
	}
}

static json_t *
norm_window(const struct settings_target *t, json_t *in, json_t *errors)
{
	static const char *const keys[] = { "day", "start", "duration_minutes",
	    "apply_pending_restarts", NULL };
	const char *day = NULL;
	char *cause = NULL;
	int minutes;
	json_t *v;
	size_t before = json_array_size(errors);

	(void)t;
	if (json_is_null(in))
		return json_null();
	if (!json_is_object(in)) {
		settings_error(errors, "maintenance_window", "must be an object "
		    "{day, start, duration_minutes} or null");
		return NULL;
	}
	if (!only_keys(errors, "maintenance_window", in, keys))
		return NULL;
	if (!json_is_string(json_object_get(in, "day")))
		settings_error(errors, "maintenance_window.day", "needs a day of "
		    "the week");
	else if (sv_window_day(jsonx_str(in, "day"), &day, &cause) == -1)
		add_cause(errors, "maintenance_window.day", cause);
	if (!json_is_string(json_object_get(in, "start")))
		settings_error(errors, "maintenance_window.start", "needs a "
		    "start time HH:MM (UTC)");
	else if (sv_window_start(jsonx_str(in, "start"), &minutes, &cause)
	    == -1)
		add_cause(errors, "maintenance_window.start", cause);
	v = json_object_get(in, "duration_minutes");
	if (!json_is_integer(v))
		settings_error(errors, "maintenance_window.duration_minutes",
		    "needs a whole number of minutes");
	else if (sv_window_duration(json_integer_value(v), &cause) == -1)
		add_cause(errors, "maintenance_window.duration_minutes", cause);
	v = json_object_get(in, "apply_pending_restarts");
	if (v && !json_is_boolean(v))
		settings_error(errors, "maintenance_window.apply_pending_restarts",
		    "must be true or false");
	if (json_array_size(errors) != before)
		return NULL;
	return json_pack("{s:s,s:s,s:I,s:b}", "day", day, "start",
	    jsonx_str(in, "start"), "duration_minutes",
	    (json_int_t)jsonx_int(in, "duration_minutes", 0),
	    "apply_pending_restarts", jsonx_bool(in, "apply_pending_restarts",
	    0));
}

/* How each section is normalised, in the order of settings_sections[]: a
 * map section's entries one by one through norm_map(), any other section
 * as a whole. */
static const struct settings_section {
	const char	*name;
	norm_entry_fn	*entry;
	json_t		*(*normalize)(const struct settings_target *,
			    json_t *in, json_t *errors);
} sections[] = {
	{ "constants",		norm_constant,	NULL },
	{ "scheduled_events",	norm_event,	NULL },
	{ "domains",		norm_domain,	NULL },
	{ "access",		NULL,		norm_access },
	{ "headers",		norm_header,	NULL },
	{ "runtime",		NULL,		norm_runtime },
	{ "env_vars",		norm_env_var,	NULL },
	{ "maintenance_window",	NULL,		norm_window },
};
_Static_assert(sizeof sections / sizeof sections[0] ==
    sizeof settings_sections / sizeof settings_sections[0] - 1,
    "every section in settings_sections[] needs a normaliser");

static const struct settings_section *
section_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof sections / sizeof sections[0]; i++)
		if (strcmp(sections[i].name, name) == 0)
			return &sections[i];
	return NULL;
}

int
settings_section_known(const char *name)
{
	return section_find(name) != NULL;
}

json_t *
settings_normalize_section(const struct settings_target *t,
    const char *section, json_t *in, json_t *errors)
{
	const struct settings_section *sec = section_find(section);

	if (sec == NULL) {
		settings_error(errors, section, "unknown setting");
		return NULL;
	}
	if (sec->entry)
		return norm_map(t, sec->name, in, errors, sec->entry);
	return sec->normalize(t, in, errors);
}

json_t *
settings_normalize(const struct settings_target *t, json_t *in,
    json_t *errors)
{
	json_t *out = json_object(), *v;
	const char *k;
	size_t before = json_array_size(errors);

	if (!json_is_object(in)) {
		settings_error(errors, "document", "must be a JSON object");
		goto bad;
	}
	json_object_foreach(in, k, v) {
		if (strcmp(k, "format") == 0) {
			if (!json_is_string(v) || strcmp(json_string_value(v),
			    SETTINGS_FORMAT) != 0)
				settings_error(errors, "format", "must be '%s'",
				    SETTINGS_FORMAT);
			continue;
		}
		if (strcmp(k, "generation") == 0) {
			if (!json_is_string(v) || (strcmp(json_string_value(v),
			    "v3") != 0 && strcmp(json_string_value(v), "v4")
			    != 0))
				settings_error(errors, "generation", "must be "
				    "'v3' or 'v4'");
			continue;
		}
		if (strcmp(k, "source") == 0 || strcmp(k, "secrets") == 0 ||
		    strcmp(k, "exported_at") == 0)
			continue;
		v = settings_normalize_section(t, k, v, errors);
		if (v && !(json_is_null(v) || (json_is_object(v) &&
		    json_object_size(v) == 0)))
			json_object_set_new(out, k, v);
		else
			json_decref(v);
	}
	if (json_array_size(errors) == before)
		return out;
bad:
	json_decref(out);
	return NULL;
}

/* ---- rendering -------------------------------------------------------- */

json_t *
settings_render(json_t *stored, int include_secrets)
{
	json_t *out = json_deep_copy(stored), *sec, *v;
	const char *k;

	if (out == NULL)
		return json_object();
	json_object_foreach(json_object_get(out, "domains"), k, v) {
		if (include_secrets) {
			char *key = settings_unseal(jsonx_str(v,
			    "private_key_sealed"));

			if (key)
				json_object_set_new(v, "private_key",
				    json_string(key));
			free(key);
		}
		json_object_del(v, "private_key_sealed");
	}
	json_object_foreach(json_object_get(json_object_get(out, "access"),
	    "profiles"), k, sec) {
		json_t *u;
		const char *user;

		json_object_foreach(json_object_get(sec, "basic_auth"), user, u)
			if (!include_secrets)
				json_object_del(u, "password_hash");
	}
	json_object_foreach(json_object_get(out, "env_vars"), k, v) {
		if (!jsonx_bool(v, "secret", 0))
			continue;
		if (include_secrets) {
			char *plain = settings_unseal(jsonx_str(v, "sealed"));

			if (plain)
				json_object_set_new(v, "value",
				    json_string(plain));
			free(plain);
		}
		json_object_del(v, "sealed");
	}
	return out;
}

/* ---- translation, support, diff ---------------------------------------- */

int
settings_supported(const char *setting, const char *gen, json_t *manifest,
    char **reason)
{
	int v3 = strcmp(gen, "v3") == 0;

	*reason = NULL;
	if (v3 && strncmp(setting, "headers.", 8) == 0 &&
	    strcmp(setting + 8, "X-Frame-Options") != 0) {
		*reason = xasprintf("header '%s' does not exist on v3 nodes",
		    setting + 8);
		return 0;
	}
	if (v3 && strncmp(setting, "access.paths.", 13) == 0 &&
	    strcmp(setting + 13, "/") != 0) {
		*reason = xstrdup("per-path access restrictions do not exist on "
		    "v3 nodes");
		return 0;
	}
	if (v3 && (strcmp(setting, "runtime.instances") == 0 ||
	    strcmp(setting, "runtime.memory_mb") == 0)) {
		*reason = xstrdup("instances and memory are fixed on v3 nodes");
		return 0;
	}
	if (manifest && strncmp(setting, "constants.", 10) == 0 &&
	    manifest_find(manifest, "constants", setting + 10) == NULL) {
		*reason = xasprintf("the deployed package %s declares no such "
		    "constant", manifest_label(manifest));
		return 0;
	}
	if (manifest && strncmp(setting, "scheduled_events.", 17) == 0 &&
	    manifest_find(manifest, "scheduled_events", setting + 17) == NULL) {
		*reason = xasprintf("the deployed package %s declares no such "
		    "scheduled event", manifest_label(manifest));
		return 0;
	}
	return 1;
}

/* Append an error for each setting "prefix.key" of obj that v3 nodes do
 * not have. */
static void
name_v4_only(json_t *obj, const char *prefix, json_t *errors)
{
	const char *k;
	char *reason;
	json_t *v;

	json_object_foreach(obj, k, v) {
		char *s = xasprintf("%s.%s", prefix, k);

		if (!settings_supported(s, "v3", NULL, &reason))
			settings_error(errors, s, "%s", reason);
		free(reason);
		free(s);
	}
}

json_t *
settings_translate(json_t *doc, const char *from, const char *to,
    json_t *errors)
{
	json_t *out;

	if (strcmp(from, "v4") == 0 && strcmp(to, "v3") == 0) {
		/* name each v4-only setting, then refuse */
		name_v4_only(json_object_get(doc, "headers"), "headers",
		    errors);
		name_v4_only(json_object_get(json_object_get(doc, "access"),
		    "paths"), "access.paths", errors);
		name_v4_only(json_object_get(doc, "runtime"), "runtime", errors);
		settings_error(errors, "generation", "settings cannot be "
		    "translated from v4 to v3 (migrating v4→v3 is refused)");
		return NULL;
	}
	/* v3→v4 (and v3→v3, v4→v4): every setting keeps its name and
	 * meaning; an environment-wide access rule stays at path '/'. */
	out = json_deep_copy(doc);
	if (json_object_get(out, "generation"))
		json_object_set_new(out, "generation", json_string(to));
	return out;
}

/* Flatten a rendered document: "section.key" → value (leaf granularity
 * chosen so a diff line names one setting a user can change). Secret
 * values are marked by wrapping them {"(secret)": value}. */
static void
flatten_map(json_t *obj, const char *prefix, json_t *flat)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		char *s = xasprintf("%s.%s", prefix, k);

		json_object_set(flat, s, v);
		free(s);
	}
}

static void
flatten(json_t *doc, json_t *flat)
{
	json_t *v, *p;
	const char *k, *pn;
	char *s;

	flatten_map(json_object_get(doc, "constants"), "constants", flat);
	flatten_map(json_object_get(doc, "scheduled_events"),
	    "scheduled_events", flat);
	json_object_foreach(json_object_get(doc, "domains"), k, v) {
		char *fp = jsonx_str(v, "certificate") ? sv_cert_fingerprint(
		    jsonx_str(v, "certificate")) : xstrdup("(ACME)");

		s = xasprintf("domains.%s", k);
		json_object_set_new(flat, s, json_pack("{s:s?,s:{s:s?}}",
		    "certificate_sha256", fp, "(secret)", "private_key",
		    jsonx_str(v, "private_key")));
		free(fp);
		free(s);
	}
	json_object_foreach(json_object_get(json_object_get(doc, "access"),
	    "profiles"), pn, p) {
		json_object_foreach(p, k, v) {
			s = xasprintf("access.profiles.%s.%s", pn, k);
			if (strcmp(k, "basic_auth") == 0)
				json_object_set_new(flat, s, json_pack("{s:O}",
				    "(secret)", v));
			else
				json_object_set(flat, s, v);
			free(s);
		}
	}
	flatten_map(json_object_get(json_object_get(doc, "access"), "paths"),
	    "access.paths", flat);
	flatten_map(json_object_get(doc, "headers"), "headers", flat);
	json_object_foreach(json_object_get(doc, "runtime"), k, v) {
		if (strcmp(k, "settings") == 0) {
			flatten_map(v, "runtime.settings", flat);
			continue;
		}
		s = xasprintf("runtime.%s", k);
		json_object_set(flat, s, v);
		free(s);
	}
	json_object_foreach(json_object_get(doc, "env_vars"), k, v) {
		s = xasprintf("env_vars.%s", k);
		if (jsonx_bool(v, "secret", 0))
			json_object_set_new(flat, s, json_pack("{s:O}",
			    "(secret)", v));
		else
			json_object_set(flat, s, json_object_get(v, "value"));
		free(s);
	}
	v = json_object_get(doc, "maintenance_window");
	if (v && !json_is_null(v))
		json_object_set(flat, "maintenance_window", v);
}

/* The value of a flattened setting as a diff shows it. */
static json_t *
shown(json_t *v)
{
	json_t *copy;

	if (v == NULL)
		return json_null();
	if (json_is_object(v) && json_object_get(v, "(secret)") &&
	    json_object_size(v) == 1)
		return json_string("(secret)");
	if (json_is_object(v) && json_object_get(v, "(secret)")) {
		copy = json_deep_copy(v);
		json_object_del(copy, "(secret)");
		return copy;
	}
	return json_incref(v);
}

json_t *
settings_diff(json_t *stored_a, const char *gen_a, json_t *manifest_a,
    json_t *stored_b, const char *gen_b, json_t *manifest_b)
{
	json_t *ra = settings_render(stored_a, 1), *rb = settings_render(
	    stored_b, 1);
	json_t *fa = json_object(), *fb = json_object();
	json_t *diffs = json_array(), *unsup = json_array(), *v, *sa, *sb;
	const char *k;
	char *reason;

	flatten(ra, fa);
	flatten(rb, fb);
	json_object_foreach(fa, k, v) {
		json_t *w = json_object_get(fb, k);

		if (w == NULL && !settings_supported(k, gen_b, manifest_b,
		    &reason)) {
			json_array_append_new(unsup, json_pack("{s:s,s:s,s:s}",
			    "setting", k, "side", "a", "reason", reason));
			free(reason);
			continue;
		}
		if (w && json_equal(v, w))
			continue;
		sa = shown(v);
		sb = shown(w);
		/* two secrets that differ show the same: say so */
		if (w && json_is_object(v) && json_object_get(v, "(secret)") &&
		    json_equal(sa, sb)) {
			json_decref(sb);
			sb = json_string("(secret, differs)");
		}
		json_array_append_new(diffs, json_pack("{s:s,s:o,s:o}",
		    "setting", k, "a", sa, "b", sb));
	}
	json_object_foreach(fb, k, v) {
		if (json_object_get(fa, k))
			continue;
		if (!settings_supported(k, gen_a, manifest_a, &reason)) {
			json_array_append_new(unsup, json_pack("{s:s,s:s,s:s}",
			    "setting", k, "side", "b", "reason", reason));
			free(reason);
			continue;
		}
		json_array_append_new(diffs, json_pack("{s:s,s:n,s:o}",
		    "setting", k, "a", "b", shown(v)));
	}
	json_decref(fa);
	json_decref(fb);
	json_decref(ra);
	json_decref(rb);
	return json_pack("{s:o,s:o}", "differences", diffs, "unsupported",
	    unsup);
}

int
settings_restart_needed(json_t *a, json_t *b)
{
	static const char *const restart[] = { "constants", "env_vars",
	    "runtime", NULL };
	json_t *ra = settings_render(a, 1), *rb = settings_render(b, 1);
	int i, needed = 0;

	/* the node applies instances and memory to running instances
	 * itself (a memory limit by a rolling restart) */
	for (i = 0; i < 2; i++) {
		json_t *rt = json_object_get(i ? rb : ra, "runtime");

		json_object_del(rt, "instances");
		json_object_del(rt, "memory_mb");
		if (json_object_size(rt) == 0)
			json_object_del(i ? rb : ra, "runtime");
	}
	for (i = 0; restart[i]; i++) {
		json_t *x = json_object_get(ra, restart[i]);
		json_t *y = json_object_get(rb, restart[i]);

		if ((x == NULL) != (y == NULL) || (x && !json_equal(x, y)))
			needed = 1;
	}
	json_decref(ra);
	json_decref(rb);
	return needed;
}

/* ---- store ------------------------------------------------------------ */

long long
settings_env_id(sqlite3 *db, long long node_id, long long app_id,
    const char *env)
{
	return store_int(db, 0, "SELECT id FROM environments WHERE name = ?"
	    " COLLATE NOCASE AND ((node_id = ? AND app_id IS NULL) OR"
	    " app_id = ?) ORDER BY app_id IS NULL LIMIT 1", "sii", env,
	    node_id, app_id);
}

json_t *
settings_load(sqlite3 *db, long long env_id)
{
	json_t *row = store_row(db, "SELECT doc_json FROM environment_settings"
	    " WHERE environment_id = ?", "i", env_id);
	json_t *doc = json_object_get(row, "doc");

	doc = json_is_object(doc) ? json_incref(doc) : json_object();
	json_decref(row);
	return doc;
}

/* ---- custom domains: one environment each, cloud-wide ------------------ */

char *
settings_domain_canon(const char *name)
{
	size_t n = strlen(name), i;
	char *c;

	if (n > 1 && name[n - 1] == '.')
		n--;	/* the root's dot: "a.example." is "a.example" */
	c = xstrndup(name, n);
	for (i = 0; i < n; i++)
		c[i] = (char)tolower((unsigned char)c[i]);
	return c;
}

/* Who an environment's custom domains belong to: its app (its own for a
 * sandbox, else its node's linked app; for a migration's temporary app,
 * the app that migration carries — the vehicle stands for the original,
 * so a domain moves within the migration) and its name. An environment
 * that serves no app (its node unlinked) owns nothing and holds nothing:
 * the router serves no domain for it. */
#define SETTINGS_OWNER_SQL \
	"COALESCE(e.app_id, CASE WHEN la.temporary = 1 THEN (SELECT" \
	" m.app_id FROM migrations m WHERE m.temp_app_id = la.id ORDER BY" \
	" m.id DESC LIMIT 1) ELSE la.id END)"
#define SETTINGS_OWNER_FROM \
	" environments e JOIN nodes n ON n.id = e.node_id" \
	" LEFT JOIN apps la ON la.id = n.app_id AND e.app_id IS NULL"
/* Every custom domain an environment with an owner holds, canonical. */
#define SETTINGS_HELD_SQL \
	"SELECT lower(rtrim(d.key, '.')) AS domain, e.id AS env, e.name," \
	" " SETTINGS_OWNER_SQL " AS owner FROM environment_settings s," \
	" json_each(s.doc_json, '$.domains') d," SETTINGS_OWNER_FROM \
	" WHERE e.id = s.environment_id"

/* The holder of a domain as the claimant may hear it: the environment
 * of its own app, or of an app the viewer is a member of (or Technical
 * Contact, or a platform admin); else only "another app" — nothing of
 * other tenants. */
static void
claim_taken(sqlite3 *db, const struct settings_claim *cl, json_t *h,
    const char *d, const char *setting, json_t *errors)
{
	long long o = jsonx_int(h, "owner", 0);
	const char *hn = jsonx_str(h, "name");
	char *app = NULL;

	if (o != cl->owner)
		app = store_text(db, "SELECT a.subdomain FROM apps a WHERE"
		    " a.id = ?1 AND ((SELECT is_admin FROM users WHERE id = ?2)"
		    " = 1 OR a.technical_contact = ?2 OR EXISTS (SELECT 1 FROM"
		    " members m WHERE m.app_id = a.id AND m.user_id = ?2))",
		    "ii", o, cl->viewer);
	if (o == cl->owner)
		settings_error(errors, setting, "custom domain '%s' is already "
		    "used by environment '%s' of this app", d, hn ? hn : "?");
	else if (app)
		settings_error(errors, setting, "custom domain '%s' is already "
		    "used by environment '%s' of app '%s'", d, hn ? hn : "?",
		    app);
	else
		settings_error(errors, setting, "custom domain '%s' is already "
		    "used by another app", d);
	if (o == cl->owner || app)
		json_object_set_new(json_array_get(errors,
		    json_array_size(errors) - 1), "holder", json_pack(
		    "{s:s?,s:s?}", "app", app ? app : cl->subdomain,
		    "environment", hn));
	free(app);
}

int
settings_domains_check(sqlite3 *db, const struct settings_claim *cl,
    json_t *domains, const char *cloud_domain, json_t *errors)
{
	json_t *fresh = json_array(), *holders = NULL, *h, *v;
	char *own = NULL, *setting, *d;
	size_t i, k, cdlen = cloud_domain ? strlen(cloud_domain) : 0;
	int rc = 0;

	json_array_foreach(domains, i, v)
		if (json_is_string(v)) {
			d = settings_domain_canon(json_string_value(v));
			json_array_append_new(fresh, json_string(d));
			free(d);
		}
	if (json_array_size(fresh) == 0)
		goto out;
	holders = store_rows(db, "SELECT * FROM (" SETTINGS_HELD_SQL ")"
	    " WHERE env != ? AND domain IN (SELECT value FROM json_each(?))",
	    "ij", cl->env_id, fresh);
	if (holders == NULL) {
		rc = -1;
		goto out;
	}
	if (cl->subdomain && cl->name && cloud_domain) {
		char *o = xasprintf("%s-%s.%s", cl->subdomain, cl->name,
		    cloud_domain);

		own = settings_domain_canon(o);
		free(o);
	}
	json_array_foreach(fresh, i, v) {
		const char *dn = json_string_value(v);
		size_t n = strlen(dn);

		setting = xasprintf("domains.%s", dn);
		/* the cloud's own names: `<subdomain>-<env>.<cloud domain>`
		 * of any app, present or future */
		if (cdlen && (strcasecmp(dn, cloud_domain) == 0 || (n > cdlen &&
		    dn[n - cdlen - 1] == '.' && strcasecmp(dn + n - cdlen,
		    cloud_domain) == 0)) && (own == NULL || strcmp(dn, own) !=
		    0)) {
			settings_error(errors, setting, "'%s' is in the cloud's "
			    "domain '%s', where only this environment's own "
			    "hostname%s%s%s may be a custom domain", dn,
			    cloud_domain, own ? " '" : "", own ? own : "",
			    own ? "'" : "");
			if (rc == 0)
				rc = SETTINGS_DOMAIN_RESERVED;
		}
		json_array_foreach(holders, k, h) {
			long long o = jsonx_int(h, "owner", 0);
			const char *hn = jsonx_str(h, "name");

			/* an environment that serves no app holds nothing;
			 * the same app's same-named environment (a migration's
			 * source and target) shares it */
			if (strcmp(jsonx_str(h, "domain"), dn) != 0 || o == 0 ||
			    (o == cl->owner && hn && cl->name &&
			    strcasecmp(hn, cl->name) == 0))
				continue;
			claim_taken(db, cl, h, dn, setting, errors);
			rc = SETTINGS_DOMAIN_TAKEN;
			break;
		}
		free(setting);
	}
out:
	free(own);
	json_decref(holders);
	json_decref(fresh);
	return rc;
}

int
settings_domains_claim(sqlite3 *db, long long env_id, json_t *stored,
    const char *cloud_domain, long long viewer, json_t *errors)
{
	json_t *doc = settings_load(db, env_id);
	json_t *cur = json_object_get(doc, "domains");
	json_t *fresh = json_array(), *me = NULL, *v;
	struct settings_claim cl;
	const char *d;
	int rc = 0;

	json_object_foreach(json_object_get(stored, "domains"), d, v)
		if (json_object_get(cur, d) == NULL)
			json_array_append_new(fresh, json_string(d));
	if (json_array_size(fresh) == 0)
		goto out;	/* nothing newly claimed */
	me = store_row(db, "SELECT e.name, " SETTINGS_OWNER_SQL " AS owner,"
	    " (SELECT subdomain FROM apps WHERE id = " SETTINGS_OWNER_SQL ")"
	    " AS subdomain FROM" SETTINGS_OWNER_FROM " WHERE e.id = ?", "i",
	    env_id);
	if (me == NULL) {
		rc = -1;
		goto out;
	}
	memset(&cl, 0, sizeof cl);
	cl.env_id = env_id;
	cl.owner = jsonx_int(me, "owner", 0);
	cl.name = jsonx_str(me, "name");
	cl.subdomain = jsonx_str(me, "subdomain");
	cl.viewer = viewer;
	rc = settings_domains_check(db, &cl, fresh, cloud_domain, errors);
out:
	json_decref(me);
	json_decref(fresh);
	json_decref(doc);
	return rc;
}

int
settings_domain_held(sqlite3 *db, const char *domain)
{
	char *d = settings_domain_canon(domain);
	long long n = store_int(db, -1, "SELECT COUNT(*) FROM ("
	    SETTINGS_HELD_SQL ") WHERE domain = ? AND owner IS NOT NULL", "s",
	    d);

	free(d);
	return n < 0 ? -1 : n > 0;
}

int
settings_domains_release(sqlite3 *db, long long node_id, long long user_id)
{
	json_t *envs = store_rows(db, "SELECT e.id FROM environments e JOIN"
	    " environment_settings s ON s.environment_id = e.id WHERE"
	    " e.node_id = ? AND e.app_id IS NULL AND json_type(s.doc_json,"
	    " '$.domains') IS NOT NULL", "i", node_id), *e;
	size_t i;
	int rc = envs ? 0 : -1;

	json_array_foreach(envs, i, e) {
		json_t *doc = settings_load(db, jsonx_int(e, "id", 0));

		json_object_del(doc, "domains");
		if (settings_save(db, jsonx_int(e, "id", 0), doc, 0, user_id,
		    NULL, NULL) != 0)
			rc = -1;
		json_decref(doc);
	}
	json_decref(envs);
	return rc;
}

int
settings_save(sqlite3 *db, long long env_id, json_t *stored, int restart,
    long long user_id, const char *cloud_domain, json_t *errors)
{
	char now[32];
	long long running;
	json_t *rt;
	int rc;

	if ((rc = settings_domains_claim(db, env_id, stored, cloud_domain,
	    user_id, errors)) != 0)
		return rc;
	util_time_iso(util_now(), now, sizeof now);
	running = store_int(db, 0, "SELECT state IN ('running','starting')"
	    " FROM environments WHERE id = ?", "i", env_id);
	if (store_run(db, "INSERT INTO environment_settings (environment_id,"
	    " doc_json, restart_pending, version, updated_at, updated_by)"
	    " VALUES (?1, ?2, ?3, 1, ?4, NULLIF(?5, 0))"
	    " ON CONFLICT (environment_id) DO UPDATE SET doc_json = ?2,"
	    " restart_pending = MAX(restart_pending, ?3),"
	    " version = version + 1, updated_at = ?4,"
	    " updated_by = NULLIF(?5, 0)", "ijisi", env_id, stored,
	    (long long)(restart && running), now, user_id) != STORE_OK)
		return -1;
	/* the environment's scale columns (envs scale) follow the settings */
	rt = json_object_get(stored, "runtime");
	if (json_object_get(rt, "instances") && store_run(db, "UPDATE"
	    " environments SET instances = ? WHERE id = ?", "ii",
	    jsonx_int(rt, "instances", 1), env_id) != STORE_OK)
		return -1;
	if (json_object_get(rt, "memory_mb") && store_run(db, "UPDATE"
	    " environments SET memory_mb = ? WHERE id = ?", "ii",
	    jsonx_int(rt, "memory_mb", 512), env_id) != STORE_OK)
		return -1;
	return 0;
}

char *
settings_generation(sqlite3 *db, long long env_id)
{
	return store_text(db, "SELECT n.generation FROM environments e"
	    " JOIN nodes n ON n.id = e.node_id WHERE e.id = ?", "i", env_id);
}

json_t *
settings_manifest(sqlite3 *db, long long env_id)
{
	/* The package the environment runs is recorded by the deploy code;
	 * until a package is deployed there is no manifest to check
	 * against. The column is looked up by name so this keeps working
	 * whichever schema step adds it. */
	json_t *m = NULL;
	char *text;

	if (store_int(db, 0, "SELECT COUNT(*) FROM pragma_table_info("
	    "'environments') WHERE name = 'package_manifest'", "") != 1)
		return NULL;
	text = store_text(db, "SELECT package_manifest FROM environments"
	    " WHERE id = ?", "i", env_id);
	if (text)
		m = json_loads(text, 0, NULL);
	free(text);
	if (m && !json_is_object(m)) {
		json_decref(m);
		m = NULL;
	}
	return m;
}

void
settings_restart_applied(sqlite3 *db, long long env_id)
{
	store_run(db, "UPDATE environment_settings SET restart_pending = 0"
	    " WHERE environment_id = ?", "i", env_id);
}

/* "Module.Name" → "NUBO_CONST_Module_Name" (an env var name). */
static char *
const_env_name(const char *name)
{
	char *s = xasprintf("NUBO_CONST_%s", name), *p;

	for (p = s; *p; p++)
		if (*p == '.' || *p == '-')
			*p = '_';
	return s;
}

json_t *
settings_node_spec(sqlite3 *db, long long env_id)
{
	json_t *stored = settings_load(db, env_id);
	json_t *doc = settings_render(stored, 1);
	json_t *manifest = settings_manifest(db, env_id);
	json_t *env = json_object(), *events = json_array(), *domains =
	    json_array(), *access = json_object(), *v, *d;
	json_t *rt = json_object_get(doc, "runtime");
	const char *k;
	size_t i;
	char *name;

	/* constants: the manifest's defaults, overridden by the settings */
	json_array_foreach(json_object_get(manifest, "constants"), i, d) {
		json_t *dflt = json_object_get(d, "default");

		if (!jsonx_str(d, "name") || dflt == NULL || json_is_null(dflt))
			continue;
		name = const_env_name(jsonx_str(d, "name"));
		if (json_is_string(dflt))
			json_object_set(env, name, dflt);
		else if (json_is_boolean(dflt))
			json_object_set_new(env, name, json_string(
			    json_is_true(dflt) ? "true" : "false"));
		else if (json_is_integer(dflt))
			json_object_set_new(env, name, json_sprintf("%lld",
			    (long long)json_integer_value(dflt)));
		else if (json_is_real(dflt))
			json_object_set_new(env, name, json_sprintf("%.17g",
			    json_real_value(dflt)));
		free(name);
	}
	json_object_foreach(json_object_get(doc, "constants"), k, v) {
		name = const_env_name(k);
		json_object_set(env, name, v);
		free(name);
	}
	json_object_foreach(json_object_get(rt, "settings"), k, v) {
		char *p;

		name = xasprintf("NUBO_RUNTIME_%s", k);
		for (p = name; *p; p++)
			if (*p == '.' || *p == '-')
				*p = '_';
		json_object_set(env, name, v);
		free(name);
	}
	json_object_foreach(json_object_get(doc, "env_vars"), k, v)
		json_object_set(env, k, json_object_get(v, "value"));

	/* enabled scheduled events with their interval from the manifest */
	json_object_foreach(json_object_get(doc, "scheduled_events"), k, v) {
		json_t *decl = manifest_find(manifest, "scheduled_events", k);
		long long every = decl ? sv_interval(jsonx_str(decl, "every"))
		    : -1;

		/* the node knows the interval from the package it runs when
		 * the portal does not */
		if (json_is_true(v) && every > 0)
			json_array_append_new(events, json_pack("{s:s,s:I}",
			    "name", k, "every_seconds", (json_int_t)every));
		else if (json_is_true(v))
			json_array_append_new(events, json_pack("{s:s}", "name",
			    k));
	}
	json_object_foreach(json_object_get(doc, "domains"), k, v)
		json_array_append_new(domains, json_pack("{s:s,s:O?,s:O?}",
		    "domain", k, "certificate", json_object_get(v,
		    "certificate"), "private_key", json_object_get(v,
		    "private_key")));

	/* access: profiles resolved per path, basic auth as htpasswd lines */
	json_object_foreach(json_object_get(json_object_get(doc, "access"),
	    "paths"), k, v) {
		json_t *p = json_object_get(json_object_get(json_object_get(doc,
		    "access"), "profiles"), json_string_value(v));
		json_t *rule = json_object(), *u;
		const char *user;
		struct buf h;

		buf_init(&h, 0);
		json_object_set_new(rule, "allow", json_object_get(p, "allow") ?
		    json_incref(json_object_get(p, "allow")) : json_array());
		json_object_set_new(rule, "deny", json_object_get(p, "deny") ?
		    json_incref(json_object_get(p, "deny")) : json_array());
		json_object_foreach(json_object_get(p, "basic_auth"), user, u)
			buf_printf(&h, "%s:%s\n", user, jsonx_str(u,
			    "password_hash"));
		if (h.len)
			json_object_set_new(rule, "htpasswd",
			    json_string(buf_cstr(&h)));
		buf_release(&h);
		if (json_object_get(p, "client_ca"))
			json_object_set(rule, "client_ca", json_object_get(p,
			    "client_ca"));
		json_object_set_new(rule, "profile", json_incref(v));
		json_object_set_new(access, k, rule);
	}
	v = json_pack("{s:o,s:o,s:o,s:o}", "env", env, "scheduled_events",
	    events, "domains", domains, "access", access);
	json_object_set_new(v, "headers", json_object_get(doc, "headers") ?
	    json_incref(json_object_get(doc, "headers")) : json_object());
	if (json_object_get(rt, "instances"))
		json_object_set(v, "instances", json_object_get(rt,
		    "instances"));
	if (json_object_get(rt, "memory_mb"))
		json_object_set(v, "memory_mb", json_object_get(rt,
		    "memory_mb"));
	json_object_set_new(v, "maintenance_window", json_object_get(doc,
	    "maintenance_window") ? json_incref(json_object_get(doc,
	    "maintenance_window")) : json_null());
	json_decref(doc);
	json_decref(stored);
	json_decref(manifest);
	return v;
}

