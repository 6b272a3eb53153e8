/* The supervisor: one thread that keeps every environment as wanted.
 * Four times a second it reaps dead instances (restart with back-off,
 * `failed` after NODE_CRASHES_MAX crashes in a row), spawns missing ones,
 * health-checks starting ones through their own port, stops extra or
 * unwanted ones (SIGTERM, SIGKILL after the grace time), moves environment
 * states, rotates logs and re-renders the router when routing changed. */
#include "node.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "jsonx.h"
#include "log.h"
#include "util.h"
#include "xmalloc.h"

int env_restart_now(struct env *e);

int
supervisor_alive(struct instance *in)
{
	if (in->pid <= 0)
		return 0;
	if (in->owned) {
		int st;
		pid_t r = waitpid(in->pid, &st, WNOHANG);

		if (r == in->pid || (r == -1 && errno == ECHILD))
			return 0;
		return 1;
	}
	return spawn_starttime(in->pid) == in->starttime;
}

static int
instance_reap(struct env *e, int index, char *why, size_t len)
{
	struct instance *in = &e->inst[index];
	int st;
	pid_t r;

	if (in->pid <= 0)
		return 1;
	if (!in->owned) {
		if (spawn_starttime(in->pid) == in->starttime)
			return 0;
		snprintf(why, len, "exited");
		return 1;
	}
	r = waitpid(in->pid, &st, WNOHANG);
	if (r == 0)
		return 0;
	if (sandbox_oom_kills(e->id, index + 1) > in->oom_kills)
		snprintf(why, len, "was killed for using more than its memory "
		    "limit (%lld MB)", jsonx_int(e->spec, "memory_mb", 512));
	else if (r == in->pid && WIFSIGNALED(st))
		snprintf(why, len, "was killed by signal %d", WTERMSIG(st));
	else if (r == in->pid && WIFEXITED(st))
		snprintf(why, len, "exited with status %d", WEXITSTATUS(st));
	else
		snprintf(why, len, "is gone");
	return 1;
}

static void
instance_signal(struct instance *in, int sig)
{
	if (in->pid <= 0)
		return;
	/* the whole session: a start script may not exec its server */
	if (kill(-in->pid, sig) == -1)
		kill(in->pid, sig);
}

/* Environment failed: record why (with the app's last log lines), stop. */
static void
env_fail(struct env *e, const char *why)
{
	char *tail = env_log_tail(e, NODE_LOG_TAIL_ERROR);
	int i;

	free(e->error);
	e->error = xasprintf("%s; last log lines:\n%s", why, tail);
	free(tail);
	env_log(e, "%s; environment failed", why);
	/* unhealthy or crash-looping: no grace, so that a new package can
	 * be transported at once */
	for (i = 0; i < NUBO_INSTANCES_MAX; i++) {
		struct instance *in = &e->inst[i];
		int round;

		if (in->pid <= 0)
			continue;
		instance_signal(in, SIGKILL);
		if (in->owned)
			waitpid(in->pid, NULL, 0);
		else
			for (round = 0; round < 100 &&
			    spawn_starttime(in->pid) == in->starttime; round++)
				usleep(10 * 1000);
		in->pid = 0;
		in->state = INST_NONE;
		in->port = 0;
	}
	e->routed_pending = 0;
	e->held = 0;
	e->state = ENV_FAILED;
	e->want_running = 0;
	e->restart_pending = 0;
	e->rolling = 0;
	env_save(e);
	node->router_dirty = 1;
}

struct probe {
	long long	 env_id;
	char		*path;
	pid_t		 pid;
	int		 index;
	int		 ok;
};

/* SIGTERM an instance (stopped for good, or to start again when i is
 * still wanted); SIGKILL once the grace time has passed. */
static void
instance_stop(struct env *e, int i, double now)
{
	struct instance *in = &e->inst[i];

	if (in->state != INST_STOPPING) {
		instance_signal(in, SIGTERM);
		in->state = INST_STOPPING;
		in->term_at = now;
		node->router_dirty = 1;
	} else if (now - in->term_at > node->stop_grace) {
		env_log(e, "instance %d (pid %d) did not stop in %ds; killing "
		    "it", i + 1, (int)in->pid, node->stop_grace);
		instance_signal(in, SIGKILL);
		in->term_at = now + 3600;
	}
}

