/* Every cap on input from outside lives here. Crossing one is an ordinary
 * error (HTTP 413 or a validation error), never a crash. */
#ifndef NUBO_LIMITS_H
#define NUBO_LIMITS_H

#define NUBO_JSON_BODY_MAX      (1024 * 1024)       /* API request bodies */
#define NUBO_JSON_DEPTH_MAX     32                  /* nesting of any JSON document */
#define NUBO_HTTP_URL_MAX       4096
/* Connections to the portal and the node agent (src/common/httpd.c): at
 * most CONNECTIONS (fewer when the descriptor limit is lower), of which
 * the last 1/RESERVE_DIV are kept for trusted addresses (nodes at the
 * portal, the portal at a node); at most PER_ADDRESS from one address.
 * A connection waiting for a request's headers is closed after
 * HEADER_SECS without a byte, one in a request after IO_SECS. */
#define NUBO_HTTP_CONNECTIONS   4096
#define NUBO_HTTP_RESERVE_DIV   8
#define NUBO_HTTP_PER_ADDRESS   128
/* libmicrohttpd memory per connection of a node's agent server, which
 * takes bulk uploads (half is the read buffer; the default is 32 KB) */
#define NUBO_HTTP_BULK_CONN_MEMORY (256 * 1024)
#define NUBO_HTTP_HEADER_SECS   10
#define NUBO_HTTP_IO_SECS       60
/* a server stopping answers the requests it has begun (a held one just
 * resumed among them) for up to this long before it closes them */
#define NUBO_HTTP_DRAIN_MS      3000
#define NUBO_HTTP_TRUSTED_MAX   4096                /* trusted addresses */
#define NUBO_PATH_PARAMS_MAX    8
#define NUBO_NAME_MAX           128                 /* display names, env names */
#define NUBO_EMAIL_MAX          254
#define NUBO_PASSWORD_MIN       8
#define NUBO_PASSWORD_MAX       1024
/* password logins (POST /sessions): failures counted per account and per
 * client address within a window; reaching the cap locks that account or
 * address out for NUBO_LOGIN_LOCKOUT_SECS (src/portal/lockout.c) */
#define NUBO_LOGIN_ACCOUNT_FAILURES 5
#define NUBO_LOGIN_ADDRESS_FAILURES 20
#define NUBO_LOGIN_WINDOW_SECS  (15 * 60)
#define NUBO_LOGIN_LOCKOUT_SECS (15 * 60)
/* A browser session (POST /session, src/portal/route-users.c) ends this
 * long after sign-in, or at sign-out. */
#define NUBO_WEB_SESSION_SECS   (12 * 3600)
#define NUBO_COMMENT_MAX        1024
#define NUBO_LIST_MAX           1000                /* items in any list field */
#define NUBO_NODE_ENVS_MAX      32                  /* environments of one node */
#define NUBO_ACTIVITY_PAGE_MAX  1000                /* activity entries per request */

#define NUBO_PACKAGE_MAX        (2LL * 1024 * 1024 * 1024)  /* package upload */
#define NUBO_PACKAGE_ENTRY_MAX  (1LL * 1024 * 1024 * 1024)  /* one file in a package */
#define NUBO_PACKAGE_ENTRIES_MAX 100000
#define NUBO_MANIFEST_MAX       (64 * 1024)
#define NUBO_PACKAGE_EXPANDED_MAX (4LL * 1024 * 1024 * 1024) /* all entries of a package */
#define NUBO_PACKAGE_PATH_MAX   1024                /* an entry's path or link target */
#define NUBO_PACKAGE_CONSTANTS_MAX 256
#define NUBO_PACKAGE_EVENTS_MAX 64
#define NUBO_PACKAGE_CONST_VALUE_MAX 4096           /* a string constant's value */

#define NUBO_ARCHIVE_ENTRIES_MAX 2000000           /* backup archive members */
#define NUBO_ARCHIVE_RATIO_MAX  1000                /* expanded / compressed: gzip bombs */
#define NUBO_ARCHIVE_RATIO_MIN_BYTES (64LL * 1024 * 1024) /* ratio checked past this */
#define NUBO_BACKUP_UPLOAD_MAX  (64LL * 1024 * 1024 * 1024) /* uploaded backup archive */
#define NUBO_NIGHTLY_ATTEMPTS   3                   /* a failed nightly is retried twice */
#define NUBO_NIGHTLY_RETRY_SECS (15 * 60)
#define NUBO_METADATA_MAX       (64 * 1024)
/* Any one size a snapshot's manifest or record gives (a file, a blob,
 * the dump, a segment of its download), and what a manifest's sizes add
 * up to: at most 1 PiB, so that no sum of them wraps. An off-node copy's
 * manifest and record come from another node (src/node/snapcopy.c). */
