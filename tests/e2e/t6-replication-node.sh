#!/usr/bin/env bash
# t6-replication-node: the nodes' part of a migration by logical
# replication (issue 14), through the agent API of two real nodes on
# loopback: both clusters run with wal_level = logical; bad input is
# refused with nothing made; the v3 node publishes an environment's
# database (role, publication, slot, pg_hba rule admitting the role from
# the target's address alone) and the v4 node subscribes into an
# environment holding the same schema; inserts, updates and deletes on
# the source (also on a table without a primary key) reach the target,
# compared with psql; the lag is reported; sequences are copied; the
# checksums' modes the cutover reads (writes, counts with some tables read
# whole) answer, and queries they cannot read are refused; deleting
# both sides leaves no slot, publication, subscription, role or rule.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"

start_portal
start_node v3 v3
start_node v4 v4

# login NODE ROLE PASSWORD DB: "ok" when ROLE logs into DB over TCP from
# 127.0.0.1, else PostgreSQL's reason
login() {
	local pg out
	pg=$(sed -n 3p "$T/node-$1.ports")
	if out=$(PGPASSWORD=$3 psql -X -A -t -q -h 127.0.0.1 -p "$pg" -U "$2" "$4" -c 'SELECT 1' 2>&1); then
		echo ok
	else
		echo "$out" | tail -n 1
	fi
}
# digest NODE ENV: per table (notes, attachments, nopk) its rows and the
# md5 of them in order, read with psql
digest() {
	local t
	for t in notes attachments nopk; do
		env_sql "$1" "$2" "SELECT '$t', count(*), md5(COALESCE(string_agg(t::text, '|' ORDER BY t::text), '')) FROM $t t"
	done | tr '\n' ' '
}
# converges WHAT: the target's digest becomes the source's within 60 s
converges() {
	local want got i
	want=$(digest v3 Production)
	for i in $(seq 120); do
		got=$(digest v4 Production)
		[ "$got" = "$want" ] && break
		sleep 0.5
	done
	expect "$1" "$got" "$want"
}

for n in v3 v4; do
	expect "$n: the node's PostgreSQL runs with wal_level = logical" \
		"$(db_sql $n postgres "SELECT current_setting('wal_level') || ' ' || current_setting('max_replication_slots') || ' ' || current_setting('max_wal_senders')")" "logical 32 32"
done

# the source: the sample app with notes, a table without a primary key,
# an unlogged table and a sequence
"$NUBO" apps create notes --no-sandbox >/dev/null
"$NUBO" nodes link v3 notes >/dev/null
deploy v3 notes Production
add_notes v3 notes-production 5 1
env_sql v3 Production "CREATE TABLE nopk (a int, b text);
	INSERT INTO nopk SELECT g, 'row ' || g FROM generate_series(1, 50) g;
	CREATE UNLOGGED TABLE scratch (x int);
	CREATE SEQUENCE counter; SELECT nextval('counter'), nextval('counter'), nextval('counter')" >/dev/null
SID=$(env_id v3 Production)
# the target: an environment of another app on v4, stopped, holding the
# source's schema and no rows (the migration's first copy would restore it)
"$NUBO" apps create copy --no-sandbox >/dev/null
"$NUBO" nodes link v4 copy >/dev/null
deploy v4 copy Production
"$NUBO" envs stop copy Production >/dev/null
TID=$(env_id v4 Production)
env_sql v4 Production "DROP TABLE notes, attachments, events CASCADE" >/dev/null
PGPASSWORD=$(jq_get password < "$T/node-v3/pg/admin.json") pg_dump --schema-only --no-owner --no-privileges \
	-h 127.0.0.1 -p "$(sed -n 3p "$T/node-v3.ports")" -U nubo_admin "env_$SID" > "$T/schema.sql"
PGPASSWORD=$(jq_get db_password < "$T/node-v4/envs/$TID/env.json") psql -X -q -v ON_ERROR_STOP=1 \
	-h 127.0.0.1 -p "$(sed -n 3p "$T/node-v4.ports")" -U "env_$TID" "env_$TID" -f "$T/schema.sql" >/dev/null