/* A new memory limit reaches a running environment's instances by a
 * rolling restart: one more instance runs meanwhile (where the cap
 * allows), and an instance with the old limit is stopped, to start again
 * with the new one, only while every other wanted instance is running,
 * so the app keeps serving. Returns the number of instances to keep:
 * want, plus the extra one while rolling. */
static int
roll_memory(struct env *e, int want, double now)
{
	long long mb = jsonx_int(e->spec, "memory_mb", 512);
	int i, extra = want < NUBO_INSTANCES_MAX, stale = -1;

	if (want == 0 || e->state != ENV_RUNNING) {
		e->rolling = 0;
		return want;
	}
	for (i = 0; i < want; i++)
		if (e->inst[i].pid > 0 && e->inst[i].memory_mb != mb &&
		    e->inst[i].state != INST_STOPPING) {
			stale = i;
			break;
		}
	if (!e->rolling && stale == -1)
		return want;
	if (!e->rolling) {
		e->rolling = 1;
		env_log(e, "memory limit changed to %lld MB: restarting the "
		    "instances one at a time", mb);
	}
	for (i = 0; i < want + extra; i++)
		if (e->inst[i].state != INST_RUNNING)
			return want + extra;	/* one at a time */
	if (stale != -1) {
		env_log(e, "instance %d (pid %d) restarts onto the %lld MB "
		    "limit", stale + 1, (int)e->inst[stale].pid, mb);
		instance_stop(e, stale, now);
		return want + extra;
	}
	e->rolling = 0;
	env_log(e, "all %d instance%s run with the %lld MB memory limit", want,
	    want == 1 ? "" : "s", mb);
	return want;
}

/* How many of the instances e wants are healthy. */
static int
supervisor_up(struct env *e)
{
	int i, want = env_instances_wanted(e), up = 0;

	for (i = 0; i < want && i < NUBO_INSTANCES_MAX; i++)
		up += e->inst[i].state == INST_RUNNING;
	return up;
}

