/* Running PostgreSQL's client programs (pg_dump, pg_restore) against a
 * database without its password on the command line (where `ps` shows it
 * to every user of the host): the connection is passed as a conninfo
 * string without the password, the password in PGPASSWORD of the child's
 * environment (readable only by the same user and root). The child dies
 * with the thread that started it (PR_SET_PDEATHSIG), so a node killed
 * with -9 leaves no pg_restore or pg_dump running. */
#ifndef NUBO_PGTOOL_H
#define NUBO_PGTOOL_H

#include <stddef.h>
#include <sys/types.h>

/* Start tool (a bare name: util_pg_tool(); or a path) as
 * `tool --dbname=<conninfo without password> args…` with stdin, stdout
 * and stderr from in, out, err (-1: /dev/null). dburl is a libpq URI or
 * conninfo. The pid, or -1 with errno set (EINVAL: dburl does not
 * parse). The caller waits for it on the same thread. */
pid_t pgtool_spawn(const char *tool, const char *dburl, char *const args[],
    int in, int out, int err);

/* dburl without its password, as a conninfo string (caller frees); NULL
 * when it does not parse. */
char *pgtool_conninfo_public(const char *dburl);

/* dburl (password included) as a conninfo string for database dbname
 * (caller frees); NULL when it does not parse. */
char *pgtool_conninfo_db(const char *dburl, const char *dbname);

/* One rule of a server's pg_hba.conf as the view pg_hba_file_rules shows
 * it (type, user_name as "{all}" or "{a,b}", address, netmask,
 * auth_method; NULL where the view has NULL): why it lets the
 * environments' roles (env_<id>, nubo_…) in from more than one host or
 * without scram-sha-256 (caller frees), or NULL when it does not — a
 * server on another host than the node (nubod node --pg) should admit
 * them from the node's address only (ARCHITECTURE). */
char *pgtool_hba_open(const char *type, const char *users,
    const char *address, const char *netmask, const char *auth);

/* A table's name as a user or a node gives it, [schema.]name (each part
 * 1 to 63 of [a-z0-9_$], starting with a letter or '_', plain or in
 * double quotes as format('%I') writes it; no schema: public), written
 * canonically as schema.name into out (at least PGTOOL_TABLE_MAX bytes).
 * 0, or -1 when it is not one: nothing else ever reaches SQL or a
 * pg_dump pattern. */
#define PGTOOL_TABLE_MAX	128
int pgtool_table_name(const char *in, char *out, size_t outlen);

#endif
