#!/usr/bin/env bash
# t7: tenants cannot reach each other. An escape probe (tests/e2e/apps/
# probe) deployed as tenant A tries every way to tenant B and to the node:
# B's processes, environment, files, database, instance; the node's
# secrets, PostgreSQL's files and superuser, the agent, the portal; the
# system's files; nested user namespaces; a fork bomb and filling memory.
# Each attempt must fail, B keeps serving with its data unchanged, and A's
# own database and files keep working. Twice: two environments of one app
# on a licensed node, and two Free Apps on the sandbox node. Then what the
# node's own processes and files look like from the host: PostgreSQL as
# its own user, nginx's workers as theirs, secrets readable by root only.
. "$(dirname "$0")/lib.sh"

APPS=$NUBO_SRC/tests/e2e/apps
start_portal

put_package() { # NODE ID SRCDIR: upload to the node's repository
	tar czf "$T/$2.tar.gz" -C "$3" .
	"$NUBO" packages upload "$1" "$T/$2.tar.gz" >/dev/null
}
env_id() { # NODE ENVNAME [APP]
	if [ -n "${3:-}" ]; then
		sqlite3 "$T/portal/portal.db" "SELECT e.id FROM environments e JOIN apps a ON a.id=e.app_id WHERE a.subdomain='$3'"
	else
		sqlite3 "$T/portal/portal.db" "SELECT e.id FROM environments e JOIN nodes n ON n.id=e.node_id WHERE n.name='$1' AND e.name='$2'"
	fi
}

# probe NODE A_HOST B_APP B_ENV B_ID: run the probe in A against B; checks
# every attempt one by one
probe() {
	local node=$1 ahost=$2 bapp=$3 benv=$4 bid=$5 var agent router pg show bpid bport out
	var=${node//-/_}
	{ read -r agent; read -r router; read -r pg; } < "$T/node-$node.ports"
	show=$("$NUBO" envs show "$bapp" "$benv" --json)
	bpid=$(printf '%s' "$show" | jq_get running.0.pid)
	bport=$(printf '%s' "$show" | jq_get running.0.port)
	out=$(route "$node" "$ahost" "/probe?node_dir=$T/node-$node&b_dir=$T/node-$node/envs/$bid&b_pid=$bpid&pg_pid=$(head -1 "$T/node-$node/pg/data/postmaster.pid")&b_db=env_$bid&pg_port=$pg&b_port=$bport&b_socket=$T/node-$node/run/i-$bid-1.sock&agent_port=$agent&portal_port=$PORTAL_PORT&router_port=$router")
	printf '%s' "$out" > "$T/probe-$ahost.json"
	local names name
	names=$(printf '%s' "$out" | python3 -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin))))') || { fail "probe answered: $out"; return; }
	[ "$(printf '%s\n' $names | grep -c .)" -ge 30 ] && pass "$ahost: the probe ran $(printf '%s\n' $names | grep -c .) attempts" || fail "$ahost: the probe ran too few attempts: $names"
	for name in $names; do
		local r
		r=$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin)[sys.argv[1]]; print(("ok" if d["ok"] else "FAILED") if "ok" in d else ("ESCAPED" if d["escaped"] else "blocked"), "-", d["detail"])' "$name")
		case $name in
		control_*) expect_match "$ahost: $name" "$r" "^ok " ;;
		*) expect_match "$ahost: $name is blocked" "$r" "^blocked " ;;
		esac
	done
}

# --- two environments of one app on a licensed v4 node ---------------------
check "create app" "$NUBO" apps create shop --no-sandbox
start_node cloud4 v4 --start-timeout 20 --stop-grace 3
check "link" "$NUBO" nodes link cloud4 shop
put_package cloud4 probe-1.0.0 "$APPS/probe"
for env in Test Production; do
	check "transport to $env" "$NUBO" envs transport shop $env probe-1.0.0
	check "start $env" "$NUBO" envs start shop $env
done
TID=$(env_id cloud4 Test)
PID_=$(env_id cloud4 Production)
A=shop-test.nubo.localhost
B=shop-production.nubo.localhost
expect "B writes its data" "$(route cloud4 $B '/mark?v=secret-of-production' | jq_get v)" secret-of-production

ta=$(route cloud4 $A /whoami)
tb=$(route cloud4 $B /whoami)
expect "A and B run as different users" "$([ "$(printf '%s' "$ta" | jq_get uid)" != "$(printf '%s' "$tb" | jq_get uid)" ] && echo yes)" yes
expect "A is process 2 of its own PID namespace (process 1: nubo-init)" "$(printf '%s' "$ta" | jq_get pid)" 2
[ "$(printf '%s' "$ta" | jq_get nproc)" -le 5 ] && pass "A sees only its own processes ($(printf '%s' "$ta" | jq_get nproc))" || fail "A sees $(printf '%s' "$ta" | jq_get nproc) processes"

probe cloud4 $A shop Production "$PID_"

expect "B still serves its data (file)" "$(route cloud4 $B /read | jq_get file)" secret-of-production
expect "B still serves its data (database)" "$(route cloud4 $B /read | jq_get db)" secret-of-production
[ ! -e "$T/node-cloud4/envs/$PID_/files/pwned.txt" ] && pass "nothing written into B's files" || fail "A wrote into B's files"
[ ! -e /etc/pwned ] && [ ! -e /usr/local/bin/pwned ] && pass "nothing written into the system" || fail "A wrote into the system"

