#!/usr/bin/env bash
# t5a: the nightly schedule and retention on an injected clock
# (NUBO_CLOCK_OFFSET): a running environment gets a nightly snapshot at the
# nightly time; it expires after 2 weeks (a Monday's nightly) and is then
# deleted from the portal and from the node. A degraded environment (the
# node's PostgreSQL down and failing to restart) still gets its nightly:
# it fails saying so, and the retry 15 minutes later, PostgreSQL back,
# completes; the app, crashing without its database meanwhile, is not
# failed. With the router down (nginx cannot start) the nightly
# completes. A failed environment (its app crashed) gets its nightly too.
. "$(dirname "$0")/lib.sh"

PKG=$(ls "$NUBO_BUILD"/packages/notes-*.tar.gz 2>/dev/null | head -1)
[ -n "$PKG" ] || { echo "t5a: the notes package is not built (make examples)" >&2; exit 1; }
# every process runs 20 s before 02:00 UTC on the next Monday
export NUBO_CLOCK_OFFSET=$(python3 -c '
import datetime as d, time
now = d.datetime.now(d.timezone.utc)
day = (now + d.timedelta(days=(7 - now.weekday()) % 7 or 7)).replace(hour=1, minute=59, second=40, microsecond=0)
print(int(day.timestamp() - time.time()))')
# that Monday's 00:00 in the processes' time (the offset is whole seconds)
MON=$(( ($(date +%s) + NUBO_CLOCK_OFFSET) / 86400 * 86400 ))
export NUBO_NIGHTLY_TIME=02:00
start_portal
start_notes shop cloud3 "$PKG"
# Acceptance stays stopped: no nightly for it
for i in $(seq 120); do
	n=$("$NUBO" backups list shop Test --json | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin)["snapshots"] if s["type"] == "nightly" and s["state"] == "completed"))')
	[ "$n" -ge 1 ] && break
	sleep 0.5
done
expect "a nightly snapshot of the running environment" "$n" 1
S=$("$NUBO" backups list shop Test --json | jq_get snapshots.0)
NID=$(printf '%s' "$S" | jq_get id)
expect_match "taken at the nightly time" "$(printf '%s' "$S" | jq_get created)" 'T02:0[0-1]:'
expect "a Monday nightly expires after 2 weeks" "$(python3 -c "
import datetime as d
c = d.datetime.fromisoformat('$(printf '%s' "$S" | jq_get created)'.replace('Z', '+00:00'))
e = d.datetime.fromisoformat('$(printf '%s' "$S" | jq_get expires)'.replace('Z', '+00:00'))
print((e - c).days)")" 14
expect "no nightly for a stopped environment" "$("$NUBO" backups list shop Acceptance --json | jq_get snapshots)" "[]"
wait_passes scheduler-pass "$PORTAL_PID" 2	# the next passes take no second one
expect "one nightly per night" "$("$NUBO" backups list shop Test --json | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin)["snapshots"] if s["type"] == "nightly"))')" 1
check "a manual snapshot too" "$NUBO" backups create shop Test
expect "the node holds the archive" "$(ls "$T/node-cloud3/snapshots" | grep -c "$NID")" 1

# 15 days later: the nightly has expired, the manual one (3 months) stays
stop_portal
export NUBO_CLOCK_OFFSET=$((NUBO_CLOCK_OFFSET + 15 * 86400 + 3600))
start_portal
for i in $(seq 60); do
	"$NUBO" backups show shop Test "$NID" >/dev/null 2>&1 || break
	sleep 0.5
done
check_fails "the expired nightly is deleted" 1 "$NUBO" backups show shop Test "$NID"
expect "and its archive is gone from the node" "$(count "$NID" ls "$T/node-cloud3/snapshots")" 0
expect "the manual snapshot is kept" "$("$NUBO" backups list shop Test --json | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin)["snapshots"] if s["type"] == "manual"))')" 1

