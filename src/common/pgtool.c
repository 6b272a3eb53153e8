/* PostgreSQL client programs without passwords on their command lines,
 * dying with their parent (pgtool.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "buf.h"
#include "pgtool.h"
#include "util.h"
#include "xmalloc.h"

extern char **environ;

/* Append key='value' (libpq conninfo quoting) to b. */
static void
conninfo_add(struct buf *b, const char *key, const char *val)
{
	const char *p;

	if (b->len > 0)
		buf_append(b, " ", 1);
	buf_append(b, key, strlen(key));
	buf_append(b, "='", 2);
	for (p = val; *p != '\0'; p++) {
		if (*p == '\'' || *p == '\\')
			buf_append(b, "\\", 1);
		buf_append(b, p, 1);
	}
	buf_append(b, "'", 1);
}

/* dburl as a conninfo string in *out, its database dbname when that is
 * not NULL; the password moved to *password (NULL when none) when
 * password is not NULL, else kept in *out. -1 when dburl does not
 * parse. */
static int
conninfo_rebuild(const char *dburl, const char *dbname, char **out,
    char **password)
{
	PQconninfoOption *o, *p;
	struct buf b;
	char *err = NULL;

	*out = NULL;
	if (password)
		*password = NULL;
	if ((o = PQconninfoParse(dburl, &err)) == NULL) {
		PQfreemem(err);
		return -1;
	}
	buf_init(&b, 0);
	for (p = o; p->keyword != NULL; p++) {
		if (dbname && strcmp(p->keyword, "dbname") == 0)
			conninfo_add(&b, p->keyword, dbname);
		else if (p->val == NULL)
			continue;
		else if (password && strcmp(p->keyword, "password") == 0) {
			free(*password);
			*password = xstrdup(p->val);
		} else
			conninfo_add(&b, p->keyword, p->val);
	}
	PQconninfoFree(o);
	*out = xstrdup(b.len > 0 ? buf_cstr(&b) : "");
	buf_release(&b);
	return 0;
}

/* Split dburl into a conninfo without the password and the password
 * (NULL when none); -1 when it does not parse. */
static int
conninfo_split(const char *dburl, char **pub, char **password)
{
	return conninfo_rebuild(dburl, NULL, pub, password);
}

char *
pgtool_conninfo_db(const char *dburl, const char *dbname)
{
	char *out;

	return conninfo_rebuild(dburl, dbname, &out, NULL) == -1 ? NULL : out;
}

char *
pgtool_conninfo_public(const char *dburl)
{
	char *pub, *pw;

	if (conninfo_split(dburl, &pub, &pw) == -1)
		return NULL;
	if (pw != NULL) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
	return pub;
}

pid_t
pgtool_spawn(const char *tool, const char *dburl, char *const args[],
    int in, int out, int err)
{
	char *bin, *pub, *pw, *dbarg, **argv, **envp;
	size_t na, ne, i, k;
	int nul = -1, saved;
	pid_t parent = getpid(), pid;

	if (conninfo_split(dburl, &pub, &pw) == -1) {
		errno = EINVAL;
		return -1;
	}
	bin = strchr(tool, '/') != NULL ? xstrdup(tool) : util_pg_tool(tool);
	dbarg = xasprintf("--dbname=%s", pub);
	for (na = 0; args != NULL && args[na] != NULL; na++)
		;
	argv = xcalloc(na + 3, sizeof(*argv));
	argv[0] = bin;
	argv[1] = dbarg;
	for (i = 0; i < na; i++)
		argv[i + 2] = args[i];
	/* the environment, less any password of ours, plus this one */
	for (ne = 0; environ[ne] != NULL; ne++)
		;
	envp = xcalloc(ne + 2, sizeof(*envp));
	for (i = k = 0; i < ne; i++)
		if (strncmp(environ[i], "PGPASSWORD=", 11) != 0 &&
		    strncmp(environ[i], "PGPASSFILE=", 11) != 0)
			envp[k++] = environ[i];
	if (pw != NULL)
		envp[k++] = xasprintf("PGPASSWORD=%s", pw);
	if (in < 0 || out < 0 || err < 0)
		nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	pid = fork();
	if (pid == 0) {
		/* only async-signal-safe calls from here to exec */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
		    getppid() != parent)
			_exit(127);
		if (dup2(in >= 0 ? in : nul, 0) < 0 ||
		    dup2(out >= 0 ? out : nul, 1) < 0 ||
		    dup2(err >= 0 ? err : nul, 2) < 0)
			_exit(127);
		if (strchr(bin, '/') != NULL)
			execve(bin, argv, envp);
		else
			execvpe(bin, argv, envp);
		_exit(127);
	}
	saved = errno;
	if (nul >= 0)
		close(nul);
	if (pw != NULL) {
		explicit_bzero(envp[k - 1], strlen(envp[k - 1]));
		free(envp[k - 1]);
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
	free(envp);
	free(argv);
	free(dbarg);
	free(pub);
	free(bin);
	errno = saved;
	return pid;
}

