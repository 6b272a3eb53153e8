#!/usr/bin/env bash
# t1c: the portal's state survives restarts — a clean stop (SIGTERM) and a
# crash (kill -9): users, keys (with their scope, read-only flag and
# expiry), apps, and revocations all persist; revoked keys stay revoked.
. "$(dirname "$0")/lib.sh"

start_portal

BOB=$(make_user bob@example.com bobpass123)
NUBO_API_KEY=$BOB "$NUBO" apps create bobapp --no-sandbox --name "Bob's app" >/dev/null
"$NUBO" apps create adminapp --no-sandbox >/dev/null
SCOPED=$(NUBO_API_KEY=$BOB "$NUBO" keys create --app bobapp --name scoped 2>/dev/null)
RO=$(NUBO_API_KEY=$BOB "$NUBO" keys create --read-only 2>/dev/null)
EXP=$(NUBO_API_KEY=$BOB "$NUBO" keys create --expires 2099-12-31T23:59:59Z 2>/dev/null)
REV=$(NUBO_API_KEY=$BOB "$NUBO" keys create --name gone 2>/dev/null)
CHILD=$(NUBO_API_KEY=$REV "$NUBO" keys create --name child 2>/dev/null)
NUBO_API_KEY=$BOB "$NUBO" keys revoke "$REV" >/dev/null
LATE=$(NUBO_API_KEY=$BOB "$NUBO" keys create --name late 2>/dev/null)

snapshot() {
	{
		"$NUBO" admin users list --json
		"$NUBO" apps list --json
		NUBO_API_KEY=$BOB "$NUBO" keys list --json
		"$NUBO" keys list --json
	} | python3 -c 'import json,sys; d=sys.stdin.read(); print(d)'
}

verify() {
	local when=$1
	expect "$when: state identical" "$(snapshot)" "$STATE"
	expect "$when: bob's key works" "$(NUBO_API_KEY=$BOB "$NUBO" whoami --json | jq_get email)" bob@example.com
	expect "$when: app kept its name" "$("$NUBO" apps show bobapp --json | jq_get name)" "Bob's app"
	expect "$when: scoped key still scoped" "$(status_as "$SCOPED" GET /apps/adminapp)" 403
	expect "$when: scoped key still works on its app" "$(status_as "$SCOPED" GET /apps/bobapp)" 200
	expect "$when: read-only key still read-only" "$(status_as "$RO" POST /keys '{}')" 403
	expect "$when: read-only key reads" "$(status_as "$RO" GET /me)" 200
	expect "$when: expiry kept" "$(api_as "$EXP" GET /me | jq_get key_expires_at)" 2099-12-31T23:59:59Z
	expect "$when: revoked key stays revoked" "$(api_as "$REV" GET /me | jq_get error.code)" KEY_REVOKED
	expect "$when: its child stays revoked" "$(api_as "$CHILD" GET /me | jq_get error.code)" KEY_REVOKED
	expect "$when: key created just before works" "$(status_as "$LATE" GET /me)" 200
	expect "$when: password login works" "$(api_as "" POST /sessions '{"email":"bob@example.com","password":"bobpass123"}' | jq_get user_id)" 2
}

STATE=$(snapshot)
expect "snapshot is not empty" "$(printf '%s' "$STATE" | grep -c bobapp)" 2

stop_portal
start_portal
verify "after SIGTERM"
LOGINS=$(NUBO_API_KEY=$BOB "$NUBO" keys list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')

# Write right before the crash: an acknowledged write must survive kill -9.
NUBO_API_KEY=$BOB "$NUBO" keys revoke "$LATE" >/dev/null
STATE=$(snapshot)
kill9_portal
start_portal
verify_after_crash() {
	expect "after kill -9: state identical" "$(snapshot)" "$STATE"
	expect "after kill -9: key revoked just before the crash stays revoked" "$(api_as "$LATE" GET /me | jq_get error.code)" KEY_REVOKED
	expect "after kill -9: revoked key stays revoked" "$(api_as "$REV" GET /me | jq_get error.code)" KEY_REVOKED
	expect "after kill -9: scoped key still scoped" "$(status_as "$SCOPED" GET /apps/adminapp)" 403
	expect "after kill -9: bob's key works" "$(status_as "$BOB" GET /me)" 200
}
verify_after_crash
expect "no key appeared or vanished" "$(NUBO_API_KEY=$BOB "$NUBO" keys list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" "$LOGINS"

# Twice more in a row, to be sure nothing depends on a clean shutdown.
kill9_portal
start_portal
verify_after_crash

finish
