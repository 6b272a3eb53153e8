/* Starting app instances: a process per instance, in its own session, as
 * the node's OS user, in the environment's app folder, stdout/stderr
 * appended to the environment's log, with the environment variables of
 * SPEC §2 and a memory limit (cgroup v2 when writable, else RLIMIT_AS). */
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
#include "log.h"
#include "util.h"
#include "xmalloc.h"

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

static int
port_bindable(int port)
{
	struct sockaddr_in sa;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, ok;

	if (s == -1)
		return 0;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_ANY);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	ok = bind(s, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(s);
	return ok;
}

/* Caller holds the lock. */
int
spawn_pick_port(void)
{
	int span = node->port_hi - node->port_lo + 1, tries, port;
	int at = (int)randombytes_uniform((uint32_t)span);

	for (tries = 0; tries < span; tries++) {
		port = node->port_lo + (at + tries) % span;
		if (!port_used(port) && port_bindable(port))
			return port;
	}
	return -1;
}

char *
spawn_cgroup_dir(long long id, int i)
{
	/* FNV-1a of the data folder: a short stable name per node */
	unsigned long long h = 14695981039346656037ULL;
	const char *p;

	for (p = node->data_dir; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return xasprintf("/sys/fs/cgroup/nubo/node-%016llx/env-%lld-%d", h,
	    id, i);
}

/* A memory limit by cgroup v2 when this host lets us; the cgroup's
 * cgroup.procs path, or NULL (then RLIMIT_AS is used). */
static char *
spawn_cgroup(struct env *e, int i, long long mb)
{
	static const char root[] = "/sys/fs/cgroup";
	char *ctl = xasprintf("%s/cgroup.controllers", root);
	char *text = util_read_file(ctl, 4096, NULL), *dir = NULL, *p = NULL;
	char *limit = NULL, *val = NULL;
	int fd;

	free(ctl);
	if (text == NULL || strstr(text, "memory") == NULL)
		goto out;
	dir = spawn_cgroup_dir(e->id, i + 1);
	if (util_mkdir_p(dir, 0755) == -1)
		goto out;
	limit = xasprintf("%s/memory.max", dir);
	val = xasprintf("%lld\n", mb * 1024 * 1024);
	fd = open(limit, O_WRONLY | O_CLOEXEC);
	if (fd == -1 || write(fd, val, strlen(val)) < 0) {
		if (fd != -1)
			close(fd);
		goto out;
	}
	close(fd);
	p = xasprintf("%s/cgroup.procs", dir);
out:
	free(text);
	free(dir);
	free(limit);
	free(val);
	return p;
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
	char *appdir = xasprintf("%s/app", e->dir);
	char *start = xasprintf("%s/%s", appdir, e->start);
	char *logpath = env_log_path(e), *procs = NULL;
	char **envp = NULL, *dburl = NULL;
	long long mb = jsonx_int(e->spec, "memory_mb", 512);
	size_t n = 0;
	const char *key;
	json_t *v, *custom;
	struct rlimit rl;
	int logfd = -1, devnull = -1;
	pid_t pid = -1;
	char *argv[2];

	logfd = open(logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (logfd == -1 || devnull == -1) {
		*cause = xasprintf("cannot open %s: %s", logpath,
		    strerror(errno));
		goto out;
	}
	node_chown(logpath);
	dburl = pg_env_url(e);
	envp_add(&envp, &n, xasprintf("PORT=%d", in->port));
	envp_add(&envp, &n, xasprintf("DATABASE_URL=%s", dburl ? dburl : ""));
	envp_add(&envp, &n, xasprintf("NUBO_FILES_DIR=%s/files", e->dir));
	envp_add(&envp, &n, xasprintf("NUBO_APP=%s", jsonx_str(e->spec, "app")
	    ? jsonx_str(e->spec, "app") : ""));
	envp_add(&envp, &n, xasprintf("NUBO_ENV=%s", env_name(e)));
	envp_add(&envp, &n, xasprintf("NUBO_INSTANCE=%d", i + 1));
	envp_add(&envp, &n, xstrdup("PATH=/usr/local/bin:/usr/bin:/bin"));
	envp_add(&envp, &n, xasprintf("HOME=%s/files", e->dir));
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
	argv[0] = start;
	argv[1] = NULL;
	procs = spawn_cgroup(e, i, mb);
	rl.rlim_cur = rl.rlim_max = (rlim_t)mb * 1024 * 1024;
	pid = fork();
	if (pid == -1) {
		*cause = xasprintf("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		char pidtext[32];
		int fd;

		setsid();
		dup2(devnull, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		close_range(3, ~0U, 0);
		if (procs && (fd = open(procs, O_WRONLY)) != -1) {
			int len = snprintf(pidtext, sizeof pidtext, "%d\n",
			    (int)getpid());

			if (write(fd, pidtext, (size_t)len) < 0)
				setrlimit(RLIMIT_AS, &rl);
			close(fd);
		} else {
			setrlimit(RLIMIT_AS, &rl);
		}
		if (chdir(appdir) == -1)
			_exit(126);
		if (node->uid != (uid_t)-1 && (setgroups(0, NULL) == -1 ||
		    setgid(node->gid) == -1 || setuid(node->uid) == -1)) {
			dprintf(2, "nubo: cannot switch to the app user\n");
			_exit(126);
		}
		signal(SIGPIPE, SIG_DFL);
		execve(start, argv, envp);
		dprintf(2, "nubo: cannot run %s: %s\n", start, strerror(errno));
		_exit(127);
	}
	in->pid = pid;
	in->owned = 1;
	in->starttime = spawn_starttime(pid);
out:
	if (logfd != -1)
		close(logfd);
	if (devnull != -1)
		close(devnull);
	for (n = 0; envp && envp[n]; n++)
		free(envp[n]);
	free(envp);
	free(dburl);
	free(procs);
	free(logpath);
	free(start);
	free(appdir);
	return pid;
}
