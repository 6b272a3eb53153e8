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
# its mounts in a mount namespace of its own: a namespace another process
# makes meanwhile (ip netns exec, a sandbox) would hold a copy of the loop
# device's mount, and e2fsck or losetup -d would find the device in use
if [ -z "${NUBO_OWN_MOUNTS:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
	export NUBO_OWN_MOUNTS=1
	exec unshare -m --propagation private -- bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"

# the test hook (src/common/testhook.c): a snapshot waits before it
# writes its archive while $T/pause names "snapshot-write"
export NUBO_TEST_PAUSE_FILE=$T/pause

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
for _ in $(seq 20); do [ -s "$D/pg/ballast" ] && break; sleep 0.25; done
size=$(stat -c %s "$D/pg/ballast" 2>/dev/null || echo 0)
expect "the node holds room for PostgreSQL's WAL (pg/ballast, a twentieth of the disk)" "$((size >> 20))" 18
EID=$(env_id full Test)
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
failed=$("$NUBO" backups list shop Test --json | python3 -c 'import json,sys; print([s["expires"] for s in json.load(sys.stdin)["snapshots"] if s["state"] == "failed"][0])')
expect_match "the failed snapshot expires as a manual one would (3 months), not at once" "$failed" "^$(date -u -d '+3 months' +%Y-%m)"

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

# a migration import that fits when it starts, but the disk fills while
# it writes: the error names the file and the system's reason
rm "$D/filler"
fallocate -l "$(( ($(free_mb) - 100) ))M" "$D/filler"
SPORT=$(free_port)
python3 - "$SPORT" "$T/stream" <<'PY' > "$T/stream.log" 2>&1 &
import http.server, os, sys, time
port, flag = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path not in ("/x", "/more"):
            return self.send_error(404)
        if self.path == "/more":
            # 200 kB for a file declared as 1000 bytes
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"F %d 9\nsmall.bin" % 200000 + b"y" * 200000 + b"E\n")
            return
        open(flag + ".asked", "w").close()
        while not os.path.exists(flag + ".go"):
            time.sleep(0.05)
        self.send_response(200)
        self.end_headers()
        path = b"big4.bin"
        self.wfile.write(b"F %d %d\n%s" % (40 << 20, len(path), path))
        chunk = b"x" * 65536
        try:
            for _ in range(40 * 16):
                self.wfile.write(chunk)
            self.wfile.write(b"E\n")
        except OSError:
            pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
SPID=$!
wait_http "http://127.0.0.1:$SPORT/" 20 || fail "the stream server did not start"
body="{\"key\":\"k2\",\"files_url\":\"http://127.0.0.1:$SPORT/x\",\"files\":[{\"path\":\"big4.bin\",\"size\":41943040,\"sha256\":\"$(printf '0%.0s' $(seq 64))\"}]}"
expect "the import fits when it starts" "$(agent POST "/agent/v1/environments/$EID/import" "$body" | tail -1)" 202
for _ in $(seq 100); do [ -e "$T/stream.asked" ] && break; sleep 0.1; done
fallocate -l "$(( ($(free_mb) - 10) ))M" "$D/filler2"
touch "$T/stream.go"
for _ in $(seq 100); do
	imp=$(agent GET "/agent/v1/environments/$EID/import" | head -1)
	[ "$(jq_get state <<< "$imp")" = failed ] && break
	sleep 0.2
done
expect "the import failed" "$(jq_get state <<< "$imp")" failed
expect_match "its error names the file and says the disk is full" "$(jq_get error <<< "$imp")" "cannot write big4.bin: No space left on device"
rm -f "$D/filler2"
# progress never shows more bytes than the total, even when the source
# sends more than it declared (the import then fails its checksum)
body="{\"key\":\"k3\",\"files_url\":\"http://127.0.0.1:$SPORT/more\",\"files\":[{\"path\":\"small.bin\",\"size\":1000,\"sha256\":\"$(printf '0%.0s' $(seq 64))\"}]}"
agent POST "/agent/v1/environments/$EID/import" "$body" > /dev/null
for _ in $(seq 100); do
	imp=$(agent GET "/agent/v1/environments/$EID/import" | head -1)
	[ "$(jq_get state <<< "$imp")" != running ] && break
	sleep 0.2
