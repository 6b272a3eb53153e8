#!/usr/bin/env bash
# t3: a node runs apps for real — registration, a third-party app deployed
# and started through the CLI, served by nginx by Host header, using its
# PostgreSQL database through DATABASE_URL and its files dir; stop/start
# keeps data; kill -9 → the supervisor restarts it and the log says so;
# transport into a running environment refused; a start that never gets
# healthy fails with the app's last log lines; clean wipes; maintenance
# page; restart of node and portal with apps running keeps them serving
# with the right states.
. "$(dirname "$0")/lib.sh"

APPS=$NUBO_SRC/tests/e2e/apps
# the test hook (src/common/testhook.c): a request held at a named point
export NUBO_TEST_PAUSE_FILE=$T/pause
start_portal

put_package() { # NODE ID SRCDIR: upload to the node's repository
	tar czf "$T/$2.tar.gz" -C "$3" .
	"$NUBO" packages upload "$1" "$T/$2.tar.gz" >/dev/null
}

check "create app" "$NUBO" apps create shop --no-sandbox
start_node cloud3 v3 --start-timeout 8 --stop-grace 3
check "link app to node" "$NUBO" nodes link cloud3 shop
expect "node registered its agent" "$(sqlite3 "$T/portal/portal.db" "SELECT agent_url IS NOT NULL FROM nodes WHERE name='cloud3'")" 1
expect "environments listed" "$("$NUBO" envs list shop --json | python3 -c 'import json,sys; print(",".join(e["name"]+":"+e["state"] for e in json.load(sys.stdin)))')" \
	"Test:notdeployed,Acceptance:notdeployed,Production:notdeployed"

put_package cloud3 pyapp-1.0.0 "$APPS/pyapp"
put_package cloud3 httpserver-2.0.0 "$APPS/httpserver"
put_package cloud3 sleeper-0.1.0 "$APPS/sleeper"

check_fails "start without a package refused" 1 "$NUBO" envs start shop Test
expect_match "start refusal says why" "$(cat "$T/last.err")" "no package was transported"
check "transport" "$NUBO" envs transport shop Test pyapp-1.0.0
check_fails "transport of an unknown package" 1 "$NUBO" envs transport shop Test nope-1
expect_match "unknown package message" "$(cat "$T/last.err")" "no package 'nope-1'"
check "start" "$NUBO" envs start shop Test
expect "running" "$("$NUBO" envs show shop Test --json | jq_get state)" running
expect "the node's report is fresh" "$("$NUBO" envs show shop Test --json | jq_get node_online)" true
HOST=shop-test.nubo.localhost
out=$(route cloud3 $HOST /)
expect "served through nginx by Host header" "$(printf '%s' "$out" | jq_get env)" Test
expect "NUBO_APP" "$(printf '%s' "$out" | jq_get app)" shop
expect "DATABASE_URL reaches its own database" "$(printf '%s' "$out" | jq_get db)" "env_$(sqlite3 "$T/portal/portal.db" "SELECT e.id FROM environments e JOIN nodes n ON n.id=e.node_id WHERE n.name='cloud3' AND e.name='Test'")"
EID=$(sqlite3 "$T/portal/portal.db" "SELECT e.id FROM environments e JOIN nodes n ON n.id=e.node_id WHERE n.name='cloud3' AND e.name='Test'")
expect "runs as the environment's own user (env.json)" "$(printf '%s' "$out" | jq_get user)" "$(jq_get uid < "$T/node-cloud3/envs/$EID/env.json")"
uid=$(printf '%s' "$out" | jq_get user)
[ "$uid" -ge 700000 ] && [ "$uid" -le 799999 ] && pass "the user is from the node's range ($uid)" || fail "user $uid is outside 700000-799999"
expect "its uid is claimed host-wide" "$(cat "/run/nubo/uids/$uid")" "$T/node-cloud3 $EID"
expect "URL shown" "$("$NUBO" envs show shop Test --json | jq_get url)" "http://$HOST:$ROUTER_cloud3"
expect "unknown host is 404" "$(route_status cloud3 nobody.nubo.localhost)" 404
# (the link reaches the node with its next heartbeat, every 2 s)
expect "a stopped environment's host is 503" "$(route_status_becomes cloud3 shop-acceptance.nubo.localhost / 503)" 503
expect "write a row" "$(route cloud3 $HOST /add/one | jq_get count)" 1
expect "write another" "$(route cloud3 $HOST /add/two | jq_get count)" 2
route cloud3 $HOST /file/hello >/dev/null

