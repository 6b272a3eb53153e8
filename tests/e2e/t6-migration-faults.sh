#!/usr/bin/env bash
# t6-migration-faults: kill -9 the portal, the source node or the target
# node at step boundaries and in the middle of the data streams; a step
# that meets a dead node waits (status retrying) and is tried again by
# itself once the node is back, a killed portal's job is re-queued and
# `nubo migrate resume` follows it; the final data equals the source (psql
# and sha256sum, not nubo's own checksums) and nothing is left twice.
#
# Kills in the middle of the data streams, and a few step boundaries with
# two environments (every step boundary, each process in turn, is
# t6-migration-steps-{1,2,3}):
#   1. portal at the boundary before `temp-app` (start phase)
#   2. target node in the middle of the database stream (start, Test)
#   3. source node in the middle of the files stream (start, Production)
#   4. portal in the middle of the database stream (rehearsal): the
#      restarted portal finds the target's import still running, same key
#   5. portal at the boundary before `route` (cutover, Production)
#   6. target node at the boundary before `start` (cutover, Production),
#      killed from the portal's pause while the node is down
# The test hook: every process has NUBO_TEST_PAUSE_FILE=$T/pause; writing a
# point's name there makes that point wait (see migrate.h).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"

export NUBO_TEST_PAUSE_FILE=$T/pause
start_portal
start_node v3 v3
start_node v4 v4

"$NUBO" apps create shop --no-sandbox >/dev/null
"$NUBO" nodes link v3 shop >/dev/null
deploy v3 shop Test
deploy v3 shop Production
add_notes v3 shop-test 3 3
add_notes v3 shop-production 4 5
bulk_rows v3 Test 30000
bulk_rows v3 Production 30000

# 1. portal killed at a step boundary
pause_at temp-app
"$NUBO" migrate start shop --to v4 --dump --no-wait >/dev/null
reached temp-app && pass "paused before temp-app" || fail "paused before temp-app"
kill9_portal
# 2. …and when it comes back, the re-queued job goes on to the middle of
# the database stream of Test, where the target node dies
pause_at stream
start_portal
reached stream && pass "paused in the database stream" || fail "paused in the database stream"
kill9_node v4
unpause
wait_failed_or
expect "target killed: the step waits to be tried again" "$(mstate status)" retrying
# 3. the source node dies in the middle of the files stream: the step,
# tried again by itself once v4 is back, gets there with no resume
pause_at files-stream
restart_node v4 v4
reached files-stream && pass "paused in the files stream, no resume asked" || fail "paused in the files stream, no resume asked"
kill9_node v3
unpause
wait_failed_or
expect "source killed: the step waits to be tried again" "$(mstate status)" retrying
expect_match "  v4 said the stream from v3 broke (or the portal cannot reach v3)" "$(mstate current_step.progress.retrying)" "^node 'v4': .*source node|cannot reach the node at"
restart_node v3 v3
check "the copy finishes by itself (resume follows the job)" "$NUBO" migrate resume shop
expect "copied" "$(mstate state)" copied
expect "one temporary app" "$(api_as "$ADMIN_KEY" GET /apps | python3 -c 'import json,sys; print(sum(a["temporary"] for a in json.load(sys.stdin)["apps"]))')" 1
compare_envs v3 v4 Test "after the start phase: Test equal"
compare_envs v3 v4 Production "after the start phase: Production equal"

# 4. portal killed while the target pulls the database (rehearsal)
add_notes v3 shop-production 2 2
pause_at stream
"$NUBO" migrate rehearse shop --no-wait >/dev/null
reached stream && pass "rehearsal paused in the stream" || fail "rehearsal paused in the stream"
kill9_portal
start_portal
sleep 1
unpause
check "resume follows the re-queued rehearsal" "$NUBO" migrate resume shop
expect "rehearsed" "$(mstate state)" copied
imports=$(grep -rh "migration import migration-" "$T/node-v4/envs/" 2>/dev/null | grep -o "migration-[0-9]*-step-[0-9]*: completed" | sort)
expect_match "imports were logged" "$imports" "completed"
expect "no import ran twice to completion" "$(printf '%s\n' "$imports" | uniq -d)" ""