done
b=$(jq_get bytes <<< "$imp"); bt=$(jq_get bytes_total <<< "$imp")
[ -n "$b" ] && [ "$b" -gt 1000 ] && [ "$b" -le "$bt" ] && pass "progress: $b bytes of $bt (the source sent more than declared)" || fail "progress shows $b bytes of $bt"
kill "$SPID" 2>/dev/null || true
wait "$SPID" 2>/dev/null || true
expect "the other environment still serves and writes" "$(route full $ACC /add/three | jq_get count)" 3

# the disk filled to the last block: the node frees the room it held for
# PostgreSQL at once, and the database keeps taking writes
# (ext4 keeps what it allocated when fallocate runs out of space)
fallocate -l "$(( $(free_mb) + 1 ))M" "$D/filler2" 2>/dev/null || true
for _ in $(seq 40); do [ ! -e "$D/pg/ballast" ] && break; sleep 0.25; done
[ ! -e "$D/pg/ballast" ] && pass "disk full: the ballast is released" || fail "the ballast is still there on a full disk"
expect_match "and the node says so" "$(cat "$T/node-full.log")" "the node's disk is full \([0-9]+ MB free\): released the 18 MB kept for PostgreSQL's WAL"
expect "PostgreSQL kept running on the full disk" "$(head -1 "$D/pg/data/postmaster.pid")" "$pm"
expect "and takes writes" "$(route full $ACC /add/four | jq_get count)" 4
rm "$D/filler2"
for _ in $(seq 40); do [ -s "$D/pg/ballast" ] && break; sleep 0.25; done
[ -s "$D/pg/ballast" ] && pass "room again: the ballast is back" || fail "no ballast once there is room"

# room again: the same work goes through
rm "$D/filler"

# a snapshot that fits when it starts, but the disk fills while it
# writes its files into the snapshot store: the error names the file
# that could not be written and the system's reason. 24 MB of new files:
# the ones the last snapshot holds are not stored again
head -c 24M /dev/urandom > "$D/envs/$EID/files/big2.bin"
echo snapshot-write > "$T/pause"
"$NUBO" backups create shop Test > "$T/snap.out" 2> "$T/snap.err" &
SNAP=$!
for _ in $(seq 300); do [ -e "$T/pause.reached" ] && break; sleep 0.1; done
[ -e "$T/pause.reached" ] && pass "the snapshot waits before its archive" || fail "the snapshot never reached its archive"
# 2 MB free: the node releases the ballast (18 MB), less than the 24 MB of files
fallocate -l "$(( $(free_mb) - 2 ))M" "$D/filler2"
rm "$T/pause"
rc=0
wait "$SNAP" || rc=$?
expect "the snapshot fails" "$rc" 1
expect_match "its error names the file written and the full disk" "$(cat "$T/snap.err")" \
	"cannot write '/[^ ]*/store/tmp/[0-9a-f]+': No space left on device"
expect "nothing of it is left in the store" "$(find "$D/store/tmp" "$D/store/blobs" -type f -newer "$T/pause.reached" | wc -l)" 0
expect "PostgreSQL kept running" "$(head -1 "$D/pg/data/postmaster.pid")" "$pm"
rm "$D/filler2"
check "the snapshot goes through once there is room" "$NUBO" backups create shop Test
check "and the restore" "$NUBO" backups restore shop Test "$SID"
check "start Test" "$NUBO" envs start shop Test
expect "Test serves its data" "$(route full $TEST /count | jq_get count)" 1

finish