check_fails "transport into a running environment refused" 1 "$NUBO" envs transport shop Test pyapp-1.0.0
expect_match "refusal names the environment" "$(cat "$T/last.err")" "cannot transport into 'Test': environment is running"
check_fails "clean of a running environment refused" 1 "$NUBO" envs clean shop Test --yes
check_fails "clean needs --yes" 2 "$NUBO" envs clean shop Test

# kill -9 an instance: the supervisor restarts it
pid=$("$NUBO" envs show shop Test --json | jq_get running.0.pid)
kill_instance "$pid"
newpid=$pid
for _ in $(seq 60); do
	newpid=$("$NUBO" envs show shop Test --json | jq_get running.0.pid)
	st=$("$NUBO" envs show shop Test --json | jq_get running.0.state)
	[ "$newpid" != "$pid" ] && [ "$st" = running ] && break
	sleep 0.25
done
expect_match "a new instance after kill -9" "$newpid" '^[0-9]+$'
if [ "$newpid" != "$pid" ]; then pass "instance pid changed ($pid → $newpid)"; else fail "instance pid unchanged ($pid)"; fi
expect "serving again" "$(route cloud3 $HOST /count | jq_get count)" 2
logs=$("$NUBO" envs logs shop Test --lines 50)
expect_match "logs show the crash" "$logs" "instance 1 \\(pid $pid, port [0-9]+\\) was killed by signal 9"
expect_match "logs show the app's own output" "$logs" "pyapp listening on port"
rc=0
timeout 3 "$NUBO" envs logs shop Test --follow > "$T/follow.out" 2>&1 || rc=$?
expect "logs --follow runs until stopped" "$rc" 124
# an app that prints bytes that are not UTF-8 (Latin-1 "café", 0xff, a
# NUL, a lone continuation byte) and UTF-8 ("ü"): the log still reads,
# those bytes shown as \xNN, the rest as printed
route cloud3 $HOST /raw/636166e920ff00c32e80c3bc > /dev/null
for _ in $(seq 20); do grep -qa '^.*raw: caf' "$T/node-cloud3/envs/"*/logs/app.log && break; sleep 0.1; done
check "logs with bytes that are not UTF-8" "$NUBO" envs logs shop Test --lines 50
expect_match "they read as \\xNN" "$(cat "$T/last.out")" 'raw: caf\\xe9 \\xff\\x00\\xc3\.\\x80ü$'
check "the instance's lines too" "$NUBO" envs logs shop Test --lines 50 --instance 1
expect_match "with the same bytes" "$(cat "$T/last.out")" 'raw: caf\\xe9 \\xff'
timeout 3 "$NUBO" envs logs shop Test --follow > "$T/follow.out" 2>&1 || true
expect_match "logs --follow reads them" "$(cat "$T/follow.out")" 'raw: caf\\xe9 \\xff\\x00\\xc3\.\\x80ü$'
# long polling of a log: GET …/logs?offset=N&wait=S is held until there
# is something after N, or S seconds; a wait without an offset, or out
# of 1 to 60, is refused
logget() { api_as "$ADMIN_KEY" GET "/apps/shop/environments/Test/logs$1"; }
off=$(logget "?lines=1" | jq_get offset)
expect_match "a log read says its end" "$off" '^[0-9]+$'
for q in "?wait=5" "?offset=$off&wait=0" "?offset=$off&wait=61" "?offset=$off&wait=x"; do
	expect "GET …/logs$q is refused" "$(status_as "$ADMIN_KEY" GET "/apps/shop/environments/Test/logs$q")" 400
