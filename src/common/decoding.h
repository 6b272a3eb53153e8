/* Reading the changes a logical replication slot with PostgreSQL's
 * test_decoding plugin gives (pg_logical_slot_peek_changes()): which
 * table, what was done, and the key and values of the row. */
#ifndef NUBO_DECODING_H
#define NUBO_DECODING_H

#include <jansson.h>

struct decoding_change {
	char	*table;	/* schema.name as format('%I.%I') writes it */
	char	 kind;	/* 'I'nsert, 'U'pdate, 'D'elete, 'T'runcate */
	json_t	*old;	/* UPDATE with old-key, DELETE: {column: value};
			 * NULL otherwise (or when the table has no key) */
	json_t	*row;	/* INSERT, UPDATE: {column: value}; else NULL */
};

/* One line of output: 1 with *c filled (decoding_change_free() it) for a
 * change; 0 for a line that is no change (BEGIN, COMMIT, a message); -1
 * with *cause when the line cannot be read. Column names are as stored
 * (unquoted); a value is its text, as the type's output function writes
 * it (a quoted literal unquoted), JSON null for NULL, and JSON true for a
 * TOASTed value the change left as it was (unchanged-toast-datum). */
int decoding_parse(const char *line, struct decoding_change *c,
    char **cause);
void decoding_change_free(struct decoding_change *c);

#endif
