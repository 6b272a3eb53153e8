/* One-off runs (nubo envs run): a command in a fresh sandbox of an
 * environment — its package in a working area of its own, its
 * environment variables, database, files folder, user and limits, like
 * an instance, but no router socket — with its output kept for the
 * portal to read as it comes, and a time limit.
 *
 * Layout: DIR/envs/<id>/runs/<uuid>.json (what ran, who asked, its state
 * and exit status), <uuid>.log (stdout and stderr), <uuid>.in (its
 * standard input, gone once it started). Root's, 0600: the output may
 * hold what the command printed of its secrets.
 *
 * Each run has a thread of its own that starts the sandbox (the thread
 * that forks is the one whose end kills it: PR_SET_PDEATHSIG, so a run
 * never outlives the node), waits for it through a pidfd, and enforces
 * the time limit, a stop asked for and the output's size. A run the node
 * lost by restarting reads as `lost`. */
#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "agent-routes.h"
#include "jsonx.h"
#include "log.h"
#include "testhook.h"
#include "util.h"
#include "xmalloc.h"

/* sandbox indexes above every instance's */
#define RUN_INDEX_BASE	100
/* after SIGTERM, this long before SIGKILL */
#define RUN_TERM_GRACE	5.0

struct run {
	char		*id;
	long long	 env_id;
	int		 slot;		/* 1..NUBO_RUNS_MAX */
	char		*dir;		/* DIR/envs/<id>/runs */
	json_t		*record;	/* <uuid>.json */
	char		**cmd;
	int		 in_fd, out_fd;
	double		 deadline;	/* monotonic */
	int		 stop;		/* asked to stop */
	pid_t		 pid;
	struct run_start *start;	/* the request waiting for the start */
	struct run	*next;
};

/* What the thread tells the request that waits for the start. */
struct run_start {
	sem_t		 sem;
	pid_t		 pid;		/* -1: not started */
	char		*cause;
};

static pthread_mutex_t runs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct run *runs;

static char *
run_path(const char *dir, const char *id, const char *ext)
{
	return xasprintf("%s/%s.%s", dir, id, ext);
}

static void
run_save(struct run *ru)
{
	char *path = run_path(ru->dir, ru->id, "json");
	char *text = json_dumps(ru->record, JSON_COMPACT);

	if (text == NULL || util_write_file(path, text, strlen(text),
	    0600) == -1)
		log_warn("cannot save %s: %s", path, strerror(errno));
	free(text);
	free(path);
}

static void
run_free(struct run *ru)
{
	size_t i;

	if (ru == NULL)
		return;
	for (i = 0; ru->cmd && ru->cmd[i]; i++)
		free(ru->cmd[i]);
	free(ru->cmd);
	if (ru->in_fd != -1)
		close(ru->in_fd);
	if (ru->out_fd != -1)
		close(ru->out_fd);
	json_decref(ru->record);
	free(ru->dir);
	free(ru->id);
	free(ru);
}

/* Take ru off the list of running runs. */
static void
run_unlist(struct run *ru)
{
	struct run **p;

	pthread_mutex_lock(&runs_lock);
	for (p = &runs; *p; p = &(*p)->next)
		if (*p == ru) {
			*p = ru->next;
			break;
		}
	pthread_mutex_unlock(&runs_lock);
}

static void
run_signal(pid_t pid, int sig)
{
	/* the whole session: bubblewrap's outer process ignores SIGTERM,
	 * nubo-init forwards it to the command */
	if (kill(-pid, sig) == -1)
		kill(pid, sig);
}

/* Wait for the run's sandbox to end, enforcing its limits; its status
 * as waitpid gives it, and *why the limit that ended it (or NULL). */
