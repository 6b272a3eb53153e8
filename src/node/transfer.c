/* Node-to-node transfer of an environment's data for migrations (SPEC §4):
 *
 *   GET  …/environments/{id}/checksums      per table row count + content
 *        checksum, per file sha256 (cached by size/mtime/inode), sizes
 *   GET  …/environments/{id}/dump           (signed) pg_dump -Fc, streamed
 *   GET  …/environments/{id}/dump/schema    (signed) the same, schema only
 *   POST …/environments/{id}/files/export   (signed) {paths} → the files,
 *        streamed as records "F <size> <pathlen>\n<path><bytes>", "E\n"
 *   POST …/environments/{id}/import         start pulling from another
 *        node: files (delta) then the database (restored into a new
 *        database, swapped in only when complete)
 *   GET  …/environments/{id}/import         that task's progress
 *
 * Bulk bytes go from node to node; the portal only signs URLs and polls.
 * Everything streams through fixed buffers (SPEC §3). An import is keyed
 * by the caller: asking again with the same key returns the same task, so
 * a portal that restarted and runs the step again does not copy twice. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "agent-routes.h"
#include "buf.h"
#include "jsonx.h"
#include "log.h"
#include "testhook.h"
#include "node.h"
#include "pgtool.h"
#include "restore-role.h"
#include "tls.h"
#include "util.h"
#include "xmalloc.h"

#define TRANSFER_PG_BIN "/usr/lib/postgresql/15/bin"

/* ---- paths ---- */

static char *
transfer_files_dir(struct env *e)
{
	return xasprintf("%s/files", e->dir);
}

/* A safe relative path (its bytes): no "..", not absolute, no empty
 * parts, not our own staging folder. Any other byte is a name's. */
