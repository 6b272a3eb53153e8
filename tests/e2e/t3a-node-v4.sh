#!/usr/bin/env bash
# t3a: v4 nodes — an environment scaled to 2 instances is load-balanced by
# nginx over both (requests reach both), scaled down to 1 while running;
# the memory limit reaches the instances; v3 refuses scaling; a Free App's
# sandbox environment on the sandbox node deploys and serves like any other.
. "$(dirname "$0")/lib.sh"

APPS=$NUBO_SRC/tests/e2e/apps
start_portal

put_package() { # NODE ID SRCDIR: upload to the node's repository
	tar czf "$T/$2.tar.gz" -C "$3" .
	"$NUBO" packages upload "$1" "$T/$2.tar.gz" >/dev/null
}

# ports answering through the router in N requests, sorted, comma-joined
ports_seen() { # NODE HOST N
	local i
	for i in $(seq "$3"); do route "$1" "$2" / | jq_get port; done | sort -u | paste -sd, -
}

check "create app" "$NUBO" apps create shop --no-sandbox
start_node cloud4 v4
check "link" "$NUBO" nodes link cloud4 shop
put_package cloud4 pyapp-1.0.0 "$APPS/pyapp"
HOST=shop-acceptance.nubo.localhost

check "transport" "$NUBO" envs transport shop Acceptance pyapp-1.0.0
check "scale a stopped environment" "$NUBO" envs scale shop Acceptance --instances 2 --memory 256
expect "instances recorded" "$("$NUBO" envs show shop Acceptance --json | jq_get instances)" 2
expect "scale is a runtime setting" "$("$NUBO" settings show shop Acceptance --json 2>/dev/null | jq_get settings.runtime.instances)" 2
check "start with 2 instances" "$NUBO" envs start shop Acceptance
env=$("$NUBO" envs show shop Acceptance --json)
expect "two instances running" "$(printf '%s' "$env" | python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)["running"] if i["state"]=="running"))')" 2
p1=$(printf '%s' "$env" | jq_get running.0.port)
p2=$(printf '%s' "$env" | jq_get running.1.port)
[ "$p1" != "$p2" ] && pass "instances on their own ports ($p1, $p2)" || fail "same port twice"
expect "requests reach both instances" "$(ports_seen cloud4 $HOST 20)" "$(printf '%s\n%s\n' "$p1" "$p2" | sort | paste -sd, -)"
pid1=$(printf '%s' "$env" | jq_get running.0.pid)
# the memory cgroup the instance is in (v1's memory hierarchy, or v2)
mem_limit() {
	local v1 v2
	v1=$(awk -F: '$2 == "memory" { print $3 }' "/proc/$1/cgroup")
	v2=$(awk -F: '$1 == "0" { print $3 }' "/proc/$1/cgroup")
	if [ -n "$v1" ] && [ -f "/sys/fs/cgroup/memory$v1/memory.limit_in_bytes" ]; then
		cat "/sys/fs/cgroup/memory$v1/memory.limit_in_bytes"
	elif [ -f "/sys/fs/cgroup$v2/memory.max" ]; then
		cat "/sys/fs/cgroup$v2/memory.max"
	elif [ -f "/sys/fs/cgroup/unified$v2/memory.max" ]; then
		cat "/sys/fs/cgroup/unified$v2/memory.max"
	else
		echo "no memory cgroup for pid $1"
	fi
}
expect "resident memory limit on the instance (its cgroup)" "$(mem_limit "$pid1")" 268435456
expect "both share one database" "$(route cloud4 $HOST /add/x | jq_get count)" 1
expect "write seen by the other instance too" "$(for i in 1 2 3 4; do route cloud4 $HOST /count | jq_get count; done | sort -u)" 1
# each instance's lines are stamped with it; --instance shows one
all=$("$NUBO" envs logs shop Acceptance --lines 200)
expect_match "the log tags instance 1's lines" "$all" '^[0-9T:-]+Z \[instance 1\] pyapp listening on port [0-9]+$'
expect_match "and instance 2's" "$all" '^[0-9T:-]+Z \[instance 2\] pyapp listening on port [0-9]+$'
l2=$("$NUBO" envs logs shop Acceptance --instance 2 --lines 200)
expect_match "--instance 2 shows its start" "$l2" '^[0-9T:-]+Z \[instance 2\] pyapp listening on port [0-9]+$'
expect "--instance 2 shows nothing else" "$(printf '%s\n' "$l2" | grep -Evc '^[0-9T:-]+Z \[instance 2\] ')" 0
f1=$(api_as "$ADMIN_KEY" GET "/apps/shop/environments/Acceptance/logs?offset=0&instance=1" | jq_get text)
expect_match "reading from an offset, one instance" "$f1" '\[instance 1\] pyapp listening'
expect "  and only its lines" "$(printf '%s\n' "$f1" | grep -Evc '^[0-9T:-]+Z \[instance 1\] ')" 0
expect "--instance out of range is a usage error" "$("$NUBO" envs logs shop Acceptance --instance 17 >/dev/null 2>&1; echo $?)" 2