static int
run_wait(struct run *ru, const char **why)
{
	int pidfd = (int)syscall(SYS_pidfd_open, ru->pid, 0), st = 0;
	double term_at = 0;
	struct stat sb;

	*why = NULL;
	for (;;) {
		pid_t r = waitpid(ru->pid, &st, WNOHANG);
		double now;
		int stop;

		if (r == ru->pid || (r == -1 && errno != EINTR))
			break;
		if (pidfd != -1) {
			struct pollfd p = { .fd = pidfd, .events = POLLIN };

			poll(&p, 1, 200);
		} else {
			usleep(20 * 1000);
		}
		now = util_mono();
		pthread_mutex_lock(&runs_lock);
		stop = ru->stop;
		pthread_mutex_unlock(&runs_lock);
		if (*why == NULL && stop)
			*why = "stopped";
		else if (*why == NULL && now >= ru->deadline)
			*why = "timed-out";
		else if (*why == NULL && fstat(ru->out_fd, &sb) == 0 &&
		    sb.st_size > NUBO_RUN_OUTPUT_MAX)
			*why = "output-limit";
		if (*why && term_at == 0) {
			run_signal(ru->pid, SIGTERM);
			term_at = now;
		} else if (*why && now - term_at >= RUN_TERM_GRACE) {
			run_signal(ru->pid, SIGKILL);
		}
	}
	if (pidfd != -1)
		close(pidfd);
	return st;
}

static void *
run_thread(void *arg)
{
	struct run *ru = arg;
	struct spawn_how h = { .index = RUN_INDEX_BASE + ru->slot,
		.port = 8080, .cmd = ru->cmd, .run_id = ru->id,
		.listen_fd = -1, .in_fd = ru->in_fd, .out_fd = ru->out_fd,
		.die_with_node = 1 };
	struct run_start *start = ru->start;
	struct env *e;
	const char *why;
	char iso[32], *input;
	int st;

	pthread_mutex_lock(&node->lock);
	e = env_find(ru->env_id);
	if (e == NULL)
		start->cause = xstrdup("the environment is gone");
	else
		ru->pid = spawn_sandboxed(e, &h, &start->cause);
	if (e && ru->pid != -1)
		env_log(e, "run %s: started", ru->id);
	pthread_mutex_unlock(&node->lock);
	input = run_path(ru->dir, ru->id, "in");
	unlink(input);		/* the sandbox holds it open */
	free(input);
	start->pid = ru->pid;
	if (ru->pid == -1) {
		sem_post(&start->sem);	/* the request answers and frees */
		return NULL;
	}
	close(ru->in_fd);
	ru->in_fd = -1;
	ru->start = NULL;
	sem_post(&start->sem);	/* from here on, ru is this thread's */

	st = run_wait(ru, &why);
	util_time_iso(util_now(), iso, sizeof iso);
	json_object_set_new(ru->record, "finished_at", json_string(iso));
	json_object_set_new(ru->record, "state", json_string(why ? why :
	    "exited"));
	if (WIFEXITED(st))
		json_object_set_new(ru->record, "exit_status",
		    json_integer(WEXITSTATUS(st)));
	else if (WIFSIGNALED(st))
		json_object_set_new(ru->record, "exit_status",
		    json_integer(128 + WTERMSIG(st)));
	if (sandbox_oom_kills(ru->env_id, RUN_INDEX_BASE + ru->slot) > 0)
		json_object_set_new(ru->record, "oom_killed", json_true());
	sandbox_cgroup_remove(ru->env_id, RUN_INDEX_BASE + ru->slot);
	pthread_mutex_lock(&node->lock);
	if ((e = env_find(ru->env_id)) != NULL) {
		sandbox_work_remove(e, RUN_INDEX_BASE + ru->slot);
		env_log(e, "run %s: %s, status %lld", ru->id, why ? why :
		    "exited", jsonx_int(ru->record, "exit_status", -1));
	}
	pthread_mutex_unlock(&node->lock);
	run_save(ru);
	run_unlist(ru);
	run_free(ru);
	return NULL;
}

/* Finished runs past NUBO_RUN_KEEP_SECONDS go (their record and
 * output). */
