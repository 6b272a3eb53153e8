#!/usr/bin/env bash
# t3e: a node heals its own PostgreSQL and nginx. With an app running:
# the postmaster killed (-9) while a broken setting makes restarts fail
# (the environment says `degraded` with the reason, in the portal and the
# activity log; back-off; running again once the setting is fixed), the
# postmaster killed plainly, nginx's master killed (its orphaned workers
# are killed, a maintenance change is served by the new nginx), all of
# nginx killed; each time the app serves its data again within a stated
# time. `stop-all` stops the workers of a master killed while the agent
# was away. A broken main config of nginx (its error log) is not blamed on
# the environment's part. An agent started while nginx cannot start at
# all runs on (back-off, degraded); a start and a restart meanwhile end
# `degraded`, not `failed`. An agent started while its PostgreSQL cannot
# start runs on too, and an app that crash-loops without its database is
# `degraded`, not `failed`; both run again once PostgreSQL is back; a restart
# meanwhile is refused (503 DATABASE_DOWN). A node whose --pg server does
# not answer when its agent starts runs on as well (degraded, running
# again once the server answers).
. "$(dirname "$0")/lib.sh"

# the test hook (src/common/testhook.c): step 5 names router-part-refused,
# where the router leaves an environment's part out
export NUBO_TEST_PAUSE_FILE=$T/pause

APPS=$NUBO_SRC/tests/e2e/apps
start_portal
check "create app" "$NUBO" apps create shop --no-sandbox
start_node heal v3 --start-timeout 20 --stop-grace 3
check "link app to node" "$NUBO" nodes link heal shop
tar czf "$T/pyapp-1.0.0.tar.gz" -C "$APPS/pyapp" .
check "upload" "$NUBO" packages upload heal "$T/pyapp-1.0.0.tar.gz"
check "transport" "$NUBO" envs transport shop Test pyapp-1.0.0
check "start" "$NUBO" envs start shop Test
HOST=shop-test.nubo.localhost
D=$T/node-heal
expect "write a row" "$(route heal $HOST /add/one | jq_get count)" 1

