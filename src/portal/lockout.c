/* Password login lockout: failed logins counted per account and per client
 * address in the store (table login_failures, schema step 11), so a
 * restart does not reset them and every worker thread sees the same
 * counts (each change is one BEGIN IMMEDIATE transaction). */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lockout.h"
#include "log.h"
#include "nubo_limits.h"
#include "store.h"
#include "util.h"
#include "xmalloc.h"

/* "account:<sha256 of the lowercased email>": emails compare without case
 * (as users.email does) and the table never holds what a client typed. */
static char *
lockout_account(const char *email)
{
	char *low = xstrdup(email), *hash, *out;
	size_t i;

	for (i = 0; low[i]; i++)
		low[i] = (char)tolower((unsigned char)low[i]);
	hash = util_sha256_hex(low, strlen(low));
	out = xasprintf("account:%s", hash);
	free(hash);
	free(low);
	return out;
}

void
lockout_address(struct http_req *http, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN + 1], text[INET6_ADDRSTRLEN + 1];
	struct in6_addr a6;

	http_client_ip(http, ip, sizeof ip);
	if (inet_pton(AF_INET6, ip, &a6) != 1) {
		snprintf(out, outlen, "address:%s", ip);
		return;
	}
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		inet_ntop(AF_INET, &a6.s6_addr[12], text, sizeof text);
		snprintf(out, outlen, "address:%s", text);
		return;
	}
	memset(&a6.s6_addr[8], 0, 8);
	inet_ntop(AF_INET6, &a6, text, sizeof text);
	snprintf(out, outlen, "address:%s/64", text);
}

enum lockout
lockout_begin(sqlite3 *db, const char *email, const char *address,
    long long *retry_after, int *locking)
{
	char *account = lockout_account(email);
	const char *subject[2] = { account, address };
	static const long long cap[2] = { NUBO_LOGIN_ACCOUNT_FAILURES,
	    NUBO_LOGIN_ADDRESS_FAILURES };
	long long now = (long long)util_now(), locked, failures, until = 0;
	enum lockout rc = LOCKOUT_ERROR, which = LOCKOUT_NONE;
	int i, found;

	*retry_after = 0;
	*locking = 0;
	if (store_begin(db) == -1)
		goto out;
	/* A row whose window passed and whose lock ended means nothing: gone,
	 * so counting starts over. */
	if (store_run(db, "DELETE FROM login_failures WHERE expires <= ?",
	    "i", now) != STORE_OK)
		goto fail;
	for (i = 0; i < 2; i++) {
		found = store_scan(db, "SELECT locked_until FROM login_failures"
		    " WHERE subject = ?", "s", "i", subject[i], &locked);
		if (found == -1)
			goto fail;
		if (found && locked > now && locked > until) {
			until = locked;
			which = i == 0 ? LOCKOUT_ACCOUNT : LOCKOUT_ADDRESS;
		}
	}
	if (which != LOCKOUT_NONE) {
		/* Refused attempts are not counted: the lock ends on time
		 * even while someone keeps trying. */
		store_rollback(db);
		*retry_after = until - now;
		rc = which;
		goto out;
	}
	for (i = 0; i < 2; i++) {
		if (store_run(db, "INSERT INTO login_failures (subject,"
		    " failures, window_start, locked_until, expires)"
		    " VALUES (?, 1, ?, 0, ?) ON CONFLICT(subject) DO UPDATE"
		    " SET failures = failures + 1", "sii", subject[i], now,
		    now + NUBO_LOGIN_WINDOW_SECS) != STORE_OK)
			goto fail;
		failures = store_int(db, 0, "SELECT failures FROM"
		    " login_failures WHERE subject = ?", "s", subject[i]);
		if (failures < cap[i])
			continue;
		if (store_run(db, "UPDATE login_failures SET locked_until = ?,"
		    " expires = max(expires, ?) WHERE subject = ?", "iis",
		    now + NUBO_LOGIN_LOCKOUT_SECS,
		    now + NUBO_LOGIN_LOCKOUT_SECS, subject[i]) != STORE_OK)
			goto fail;
		if (failures == cap[i])
			*locking |= i == 0 ? LOCKOUT_ACCOUNT : LOCKOUT_ADDRESS;
	}
	if (store_commit(db) == -1)
		goto fail;
	rc = LOCKOUT_NONE;
	goto out;
fail:
	log_error("login lockout: %s", store_errmsg(db));
	store_rollback(db);
out:
	free(account);
	return rc;
}

void
lockout_success(sqlite3 *db, const char *email, const char *address)
{
	char *account = lockout_account(email);

	if (store_begin(db) == -1)
		goto out;
	if (store_run(db, "DELETE FROM login_failures WHERE subject = ?", "s",
	    account) != STORE_OK ||
	    store_run(db, "UPDATE login_failures SET failures = failures - 1,"
	    " locked_until = CASE WHEN failures - 1 < ? THEN 0"
	    " ELSE locked_until END WHERE subject = ?", "is",
	    (long long)NUBO_LOGIN_ADDRESS_FAILURES, address) != STORE_OK ||
	    store_run(db, "DELETE FROM login_failures WHERE subject = ? AND"
	    " failures <= 0", "s", address) != STORE_OK ||
	    store_commit(db) == -1) {
		log_error("login lockout: %s", store_errmsg(db));
		store_rollback(db);
	}
out:
	free(account);
}