/* One pass over env; health probes needed are appended to probes. */
static void
supervise_env(struct env *e, double now, struct probe *probes, int *nprobes,
    int max)
{
	int want = e->want_running ? env_instances_wanted(e) : 0;
	int i, changed = 0, live = 0, up = 0, rolling = e->rolling;
	char why[128];

	want = roll_memory(e, want, now);
	changed |= rolling != e->rolling;

	for (i = 0; i < NUBO_INSTANCES_MAX; i++) {
		struct instance *in = &e->inst[i];

		if (in->pid > 0 && instance_reap(e, i, why, sizeof why)) {
			int was_stopping = in->state == INST_STOPPING;

			node->router_dirty |= in->state == INST_RUNNING;
			if (!was_stopping && i < want) {
				int delay;

				if (in->healthy_at > 0 && now - in->healthy_at >
				    NODE_HEALTHY_RESET)
					in->crashes = 0;
				in->crashes++;
				in->restarts++;
				delay = 1 << (in->crashes - 1 < 5 ?
				    in->crashes - 1 : 5);
				if (delay > NODE_BACKOFF_MAX)
					delay = NODE_BACKOFF_MAX;
				env_log(e, "instance %d (pid %d, port %d) %s; "
				    "restart %d in %ds", i + 1, (int)in->pid,
				    in->port, why, in->restarts, delay);
				snprintf(in->last_exit, sizeof in->last_exit,
				    "%s", why);
				in->last_exit_at = time(NULL);
				in->pid = 0;
				in->state = INST_BACKOFF;
				in->healthy_at = 0;
				in->next_try = now + delay;
				if (in->crashes >= NODE_CRASHES_MAX &&
				    node->pg_down) {
					/* its database is down, not the
					 * app: degraded, retried */
					if (in->crashes == NODE_CRASHES_MAX)
						env_log(e, "instance %d crashed "
						    "%d times in a row while %s: "
						    "not failed, it is tried "
						    "again with back-off", i + 1,
						    in->crashes, node->pg_down);
				} else if (in->crashes >= NODE_CRASHES_MAX) {
					char *msg = xasprintf("instance %d "
					    "crashed %d times in a row", i + 1,
					    in->crashes);

					env_fail(e, msg);
					free(msg);
					want = 0;
				}
			} else {
				env_log(e, "instance %d (pid %d) stopped",
				    i + 1, (int)in->pid);
				in->pid = 0;
				in->state = INST_NONE;
				in->port = 0;
			}
			changed = 1;
		}
	}
	for (i = 0; i < NUBO_INSTANCES_MAX; i++) {
		struct instance *in = &e->inst[i];

		if (i < want) {
			if (in->pid == 0 && now >= in->next_try) {
				char *cause = NULL;

				if (in->port == 0 || in->state == INST_NONE)
					in->port = spawn_pick_port();
				if (in->port == -1) {
					env_fail(e, "no free port in the "
					    "instance range");
					want = 0;
					continue;
				}
				in->state = INST_STARTING;
				if (spawn_instance(e, i, &cause) == -1) {
					env_fail(e, cause);
					free(cause);
					want = 0;
					continue;
				}
				in->started_at = now;
				in->memory_mb = jsonx_int(e->spec, "memory_mb",
				    512);
				env_log(e, "instance %d started (pid %d, "
				    "port %d)", i + 1, (int)in->pid, in->port);
				changed = 1;
			}
			if (in->pid > 0 && in->state == INST_STOPPING)
				instance_stop(e, i, now);	/* rolling */
			/* an added or restarted instance of a running
			 * environment gets the start timeout too */
			if (in->pid > 0 && in->state == INST_STARTING &&
			    e->state == ENV_RUNNING && in->started_at > 0 &&
			    now - in->started_at > node->start_timeout) {
				env_log(e, "instance %d (pid %d) did not answer "
				    "its health check %s within %ds; killing "
				    "it", i + 1, (int)in->pid, e->health ?
				    e->health : "/", node->start_timeout);
				instance_signal(in, SIGKILL);
				in->started_at = now + 3600;
			}
			if (in->pid > 0 && in->state == INST_STARTING &&
			    *nprobes < max) {
				struct probe *p = &probes[(*nprobes)++];

				p->env_id = e->id;
				p->index = i;
				p->pid = in->pid;
				p->path = xstrdup(e->health ? e->health : "/");
				p->ok = 0;
			}
		} else if (in->pid > 0) {
			changed |= in->state != INST_STOPPING;
			instance_stop(e, i, now);
		} else if (in->state != INST_NONE) {
			in->state = INST_NONE;
			in->port = 0;
			changed = 1;
		}
		if (in->pid > 0)
			live++;
		if (in->state == INST_RUNNING && i < want)
			up++;
	}
	if (e->state == ENV_STARTING && now > e->start_deadline &&
	    heal_degraded() != NULL) {
		/* the node's own part is down, not the app: the start
		 * waits for it (degraded) and has its whole time after */
		if (!e->held)
			env_log(e, "the start waits: %s", heal_degraded());
		e->held = 1;
		e->start_deadline = now + node->start_timeout;
	} else if (e->state == ENV_STARTING && want > 0 && up == want &&
	    !e->routed_pending) {
		/* running once the router serves them (after the reload) */
		e->routed_pending = 1;
		node->router_dirty = 1;
	} else if (e->state == ENV_STARTING && now > e->start_deadline &&
	    e->routed_pending) {
		env_fail(e, "the instances are healthy but the router did not "
		    "take a configuration that routes to them (see the node's "
		    "log)");
		changed = 1;
	} else if (e->state == ENV_STARTING && now > e->start_deadline) {
		char *msg = xasprintf("the app did not answer its health "
		    "check %s within %ds", e->health ? e->health : "/",
		    node->start_timeout);

		env_fail(e, msg);
		free(msg);
		changed = 1;
	} else if (e->state == ENV_STOPPING && live == 0) {
		if (e->restart_pending) {
			env_restart_now(e);
		} else {
			e->state = e->package ? ENV_STOPPED : ENV_NOTDEPLOYED;
			env_log(e, "stopped");
		}
		node->router_dirty = 1;
		changed = 1;
	}
	if (changed)
		env_save(e);
}

