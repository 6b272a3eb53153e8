/* Backup archives (SPEC §3): Mendix Cloud compatible .tar.gz streams
 * holding `db/db.backup` (pg_dump custom format), `tree/…` (the
 * environment's file store), `.metadata` (JSON, all values strings) and
 * nubo's integrity member `.nubo/checksums` (sha256sum format, ignored by
 * plain readers). Written and read as streams through fixed-size buffers:
 * memory use does not grow with the size of the data. Layout and rules are
 * in docs/FORMATS.md. */
#ifndef NUBO_BACKUP_ARCHIVE_H
#define NUBO_BACKUP_ARCHIVE_H

#include <stddef.h>
#include <sys/types.h>

#define BACKUP_MODEL_VERSION_MAX 64

/* What `.metadata` says (sizes in bytes, duration in seconds). */
struct backup_meta {
	long long	 duration;
	long long	 dump_ms;	/* pg_dump's wall time here; 0: not run */
	long long	 dump_size;
	long long	 database_size;
	long long	 files_size;
	char		 model_version[BACKUP_MODEL_VERSION_MAX + 1];
	int		 nubo_format;	/* 0 when the archive is not nubo's */
};

/* Called now and then while bytes flow; total is -1 when unknown. */
typedef void (*backup_progress_fn)(void *arg, long long done, long long total);

struct backup_write_opts {
	const char	*dburl;		/* libpq URI of the environment's database */
	const char	*dump_path;	/* use this dump instead of running pg_dump */
	const char	*files_dir;	/* the file store; missing or empty: no tree/ */
	const char	*tmp_dir;	/* where the dump is spooled (unlinked file) */
	const char	*out_name;	/* the archive's path, for errors; NULL:
					 * unnamed */
	const char	*model_version;	/* "" when unknown */
	int		 level;		/* gzip level 1..9; 0: default (6) */
	int		 threads;	/* compression threads; 0: number of CPUs */
	backup_progress_fn progress;
	void		*progress_arg;
};

/* Write a full archive to out_fd. 0, with *meta filled (may be NULL), or -1
 * with *cause saying what failed (pg_dump's own message when it fails). */
int backup_archive_write(const struct backup_write_opts *o, int out_fd,
    struct backup_meta *meta, char **cause);

/* Source of archive bytes: returns bytes read, 0 at end, -1 on error. */
typedef ssize_t (*backup_read_fn)(void *ctx, void *buf, size_t len);

/* The snapshot's contents as they stream through the reader
 * (snapstore_import()): db/db.backup and every member under tree/, each
 * once its header passed the checks. Each call returns 0, or -1 with
 * *cause set, which stops the read (it fails). Whether the archive is
 * valid as a whole is known only when backup_archive_read() returns. */
struct backup_member_sink {
	/* at the header: the name without a trailing '/', AE_IFREG or
	 * AE_IFDIR, the mode's 07777 bits, mtime, the declared size */
	int	(*start)(void *arg, const char *name, int type, int mode,
		    long long mtime, long long size, char **cause);
	/* a regular member's bytes, in order */
	int	(*data)(void *arg, const void *buf, size_t len, char **cause);
	/* after a regular member's last byte */
	int	(*end)(void *arg, char **cause);
	void	*arg;
};

