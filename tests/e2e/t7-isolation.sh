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
# Egress: the test makes its own "outside" host (a network namespace on a
# veth pair, addresses of 198.18.0.0/15, a TCP listener in it); the
# licensed node (no --egress) cannot reach it, the sandbox node (--egress,
# slirp4netns) can, and still reaches none of the host's loopback.
# The portal keeps tenants apart too: a node's activity and pending copy
# deletions are shown only for the caller's apps after a relink, a
# subdomain of a uuid's form is refused and a uuid names its app, and a
# deleted app's id is never given again, nor its jobs to another app.
. "$(dirname "$0")/lib.sh"

APPS=$NUBO_SRC/tests/e2e/apps

# --- the outside world: made here, removed at the end whatever happens -----
OUT_NS=nubo-t7-$$
OUT_HOST_IF=nt7h$$
OUT_PIDS=()
outside_down() {
	local pid
	for pid in "${OUT_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	ip netns del "$OUT_NS" 2>/dev/null || true	# takes the veth pair
	ip link del "$OUT_HOST_IF" 2>/dev/null || true
}
trap 'outside_down; cleanup' EXIT
# a /30 of 198.18.0.0/15 (benchmarking addresses) no interface uses
for _ in $(seq 50); do
	n=$((RANDOM % 32768 * 4))
	OUT_NET=198.$((18 + n / 65536)).$((n / 256 % 256))
	OUT_HOST=$OUT_NET.$((n % 256 + 1))
	OUT_ADDR=$OUT_NET.$((n % 256 + 2))
	b=$((n % 256))
	ip -4 -o addr show | grep -qE " ${OUT_NET//./\\.}\\.($b|$((b + 1))|$((b + 2))|$((b + 3)))/" || break
done
OUT_PORT=$(free_port)
OUT_TOKEN=outside-$$-$RANDOM
HOST_PORT=$(free_port)
# a listener that answers each connection with a banner
cat > "$T/listener.py" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[3].encode() + b"\n")
    c.close()
PY
check "an outside host: network namespace $OUT_NS" ip netns add "$OUT_NS"
check "a veth pair to it ($OUT_HOST - $OUT_ADDR)" sh -c "ip link add $OUT_HOST_IF type veth peer name nt7n$$ &&
	ip link set nt7n$$ netns $OUT_NS && ip addr add $OUT_HOST/30 dev $OUT_HOST_IF && ip link set $OUT_HOST_IF up &&
	ip -n $OUT_NS addr add $OUT_ADDR/30 dev nt7n$$ && ip -n $OUT_NS link set nt7n$$ up && ip -n $OUT_NS link set lo up"
ip netns exec "$OUT_NS" python3 "$T/listener.py" "$OUT_ADDR" "$OUT_PORT" "$OUT_TOKEN" &
OUT_PIDS+=("$!")
python3 "$T/listener.py" 127.0.0.1 "$HOST_PORT" host-loopback-listener &
OUT_PIDS+=("$!")
heard() { # ADDR PORT: the first line a TCP listener says
	timeout 5 bash -c 'exec 3<>/dev/tcp/$1/$2 && head -1 <&3' _ "$@" 2>/dev/null
}
for _ in $(seq 50); do [ "$(heard "$OUT_ADDR" "$OUT_PORT")" = "$OUT_TOKEN" ] && break; sleep 0.1; done
expect "the host reaches the outside listener" "$(heard "$OUT_ADDR" "$OUT_PORT")" "$OUT_TOKEN"
expect "the host reaches its loopback listener" "$(heard 127.0.0.1 "$HOST_PORT")" host-loopback-listener

start_portal