/* Whether the user_name list of a rule ("{all}", "{a,+b,/re}") may name
 * an environment's role: all, a group (+), a regular expression (/) or
 * a name of theirs (env_…, nubo_…). */
static int
hba_users_ours(const char *users)
{
	char *list = xstrdup(users ? users : "{all}"), *p, *save = NULL;
	int ours = 0;

	for (p = strtok_r(list, "{},\"", &save); p && !ours;
	    p = strtok_r(NULL, "{},\"", &save))
		ours = strcmp(p, "all") == 0 || *p == '+' || *p == '/' ||
		    strncmp(p, "env_", 4) == 0 || strncmp(p, "nubo_", 5) == 0;
	free(list);
	return ours;
}

/* 1 when netmask names one host (/32, /128). */
static int
hba_one_host(const char *netmask)
{
	unsigned char b[16];
	size_t i, n;

	if (inet_pton(AF_INET, netmask, b) == 1)
		n = 4;
	else if (inet_pton(AF_INET6, netmask, b) == 1)
		n = 16;
	else
		return 0;
	for (i = 0; i < n; i++)
		if (b[i] != 0xff)
			return 0;
	return 1;
}

char *
pgtool_hba_open(const char *type, const char *users, const char *address,
    const char *netmask, const char *auth)
{
	if (type == NULL || strncmp(type, "host", 4) != 0 ||
	    (auth && strcmp(auth, "reject") == 0) || !hba_users_ours(users))
		return NULL;
	if (auth && strcmp(auth, "trust") == 0)
		return xasprintf("admits %s from %s without a password (trust)",
		    users ? users : "{all}", address ? address : "anywhere");
	if (address == NULL || strcmp(address, "all") == 0 ||
	    strcmp(address, "samenet") == 0)
		return xasprintf("admits %s from %s, not from the node's "
		    "address only", users ? users : "{all}", address ?
		    address : "anywhere");
	if (netmask && !hba_one_host(netmask))
		return xasprintf("admits %s from the network %s/%s, not from "
		    "the node's address only", users ? users : "{all}",
		    address, netmask);
	if (auth && strcmp(auth, "scram-sha-256") != 0 &&
	    strcmp(auth, "cert") != 0)
		return xasprintf("admits %s from %s with %s, not "
		    "scram-sha-256", users ? users : "{all}", address, auth);
	return NULL;
}

/* One part of a table's name at *p (plain or quoted) into out; 0 with
 * *p past it, or -1. */
static int
table_part(const char **p, char *out, size_t outlen)
{
	const char *s = *p;
	int quoted = *s == '"';
	size_t n = 0;

	s += quoted;
	if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
		return -1;
	while ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
	    *s == '_' || *s == '$') {
		if (n + 1 >= outlen || n >= 63)
			return -1;
		out[n++] = *s++;
	}
	out[n] = '\0';
	if (quoted && *s++ != '"')
		return -1;
	*p = s;
	return 0;
}

int
pgtool_table_name(const char *in, char *out, size_t outlen)
{
	char a[64], b[64];
	const char *p = in;

	if (in == NULL || outlen < PGTOOL_TABLE_MAX ||
	    table_part(&p, a, sizeof a) == -1)
		return -1;
	if (*p == '\0') {
		snprintf(out, outlen, "public.%s", a);
		return 0;
	}
	if (*p++ != '.' || table_part(&p, b, sizeof b) == -1 || *p != '\0')
		return -1;
	snprintf(out, outlen, "%s.%s", a, b);
	return 0;
}
