/* `nubod archive …`: backup archives by hand — create one from a database
 * and a files folder, check one, restore one into a new database and
 * folder; and the snapshot store's side as the node runs it — take a
 * snapshot into a store, assemble a snapshot's download from it, sweep
 * it. Used by bench/backup and handy when debugging an upload. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "backup-archive.h"
#include "opts.h"
#include "snapstore.h"
#include "util.h"
#include "xmalloc.h"

/* Every option of `nubod archive`: parses the command line and a --config
 * file, prints --help and its part of nubod(8) (opts.h). */
static const struct opt tool_opts[] = {
	OPT_ROW_CONFIG(""),
	{ "db", "URL", 'd', OPT_SECRET,
	    "create: the database to dump; restore: the new database to restore "
	    "into (postgresql://...)" },
	{ "files", "DIR", 'f', 0,
	    "create: the files folder to add; restore: the new folder to fill" },
	{ "model-version", "V", 'm', 0, "create: the model version to record" },
	{ "tmp", "DIR", 't', 0, "where temporary files go (default /tmp)" },
	{ "level", "N", 'l', 0, "create: the gzip level, 1 to 9 (default 6)" },
	{ "threads", "N", 'T', 0,
	    "create: compression threads, 1 to 256 (default: one per CPU)" },
	{ "jobs", "N", 'j', OPT_SHORT,
	    "restore: pg_restore's parallel jobs, 1 to 64 (default: one for a "
	    "small dump, more for a large one)" },
	{ "no-pg-restore", NULL, 'n', 0,
	    "check: do not check the dump with pg_restore --list" },
	{ "store", "DIR", 's', 0,
	    "snapshot, assemble, sweep: the snapshot store; restore: read "
	    "the snapshot whose manifest is given from it" },
	{ "prev", "MANIFEST", 'p', 0,
	    "snapshot: the previous snapshot's manifest (its unchanged files "
	    "are not read)" },
	{ "kind", "K", 'k', 0,
	    "assemble: full (default), files or database" },
	{ "stored", NULL, 'S', 0,
	    "assemble: gzip's stored blocks, not the download's level (what a "
	    "node's restore from its store reads)" },
	{ "roots", "GLOB", 'r', 0,
	    "sweep: a glob(3) pattern matching every manifest to keep" },
	{ "time", NULL, 'W', 0,
	    "at the end, print to standard error the seconds the command took "
	    "in this process: from its options read to its exit, without "
	    "nubod's start (a node runs snapshots, downloads and restores in "
	    "its own process, started once)" },
	OPT_ROW_HELP,
	OPT_ROW_END };

const struct opts_cmd archive_cmd = {
	"archive",
	"archive create --db URL [--files DIR] [--model-version V] [--tmp DIR]\n"
	"    [--level N] [--threads N] OUT|-\n"
	"archive check [--no-pg-restore] FILE|-\n"
	"archive restore --db URL [--files NEWDIR] [--tmp DIR] [-j N]\n"
	"    FILE|-|--store DIR MANIFEST\n"
	"archive snapshot --store DIR --db URL [--files DIR] [--prev MANIFEST]\n"
	"    [--model-version V] [--tmp DIR] MANIFEST\n"
	"archive assemble --store DIR [--kind full|files|database] [--stored]\n"
	"    MANIFEST (the download, on standard output)\n"
	"archive sweep --store DIR --roots GLOB",
	"backup archives (Mendix Cloud's format) by hand: create one from a "
	"database and a files folder, check one, restore one into a new "
	"database and folder; prints what the archive holds as JSON. And the "
	"snapshot store as a node keeps it: take a snapshot into a store "
	"(prints what it did as JSON), write a snapshot's download from it, "
	"free the blobs no manifest names",
	NULL, tool_opts, NULL, 1,
};

static double tool_t0;

static void
tool_time(void)
{
	fprintf(stderr, "nubod archive: %.4f s in this process\n",
	    util_mono() - tool_t0);
}

/* The usage error: what is wrong, and where to look. */
static int
tool_usage(char *cause)
{
	fprintf(stderr, "nubod archive: %s\n(nubod archive --help tells "
	    "every option)\n", cause);
	free(cause);
	return 2;
}

static void
tool_print(const struct backup_info *info)
{
	json_t *j = json_pack("{s:b,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:I,s:I}",
	    "metadata", info->has_metadata, "database", info->has_db,
	    "checksums", info->has_checksums, "entries", info->entries,
	    "files", info->files, "files_bytes", info->files_bytes,
	    "dump_bytes", info->dump_bytes,
	    "compressed_bytes", info->compressed_bytes,
	    "expanded_bytes", info->expanded_bytes,
	    "model_version", info->meta.model_version,
	    "database_size", info->meta.database_size,
	    "duration", info->meta.duration);

	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	putchar('\n');
	json_decref(j);
}

