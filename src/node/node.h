/* The node agent (`nubod node`): one cloud node — environments, their app
 * instances, the nginx router and the PostgreSQL cluster. Shared types. */
#ifndef NUBO_NODE_H
#define NUBO_NODE_H

#include <pthread.h>
#include <sys/types.h>

#include <jansson.h>

#include "httpd.h"
#include "nubo_limits.h"

#define NODE_VERSION		"0.1"
#define NODE_HEARTBEAT_SECONDS	2
#define NODE_CRASHES_MAX	5	/* crashes in a row: environment failed */
#define NODE_BACKOFF_MAX	30	/* seconds between restarts, at most */
#define NODE_HEALTHY_RESET	30	/* healthy this long: crash count reset */
#define NODE_LOG_TAIL_ERROR	20	/* log lines put in a start failure */

enum env_state {
	ENV_NOTDEPLOYED, ENV_STOPPED, ENV_STARTING, ENV_RUNNING, ENV_STOPPING,
	ENV_FAILED,
};

enum inst_state {
	INST_NONE,		/* slot unused */
	INST_STARTING,		/* spawned, health path not answering yet */
	INST_RUNNING,		/* health path answered */
	INST_BACKOFF,		/* died; respawn at next_try */
	INST_STOPPING,		/* SIGTERM sent at term_at */
};

struct instance {
	pid_t			 pid;		/* 0: no process */
	unsigned long long	 starttime;	/* /proc/<pid>/stat field 22 */
	int			 owned;		/* our child (else re-adopted) */
	int			 port;
	enum inst_state		 state;
	double			 started_at;	/* monotonic seconds */
	double			 healthy_at;
	double			 next_try;
	double			 term_at;
	long long		 oom_kills;	/* its cgroup's count at spawn */
	int			 crashes;	/* in a row, without staying up */
	int			 restarts;	/* since the environment started */
	long long		 memory_mb;	/* the limit it was started with */
	char			 last_exit[128];	/* why it last ended
						 * unasked ("" none since the
						 * environment started) */
	time_t			 last_exit_at;
};

struct env {
	long long		 id;		/* the portal's environments.id */
	char			*dir;		/* DIR/envs/<id> */
	json_t			*spec;		/* desired spec from the portal */
	char			*package;	/* transported package, or NULL */
	char			*start;		/* manifest: start file */
	char			*health;	/* manifest: health path */
	enum env_state		 state;
	int			 want_running;
	int			 restart_pending;
	int			 routed_pending;	/* healthy; running once routed */
	int			 rolling;	/* instances restart one at a time
						 * onto a new memory limit */
	int			 removed;	/* the portal no longer lists it */
	double			 put_at;	/* util_mono() of the portal's
						 * last PUT of its spec */
	double			 start_deadline;
	int			 held;		/* a start past its deadline that
						 * waits for the node's
						 * PostgreSQL or nginx */
	char			*error;		/* why it failed */
	char			*router_error;	/* what the router left out, why */
	int			 router_refused;	/* its hostnames not served */
	char			*db_password;
	uid_t			 uid;		/* its own OS user (and group);
						 * -1: the node is not root */
	struct instance		 inst[NUBO_INSTANCES_MAX];
	struct env		*next;
};

/* Where the router listens (--router-listen, --router-tls-listen). */
struct router_listener {
	char			*addr;		/* "IP:PORT", nginx's listen form */
	int			 tls;		/* HTTPS */
	int			 redirect;	/* plain outside loopback: answers
						 * 308 to HTTPS, serves no app */
};

