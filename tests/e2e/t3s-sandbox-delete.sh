#!/usr/bin/env bash
# t3s: a sandbox's data really goes when the sandbox is unlinked or its app
# deleted — the sandbox node stops the instances, drops the database and
# role, removes files/app/logs and the app's package repository, and
# takes the hostname out of its router;
# with the node unreachable both are refused and nothing changes; a
# heartbeat does not bring a deleted environment back.
. "$(dirname "$0")/lib.sh"

APPS=$NUBO_SRC/tests/e2e/apps
start_portal
NODE_CREATE_ARGS=--sandbox start_node sandbox v4

tar czf "$T/pyapp-1.0.0.tar.gz" -C "$APPS/pyapp" .

PGPORT=$(sed -n 3p "$T/node-sandbox.ports")
PGPW=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "$T/node-sandbox/pg/admin.json")
pgq() { PGPASSWORD=$PGPW psql -h 127.0.0.1 -p "$PGPORT" -U nubo_admin -d postgres -Atc "$1"; }
envid() { sqlite3 "$T/portal/portal.db" "SELECT e.id FROM environments e JOIN apps a ON a.id = e.app_id WHERE a.subdomain = '$1'"; }
appuuid() { sqlite3 "$T/portal/portal.db" "SELECT uuid FROM apps WHERE subdomain = '$1'"; }
records() { sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM packages p JOIN apps a ON a.id = p.app_id WHERE a.subdomain = '$1'"; }

# deploy APP: a sandbox app running pyapp with a row and a file written
deploy() {
	local app=$1 host=$1-sandbox.nubo.localhost
	check "$app: free app with a sandbox" "$NUBO" apps create "$app"
	check "$app: package uploaded to its repository" "$NUBO" packages upload --app "$app" "$T/pyapp-1.0.0.tar.gz"
	check "$app: transport" "$NUBO" envs transport "$app" Sandbox pyapp-1.0.0
	check "$app: start" "$NUBO" envs start "$app" Sandbox
	check "$app: a basic-auth user on /private (an htpasswd file on the node)" "$NUBO" settings access-set "$app" Sandbox team --user bob:secretpw1 --path /private
	expect "$app: a row in its database" "$(route sandbox "$host" /add/x | jq_get count)" 1
	route sandbox "$host" /file/hello > /dev/null
	check "$app: a snapshot of its sandbox" "$NUBO" backups create "$app" Sandbox
}
# snaps ID: how many snapshots of environment ID the sandbox node keeps
snaps() { python3 -c 'import glob, json, sys; print(sum(json.load(open(p)).get("environment") == int(sys.argv[2]) for p in glob.glob(sys.argv[1] + "/snapshots/*/snapshot.json")))' "$T/node-sandbox" "$1"; }
blobs() { find "$T/node-sandbox/store/blobs" -type f 2>/dev/null | wc -l; }

# present APP ID UUID: everything of the environment is there on the node
present() {
	local app=$1 id=$2 uuid=$3
	[ -s "$T/node-sandbox/app-packages/$uuid/pyapp-1.0.0/package" ] && pass "$app: its package repository is there" || fail "$app: package repository missing"
	expect "$app: the portal's record of its package" "$(records "$app")" 1
	expect "$app: database env_$id exists" "$(pgq "SELECT count(*) FROM pg_database WHERE datname = 'env_$id'")" 1
	expect "$app: role env_$id exists" "$(pgq "SELECT count(*) FROM pg_roles WHERE rolname = 'env_$id'")" 1
	[ -s "$T/node-sandbox/envs/$id/files/f.txt" ] && pass "$app: its files are there" || fail "$app: files missing"
	expect "$app: its snapshot on the node" "$(snaps "$id")" 1
	expect "$app: the portal lists it" "$("$NUBO" backups list "$app" Sandbox --json | jq_get snapshots.0.state)" completed
	expect "$app: served by the router" "$(route sandbox "$app-sandbox.nubo.localhost" /count | jq_get count)" 1
	grep -q "$app-sandbox.nubo.localhost" "$T/node-sandbox/nginx/nginx.conf" && pass "$app: in the router config" || fail "$app: not in the router config"
	for _ in $(seq 40); do ls "$T/node-sandbox/nginx/settings/env_$id/"htpasswd-* >/dev/null 2>&1 && break; sleep 0.25; done
	ls "$T/node-sandbox/nginx/settings/env_$id/"htpasswd-* >/dev/null 2>&1 && pass "$app: its htpasswd file on the node" || fail "$app: no htpasswd file"
}

# gone APP ID PID UUID: nothing of it left on the node, nor a record of
# its packages on the portal
gone() {
	local app=$1 id=$2 pid=$3 uuid=$4
	[ ! -e "$T/node-sandbox/app-packages/$uuid" ] && pass "$app: its package repository removed" || fail "$app: $(ls -R "$T/node-sandbox/app-packages/$uuid" | head -5) left"
	expect "$app: no record of its packages" "$(records "$app")" 0
	expect "$app: database env_$id dropped" "$(pgq "SELECT count(*) FROM pg_database WHERE datname = 'env_$id'")" 0
	expect "$app: role env_$id dropped" "$(pgq "SELECT count(*) FROM pg_roles WHERE rolname = 'env_$id'")" 0
	[ ! -e "$T/node-sandbox/envs/$id" ] && pass "$app: files, app and logs removed" || fail "$app: $(ls -R "$T/node-sandbox/envs/$id" | head -5) left"
	expect "$app: its snapshots deleted with it" "$(snaps "$id")" 0
	expect "$app: the router no longer serves it" "$(route_status sandbox "$app-sandbox.nubo.localhost" /)" 404
	if grep -qs app.py "/proc/$pid/cmdline"; then fail "$app: instance $pid still runs"; else pass "$app: instance stopped"; fi
	grep -q "$app-sandbox.nubo.localhost" "$T/node-sandbox/nginx/nginx.conf" && fail "$app: still in the router config" || pass "$app: out of the router config"
	[ ! -e "$T/node-sandbox/nginx/settings/env_$id" ] && pass "$app: its settings files removed" || fail "$app: $(ls "$T/node-sandbox/nginx/settings/env_$id") left in settings/env_$id"
}

deploy trial
deploy gone
ID1=$(envid trial)
ID2=$(envid gone)
U1=$(appuuid trial)
U2=$(appuuid gone)
PID1=$("$NUBO" envs show trial Sandbox --json | jq_get running.0.pid)
PID2=$("$NUBO" envs show gone Sandbox --json | jq_get running.0.pid)
present trial "$ID1" "$U1"
present gone "$ID2" "$U2"

# on_tty ANSWER CMD…: run CMD on a terminal (a pty) and type ANSWER when
# it asks to confirm; prints what the terminal showed, exits as CMD did.
on_tty() {
	python3 - "$@" <<'PY'
import os, pty, sys
answer = sys.argv[1].encode() + b"\n"
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
out, sent = b"", False
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    if not sent and b"to confirm: " in out:
        os.write(fd, answer)
        sent = True
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
PY
}

# ---- refused while the sandbox node is unreachable: nothing changes -----
stop_node sandbox
check_fails "unlink-sandbox refused with the node down" 1 "$NUBO" apps unlink-sandbox trial --yes
expect_match "the refusal says why" "$(cat "$T/last.err")" "could not delete|cannot reach"
expect "API answers 503 NODE_UNREACHABLE" "$(api_as "$ADMIN_KEY" POST /apps/trial/unlink-sandbox '{"confirm":true}' | jq_get error.code)" NODE_UNREACHABLE
check_fails "deleting a sandbox app refused with the node down" 1 "$NUBO" apps delete gone --yes
expect "delete answers 503" "$(status_as "$ADMIN_KEY" DELETE /apps/gone)" 503
expect "trial keeps its sandbox" "$("$NUBO" apps show trial --json | jq_get sandbox)" true
expect "gone still exists" "$("$NUBO" apps show gone --json | jq_get subdomain)" gone
expect "both environments still on the portal" "$(sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM environments WHERE id IN ($ID1, $ID2)")" 2
start_node sandbox v4
# the restarted agent re-adopts the running instances and routes them again
for _ in $(seq 60); do
	[ "$(route_status sandbox trial-sandbox.nubo.localhost /health)" = 200 ] &&
		[ "$(route_status sandbox gone-sandbox.nubo.localhost /health)" = 200 ] && break
	sleep 0.25
