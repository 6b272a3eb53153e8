/* The node's own parts — its PostgreSQL cluster and its nginx — are
 * supervised like instances: a thread checks twice a second that each
 * one's master process lives (the postmaster by postmaster.pid, nginx's
 * master by nginx.pid, each checked in /proc), and when one is gone it
 * kills what the dead master left (postgres backends, nginx workers that
 * still hold the router's port), starts it again, and retries after 1,
 * 2, 4 … 30 s while that fails (pg.c: pg_watch(), router.c:
 * router_watch()). Meanwhile every running environment is reported
 * `degraded` with the reason (heartbeat, agent API), and `running` again
 * once the part serves. */
#include "node.h"

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "xmalloc.h"

#define HEAL_PAUSE_MS	500

static char *heal_both;		/* both reasons, for heal_degraded() */

const char *
heal_degraded(void)
{
	free(heal_both);
	heal_both = NULL;
	if (node->pg_down && node->router_down)
		return heal_both = xasprintf("%s; %s", node->pg_down,
		    node->router_down);
	return node->pg_down ? node->pg_down : node->router_down;
}

static void
heal_say(struct heal *h, char *text)
{
	pthread_mutex_lock(&node->lock);
	free(*h->slot);
	*h->slot = text;
	pthread_mutex_unlock(&node->lock);
}

/* Seconds before restart n+1 after n restarts that did not stay up:
 * none for the first, then 1, 2, 4 … NODE_BACKOFF_MAX. */
static int
heal_backoff(int n)
{
	int delay;

	if (n <= 0)
		return 0;
	delay = 1 << (n - 1 < 5 ? n - 1 : 5);
	return delay > NODE_BACKOFF_MAX ? NODE_BACKOFF_MAX : delay;
}

int
heal_gone(struct heal *h, const char *why)
{
	double now = util_mono();

	if (h->down_since == 0) {
		h->down_since = now;
		if (now - h->up_since > NODE_HEALTHY_RESET)
			h->attempts = 0;
		h->next_try = now + heal_backoff(h->attempts);
		log_warn("%s: %s%s", h->what, why, h->external ? "" :
		    "; restarting it");
		heal_say(h, xasprintf("the node's %s is down (%s)%s", h->what,
		    why, h->external ? "" : "; the node is restarting it"));
	}
	return now >= h->next_try;
}

void
heal_tried(struct heal *h, const char *cause)
{
	double now = util_mono();
	int delay;

	h->attempts++;
	if (cause == NULL) {
		log_info("%s restarted after %.1f s down", h->what,
		    now - h->down_since);
		heal_alive(h);
		return;
	}
	delay = heal_backoff(h->attempts);
	h->next_try = now + delay;
	log_error("%s: restart %d failed: %s; next try in %d s", h->what,
	    h->attempts, cause, delay);
	heal_say(h, xasprintf("the node's %s is down for %.0f s; restart %d "
	    "failed (%s), next try in %d s", h->what, now - h->down_since,
	    h->attempts, cause, delay));
}

void
heal_alive(struct heal *h)
{
	struct env *e;
	int i;

	if (h->down_since == 0)
		return;
	h->down_since = 0;
	h->up_since = util_mono();
	heal_say(h, NULL);
	/* routes that waited for nginx go live; states are reported;
	 * instances that crashed while it was down start again now, their
	 * crashes forgiven */
	pthread_mutex_lock(&node->lock);
	node->router_dirty = 1;
	for (e = node->envs; e; e = e->next)
		for (i = 0; i < NUBO_INSTANCES_MAX; i++)
			if (e->inst[i].state == INST_BACKOFF) {
				e->inst[i].next_try = 0;
				e->inst[i].crashes = 0;
			}
	pthread_mutex_unlock(&node->lock);
	supervisor_wake();
}

void
heal_not_started(struct heal *h, const char *cause)
{
	heal_gone(h, "it did not start with the agent");
	heal_tried(h, cause);
}

int
heal_proc_is(pid_t pid, const char *comm)
{
	char path[64], name[64] = "";
	FILE *f;

	if (pid <= 0 || spawn_starttime(pid) == 0)
		return 0;
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fgets(name, sizeof name, f) == NULL)
		name[0] = '\0';
	fclose(f);
	return strncmp(name, comm, strlen(comm)) == 0;
}

pid_t
heal_pidfile(const char *path, const char *comm)
{
	char *text = util_read_file(path, 4096, NULL);
	long long pid = 0;

	if (text == NULL)
		return 0;
	text[strcspn(text, "\n")] = '\0';
	if (util_parse_int(text, 1, 1 << 22, &pid) == -1)
		pid = 0;
	free(text);
	return pid && heal_proc_is((pid_t)pid, comm) ? (pid_t)pid : 0;
}

int
heal_proc_in_dir(const char *dir, const char *comm, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	while (d && n < max && (de = readdir(d)) != NULL) {
		char path[64], cwd[PATH_MAX];
		long long pid;
		ssize_t len;

		if (util_parse_int(de->d_name, 1, 1 << 22, &pid) == -1 ||
		    (pid_t)pid == getpid())
			continue;
		snprintf(path, sizeof path, "/proc/%lld/cwd", pid);
		len = readlink(path, cwd, sizeof cwd - 1);
		if (len <= 0)
			continue;
		cwd[len] = '\0';
		if (strcmp(cwd, dir) == 0 && heal_proc_is((pid_t)pid, comm))
			out[n++] = (pid_t)pid;
	}
	if (d)
		closedir(d);
	return n;
}

static void *
heal_thread(void *arg)
{
	(void)arg;
	for (;;) {
		space_watch();
		pg_watch();
		router_watch();
		usleep(HEAL_PAUSE_MS * 1000);
	}
	return NULL;
}

void
heal_start(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, heal_thread, NULL) != 0)
		fatal("cannot start the watch of PostgreSQL and nginx");
	pthread_detach(t);
}
