#!/usr/bin/env bash
# t3e: a node heals its own PostgreSQL and nginx. With an app running:
# the postmaster killed (-9) while a broken setting makes restarts fail
# (the environment says `degraded` with the reason, in the portal and the
# activity log; back-off; running again once the setting is fixed), the
# postmaster killed plainly, nginx's master killed (its orphaned workers
# are killed, a maintenance change is served by the new nginx), all of
# nginx killed; each time the app serves its data again within a stated
# time. `stop-all` stops the workers of a master killed while the agent
# was away.
. "$(dirname "$0")/lib.sh"

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
# its orphaned workers killed at once, healed once it is fixed
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
rmdir "$D/nginx/logs/error.log"
mv "$D/nginx/logs/error.log.old" "$D/nginx/logs/error.log"
t0=$(secs)
if wait_state running 40; then pass "running again once nginx could start ($(since "$t0") s after the fix)"; else fail "still $(state) 40 s after the fix"; fi
if serves_count 2 10; then pass "served again by a new nginx"; else fail "not served after nginx's restart"; fi
[ "$(master)" != "$m" ] && pass "a new nginx master ($(master))" || fail "nginx master unchanged"

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

finish
