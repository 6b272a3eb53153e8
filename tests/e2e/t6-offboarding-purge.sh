#!/usr/bin/env bash
# t6-offboarding-purge: an offboarded node's data (seed §3.3: "kept for a
# configured number of days") stays on the node until keep_until, then the
# portal's purge duty has the node delete it for real — every
# environment's database and role, its files, its snapshots and the
# packages of the node's repository — checked with psql and ls on the
# node, not through nubo. A node that is down at that time is tried again
# and purged once it is back; purged_at is set only when the node
# confirmed. An admin may purge early (only after approval). The clock is
# moved with NUBO_CLOCK_OFFSET on a restarted portal.
. "$(dirname "$0")/lib.sh"

APPS=$NUBO_SRC/tests/e2e/apps
tar czf "$T/pyapp-1.0.0.tar.gz" -C "$APPS/pyapp" .
start_portal
start_node cloud3 v3 --stop-grace 3
start_node spare v3 --stop-grace 3

# pgq NODE SQL [DB]: a query on the node's own PostgreSQL as its admin
pgq() {
	local port pw
	port=$(sed -n 3p "$T/node-$1.ports")
	pw=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "$T/node-$1/pg/admin.json")
	PGPASSWORD=$pw psql -X -h 127.0.0.1 -p "$port" -U nubo_admin -d "${3:-postgres}" -Atc "$2"
}
env_ids() { sqlite3 "$T/portal/portal.db" "SELECT e.id FROM environments e JOIN nodes n ON n.id = e.node_id WHERE n.name = '$1' ORDER BY e.id" | tr '\n' ' '; }
host() { echo "$1-$(echo "$2" | tr A-Z a-z).nubo.localhost"; }
wait_healthy() { # NODE HOST
	local i
	for i in $(seq 100); do
		[ "$(route_status "$1" "$2" /health)" = 200 ] && return 0
		sleep 0.2
	done
	return 1
}
req_field() { "$NUBO" admin offboarding show "$1" --json | jq_get "$2"; }
wait_field() { # REQ FIELD SECONDS: until the request's FIELD is set
	local i
	for i in $(seq $(($3 * 2))); do
		[ -n "$(req_field "$1" "$2")" ] && return 0
		sleep 0.5
	done
	return 1
}
# activity NODE ACTION: the detail of the node's newest ACTION entry
activity() {
	"$NUBO" nodes activity "$1" --json | python3 -c '
import json, sys
print([a["detail"] for a in json.load(sys.stdin) if a["action"] == sys.argv[1]][0])' "$2"
}

# deploy NODE APP: the app linked to NODE, pyapp uploaded to its repository,
# transported to Test and Acceptance and started (each gets its database),
# a row and a file written in Test, and a snapshot of Test
deploy() {
	local node=$1 app=$2
	check "$app: create" "$NUBO" apps create "$app" --no-sandbox
	check "$app: link to $node" "$NUBO" nodes link "$node" "$app"
	check "$app: package uploaded to $node" "$NUBO" packages upload "$node" "$T/pyapp-1.0.0.tar.gz"
	check "$app: transport Test" "$NUBO" envs transport "$app" Test pyapp-1.0.0
	check "$app: transport Acceptance" "$NUBO" envs transport "$app" Acceptance pyapp-1.0.0
	check "$app: start Test" "$NUBO" envs start "$app" Test
	check "$app: start Acceptance" "$NUBO" envs start "$app" Acceptance
	wait_healthy "$node" "$(host "$app" Test)" || fail "$app: Test is not healthy"
	expect "$app: a row in its database" "$(route "$node" "$(host "$app" Test)" /add/kept | jq_get count)" 1
	route "$node" "$(host "$app" Test)" /file/kept > /dev/null
	check "$app: a snapshot of Test" "$NUBO" backups create "$app" Test --comment "before offboarding"
}