expect "the target has the source's tables, empty" \
	"$(env_sql v4 Production "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace") $(env_sql v4 Production "SELECT count(*) FROM notes")" \
	"attachments,events,nopk,notes,scratch 0"

KEY=$(python3 -c 'import uuid; print(uuid.uuid4())')
HBA3=$(sha256sum < "$T/node-v3/pg/data/pg_hba.conf")

# bad input: 4xx, and nothing made
for bad in '"BAD"' '"a_b"' '"-ab"' '"ab-"' '""' "\"$(printf 'k%.0s' $(seq 37))\"" '"ab;drop"' 5; do
	expect "migration key $bad refused" \
		"$(agent v3 POST "/environments/$SID/replication" "{\"migration\":$bad,\"target_address\":\"127.0.0.1\"}")" 400
done
expect "a bad key is named" "$(answer error.code)" BAD_REQUEST
agent v3 POST "/environments/$SID/replication" '{"migration":"BAD","target_address":"127.0.0.1"}' >/dev/null
expect "a bad key's code" "$(answer error.code)" BAD_MIGRATION_KEY
for bad in localhost 127.0.0.1/32 1.2.3 0.0.0.0 127.0.0.1:5432 255.255.255.255 224.0.0.1 :: 'fe80::1%eth0' ' 127.0.0.1' ''; do
	expect "target address '$bad' refused" \
		"$(agent v3 POST "/environments/$SID/replication" "{\"migration\":\"$KEY\",\"target_address\":\"$bad\"}")/$(answer error.code)" 400/BAD_ADDRESS
done
expect "another host: refused (this node's agent has no TLS on an address of its own)" \
	"$(agent v3 POST "/environments/$SID/replication" "{\"migration\":\"$KEY\",\"target_address\":\"10.1.2.3\"}")/$(answer error.code)" 409/REPLICATION_NEEDS_TLS
expect_match "  and says why" "$(answer error.message)" "to 10\.1\.2\.3, another host: replication there needs TLS, and this node has none: its agent serves no HTTPS on an address of its own"
expect "an unknown environment" \
	"$(agent v3 POST /environments/999999/replication "{\"migration\":\"$KEY\",\"target_address\":\"127.0.0.1\"}")/$(answer error.code)" 404/ENVIRONMENT_NOT_FOUND
expect "an unknown field" \
	"$(agent v3 POST "/environments/$SID/replication" "{\"migration\":\"$KEY\",\"target_address\":\"127.0.0.1\",\"superuser\":true}")" 400
expect "a missing field" "$(agent v3 POST "/environments/$SID/replication" "{\"migration\":\"$KEY\"}")" 400
expect "not JSON" "$(agent v3 POST "/environments/$SID/replication" '{"migration":')/$(answer error.code)" 400/BAD_JSON
expect "a delete without its key" "$(agent v3 DELETE "/environments/$SID/replication")/$(answer error.code)" 400/BAD_MIGRATION_KEY
expect "a delete with a bad key" "$(agent v4 DELETE "/environments/$TID/subscription?migration=x_y")/$(answer error.code)" 400/BAD_MIGRATION_KEY
expect "no replication yet" "$(agent v3 GET "/environments/$SID/replication?migration=$KEY")/$(answer error.code)" 404/REPLICATION_NOT_FOUND
SUB_OK="\"migration\":\"$KEY\",\"port\":$(sed -n 3p "$T/node-v3.ports"),\"password\":\"0123456789abcdef0123\""
for bad in "\"host\":\"db.example\",\"database\":\"env_$SID\",\"role\":\"nubo_repl_${SID}_${KEY//-/_}\",\"slot\":\"nubo_slot_${SID}_${KEY//-/_}\",\"publication\":\"nubo_pub_${KEY//-/_}\"" \
	"\"host\":\"127.0.0.1\",\"database\":\"postgres\",\"role\":\"nubo_repl_${SID}_${KEY//-/_}\",\"slot\":\"nubo_slot_${SID}_${KEY//-/_}\",\"publication\":\"nubo_pub_${KEY//-/_}\"" \
	"\"host\":\"127.0.0.1\",\"database\":\"env_$SID\",\"role\":\"nubo_admin\",\"slot\":\"nubo_slot_${SID}_${KEY//-/_}\",\"publication\":\"nubo_pub_${KEY//-/_}\"" \
	"\"host\":\"127.0.0.1\",\"database\":\"env_$SID\",\"role\":\"nubo_repl_${SID}_${KEY//-/_}\",\"slot\":\"x' user=nubo_admin\",\"publication\":\"nubo_pub_${KEY//-/_}\""; do
	expect "a subscription to a bad connection refused: ${bad:0:40}…" \
		"$(agent v4 POST "/environments/$TID/subscription" "{$SUB_OK,$bad}")" 400
