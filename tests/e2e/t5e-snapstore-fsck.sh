#!/usr/bin/env bash
# t5e: checking the node's snapshot store (issue #16; ARCHITECTURE,
# "Snapshot store"). A file's blob damaged on disk: `nubod node fsck`,
# run beside the working node, exits 1 naming the blob, the snapshot and
# the file's tree path (and not the snapshot that does not hold it),
# moves the blob to DIR/store/quarantine (its bytes kept) and, run again,
# reports it missing rather than damaged; a restore of that snapshot is
# refused at once naming the file, the environment's rows and files as
# they were; its download is refused the same way; the snapshot without
# the file still restores; once the broken snapshot is deleted the store
# is whole (exit 0). The weekly check: a restarted node does not run it
# before its interval (DIR/store-fsck.json), and when it is due it runs,
# logs the damage and reports it to the portal, which shows it in the
# node's and the app's activity.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapstore-lib.sh"
start_store_notes t5e
fsck() { "$NUBOD" node fsck --data "$D" "$@"; }
# damage FILE: change one byte of the blob holding FILE (a path under
# FILES), in its contents: the blob is packed (blobs/ab/cdef….z), and
# random bytes are stored blocks, so byte 10 of the file's contents is
# past the 24-byte header and the block's 5; prints the blob's sha256
damage() {
	local h
	h=$(sha256sum < "$1" | cut -c1-64)
	# past the packed header (24 bytes) and the stored block's own (5)
	flip_byte "$STORE/blobs/${h:0:2}/${h:2}.z" 39
	echo "$h"
}