# A degraded environment is backed up at night too.
D=$T/node-cloud3
state() { env_state shop Test "$@"; }
# wait_state WANT SECONDS: poll the portal's state; 0 once it is WANT
wait_state() { wait_env_state shop Test "$@"; }
portal_at() { # DAY SECONDS: the portal restarted at MON + DAY days + SECONDS
	stop_portal
	export NUBO_CLOCK_OFFSET=$((MON + $1 * 86400 + $2 - $(date +%s)))
	start_portal
}
# nightly DATE STATE [ENV]: wait (60 s at most) for a nightly of ENV (Test)
# taken on DATE (YYYY-mm-dd) in STATE; its JSON
nightly() {
	local i s
	for i in $(seq 120); do
		s=$("$NUBO" backups list shop "${3:-Test}" --json | python3 -c '
import json, sys
for s in json.load(sys.stdin)["snapshots"]:
    if s["type"] == "nightly" and s["created"].startswith(sys.argv[1]) and s["state"] == sys.argv[2]:
        print(json.dumps(s)); break' "$1" "$2")
		[ -n "$s" ] && break
		sleep 0.5
	done
	printf '%s' "$s"
}
day() { date -u -d "@$((MON + $1 * 86400))" +%Y-%m-%d; }

# the postmaster killed while a broken setting fails every restart: the
# nightly fails with the reason, and its retry 15 minutes later, once
# PostgreSQL is back, completes
cp "$D/pg/data/postgresql.conf" "$T/postgresql.conf.good"
echo "nubo_no_such_setting = 1" >> "$D/pg/data/postgresql.conf"
kill -9 "$(head -1 "$D/pg/data/postmaster.pid")"
if wait_state degraded 15; then pass "PostgreSQL down: Test is degraded"; else fail "not degraded with PostgreSQL down (state $(state))"; fi
portal_at 16 7205
S=$(nightly "$(day 16)" failed)
[ -n "$S" ] && pass "the nightly of the environment without its database failed" || fail "no failed nightly while PostgreSQL was down: $("$NUBO" backups list shop Test --json)"
expect_match "it says why" "$(printf '%s' "$S" | jq_get error)" "no snapshot of environment [0-9]+ can be taken now: the node's PostgreSQL is down"
cp "$T/postgresql.conf.good" "$D/pg/data/postgresql.conf"
# the app crash-loops without its database: degraded, never failed
for _ in $(seq 200); do [ "$(state)" = running ] || [ "$(state)" = failed ] && break; sleep 0.2; done
[ "$(state)" != failed ] && pass "the app that crashed without its database is not failed" || fail "failed while PostgreSQL was down: $(state error)"
if wait_state running 40; then pass "running again once PostgreSQL could start"; else fail "still $(state) after the setting was fixed"; fi
portal_at 16 $((7200 + 900 + 5))
S=$(nightly "$(day 16)" completed)
[ -n "$S" ] && pass "the retry 15 minutes later completed" || fail "no completed retry: $("$NUBO" backups list shop Test --json)"
expect "its comment says it is a retry" "$(printf '%s' "$S" | jq_get comment)" "nightly (retry)"
expect "one failed and one completed nightly that night" "$("$NUBO" backups list shop Test --json | python3 -c '
import json, sys
print(sorted(s["state"] for s in json.load(sys.stdin)["snapshots"] if s["type"] == "nightly" and s["created"].startswith(sys.argv[1])))' "$(day 16)")" "['completed', 'failed']"

# the router down (nginx's log folder broken, its master killed): the
# nightly completes all the same
mv "$D/nginx/logs/error.log" "$D/nginx/logs/error.log.old"
mkdir "$D/nginx/logs/error.log"
kill -9 "$(cat "$D/nginx/nginx.pid")"
if wait_state degraded 15; then pass "router down: Test is degraded"; else fail "not degraded with the router down (state $(state))"; fi
expect_match "the reason names the router" "$(state reason)" "the node's router \(nginx\) is down"
portal_at 17 7205
S=$(nightly "$(day 17)" completed)
[ -n "$S" ] && pass "the nightly with the router down completed" || fail "no completed nightly with the router down: $("$NUBO" backups list shop Test --json)"
expect "the router was down all along" "$(state)" degraded
rmdir "$D/nginx/logs/error.log"
mv "$D/nginx/logs/error.log.old" "$D/nginx/logs/error.log"
if wait_state running 40; then pass "running again once nginx could start"; else fail "still $(state) after nginx's log was fixed"; fi

# a failed environment (its app crashes at every start) still has its
# database and files: it gets its nightly
mkdir -p "$T/crasher"
cp -r "$NUBO_SRC/tests/e2e/apps/crasher/." "$T/crasher/"
tar czf "$T/crasher-1.0.0.tar.gz" -C "$T/crasher" .
"$NUBO" packages upload cloud3 "$T/crasher-1.0.0.tar.gz" >/dev/null
check "transport the crasher to Production" "$NUBO" envs transport shop Production "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["name"] + "-" + d["version"])' "$T/crasher/nubo.json")"
"$NUBO" envs start shop Production >/dev/null 2>&1 || true
if wait_env_state shop Production failed 60; then pass "Production failed"; else fail "Production is $(env_state shop Production)"; fi
portal_at 18 7205
S=$(nightly "$(day 18)" completed Production)
[ -n "$S" ] && pass "the failed environment got its nightly" || fail "no nightly of the failed environment: $("$NUBO" backups list shop Production --json)"
finish

