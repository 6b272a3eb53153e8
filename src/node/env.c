/* Environments on the node: their desired spec (from the portal), their
 * true state, persistence in DIR/envs/<id>/env.json, and the actions.
 * Layout: DIR/envs/<id>/{app (unpacked package), files (NUBO_FILES_DIR),
 * logs/app.log, env.json}. */
#include "node.h"
#include "acme.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jsonx.h"
#include "log.h"
#include "package.h"
#include "util.h"
#include "xmalloc.h"

static const char *const env_state_names[] = { "notdeployed", "stopped",
	"starting", "running", "stopping", "failed" };
static const char *const inst_state_names[] = { "none", "starting",
	"running", "restarting", "stopping" };

const char *
env_state_name(enum env_state s)
{
	return env_state_names[s];
}

static int
state_parse(const char *s)
{
	int i;

	for (i = 0; s && i <= ENV_FAILED; i++)
		if (strcmp(s, env_state_names[i]) == 0)
			return i;
	return -1;
}

struct env *
env_find(long long id)
{
	struct env *e;

	for (e = node->envs; e; e = e->next)
		if (e->id == id)
			return e;
	return NULL;
}

const char *
env_name(struct env *e)
{
	const char *n = jsonx_str(e->spec, "name");

	return n ? n : "?";
}

int
env_instances_wanted(struct env *e)
{
	long long n = jsonx_int(e->spec, "instances", 1);
	const char *gen = jsonx_str(e->spec, "generation");

	if (gen == NULL)
		gen = node->generation;
	if (n < 1)
		n = 1;
	if (n > NUBO_INSTANCES_MAX)
		n = NUBO_INSTANCES_MAX;
	if (gen && strcmp(gen, "v3") == 0)
		n = 1;
	return (int)n;
}

/* DIR/envs/<id> is root's (others pass through: bubblewrap binds app/
 * and files/ as the environment's user); files/ is the environment's
 * user's, logs/ the node's. */
static int
env_mkdirs(struct env *e)
{
	static const char *const subs[] = { "files", "logs", NULL };
	int i;

	if (util_mkdir_p(e->dir, 0711) == -1)
		return error("cannot create %s: %s", e->dir, strerror(errno));
	chmod(e->dir, 0711);
	if (sandbox_env_user(e) == -1)
		return -1;
	for (i = 0; subs[i]; i++) {
		char *p = xasprintf("%s/%s", e->dir, subs[i]);

		if (util_mkdir_p(p, 0750) == -1) {
			error("cannot create %s: %s", p, strerror(errno));
			free(p);
			return -1;
		}
		if (i == 0)
			env_chown(e, p);
		else
			chmod(p, 0700);
		free(p);
	}
	return 0;
}

static struct env *
env_new(long long id)
{
	struct env *e = xcalloc(1, sizeof *e), **tail;

	e->id = id;
	e->uid = (uid_t)-1;
	e->dir = xasprintf("%s/envs/%lld", node->data_dir, id);
	e->spec = json_object();
	e->state = ENV_NOTDEPLOYED;
	for (tail = &node->envs; *tail; tail = &(*tail)->next)
		;
	*tail = e;
	return e;
}

int
env_save(struct env *e)
{
	char *path = xasprintf("%s/env.json", e->dir);
	json_t *inst = json_array(), *j;
	char *text;
	int i, rc;
	enum env_state st = e->state;

	for (i = 0; i < NUBO_INSTANCES_MAX; i++) {
		struct instance *in = &e->inst[i];

		if (in->pid > 0)
			json_array_append_new(inst, json_pack("{s:i,s:i,s:i,"
			    "s:I,s:I}", "index", i, "pid", (int)in->pid, "port",
			    in->port, "starttime", (json_int_t)in->starttime,
			    "memory_mb", (json_int_t)in->memory_mb));
	}
	j = json_pack("{s:I,s:O,s:s?,s:s?,s:s?,s:s,s:b,s:s?,s:s?,s:o}",
	    "id", (json_int_t)e->id, "spec", e->spec, "package", e->package,
	    "start", e->start, "health", e->health, "state",
	    env_state_name(st), "want_running", e->want_running,
	    "error", e->error, "db_password", e->db_password,
	    "instances", inst);
	if (e->uid != (uid_t)-1)
		json_object_set_new(j, "uid", json_integer((json_int_t)e->uid));
	text = json_dumps(j, JSON_INDENT(2));
	rc = util_write_file(path, text, strlen(text), 0600);
	if (rc == -1)
		log_error("cannot save %s: %s", path, strerror(errno));
	free(text);
	free(path);
	json_decref(j);
	return rc;
}