done
expect "a password with quotes refused" \
	"$(agent v4 POST "/environments/$TID/subscription" "{\"migration\":\"$KEY\",\"port\":5432,\"password\":\"x' host=evil\",\"host\":\"127.0.0.1\",\"database\":\"env_$SID\",\"role\":\"nubo_repl_${SID}_${KEY//-/_}\",\"slot\":\"nubo_slot_${SID}_${KEY//-/_}\",\"publication\":\"nubo_pub_${KEY//-/_}\"}")/$(answer error.code)" 400/BAD_CONNECTION
# a source on another host: its PostgreSQL's certificate must come with it
SUB_FAR="$SUB_OK,\"host\":\"198.18.0.7\",\"database\":\"env_$SID\",\"role\":\"nubo_repl_${SID}_${KEY//-/_}\",\"slot\":\"nubo_slot_${SID}_${KEY//-/_}\",\"publication\":\"nubo_pub_${KEY//-/_}\""
for cert in '' ',"ssl_root_cert":"not a certificate"' ',"ssl_root_cert":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"'; do
	expect "another host's source, certificate '${cert:17:20}': refused" \
		"$(agent v4 POST "/environments/$TID/subscription" "{$SUB_FAR$cert}")/$(answer error.code)" 400/BAD_CONNECTION
done
expect_match "  and says why" "$(answer error.message)" "a source on another host \(198\.18\.0\.7\) must give the certificate its PostgreSQL presents"
expect "sequences: a bad item refused" \
	"$(agent v4 POST "/environments/$TID/subscription/sequences" '{"sequences":[{"schema":"public","name":"counter","last_value":"9"}]}')" 400
expect "sequences: a missing one refuses them all" \
	"$(agent v4 POST "/environments/$TID/subscription/sequences" '{"sequences":[{"schema":"public","name":"counter","last_value":77,"is_called":true},{"schema":"public","name":"nope","last_value":1,"is_called":true}]}')/$(answer error.code)" 409/SEQUENCE_NOT_FOUND
expect "…and set none" "$(env_sql v4 Production "SELECT last_value, is_called FROM counter")" "1|f"
expect "bad input made nothing on the source" "$(leftovers v3 "env_$SID")" "$NOTHING"
expect "bad input made nothing on the target" "$(leftovers v4 "env_$TID")" "$NOTHING"
expect "the source's pg_hba.conf is unchanged" "$(sha256sum < "$T/node-v3/pg/data/pg_hba.conf")" "$HBA3"

# the source publishes
expect "the source replicates" "$(agent v3 POST "/environments/$SID/replication" "{\"migration\":\"$KEY\",\"target_address\":\"127.0.0.1\"}")" 201
cp "$T/agent.json" "$T/conn.json"
ROLE=$(answer role)
PW=$(answer password)
expect "the connection the target needs" \
	"$(answer host) $(answer port) $(answer database) $ROLE $(answer publication) $(answer slot)" \
	"127.0.0.1 $(sed -n 3p "$T/node-v3.ports") env_$SID nubo_repl_${SID}_${KEY//-/_} nubo_pub_${KEY//-/_} nubo_slot_${SID}_${KEY//-/_}"
