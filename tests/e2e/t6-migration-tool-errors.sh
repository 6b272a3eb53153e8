#!/usr/bin/env bash
# t6-migration-tool-errors: errors that name the cause (issue #18 §4).
# PostgreSQL's tools fail during a migration for real reasons, and the
# step's error quotes their own words: the source's pg_dump refused (it
# runs as the node's admin, whose sessions in the environment's database
# were set to preload a library that is not there: its connection fails,
# the migration's checksums, as the environment's role, do not) — before,
# the target only said the dump "broke off"; the target's pg_restore
# refused (an extension the import role may not create); pg_dump failed
# half-way through its stream (a table's file gone). Each fixed, `nubo migrate resume` finishes the copy and the
# data equals the source.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"

export NUBO_TEST_PAUSE_FILE=$T/pause
start_portal
start_node v3 v3
start_node v4 v4
"$NUBO" apps create shop --no-sandbox >/dev/null
"$NUBO" nodes link v3 shop >/dev/null
deploy v3 shop Production
add_notes v3 shop-production 2 1
ID=$(basename "$(env_dir v3 Production)")
# asql SQL [DB]: on v3's PostgreSQL as its admin, in Production's database
asql() {
	PGPASSWORD=$(jq_get password < "$T/node-v3/pg/admin.json") psql -X -q -h 127.0.0.1 \
		-p "$(sed -n 3p "$T/node-v3.ports")" -U nubo_admin -d "${2:-env_$ID}" -v ON_ERROR_STOP=1 -Atc "$1"
}
mstatus() { "$NUBO" migrate status shop 2>&1; }
mjob() { api_as "$ADMIN_KEY" GET '/migrations?app=shop' | jq_get "migrations.0.$1"; }

# 1. pg_dump refuses on the source
asql "ALTER ROLE nubo_admin IN DATABASE env_$ID SET session_preload_libraries = 'nubo_no_such_library'" postgres
check_fails "the copy fails" 1 "$NUBO" migrate start shop --to v4 --dump
out="$(cat "$T/last.err")
$(mstatus)"
expect_match "the error quotes pg_dump's own words" "$out" "pg_dump: error: connection to server .* failed: FATAL: +could not access file \"nubo_no_such_library\": No such file or directory"
grep -q "broke off" <<< "$out" && fail "the error still says the dump broke off: $out" || pass "no 'broke off' for a dump that never started"

# 2. pg_restore refuses on the target
asql "ALTER ROLE nubo_admin IN DATABASE env_$ID RESET session_preload_libraries" postgres
asql "CREATE EXTENSION dblink"
check_fails "resume fails again" 1 "$NUBO" migrate resume shop
out="$(cat "$T/last.err")
$(mstatus)"
expect_match "the error quotes pg_restore's own words" "$out" "pg_restore: error: could not execute query: ERROR: +permission denied to create extension \"dblink\""
grep -qE "status [0-9]+\)" <<< "$out" && fail "a bare exit status in: $out" || pass "no bare exit status"

# 3. pg_dump fails half-way through its stream: a table's file is gone
# from the source's disk while the dump flows (the target paused in the
# stream, pg_dump blocked in a bulk table that sorts before it). Before,
# the broken stream was taken for a broken link and the step retried
# for an hour; now the target hears pg_dump's words and the step fails
asql "DROP EXTENSION dblink"
asql "SET ROLE env_$ID; CREATE TABLE zy_bulk AS SELECT g AS id, md5(g::text) || md5((-g)::text) AS pad FROM generate_series(1, 400000) g; CREATE TABLE zz_lost AS SELECT g AS id FROM generate_series(1, 1000) g; RESET ROLE; CHECKPOINT"
REL="$T/node-v3/pg/data/$(asql "SELECT pg_relation_filepath('zz_lost')")"
pause_at stream
"$NUBO" migrate resume shop --no-wait >/dev/null
reached stream && pass "paused in the database stream" || fail "paused in the database stream"
mv "$REL" "$REL.away"
unpause
for i in $(seq 300); do
	case "$(mjob status)" in failed|retrying|finished) break;; esac
	sleep 0.2
done
expect "the step failed, not waiting to be tried again as if a link broke" "$(mjob status)" failed
expect_match "the error quotes pg_dump's own words" "$(mstatus)" "pg_dump: error: .*could not open file \"[^\"]*\": No such file or directory"
mv "$REL.away" "$REL"

# 4. pg_dump's connection is lost half-way (its backend terminated): a
# fault that heals, so the step waits and is tried again by itself, and
# the copy finishes with no resume asked
pause_at stream
"$NUBO" migrate resume shop --no-wait >/dev/null
reached stream && pass "paused in the database stream again" || fail "paused in the database stream again"
expect "pg_dump's backend terminated" "$(asql "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pg_dump'" postgres)" 1
unpause
for i in $(seq 300); do
	case "$(mjob status)" in failed|retrying|waiting|finished) break;; esac
	sleep 0.2
done
expect "the step waits to be tried again" "$(mjob status)" retrying
for i in $(seq 600); do
	case "$(mjob status)" in failed|waiting|finished) break;; esac
	sleep 0.2
done
expect "tried again by itself, the copy finishes" "$(mjob status)" waiting

# 5. the data is the source's
compare_envs v3 v4 Production "the target holds the source's data"
finish