static int
transfer_path_ok(const char *p)
{
	const char *s = p;

	if (p == NULL || *p == '\0' || *p == '/' || strlen(p) > 4096 ||
	    strncmp(p, ".nubo-", 6) == 0)
		return 0;
	while (*s) {
		size_t n = strcspn(s, "/");

		if (n == 0 || (n == 1 && s[0] == '.') ||
		    (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		s += n;
		if (*s == '/')
			s++;
	}
	return 1;
}

/* The path a file name from JSON or the files stream stands for (names
 * travel as util_name_encode() makes them: docs/FORMATS.md, File names),
 * when that is a safe relative path; NULL otherwise. */
static char *
transfer_name_path(const char *name)
{
	char *raw = name ? util_name_decode(name) : NULL;

	if (raw != NULL && !transfer_path_ok(raw)) {
		free(raw);
		raw = NULL;
	}
	return raw;
}

/* root/<the path name stands for>, or NULL when that is not safe. */
static char *
transfer_name_full(const char *root, const char *name)
{
	char *raw = transfer_name_path(name), *full;

	if (raw == NULL)
		return NULL;
	full = xasprintf("%s/%s", root, raw);
	free(raw);
	return full;
}

static int
transfer_name_ok(const char *name)
{
	char *raw = transfer_name_path(name);

	free(raw);
	return raw != NULL;
}

/* ---- file manifest with a sha256 cache ---- */

static pthread_mutex_t transfer_cache_lock = PTHREAD_MUTEX_INITIALIZER;

struct walk {
	char		*root;
	size_t		 rootlen;
	json_t		*cache;		/* path → [size, mtime_ns, ino, sha] */
	json_t		*fresh;		/* the cache for what exists now */
	json_t		*files;		/* [{path, size, sha256, mode, owner}] */
	json_t		*folders;	/* [{path, mode, owner}] */
	uid_t		 uid;		/* the environment's user */
	long long	 bytes;
	int		 failed;
	char		*cause;
};

static __thread struct walk *walk_cur;

static int
sha256_file(const char *path, char out[65], long long *size)
{
	crypto_hash_sha256_state st;
	unsigned char h[crypto_hash_sha256_BYTES];
	char *buf = xmalloc(NUBO_IO_CHUNK);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n;
	long long total = 0;

	if (fd == -1) {
		free(buf);
		return -1;
	}
	crypto_hash_sha256_init(&st);
	while ((n = read(fd, buf, NUBO_IO_CHUNK)) > 0) {
		crypto_hash_sha256_update(&st, (unsigned char *)buf, (size_t)n);
		total += n;
	}
	close(fd);
	free(buf);
	if (n < 0)
		return -1;
	crypto_hash_sha256_final(&st, h);
	util_hex(h, sizeof h, out);
	if (size)
		*size = total;
	return 0;
}

/* "app" when the environment's user owns it (what the app can write),
 * else who does: the two sides of a copy have different users, the
 * same owner means the app's on both. */
static const char *
transfer_owner(struct walk *w, const struct stat *st)
{
	static __thread char other[32];

	if (w->uid == (uid_t)-1 || (st->st_uid == w->uid &&
	    st->st_gid == (gid_t)w->uid))
		return "app";
	snprintf(other, sizeof other, "uid %u gid %u", (unsigned)st->st_uid,
	    (unsigned)st->st_gid);
	return other;
}

static int
walk_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	struct walk *w = walk_cur;
	const char *rel;
	char *name;
	long long mtime;
	json_t *c;
	char sha[65];

	(void)ftw;
	if (strlen(path) <= w->rootlen)
		return 0;
	rel = path + w->rootlen + 1;
	if (strncmp(rel, ".nubo-", 6) == 0)
		return flag == FTW_D ? FTW_SKIP_SUBTREE : 0;
	if (flag == FTW_DNR) {
		/* a folder the app may not list: what is below it would be
		 * left out of the copy and of both sides' lists alike, and
		 * verification would pass without it */
		w->failed = 1;
		name = util_name_encode(rel);
		w->cause = xasprintf("cannot list folder %s (owner uid %u, "
		    "mode %04o): the environment's user may not read it", name,
		    (unsigned)st->st_uid, (unsigned)(st->st_mode & 07777));
		free(name);
		return FTW_STOP;
	}
	if (flag == FTW_D) {
		name = util_name_encode(rel);
		json_array_append_new(w->folders, json_pack("{s:s,s:i,s:s}",
		    "path", name, "mode", (int)(st->st_mode & 0777), "owner",
		    transfer_owner(w, st)));
		free(name);
		return 0;
	}
	if (flag != FTW_F || !S_ISREG(st->st_mode))
		return 0;	/* links and special files are never part of a
				 * file store (SPEC §3) */
	name = util_name_encode(rel);
	mtime = (long long)st->st_mtim.tv_sec * 1000000000LL +
	    st->st_mtim.tv_nsec;
	c = json_object_get(w->cache, name);
	if (json_is_array(c) && json_array_size(c) == 4 &&
	    json_integer_value(json_array_get(c, 0)) == st->st_size &&
	    json_integer_value(json_array_get(c, 1)) == mtime &&
	    json_integer_value(json_array_get(c, 2)) == (long long)st->st_ino) {
		snprintf(sha, sizeof sha, "%s",
		    json_string_value(json_array_get(c, 3)));
	} else if (sha256_file(path, sha, NULL) == -1) {
		w->failed = 1;
		w->cause = xasprintf("cannot read %s: %s", name,
		    strerror(errno));
		free(name);
		return FTW_STOP;
	}
	json_object_set_new(w->fresh, name, json_pack("[I,I,I,s]",
	    (json_int_t)st->st_size, (json_int_t)mtime,
	    (json_int_t)st->st_ino, sha));
	json_array_append_new(w->files, json_pack("{s:s,s:I,s:s,s:i,s:s}",
	    "path", name, "size", (json_int_t)st->st_size, "sha256", sha,
	    "mode", (int)(st->st_mode & 0777), "owner",
	    transfer_owner(w, st)));
	free(name);
	w->bytes += st->st_size;
	return 0;
}

/* Every file of e's file store with its sha256, mode and owner; NULL
 * with *cause. *folders (when asked) gets every folder below it. */
static json_t *
transfer_manifest(struct env *e, long long *bytes, json_t **folders,
    char **cause)
{
	struct walk w;
	char *cache_path = xasprintf("%s/transfer-cache.json", e->dir);
	char *text;
	struct stat st;

	memset(&w, 0, sizeof w);
	w.root = transfer_files_dir(e);
	w.rootlen = strlen(w.root);
	w.files = json_array();
	w.folders = json_array();
	w.uid = e->uid;
	w.fresh = json_object();
	pthread_mutex_lock(&transfer_cache_lock);
	text = util_read_file(cache_path, 512 * 1024 * 1024, NULL);
	w.cache = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	if (w.cache == NULL)
		w.cache = json_object();
	walk_cur = &w;
	env_fs_enter(e->uid);
	if (stat(w.root, &st) == 0 && nftw(w.root, walk_one, 32,
	    FTW_PHYS | FTW_ACTIONRETVAL) == -1 && !w.failed) {
		w.failed = 1;
		w.cause = xasprintf("cannot read %s: %s", w.root,
		    strerror(errno));
	}
	env_fs_leave(e->uid);
	walk_cur = NULL;
	if (!w.failed) {
		text = json_dumps(w.fresh, JSON_COMPACT);
		util_write_file(cache_path, text, strlen(text), 0600);
		free(text);
	}
	pthread_mutex_unlock(&transfer_cache_lock);
	json_decref(w.cache);
	json_decref(w.fresh);
	free(cache_path);
	free(w.root);
	if (w.failed) {
		json_decref(w.files);
		json_decref(w.folders);
		*cause = w.cause;
		return NULL;
	}
	*bytes = w.bytes;
	if (folders)
		*folders = w.folders;
	else
		json_decref(w.folders);
	return w.files;
}

/* Record a file we just wrote (and hashed) in the cache: its name as
 * JSON carries it, the path it stands for. */
static void
transfer_cache_put(struct env *e, const char *name, const char *rel,
    const char *sha)
{
	char *cache_path = xasprintf("%s/transfer-cache.json", e->dir);
	char *full = xasprintf("%s/files/%s", e->dir, rel);
	char *text;
	json_t *cache;
	struct stat st;

	pthread_mutex_lock(&transfer_cache_lock);
	text = util_read_file(cache_path, 512 * 1024 * 1024, NULL);
	cache = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	if (cache == NULL)
		cache = json_object();
	if (stat(full, &st) == 0)
		json_object_set_new(cache, name, json_pack("[I,I,I,s]",
		    (json_int_t)st.st_size, (json_int_t)(
		    (long long)st.st_mtim.tv_sec * 1000000000LL +
		    st.st_mtim.tv_nsec), (json_int_t)st.st_ino, sha));
	text = json_dumps(cache, JSON_COMPACT);
	/* the cache is the node's (beside env.json): written as root */
	env_fs_leave(e->uid);
	util_write_file(cache_path, text, strlen(text), 0600);
	env_fs_enter(e->uid);
	free(text);
	json_decref(cache);
	pthread_mutex_unlock(&transfer_cache_lock);
	free(full);
	free(cache_path);
}

/* ---- database checksums ---- */

/* The environment's database URL, creating its role and database first
 * when nothing was deployed yet (a migration target). */
static char *
env_url(struct env *e)
{
	char *u, *cause = NULL;

	pthread_mutex_lock(&node->lock);
	if (pg_env_ensure(e, &cause) == -1) {
		log_warn("environment %lld: %s", e->id, cause);
		free(cause);
	}
	u = pg_env_url(e);
	pthread_mutex_unlock(&node->lock);
	return u;
}

/* The same database as the node's admin, for pg_dump (it reads the
 * cluster's roles, which the environment's role may not list). */
static char *
env_dump_url(struct env *e)
{
	char *u = env_url(e);

	if (u == NULL)
		return NULL;
	free(u);
	pthread_mutex_lock(&node->lock);
	u = pg_env_dump_url(e);
	pthread_mutex_unlock(&node->lock);
	return u;
}

/* How much transfer_db_checksums() reads of each table. */
enum db_sums {
	DB_SUMS_FULL,		/* row count and checksum */
	DB_SUMS_COUNTS,		/* row count; the checksum of the tables
				 * named in full only */
	DB_SUMS_WRITES,		/* neither (no table is scanned) */
	DB_SUMS_LISTED		/* row count and checksum of the tables
				 * named in full only, the others unread */
};

/* The order-independent content checksum of table %s: the sum of the
 * first 64 bits of md5 of every row's text. */
#define MD5_SUM_SQL	"SELECT count(*), COALESCE(sum(('x' || substr(md5(" \
	"t::text), 1, 16))::bit(64)::bigint::numeric), 0)::text FROM %s t"

/* Per table: row count and an order-independent content checksum
 * (MD5_SUM_SQL; with mode DB_SUMS_COUNTS the sum of every row's
 * hash_record_extended(), marked "h", which equals on nodes of one byte
 * order — a difference is then reported, never hidden), and its writes
 * (rows inserted, updated and deleted since the statistics began); per
 * sequence: its position. Equal data gives equal figures on any
 * PostgreSQL. mode and full (a JSON object whose keys are table names as
 * listed here) say what is read: a table without a checksum has "". */
static json_t *
transfer_db_checksums(struct env *e, enum db_sums mode, json_t *full,
    long long *bytes, long long *rows_total, char **cause)
{
	char *url = env_url(e);
	PGconn *c = NULL;
	PGresult *r = NULL;
	json_t *tables = NULL;
	int i;

	*rows_total = 0;
	if (url == NULL) {
		*cause = xstrdup("the environment has no database yet");
		return NULL;
	}
	c = PQconnectdb(url);
	free(url);
	if (PQstatus(c) != CONNECTION_OK) {
		*cause = xasprintf("cannot connect to the database: %s",
		    PQerrorMessage(c));
		goto out;
	}
	r = PQexec(c, "SELECT COALESCE(sum(pg_table_size(c.oid)), 0) FROM"
	    " pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE"
	    " c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog',"
	    "'information_schema') AND n.nspname NOT LIKE 'pg_toast%'");
	*bytes = PQresultStatus(r) == PGRES_TUPLES_OK ?
	    strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	PQclear(r);
	r = PQexec(c, "SELECT quote_ident(n.nspname) || '.' ||"
	    " quote_ident(c.relname), c.relkind, coalesce(s.n_tup_ins +"
	    " s.n_tup_upd + s.n_tup_del, 0) FROM pg_class c JOIN"
	    " pg_namespace n ON n.oid = c.relnamespace LEFT JOIN"
	    " pg_stat_user_tables s ON s.relid = c.oid WHERE c.relkind IN"
	    " ('r','p','S') AND n.nspname NOT IN ('pg_catalog',"
	    "'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
	    " AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		*cause = xasprintf("cannot list tables: %s", PQerrorMessage(c));
		goto out;
	}
	tables = json_array();
	for (i = 0; i < PQntuples(r); i++) {
		const char *name = PQgetvalue(r, i, 0);
		int seq = PQgetvalue(r, i, 1)[0] == 'S';
		long long writes = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		char *sql;
		PGresult *q;

		if (!seq && (mode == DB_SUMS_WRITES || (mode ==
		    DB_SUMS_LISTED && json_object_get(full, name) == NULL))) {
			json_array_append_new(tables, json_pack("{s:s,s:s,s:I}",
			    "name", name, "kind", "table", "writes",
			    (json_int_t)writes));
			continue;
		}
		/* name comes from the catalog, quoted */
		if (seq)
			sql = xasprintf("SELECT 1, last_value::text || ':' ||"
			    " is_called::text FROM %s", name);
		else if (mode == DB_SUMS_COUNTS && json_object_get(full,
		    name) == NULL)
			sql = xasprintf("SELECT count(*), '' FROM %s", name);
		else if (mode == DB_SUMS_COUNTS || mode == DB_SUMS_LISTED)
			/* the cutover's: a hash of each row's values, some
			 * six times cheaper than md5 of its text */
			sql = xasprintf("SELECT count(*), 'h' || COALESCE(sum("
			    "hash_record_extended(t, 0)::numeric), 0)::text"
			    " FROM %s t", name);
		else
			sql = xasprintf(MD5_SUM_SQL, name);
		q = PQexec(c, sql);
		free(sql);
		/* a column type without a hash function (json, point, …):
		 * md5 of the text, as both nodes choose for the same schema */
		if (PQresultStatus(q) != PGRES_TUPLES_OK && (mode ==
		    DB_SUMS_COUNTS || mode == DB_SUMS_LISTED) && strcmp(PQresultErrorField(q,
		    PG_DIAG_SQLSTATE) ? PQresultErrorField(q,
		    PG_DIAG_SQLSTATE) : "", "42883") == 0) {
			PQclear(q);
			sql = xasprintf(MD5_SUM_SQL, name);
			q = PQexec(c, sql);
			free(sql);
		}
		if (PQresultStatus(q) != PGRES_TUPLES_OK) {
			*cause = xasprintf("cannot read %s: %s", name,
			    PQerrorMessage(c));
			PQclear(q);
			json_decref(tables);
			tables = NULL;
			goto out;
		}
		json_array_append_new(tables, json_pack("{s:s,s:s,s:I,s:s,s:I}",
		    "name", name, "kind", seq ? "sequence" : "table", "rows",
		    (json_int_t)(seq ? 0 : strtoll(PQgetvalue(q, 0, 0), NULL,
		    10)), "checksum", PQgetvalue(q, 0, 1), "writes",
		    (json_int_t)(seq ? 0 : writes)));
		if (!seq)
			*rows_total += strtoll(PQgetvalue(q, 0, 0), NULL, 10);
		PQclear(q);
	}
out:
	PQclear(r);
	PQfinish(c);
	return tables;
}

/* The database's size in bytes (0 when unknown). */
static long long
transfer_db_size(struct env *e)
{
	char *url = env_url(e);
	PGconn *c;
	PGresult *r;
	long long n = 0;

	if (url == NULL)
		return 0;
	c = PQconnectdb(url);
	free(url);
	if (PQstatus(c) == CONNECTION_OK) {
		r = PQexec(c, "SELECT COALESCE(sum(pg_table_size(c.oid)), 0)"
		    " FROM pg_class c JOIN pg_namespace n ON n.oid ="
		    " c.relnamespace WHERE c.relkind IN ('r','p') AND"
		    " n.nspname NOT IN ('pg_catalog','information_schema')"
		    " AND n.nspname NOT LIKE 'pg_toast%'");
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
	}
	PQfinish(c);
	return n;
}

/* GET /agent/v1/environments/{id}/checksums[?files=0]
 *     [&database=0|counts|listed|writes][&full=["schema.table", …]]
 * database=counts: every table's row count, the checksum of those in
 * full only; listed: the tables in full only (count and checksum), the
 * others unread (the cutover compared their changed rows by key:
 * changes.c); writes: no table read, only each one's writes. */
void
transfer_checksums(struct areq *r)
{
	const char *qf = http_query(r->http, "files");
	const char *qd = http_query(r->http, "database");
	const char *qfull = http_query(r->http, "full");
	long long fbytes = 0, dbytes = 0, rows = 0;
	json_t *files = NULL, *folders = NULL, *tables = NULL, *out;
	json_t *pkgj = NULL, *full = json_object(), *names = NULL, *v;
	enum db_sums mode = DB_SUMS_FULL;
	char *cause = NULL;
	size_t i;

	if (qd && strcmp(qd, "counts") == 0)
		mode = DB_SUMS_COUNTS;
	else if (qd && strcmp(qd, "writes") == 0)
		mode = DB_SUMS_WRITES;
	else if (qd && strcmp(qd, "listed") == 0)
		mode = DB_SUMS_LISTED;
	else if (qd && strcmp(qd, "0") != 0 && strcmp(qd, "1") != 0) {
		json_decref(full);
		areply_error(r, 400, "BAD_QUERY", "database must be 0, 1, "
		    "counts, listed or writes");
		return;
	}
	if (qfull) {
		names = json_loads(qfull, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_array(names) || (mode != DB_SUMS_COUNTS &&
		    mode != DB_SUMS_LISTED)) {
			json_decref(names);
			json_decref(full);
			areply_error(r, 400, "BAD_QUERY", "full must be a JSON "
			    "array of table names, with database=counts or "
			    "listed");
			return;
		}
		json_array_foreach(names, i, v) {
			if (!json_is_string(v)) {
				json_decref(names);
				json_decref(full);
				areply_error(r, 400, "BAD_QUERY", "full must be "
				    "a JSON array of table names");
				return;
			}
			json_object_set(full, json_string_value(v), v);
		}
		json_decref(names);
	}

	if (qf == NULL || strcmp(qf, "0") != 0) {
		files = transfer_manifest(r->env, &fbytes, &folders, &cause);
		if (files == NULL) {
			json_decref(full);
			areply_error(r, 500, "FILES_UNREADABLE", "%s", cause);
			free(cause);
			return;
		}
	}
	if (qd == NULL || strcmp(qd, "0") != 0) {
		tables = transfer_db_checksums(r->env, mode, full, &dbytes,
		    &rows, &cause);
		if (tables == NULL) {
			json_decref(full);
			json_decref(files);
			json_decref(folders);
			areply_error(r, 500, "DATABASE_UNREADABLE", "%s", cause);
			free(cause);
			return;
		}
	} else {
		dbytes = transfer_db_size(r->env);
	}
	{
		char *pkg = NULL, *pp = NULL, sha[65];

		pthread_mutex_lock(&node->lock);
		if (r->env->package)
			pkg = xstrdup(r->env->package);
		pthread_mutex_unlock(&node->lock);
		if (pkg && (pp = packages_env_file(r->env, pkg)) != NULL &&
		    sha256_file(pp, sha, NULL) == 0) {
			pkgj = json_pack("{s:s,s:s}", "name", pkg, "sha256",
			    sha);
		}
		free(pkg);
		free(pp);
	}
	out = json_pack("{s:I,s:I,s:I,s:I}", "environment",
	    (json_int_t)r->env->id, "files_bytes", (json_int_t)fbytes,
	    "database_bytes", (json_int_t)dbytes, "rows", (json_int_t)rows);
	json_object_set_new(out, "files", files ? files : json_null());
	json_object_set_new(out, "folders", folders ? folders : json_null());
	json_object_set_new(out, "tables", tables ? tables : json_null());
	json_object_set_new(out, "package", pkgj ? pkgj : json_null());
	json_decref(full);
	areply(r, 200, out);
}

/* GET /agent/v1/environments/{id}/files/manifest (signed): every file
 * of the file store with its size and sha256, for the target's delta. */
void
transfer_files_manifest(struct areq *r)
{
	long long bytes = 0;
	char *cause = NULL;
	json_t *folders = NULL;
	json_t *files = transfer_manifest(r->env, &bytes, &folders, &cause);

	if (files == NULL) {
		areply_error(r, 500, "FILES_UNREADABLE", "%s", cause);
		free(cause);
		return;
	}
	areply(r, 200, json_pack("{s:o,s:o,s:I}", "files", files, "folders",
	    folders, "files_bytes", (json_int_t)bytes));
}

/* ---- streaming a child's output (pg_dump) ---- */

struct child_stream {
	pid_t			 pid;
	int			 fd;
	int			 errfd;	/* its stderr (memfd), or -1 */
	struct MHD_Response	*resp;	/* for the error trailer */
};

/* The trailer a dump that failed half-way ends with, saying why: the
 * chunked answer is complete, so the target tells a pg_dump failure from
 * a broken link (which it tries again). Its value is one line. */
#define TRANSFER_DUMP_ERROR	"Nubo-Dump-Error"
#define TRANSFER_DUMP_ERROR_MAX	2000

/* pg_dump ended with status, not 0, its output sent. A statement the
 * server refused (an ERROR: a table's file gone, a timeout) would fail
 * again: the answer ends with the trailer that says why, and the target
 * fails the step with it. A connection lost (its backend terminated, the
 * cluster killed or restarting) is a fault that heals: the answer breaks
 * off and the target tries again, as when a link breaks. */
static ssize_t
child_failed(struct child_stream *s, int status)
{
	char *why = util_fd_tool_error(s->errfd, status), *down = NULL, *c;
	ssize_t rc = MHD_CONTENT_READER_END_WITH_ERROR;

	log_warn("the dump stream broke off: pg_dump failed: %s", why);
	if (strlen(why) > TRANSFER_DUMP_ERROR_MAX)
		why[TRANSFER_DUMP_ERROR_MAX] = '\0';
	for (c = why; *c; c++)
		if ((unsigned char)*c < ' ' || *c == 0x7f)
			*c = ' ';
	if (strstr(why, "ERROR:") == NULL || pg_reachable(&down) == -1)
		log_warn("the dump's connection was lost%s%s: the target tries "
		    "again", down ? "; PostgreSQL is down: " : "",
		    down ? down : "");
	else if (s->resp && MHD_add_response_footer(s->resp,
	    TRANSFER_DUMP_ERROR, *why ? why : "pg_dump failed") == MHD_YES)
		rc = MHD_CONTENT_READER_END_OF_STREAM;
	free(down);
	free(why);
	return rc;
}

static ssize_t
child_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct child_stream *s = cls;
	ssize_t n;

	(void)pos;
	do
		n = read(s->fd, buf, max);
	while (n == -1 && errno == EINTR);
	if (n > 0)
		return n;
	if (n == 0) {
		int status = 0;

		/* a dump that failed half-way must not look complete */
		waitpid(s->pid, &status, 0);
		s->pid = 0;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
		return child_failed(s, status);
	}
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void
child_free(void *cls)
{
	struct child_stream *s = cls;

	close(s->fd);
	if (s->errfd >= 0)
		close(s->errfd);
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
	}
	free(s);
}