expect "the table without a primary key replicates whole rows" "$(answer replica_identity_full)" '["nopk"]'
expect "the unlogged table is named" "$(answer unlogged_tables)" '["scratch"]'
expect "nopk: REPLICA IDENTITY FULL" "$(env_sql v3 Production "SELECT relreplident FROM pg_class WHERE relname = 'nopk'")" f
expect "asked again: the same, 200" "$(agent v3 POST "/environments/$SID/replication" "{\"migration\":\"$KEY\",\"target_address\":\"127.0.0.1\"}")/$(answer password)/$(answer replica_identity_full)" "200/$PW/[\"nopk\"]"
expect "another target for the same migration: refused" \
	"$(agent v3 POST "/environments/$SID/replication" "{\"migration\":\"$KEY\",\"target_address\":\"127.0.0.2\"}")/$(answer error.code)" 409/REPLICATION_EXISTS
expect "one slot, one publication, one role, one rule, one record" "$(leftovers v3 "env_$SID")" \
	"slots=1 publications=1 subscriptions=0 roles=1 rules=1 records=1"
expect_match "the rule admits the role into its database from the target alone" \
	"$(grep nubo_repl "$T/node-v3/pg/data/pg_hba.conf")" "^host +env_$SID +$ROLE +127\.0\.0\.1/32 +scram-sha-256$"
expect "the role logs into its database" "$(login v3 "$ROLE" "$PW" "env_$SID")" ok
expect_match "…and no other" "$(login v3 "$ROLE" "$PW" postgres)" "rejects connection"
expect_match "…not with another password" "$(login v3 "$ROLE" wrongpassword123 "env_$SID")" "password authentication failed"
# a replication to another address: its role cannot log in from here
KEY2=$(python3 -c 'import uuid; print(uuid.uuid4())')
expect "a second migration, to 127.0.0.2" "$(agent v3 POST "/environments/$SID/replication" "{\"migration\":\"$KEY2\",\"target_address\":\"127.0.0.2\"}")" 201
expect_match "its role is refused from 127.0.0.1" "$(login v3 "$(answer role)" "$(answer password)" "env_$SID")" "rejects connection"
expect "two replications listed" "$(agent v3 GET "/environments/$SID/replication")/$(jq_get replications < "$T/agent.json" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 200/2
expect "the second one deleted" "$(agent v3 DELETE "/environments/$SID/replication?migration=$KEY2")/$(answer deleted)" 200/true

# the target subscribes
expect "a subscription into a database with rows: refused" \
	"$(env_sql v4 Production "INSERT INTO nopk VALUES (0, 'stray')"; agent v4 POST "/environments/$TID/subscription" "$(cat "$T/conn.json")")/$(answer error.code)" 409/TARGET_NOT_EMPTY
env_sql v4 Production "DELETE FROM nopk" >/dev/null
expect "the target subscribes" "$(agent v4 POST "/environments/$TID/subscription" "$(cat "$T/conn.json")")" 201
expect "asked again: 200" "$(agent v4 POST "/environments/$TID/subscription" "$(cat "$T/conn.json")")" 200
converges "the first copy: the target has the source's rows"
add_notes v3 notes-production 3 1
env_sql v3 Production "UPDATE nopk SET b = b || ' changed' WHERE a % 3 = 0;
	DELETE FROM nopk WHERE a > 45; INSERT INTO nopk VALUES (100, 'new'), (100, 'new');
	UPDATE nopk SET b = 'one of two' WHERE ctid = (SELECT min(ctid) FROM nopk WHERE a = 100);
	UPDATE notes SET title = 'edited' WHERE id = 1; DELETE FROM attachments; DELETE FROM notes WHERE id = 2" >/dev/null
LSN=$(db_sql v3 postgres "SELECT pg_current_wal_lsn()")
converges "inserts, updates and deletes follow (also on the table without a primary key)"
expect "two equal rows of nopk stay two" "$(env_sql v4 Production "SELECT count(*) FROM nopk WHERE a = 100")" 2

# the lag
for i in $(seq 60); do
	agent v3 GET "/environments/$SID/replication?migration=$KEY" >/dev/null
	[ "$(db_sql v3 postgres "SELECT pg_wal_lsn_diff('$(answer confirmed_flush_lsn)', '$LSN') >= 0")" = t ] && break
	sleep 0.5
done
expect "the slot confirmed the writes" "$(db_sql v3 postgres "SELECT pg_wal_lsn_diff('$(answer confirmed_flush_lsn)', '$LSN') >= 0")" t
expect "the slot is active, lag and retained WAL are bytes" \
	"$(answer active) $(answer slot_exists) $(answer state) $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(all(isinstance(d[k], int) and d[k] >= 0 for k in ("lag_bytes","retained_wal_bytes")), d["lag_bytes"] == max(0, int(d["lag_bytes"])))' "$T/agent.json")" \
	"true true ready True True"
expect "lag_bytes is the distance of confirmed_flush_lsn to the current WAL" \
	"$(db_sql v3 postgres "SELECT pg_wal_lsn_diff('$(answer current_wal_lsn)', '$(answer confirmed_flush_lsn)')")" "$(answer lag_bytes)"
expect "the subscription streams, every table ready" \
	"$(agent v4 GET "/environments/$TID/subscription?migration=$KEY")/$(answer state)/$(python3 -c 'import json,sys; print(sorted({t["state"] for t in json.load(open(sys.argv[1]))["tables"]}))' "$T/agent.json")" \
	"200/streaming/['ready']"
expect_match "it reports the received LSN" "$(answer received_lsn)" '^[0-9A-F]+/[0-9A-F]+$'

# sequences
env_sql v3 Production "SELECT setval('counter', 41)" >/dev/null
expect "the source's sequences" "$(agent v3 GET "/environments/$SID/replication/sequences")" 200
expect_match "…with their last values" "$(cat "$T/agent.json")" '"name": ?"counter"'
expect "set on the target" "$(agent v4 POST "/environments/$TID/subscription/sequences" "$(cat "$T/agent.json")")/$(answer sequences_set)" \
	"200/$(env_sql v3 Production "SELECT count(*) FROM pg_sequences")"
for s in counter notes_id_seq; do
	expect "sequence $s as on the source" "$(env_sql v4 Production "SELECT last_value, is_called FROM $s")" \
		"$(env_sql v3 Production "SELECT last_value, is_called FROM $s")"
done

# the cutover's change slot (changes.c) holds WAL from its mark until its
# verify passes: the replication's report shows it beside the slot
expect "the report has no change slot before a mark" "$(agent v3 GET "/environments/$SID/replication?migration=$KEY")/$(answer change_slot)" 200/
expect "a mark for the migration" "$(agent v3 POST "/environments/$SID/changes?migration=$KEY" '{}')/$(answer created)" 200/true
env_sql v3 Production "UPDATE notes SET title = title || '.' WHERE id = (SELECT min(id) FROM notes)" >/dev/null
agent v3 GET "/environments/$SID/replication?migration=$KEY" >/dev/null
HELD=$(answer change_slot.retained_wal_bytes)
expect "…then the report names the change slot" "$(answer change_slot.slot)" "nubo_chg_${SID}_${KEY//-/_}"
expect_match "…and the WAL it holds, in bytes" "$HELD" '^[0-9]+$'
expect "…as psql reads it (at most what the WAL moved since)" "$(db_sql v3 postgres "SELECT $HELD > 0 AND $HELD <= pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots WHERE slot_name = 'nubo_chg_${SID}_${KEY//-/_}'")" t
expect "the change slot dropped" "$(agent v3 DELETE "/environments/$SID/changes?migration=$KEY")/$(answer deleted)" 200/true
expect "…and the report has none" "$(agent v3 GET "/environments/$SID/replication?migration=$KEY")/$(answer change_slot)" 200/

# both sides dropped
expect "the subscription dropped" "$(agent v4 DELETE "/environments/$TID/subscription?migration=$KEY")/$(answer deleted)" 200/true
expect "…again: nothing to drop" "$(agent v4 DELETE "/environments/$TID/subscription?migration=$KEY")/$(answer deleted)" 200/false
expect "the slot is the source's: still there" "$(db_sql v3 postgres "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'nubo_slot_${SID}_${KEY//-/_}'")" 1
expect "the replication dropped" "$(agent v3 DELETE "/environments/$SID/replication?migration=$KEY")/$(answer deleted)" 200/true
expect "…again: nothing to drop" "$(agent v3 DELETE "/environments/$SID/replication?migration=$KEY")/$(answer deleted)" 200/false
expect "nothing left on the source" "$(leftovers v3 "env_$SID")" "$NOTHING"
expect "nothing left on the target" "$(leftovers v4 "env_$TID")" "$NOTHING"
expect "the role cannot log in" "$(login v3 "$ROLE" "$PW" "env_$SID" | grep -c 'password authentication failed\|rejects connection')" 1
expect "the source's pg_hba.conf is as before" "$(sha256sum < "$T/node-v3/pg/data/pg_hba.conf")" "$HBA3"
expect "the target keeps the data" "$(digest v4 Production)" "$(digest v3 Production)"
expect "the source's app still serves" "$(route_status v3 notes-production.nubo.localhost /api/notes)" 200

# environments deleted while they replicate: the slot and the
# subscription would keep DROP DATABASE from working; they go with them
KEY3=$(python3 -c 'import uuid; print(uuid.uuid4())')
# the checksums the cutover's verification reads: each table's writes
# alone, or row counts with only the named tables read whole; a query it
# cannot read is refused
sums() {	# sums QUERY: status, then per table name:rows:checksum:writes
	local st
	st=$(agent v3 GET "/environments/$SID/checksums?files=0&$1")
	echo "$st $(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join("%s:%s:%s:%s" % (t["name"], t.get("rows", "-"), t.get("checksum") or "-", "w" if isinstance(t.get("writes"), int) else "-")
    for t in d.get("tables", []) if t["name"] in ("public.notes", "public.nopk")))' "$T/agent.json" 2>/dev/null)"
}
expect_match "checksums?database=writes: each table's writes, no row read" "$(sums database=writes)" \
	"^200 public.nopk:-:-:w public.notes:-:-:w$|^200 public.notes:-:-:w public.nopk:-:-:w$"
