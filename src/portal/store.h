/* The portal's state store: SQLite in WAL mode, foreign keys on, schema
 * migrations applied at start. One connection per thread. All SQL lives in
 * store*.c and the handlers' own files use these helpers.
 *
 * Bind types (the `types` string): 's' text (NULL binds NULL), 'i' long
 * long, 'j' json_t * (bound as its compact text; NULL binds NULL). */
#ifndef NUBO_STORE_H
#define NUBO_STORE_H

#include <jansson.h>
#include <sqlite3.h>

#define STORE_OK	 0
#define STORE_ERROR	-1
#define STORE_CONFLICT	-2	/* a UNIQUE / CHECK / FK constraint said no */

/* The id of a new app, for INSERT INTO apps (id, …) VALUES
 * (STORE_APP_NEW_ID, …): one more than any app ever had (schema 32), so
 * that no app takes a deleted one's id, nor what is still kept under it. */
#define STORE_APP_NEW_ID "(SELECT id + 1 FROM app_id_high)"

/* Open (and migrate) the store at path; used once at start. -1 on error. */
int store_open(const char *path);
/* This thread's connection. */
sqlite3 *store_db(void);
void store_close_thread(void);

/* Run a statement; STORE_OK, STORE_ERROR or STORE_CONFLICT. */
int store_run(sqlite3 *db, const char *sql, const char *types, ...);
/* Rows as a JSON array of objects keyed by column name (integers stay
 * integers; a column whose name ends in "_json" is parsed as JSON and the
 * suffix dropped). NULL on error. */
json_t *store_rows(sqlite3 *db, const char *sql, const char *types, ...);
/* Rows as JSON text, written straight from the columns (no JSON objects:
 * for hot list endpoints): an array of objects keyed by column name;
 * integers and reals are numbers, NULL is null, a column whose name ends
 * in "_bool" is true/false (suffix dropped), one ending in "_json" is
 * embedded as is (suffix dropped), other text is a string. When wrap is
 * not NULL the array is the value of that key in an object. NULL on
 * error; the caller frees the text. */
char *store_rows_text(sqlite3 *db, const char *wrap, const char *sql,
    const char *types, ...);
/* The first row as an object, or NULL when there is none or on error. */
json_t *store_row(sqlite3 *db, const char *sql, const char *types, ...);
/* The first column of the first row as an integer; dflt when none. */
long long store_int(sqlite3 *db, long long dflt, const char *sql,
    const char *types, ...);
/* The first column of the first row as a new string; NULL when none. */
char *store_text(sqlite3 *db, const char *sql, const char *types, ...);
long long store_last_id(sqlite3 *db);
/* The first row into C variables, for hot paths that should not build
 * JSON: after the bind arguments (types), one pointer per letter of cols:
 * 'i' long long * (NULL column: 0), 's' char ** (a new string, or NULL).
 * Returns 1 (row found), 0 (none) or -1 (error). */
int store_scan(sqlite3 *db, const char *sql, const char *types,
    const char *cols, ...);

/* Transactions: BEGIN IMMEDIATE / COMMIT / ROLLBACK. */
int store_begin(sqlite3 *db);
int store_commit(sqlite3 *db);
void store_rollback(sqlite3 *db);

/* The last error message of this connection. */
const char *store_errmsg(sqlite3 *db);

#endif