done
present trial "$ID1" "$U1"
present gone "$ID2" "$U2"

# ---- unlink-sandbox: confirmation, then the data is gone for real -------
check_fails "unlink-sandbox without --yes is a usage error" 2 "$NUBO" apps unlink-sandbox trial </dev/null
expect "API refuses without confirm" "$(api_as "$ADMIN_KEY" POST /apps/trial/unlink-sandbox '{"confirm":false}' | jq_get error.code)" CONFIRMATION_REQUIRED
present trial "$ID1" "$U1"
check "unlink-sandbox --yes" "$NUBO" apps unlink-sandbox trial --yes
expect "trial has no sandbox" "$("$NUBO" apps show trial --json | jq_get sandbox)" false
gone trial "$ID1" "$PID1" "$U1"
present gone "$ID2" "$U2"
expect_match "activity says the data was deleted on the node" \
	"$("$NUBO" apps activity trial --json | python3 -c 'import json,sys; print([a["detail"] for a in json.load(sys.stdin) if a["action"]=="app.unlink-sandbox"][0])')" \
	"deleted on the node .instances stopped, database and files removed"

# ---- deleting a sandbox app: confirmation, then its environment on the
# node is gone
check_fails "apps delete without --yes (no terminal) is a usage error" 2 "$NUBO" apps delete gone </dev/null
expect_match "the usage error names --yes" "$(cat "$T/last.err")" "pass --yes to confirm"
check_fails "apps delete: another subdomain typed on a terminal" 1 on_tty trial "$NUBO" apps delete gone
expect_match "the terminal is asked for the subdomain" "$(cat "$T/last.out")" "Type the app's subdomain to confirm"
expect_match "the question says the sandbox data goes" "$(cat "$T/last.out")" "deletes its sandbox environment with all its data"
expect_match "not confirmed, nothing changed" "$(cat "$T/last.out")" "not confirmed; nothing changed"
expect "gone still exists" "$("$NUBO" apps show gone --json | jq_get subdomain)" gone
present gone "$ID2" "$U2"
check "delete the sandbox app (its subdomain typed on a terminal)" on_tty gone "$NUBO" apps delete gone
expect_match "delete says so" "$(cat "$T/last.out")" "deleted app 'gone'"
gone gone "$ID2" "$PID2" "$U2"
# the sweep that follows frees their blobs: no snapshot names one now
for _ in $(seq 300); do [ "$(blobs)" = 0 ] && break; sleep 0.1; done
expect "the node's snapshot store holds nothing of them" "$(blobs)" 0

# heartbeats (every 2 s) do not bring them back
sleep 5
[ ! -e "$T/node-sandbox/envs/$ID1" ] && [ ! -e "$T/node-sandbox/envs/$ID2" ] && pass "still gone after heartbeats" || fail "an environment came back: $(ls "$T/node-sandbox/envs")"
expect "the node lists no environment" "$(curl -s -H "Authorization: Bearer $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["portal_secret"])' "$T/node-sandbox/agent.json")" "$NODE_URL_sandbox/agent/v1/environments" | jq_get environments)" "[]"
expect "no env_ database left" "$(pgq "SELECT count(*) FROM pg_database WHERE datname LIKE 'env\_%'")" 0

# a new sandbox app after that starts from an empty database
deploy fresh
expect "fresh: its own data only" "$(route sandbox fresh-sandbox.nubo.localhost /count | jq_get count)" 1

finish