out=$(sums 'database=counts&full=%5B%22public.notes%22%5D')
expect_match "checksums?database=counts&full=[notes]: notes read whole (a hash of each row's values)" "$out" "public.notes:[0-9]+:h-?[0-9]+:w"
expect_match "  …the other tables counted only" "$out" "public.nopk:[0-9]+:-:w"
# a column type without a hash function: md5 of the rows' text instead
env_sql v3 Production "CREATE TABLE jtab (k int PRIMARY KEY, j json); INSERT INTO jtab VALUES (1, '{\"a\": 1}')" >/dev/null
agent v3 GET "/environments/$SID/checksums?files=0&database=counts&full=%5B%22public.jtab%22%5D" >/dev/null
expect_match "  …a table with a json column read whole by md5" "$(python3 -c '
import json, sys
print([t.get("checksum") for t in json.load(open(sys.argv[1]))["tables"] if t["name"] == "public.jtab"])' "$T/agent.json")" "^\['-?[0-9]+'\]$"
env_sql v3 Production "DROP TABLE jtab" >/dev/null
for q in database=all 'database=1&full=%5B%22public.notes%22%5D' 'database=counts&full=public.notes' \
	'database=counts&full=%5B1%5D' 'database=counts&full=%7B%7D'; do
	expect "checksums?$q is refused" "$(agent v3 GET "/environments/$SID/checksums?files=0&$q")/$(answer error.code)" 400/BAD_QUERY
