#!/usr/bin/env bash
# t9-config: nubod portal and nubod node run from a --config file (the
# installed services' way: key = value, the command line wins); a bad
# file is refused with FILE:LINE before anything starts.
. "$(dirname "$0")/lib.sh"

PORT=$(free_port)
OTHER=$(free_port)
cat > "$T/portal.conf" <<EOF
# the portal of t9-config
data = $T/portal
listen = 127.0.0.1:$OTHER
secrets-key = "$T/secrets.key"
domain = conf.localhost
threads = 2
EOF
chmod 600 "$T/portal.conf"

# init from the file: the store lands where the file says
check "portal init from --config" "$NUBOD" portal init --config "$T/portal.conf" \
	--password adminpass1
ADMIN_KEY=$(awk '/API key/ {print $NF}' "$T/last.out")
expect "the store is in the file's data folder" "$(test -f "$T/portal/portal.db" && echo yes)" yes

# the command line wins: --listen there, the rest from the file
"$NUBOD" portal --config "$T/portal.conf" --listen "127.0.0.1:$PORT" \
	>> "$T/portal.log" 2>&1 &
PORTAL_PID=$!
PIDS+=("$PORTAL_PID")
PORTAL_URL=http://127.0.0.1:$PORT
wait_http "$PORTAL_URL/api/v1/openapi.json"
export NUBO_URL=$PORTAL_URL NUBO_API_KEY=$ADMIN_KEY
check "the portal started from the file answers" "$NUBO" apps list
expect "nothing listens on the file's --listen" \
	"$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OTHER/api/v1/openapi.json" || true)" 000
expect_match "the file's domain is used" "$(cat "$T/portal.log")" "cloud domain conf\.localhost"
expect "the file's secrets key was made" "$(stat -c %a "$T/secrets.key")" 600

# a node from a file: its token in it (0600), registered with the portal
"$NUBO" admin nodes create confnode --generation v3 --json | jq_get token > "$T/token"
NODE_AGENT=$(free_port)
NODE_ROUTER=$(free_port)
NODE_PG=$(free_port)
cat > "$T/node.conf" <<EOF
data = $T/node-confnode
portal = $PORTAL_URL
token = $(cat "$T/token")
listen = 127.0.0.1:$NODE_AGENT
router-port = $NODE_ROUTER
pg-port = $NODE_PG
start-timeout = 30
EOF
chmod 600 "$T/node.conf"
NODE_DIRS+=("$T/node-confnode")
"$NUBOD" node --config "$T/node.conf" >> "$T/node-confnode.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$NODE_ROUTER/" 60
for _ in $(seq 100); do
	grep -q "registered as node 'confnode'" "$T/node-confnode.log" && break
	sleep 0.2
done
expect_match "the node started from its file registered" "$(cat "$T/node-confnode.log")" \
	"registered as node 'confnode'"
expect "the portal sees the node's agent at the file's address" \
	"$("$NUBO" nodes show confnode --json | jq_get agent_url)" "http://127.0.0.1:$NODE_AGENT"

# refused before anything starts: exit 2, FILE:LINE, no folder made (a
# node that started there after all is stopped at the end)
NODE_DIRS+=("$T/never")
bad() {	# bad NAME WANT-REGEX LINE… : a portal and a node file with those lines
	local name=$1 want=$2 f=$T/bad.conf
	shift 2
	printf '%s\n' "data = $T/never" "$@" > "$f"
	chmod 600 "$f"
	check_fails "portal: $name" 2 timeout 20 "$NUBOD" portal --config "$f"
	expect_match "portal: $name: the message" "$(cat "$T/last.err")" "$want"
	check_fails "node: $name" 2 timeout 20 "$NUBOD" node --config "$f" \
		--portal "$PORTAL_URL" --token x
	expect_match "node: $name: the message" "$(cat "$T/last.err")" "$want"
	expect "$name: nothing made" "$(test -e "$T/never" && echo made || echo none)" none
}
bad "unknown key" "bad\.conf:3: unknown option 'colour'" "listen = 127.0.0.1:$(free_port)" "colour = blue"
bad "not key = value" "bad\.conf:2: expected 'key = value'" "listen 127.0.0.1:1"
bad "an option given twice" "bad\.conf:3: 'data' is already set on line 1" "# x" "data = $T/never2"
bad "a bad listen address" "bad\.conf:2: listen = '127\.0\.0\.1:99999': expected IP:PORT" \
	"listen = 127.0.0.1:99999"
