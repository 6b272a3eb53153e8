#!/usr/bin/env bash
# t6-migration-replicate: `nubo migrate start --replicate` (issue 14) with
# real nodes, PostgreSQL and nginx: the sample app on a v3 node (Test and
# Production, notes, attachments, and a table without a primary key
# holding equal rows); a migration aborted after its first copy leaves no
# slot, publication, subscription, role, pg_hba rule or record on either
# node; a second one copies the schema and files, and from then on the v4
# database follows the v3 one while a writer adds notes through the app
# (the target is not started: a replica takes the source's writes alone);
# `migrate status` shows each slot, its lag and the WAL it holds; a
# rehearsal copies the new files without copying the database again; the
# cutover, with the writer still writing until the maintenance page, waits
# for the last writes, copies the sequences and drops the replication on
# both nodes. At the end every note the writer was told was saved is on
# v4, each environment's rows and files are equal (psql and sha256sum),
# v4 hands out new ids after the old ones, and nothing of the
# replication is left.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"

start_portal
start_node v3 v3
start_node v4 v4

"$NUBO" apps create notes --no-sandbox >/dev/null
"$NUBO" nodes link v3 notes >/dev/null
deploy v3 notes Test
deploy v3 notes Production
add_notes v3 notes-test 2 1
add_notes v3 notes-production 4 2
env_sql v3 Production "CREATE TABLE nopk (k int, v text); INSERT INTO nopk VALUES (1, 'same'), (1, 'same'), (2, 'other')" >/dev/null

S_TEST=env_$(env_id v3 Test)
S_PROD=env_$(env_id v3 Production)
# none NODE: nothing of a replication on NODE (both environments'
# databases' publications counted)
none() {
	local a b
	a=$(leftovers "$1" "$([ "$1" = v3 ] && echo "$S_TEST" || echo postgres)")
	b=$(leftovers "$1" "$([ "$1" = v3 ] && echo "$S_PROD" || echo postgres)")
	[ "$a" = "$b" ] && echo "$a" || echo "$a / $b"
}
# step NAME ENV ROUND KEY: a field of that step's result in the newest
# migration
step() { step_result notes "$1" "$2" "$3" -1 | jq_get "$4"; }

# --- an aborted migration leaves nothing ---
check "migrate start --replicate (to be aborted)" "$NUBO" migrate start notes --to v4 --replicate
expect "its data step replicates" "$(step data Production 0 method)" replicate
expect "a slot per environment on v3" "$(node_sql v3 "SELECT count(*) FROM pg_replication_slots")" 2
expect "a subscription per environment on v4" "$(node_sql v4 "SELECT count(*) FROM pg_subscription")" 2
check "migrate abort" "$NUBO" migrate abort notes
expect "v3 keeps nothing of the aborted replication" "$(none v3)" "$NOTHING"
expect "v4 keeps nothing of the aborted replication" "$(none v4)" "$NOTHING"

# --- the writer: notes through v3's router, each acknowledged id kept ---
: > "$T/written"
(
	while [ ! -e "$T/writer.stop" ]; do
		id=$(curl -sf -m 5 -H 'Host: notes-production.nubo.localhost' -H 'Content-Type: application/json' \
			--data-binary '{"title":"live","body":"written while replicating"}' \
			"http://127.0.0.1:$ROUTER_v3/api/notes" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null) &&
			echo "$id" >> "$T/written"
		sleep 0.05
	done
) &
WRITER=$!
PIDS+=("$WRITER")