/* How long the dump's answer waits for pg_dump's first bytes: what
 * refuses a dump (a connection, a lock, a permission) comes before any. */
#define TRANSFER_DUMP_EARLY_MS	3000

/* pg_dump's words when it ended before writing a byte (it is reaped),
 * else NULL: its output flows, or takes longer than the wait. */
static char *
transfer_dump_refused(pid_t pid, int fd, int errfd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char *why;
	int st = 0;

	if (poll(&p, 1, TRANSFER_DUMP_EARLY_MS) <= 0 || (p.revents & POLLIN))
		return NULL;
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	why = util_fd_tool_error(errfd, st);
	if (*why == '\0' || (WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		free(why);
		why = xstrdup("it ended without writing the dump");
	}
	return why;
}

/* GET /agent/v1/environments/{id}/dump (signed): the database as
 * `pg_dump --format=custom --no-owner --no-privileges`, uncompressed (the
 * target restores while it arrives), streamed. A pg_dump that refuses
 * before its first byte is answered 500 DUMP_FAILED with its own words,
 * which the target's import error carries (a stream that breaks off
 * could only say that it did). */
static void
dump_stream(struct areq *r, int schema_only, char *const *tables)
{
	char *url = env_dump_url(r->env);
	struct child_stream *s;
	int fd, errfd;
	pid_t pid;

	if (url == NULL) {
		areply_error(r, 409, "NO_DATABASE", "environment %lld has no "
		    "database yet", r->env->id);
		return;
	}
	{
		char *full[] = { "--format=custom", "--compress=0",
			"--no-owner", "--no-privileges", NULL };
		/* the schema for a replica: the publication a replicating
		 * migration made here is not the target's */
		char *schema[] = { "--format=custom", "--compress=0",
			"--no-owner", "--no-privileges", "--schema-only",
			"--no-publications", "--no-subscriptions", NULL };
		char **args = schema_only ? schema : full;
		int p[2];

		/* …/dump/schema/{tables}: those tables alone (their indexes,
		 * constraints and owned sequences), each one there */
		if (tables)
			args = (char **)tables;

		pid = -1;
		errfd = memfd_create("pg_dump-stderr", MFD_CLOEXEC);
		if (pipe2(p, O_CLOEXEC) == 0) {
			pid = pgtool_spawn(TRANSFER_PG_BIN "/pg_dump", url,
			    args, -1, p[1], errfd);
			close(p[1]);
			fd = p[0];
			if (pid == -1)
				close(fd);
		}
	}
	free(url);
	if (pid == -1) {
		areply_error(r, 500, "DUMP_FAILED", "cannot run pg_dump: %s",
		    strerror(errno));
		if (errfd >= 0)
			close(errfd);
		return;
	}
	{
		char *why = transfer_dump_refused(pid, fd, errfd);

		if (why != NULL) {
			log_warn("environment %lld: pg_dump failed: %s",
			    r->env->id, why);
			areply_error(r, 500, "DUMP_FAILED", "pg_dump of "
			    "environment %lld failed: %s", r->env->id, why);
			free(why);
			close(fd);
			close(errfd);
			return;
		}
	}
	s = xcalloc(1, sizeof *s);
	s->pid = pid;
	s->fd = fd;
	s->errfd = errfd;
	http_reply_stream(r->http, 200, MHD_SIZE_UNKNOWN, child_read, s,
	    child_free, "application/octet-stream");
	/* an HTTP/1.0 answer ends when the connection closes: no trailer
	 * could say why, a failed dump just breaks off */
	if (r->http->chunked)
		s->resp = r->http->resp;
}

void
transfer_dump(struct areq *r)
{
	dump_stream(r, 0, NULL);
}

/* GET …/dump/schema (signed): the same without the rows, the first copy
 * of a replicating migration (its subscription copies the rows). */
void
transfer_dump_schema(struct areq *r)
{
	dump_stream(r, 1, NULL);
}

/* GET …/dump/schema/{tables} (signed; the list is in the signed path):
 * the schema of those tables alone, a comma-separated list of
 * [schema.]name, for a replicating migration's target to make them again
 * after DDL here (subscription.c, POST …/subscription/resync). */
void
transfer_dump_tables(struct areq *r)
{
	const char *list = http_param(r->http, "tables");
	char *args[8 + 2 * NUBO_RESYNC_TABLES_MAX + 1], name[PGTOOL_TABLE_MAX];
	char *copy = xstrdup(list ? list : ""), *tok, *save = NULL;
	int n = 0, i, k = 0;

	args[k++] = "--format=custom";
	args[k++] = "--compress=0";
	args[k++] = "--no-owner";
	args[k++] = "--no-privileges";
	args[k++] = "--schema-only";
	args[k++] = "--no-publications";
	args[k++] = "--no-subscriptions";
	args[k++] = "--strict-names";
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",",
	    &save)) {
		if (++n > NUBO_RESYNC_TABLES_MAX) {
			areply_error(r, 400, "BAD_TABLE", "at most %d tables",
			    NUBO_RESYNC_TABLES_MAX);
			goto out;
		}
		if (pgtool_table_name(tok, name, sizeof name) == -1) {
			areply_error(r, 400, "BAD_TABLE", "'%.80s' is not a "
			    "table's name ([schema.]name)", tok);
			goto out;
		}
		/* a quoted pattern matches that name alone */
		*strchr(name, '.') = '\0';
		args[k++] = xasprintf("--table=\"%s\".\"%s\"", name,
		    name + strlen(name) + 1);
	}
	args[k] = NULL;
	if (n == 0)
		areply_error(r, 400, "BAD_TABLE", "no table named");
	else
		dump_stream(r, 1, args);
