#!/usr/bin/env bash
# t6-migration-replicate: `nubo migrate start` replicating (issue 14) with
# real nodes, PostgreSQL and nginx: the sample app on a v3 node (Test and
# Production, notes, attachments, and a table without a primary key
# holding equal rows); the plan says how each table is replicated, and an
# unlogged table is refused before anything is made with --replicate,
# while a migration not told how copies by a dump and says why; a
# migration aborted
# after its first copy leaves no
# slot, publication, subscription, role, pg_hba rule or record on either
# node; after a column added on the source, a cutover is refused before
# anything stops, naming the table, and an abort leaves nothing either;
# a CHECK added NOT VALID on the source (a row breaking it) is not
# replicated: the plan says so, the default takes the dump, --replicate
# is refused; a table whose first copy fails on the target (a CHECK put
# there, a row breaking it) is given up after 5 failures, named, and an
# abort leaves nothing;
# a third migration copies the schema and files, and from then on the v4
# database follows the v3 one while a writer adds notes through the app
# (the target is not started: a replica takes the source's writes alone);
# `migrate status` shows each slot, its lag and the WAL it holds; a
# rehearsal copies the new files without copying the database again; the
# cutover, with the writer still writing until the maintenance page, waits
# for the last writes, copies the sequences, reads whole only the tables
# written since the rehearsal's verification (the others' rows counted)
# and drops the replication on both nodes. At the end every note the writer was told was saved is on
# v4, each environment's rows and files are equal (psql and sha256sum),
# v4 hands out new ids after the old ones, and nothing of the
# replication is left.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"

# the test hook: the cutover is held before Production's verify step while
# the target is made to differ
export NUBO_TEST_PAUSE_FILE=$T/pause
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

# --- the plan says how each table is carried; what replication cannot
# carry (an unlogged table) is refused before anything is made ---
plan=$("$NUBO" migrate plan notes --to v4)
expect_match "the plan replicates by default" "$plan" "database copied by replication \(the schema, then PostgreSQL logical replication until the cutover\)$"
expect_match "the plan: a table with a primary key is replicated" "$plan" "table public.notes: replicated \(primary key\)"
expect_match "the plan's steps: the target is not started before the cutover" "$plan" "start +start +Production +not started: on a replica"
expect_match "  the cutover waits for the last writes" "$plan" "cutover +data +Production +wait until the target has every write of the stopped source"
expect_match "the plan: a table without one, with replica identity full" "$plan" "table public.nopk: replicated with replica identity full"
expect_match "the plan's downtime estimate does not copy the database" "$plan" "downtime estimate: replicating: the database is not copied during the downtime; start [0-9.]+ s \(this environment's last start\)"
env_sql v3 Test "CREATE UNLOGGED TABLE scratch (k int PRIMARY KEY)" >/dev/null
plan=$("$NUBO" migrate plan notes --to v4 --replicate)
expect_match "the plan: an unlogged table is not carried" "$plan" "table public.scratch: not carried"
expect_match "the plan: the environment is refused, naming it" "$plan" "cannot replicate: table public.scratch is unlogged"
expect_match "the plan still counts the tables" "$plan" "Test +package notes-1.0.0, database [0-9.]+ kB \(4 tables"
expect_match "  and tells the dump copies it" "$plan" "migrate with --dump: the dump copies them"
out=$("$NUBO" migrate start notes --to v4 --replicate 2>&1) && fail "a replication of an unlogged table started" ||
	expect_match "migrate start --replicate refuses it, naming it" "$out" "cannot replicate 'Test': table public.scratch is unlogged"
expect "nothing was made for it on v3" "$(none v3)" "$NOTHING"
check "migrate abort (refused start)" "$NUBO" migrate abort notes
# not told how: the dump, and why
plan=$("$NUBO" migrate plan notes --to v4)
expect_match "without --replicate the plan copies by a dump, saying why" "$plan" \
	"database copied by a dump restored at every copy: replication cannot carry what environment Test holds: table public.scratch is unlogged"
expect "  and lists no replication of tables" "$(grep -c "table public.notes: replicated" <<< "$plan" || [ $? = 1 ])" 0
expect_match "  its steps: no baseline" "$plan" "cutover +baseline +Production +skipped: the database copied at the cutover is verified whole"
check "migrate start (falls back to the dump)" "$NUBO" migrate start notes --to v4
expect_match "  says so as it starts" "$(cat "$T/last.err")" "database copied by a dump restored at every copy: replication cannot carry what environment Test holds: table public.scratch is unlogged"
st=$("$NUBO" migrate status notes --json)
expect "  the migration copies by a dump" "$(jq_get method <<< "$st")" dump
expect_match "  and keeps why" "$(jq_get method_reason <<< "$st")" "table public.scratch is unlogged"
expect "  nothing of a replication on v3" "$(none v3)" "$NOTHING"
check "migrate abort (the dump)" "$NUBO" migrate abort notes
env_sql v3 Test "DROP TABLE scratch" >/dev/null

