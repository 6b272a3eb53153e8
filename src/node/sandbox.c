/* How an instance is confined (ARCHITECTURE, "Security model").
 *
 * Every environment has an OS user of its own, a uid taken from the
 * node's range (--uids, default 700000-799999) and claimed host-wide by a
 * lock file /run/nubo/uids/<uid> naming the node's data folder and the
 * environment, as systemd does for its dynamic users; two nodes on one
 * host never share a uid. The environment's files folder is that user's,
 * nothing else of the node is.
 *
 * Every instance runs in a bubblewrap sandbox started as that user: new
 * user, PID, mount, network, IPC, UTS and cgroup namespaces; the host's
 * root read-only, a private /tmp, /run, /home and /root, the node's data
 * folder replaced by an empty one holding only the environment's app
 * (read-only) and files (writable) folders; no nested user namespaces;
 * no capabilities. Process 1 inside is nubo-init (src/sandbox/), which
 * runs the app and bridges the namespace's loopback to two unix sockets:
 * the instance's router socket DIR/run/i-<env>-<n>.sock (the node makes
 * it, root:<router user> 0660, and passes it in; nginx is its only
 * client) and the environment's database socket; on a node started with
 * --egress, slirp4netns (spawn.c) adds a way out that never leads to the
 * host's loopback. Limits: a cgroup per
 * instance (v2, or v1's memory, pids and cpu hierarchies) for resident
 * memory, processes and CPU; RLIMIT_NPROC per environment user as well. */
#include "node.h"

#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "log.h"
#include "relay.h"
#include "util.h"
#include "xmalloc.h"

#define SANDBOX_UID_LOCKS	"/run/nubo/uids"
#define SANDBOX_BWRAP		"/usr/bin/bwrap"
#define SANDBOX_DB_PORT		5432	/* DATABASE_URL's port inside */
#define SANDBOX_PIDS_MAX	512	/* processes per instance */
#define SANDBOX_NPROC_MAX	2048	/* processes per environment user */

static char *sandbox_init_path;		/* nubo-init, next to nubod */
static gid_t sandbox_router_gid = (gid_t)-1;

/* The lock file's text: who holds the uid. */
static char *
uid_owner(long long env_id)
{
	return xasprintf("%s %lld\n", node->data_dir, env_id);
}

static char *
uid_lock_path(uid_t uid)
{
	return xasprintf("%s/%u", SANDBOX_UID_LOCKS, (unsigned)uid);
}

/* Claim uid for env_id: 1 when it is ours now (or was), 0 when another
 * node or environment holds it. A lock whose data folder is gone was
 * left by a node that no longer exists and is taken over. */
static int
uid_claim(uid_t uid, long long env_id)
{
	char *path = uid_lock_path(uid), *want = uid_owner(env_id);
	char *have = NULL;
	int fd, rc = 0;

	if (getpwuid(uid) != NULL || getgrgid((gid_t)uid) != NULL)
		goto out;	/* a real user or group of this host */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd == -1 && errno == EEXIST) {
		have = util_read_file(path, 4096, NULL);
		if (have && strcmp(have, want) == 0) {
			rc = 1;
			goto out;
		}
		if (have) {
			char *sp = strrchr(have, ' ');
			struct stat st;

			if (sp)
				*sp = '\0';
			if (sp && have[0] == '/' && stat(have, &st) == -1 &&
			    errno == ENOENT) {
				unlink(path);
				fd = open(path, O_WRONLY | O_CREAT | O_EXCL |
				    O_CLOEXEC, 0644);
			}
		}
	}
	if (fd == -1)
		goto out;
	rc = write(fd, want, strlen(want)) == (ssize_t)strlen(want) &&
	    fsync(fd) == 0;
	close(fd);
	if (!rc)
		unlink(path);
out:
	free(have);
	free(path);
	free(want);
	return rc;
}

