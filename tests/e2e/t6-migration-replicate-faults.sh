#!/usr/bin/env bash
# t6-migration-replicate-faults: a migration that replicates (--replicate,
# issue 14) survives kill -9 at its new points and a broken link, with a
# writer adding notes through the app from before the start until the
# cutover's maintenance page:
#   1. the portal, while the first copy of each table runs (the
#      subscription made, not yet streaming): the restarted portal's job
#      goes on with the same subscription, copying nothing again;
#   2. while the target follows: the source's PostgreSQL (its postmaster),
#      then the target's, then the connection between them (the source's
#      walsenders ended, then the target's apply workers): each heals, and
#      the rehearsal's verification of the live replica is clean;
#   3. the cutover: the source node's agent and its PostgreSQL before
#      the data step (the step waits to be tried again, and goes on by
#      itself once they are back), the portal just before the
#      replication is dropped and just after (the journal does not say
#      so yet): each attempt goes on from what is there.
# After each fault: one slot and one subscription per environment, one
# replication role per environment. At the end every note the writer was
# told was saved is on v4, each environment's rows and files are equal
# (psql and sha256sum), and nothing of the replication is left.
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
add_notes v3 shop-test 2 1
add_notes v3 shop-production 3 2
bulk_rows v3 Test 20000
bulk_rows v3 Production 60000

# one NODE: the replication objects NODE holds now, per environment
# (slots and replication roles on v3, subscriptions on v4)
one() {
	if [ "$1" = v3 ]; then
		echo "slots=$(db_sql v3 postgres "SELECT count(*) FROM pg_replication_slots")" \
			"roles=$(db_sql v3 postgres "SELECT count(*) FROM pg_roles WHERE rolreplication AND rolname <> 'nubo_admin'")"
	else
		echo "subscriptions=$(db_sql v4 postgres "SELECT count(*) FROM pg_subscription")"
	fi
}
ONE_V3="slots=2 roles=2"
ONE_V4="subscriptions=2"
postmaster() { head -1 "$T/node-$1/pg/data/postmaster.pid"; }
# kill9_pg NODE: the node's PostgreSQL killed; wait until the node made it
# serve again (at most 60 s)
kill9_pg() {
	local old i
	old=$(postmaster "$1")
	kill -KILL "$old"
	for i in $(seq 300); do
		if [ "$(postmaster "$1" 2>/dev/null)" != "$old" ] &&
			db_sql "$1" postgres "SELECT 1" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.2
	done
	fail "node $1 did not start its PostgreSQL again within 60 s"
	return 1
}
# caught_up: the target has what the source wrote up to now (every slot
# active again and past the source's WAL position of now; at most 60 s)
caught_up() {
	local i lsn
	lsn=$(db_sql v3 postgres "SELECT pg_current_wal_lsn()")
	for i in $(seq 300); do
		[ "$(db_sql v3 postgres "SELECT count(*) FROM pg_replication_slots WHERE NOT active OR confirmed_flush_lsn IS NULL OR confirmed_flush_lsn < '$lsn'")" = 0 ] && return 0
		sleep 0.2
	done
	return 1
}
# --- the writer: notes through v3's router, each acknowledged id kept ---
writer_start shop-production

# --- 1. the portal killed during the first copy ---
pause_at repl-copying
"$NUBO" migrate start shop --to v4 --replicate --no-wait >/dev/null
if reached repl-copying; then
	pass "paused while the first copy runs"
	kill9_portal
	unpause
	start_portal
	check "the restarted portal's job finishes the start" "$NUBO" migrate resume shop
else
	unpause
	fail "never paused in the first copy"
fi
expect "start: copied" "$(mstate state)" copied
expect "the data step ran again and followed the same subscription" "$(step_result shop data Test 0 | jq_get replication)" following
expect "after the portal's kill: one slot and role per environment on v3" "$(one v3)" "$ONE_V3"
expect "after the portal's kill: one subscription per environment on v4" "$(one v4)" "$ONE_V4"
# what follows needs one replication per environment
[ "$FAILED" = 0 ] || { writer_stop; finish; exit 1; }

