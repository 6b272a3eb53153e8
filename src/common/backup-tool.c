/* `nubod archive …`: backup archives by hand — create one from a database
 * and a files folder, check one, restore one into a new database and
 * folder. Used by bench/backup and handy when debugging an upload. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "backup-archive.h"
#include "xmalloc.h"

static const char tool_usage[] =
    "usage: nubod archive create --db URL [--files DIR] [--model-version V]\n"
    "                            [--tmp DIR] [--level N] [--threads N] OUT|-\n"
    "       nubod archive check [--no-pg-restore] FILE|-\n"
    "       nubod archive restore --db URL [--files NEWDIR] [--tmp DIR]\n"
    "                            [-j N] FILE|-\n";

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

int backup_tool_main(int argc, char **argv);

int
backup_tool_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "files", required_argument, NULL, 'f' },
		{ "model-version", required_argument, NULL, 'm' },
		{ "tmp", required_argument, NULL, 't' },
		{ "level", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 'T' },
		{ "no-pg-restore", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 } };
	const char *db = NULL, *files = NULL, *model = "", *tmp = "/tmp", *cmd;
	int level = 0, threads = 0, jobs = 0, pgr = 1, c, fd, rc;
	char *cause = NULL;
	struct backup_info info;

	if (argc < 2) {
		fputs(tool_usage, stderr);
		return 2;
	}
	cmd = argv[1];
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, "j:", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': db = optarg; break;
		case 'f': files = optarg; break;
		case 'm': model = optarg; break;
		case 't': tmp = optarg; break;
		case 'l': level = (int)strtol(optarg, NULL, 10); break;
		case 'T': threads = (int)strtol(optarg, NULL, 10); break;
		case 'j': jobs = (int)strtol(optarg, NULL, 10); break;
		case 'n': pgr = 0; break;
		default: fputs(tool_usage, stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(tool_usage, stderr);
		return 2;
	}
	if (strcmp(cmd, "create") == 0) {
		struct backup_write_opts o;
		struct backup_meta m;

		if (db == NULL) {
			fputs(tool_usage, stderr);
			return 2;
		}
		memset(&o, 0, sizeof(o));
		o.dburl = db;
		o.files_dir = files;
		o.tmp_dir = tmp;
		o.model_version = model;
		o.level = level;
		o.threads = threads;
		fd = strcmp(argv[optind], "-") == 0 ? 1 :
		    open(argv[optind], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			perror(argv[optind]);
			return 1;
		}
		o.out_name = fd == 1 ? "on standard output" : argv[optind];
		rc = backup_archive_write(&o, fd, &m, &cause);
		if (rc == 0 && fd != 1 && fsync(fd) < 0) {
			cause = xasprintf("cannot write the backup archive %s: %s",
			    argv[optind], strerror(errno));
			rc = -1;
		}
		if (fd != 1)
			close(fd);
	} else if (strcmp(cmd, "check") == 0 || strcmp(cmd, "restore") == 0) {
		fd = strcmp(argv[optind], "-") == 0 ? 0 :
		    open(argv[optind], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			perror(argv[optind]);
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

			if (db == NULL) {
				fputs(tool_usage, stderr);
				return 2;
			}
			memset(&o, 0, sizeof(o));
			o.dburl = db;
			o.tree_dir = files;
			o.tmp_dir = tmp;
			o.jobs = jobs;
			o.uid = (uid_t)-1;
			o.gid = (gid_t)-1;
			rc = backup_restore(fd, &o, &info, &cause);
		}
		if (fd != 0)
			close(fd);
		if (rc == 0)
			tool_print(&info);
	} else {
		fputs(tool_usage, stderr);
		return 2;
	}
	if (rc < 0) {
		fprintf(stderr, "nubod archive %s: %s\n", cmd,
		    cause ? cause : "failed");
		free(cause);
		return 1;
	}
	return 0;
}