void
sandbox_uid_release(uid_t uid, long long env_id)
{
	char *path, *want, *have;

	if (uid == (uid_t)-1)
		return;
	path = uid_lock_path(uid);
	want = uid_owner(env_id);
	have = util_read_file(path, 4096, NULL);
	if (have && strcmp(have, want) == 0)
		unlink(path);
	free(have);
	free(want);
	free(path);
}

/* chown -R below path, not following links. */
static void
chown_tree(const char *path, uid_t uid, gid_t gid)
{
	struct stat st;
	DIR *d;
	struct dirent *de;

	if (lstat(path, &st) == -1)
		return;
	if (lchown(path, uid, gid) == -1)
		log_warn("cannot chown %s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode) || (d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char *sub;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		sub = xasprintf("%s/%s", path, de->d_name);
		chown_tree(sub, uid, gid);
		free(sub);
	}
	closedir(d);
}

int
sandbox_env_user(struct env *e)
{
	uid_t uid;
	int tries;
	char *files;

	if (node->uid == (uid_t)-1)
		return 0;	/* not root: every environment runs as us */
	if (e->uid != (uid_t)-1 && uid_claim(e->uid, e->id))
		return 0;
	for (tries = 0; tries < 1000; tries++) {
		uid = node->uid_lo + (uid_t)randombytes_uniform(
		    (uint32_t)(node->uid_hi - node->uid_lo + 1));
		if (uid_claim(uid, e->id))
			break;
	}
	if (tries == 1000)
		return error("environment %lld: no free uid in %u-%u", e->id,
		    (unsigned)node->uid_lo, (unsigned)node->uid_hi);
	if (e->uid != (uid_t)-1)
		log_warn("environment %lld: uid %u is taken by another node; "
		    "moving to %u", e->id, (unsigned)e->uid, (unsigned)uid);
	e->uid = uid;
	files = xasprintf("%s/files", e->dir);
	chown_tree(files, uid, (gid_t)uid);
	free(files);
	env_save(e);
	return 0;
}

void
env_chown(struct env *e, const char *path)
{
	if (e->uid != (uid_t)-1 && lchown(path, e->uid, (gid_t)e->uid) == -1)
		log_warn("cannot chown %s: %s", path, strerror(errno));
}

char *
sandbox_socket_path(long long env_id, int index)
{
	return xasprintf("%s/run/i-%lld-%d.sock", node->data_dir, env_id,
	    index);
}

void
sandbox_curl_instance(void *curl, long long env_id, int index)
{
	char *path = sandbox_socket_path(env_id, index);

	curl_easy_setopt((CURL *)curl, CURLOPT_UNIX_SOCKET_PATH, path);
	free(path);
}

int
sandbox_setup(void)
{
	char exe[PATH_MAX], *slash, *run;
	ssize_t n;
	struct passwd *pw;

	if (access(SANDBOX_BWRAP, X_OK) == -1)
		return error("%s is missing: instances run in bubblewrap "
		    "sandboxes (Debian package bubblewrap)", SANDBOX_BWRAP);
	if (node->egress && access(NODE_SLIRP4NETNS, X_OK) == -1)
		return error("%s is missing: --egress gives sandboxes their "
		    "way out through it (Debian package slirp4netns)",
		    NODE_SLIRP4NETNS);
	if (node->egress) {
		int servers = 0, fd = sandbox_resolv_fd(&servers);

		if (fd != -1)
			close(fd);
		if (servers == 0)
			log_warn("egress: the host names no resolver off its "
			    "loopback (/etc/resolv.conf, systemd-resolved's "
			    "upstream): instances get no DNS");
	}
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return error("cannot find nubod's own path");
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	*slash = '\0';
	sandbox_init_path = xasprintf("%s/nubo-init", exe);
	if (access(sandbox_init_path, X_OK) == -1)
		return error("%s is missing (built and installed next to "
		    "nubod)", sandbox_init_path);
	/* root's; nginx's workers and (with --pg over TCP) the sandboxes
	 * pass through it to their sockets */
	run = xasprintf("%s/run", node->data_dir);
	if (util_mkdir_p(run, 0711) == -1) {
		error("cannot create %s: %s", run, strerror(errno));
		free(run);
		return -1;
	}
	chmod(run, 0711);
	if (node->uid != (uid_t)-1) {
		pw = getpwuid(node->uid);
		sandbox_router_gid = pw ? pw->pw_gid : node->gid;
		if (chown(run, 0, 0) == -1)
			log_warn("cannot chown %s: %s", run, strerror(errno));
		if (util_mkdir_p(SANDBOX_UID_LOCKS, 0755) == -1) {
			error("cannot create %s: %s", SANDBOX_UID_LOCKS,
			    strerror(errno));
			free(run);
			return -1;
		}
	} else {
		log_warn("not running as root: every environment runs as "
		    "this user, in sandboxes that separate processes, files "
		    "and networks but not users");
	}
	free(run);
	return 0;
}

