#!/usr/bin/env bash
# t9: the Mendix Cloud API faces (docs/MENDIX-API.md) against a real portal
# and a real v4 node with the sample app: the CI flow a pipeline runs
# through Deploy API v1/v2 (upload → poll job → stop → clean → transport →
# start → poll start job → settings get/set → scale), the field names and
# types of every answer against the reference, that it really happened
# (the router serves the new package, clean wiped the data, a constant
# reaches the app), each sloppy-client case, and every reference error
# nubo can produce, once. See mxapi.py for the checks.
. "$(dirname "$0")/lib.sh"

export NUBO_TEST_PAUSE_FILE=$T/pause
PKG=$NUBO_BUILD/packages/notes-1.0.0.tar.gz
[ -f "$PKG" ] || { echo "missing $PKG: run make examples"; exit 1; }

start_portal
start_node mx v4
# the sandbox node, for POST /api/1/apps (a Free App environment)
NODE_CREATE_ARGS=--sandbox start_node sandbox v4
check "create app" "$NUBO" apps create shop --no-sandbox
check "link app to node" "$NUBO" nodes link mx shop
# a member who may only look (no transport), for NO_ACCESS
VIEWER_KEY=$(make_user viewer@mx.test)
check "add the viewer" "$NUBO" members add shop viewer@mx.test
# a read-only key of the admin, and personal access tokens (Deploy API v4)
RO_KEY=$("$NUBO" keys create --read-only 2>/dev/null)
PAT=$("$NUBO" keys create --pat --scope mx:deployment:read,mx:deployment:write 2>/dev/null)
PAT_RO=$("$NUBO" keys create --pat --scope mx:deployment:read 2>/dev/null)
check_fails "--pat needs --scope" 2 "$NUBO" keys create --pat
check_fails "an unknown scope is refused" 1 "$NUBO" keys create --pat --scope mx:everything
check_fails "a token without mx:deployment:read is refused" 1 "$NUBO" keys create --pat --scope mx:deployment:write
expect_match "the missing scope named" "$(cat "$T/last.err")" "needs mx:deployment:read"
expect "keys list shows the token's scopes" "$("$NUBO" keys list --json |
	python3 -c 'import json,sys; print(sorted(",".join(k["scopes"]) for k in (lambda d: d["keys"] if isinstance(d, dict) else d)(json.load(sys.stdin)) if k.get("scopes")))')" \
	"['mx:deployment:read', 'mx:deployment:read,mx:deployment:write']"

if python3 "$NUBO_SRC/tests/e2e/mxapi.py" "$PORTAL_URL" "$ROUTER_mx" \
	admin@nubo.localhost "$ADMIN_KEY" "$VIEWER_KEY" "$RO_KEY" "$PKG" \
	"$T" "$T/portal/portal.db" "$NODE_PID_mx" "$PAT" "$PAT_RO"; then
	pass "mxapi.py: every check above"
else
	fail "mxapi.py: see the not-ok lines above"
fi
# packages uploaded by the CLI carry the Build API's labels too
check_fails "a bad branch label is refused before uploading" 2 \
	"$NUBO" packages upload --app shop "$T/notes-1.0.2.tar.gz" --branch 'a b' --revision 3
check "nubo packages upload --branch --revision" \
	"$NUBO" packages upload --app shop "$T/notes-1.0.2.tar.gz" --branch feature --revision 3
expect "the branch is listed by the Team Server API" "$(curl -s \
	-H "Mendix-Username: admin@nubo.localhost" -H "Mendix-ApiKey: $ADMIN_KEY" \
	"$PORTAL_URL/api/1/apps/shop/branches/feature" | jq_get LatestRevisionNumber)" 3

# On a v3 node (one instance, no custom runtime settings) Deploy API v1
# answers what Mendix answers where an action is not allowed.
start_node mx3 v3
check "create app legacy" "$NUBO" apps create legacy --no-sandbox
check "link legacy to the v3 node" "$NUBO" nodes link mx3 legacy
MXH=(-H "Mendix-Username: admin@nubo.localhost" -H "Mendix-ApiKey: $ADMIN_KEY")
mx_post() {	# PATH BODY → "HTTP-STATUS errorCode"
	local st
	st=$(curl -s -o "$T/mx.out" -w '%{http_code}' -X POST "${MXH[@]}" \
		-H 'Content-Type: application/json' -d "$2" "$PORTAL_URL/api/1$1")
	echo "$st $(jq_get errorCode < "$T/mx.out")"
}
expect "scale on a v3 node: 400 NOT_ALLOWED" \
	"$(mx_post /apps/legacy/environments/Test/scale '{"Instances":2}')" \
	"400 NOT_ALLOWED"
expect "custom runtime settings on a v3 node: 400 CUSTOM_SETTING_NOT_SUPPORTED" \
	"$(mx_post /apps/legacy/environments/Test/settings \
		'{"CustomSettings":[{"Name":"LogLevel","Value":"debug"}]}')" \
	"400 CUSTOM_SETTING_NOT_SUPPORTED"

# the spooled uploads went to the node and are gone from the portal
expect "no upload left in the portal's data folder" \
	"$(find "$T/portal/uploads" -type f 2>/dev/null | wc -l)" 0

# A portal stopping while v1 requests wait for their jobs (suspended:
# libmicrohttpd cannot stop with one) answers them and stops cleanly.
# v1_stop_held: a v1 stop of shop's Test sent (in the background) while
# the node is stopped, so that its job cannot end.
v1_stop_held() {
	kill -STOP "$NODE_PID_mx"
	curl -s -o "$T/wait.out" -w '%{http_code}' -X POST \
		-H "Mendix-Username: admin@nubo.localhost" -H "Mendix-ApiKey: $ADMIN_KEY" \
		"$PORTAL_URL/api/1/apps/shop/environments/Test/stop" > "$T/wait.code" &
	cpid=$!
}
# v1_stop_answered WHERE: the TERMed portal's end, and its answer to it
v1_stop_answered() {
	local rc=0
	wait "$PORTAL_PID" || rc=$?
	kill -CONT "$NODE_PID_mx"
	wait "$cpid" || true
	expect "the portal stops cleanly with a v1 request $1" "$rc" 0
	expect "the v1 stop $1 is answered" "$(cat "$T/wait.code")" 500
	expect_match "saying that its job goes on" "$(cat "$T/wait.out")" \
		'"errorCode":"STOP_FAILED".*is still (queued|running)'
}
v1_stop_held
# the portal holds the request once its stop job is recorded (a TERM
# before that would find no request to answer)
queued_stops() { sqlite3 -cmd ".timeout 2000" "$T/portal/portal.db" "SELECT count(*) FROM jobs WHERE kind = 'env.stop' AND state IN ('queued', 'running')"; }
for _ in $(seq 1 200); do
	[ "$(queued_stops)" -gt 0 ] && break
	sleep 0.1
done
expect "the v1 stop's job waits for the stopped node" "$(queued_stops)" 1
sleep 0.2
kill -TERM "$PORTAL_PID"
v1_stop_answered waiting

# The same with the TERM coming while the request is still in its
# handler (its job recorded, not yet held): the portal answers it before
# it closes its connections.
start_portal
echo mx-action-queued > "$T/pause"
v1_stop_held
for _ in $(seq 1 200); do
	[ -f "$T/pause.reached" ] && break
	sleep 0.1
done
expect "the v1 stop is in its handler" "$(cat "$T/pause.reached" 2>/dev/null)" \
	mx-action-queued
kill -TERM "$PORTAL_PID"
sleep 0.5
rm -f "$T/pause"
v1_stop_answered "in its handler"
finish