# 5. portal killed before `route` in the cutover, 6. target node down at
# the boundary before `start`
add_notes v3 shop-production 1 1
add_notes v3 shop-test 1 1
before=$(notes_digest v3 shop-production)
pause_at route:Production
"$NUBO" migrate cutover shop --no-wait >/dev/null
reached route:Production && pass "cutover paused before route" || fail "cutover paused before route"
kill9_portal
pause_at start:Production
start_portal
reached start:Production && pass "cutover paused before start" || fail "cutover paused before start"
kill9_node v4
unpause
wait_failed_or
st=$("$NUBO" migrate status shop)
expect "a cutover that meets a dead target waits to try again" "$(mstate status)" retrying
expect_match "  it says the app is down, and where" "$st" "next: the app is down: (.*, )?Production on node 'v3' (shows|are)"
expect_match "  that the step is tried again by itself" "$st" "a node cannot be reached: the step is tried again by itself once it answers"
expect_match "  and the way out: rollback" "$st" "serve from node 'v3' again: nubo migrate rollback shop --to v4"
if grep -q '^downtime:' <<< "$st"; then fail "a downtime is printed for a cutover that never served: $(grep '^downtime:' <<< "$st")"; else pass "no downtime printed for a cutover that never served"; fi
# the target cannot keep Production's backup (its snapshots folder is
# gone): the cutover is tried a few times, then finishes, and says so
mv "$T/node-v4/snapshots" "$T/node-v4/snapshots.away"
touch "$T/node-v4/snapshots"
restart_node v4 v4
check "the cutover finishes by itself once v4 is back" "$NUBO" migrate status shop --follow
expect "cut over" "$(mstate state)" cut-over
keep=$(api_as "$ADMIN_KEY" GET /migrations/1 | python3 -c '
import json,sys
s = [s for s in json.load(sys.stdin)["steps"] if s["name"] == "keep" and s["environment"] == "Production"][-1]
print(s["state"], s["result"]["snapshot"], "error" in s["result"], s["result"]["warning"])')
expect_match "the keep step is done without a backup, and warns" "$keep" "^done None True the cutover is done but its data was not backed up on the target: take a backup \(nubo backups create [a-z0-9-]+ Production\)"
expect_match "status shows the warning" "$("$NUBO" migrate status shop)" "keep Production: warning: the cutover is done but its data was not backed up"
expect_match "the node's log names the tries" "$(cat "$T/portal.log")" "backup of Production at cutover failed 3 times"
# the target's environments belong to the temporary app until the end
kept() { api_as "$ADMIN_KEY" GET "/apps/$(mstate temporary_app)/environments/$1/snapshots" | python3 -c '
import json, sys
print([s["state"] for s in json.load(sys.stdin)["snapshots"] if s.get("comment", "").startswith("kept by migration")])'; }
expect "Production: the failed backup is listed as failed" "$(kept Production)" "['failed']"
expect "Test: kept before the fault, completed" "$(kept Test)" "['completed']"
rm "$T/node-v4/snapshots"
mv "$T/node-v4/snapshots.away" "$T/node-v4/snapshots"
ask=$(api_as "$ADMIN_KEY" GET /migrations/1 | python3 -c '
import json,sys
print([s for s in json.load(sys.stdin)["steps"] if s["name"] == "keep" and s["environment"] == "Production"][-1]["result"]["warning"])' | grep -o "nubo backups create [^)]*")
expect "the warning names the target's environment" "$ask" "nubo backups create $(mstate temporary_app) Production"
check "the backup the warning asks for" "$NUBO" ${ask#nubo }
expect "Production: now backed up on the target" "$(api_as "$ADMIN_KEY" GET "/apps/$(mstate temporary_app)/environments/Production/snapshots" | python3 -c '
import json, sys
print(sorted(s["state"] for s in json.load(sys.stdin)["snapshots"]))')" "['completed', 'failed']"
expect "v4 serves the original hostname" "$(notes_digest v4 shop-production)" "$before"
compare_envs v3 v4 Production "after the cutover: Production equal"
compare_envs v3 v4 Test "after the cutover: Test equal"
expect "one offboarding request" "$(api_as "$ADMIN_KEY" GET /offboarding-requests | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["offboarding_requests"]))')" 1
expect "one package in the target's repository" "$(ls "$T/node-v4/packages" | grep -vc '^\.')" 1
expect "no half-copied files left" "$(find "$T/node-v4/envs" -path '*/.nubo-partial*' | wc -l)" 0
expect "no leftover databases" "$(node_sql v4 "SELECT count(*) FROM pg_database WHERE datname ~ '^env_[0-9]+_(in|old)$'")" 0

req=$(api_as "$ADMIN_KEY" GET /offboarding-requests | jq_get offboarding_requests.0.id)
check "approve" "$NUBO" admin offboarding approve "$req"
check "finish" "$NUBO" migrate status shop --follow
expect "completed" "$(mstate state)" completed
expect "no temporary app left" "$(api_as "$ADMIN_KEY" GET /apps | python3 -c 'import json,sys; print(sum(a["temporary"] for a in json.load(sys.stdin)["apps"]))')" 0
expect "steps retried, none done twice" "$(api_as "$ADMIN_KEY" GET /migrations/1 | python3 -c '
import json,sys
m = json.load(sys.stdin)
print(all(s["state"] == "done" for s in m["steps"]), any(s["attempts"] > 1 for s in m["steps"]))')" "True True"

finish
