/* Starting app instances: one bubblewrap sandbox per instance
 * (sandbox.c), in its own session, as the environment's own OS user, in
 * its app folder, stdout/stderr appended to the environment's log, with
 * the environment variables of SPEC §2 and its cgroup limits. On a node
 * started with --egress, each sandbox's network namespace gets its way
 * out through a slirp4netns of its own (egress_attach()). */
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
#include <linux/nsfs.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
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

/* The fds of bubblewrap's child (3-5: router socket, passwd, group) */
#define SPAWN_FD_INFO	6	/* --info-fd */
#define SPAWN_FD_BLOCK	7	/* --block-fd */
#define SPAWN_FD_HOLD	8	/* nubo-init's --egress-fd */
#define SPAWN_FD_RESOLV	9	/* /etc/resolv.conf */
#define SPAWN_INFO_WAIT_MS	10000	/* bubblewrap's word on its child */

/* A sandbox's way out, as spawn_sandboxed() prepares it: pipes made
 * before bubblewrap starts; -1 where not (yet) open. */
struct egress {
	int	info[2];	/* bubblewrap writes its child's pid */
	int	ready[2];	/* slirp4netns → bubblewrap's --block-fd */
	int	hold[2];	/* slirp4netns's --exit-fd ← nubo-init */
	int	resolv;		/* the sandbox's resolv.conf */
};

static void
fd_close(int *fd)
{
	if (*fd != -1)
		close(*fd);
	*fd = -1;
}

static void
egress_close(struct egress *g)
{
	int i;

	for (i = 0; i < 2; i++) {
		fd_close(&g->info[i]);
		fd_close(&g->ready[i]);
		fd_close(&g->hold[i]);
	}
	fd_close(&g->resolv);
}

static int
egress_open(struct egress *g, char **cause)
{
	int servers = 0;

	if (pipe2(g->info, O_CLOEXEC) == -1 || pipe2(g->ready, O_CLOEXEC) ==
	    -1 || pipe2(g->hold, O_CLOEXEC) == -1) {
		*cause = xasprintf("cannot prepare the sandbox's network: %s",
		    strerror(errno));
		return -1;
	}
	g->resolv = sandbox_resolv_fd(&servers);
	if (g->resolv == -1) {
		*cause = xasprintf("cannot prepare the sandbox's resolv.conf: "
		    "%s", strerror(errno));
		return -1;
	}
	return 0;
}

/* The pid of bubblewrap's child (in the host's PID namespace), from its
 * --info-fd; -1 when bubblewrap said nothing in time. */
static pid_t
egress_child_pid(int fd)
{
	char buf[4096];
	size_t len = 0;
	double until = util_mono() + SPAWN_INFO_WAIT_MS / 1000.0;
	json_t *info;
	pid_t pid = -1;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = (int)((until - util_mono()) * 1000);
		ssize_t n;

		if (left <= 0 || poll(&p, 1, left) < 1)
			return -1;
		n = read(fd, buf + len, sizeof buf - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (len += (size_t)n) == sizeof buf - 1)
			break;
	}
	buf[len] = '\0';
	info = json_loads(buf, 0, NULL);
	if (json_integer_value(json_object_get(info, "child-pid")) > 1)
		pid = (pid_t)json_integer_value(json_object_get(info,
		    "child-pid"));
	json_decref(info);
	return pid;
}

/* The helper's word on what failed, in the log it was given. */
static void __attribute__((noreturn))
egress_fail(int logfd, const char *stamp, const char *what)
{
	dprintf(logfd, "%s [nubo] the sandbox's network: %s: %s\n", stamp,
	    what, strerror(errno));
	_exit(126);
}

/* In the forked helper, never returns: as the environment's user, in a
 * mount namespace of its own where /dev/net/tun is its own (a device
 * node only it may open: Debian makes the host's 0666, minimal hosts
 * 0600) and the node's folders are hidden, run slirp4netns for the
 * network namespace of bubblewrap's child. What fails before slirp4netns
 * runs is said in logfd; slirp4netns's own chatter goes nowhere. */
