#!/usr/bin/env bash
# t5c: the node keeps snapshots in its store (issue #16; ARCHITECTURE,
# "Snapshot store"): a snapshot is a manifest naming blobs in DIR/store.
# A second snapshot with the files unchanged reads none of them and adds
# no file blob; the full download, assembled from the store, is read by
# plain tar, pg_restore and sha256sum, and is the same bytes on every
# request (a HEAD's size, a Range from the middle, two whole downloads);
# deleting a snapshot frees the blobs no other snapshot names and keeps
# the shared ones (checked against the manifests left); a restore reads
# the store; a damaged blob fails the download and the restore, naming
# the file; an uploaded archive goes into the store and downloads as the
# same bytes, restores and deletes; a manifest the node was killed before
# it completed goes at the next start. The files are read after the
# dump's snapshot of the database is taken (while pg_dump runs): a row
# added after it is not in the dump, a file added then is in the
# snapshot.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"	# pause_at, reached, unpause
. "$(dirname "$0")/snapstore-lib.sh"
export NUBO_TEST_PAUSE_FILE=$T/pause
start_store_notes t5c
field() { jq_get "$2" < "$D/snapshots/$1/snapshot.json"; }
# the blobs in the store, and those the given manifests name (sorted)
# (a blob's name in either form: raw, or packed with .z)
stored() { [ -d "$STORE/blobs" ] && (cd "$STORE/blobs" && find . -type f | sed 's|^\./||; s|/||; s|\.z$||' | sort); }
named() { # [tree|dump] MANIFEST…
	python3 - "$@" <<'EOF'
import json, sys
part, out = sys.argv[1], set()
for p in sys.argv[2:]:
    m = json.load(open(p))
    if part in ("all", "tree"):
        out |= {e["sha256"] for e in m["tree"] if e["type"] == "f"}
    if part in ("all", "dump"):
        out |= {c["sha256"] for c in m["dump"]["chunks"]}
        out |= {c["sha256"] for c in m["dump"].get("deltas", [])}
print("\n".join(sorted(out)))
EOF
}
man() { echo "$D/snapshots/$1/manifest.json"; }
# delete_swept SNAPSHOT WHAT: delete it, wait for the sweep that follows
delete_swept() {
	local n
	n=$(passes store-sweep "$NODE_PID_cloud3")
	check "delete $2" "$NUBO" backups delete shop Test "$1"
	wait_passes store-sweep "$NODE_PID_cloud3" 1 "$n"
	[ ! -e "$D/snapshots/$1" ] && pass "nothing of $2 is left on the node" || fail "$2 is still on the node"
}

# a dump of several chunks (ARCHITECTURE: 256 kB to 4 MB each)
sql "INSERT INTO notes (title, body) SELECT 'note ' || g, repeat(md5(g::text), 9) FROM generate_series(1, 25000) g" >/dev/null
for i in $(seq 30); do put_doc $((RANDOM * 3 + 500)) >/dev/null; done
NFILES=$(find "$FILES" -type f | wc -l)