# a memory change alone keeps the instance count and reaches the running
# instances by a rolling restart (one at a time), while the app keeps
# serving and `envs show` says a restart is pending, and why
running_pids() { "$NUBO" envs show shop Acceptance --json | python3 -c 'import json,sys; print(" ".join(sorted(str(i["pid"]) for i in json.load(sys.stdin)["running"] if i["state"]=="running")))'; }
before=$(running_pids)
rm -f "$T/roll.stop"
( while [ ! -e "$T/roll.stop" ]; do route_status cloud4 $HOST /; echo; done > "$T/roll.codes" ) &
ROLLREQ=$!
( while [ ! -e "$T/roll.stop" ]; do "$NUBO" envs show shop Acceptance --json | jq_get restart_reason; done > "$T/roll.reasons" 2>/dev/null ) &
ROLLSHOW=$!
sleep 0.5
t0=$(date +%s)
check "memory alone on two running instances (no --instances)" timeout 120 "$NUBO" envs scale shop Acceptance --memory 300
took=$(( $(date +%s) - t0 ))
touch "$T/roll.stop"
wait "$ROLLREQ" "$ROLLSHOW"
[ "$took" -le 60 ] && pass "the memory-only scale ends in ${took}s" || fail "the memory-only scale took ${took}s"
env=$("$NUBO" envs show shop Acceptance --json)
expect "still two instances wanted" "$(printf '%s' "$env" | jq_get instances)" 2
expect "two instances running" "$(printf '%s' "$env" | python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)["running"] if i["state"]=="running"))')" 2
after=$(running_pids)
expect "both instances were restarted" "$(comm -12 <(tr ' ' '\n' <<< "$before" | sort) <(tr ' ' '\n' <<< "$after" | sort) | wc -l)" 0
for pid in $after; do
	expect "the new limit on the running instance $pid (its cgroup)" "$(mem_limit "$pid")" 314572800
done
expect "nothing pending once done" "$(printf '%s' "$env" | jq_get restart_pending)" false
expect "no reason then" "$(printf '%s' "$env" | jq_get restart_reason)" ""
expect_match "pending while it rolled, with the reason" "$(sort -u "$T/roll.reasons")" "memory limit changed to 300 MB: the instances restart onto it one at a time"
expect "the app kept serving ($(wc -l < "$T/roll.codes") requests)" "$(sort -u "$T/roll.codes" | paste -sd, -)" 200
expect_match "the node's log tells the roll" "$("$NUBO" envs logs shop Acceptance --lines 60)" "all 2 instances run with the 300 MB memory limit"

check "scale down to 1 while running" "$NUBO" envs scale shop Acceptance --instances 1
expect "one instance left" "$("$NUBO" envs show shop Acceptance --json | python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)["running"] if i["state"]=="running"))')" 1
one=$(ports_seen cloud4 $HOST 10)
expect_match "requests reach one instance" "$one" '^[0-9]+$'
check "scale up again while running" "$NUBO" envs scale shop Acceptance --instances 3
expect "three distinct ports answer" "$(ports_seen cloud4 $HOST 30 | tr ',' '\n' | wc -l)" 3
check_fails "more than the cap refused" 1 "$NUBO" envs scale shop Acceptance --instances 99
check_fails "memory below the minimum refused" 1 "$NUBO" envs scale shop Acceptance --memory 1
check_fails "scale needs an option" 2 "$NUBO" envs scale shop Acceptance
# an instance's restart count is per start of the environment
kill_instance "$("$NUBO" envs show shop Acceptance --json | jq_get running.0.pid)"
for _ in $(seq 80); do
	r=$("$NUBO" envs show shop Acceptance --json | python3 -c 'import json,sys; i=json.load(sys.stdin)["running"][0]; print(i["restarts"], i["state"])')
	[ "$r" = "1 running" ] && break
	sleep 0.25