state() { env_state shop Test "$@"; }
# restart_refused APP WHAT: nubo envs restart APP Test fails while WHAT
# (its database server) is down, with the agent's 503 DATABASE_DOWN reason
restart_refused() {
	check_fails "a restart while $2 is down is refused" 1 "$NUBO" envs restart "$1" Test
	expect_match "with the reason (the agent's 503 DATABASE_DOWN)" "$(cat "$T/last.err")" "restart failed: cannot restart 'Test' now: the node's PostgreSQL is down"
}
# wait_state WANT SECONDS: poll the portal's state; 0 once it is WANT
wait_state() { wait_env_state shop Test "$@"; }
# serves_count N SECONDS: the app answers through nginx with N rows
serves_count() {
	local i
	for i in $(seq $(($2 * 10))); do
		[ "$(route heal $HOST /count | jq_get count 2>/dev/null)" = "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
secs() { python3 -c 'import time; print(f"{time.monotonic():.1f}")'; }
since() { python3 -c "import time; print(f'{time.monotonic() - $1:.1f}')"; }
postmaster() { head -1 "$D/pg/data/postmaster.pid"; }
master() { cat "$D/nginx/nginx.pid"; }

# 1. the postmaster killed plainly: back within seconds
kill -9 "$(postmaster)"
t0=$(secs)
if serves_count 1 20; then
	took=$(since "$t0")
	pass "postmaster killed: the app serves its data again after $took s (limit 20 s)"
else
	fail "the app does not serve 20 s after the postmaster was killed"
fi
expect "write after the restart" "$(route heal $HOST /add/two | jq_get count)" 2

# 2. nginx's master killed: its workers hold the port until the node
# kills them; a change is then served by the new nginx
m=$(master)
kill -9 "$m"
t0=$(secs)
for _ in $(seq 100); do
	[ -s "$D/nginx/nginx.pid" ] && [ "$(master)" != "$m" ] && grep -qa nginx "/proc/$(master)/cmdline" 2>/dev/null && break
	sleep 0.1
done
[ "$(master)" != "$m" ] || fail "no new nginx master 10 s after the old one was killed; the node said: $(grep -aE 'router|nginx' "$T/node-heal.log" | tail -8)"
if serves_count 2 10; then pass "nginx's master killed: served again after $(since "$t0") s (limit 20 s)"; else fail "not served after nginx's master was killed"; fi
check "maintenance on" "$NUBO" envs maintenance shop Test on
expect "maintenance is served by the new nginx at once" "$(route_status heal $HOST /count)" 503
check "maintenance off" "$NUBO" envs maintenance shop Test off
expect "maintenance off: served" "$(route_status heal $HOST /count)" 200

# 3. all of nginx killed
m=$(master)
kill -9 "$m" $(cat "/proc/$m/task/$m/children")
t0=$(secs)
if serves_count 2 20; then pass "all of nginx killed: served again after $(since "$t0") s (limit 20 s)"; else fail "not served 20 s after all of nginx was killed"; fi
# the portal hears of it with the node's next report
if wait_state running 10; then pass "running"; else fail "still $(state) 10 s after nginx serves again"; fi

# 4. the postmaster dies and a broken setting makes every restart fail:
# degraded with the reason, meanwhile; running again once it is fixed
cp "$D/pg/data/postgresql.conf" "$T/postgresql.conf.good"
echo "nubo_no_such_setting = 1" >> "$D/pg/data/postgresql.conf"
pm=$(postmaster)
kill -9 "$pm"
if wait_state degraded 15; then pass "postmaster killed: the environment is degraded"; else fail "not degraded after the postmaster died (state $(state))"; fi
expect_match "the reason names PostgreSQL" "$(state reason)" "the node's PostgreSQL is down"
for _ in $(seq 50); do
	grep -q "restart [0-9]* failed" <<< "$(state reason)" && break
	sleep 0.2
done
expect_match "the reason carries PostgreSQL's own words" "$(state reason)" "restart [0-9]+ failed .*nubo_no_such_setting.*next try in [0-9]+ s"
expect_match "envs show prints the reason" "$("$NUBO" envs show shop Test)" "reason +the node's PostgreSQL is down"
expect "the app answers, without its database" "$(route_status heal $HOST /count)" 500
# a restart now would stop instances that could not start again: the node
# refuses it (503 DATABASE_DOWN) and the environment stays as it was
EID=$(env_id heal Test)
out=$(curl -s -w '\n%{http_code}' -X POST -H "Authorization: Bearer $(jq_get portal_secret < "$D/agent.json")" "$NODE_URL_heal/agent/v1/environments/$EID/restart")
expect "a restart while PostgreSQL is down: the node answers 503" "$(tail -1 <<< "$out")" 503
expect "with DATABASE_DOWN" "$(head -1 <<< "$out" | jq_get error.code)" DATABASE_DOWN
check_fails "nubo envs restart is refused" 1 "$NUBO" envs restart shop Test
expect_match "it says why" "$(cat "$T/last.err")" "cannot restart 'Test' now: the node's PostgreSQL is down"
expect "the environment is still degraded, not failed" "$(state)" degraded
# a snapshot now is refused the same way (not a pg_dump error, not a
# snapshot listed as completed)
completed() { "$NUBO" backups list shop Test --json | python3 -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin)["snapshots"] if s["state"] == "completed"))'; }
nsnap=$(completed)
out=$(curl -s -w '\n%{http_code}' -X POST -H "Authorization: Bearer $(jq_get portal_secret < "$D/agent.json")" -H 'Content-Type: application/json' -d '{"snapshot":"00000000-0000-4000-8000-000000000001"}' "$NODE_URL_heal/agent/v1/environments/$EID/snapshots")
expect "a snapshot while PostgreSQL is down: the node answers 503" "$(tail -1 <<< "$out")" 503
expect "with DATABASE_DOWN" "$(head -1 <<< "$out" | jq_get error.code)" DATABASE_DOWN
expect_match "naming the cause" "$(head -1 <<< "$out" | jq_get error.message)" "no snapshot of environment $EID can be taken now: the node's PostgreSQL is down"
check_fails "nubo backups create is refused" 1 "$NUBO" backups create shop Test
expect_match "it says why" "$(cat "$T/last.err")" "the node's PostgreSQL is down"
expect "no completed snapshot was added" "$(completed)" "$nsnap"
# the first two failed restarts (the count goes on from step 1's restart
# when that was less than 30 s ago)
pgwaits() { grep -o "PostgreSQL: restart [0-9]* failed.*next try in [0-9]* s" "$T/node-heal.log" | grep -o "[0-9]* s$" | tr -d ' s' || [ $? = 1 ]; }
for _ in $(seq 100); do
	[ "$(pgwaits | wc -l)" -ge 2 ] && break
	sleep 0.2