struct backup_read_opts {
	/* validation */
	const char	*pg_restore;	/* run `pg_restore --list` on the dump
					 * (a bare name: util_pg_tool());
					 * NULL: check the PGDMP magic only */
	int		 allow_files_only;	/* accept an archive with only tree/ */
	long long	 max_entries;	/* 0: NUBO_ARCHIVE_ENTRIES_MAX */
	long long	 max_ratio;	/* 0: NUBO_ARCHIVE_RATIO_MAX */
	long long	 ratio_min_bytes;	/* 0: NUBO_ARCHIVE_RATIO_MIN_BYTES */
	long long	 max_bytes;	/* > 0: the sizes the members declare may
					 * add up to this much at most, checked
					 * at each member's header before any of
					 * its bytes is written (a disk budget) */
	/* outputs (all optional) */
	int		 dump_fd;	/* >= 0: db/db.backup is copied here */
	const char	*tree_dir;	/* extract tree/ here (must not exist) */
	uid_t		 tree_uid;	/* owner of extracted entries; (uid_t)-1 keeps */
	gid_t		 tree_gid;
	int		 files_fd;	/* >= 0: a files-only .tar.gz of tree/ */
	/* with pg_restore NULL: called at db/db.backup's header with its
	 * size; returns a pipe the dump streams into instead of dump_fd (the
	 * reader closes it at the member's end; a reader that stops early is
	 * not an error), or -1 to copy it to dump_fd */
	int		(*dump_start)(void *arg, long long size);
	/* called once db/db.backup has been copied completely, so the caller
	 * can start pg_restore while tree/ is still extracting */
	void		(*dump_done)(void *arg);
	void		*dump_done_arg;	/* for dump_start and dump_done */
	const struct backup_member_sink *sink;	/* NULL: none */
	backup_progress_fn progress;
	void		*progress_arg;
};

/* What was found in an archive. */
struct backup_info {
	struct backup_meta meta;
	int		 has_metadata;
	int		 has_db;
	int		 has_checksums;	/* nubo's integrity member was present
					 * and every checksum matched */
	long long	 entries;
	long long	 files;		/* regular files under tree/ */
	long long	 files_bytes;
	long long	 dump_bytes;
	long long	 compressed_bytes;
	long long	 expanded_bytes;
	long long	 declared_bytes;	/* sizes the regular members declare:
					 * what extracting them writes */
	char		 warning[256];	/* "" or what is odd but accepted (a
					 * filesSize that differs from tree/) */
};

/* Set o to defaults (no outputs, fds -1, ids -1). */
void backup_read_opts_init(struct backup_read_opts *o);

/* Read, validate and optionally extract an archive. 0 when every rule of
 * docs/FORMATS.md holds; -1 with *cause ("archive member 'tree/../x'
 * escapes the archive root", "gzip data is corrupt: incorrect data check",
 * …). On -1 the outputs hold partial data the caller must discard. */
int backup_archive_read(backup_read_fn rd, void *ctx,
    const struct backup_read_opts *o, struct backup_info *info, char **cause);
/* The same, reading from a file descriptor. */
int backup_archive_read_fd(int fd, const struct backup_read_opts *o,
    struct backup_info *info, char **cause);

struct backup_restore_opts {
	const char	*dburl;		/* a NEW, empty database to restore into */
	const char	*tree_dir;	/* a NEW folder for tree/ (must not exist);
					 * NULL: database only */
	const char	*tmp_dir;	/* where the dump is spooled */
	int		 jobs;		/* pg_restore -j; 0: one for a small dump,
					 * else the number of CPUs */
	const char	*pg_restore;	/* NULL: util_pg_tool("pg_restore");
					 * a bare name: util_pg_tool(name) */
	long long	 max_bytes;	/* > 0: backup_read_opts.max_bytes */
	uid_t		 uid;		/* owner of restored files; -1 keeps */
	gid_t		 gid;
	backup_progress_fn progress;
	void		*progress_arg;
};

/* Restore an archive into a new database and a new folder: the archive is
 * validated while it streams, pg_restore -j runs as soon as db/db.backup is
 * spooled (while tree/ still unpacks). 0 when both are complete and every
 * check passed; -1 with *cause — the caller then drops the new database
 * and folder, and the environment's current data was never touched. */
int backup_restore(int archive_fd, const struct backup_restore_opts *o,
    struct backup_info *info, char **cause);

struct buf;
/* Append the `.nubo/checksums` line of a member (sha256sum format; names
 * with '\\' or '\n' get a leading backslash and are escaped). */
void backup_checksum_line(struct buf *b, const unsigned char md[32],
    const char *path);

/* File names of downloads (SPEC §3): snapshot id, creation time. */
char *backup_archive_name_full(const char *snapshot_id, long long created);
char *backup_archive_name_db(const char *snapshot_id, long long created);
char *backup_archive_name_files(const char *snapshot_id, long long created);

#endif
