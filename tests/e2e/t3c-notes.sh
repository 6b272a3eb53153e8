#!/usr/bin/env bash
# t3c: the sample app (examples/notes) end to end with the CLI only (the
# issue's "done when"): upload to a v3 node's repository, transport to
# Acceptance, start, reach it through the router by Host header, write
# notes and attachments (files at NUBO_FILES_DIR/xx/yy/<uuid>), the
# constant and the scheduled event, stop/start keeps everything.
. "$(dirname "$0")/lib.sh"

PKG=$NUBO_BUILD/packages/notes-1.0.0.tar.gz
[ -f "$PKG" ] || { echo "missing $PKG: run make examples"; exit 1; }

start_portal
start_node cloud3 v3 --start-timeout 20
check "create app" "$NUBO" apps create notes --no-sandbox
check "link app to the v3 node" "$NUBO" nodes link cloud3 notes
check "upload the sample app" "$NUBO" packages upload cloud3 "$PKG"
check "transport to Acceptance" "$NUBO" envs transport notes Acceptance notes-1.0.0
expect "Acceptance stopped with the package" "$("$NUBO" envs show notes Acceptance --json | jq_get state)" stopped
check "start Acceptance" "$NUBO" envs start notes Acceptance
expect "running" "$("$NUBO" envs show notes Acceptance --json | jq_get state)" running
expect_match "show lists the deployment" "$("$NUBO" packages show cloud3 notes-1.0.0 --json | jq_get environments)" Acceptance

HOST=notes-acceptance.nubo.localhost
expect "health through the router" "$(route cloud3 $HOST /healthz)" ok
expect_match "home page shows the constant's default" "$(route cloud3 $HOST /)" "<h1>Hello from notes</h1>"
post() { # PATH DATA-ARGS…: POST through the router, print the body
	local var=ROUTER_cloud3 path=$1; shift
	curl -s -H "Host: $HOST" -X POST "$@" "http://127.0.0.1:${!var}$path"
}
id1=$(post /api/notes -H 'Content-Type: application/json' -d '{"title":"first","body":"hello <world>"}' | jq_get id)
id2=$(post /api/notes -d '{"title":"second"}' | jq_get id)
expect "two notes written" "$id1,$id2" "1,2"
head -c 300000 /dev/urandom > "$T/a1.bin"
printf 'a small text attachment\n' > "$T/a2.txt"
u1=$(post "/api/notes/$id1/attachments?name=a1.bin" --data-binary @"$T/a1.bin" | jq_get uuid)
u2=$(post "/api/notes/$id2/attachments?name=a2.txt" --data-binary @"$T/a2.txt" | jq_get uuid)
expect_match "attachment stored" "$u1" '^[0-9a-f-]{36}$'
f1=$(find "$T"/node-cloud3/envs/*/files -path "*/files/${u1:0:2}/${u1:2:2}/$u1")
expect "file at NUBO_FILES_DIR/xx/yy/<uuid>" "$(cmp -s "$f1" "$T/a1.bin" && echo same)" same
eid=$(basename "$(dirname "$(dirname "$(dirname "$(dirname "$f1")")")")")
expect "files belong to the environment's own user, 0640 (umask 027)" "$(stat -c '%u %a' "$f1")" "$(jq_get uid < "$T/node-cloud3/envs/$eid/env.json") 640"
expect "note not found refused" "$(post /api/notes/99/attachments --data-binary x | jq_get error.message)" "note not found"
expect "Cleanup event" "$(post /_nubo/events/Cleanup | jq_get recorded)" true
stats() { route cloud3 $HOST /api/stats | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["notes"], s["attachments"], s["attachment_bytes"], s["events"]["Cleanup"])'; }
want="2 2 $((300000 + 24)) 1"
expect "stats" "$(stats)" "$want"

check "stop" "$NUBO" envs stop notes Acceptance
expect "stopped: the router answers 503" "$(route_status cloud3 $HOST /healthz)" 503
check "start again" "$NUBO" envs start notes Acceptance
expect "notes, attachments and events kept over stop/start" "$(stats)" "$want"
expect "attachment bytes kept" "$(route cloud3 $HOST "/api/attachments/$u1" | sha256sum)" "$(sha256sum < "$T/a1.bin")"
expect "list in JSON" "$(route cloud3 $HOST /api/notes | jq_get 1.attachments.0.name)" a2.txt
expect_match "home page escapes" "$(route cloud3 $HOST /)" "hello &lt;world&gt;"
check_fails "the deployed package cannot be deleted" 1 "$NUBO" packages delete cloud3 notes-1.0.0
check "stop at the end" "$NUBO" envs stop notes Acceptance
finish
