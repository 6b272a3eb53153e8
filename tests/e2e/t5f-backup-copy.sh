#!/usr/bin/env bash
# t5f: off-node copies of snapshots (issue #16; ARCHITECTURE, "Off-node
# copies"). An admin names a backup target for a node (bad names, the
# node itself, unknown and offboarded nodes refused); every snapshot
# completed there is copied to the target, only the blobs the target
# lacks travelling (the second copy fetches exactly the blobs the first
# snapshot did not have); the target killed -9 mid-copy keeps what it had
# made durable, and once restarted the copy resumes and completes with no
# blob missing for any manifest; `backups list` shows the copy; a broken
# source (an error whose body never ends) fails the copy at once, and a
# copy request the target refuses (its record) changes nothing; deleting a
# snapshot deletes its copy (its blobs swept on the target); the source
# node destroyed (killed, its folder deleted), the snapshot is still
# listed, downloads from the copy as the same bytes, and restores from it
# onto a third node, where psql reads the rows back.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"	# pause_at, reached, unpause
. "$(dirname "$0")/snapstore-lib.sh"	# flip_byte

export NUBO_TEST_PAUSE_FILE=$T/pause
start_portal
start_notes shop nodea "$NOTES_PKG"
start_node nodeb v3
start_node nodec v3