static void
runs_prune(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	time_t now = util_now();

	while (d && (de = readdir(d)) != NULL) {
		char *path;
		struct stat sb;

		if (de->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		if (stat(path, &sb) == 0 && now - sb.st_mtime >
		    NUBO_RUN_KEEP_SECONDS) {
			int running = 0;
			struct run *ru;

			pthread_mutex_lock(&runs_lock);
			for (ru = runs; ru; ru = ru->next)
				if (strncmp(de->d_name, ru->id,
				    strlen(ru->id)) == 0)
					running = 1;
			pthread_mutex_unlock(&runs_lock);
			if (!running)
				unlink(path);
		}
		free(path);
	}
	if (d)
		closedir(d);
}

/* The command: 1..NUBO_RUN_ARGS_MAX strings, the first not empty, none
 * with a NUL, NUBO_RUN_COMMAND_MAX bytes in all; NULL after a 400. */
static char **
run_command(struct areq *r, json_t *a)
{
	size_t i, total = 0;
	char **cmd;

	for (i = 0; json_is_array(a) && i < json_array_size(a); i++) {
		json_t *w = json_array_get(a, i);

		if (!json_is_string(w) || strlen(json_string_value(w)) !=
		    json_string_length(w)) {
			areply_error(r, 400, "BAD_REQUEST", "command: word %zu "
			    "must be a string without NUL", i + 1);
			return NULL;
		}
		total += json_string_length(w) + 1;
	}
	if (!json_is_array(a) || json_array_size(a) == 0 ||
	    json_array_size(a) > NUBO_RUN_ARGS_MAX || total >
	    NUBO_RUN_COMMAND_MAX || json_string_length(json_array_get(a,
	    0)) == 0) {
		areply_error(r, 400, "BAD_REQUEST", "command must be 1 to %d "
		    "words, the first not empty, %d bytes at most",
		    NUBO_RUN_ARGS_MAX, NUBO_RUN_COMMAND_MAX);
		return NULL;
	}
	cmd = xcalloc(json_array_size(a) + 1, sizeof *cmd);
	for (i = 0; i < json_array_size(a); i++)
		cmd[i] = xstrdup(json_string_value(json_array_get(a, i)));
	return cmd;
}

/* POST /agent/v1/environments/{id}/runs
 * {command: [..], timeout?: seconds, input?: text, user?: id} */
void
agent_run_create(struct areq *r)
{
	static const struct jfield fields[] = {
		{ "command", JT_ARRAY, 1 }, { "timeout", JT_INT, 0 },
		{ "input", JT_STRING, 0 }, { "user", JT_INT, 0 }, { NULL } };
	struct run *ru = NULL, *o;
	struct run_start start = { .pid = -1 };
	const char *input = jsonx_str(r->body, "input");
	long long timeout = jsonx_int(r->body, "timeout", NUBO_RUN_TIMEOUT);
	char *path = NULL, *id = NULL, iso[32];
	int used = 0, slot, deployed;
	pthread_t t;
	pthread_attr_t attr;

	if (abody_check(r, fields) == -1)
		return;
	sem_init(&start.sem, 0, 0);
	ru = xcalloc(1, sizeof *ru);
	ru->in_fd = ru->out_fd = ru->pid = -1;
	if ((ru->cmd = run_command(r, json_object_get(r->body,
	    "command"))) == NULL)
		goto fail;
	if (timeout < 1 || timeout > NUBO_RUN_TIMEOUT_MAX || (input &&
	    json_string_length(json_object_get(r->body, "input")) >
	    NUBO_RUN_INPUT_MAX)) {
		areply_error(r, 400, "BAD_REQUEST", "timeout must be 1 to %d "
		    "seconds and input at most %d bytes",
		    NUBO_RUN_TIMEOUT_MAX, NUBO_RUN_INPUT_MAX);
		goto fail;
	}
	pthread_mutex_lock(&node->lock);
	deployed = r->env->package != NULL && r->env->start != NULL;
	ru->env_id = r->env->id;
	ru->dir = xasprintf("%s/runs", r->env->dir);
	pthread_mutex_unlock(&node->lock);
	if (!deployed) {
		areply_error(r, 409, "NOT_DEPLOYED", "environment %lld has no "
		    "package deployed: transport one first", ru->env_id);
		goto fail;
	}
	if (util_mkdir_p(ru->dir, 0700) == -1) {
		areply_error(r, 500, "FILES_ERROR", "cannot create %s: %s",
		    ru->dir, strerror(errno));
		goto fail;
	}
	runs_prune(ru->dir);
	ru->id = util_uuid();
	if (input) {
		path = run_path(ru->dir, ru->id, "in");
		if (util_write_file(path, input, strlen(input), 0600) == -1 ||
		    (ru->in_fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
			areply_error(r, 500, "FILES_ERROR", "cannot write %s: "
			    "%s", path, strerror(errno));
			goto fail;
		}
		free(path);
	}
	path = run_path(ru->dir, ru->id, "log");
	ru->out_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND |
	    O_CLOEXEC, 0600);
	if (ru->out_fd == -1) {
		areply_error(r, 500, "FILES_ERROR", "cannot create %s: %s",
		    path, strerror(errno));
		goto fail;
	}
	util_time_iso(util_now(), iso, sizeof iso);
	ru->record = json_pack("{s:s,s:O,s:I,s:s,s:s,s:I}", "id", ru->id,
	    "command", json_object_get(r->body, "command"), "timeout",
	    (json_int_t)timeout, "state", "running", "started_at", iso,
	    "user", (json_int_t)jsonx_int(r->body, "user", 0));
	ru->deadline = util_mono() + (double)timeout;

	/* a free slot of the environment's */
	pthread_mutex_lock(&runs_lock);
	for (o = runs; o; o = o->next)
		if (o->env_id == ru->env_id)
			used |= 1 << o->slot;
	for (slot = 1; slot <= NUBO_RUNS_MAX && (used & (1 << slot)); slot++)
		;
	if (slot <= NUBO_RUNS_MAX) {
		ru->slot = slot;
		ru->next = runs;
		runs = ru;
	}
	pthread_mutex_unlock(&runs_lock);
	if (slot > NUBO_RUNS_MAX) {
		areply_error(r, 409, "RUNS_BUSY", "environment %lld already "
		    "runs %d one-off commands; wait for one to end",
		    ru->env_id, NUBO_RUNS_MAX);
		unlink(path);
		goto fail;
	}
	run_save(ru);
	id = xstrdup(ru->id);
	ru->start = &start;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, run_thread, ru) != 0) {
		start.cause = xstrdup("cannot start a thread");
	} else {
		while (sem_wait(&start.sem) == -1 && errno == EINTR)
			;
	}
	pthread_attr_destroy(&attr);
	if (start.pid == -1) {
		areply_error(r, 500, "RUN_FAILED", "cannot start the command: "
		    "%s", start.cause ? start.cause : "?");
		run_unlist(ru);
		unlink(path);
		free(path);
		path = run_path(ru->dir, ru->id, "json");
		unlink(path);
		goto fail;
	}
	/* the thread owns ru from here on */
	log_info("environment %lld: run %s started", jsonx_int(r->body, "id",
	    r->env->id), id);
	areply(r, 201, json_pack("{s:s,s:s}", "id", id, "state", "running"));
	free(path);
	free(id);
	sem_destroy(&start.sem);
	return;