#define NUBO_SNAPSHOT_SIZE_MAX  (1LL << 50)
/* An off-node copy's requests to the snapshot's node (src/node/
 * snapcopy.c): stopped once slower than SPEED_MIN bytes a second for the
 * request's window (60 s for the manifest, 120 s for blobs: a stalled
 * source), and once longer than GRACE_SECS plus the bytes asked for at
 * RATE_MIN a second, whatever the speed (a source trickling just above
 * the floor would hold the store's lock, which the sweep waits for, for
 * days); of an answer that is an error, at most ERROR_BODY_MAX bytes are
 * read. */
#define NUBO_COPY_SPEED_MIN     1024
#define NUBO_COPY_RATE_MIN      (64 * 1024)
#define NUBO_COPY_GRACE_SECS    120
#define NUBO_COPY_ERROR_BODY_MAX 4096
/* free space a restore leaves on the node's disk (PostgreSQL's WAL and
 * every other environment must never hit a full disk) */
#define NUBO_NODE_DISK_RESERVE  (256LL * 1024 * 1024)

/* environment settings (SPEC §2 Configuration) */
#define NUBO_SETTING_VALUE_MAX  (32 * 1024)         /* one constant / env var / runtime value */
#define NUBO_SETTINGS_ITEMS_MAX 256                 /* entries in any one settings map */
#define NUBO_PEM_MAX            (64 * 1024)         /* a certificate chain, key or CA bundle */
#define NUBO_PEM_CERTS_MAX      16                  /* certificates in a chain or CA bundle */
#define NUBO_HEADER_VALUE_MAX   1024
#define NUBO_INSTANCES_MAX      16                  /* v4 instances per environment */
#define NUBO_MEMORY_MB_MIN      32
#define NUBO_MEMORY_MB_MAX      65536
#define NUBO_LOG_LINES_MAX      10000               /* lines in one logs answer */
#define NUBO_LOG_CHUNK_MAX      (1024 * 1024)       /* bytes in one logs answer */
#define NUBO_LOG_ROTATE_SIZE    (10 * 1024 * 1024)  /* app log rotated past this */

/* one-off runs (nubo envs run) */
#define NUBO_RUNS_MAX           4                   /* running at once per environment */
#define NUBO_RUN_ARGS_MAX       256                 /* words of a command */
#define NUBO_RUN_COMMAND_MAX    (64 * 1024)         /* bytes of a command, all words */
#define NUBO_RUN_INPUT_MAX      (1024 * 1024)       /* its standard input */
#define NUBO_RUN_OUTPUT_MAX     (64 * 1024 * 1024)  /* its output; stopped past this */
#define NUBO_RUN_TIMEOUT        600                 /* seconds, unless asked */
#define NUBO_RUN_TIMEOUT_MAX    (24 * 3600)
#define NUBO_RUN_KEEP_SECONDS   (24 * 3600)         /* a finished run's output kept */

/* short-lived database credentials (nubo envs db-url) */
#define NUBO_DBCRED_TTL         3600                /* seconds, unless asked */
#define NUBO_DBCRED_TTL_MIN     5
#define NUBO_DBCRED_TTL_MAX     (24 * 3600)
#define NUBO_DBCRED_CONNECTIONS 8                   /* sessions of one credential */
#define NUBO_DBCRED_SWEEP       5                   /* seconds between sweeps of expired ones */
/* sequences one call may set on a migration's target (node replication.c) */
#define NUBO_REPLICATION_SEQUENCES_MAX 10000
/* tables one rehearse may copy again (--resync), and the bytes of their
 * schema's dump a target takes from the source */
#define NUBO_RESYNC_TABLES_MAX  32
#define NUBO_RESYNC_DUMP_MAX    (16 * 1024 * 1024)

/* a --config file of nubod (src/common/opts.c) */
#define NUBO_CONFIG_MAX         (64 * 1024)         /* bytes */

#define NUBO_IO_CHUNK           (256 * 1024)        /* streaming buffer size */
/* an upload's temp file is fdatasync'ed every this many bytes as it
 * arrives (a device flush at the end would cost ~0.5 ms per MB) */
#define NUBO_UPLOAD_FLUSH_EVERY (16LL * 1024 * 1024)

#define NUBO_DOWNLOADS_TRACKED  256                 /* partial downloads a node remembers */

/* the Mendix API faces' request budget (src/portal/mx.c) */
#define NUBO_MX_RATE_DEFAULT    600                 /* requests a minute per API key */
#define NUBO_MX_RATE_KEYS       4096                /* keys tracked at once */
#define NUBO_TAG_MAX            64                  /* bytes of an environment tag */
#define NUBO_TAGS_MAX           64                  /* tags of one environment */
#define NUBO_DOWNLOAD_RESUME_SECONDS (24 * 3600)    /* how long a partial download counts */

#endif
