/* nubo-init: process 1 of an instance's sandbox (bubblewrap runs it as
 * the environment's user in new user, PID, mount, network, IPC and UTS
 * namespaces). It
 *  - starts the app in its own process group and forwards SIGTERM & co
 *    to that group, reaps every orphan, and exits with the app's status
 *    (when PID 1 exits the kernel kills whatever is left in the sandbox);
 *  - dies with bubblewrap's outer process (PR_SET_PDEATHSIG), so a
 *    SIGKILL of the instance's pid from the node ends the whole sandbox;
 *  - bridges the network namespace: connections to the unix socket the
 *    node listens on for this instance (--listen-fd) go to the app's
 *    127.0.0.1:$PORT, and connections the app opens to 127.0.0.1:5432 go
 *    to the environment's database socket (--db-socket), the only way
 *    out of the namespace;
 *  - with --egress-fd FD (a node started with --egress), holds the
 *    write end of a pipe whose read end is the network helper's
 *    (slirp4netns, which gives the namespace its way out and ends when
 *    the sandbox does): when the helper is gone, the instance ends too,
 *    with a line in its log, so that the node starts it again with a
 *    new one;
 *  - with --log-tag TAG, stamps each line the app prints (stdout and
 *    stderr, through a pipe) "<UTC time> [TAG] " before it reaches the
 *    environment's log, so the lines of several instances can be told
 *    apart (nubo envs logs --instance N).
 * Plain libc (and relay.c): it runs once per instance, so it stays small.
 *
 * usage: nubo-init [--listen-fd FD --port PORT]
 *                  [--db-socket PATH [--db-port 5432]] [--egress-fd FD]
 *                  [--log-tag TAG] -- PROGRAM [ARG...] */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

static const int init_forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT,
	SIGUSR1, SIGUSR2, 0 };

static struct relay *init_relay;
static pid_t init_app;
static int init_port;
static const char *init_db_socket;
static const char *init_log_tag;	/* NULL: the app writes the log */
static int init_log_fd = -1;		/* the app's output pipe */
static char init_line[8192];		/* a line not yet ended */
static size_t init_line_len;

/* One line of the app's output, stamped and tagged, in one write (the
 * log is O_APPEND: lines of several instances never mix). */
static void
log_line(const char *p, size_t n)
{
	char head[128];
	struct tm tm;
	time_t t = time(NULL);
	struct iovec iov[3];
	int len;

	gmtime_r(&t, &tm);
	len = (int)strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%SZ ", &tm);
	len += snprintf(head + len, sizeof head - (size_t)len, "[%s] ",
	    init_log_tag);
	iov[0].iov_base = head;
	iov[0].iov_len = (size_t)len;
	iov[1].iov_base = (void *)(uintptr_t)p;
	iov[1].iov_len = n;
	iov[2].iov_base = "\n";
	iov[2].iov_len = 1;
	if (writev(1, iov, 3) < 0)
		return;		/* nowhere to say it */
}

/* What the app printed so far: whole lines out, the rest kept (a line
 * longer than the buffer goes out in pieces); at_end flushes all. */
static void
log_drain(int at_end)
{
	char buf[4096];
	ssize_t n;

	while (init_log_fd != -1) {
		ssize_t i;

		n = read(init_log_fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 || errno != EAGAIN) {
				close(init_log_fd);	/* leaves the epoll set */
				init_log_fd = -1;
				at_end = 1;
			}
			break;
		}
		for (i = 0; i < n; i++) {
			if (buf[i] == '\n' || init_line_len == sizeof init_line) {
				log_line(init_line, init_line_len);
				init_line_len = 0;
				if (buf[i] == '\n')
					continue;
			}
			init_line[init_line_len++] = buf[i];
		}
	}
	if (at_end && init_line_len) {
		log_line(init_line, init_line_len);
		init_line_len = 0;
	}
}

static void
on_log(int fd, void *arg)
{
	(void)fd;
	(void)arg;
	log_drain(0);
}

/* nubo-init's own word about the app, tagged like its lines. */
static void
say(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (init_log_tag)
		log_line(msg, strlen(msg));
	else
		fprintf(stderr, "%s\n", msg);
}

static int
dial_app(void *arg)
{
	(void)arg;
	return relay_dial_tcp("127.0.0.1", init_port);
}

static int
dial_db(void *arg)
{
	(void)arg;
	return relay_dial_unix(init_db_socket);
}

/* The network helper is gone (its end of the pipe closed): the
 * instance has lost its way out and ends, to be started again. */
static void
on_egress_gone(int fd, void *arg)
{
	(void)fd;
	(void)arg;
	log_drain(1);
	say("nubo-init: the network helper (slirp4netns) ended; the "
	    "instance stops");
	kill(-init_app, SIGKILL);
	_exit(1);
}

/* 1 when the reader of the pipe whose write end is fd is gone. */
static int
egress_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP));
}

/* The app's status as an exit code; what happened goes to the app log. */
static int
init_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st)) {
		say("nubo-init: the app was killed by signal %d (%s)",
		    WTERMSIG(st), strsignal(WTERMSIG(st)));
		return 128 + WTERMSIG(st);
	}
	return 1;
}

static void
on_signal(int fd, void *arg)
{
	struct signalfd_siginfo si;
	int st;
	pid_t pid;

	(void)arg;
	while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo != SIGCHLD) {
			if (kill(-init_app, (int)si.ssi_signo) == -1)
				kill(init_app, (int)si.ssi_signo);
			continue;
		}
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
			if (pid == init_app) {
				log_drain(1);
				_exit(init_status(st));
			}
	}
}

