/* Password login lockout (POST /sessions): failed logins are counted per
 * account and per client address in the store, so guessing passwords or
 * spraying one password over many accounts is refused with 429 before
 * any password is checked. Caps: NUBO_LOGIN_* in nubo_limits.h. */
#ifndef NUBO_LOCKOUT_H
#define NUBO_LOCKOUT_H

#include <sqlite3.h>
#include <stddef.h>

#include "httpd.h"

enum lockout {
	LOCKOUT_ERROR = -1,	/* store error: refuse the login */
	LOCKOUT_NONE = 0,	/* go on and check the password */
	LOCKOUT_ACCOUNT = 1,	/* the email has too many failures */
	LOCKOUT_ADDRESS = 2,	/* the client address has too many failures */
};

/* The address failures are counted under: the client's IPv4 address, or
 * the /64 of its IPv6 address (one host usually holds a whole /64). */
void lockout_address(struct http_req *http, char *out, size_t outlen);

/* Before a password is checked. LOCKOUT_NONE: the attempt may go on; it is
 * already counted as a failure of the email and of the address (so
 * concurrent attempts cannot overrun the cap) until lockout_success()
 * takes it back. LOCKOUT_ACCOUNT / LOCKOUT_ADDRESS: locked out, nothing
 * counted, *retry_after is the number of seconds until the lock ends.
 * LOCKOUT_ERROR: the store failed. *locking gets the LOCKOUT_ACCOUNT and
 * LOCKOUT_ADDRESS bits this attempt locks if it fails (for the log).
 * Unknown emails are counted like known ones, so a lockout tells nothing
 * about which emails exist. */
enum lockout lockout_begin(sqlite3 *db, const char *email,
    const char *address, long long *retry_after, int *locking);

/* After a successful login: the email's failures are forgotten and the
 * address's provisional count is taken back (its earlier failures stay:
 * logging in to one's own account must not reset a spray counter). */
void lockout_success(sqlite3 *db, const char *email, const char *address);

#endif