bad "a flag that is neither yes nor no" "bad\.conf:2: insecure-http = 'sometimes'" \
	"insecure-http = sometimes"
bad "--config inside a file" "bad\.conf:2: 'config' is for the command line only" \
	"config = /etc/passwd"
printf 'data = %s\nthreads = 0\n' "$T/never" > "$T/range.conf"
check_fails "portal: threads out of range" 2 "$NUBOD" portal --config "$T/range.conf"
expect_match "portal: threads out of range: the message" "$(cat "$T/last.err")" \
	"threads = '0': expected a number of threads from 1 to 256"
printf 'data = %s\nports = 9-3\n' "$T/never" > "$T/range.conf"
check_fails "node: bad ports" 2 "$NUBOD" node --config "$T/range.conf" \
	--portal "$PORTAL_URL" --token x
expect_match "node: bad ports: the message" "$(cat "$T/last.err")" "ports = '9-3': expected LO-HI"
printf 'data = %s\ntoken = secret\n' "$T/never" > "$T/open.conf"
chmod 644 "$T/open.conf"
check_fails "node: a token in a file others may read" 2 timeout 20 "$NUBOD" node --config "$T/open.conf" \
	--portal "$PORTAL_URL"
expect_match "node: the token's file: the message" "$(cat "$T/last.err")" "'token' is a secret, but others may read"
check_fails "a missing --config file" 2 "$NUBOD" portal --config "$T/none.conf"
expect "still nothing made" "$(test -e "$T/never" && echo made || echo none)" none
# the README's Production files are what the daemons take (their values
# are checked before --help answers)
awk '/^## Production/ {p = 1} /^## / && !/Production/ {p = 0}
	p && /^```ini/ {n++; f = 1; next} p && /^```/ {f = 0} f {print > (dir "/readme-" n ".conf")}' \
	dir="$T" "$NUBO_SRC/README.md"
chmod 600 "$T"/readme-*.conf 2>/dev/null || true
check "README's portal.conf is read by nubod portal" "$NUBOD" portal --config "$T/readme-1.conf" --help
check "README's node.conf is read by nubod node" "$NUBOD" node --config "$T/readme-2.conf" --help
expect "  (two files, with more than 5 keys each)" \
	"$(grep -c ' = ' "$T/readme-1.conf" 2>/dev/null) $(test "$(grep -c ' = ' "$T/readme-2.conf" 2>/dev/null)" -gt 5 && echo many)" "7 many"

# --help gives every default someone running a cloud by hand meets
# (lines joined: the help wraps its text)
"$NUBOD" node --help | tr -s ' \n' '  ' > "$T/node.help"
"$NUBOD" portal --help | tr -s ' \n' '  ' > "$T/portal.help"
for d in "default 127.0.0.1:7080" "default 127.0.0.1:8080" "default 5433" \
	"default 20000-32767" "default 700000-799999" "default 60)" "default 10)" \
	"default 20G" "512 MB of memory" "600 s"; do
	grep -qF -- "$d" "$T/node.help" && pass "nubod node --help says '$d'" || fail "nubod node --help does not say '$d'"
done
for d in "default 127.0.0.1:7070" "default nubo.localhost" "default 4)" "default 30)" \
	"default /etc/nubo/secrets.key"; do
	grep -qF -- "$d" "$T/portal.help" && pass "nubod portal --help says '$d'" || fail "nubod portal --help does not say '$d'"
done

# the running portal was not disturbed by any of it
check "the portal still answers" "$NUBO" apps list

finish