done
t0=$(date +%s%N)
doc=$(logget "?offset=$off&wait=1")
held=$((($(date +%s%N) - t0) / 1000000))
expect "nothing new: the held read answers no text" "$(jq_get text <<<"$doc")/$(jq_get offset <<<"$doc")" "/$off"
[ "$held" -ge 900 ] && pass "nothing new: held for the wait (${held} ms)" || fail "nothing new: answered after ${held} ms"
(sleep 1; route cloud3 $HOST /raw/6c6f6e67 > /dev/null) &
t0=$(date +%s%N)
doc=$(logget "?offset=$off&wait=20")
held=$((($(date +%s%N) - t0) / 1000000))
wait $!
expect_match "a held read answers the line written meanwhile" "$(jq_get text <<<"$doc")" "raw: long"
if [ "$held" -ge 900 ] && [ "$held" -lt 10000 ]; then pass "answered once the line came (${held} ms)"
else fail "the held read answered after ${held} ms"; fi

# one-off runs: a fresh sandbox of the environment, its output as it
# comes, its exit status as nubo's
check_fails "a run's exit status is nubo's" 7 "$NUBO" envs run shop Test -- sh -c 'echo to-out; echo to-err >&2; exit 7'
expect "its stdout and stderr, in order" "$(cat "$T/last.out")" "to-out
to-err"
check "a run as the environment's user, with its variables" "$NUBO" envs run shop Test -- sh -c 'id -u; echo "$NUBO_ENV $NUBO_APP"; test -n "$NUBO_RUN" && echo run; echo "$DATABASE_URL"'
expect "run: the environment's own user" "$(sed -n 1p "$T/last.out")" "$uid"
expect "run: NUBO_ENV and NUBO_APP" "$(sed -n 2p "$T/last.out")" "Test shop"
expect "run: NUBO_RUN set" "$(sed -n 3p "$T/last.out")" run
expect_match "run: its own database" "$(sed -n 4p "$T/last.out")" "^postgresql://env_$EID:[^@]+@127\\.0\\.0\\.1:5432/env_$EID\$"
check "a run reaches the database" "$NUBO" envs run shop Test -- sh -c 'psql -XAtq "$DATABASE_URL" -c "SELECT count(*) FROM notes"'
expect "run: the app's rows" "$(cat "$T/last.out")" 2
check "a run writes the files folder" "$NUBO" envs run shop Test -- sh -c 'mkdir -p "$NUBO_FILES_DIR/from-run" && echo hi > "$NUBO_FILES_DIR/from-run/x.txt" && pwd && touch here'
expect "run: the file is the environment's" "$(stat -c '%u %a' "$T/node-cloud3/envs/$EID/files/from-run/x.txt")" "$uid 640"
expect "run: in the app's folder" "$(cat "$T/last.out")" "$T/node-cloud3/envs/$EID/app"
[ ! -e "$T/node-cloud3/envs/$EID/app/here" ] && pass "run: its working area is its own (the package is untouched)" || fail "a run wrote into the package"
printf 'line one\nline two\n' > "$T/run.in"
check "a run reads --input" "$NUBO" envs run shop Test --input "$T/run.in" -- wc -l
expect "run: its standard input" "$(cat "$T/last.out")" 2
check "a run sees none of the instance's processes" "$NUBO" envs run shop Test -- sh -c 'ls /proc | grep -c "^[0-9]"'
[ "$(cat "$T/last.out")" -le 4 ] && pass "run: its own PID namespace ($(cat "$T/last.out") processes)" || fail "run sees $(cat "$T/last.out") processes"
t0=$(date +%s)
check_fails "a run past its time limit fails" 1 "$NUBO" envs run shop Test --timeout 1 -- sleep 60
expect_match "run: says it ran out of time" "$(cat "$T/last.err")" "ran out of its time limit \\(1 s\\)"
[ $(( $(date +%s) - t0 )) -lt 20 ] && pass "run: stopped within seconds" || fail "run: the time limit took $(( $(date +%s) - t0 )) s"
check_fails "run in an environment without a package" 1 "$NUBO" envs run shop Acceptance -- true
expect_match "run: says what is missing" "$(cat "$T/last.err")" "no package deployed"
check_fails "run without a command" 2 "$NUBO" envs run shop Test
expect "run: a command that is not an array is 400" "$(status_as "$ADMIN_KEY" POST /apps/shop/environments/Test/runs '{"command":"ls"}')" 400
expect "run: an empty first word is 400" "$(api_as "$ADMIN_KEY" POST /apps/shop/environments/Test/runs '{"command":[""]}' | jq_get error.code)" BAD_REQUEST
expect "run: a timeout over a day is 400" "$(api_as "$ADMIN_KEY" POST /apps/shop/environments/Test/runs '{"command":["true"],"timeout":86401}' | jq_get error.code)" BAD_REQUEST
expect "run: an unknown run is 404" "$(api_as "$ADMIN_KEY" GET /apps/shop/environments/Test/runs/00000000-0000-4000-8000-000000000000 | jq_get error.code)" RUN_NOT_FOUND
RUN=$(api_as "$ADMIN_KEY" POST /apps/shop/environments/Test/runs '{"command":["echo","secret-output"]}' | jq_get id)
expect_match "run: started through the API" "$RUN" '^[0-9a-f-]{36}$'
RUNNER=$(make_user runner@example.com)
check "a member with transport and logs on Test" "$NUBO" members add shop runner@example.com
check "grant it" "$NUBO" members grant shop runner@example.com --transport Test --logs Test
expect "run: another member cannot read it" "$(api_as "$RUNNER" GET "/apps/shop/environments/Test/runs/$RUN" | jq_get error.code)" RUN_NOT_FOUND
expect "run: nor stop it" "$(status_as "$RUNNER" DELETE "/apps/shop/environments/Test/runs/$RUN")" 404
expect "run: who started it reads it" "$(api_as "$ADMIN_KEY" GET "/apps/shop/environments/Test/runs/$RUN" | jq_get output | base64 -d)" secret-output
# A run that ends while its record is being read is not lost: the read
# is held after the record (still "running") came off the disk, the run
# ends, its last record is saved and it leaves the list of live runs.
RUN=$(api_as "$ADMIN_KEY" POST /apps/shop/environments/Test/runs '{"command":["sleep","2"]}' | jq_get id)
echo run-record-read > "$T/pause"
api_as "$ADMIN_KEY" GET "/apps/shop/environments/Test/runs/$RUN" > "$T/run-held.json" &
HELD=$!
for _ in $(seq 1 100); do
	[ -f "$T/pause.reached" ] && break
	sleep 0.1