static void
env_load_one(long long id)
{
	struct env *e = env_new(id);
	char *path = xasprintf("%s/env.json", e->dir);
	char *text = util_read_file(path, 1024 * 1024, NULL);
	json_t *j = text ? json_loads(text, 0, NULL) : NULL, *in;
	size_t k;
	int st;

	free(text);
	free(path);
	if (!json_is_object(j)) {
		json_decref(j);
		return;
	}
	if (json_is_object(json_object_get(j, "spec"))) {
		json_decref(e->spec);
		e->spec = json_incref(json_object_get(j, "spec"));
	}
#define DUP(f) (jsonx_str(j, f) ? xstrdup(jsonx_str(j, f)) : NULL)
	e->package = DUP("package");
	e->start = DUP("start");
	e->health = DUP("health");
	e->error = DUP("error");
	e->db_password = DUP("db_password");
#undef DUP
	st = state_parse(jsonx_str(j, "state"));
	e->state = st == -1 ? ENV_STOPPED : (enum env_state)st;
	e->want_running = jsonx_bool(j, "want_running", 0);
	e->uid = (uid_t)jsonx_int(j, "uid", -1);
	json_array_foreach(json_object_get(j, "instances"), k, in) {
		long long i = jsonx_int(in, "index", -1);

		if (i < 0 || i >= NUBO_INSTANCES_MAX)
			continue;
		e->inst[i].pid = (pid_t)jsonx_int(in, "pid", 0);
		e->inst[i].port = (int)jsonx_int(in, "port", 0);
		e->inst[i].starttime = (unsigned long long)jsonx_int(in,
		    "starttime", 0);
		e->inst[i].state = INST_STARTING;
		/* a record without it predates rolling restarts */
		e->inst[i].memory_mb = jsonx_int(in, "memory_mb",
		    jsonx_int(e->spec, "memory_mb", 512));
	}
	json_decref(j);
	/* its user claimed again (after a reboot emptied /run), folders as
	 * they must be (a node of an older layout is brought up to date) */
	if (env_mkdirs(e) == -1)
		log_warn("environment %lld: cannot prepare its folders", id);
}

int
env_load(void)
{
	char *dir = xasprintf("%s/envs", node->data_dir);
	DIR *d = opendir(dir);
	struct dirent *de;

	free(dir);
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		long long id;

		if (util_parse_int(de->d_name, 1, 1LL << 53, &id) == 0)
			env_load_one(id);
	}
	closedir(d);
	return 0;
}

void
env_remove_temps(void)
{
	static const char *const subs[] = { "", "/pg", "/downloads", NULL };
	char *dir = xasprintf("%s/envs", node->data_dir), *sub;
	DIR *d = opendir(dir);
	struct dirent *de;
	long long id;
	int i;

	for (i = 0; subs[i]; i++) {
		sub = xasprintf("%s%s", node->data_dir, subs[i]);
		util_remove_temps(sub, NULL);
		free(sub);
	}
	while (d && (de = readdir(d)) != NULL) {
		if (util_parse_int(de->d_name, 1, 1LL << 53, &id) == -1)
			continue;
		sub = xasprintf("%s/%s", dir, de->d_name);
		util_remove_temps(sub, NULL);
		free(sub);
	}
	if (d)
		closedir(d);
	free(dir);
}

/* Does a spec change need the router to be rendered again? */
static int
spec_routing_changed(json_t *a, json_t *b)
{
	static const char *const keys[] = { "hostnames", "maintenance", "app",
		"name", "router", "domains", "access", "headers", NULL };
	int i;

	for (i = 0; keys[i]; i++)
		if (!json_equal(json_object_get(a, keys[i]),
		    json_object_get(b, keys[i])) && (json_object_get(a,
		    keys[i]) || json_object_get(b, keys[i])))
			return 1;
	return 0;
}

struct env *
env_apply_spec(json_t *spec, int *routing)
{
	long long id = jsonx_int(spec, "id", 0);
	struct env *e;

	if (routing)
		*routing = 0;
	if (id <= 0)
		return NULL;
	e = env_find(id);
	if (e == NULL) {
		e = env_new(id);
		if (env_mkdirs(e) == -1)
			return e;
		log_info("environment %lld (%s) added", id,
		    jsonx_str(spec, "name") ? jsonx_str(spec, "name") : "?");
	}
	e->removed = 0;
	if (json_equal(e->spec, spec))
		return e;
	if (spec_routing_changed(e->spec, spec)) {
		node->router_dirty = 1;
		if (routing)
			*routing = 1;
	}
	json_decref(e->spec);
	e->spec = json_deep_copy(spec);
	env_save(e);
	return e;
}