# --- the portal: what one tenant's API shows of another's -------------------
# A node hosts one app after another (a relink), and a backup target keeps
# copies of other nodes' apps' snapshots: its activity and its pending
# copy deletions are not the app linked now's to read. An app is named by
# its subdomain or its uuid, and never may one name reach two apps.
OWNER=$(make_user owner@t7.example)
ALICE=$(make_user alice@t7.example)
BOB=$(make_user bob@t7.example)
as() { local key=$1; shift; NUBO_API_KEY=$key "$NUBO" "$@"; }
# node_log KEY NODE: the node's activity as KEY reads it, one
# "action app user detail" line an entry
node_log() {
	api_as "$1" GET "/nodes/$2/activity?limit=1000" | python3 -c '
import json, sys
for a in json.load(sys.stdin)["activity"]:
    print(a["action"], a["app"] or "-", a["user"] or "-", a["detail"])'
}
check "a node, not started: relinking it needs no agent" as "$ADMIN_KEY" admin nodes create shared --generation v4 --technical-contact owner@t7.example
check "the previous tenant's app" as "$OWNER" apps create first --no-sandbox
check "  linked to the node" as "$OWNER" nodes link shared first
check "  a member of it" as "$OWNER" members add first alice@t7.example
check "  its name changed" api_as "$OWNER" PATCH /apps/first '{"name":"First secret project"}'
check "the app linked next (the previous one is unlinked)" as "$OWNER" apps create second --no-sandbox
check "  linked to the node" as "$OWNER" nodes link shared second
expect "  which unlinked the previous app" "$(as "$OWNER" apps show first --json | jq_get status)" free
check "  a member of it without permissions" as "$OWNER" members add second bob@t7.example
log=$(node_log "$BOB" shared) || true
expect_match "a member of the app linked now reads the node's activity" "$log" "^member\.add second owner@t7\.example added bob@t7\.example"
expect_match "  with the node's own entries" "$log" "^node\.create - admin@"
expect "  and none of the previous app's" "$(grep -cE '^[^ ]+ first |alice@t7|First secret' <<< "$log")" 0
log=$(node_log "$ADMIN_KEY" shared) || true
expect_match "a platform admin reads them all" "$log" "^member\.add first owner@t7\.example added alice@t7\.example"
expect_match "  the rename too" "$log" "^app\.rename first .*First secret project"
log=$(node_log "$OWNER" shared) || true
expect_match "the Technical Contact of both apps reads both" "$log" "^member\.add first owner@t7\.example added alice@t7\.example"
SECOND_ONLY=$(api_as "$OWNER" POST /keys '{"name":"second only","apps":["second"]}' | jq_get key) || true
log=$(node_log "$SECOND_ONLY" shared) || true
expect_match "  with a key for the app linked now, that app's" "$log" "^member\.add second owner@t7\.example added bob@t7\.example"
expect "  and not the other's" "$(grep -cE '^[^ ]+ first |alice@t7|First secret' <<< "$log")" 0
# a deleted app's entries are detached (app_id NULL), not the node's own
check "the previous app deleted" as "$OWNER" apps delete first --yes
log=$(node_log "$BOB" shared) || true
expect "a deleted app's entries stay hidden from the node's members" "$(grep -cE 'alice@t7|First secret' <<< "$log")" 0
expect_match "  and are the platform admin's to read" "$(node_log "$ADMIN_KEY" shared)" "^member\.add - owner@t7\.example added alice@t7\.example"
# a copy of a deleted app's snapshot its node has yet to delete
# (snapcopy.c writes it down when the node cannot delete it at once)
sqlite3 "$T/portal/portal.db" "INSERT INTO copy_deletions (snapshot_uuid, node_id, next_attempt_at, error, created_at) SELECT 'c0c0c0c0-0000-4000-8000-000000000001', id, '2999-01-01T00:00:00Z', 'another tenant''s copy: node busy', '2000-01-01T00:00:00Z' FROM nodes WHERE name = 'shared'"
expect "a platform admin sees the node's pending copy deletions" "$(api_as "$ADMIN_KEY" GET /nodes/shared | jq_get copy_deletions.pending)" 1
for who in BOB OWNER; do
	expect "  $who does not (they were another app's)" "$(api_as "${!who}" GET /nodes/shared | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["name"], "copy_deletions" in d)')" "shared False"
	expect "  nor in the list of nodes" "$(api_as "${!who}" GET /nodes | python3 -c 'import json,sys; print([("copy_deletions" in n) for n in json.load(sys.stdin)["nodes"]])')" "[False]"
done
sqlite3 "$T/portal/portal.db" "DELETE FROM copy_deletions WHERE snapshot_uuid = 'c0c0c0c0-0000-4000-8000-000000000001'"