A=$T/node-nodea
B=$T/node-nodeb
EID=$(env_id nodea Test)
FILES=$A/envs/$EID/files
DBURL="postgresql://env_$EID:$(jq_get db_password < "$A/envs/$EID/env.json")@127.0.0.1:$(sed -n 3p "$T/node-nodea.ports")/env_$EID"
sql() { psql -X -At -v ON_ERROR_STOP=1 "$DBURL" -c "$1"; }
put_doc() { # BYTES: a document as the app stores it, the environment's
	local u d
	u=$(python3 -c 'import uuid; print(uuid.uuid4())')
	d=$FILES/${u:0:2}/${u:2:2}
	mkdir -p "$d" && head -c "$1" /dev/urandom > "$d/$u"
	chown --reference="$FILES" "$FILES/${u:0:2}" "$d" "$d/$u"
}
snap() { # COMMENT: take a snapshot, print its id
	"$NUBO" backups create shop Test --comment "$1" >/dev/null &&
		"$NUBO" backups list shop Test --json | jq_get snapshots.0.id
}
# the blobs in a node's store, and those the given manifests name (sorted) (a
# blob's name in either form: raw, or packed with .z)
stored() { (cd "$1/store/blobs" && find . -type f | sed 's|^\./||; s|/||; s|\.z$||' | sort); }
named() { # MANIFEST…
	python3 - "$@" <<'EOF'
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
copy_field() { "$NUBO" backups show shop Test "$1" --json | jq_get "copies.0.$2"; }
# wait_copy SNAPSHOT: until its copy is completed (at most 180 s: a
# failed copy is tried again 20 s later, at the scheduler's next pass)
wait_copy() {
	local i
	for i in $(seq 360); do
		[ "$(copy_field "$1" state)" = completed ] && return 0
		sleep 0.5
	done
	fail "the copy of $1 did not complete: $("$NUBO" backups show shop Test "$1" --json | jq_get copies)"
	return 1
}

# --- the backup target, and what is refused --------------------------------
check_fails "a target for an unknown node" 1 "$NUBO" admin nodes backup-target nowhere nodeb
check_fails "an unknown target" 1 "$NUBO" admin nodes backup-target nodea nowhere
expect_match "says which" "$(cat "$T/last.err")" "no node 'nowhere'"
check_fails "the node itself" 1 "$NUBO" admin nodes backup-target nodea nodea
expect_match "says why" "$(cat "$T/last.err")" "cannot keep the copies of its own snapshots"
check_fails "a bad name" 1 "$NUBO" admin nodes backup-target nodea 'Bad Name!'
expect "API: a bad name is INVALID_NAME" "$(api_as "$ADMIN_KEY" PUT /nodes/nodea/backup-target '{"target":"../x"}' | jq_get error.code)" INVALID_NAME
expect "API: target must be a string" "$(status_as "$ADMIN_KEY" PUT /nodes/nodea/backup-target '{"target":7}')" 400
check_fails "neither a target nor --none" 2 "$NUBO" admin nodes backup-target nodea
check_fails "both" 2 "$NUBO" admin nodes backup-target nodea nodeb --none
USER_KEY=$(make_user someone@t5f.test)
expect "only platform admins" "$(status_as "$USER_KEY" PUT /nodes/nodea/backup-target '{"target":"nodeb"}')" 403
expect "nothing changed" "$(api_as "$ADMIN_KEY" GET /nodes/nodea | jq_get backup_target)" ""
check "an admin names nodeb" "$NUBO" admin nodes backup-target nodea nodeb
expect "the node shows it" "$(api_as "$ADMIN_KEY" GET /nodes/nodea | jq_get backup_target)" nodeb
check "--none clears it" "$NUBO" admin nodes backup-target nodea --none
expect "gone" "$(api_as "$ADMIN_KEY" GET /nodes/nodea | jq_get backup_target)" ""
check "named again" "$NUBO" admin nodes backup-target nodea nodeb

# --- the first copy, with the target killed -9 midway -----------------------
# more files than one batch asks for (512 blobs), so that a batch is
# durable when the target dies and the rest is not
sql "INSERT INTO notes (title, body) SELECT 'note ' || g, repeat(md5(g::text), 9) FROM generate_series(1, 20000) g" >/dev/null
for i in $(seq 600); do put_doc $((RANDOM % 900 + 100)); done
# names that are not UTF-8 travel too (the manifest's %XX form)
odd_names_write "$FILES" "$(jq_get uid < "$A/envs/$EID/env.json")"
pause_at copy-batch
S1=$(snap first)
reached copy-batch || fail "the first copy never paused after a batch"
S1M=$A/snapshots/$S1/manifest.json
NAMED1=$(named "$S1M" | wc -l)
[ -s "$B/copies/$S1/partial.json" ] && pass "the target recorded the blobs it made durable" || fail "no partial.json on the target"
[ ! -e "$B/copies/$S1/manifest.json" ] && pass "no manifest yet" || fail "a manifest before the copy completed"
expect "copying" "$(copy_field "$S1" state)" copying
kill9_node nodeb
unpause
expect "every blob partial.json names is in the store" "$(comm -23 <(named "$B/copies/$S1/partial.json") <(stored "$B") | wc -l)" 0
KEPT=$(named "$B/copies/$S1/partial.json" | wc -l)
expect_match "a batch was kept" "$KEPT" '^[1-9]'
start_node nodeb v3
wait_copy "$S1"
expect "the copy's manifest is the snapshot's" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])))' "$S1M" "$B/copies/$S1/manifest.json")" True
expect "partial.json went" "$(ls "$B/copies/$S1")" "copy.json
manifest.json"
expect "no blob missing on the target" "$(comm -23 <(named "$B/copies/$S1/manifest.json") <(stored "$B") | wc -l)" 0
expect "tried twice" "$(copy_field "$S1" attempts)" 2
expect "the second attempt fetched only what the first had not kept" "$(copy_field "$S1" blobs_fetched)" "$((NAMED1 - KEPT))"

# --- the second copy moves only the new blobs -------------------------------
sql "UPDATE notes SET body = 'changed' WHERE id % 50 = 0" >/dev/null
put_doc 5000
put_doc 7000
BEFORE_B=$(stored "$B")
# held once its manifest is in place, before its figures are recorded:
# the copy is still running (the portal records its figures once done)
pause_at copy-committed
S2=$(snap second)
if reached copy-committed; then
	sleep 1.5	# several of the portal's polls
	expect "a copy whose figures are not yet recorded is still copying" "$(copy_field "$S2" state)" copying
else
	fail "the second copy never reached its end"