/* How a command ended: 0, or 1 once its cause is said. */
static int
tool_done(const char *cmd, int rc, char *cause)
{
	if (rc < 0) {
		fprintf(stderr, "nubod archive %s: %s\n", cmd,
		    cause ? cause : "failed");
		free(cause);
		return 1;
	}
	return 0;
}

/* The options of the store's commands. */
struct store_args {
	const char	*store, *prev, *kind, *roots, *db, *files, *model, *tmp;
	int		 stored;
};

/* `archive snapshot|assemble|sweep`: 0, 1 when it failed (said), 2 on a
 * usage error. */
static int
store_cmd(const char *cmd, const struct store_args *a, const char *path)
{
	char *cause = NULL;
	int rc = -1;

	if (a->store == NULL)
		return tool_usage(xstrdup("--store DIR is needed"));
	if (strcmp(cmd, "snapshot") == 0) {
		struct snapstore_take_opts o;
		struct snapstore_taken t;
		json_t *j;

		if (a->db == NULL)
			return tool_usage(xstrdup("--db URL is needed"));
		memset(&o, 0, sizeof o);
		o.dburl = a->db;
		o.spool_dir = a->tmp;
		o.files_dir = a->files;
		o.store = a->store;
		o.prev = a->prev;
		o.manifest = path;
		o.model_version = a->model;
		o.created = (long long)time(NULL);
		if ((rc = snapstore_take(&o, &t, &cause)) == 0) {
			j = json_pack("{s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
			    "s:I,s:I,s:I}", "dump_delta", t.stats.dump_delta,
			    "dump_index_early", t.stats.dump_index_early,
			    "index_ms", (json_int_t)t.index_ms,
			    "dump_inserted", (json_int_t)t.stats.dump_inserted,
			    "files", (json_int_t)t.stats.files, "hashed",
			    (json_int_t)t.stats.hashed, "reused",
			    (json_int_t)t.stats.reused, "blobs_added",
			    (json_int_t)t.stats.blobs_added, "bytes_added",
			    (json_int_t)t.stats.bytes_added, "dump_size",
			    (json_int_t)t.dump_size, "dump_ms",
			    (json_int_t)t.dump_ms, "archive_size",
			    (json_int_t)t.archive_size);
			json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
			putchar('\n');
			json_decref(j);
		}
	} else if (strcmp(cmd, "assemble") == 0) {
		enum snapstore_kind k = SNAPSTORE_FULL;

		if (a->kind && strcmp(a->kind, "files") == 0)
			k = SNAPSTORE_FILES;
		else if (a->kind && strcmp(a->kind, "database") == 0)
			k = SNAPSTORE_DATABASE;
		else if (a->kind && strcmp(a->kind, "full") != 0)
			return tool_usage(xasprintf("--kind: full, files or "
			    "database, not '%s'", a->kind));
		rc = (a->stored ? snapstore_archive_stream :
		    snapstore_archive_write)(a->store, path, k, 1, &cause);
	} else {
		long long blobs, bytes;

		if (a->roots == NULL)
			return tool_usage(xstrdup("--roots GLOB is needed"));
		if ((rc = snapstore_sweep(a->store, a->roots, &blobs, &bytes,
		    &cause)) == 0)
			printf("{\"freed_blobs\": %lld, \"freed_bytes\": %lld}\n",
			    blobs, bytes);
	}
	return tool_done(cmd, rc, cause);
}

int backup_tool_main(int argc, char **argv);