done

# change slots (changes.c): what changed since a mark, for the cutover's
# verify; every figure checked against psql
CK=$(python3 -c 'import uuid; print(uuid.uuid4())')
CSLOT="nubo_chg_${SID}_${CK//-/_}"
chg() { agent v3 "$1" "/environments/$SID/changes$2?migration=$CK" "${3-}"; }
field() {	# field TABLE KEY: the mark's value of a table ($T/mark.json)
	python3 -c '
import json, sys
t = [t for t in json.load(open(sys.argv[1]))["tables"] if t["name"] == sys.argv[2]][0]
print(json.dumps(t.get(sys.argv[3])) if sys.argv[3] in ("key", "why") else t[sys.argv[3]])' "$T/mark.json" "$1" "$2"
}
notes_sum() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["tables"]["public.notes"][sys.argv[2]])' "$T/agent.json" "$1"; }
hsum() { env_sql v3 Production "SELECT 'h' || COALESCE(sum(hash_record_extended(t, 0)::numeric), 0) FROM notes t WHERE $1"; }
expect "keys before any slot: none" "$(chg GET /keys)/$(answer error.code)" 404/NO_CHANGE_SLOT
expect "sums with no snapshot held: none" "$(chg POST /sums '{"tables":{},"held":true}')/$(answer error.code)" 404/NO_HELD_SNAPSHOT
expect "a mark without a migration key: refused" "$(agent v3 POST "/environments/$SID/changes" '{}')/$(answer error.code)" 400/BAD_MIGRATION_KEY
expect "mark: the slot made" "$(chg POST '' '{}')/$(answer slot)/$(answer created)" "200/$CSLOT/true"
cp "$T/agent.json" "$T/mark.json"
expect "it is a test_decoding slot of the database" \
	"$(db_sql v3 postgres "SELECT plugin || ' ' || database FROM pg_replication_slots WHERE slot_name = '$CSLOT'")" "test_decoding env_$SID"