static size_t
discard(char *d, size_t s, size_t n, void *c)
{
	(void)d;
	(void)c;
	return s * n;
}

/* The health path answers through the instance's own socket (its
 * sandbox's only way in): 2xx or 3xx. */
static int
probe_run(CURL *c, struct probe *p)
{
	char url[512];
	long status = 0;

	snprintf(url, sizeof url, "http://localhost%s", p->path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	sandbox_curl_instance(c, p->env_id, p->index + 1);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 300L);
	if (curl_easy_perform(c) != CURLE_OK)
		return 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	return status >= 200 && status < 400;
}

#define PROBES_MAX 256

/* Between passes: SUPERVISOR_PAUSE_BUSY while an instance starts or
 * stops (a start or a stop is part of a migration's downtime), else
 * SUPERVISOR_PAUSE_IDLE; supervisor_wake() cuts a pause short. */
#define SUPERVISOR_PAUSE_BUSY_MS	50
#define SUPERVISOR_PAUSE_IDLE_MS	250
#define SUPERVISOR_PAUSE_MIN_MS		5

static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cond = PTHREAD_COND_INITIALIZER;
static int wake_pending;

void
supervisor_wake(void)
{
	pthread_mutex_lock(&wake_lock);
	wake_pending = 1;
	pthread_cond_signal(&wake_cond);
	pthread_mutex_unlock(&wake_lock);
}

static void
supervisor_pause(int ms)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&wake_lock);
	while (!wake_pending && pthread_cond_timedwait(&wake_cond, &wake_lock,
	    &until) == 0)
		;
	wake_pending = 0;
	pthread_mutex_unlock(&wake_lock);
}

/* 1 while some instance is starting or stopping. */
static int
supervisor_busy(void)
{
	struct env *e;
	int i;

	for (e = node->envs; e; e = e->next)
		for (i = 0; i < NUBO_INSTANCES_MAX; i++)
			if (e->inst[i].state == INST_STARTING ||
			    e->inst[i].state == INST_STOPPING)
				return 1;
	return 0;
}

static void *
supervisor_thread(void *arg)
{
	struct probe probes[PROBES_MAX];
	CURL *c = curl_easy_init();
	double last_rotate = 0;

	(void)arg;
	for (;;) {
		double now = util_mono();
		int nprobes = 0, i, dirty, busy;
		struct env *e;

		pthread_mutex_lock(&node->lock);
		for (e = node->envs; e; e = e->next)
			supervise_env(e, now, probes, &nprobes, PROBES_MAX);
		busy = supervisor_busy();
		pthread_mutex_unlock(&node->lock);

		for (i = 0; i < nprobes; i++) {
			curl_easy_reset(c);
			probes[i].ok = probe_run(c, &probes[i]);
		}

		pthread_mutex_lock(&node->lock);
		for (i = 0; i < nprobes; i++) {
			struct instance *in;

			e = env_find(probes[i].env_id);
			if (e == NULL)
				continue;
			in = &e->inst[probes[i].index];
			if (probes[i].ok && in->pid == probes[i].pid &&
			    in->state == INST_STARTING) {
				in->state = INST_RUNNING;
				in->healthy_at = util_mono();
				env_log(e, "instance %d (pid %d, port %d) is "
				    "healthy", probes[i].index + 1,
				    (int)in->pid, in->port);
				node->router_dirty = 1;
				/* the last one a start waits for: the reload
				 * of this pass makes it running */
				if (e->state == ENV_STARTING && e->want_running &&
				    supervisor_up(e) == env_instances_wanted(e))
					e->routed_pending = 1;
			}
		}
		if (now - last_rotate > 5) {
			for (e = node->envs; e; e = e->next)
				env_log_rotate(e);
			last_rotate = now;
		}
		dirty = node->router_dirty;
		pthread_mutex_unlock(&node->lock);
		for (i = 0; i < nprobes; i++)
			free(probes[i].path);
		if (dirty && router_reload() == 0) {
			/* `running` means the router serves it: an
			 * environment whose part nginx refused fails */
			pthread_mutex_lock(&node->lock);
			for (e = node->envs; e; e = e->next) {
				if (e->router_refused && (e->routed_pending ||
				    e->state == ENV_RUNNING)) {
					env_fail(e, e->router_error ?
					    e->router_error : "the router "
					    "cannot serve it");
					continue;
				}
				if (!e->routed_pending)
					continue;
				e->routed_pending = 0;
				if (e->state != ENV_STARTING)
					continue;
				e->state = ENV_RUNNING;
				e->held = 0;
				env_log(e, "running (%d instance%s healthy)",
				    env_instances_wanted(e),
				    env_instances_wanted(e) == 1 ? "" : "s");
				env_save(e);
			}
			pthread_mutex_unlock(&node->lock);
		}
		/* a busy pass that took long (a reload waits for nginx's
		 * old workers to go) has waited already */
		supervisor_pause(!busy ? SUPERVISOR_PAUSE_IDLE_MS :
		    util_mono() - now > SUPERVISOR_PAUSE_BUSY_MS / 1000.0 ?
		    SUPERVISOR_PAUSE_MIN_MS : SUPERVISOR_PAUSE_BUSY_MS);
	}
	curl_easy_cleanup(c);
	return NULL;
}