# an app's uuid starting with a-f is a valid subdomain: nobody may take it
VICTIM_ID=e7a1c0de-0000-4000-8000-00000000a007
check "an app with an id (uuid) that is a valid subdomain" api_as "$OWNER" POST /apps "{\"subdomain\":\"victim\",\"id\":\"$VICTIM_ID\",\"sandbox\":false}"
expect "  made" "$(as "$OWNER" apps show "$VICTIM_ID" --json | jq_get subdomain)" victim
out=$(api_as "$ALICE" POST /apps "{\"subdomain\":\"$VICTIM_ID\",\"sandbox\":false}")
expect "a subdomain of a uuid's form is refused" "$(jq_get error.code <<< "$out")" INVALID_SUBDOMAIN
expect_match "  saying why" "$(jq_get error.message <<< "$out")" "^subdomain '$VICTIM_ID' has the form of an app id \(a uuid\)"
expect "  nothing made" "$(sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM apps WHERE subdomain = '$VICTIM_ID'")" 0
expect "  another uuid either" "$(api_as "$ALICE" POST /apps '{"subdomain":"abcdef01-2345-6789-abcd-ef0123456789","sandbox":false}' | jq_get error.code)" INVALID_SUBDOMAIN
# a store from before that check may hold such a subdomain (alice's, made
# here as the refused create above would have made it): a uuid names the
# app whose id it is, always
sqlite3 "$T/portal/portal.db" "INSERT OR IGNORE INTO apps (uuid, subdomain, name, technical_contact, created_at) SELECT 'f00dbabe-0000-4000-8000-00000000b0b0', '$VICTIM_ID', 'impostor', id, '2000-01-01T00:00:00Z' FROM users WHERE email = 'alice@t7.example'; INSERT OR IGNORE INTO members (app_id, user_id, created_at) SELECT a.id, a.technical_contact, a.created_at FROM apps a WHERE a.subdomain = '$VICTIM_ID'"
expect "a uuid names the app whose id it is, not one with it as subdomain" "$(api_as "$OWNER" GET "/apps/$VICTIM_ID" | jq_get subdomain)" victim
expect "  also to the other app's Technical Contact" "$(api_as "$ALICE" GET "/apps/$VICTIM_ID/activity" | jq_get error.code)" FORBIDDEN
check "  a write by uuid" as "$OWNER" members add "$VICTIM_ID" bob@t7.example
expect "  reaches the app whose id it is" "$(sqlite3 "$T/portal/portal.db" "SELECT a.subdomain FROM members m JOIN apps a ON a.id = m.app_id JOIN users u ON u.id = m.user_id WHERE u.email = 'bob@t7.example' AND a.subdomain != 'second'")" victim
expect "  linking by uuid too" "$(api_as "$OWNER" POST /nodes/shared/link "{\"app\":\"$VICTIM_ID\"}" | jq_get app)" victim
# nor may a new app's id be an app's subdomain
expect "a new app's id may not be another app's subdomain" "$(api_as "$ALICE" POST /apps "{\"subdomain\":\"fresh\",\"id\":\"$VICTIM_ID\",\"sandbox\":false}" | jq_get error.code)" APP_ID_TAKEN
sqlite3 "$T/portal/portal.db" "UPDATE apps SET subdomain = 'c0ffee00-0000-4000-8000-00000000c0de' WHERE subdomain = '$VICTIM_ID'"
expect "  one from before the check (a uuid's form)" "$(api_as "$OWNER" POST /apps '{"subdomain":"fresh","id":"c0ffee00-0000-4000-8000-00000000c0de","sandbox":false}' | jq_get error.code)" APP_ID_TAKEN
expect "  nothing made" "$(sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM apps WHERE subdomain = 'fresh'")" 0

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