fail:
	free(path);
	free(id);
	free(start.cause);
	sem_destroy(&start.sem);
	run_free(ru);
}

static int
run_live(const char *id, int stop)
{
	struct run *ru;
	int live = 0;

	pthread_mutex_lock(&runs_lock);
	for (ru = runs; ru; ru = ru->next)
		if (strcmp(ru->id, id) == 0) {
			live = 1;
			if (stop)
				ru->stop = 1;
		}
	pthread_mutex_unlock(&runs_lock);
	return live;
}

/* The run {run} of the environment in the request: its record (a copy),
 * or NULL after a 404 or 400 reply. A `user` query, when given, must be
 * the user who started it. *live: whether its thread is on the list of
 * live runs. A run's thread saves its last record before it leaves the
 * list, so the list is asked before the record is read and again after:
 * one that ended in between is read again, not reported lost. */
static json_t *
run_record(struct areq *r, char **dir, int *live)
{
	const char *id = http_param(r->http, "run");
	const char *user = http_query(r->http, "user");
	long long uid = 0;
	json_t *rec = NULL;
	char *path;

	if (id == NULL || !util_valid_uuid(id) || (user &&
	    util_parse_int(user, 0, 1LL << 53, &uid) == -1)) {
		areply_error(r, 404, "RUN_NOT_FOUND", "no such run");
		return NULL;
	}
	pthread_mutex_lock(&node->lock);
	*dir = xasprintf("%s/runs", r->env->dir);
	pthread_mutex_unlock(&node->lock);
	*live = run_live(id, 0);
	path = run_path(*dir, id, "json");
	rec = json_load_file(path, 0, NULL);
	testhook_pause("run-record-read");
	if (*live && strcmp(jsonx_str(rec, "state") ? jsonx_str(rec,
	    "state") : "", "running") == 0 && !(*live = run_live(id, 0))) {
		/* it ended while its record was read: its last is saved */
		json_decref(rec);
		rec = json_load_file(path, 0, NULL);
	}
	free(path);
	if (!json_is_object(rec) || (user && jsonx_int(rec, "user", 0) !=
	    uid)) {
		json_decref(rec);
		free(*dir);
		*dir = NULL;
		areply_error(r, 404, "RUN_NOT_FOUND", "no run %s here", id);
		return NULL;
	}
	return rec;
}