json_t *
env_json(struct env *e)
{
	json_t *inst = json_array(), *out;
	long long mb = jsonx_int(e->spec, "memory_mb", 512);
	int i, want = env_instances_wanted(e), done = 0;
	const char *why;
	char *reason;

	for (i = 0; i < NUBO_INSTANCES_MAX; i++) {
		struct instance *in = &e->inst[i];

		if (in->state == INST_NONE)
			continue;
		char at[32] = "";

		if (in->last_exit[0])
			util_time_iso(in->last_exit_at, at, sizeof at);
		/* last_exit: why it last ended unasked (killed for memory,
		 * a signal, an exit status), since the environment started */
		json_array_append_new(inst, json_pack("{s:i,s:i,s:i,s:s,s:i,"
		    "s:I,s:s?,s:s?}", "index", i + 1, "pid", (int)in->pid,
		    "port", in->port, "state", inst_state_names[in->state],
		    "restarts", in->restarts, "memory_mb",
		    (json_int_t)in->memory_mb, "last_exit", in->last_exit[0] ?
		    in->last_exit : NULL, "last_exit_at", at[0] ? at : NULL));
	}
	/* running, or started as far as the app goes (healthy, or past
	 * its start time), but the node's database or router is down:
	 * degraded */
	why = e->state == ENV_RUNNING || (e->state == ENV_STARTING &&
	    (e->held || e->routed_pending)) ? heal_degraded() : NULL;
	out = json_pack("{s:I,s:s,s:s,s:s?,s:o,s:s?,s:s?,s:s?,s:i,s:b,s:i}",
	    "id", (json_int_t)e->id, "name", env_name(e),
	    "state", why ? "degraded" : env_state_name(e->state),
	    "package", e->package, "instances", inst, "error", e->error,
	    "reason", why, "router_error", e->router_error,
	    "instances_wanted", want, "restart_pending", e->rolling,
	    "start_timeout", node->start_timeout);
	acme_env_report(e->id, out);
	if (e->rolling) {
		for (i = 0; i < want; i++)
			done += e->inst[i].state == INST_RUNNING &&
			    e->inst[i].memory_mb == mb;
		reason = xasprintf("the memory limit changed to %lld MB: the "
		    "instances restart onto it one at a time (%d of %d done)",
		    mb, done, want);
		json_object_set_new(out, "restart_reason", json_string(reason));
		free(reason);
	}
	return out;
}

char *
env_log_path(struct env *e)
{
	return xasprintf("%s/logs/app.log", e->dir);
}

void
env_log(struct env *e, const char *fmt, ...)
{
	char *path = env_log_path(e), *msg, stamp[32];
	va_list ap;
	int fd;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	util_time_iso(time(NULL), stamp, sizeof stamp);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd != -1) {
		dprintf(fd, "%s [nubo] %s\n", stamp, msg);
		close(fd);
	}
	log_info("environment %lld (%s): %s", e->id, env_name(e), msg);
	free(msg);
	free(path);
}

char *
env_log_tail(struct env *e, int n)
{
	char *path = env_log_path(e);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size, from;
	char *buf, *p;
	ssize_t got;
	int lines = 0;

	free(path);
	if (fd == -1)
		return xstrdup("");
	size = lseek(fd, 0, SEEK_END);
	from = size > 65536 ? size - 65536 : 0;
	buf = xmalloc((size_t)(size - from) + 1);
	got = pread(fd, buf, (size_t)(size - from), from);
	close(fd);
	if (got < 0)
		got = 0;
	buf[got] = '\0';
	for (p = buf + got; p > buf; p--) {
		if (p[-1] == '\n' && p != buf + got && ++lines >= n)
			break;
	}
	/* apps print anything: bytes that are not UTF-8 (and NULs) go
	 * into JSON as \xNN */
	p = util_utf8_clean_n(p, (size_t)(buf + got - p));
	free(buf);
	return p;
}

/* Rotate a log past NUBO_LOG_ROTATE_SIZE: .2 → .3, .1 → .2, a copy to .1
 * and the file truncated (copy-truncate: its writers keep their O_APPEND
 * descriptor). */