out:
	for (i = 8; i < k; i++)
		free(args[i]);
	free(copy);
}

/* ---- files export ---- */

struct files_stream {
	struct env	*env;
	uid_t		 uid;		/* the environment's user */
	char		*root;
	json_t		*paths;
	size_t		 next;
	int		 fd;
	long long	 left;
	char		 head[4200];
	size_t		 head_len, head_off;
	int		 ended;
};

static ssize_t
files_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct files_stream *s = cls;

	(void)pos;
	for (;;) {
		if (s->head_off < s->head_len) {
			size_t n = s->head_len - s->head_off;

			if (n > max)
				n = max;
			memcpy(buf, s->head + s->head_off, n);
			s->head_off += n;
			return (ssize_t)n;
		}
		if (s->fd >= 0) {
			ssize_t n = read(s->fd, buf, (size_t)(s->left <
			    (long long)max ? s->left : (long long)max));

			if (n <= 0) {
				/* shorter than announced: the stream is
				 * broken, the receiver must not accept it */
				return MHD_CONTENT_READER_END_WITH_ERROR;
			}
			s->left -= n;
			if (s->left == 0) {
				close(s->fd);
				s->fd = -1;
			}
			return n;
		}
		if (s->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (s->next >= json_array_size(s->paths)) {
			s->head_len = (size_t)snprintf(s->head, sizeof s->head,
			    "E\n");
			s->head_off = 0;
			s->ended = 1;
			continue;
		}
		{
			/* the name as the request had it (checked there)
			 * goes into the record; the file is its bytes' */
			const char *p = json_string_value(json_array_get(
			    s->paths, s->next++));
			char *raw = util_name_decode(p);
			char *full = xasprintf("%s/%s", s->root, raw);
			struct stat st;
			int fd;

			free(raw);
			env_fs_enter(s->uid);
			fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			env_fs_leave(s->uid);
			free(full);
			if (fd == -1 || fstat(fd, &st) == -1 ||
			    !S_ISREG(st.st_mode)) {
				if (fd != -1)
					close(fd);
				/* gone since the manifest: say so */
				s->head_len = (size_t)snprintf(s->head,
				    sizeof s->head, "M %zu\n%s", strlen(p), p);
			} else {
				s->head_len = (size_t)snprintf(s->head,
				    sizeof s->head, "F %lld %zu\n%s",
				    (long long)st.st_size, strlen(p), p);
				s->left = st.st_size;
				if (s->left > 0)
					s->fd = fd;
				else
					close(fd);
			}
			s->head_off = 0;
		}
	}
}

static void
files_free(void *cls)
{
	struct files_stream *s = cls;

	if (s->fd >= 0)
		close(s->fd);
	json_decref(s->paths);
	free(s->root);
	free(s);
}

/* POST /agent/v1/environments/{id}/files/export (signed) {paths} */
void
transfer_files_export(struct areq *r)
{
	static const struct jfield fields[] = {
		{ "paths", JT_ARRAY, 1 }, { NULL } };
	struct files_stream *s;
	json_t *paths, *v;
	size_t i;

	if (abody_check(r, fields) == -1)
		return;
	paths = json_object_get(r->body, "paths");
	json_array_foreach(paths, i, v) {
		char *raw = transfer_name_path(json_string_value(v));

		if (raw == NULL) {
			areply_error(r, 400, "BAD_PATH", "'%s' is not a safe "
			    "relative path", json_is_string(v) ?
			    json_string_value(v) : "(not a string)");
			return;
		}
		free(raw);
	}
	s = xcalloc(1, sizeof *s);
	s->env = r->env;
	s->root = transfer_files_dir(r->env);
	s->uid = r->env->uid;
	s->paths = json_incref(paths);
	s->fd = -1;
	http_reply_stream(r->http, 200, MHD_SIZE_UNKNOWN, files_read, s,
	    files_free, "application/x-nubo-files");
}

/* ---- the deployed package ---- */

/* GET /agent/v1/environments/{id}/package (signed): the package file the
 * environment runs, from this node's repository. */
void
transfer_package(struct areq *r)
{
	char *pkg = NULL, *path = NULL;
	struct stat st;
	int fd;

	pthread_mutex_lock(&node->lock);
	if (r->env->package)
		pkg = xstrdup(r->env->package);
	pthread_mutex_unlock(&node->lock);
	if (pkg == NULL || (path = packages_env_file(r->env, pkg)) == NULL) {
		areply_error(r, 404, "PACKAGE_NOT_FOUND", "environment %lld runs "
		    "no package of its repository", r->env->id);
		free(pkg);
		return;
	}
	if (http_query(r->http, "meta")) {
		/* the repository's metadata next to the file (packages.c) */
		char *slash = strrchr(path, '/');

		*slash = '\0';
		slash = path;
		path = xasprintf("%s/meta.json", slash);
		free(slash);
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1 || fstat(fd, &st) == -1) {
		if (fd != -1)
			close(fd);
		if (errno == ENOENT)
			areply_error(r, 404, "PACKAGE_NOT_FOUND", "package '%s' "
			    "has no %s", pkg, http_query(r->http, "meta") ?
			    "metadata" : "file");
		else
			areply_error(r, 500, "PACKAGE_UNREADABLE", "cannot read "
			    "package '%s': %s", pkg, strerror(errno));
	} else {
		http_reply_file(r->http, fd, (uint64_t)st.st_size,
		    "application/octet-stream", pkg);
	}
	free(path);
	free(pkg);
}

/* ---- import task ---- */

struct task {
	long long	 env_id;
	char		*key;
	char		*state;		/* running | completed | failed */
	char		*error;
	int		 unreachable;	/* failed as the source node could
					 * not be reached (curl_unreachable) */
	char		*phase;		/* files | database | swap */
	long long	 bytes, bytes_total, files, files_total;
	long long	 files_unchanged, files_deleted;
	json_t		*req;
	double		 started, finished;
	struct task	*next;
};

static pthread_mutex_t task_lock = PTHREAD_MUTEX_INITIALIZER;
static struct task *tasks;

static json_t *
task_json(struct task *t)
{
	json_t *j;

	pthread_mutex_lock(&task_lock);
	/* the total is what was declared; what came may be more (a dump is
	 * larger than its tables): never report more done than the total */
	j = json_pack("{s:s,s:s,s:s?,s:b,s:s?,s:I,s:I,s:I,s:I,s:I,s:I,s:f}",
	    "key", t->key, "state", t->state, "error", t->error,
	    "unreachable", t->unreachable,
	    "phase", t->phase, "bytes", (json_int_t)t->bytes,
	    "bytes_total", (json_int_t)(t->bytes > t->bytes_total ? t->bytes :
	    t->bytes_total),
	    "files", (json_int_t)t->files,
	    "files_total", (json_int_t)t->files_total,
	    "files_unchanged", (json_int_t)t->files_unchanged,
	    "files_deleted", (json_int_t)t->files_deleted,
	    "seconds", (t->finished > 0 ? t->finished : util_mono()) -
	    t->started);
	pthread_mutex_unlock(&task_lock);
	return j;
}

static void
task_set(struct task *t, const char *phase)
{
	pthread_mutex_lock(&task_lock);
	free(t->phase);
	t->phase = xstrdup(phase);
	pthread_mutex_unlock(&task_lock);
}

/* The files stream parser, fed by curl. */
struct files_sink {
	struct task	*t;
	struct env	*env;
	char		*root;
	json_t		*want;		/* path → {size, sha256} */
	char		 head[4200];
	size_t		 head_len;
	int		 in_file;	/* 0: reading a header */
	char		*path;		/* as JSON carries it */
	char		*raw;		/* the path it stands for */
	long long	 left;
	int		 fd;
	char		*tmp;
	crypto_hash_sha256_state sha;
	char		*error;
	int		 ended;
};