# probe NODE A_HOST B_APP B_ENV B_ID EGRESS: run the probe in A against B;
# checks every attempt one by one (the outside host is reached only when
# EGRESS is yes)
probe() {
	local node=$1 ahost=$2 bapp=$3 benv=$4 bid=$5 egress=$6 var agent router pg show bpid bport out
	var=${node//-/_}
	{ read -r agent; read -r router; read -r pg; } < "$T/node-$node.ports"
	show=$("$NUBO" envs show "$bapp" "$benv" --json)
	bpid=$(printf '%s' "$show" | jq_get running.0.pid)
	bport=$(printf '%s' "$show" | jq_get running.0.port)
	out=$(route "$node" "$ahost" "/probe?node_dir=$T/node-$node&b_dir=$T/node-$node/envs/$bid&b_pid=$bpid&pg_pid=$(head -1 "$T/node-$node/pg/data/postmaster.pid")&b_db=env_$bid&pg_port=$pg&b_port=$bport&b_socket=$T/node-$node/run/i-$bid-1.sock&agent_port=$agent&portal_port=$PORTAL_PORT&router_port=$router&host_port=$HOST_PORT&host_banner=host-loopback-listener&outside=$OUT_ADDR:$OUT_PORT")
	printf '%s' "$out" > "$T/probe-$ahost.json"
	local names name
	names=$(printf '%s' "$out" | python3 -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin))))') || { fail "probe answered: $out"; return; }
	[ "$(printf '%s\n' $names | grep -c .)" -ge 30 ] && pass "$ahost: the probe ran $(printf '%s\n' $names | grep -c .) attempts" || fail "$ahost: the probe ran too few attempts: $names"
	for name in $names; do
		local r
		r=$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin)[sys.argv[1]]; print(("ok" if d["ok"] else "FAILED") if "ok" in d else ("ESCAPED" if d["escaped"] else "blocked"), "-", d["detail"])' "$name")
		case $name in
		control_list_databases) # open, as in PostgreSQL: names only
			expect_match "$ahost: A lists the cluster's databases, B's among them" "$r" "^ok - (.*,)?env_$bid(,|\$)" ;;
		db_connect_listed) # and not one of them but its own lets A in
			expect_match "$ahost: every database listed refuses A, B's too" "$r" "^blocked - .*refused by [0-9]+ databases \(listed\): (.*,)?env_$bid(,|\$)" ;;
		control_*) expect_match "$ahost: $name" "$r" "^ok " ;;
		files_b_*) # B's folder is not even there: a tmpfs hides the
			# node's folder (its owner and mode close it besides:
			# checked from the host below)
			expect_match "$ahost: $name is blocked: B's folder is not there" "$r" "^blocked - FileNotFoundError" ;;
		egress_outside)
			if [ "$egress" = yes ]; then
				expect_match "$ahost: with --egress the outside host is reached" "$r" "^ESCAPED - connected, heard: $OUT_TOKEN"
			else
				expect_match "$ahost: without --egress the outside host is not reached" "$r" "^blocked "
			fi ;;
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

probe cloud4 $A shop Production "$PID_" no
expect "the node says it has no egress" "$("$NUBO" nodes show cloud4 --json | jq_get egress)" false
check_fails "without --egress a one-off run does not reach the outside host" 1 "$NUBO" envs run shop Test -- python3 -c "import socket; socket.create_connection(('$OUT_ADDR', $OUT_PORT), 5)"

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
# what a user does with the environment's credentials from the host: a
# pg_dump of its own database works (it reads the lists of the cluster's
# databases and roles, open as PostgreSQL has them); the databases it
# lists refuse those credentials, over TCP too, where pg_hba lets any
# role try any database (CONNECT, revoked from PUBLIC, is what keeps
# them out)
check "nubo envs db-url shop Test" "$NUBO" envs db-url shop Test
AURL=$(head -1 "$T/last.out")
check "pg_dump with the URL from nubo envs db-url" sh -c 'pg_dump "$1" > "$2"' _ "$AURL" "$T/a-dump.sql"
expect_match "the dump holds A's table" "$(cat "$T/a-dump.sql")" "^CREATE TABLE public\.control_t "
check "with those credentials the cluster's databases are listed" psql -X "$AURL" -Atc "SELECT datname FROM pg_database WHERE datname <> current_database() ORDER BY 1"
others=$(cat "$T/last.out")
expect_match "B's among them" "$others" "^env_$PID_\$"
for db in $others; do
	check_fails "those credentials cannot connect to $db" 2 psql -X "${AURL%/*}/$db" -Atc "SELECT 1"
