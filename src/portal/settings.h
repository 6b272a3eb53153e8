/* Environment settings (SPEC §2 Configuration; seed §3.2.3): Model Options
 * (constants, scheduled events), Network (custom domains + TLS, access
 * restriction profiles, response headers), Runtime (instances, memory,
 * runtime settings, environment variables) and Maintenance (weekly window).
 *
 * One JSON document per environment. Three forms of it:
 *   input    what clients send (PUT/PATCH bodies, `settings import`): plain
 *            passwords, PEM private keys, secret values in clear; a secret
 *            left out ("masked") means "keep the target's current one";
 *   stored   what the store holds (table environment_settings): secrets
 *            sealed with libsodium secretbox, basic-auth passwords hashed;
 *   rendered what the API shows: stored with secrets masked, or (export
 *            with include_secrets) unsealed so it can be imported elsewhere.
 * Rendered documents are valid input documents. */
#ifndef NUBO_SETTINGS_H
#define NUBO_SETTINGS_H

#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#define SETTINGS_FORMAT "nubo-settings/1"

/* What a document is validated against. */
struct settings_target {
	const char	*generation;	/* "v3" or "v4" */
	json_t		*manifest;	/* the deployed package's nubo.json, or NULL */
	json_t		*current;	/* the target's stored document ({} if none) */
	time_t		 now;		/* certificate validity is checked at this time */
};