# --- an aborted migration leaves nothing ---
check "migrate start --replicate (to be aborted)" "$NUBO" migrate start notes --to v4 --replicate
expect "its data step replicates" "$(step data Production 0 method)" replicate
expect "a slot per environment on v3" "$(node_sql v3 "SELECT count(*) FROM pg_replication_slots")" 2
expect "a subscription per environment on v4" "$(node_sql v4 "SELECT count(*) FROM pg_subscription")" 2
check "migrate abort" "$NUBO" migrate abort notes
expect "v3 keeps nothing of the aborted replication" "$(none v3)" "$NOTHING"
expect "v4 keeps nothing of the aborted replication" "$(none v4)" "$NOTHING"

# --- DDL on the source after the start: the cutover is refused before
# anything is queued, naming the table; an abort leaves nothing
# (t6-migration-resync copies the changed tables again instead) ---
check "migrate start --replicate (to meet DDL)" "$NUBO" migrate start notes --to v4 --replicate
env_sql v3 Production "ALTER TABLE nopk ADD COLUMN extra int" >/dev/null
out=$("$NUBO" migrate cutover notes 2>&1) && fail "a cutover after DDL on the source went ahead" ||
	expect_match "the cutover is refused, naming the changed table" "$out" "schema changed on the source.*Production\.public\.nopk \(its columns differ\)"
expect "the source still serves" "$(route_status v3 notes-production.nubo.localhost /api/notes)" 200
check "migrate abort (the cutover was refused before anything was queued)" "$NUBO" migrate abort notes
expect "v3 keeps nothing of the aborted replication" "$(none v3)" "$NOTHING"
expect "v4 keeps nothing of the aborted replication" "$(none v4)" "$NOTHING"

# --- a CHECK added NOT VALID on the source, a row there breaking it: a
# replica's first copy would enforce it on every row; the plan says so,
# the default falls back to the dump, --replicate is refused naming it ---
env_sql v3 Production "CREATE TABLE checked (k int PRIMARY KEY, v int); INSERT INTO checked VALUES (1, -1); ALTER TABLE checked ADD CONSTRAINT positive CHECK (v > 0) NOT VALID" >/dev/null
plan=$("$NUBO" migrate plan notes --to v4 --replicate)
expect_match "the plan: a table with a CHECK added NOT VALID is not carried as it is" "$plan" "table public.checked: not carried as it is: a CHECK added NOT VALID"
expect_match "  the environment is refused, naming the constraint" "$plan" "cannot replicate: table public.checked has CHECK positive added NOT VALID"
expect_match "not told how, the plan copies by a dump, saying why" "$("$NUBO" migrate plan notes --to v4)" \
	"database copied by a dump restored at every copy: replication cannot carry what environment Production holds: table public.checked has CHECK positive added NOT VALID"
out=$("$NUBO" migrate start notes --to v4 --replicate 2>&1) && fail "a replication of a NOT VALID check started" ||
	expect_match "migrate start --replicate refuses it, naming it" "$out" "cannot replicate 'Production': table public.checked has CHECK positive added NOT VALID"
check "migrate abort (refused start)" "$NUBO" migrate abort notes
expect "v3 keeps nothing of the refused replication" "$(none v3)" "$NOTHING"
expect "v4 keeps nothing of the refused replication" "$(none v4)" "$NOTHING"
env_sql v3 Production "ALTER TABLE checked DROP CONSTRAINT positive" >/dev/null

