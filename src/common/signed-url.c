#include "signed-url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "util.h"
#include "xmalloc.h"

void
signed_url_sig(const char *secret, const char *method, const char *path,
    long long expires, long long user, char sig[65])
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	char *msg = xasprintf("%s\n%s\n%lld\n%lld", method, path, expires,
	    user);

	crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret,
	    strlen(secret));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg,
	    strlen(msg));
	crypto_auth_hmacsha256_final(&st, mac);
	util_hex(mac, sizeof mac, sig);
	sodium_memzero(&st, sizeof st);
	free(msg);
}

char *
signed_url_make(const char *secret, const char *base, const char *method,
    const char *path, long long user, long ttl)
{
	long long expires = (long long)util_now() + ttl;
	char sig[65];

	signed_url_sig(secret, method, path, expires, user, sig);
	return xasprintf("%s%s?expires=%lld&user=%lld&sig=%s", base, path,
	    expires, user, sig);
}

int
signed_url_check(const char *secret, const char *method, const char *path,
    const char *expires, const char *user, const char *sig, const char **why)
{
	long long exp, uid;
	char want[65];

	if (expires == NULL || user == NULL || sig == NULL) {
		*why = "missing signature (expires, user, sig)";
		return -1;
	}
	if (util_parse_int(expires, 0, 1LL << 40, &exp) == -1 ||
	    util_parse_int(user, 0, 1LL << 53, &uid) == -1 ||
	    strlen(sig) != 64) {
		*why = "malformed signature";
		return -1;
	}
	signed_url_sig(secret, method, path, exp, uid, want);
	if (sodium_memcmp(want, sig, 64) != 0) {
		*why = "bad signature";
		return -1;
	}
	if (exp < (long long)util_now()) {
		*why = "signed URL expired";
		return -1;
	}
	return 0;
}
