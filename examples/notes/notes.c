/* notes — the nubo sample app: notes with file attachments.
 *
 * An ordinary twelve-factor web app: it listens on $PORT, keeps its rows in
 * the PostgreSQL database at $DATABASE_URL (schema created at start) and its
 * files under $NUBO_FILES_DIR as xx/yy/<uuid> (xx, yy = uuid characters 1-2
 * and 3-4: the Mendix file-store layout, which a backup holds as
 * tree/xx/yy/<uuid>). It shows the constant NUBO_CONST_Greeting and handles
 * the scheduled event Cleanup (POST /_nubo/events/Cleanup).
 *
 *   GET  /                          HTML list of notes
 *   GET  /healthz                   200 when the database answers
 *   GET  /api/notes                 JSON list
 *   POST /api/notes                 {"title": "...", "body": "..."}
 *   GET  /api/notes/{id}
 *   POST /api/notes/{id}/attachments?name=N   raw body = the file
 *   GET  /api/attachments/{uuid}
 *   GET  /api/stats                 counts
 *   POST /_nubo/events/Cleanup      records the run in table events
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>

#define JSON_MAX	(1024 * 1024)
#define ATTACH_MAX	(1024LL * 1024 * 1024)

static PGconn *db;
static pthread_mutex_t db_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *files_dir;
static const char *greeting;

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS notes ("
    "  id bigserial PRIMARY KEY,"
    "  title text NOT NULL,"
    "  body text NOT NULL DEFAULT '',"
    "  created_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS attachments ("
    "  uuid uuid PRIMARY KEY,"
    "  note_id bigint NOT NULL REFERENCES notes(id) ON DELETE CASCADE,"
    "  name text NOT NULL,"
    "  size bigint NOT NULL,"
    "  created_at timestamptz NOT NULL DEFAULT now());"
    "CREATE TABLE IF NOT EXISTS events ("
    "  id bigserial PRIMARY KEY,"
    "  name text NOT NULL,"
    "  ran_at timestamptz NOT NULL DEFAULT now());";

static void
logf_(const char *fmt, ...)
{
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;
	va_list ap;

	gmtime_r(&t, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(stderr, "%s notes: ", ts);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Run a query under the lock, reconnecting once when the connection broke.
 * The caller owns the result (NULL when the database is unreachable). */
static PGresult *
dbq(const char *sql, int n, const char *const *params)
{
	PGresult *res;
	ExecStatusType st;
	int attempt;

	pthread_mutex_lock(&db_lock);
	for (attempt = 0; attempt < 2; attempt++) {
		if (PQstatus(db) != CONNECTION_OK)
			PQreset(db);
		res = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
		st = PQresultStatus(res);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
			break;
		logf_("query failed: %s", PQerrorMessage(db));
		PQclear(res);
		res = NULL;
		if (PQstatus(db) == CONNECTION_OK)
			break;
	}
	pthread_mutex_unlock(&db_lock);
	return res;
}

static char *
make_uuid(void)
{
	unsigned char r[16];
	char *s = malloc(37);
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (s == NULL || fd == -1 || read(fd, r, sizeof r) != sizeof r) {
		if (fd != -1)
			close(fd);
		free(s);
		return NULL;
	}
	close(fd);
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	snprintf(s, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5],
	    r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
	return s;
}

static int
valid_uuid(const char *s)
{
	int i;

	if (strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

/* $NUBO_FILES_DIR/xx/yy/<uuid>; with mk, the two folders are created. */
static char *
file_path(const char *uuid, int mk)
{
	char *p;

	if (mk) {
		if (asprintf(&p, "%s/%.2s", files_dir, uuid) < 0)
			return NULL;
		mkdir(p, 0750);
		free(p);
		if (asprintf(&p, "%s/%.2s/%.2s", files_dir, uuid, uuid + 2) < 0)
			return NULL;
		mkdir(p, 0750);
		free(p);
	}
	if (asprintf(&p, "%s/%.2s/%.2s/%s", files_dir, uuid, uuid + 2, uuid) < 0)
		return NULL;
	return p;
}

static enum MHD_Result
send_text(struct MHD_Connection *c, unsigned status, const char *type,
    const char *text)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text,
	    MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
send_json(struct MHD_Connection *c, unsigned status, json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT);
	enum MHD_Result ret;

	json_decref(v);
	ret = send_text(c, status, "application/json", s ? s : "null");
	free(s);
	return ret;
}

static enum MHD_Result
send_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	return send_json(c, status, json_pack("{s:{s:s}}", "error", "message", msg));
}