# --- a table whose first copy fails again and again (the target refuses
# its rows: a CHECK put on the target's table, the schema there and
# nothing subscribed yet): the portal gives up after 5 failed copies,
# naming the table; an abort leaves nothing ---
pause_at repl-subscribing:Production
timeout 180 "$NUBO" migrate start notes --to v4 > "$T/given-up.out" 2>&1 &
given=$!
if reached repl-subscribing:Production; then
	tdb=env_$(api_as "$ADMIN_KEY" GET /nodes/v4 | python3 -c '
import json, sys
print(*[e["id"] for e in json.load(sys.stdin)["environments"] if e["name"] == "Production"])')
	db_sql v4 "$tdb" "ALTER TABLE checked ADD CONSTRAINT positive CHECK (v > 0)"
else
	fail "the first copy never reached Production's subscription"
fi
unpause
wait "$given" && fail "a first copy that cannot succeed was not given up" ||
	expect_match "the first copy is given up after 5 failures, naming the table" "$(cat "$T/given-up.out")" \
		"node 'v4': the copy of checked of 'Production' failed 5 times \(the node's PostgreSQL log says why\)"
expect_match "  the target's PostgreSQL said why" "$(grep -a 'violates check constraint "positive"' "$T/node-v4/pg/log/postgres.log" | head -1)" "positive"
check "migrate abort (a first copy given up)" "$NUBO" migrate abort notes
expect "v3 keeps nothing of the aborted replication" "$(none v3)" "$NOTHING"
expect "v4 keeps nothing of the aborted replication" "$(none v4)" "$NOTHING"
env_sql v3 Production "DROP TABLE checked" >/dev/null

# --- the writer: notes through v3's router, each acknowledged id kept ---
writer_start notes-production

check "migrate start (replicates by default)" "$NUBO" migrate start notes --to v4
expect_match "  says so as it starts" "$(cat "$T/last.err")" "database copied by replication"
expect_match "  and what comes next: the app starts on v4 at the cutover" "$(cat "$T/last.out")" \
	"^next: node 'v4' follows node 'v3' \(the app starts there at the cutover\); nubo migrate rehearse\|cutover\|abort notes --to v4 \(to test the app on 'v4' before the cutover: abort, then migrate with --dump\)$"
expect "  the migration replicates" "$("$NUBO" migrate status notes --json | jq_get method)" replicate
expect "the first copy started the replication" "$(step data Production 0 replication)" started
expect_match "the target did not start on the replica" "$(step start Production 0 skipped)" "starts at the cutover"
TMP=$(api_as "$ADMIN_KEY" GET "/migrations?app=notes" | python3 -c 'import json,sys; print(json.load(sys.stdin)["migrations"][-1]["temporary_app"])')
expect_match "the target follows, not running" "$(env_state "$TMP" Production)" "^(stopped|notdeployed)$"
status=$("$NUBO" migrate status notes)
expect_match "status shows each slot, its lag and the WAL it holds" "$status" "Production +slot nubo_slot_[0-9]+_[0-9a-f_]+, active, lag [0-9]+ bytes.*WAL held [0-9]+ bytes"
expect_match "status estimates the cutover of a replica" "$status" "Production +[0-9.]+ s — replicating: the database is not copied"
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

# --- cutover with the writer running until the maintenance page; held
# before Production's verify, where a row of a table written since the
# rehearsal (notes) is changed on the target, keeping the row count: the
# downtime's verification must read that table whole and fail ---
sleep 1
pause_at maintenance:Production
"$NUBO" migrate cutover notes > "$T/cut.out" 2> "$T/cut.err" &
cut=$!
# after the baseline, the app still serving: a row of the table without
# a primary key written on the source (replicated): the downtime's
# verify must read that table whole
if reached maintenance:Production; then
	expect_match "status between the baseline and the verify: the change slot and the WAL it holds" \
		"$("$NUBO" migrate status notes)" "change slot nubo_chg_[0-9]+_[0-9a-f_]+ \(the cutover's, until its verify passes\), WAL held [0-9]+ bytes"
	env_sql v3 Production "INSERT INTO nopk VALUES (4, 'after the baseline')" >/dev/null
	for _ in $(seq 100); do
		[ "$(db_sql v4 "$T_PROD" "SELECT count(*) FROM nopk WHERE k = 4")" = 1 ] && break
		sleep 0.1
	done
else
	fail "the cutover never reached Production's maintenance step"
fi
pause_at verify:Production	# releases maintenance:Production
if reached verify:Production; then
	row=$(db_sql v4 "$T_PROD" "SELECT id, title FROM notes ORDER BY id LIMIT 1")
	db_sql v4 "$T_PROD" "UPDATE notes SET title = title || ' (changed)' WHERE id = ${row%%|*}"
	unpause
	rc=0
	wait "$cut" || rc=$?
	expect "cutover: a row changed on the target: the cutover fails" "$rc" 1
	expect_match "cutover: the verify step names the table" "$(cat "$T/cut.err")" \
		"the target differs from the source in 1 place\(s\): table public.notes: "
	db_sql v4 "$T_PROD" "UPDATE notes SET title = '${row#*|}' WHERE id = ${row%%|*}"
else
	fail "the cutover never reached Production's verify step"
	unpause
	wait "$cut" || true
fi
check "the cutover goes on once the target is put back" "$NUBO" migrate resume notes
expect_match "it says what the downtime's verify compared" "$(cat "$T/last.out")" \
	"verified Production \(cutover\): [0-9]+ tables \([0-9]+ by the [1-9][0-9]* key\(s\) written since the baseline, 1 read whole: [0-9]+ rows\), [0-9]+ files identical on both nodes"
writer_stop
expect "the cutover waited for the last writes" "$(step data Production 2 dropped)" true
expect_match "the cutover copied the sequences" "$(step data Production 2 sequences)" "^[1-9]"
# the baseline, the app still serving, verified every table but for the
# rows being written; the downtime's verification compares only the rows
# written since (the writer's notes) by key, and reads whole only the
# table without a primary key
expect "the cutover took a baseline before the maintenance page" "$(step baseline Production 2 baseline)" true
expect_match "the baseline found the notes equal but for the rows being written" "$(step baseline Production 2 by_key)" '"public.notes"'
expect_match "…and the table without a key, untouched since the slots, equal whole" "$(step baseline Production 2 by_key)" '"public.nopk"'
expect_match "the downtime's verify compared the notes written since by key" "$(step verify Production 2 by_key)" '"public.notes": [1-9]'
expect_match "and read whole only the table without a primary key, written since the baseline" "$(step verify Production 2 rechecked)" '^\["public.nopk"\]$'
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