static void
env_log_rotate_file(const char *path)
{
	struct stat st;
	int i;

	if (stat(path, &st) == 0 && st.st_size > NUBO_LOG_ROTATE_SIZE) {
		char *from, *to;
		int in, out;

		for (i = 3; i > 1; i--) {
			from = xasprintf("%s.%d", path, i - 1);
			to = xasprintf("%s.%d", path, i);
			rename(from, to);
			free(from);
			free(to);
		}
		to = xasprintf("%s.1", path);
		in = open(path, O_RDONLY | O_CLOEXEC);
		out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (in != -1 && out != -1) {
			char buf[65536];
			ssize_t n;

			while ((n = read(in, buf, sizeof buf)) > 0)
				if (write(out, buf, (size_t)n) != n)
					break;
			if (truncate(path, 0) == -1)
				log_warn("cannot truncate %s", path);
		}
		if (in != -1)
			close(in);
		if (out != -1)
			close(out);
		free(to);
	}
}

void
env_log_rotate(struct env *e)
{
	char *path = env_log_path(e);

	env_log_rotate_file(path);
	free(path);
	/* the router's access log of the environment, as nginx writes it */
	path = router_access_log_path(e->id);
	env_log_rotate_file(path);
	free(path);
}

/* Read start and health from the unpacked package's nubo.json. */
static int
env_read_manifest(struct env *e, char **cause)
{
	char *path = xasprintf("%s/app/nubo.json", e->dir);
	char *text = util_read_file(path, NUBO_MANIFEST_MAX, NULL);
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	int rc = -1;

	if (!json_is_object(j) || jsonx_str(j, "start") == NULL) {
		*cause = xasprintf("the package in '%s' has no valid nubo.json",
		    env_name(e));
		goto out;
	}
	free(e->start);
	free(e->health);
	e->start = xstrdup(jsonx_str(j, "start"));
	e->health = xstrdup(jsonx_str(j, "health") ? jsonx_str(j, "health") :
	    "/");
	rc = 0;
out:
	json_decref(j);
	free(text);
	free(path);
	return rc;
}

int
env_any_alive(struct env *e)
{
	int i;

	for (i = 0; i < NUBO_INSTANCES_MAX; i++)
		if (e->inst[i].pid > 0)
			return 1;
	return 0;
}

/* Caller holds the lock. */
static int
env_begin_start(struct env *e, unsigned *status, const char **code,
    char **cause)
{
	int i;

	if (e->package == NULL) {
		*status = 409;
		*code = "ENVIRONMENT_NOT_DEPLOYED";
		*cause = xasprintf("cannot start '%s': no package was "
		    "transported to it", env_name(e));
		return -1;
	}
	if (env_read_manifest(e, cause) == -1) {
		*status = 409;
		*code = "PACKAGE_INVALID";
		return -1;
	}
	if (constants_missing(e, cause) == -1) {
		*status = 409;
		*code = "MISSING_CONSTANT";
		return -1;
	}
	if (pg_env_ensure(e, cause) == -1) {
		*status = 503;
		*code = "DATABASE_UNAVAILABLE";
		return -1;
	}
	e->want_running = 1;
	e->restart_pending = 0;
	e->rolling = 0;
	e->state = ENV_STARTING;
	e->start_deadline = util_mono() + node->start_timeout;
	e->held = 0;
	free(e->error);
	e->error = NULL;
	for (i = 0; i < NUBO_INSTANCES_MAX; i++) {
		e->inst[i].crashes = 0;
		e->inst[i].restarts = 0;	/* counted per start */
		e->inst[i].last_exit[0] = '\0';
		e->inst[i].next_try = 0;
	}
	env_log(e, "starting %d instance(s) of package %s",
	    env_instances_wanted(e), e->package);
	env_save(e);
	return 0;
}

int
env_start(struct env *e, unsigned *status, const char **code, char **cause)
{
	if (backup_env_busy(e->id)) {
		*status = 409;
		*code = "RESTORE_RUNNING";
		*cause = xstrdup("a restore of this environment is running");
		return -1;
	}
	if (e->state == ENV_RUNNING || e->state == ENV_STARTING)
		return 0;	/* idempotent: a re-queued job asks again */
	if (e->state == ENV_STOPPING) {
		e->restart_pending = 1;
		return 0;
	}
	return env_begin_start(e, status, code, cause);
}

/* The supervisor calls this when a restart's stop has completed. */
int env_restart_now(struct env *e);
int
env_restart_now(struct env *e)
{
	unsigned status;
	const char *code;
	char *cause = NULL;

	if (env_begin_start(e, &status, &code, &cause) == -1) {
		e->state = ENV_FAILED;
		free(e->error);
		e->error = cause;
		env_save(e);
		return -1;
	}
	return 0;
}