struct node {
	char			*data_dir;
	char			*portal_url;
	char			*token;
	char			*listen;
	char			*agent_url;	/* how the portal reaches us */
	/* TLS (node.c): the agent's certificate and key (PEM; also its
	 * client certificate to the portal, which pins its key), the CA
	 * the portal's certificate is verified against (NULL: the
	 * system's), plain HTTP allowed outside loopback */
	struct http_tls		 tls;
	char			*portal_ca;
	char			*user;		/* OS user of nginx's workers */
	char			*pg_uri;	/* --pg: an existing server */
	/* the router's listeners (router_listen_setup()): --router-port and
	 * --router-tls-port are 127.0.0.1 shorthands (0: not given) */
	unsigned		 router_port;
	unsigned		 router_tls_port;
	struct router_listener	*router_listeners;
	int			 nrouter_listeners;
	/* the certificate of app hostnames on the HTTPS listeners (PEM;
	 * read again on SIGHUP), NULL: only custom domains there */
	const char		*router_tls_cert;
	const char		*router_tls_key;
	/* automatic certificates for the app hostnames (acme.c) */
	const char		*acme_directory;
	const char		*acme_email;
	const char		*acme_ca;
	unsigned		 pg_port;
	int			 port_lo, port_hi;
	int			 start_timeout;	/* seconds */
	int			 stop_grace;	/* seconds */
	long long		 package_quota;	/* bytes, all repositories */
	long long		 app_package_quota;	/* bytes, each app's */
	long long		 env_disk_max;	/* bytes a restore may write into
						 * one environment; 0: no cap */
	uid_t			 uid;		/* of user; -1: not root */
	gid_t			 gid;
	uid_t			 pg_uid;	/* the cluster's ("<user>-pg") */
	gid_t			 pg_gid;
	uid_t			 uid_lo, uid_hi;	/* environments' users */
	int			 egress;	/* --egress: sandboxes reach out
						 * through slirp4netns */

	/* from the portal (DIR/agent.json) */
	char			*secret;
	char			*name;
	char			*generation;
	char			*cloud_domain;
	int			 registered;

	pthread_mutex_t		 lock;		/* envs and everything in them */
	struct env		*envs;
	int			 router_dirty;
	struct http_server	*http;
	/* the node's own parts (heal.c): why PostgreSQL or nginx is down
	 * while the node restarts it, NULL when it serves */
	char			*pg_down;
	char			*router_down;
};

extern struct node *node;

/* node.c */
/* POST {portal}/api/v1<path> with the node token. The HTTP status (and
 * *out), or -1 when the portal cannot be reached. */
int portal_post(const char *path, json_t *body, json_t **out);
/* Save DIR/agent.json. */
int node_save_agent(void);
/* Run argv (argv[0] a full path) as root (NODE_RUN_ROOT: the agent's own
 * user) or as the cluster's OS user (NODE_RUN_PG), wait for it, capture
 * up to outlen bytes of combined output. The exit status as waitpid gives
 * it, or -1 when it could not run. */
#define NODE_RUN_ROOT	0
#define NODE_RUN_PG	1
int node_run(char *const argv[], int as, char *out, size_t outlen);
/* chown path to the node's user (nginx's workers; when running as root). */
void node_chown(const char *path);
/* chown path to environment e's own user. */
void env_chown(struct env *e, const char *path);
/* File work in an environment's files folder, done as its user on this
 * thread (setfsuid/setfsgid; -1: no change): what the node creates there
 * is the app's, and links the app planted lead only where the app itself
 * may go. Between enter and leave only that folder is touched. */
void env_fs_enter(uid_t uid);
void env_fs_leave(uid_t uid);

/* envs.c — environments (caller holds node->lock unless said otherwise) */
const char *env_state_name(enum env_state);
struct env *env_find(long long id);
/* Find or create the environment for a spec from the portal and apply it. */
struct env *env_apply_spec(json_t *spec, int *routing_changed);
/* Load every DIR/envs/<id>/env.json at start. */
int env_load(void);
/* Remove the temp files a crash left by util_write_file() (agent.json,
 * pg/admin.json, downloads, every env.json): at start, before loading. */
void env_remove_temps(void);
int env_save(struct env *);
/* The environment as the agent API and the heartbeat show it. */
json_t *env_json(struct env *);
/* Actions; 0, or -1 with *status and *code and *cause for the reply. */
int env_start(struct env *, unsigned *status, const char **code,
    char **cause);
int env_stop(struct env *, unsigned *status, const char **code,
    char **cause);
int env_restart(struct env *, unsigned *status, const char **code,
    char **cause);
/* transport and clean take the lock themselves (long work outside it). */
int env_transport(struct env *, const char *package, unsigned *status,
    const char **code, char **cause);
int env_clean(struct env *, unsigned *status, const char **code,
    char **cause);