/* Append {setting, reason} to errors (a JSON array). */
void settings_error(json_t *errors, const char *setting, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "setting 'a.b': reason; setting …" for an error message (caller frees). */
char *settings_errors_text(json_t *errors);

/* The document's sections, in document order. */
extern const char *const settings_sections[];
/* 1 when name is one of settings_sections[], else 0. */
int settings_section_known(const char *name);
/* Normalise one section's input value into its stored form; NULL (and
 * errors appended) when anything in it is invalid. */
json_t *settings_normalize_section(const struct settings_target *,
    const char *section, json_t *input, json_t *errors);
/* Normalise a whole input document (export format: "format", "source",
 * "generation" and "secrets" keys are accepted and dropped). NULL when
 * errors were appended; nothing is half-accepted. */
json_t *settings_normalize(const struct settings_target *, json_t *input,
    json_t *errors);

/* The rendered form of a stored document (new reference). */
json_t *settings_render(json_t *stored, int include_secrets);

/* Translate a rendered/input document from one generation to another.
 * v3→v4 and same-generation copies are one-to-one (every v3 concept exists
 * on v4 under the same name); v4→v3 returns NULL and appends to errors
 * each v4-only setting it holds. The migration calls this between export
 * (source) and import (target):
 *   json_t *settings_translate(json_t *doc, const char *from,
 *       const char *to, json_t *errors);
 * Returns a new document (the input is not changed). */
json_t *settings_translate(json_t *doc, const char *from, const char *to,
    json_t *errors);

/* Can `setting` (a flattened name like "headers.Referrer-Policy") exist on
 * generation gen with manifest (may be NULL)? 1, or 0 with *reason. */
int settings_supported(const char *setting, const char *gen, json_t *manifest,
    char **reason);

/* Compare two stored documents. Returns {"differences": [{setting, a, b}],
 * "unsupported": [{setting, side, reason}]}; secret values show as
 * "(secret)" and a difference in them as "(secret, differs)". Settings that
 * cannot exist on the other side are listed under unsupported only. */
json_t *settings_diff(json_t *stored_a, const char *gen_a, json_t *manifest_a,
    json_t *stored_b, const char *gen_b, json_t *manifest_b);

/* Sections whose change needs a restart of the app (constants, env_vars,
 * runtime): 1 when they differ between two stored documents. */
int settings_restart_needed(json_t *old_stored, json_t *new_stored);

/* Sealing of secrets (environment secrets, node agent secrets) with the
 * portal's key: the file at path (0600; --secrets-key, outside the data
 * folder), created once when missing. Idempotent. */
int settings_seal_init(const char *path);
/* The loaded key's id: 32 hex characters of a one-way digest. Caller
 * frees. */
char *settings_seal_key_id(void);
char *settings_seal(const char *plain);
/* NULL when sealed is not ours or damaged. */
char *settings_unseal(const char *sealed);

/* Store access. */
/* The environment id of {env} as routes.c resolved it; 0 when none. */
long long settings_env_id(sqlite3 *db, long long node_id, long long app_id,
    const char *env);
/* The stored document of an environment ({} when never set). */
json_t *settings_load(sqlite3 *db, long long env_id);
/* A domain name as nubo keeps it: lowercase, without the root's trailing
 * dot (caller frees). */
char *settings_domain_canon(const char *name);
/* Custom domains are unique across the cloud. A claim by environment
 * env_id (0: none yet) of owner — the app it serves; a migration's
 * temporary app stands for the app it carries, so a migration's source
 * and target environment share their domains — named name, whose app's
 * subdomain is subdomain: each of domains (names) must be held by no
 * other environment of another owner or of the same owner under another
 * name, and may lie in cloud_domain only when it is the environment's own
 * hostname `<subdomain>-<env>.<cloud domain>` (every other name there is,
 * or may become, another app's). An environment that serves no app
 * holds nothing. The holder is named (its app and environment, also as
 * `holder` in the error) only to a viewer who is a member of its app, its
 * Technical Contact or a platform admin; others hear "another app".
 * 0, -1 on a store error, or SETTINGS_DOMAIN_TAKEN /
 * SETTINGS_DOMAIN_RESERVED with {setting, reason} appended to errors for
 * each. Run inside the write transaction (BEGIN IMMEDIATE: writers are
 * serialised, so two concurrent claims cannot both pass). */
#define SETTINGS_DOMAIN_TAKEN		(-2)
#define SETTINGS_DOMAIN_RESERVED	(-3)
struct settings_claim {
	long long	 env_id;
	long long	 owner;
	const char	*name;
	const char	*subdomain;
	long long	 viewer;	/* user id, 0 for none */
};
int settings_domains_check(sqlite3 *db, const struct settings_claim *cl,
    json_t *domains, const char *cloud_domain, json_t *errors);
/* settings_domains_check() of the domains stored holds that env_id's
 * current settings do not (the ones it newly claims), as viewer. */
int settings_domains_claim(sqlite3 *db, long long env_id, json_t *stored,
    const char *cloud_domain, long long viewer, json_t *errors);
/* Is domain some environment's custom domain (one that serves an app)?
 * 1, 0, or -1 on a store error. */
int settings_domain_held(sqlite3 *db, const char *domain);
/* Remove the custom domains of node_id's own environments (a migration's
 * target given up: the app keeps them on its source). Call inside a
 * transaction. 0 or -1. */
int settings_domains_release(sqlite3 *db, long long node_id,
    long long user_id);
/* Replace it, after settings_domains_claim() as user_id (its return
 * value when that refuses); marks "restart pending" when restart is set
 * and the environment runs. Call inside a transaction. 0 or -1. */
int settings_save(sqlite3 *db, long long env_id, json_t *stored, int restart,
    long long user_id, const char *cloud_domain, json_t *errors);
/* The generation ("v3"/"v4") of the environment's node (caller frees). */
char *settings_generation(sqlite3 *db, long long env_id);
/* The manifest of the package deployed to the environment, or NULL. */
json_t *settings_manifest(sqlite3 *db, long long env_id);
/* The environment was (re)started with its current settings: clear
 * "restart pending". The environment start/restart code calls this. */
void settings_restart_applied(sqlite3 *db, long long env_id);

/* settings-window.c: is the weekly window (stored form) open at now? And
 * the portal thread that restarts environments with pending changes in
 * their window when the window asks for it. */
int settings_window_open(json_t *window, time_t now);
void settings_window_start(void);
void settings_window_stop(void);

/* The settings part of the spec the portal pushes to a node for an
 * environment (node-contract.md): {env, scheduled_events, domains, access,
 * headers, instances, memory_mb, maintenance_window}, secrets unsealed. */
json_t *settings_node_spec(sqlite3 *db, long long env_id);

#endif