done
expect "run: its read is held after the record" "$(cat "$T/pause.reached" 2>/dev/null)" run-record-read
# still running now, so still running when it was read
expect "run: the record read said running" "$(jq -r .state "$T"/node-cloud3/envs/*/runs/"$RUN".json)" running
for _ in $(seq 1 100); do
	[ "$(jq -r .state "$T"/node-cloud3/envs/*/runs/"$RUN".json)" = exited ] && break
	sleep 0.1
done
rm -f "$T/pause" "$T/pause.reached"
wait "$HELD"
expect "run: one that ended while its record was read is not lost" "$(jq_get state < "$T/run-held.json")" exited
expect "run: transport on Test does not run in Acceptance" "$(status_as "$RUNNER" POST /apps/shop/environments/Acceptance/runs '{"command":["true"]}')" 403
expect "psql needs the settings permission" "$(status_as "$RUNNER" POST /apps/shop/environments/Test/psql '{"sql":"SELECT 1"}')" 403
check "psql on the environment's database" "$NUBO" envs psql shop Test --command "SELECT current_user; SELECT count(*) FROM notes"
expect "psql: as the environment's role, its rows" "$(tr -s ' \n' ' ' < "$T/last.out" | sed 's/^ //; s/ $//')" "$(printf 'current_user -------------- env_%s (1 row) count ------- 2 (1 row)' "$EID")"
check_fails "psql stops at the first error" 3 "$NUBO" envs psql shop Test --command "SELECT nope FROM notes; SELECT 1"
expect_match "psql: its own message" "$(cat "$T/last.out" "$T/last.err")" 'column "nope" does not exist'
check_fails "psql cannot reach the cluster's other databases" 3 "$NUBO" envs psql shop Test --command '\c postgres'
expect_match "psql: refused by the server" "$(cat "$T/last.out")" 'no pg_hba.conf entry for host "\[local\]", user "env_'"$EID"'", database "postgres"'
expect_match "run and psql are in the activity log" "$("$NUBO" apps activity shop)" "ran 'sh -c mkdir"
expect_match "psql in the activity log" "$("$NUBO" apps activity shop)" "ran psql on environment 'Test'"
[ -z "$(ls "$T/node-cloud3/envs/$EID/work" | grep -v '^1$')" ] && pass "runs leave no working area behind" || fail "left: $(ls "$T/node-cloud3/envs/$EID/work")"
expect_match "logs --follow prints the log" "$(cat "$T/follow.out")" "pyapp listening on port"