static void
egress_helper(struct env *e, struct egress *g, int userns, int netns,
    char **procs, int logfd)
{
	static const char slirp[] = NODE_SLIRP4NETNS;
	char *argv[] = { (char *)slirp, "--configure", "--mtu=65520",
		"--disable-host-loopback", "--disable-dns", "--enable-seccomp",
		"--exit-fd=3", "--ready-fd=4", "--userns-path=/proc/self/fd/5",
		"--netns-type=path", "/proc/self/fd/6", "tap0", NULL };
	char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	char pidtext[32], stamp[32];
	int devnull = open("/dev/null", O_RDWR), fd, k, len;
	uid_t uid = e->uid;

	util_time_iso(time(NULL), stamp, sizeof stamp);
	setsid();
	/* counted and limited with the instance it serves */
	len = snprintf(pidtext, sizeof pidtext, "%d\n", (int)getpid());
	for (k = 0; procs && procs[k]; k++)
		if ((fd = open(procs[k], O_WRONLY)) != -1) {
			if (write(fd, pidtext, (size_t)len) < 0)
				egress_fail(logfd, stamp, "cannot join its "
				    "cgroup");
			close(fd);
		}
	if (node->uid != (uid_t)-1) {
		struct stat st;

		if (unshare(CLONE_NEWNS) == -1 || sandbox_hide_host() == -1)
			egress_fail(logfd, stamp, "cannot hide the host's "
			    "folders");
		if (stat("/dev/net", &st) == 0 && S_ISDIR(st.st_mode) &&
		    (mount("tmpfs", "/dev/net", "tmpfs", MS_NOSUID | MS_NOEXEC,
		    "size=4k,mode=0755") == -1 || mknod("/dev/net/tun",
		    S_IFCHR | 0600, makedev(10, 200)) == -1 ||
		    chown("/dev/net/tun", uid, (gid_t)uid) == -1))
			egress_fail(logfd, stamp, "cannot make /dev/net/tun");
		if (setgroups(0, NULL) == -1 || setgid((gid_t)uid) == -1 ||
		    setuid(uid) == -1)
			egress_fail(logfd, stamp, "cannot switch to the "
			    "environment's user");
	}
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	/* above every target first, so that no dup2 below clobbers one */
	g->hold[0] = fcntl(g->hold[0], F_DUPFD, 16);
	g->ready[1] = fcntl(g->ready[1], F_DUPFD, 16);
	userns = fcntl(userns, F_DUPFD, 16);
	netns = fcntl(netns, F_DUPFD, 16);
	if (devnull == -1 || g->hold[0] == -1 || g->ready[1] == -1 ||
	    userns == -1 || netns == -1 || dup2(devnull, 0) == -1 ||
	    dup2(devnull, 1) == -1 || dup2(g->hold[0], 3) == -1 ||
	    dup2(g->ready[1], 4) == -1 || dup2(userns, 5) == -1 ||
	    dup2(netns, 6) == -1)
		egress_fail(logfd, stamp, "cannot hand slirp4netns its files");
	if (access(slirp, X_OK) == -1)
		egress_fail(logfd, stamp, slirp);
	/* not the node's child: nobody has to reap it; it ends when the
	 * sandbox does (--exit-fd: nubo-init and bubblewrap hold the
	 * other end) */
	if (fork() != 0)
		_exit(0);
	dup2(devnull, 2);
	close_range(7, ~0U, 0);
	execve(argv[0], argv, envp);
	_exit(127);
}

/* Give the sandbox whose bubblewrap is pid its way out: slirp4netns,
 * attached to the network namespace of bubblewrap's child. Whatever
 * fails, our ends of the pipes close here: bubblewrap then goes on, and
 * nubo-init, seeing no helper, ends the instance with a line in its log.
 * Caller holds the lock. */