int
env_stop(struct env *e, unsigned *status, const char **code, char **cause)
{
	(void)status;
	(void)code;
	(void)cause;
	e->restart_pending = 0;
	e->rolling = 0;
	e->want_running = 0;
	if (env_any_alive(e)) {
		if (e->state != ENV_STOPPING)
			env_log(e, "stopping");
		e->state = ENV_STOPPING;
	} else if (e->state != ENV_NOTDEPLOYED) {
		e->state = e->package ? ENV_STOPPED : ENV_NOTDEPLOYED;
		free(e->error);
		e->error = NULL;
	}
	env_save(e);
	return 0;
}

int
env_restart(struct env *e, unsigned *status, const char **code,
    char **cause)
{
	/* its start would fail once its instances are stopped */
	if (node->pg_down) {
		*status = 503;
		*code = "DATABASE_DOWN";
		*cause = xasprintf("cannot restart '%s' now: %s", env_name(e),
		    node->pg_down);
		return -1;
	}
	if (!env_any_alive(e))
		return env_begin_start(e, status, code, cause);
	e->want_running = 0;
	e->restart_pending = 1;
	e->state = ENV_STOPPING;
	env_log(e, "restarting");
	env_save(e);
	return 0;
}

/* Caller holds the lock; 0 when e may be changed by transport/clean. */
static int
env_check_stopped(struct env *e, const char *verb, unsigned *status,
    const char **code, char **cause)
{
	if (e->want_running || env_any_alive(e) || e->state == ENV_STARTING ||
	    e->state == ENV_RUNNING || e->state == ENV_STOPPING) {
		*status = 409;
		*code = "ENVIRONMENT_NOT_STOPPED";
		*cause = xasprintf("cannot %s '%s': environment is %s", verb,
		    env_name(e), env_state_name(e->state));
		return -1;
	}
	return 0;
}

int
env_transport(struct env *e, const char *package, unsigned *status,
    const char **code, char **cause)
{
	char *src = NULL, *dest = NULL;
	int rc = -1;

	pthread_mutex_lock(&node->lock);
	if (env_check_stopped(e, "transport into", status, code, cause) ==
	    -1) {
		pthread_mutex_unlock(&node->lock);
		return -1;
	}
	/* keep start away while unpacking */
	e->state = ENV_STOPPED;
	pthread_mutex_unlock(&node->lock);
	src = packages_env_file(e, package);
	if (src == NULL) {
		*status = 404;
		*code = "PACKAGE_NOT_FOUND";
		*cause = xasprintf("no package '%s' in the repository of this "
		    "environment", package);
		goto out;
	}
	dest = xasprintf("%s/app", e->dir);
	if (package_extract(src, dest, cause) == -1) {
		*status = 422;
		*code = "PACKAGE_INVALID";
		goto out;
	}
	pthread_mutex_lock(&node->lock);
	free(e->package);
	e->package = xstrdup(package);
	if (env_read_manifest(e, cause) == -1) {
		*status = 422;
		*code = "PACKAGE_INVALID";
		pthread_mutex_unlock(&node->lock);
		goto out;
	}
	e->state = ENV_STOPPED;
	free(e->error);
	e->error = NULL;
	env_save(e);
	/* deployed now: routed to its socket (router_snapshot()) */
	node->router_dirty = 1;
	pthread_mutex_unlock(&node->lock);
	supervisor_wake();
	env_log(e, "package %s transported", package);
	rc = 0;
out:
	if (rc == -1) {
		pthread_mutex_lock(&node->lock);
		e->state = e->package ? ENV_STOPPED : ENV_NOTDEPLOYED;
		pthread_mutex_unlock(&node->lock);
	}
	free(src);
	free(dest);
	return rc;
}

int
env_clean(struct env *e, unsigned *status, const char **code, char **cause)
{
	char *files;
	int rc;

	pthread_mutex_lock(&node->lock);
	if (env_check_stopped(e, "clean", status, code, cause) == -1) {
		pthread_mutex_unlock(&node->lock);
		return -1;
	}
	pthread_mutex_unlock(&node->lock);
	if (pg_env_wipe(e, cause) == -1) {
		*status = 500;
		*code = "DATABASE_ERROR";
		return -1;
	}
	files = xasprintf("%s/files", e->dir);
	rc = util_rm_rf(files);
	if (rc == 0)
		rc = util_mkdir_p(files, 0750);
	env_chown(e, files);
	free(files);
	if (rc == -1) {
		*status = 500;
		*code = "FILES_ERROR";
		*cause = xasprintf("cannot wipe the files of '%s': %s",
		    env_name(e), strerror(errno));
		return -1;
	}
	env_log(e, "database and files wiped (clean)");
	return 0;
}