done
waits=$(pgwaits | sed -n 1,2p | tr '\n' ' ')
expect_match "failed restarts are retried with back-off (waits: $waits)" "$waits" "(^| )(1 2|2 4|4 8|8 16|16 30) "
cp "$T/postgresql.conf.good" "$D/pg/data/postgresql.conf"
t0=$(secs)
if wait_state running 40; then pass "running again once PostgreSQL could start ($(since "$t0") s after the fix)"; else fail "still $(state) 40 s after the fix"; fi
if serves_count 2 10; then pass "the app serves its data again"; else fail "the app does not serve its data"; fi
expect "no reason once healed" "$(state reason)" ""
act=$("$NUBO" apps activity shop --json | python3 -c 'import json,sys; [print(a["action"], a["detail"]) for a in json.load(sys.stdin)]')
expect_match "activity: degraded, with the reason" "$act" "environment.degraded.*Test is degraded: the node's PostgreSQL is down"
expect_match "activity: healed" "$act" "environment.healed.*Test is running again"
[ "$(postmaster)" != "$pm" ] && pass "a new postmaster ($(postmaster))" || fail "postmaster unchanged"

# 5. nginx's master killed while its log folder is broken: degraded,
# its orphaned workers killed at once, healed once it is fixed. nginx
# refuses the main config alone then: no environment's part is checked on
# its own for it (the hook where a part is left out would hold the
# router; on the old code a fix while it held left the part out for good)
echo router-part-refused > "$T/pause.new" && mv -f "$T/pause.new" "$T/pause"
m=$(master)
workers=$(cat "/proc/$m/task/$m/children")
[ -n "$workers" ] && pass "nginx master $m has workers ($workers)" || fail "no workers of $m"
# a broken log folder makes the restart fail for a while: degraded
mv "$D/nginx/logs/error.log" "$D/nginx/logs/error.log.old"
mkdir "$D/nginx/logs/error.log"
kill -9 "$m"
if wait_state degraded 15; then pass "nginx's master killed: degraded"; else fail "not degraded after nginx's master died (state $(state))"; fi
expect_match "the reason names the router" "$(state reason)" "the node's router \\(nginx\\) is down"
left=0
for w in $workers; do
	grep -qa nginx "/proc/$w/cmdline" 2>/dev/null && left=$((left + 1))
done
expect "the orphaned workers were killed" "$left" 0
for _ in $(seq 50); do
	grep -q "restart [0-9]* failed" <<< "$(state reason)" && break
	sleep 0.2
done
expect_match "the reason carries nginx's own words" "$(state reason)" "restart [0-9]+ failed \(.*error.log.*Is a directory"
expect "no environment's part was left out for the node's fault" "$(cat "$T/pause.reached" 2>/dev/null)" ""
expect_match "the node's log blames nginx's main config" "$(grep -c "nginx refuses the router's main configuration, before any environment's part: .*error.log.*Is a directory" "$T/node-heal.log")" "^[1-9]"
rmdir "$D/nginx/logs/error.log"
mv "$D/nginx/logs/error.log.old" "$D/nginx/logs/error.log"
rm -f "$T/pause"
t0=$(secs)
if wait_state running 40; then pass "running again once nginx could start ($(since "$t0") s after the fix)"; else fail "still $(state) 40 s after the fix"; fi
if serves_count 2 10; then pass "served again by a new nginx"; else fail "not served after nginx's restart"; fi
[ "$(master)" != "$m" ] && pass "a new nginx master ($(master))" || fail "nginx master unchanged"
expect "the environment's part is served whole (no router error)" "$(state router_error)" ""

# 6. the agent away, nginx's master killed: stop-all stops its workers
stop_node heal
m=$(master)
workers=$(cat "/proc/$m/task/$m/children")
kill -9 "$m"
expect "orphaned workers still serve" "$(route_status heal $HOST /count)" 200
"$NUBOD" node stop-all --data "$D" >/dev/null 2>&1
left=0
for w in $workers; do
	grep -qa nginx "/proc/$w/cmdline" 2>/dev/null && left=$((left + 1))