/* ---- cgroups ---- */

/* v1 hierarchies nubo uses, and v2's possible mount points. */
static const char *const cgroup_v1[] = { "memory", "pids", "cpu", NULL };
static const char *const cgroup_v2_mounts[] = { "/sys/fs/cgroup",
	"/sys/fs/cgroup/unified", NULL };

static int
write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc;

	if (fd == -1)
		return -1;
	rc = write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -1;
	close(fd);
	return rc;
}

static int
cgroup_set(const char *dir, const char *file, const char *value)
{
	char *path = xasprintf("%s/%s", dir, file);
	int rc = write_text(path, value);

	free(path);
	return rc;
}

/* The v2 hierarchy that has the memory controller, or NULL. */
static const char *
cgroup_v2_root(void)
{
	int i;

	for (i = 0; cgroup_v2_mounts[i]; i++) {
		char *probe = xasprintf("%s/cgroup.controllers",
		    cgroup_v2_mounts[i]);
		char *text = util_read_file(probe, 4096, NULL);
		int ok = text && strstr(text, "memory") != NULL;

		free(text);
		free(probe);
		if (ok)
			return cgroup_v2_mounts[i];
	}
	return NULL;
}

/* nubo/node-<hash of the data folder>/env-<id>-<n>: two nodes on one
 * host never share a cgroup. */