/* The attachments of one note as a JSON array. */
static json_t *
note_attachments(const char *id)
{
	const char *p[1] = { id };
	PGresult *res;
	json_t *arr = json_array();
	int i;

	res = dbq("SELECT uuid, name, size FROM attachments WHERE note_id = $1 "
	    "ORDER BY created_at, uuid", 1, p);
	for (i = 0; res && i < PQntuples(res); i++)
		json_array_append_new(arr, json_pack("{s:s,s:s,s:I}",
		    "uuid", PQgetvalue(res, i, 0), "name", PQgetvalue(res, i, 1),
		    "size", (json_int_t)strtoll(PQgetvalue(res, i, 2), NULL, 10)));
	PQclear(res);
	return arr;
}

static json_t *
note_row(PGresult *res, int i)
{
	return json_pack("{s:I,s:s,s:s,s:s,s:o}",
	    "id", (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10),
	    "title", PQgetvalue(res, i, 1), "body", PQgetvalue(res, i, 2),
	    "created_at", PQgetvalue(res, i, 3),
	    "attachments", note_attachments(PQgetvalue(res, i, 0)));
}

#define NOTE_COLS "id, title, body, " \
	"to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static enum MHD_Result
notes_list(struct MHD_Connection *c)
{
	PGresult *res = dbq("SELECT " NOTE_COLS " FROM notes ORDER BY id", 0, NULL);
	json_t *arr;
	int i;

	if (res == NULL)
		return send_error(c, 503, "database unavailable");
	arr = json_array();
	for (i = 0; i < PQntuples(res); i++)
		json_array_append_new(arr, note_row(res, i));
	PQclear(res);
	return send_json(c, 200, arr);
}

static enum MHD_Result
notes_get(struct MHD_Connection *c, const char *id)
{
	const char *p[1] = { id };
	PGresult *res;
	json_t *v;

	res = dbq("SELECT " NOTE_COLS " FROM notes WHERE id = $1", 1, p);
	if (res == NULL)
		return send_error(c, 503, "database unavailable");
	if (PQntuples(res) != 1) {
		PQclear(res);
		return send_error(c, 404, "note not found");
	}
	v = note_row(res, 0);
	PQclear(res);
	return send_json(c, 200, v);
}

static enum MHD_Result
notes_create(struct MHD_Connection *c, const char *body, size_t len)
{
	json_error_t err;
	json_t *in, *v;
	const char *key, *p[2];
	PGresult *res;
	char id[32];

	in = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
	if (!json_is_object(in)) {
		json_decref(in);
		return send_error(c, 400, "body must be a JSON object");
	}
	json_object_foreach(in, key, v) {
		if (strcmp(key, "title") != 0 && strcmp(key, "body") != 0) {
			json_decref(in);
			return send_error(c, 400, "unknown field");
		}
		if (!json_is_string(v)) {
			json_decref(in);
			return send_error(c, 400, "fields must be strings");
		}
	}
	p[0] = json_string_value(json_object_get(in, "title"));
	p[1] = json_string_value(json_object_get(in, "body"));
	if (p[0] == NULL || *p[0] == '\0') {
		json_decref(in);
		return send_error(c, 400, "missing title");
	}
	if (p[1] == NULL)
		p[1] = "";
	res = dbq("INSERT INTO notes (title, body) VALUES ($1, $2) RETURNING id",
	    2, p);
	json_decref(in);
	if (res == NULL)
		return send_error(c, 503, "database unavailable");
	snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	return notes_get(c, id) == MHD_YES ? MHD_YES : MHD_NO;
}