/* A decimal number in [min,max], or -1. */
static int
number(const char *s, int min, int max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	return (int)v;
}

/* 0 when fd is open and of type (S_IFSOCK, S_IFIFO), else -1 and why. */
static int
fd_kind(int fd, mode_t type, const char *option, const char *what)
{
	struct stat st;

	if (fstat(fd, &st) == -1 || (st.st_mode & S_IFMT) != type) {
		fprintf(stderr, "nubo-init: %s %d is not a %s\n", option, fd,
		    what);
		return -1;
	}
	return 0;
}

static int
usage(void)
{
	fputs("usage: nubo-init [--listen-fd FD --port PORT] [--db-socket PATH"
	    " [--db-port PORT]] [--egress-fd FD] [--log-tag TAG] -- PROGRAM"
	    " [ARG...]\n",
	    stderr);
	return 2;
}

int
main(int argc, char **argv)
{
	int listen_fd = -1, db_port = 5432, egress_fd = -1, i, k, prog, sfd;
	int pipefd[2] = { -1, -1 };
	sigset_t set;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (i + 1 >= argc)
			return usage();
		if (strcmp(argv[i], "--listen-fd") == 0 &&
		    (listen_fd = number(argv[++i], 3, 1023)) != -1)
			continue;
		if (strcmp(argv[i], "--port") == 0 &&
		    (init_port = number(argv[++i], 1, 65535)) != -1)
			continue;
		if (strcmp(argv[i], "--db-socket") == 0) {
			init_db_socket = argv[++i];
			continue;
		}
		if (strcmp(argv[i], "--db-port") == 0 &&
		    (db_port = number(argv[++i], 1, 65535)) != -1)
			continue;
		if (strcmp(argv[i], "--egress-fd") == 0 &&
		    (egress_fd = number(argv[++i], 3, 1023)) != -1)
			continue;
		if (strcmp(argv[i], "--log-tag") == 0 && strlen(argv[i + 1]) <
		    64) {
			init_log_tag = argv[++i];
			continue;
		}
		return usage();
	}
	if (i >= argc || (listen_fd >= 0 && init_port < 1))
		return usage();
	prog = i;
	if ((listen_fd >= 0 && fd_kind(listen_fd, S_IFSOCK, "--listen-fd",
	    "socket") == -1) || (egress_fd >= 0 && fd_kind(egress_fd, S_IFIFO,
	    "--egress-fd", "pipe") == -1))
		return 2;
	if (egress_fd >= 0)
		fcntl(egress_fd, F_SETFD, FD_CLOEXEC);

	/* bubblewrap's outer process is our parent: when the node kills
	 * it, the sandbox goes with it */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* the node starts us with SIGTERM ignored (so bubblewrap's outer
	 * process outlives it); signals are ours to handle */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (k = 0; init_forwarded[k]; k++) {
		signal(init_forwarded[k], SIG_DFL);
		sigaddset(&set, init_forwarded[k]);
	}
	signal(SIGPIPE, SIG_IGN);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	init_relay = relay_new();
	if (sfd == -1 || init_relay == NULL) {
		perror("nubo-init");
		return 1;
	}
	relay_watch(init_relay, sfd, on_signal, NULL);
	if (listen_fd >= 0 && relay_listen(init_relay, listen_fd, dial_app,
	    NULL, 0) == -1) {
		perror("nubo-init: --listen-fd");
		return 1;
	}
	if (init_db_socket) {
		int dfd = relay_listen_tcp("127.0.0.1", db_port);

		if (dfd == -1 || relay_listen(init_relay, dfd, dial_db, NULL,
		    0) == -1) {
			fprintf(stderr, "nubo-init: cannot listen on "
			    "127.0.0.1:%d: %s\n", db_port, strerror(errno));
			return 1;
		}
	}

	if (init_log_tag) {
		if (pipe2(pipefd, O_CLOEXEC) == -1 ||
		    fcntl(pipefd[0], F_SETFL, O_NONBLOCK) == -1 ||
		    relay_watch(init_relay, pipefd[0], on_log, NULL) == -1) {
			perror("nubo-init: the app's output");
			return 1;
		}
		init_log_fd = pipefd[0];
	}
	if (egress_fd >= 0 && egress_gone(egress_fd)) {
		say("nubo-init: no network: the network helper (slirp4netns) "
		    "did not start");
		return 1;
	}
	init_app = fork();
	if (init_app == -1) {
		perror("nubo-init: fork");
		return 1;
	}
	if (init_app == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		setpgid(0, 0);
		if (init_log_tag && (dup2(pipefd[1], 1) == -1 ||
		    dup2(pipefd[1], 2) == -1))
			_exit(126);
		close_range(3, ~0U, 0);
		execvp(argv[prog], argv + prog);
		fprintf(stderr, "nubo-init: cannot run %s: %s\n", argv[prog],
		    strerror(errno));
		_exit(127);
	}
	setpgid(init_app, init_app);
	if (init_log_tag)
		close(pipefd[1]);
	if (egress_fd >= 0 && relay_watch(init_relay, egress_fd,
	    on_egress_gone, NULL) == -1) {
		perror("nubo-init: --egress-fd");
		kill(-init_app, SIGKILL);
		return 1;
	}
	relay_run(init_relay);
	return 1;
}
