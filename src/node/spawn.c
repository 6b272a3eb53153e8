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

/* Caller holds the lock. */
pid_t
spawn_instance(struct env *e, int i, char **cause)
{
	struct instance *in = &e->inst[i];
	char *start = xasprintf("%s/app/%s", e->dir, e->start);
	char *logpath = env_log_path(e), **procs = NULL, **argv = NULL;
	char **envp = NULL, *dburl = NULL, *sock = NULL;
	long long mb = jsonx_int(e->spec, "memory_mb", 512);
	size_t n = 0;
	const char *key;
	json_t *v, *custom;
	struct rlimit as, nproc;
	int logfd = -1, devnull = -1, lfd = -1, pwfd = -1, grfd = -1;
	int memory = 0;
	pid_t pid = -1;

	logfd = open(logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd == -1 || devnull == -1) {
		*cause = xasprintf("cannot open %s: %s", logpath,
		    strerror(errno));
		goto out;
	}
	/* the router's way in: made here, root's, for nginx's workers */
	sock = sandbox_socket_path(e->id, i + 1);
	lfd = relay_listen_unix(sock, 0660);
	if (lfd == -1 || (node->uid != (uid_t)-1 && chown(sock, 0,
	    sandbox_router_group()) == -1)) {
		*cause = xasprintf("cannot listen on %s: %s", sock,
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
	dburl = pg_env_app_url(e);
	envp_add(&envp, &n, xasprintf("PORT=%d", in->port));
	envp_add(&envp, &n, xasprintf("DATABASE_URL=%s", dburl ? dburl : ""));
	envp_add(&envp, &n, xasprintf("NUBO_FILES_DIR=%s/files", e->dir));
	envp_add(&envp, &n, xasprintf("NUBO_APP=%s", jsonx_str(e->spec, "app")
	    ? jsonx_str(e->spec, "app") : ""));
	envp_add(&envp, &n, xasprintf("NUBO_ENV=%s", env_name(e)));
	envp_add(&envp, &n, xasprintf("NUBO_INSTANCE=%d", i + 1));
	envp_add(&envp, &n, xstrdup("PATH=/usr/local/bin:/usr/bin:/bin"));
	envp_add(&envp, &n, xasprintf("HOME=%s/files", e->dir));
	envp_add(&envp, &n, xstrdup("TMPDIR=/tmp"));
	envp_add(&envp, &n, xstrdup("LANG=C.UTF-8"));
	/* constants and custom variables from the spec (settings) */
	custom = json_object_get(e->spec, "env");
	{
		/* the package's constant defaults, unless the settings set
		 * the constant (constants.c) */
		json_t *dflt = constants_defaults(e);

		json_object_foreach(dflt, key, v)
			if (json_object_get(custom, key) == NULL)
				envp_add(&envp, &n, xasprintf("%s=%s", key,
				    json_string_value(v)));
		json_decref(dflt);
	}
	json_object_foreach(custom, key, v)
		if (json_is_string(v))
			envp_add(&envp, &n, xasprintf("%s=%s", key,
			    json_string_value(v)));
	if (sandbox_work_make(e, i + 1, cause) == -1)
		goto out;
	/* fds 3, 4, 5 in the child */
	argv = sandbox_argv(e, i + 1, in->port, start, 3, 4, 5);
	procs = sandbox_cgroup(e->id, i + 1, mb, &memory);
	if (!memory)
		env_log(e, "instance %d: no memory cgroup on this host; its "
		    "limit is on address space (RLIMIT_AS)%s", i + 1,
		    SPAWN_LIMIT_AS ? "" : ", which a sanitizer build does "
		    "not set");
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
		dup2(devnull, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		if (dup2(lfd, 3) == -1 || dup2(pwfd, 4) == -1 ||
		    dup2(grfd, 5) == -1)
			_exit(126);
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
	in->pid = pid;
	in->owned = 1;
	in->starttime = spawn_starttime(pid);
	in->oom_kills = sandbox_oom_kills(e->id, i + 1);
out:
	if (logfd != -1)
		close(logfd);
	if (devnull != -1)
		close(devnull);
	if (lfd != -1)
		close(lfd);
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
	free(dburl);
	free(sock);
	free(logpath);
	free(start);
	return pid;
}