# from the host too: A's role reaches no other database over TCP either
APW=$(jq_get db_password < "$T/node-cloud4/envs/$TID/env.json")
PGP=$(sed -n 3p "$T/node-cloud4.ports")
check "A's role reaches its own database over TCP" psql "postgresql://env_$TID:$APW@127.0.0.1:$PGP/env_$TID" -Atc "SELECT 1"
for db in "env_$PID_" postgres template1; do
	check_fails "A's role cannot connect to $db" 2 psql "postgresql://env_$TID:$APW@127.0.0.1:$PGP/$db" -Atc "SELECT 1"
done

# limits: a fork bomb stops at the instance's pids limit
fb=$(route cloud4 $A /forkbomb)
forks=$(printf '%s' "$fb" | jq_get forks)
[ "$forks" -gt 0 ] && [ "$forks" -lt 512 ] && pass "fork bomb stopped at $forks processes" || fail "fork bomb: $fb"
expect "B serves during and after the fork bomb" "$(route cloud4 $B /read | jq_get file)" secret-of-production
expect "A itself survived its fork bomb" "$(route_status cloud4 $A /health)" 200

# memory: a child of A that touches 700 MB (limit 512) is killed, A lives
eat=$(route cloud4 $A '/eat?mb=700')
expect "A's memory-hungry child was killed by the limit" "$(printf '%s' "$eat" | jq_get returncode)" -9
expect "A still serves" "$(route_status cloud4 $A /health)" 200
expect "A's package is intact" "$(cmp -s "$APPS/probe/bin/probe.py" "$T/node-cloud4/envs/$TID/app/bin/probe.py" && echo same)" same
apid=$("$NUBO" envs show shop Test --json | jq_get running.0.pid)
route cloud4 $A '/eat-self?mb=700' >/dev/null || true
for _ in $(seq 100); do
	grep -q "killed for using more than its memory limit (512 MB)" "$T/node-cloud4/envs/$TID/logs/app.log" && break
	sleep 0.2
done
expect_match "the log says the instance was killed for memory" "$(cat "$T/node-cloud4/envs/$TID/logs/app.log")" "instance 1 \\(pid $apid, port [0-9]+\\) was killed for using more than its memory limit \\(512 MB\\)"
expect "B was not touched by A's out-of-memory" "$(route cloud4 $B /read | jq_get db)" secret-of-production
for _ in $(seq 100); do [ "$(route_status cloud4 $A /health)" = 200 ] && break; sleep 0.2; done
expect "A restarted after its out-of-memory" "$(route_status cloud4 $A /health)" 200

# apps that listen on every address (Heroku style) work the same
check "PROBE_LISTEN=0.0.0.0" "$NUBO" settings env-set shop Test PROBE_LISTEN 0.0.0.0
expect_match "A writes into its working area (its package's folder)" "$(route cloud4 $A /touch | jq_get cwd)" "/envs/$TID/app\$"
expect "what A wrote there is there before a restart" "$(route cloud4 $A /whoami | jq_get work_control)" true
check "restart Test" "$NUBO" envs restart shop Test
expect "the working area starts afresh with the instance" "$(route cloud4 $A /whoami | jq_get work_control)" false
expect_match "an app listening on 0.0.0.0 is served" "$(grep 'probe listening' "$T/node-cloud4/envs/$TID/logs/app.log" | tail -1)" "0\\.0\\.0\\.0"
expect "and answers through the router" "$(route cloud4 $A /whoami | jq_get env)" Test

# --- two Free Apps on the sandbox node -------------------------------------
NODE_CREATE_ARGS=--sandbox start_node sandbox v4 --start-timeout 20 --stop-grace 3
check "free app alpha with a sandbox" "$NUBO" apps create alpha
check "free app beta with a sandbox" "$NUBO" apps create beta
tar czf "$T/probe-1.0.0.tar.gz" -C "$APPS/probe" .
for app in alpha beta; do
	check "upload to $app's own repository" "$NUBO" packages upload --app $app "$T/probe-1.0.0.tar.gz"
	check "transport $app" "$NUBO" envs transport $app Sandbox probe-1.0.0
	check "start $app" "$NUBO" envs start $app Sandbox
done
BID=$(env_id sandbox Sandbox beta)
expect "beta writes its data" "$(route sandbox beta-sandbox.nubo.localhost '/mark?v=beta-secret' | jq_get v)" beta-secret
probe sandbox alpha-sandbox.nubo.localhost beta Sandbox "$BID"
expect "beta still serves its data" "$(route sandbox beta-sandbox.nubo.localhost /read | jq_get db)" beta-secret

# --- the node's own parts, seen from the host ------------------------------
N=$T/node-cloud4
expect "PostgreSQL runs as its own user" "$(ps -o user= -p "$(head -1 "$N/pg/data/postmaster.pid")")" nubo-pg
expect "its data folder is its own, 0700" "$(stat -c '%U %a' "$N/pg/data")" "nubo-pg 700"
expect "pg_hba.conf is PostgreSQL's, 0600" "$(stat -c '%U %a' "$N/pg/data/pg_hba.conf")" "nubo-pg 600"
nginx_master=$(cat "$N/nginx/nginx.pid")
expect "nginx's workers run as the router user" "$(ps -o user= --ppid "$nginx_master" | sort -u | tr -d ' ')" nubo
for f in agent.json pg/admin.json "envs/$TID/env.json"; do
	expect "$f is root's alone" "$(stat -c '%U %a' "$N/$f")" "root 600"
done
expect "the node's folder: others may pass, not list" "$(stat -c '%U %a' "$N")" "root 711"
expect "B's files folder is B's user's" "$(stat -c '%u %a' "$N/envs/$PID_/files")" "$(jq_get uid < "$N/envs/$PID_/env.json") 750"

finish