done
expect "a killed instance is restarted and counted" "$r" "1 running"
check "restart keeps 3 instances" "$NUBO" envs restart shop Acceptance
expect "3 running after restart" "$("$NUBO" envs show shop Acceptance --json | python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)["running"] if i["state"]=="running"))')" 3
expect "restart counts start again at 0" "$("$NUBO" envs show shop Acceptance --json | python3 -c 'import json,sys; print(" ".join(str(i["restarts"]) for i in json.load(sys.stdin)["running"]))')" "0 0 0"
check "stop" "$NUBO" envs stop shop Acceptance
expect "no instance left" "$("$NUBO" envs show shop Acceptance --json | jq_get running)" "[]"

# an app that crashes at once: restarted with back-off, then failed
put_package cloud4 crasher-0.1.0 "$APPS/crasher"
check "transport crasher" "$NUBO" envs transport shop Test crasher-0.1.0
check_fails "a crash-looping start fails" 1 "$NUBO" envs start shop Test
expect_match "failure says it crashed repeatedly" "$(cat "$T/last.err")" "crashed 5 times in a row"
expect_match "failure carries the app's output" "$(cat "$T/last.err")" "crasher: cannot go on"
logs=$("$NUBO" envs logs shop Test --lines 40)
expect_match "back-off visible in the log" "$logs" "exited with status 3; restart 4 in 8s"

# v3: one instance, fixed memory
check "create v3 app" "$NUBO" apps create legacy --no-sandbox
start_node cloud3 v3
check "link v3" "$NUBO" nodes link cloud3 legacy
check_fails "v3 refuses scaling" 1 "$NUBO" envs scale legacy Test --instances 2
expect_match "v3 refusal says why" "$(cat "$T/last.err")" "v3 node"

# --pg: a node using an existing PostgreSQL server (here cloud4's cluster)
PGPORT=$(sed -n 3p "$T/node-cloud4.ports")
PGPW=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "$T/node-cloud4/pg/admin.json")
check "app for the external-database node" "$NUBO" apps create ext --no-sandbox
start_node ext4 v4 --pg "postgresql://nubo_admin:$PGPW@127.0.0.1:$PGPORT/postgres"
check "link" "$NUBO" nodes link ext4 ext
[ ! -e "$T/node-ext4/pg" ] && pass "no cluster of its own with --pg" || fail "initialised a cluster despite --pg"
put_package ext4 pyapp-1.0.0 "$APPS/pyapp"
check "transport (external database)" "$NUBO" envs transport ext Test pyapp-1.0.0
check "start (external database)" "$NUBO" envs start ext Test
extid=$(sqlite3 "$T/portal/portal.db" "SELECT e.id FROM environments e JOIN nodes n ON n.id = e.node_id WHERE n.name = 'ext4' AND e.name = 'Test'")
expect "its database lives on the given server" "$(route ext4 ext-test.nubo.localhost /add/y | jq_get db)" "env_$extid"
expect "row written there" "$(PGPASSWORD=$PGPW psql -h 127.0.0.1 -p "$PGPORT" -U nubo_admin -d "env_$extid" -Atc 'SELECT count(*) FROM notes')" 1
check "stop (external database)" "$NUBO" envs stop ext Test

# the sandbox: a Free App's environment on the shared sandbox node
NODE_CREATE_ARGS=--sandbox start_node sandbox v4
check "free app with a sandbox" "$NUBO" apps create trial
check "upload to the app's own repository on the sandbox node" "$NUBO" packages upload --app trial "$T/pyapp-1.0.0.tar.gz"
expect "sandbox environment listed" "$("$NUBO" envs list trial --json | jq_get 0.name)" Sandbox
check "transport to the sandbox" "$NUBO" envs transport trial Sandbox pyapp-1.0.0
check "start the sandbox" "$NUBO" envs start trial Sandbox
out=$(route sandbox trial-sandbox.nubo.localhost /)
expect "sandbox serves through its router" "$(printf '%s' "$out" | jq_get app)" trial
expect "sandbox env name" "$(printf '%s' "$out" | jq_get env)" Sandbox
sbpid=$("$NUBO" envs show trial Sandbox --json | jq_get running.0.pid)
check "delete the sandbox app while it runs" "$NUBO" apps delete trial --yes
gone=
for _ in $(seq 40); do
	if [ "$(route_status sandbox trial-sandbox.nubo.localhost /)" = 404 ] && ! grep -qs app.py "/proc/$sbpid/cmdline"; then gone=1; break; fi
	sleep 0.25
done
expect "the node stops an environment the portal no longer has" "$gone" 1

finish
