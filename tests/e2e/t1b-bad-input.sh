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
# a node's unknown field is noted in the log once per node and field
notes=$(grep -c "sent the field 'zz_no_such_field' of environments in POST /agent/status, which this portal does not know: ignored" "$T/portal.log" || [ $? = 1 ])
expect "the portal notes an unknown heartbeat field once" "$notes" 1
expect_match "naming the node" "$(cat "$T/portal.log")" "node 'bad-node[0-9]+' sent the field 'zz_no_such_field' in POST /agent/status"
finish
