#!/usr/bin/env bash
# t1b: bad input for every write route (SPEC §6), generated from `nubod
# routes`: malformed, oversized, deeply nested JSON, unknown fields, wrong
# types, unknown ids, plus subdomain/email/expiry rules; each gets a 4xx
# with an error code and the store stays unchanged. See badinput.py.
. "$(dirname "$0")/lib.sh"

start_portal
if python3 "$NUBO_SRC/tests/e2e/badinput.py" "$NUBOD" "$PORTAL_URL" \
	"$ADMIN_KEY" "$T/portal/portal.db"; then
	pass "badinput.py: every check above"
else
	fail "badinput.py: see the not-ok lines above"
fi
finish
