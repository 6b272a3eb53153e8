#!/usr/bin/env bash
# t6-migration-tool-errors: errors that name the cause (issue #18 §4).
# PostgreSQL's tools fail during a migration for real reasons, and the
# step's error quotes their own words: the source's pg_dump refused (it
# runs as the node's admin, whose sessions in the environment's database
# were set to preload a library that is not there: its connection fails,
# the migration's checksums, as the environment's role, do not) — before,
# the target only said the dump "broke off"; the target's pg_restore
# refused (an extension the import role may not create). Each fixed, `nubo migrate resume` finishes the copy and the
# data equals the source.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"

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

# 1. pg_dump refuses on the source
asql "ALTER ROLE nubo_admin IN DATABASE env_$ID SET session_preload_libraries = 'nubo_no_such_library'" postgres
check_fails "the copy fails" 1 "$NUBO" migrate start shop --to v4
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

# 3. both fixed: the copy finishes, the data is the source's
asql "DROP EXTENSION dblink"
check "resume finishes the copy" "$NUBO" migrate resume shop
compare_envs v3 v4 Production "the target holds the source's data"
finish