static int
mkdirs_for(const char *root, const char *rel)
{
	char *dup = xasprintf("%s/%s", root, rel), *slash = strrchr(dup, '/');
	int rc = 0;

	if (slash) {
		*slash = '\0';
		rc = util_mkdir_p(dup, 0750);
	}
	free(dup);
	return rc;
}

static int
sink_file_done(struct files_sink *s)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[65], *dest;
	json_t *w = json_object_get(s->want, s->path);

	crypto_hash_sha256_final(&s->sha, h);
	util_hex(h, sizeof h, hex);
	/* the source's mode (read and write bits); owner: ours, the
	 * environment's user, as the source's files are its own user's */
	if (w && json_is_integer(json_object_get(w, "mode")))
		fchmod(s->fd, (mode_t)(jsonx_int(w, "mode", 0640) & 0777));
	if (fsync(s->fd) == -1 || close(s->fd) == -1) {
		s->fd = -1;
		s->error = xasprintf("cannot write %s: %s", s->path,
		    strerror(errno));
		return -1;
	}
	s->fd = -1;
	dest = xasprintf("%s/%s", s->root, s->raw);
	if (mkdirs_for(s->root, s->raw) == -1 ||
	    util_rename_sync(s->tmp, dest) == -1) {
		s->error = xasprintf("cannot place %s: %s", s->path,
		    strerror(errno));
		free(dest);
		return -1;
	}
	free(dest);
	free(s->tmp);
	s->tmp = NULL;
	/* A file that changed on the source since its manifest arrives with
	 * another sha256: keep the new bytes (they are the source's), the
	 * verify step compares again. */
	if (w && jsonx_str(w, "sha256") && strcmp(jsonx_str(w, "sha256"),
	    hex) != 0)
		log_info("transfer: %s changed on the source since its "
		    "manifest", s->path);
	transfer_cache_put(s->env, s->path, s->raw, hex);
	pthread_mutex_lock(&task_lock);
	s->t->files++;
	pthread_mutex_unlock(&task_lock);
	if (s->t->files == 1) {
		/* the hook writes beside the test's files, as root */
		env_fs_leave(s->env->uid);
		testhook_pause("files-stream");
		env_fs_enter(s->env->uid);
	}
	free(s->path);
	free(s->raw);
	s->path = s->raw = NULL;
	s->in_file = 0;
	return 0;
}

/* A curl handle fetching url from the source node into write(data): no
 * signals, 10 s to connect and, when low_speed_time is not 0, given up
 * after that many seconds below one byte a second. */
/* 1 when cc says the source node could not be reached or the connection
 * to it broke (down, its link gone): the portal tries the step again once
 * it can. Not an HTTP error, nor one of this node (a write). */
static int
curl_unreachable(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

static CURL *
transfer_curl(const char *url, curl_write_callback write, void *data,
    long low_speed_time)
{
	CURL *c = curl_easy_init();

	/* another node: its key as the portal pinned it */
	tls_curl_url(c, url, node->portal_ca);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, data);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	if (low_speed_time) {
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, low_speed_time);
	}
	return c;
}

static size_t
sink_write(char *data, size_t size, size_t nmemb, void *cls)
{
	struct files_sink *s = cls;
	size_t len = size * nmemb, used = 0;

	while (used < len && s->error == NULL) {
		if (s->in_file) {
			size_t n = len - used;

			if ((long long)n > s->left)
				n = (size_t)s->left;
			if (util_write_all(s->fd, data + used, n) == -1) {
				s->error = xasprintf("cannot write %s: %s",
				    s->path, strerror(errno));
				break;
			}
			crypto_hash_sha256_update(&s->sha,
			    (unsigned char *)data + used, n);
			used += n;
			s->left -= (long long)n;
			pthread_mutex_lock(&task_lock);
			s->t->bytes += (long long)n;
			pthread_mutex_unlock(&task_lock);
			if (s->left == 0 && sink_file_done(s) == -1)
				break;
			continue;
		}
		/* header: "F <size> <len>\n<path>" | "M <len>\n<path>" | "E\n" */
		if (s->ended) {
			s->error = xstrdup("data after the end of the stream");
			break;
		}
		if (s->head_len >= sizeof s->head - 1) {
			s->error = xstrdup("malformed files stream");
			break;
		}
		s->head[s->head_len++] = data[used++];
		s->head[s->head_len] = '\0';
		{
			char *nl = strchr(s->head, '\n');
			long long fsize = 0;
			size_t plen = 0;
			char kind;

			if (nl == NULL)
				continue;
			kind = s->head[0];
			if (kind == 'E') {
				s->ended = 1;
				s->head_len = 0;
				continue;
			}
			if (kind == 'F' ? sscanf(s->head, "F %lld %zu", &fsize,
			    &plen) != 2 : kind == 'M' ? sscanf(s->head, "M %zu",
			    &plen) != 1 : 1) {
				s->error = xstrdup("malformed files stream");
				break;
			}
			if (plen == 0 || plen > 4096 || fsize < 0) {
				s->error = xstrdup("malformed files stream");
				break;
			}
			if ((size_t)(s->head + s->head_len - (nl + 1)) < plen)
				continue;
			free(s->path);
			free(s->raw);
			s->path = xstrndup(nl + 1, plen);
			s->raw = transfer_name_path(s->path);
			s->head_len = 0;
			if (s->raw == NULL ||
			    json_object_get(s->want, s->path) == NULL) {
				s->error = xasprintf("unexpected path '%s' in "
				    "the files stream", s->path);
				break;
			}
			if (kind == 'M') {
				char *full = xasprintf("%s/%s", s->root,
				    s->raw);

				unlink(full);
				free(full);
				free(s->path);
				free(s->raw);
				s->path = s->raw = NULL;
				continue;
			}
			free(s->tmp);
			s->tmp = xasprintf("%s/.nubo-partial/%s", s->root,
			    "XXXXXX");
			s->fd = mkstemp(s->tmp);
			if (s->fd == -1) {
				s->error = xasprintf("cannot create a file in "
				    "%s/.nubo-partial: %s", s->root,
				    strerror(errno));
				break;
			}
			fchmod(s->fd, 0640);
			crypto_hash_sha256_init(&s->sha);
			s->left = fsize;
			s->in_file = 1;
			if (fsize == 0 && sink_file_done(s) == -1)
				break;
		}
	}
	return s->error ? 0 : len;
}

static int
task_files(struct task *t, struct env *e, char **cause)
{
	json_t *files = json_object_get(t->req, "files");
	json_t *del = json_object_get(t->req, "delete");
	const char *url = jsonx_str(t->req, "files_url");
	struct files_sink s;
	json_t *v, *paths;
	size_t i, start;
	int rc = -1;

	memset(&s, 0, sizeof s);
	s.t = t;
	s.env = e;
	s.fd = -1;
	s.root = transfer_files_dir(e);
	s.want = json_object();
	/* everything below runs as the environment's user: what arrives is
	 * the app's, as it would have made it (umask 027) */
	env_fs_enter(e->uid);
	{
		char *partial = xasprintf("%s/.nubo-partial", s.root);

		util_rm_rf(partial);	/* leftovers of a killed import */
		if (util_mkdir_p(partial, 0700) == -1) {
			*cause = xasprintf("cannot create %s: %s", partial,
			    strerror(errno));
			free(partial);
			goto out;
		}
		free(partial);
	}
	json_array_foreach(files, i, v)
		json_object_set(s.want, jsonx_str(v, "path"), v);
	/* in batches, so each request body stays small */
	for (start = 0; start < json_array_size(files); start += 500) {
		CURL *c;
		struct curl_slist *h = NULL;
		CURLcode cc;
		long status = 0;
		char *body;

		paths = json_array();
		for (i = start; i < start + 500 && i < json_array_size(files);
		    i++)
			json_array_append(paths, json_object_get(
			    json_array_get(files, i), "path"));
		v = json_pack("{s:o}", "paths", paths);
		body = json_dumps(v, JSON_COMPACT);
		json_decref(v);
		s.ended = 0;
		c = transfer_curl(url, sink_write, &s, 60L);
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		cc = curl_easy_perform(c);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(c);
		curl_slist_free_all(h);
		free(body);
		if (s.error) {
			*cause = xasprintf("files: %s", s.error);
			goto out;
		}
		if (cc != CURLE_OK || status != 200 || !s.ended) {
			t->unreachable = curl_unreachable(cc);
			*cause = xasprintf("files: the source node did not send "
			    "the files (%s, HTTP %ld)", cc != CURLE_OK ?
			    curl_easy_strerror(cc) : "incomplete stream",
			    status);
			goto out;
		}
	}
	json_array_foreach(del, i, v) {
		char *full, *raw = transfer_name_path(json_string_value(v));

		if (raw == NULL)
			continue;
		full = xasprintf("%s/%s", s.root, raw);
		free(raw);
		if (unlink(full) == -1 && errno != ENOENT) {
			*cause = xasprintf("cannot remove %s: %s",
			    json_string_value(v), strerror(errno));
			free(full);
			goto out;
		}
		free(full);
	}
	rc = 0;
out:
	if (s.fd >= 0)
		close(s.fd);
	if (s.tmp)
		unlink(s.tmp);
	{
		char *partial = xasprintf("%s/.nubo-partial", s.root);

		util_rm_rf(partial);
		free(partial);
	}
	env_fs_leave(e->uid);
	free(s.tmp);
	free(s.path);
	free(s.raw);
	free(s.error);
	free(s.root);
	json_decref(s.want);
	return rc;
}

struct restore_pipe {
	struct task	*t;
	int		 fd;
	int		 paused;
	CURL		*curl;
	struct buf	 refusal;	/* the source's error answer */
	char		*dump_error;	/* its TRANSFER_DUMP_ERROR trailer */
};

/* curl's header callback, trailers included: keeps the source's word that
 * its pg_dump failed half-way. */