# --- a snapshot is a manifest; the second one reads no file ---------------
S1=$(snap first)
expect "the snapshot completed" "$("$NUBO" backups show shop Test "$S1" --json | jq_get state)" completed
[ -s "$(man "$S1")" ] && pass "its manifest is on the node" || fail "no manifest for $S1"
expect "and no archive.tar.gz" "$(ls "$D/snapshots/$S1")" "manifest.json
snapshot.json"
expect "every file read once" "$(field "$S1" store.hashed)" "$NFILES"
expect "each file a blob" "$(named tree "$(man "$S1")" | wc -l)" "$NFILES"
expect "the store holds exactly what the manifest names" "$(stored)" "$(named all "$(man "$S1")")"
expect_match "the portal has the download's size" "$("$NUBO" backups show shop Test "$S1" --json | jq_get archive_size)" '^[1-9][0-9]{3,}$'
BEFORE=$(stored)
S2=$(snap "nothing changed")
expect "second snapshot: no file read again" "$(field "$S2" store.hashed),$(field "$S2" store.reused)" "0,$NFILES"
expect "it names the same file blobs" "$(named tree "$(man "$S2")")" "$(named tree "$(man "$S1")")"
ADDED=$(comm -13 <(echo "$BEFORE") <(stored))
expect "it adds no file blob (only dump chunks, if any)" "$(comm -23 <(echo "$ADDED" | sed '/^$/d') <(named dump "$(man "$S2")") | wc -l)" 0
expect_match "the dump's unchanged chunks are shared" "$(comm -12 <(named dump "$(man "$S1")") <(named dump "$(man "$S2")") | wc -l)" '^[1-9]'
# the dump (over 4 MB) went in as a delta on the first one's: its rows
# unchanged, only the dump's header (its time, its offsets) is new
expect "the second dump is a delta on the first" "$(field "$S2" store.dump_delta)" true
expect "on the first one's dump read back and indexed while pg_dump ran" "$(field "$S2" store.dump_index_early)" true
expect_match "holding a few kB" "$(field "$S2" store.dump_inserted)" '^[0-9]{1,4}$'
expect "its chain: the first one's chunks and one delta" "$(python3 -c 'import json, sys; a, b = (json.load(open(p))["dump"] for p in sys.argv[1:]); print(len(b["deltas"]), b["chunks"] == a["chunks"])' "$(man "$S1")" "$(man "$S2")")" "1 True"
NEW=$(put_doc 4000)
sql "UPDATE notes SET body = 'changed ' || body WHERE id % 50 = 7" >/dev/null
S3=$(snap "one file added, 2 % of rows changed")
expect "the third dump is a delta too" "$(field "$S3" store.dump_delta)" true
expect "on the index made while pg_dump ran too" "$(field "$S3" store.dump_index_early)" true
expect "third snapshot: the new file alone read" "$(field "$S3" store.hashed)" 1
NEWBLOB=$(sha256sum < "$NEW" | cut -c1-64)
expect "its blob is in the store" "$(stored | grep -c "^$NEWBLOB$")" 1
dump_sha() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["dump"]["sha256"])' "$(man "$1")"; }
expect "the chain's latest snapshot has a download copy of its dump's segments, the one before it none" "$(ls "$STORE/chains")" "$(dump_sha "$S3")"

# --- downloads assembled from the store -------------------------------------
cd "$T"
check "download the full archive" "$NUBO" backups download shop Test "$S3" --output full.tar.gz
check "again" "$NUBO" backups download shop Test "$S3" --output again.tar.gz
check "the same bytes twice" cmp full.tar.gz again.tar.gz
expect_match "plain tar lists its members" "$(tar tzf full.tar.gz | sort | tr '\n' ' ')" '^\.metadata \.nubo/ \.nubo/checksums db/ db/db\.backup tree/'
mkdir plain && tar xzf full.tar.gz -C plain
check "plain tar extracts the files as they are" diff -r "$FILES" plain/tree
check "pg_restore reads db/db.backup" pg_restore --list plain/db/db.backup
check "sha256sum -c .nubo/checksums" sh -c "cd plain && sha256sum --quiet -c .nubo/checksums"
expect "pg_restore --data-only gives the rows back" "$(pg_restore -f - --data-only -t notes plain/db/db.backup | grep -cP '^\d+\tnote ')" 25000
URL=$(api_as "$ADMIN_KEY" POST "/apps/shop/environments/Test/snapshots/$S3/download" '{}' | jq_get url)
expect_match "HEAD: the archive's size, no body" "$(curl -sI "$URL" | tr '\r\n' '  ')" "^HTTP/1.1 200 OK .*Content-Length: $(stat -c %s full.tar.gz) "
SZ=$(stat -c %s full.tar.gz)
expect "a Range from the middle" "$(curl -s -o mid -w '%{http_code}' -r "$((SZ / 3))-$((SZ / 2))" "$URL")" 206
check "is that piece of the archive" cmp mid <(tail -c +$((SZ / 3 + 1)) full.tar.gz | head -c $((SZ / 2 - SZ / 3 + 1)))
head -c $((SZ / 2)) full.tar.gz > part.tar.gz
check "download --continue from the middle" "$NUBO" backups download shop Test "$S3" --output part.tar.gz --continue
check "the resumed file is whole" cmp part.tar.gz full.tar.gz
# the CLI's restore from a store reads it as a node's restore does (the
# archive made into a pipe by a thread), into a new database and folder
ADMURL="postgresql://nubo_admin:$(jq_get password < "$D/pg/admin.json")@127.0.0.1:$(sed -n 3p "$T/node-cloud3.ports")"
node_sql cloud3 "CREATE DATABASE t5c_cli"
check "nubod archive restore --store MANIFEST" "$NUBOD" archive restore --store "$STORE" --db "$ADMURL/t5c_cli" --files "$T/cli-files" --tmp "$T" "$(man "$S3")"
check "restores the snapshot's files" diff -r plain/tree "$T/cli-files"
expect_match "--time: the command's seconds in nubod's process, on standard error" "$("$NUBOD" archive assemble --time --store "$STORE" "$(man "$S3")" 2>&1 >/dev/null)" '^nubod archive: [0-9]+\.[0-9]{4} s in this process$'
expect "and its rows" "$(psql -X -At "$ADMURL/t5c_cli" -c "SELECT count(*) FROM notes WHERE title LIKE 'note %'")" 25000
check "a database-only download" "$NUBO" backups download shop Test "$S3" --kind database --output db.backup
check "is the archive's dump" cmp db.backup plain/db/db.backup
check "a files-only download" "$NUBO" backups download shop Test "$S3" --kind files --output files.tar.gz
expect "it holds tree/ only" "$(count -v '^tree/' tar tzf files.tar.gz)" 0
mkdir fonly && tar xzf files.tar.gz -C fonly
check "with the files as they are" diff -r "$FILES" fonly/tree
expect_match "its size is kept for the next HEAD" "$(field "$S3" files_archive_size)" "^$(stat -c %s files.tar.gz)$"
# a snapshot.json written before precompressed blobs keeps the sizes of
# the level-6 stream then assembled: counted again, not served as sizes
python3 - "$D/snapshots/$S3/snapshot.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
j.pop("archive_format", None)
j["archive_size"], j["files_archive_size"] = 12345, 678
json.dump(j, open(sys.argv[1], "w"))
EOF
expect_match "a size kept before precompressed blobs is counted again" "$(curl -sI "$URL" | tr '\r\n' '  ')" "Content-Length: $SZ "
expect "and kept, with its format" "$(field "$S3" archive_size),$(field "$S3" archive_format),$(field "$S3" files_archive_size)" "$SZ,2,"
cd - >/dev/null

