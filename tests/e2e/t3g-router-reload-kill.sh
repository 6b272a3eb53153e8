#!/usr/bin/env bash
# t3g: nginx's master killed in the middle of a reload — after the SIGHUP,
# while the workers of the new config start and before the node could
# record them. They are orphans holding the router's port: the node finds
# them in the dead master's session and kills them, so the restarted
# nginx binds at once (before, it failed "still could not bind()" with
# back-off, the old workers serving the old config meanwhile). The change
# the reload carried (maintenance on) is served once nginx is back.
# Then a heartbeat answered before a change the portal PUT: the stale
# answer does not undo it.
. "$(dirname "$0")/lib.sh"

# the test hook (src/common/testhook.c): a reload waits after its SIGHUP
# while $T/pause names "router-reload-wait"
export NUBO_TEST_PAUSE_FILE=$T/pause
APPS=$NUBO_SRC/tests/e2e/apps
start_portal
check "create app" "$NUBO" apps create shop --no-sandbox
start_node rk v3 --start-timeout 20 --stop-grace 3
check "link app to node" "$NUBO" nodes link rk shop
tar czf "$T/pyapp-1.0.0.tar.gz" -C "$APPS/pyapp" .
check "upload" "$NUBO" packages upload rk "$T/pyapp-1.0.0.tar.gz"
check "transport" "$NUBO" envs transport shop Test pyapp-1.0.0
check "start" "$NUBO" envs start shop Test
HOST=shop-test.nubo.localhost
D=$T/node-rk
expect "served" "$(route_status rk $HOST /count)" 200

master() { cat "$D/nginx/nginx.pid"; }
kids() { cat "/proc/$1/task/$1/children" 2>/dev/null; }
m=$(master)
before=$(kids "$m")
rm -f "$T/pause.reached"
echo router-reload-wait > "$T/pause.new" && mv -f "$T/pause.new" "$T/pause"
"$NUBO" envs maintenance shop Test on > "$T/maint.out" 2>&1 &
mpid=$!
for _ in $(seq 300); do [ -s "$T/pause.reached" ] && break; sleep 0.1; done
expect "a reload waits after its SIGHUP" "$(cat "$T/pause.reached" 2>/dev/null)" router-reload-wait
# the new config's workers: children the master did not have before
new=""
for _ in $(seq 100); do
	new=$(comm -13 <(printf '%s\n' $before | sort) <(printf '%s\n' $(kids "$m") | sort) | tr '\n' ' ')
	[ "$(printf '%s\n' $new | grep -c .)" -ge 2 ] && break
	sleep 0.05
done
[ -n "$new" ] && pass "the reload started workers: $new" || fail "no new workers after the SIGHUP"
check "kill nginx's master (-9) in the middle of the reload" kill -9 "$m"
rm -f "$T/pause" "$T/pause.reached"
gone=1
for _ in $(seq 100); do
	gone=1
	for p in $new; do [ -d "/proc/$p" ] && [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ] && gone=0; done
	[ $gone = 1 ] && break
	sleep 0.1
done
expect "the workers it started are killed (10 s at most)" "$gone" 1
expect_match "the node says so" "$(grep -a "nginx workers\? the dead master left" "$T/node-rk.log")" "stopping [0-9]+ nginx worker"
for _ in $(seq 100); do [ -s "$D/nginx/nginx.pid" ] && [ "$(master)" != "$m" ] && grep -qa nginx "/proc/$(master)/cmdline" 2>/dev/null && break; sleep 0.1; done
[ "$(master)" != "$m" ] && pass "a new nginx master within 10 s" || fail "no new nginx master 10 s after the old one was killed: $(grep -aE 'router|nginx' "$T/node-rk.log" | tail -6)"
expect "nginx never failed to bind its port" "$(grep -c "could not bind" "$T/node-rk.log" || [ $? = 1 ])" 0
wait "$mpid" || true
for _ in $(seq 100); do [ "$(route_status rk $HOST /count)" = 503 ] && break; sleep 0.1; done
expect "the reload's change is served (maintenance on)" "$(route_status rk $HOST /count)" 503

# --- a heartbeat the portal answered before a change it then PUT to the
# node: the stale list must not undo the change (maintenance lifted here;
# before, the heartbeat put it back until the next one, and a custom
# domain just added went unserved the same way) ---
rm -f "$T/pause.reached"
echo heartbeat-answered > "$T/pause.new" && mv -f "$T/pause.new" "$T/pause"
for _ in $(seq 300); do [ -s "$T/pause.reached" ] && break; sleep 0.1; done
expect "a heartbeat waits, answered (maintenance on)" "$(cat "$T/pause.reached" 2>/dev/null)" heartbeat-answered
check "maintenance off meanwhile" "$NUBO" envs maintenance shop Test off
expect "  served at once" "$(route_status rk $HOST /count)" 200
from=$(passes heartbeat "$NODE_PID_rk")
rm -f "$T/pause" "$T/pause.reached"
wait_passes heartbeat "$NODE_PID_rk" 1 "$from"
expect "  the stale answer left the node's spec alone" \
	"$(jq -r .spec.maintenance "$D/envs/$(env_id rk Test)/env.json")" false
# a reload the stale spec asked for would come with the supervisor's next
# pass (0.2 s); the following heartbeats must not change it either
wait_passes heartbeat "$NODE_PID_rk" 2
expect "  still served after more heartbeats" "$(route_status rk $HOST /count)" 200
finish