fi
unpause
wait_copy "$S2"
S2M=$A/snapshots/$S2/manifest.json
NEW=$(comm -13 <(named "$S1M") <(named "$S2M"))
expect "it fetched exactly the blobs the first snapshot lacks" "$(copy_field "$S2" blobs_fetched)" "$(echo "$NEW" | sed '/^$/d' | wc -l)"
expect_match "a few, not the whole snapshot ($NAMED1 blobs)" "$(copy_field "$S2" blobs_fetched)" '^([1-9]|[1-9][0-9])$'
expect "the target's store grew by those alone" "$(comm -13 <(echo "$BEFORE_B") <(stored "$B"))" "$NEW"
# (their raw sizes: the blobs are stored packed, the size in the header)
expect "bytes fetched: the new blobs' sizes" "$(copy_field "$S2" bytes_fetched)" "$(cd "$B/store/blobs" && for h in $NEW; do python3 -c 'import struct, sys; print(struct.unpack_from("<Q", open(sys.argv[1], "rb").read(16), 8)[0])' "${h:0:2}/${h:2}.z"; done | paste -sd+ | bc)"
# what a copy of a nightly-like snapshot moves, against its full archive
echo "# first copy: $(jq_get copy.bytes_fetched < "$B/copies/$S1/copy.json") bytes in $(jq_get copy.ms < "$B/copies/$S1/copy.json") ms (resumed);" \
	"second: $(copy_field "$S2" bytes_fetched) bytes ($(jq_get copy.wire_bytes < "$B/copies/$S2/copy.json") deflated on the wire) in $(jq_get copy.ms < "$B/copies/$S2/copy.json") ms;" \
	"its full archive: $("$NUBO" backups show shop Test "$S2" --json | jq_get archive_size) bytes," \
	"dump $("$NUBO" backups show shop Test "$S2" --json | jq_get dump_size) bytes"
expect_match "the blobs travel deflated" "$(jq_get copy.wire_bytes < "$B/copies/$S2/copy.json")" '^[1-9][0-9]*$'
expect "as the source stores them (packed, kept as they come)" "$(jq_get copy.wire_form < "$B/copies/$S2/copy.json")" packed
[ "$(jq_get copy.wire_bytes < "$B/copies/$S2/copy.json")" -lt "$(copy_field "$S2" bytes_fetched)" ] && pass "fewer bytes than the blobs hold" || fail "the wire carried as much as the blobs"
expect_match "backups list shows the copies" "$("$NUBO" backups list shop Test)" "COPY.*"
expect "both on nodeb" "$("$NUBO" backups list shop Test | grep -cE "^(${S1:0:8}|${S2:0:8}) .* nodeb ")" 2
expect_match "backups show too" "$("$NUBO" backups show shop Test "$S2")" "copy +nodeb"
# the second snapshot's dump is a delta on the first's (a chain): the
# target makes the chain's download copy once the copy is complete — the
# bytes nodea kept, which a download from the copy then sends
expect "the second snapshot's dump is a delta on the first's" "$(jq '.dump.deltas | length' "$S2M")" 1
D2=$(jq -r .dump.sha256 "$S2M")
for _ in $(seq 300); do
	[ -f "$B/store/chains/$D2" ] && break
	sleep 0.1
done
check "the target made the chain's download copy" cmp "$A/store/chains/$D2" "$B/store/chains/$D2"