/* GET /agent/v1/environments/{id}/runs/{run}?offset=N[&user=U]: the
 * record, and up to NUBO_LOG_CHUNK_MAX bytes of output from offset
 * (base64 in "output": output is bytes); "more" while there is more. */
void
agent_run_show(struct areq *r)
{
	const char *os = http_query(r->http, "offset");
	long long off = 0;
	char *dir = NULL, *path = NULL, *buf = NULL, *b64 = NULL;
	json_t *rec;
	struct stat sb;
	ssize_t got = 0;
	size_t b64len;
	int fd = -1, live;

	if (os && util_parse_int(os, 0, 1LL << 50, &off) == -1) {
		areply_error(r, 400, "BAD_REQUEST", "offset must be a byte "
		    "offset");
		return;
	}
	if ((rec = run_record(r, &dir, &live)) == NULL)
		return;
	if (strcmp(jsonx_str(rec, "state") ? jsonx_str(rec, "state") : "",
	    "running") == 0 && !live)
		json_object_set_new(rec, "state", json_string("lost"));
	path = run_path(dir, jsonx_str(rec, "id"), "log");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd != -1 && fstat(fd, &sb) == 0 && off < sb.st_size) {
		long long len = sb.st_size - off;

		if (len > NUBO_LOG_CHUNK_MAX)
			len = NUBO_LOG_CHUNK_MAX;
		buf = xmalloc((size_t)len);
		got = pread(fd, buf, (size_t)len, off);
		if (got < 0)
			got = 0;
	}
	b64len = sodium_base64_ENCODED_LEN((size_t)got,
	    sodium_base64_VARIANT_ORIGINAL);
	b64 = xmalloc(b64len);
	sodium_bin2base64(b64, b64len, (const unsigned char *)(buf ? buf :
	    ""), (size_t)got, sodium_base64_VARIANT_ORIGINAL);
	json_object_set_new(rec, "output", json_string(b64));
	json_object_set_new(rec, "offset", json_integer(off + got));
	json_object_set_new(rec, "more", json_boolean(fd != -1 &&
	    off + got < (long long)sb.st_size));
	if (fd != -1)
		close(fd);
	areply(r, 200, rec);
	free(b64);
	free(buf);
	free(path);
	free(dir);
}

/* DELETE /agent/v1/environments/{id}/runs/{run}[?user=U]: stop it
 * (SIGTERM, SIGKILL after 5 s); 202 while it ends, 200 once ended. */
void
agent_run_stop(struct areq *r)
{
	char *dir = NULL;
	int live;
	json_t *rec = run_record(r, &dir, &live);

	if (rec == NULL)
		return;
	if (run_live(jsonx_str(rec, "id"), 1)) {
		json_object_set_new(rec, "state", json_string("stopping"));
		areply(r, 202, rec);
	} else if (live) {
		/* it ended since its record was read: its last one is saved */
		json_decref(rec);
		free(dir);
		dir = NULL;
		if ((rec = run_record(r, &dir, &live)) != NULL)
			areply(r, 200, rec);
	} else {
		areply(r, 200, rec);
	}
	free(dir);
}

/* Stop every run of environment id (it is being deleted). */
void
runs_stop_env(long long id)
{
	struct run *ru;

	pthread_mutex_lock(&runs_lock);
	for (ru = runs; ru; ru = ru->next)
		if (ru->env_id == id)
			ru->stop = 1;
	pthread_mutex_unlock(&runs_lock);
}
