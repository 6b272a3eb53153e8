/* The throwaway PostgreSQL role a dump is loaded as (restores in
 * backup.c, migration imports in transfer.c): it owns nothing but the new
 * database, so no statement in a dump can reach another database or role
 * (docs/ARCHITECTURE.md, Backups: "The restore role"). */
#ifndef NUBO_RESTORE_ROLE_H
#define NUBO_RESTORE_ROLE_H

#include "node.h"

struct restore_role {
	char	 name[64];	/* nubo_<kind>_<env id>_<hex> */
	char	*url;		/* the new database as this role (libpq URI
				 * keywords; its password is only passed to
				 * children through pgtool_spawn()) */
};

/* Create a throwaway login role (no superuser, createdb, createrole,
 * replication, bypassrls; member of no role: it needs to inherit only
 * pg_database_owner's rights on the public schema of the database it
 * owns) named nubo_<kind>_<env_id>_<hex>
 * and the new database newdb owned by it, which nobody else may connect
 * to. env_url is the environment's own URL (for host and port). 0, or -1
 * with *cause and nothing left behind. */
int restore_role_begin(struct pg_conn *admin, const char *kind,
    long long env_id, const char *env_url, const char *newdb,
    struct restore_role *rr, char **cause);

/* The dump is loaded: close the role's sessions, reset the database's
 * settings, connection limit and privileges, reset the environment role's
 * own settings, give every object (and the database) to env_<env_id>,
 * and drop the throwaway role. 0, or -1 with *cause (the caller drops the
 * new database and calls restore_role_drop()). */
int restore_role_finish(struct pg_conn *admin, long long env_id,
    const char *newdb, struct restore_role *rr, char **cause);

/* Drop role name and any database it still owns (a load cut short):
 * 0 also when it is gone already; -1 with *cause. */
int restore_role_drop(struct pg_conn *admin, const char *name, char **cause);

/* Drop every nubo_<kind>_<env_id>_* role an earlier process left (and
 * the half-loaded databases they own). 0, or -1 with *cause. */
int restore_role_drop_stale(struct pg_conn *admin, const char *kind,
    long long env_id, char **cause);

/* The same role for a load into an existing database, dbname (the
 * environment's own: a replica's tables made again), db an admin
 * connection to it: the role may connect to it and nothing more; the
 * caller grants what the load needs (CREATE on a schema, the tables it
 * replaces). 0, or -1 with *cause and nothing left behind. */
int restore_role_begin_in(struct pg_conn *db, const char *kind,
    long long env_id, const char *env_url, const char *dbname,
    struct restore_role *rr, char **cause);

/* Such a load is over (loaded or not): the role's sessions closed, what
 * it owns in db given to env_<env_id>, its grants revoked, the role
 * dropped. 0, or -1 with *cause. */
int restore_role_end_in(struct pg_conn *db, long long env_id,
    const char *name, char **cause);

/* restore_role_end_in() for every nubo_<kind>_<env_id>_* role an earlier
 * process left. 0, or -1 with *cause. */
int restore_role_drop_stale_in(struct pg_conn *db, const char *kind,
    long long env_id, char **cause);

void restore_role_release(struct restore_role *rr);

#endif