done
check_fails "pg_dump with A's credentials cannot dump B's database" 1 pg_dump "${AURL%/*}/env_$PID_"
expect_match "PostgreSQL refuses the connection" "$(cat "$T/last.err")" "permission denied for database \"env_$PID_\""
# the custom format (Heroku's pg_dump -Fc) reads the database's settings,
# comment and labels too, open as in PostgreSQL
check "pg_dump -Fc with the URL from nubo envs db-url" pg_dump -Fc -f "$T/a-dump.custom" "$AURL"
check "pg_restore lists its table of contents" pg_restore -l "$T/a-dump.custom"
expect_match "the custom-format dump holds A's table" "$(cat "$T/last.out")" "TABLE public control_t "

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
# the portal hears it with the node's next report
last_exit() { "$NUBO" envs show shop Test --json | python3 -c 'import json,sys; i=json.load(sys.stdin)["running"][0]; print(i.get("last_exit"), i.get("last_exit_at") is not None)'; }
for _ in $(seq 50); do [ "$(last_exit)" != "None False" ] && break; sleep 0.2; done
expect "envs show says why the instance last ended, and when" "$(last_exit)" "was killed for using more than its memory limit (512 MB) True"
expect_match "  in its table too" "$("$NUBO" envs show shop Test | grep -A1 'LAST EXIT *$' | tail -1)" "^1 .* was killed for using more than its memory limit \\(512 MB\\) *$"
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

# the lists of the cluster's databases and roles (with their settings,
# comments and labels), as a node before issue #10 left them closed: the
# probe cannot list them, a restart of the node reopens them, once, with a
# line in its log
ADMIN_PW=$(jq_get password < "$T/node-cloud4/pg/admin.json")
check "close the lists in A's database, as an older node left them" psql "postgresql://nubo_admin:$ADMIN_PW@127.0.0.1:$PGP/env_$TID" -Atc "REVOKE SELECT ON pg_catalog.pg_database, pg_catalog.pg_roles, pg_catalog.pg_db_role_setting, pg_catalog.pg_shdescription, pg_catalog.pg_shseclabel FROM PUBLIC"
lists() { # what A's probe says of listing the databases
	route cloud4 $A "/control?name=control_list_databases" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("open" if d["ok"] else "closed", "-", d["detail"])'
}
expect_match "closed, A cannot list the cluster's databases" "$(lists)" "^closed - .*permission denied for table pg_database"
said=$(grep -c "reopened to app roles" "$T/node-cloud4.log" || [ $? = 1 ])
closed=$(grep -c "closed to app roles in" "$T/node-cloud4.log" || [ $? = 1 ])	# template1, at the first start
stop_node cloud4
start_node cloud4 v4 --start-timeout 20 --stop-grace 3
# the node's restart neither stops A nor routes it away for a moment (the
# router's first config after a start knew only the instances adopted)
seen=""
for _ in $(seq 25); do seen="$seen $(route_status cloud4 $A /health)"; sleep 0.2; done
expect "A is served all through the node's start (25 requests in 5 s)" "$(printf '%s\n' $seen | sort | uniq -c | tr -s ' ')" " 25 200"
expect_match "the restarted node reopens them" "$(lists)" "^open - (.*,)?env_$PID_(,|\$)"
expect "and says so in its log" "$(grep -c "roles (pg_database, pg_roles, their settings, comments and labels) reopened to app roles, as PostgreSQL has them, in 1 database an earlier node had closed them in" "$T/node-cloud4.log")" "$((said + 1))"
expect "and their settings too" "$(route cloud4 $A "/control?name=control_list_settings" | jq_get ok)" true
expect "the other catalogs stay closed" "$(route cloud4 $A "/attempt?name=db_list_sessions" | jq_get escaped)" false
stop_node cloud4
start_node cloud4 v4 --start-timeout 20 --stop-grace 3
expect "once: nothing left to reopen at the next start" "$(grep -c "reopened to app roles" "$T/node-cloud4.log")" "$((said + 1))"
expect "and nothing to close" "$(grep -c "closed to app roles in" "$T/node-cloud4.log" || [ $? = 1 ])" "$closed"

# --- two Free Apps on the sandbox node -------------------------------------
NODE_CREATE_ARGS=--sandbox start_node sandbox v4 --start-timeout 20 --stop-grace 3 --egress
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
probe sandbox alpha-sandbox.nubo.localhost beta Sandbox "$BID" yes
expect "beta still serves its data" "$(route sandbox beta-sandbox.nubo.localhost /read | jq_get db)" beta-secret