static void
egress_attach(struct env *e, struct egress *g, char **procs, int logfd)
{
	char path[64];
	pid_t child, helper;
	int netns = -1, userns = -1;
	const char *why = NULL;

	fd_close(&g->info[1]);
	fd_close(&g->ready[0]);
	fd_close(&g->hold[1]);
	fd_close(&g->resolv);
	child = egress_child_pid(g->info[0]);
	if (child == -1) {
		why = "bubblewrap did not say its child's pid";
		goto out;
	}
	/* the namespace's owner is bubblewrap's first user namespace (the
	 * child's own may be a nested one, --disable-userns) */
	snprintf(path, sizeof path, "/proc/%d/ns/net", (int)child);
	netns = open(path, O_RDONLY | O_CLOEXEC);
	if (netns == -1 || (userns = ioctl(netns, NS_GET_USERNS)) == -1) {
		why = "cannot open its network namespace";
		goto out;
	}
	fcntl(userns, F_SETFD, FD_CLOEXEC);
	helper = fork();
	if (helper == 0)
		egress_helper(e, g, userns, netns, procs, logfd);
	if (helper == -1)
		why = "cannot fork";
	else
		waitpid(helper, NULL, 0);
out:
	if (why)
		env_log(e, "the sandbox's network: %s: %s", why,
		    strerror(errno));
	if (netns != -1)
		close(netns);
	if (userns != -1)
		close(userns);
	egress_close(g);
}

int
spawn_proc_read(pid_t pid, const char *what, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	if (pid <= 0 || len == 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

unsigned long long
spawn_starttime(pid_t pid)
{
	char buf[1024], *p;
	unsigned long long start = 0;
	int i;

	if (spawn_proc_read(pid, "stat", buf, sizeof buf) == -1)
		return 0;
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
	struct egress g = { { -1, -1 }, { -1, -1 }, { -1, -1 }, -1 };
	struct sandbox_net net = { SPAWN_FD_INFO, SPAWN_FD_BLOCK,
		SPAWN_FD_HOLD, SPAWN_FD_RESOLV };
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
	if (node->egress && egress_open(&g, cause) == -1)
		goto out;
	if (sandbox_work_make(e, h->index, cause) == -1)
		goto out;
	envp = spawn_envp(e, h);
	/* fds 3 (the router's socket, when there is one), 4, 5; 6-9 */
	argv = sandbox_argv(e, h->index, h->port, h->cmd,
	    h->listen_fd == -1 ? -1 : 3, 4, 5, h->log_tag,
	    node->egress ? &net : NULL);
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
		/* the network's fds above every target first, so that no
		 * dup2 below clobbers one */
		if (node->egress && ((g.info[1] = fcntl(g.info[1], F_DUPFD,
		    16)) == -1 || (g.ready[0] = fcntl(g.ready[0], F_DUPFD,
		    16)) == -1 || (g.hold[1] = fcntl(g.hold[1], F_DUPFD,
		    16)) == -1 || (g.resolv = fcntl(g.resolv, F_DUPFD, 16)) ==
		    -1)) {
			dprintf(h->out_fd, "nubo: cannot hand the sandbox its "
			    "network: %s\n", strerror(errno));
			_exit(126);
		}
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
		if (node->egress && (dup2(g.info[1], SPAWN_FD_INFO) == -1 ||
		    dup2(g.ready[0], SPAWN_FD_BLOCK) == -1 ||
		    dup2(g.hold[1], SPAWN_FD_HOLD) == -1 ||
		    dup2(g.resolv, SPAWN_FD_RESOLV) == -1)) {
			dprintf(h->out_fd, "nubo: cannot hand the sandbox its "
			    "network: %s\n", strerror(errno));
			_exit(126);
		}
		close_range(node->egress ? SPAWN_FD_RESOLV + 1 : 6, ~0U, 0);
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
	if (node->egress)
		egress_attach(e, &g, procs, h->out_fd);
out:
	egress_close(&g);
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