void
supervisor_adopt(struct env *e)
{
	int i, n = 0;

	for (i = 0; i < NUBO_INSTANCES_MAX; i++) {
		struct instance *in = &e->inst[i];

		if (in->pid <= 0)
			continue;
		in->owned = 0;
		if (in->starttime && spawn_starttime(in->pid) ==
		    in->starttime) {
			/* it kept serving while the agent was away */
			in->state = e->state == ENV_RUNNING ? INST_RUNNING :
			    INST_STARTING;
			in->healthy_at = util_mono();
			n++;
		} else {
			in->pid = 0;
			in->state = INST_BACKOFF;
			in->next_try = 0;
		}
	}
	if (n)
		log_info("environment %lld: re-adopted %d running instance%s",
		    e->id, n, n == 1 ? "" : "s");
}

void
supervisor_kill_all(struct env *e)
{
	int i, round;

	for (i = 0; i < NUBO_INSTANCES_MAX; i++)
		if (supervisor_alive(&e->inst[i]))
			instance_signal(&e->inst[i], SIGTERM);
	for (round = 0; round < node->stop_grace * 10; round++) {
		int any = 0;

		for (i = 0; i < NUBO_INSTANCES_MAX; i++)
			if (supervisor_alive(&e->inst[i]))
				any = 1;
		if (!any)
			break;
		usleep(100 * 1000);
	}
	for (i = 0; i < NUBO_INSTANCES_MAX; i++) {
		if (supervisor_alive(&e->inst[i]))
			instance_signal(&e->inst[i], SIGKILL);
		e->inst[i].pid = 0;
		e->inst[i].state = INST_NONE;
	}
	e->want_running = 0;
	e->state = e->package ? ENV_STOPPED : ENV_NOTDEPLOYED;
	env_save(e);
}

void
supervisor_adopt_all(void)
{
	struct env *e;

	pthread_mutex_lock(&node->lock);
	for (e = node->envs; e; e = e->next) {
		supervisor_adopt(e);
		/* a start or stop that was under way goes on */
		if (e->want_running && e->state != ENV_RUNNING)
			e->start_deadline = util_mono() + node->start_timeout;
	}
	pthread_mutex_unlock(&node->lock);
}

void
supervisor_start(void)
{
	pthread_t t;

	pthread_mutex_lock(&node->lock);
	node->router_dirty = 1;
	pthread_mutex_unlock(&node->lock);
	if (pthread_create(&t, NULL, supervisor_thread, NULL) != 0)
		fatal("cannot start the supervisor");
	pthread_detach(t);
}