sql "INSERT INTO notes (title, body) SELECT 'note ' || g, md5(g::text) FROM generate_series(1, 500) g" >/dev/null
for i in 1 2 3; do put_doc 3000 >/dev/null; done
S1=$(snap "without the victim")
AT_S1=$(state)
VICTIM=$(put_doc 5000)
VPATH=${VICTIM#"$FILES"/}
S2=$(snap "with the victim")
AT_S2=$(state)

# --- fsck of a whole store ----------------------------------------------------
check "fsck of a whole store exits 0" fsck
expect_match "it counts the blobs it re-hashed" "$(cat "$T/last.out")" '^blobs checked: [1-9]'
expect_match "and says the store is whole" "$(cat "$T/last.out")" '^the store is whole$'

# --- a damaged blob ----------------------------------------------------------
VHASH=$(damage "$VICTIM")
VBLOB=$STORE/blobs/${VHASH:0:2}/${VHASH:2}.z
cp "$VBLOB" "$T/damaged.blob"
check_fails "fsck, the node running, exits 1" 1 fsck
OUT=$(cat "$T/last.out")
expect_match "it names the damaged blob" "$OUT" "^  blob $VHASH: its 5000 bytes hash to [0-9a-f]{64}; moved to $STORE/quarantine/$VHASH\$"
expect_match "the snapshot and the file it breaks" "$OUT" "^    snapshot $S2: tree/$VPATH\$"
expect "not the snapshot without that file" "$(grep -c "$S1" <<< "$OUT")" 0
expect_match "quarantined: 1" "$OUT" '^quarantined: 1$'
[ ! -e "$VBLOB" ] && pass "the blob left blobs/" || fail "the damaged blob is still in blobs/"
check "its bytes are kept in quarantine" cmp "$T/damaged.blob" "$STORE/quarantine/$VHASH"
check_fails "fsck --json, again" 1 fsck --json
J=$T/last.out
expect "no blob is damaged now" "$(jq_get damaged.0.sha256 < "$J")" ""
expect "the quarantined one is missing" "$(jq_get missing.0.sha256 < "$J"),$(jq_get missing.0.quarantine < "$J")" "$VHASH,$STORE/quarantine/$VHASH"
expect "from the same snapshot and file" "$(jq_get missing.0.files.0.snapshot < "$J") $(jq_get missing.0.files.0.file < "$J")" "$S2 tree/$VPATH"
expect "nothing moved this time" "$(jq_get quarantined < "$J")" 0
check_fails "a data folder that is not one: exit 2" 2 "$NUBOD" node fsck --data "$T/nowhere"
check_fails "--json without fsck is a usage error" 2 "$NUBOD" node --data "$D" --json

# --- a restore of the broken snapshot is refused, nothing changed -------------
check "stop" "$NUBO" envs stop shop Test
sql "UPDATE notes SET title = 'changed since' WHERE id < 10" >/dev/null
AT_STOP=$(state)
DBS=$(node_sql cloud3 "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database")
check_fails "restoring the snapshot the blob breaks fails" 1 "$NUBO" backups restore shop Test "$S2"
expect_match "naming the damaged file" "$(cat "$T/last.err")" "cannot restore snapshot $S2: the snapshot's blob for 'tree/$VPATH' is damaged \(found so and quarantined by a check of the node's snapshot store\)"
expect "the environment's rows and files are as they were" "$(state)" "$AT_STOP"
expect "no database was made for it" "$(node_sql cloud3 "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database")" "$DBS"
[ ! -e "$D/envs/$EID/restore.json" ] && pass "no restore journal was written" || fail "a restore journal was written"
U2=$(api_as "$ADMIN_KEY" POST "/apps/shop/environments/Test/snapshots/$S2/download" '{}' | jq_get url)
expect "its download is refused (409)" "$(curl -s -o "$T/refused.json" -w '%{http_code}' "$U2")" 409
expect_match "naming the file too" "$(jq_get error.message < "$T/refused.json")" "tree/$VPATH"
check "the snapshot without the file restores" "$NUBO" backups restore shop Test "$S1"
expect "to its rows and files" "$(state)" "$AT_S1"
check "the database-only download of the broken one still works" "$NUBO" backups download shop Test "$S2" --kind database --output "$T/s2.backup"
check "and pg_restore reads it" pg_restore --list "$T/s2.backup"

# --- the broken snapshot deleted: the store is whole --------------------------
n=$(passes store-sweep "$NODE_PID_cloud3")
check "delete the broken snapshot" "$NUBO" backups delete shop Test "$S2"
wait_passes store-sweep "$NODE_PID_cloud3" 1 "$n"
check "fsck exits 0 again" fsck
[ -f "$STORE/quarantine/$VHASH" ] && pass "the sweep leaves the quarantine alone" || fail "the quarantined blob is gone"

# --- the weekly check ---------------------------------------------------------
LAST=$(jq_get last < "$D/store-fsck.json")
expect_match "the node started the weekly check's clock" "$LAST" '^[0-9]{10}$'
check "start" "$NUBO" envs start shop Test
V2=$(put_doc 6000)
S3=$(snap "the weekly check's victim")
V2HASH=$(damage "$V2")
stop_node cloud3
NUBO_STORE_FSCK_EVERY=3600 start_node cloud3 v3 --start-timeout 30 --stop-grace 3
sleep 3
expect "a restarted node does not check before the interval" "$(passes store-fsck "$NODE_PID_cloud3"),$(jq_get last < "$D/store-fsck.json")" "0,$LAST"
stop_node cloud3
NUBO_STORE_FSCK_EVERY=2 start_node cloud3 v3 --start-timeout 30 --stop-grace 3
wait_passes store-fsck "$NODE_PID_cloud3" 1 0
expect_match "due, it ran and logged the damage" "$(grep 'weekly check of the snapshot store' "$T/node-cloud3.log")" "found damage .*snapshot $S3 lost \[\"tree/${V2#"$FILES"/}\"\]"
[ -f "$STORE/quarantine/$V2HASH" ] && pass "and quarantined the blob" || fail "the weekly check did not quarantine the blob"
wait_passes store-fsck-reported "$NODE_PID_cloud3" 1 0
expect_match "the node's activity shows it" "$("$NUBO" nodes activity cloud3 --json | jq -r '.[] | select(.action == "node.store-damaged") | .detail' | head -1)" "1 damaged blob\(s\) \(1 moved to quarantine\).*cannot be restored: ${S3:0:8} \('tree/${V2#"$FILES"/}'\)"
expect_match "and the app's" "$("$NUBO" apps activity shop --json | jq -r '.[] | select(.action == "snapshot.damaged") | .detail' | head -1)" "snapshot ${S3:0:8} of environment 'Test' cannot be restored"
NOW=$(jq_get last < "$D/store-fsck.json")
[ "$NOW" -gt "$LAST" ] && pass "its time is kept for the next start" || fail "store-fsck.json's last is $NOW, was $LAST"

finish