# present NODE IDS: everything is still on the node (Production was never
# started: it has a folder but no database yet)
present() {
	local node=$1 ids=$2 id test
	test=$(env_id "$node" Test)
	for id in $test $(env_id "$node" Acceptance); do
		expect "$node: database env_$id exists" "$(pgq "$node" "SELECT count(*) FROM pg_database WHERE datname = 'env_$id'")" 1
		expect "$node: role env_$id exists" "$(pgq "$node" "SELECT count(*) FROM pg_roles WHERE rolname = 'env_$id'")" 1
	done
	for id in $ids; do
		[ -d "$T/node-$node/envs/$id" ] && pass "$node: folder of environment $id there" || fail "$node: envs/$id missing"
	done
	[ -s "$T/node-$node/envs/$test/files/f.txt" ] && pass "$node: Test's files there" || fail "$node: Test's files missing"
	[ -s "$T/node-$node/nginx/logs/env-$test.access.log" ] && pass "$node: Test's router access log there" ||
		fail "$node: Test's router access log missing"
	expect "$node: Test's row there" "$(pgq "$node" "SELECT count(*) FROM notes" "env_$test")" 1
	expect "$node: one snapshot" "$(ls "$T/node-$node/snapshots" | wc -l)" 1
	[ -s "$T/node-$node/snapshots/$(ls "$T/node-$node/snapshots" | head -1)/manifest.json" ] &&
		pass "$node: its manifest is there" || fail "$node: no manifest"
	expect_match "$node: its blobs are in the store" "$(find "$T/node-$node/store/blobs" -type f | wc -l)" '^[1-9]'
	expect "$node: the package is in the repository" "$(ls "$T/node-$node/packages")" pyapp-1.0.0
}

# gone NODE IDS: nothing of it is left on the node (psql and ls)
gone() {
	local node=$1 ids=$2 id
	for id in $ids; do
		expect "$node: database env_$id dropped" "$(pgq "$node" "SELECT count(*) FROM pg_database WHERE datname LIKE 'env\_${id}%'")" 0
		expect "$node: role env_$id dropped" "$(pgq "$node" "SELECT count(*) FROM pg_roles WHERE rolname = 'env_$id'")" 0
		[ ! -e "$T/node-$node/envs/$id" ] && pass "$node: files, app and logs of $id removed" ||
			fail "$node: $(ls -R "$T/node-$node/envs/$id" | head -5) left"
		expect "$node: the router's access log of $id removed" \
			"$(ls "$T/node-$node/nginx/logs" | grep -c "^env-$id\.access\.log" || true)" 0
	done
	expect "$node: no env_ database at all" "$(pgq "$node" "SELECT count(*) FROM pg_database WHERE datname LIKE 'env\_%'")" 0
	expect "$node: no snapshot" "$(ls "$T/node-$node/snapshots" | wc -l)" 0
	# the store is swept after the deletes, on a thread of its own
	for i in $(seq 100); do
		[ "$(find "$T/node-$node/store/blobs" -type f | wc -l)" = 0 ] && break
		sleep 0.1
	done
	expect "$node: no blob left in the snapshot store" "$(find "$T/node-$node/store/blobs" -type f | wc -l)" 0
	expect "$node: no package in the repository" "$(ls "$T/node-$node/packages" | wc -l)" 0
	expect "$node: no environment in the portal" "$(sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM environments e JOIN nodes n ON n.id = e.node_id WHERE n.name = '$node'")" 0
	expect "$node: no snapshot record" "$(sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM snapshots s JOIN nodes n ON n.id = s.node_id WHERE n.name = '$node'")" 0
	expect "$node: no package record" "$(sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM packages p JOIN nodes n ON n.id = p.node_id WHERE n.name = '$node'")" 0
}

deploy cloud3 shop
deploy spare blog
IDS=$(env_ids cloud3)
SPARE_IDS=$(env_ids spare)
expect "cloud3 has three environments" "$(echo $IDS | wc -w)" 3
present cloud3 "$IDS"
present spare "$SPARE_IDS"

# ---- offboarding: the data is kept until keep_until ---------------------
check "offboard cloud3 (forced)" "$NUBO" nodes offboard cloud3 --force --reason "moved"
REQ=$("$NUBO" admin offboarding list --json | jq_get offboarding_requests.0.id)
check "offboard spare (forced)" "$NUBO" nodes offboard spare --force
SPARE_REQ=$("$NUBO" admin offboarding list --json | jq_get offboarding_requests.1.id)
# early purge is refused before approval, and needs --yes
check_fails "purge before approval refused" 1 "$NUBO" admin offboarding purge "$SPARE_REQ" --yes
expect_match "the refusal says why" "$(cat "$T/last.err")" "pending: node 'spare' keeps its data until the request is approved"
expect "API: OFFBOARDING_NOT_APPROVED" "$(api_as "$ADMIN_KEY" POST "/offboarding-requests/$SPARE_REQ/purge" '{}' | jq_get error.code)" OFFBOARDING_NOT_APPROVED
check_fails "purge without --yes is a usage error" 2 "$NUBO" admin offboarding purge "$SPARE_REQ"
expect "purge of an unknown request" "$(status_as "$ADMIN_KEY" POST /offboarding-requests/999/purge '{}')" 404
expect "purge with a body field refused" "$(api_as "$ADMIN_KEY" POST "/offboarding-requests/$SPARE_REQ/purge" '{"now":true}' | jq_get error.code)" BAD_REQUEST
present spare "$SPARE_IDS"

