#!/usr/bin/env bash
# t5d: uploads go into the snapshot store, and whole-archive snapshots
# are converted (issue #16; ARCHITECTURE, "Snapshot store"). An archive
# made by the archive writer (`nubod archive create`, what nodes kept
# before the store) is uploaded: it becomes a manifest, no archive.tar.gz
# and no spool is left, its download is the original's tar stream byte
# for byte (members, modes, mtimes, contents; pg_restore --list), and it
# restores. Snapshots kept as whole archive.tar.gz, as the node kept them
# before, are converted on first touch — a download from byte 0 (a Range
# continues the archive's own bytes), a restore — and by `nubod node
# convert-snapshots` while the node runs; a delete during a conversion
# is refused; kill -9 of the node after the manifest is written (the
# archive goes at the next start) and of the command before it (the
# archive still works) leave a snapshot that restores; a damaged archive
# is not converted, the command says which and why, and it stays as it
# was.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snapstore-lib.sh"
# the test hook (src/common/testhook.c): a conversion waits at the point
# $T/pause names
export NUBO_TEST_PAUSE_FILE=$T/pause
start_store_notes t5d
field() { jq_get "$2" < "$D/snapshots/$1/snapshot.json"; }
ls_snap() { ls "$D/snapshots/$1" | tr '\n' ' '; }
newest() { "$NUBO" backups list shop Test --json | jq_get snapshots.0.id; }
url_of() { api_as "$ADMIN_KEY" POST "/apps/shop/environments/Test/snapshots/$1/download" '{}' | jq_get url; }
# same_archive A B: the same tar stream inside (every member's header and
# bytes), and the same listing and dump table of contents
same_archive() {
	local what=$1 a=$2 b=$3
	check "$what: the same tar stream" cmp <(zcat "$a") <(zcat "$b")
	expect "$what: the same members, modes, mtimes" "$(tar --full-time -tvzf "$b" 2>/dev/null)" "$(tar --full-time -tvzf "$a" 2>/dev/null)"
	rm -rf "$T/x" "$T/y"; mkdir "$T/x" "$T/y"
	tar xzf "$a" -C "$T/x" && tar xzf "$b" -C "$T/y"
	expect "$what: pg_restore --list reads the same dump" "$(pg_restore --list "$T/y/db/db.backup" | grep -v '^;')" "$(pg_restore --list "$T/x/db/db.backup" | grep -v '^;')"
}
# restore_is SNAPSHOT STATE WHAT: the environment stopped, restored from
# SNAPSHOT, holds STATE (rows read back with psql, files hashed)
restore_is() {
	sql "DELETE FROM notes WHERE id % 3 = 0" >/dev/null
	check "stop" "$NUBO" envs stop shop Test
	check "restore $3" "$NUBO" backups restore shop Test "$1"
	expect "$3: rows and files are the snapshot's" "$(state)" "$2"
	check "start" "$NUBO" envs start shop Test
}
# old_style ID ARCHIVE: keep uploaded snapshot ID as the node did before
# the store (archive.tar.gz, its size in snapshot.json, no manifest); the
# node is stopped meanwhile, and its next start sweeps the blobs nothing
# else names
old_style() {
	python3 - "$D/snapshots/$1" "$2" <<'EOF'
import json, os, shutil, sys
d, arch = sys.argv[1], sys.argv[2]
os.unlink(d + "/manifest.json")
shutil.copy(arch, d + "/archive.tar.gz")
j = json.load(open(d + "/snapshot.json"))
j.pop("store", None)
j["archive_size"] = os.path.getsize(arch)
json.dump(j, open(d + "/snapshot.json", "w"))
EOF
}
named() { # the blobs the manifests left name, and those in the store
	python3 - "$D"/snapshots/*/manifest.json <<'EOF'
import json, sys
out = set()
for p in sys.argv[1:]:
    m = json.load(open(p))
    out |= {e["sha256"] for e in m["tree"] if e["type"] == "f"}
    out |= {c["sha256"] for c in m["dump"]["chunks"]}
    out |= {c["sha256"] for c in m["dump"].get("deltas", [])}
print("\n".join(sorted(out)))
EOF
}
# (a blob's name in either form: raw, or packed with .z)
stored() { (cd "$STORE/blobs" && find . -type f | sed 's|^\./||; s|/||; s|\.z$||' | sort); }
restart_node() { # after a kill -9 or a stop; waits for the start's sweep
	start_node cloud3 v3 --start-timeout 30 --stop-grace 3
	wait_passes store-sweep "$NODE_PID_cloud3" 1 0
}
pause_at() { # POINT: wait there; returns once a process is waiting
	rm -f "$T/pause.reached"
	echo "$1" > "$T/pause"
}
reached() {
	for _ in $(seq 600); do [ -e "$T/pause.reached" ] && return 0; sleep 0.1; done
	return 1
}

# two states of the app, each archived by the archive writer
sql "INSERT INTO notes (title, body) SELECT 'note ' || g, repeat(md5(g::text), 9) FROM generate_series(1, 20000) g" >/dev/null
for i in $(seq 20); do put_doc $((RANDOM * 3 + 500)) >/dev/null; done
STATE1=$(state)
cd "$T"
check "archive the first state" "$NUBOD" archive create --db "$DBURL" --files "$FILES" --model-version 1.0.0 a1.tar.gz
sql "UPDATE notes SET body = 'changed' WHERE id % 10 = 0" >/dev/null
for i in $(seq 5); do put_doc 2000 >/dev/null; done
STATE2=$(state)
check "archive the second state" "$NUBOD" archive create --db "$DBURL" --files "$FILES" --model-version 1.0.0 a2.tar.gz

# --- an upload goes into the store -------------------------------------------
check "upload the first archive" "$NUBO" backups upload shop Test a1.tar.gz --comment uploaded
UP=$(newest)
expect "it is a manifest: no archive.tar.gz" "$(ls_snap "$UP")" "manifest.json snapshot.json "
expect "no spool is left" "$(find "$D/snapshots" -maxdepth 1 -name '.upload-*' | wc -l)" 0
expect "every file of the archive a blob" "$(field "$UP" store.files)" 20
expect "the store holds what its manifest names" "$(stored)" "$(named)"
check "download it" "$NUBO" backups download shop Test "$UP" --output up.tar.gz
same_archive "the upload's download" a1.tar.gz up.tar.gz
expect "the portal has the download's size" "$("$NUBO" backups show shop Test "$UP" --json | jq_get archive_size)" "$(stat -c %s up.tar.gz)"
restore_is "$UP" "$STATE1" "the uploaded snapshot"
check "uploading the download again" "$NUBO" backups upload shop Test up.tar.gz --comment again
expect "adds no blob" "$(field "$(newest)" store.blobs_added)" 0

# --- whole-archive snapshots, as before the store ----------------------------
OLD=()
for i in 1 2 3 4 5 6; do
	"$NUBO" backups upload shop Test a2.tar.gz --comment "old $i" >/dev/null
	OLD+=("$(newest)")
done
OLD_T=${OLD[0]} OLD_R=${OLD[1]} OLD_K=${OLD[2]} OLD_C=${OLD[3]} OLD_X=${OLD[4]}
OLD_BAD=${OLD[5]}
expect "six snapshots" "$(printf '%s\n' "${OLD[@]}" | sort -u | wc -l)" 6
stop_node cloud3
for s in "${OLD[@]:0:5}"; do old_style "$s" a2.tar.gz; done
# one whose archive was damaged on the node (cut in half)
head -c $(($(stat -c %s a2.tar.gz) / 2)) a2.tar.gz > half.tar.gz
old_style "$OLD_BAD" half.tar.gz
restart_node
expect "an old snapshot is a whole archive" "$(ls_snap "$OLD_T")" "archive.tar.gz snapshot.json "
expect "the store holds only what the manifests name" "$(stored)" "$(named)"

# a Range continues the archive's own bytes: no conversion
U=$(url_of "$OLD_T")
check "a Range of an old snapshot" curl -sf -r 100-199 -o part "$U"
check "is the archive's" cmp part <(tail -c +101 a2.tar.gz | head -c 100)
expect "it is still a whole archive" "$(ls_snap "$OLD_T")" "archive.tar.gz snapshot.json "
# first touch: a download from its start
check "download an old snapshot" "$NUBO" backups download shop Test "$OLD_T" --output t.tar.gz
expect "it was converted: a manifest, no archive" "$(ls_snap "$OLD_T")" "manifest.json snapshot.json "
same_archive "the converted snapshot's download" a2.tar.gz t.tar.gz
check "again, the same bytes" "$NUBO" backups download shop Test "$OLD_T" --output t2.tar.gz
check "as the first" cmp t.tar.gz t2.tar.gz
expect_match "its snapshot.json says so" "$(field "$OLD_T" converted)" '^[0-9]{10}$'
# first touch: a restore
restore_is "$OLD_R" "$STATE2" "an old snapshot (first touch)"
expect "the restore converted it" "$(ls_snap "$OLD_R")" "manifest.json snapshot.json "

# kill -9 of the node after the manifest, before the archive goes
pause_at snapshot-convert
curl -s -o /dev/null "$(url_of "$OLD_K")" &
CURL=$!
reached && pass "a conversion waits after its manifest" || fail "the conversion never reached its manifest"
expect "the manifest is written, the archive still there" "$(ls_snap "$OLD_K")" "archive.tar.gz manifest.json snapshot.json "
check_fails "a delete meanwhile is refused" 1 "$NUBO" backups delete shop Test "$OLD_K"
expect_match "saying why" "$(cat "$T/last.err")" "being converted into the snapshot store"
kill -9 "$NODE_PID_cloud3"; wait "$NODE_PID_cloud3" 2>/dev/null || true
wait "$CURL" 2>/dev/null || true
rm -f "$T/pause"
restart_node
expect "at the start the manifest wins: the archive is gone" "$(ls_snap "$OLD_K")" "manifest.json snapshot.json "
check "it downloads" "$NUBO" backups download shop Test "$OLD_K" --output k.tar.gz
same_archive "the snapshot killed mid-conversion" a2.tar.gz k.tar.gz
restore_is "$OLD_K" "$STATE2" "the snapshot killed mid-conversion"

# kill -9 of the command before the manifest: still a whole archive
pause_at snapshot-convert-start
"$NUBOD" node convert-snapshots --data "$D" > conv1.out 2>&1 &
CONV=$!
reached && pass "the command waits before its import" || fail "the command never began a conversion"
kill -9 "$CONV"; wait "$CONV" 2>/dev/null || true
rm -f "$T/pause"
for s in "$OLD_C" "$OLD_X" "$OLD_BAD"; do
	expect "killed, the command left a whole archive" "$(ls_snap "$s")" "archive.tar.gz snapshot.json "
done
check "which still downloads by Range" curl -sf -r 0-99 -o head100 "$(url_of "$OLD_C")"
check "from its archive" cmp head100 <(head -c 100 a2.tar.gz)

# the command, with the node running
check_fails "nubod node convert-snapshots: one fails" 1 "$NUBOD" node convert-snapshots --data "$D"
expect "it converts the two left whole" "$(grep -c ': converted (' "$T/last.out")" 2
expect "and says so" "$(tail -1 "$T/last.out")" "2 snapshots converted, 0 finished, 1 failed"
expect_match "naming the damaged one and why" "$(cat "$T/last.err")" "^snapshot $OLD_BAD: not converted: .*(gzip|truncated|corrupt)"
expect "which stays as it was" "$(ls_snap "$OLD_BAD")" "archive.tar.gz snapshot.json "
check "and still serves its bytes" curl -sf -o bad.out "$(url_of "$OLD_BAD")"
check "as before" cmp bad.out half.tar.gz
for s in "$OLD_C" "$OLD_X"; do
	expect "a manifest now" "$(ls_snap "$s")" "manifest.json snapshot.json "
done
expect "no other whole archive is left on the node" "$(find "$D/snapshots" -name archive.tar.gz)" "$D/snapshots/$OLD_BAD/archive.tar.gz"
check "a converted snapshot downloads" "$NUBO" backups download shop Test "$OLD_C" --output c.tar.gz
same_archive "the command's conversion" a2.tar.gz c.tar.gz
restore_is "$OLD_C" "$STATE2" "a snapshot the command converted"
OUT=$("$NUBOD" node convert-snapshots --data "$D" 2>/dev/null || true)
expect "a second run has nothing else to do" "$(echo "$OUT" | tail -1)" "0 snapshots converted, 0 finished, 1 failed"
N=$(passes store-sweep "$NODE_PID_cloud3")
check "the damaged snapshot deletes" "$NUBO" backups delete shop Test "$OLD_BAD"
wait_passes store-sweep "$NODE_PID_cloud3" 1 "$N"
expect "nothing of it is left" "$(ls "$D/snapshots/$OLD_BAD" 2>&1 | grep -c 'No such file')" 1
expect "the store holds only what the manifests name" "$(stored)" "$(named)"
cd - >/dev/null

finish
