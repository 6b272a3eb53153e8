/* Logical replication of an environment's database between two nodes'
 * PostgreSQL, the node's part of a migration whose cutover does not copy
 * the database (issue #14; ARCHITECTURE, "Cloud nodes", Replication).
 * The agent routes are in agent-routes.c; these are what pg.c and the
 * unit tests use. */
#ifndef NUBO_REPLICATION_H
#define NUBO_REPLICATION_H

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

#endif