check "approve cloud3" "$NUBO" admin offboarding approve "$REQ"
UNTIL=$(req_field "$REQ" keep_until)
expect "kept for 30 days" "$(python3 -c "
import datetime as d
u = d.datetime.fromisoformat('$UNTIL'.replace('Z', '+00:00'))
print(round((u - d.datetime.now(d.timezone.utc)).total_seconds() / 86400))")" 30
expect "not purged yet" "$(req_field "$REQ" purged_at)" ""
check "show" "$NUBO" admin offboarding show "$REQ"
expect_match "show lists keep_until and purged_at" "$(tr '\n' ' ' < "$T/last.out")" "keep_until +20[^ ]+ +purged_at "
present cloud3 "$IDS"

# 29 days later the data is still there (a pass runs every 15 s)
stop_portal
export NUBO_CLOCK_OFFSET=$((29 * 86400))
start_portal
wait_passes scheduler-pass "$PORTAL_PID" 2	# a whole pass on day 29
expect "day 29: not purged" "$(req_field "$REQ" purged_at)" ""
expect "day 29: no purge attempt" "$(req_field "$REQ" purge_attempts)" 0
present cloud3 "$IDS"

# ---- day 31 with the node down: tried, failed, recorded, data intact -----
stop_node cloud3
stop_portal
export NUBO_CLOCK_OFFSET=$((31 * 86400))
start_portal
wait_field "$REQ" purge_error 30 || true
expect_match "the failure is recorded" "$(req_field "$REQ" purge_error)" "cannot reach the node"
expect "not marked purged" "$(req_field "$REQ" purged_at)" ""
expect_match "the activity log says it is tried again" "$(activity cloud3 node.purge-failed)" "tried again"
# the agent is down, its PostgreSQL is not: the data is intact
present cloud3 "$IDS"

# ---- the node is back: the next attempt deletes everything --------------
start_node cloud3 v3 --stop-grace 3
wait_field "$REQ" purged_at 120 || true
expect_match "purged_at set once the node is back" "$(req_field "$REQ" purged_at)" "^20[0-9][0-9]-"
expect "the error is cleared" "$(req_field "$REQ" purge_error)" ""
gone cloud3 "$IDS"
expect_match "the activity log records the purge" "$(activity cloud3 node.purged)" "3 environments .databases, roles, files., 1 snapshot, 1 package"
check "list" "$NUBO" admin offboarding list
expect_match "list shows when the data was deleted" "$(grep cloud3 "$T/last.out")" "approved .*20[0-9-]+T.* 20[0-9-]+T"
expect "the app stays a Free App" "$("$NUBO" apps show shop --json | jq_get status)" free
# heartbeats (every 2 s) do not bring the environments back
wait_passes heartbeat "$NODE_PID_cloud3" 3
for id in $IDS; do
	[ ! -e "$T/node-cloud3/envs/$id" ] || fail "environment $id came back"
done
expect "still no env_ database after heartbeats" "$(pgq cloud3 "SELECT count(*) FROM pg_database WHERE datname LIKE 'env\_%'")" 0
expect "the node lists no environment" "$(curl -s -H "Authorization: Bearer $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["portal_secret"])' "$T/node-cloud3/agent.json")" "$NODE_URL_cloud3/agent/v1/environments" | jq_get environments)" "[]"
expect "purge again: OFFBOARDING_PURGED" "$(api_as "$ADMIN_KEY" POST "/offboarding-requests/$REQ/purge" '{}' | jq_get error.code)" OFFBOARDING_PURGED

# ---- an admin purges early (spare was approved today: kept 30 days) ------
check "approve spare" "$NUBO" admin offboarding approve "$SPARE_REQ"
present spare "$SPARE_IDS"
check "purge spare now" "$NUBO" admin offboarding purge "$SPARE_REQ" --yes
expect_match "purge says so" "$(cat "$T/last.out")" "the data of node 'spare' is deleted"
expect_match "spare: purged_at set" "$(req_field "$SPARE_REQ" purged_at)" "^20[0-9][0-9]-"
gone spare "$SPARE_IDS"

finish