done
expect "stop-all stopped the orphaned workers" "$left" 0
expect "nothing answers on the router's port" "$(route_status heal $HOST /count)" 000

# 7. nginx cannot start at all when the agent starts: the agent runs on
# and retries with back-off; a start and a restart meanwhile end
# degraded (with the reason), not failed, and run once nginx is back
mv "$D/nginx/logs/error.log" "$D/nginx/logs/error.log.old"
mkdir "$D/nginx/logs/error.log"
ROUTER_NO_WAIT=1 start_node heal v3 --start-timeout 5 --stop-grace 3
sleep 1
kill -0 "$NODE_PID_heal" 2>/dev/null && pass "the agent runs without its router" || fail "the agent exited: $(tail -3 "$T/node-heal.log")"
check "start while nginx cannot start" "$NUBO" envs start shop Test
expect "the start ends degraded" "$(state)" degraded
expect_match "the reason names the router" "$(state reason)" "the node's router \(nginx\) is down"
sleep 7	# past the start timeout (5 s): the start waits, it does not fail
expect "still degraded past the start timeout, not failed" "$(state)" degraded
check "restart while nginx cannot start" "$NUBO" envs restart shop Test
sleep 7
expect "the restart ends degraded too" "$(state)" degraded
nwaits() { grep -o "router (nginx): restart [0-9]* failed.*next try in [0-9]* s" "$T/node-heal.log" | grep -o "[0-9]* s$" | tr -d ' s' || [ $? = 1 ]; }
waits=$(nwaits | tail -n 4 | tr '\n' ' ')
expect_match "nginx's start is retried with back-off (last waits: $waits)" "$waits" "(1 2 4 8|2 4 8 16|4 8 16 30|8 16 30 30) "
rmdir "$D/nginx/logs/error.log"
mv "$D/nginx/logs/error.log.old" "$D/nginx/logs/error.log"
t0=$(secs)
if wait_state running 40; then pass "running once nginx could start ($(since "$t0") s after the fix)"; else fail "still $(state) 40 s after the fix"; fi
if serves_count 2 10; then pass "the app serves its data"; else fail "the app does not serve its data"; fi

# 8. PostgreSQL cannot start when the agent starts: the agent runs on,
# environments say degraded; an app that cannot start without its
# database crash-loops degraded, not failed; both run once it is back
mkdir -p "$T/dbapp"
cp -r "$APPS/pyapp/." "$T/dbapp/"
printf '%s\n' '#!/bin/sh' '# pyapp, but it will not start without its database' \
	'psql "$DATABASE_URL" -Atqc "SELECT 1" >/dev/null || { echo "dbapp: no database"; exit 1; }' \
	'exec python3 "$(dirname "$0")/app.py"' > "$T/dbapp/bin/start"