check "migrate start --replicate" "$NUBO" migrate start notes --to v4 --replicate
expect "the first copy started the replication" "$(step data Production 0 replication)" started
expect_match "the target did not start on the replica" "$(step start Production 0 skipped)" "starts at the cutover"
TMP=$(api_as "$ADMIN_KEY" GET "/migrations?app=notes" | jq_get migrations.1.temporary_app)
expect_match "the target follows, not running" "$(env_state "$TMP" Production)" "^(stopped|notdeployed)$"
status=$("$NUBO" migrate status notes)
expect_match "status shows each slot, its lag and the WAL it holds" "$status" "Production +slot nubo_slot_[0-9]+_[0-9a-f_]+, active, lag [0-9]+ bytes.*WAL held [0-9]+ bytes"
expect "status as JSON: a replication row per environment" "$("$NUBO" migrate status notes --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["replication"]))')" 2

# changes the app does not make reach the target too: a table without a
# primary key (replica identity full), updates and deletes
env_sql v3 Production "UPDATE nopk SET v = 'changed' WHERE k = 2; DELETE FROM nopk WHERE ctid = (SELECT min(ctid) FROM nopk WHERE k = 1); INSERT INTO nopk VALUES (3, 'new')" >/dev/null
want=$(env_sql v3 Production "SELECT string_agg(k || ':' || v, ',' ORDER BY k, v) FROM nopk")
got=""
# the target's environment has not started: read as the node's admin
T_PROD=env_$(api_as "$ADMIN_KEY" GET /nodes/v4 | python3 -c '
import json, sys
print(*[e["id"] for e in json.load(sys.stdin)["environments"] if e["name"] == "Production"])')
for _ in $(seq 100); do
	got=$(db_sql v4 "$T_PROD" "SELECT string_agg(k || ':' || v, ',' ORDER BY k, v) FROM nopk")
	[ "$got" = "$want" ] && break
	sleep 0.1
done
expect "the table without a primary key follows (update, delete of one of two equal rows, insert)" "$got" "$want"
n_before=$(wc -l < "$T/written")
[ "$n_before" -gt 0 ] && pass "the writer wrote while the first copy ran ($n_before notes)" || fail "the writer wrote nothing"

# --- rehearse: the files that changed, not the database ---
add_notes v3 notes-production 1 2
check "migrate rehearse" "$NUBO" migrate rehearse notes
expect "the rehearsal follows the replica" "$(step data Production 1 replication)" following
expect "the rehearsal copied the new attachments" "$(step data Production 1 files_copied)" 2

# --- cutover with the writer running until the maintenance page ---
sleep 1
check "migrate cutover" "$NUBO" migrate cutover notes
touch "$T/writer.stop"
wait "$WRITER" 2>/dev/null || true
expect "the cutover waited for the last writes" "$(step data Production 2 dropped)" true
expect_match "the cutover copied the sequences" "$(step data Production 2 sequences)" "^[1-9]"
written=$(sort -u "$T/written")
n_written=$(wc -l <<< "$written")
[ "$n_written" -gt "$n_before" ] && pass "the writer kept writing until the cutover ($n_written notes)" ||
	fail "the writer stopped early ($n_written notes)"
missing=$(comm -23 <(echo "$written") <(env_sql v4 Production "SELECT id FROM notes" | sort))
expect "every note the writer was told was saved is on v4" "$missing" ""
compare_envs v3 v4 Production "Production: rows and files equal (psql, sha256sum)"
compare_envs v3 v4 Test "Test: rows and files equal (psql, sha256sum)"
max=$(env_sql v3 Production "SELECT max(id) FROM notes")
# (a sequence left behind makes the insert collide with a copied row)
new=$(curl -sf -H 'Host: notes-production.nubo.localhost' -H 'Content-Type: application/json' \
	--data-binary '{"title":"after","body":"on v4"}' "http://127.0.0.1:$ROUTER_v4/api/notes") &&
	new=$(jq_get id <<< "$new") || new="refused"
[ "$new" != refused ] && [ "$new" -gt "$max" ] && pass "v4 hands out ids after v3's last ($new > $max)" ||
	fail "v4's new id '$new' is not after v3's last $max"
expect "v3 keeps nothing of the replication" "$(none v3)" "$NOTHING"
expect "v4 keeps nothing of the replication" "$(none v4)" "$NOTHING"
finish