static size_t
restore_header(char *data, size_t size, size_t nmemb, void *cls)
{
	struct restore_pipe *p = cls;
	size_t n = size * nmemb, k = strlen(TRANSFER_DUMP_ERROR);

	if (n > k + 1 && strncasecmp(data, TRANSFER_DUMP_ERROR, k) == 0 &&
	    data[k] == ':' && p->dump_error == NULL) {
		const char *v = data + k + 1;
		size_t len = n - k - 1;

		while (len && (*v == ' ' || *v == '\t'))
			v++, len--;
		while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' ||
		    v[len - 1] == ' '))
			len--;
		p->dump_error = xstrndup(v, len);
	}
	return n;
}

/* curl's write callback: the chunk into p->fd, counted in the task's
 * bytes; 0 (curl stops) when the reader (pg_restore) died. */
static size_t
fd_write(char *data, size_t size, size_t nmemb, void *cls)
{
	struct restore_pipe *p = cls;
	size_t len = size * nmemb, off = 0;

	while (off < len) {
		ssize_t n = write(p->fd, data + off, len - off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		off += (size_t)n;
	}
	pthread_mutex_lock(&task_lock);
	p->t->bytes += (long long)len;
	pthread_mutex_unlock(&task_lock);
	return len;
}

/* fd_write, then the test hook "stream" once the dump flows. */
static size_t
restore_write(char *data, size_t size, size_t nmemb, void *cls)
{
	struct restore_pipe *p = cls;
	long http = 0;
	size_t n;

	/* an error answer (the source's pg_dump refused) is kept to be
	 * quoted, never fed to pg_restore */
	curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &http);
	if (http >= 400) {
		buf_append(&p->refusal, data, size * nmemb);
		return size * nmemb;
	}
	n = fd_write(data, size, nmemb, cls);

	if (n == size * nmemb && !p->paused) {
		p->paused = 1;
		testhook_pause("stream");
	}
	return n;
}

/* Drop env_<id>_old (the database a swap replaced), in the background. */
static void *
drop_old(void *arg)
{
	long long id = *(long long *)arg;
	char *admin = pg_admin_conninfo(), *sql, *cause = NULL;
	PGconn *c = PQconnectdb(admin);

	free(arg);
	sql = xasprintf("DROP DATABASE IF EXISTS env_%lld_old WITH (FORCE)", id);
	if (PQstatus(c) != CONNECTION_OK || pg_admin_exec(c, sql, &cause) == -1)
		log_warn("environment %lld: cannot drop the replaced database: "
		    "%s", id, cause ? cause : PQerrorMessage(c));
	free(cause);
	free(sql);
	free(admin);
	PQfinish(c);
	return NULL;
}

/* The database: restored into env_<id>_in while it arrives, then swapped
 * in for env_<id>; the old one is dropped only after. A failure leaves
 * the old database as it was. */
static int
task_database(struct task *t, struct env *e, char **cause)
{
	char *admin = pg_admin_conninfo(), *url = env_url(e);
	char *sql = NULL, errbuf[256];
	PGconn *c = PQconnectdb(admin);
	struct restore_pipe p;
	struct restore_role role;
	pid_t pid = -1;
	int fd = -1, errfd = memfd_create("pg_restore-stderr", MFD_CLOEXEC);
	int status = 0, rc = -1;
	CURL *cu = NULL;
	CURLcode cc;
	long http = 0;

	memset(&p, 0, sizeof p);
	buf_init(&p.refusal, 4096);
	memset(&role, 0, sizeof role);
	if (PQstatus(c) != CONNECTION_OK || url == NULL) {
		*cause = xasprintf("database: cannot connect: %s",
		    url ? PQerrorMessage(c) : "no database yet");
		goto out;
	}
	/* a swap that a kill interrupted: put the old database back; an
	 * old one left over from a finished swap: drop it */
	snprintf(errbuf, sizeof errbuf, "env_%lld", e->id);
	if (pg_db_exists(c, errbuf) == 1) {
		sql = xasprintf("DROP DATABASE IF EXISTS env_%lld_old WITH"
		    " (FORCE)", e->id);
		if (pg_admin_exec(c, sql, cause) == -1)
			goto out;
		free(sql);
		sql = NULL;
	} else {
		snprintf(errbuf, sizeof errbuf, "env_%lld_old", e->id);
		if (pg_db_exists(c, errbuf) == 1) {
			sql = xasprintf("ALTER DATABASE env_%lld_old RENAME TO"
			    " env_%lld", e->id, e->id);
			if (pg_admin_exec(c, sql, cause) == -1)
				goto out;
			free(sql);
			sql = NULL;
		}
	}
	free(sql);
	sql = xasprintf("DROP DATABASE IF EXISTS env_%lld_in WITH (FORCE)",
	    e->id);
	if (pg_admin_exec(c, sql, cause) == -1)
		goto out;
	/* env_<id>_in belongs to a throwaway role the dump runs as
	 * (restore-role.c, shared with restores) */
	snprintf(errbuf, sizeof errbuf, "env_%lld_in", e->id);
	if (restore_role_drop_stale(c, "import", e->id, cause) == -1 ||
	    restore_role_begin(c, "import", e->id, url, errbuf, &role,
	    cause) == -1)
		goto out;
	{
		char *args[] = { "--no-owner", "--no-privileges",
			"--exit-on-error", NULL };
		int pp[2];

		if (pipe2(pp, O_CLOEXEC) == 0) {
			pid = pgtool_spawn(TRANSFER_PG_BIN "/pg_restore",
			    role.url, args, pp[0], -1, errfd);
			close(pp[0]);
			fd = pp[1];
		}
	}
	if (pid == -1) {
		*cause = xasprintf("cannot run pg_restore: %s",
		    strerror(errno));
		goto out;
	}
	p.t = t;
	p.fd = fd;
	cu = transfer_curl(jsonx_str(t->req, "dump_url"), restore_write, &p,
	    120L);
	p.curl = cu;
	curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, restore_header);
	curl_easy_setopt(cu, CURLOPT_HEADERDATA, &p);
	cc = curl_easy_perform(cu);
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &http);
	close(fd);
	fd = -1;
	waitpid(pid, &status, 0);
	pid = -1;
	if (cc == CURLE_OK && http >= 400) {
		json_t *j = json_loads(buf_cstr(&p.refusal), 0, NULL);
		const char *msg = jsonx_str(json_object_get(j, "error"),
		    "message");

		*cause = xasprintf("database: the source node answered %ld: "
		    "%s", http, msg ? msg : "no reason given");
		json_decref(j);
		goto out;
	}
	/* the source's pg_dump failed half-way: its words, not a retry */
	if (p.dump_error) {
		*cause = xasprintf("database: the source node's pg_dump failed "
		    "half-way: %s", p.dump_error);
		goto out;
	}
	/* the stream stopped because pg_restore died (a write error):
	 * pg_restore says why, not curl */
	if (cc != CURLE_OK && (cc != CURLE_WRITE_ERROR || (WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0))) {
		t->unreachable = curl_unreachable(cc);
		*cause = xasprintf("database: the dump from the source node "
		    "broke off (%s)", curl_easy_strerror(cc));
		goto out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char *why = util_fd_tool_error(errfd, status);

		*cause = xasprintf("database: pg_restore failed: %s", why);
		free(why);
		goto out;
	}
	/* the environment's role gets the database; settings reset */
	snprintf(errbuf, sizeof errbuf, "env_%lld_in", e->id);
	if (restore_role_finish(c, e->id, errbuf, &role, cause) == -1) {
		char *m = xasprintf("database: %s", *cause);

		free(*cause);
		*cause = m;
		goto out;
	}
	/* swap in */
	task_set(t, "swap");
	free(sql);
	sql = xasprintf("SELECT pg_terminate_backend(pid) FROM"
	    " pg_stat_activity WHERE datname = 'env_%lld'", e->id);
	pg_admin_exec(c, sql, NULL);	/* best effort: the rename tells */
	free(sql);
	sql = xasprintf("ALTER DATABASE env_%lld RENAME TO env_%lld_old",
	    e->id, e->id);
	if (pg_admin_exec(c, sql, cause) == -1)
		goto out;
	free(sql);
	sql = xasprintf("ALTER DATABASE env_%lld_in RENAME TO env_%lld",
	    e->id, e->id);
	if (pg_admin_exec(c, sql, cause) == -1) {
		char *back = xasprintf("ALTER DATABASE env_%lld_old RENAME TO"
		    " env_%lld", e->id, e->id);
		char *ignore = NULL;

		pg_admin_exec(c, back, &ignore);
		free(ignore);
		free(back);
		goto out;
	}
	free(sql);
	sql = xasprintf("REVOKE ALL ON DATABASE env_%lld FROM PUBLIC", e->id);
	pg_admin_exec(c, sql, cause);
	free(*cause);
	*cause = NULL;
	/* The old one goes after the task is reported done: dropping a big
	 * database takes a while and the app waits for this copy. A kill in
	 * between leaves it for the next import to drop. */
	{
		pthread_t th;
		long long *id = xmalloc(sizeof *id);

		*id = e->id;
		if (pthread_create(&th, NULL, drop_old, id) == 0)
			pthread_detach(th);
		else
			free(id);
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	if (cu)
		curl_easy_cleanup(cu);
	if (rc == -1 && c && PQstatus(c) == CONNECTION_OK) {
		char *drop = xasprintf("DROP DATABASE IF EXISTS env_%lld_in"
		    " WITH (FORCE)", e->id);
		char *ignore = NULL;

		pg_admin_exec(c, drop, &ignore);
		free(ignore);
		ignore = NULL;
		free(drop);
		if (role.name[0] != '\0' &&
		    restore_role_drop(c, role.name, &ignore) == -1)
			log_warn("environment %lld: %s", e->id, ignore);
		free(ignore);
	}
	restore_role_release(&role);
	buf_release(&p.refusal);
	free(p.dump_error);
	if (errfd >= 0)
		close(errfd);
	PQfinish(c);
	free(sql);
	free(url);
	free(admin);
	return rc;
}