static enum MHD_Result
attachment_get(struct MHD_Connection *c, const char *uuid)
{
	const char *p[1] = { uuid };
	struct MHD_Response *r;
	enum MHD_Result ret;
	PGresult *res;
	struct stat st;
	char *path;
	int fd;

	if (!valid_uuid(uuid))
		return send_error(c, 404, "attachment not found");
	res = dbq("SELECT name FROM attachments WHERE uuid = $1", 1, p);
	if (res == NULL)
		return send_error(c, 503, "database unavailable");
	if (PQntuples(res) != 1) {
		PQclear(res);
		return send_error(c, 404, "attachment not found");
	}
	PQclear(res);
	path = file_path(uuid, 0);
	fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	free(path);
	if (fd == -1 || fstat(fd, &st) == -1) {
		if (fd != -1)
			close(fd);
		return send_error(c, 410, "attachment file is missing");
	}
	r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	MHD_add_response_header(r, "Content-Type", "application/octet-stream");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
stats(struct MHD_Connection *c)
{
	PGresult *res;
	json_t *v;

	res = dbq("SELECT (SELECT count(*) FROM notes),"
	    " (SELECT count(*) FROM attachments),"
	    " (SELECT coalesce(sum(size), 0) FROM attachments),"
	    " (SELECT count(*) FROM events WHERE name = 'Cleanup'),"
	    " (SELECT coalesce(to_char(max(ran_at) AT TIME ZONE 'UTC',"
	    "   'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') FROM events)", 0, NULL);
	if (res == NULL)
		return send_error(c, 503, "database unavailable");
	v = json_pack("{s:I,s:I,s:I,s:{s:I},s:s,s:s}",
	    "notes", (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10),
	    "attachments", (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10),
	    "attachment_bytes", (json_int_t)strtoll(PQgetvalue(res, 0, 2), NULL, 10),
	    "events", "Cleanup", (json_int_t)strtoll(PQgetvalue(res, 0, 3), NULL, 10),
	    "last_event_at", PQgetvalue(res, 0, 4),
	    "greeting", greeting);
	PQclear(res);
	return send_json(c, 200, v);
}

/* The scheduled event: records the run (GET /api/stats shows the count). */
static enum MHD_Result
event_cleanup(struct MHD_Connection *c)
{
	PGresult *res;

	res = dbq("INSERT INTO events (name) VALUES ('Cleanup')", 0, NULL);
	if (res == NULL)
		return send_error(c, 503, "database unavailable");
	PQclear(res);
	logf_("scheduled event Cleanup ran");
	return send_json(c, 200, json_pack("{s:s,s:b}", "event", "Cleanup",
	    "recorded", 1));
}

static void
html_escape(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
	}
}

static enum MHD_Result
home(struct MHD_Connection *c)
{
	PGresult *res = dbq("SELECT n.id, n.title, n.body, "
	    "(SELECT count(*) FROM attachments a WHERE a.note_id = n.id) "
	    "FROM notes n ORDER BY n.id", 0, NULL);
	char *page = NULL;
	size_t len = 0;
	enum MHD_Result ret;
	FILE *f;
	int i;

	if (res == NULL)
		return send_error(c, 503, "database unavailable");
	f = open_memstream(&page, &len);
	fputs("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
	    "<title>notes</title></head><body>\n<h1>", f);
	html_escape(f, greeting);
	fprintf(f, "</h1>\n<p>%d notes</p>\n<ul>\n", PQntuples(res));
	for (i = 0; i < PQntuples(res); i++) {
		fprintf(f, "<li id=\"note-%s\"><b>", PQgetvalue(res, i, 0));
		html_escape(f, PQgetvalue(res, i, 1));
		fputs("</b> ", f);
		html_escape(f, PQgetvalue(res, i, 2));
		fprintf(f, " (%s attachments)</li>\n", PQgetvalue(res, i, 3));
	}
	fputs("</ul>\n</body></html>\n", f);
	fclose(f);
	PQclear(res);
	ret = send_text(c, 200, "text/html; charset=utf-8", page);
	free(page);
	return ret;
}

/* Per-request state for bodies that arrive in pieces. */
struct req {
	int	 kind;		/* 1 JSON, 2 attachment */
	char	*body;
	size_t	 len;
	int	 fd;
	char	*uuid;
	char	*tmp;
	long long size;
	int	 too_big;
	int	 failed;
	int	 no_note;
};

