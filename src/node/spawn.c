/* Starting app instances: one bubblewrap sandbox per instance
 * (sandbox.c), in its own session, as the environment's own OS user, in
 * its app folder, stdout/stderr appended to the environment's log, with
 * the environment variables of SPEC §2 and its cgroup limits. */
#include "node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "jsonx.h"
#include "relay.h"
#include "log.h"
#include "util.h"
#include "xmalloc.h"

/* A sanitizer build (make asan) builds the sample app with ASan too, whose
 * shadow memory reserves terabytes of address space: an address-space
 * limit would stop it at start. Such a build limits memory by cgroup only. */
#if defined(__SANITIZE_ADDRESS__)
#define SPAWN_LIMIT_AS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPAWN_LIMIT_AS 0
#endif
#endif
#ifndef SPAWN_LIMIT_AS
#define SPAWN_LIMIT_AS 1
#endif

unsigned long long
spawn_starttime(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	int fd, i;
	ssize_t n;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');	/* comm may hold spaces */
	if (p == NULL || p[1] == '\0' || p[2] == 'Z' || p[2] == 'X')
		return 0;
	/* field 3 is the state; the start time is field 22 */
	for (i = 3, p += 2; i < 22 && p; i++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (p)
		start = strtoull(p, NULL, 10);
	return start;
}

static int
port_used(int port)
{
	struct env *e;
	int i;

	for (e = node->envs; e; e = e->next)
		for (i = 0; i < NUBO_INSTANCES_MAX; i++)
			if (e->inst[i].port == port && e->inst[i].state !=
			    INST_NONE)
				return 1;
	return 0;
}

/* Caller holds the lock. */
int
spawn_pick_port(void)
{
	int span = node->port_hi - node->port_lo + 1, tries, port;
	int at = (int)randombytes_uniform((uint32_t)span);

	for (tries = 0; tries < span; tries++) {
		port = node->port_lo + (at + tries) % span;
		if (!port_used(port))
			return port;
	}
	return -1;
}

static void
envp_add(char ***envp, size_t *n, char *kv)
{
	*envp = xrealloc(*envp, (*n + 2) * sizeof **envp);
	(*envp)[(*n)++] = kv;
	(*envp)[*n] = NULL;
}

/* The environment of a sandboxed process (SPEC §2): its port,
 * database, files folder, names, and the settings' constants and custom
 * variables. NULL-terminated; caller frees each and the array. */
static char **
spawn_envp(struct env *e, const struct spawn_how *h)
{
	char **envp = NULL, *dburl = pg_env_app_url(e);
	size_t n = 0;
	const char *key;
	json_t *v, *custom, *dflt;

	envp_add(&envp, &n, xasprintf("PORT=%d", h->port));
	envp_add(&envp, &n, xasprintf("DATABASE_URL=%s", dburl ? dburl : ""));
	envp_add(&envp, &n, xasprintf("NUBO_FILES_DIR=%s/files", e->dir));
	envp_add(&envp, &n, xasprintf("NUBO_APP=%s", jsonx_str(e->spec, "app")
	    ? jsonx_str(e->spec, "app") : ""));
	envp_add(&envp, &n, xasprintf("NUBO_ENV=%s", env_name(e)));
	if (h->run_id)
		envp_add(&envp, &n, xasprintf("NUBO_RUN=%s", h->run_id));
	else
		envp_add(&envp, &n, xasprintf("NUBO_INSTANCE=%d", h->index));
	envp_add(&envp, &n, xstrdup("PATH=/usr/local/bin:/usr/bin:/bin"));
	envp_add(&envp, &n, xasprintf("HOME=%s/files", e->dir));
	envp_add(&envp, &n, xstrdup("TMPDIR=/tmp"));
	envp_add(&envp, &n, xstrdup("LANG=C.UTF-8"));
	/* the package's constant defaults, unless the settings set the
	 * constant (constants.c), then the settings' own */
	custom = json_object_get(e->spec, "env");
	dflt = constants_defaults(e);
	json_object_foreach(dflt, key, v)
		if (json_object_get(custom, key) == NULL)
			envp_add(&envp, &n, xasprintf("%s=%s", key,
			    json_string_value(v)));
	json_decref(dflt);
	json_object_foreach(custom, key, v)
		if (json_is_string(v))
			envp_add(&envp, &n, xasprintf("%s=%s", key,
			    json_string_value(v)));
	free(dburl);
	return envp;
}

/* Caller holds the lock. */
pid_t
spawn_sandboxed(struct env *e, const struct spawn_how *h, char **cause)
{
	long long mb = jsonx_int(e->spec, "memory_mb", 512);
	char **procs = NULL, **argv = NULL, **envp = NULL;
	struct rlimit as, nproc;
	int devnull = -1, pwfd = -1, grfd = -1, memory = 0;
	size_t n;
	pid_t pid = -1;

	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull == -1) {
		*cause = xasprintf("cannot open /dev/null: %s",
		    strerror(errno));
		goto out;
	}
	pwfd = sandbox_identity_fd(e, "/etc/passwd");
	grfd = sandbox_identity_fd(e, "/etc/group");
	if (pwfd == -1 || grfd == -1) {
		*cause = xasprintf("cannot prepare the sandbox's users: %s",
		    strerror(errno));
		goto out;
	}
	if (sandbox_work_make(e, h->index, cause) == -1)
		goto out;
	envp = spawn_envp(e, h);
	/* fds 3 (the router's socket, when there is one), 4, 5 */
	argv = sandbox_argv(e, h->index, h->port, h->cmd,
	    h->listen_fd == -1 ? -1 : 3, 4, 5, h->log_tag);
	procs = sandbox_cgroup(e->id, h->index, mb, &memory);
	if (!memory)
		env_log(e, "%s: no memory cgroup on this host; its limit is "
		    "on address space (RLIMIT_AS)%s", h->run_id ? "run" :
		    "instance", SPAWN_LIMIT_AS ? "" : ", which a sanitizer "
		    "build does not set");
	as.rlim_cur = as.rlim_max = (rlim_t)mb * 1024 * 1024;
	nproc.rlim_cur = nproc.rlim_max = (rlim_t)sandbox_nproc_max();
	pid = fork();
	if (pid == -1) {
		*cause = xasprintf("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		char pidtext[32];
		int fd, k, len;

		setsid();
		if (dup2(h->in_fd == -1 ? devnull : h->in_fd, 0) == -1 ||
		    dup2(h->out_fd, 1) == -1 || dup2(h->out_fd, 2) == -1 ||
		    (h->listen_fd != -1 && dup2(h->listen_fd, 3) == -1) ||
		    dup2(pwfd, 4) == -1 || dup2(grfd, 5) == -1) {
			dprintf(h->out_fd, "nubo: cannot hand the sandbox its "
			    "files (in %d, out %d, router %d, users %d %d): "
			    "%s\n", h->in_fd == -1 ? devnull : h->in_fd,
			    h->out_fd, h->listen_fd, pwfd, grfd,
			    strerror(errno));
			_exit(126);
		}
		close_range(6, ~0U, 0);
		len = snprintf(pidtext, sizeof pidtext, "%d\n", (int)getpid());
		for (k = 0; procs && procs[k]; k++)
			if ((fd = open(procs[k], O_WRONLY)) != -1) {
				if (write(fd, pidtext, (size_t)len) < 0)
					dprintf(2, "nubo: cannot join %s\n",
					    procs[k]);
				close(fd);
			}
		if (!memory && SPAWN_LIMIT_AS)
			setrlimit(RLIMIT_AS, &as);
		if (e->uid != (uid_t)-1) {
			setrlimit(RLIMIT_NPROC, &nproc);
			if (setgroups(0, NULL) == -1 ||
			    setgid((gid_t)e->uid) == -1 ||
			    setuid(e->uid) == -1) {
				dprintf(2, "nubo: cannot switch to the "
				    "environment's user %u\n",
				    (unsigned)e->uid);
				_exit(126);
			}
		}
		/* after the switch of user, which clears it */
		if (h->die_with_node)
			prctl(PR_SET_PDEATHSIG, SIGKILL);
		umask(027);
		/* bubblewrap's outer process ignores SIGTERM, so a stop
		 * reaches nubo-init (which forwards it to the app) while
		 * the outer process stays to keep the sandbox alive */
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTERM, SIG_IGN);
		execve(argv[0], argv, envp);
		dprintf(2, "nubo: cannot run %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
out:
	if (devnull != -1)
		close(devnull);
	if (pwfd != -1)
		close(pwfd);
	if (grfd != -1)
		close(grfd);
	for (n = 0; envp && envp[n]; n++)
		free(envp[n]);
	free(envp);
	for (n = 0; procs && procs[n]; n++)
		free(procs[n]);
	free(procs);
	sandbox_argv_free(argv);
	return pid;
}

/* Caller holds the lock. */
pid_t
spawn_instance(struct env *e, int i, char **cause)
{
	struct instance *in = &e->inst[i];
	char *start = xasprintf("%s/app/%s", e->dir, e->start);
	char *logpath = env_log_path(e), *sock = NULL;
	char *cmd[] = { start, NULL }, tag[32];
	struct spawn_how h = { .index = i + 1, .port = in->port, .cmd = cmd,
		.log_tag = tag, .listen_fd = -1, .in_fd = -1, .out_fd = -1 };
	pid_t pid = -1;

	snprintf(tag, sizeof tag, "instance %d", i + 1);
	h.out_fd = open(logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0640);
	if (h.out_fd == -1) {
		*cause = xasprintf("cannot open %s: %s", logpath,
		    strerror(errno));
		goto out;
	}
	/* the router's way in: made here, root's, for nginx's workers */
	sock = sandbox_socket_path(e->id, i + 1);
	h.listen_fd = relay_listen_unix(sock, 0660);
	if (h.listen_fd == -1 || (node->uid != (uid_t)-1 && chown(sock, 0,
	    sandbox_router_group()) == -1)) {
		*cause = xasprintf("cannot listen on %s: %s", sock,
		    strerror(errno));
		goto out;
	}
	pid = spawn_sandboxed(e, &h, cause);
	if (pid == -1)
		goto out;
	in->pid = pid;
	in->owned = 1;
	in->starttime = spawn_starttime(pid);
	in->oom_kills = sandbox_oom_kills(e->id, i + 1);
out:
	if (h.out_fd != -1)
		close(h.out_fd);
	if (h.listen_fd != -1)
		close(h.listen_fd);
	free(sock);
	free(logpath);
	free(start);
	return pid;
}