static char *
cgroup_rel(long long id, int index)
{
	unsigned long long h = 14695981039346656037ULL;
	const char *p;

	for (p = node->data_dir; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return xasprintf("nubo/node-%016llx/env-%lld-%d", h, id, index);
}

/* v2: make root/rel, enabling the controllers at every level above. */
static char *
cgroup_v2_make(const char *root, const char *rel)
{
	char *path = xstrdup(root), *copy = xstrdup(rel), *part, *save = NULL;

	for (part = strtok_r(copy, "/", &save); part;
	    part = strtok_r(NULL, "/", &save)) {
		char *next;

		cgroup_set(path, "cgroup.subtree_control", "+memory +pids +cpu");
		next = xasprintf("%s/%s", path, part);
		free(path);
		path = next;
		if (mkdir(path, 0755) == -1 && errno != EEXIST) {
			free(path);
			path = NULL;
			break;
		}
	}
	free(copy);
	return path;
}

char **
sandbox_cgroup(long long id, int index, long long memory_mb, int *memory)
{
	char **procs = xcalloc(4, sizeof *procs);
	char *rel = cgroup_rel(id, index), *mem, *pids, *dir;
	const char *v2 = cgroup_v2_root();
	int n = 0, i;

	*memory = 0;
	mem = xasprintf("%lld", memory_mb * 1024 * 1024);
	pids = xasprintf("%d", SANDBOX_PIDS_MAX);
	if (v2) {
		dir = cgroup_v2_make(v2, rel);
		if (dir && cgroup_set(dir, "memory.max", mem) == 0) {
			cgroup_set(dir, "memory.swap.max", "0");
			cgroup_set(dir, "pids.max", pids);
			cgroup_set(dir, "cpu.max", "100000 100000");
			*memory = 1;
			procs[n++] = xasprintf("%s/cgroup.procs", dir);
		}
		free(dir);
		goto out;
	}
	for (i = 0; cgroup_v1[i]; i++) {
		int ok;

		dir = xasprintf("/sys/fs/cgroup/%s/%s", cgroup_v1[i], rel);
		if (util_mkdir_p(dir, 0755) == -1) {
			free(dir);
			continue;
		}
		if (strcmp(cgroup_v1[i], "memory") == 0) {
			/* memory + swap, where swap is accounted, equal to
			 * memory: no swap. Either may have to move first. */
			cgroup_set(dir, "memory.memsw.limit_in_bytes", mem);
			ok = cgroup_set(dir, "memory.limit_in_bytes", mem) == 0;
			cgroup_set(dir, "memory.memsw.limit_in_bytes", mem);
			*memory = ok;
		} else if (strcmp(cgroup_v1[i], "pids") == 0) {
			ok = cgroup_set(dir, "pids.max", pids) == 0;
		} else {
			ok = cgroup_set(dir, "cpu.cfs_period_us", "100000") ==
			    0 && cgroup_set(dir, "cpu.cfs_quota_us", "100000")
			    == 0;
		}
		if (ok)
			procs[n++] = xasprintf("%s/cgroup.procs", dir);
		free(dir);
	}
out:
	free(mem);
	free(pids);
	free(rel);
	return procs;
}

long long
sandbox_oom_kills(long long id, int index)
{
	char *rel = cgroup_rel(id, index), *path, *text, *p;
	const char *v2 = cgroup_v2_root();
	long long n = 0;

	path = v2 ? xasprintf("%s/%s/memory.events", v2, rel) :
	    xasprintf("/sys/fs/cgroup/memory/%s/memory.oom_control", rel);
	text = util_read_file(path, 4096, NULL);
	if (text && (p = strstr(text, "oom_kill ")) != NULL)
		n = strtoll(p + 9, NULL, 10);
	free(text);
	free(path);
	free(rel);
	return n;
}

void
sandbox_cgroup_remove(long long id, int index)
{
	char *rel = cgroup_rel(id, index), *dir;
	const char *v2 = cgroup_v2_root();
	int i;

	if (v2) {
		dir = xasprintf("%s/%s", v2, rel);
		rmdir(dir);
		free(dir);
	}
	for (i = 0; cgroup_v1[i]; i++) {
		dir = xasprintf("/sys/fs/cgroup/%s/%s", cgroup_v1[i], rel);
		rmdir(dir);
		free(dir);
	}
	free(rel);
}

/* ---- the bubblewrap command ---- */

/* Folders of the host an app must not see: replaced by empty ones. */
static const char *const sandbox_hidden[] = { "/tmp", "/var/tmp", "/run",
	"/home", "/root", "/srv", "/mnt", "/media", "/var/log",
	"/var/lib/nubo", "/var/lib/postgresql", "/var/backups", "/etc/nubo",
	NULL };

/* A memfd holding the host's file (/etc/passwd, /etc/group) plus a line
 * for the environment's user, so that programs asking who they are get
 * an answer; -1 on error. */
int
sandbox_identity_fd(struct env *e, const char *file)
{
	char *host = util_read_file(file, 1024 * 1024, NULL), *line;
	uid_t uid = e->uid != (uid_t)-1 ? e->uid : getuid();
	int fd = memfd_create("nubo-identity", MFD_CLOEXEC), rc;

	if (fd == -1) {
		free(host);
		return -1;
	}
	if (strcmp(file, "/etc/passwd") == 0)
		line = xasprintf("env-%lld:x:%u:%u:nubo environment %lld:"
		    "%s/files:/bin/sh\n", e->id, (unsigned)uid, (unsigned)uid,
		    e->id, e->dir);
	else
		line = xasprintf("env-%lld:x:%u:\n", e->id, (unsigned)uid);
	rc = (host == NULL || write(fd, host, strlen(host)) ==
	    (ssize_t)strlen(host)) && write(fd, line, strlen(line)) ==
	    (ssize_t)strlen(line) && lseek(fd, 0, SEEK_SET) == 0 ? 0 : -1;
	free(line);
	free(host);
	if (rc == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
argv_add(char ***argv, size_t *n, const char *s)
{
	*argv = xrealloc(*argv, (*n + 2) * sizeof **argv);
	(*argv)[(*n)++] = xstrdup(s);
	(*argv)[*n] = NULL;
}

static void
argv_add3(char ***argv, size_t *n, const char *a, const char *b,
    const char *c)
{
	argv_add(argv, n, a);
	argv_add(argv, n, b);
	if (c)
		argv_add(argv, n, c);
}

/* 1 if the text of a resolv.conf line names a loopback or unspecified
 * address ("nameserver 127.0.0.53"): a resolver the sandbox cannot use. */
static int
resolv_local(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
	    strcmp(addr, "0.0.0.0") == 0 || strchr(addr, ':') != NULL;
}

/* The nameserver lines of file whose address the sandbox can reach
 * through slirp4netns (IPv4, not loopback), appended to out; how many. */
static int
resolv_servers(const char *file, char **out)
{
	char *text = util_read_file(file, 64 * 1024, NULL), *line, *save = NULL;
	int n = 0;

	for (line = text ? strtok_r(text, "\n", &save) : NULL; line;
	    line = strtok_r(NULL, "\n", &save)) {
		char addr[64], *more;

		if (sscanf(line, " nameserver %63s", addr) != 1 ||
		    resolv_local(addr))
			continue;
		more = xasprintf("%snameserver %s\n", *out, addr);
		free(*out);
		*out = more;
		n++;
	}
	free(text);
	return n;
}

int
sandbox_resolv_fd(int *servers)
{
	char *text = xstrdup("# nubo: the host's resolvers, reached through "
	    "slirp4netns\n");
	int fd = memfd_create("nubo-resolv", MFD_CLOEXEC), rc;

	/* the host's own; behind a local stub (systemd-resolved's
	 * 127.0.0.53) the servers it forwards to */
	*servers = resolv_servers("/etc/resolv.conf", &text);
	if (*servers == 0)
		*servers = resolv_servers("/run/systemd/resolve/resolv.conf",
		    &text);
	rc = fd == -1 || write(fd, text, strlen(text)) !=
	    (ssize_t)strlen(text) || lseek(fd, 0, SEEK_SET) != 0 ? -1 : 0;
	free(text);
	if (rc == -1 && fd != -1) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int
sandbox_hide_host(void)
{
	int i;

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1)
		return -1;
	/* the data folder first: it may be below one of the others */
	for (i = -1; i == -1 || sandbox_hidden[i]; i++)
		if (mount("tmpfs", i == -1 ? node->data_dir :
		    sandbox_hidden[i], "tmpfs", MS_NOSUID | MS_NODEV |
		    MS_NOEXEC, "size=16k,mode=0755") == -1 && errno != ENOENT)
			return -1;
	return 0;
}

char **
sandbox_argv(struct env *e, int index, int port, char *const *cmd,
    int listen_fd, int passwd_fd, int group_fd, const char *log_tag,
    const struct sandbox_net *net)
{
	char **argv = NULL, *app = xasprintf("%s/app", e->dir);
	char *work = sandbox_work_path(e, index);
	char *files = xasprintf("%s/files", e->dir), *dbdir = NULL;
	char *dbname = NULL, *dbsock = NULL, num[32];
	size_t n = 0;
	struct stat st;
	int i;

	argv_add(&argv, &n, SANDBOX_BWRAP);
	argv_add3(&argv, &n, "--unshare-user", "--unshare-pid",
	    "--unshare-net");
	argv_add3(&argv, &n, "--unshare-ipc", "--unshare-uts",
	    "--unshare-cgroup-try");
	argv_add(&argv, &n, "--disable-userns");
	argv_add(&argv, &n, "--as-pid-1");
	argv_add3(&argv, &n, "--hostname", "nubo", NULL);
	argv_add3(&argv, &n, "--ro-bind", "/", "/");
	argv_add3(&argv, &n, "--dev", "/dev", NULL);
	argv_add3(&argv, &n, "--proc", "/proc", NULL);
	argv_add3(&argv, &n, "--tmpfs", "/dev/shm", NULL);
	for (i = 0; sandbox_hidden[i]; i++)
		if (lstat(sandbox_hidden[i], &st) == 0 && S_ISDIR(st.st_mode))
			argv_add3(&argv, &n, "--tmpfs", sandbox_hidden[i],
			    NULL);
	argv_add3(&argv, &n, "--tmpfs", node->data_dir, NULL);
	/* the app's folder is its working area: a farm of the package
	 * (sandbox_work_make()), writable, its own */
	argv_add3(&argv, &n, "--bind", work, app);
	argv_add3(&argv, &n, "--bind", files, files);
	argv_add3(&argv, &n, "--ro-bind", sandbox_init_path,
	    "/run/nubo/init");
	if (pg_app_socket(e, &dbdir, &dbname) == 0) {
		argv_add3(&argv, &n, "--ro-bind", dbdir, "/run/nubo/db");
		dbsock = xasprintf("/run/nubo/db/%s", dbname);
	}
	snprintf(num, sizeof num, "%d", passwd_fd);
	argv_add3(&argv, &n, "--ro-bind-data", num, "/etc/passwd");
	snprintf(num, sizeof num, "%d", group_fd);
	argv_add3(&argv, &n, "--ro-bind-data", num, "/etc/group");
	if (net) {
		/* bubblewrap says its child's pid (for slirp4netns) and
		 * waits until the network is up (or its helper is gone) */
		snprintf(num, sizeof num, "%d", net->resolv_fd);
		argv_add3(&argv, &n, "--ro-bind-data", num,
		    "/etc/resolv.conf");
		snprintf(num, sizeof num, "%d", net->info_fd);
		argv_add3(&argv, &n, "--info-fd", num, NULL);
		snprintf(num, sizeof num, "%d", net->block_fd);
		argv_add3(&argv, &n, "--block-fd", num, NULL);
	}
	argv_add3(&argv, &n, "--chdir", app, NULL);
	argv_add3(&argv, &n, "--", "/run/nubo/init", NULL);
	if (net) {
		snprintf(num, sizeof num, "%d", net->hold_fd);
		argv_add3(&argv, &n, "--egress-fd", num, NULL);
	}
	if (listen_fd != -1) {
		snprintf(num, sizeof num, "%d", listen_fd);
		argv_add3(&argv, &n, "--listen-fd", num, NULL);
		snprintf(num, sizeof num, "%d", port);
		argv_add3(&argv, &n, "--port", num, NULL);
	}
	if (dbsock) {
		argv_add3(&argv, &n, "--db-socket", dbsock, NULL);
		snprintf(num, sizeof num, "%d", SANDBOX_DB_PORT);
		argv_add3(&argv, &n, "--db-port", num, NULL);
	}
	if (log_tag)
		argv_add3(&argv, &n, "--log-tag", log_tag, NULL);
	argv_add(&argv, &n, "--");
	for (i = 0; cmd[i]; i++)
		argv_add(&argv, &n, cmd[i]);
	free(work);
	free(app);
	free(files);
	free(dbdir);
	free(dbname);
	free(dbsock);
	return argv;
}

void
sandbox_argv_free(char **argv)
{
	size_t i;

	for (i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

gid_t
sandbox_router_group(void)
{
	return sandbox_router_gid;
}

int
sandbox_db_port(void)
{
	return SANDBOX_DB_PORT;
}

int
sandbox_nproc_max(void)
{
	return SANDBOX_NPROC_MAX;
}

void
env_fs_enter(uid_t uid)
{
	if (uid == (uid_t)-1)
		return;
	setfsgid((gid_t)uid);
	setfsuid(uid);
}

void
env_fs_leave(uid_t uid)
{
	if (uid == (uid_t)-1)
		return;
	setfsuid(0);
	setfsgid(0);
}

/* ---- the writable working area ---- */

char *
sandbox_work_path(struct env *e, int index)
{
	return xasprintf("%s/work/%d", e->dir, index);
}

static __thread const char *farm_src, *farm_dst;
static __thread uid_t farm_uid;
static __thread int farm_failed;

/* One entry of app/ into the farm: folders made (the environment's
 * user's), files hard-linked (root's, read-only to the app: it may
 * replace them, never change the package's bytes), links copied. */
static int
farm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	const char *rel = path + strlen(farm_src);
	char *dst = xasprintf("%s%s", farm_dst, rel);
	int rc = 0;

	(void)ftw;
	if (flag == FTW_D) {
		if (*rel && mkdir(dst, 0750) == -1 && errno != EEXIST)
			rc = -1;
		if (rc == 0 && (lchown(dst, farm_uid, (gid_t)farm_uid) == -1 ||
		    chmod(dst, (st->st_mode & 0777) | 0700) == -1))
			rc = farm_uid == (uid_t)-1 ? 0 : -1;
	} else if (flag == FTW_SL) {
		char target[4096];
		ssize_t n = readlink(path, target, sizeof target - 1);

		if (n < 0)
			rc = -1;
		else {
			target[n] = '\0';
			rc = symlink(target, dst);
		}
	} else if (flag == FTW_F) {
		rc = link(path, dst);
	}
	if (rc == -1) {
		log_warn("working area: cannot make %s: %s", dst,
		    strerror(errno));
		farm_failed = 1;
	}
	free(dst);
	return rc == -1 ? 1 : 0;
}

void
sandbox_work_remove(struct env *e, int index)
{
	char *work = sandbox_work_path(e, index);
	struct stat st;

	if (lstat(work, &st) == -1) {
		free(work);
		return;
	}
	/* its content as the environment's user (what is in there is the
	 * app's: a link it planted leads nowhere it could not go itself),
	 * the folder itself as root */
	env_fs_enter(e->uid);
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(work);
		struct dirent *de;

		while (d && (de = readdir(d)) != NULL) {
			char *sub;

			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			sub = xasprintf("%s/%s", work, de->d_name);
			util_rm_rf(sub);
			free(sub);
		}
		if (d)
			closedir(d);
	}
	env_fs_leave(e->uid);
	if (util_rm_rf(work) == -1)
		log_warn("cannot remove %s: %s", work, strerror(errno));
	free(work);
}

int
sandbox_work_make(struct env *e, int index, char **cause)
{
	char *app = xasprintf("%s/app", e->dir);
	char *parent = xasprintf("%s/work", e->dir);
	char *work = sandbox_work_path(e, index);
	int rc = -1;

	sandbox_work_remove(e, index);
	if (util_mkdir_p(parent, 0711) == -1 || mkdir(work, 0750) == -1) {
		*cause = xasprintf("cannot create %s: %s", work,
		    strerror(errno));
		goto out;
	}
	farm_src = app;
	farm_dst = work;
	farm_uid = e->uid;
	farm_failed = 0;
	if (nftw(app, farm_one, 32, FTW_PHYS) != 0 || farm_failed) {
		*cause = xasprintf("cannot prepare the working area %s from "
		    "the package", work);
		sandbox_work_remove(e, index);
		goto out;
	}
	rc = 0;
out:
	free(app);
	free(parent);
	free(work);
	return rc;
}