static void
req_free(struct req *q)
{
	if (q == NULL)
		return;
	if (q->fd != -1)
		close(q->fd);
	if (q->tmp != NULL)
		unlink(q->tmp);
	free(q->tmp);
	free(q->uuid);
	free(q->body);
	free(q);
}

static void
request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	req_free(*con_cls);
	*con_cls = NULL;
}

/* "/api/notes/<id>/attachments" → id (digits) or NULL. */
static char *
match_attach(const char *url)
{
	const char *p = url + strlen("/api/notes/");
	size_t n = strspn(p, "0123456789");

	if (strncmp(url, "/api/notes/", 11) != 0 || n == 0 || n > 18 ||
	    strcmp(p + n, "/attachments") != 0)
		return NULL;
	return strndup(p, n);
}

static enum MHD_Result
attachment_finish(struct MHD_Connection *c, struct req *q, const char *id)
{
	const char *name, *p[4];
	char size[32], *path;
	PGresult *res;

	if (q->no_note)
		return send_error(c, 404, "note not found");
	if (q->too_big)
		return send_error(c, 413, "attachment too large");
	if (q->failed)
		return send_error(c, 500, "cannot store the attachment");
	if (fsync(q->fd) == -1 || close(q->fd) == -1) {
		q->fd = -1;
		return send_error(c, 500, "cannot store the attachment");
	}
	q->fd = -1;
	name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name");
	if (name == NULL || *name == '\0')
		name = "attachment";
	snprintf(size, sizeof size, "%lld", q->size);
	path = file_path(q->uuid, 1);
	if (path == NULL || rename(q->tmp, path) == -1) {
		free(path);
		return send_error(c, 500, "cannot store the attachment");
	}
	free(q->tmp);
	q->tmp = NULL;
	p[0] = q->uuid; p[1] = id; p[2] = name; p[3] = size;
	res = dbq("INSERT INTO attachments (uuid, note_id, name, size) "
	    "VALUES ($1, $2, $3, $4)", 4, p);
	if (res == NULL) {
		unlink(path);
		free(path);
		return send_error(c, 404, "note not found");
	}
	free(path);
	PQclear(res);
	return send_json(c, 201, json_pack("{s:s,s:s,s:I}", "uuid", q->uuid,
	    "name", name, "size", (json_int_t)q->size));
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_size, void **con_cls)
{
	struct req *q = *con_cls;
	int is_post = strcmp(method, "POST") == 0;
	int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	char *id = NULL;
	enum MHD_Result ret;

	(void)cls;
	(void)version;
	if (q == NULL) {
		q = calloc(1, sizeof *q);
		if (q == NULL)
			return MHD_NO;
		q->fd = -1;
		*con_cls = q;
		if (is_post && (id = match_attach(url)) != NULL) {
			const char *p[1] = { id };
			PGresult *res = dbq("SELECT 1 FROM notes WHERE id = $1", 1, p);

			free(id);
			q->kind = 2;
			if (res == NULL || PQntuples(res) != 1) {
				PQclear(res);
				q->no_note = 1;
				return MHD_YES;
			}
			PQclear(res);
			q->uuid = make_uuid();
			if (q->uuid == NULL || asprintf(&q->tmp,
			    "%s/.upload-%s", files_dir, q->uuid) < 0) {
				q->tmp = NULL;
				q->failed = 1;
			} else if ((q->fd = open(q->tmp, O_WRONLY | O_CREAT |
			    O_EXCL | O_CLOEXEC, 0640)) == -1) {
				logf_("cannot create %s: %s", q->tmp, strerror(errno));
				free(q->tmp);
				q->tmp = NULL;
				q->failed = 1;
			}
		} else if (is_post) {
			q->kind = 1;
		}
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (q->kind == 2 && !q->failed && !q->too_big && !q->no_note) {
			const char *d = upload_data;
			size_t left = *upload_size;

			q->size += (long long)left;
			if (q->size > ATTACH_MAX)
				q->too_big = 1;
			while (!q->too_big && left > 0) {
				ssize_t w = write(q->fd, d, left);

				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0) {
					q->failed = 1;
					break;
				}
				d += w;
				left -= (size_t)w;
			}
		} else if (q->kind == 1 && !q->too_big) {
			if (q->len + *upload_size > JSON_MAX) {
				q->too_big = 1;
			} else {
				char *nb = realloc(q->body, q->len + *upload_size + 1);

				if (nb == NULL)
					return MHD_NO;
				q->body = nb;
				memcpy(q->body + q->len, upload_data, *upload_size);
				q->len += *upload_size;
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}

	if (is_get && strcmp(url, "/healthz") == 0) {
		PGresult *res = dbq("SELECT 1", 0, NULL);

		if (res == NULL)
			return send_text(c, 503, "text/plain", "database unavailable\n");
		PQclear(res);
		return send_text(c, 200, "text/plain", "ok\n");
	}
	if (is_get && strcmp(url, "/") == 0)
		return home(c);
	if (is_get && strcmp(url, "/api/notes") == 0)
		return notes_list(c);
	if (is_post && strcmp(url, "/api/notes") == 0) {
		if (q->too_big)
			return send_error(c, 413, "body too large");
		return notes_create(c, q->body ? q->body : "", q->len);
	}
	if (is_get && strncmp(url, "/api/notes/", 11) == 0 &&
	    url[11] != '\0' && strspn(url + 11, "0123456789") == strlen(url + 11) &&
	    strlen(url + 11) <= 18)
		return notes_get(c, url + 11);
	if (is_post && (id = match_attach(url)) != NULL) {
		ret = attachment_finish(c, q, id);
		free(id);
		return ret;
	}
	if (is_get && strncmp(url, "/api/attachments/", 17) == 0)
		return attachment_get(c, url + 17);
	if (is_get && strcmp(url, "/api/stats") == 0)
		return stats(c);
	if (is_post && strcmp(url, "/_nubo/events/Cleanup") == 0)
		return event_cleanup(c);
	if (strncmp(url, "/_nubo/events/", 14) == 0)
		return send_error(c, 404, "unknown scheduled event");
	return send_error(c, 404, "not found");
}

int
main(void)
{
	const char *port_s = getenv("PORT"), *url = getenv("DATABASE_URL");
	const char *host = getenv("HOST");
	struct MHD_Daemon *d;
	struct sockaddr_in sa;
	sigset_t set;
	long port;
	int sig, i;

	setvbuf(stderr, NULL, _IOLBF, 0);
	if (port_s == NULL || (port = strtol(port_s, NULL, 10)) <= 0 || port > 65535) {
		logf_("PORT must be set to a port number");
		return 2;
	}
	if (url == NULL) {
		logf_("DATABASE_URL must be set (postgresql://user:password@host:port/db)");
		return 2;
	}
	files_dir = getenv("NUBO_FILES_DIR");
	if (files_dir == NULL || *files_dir == '\0')
		files_dir = "files";
	mkdir(files_dir, 0750);
	greeting = getenv("NUBO_CONST_Greeting");
	if (greeting == NULL)
		greeting = "notes";

	/* the database may still be starting: try for 30 seconds */
	for (i = 0; i < 60; i++) {
		db = PQconnectdb(url);
		if (PQstatus(db) == CONNECTION_OK)
			break;
		if (i == 0)
			logf_("waiting for the database: %s", PQerrorMessage(db));
		PQfinish(db);
		db = NULL;
		usleep(500 * 1000);
	}
	if (db == NULL) {
		logf_("cannot connect to the database");
		return 1;
	}
	{
		PGresult *res = PQexec(db, schema);

		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			logf_("cannot create the schema: %s", PQerrorMessage(db));
			PQclear(res);
			return 1;
		}
		PQclear(res);
	}

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host ? host : "127.0.0.1", &sa.sin_addr) != 1) {
		logf_("HOST must be an IPv4 address");
		return 2;
	}
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
	    (uint16_t)port, NULL, NULL, handle, NULL,
	    MHD_OPTION_SOCK_ADDR, &sa,
	    MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
	    MHD_OPTION_END);
	if (d == NULL) {
		logf_("cannot listen on port %ld", port);
		return 1;
	}
	logf_("listening on %s:%ld, files in %s", host ? host : "127.0.0.1",
	    port, files_dir);
	logf_("greeting: %s", greeting);
	sigwait(&set, &sig);
	logf_("signal %d: stopping", sig);
	MHD_stop_daemon(d);
	PQfinish(db);
	return 0;
}