int
backup_tool_main(int argc, char **argv)
{
	const char *db = NULL, *files = NULL, *model = "", *tmp = "/tmp", *cmd;
	struct store_args sa = { NULL };
	int level = 0, threads = 0, jobs = 0, pgr = 1, c, fd, rc;
	char *cause = NULL, *path;
	struct backup_info info;
	static struct opts opt;	/* its values stay until the end */
	char *arg;
	long long n;

	if (argc > 1 && strcmp(argv[1], "--help") == 0) {
		opts_help(&archive_cmd, "nubod", stdout);
		return 0;
	}
	if (argc < 2)
		return tool_usage(xstrdup("create, check, restore, snapshot, "
		    "assemble or sweep?"));
	cmd = argv[1];
	argc--;
	argv++;
	if (opts_parse(&opt, &archive_cmd, argc, argv, &cause) == -1)
		return tool_usage(cause);
	while ((c = opts_next(&opt, &arg)) != -1) {
		switch (c) {
		case 'd': db = arg; break;
		case 'f': files = arg; break;
		case 'm': model = arg; break;
		case 't': tmp = arg; break;
		case 'n': pgr = 0; break;
		case 's': sa.store = arg; break;
		case 'p': sa.prev = arg; break;
		case 'k': sa.kind = arg; break;
		case 'r': sa.roots = arg; break;
		case 'S': sa.stored = 1; break;
		case 'W':
			tool_t0 = util_mono();
			atexit(tool_time);
			break;
		case 'l':
		case 'T':
		case 'j':
			if (util_parse_int(arg, 1, c == 'l' ? 9 : c == 'T' ?
			    256 : 64, &n) == -1)
				return tool_usage(opts_bad_value(&opt, c == 'l' ?
				    "a level from 1 to 9" : c == 'T' ? "a number "
				    "from 1 to 256" : "a number from 1 to 64"));
			if (c == 'l')
				level = (int)n;
			else if (c == 'T')
				threads = (int)n;
			else
				jobs = (int)n;
			break;
		case 'h':
			opts_help(&archive_cmd, "nubod", stdout);
			return 0;
		}
	}
	if (strcmp(cmd, "sweep") == 0)
		return opt.argc == 0 ? store_cmd(cmd, &sa, NULL) :
		    tool_usage(xstrdup("sweep takes no file: --store DIR "
		    "--roots GLOB"));
	if (opt.argc != 1)
		return tool_usage(xstrdup(strcmp(cmd, "snapshot") == 0 ||
		    strcmp(cmd, "assemble") == 0 ? "one manifest file is "
		    "needed" : "one archive file (or -) is needed"));
	path = opt.argv[0];
	if (strcmp(cmd, "snapshot") == 0 || strcmp(cmd, "assemble") == 0) {
		sa.db = db;
		sa.files = files;
		sa.model = model;
		sa.tmp = tmp;
		return store_cmd(cmd, &sa, path);
	}
	if (strcmp(cmd, "create") == 0) {
		struct backup_write_opts o;
		struct backup_meta m;

		if (db == NULL)
			return tool_usage(xstrdup("--db URL is needed"));
		memset(&o, 0, sizeof(o));
		o.dburl = db;
		o.files_dir = files;
		o.tmp_dir = tmp;
		o.model_version = model;
		o.level = level;
		o.threads = threads;
		fd = strcmp(path, "-") == 0 ? 1 :
		    open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			perror(path);
			return 1;
		}
		o.out_name = fd == 1 ? "on standard output" : path;
		rc = backup_archive_write(&o, fd, &m, &cause);
		if (rc == 0 && fd != 1 && fsync(fd) < 0) {
			cause = xasprintf("cannot write the backup archive %s: %s",
			    path, strerror(errno));
			rc = -1;
		}
		if (fd != 1)
			close(fd);
	} else if (strcmp(cmd, "check") == 0 || strcmp(cmd, "restore") == 0) {
		struct snapstore_pipe *sp = NULL;

		/* restore --store: path is a manifest, its archive made by a
		 * thread of this process as a node's restore reads it */
		if (sa.store != NULL && strcmp(cmd, "restore") == 0) {
			if ((fd = snapstore_pipe_start(sa.store, path, &sp,
			    &cause)) < 0)
				return tool_done(cmd, -1, cause);
		} else if ((fd = strcmp(path, "-") == 0 ? 0 : open(path,
		    O_RDONLY | O_CLOEXEC)) < 0) {
			perror(path);
			return 1;
		}
		if (strcmp(cmd, "check") == 0) {
			struct backup_read_opts o;

			backup_read_opts_init(&o);
			o.pg_restore = pgr ? "pg_restore" : NULL;
			o.allow_files_only = 1;
			rc = backup_archive_read_fd(fd, &o, &info, &cause);
		} else {
			struct backup_restore_opts o;

			if (db == NULL)
				return tool_usage(xstrdup("--db URL is "
				    "needed"));
			memset(&o, 0, sizeof(o));
			o.dburl = db;
			o.tree_dir = files;
			o.tmp_dir = tmp;
			o.jobs = jobs;
			o.uid = (uid_t)-1;
			o.gid = (gid_t)-1;
			rc = backup_restore(fd, &o, &info, &cause);
		}
		if (sp != NULL) {
			/* what broke the archive, rather than how it ended */
			char *why = snapstore_pipe_end(sp, fd, rc < 0);

			if (rc < 0 && why != NULL) {
				free(cause);
				cause = why;
			} else
				free(why);
		} else if (fd != 0)
			close(fd);
		if (rc == 0)
			tool_print(&info);
	} else {
		return tool_usage(xasprintf("unknown command '%s': create, "
		    "check, restore, snapshot, assemble or sweep", cmd));
	}
	return tool_done(cmd, rc, cause);
}