sed -i 's/"name": "pyapp"/"name": "dbapp"/' "$T/dbapp/nubo.json"
tar czf "$T/dbapp-1.0.0.tar.gz" -C "$T/dbapp" .
check "upload dbapp" "$NUBO" packages upload heal "$T/dbapp-1.0.0.tar.gz"
check "transport dbapp to Acceptance" "$NUBO" envs transport shop Acceptance dbapp-1.0.0
check "start Acceptance" "$NUBO" envs start shop Acceptance
AHOST=shop-acceptance.nubo.localhost
expect "Acceptance writes a row" "$(route heal $AHOST /add/a | jq_get count)" 1
stop_node heal
echo "nubo_no_such_setting = 1" >> "$D/pg/data/postgresql.conf"
kill -9 "$(postmaster)"
start_node heal v3 --start-timeout 5 --stop-grace 3
sleep 1
kill -0 "$NODE_PID_heal" 2>/dev/null && pass "the agent runs without its PostgreSQL" || fail "the agent exited: $(tail -3 "$T/node-heal.log")"
if wait_state degraded 15; then pass "Test is degraded"; else fail "Test is $(state)"; fi
expect_match "the reason names PostgreSQL" "$(state reason)" "the node's PostgreSQL is down"
restart_refused shop PostgreSQL
expect "the refused restart changed nothing" "$(state)" degraded
# Acceptance's instance dies: every restart fails without the database
apid=$("$NUBO" envs show shop Acceptance --json | jq_get running.0.pid)
[ -n "$apid" ] && [ "$apid" != 0 ] && kill -9 "$apid"
for _ in $(seq 150); do
	grep -q "crashed 5 times in a row while the node's PostgreSQL is down" "$D"/envs/*/logs/app.log 2>/dev/null && break
	sleep 0.2
done
sleep 2
expect "a crash loop without the database: degraded, not failed" "$(env_state shop Acceptance)" degraded
expect_match "with the reason" "$(env_state shop Acceptance reason)" "the node's PostgreSQL is down"
pwaits=$(grep -o "PostgreSQL: restart [0-9]* failed.*next try in [0-9]* s" "$T/node-heal.log" | grep -o "[0-9]* s$" | tr -d ' s' | tail -n 3 | tr '\n' ' ')
expect_match "PostgreSQL's start is retried with back-off (last waits: $pwaits)" "$pwaits" "(1 2 4|2 4 8|4 8 16|8 16 30|16 30 30) "
cp "$T/postgresql.conf.good" "$D/pg/data/postgresql.conf"
t0=$(secs)
if wait_env_state shop Acceptance running 45; then pass "Acceptance runs again once PostgreSQL is back ($(since "$t0") s)"; else fail "Acceptance still $(env_state shop Acceptance)"; fi
if wait_state running 10; then pass "Test runs again"; else fail "Test still $(state)"; fi
expect "Acceptance serves its data" "$(route heal $AHOST /count | jq_get count)" 1
if serves_count 2 10; then pass "Test serves its data"; else fail "Test does not serve its data"; fi

# 9. --pg: a node using a server of its own choice (here heal's cluster)
# that does not answer when its agent starts runs on, its environments
# degraded with the reason; they run again once the server answers
PGPORT=$(sed -n 3p "$T/node-heal.ports")
PGPW=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "$D/pg/admin.json")
PGURI="postgresql://nubo_admin:$PGPW@127.0.0.1:$PGPORT/postgres"
check "app for the --pg node" "$NUBO" apps create ext --no-sandbox
start_node hext v3 --pg "$PGURI" --start-timeout 20 --stop-grace 3
check "link ext" "$NUBO" nodes link hext ext
check "upload to hext" "$NUBO" packages upload hext "$T/pyapp-1.0.0.tar.gz"
check "transport ext" "$NUBO" envs transport ext Test pyapp-1.0.0
check "start ext" "$NUBO" envs start ext Test
XHOST=ext-test.nubo.localhost
expect "ext writes a row on the --pg server" "$(route hext $XHOST /add/x | jq_get count)" 1
stop_node hext
stop_node heal
kill -9 "$(postmaster)"	# heal's agent is away: nothing starts it again
ROUTER_NO_WAIT=1 start_node hext v3 --pg "$PGURI" --start-timeout 20 --stop-grace 3
sleep 1
kill -0 "$NODE_PID_hext" 2>/dev/null && pass "the agent runs while its --pg server does not answer" || fail "the agent exited: $(tail -3 "$T/node-hext.log")"
if wait_env_state ext Test degraded 15; then pass "ext is degraded"; else fail "ext is $(env_state ext Test)"; fi
expect_match "the reason names PostgreSQL" "$(env_state ext Test reason)" "the node's PostgreSQL is down"
restart_refused ext 'the --pg server'
start_node heal v3 --start-timeout 5 --stop-grace 3
t0=$(secs)
if wait_env_state ext Test running 20; then pass "ext runs again once its server answers ($(since "$t0") s)"; else fail "ext still $(env_state ext Test)"; fi
# its instance kept running through the agent's restart: it reaches the
# database through the new agent's relay
X=$(route hext $XHOST /count)
expect "ext's instance, adopted, serves its data once its server answers" "$(jq_get count <<<"$X" 2>/dev/null)" "1"
[ "$(jq_get count <<<"$X" 2>/dev/null)" = 1 ] || echo "# ext answered: $X"
expect "the server is checked once it answers (as at a start)" "$(grep -c "using the PostgreSQL server at 127.0.0.1:$PGPORT" "$T/node-hext.log")" 2

finish