# --- egress: its helper, its limits, its lifetime ---------------------------
for _ in $(seq 50); do [ "$("$NUBO" nodes show sandbox --json | jq_get egress)" = true ] && break; sleep 0.2; done
expect "the node says it has egress" "$("$NUBO" nodes show sandbox --json | jq_get egress)" true
expect_match "nubo nodes show says it" "$("$NUBO" nodes show sandbox)" "egress +yes"
AID=$(env_id sandbox Sandbox alpha)
AUID=$(jq_get uid < "$T/node-sandbox/envs/$AID/env.json")
slirps() { # UID: how many slirp4netns run as that user
	pgrep -c -u "$1" -x slirp4netns || [ $? = 1 ]
}
slirps_become() { # UID N: wait (10 s at most) until N run; prints how many
	local i
	for i in $(seq 50); do [ "$(slirps "$1")" = "$2" ] && break; sleep 0.2; done
	slirps "$1"
}
# alpha's instance's pid, when it has one (one waiting to be restarted
# is listed with pid 0: see kill_instance)
alpha_pid() {
	"$NUBO" envs show alpha Sandbox --json | python3 -c 'import json,sys; p=[i["pid"] for i in json.load(sys.stdin)["running"] if i["pid"] > 1]; print(p[0] if p else "")'
}
alpha_back() { # OLD_PID: wait (30 s at most) until another instance of alpha serves
	local p
	for _ in $(seq 150); do
		p=$(alpha_pid)
		[ -n "$p" ] && [ "$p" != "$1" ] && [ "$(route_status sandbox alpha-sandbox.nubo.localhost /health)" = 200 ] && break
		sleep 0.2
	done
}
expect "one slirp4netns for alpha's one instance, as alpha's user" "$(slirps "$AUID")" 1
expect "no slirp4netns runs as root" "$(pgrep -c -u 0 -x slirp4netns || [ $? = 1 ])" 0
check "with --egress a one-off run reaches the outside host" "$NUBO" envs run alpha Sandbox -- python3 -c "import socket; s = socket.create_connection(('$OUT_ADDR', $OUT_PORT), 5); print(s.recv(100).decode())"
expect "and heard it" "$(head -1 "$T/last.out")" "$OUT_TOKEN"
check_fails "a one-off run does not reach the agent through the gateway" 1 "$NUBO" envs run alpha Sandbox -- python3 -c "import socket; socket.create_connection(('10.0.2.2', $(head -1 "$T/node-sandbox.ports")), 5)"
expect "the run's helper ended with it" "$(slirps_become "$AUID" 1)" 1
# names: the host's resolvers, never one on its loopback (unreachable)
check "a run reads the sandbox's resolv.conf" "$NUBO" envs run alpha Sandbox -- cat /etc/resolv.conf
expect "the sandbox names no resolver on a loopback" "$(grep -cE '^nameserver +(127\.|::1)' "$T/last.out" || [ $? = 1 ])" 0
host_ns=$(grep -E '^nameserver +[0-9.]+ *$' /etc/resolv.conf | grep -vE ' 127\.' | awk '{print $2}' | tr '\n' ' ')
if [ -n "$host_ns" ]; then
	expect "the sandbox names the host's resolvers" "$(grep -E '^nameserver' "$T/last.out" | awk '{print $2}' | tr '\n' ' ')" "$host_ns"
