#!/usr/bin/env bash
# t5: backups for real (SPEC §2 Backups, §3 archive, §6 bad input) with the
# sample app: notes and attachments written through the app, snapshot,
# change, restore → rows and file hashes equal the snapshot; details,
# comment, delete; downloads (full / database / files, resumed with Range)
# read by plain tar and pg_restore; an archive made with raw pg_dump + tar
# + a hand-written .metadata uploads and restores on another node; bad
# archives refused with nothing listed; a restore killed midway (kill -9 of
# the node) leaves the old data intact and the environment startable.
# Files of any name (accents, CJK, an emoji, a byte that is not UTF-8) go
# through all of it with their bytes, and plain tar lists and extracts them.
. "$(dirname "$0")/lib.sh"

PKG=$(ls "$NUBO_BUILD"/packages/notes-*.tar.gz 2>/dev/null | head -1)
[ -n "$PKG" ] || { echo "t5: the notes package is not built (make examples)" >&2; exit 1; }
start_portal

put_package() { # NODE ID FILE: upload to the node's repository
	"$NUBO" packages upload "$1" "$3" >/dev/null
}
# libpq URL of an environment's database (its own role, from env.json)
db_url() { # NODE ENV
	local id pw pg
	id=$(env_id "$1" "$2")
	pw=$(jq_get db_password < "$T/node-$1/envs/$id/env.json")
	pg=$(sed -n 3p "$T/node-$1.ports")
	echo "postgresql://env_$id:$pw@127.0.0.1:$pg/env_$id"
}
files_dir() { echo "$T/node-$1/envs/$(env_id "$1" "$2")/files"; }
env_uid() { jq_get uid < "$T/node-$1/envs/$(env_id "$1" "$2")/env.json"; }
# type, mode and path of everything below a folder (owners: owned_by)
modes_of() { (cd "$1" && find . -mindepth 1 -printf '%y %m %P\n' | sort); }
# DIR and what is below it not owned by UID:UID, and how many entries
owned_by() { # DIR UID
	echo "$(find "$1" \( ! -uid "$2" -o ! -gid "$2" \) -printf '%P ' | head -c 300)$(find "$1" -mindepth 1 | wc -l) entries"
}
# Everything the app stored: every row of both tables, every file's sha256.
state_of() { # NODE ENV
	local url dir
	url=$(db_url "$1" "$2"); dir=$(files_dir "$1" "$2")
	{
		psql -X -At "$url" -c "SELECT id, title, body FROM notes ORDER BY id"
		psql -X -At "$url" -c "SELECT uuid, note_id, name, size FROM attachments ORDER BY uuid"
		(cd "$dir" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum)
	} | sha256sum | cut -c1-64
}
host() { echo "$1-$(echo "$2" | tr A-Z a-z).nubo.localhost"; }
app_post() { # NODE HOST PATH [curl args…]
	local var=ROUTER_${1//-/_} h=$2 p=$3
	shift 3
	curl -sf -X POST -H "Host: $h" "$@" "http://127.0.0.1:${!var}$p"
}
# N notes with an attachment of random bytes each
write_notes() { # NODE HOST N TAG
	local i id
	for i in $(seq "$3"); do
		id=$(app_post "$1" "$2" /api/notes -H 'Content-Type: application/json' \
			--data-binary "{\"title\":\"$4 $i\",\"body\":\"body $4 $i\"}" | jq_get id)
		head -c $((RANDOM * 4 + 100)) /dev/urandom > "$T/att"
		app_post "$1" "$2" "/api/notes/$id/attachments?name=a$i.bin" \
			--data-binary @"$T/att" >/dev/null
	done
}
wait_state() { # APP ENV STATE
	local i
	for i in $(seq 150); do
		[ "$("$NUBO" envs show "$1" "$2" --json | jq_get state)" = "$3" ] && return 0
		sleep 0.2
	done
	return 1
}
snap_count() { "$NUBO" backups list "$1" "$2" --json | jq_get snapshots | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

check "create app" "$NUBO" apps create shop --no-sandbox
start_node cloud3 v3 --start-timeout 30 --stop-grace 3
check "link" "$NUBO" nodes link cloud3 shop
put_package cloud3 notes-1.0.0 "$PKG"
check "transport notes" "$NUBO" envs transport shop Test notes-1.0.0
check "start" "$NUBO" envs start shop Test
H=$(host shop Test)
write_notes cloud3 "$H" 12 first
expect "notes written through the app" "$(curl -s -H "Host: $H" "http://127.0.0.1:$ROUTER_cloud3/api/stats" | jq_get notes)" 12
odd_names_write "$(files_dir cloud3 Test)" "$(env_uid cloud3 Test)"
SNAPPED=$(state_of cloud3 Test)
MODES=$(modes_of "$(files_dir cloud3 Test)")
expect_match "the app made folders 0750" "$MODES" "^d 750 [0-9a-f]{2}$"
expect_match "and files 0640" "$MODES" "^f 640 "

# --- snapshot: a job, listed with its details ---------------------------
check "backups create (running environment)" "$NUBO" backups create shop Test --comment "before the change"
SID=$("$NUBO" backups list shop Test --json | jq_get snapshots.0.id)
S=$("$NUBO" backups show shop Test "$SID" --json)
expect "type manual" "$(printf '%s' "$S" | jq_get type)" manual
expect "state completed" "$(printf '%s' "$S" | jq_get state)" completed
expect "comment" "$(printf '%s' "$S" | jq_get comment)" "before the change"
expect "who" "$(printf '%s' "$S" | jq_get created_by)" "admin@nubo.localhost"
expect "package recorded" "$(printf '%s' "$S" | jq_get package)" notes-1.0.0
expect_match "sizes recorded" "$(printf '%s' "$S" | jq_get files_size),$(printf '%s' "$S" | jq_get dump_size)" '^[1-9][0-9]*,[1-9][0-9]*$'
expect_match "manual snapshots expire in 3 months" "$(printf '%s' "$S" | jq_get expires)" "^$(date -u -d '+3 months' +%Y-%m)"
check "short id works" "$NUBO" backups show shop Test "${SID:0:8}"
check "edit the comment" "$NUBO" backups comment shop Test "$SID" "golden"
expect "comment edited" "$("$NUBO" backups show shop Test "$SID" --json | jq_get comment)" golden
check_fails "unknown snapshot" 1 "$NUBO" backups show shop Test 00000000-0000-4000-8000-000000000000
expect_match "unknown snapshot message" "$(cat "$T/last.err")" "no snapshot"

# --- change the data, restore, compare -----------------------------------
write_notes cloud3 "$H" 5 second
CHANGED=$(state_of cloud3 Test)
[ "$CHANGED" != "$SNAPPED" ] && pass "data changed" || fail "data did not change"
check_fails "restore into a running environment refused" 1 "$NUBO" backups restore shop Test "$SID"
expect_match "refusal says why" "$(cat "$T/last.err")" "cannot restore into 'Test': environment is running"
check "stop" "$NUBO" envs stop shop Test
check "restore" "$NUBO" backups restore shop Test "$SID"
expect "restored data equals the snapshot (rows and file sha256)" "$(state_of cloud3 Test)" "$SNAPPED"
expect "files of any name restored with their bytes" "$(odd_names_check "$(files_dir cloud3 Test)")" ""
expect "restored files and folders have the modes they had" "$(modes_of "$(files_dir cloud3 Test)")" "$MODES"
expect_match "and are the environment's user's" "$(owned_by "$(files_dir cloud3 Test)" "$(env_uid cloud3 Test)")" "^[1-9][0-9]* entries$"
check "start after restore" "$NUBO" envs start shop Test
expect "the app sees the restored notes" "$(curl -s -H "Host: $H" "http://127.0.0.1:$ROUTER_cloud3/api/stats" | jq_get notes)" 12
expect "old database dropped after the swap" "$(node_sql cloud3 "SELECT count(*) FROM pg_database WHERE datname LIKE 'env_%_old_%' OR datname LIKE 'env_%_new_%'")" 0
expect "restore listed" "$("$NUBO" backups list shop Test --json >/dev/null; api_as "$ADMIN_KEY" GET /apps/shop/environments/Test/restores | jq_get restores.0.state)" completed

# --- downloads: plain tools read them ------------------------------------
cd "$T"
check "download full" "$NUBO" backups download shop Test "$SID" --output full.tar.gz
expect_match "archive members" "$(tar tzf full.tar.gz | sort | tr '\n' ' ')" '^\.metadata \.nubo/ \.nubo/checksums db/ db/db\.backup tree/'
mkdir plain && tar xzf full.tar.gz -C plain
printf 'tree/%s\n' "${ODD_NAMES[@]}" > odd.list
expect "plain tar lists every name as its bytes" "$(tar --quoting-style=literal -tzf full.tar.gz | LC_ALL=C grep -cxF -f odd.list)" 4
expect "plain tar extracts them with their bytes" "$(odd_names_check plain/tree)" ""
check "pg_restore reads db/db.backup" pg_restore --list plain/db/db.backup
check "sha256sum -c .nubo/checksums" sh -c "cd plain && sha256sum --quiet -c .nubo/checksums"
expect_match ".metadata values are strings" "$(cat plain/.metadata)" '^\{"duration":"[0-9]+","dumpSize":"[0-9]+","modelVersion":"notes-1.0.0","databaseSize":"[0-9]+","filesSize":"[0-9]+","nuboFormat":"1"\}$'
check "download database only" "$NUBO" backups download shop Test "$SID" --kind database --output db.backup
check "the database download is a custom dump" pg_restore --list db.backup
check "it equals the archive's" cmp db.backup plain/db/db.backup
check "download files only" "$NUBO" backups download shop Test "$SID" --kind files --output files.tar.gz
expect "files-only lists every name as its bytes" "$(tar --quoting-style=literal -tzf files.tar.gz | LC_ALL=C grep -cxF -f odd.list)" 4
expect "files-only holds tree/ only" "$(count -v '^tree/' tar tzf files.tar.gz)" 0
# an interrupted download continues with Range
head -c 5000 full.tar.gz > part.tar.gz
check "download --continue" "$NUBO" backups download shop Test "$SID" --output part.tar.gz --continue
check "resumed file is whole" cmp part.tar.gz full.tar.gz
# --continue sends a hash of the bytes it has: the node refuses to add to
# bytes that are not the archive's start
head -c 5000 /dev/urandom > wrong.tar.gz; cp wrong.tar.gz wrong.orig
check_fails "download --continue onto other bytes: refused" 1 "$NUBO" backups download shop Test "$SID" --output wrong.tar.gz --continue
expect_match "it says why" "$(cat "$T/last.err")" "'wrong.tar.gz' is not the start of this archive: its 5000 bytes differ"
check "the file was left as it was" cmp wrong.tar.gz wrong.orig
DURL=$(api_as "$ADMIN_KEY" POST "/apps/shop/environments/Test/snapshots/$SID/download" '{}' | jq_get url)
expect "a suffix range (bytes=-50)" "$(curl -s -o tail50 -w '%{http_code}' -r -50 "$DURL")" 206
check "it is the archive's last 50 bytes" cmp tail50 <(tail -c 50 full.tar.gz)
expect_match "HEAD answers the size, no body" "$(curl -sI "$DURL" | tr '\r\n' '  ')" "^HTTP/1.1 200 OK .*Content-Length: $(stat -c %s full.tar.gz) "
expect_match "default file name" "$(cd "$T" && "$NUBO" backups download shop Test "$SID" --kind database)" "^database-${SID:0:8}-[0-9]{12}\.backup$"
cd - >/dev/null

# --- second node: a raw archive and a nubo archive both upload and restore
check "create app 2" "$NUBO" apps create shop2 --no-sandbox
start_node cloud4 v4 --start-timeout 30 --stop-grace 3
check "link 2" "$NUBO" nodes link cloud4 shop2
put_package cloud4 notes-1.0.0 "$PKG"
check "transport 2" "$NUBO" envs transport shop2 Test notes-1.0.0
check "start 2 (creates its database)" "$NUBO" envs start shop2 Test
check "stop 2" "$NUBO" envs stop shop2 Test
check "upload the nubo archive to the other node" "$NUBO" backups upload shop2 Test "$T/full.tar.gz" --comment moved
UP=$("$NUBO" backups list shop2 Test --json | jq_get snapshots.0)
expect "uploaded snapshot" "$(printf '%s' "$UP" | jq_get type),$(printf '%s' "$UP" | jq_get state),$(printf '%s' "$UP" | jq_get comment)" "uploaded,completed,moved"
check "restore it on the other node" "$NUBO" backups restore shop2 Test "$(printf '%s' "$UP" | jq_get id)"
expect "data moved between nodes" "$(state_of cloud4 Test)" "$SNAPPED"
expect "with files of any name" "$(odd_names_check "$(files_dir cloud4 Test)")" ""

# (a) made by the test itself: pg_dump -O -x -Fc, tar, hand-written .metadata
RAW=$T/raw; mkdir -p "$RAW/db" "$RAW/tree"
# (as the node's admin: pg_dump -Fc reads the database's comment and
# settings, which the environment's role may not; a plain pg_dump works
# with its credentials, see t7)
pg_dump -O -x -Fc -f "$RAW/db/db.backup" "postgresql://nubo_admin:$(jq_get password < "$T/node-cloud3/pg/admin.json")@127.0.0.1:$(sed -n 3p "$T/node-cloud3.ports")/env_$(env_id cloud3 Test)"
cp -a "$(files_dir cloud3 Test)/." "$RAW/tree/"
write_notes cloud3 "$H" 3 third	# the source moves on; the raw archive does not
fs=$(find "$RAW/tree" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
printf '{"duration":"1","dumpSize":"%s","modelVersion":"1.0.0.40","databaseSize":"9730584","filesSize":"%s"}' \
	"$(stat -c %s "$RAW/db/db.backup")" "$fs" > "$RAW/.metadata"
# a user's own modes are kept; the folders are implied by the files alone
mapfile -t F < <(find "$RAW/tree" -type f | sort)
chmod 0660 "${F[0]}"; chmod 0400 "${F[1]}"
tar czf "$T/raw.tar.gz" -C "$RAW" .metadata db $(cd "$RAW" && find tree -type f)
check "upload a raw-tool archive" "$NUBO" backups upload shop2 Test "$T/raw.tar.gz"
RID=$("$NUBO" backups list shop2 Test --json | jq_get snapshots.0.id)
check "restore the raw-tool archive" "$NUBO" backups restore shop2 Test "$RID"
expect "its files have their modes, implied folders 0750" "$(modes_of "$(files_dir cloud4 Test)")" "$(modes_of "$RAW/tree" | sed 's/^d [0-7]* /d 750 /')"
expect_match "and all are the environment's user's" "$(owned_by "$(files_dir cloud4 Test)" "$(env_uid cloud4 Test)")" "^[1-9][0-9]* entries$"
expect "raw archive rows restored" "$(psql -X -At "$(db_url cloud4 Test)" -c "SELECT count(*) FROM notes")" 12
expect "raw archive files restored" "$(cd "$(files_dir cloud4 Test)" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)" \
	"$(cd "$RAW/tree" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)"
# the environment moves on from both snapshots (a row, a file), so that
# a database-only restore can be told from a whole one and from none
psql -X -q -v ON_ERROR_STOP=1 "$(db_url cloud4 Test)" -c "INSERT INTO notes (title) VALUES ('after the snapshots')"
echo "after the snapshots" > "$(files_dir cloud4 Test)/after.txt"
chown --reference="$(files_dir cloud4 Test)" "$(files_dir cloud4 Test)/after.txt"
files_now=$(cd "$(files_dir cloud4 Test)" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)
expect "the environment now holds 13 notes" "$(psql -X -At "$(db_url cloud4 Test)" -c "SELECT count(*) FROM notes")" 13
check "database-only restore" "$NUBO" backups restore shop2 Test "$(printf '%s' "$UP" | jq_get id)" --database-only
expect "database-only restore keeps the files (the new one too)" "$(cd "$(files_dir cloud4 Test)" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)" "$files_now"
expect "database-only restore replaced the rows" "$(psql -X -At "$(db_url cloud4 Test)" -c "SELECT count(*) FROM notes")" 12
expect "the row written after the snapshot is gone" "$(psql -X -At "$(db_url cloud4 Test)" -c "SELECT count(*) FROM notes WHERE title = 'after the snapshots'")" 0

# --- bad archives: refused with a clear error, nothing listed --------------
BAD=$T/bad; mkdir -p "$BAD"
mk_bad() { # NAME: build $BAD/NAME.tar.gz from $BAD/NAME/ (a copy of RAW)
	tar czf "$BAD/$1.tar.gz" -C "$BAD/$1" . ; }
copy_raw() { rm -rf "$BAD/$1"; cp -a "$RAW" "$BAD/$1"; }
head -c $(( $(stat -c %s "$T/raw.tar.gz") / 2 )) "$T/raw.tar.gz" > "$BAD/truncated.tar.gz"
cp "$T/full.tar.gz" "$BAD/bitflip.tar.gz"
python3 - "$BAD/bitflip.tar.gz" <<'EOF'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 0x20
open(p, 'wb').write(b)
EOF
python3 - "$BAD/dotdot.tar.gz" "$BAD/absolute.tar.gz" "$RAW" <<'EOF'
import sys, tarfile, io, os
raw = sys.argv[3]
def build(path, extra):
    with tarfile.open(path, 'w:gz') as t:
        for n in ('.metadata', 'db/db.backup'):
            t.add(os.path.join(raw, n), n)
        ti = tarfile.TarInfo(extra); ti.size = 4
        t.addfile(ti, io.BytesIO(b'evil'))
build(sys.argv[1], 'tree/../../etc/evil')
build(sys.argv[2], '/etc/evil')
EOF
copy_raw symlink; ln -s /etc/passwd "$BAD/symlink/tree/link"; mk_bad symlink
copy_raw hardlink; f=$(find "$BAD/hardlink/tree" -type f | head -1); ln "$f" "$BAD/hardlink/tree/hard"; mk_bad hardlink
copy_raw device; mknod "$BAD/device/tree/null" c 1 3; mk_bad device
copy_raw dup; mk_bad dup; gzip -dc "$BAD/dup.tar.gz" > "$BAD/dup.tar"
tar rf "$BAD/dup.tar" -C "$BAD/dup" "./$(cd "$BAD/dup" && find tree -type f | head -1)"; gzip -c "$BAD/dup.tar" > "$BAD/dup.tar.gz"
copy_raw badmeta; sed -i 's/"dumpSize":"\([0-9]*\)"/"dumpSize":\1/' "$BAD/badmeta/.metadata"; mk_bad badmeta
copy_raw badsize; sed -i 's/"filesSize":"\([0-9]*\)"/"filesSize":"1\1"/' "$BAD/badsize/.metadata"; mk_bad badsize
# a file with members below it as in a folder (tree/a, then tree/a/b)
copy_raw nested; echo file > "$BAD/nested/tree/zz"; mkdir -p "$BAD/nested2/tree/zz"; echo below > "$BAD/nested2/tree/zz/below"
tar cf "$BAD/nested.tar" -C "$BAD/nested" . && tar rf "$BAD/nested.tar" -C "$BAD/nested2" ./tree/zz/below && gzip -c "$BAD/nested.tar" > "$BAD/nested.tar.gz"
# a sparse member: 20 GB declared, a few kB in the archive
copy_raw sparse; truncate -s 20G "$BAD/sparse/tree/huge"; tar -S -czf "$BAD/sparse.tar.gz" -C "$BAD/sparse" .
copy_raw notdump; echo "not a dump" > "$BAD/notdump/db/db.backup"; sz=$(stat -c %s "$BAD/notdump/db/db.backup")
sed -i "s/\"dumpSize\":\"[0-9]*\"/\"dumpSize\":\"$sz\"/" "$BAD/notdump/.metadata"; mk_bad notdump
before=$(snap_count shop2 Test)
uploading() { sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM snapshots WHERE state = 'uploading'"; }
refusals() { sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM activity WHERE action = 'snapshot.upload-refused'"; }
wait_uploading() { # N: until N uploads are in progress (the node reports a refusal at once)
	local i
	for i in $(seq 100); do [ "$(uploading)" = "$1" ] && break; sleep 0.1; done
}
UPLOADING=$(uploading); REFUSALS=$(refusals)
for b in truncated:truncated bitflip:'corrupt|checksum|truncated' dotdot:"escapes the archive root" \
	absolute:"absolute path" symlink:"symbolic link" hardlink:"hard link" device:"device" \
	dup:"duplicate|twice" badmeta:"'dumpSize' must be a string" \
	nested:"'tree/zz/below' lies below 'tree/zz', which is a file" sparse:"'tree/huge' is a sparse file" \
	notdump:"not a PostgreSQL custom-format dump"; do
	name=${b%%:*}; want=${b#*:}
	check_fails "bad archive refused: $name" 1 "$NUBO" backups upload shop2 Test "$BAD/$name.tar.gz"
	expect_match "bad archive message: $name" "$(cat "$T/last.err")" "$want"
done
expect "nothing listed after the bad uploads" "$(snap_count shop2 Test)" "$before"
# a refused upload can never complete: its record in the portal goes at
# once (not a day later), and its URL takes no second archive
wait_uploading "$UPLOADING"
expect "no refused upload is left in progress" "$(uploading)" "$UPLOADING"
expect "the activity log has each refusal" "$(refusals)" "$((REFUSALS + 12))"
expect_match "naming the upload and the node's reason" "$(sqlite3 "$T/portal/portal.db" "SELECT detail FROM activity WHERE action = 'snapshot.upload-refused' ORDER BY id DESC LIMIT 1")" "^the node refused the archive of upload [0-9a-f]{8} into environment 'Test': .*not a PostgreSQL custom-format dump"
UPB=$(api_as "$ADMIN_KEY" POST /apps/shop2/environments/Test/snapshot-uploads '{}')
UPURL=$(printf '%s' "$UPB" | jq_get url); UPID=$(printf '%s' "$UPB" | jq_get snapshot)
expect "an upload begun through the API is in progress" "$(uploading)" "$((UPLOADING + 1))"
expect "its bad archive: refused" "$(curl -s -o /dev/null -w '%{http_code}' -T "$BAD/notdump.tar.gz" "$UPURL")" 400
wait_uploading "$UPLOADING"
expect "its record is gone" "$(sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM snapshots WHERE uuid = '$UPID'")" 0
expect "its URL takes no second archive" "$(curl -s -o "$T/reput.json" -w '%{http_code}' -T "$T/raw.tar.gz" "$UPURL")" 409
expect "that says the upload was refused" "$(jq_get error.code < "$T/reput.json")" UPLOAD_REFUSED
expect "nothing of it is stored on the node" "$(count "^$UPID" ls -A "$T/node-cloud4/snapshots")" 0
expect "completing it: no such upload" "$(status_as "$ADMIN_KEY" POST "/apps/shop2/environments/Test/snapshot-uploads/$UPID" '{}')" 404
# an upload for an environment the node does not have (deleted since its
# URL was signed) is refused, and the agent carries on
SECRET4=$(jq_get portal_secret < "$T/node-cloud4/agent.json")
expect "an upload into an environment the node lacks: not found" "$(curl -s -o "$T/noenv.json" -w '%{http_code}' -X PUT -H "Authorization: Bearer $SECRET4" --data-binary @"$T/raw.tar.gz" "$NODE_URL_cloud4/agent/v1/environments/999999/snapshots/$(python3 -c 'import uuid; print(uuid.uuid4())')/archive")" 404
expect "that names the environment" "$(jq_get error.message < "$T/noenv.json")" "no environment 999999 on this node"
expect "the node agent still answers" "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $SECRET4" "$NODE_URL_cloud4/agent/v1/snapshots/$UPID")" 404
expect "the sparse member adds little to the archive" "$(( $(stat -c %s "$BAD/sparse.tar.gz") < $(stat -c %s "$T/raw.tar.gz") + 100000 ))" 1
# .metadata's filesSize is informational (du -sb counts folders): a
# warning in the snapshot's details, not a refusal
check "an archive whose filesSize differs uploads" "$NUBO" backups upload shop2 Test "$BAD/badsize.tar.gz"
W=$("$NUBO" backups list shop2 Test --json | jq_get snapshots.0.id)
expect_match "the warning is in its details" "$("$NUBO" backups show shop2 Test "$W")" "warning +'\.metadata' says filesSize 1[0-9]+ but tree/ holds [0-9]+ bytes"
expect "its files_size is what tree/ holds" "$("$NUBO" backups show shop2 Test "$W" --json | jq_get files_size)" "$(find "$BAD/badsize/tree" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')"
check "delete it" "$NUBO" backups delete shop2 Test "$W"
expect "nothing left on the node" "$(count '^\.upload' ls -A "$T/node-cloud4/snapshots")" 0

# --- a restore killed midway leaves the old data ---------------------------
check "stop for the kill test" "$NUBO" envs stop shop Test
# enough data that the restore takes a while
psql -X -q "$(db_url cloud3 Test)" -c "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) || repeat('x', 200) AS v FROM generate_series(1, 1500000) g"
check "big snapshot" "$NUBO" backups create shop Test
expect_match "its progress is told" "$(cat "$T/last.err")" 'backing up: [0-9.]+ (B|kB|MB|GB)( read| of)'
expect "in a unit that shows it (no whole MB rounded down)" "$(grep -cE ': [0-9]+ (of [0-9]+ )?MB( read)?$' "$T/last.err")" 0
BIG=$("$NUBO" backups list shop Test --json | jq_get snapshots.0.id)
psql -X -q "$(db_url cloud3 Test)" -c "DROP TABLE bulk"
BEFORE_KILL=$(state_of cloud3 Test)
check "restore started" "$NUBO" backups restore shop Test "$BIG" --no-wait
KILLED=$(awk '{print $2}' "$T/last.out")
# kill once pg_restore is loading the new database: pg_restore is stopped
# first (SIGSTOP) so the restore cannot finish before the kill lands
EID=$(env_id cloud3 Test)
PGR=
for i in $(seq 600); do
	# this node's pg_restore only (its conninfo names this node's port):
	# other tests on the machine may be restoring an env_<same id> too
	PGR=$(pgrep -f "pg_restore.*dbname='env_${EID}_new_.*port='$(sed -n 3p "$T/node-cloud3.ports")'" | head -1 || true)
	[ -n "$PGR" ] && break
	sleep 0.05
done
[ -n "$PGR" ] && kill -STOP $PGR
[ -n "$PGR" ] && [ -f "$T/node-cloud3/envs/$EID/restore.json" ] && pass "restore in progress when killed" || fail "restore not in progress when killed"
kill -9 "$NODE_PID_cloud3"
[ -n "$PGR" ] && kill -9 $PGR 2>/dev/null	# the host went down with it
wait "$NODE_PID_cloud3" 2>/dev/null || true
pass "node killed during the restore"
regs=$(grep -c "registered as node" "$T/node-cloud3.log")
start_node cloud3 v3 --start-timeout 30 --stop-grace 3
for i in $(seq 100); do
	[ "$(grep -c "registered as node" "$T/node-cloud3.log")" -gt "$regs" ] && break
	sleep 0.2
done
expect "journal settled at start" "$(ls "$T/node-cloud3/envs/$(env_id cloud3 Test)/restore.json" 2>/dev/null | wc -l)" 0
expect "old data intact after the killed restore" "$(state_of cloud3 Test)" "$BEFORE_KILL"
expect "no spool file left" "$(count '^restore-' ls "$T/node-cloud3/envs/$(env_id cloud3 Test)")" 0
expect "no half-restored database left" "$(node_sql cloud3 "SELECT count(*) FROM pg_database WHERE datname ~ '^env_[0-9]+_(new|old)_'")" 0
for i in $(seq 240); do
	s=$(api_as "$ADMIN_KEY" GET /apps/shop/environments/Test/restores | python3 -c '
import json, sys
print(next((r["state"] for r in json.load(sys.stdin)["restores"] if r["id"] == sys.argv[1]), "missing"))' "$KILLED")
	[ "$s" = failed ] && break
	sleep 0.5
done
expect "the killed restore is reported failed" "$s" failed
check "environment starts after the killed restore" "$NUBO" envs start shop Test
expect "app serves the old data" "$(curl -s -H "Host: $H" "http://127.0.0.1:$ROUTER_cloud3/api/stats" | jq_get notes)" "$(psql -X -At "$(db_url cloud3 Test)" -c "SELECT count(*) FROM notes")"

# --- delete ------------------------------------------------------------------
check "delete a snapshot" "$NUBO" backups delete shop Test "$BIG"
check_fails "deleted snapshot is gone" 1 "$NUBO" backups show shop Test "$BIG"
expect "its archive is gone from the node" "$(count "$BIG" ls "$T/node-cloud3/snapshots")" 0

# --- offboarding wants the latest backup and the package downloaded (seed §3.3)
# A download counts only when the node saw the whole file leave (src/node/
# downloads.c reports it to the portal): a URL handed out, or half a file,
# does not.
offboard_code() { api_as "$ADMIN_KEY" POST /nodes/cloud3/offboarding-requests '{}' | tee "$T/offboard.json" | jq_get error.code; }
snap_downloaded() { "$NUBO" backups show shop Test "$1" --json | jq_get downloaded_at; }
# wait until the portal has the node's report (it is sent at once)
wait_snap_downloaded() { # SNAPSHOT
	local i
	for i in $(seq 50); do
		[ -n "$(snap_downloaded "$1")" ] && return 0
		sleep 0.2
	done
	return 1
}
expect "offboarding refused before any download" "$(offboard_code)" DATA_NOT_SAVED
check "a fresh snapshot" "$NUBO" backups create shop Test --comment "before offboarding"
LATEST=$("$NUBO" backups list shop Test --json | jq_get snapshots.0.id)
# the archive as the node serves it to the portal's secret (user 0: not
# a user's download, it does not count)
ARCHIVE=$T/latest-node.tar.gz
curl -sf -o "$ARCHIVE" -H "Authorization: Bearer $(jq_get portal_secret < "$T/node-cloud3/agent.json")" \
	"$NODE_URL_cloud3/agent/v1/snapshots/$LATEST/full"
SIZE=$(stat -c %s "$ARCHIVE")
URL=$(api_as "$ADMIN_KEY" POST "/apps/shop/environments/Test/snapshots/$LATEST/download" '{}' | jq_get url)
expect_match "a download URL is handed out" "$URL" "^http://127\.0\.0\.1:[0-9]+/agent/v1/snapshots/$LATEST/full\?"
ends=$(passes download-end "$NODE_PID_cloud3")
expect "a HEAD of it (does not count)" "$(curl -s -o /dev/null -w '%{http_code}' -I "$URL")" 200
wait_passes download-end "$NODE_PID_cloud3" 1 "$ends"	# the node ended the HEAD
expect "snapshots show downloaded_at" "$("$NUBO" backups show shop Test "$LATEST" --json | python3 -c 'import json,sys; print("downloaded_at" in json.load(sys.stdin))')" True
expect "URL only: not downloaded" "$(snap_downloaded "$LATEST")" ""
expect "URL only: offboarding still refused" "$(offboard_code)" DATA_NOT_SAVED
expect_match "the refusal names the backup" "$(jq_get error.message < "$T/offboard.json")" "latest backup \(snapshot ${LATEST:0:8}\) was never downloaded completely"
HALF=$((SIZE / 2))
ends=$(passes download-end "$NODE_PID_cloud3")
expect "first half fetched with a Range" "$(curl -s -o "$T/latest.tar.gz" -w '%{http_code}' -r "0-$((HALF - 1))" "$URL")" 206
expect "it holds half the archive" "$(stat -c %s "$T/latest.tar.gz")" "$HALF"
check "a files-only download (does not count)" "$NUBO" backups download shop Test "$LATEST" --kind files --output "$T/latest-files.tar.gz"
check "a database-only download (does not count)" "$NUBO" backups download shop Test "$LATEST" --kind database --output "$T/latest-db.backup"
wait_passes download-end "$NODE_PID_cloud3" 1 "$ends"	# the node ended the half
expect "half (and files only): not downloaded" "$(snap_downloaded "$LATEST")" ""
expect "half: offboarding still refused" "$(offboard_code)" DATA_NOT_SAVED
expect_match "half: the refusal still names the backup" "$(jq_get error.message < "$T/offboard.json")" "latest backup .* was never downloaded completely"
check "the download resumed to the end (--continue)" "$NUBO" backups download shop Test "$LATEST" --output "$T/latest.tar.gz" --continue
expect "the resumed file is the archive" "$(sha256sum < "$T/latest.tar.gz")" "$(sha256sum < "$ARCHIVE")"
wait_snap_downloaded "$LATEST" && pass "the node reported the complete download" || fail "the node never reported the complete download"
expect_match "the earlier full download of $SID counted too" "$(snap_downloaded "$SID")" '^20[0-9-]+T[0-9:]+Z$'
expect "still refused: the package was not downloaded" "$(offboard_code)" DATA_NOT_SAVED
expect_match "the refusal names the package" "$(jq_get error.message < "$T/offboard.json")" "package 'notes-1.0.0' was never downloaded completely"
PURL=$(api_as "$ADMIN_KEY" GET /nodes/cloud3/packages/notes-1.0.0/download | jq_get url)
expect_match "a package URL is handed out" "$PURL" "/agent/v1/packages/notes-1.0.0/file\?"
PSIZE=$(stat -c %s "$T/node-cloud3/packages/notes-1.0.0/package")
# a range that does not start where the delivered bytes end is not
# remembered: the last byte first, then all but the last byte
ends=$(passes download-end "$NODE_PID_cloud3")
expect "the package's last byte fetched" "$(curl -s -o /dev/null -w '%{http_code}' -r "$((PSIZE - 1))-" "$PURL")" 206
expect "all but its last byte fetched" "$(curl -s -o /dev/null -w '%{http_code}' -r "0-$((PSIZE - 2))" "$PURL")" 206
wait_passes download-end "$NODE_PID_cloud3" 2 "$ends"	# the node ended both
expect "package URL and pieces only: still refused" "$(offboard_code)" DATA_NOT_SAVED
expect_match "pieces only: the refusal names the package" "$(jq_get error.message < "$T/offboard.json")" "package 'notes-1.0.0' was never downloaded completely"
# the node may only report its own snapshots and packages, and a report
# again changes nothing
N3=$(cat "$T/node-cloud3.token"); N4=$(cat "$T/node-cloud4.token")
report() { # TOKEN BODY: the HTTP status of a node's download report
	curl -s -o "$T/report.json" -w '%{http_code}' -X POST -H "Authorization: Bearer $1" \
		-H 'Content-Type: application/json' --data-binary "$2" "$PORTAL_URL/api/v1/agent/downloads"; }
AT=$(snap_downloaded "$LATEST")
expect "another node cannot mark this node's snapshot" "$(report "$N4" "{\"kind\":\"snapshot\",\"id\":\"$LATEST\"}")" 404
expect "another node's report marks its own copy of the package" "$(report "$N4" '{"kind":"package","id":"notes-1.0.0"}')" 200
expect "cloud4's copy is marked" "$(api_as "$ADMIN_KEY" GET /nodes/cloud4/packages/notes-1.0.0 | jq_get downloaded_at)" "$(jq_get downloaded_at < "$T/report.json")"
expect "cloud3's is not" "$(api_as "$ADMIN_KEY" GET /nodes/cloud3/packages/notes-1.0.0 | python3 -c 'import json,sys; d=json.load(sys.stdin); print("downloaded_at" in d, d.get("downloaded_at"))')" "True None"
expect "a node cannot mark a package it does not have" "$(report "$N3" '{"kind":"package","id":"nosuch-1.0"}')" 404
expect "an API key cannot report" "$(report "$ADMIN_KEY" "{\"kind\":\"snapshot\",\"id\":\"$LATEST\"}")" 401
expect "a bad report is refused" "$(report "$N3" '{"kind":"archive","id":"x"}')" 400
expect "an older report again: 200" "$(report "$N3" "{\"kind\":\"snapshot\",\"id\":\"$LATEST\",\"at\":\"2020-01-01T00:00:00Z\"}")" 200
expect "it changed nothing" "$(snap_downloaded "$LATEST")" "$AT"
expect "one download in the activity log" "$(api_as "$ADMIN_KEY" GET /nodes/cloud3/activity | python3 -c '
import json, sys
print(sum(1 for a in json.load(sys.stdin)["activity"] if a["action"] == "snapshot.downloaded" and sys.argv[1][:8] in a["detail"]))' "$LATEST")" 1
expect "still refused after the refused reports" "$(offboard_code)" DATA_NOT_SAVED
# a report the portal could not take (portal down) is sent when it is back
stop_portal
check "the deployed package downloaded with the portal down" curl -sf -o "$T/pkg.tar.gz" "$PURL"
for i in $(seq 50); do
	[ -n "$(ls "$T/node-cloud3/downloads")" ] && break
	sleep 0.1
done
wait_passes downloads-pass "$NODE_PID_cloud3" 2	# two tries with the portal down
expect "the report waits on the node" "$(ls "$T/node-cloud3/downloads")" "package-notes-1.0.0.json"
start_portal
for i in $(seq 50); do
	[ -z "$(ls "$T/node-cloud3/downloads")" ] && break
	sleep 0.2
done
expect "the node delivered it once the portal was back" "$(ls "$T/node-cloud3/downloads")" ""
expect "offboarding filed once both were downloaded completely" "$(status_as "$ADMIN_KEY" POST /nodes/cloud3/offboarding-requests '{}')" 201

finish
