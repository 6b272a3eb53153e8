#!/usr/bin/env bash
# t3f: a full disk fails one operation, never the node. The node's data
# folder is an ext4 filesystem on a loop device made here (400 MB; the
# node keeps a tenth of it, 40 MB, free). With two environments serving,
# the disk is filled until a snapshot, a restore and a migration import
# no longer fit: each is refused at once with 507 NOT_ENOUGH_SPACE naming
# the node, the need and the free space, nothing is written, PostgreSQL
# stays up (same postmaster) and the other environment keeps serving and
# writing; `nubo nodes show` reports the free space with a warning. The
# loop device is unmounted and detached on every exit.
. "$(dirname "$0")/lib.sh"

# the node's data folder is the filesystem
DISK=$T/node-full
D=$DISK
loop_disk 400M -m 0
mount "$LOOP" "$D"

APPS=$NUBO_SRC/tests/e2e/apps
start_portal
check "create app" "$NUBO" apps create shop --no-sandbox
start_node full v3 --start-timeout 30
check "link app to node" "$NUBO" nodes link full shop
tar czf "$T/pyapp-1.0.0.tar.gz" -C "$APPS/pyapp" .
check "upload" "$NUBO" packages upload full "$T/pyapp-1.0.0.tar.gz"
for env in Test Acceptance; do
	check "transport $env" "$NUBO" envs transport shop $env pyapp-1.0.0
	check "start $env" "$NUBO" envs start shop $env
done
TEST=shop-test.nubo.localhost
ACC=shop-acceptance.nubo.localhost
expect "Test writes" "$(route full $TEST /add/one | jq_get count)" 1
expect "Acceptance writes" "$(route full $ACC /add/one | jq_get count)" 1
EID=$(sqlite3 "$T/portal/portal.db" "SELECT e.id FROM environments e JOIN nodes n ON n.id = e.node_id WHERE n.name = 'full' AND e.name = 'Test'")
# 24 MB of files that do not compress
head -c 24M /dev/urandom > "$D/envs/$EID/files/big.bin"
check "a snapshot while there is room" "$NUBO" backups create shop Test
SID=$("$NUBO" backups list shop Test --json | jq_get snapshots.0.id)
check "stop Test for a restore" "$NUBO" envs stop shop Test

secret=$(jq_get portal_secret < "$D/agent.json")
agent() { # METHOD PATH [BODY]: the node agent's answer (status, then body)
	curl -s -w '\n%{http_code}' -X "$1" -H "Authorization: Bearer $secret" \
		${3:+-H 'Content-Type: application/json' --data-binary "$3"} "$NODE_URL_full$2"
}
free_mb() { df -m --output=avail "$D" | tail -1 | tr -d ' '; }

# fill the disk until 60 MB are free: less than any of the three needs
# (24 MB of files or more, as much again for the database's WAL) and the
# 40 MB reserve
fallocate -l "$(( ($(free_mb) - 60) ))M" "$D/filler"
pm=$(head -1 "$D/pg/data/postmaster.pid")
expect_match "the disk is nearly full ($(free_mb) MB free)" "$(free_mb)" '^(5[0-9]|6[0-9])$'

check_fails "a snapshot is refused" 1 "$NUBO" backups create shop Test
expect_match "it says why: the node, the need, the free space" "$(cat "$T/last.err")" \
	"not enough space on node 'full' for a snapshot: it needs [0-9]+ MB and the node keeps [0-9]+ MB free .*, but only [0-9]+ MB of [0-9]+ MB are free"
out=$(agent POST "/agent/v1/environments/$EID/snapshots" '{"snapshot":"0f0e0d0c-0b0a-4908-8706-050403020100"}')
expect "the node answers 507" "$(tail -1 <<< "$out")" 507
expect "with NOT_ENOUGH_SPACE" "$(head -1 <<< "$out" | jq_get error.code)" NOT_ENOUGH_SPACE
[ ! -e "$D/snapshots/0f0e0d0c-0b0a-4908-8706-050403020100" ] && pass "nothing written for the refused snapshot" || fail "the refused snapshot left a folder"

check_fails "a restore is refused" 1 "$NUBO" backups restore shop Test "$SID"
expect_match "it says why" "$(cat "$T/last.err")" "not enough space on node 'full' for this restore: it needs [0-9]+ MB"
out=$(agent POST "/agent/v1/environments/$EID/restores" "{\"restore\":\"1f0e0d0c-0b0a-4908-8706-050403020100\",\"snapshot\":\"$SID\"}")
expect "the node answers 507 to the restore" "$(tail -1 <<< "$out")" 507
out=$(agent POST "/agent/v1/environments/$EID/import" '{"key":"k1","dump_url":"http://127.0.0.1:9/x","database_bytes":41943040}')
expect "a migration import that does not fit: 507" "$(tail -1 <<< "$out")" 507
expect_match "naming the need" "$(head -1 <<< "$out" | jq_get error.message)" "for this migration import: it needs 80 MB"

expect "PostgreSQL kept running (same postmaster)" "$(head -1 "$D/pg/data/postmaster.pid")" "$pm"
expect "the other environment keeps serving and writing" "$(route full $ACC /add/two | jq_get count)" 2
for _ in $(seq 20); do
	"$NUBO" nodes show full | grep -q "^warning" && break
	sleep 0.5
done
shown=$("$NUBO" nodes show full)
expect_match "nodes show: free space" "$shown" "disk +[0-9]+ MB free of [0-9]+ MB"
expect_match "nodes show: a warning" "$shown" "warning +the disk is nearly full"
expect "its JSON says low" "$("$NUBO" nodes show full --json | jq_get disk.low)" true

# room again: the same work goes through
rm "$D/filler"
check "the snapshot goes through once there is room" "$NUBO" backups create shop Test
check "and the restore" "$NUBO" backups restore shop Test "$SID"
check "start Test" "$NUBO" envs start shop Test
expect "Test serves its data" "$(route full $TEST /count | jq_get count)" 1

finish