/* Download url into path (created 0644); 0, or -1 with *cause. A 404 is
 * reported as 1 when missing_ok. */
static int
fetch_to(struct task *t, const char *url, const char *path, int missing_ok,
    char **cause)
{
	struct restore_pipe p;
	CURL *cu;
	CURLcode cc;
	long status = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd == -1) {
		*cause = xasprintf("cannot create %s: %s", path,
		    strerror(errno));
		return -1;
	}
	memset(&p, 0, sizeof p);
	p.t = t;
	p.fd = fd;
	cu = transfer_curl(url, fd_write, &p, 60L);
	cc = curl_easy_perform(cu);
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(cu);
	if (cc == CURLE_OK && status == 404 && missing_ok) {
		close(fd);
		unlink(path);
		return 1;
	}
	if (cc != CURLE_OK || status != 200 || fsync(fd) == -1) {
		close(fd);
		t->unreachable = curl_unreachable(cc);
		*cause = xasprintf("the download from the source node failed "
		    "(%s, HTTP %ld)", curl_easy_strerror(cc), status);
		return -1;
	}
	close(fd);
	return 0;
}

/* transfer_fetch_fd()'s download: into fd up to max bytes, an error
 * answer kept apart to be quoted. */
struct fetch_capped {
	int		 fd;
	long long	 bytes, max;
	CURL		*curl;
	struct buf	 refusal;
};

static size_t
fetch_capped_write(char *data, size_t size, size_t nmemb, void *cls)
{
	struct fetch_capped *f = cls;
	size_t len = size * nmemb, off = 0;
	long http = 0;

	curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &http);
	if (http >= 400) {
		buf_append(&f->refusal, data, len);	/* capped: cut */
		return len;
	}
	if ((f->bytes += (long long)len) > f->max)
		return 0;
	while (off < len) {
		ssize_t n = write(f->fd, data + off, len - off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		off += (size_t)n;
	}
	return len;
}

int
transfer_fetch_fd(const char *url, int fd, long long max, int *unreachable,
    char **cause)
{
	struct fetch_capped f = { fd, 0, max, NULL, { 0 } };
	CURLcode cc;
	long http = 0;
	int rc = -1;

	*unreachable = 0;
	buf_init(&f.refusal, 4096);
	f.curl = transfer_curl(url, fetch_capped_write, &f, 60L);
	cc = curl_easy_perform(f.curl);
	curl_easy_getinfo(f.curl, CURLINFO_RESPONSE_CODE, &http);
	if (cc == CURLE_OK && http >= 400) {
		json_t *j = json_loads(buf_cstr(&f.refusal), 0, NULL);
		const char *msg = jsonx_str(json_object_get(j, "error"),
		    "message");

		*cause = xasprintf("the source node answered %ld: %s", http,
		    msg ? msg : "no reason given");
		json_decref(j);
	} else if (f.bytes > max) {
		*cause = xasprintf("the source's answer is larger than %lld "
		    "bytes", max);
	} else if (cc != CURLE_OK || http != 200) {
		*unreachable = curl_unreachable(cc);
		*cause = xasprintf("the download from the source node failed "
		    "(%s, HTTP %ld)", curl_easy_strerror(cc), http);
	} else {
		rc = 0;
	}
	curl_easy_cleanup(f.curl);
	buf_release(&f.refusal);
	return rc;
}

/* The package into the repository environment e deploys from, laid out
 * as packages.c does (<repository>/<id>/{package, meta.json}, published
 * by renaming a ".new-XXXXXX" folder, which a restart cleans up), unless
 * a package of that id and sha256 is there already. */
static int
task_package(struct task *t, struct env *e, char **cause)
{
	json_t *pk = json_object_get(t->req, "package");
	const char *name = jsonx_str(pk, "name"), *want = jsonx_str(pk,
	    "sha256"), *url = jsonx_str(pk, "url");
	char *repo = NULL, *dest = NULL, *stage = NULL, *file = NULL;
	char *meta = NULL, *murl = NULL, *why = NULL, sha[65];
	int rc = -1;

	if (name == NULL || strchr(name, '/') || *name == '.' || url == NULL) {
		*cause = xstrdup("package: a name and a url are needed");
		return -1;
	}
	if ((repo = packages_env_dir(e)) == NULL) {
		*cause = xstrdup("package: the environment names no valid "
		    "repository");
		return -1;
	}
	dest = xasprintf("%s/%s", repo, name);
	file = xasprintf("%s/package", dest);
	if (want && sha256_file(file, sha, NULL) == 0 && strcmp(sha, want) == 0)
		goto done;
	free(file);
	file = NULL;
	stage = xasprintf("%s/.new-XXXXXX", repo);
	if (util_mkdir_p(repo, 0755) == -1 || mkdtemp(stage) == NULL) {
		*cause = xasprintf("cannot create %s: %s", stage,
		    strerror(errno));
		goto out;
	}
	chmod(stage, 0755);
	file = xasprintf("%s/package", stage);
	if (fetch_to(t, url, file, 0, &why) == -1) {
		*cause = xasprintf("package: %s", why);
		goto out;
	}
	if (want && (sha256_file(file, sha, NULL) == -1 ||
	    strcmp(sha, want) != 0)) {
		*cause = xasprintf("package: the copy of '%s' does not have "
		    "the source's sha256", name);
		goto out;
	}
	meta = xasprintf("%s/meta.json", stage);
	murl = tls_url_query_add(url, "meta=1");
	if (fetch_to(t, murl, meta, 1, &why) == -1) {
		*cause = xasprintf("package metadata: %s", why);
		goto out;
	}
	util_rm_rf(dest);	/* another package under that id */
	if (util_rename_sync(stage, dest) == -1) {
		*cause = xasprintf("cannot publish %s: %s", dest,
		    strerror(errno));
		goto out;
	}
	free(stage);
	stage = NULL;
done:
	rc = 0;
out:
	if (stage)
		util_rm_rf(stage);
	free(repo);
	free(dest);
	free(stage);
	free(file);
	free(meta);
	free(murl);
	free(why);
	return rc;
}

static size_t
buf_write(char *data, size_t size, size_t nmemb, void *cls)
{
	return buf_append(cls, data, size * nmemb) == 0 ? size * nmemb : 0;
}

/* The delta: fetch the source's manifest, compare with ours, and put the
 * files to copy and to delete into the task's request. */
static int
task_delta(struct task *t, struct env *e, char **cause)
{
	const char *url = jsonx_str(t->req, "manifest_url");
	json_t *src = NULL, *mine = NULL, *sidx = json_object(), *v, *d;
	json_t *copy = json_array(), *del = json_array(), *modes = json_array();
	long long mbytes = 0, cbytes = 0, same = 0;
	struct buf b;
	CURL *cu;
	CURLcode cc;
	long status = 0;
	const char *k;
	size_t i;
	int rc = -1;

	buf_init(&b, 512 * 1024 * 1024);
	cu = transfer_curl(url, buf_write, &b, 0);
	cc = curl_easy_perform(cu);
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(cu);
	if (cc != CURLE_OK || status != 200 ||
	    (src = json_loadb(b.data, b.len, 0, NULL)) == NULL) {
		t->unreachable = curl_unreachable(cc);
		*cause = xasprintf("files: cannot read the source's file list "
		    "(%s, HTTP %ld)", curl_easy_strerror(cc), status);
		goto out;
	}
	if ((mine = transfer_manifest(e, &mbytes, NULL, cause)) == NULL)
		goto out;
	json_array_foreach(json_object_get(src, "files"), i, v) {
		if (!transfer_name_ok(jsonx_str(v, "path"))) {
			*cause = xasprintf("files: unsafe path '%s' in the "
			    "source's list", jsonx_str(v, "path") ?
			    jsonx_str(v, "path") : "?");
			goto out;
		}
		json_object_set(sidx, jsonx_str(v, "path"), v);
	}
	json_array_foreach(mine, i, d) {
		v = json_object_get(sidx, jsonx_str(d, "path"));
		if (v == NULL)
			json_array_append(del, json_object_get(d, "path"));
		else if (strcmp(jsonx_str(v, "sha256"), jsonx_str(d,
		    "sha256")) == 0) {
			same++;
			if (json_is_integer(json_object_get(v, "mode")) &&
			    jsonx_int(v, "mode", 0) != jsonx_int(d, "mode", 0))
				json_array_append_new(modes, json_pack("{s:O,"
				    "s:O}", "path", json_object_get(v, "path"),
				    "mode", json_object_get(v, "mode")));
			json_object_del(sidx, jsonx_str(d, "path"));
		}
	}
	json_array_foreach(json_object_get(src, "folders"), i, v)
		if (!transfer_name_ok(jsonx_str(v, "path"))) {
			*cause = xasprintf("files: unsafe folder '%s' in the "
			    "source's list", jsonx_str(v, "path") ?
			    jsonx_str(v, "path") : "?");
			goto out;
		}
	json_object_set(t->req, "modes", modes);
	if (json_is_array(json_object_get(src, "folders")))
		json_object_set(t->req, "folders", json_object_get(src,
		    "folders"));
	json_object_foreach(sidx, k, v) {
		json_array_append(copy, v);
		cbytes += jsonx_int(v, "size", 0);
	}
	json_object_set(t->req, "files", copy);
	json_object_set(t->req, "delete", del);
	pthread_mutex_lock(&task_lock);
	t->files_total = (long long)json_array_size(copy);
	t->files_unchanged = same;
	t->files_deleted = (long long)json_array_size(del);
	t->bytes_total += cbytes;
	pthread_mutex_unlock(&task_lock);
	rc = 0;
out:
	buf_release(&b);
	json_decref(src);
	json_decref(mine);
	json_decref(sidx);
	json_decref(copy);
	json_decref(del);
	json_decref(modes);
	return rc;
}