S_PROD=env_$(env_id v3 Production)

# --- 2. faults while the target follows ---
kill9_pg v3 && pass "v3's PostgreSQL killed and back"
caught_up && pass "  the target caught up again" || fail "  the target did not catch up after v3's PostgreSQL was killed"
kill9_pg v4 && pass "v4's PostgreSQL killed and back"
caught_up && pass "  the target caught up again" || fail "  the target did not catch up after v4's PostgreSQL was killed"
# the link cut, at the source's end (its walsenders) and then at the
# target's (its apply workers): the subscription connects again
n=$(db_sql v3 postgres "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication")
expect "the link cut at the source's end (one walsender per environment)" "$n" 2
caught_up && pass "  the target caught up again" || fail "  the target did not catch up after the link was cut at the source"
n=$(db_sql v4 postgres "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'logical replication worker'")
expect "the link cut at the target's end (one apply worker per environment)" "$n" 2
caught_up && pass "  the target caught up again" || fail "  the target did not catch up after the link was cut at the target"
expect "after the faults: one slot and role per environment on v3" "$(one v3)" "$ONE_V3"
expect "after the faults: one subscription per environment on v4" "$(one v4)" "$ONE_V4"
add_notes v3 shop-production 1 2
check "migrate rehearse (the live replica verified)" "$NUBO" migrate rehearse shop
expect "the rehearsal's verification finds no difference" "$(step_result shop verify Production 1 | jq_get differences)" "[]"

# --- 3. the cutover ---
# before the data step, the source node's agent and its PostgreSQL are
# killed: the step meets a dead node and waits to be tried again; once
# the agent is back (and has started its PostgreSQL) it goes on by itself
pause_at data:Production
"$NUBO" migrate cutover shop --no-wait >/dev/null
if reached data:Production; then
	kill9_node v3
	kill -KILL "$(postmaster v3)"
	pause_at repl-dropping	# releases data:Production
	wait_failed_or
	expect "cutover: v3's agent and PostgreSQL dead: the data step waits to be tried again" "$(mstate status)" retrying
	restart_node v3 v3
	# the portal killed just before the replication is dropped, and
	# again just after (before the journal says so)
	if reached repl-dropping; then
		pass "cutover: v3 back, the step went on by itself to the drop"
		kill9_portal
		pause_at repl-dropped
		start_portal
		if reached repl-dropped; then
			pass "cutover: the restarted portal's attempt dropped the replication"
			kill9_portal
			unpause
			start_portal
		else
			fail "cutover: never paused after the drop"
			unpause
		fi
	else
		fail "cutover: never paused before the drop"
		unpause
	fi
else
	fail "the cutover never reached Production's data step"
	unpause
fi
writer_stop
check "the cutover finishes (resume follows the job)" "$NUBO" migrate resume shop
expect "cut-over" "$(mstate state)" cut-over
expect_match "Production's data step found the replication dropped by the attempt before" "$(step_result shop data Production 2 | jq_get note)" "dropped by an earlier attempt"
expect "Production's verification finds no difference" "$(step_result shop verify Production 2 | jq_get differences)" "[]"

written=$(sort -u "$T/written")
n_written=$(wc -l <<< "$written")
[ "$n_written" -gt 20 ] && pass "the writer wrote throughout ($n_written notes)" || fail "the writer wrote only $n_written notes"
missing=$(comm -23 <(echo "$written") <(env_sql v4 Production "SELECT id FROM notes" | sort))
expect "every note the writer was told was saved is on v4" "$missing" ""
compare_envs v3 v4 Production "Production: rows and files equal (psql, sha256sum)"
compare_envs v3 v4 Test "Test: rows and files equal (psql, sha256sum)"
expect "v3 keeps nothing of the replication" "$(leftovers v3 "$S_PROD")" "$NOTHING"
expect "v4 keeps nothing of the replication" "$(leftovers v4 postgres)" "$NOTHING"
finish