# stop / start keeps data
check "stop" "$NUBO" envs stop shop Test
expect "stopped" "$("$NUBO" envs show shop Test --json | jq_get state)" stopped
expect "stopped: router answers 503" "$(route_status cloud3 $HOST /)" 503
if grep -qs app.py "/proc/$newpid/cmdline"; then fail "instance $newpid still alive after stop"; else pass "instance gone after stop"; fi
check "start again" "$NUBO" envs start shop Test
expect "data kept over stop/start" "$(route cloud3 $HOST /count | jq_get count)" 2
expect "file kept" "$(cat "$T/node-cloud3/envs/"*/files/f.txt)" hello

# maintenance
check "maintenance on" "$NUBO" envs maintenance shop Test on
expect "maintenance: 503" "$(route_status cloud3 $HOST /)" 503
expect_match "maintenance page" "$(route cloud3 $HOST /)" "maintenance"
check "maintenance off" "$NUBO" envs maintenance shop Test off
expect "maintenance off: 200" "$(route_status_becomes cloud3 $HOST /count 200)" 200

# a program already on the host, as is
check "transport http.server app" "$NUBO" envs transport shop Acceptance httpserver-2.0.0
check "start it" "$NUBO" envs start shop Acceptance
expect "static site through nginx" "$(route cloud3 shop-acceptance.nubo.localhost /index.txt)" "hello from a static site"
check "stop an app that ignores SIGTERM" "$NUBO" envs stop shop Acceptance
expect_match "stopped with SIGKILL after the grace time" "$("$NUBO" envs logs shop Acceptance --lines 10)" "did not stop in 3s; killing it"
expect "stubborn app stopped" "$("$NUBO" envs show shop Acceptance --json | jq_get state)" stopped

# a start that never gets healthy fails, with the app's last log lines
check "transport sleeper" "$NUBO" envs transport shop Production sleeper-0.1.0
# the portal killed while the start job runs: the job is re-queued and ends
job=$(api_as "$ADMIN_KEY" POST /apps/shop/environments/Production/start '{}' | jq_get job.id)
# long polling: GET /jobs/{id}?wait=S&revision=R answers once the job is
# no longer at revision R, or after S s; bad queries are refused
jobget() { api_as "$ADMIN_KEY" GET "/jobs/$job$1"; }
rev=$(jobget "" | jq_get revision)
expect_match "a job says its revision" "$rev" "^[0-9a-f]{16}$"
for q in "?wait=5" "?revision=$rev" "?wait=0&revision=$rev" "?wait=61&revision=$rev" "?wait=x&revision=$rev" "?wait=5&revision=ZZZZ" "?wait=5&revision=${rev^^}"; do
	expect "GET /jobs/{id}$q is refused" "$(status_as "$ADMIN_KEY" GET "/jobs/$job$q")" 400