expect "the mark counts notes as psql does" "$(field public.notes rows)" "$(env_sql v3 Production "SELECT count(*) FROM notes")"
expect "…and sums them as psql does" "$(field public.notes checksum)" "$(hsum true)"
expect "…and names their key" "$(field public.notes key)" '[{"name": "id", "type": "bigint"}]'
expect "a table without a primary key has none, and says so" "$(field public.nopk key) $(field public.nopk why)" 'null "no primary key"'
expect "an unlogged table: its changes are not decoded" "$(field public.scratch why)" '"not logged"'
ids=$(env_sql v3 Production "SELECT string_agg(id::text, ' ' ORDER BY id) FROM (SELECT id FROM notes ORDER BY id LIMIT 3) x")
read -r A B C <<< "$ids"
env_sql v3 Production "UPDATE notes SET title = 'after the mark' WHERE id = $A; UPDATE notes SET id = 1000 WHERE id = $B;
	DELETE FROM notes WHERE id = $C; INSERT INTO nopk VALUES (7, 'x')" >/dev/null
expect "keys: every key touched (update, both keys of a key's change, delete)" "$(chg GET /keys)/$(python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["tables"]
print(sorted(int(k[0]) for k in t["public.notes"]["keys"]), t["public.nopk"])' "$T/agent.json")" \
	"200/$(python3 -c "print(sorted([$A, $B, $C, 1000]))") {'whole': True, 'why': 'no primary key'}"
KEYS="[[\"$A\"],[\"$B\"],[\"$C\"],[\"1000\"]]"
expect "sums in the held snapshot" "$(chg POST /sums "{\"tables\":{\"public.notes\":$KEYS},\"held\":true}")" 200
expect "…those keys' rows as they were at the mark" "$(notes_sum rows)" 3
expect "…the rest of the table as psql reads it now (nobody touched it)" \
	"$(notes_sum outside_rows) $(notes_sum outside_checksum)" \
	"$(env_sql v3 Production "SELECT count(*) FROM notes WHERE id NOT IN ($A, $B, $C, 1000)") $(hsum "id NOT IN ($A, $B, $C, 1000)")"
expect "the snapshot was let go" "$(chg POST /sums '{"tables":{},"held":true}')/$(answer error.code)" 404/NO_HELD_SNAPSHOT
expect "sums as the database is now" "$(chg POST /sums "{\"tables\":{\"public.notes\":$KEYS}}")/$(notes_sum rows)/$(notes_sum checksum)" \
	"200/2/$(hsum "id IN ($A, 1000)")"