/* Desired instance count (v3: always 1). */
int env_instances_wanted(struct env *);
/* 1 when some instance of e has a process (caller holds the lock). */
int env_any_alive(struct env *);
const char *env_name(struct env *);
/* Append a supervisor line to the environment's app log. */
void env_log(struct env *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The last n lines of the app log (caller frees). */
char *env_log_tail(struct env *, int n);
char *env_log_path(struct env *);
/* Rotate the app log past NUBO_LOG_ROTATE_SIZE (copy-truncate). */
void env_log_rotate(struct env *);

/* supervisor.c */
void supervisor_start(void);
/* Re-adopt instances recorded in env.json after a node restart. */
void supervisor_adopt(struct env *);
/* supervisor_adopt() of every environment, at start before the router's
 * first config (what kept serving stays routed). */
void supervisor_adopt_all(void);
/* Send SIGTERM to every instance, wait stop_grace, SIGKILL the rest. */
void supervisor_kill_all(struct env *);
/* 1 when the instance's process is still alive. */
int supervisor_alive(struct instance *);
/* Run the next supervision pass now (an environment was told to start or
 * stop), not after the idle pause. */
void supervisor_wake(void);

/* sandbox.c — how an instance is confined (ARCHITECTURE, Security model) */
/* Check bubblewrap and nubo-init, make DIR/run; at start. */
int sandbox_setup(void);
/* Give e its own OS user (claim its recorded uid, or a new one from the
 * node's range: the files folder follows). 0, or -1 when the range is
 * full. Caller holds the lock. */
int sandbox_env_user(struct env *e);
/* Give back a uid claimed for environment env_id. */
void sandbox_uid_release(uid_t uid, long long env_id);
/* DIR/run/i-<env>-<index>.sock: the router's way to instance index
 * (1-based). Caller frees. */
char *sandbox_socket_path(long long env_id, int index);
/* Point a curl handle at instance index of env_id (its socket). */
void sandbox_curl_instance(void *curl, long long env_id, int index);
/* Make the cgroup(s) of instance index with its limits: a
 * NULL-terminated list of cgroup.procs files to join (caller frees);
 * *memory is 1 when a memory limit is among them. */
char **sandbox_cgroup(long long id, int index, long long memory_mb,
    int *memory);
/* How many times the kernel killed instance index for memory. */
long long sandbox_oom_kills(long long id, int index);
void sandbox_cgroup_remove(long long id, int index);
/* A memfd of /etc/passwd or /etc/group with e's user added; -1. */
int sandbox_identity_fd(struct env *e, const char *file);
/* A sandbox's way out (a node started with --egress): the fds, as
 * bubblewrap gets them, of its --info-fd (the child's pid, for
 * slirp4netns), its --block-fd (the network is up, or its helper gone),
 * the pipe nubo-init holds while the helper runs (--egress-fd), and the
 * sandbox's /etc/resolv.conf (sandbox_resolv_fd()). */
#define NODE_SLIRP4NETNS	"/usr/bin/slirp4netns"	/* --egress */
struct sandbox_net {
	int	info_fd;
	int	block_fd;
	int	hold_fd;
	int	resolv_fd;
};
/* A memfd holding the sandbox's resolv.conf: the host's resolvers that
 * are not on its loopback (behind systemd-resolved's stub, the servers
 * it forwards to); *servers says how many. -1 on error. */
int sandbox_resolv_fd(int *servers);
/* In a mount namespace of its own (the caller's, made with unshare):
 * the folders a sandbox does not see and the node's data folder replaced
 * by empty ones, for the network helper. -1 with errno. */
int sandbox_hide_host(void);
/* bubblewrap's argv running cmd (NULL-terminated) as sandbox index
 * (instances 1..NUBO_INSTANCES_MAX, one-off runs above); listen_fd -1:
 * no router socket; log_tag: the tag nubo-init stamps on each line of
 * output, or NULL. sandbox_argv_free() it. */
char **sandbox_argv(struct env *e, int index, int port, char *const *cmd,
    int listen_fd, int passwd_fd, int group_fd, const char *log_tag,
    const struct sandbox_net *net);
/* The instance's working area DIR/envs/<id>/work/<index>: made afresh
 * from app/ at every start of the instance — folders the environment's
 * user's, files hard links to the package's (read-only; the app may
 * replace them), so it is writable, private to the instance and lost
 * when it starts again, like a Heroku dyno's. -1 with *cause. */
int sandbox_work_make(struct env *e, int index, char **cause);
void sandbox_work_remove(struct env *e, int index);
char *sandbox_work_path(struct env *e, int index);
void sandbox_argv_free(char **argv);
/* The group of the router's workers (their way to the sockets). */
gid_t sandbox_router_group(void);
/* DATABASE_URL's port inside a sandbox. */
int sandbox_db_port(void);
/* RLIMIT_NPROC of an environment's user. */
int sandbox_nproc_max(void);

/* runs.c */
/* Stop every one-off run of environment id (it is being deleted). */
void runs_stop_env(long long id);

/* spawn.c */
/* How to start a process in an environment's sandbox. */
struct spawn_how {
	int		 index;		/* sandbox index (sandbox_argv()) */
	int		 port;		/* its $PORT */
	char *const	*cmd;		/* what runs inside, NULL-terminated */
	const char	*run_id;	/* a one-off run's id, or NULL */
	const char	*log_tag;	/* each output line stamped, or NULL */
	int		 listen_fd;	/* the router's socket, or -1 */
	int		 in_fd;		/* stdin, or -1 for /dev/null */
	int		 out_fd;	/* stdout and stderr */
	int		 die_with_node;	/* killed when the node's thread ends */
};
/* Start h->cmd in a fresh sandbox of env (working area, cgroup limits,
 * its own user); the pid (bubblewrap's outer process, a session leader),
 * or -1 with *cause. Caller holds the lock. */
pid_t spawn_sandboxed(struct env *, const struct spawn_how *h,
    char **cause);
/* Start instance i of env in its sandbox; the pid, or -1 with *cause. */
pid_t spawn_instance(struct env *, int i, char **cause);
/* A free port of the configured range not used by any instance. */
int spawn_pick_port(void);
/* /proc/<pid>/stat start time, 0 when no such process (or a zombie). */
unsigned long long spawn_starttime(pid_t pid);
/* /proc/<pid>/<what> (its first len-1 bytes) into buf, NUL-terminated:
 * 0, or -1 when the process or file is gone or empty. */
int spawn_proc_read(pid_t pid, const char *what, char *buf, size_t len);

/* pg.c */
/* Initialise (first time) and start the node's cluster, or check --pg:
 * -1 when the node cannot go on (initdb failed, --pg unreachable); a
 * cluster that does not start is left to the heal thread (0). */
int pg_start(void);
/* Stop the node's own cluster (nubod node stop-all). */
void pg_stop(void);
/* One check of the cluster (heal.c): its postmaster is gone — kill the
 * processes it left and start it again (back-off); with --pg, whether
 * the server answers. */
void pg_watch(void);
/* Make sure env's role and database exist (password from env.json). */
int pg_env_ensure(struct env *, char **cause);
/* Drop and re-create env's database (clean). */
int pg_env_wipe(struct env *, char **cause);
/* 0 when the database server answers; -1 with *cause. */
int pg_reachable(char **cause);
/* Drop environment id's database (and any left by an interrupted restore
 * or import) and its role; 0 also when already gone. */
int pg_env_drop(long long id, char **cause);
/* postgresql://role:password@host:port/db, as the node reaches it
 * (caller frees). */
char *pg_env_url(struct env *);
/* The same database as the app reaches it from its sandbox:
 * postgresql://env_<id>:password@127.0.0.1:5432/env_<id>. */
char *pg_env_app_url(struct env *);
/* The folder to bind into e's sandbox and the database socket's name in
 * it (caller frees both); -1 when there is none. */
int pg_app_socket(struct env *e, char **dir, char **name);
/* --pg over TCP: the instances that kept running while the agent was
 * away reach the database through the last agent's relay; listen on
 * their sockets again (after pg_start() and supervisor_adopt_all()). */
void pg_relay_adopted(void);
/* Environment id is gone: stop relaying its database socket (--pg). */
void pg_relay_forget(long long id);
/* libpq conninfo of the admin connection (caller frees). */
char *pg_admin_conninfo(void);
/* The admin connection (libpq's PGconn); NULL with *cause when the
 * server does not answer. */
struct pg_conn *pg_admin_connect(char **cause);
/* Run sql on c: 0, or -1 with *cause set (replacing what it held) when
 * cause is not NULL. */
int pg_admin_exec(struct pg_conn *c, const char *sql, char **cause);
/* A connection to database db as the admin (whatever settings a dump
 * left on it do not apply: writable, no timeouts); NULL with *cause. */
struct pg_conn *pg_admin_connect_db(const char *db, char **cause);
/* In database db, close to PUBLIC the shared catalogs and views that
 * show the cluster's sessions, memberships and dependencies (their
 * privileges are kept per database; the lists of databases and roles stay
 * open, as PostgreSQL has them): 0, or -1 with *cause. */
int pg_db_close_catalogs(const char *db, char **cause);
/* transfer.c: download url (another node's signed URL) into fd, at most
 * max bytes. 0, or -1 with *cause (the source's own words for an error
 * answer) and *unreachable 1 when the source could not be reached. */
int transfer_fetch_fd(const char *url, int fd, long long max,
    int *unreachable, char **cause);
/* The admin's URL into the environment's database, for nubo's own dumps
 * (pg_dump -Fc reads the database's comment, settings and labels from
 * catalogs closed to the environment's role); caller frees. */
char *pg_env_dump_url(struct env *);
/* 1 when database name exists, 0 when not, -1 when the query failed. */
int pg_db_exists(struct pg_conn *c, const char *name);
/* "env_<id>" (caller frees). */
char *pg_env_dbname(struct env *);
/* 0 when the server runs with wal_level = logical (logical replication
 * works); -1 with *cause saying what it runs with and what to do. */
int pg_wal_level_ok(char **cause);
/* Render pg_hba.conf again (the replication rules may have changed) and
 * reload it: 0 once new sessions get the new rules, -1 with *cause (the
 * node's own cluster only; --pg servers have their operator's). */
int pg_hba_apply(char **cause);
/* Replication to another host: 0 when the cluster serves TLS on the
 * node's own address (into addr, canonical), -1 with *cause saying why
 * not (no HTTPS agent on an address of its own, or a cluster started
 * without it: restart it). */
int pg_tls_serving(char *addr, size_t addrlen, char **cause);
/* The certificate the cluster presents there (PEM, caller frees): the
 * trust anchor a target's subscription verifies it with; NULL when none. */
char *pg_tls_cert_pem(void);
/* Keep pem, the certificate a subscription verifies its source with,
 * where the cluster's user reads it: its path (caller frees), or NULL
 * with *cause. pg_tls_root_remove() removes it with the subscription. */
char *pg_tls_root_write(const char *subscription, const char *pem,
    char **cause);
void pg_tls_root_remove(const char *subscription);

/* dbcred.c */
/* Start the thread that drops expired database credentials. */
void dbcred_start(void);

/* env-delete.c (caller holds the lock) */
/* 1 when id was deleted here lately and the portal may still list it:
 * its spec must not bring it back. */
int env_delete_tombstoned(long long id);
/* A complete spec list from the portal: ids it no longer lists are gone
 * there too, so their tombstones go. */
void env_delete_listed(json_t *specs);
/* The portal pushed a spec for id (PUT): it has such an environment. */
void env_delete_forget(long long id);

/* downloads.c: complete downloads of full snapshot archives and package
 * files, reported to the portal (seed §3.3, offboarding). */
struct areq;
/* Serve fd (taken over; Range works) as the download of kind ("snapshot"
 * or "package") id; a signed URL's user gets it counted. */
void downloads_serve(struct areq *, int fd, uint64_t total,
    const char *ctype, const char *filename, const char *kind,
    const char *id);
struct http_body_maker;
/* The same for a body made on demand (http_reply_made()): a snapshot
 * assembled from the store. */
void downloads_serve_made(struct areq *, const struct http_body_maker *m,
    uint64_t total, const char *ctype, const char *filename,
    const char *kind, const char *id);
/* The thread that reports complete downloads to the portal. */
void downloads_start(void);

/* heal.c — the node's own parts, supervised like instances */
/* One part (PostgreSQL, nginx): when it went down, its restarts. */
struct heal {
	const char	*what;		/* "PostgreSQL", "nginx" */
	char		**slot;		/* &node->pg_down, &node->router_down */
	double		 down_since;	/* monotonic; 0: up */
	double		 next_try;
	double		 up_since;
	int		 attempts;	/* restarts without staying up */
	int		 external;	/* not ours to restart (--pg) */
};
/* Watch PostgreSQL and nginx twice a second from a thread of their own:
 * restart what died (with back-off), after killing what it left. */
void heal_start(void);
/* The part is gone (why: what was seen): marks it down (logged once,
 * shown on the environments). 1 when a restart is due now. */
int heal_gone(struct heal *, const char *why);
/* A restart was tried: cause NULL when it worked, else the next one
 * waits 1, 2, 4 … 30 s. */
void heal_tried(struct heal *, const char *cause);
/* The part is seen alive (after a restart, or started by someone). */
void heal_alive(struct heal *);
/* The part did not start with the agent (cause: its own words): the
 * agent runs on, the part is down and the heal thread retries it with
 * back-off. */
void heal_not_started(struct heal *, const char *cause);
/* 1 when pid is a live process (not a zombie) whose name starts with
 * comm. */
int heal_proc_is(pid_t pid, const char *comm);
/* The pid a pid file names when it is a live process named comm…, else
 * 0. */
pid_t heal_pidfile(const char *path, const char *comm);
/* Up to max live processes named comm… whose working folder is dir
 * (resolved): their count, pids in out. */
int heal_proc_in_dir(const char *dir, const char *comm, pid_t *out, int max);
/* Why environments that run are degraded now (PostgreSQL or nginx
 * down), NULL when nothing is. Caller holds the lock. */
const char *heal_degraded(void);

/* router.c */
/* Add a listener from an option ("IP:PORT"); -1 with the cause in
 * error() when it is not an address. */
int router_listen_add(const char *addr, int tls);
/* After the options: the 127.0.0.1 shorthands and the default, then the
 * rules — plain HTTP outside loopback serves apps only with
 * --insecure-http, else redirects to an HTTPS listener, else is refused;
 * the app hostnames' certificate loads. 0, or -1 with the cause in
 * error(). */
int router_listen_setup(void);
/* The address the portal and users reach the router at, for the
 * registration: the first HTTPS listener when app hostnames are served
 * there (tls: --router-tls-cert) or the first plain one serving apps, a
 * wildcard's host replaced by the agent URL's; NULL when there is none
 * (caller frees). */
char *router_public(int tls);
/* A line saying where the router listens, for the log (caller frees). */
char *router_listen_text(void);
/* A hostname safe in the router config: [a-z0-9.-] only (router.c). */
int router_host_ok(const char *host);
/* Create nginx's folders and start it: -1 when a folder cannot be
 * made; an nginx that does not start is left to the heal thread (0). */
int router_start(void);
/* Render, check with nginx -t, swap atomically, reload. Takes the lock. */
int router_reload(void);
void router_stop(void);
/* An environment's access log on the router (nginx's logs folder), and
 * the line that makes a server write it (router.c). */
char *router_access_log_path(long long env_id);
/* Remove an environment's access log and its rotations (deleted). */
void router_access_log_remove(long long env_id);
void router_piece_access_log(struct buf *, long long env_id);
/* One check of nginx's master (heal.c): alive — record its workers;
 * gone — kill the workers it left and start nginx again (back-off). */
void router_watch(void);

/* constants.c: NUBO_CONST_<NAME> → default from the deployed package's
 * manifest, for every constant that declares one (new object). */
json_t *constants_defaults(struct env *);
/* 0 when every constant the deployed package declares without a default
 * has a value in the spec; else -1 with *cause naming them (the start's
 * MISSING_CONSTANT). */
int constants_missing(struct env *, char **cause);

/* events.c: the scheduled-events thread (SPEC §2 Model Options). */
void events_start(void);

/* packages.c — the package repositories: the node's (DIR/packages) and,
 * on the sandbox node, one per app (DIR/app-packages/<app uuid>) */
/* Remove what a crash left of uploads and deletions; at start. */
void packages_init(void);
/* "SIZE" in bytes, or with a K, M or G suffix (powers of 1024); -1 when
 * it is not one. */
int packages_parse_size(const char *s, long long *out);
/* The folder of the repository environment e deploys from (its spec's
 * "repository", else the node's); NULL when the spec's is malformed. */
char *packages_env_dir(struct env *e);
/* The file of package id in e's repository, or NULL when it has none. */
char *packages_env_file(struct env *e, const char *id);
/* e was deleted: its app's repository goes too when no other environment
 * of the node deploys from it. */
void packages_env_deleted(struct env *e);

/* space.c — room on the node's disk */
/* Free and total bytes of the data folder's filesystem, and the reserve
 * the node keeps free; -1 when it cannot tell. */
int space_of(long long *free_bytes, long long *total, long long *reserve);
/* The figures for the heartbeat (free_bytes, total_bytes, reserve_bytes,
 * low). */
json_t *space_json(void);
/* 0 when need bytes fit and leave the reserve, else -1 with *cause
 * naming the node, what, the need and the free space; a negative need
 * (a sum that wrapped) is refused, whatever the disk holds. */
int space_check(long long need, const char *what, char **cause);
/* space_check(), answering 507 NOT_ENOUGH_SPACE when it fails (-1). */
int space_refuse(struct areq *r, long long need, const char *what);
/* Keep or release DIR/pg/ballast, room held for PostgreSQL's WAL that
 * the node frees when the disk is nearly full (heal.c, twice a second). */
void space_watch(void);
/* Bytes of the files under dir (regular files; links not followed). */
long long space_tree(const char *dir);
/* What a snapshot of e writes at most: its dump and its archive. */
long long space_snapshot_need(struct env *e);
struct areq;
/* Refuse (507, -1) a restore of snapshot (here) when what it writes —
 * the database, as much WAL, its files unless database_only — does not
 * fit. */
int space_refuse_restore(struct areq *r, const char *snapshot,
    int database_only);
/* Refuse (507, -1) an import of files ([{size}]) and a database of
 * database bytes (as much again for its WAL) that does not fit. */
int space_refuse_import(struct areq *r, json_t *files, long long database);

/* backup.c */
/* Settle restores a killed node left half-done (at start, after pg). */
void backup_recover(void);
/* 1 while a restore of this environment runs (start is refused). */
int backup_env_busy(long long env_id);
/* Free what no snapshot or copy names, soon (the sweeper thread). */
void backup_store_sweep_soon(void);
/* The environment was deleted: its snapshots on this node go with it
 * (each as DELETE /agent/v1/snapshots/{id} deletes one; one that runs
 * stays, said in the log), then the sweep. How many went. */
int backup_env_deleted(long long env_id);
/* Work in progress by uuid, shared with snapcopy.c: add (0, or -1 when
 * that id runs already), remove, report progress; a record with its
 * progress while it runs (a "progress" key then). */
int backup_task_add(const char *id);
void backup_task_remove(const char *id);
void backup_task_progress(const char *id, long long done, long long total);
json_t *backup_with_progress(json_t *j, const char *id);

/* snapcopy.c: off-node copies of snapshots kept on this node */
/* The manifest of this node's completed copy of snapshot id, or NULL
 * (caller frees). */
char *snapcopy_manifest(const char *id);
/* The path of the record of this node's copy of id (caller frees). */
char *snapcopy_record_path(const char *id);
/* At start: copies that were running are failed (the portal asks
 * again and they resume). */
void snapcopy_recover(void);

/* snapshot-convert.c: whole-archive snapshots into the store */
struct snapstore_stats;
/* The snapshot's folder locked (flock), waiting for it or not: the fd,
 * or -1 (errno: ENOENT no such snapshot, EWOULDBLOCK held). A conversion
 * holds it; a DELETE takes it without waiting. */
int snapshot_lock(const char *id, int wait);
/* Convert snapshot id if it is a whole archive, or remove what a
 * conversion killed after its manifest left. 1 converted (*st filled,
 * may be NULL), 2 leftovers removed, 0 nothing to do (in the store, not
 * completed, gone), -1 with *cause (it stays as it was). */
int snapshot_convert(const char *id, struct snapstore_stats *st,
    char **cause);
/* A snapshot touched: leftovers of a conversion removed; converted
 * when convert is set and it is a whole archive. Failures are logged:
 * the snapshot stays a whole archive, which still works. */
void snapshot_convert_touch(const char *id, int convert);
/* `nubod node convert-snapshots`: every snapshot of node->data_dir;
 * the exit status. */
int snapshot_convert_main(void);

/* agent-routes.c */
struct http_server *agent_routes_listen(const char *listen,
    const struct http_tls *tls);

/* fsck.c — the snapshot store checked (issue #16) */
/* `nubod node fsck`: print what the check finds (JSON with json); fsck(8)'s
 * exit status: 0 whole, 1 damage found, 2 the check could not run. */
int fsck_main(int json);
/* The weekly check's thread (after backup_recover()'s sweep). */
void fsck_start(void);

#endif