fi
# the helper dies: the instance ends with a word in its log and comes back
apid=$(alpha_pid)
expect "before: one helper (a run's has ended)" "$(slirps_become "$AUID" 1)" 1
check "kill alpha's slirp4netns" kill -KILL "$(pgrep -u "$AUID" -x slirp4netns)"
for _ in $(seq 100); do grep -q "network helper (slirp4netns) ended" "$T/node-sandbox/envs/$AID/logs/app.log" && break; sleep 0.2; done
expect_match "the log says the instance lost its network" "$(cat "$T/node-sandbox/envs/$AID/logs/app.log")" "network helper \(slirp4netns\) ended; the instance stops"
alpha_back "$apid"
expect "alpha was started again, with a helper of its own" "$(slirps_become "$AUID" 1)" 1
expect_match "and reaches the outside again" "$(route sandbox alpha-sandbox.nubo.localhost "/attempt?name=egress_outside&outside=$OUT_ADDR:$OUT_PORT" | jq_get detail)" "heard: $OUT_TOKEN"
# the instance crashes: its helper goes with it
apid=$(alpha_pid)
aslirp=$(pgrep -u "$AUID" -x slirp4netns)
kill_instance "$apid" && pass "kill alpha's instance"
alpha_back "$apid"
expect "after a crash one helper runs, the new instance's" "$(slirps_become "$AUID" 1)" 1
for _ in $(seq 50); do [ -d "/proc/$aslirp" ] || break; sleep 0.2; done
[ ! -d "/proc/$aslirp" ] && pass "the crashed instance's helper is gone" || fail "the crashed instance's helper $aslirp still runs"
# the node restarts: apps keep running, their helpers too, re-adopted
stop_node sandbox
expect "the agent stopped, alpha's helper still serves it" "$(slirps "$AUID")" 1
expect_match "alpha still reaches the outside" "$(route sandbox alpha-sandbox.nubo.localhost "/attempt?name=egress_outside&outside=$OUT_ADDR:$OUT_PORT" | jq_get detail)" "heard: $OUT_TOKEN"
start_node sandbox v4 --start-timeout 20 --stop-grace 3 --egress
expect "restarted, one helper still" "$(slirps "$AUID")" 1
# stopped: no helper is left
check "stop alpha" "$NUBO" envs stop alpha Sandbox
expect "stopped, no helper is left" "$(slirps_become "$AUID" 0)" 0

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

# --- the portal: a deleted app's id and what was kept under it --------------
# SQLite gives a new row the highest id + 1: the next app took the id of
# the newest app deleted, and with it that app's jobs (no foreign key).
CAROL=$(make_user carol@t7.example)
DAVE=$(make_user dave@t7.example)
check "carol's app, with a sandbox" as "$CAROL" apps create gone
out=$(api_as "$CAROL" POST /apps/gone/environments/Sandbox/snapshots '{"comment":"carol-private-comment"}')
JOB=$(jq_get job.id <<< "$out") || true
expect_match "  a snapshot of it, as a job" "$JOB" '^[0-9]+$'
for _ in $(seq 100); do
	st=$(api_as "$CAROL" GET "/jobs/$JOB" | jq_get state) || true
	[ "$st" = completed ] || [ "$st" = failed ] && break
	sleep 0.2
done
expect_match "  the job ended" "$st" '^(completed|failed)$'
GONE_ID=$(sqlite3 "$T/portal/portal.db" "SELECT id FROM apps WHERE subdomain = 'gone'")
expect "  the newest app" "$(sqlite3 "$T/portal/portal.db" "SELECT max(id) FROM apps")" "$GONE_ID"
check "carol deletes it" as "$CAROL" apps delete gone --yes
expect "a deleted app's jobs are detached" "$(sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM jobs WHERE app_id = $GONE_ID")" 0
check "dave's app, made next" as "$DAVE" apps create next --no-sandbox
NEXT_ID=$(sqlite3 "$T/portal/portal.db" "SELECT id FROM apps WHERE subdomain = 'next'")
expect "a new app never takes a deleted app's id" "$([ "$NEXT_ID" -gt "$GONE_ID" ] && echo greater)" greater
expect "dave does not see carol's job" "$(api_as "$DAVE" GET "/jobs/$JOB" | jq_get error.code)" JOB_NOT_FOUND
expect "  nor through the Mendix Deploy API v2" "$(curl -s -H "Mendix-Username: dave@t7.example" -H "Mendix-ApiKey: $DAVE" "$PORTAL_URL/api/v2/apps/next/jobs/$JOB" | jq_get errorCode)" JOB_NOT_FOUND
expect "  nor its activity" "$(api_as "$DAVE" GET /apps/next/activity | python3 -c 'import json,sys; print(" ".join(a["action"] for a in json.load(sys.stdin)["activity"]))')" app.create
expect "carol still sees her job, of no app now" "$(api_as "$CAROL" GET "/jobs/$JOB" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["id"], j["app"])')" "$JOB None"

finish
