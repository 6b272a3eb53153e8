/* Logical replication of an environment's database between two nodes'
 * PostgreSQL, the node's part of a migration whose cutover does not copy
 * the database (issue #14; ARCHITECTURE, "Cloud nodes", Replication).
 * The agent routes are in agent-routes.c; these are what pg.c and the
 * unit tests use. */
#ifndef NUBO_REPLICATION_H
#define NUBO_REPLICATION_H

#include <pthread.h>
#include <stddef.h>

/* A migration key: 1 to 36 of [a-z0-9-], starting and ending with a
 * letter or digit (a migration's uuid fits). It becomes part of role,
 * slot, publication and subscription names with '-' written '_', which
 * is why '_' itself is not allowed: two keys never share a name. */
#define REPLICATION_KEY_MAX	36
/* The group role every replication role is a member of: pg_hba.conf
 * rejects its members wherever their own rule does not admit them. */
#define REPLICATION_GROUP	"nubo_replication"

/* 1 when key is a valid migration key (above), else 0. */
int replication_key_valid(const char *key);
/* text as an IP address of a host (IPv4 or IPv6: no name, port, prefix
 * or zone; not an unspecified, broadcast or multicast address), written
 * canonically into out (an IPv4-mapped IPv6 address as IPv4); *loopback 1
 * for 127.0.0.0/8 and ::1. 0, or -1 when it is not one. */
int replication_address_parse(const char *text, char *out, size_t outlen,
    int *loopback);
/* The pg_hba.conf rules of the replications from this node, one line
 * each ("" when none; caller frees): rendered by pg.c. */
char *replication_hba_rules(void);
/* Environment id is being deleted: drop its replications (slots,
 * publications, roles, rules) and the subscriptions in its database, which
 * would keep DROP DATABASE from working. 0, or -1 with *cause. */
int replication_env_drop(long long id, char **cause);

/* Shared by replication.c (the source side) and subscription.c (the
 * target side) alone: hence the short prefix repl_. */
struct areq;
struct pg_conn;
struct pg_result;
struct json_t;

/* The names of a migration's objects for environment id. */
struct repl_names {
	long long	id;
	char		key[REPLICATION_KEY_MAX + 1];
	char		database[32];
	char		role[64];
	char		slot[64];
	char		publication[64];
	char		subscription[64];
	char		change_slot[64];	/* changes.c's */
};

/* Why a call failed, for its reply. */
struct repl_err {
	unsigned	 status;
	const char	*code;
	char		*cause;
};

/* Every change of either side is made under this lock. */
extern pthread_mutex_t replication_lock;

/* Fill e (status, stable code, message): -1, so a caller returns it. */
int repl_fail(struct repl_err *e, unsigned status,
    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* repl_fail() with PostgreSQL's words in cause (taken over; NULL: it
 * said nothing): -1. */
int repl_fail_cause(struct repl_err *e, unsigned status, const char *code,
    char *cause);
/* Reply with e and clear it. */
void repl_reply_error(struct areq *r, struct repl_err *e);
/* pg_admin_exec() with e filled when it fails (503). */
int repl_exec(struct pg_conn *c, const char *sql,
    struct repl_err *e);
/* Run sql with nparams text parameters: the result when it succeeded,
 * else NULL with e filled (503, PostgreSQL's words). */
struct pg_result *repl_query(struct pg_conn *c,
    struct repl_err *e, const char *sql, int nparams,
    const char *const *params);
/* The rows sql answers, or -1 with e filled. */
int repl_count(struct pg_conn *c, struct repl_err *e,
    const char *sql, int nparams, const char *const *params);
/* A connection as the admin to database db (NULL: postgres); NULL with
 * e filled. */
struct pg_conn *repl_connect(const char *db,
    struct repl_err *e);
/* The request's environment id; *has_db 1 when it has a database. */
long long repl_env_id(struct areq *r, int *has_db);
/* A connection as the admin to the request's environment's database;
 * NULL with e filled (409 DATABASE_NOT_CREATED when it has none yet). */
struct pg_conn *repl_env_db(struct areq *r, long long *id,
    struct repl_err *e);
/* The migration key of a POST body: 0, or -1 with e (400
 * BAD_MIGRATION_KEY). */
int repl_key_check(const char *key, struct repl_err *e);
/* ?migration=KEY of a GET or DELETE: 0 (*key NULL when absent and not
 * required), or -1 after replying 400. */
int repl_query_key(struct areq *r, int required, const char **key);
/* Fill n for environment id and a valid key. */
void repl_names(long long id, const char *key,
    struct repl_names *n);
/* The ordinary tables of d's database (not the system's) matching cond
 * on pg_class c, as qualified names in a JSON array; NULL with e. */
struct json_t *repl_tables(struct pg_conn *d, const char *cond,
    struct repl_err *e);
/* Drop every slot of d's database whose name matches the regular
 * expression re (ending the sessions that hold them first): 0 (*dropped
 * 1 when there was one), or -1 with e. */
int repl_slots_drop(struct pg_conn *d, const char *re, int *dropped,
    struct repl_err *e);
/* changes.c: end the snapshots held for environment id's change slots
 * (it is being deleted). */
void changes_env_release(long long id);
/* subscription.c: drop subscription sub of d's database (disabled, slot
 * detached, dropped): 0 (*dropped 1 when it was there), -1 with e. */
int subscription_drop(struct pg_conn *d, const char *sub, int *dropped,
    struct repl_err *e);

/* subscription.c: the subscription sub of d's database {subscription,
 * enabled, slot, publication, state, tables, …}; NULL with e (404 when
 * there is none). */
struct json_t *subscription_report(struct pg_conn *d, const char *sub,
    const char *key, struct repl_err *e);

#endif