static int
folder_depth_desc(const void *a, const void *b)
{
	const char *x = *(const char *const *)a;
	const char *y = *(const char *const *)b;
	size_t dx = 0, dy = 0;

	for (; *x; x++)
		dx += *x == '/';
	for (; *y; y++)
		dy += *y == '/';
	return dx < dy ? 1 : dx > dy ? -1 : 0;
}

/* After the files: the source's folders (made, with its modes), the
 * modes of files whose bytes were equal, and folders only the target
 * had removed when empty. As the environment's user. */
static int
task_tree(struct task *t, struct env *e, char **cause)
{
	json_t *folders = json_object_get(t->req, "folders"), *v, *want;
	json_t *extra = NULL, *mine = NULL;
	char *root = transfer_files_dir(e), *full;
	long long bytes;
	size_t i;
	int rc = -1;

	if ((mine = transfer_manifest(e, &bytes, &extra, cause)) == NULL) {
		free(root);
		return -1;
	}
	json_decref(mine);
	want = json_object();
	json_array_foreach(folders, i, v)
		json_object_set(want, jsonx_str(v, "path"), v);
	env_fs_enter(e->uid);
	json_array_foreach(folders, i, v) {
		if ((full = transfer_name_full(root, jsonx_str(v, "path"))) ==
		    NULL)
			continue;	/* refused by task_delta() already */
		if ((util_mkdir_p(full, 0750) == -1 || chmod(full,
		    (mode_t)(jsonx_int(v, "mode", 0750) & 0777)) == -1)) {
			*cause = xasprintf("files: cannot make folder %s: %s",
			    jsonx_str(v, "path"), strerror(errno));
			free(full);
			goto out;
		}
		free(full);
	}
	json_array_foreach(json_object_get(t->req, "modes"), i, v) {
		if ((full = transfer_name_full(root, jsonx_str(v, "path"))) ==
		    NULL)
			continue;
		if (chmod(full,
		    (mode_t)(jsonx_int(v, "mode", 0640) & 0777)) == -1 &&
		    errno != ENOENT) {
			*cause = xasprintf("files: cannot set the mode of %s: "
			    "%s", jsonx_str(v, "path"), strerror(errno));
			free(full);
			goto out;
		}
		free(full);
	}
	if (json_is_array(folders)) {
		json_t *gone = json_array();

		json_array_foreach(extra, i, v)
			if (json_object_get(want, jsonx_str(v, "path")) == NULL)
				json_array_append(gone, json_object_get(v,
				    "path"));
		/* deepest first, so a parent is empty when its turn comes */
		{
			size_t n = json_array_size(gone), k;
			const char **list = xcalloc(n + 1, sizeof *list);

			for (k = 0; k < n; k++)
				list[k] = json_string_value(json_array_get(gone,
				    k));
			qsort(list, n, sizeof *list, folder_depth_desc);
			for (k = 0; k < n; k++) {
				full = transfer_name_full(root, list[k]);
				if (full != NULL && rmdir(full) == -1 &&
				    errno != ENOENT)
					log_info("transfer: folder %s only on "
					    "the target kept: %s", list[k],
					    strerror(errno));
				free(full);
			}
			free(list);
		}
		json_decref(gone);
	}
	rc = 0;
out:
	env_fs_leave(e->uid);
	json_decref(want);
	json_decref(extra);
	free(root);
	return rc;
}

static void *
task_run(void *arg)
{
	struct task *t = arg;
	struct env *e;
	char *cause = NULL;
	int rc = 0;

	pthread_mutex_lock(&node->lock);
	e = env_find(t->env_id);
	pthread_mutex_unlock(&node->lock);
	if (e == NULL) {
		cause = xstrdup("the environment is gone");
		rc = -1;
	}
	if (rc == 0 && json_object_get(t->req, "package")) {
		task_set(t, "package");
		rc = task_package(t, e, &cause);
	}
	if (rc == 0 && jsonx_str(t->req, "manifest_url")) {
		task_set(t, "comparing files");
		rc = task_delta(t, e, &cause);
	}
	if (rc == 0 && json_array_size(json_object_get(t->req, "files")) +
	    json_array_size(json_object_get(t->req, "delete")) > 0) {
		task_set(t, "files");
		rc = task_files(t, e, &cause);
	}
	if (rc == 0 && (json_is_array(json_object_get(t->req, "folders")) ||
	    json_array_size(json_object_get(t->req, "modes")) > 0))
		rc = task_tree(t, e, &cause);
	if (rc == 0 && jsonx_str(t->req, "dump_url")) {
		task_set(t, "database");
		rc = task_database(t, e, &cause);
	}
	pthread_mutex_lock(&task_lock);
	free(t->state);
	t->state = xstrdup(rc == 0 ? "completed" : "failed");
	t->error = cause;
	t->finished = util_mono();
	pthread_mutex_unlock(&task_lock);
	if (e)
		env_log(e, "migration import %s: %s", t->key, rc == 0 ?
		    "completed" : cause);
	return NULL;
}

static struct task *
task_find(long long env_id)
{
	struct task *t;

	for (t = tasks; t; t = t->next)
		if (t->env_id == env_id)
			return t;
	return NULL;
}

/* POST /agent/v1/environments/{id}/import {key, dump_url?, files_url?,
 * files?: [{path,size,sha256}], delete?: [path]} */
void
transfer_import(struct areq *r)
{
	static const struct jfield fields[] = {
		{ "key", JT_STRING, 1 }, { "dump_url", JT_STRING, 0 },
		{ "files_url", JT_STRING, 0 }, { "files", JT_ARRAY, 0 },
		{ "delete", JT_ARRAY, 0 }, { "package", JT_OBJECT, 0 },
		{ "manifest_url", JT_STRING, 0 }, { "database_bytes", JT_INT, 0 },
		{ NULL } };
	struct task *t;
	json_t *v;
	pthread_t th;
	long long total = 0;
	size_t i;
	int running;

	if (abody_check(r, fields) == -1)
		return;
	json_array_foreach(json_object_get(r->body, "files"), i, v) {
		if (!transfer_name_ok(jsonx_str(v, "path"))) {
			areply_error(r, 400, "BAD_PATH", "'%s' is not a safe "
			    "relative path", jsonx_str(v, "path") ?
			    jsonx_str(v, "path") : "(missing)");
			return;
		}
		total += jsonx_int(v, "size", 0);
	}
	if ((json_array_size(json_object_get(r->body, "files")) ||
	    jsonx_str(r->body, "manifest_url")) &&
	    !jsonx_str(r->body, "files_url")) {
		areply_error(r, 400, "BAD_REQUEST", "files need a files_url");
		return;
	}
	pthread_mutex_lock(&node->lock);
	running = r->env->state == ENV_RUNNING ||
	    r->env->state == ENV_STARTING || r->env->state == ENV_STOPPING;
	pthread_mutex_unlock(&node->lock);
	pthread_mutex_lock(&task_lock);
	t = task_find(r->env->id);
	if (t && strcmp(t->key, jsonx_str(r->body, "key")) == 0 &&
	    strcmp(t->state, "failed") != 0) {
		pthread_mutex_unlock(&task_lock);
		areply(r, 200, task_json(t));	/* the same import */
		return;
	}
	if (t && strcmp(t->state, "running") == 0) {
		pthread_mutex_unlock(&task_lock);
		areply_error(r, 409, "IMPORT_RUNNING", "environment %lld is "
		    "importing already (%s)", r->env->id, t->key);
		return;
	}
	if (running) {
		pthread_mutex_unlock(&task_lock);
		areply_error(r, 409, "ENVIRONMENT_NOT_STOPPED", "cannot import "
		    "into environment %lld: it is running", r->env->id);
		return;
	}
	pthread_mutex_unlock(&task_lock);
	/* what it writes fits, and leaves the node's reserve */
	if (space_refuse_import(r, json_object_get(r->body, "files"),
	    jsonx_int(r->body, "database_bytes", 0)) == -1)
		return;
	pthread_mutex_lock(&task_lock);
	if (t == NULL) {
		t = xcalloc(1, sizeof *t);
		t->env_id = r->env->id;
		t->next = tasks;
		tasks = t;
	}
	free(t->key);
	free(t->state);
	free(t->error);
	free(t->phase);
	json_decref(t->req);
	t->key = xstrdup(jsonx_str(r->body, "key"));
	t->state = xstrdup("running");
	t->error = NULL;
	t->unreachable = 0;
	t->phase = xstrdup("starting");
	t->bytes = t->files = t->files_unchanged = t->files_deleted = 0;
	t->bytes_total = total + jsonx_int(r->body, "database_bytes", 0);
	t->files_total = (long long)json_array_size(json_object_get(r->body,
	    "files"));
	t->req = json_deep_copy(r->body);	/* the delta adds to it */
	t->started = util_mono();
	t->finished = 0;
	pthread_mutex_unlock(&task_lock);
	if (pthread_create(&th, NULL, task_run, t) != 0) {
		pthread_mutex_lock(&task_lock);
		free(t->state);
		t->state = xstrdup("failed");
		t->error = xstrdup("cannot start a thread");
		pthread_mutex_unlock(&task_lock);
	} else {
		pthread_detach(th);
	}
	areply(r, 202, task_json(t));
}

/* GET /agent/v1/environments/{id}/import */
void
transfer_import_show(struct areq *r)
{
	struct task *t;

	pthread_mutex_lock(&task_lock);
	t = task_find(r->env->id);
	pthread_mutex_unlock(&task_lock);
	if (t == NULL) {
		areply_error(r, 404, "NO_IMPORT", "environment %lld has no "
		    "import since this node started", r->env->id);
		return;
	}
	areply(r, 200, task_json(t));
}