# --- the source's routes give a copier nothing else --------------------------
URL=$(api_as "$ADMIN_KEY" POST "/apps/shop/environments/Test/snapshots/$S2/download" '{}' | jq_get url)
H=$(named "$S2M" | sed -n 1p)	# a blob of S2 (sed reads it all: no SIGPIPE)
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
expect "a download's signature does not open the snapshot's blobs" "$(code -X POST -H 'Content-Type: application/json' --data '{"blobs":["'"$H"'"]}' "${URL/\/full\?//blobs?}")" 401
expect "nor its manifest" "$(code "${URL/\/full\?//manifest?}")" 401
expect "copies are the portal's to ask for" "$(code -X POST -H 'Content-Type: application/json' --data '{}' "$NODE_URL_nodeb/agent/v1/copies")" 401
SECRET=$(jq_get portal_secret < "$A/agent.json")
blobs_as_portal() { # SNAPSHOT BODY: the status of the blobs route
	code -X POST -H "Authorization: Bearer $SECRET" -H 'Content-Type: application/json' --data "$2" "$NODE_URL_nodea/agent/v1/snapshots/$1/blobs"
}
expect "a blob the snapshot does not name is refused" "$(blobs_as_portal "$S2" '{"blobs":["'"$(printf '%064d' 0)"'"]}')" 400
expect "a name that is no sha256" "$(blobs_as_portal "$S2" '{"blobs":["../../agent.json"]}')" 400
expect "no blobs" "$(blobs_as_portal "$S2" '{"blobs":[]}')" 400
expect "too many at once" "$(blobs_as_portal "$S2" "{\"blobs\":[$(for i in $(seq 513); do printf '"%064d",' "$i"; done | sed 's/,$//')]}")" 400
expect "an unknown snapshot" "$(blobs_as_portal 00000000-0000-4000-8000-000000000000 '{"blobs":["'"$H"'"]}')" 404
curl -s -X POST -H "Authorization: Bearer $SECRET" -H 'Content-Type: application/json' --data '{"blobs":["'"$H"'"]}' "$NODE_URL_nodea/agent/v1/snapshots/$S2/blobs" -o "$T/blob.out"
expect "a blob it names is served as it is" "$(sha256sum < "$T/blob.out" | cut -c1-64)" "$H"

# --- a hostile or broken source: the target is not held, nothing changes ---
# nodeb's agent asked as the portal would, with URLs of a source made
# here: an error's endless body is read up to a cap (the copy fails at
# once, saying the status and not reading on); a record or request that
# is refused changes nothing of a copy already there
BSECRET=$(jq_get portal_secret < "$B/agent.json")
agent_b() { curl -s -H "Authorization: Bearer $BSECRET" -H 'Content-Type: application/json' "$@"; }
BAD_PORT=$(free_port)
cat > "$T/bad-source.py" <<'EOF'
import http.server, json, sys
MANIFEST = json.dumps({"format": 1, "dump": {"size": 0, "sha256": "0" * 64,
    "chunks": []}, "tree": [{"path": "f", "type": "f", "size": 10,
    "sha256": "ab" * 32}]}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def endless(self):
        # an error whose body never ends
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            self.wfile.write(b'{"error":{"code":"X","message":"')
            while True:
                self.wfile.write(b"x" * 65536)
        except OSError:
            pass
    def do_GET(self):
        if self.path.startswith("/manifest-endless"):
            return self.endless()
        self.send_response(200)
        self.send_header("Content-Length", str(len(MANIFEST)))
        self.end_headers()
        self.wfile.write(MANIFEST)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/blobs-endless"):
            return self.endless()
        body = b'{"error":{"code":"SNAPSHOT_CORRUPT","message":"no such\\nblob"}}'
        self.send_response(409)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
python3 "$T/bad-source.py" "$BAD_PORT" > "$T/bad-source.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$BAD_PORT/manifest" 10
bad_copy() { # ID MANIFEST-PATH BLOBS-PATH: the copy from the bad source ended: its record
	local i
	agent_b -o /dev/null --data "{\"snapshot\":\"$1\",\"manifest_url\":\"http://127.0.0.1:$BAD_PORT/$2\",\"blobs_url\":\"http://127.0.0.1:$BAD_PORT/$3\",\"record\":{}}" "$NODE_URL_nodeb/agent/v1/copies"
	for i in $(seq 300); do
		[ "$(agent_b "$NODE_URL_nodeb/agent/v1/copies/$1" | jq_get state)" != running ] && break
		sleep 0.1
	done
	agent_b "$NODE_URL_nodeb/agent/v1/copies/$1"
}
X1=$(python3 -c 'import uuid; print(uuid.uuid4())')
X2=$(python3 -c 'import uuid; print(uuid.uuid4())')
X3=$(python3 -c 'import uuid; print(uuid.uuid4())')
R=$(bad_copy "$X1" manifest-endless blobs-endless)
expect "a manifest answered by an endless error: the copy failed" "$(jq_get state <<< "$R")" failed
expect_match "  saying the source's status, read no further" "$(jq_get error <<< "$R")" "the manifest from the snapshot's node: it answered HTTP 500$"
R=$(bad_copy "$X2" manifest blobs-endless)
expect "blobs answered by an endless error: the copy failed" "$(jq_get state <<< "$R")" failed
expect_match "  saying the status" "$(jq_get error <<< "$R")" "the snapshot's blobs from the snapshot's node: it answered HTTP 500$"
R=$(bad_copy "$X3" manifest blobs)
expect_match "an error's message is the source's, on one line" "$(jq_get error <<< "$R")" "it answered HTTP 409: no such blob$"
for x in "$X1" "$X2" "$X3"; do
	expect "  the failed copy deletes" "$(agent_b -o /dev/null -w '%{http_code}' -X DELETE "$NODE_URL_nodeb/agent/v1/copies/$x")" 204
done
# a completed copy whose blob is gone (as fsck would move a damaged one
# aside) is fetched again when asked — but not by a request refused
H=$(named "$B/copies/$S2/manifest.json" | sed -n 1p)
HB=$(ls "$B/store/blobs/${H:0:2}/${H:2}"*)
mv "$HB" "$T/blob-aside"
copy_files() { (cd "$B/copies/$S2" && for f in *; do printf '%s %s\n' "$f" "$(sha256sum < "$f")"; done); }
BEFORE=$(copy_files)
post_s2() { agent_b -o "$T/post.out" -w '%{http_code}' --data "{\"snapshot\":\"$S2\",\"manifest_url\":\"http://127.0.0.1:$BAD_PORT/manifest\",\"blobs_url\":\"http://127.0.0.1:$BAD_PORT/blobs\",\"record\":$1}" "$NODE_URL_nodeb/agent/v1/copies"; }
expect "a record with a negative size is refused" "$(post_s2 '{"dump_size":-1}')" 400
expect "  and changes nothing of the copy" "$(copy_files)" "$BEFORE"
expect "a size past the bound" "$(post_s2 '{"archive_size":1125899906842625}')" 400
expect_match "  says the bound" "$(jq_get error.message < "$T/post.out")" "'record.archive_size' must be a number from 0 to 1125899906842624"
expect "an unknown field in the record" "$(post_s2 '{"owner":"x"}')" 400
expect_match "  named" "$(jq_get error.message < "$T/post.out")" "record: unknown field 'owner'"
expect "a type that is not a string" "$(post_s2 '{"type":7}')" 400
expect "a model version that is not a string" "$(post_s2 '{"model_version":[]}')" 400
expect "  nothing of the copy changed" "$(copy_files)" "$BEFORE"
[ -e "$B/copies/$S2/manifest.json" ] && [ ! -e "$B/copies/$S2/partial.json" ] && pass "  its manifest is in place" || fail "a refused request moved the copy's manifest"
mv "$T/blob-aside" "$HB"
expect "with the blob back, asked again: completed as it is" "$(post_s2 '{}')" 200
expect "  nothing changed" "$(copy_files)" "$BEFORE"

# --- deleting a snapshot deletes its copy ------------------------------------
N=$(passes store-sweep "$NODE_PID_nodeb")
check "delete the first snapshot" "$NUBO" backups delete shop Test "$S1"
wait_passes store-sweep "$NODE_PID_nodeb" 1 "$N"
[ ! -e "$B/copies/$S1" ] && pass "its copy is gone from the target" || fail "the copy of $S1 is still on the target"
expect "the target's store holds what its copies left name" "$(stored "$B")" "$(named "$B/copies/$S2/manifest.json")"

# --- a target that is down: the copy fails, and is tried again -------------
stop_node nodeb
S4=$(snap "target down")
for i in $(seq 120); do
	[ "$(copy_field "$S4" state)" = failed ] && break
	sleep 0.5
done
expect "the copy failed" "$(copy_field "$S4" state)" failed
expect_match "saying why" "$(copy_field "$S4" error)" "cannot reach the node"
start_node nodeb v3
wait_copy "$S4"
expect_match "once the target is back, it is tried again and completes" "$(copy_field "$S4" attempts)" '^[2-9]'
expect "no blob missing on the target" "$(comm -23 <(named "$B"/copies/*/manifest.json) <(stored "$B") | wc -l)" 0
check "delete it" "$NUBO" backups delete shop Test "$S4"

# --- a damaged blob of a copy: fsck names the copy, the portal has it
# copied again ---------------------------------------------------------------
# a file only the second snapshot has (one of the documents added for it)
read -r VH VPATH < <(python3 - "$B/copies/$S2/manifest.json" "$NEW" <<'EOF'
import json, sys
new = set(sys.argv[2].split())
for e in json.load(open(sys.argv[1]))["tree"]:
    if e["type"] == "f" and e["sha256"] in new:
        print(e["sha256"], e["path"])
        break
EOF
)
# random bytes: stored blocks, byte 39 is past the packed header and
# the block's own
flip_byte "$B/store/blobs/${VH:0:2}/${VH:2}.z" 39
check_fails "fsck of the target finds it" 1 "$NUBOD" node fsck --data "$B"
expect_match "and names the copy and the file" "$(cat "$T/last.out")" "the copy of snapshot $S2: tree/$VPATH"
[ -f "$B/store/quarantine/$VH" ] && pass "the blob is quarantined" || fail "the damaged blob is not in quarantine"
# the node's own check reports it to the portal, which has it copied
# again at once
ATTEMPTS=$(copy_field "$S2" attempts)
stop_node nodeb
NUBO_STORE_FSCK_EVERY=2 start_node nodeb v3
wait_passes store-fsck-reported "$NODE_PID_nodeb" 1 0
expect_match "the app's activity says the copy cannot be used" "$("$NUBO" apps activity shop --json | jq -r '.[] | select(.action == "snapshot.damaged") | .detail' | head -1)" "the copy of snapshot ${S2:0:8} on node 'nodeb' cannot be used: .*tree/$VPATH.*it is copied again"
wait_copy "$S2"
expect "copied again" "$(copy_field "$S2" attempts)" "$((ATTEMPTS + 1))"
expect "fetching only what it lost" "$(copy_field "$S2" blobs_fetched)" 1
# (the weekly check back to its week: two checks at once are refused)
stop_node nodeb
start_node nodeb v3
check "fsck of the target: whole again" "$NUBOD" node fsck --data "$B"
expect "no blob missing on the target" "$(comm -23 <(named "$B"/copies/*/manifest.json) <(stored "$B") | wc -l)" 0

# --- retention deletes the copy too -------------------------------------------
S3=$(snap "to expire")
wait_copy "$S3"
[ -s "$B/copies/$S3/manifest.json" ] && pass "the third snapshot is copied" || fail "no copy of $S3"
N=$(passes store-sweep "$NODE_PID_nodeb")
sqlite3 -cmd '.timeout 10000' "$T/portal/portal.db" "UPDATE snapshots SET expires_at = '2000-01-01T00:00:00Z' WHERE uuid = '$S3'"
for i in $(seq 120); do
	"$NUBO" backups show shop Test "$S3" >/dev/null 2>&1 || break
	sleep 0.5
done
check_fails "the expired snapshot is deleted" 1 "$NUBO" backups show shop Test "$S3"
[ ! -e "$A/snapshots/$S3" ] && pass "on its node" || fail "$S3 is still on its node"
[ ! -e "$B/copies/$S3" ] && pass "and its copy on the target" || fail "the copy of $S3 is still on the target"
wait_passes store-sweep "$NODE_PID_nodeb" 1 "$N"
expect "the target's store again holds what its copies name" "$(stored "$B")" "$(named "$B/copies/$S2/manifest.json")"

# --- the source node destroyed ------------------------------------------------
cd "$T"
check "download the second snapshot from its node" "$NUBO" backups download shop Test "$S2" --output a.tar.gz
check "its database" "$NUBO" backups download shop Test "$S2" --kind database --output a.backup
ROWS=$(sql "SELECT count(*) FROM notes")
NOTESUM=$(sql "SELECT md5(string_agg(id || title || body, ',' ORDER BY id)) FROM notes")
kill9_node nodea
"$NUBOD" node stop-all --data "$A" >/dev/null 2>&1 || true
rm -rf "$A"
[ ! -e "$A" ] && pass "node A's folder is gone" || fail "node A's folder is still there"
expect_match "the snapshot is still listed, with its copy" "$("$NUBO" backups list shop Test)" "^${S2:0:8} .* nodeb "
check "it downloads" "$NUBO" backups download shop Test "$S2" --output b.tar.gz
check "from the copy: the same bytes" cmp a.tar.gz b.tar.gz
check "its database download too" "$NUBO" backups download shop Test "$S2" --kind database --output b.backup
check "the same dump" cmp a.backup b.backup
check "pg_restore reads it" pg_restore --list b.backup
expect_match "plain tar lists it" "$(tar tzf b.tar.gz | sort | tr '\n' ' ')" '^\.metadata \.nubo/ \.nubo/checksums db/ db/db\.backup tree/'
check "the app's node offboarded (forced: its data is gone)" "$NUBO" nodes offboard nodea --force --reason "its disk died"
REQ=$("$NUBO" admin offboarding list --json | jq_get offboarding_requests.0.id)
check "approved" "$NUBO" admin offboarding approve "$REQ"
check_fails "an offboarded node is no backup target" 1 "$NUBO" admin nodes backup-target nodeb nodea
expect_match "says why" "$(cat "$T/last.err")" "node 'nodea' is offboarded"
check "the app linked to nodec" "$NUBO" nodes link nodec shop
check "the snapshot restores onto nodec, from the copy" "$NUBO" backups restore shop Test "$S2"
CID=$(env_id nodec Test)
CURL="postgresql://env_$CID:$(jq_get db_password < "$T/node-nodec/envs/$CID/env.json")@127.0.0.1:$(sed -n 3p "$T/node-nodec.ports")/env_$CID"
expect "psql reads the rows back" "$(psql -X -At "$CURL" -c "SELECT count(*) FROM notes")" "$ROWS"
expect "the same rows" "$(psql -X -At "$CURL" -c "SELECT md5(string_agg(id || title || body, ',' ORDER BY id)) FROM notes")" "$NOTESUM"
mkdir plain && tar xzf b.tar.gz -C plain
check "and the files" diff -r plain/tree "$T/node-nodec/envs/$CID/files"
expect "files of any name among them" "$(odd_names_check "$T/node-nodec/envs/$CID/files")" ""
# onto the node that keeps the copy: it reads its own copy, fetching
# nothing (its agent asked as the portal would, into its idle Test)
BID=$(env_id nodeb Test)
RID=$(python3 -c 'import uuid; print(uuid.uuid4())')
expect "the copy's node restores from its copy" "$(agent_b -o /dev/null -w '%{http_code}' --data "{\"restore\":\"$RID\",\"snapshot\":\"$S2\"}" "$NODE_URL_nodeb/agent/v1/environments/$BID/restores")" 202
for i in $(seq 240); do
	[ "$(agent_b "$NODE_URL_nodeb/agent/v1/restores/$RID" | jq_get state)" != running ] && break
	sleep 0.5
done
expect "completed" "$(agent_b "$NODE_URL_nodeb/agent/v1/restores/$RID" | jq_get state)" completed
BURL="postgresql://env_$BID:$(jq_get db_password < "$B/envs/$BID/env.json")@127.0.0.1:$(sed -n 3p "$T/node-nodeb.ports")/env_$BID"
expect "the same rows there" "$(psql -X -At "$BURL" -c "SELECT md5(string_agg(id || title || body, ',' ORDER BY id)) FROM notes")" "$NOTESUM"
check "and the same files" diff -r plain/tree "$B/envs/$BID/files"
cd - >/dev/null

# --- an environment deleted: its snapshots go, and their copies -----------
NODE_CREATE_ARGS=--sandbox start_node sbx v4
check "the sandbox node's backup target: nodeb" "$NUBO" admin nodes backup-target sbx nodeb
tar czf "$T/pyapp-1.0.0.tar.gz" -C "$NUBO_SRC/tests/e2e/apps/pyapp" .
# sandbox_copied APP: a free app with a sandbox running pyapp, a snapshot
# of it and that snapshot's copy on nodeb; sets SB to the snapshot's id
sandbox_copied() {
	check "a free app with a sandbox ($1)" "$NUBO" apps create "$1"
	check "  a package in its repository" "$NUBO" packages upload --app "$1" "$T/pyapp-1.0.0.tar.gz"
	check "  transported to its sandbox" "$NUBO" envs transport "$1" Sandbox pyapp-1.0.0
	check "  started" "$NUBO" envs start "$1" Sandbox
	check "  a snapshot of its sandbox" "$NUBO" backups create "$1" Sandbox
	SB=$("$NUBO" backups list "$1" Sandbox --json | jq_get snapshots.0.id)
	for _ in $(seq 360); do
		[ "$("$NUBO" backups show "$1" Sandbox "$SB" --json | jq_get copies.0.state)" = completed ] && break
		sleep 0.5
	done
	if [ -s "$B/copies/$SB/manifest.json" ]; then pass "  its copy is on nodeb"
	else fail "no copy of $SB on nodeb: $("$NUBO" backups show "$1" Sandbox "$SB" --json | jq_get copies)"; finish; exit 1; fi
}
sandbox_copied trial
check "delete the app with its sandbox" "$NUBO" apps delete trial --yes
[ ! -e "$T/node-sbx/snapshots/$SB" ] && pass "its snapshot is gone from the sandbox node" || fail "snapshot $SB is still on the sandbox node"
[ ! -e "$B/copies/$SB" ] && pass "and its copy from nodeb" || fail "the copy of $SB is still on nodeb"

# --- a copy whose node is down then goes once it is back ---------------------
sandbox_copied trial2
SB2=$SB
stop_node nodeb
check "delete the app while nodeb is down" "$NUBO" apps delete trial2 --yes
[ -s "$B/copies/$SB2/manifest.json" ] && pass "  the copy stays on nodeb meanwhile" || fail "the copy of $SB2 went from a stopped node"
expect_match "  the portal says it deletes it later" "$(grep "the copy of snapshot $SB2 is deleted later" "$T/portal.log")" "deleted later"
expect "  nodes show counts it" "$("$NUBO" nodes show nodeb --json | jq -c '.copy_deletions.pending')" 1
expect_match "  and says why" "$("$NUBO" nodes show nodeb)" "^copies to delete +1 copy of deleted environments' snapshots, tried again until the node deletes them; last: .+"
start_node nodeb v3
# tried again 20 s after, on a scheduler pass (every 15 s)
for i in $(seq 120); do
	[ -e "$B/copies/$SB2" ] || break
	sleep 0.5
done
[ ! -e "$B/copies/$SB2" ] && pass "  once nodeb is back, the copy goes" || fail "the copy of $SB2 is still on nodeb"
expect_match "  and the portal says so" "$(grep "the copy of snapshot $SB2 is deleted from node" "$T/portal.log")" "deleted from node"
expect "  nodes show has none left" "$("$NUBO" nodes show nodeb --json | jq -c '.copy_deletions')" null

finish