for bad in '{"tables":[]}' '{"tables":{"public.nope":[]}}' '{"tables":{"public.nopk":[]}}' \
	'{"tables":{"public.notes":[["1","2"]]}}' '{"tables":{"public.notes":[[1]]}}' '{"tables":{"public.notes":"1"}}' \
	'{"tables":{"public.notes":[]},"extra":1}' '{"tables":{"public.notes":[["x"]]}}' '{"tables":{"public.notes":[["1)) OR true --"]]}}'; do
	expect_match "sums $bad: refused" "$(chg POST /sums "$bad")/$(answer error.code)" "^400/(BAD_REQUEST|UNKNOWN_TABLE|BAD_KEY)$"
done
expect "a mark again keeps the slot" "$(chg POST '' '{}')/$(answer created)" 200/false
expect "…whose keys still go back to the first mark" "$(chg GET /keys)/$(python3 -c '
import json, sys
print(len(json.load(open(sys.argv[1]))["tables"]["public.notes"]["keys"]))' "$T/agent.json")" 200/4
expect "delete: the slot and the snapshot go" "$(chg DELETE '')/$(answer deleted)" 200/true
expect "…nothing left" "$(db_sql v3 postgres "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$CSLOT'")/$(db_sql v3 postgres "SELECT count(*) FROM pg_stat_activity WHERE datname = 'env_$SID' AND state = 'idle in transaction'")" 0/0
expect "…again: nothing to delete" "$(chg DELETE '')/$(answer deleted)" 200/false

env_sql v4 Production "TRUNCATE notes, attachments, events, nopk" >/dev/null
expect "a third migration" "$(agent v3 POST "/environments/$SID/replication" "{\"migration\":\"$KEY3\",\"target_address\":\"127.0.0.1\"}")" 201
expect "…subscribed" "$(agent v4 POST "/environments/$TID/subscription" "$(cat "$T/agent.json")")" 201
converges "…and copied"
# a snapshot held on each side would keep DROP DATABASE from working
expect "both sides marked" "$(agent v3 POST "/environments/$SID/changes?migration=$CK" '{}')/$(agent v4 POST "/environments/$TID/changes?migration=$CK" '{}')" 200/200
expect "the target environment deleted while it subscribes" "$(agent v4 DELETE "/environments/$TID")" 200
expect "the source environment deleted while it publishes" "$(agent v3 DELETE "/environments/$SID")" 200
expect "nothing left on the source" "$(leftovers v3 postgres)" "$NOTHING"
expect "nothing left on the target" "$(leftovers v4 postgres)" "$NOTHING"
expect "both databases are gone" "$(db_sql v3 postgres "SELECT count(*) FROM pg_database WHERE datname = 'env_$SID'") $(db_sql v4 postgres "SELECT count(*) FROM pg_database WHERE datname = 'env_$TID'")" "0 0"

# a cluster an older node ran with wal_level = replica is switched over at
# its next start, saying so once
stop_node v4
"$NUBOD" node stop-all --data "$T/node-v4" >/dev/null 2>&1
PGUSER4=$(stat -c %U "$T/node-v4/pg/data")
runuser -u "$PGUSER4" -- /usr/lib/postgresql/15/bin/pg_ctl -D "$T/node-v4/pg/data" -w -l "$T/node-v4/pg/log/old.log" \
	-o "-c port=$(sed -n 3p "$T/node-v4.ports") -c listen_addresses=127.0.0.1 -c unix_socket_directories=$T/node-v4/pg/run -c wal_level=replica" start >/dev/null
expect "the old cluster runs with wal_level = replica" "$(db_sql v4 postgres "SHOW wal_level")" replica
runuser -u "$PGUSER4" -- /usr/lib/postgresql/15/bin/pg_ctl -D "$T/node-v4/pg/data" -w -m fast stop >/dev/null
restart_node v4 v4
expect "one line says the switch" "$(grep -c 'wal_level switched from replica to logical' "$T/node-v4.log")" 1
expect "…and it runs with wal_level = logical" "$(db_sql v4 postgres "SHOW wal_level")" logical

finish