# --- restore from the store ---------------------------------------------------
AT_S3=$(state)
sql "DELETE FROM notes WHERE id % 2 = 0" >/dev/null
rm "$NEW"; put_doc 700 >/dev/null
[ "$(state)" != "$AT_S3" ] && pass "the data changed" || fail "the data did not change"
check "stop" "$NUBO" envs stop shop Test
check "restore the store snapshot" "$NUBO" backups restore shop Test "$S3"
expect "rows and files are the snapshot's" "$(state)" "$AT_S3"

# --- delete: unreferenced blobs freed, shared ones kept ------------------------
delete_swept "$S3" "the third snapshot"
expect "the blob only it named is freed" "$(stored | grep -c "^$NEWBLOB$")" 0
expect "its download copy too" "$(ls "$STORE/chains" | wc -l)" 0
expect "the store holds what the manifests left name" "$(stored)" "$(named all "$(man "$S1")" "$(man "$S2")")"
delete_swept "$S1" "the first snapshot"
expect "the files it shared with the second are kept" "$(comm -23 <(named tree "$(man "$S2")") <(stored) | wc -l)" 0
expect "nothing else is" "$(stored)" "$(named all "$(man "$S2")")"

# --- a damaged blob is named ---------------------------------------------------
VICTIM=$(python3 -c 'import json,sys; print(next(e["path"] + " " + e["sha256"] for e in json.load(open(sys.argv[1]))["tree"] if e["type"] == "f"))' "$(man "$S2")")
VPATH=${VICTIM% *}; VHASH=${VICTIM#* }
VBLOB=$STORE/blobs/${VHASH:0:2}/${VHASH:2}.z
[ -f "$VBLOB" ] && pass "the file's blob is stored packed" || fail "no packed blob $VBLOB"
cp "$VBLOB" "$T/blob.orig"
# a byte of its stored contents, past the 24-byte header (the docs are
# random bytes: stored blocks)
flip_byte "$VBLOB" 39
U2=$(api_as "$ADMIN_KEY" POST "/apps/shop/environments/Test/snapshots/$S2/download" '{}' | jq_get url)
# packed blobs are spliced into the download unread (no inflate, no
# re-hash: that is what made downloads slow), so the download is made
# to its end; the gzip trailer's crc32, recorded when the blob was
# packed, is what tells the client
check "the download of a damaged snapshot is served" curl -sf -o "$T/broken.tar.gz" "$U2"
check_fails "and the bytes the client gets fail gzip's check" 1 gzip -t "$T/broken.tar.gz"
check_fails "a restore from it fails" 1 "$NUBO" backups restore shop Test "$S2"
expect_match "naming the damaged file" "$(cat "$T/last.err")" "the snapshot's blob for 'tree/$VPATH' is damaged"
expect "the environment's data is untouched" "$(state)" "$AT_S3"
node_sql cloud3 "CREATE DATABASE t5c_cli2"
check_fails "the CLI's restore from the store fails too" 1 "$NUBOD" archive restore --store "$STORE" --db "$ADMURL/t5c_cli2" --files "$T/cli-files2" --tmp "$T" "$(man "$S2")"
expect_match "naming the damaged file" "$(cat "$T/last.err")" "the snapshot's blob for 'tree/$VPATH' is damaged"
cp "$T/blob.orig" "$VBLOB"
check "repaired, it restores" "$NUBO" backups restore shop Test "$S2"

# --- an uploaded snapshot goes into the store (t5d: more, and old ones) ------
check "upload an archive" "$NUBO" backups upload shop Test "$T/full.tar.gz" --comment uploaded
UP=$("$NUBO" backups list shop Test --json | jq_get snapshots.0.id)
expect "it is a manifest, no archive.tar.gz" "$(ls "$D/snapshots/$UP")" "manifest.json
snapshot.json"
check "its full download" "$NUBO" backups download shop Test "$UP" --output "$T/up.tar.gz"
check "is the archive, byte for byte" cmp "$T/up.tar.gz" "$T/full.tar.gz"
check "its database download" "$NUBO" backups download shop Test "$UP" --kind database --output "$T/up.backup"
check "is the dump" cmp "$T/up.backup" "$T/plain/db/db.backup"
check "it restores" "$NUBO" backups restore shop Test "$UP"
expect "to the archive's data" "$(state)" "$AT_S3"
delete_swept "$UP" "the uploaded snapshot"
expect "the store still holds the other snapshot's blobs" "$(stored)" "$(named all "$(man "$S2")")"

# --- a manifest written just before the node was killed goes at start --------
check "start" "$NUBO" envs start shop Test
S4=$(snap "to be half-done")
put_doc 3000 >/dev/null
S5=$(snap "with a new file")
# as if the node died after S5's manifest but before its snapshot.json
# said completed
python3 - "$D/snapshots/$S5/snapshot.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1])); j["state"] = "running"
json.dump(j, open(sys.argv[1], "w"))
EOF
kill -9 "$NODE_PID_cloud3"; wait "$NODE_PID_cloud3" 2>/dev/null || true
start_node cloud3 v3 --start-timeout 30 --stop-grace 3
wait_passes store-sweep "$NODE_PID_cloud3" 1 0
expect "the half-done snapshot has no manifest" "$(ls "$D/snapshots/$S5")" "snapshot.json"
expect "it is failed" "$(field "$S5" state)" failed
expect "and its blobs are freed" "$(stored)" "$(named all "$(man "$S2")" "$(man "$S4")")"

# --- the files are read after the database's snapshot is taken ---------------
pause_at snapshot-held
"$NUBO" backups create shop Test --comment "held" --no-wait >/dev/null
if reached snapshot-held; then
	sql "INSERT INTO notes (title, body) VALUES ('added after the snapshot', 'x')" >/dev/null
	LATE=$(put_doc 2500)
	unpause
	for _ in $(seq 100); do
		S6=$("$NUBO" backups list shop Test --json | jq -r '.snapshots[] | select(.comment == "held") | .id')
		[ "$("$NUBO" backups show shop Test "$S6" --json 2>/dev/null | jq -r .state)" = completed ] && break
		sleep 0.2
	done
	check "a snapshot paused after its database snapshot completes" "$NUBO" backups download shop Test "$S6" --output "$T/held.tar.gz"
	rm -rf "$T/held"; mkdir -p "$T/held"; tar xzf "$T/held.tar.gz" -C "$T/held"
	expect "  a file added after the database's snapshot is in it" \
		"$(sha256sum < "$T/held/tree/${LATE#"$FILES"/}" | cut -c1-64)" "$(sha256sum < "$LATE" | cut -c1-64)"
	expect "  a row added then is not in its dump" \
		"$(pg_restore -f - "$T/held/db/db.backup" | grep -c 'added after the snapshot')" 0
	expect "  the rows before it are" \
		"$(pg_restore -f - "$T/held/db/db.backup" | grep -c 'note 24999')" 1
else
	fail "no snapshot paused after its database snapshot"
	unpause
fi

finish