done
# the sleeper's start waits 8 s for a health check that never answers:
# its job does not change for 2 s, so the request is held that long
sleep 0.5
rev=$(jobget "" | jq_get revision)
t0=$(date +%s%N)
doc=$(jobget "?wait=2&revision=$rev")
held=$((($(date +%s%N) - t0) / 1000000))
if [ "$(jq_get state <<<"$doc")" = running ] && [ "$(jq_get revision <<<"$doc")" = "$rev" ]; then
	[ "$held" -ge 1900 ] && pass "an unchanged job's wait is held (${held} ms)" || fail "an unchanged job's wait answered after ${held} ms"
else
	fail "the start job changed or ended within 2 s: $doc"
fi
kill9_portal
start_portal
# an environment of one instance is routed to its socket in every state:
# a request before the app answers gets nubo's page, not nginx's 502
expect "a start's instance not answering yet: 503" "$(route_status cloud3 shop-production.nubo.localhost /)" 503
expect_match "with nubo's page" "$(route cloud3 shop-production.nubo.localhost /)" "This app is not answering"
st= n=0
for _ in $(seq 20); do
	doc=$(jobget "?wait=30&revision=$rev")
	n=$((n + 1))
	st=$(jq_get state <<<"$doc") rev=$(jq_get revision <<<"$doc")
	if [ "$st" = failed ] || [ "$st" = completed ]; then break; fi
done
[ "$n" -le 6 ] && pass "waited for the job in $n requests" || fail "waited for the job in $n requests"
expect "a job survives kill -9 of the portal (re-queued, then failed)" "$st" failed
t0=$SECONDS
expect "a finished job's wait answers at once" "$(jobget "?wait=30&revision=$rev" | jq_get state)" failed
[ $((SECONDS - t0)) -lt 5 ] && pass "at once ($((SECONDS - t0)) s)" || fail "a finished job's wait took $((SECONDS - t0)) s"
expect_match "its error carries the app's log" "$(api_as "$ADMIN_KEY" GET "/jobs/$job" | jq_get error)" "sleeper: warming up forever"
check_fails "start times out" 1 "$NUBO" envs start shop Production
expect_match "failure carries the app's log" "$(cat "$T/last.err")" "sleeper: warming up forever"
expect "state failed" "$("$NUBO" envs show shop Production --json | jq_get state)" failed
check "a failed environment can take a new package" "$NUBO" envs transport shop Production pyapp-1.0.0

# restart the node with apps running: they keep serving, states are right
stop_node cloud3
expect "app serves while the agent is down" "$(route cloud3 $HOST /count | jq_get count)" 2
start_node cloud3 v3 --start-timeout 8 --stop-grace 3
expect "still running after node restart" "$("$NUBO" envs show shop Test --json | jq_get state)" running
expect "same instance re-adopted" "$("$NUBO" envs show shop Test --json | jq_get running.0.pid)" "$("$NUBO" envs show shop Test --json | jq_get running.0.pid)"
grep -q "re-adopted" "$T/node-cloud3.log" && pass "node log says re-adopted" || fail "no re-adoption logged"
expect "Production stopped with its new package" "$("$NUBO" envs show shop Production --json | jq_get state)" stopped

# restart the portal: nothing lost
stop_portal
start_portal
expect "portal restart: Test running" "$("$NUBO" envs show shop Test --json | jq_get state)" running
expect "portal restart: still served" "$(route cloud3 $HOST /count | jq_get count)" 2
check "stop after restarts" "$NUBO" envs stop shop Test

# clean wipes database and files
check "clean" "$NUBO" envs clean shop Test --yes
check "start after clean" "$NUBO" envs start shop Test
expect "database wiped" "$(route cloud3 $HOST /count | jq_get count)" 0
if ls "$T/node-cloud3/envs/"*/files/f.txt >/dev/null 2>&1; then fail "files not wiped"; else pass "files wiped"; fi

finish
