#!/usr/bin/env bash
# t3d: the daemons against hostile clients. Idle-connection floods on
# loopback (tests/e2e/flood.py, bounded in count and time) against the
# portal and the node agent: one address gets at most
# NUBO_HTTP_PER_ADDRESS connections, many addresses together never take
# the connections kept for nodes (at the portal) or for the portal (at a
# node), and a connection that sends nothing is closed after
# NUBO_HTTP_HEADER_SECS; while each flood holds, an authenticated request,
# a node heartbeat and a portal → agent call still succeed. Node agent
# secrets are sealed in the store with a key kept outside the data folder
# (--secrets-key): a copy of portal.db holds none. A registration's agent
# URL must name the address it came from or the one an admin set.
. "$(dirname "$0")/lib.sh"

FLOOD=$NUBO_SRC/tests/e2e/flood.py
PER_ADDRESS=$(awk '/define NUBO_HTTP_PER_ADDRESS/ {print $3}' "$NUBO_SRC/src/common/nubo_limits.h")
HEADER_SECS=$(awk '/define NUBO_HTTP_HEADER_SECS/ {print $3}' "$NUBO_SRC/src/common/nubo_limits.h")

start_portal
start_node n1 v3
AGENT_PORT=${NODE_URL_n1##*:}
FLOOD_PID=

flood_stop() {
	if [ -n "$FLOOD_PID" ]; then
		kill "$FLOOD_PID" 2>/dev/null || true
		wait "$FLOOD_PID" 2>/dev/null || true
		FLOOD_PID=
	fi
}
trap 'flood_stop; cleanup' EXIT

# flood NAME PORT SOURCES PER_SOURCE: start a flood, wait until its
# connections settled; OPEN gets how many the daemon kept.
flood() {
	local i
	python3 "$FLOOD" hold 127.0.0.1 "$2" "$3" "$4" 120 > "$T/flood-$1.out" 2>&1 &
	FLOOD_PID=$!
	OPEN=
	for i in $(seq 600); do
		if grep -q '^open' "$T/flood-$1.out"; then
			OPEN=$(awk '/^open/ {print $2}' "$T/flood-$1.out")
			return 0
		fi
		sleep 0.1
	done
	fail "$1: the flood did not settle"
	cat "$T/flood-$1.out" >&2
}

# heartbeat_since T0: the node's heartbeat reached the portal after T0
# (a UTC time), within 20 s.
heartbeat_since() {
	local i seen
	for i in $(seq 40); do
		seen=$("$NUBO" nodes show n1 --json | jq_get last_seen_at)
		[[ "$seen" > "$1" ]] && { echo yes; return 0; }
		sleep 0.5
	done
	echo "no (last seen $seen)"
}

# me_from ADDR: GET /me with the admin's key from source address ADDR
me_from() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 10 --interface "$1" \
		-H "Authorization: Bearer $ADMIN_KEY" "$PORTAL_URL/api/v1/me" || true
}

# packages_fresh: the portal asked the node (GET /nodes/n1/packages)
packages_fresh() {
	"$NUBO" packages list n1 --json | jq_get node_reachable
}

# ---- node agent secrets, sealed with a key outside the data folder ------
SECRET=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["portal_secret"])' "$T/node-n1/agent.json")
# copy_has_secret: how often the node's secret appears in a copy of the
# store's files (portal.db and its WAL)
copy_has_secret() {
	rm -rf "$T/copy" && mkdir "$T/copy" && cp "$T"/portal/portal.db* "$T/copy/"
	python3 -c 'import sys, glob
s = sys.argv[2].encode()
print(sum(open(f, "rb").read().count(s) for f in glob.glob(sys.argv[1] + "/*")))' "$T/copy" "$SECRET"
}
expect "the node has a secret" "${#SECRET}" 64
expect "a copy of portal.db holds no agent secret" "$(copy_has_secret)" 0
expect "no key in the data folder" "$(find "$T/portal" -name '*key*' | wc -l)" 0
expect "the key is outside it" "$(stat -c %a "$SECRETS_KEY")" 600

# a store where an older portal kept the secret in clear, and its key in
# the data folder: both move out at start
stop_portal
sqlite3 "$T/portal/portal.db" "UPDATE nodes SET agent_secret = '$SECRET' WHERE name = 'n1'"
mv "$SECRETS_KEY" "$T/portal/settings.key"
expect_match "an older store holds the clear secret" "$(copy_has_secret)" '^[1-9]'
start_portal
expect "after a restart: a copy of portal.db holds no agent secret" "$(copy_has_secret)" 0
expect "after a restart: the key moved out of the data folder" \
	"$(test -s "$SECRETS_KEY" && test ! -e "$T/portal/settings.key" && echo yes)" yes
expect "after a restart: the portal still calls the node" "$("$NUBO" packages list n1 --json | jq_get node_reachable)" true

# the portal never starts with another key (nor makes a new one)
stop_portal
check_fails "a missing secrets key is refused" 1 timeout 20 "$NUBOD" portal --data "$T/portal" \
	--secrets-key "$T/elsewhere/secrets.key" --listen "127.0.0.1:$(free_port)"
expect_match "  naming the key it needs" "$(cat "$T/last.err")" "secrets key .*elsewhere/secrets.key is missing.*sealed with key [0-9a-f]{32}"
head -c 32 /dev/urandom > "$T/other.key"
check_fails "another secrets key is refused" 1 timeout 20 "$NUBOD" portal --data "$T/portal" \
	--secrets-key "$T/other.key" --listen "127.0.0.1:$(free_port)"
expect_match "  naming both keys" "$(cat "$T/last.err")" "other.key is key [0-9a-f]{32}, but this store's secrets are sealed with key"
start_portal

# ---- registration: the agent URL names the address it came from ---------
PROBE_TOKEN=$("$NUBO" admin nodes create probe --generation v3 --json | jq_get token)
# register FROM URL: a registration of node probe from source address
# FROM claiming agent URL; prints "status code"
register() {
	local st
	st=$(curl -s -o "$T/reg.json" -w '%{http_code}' --interface "$1" \
		-H "Authorization: Bearer $PROBE_TOKEN" -H 'Content-Type: application/json' \
		--data-binary "{\"url\":\"$2\",\"generation\":\"v3\"}" "$PORTAL_URL/api/v1/agent/register")
	echo "$st $(jq_get error.code < "$T/reg.json")"
}
probe_url() { "$NUBO" nodes show probe --json | jq_get agent_url; }
expect "register: another address is refused" "$(register 127.0.0.1 http://127.0.0.9:1)" "403 AGENT_URL_NOT_ALLOWED"
expect_match "  naming both addresses" "$(cat "$T/reg.json")" "'127.0.0.9' is not the address this registration came from \\(127.0.0.1\\)"
expect "  and the portal keeps no URL" "$(probe_url)" ""
expect "register: a name for the address is refused" "$(register 127.0.0.1 http://localhost:1)" "403 AGENT_URL_NOT_ALLOWED"
expect "register: user info in the URL is refused" "$(register 127.0.0.1 http://127.0.0.1@127.0.0.9:1/)" "400 INVALID_URL"
expect "register: the address it came from" "$(register 127.0.0.9 http://127.0.0.9:1)" "200 "
expect "  is kept" "$(probe_url)" http://127.0.0.9:1
expect "register: from elsewhere still refused" "$(register 127.0.0.1 http://127.0.0.9:2)" "403 AGENT_URL_NOT_ALLOWED"
expect "  and the URL unchanged" "$(probe_url)" http://127.0.0.9:1
OUTSIDER=$(make_user outsider@example.com)
check_fails "set-address is for platform admins" 1 env NUBO_API_KEY="$OUTSIDER" "$NUBO" admin nodes set-address probe 127.0.0.9
check_fails "set-address refuses a bad address" 1 "$NUBO" admin nodes set-address probe 'not an address!'
check "an admin sets the node's address" "$NUBO" admin nodes set-address probe 127.0.0.9
expect "  shown with the node" "$("$NUBO" nodes show probe --json | jq_get address)" 127.0.0.9
expect "register: the address an admin set" "$(register 127.0.0.1 http://127.0.0.9:2)" "200 "
expect "  is kept" "$(probe_url)" http://127.0.0.9:2
check "an admin clears it" "$NUBO" admin nodes set-address probe ""
expect "register: refused again once cleared" "$(register 127.0.0.1 http://127.0.0.9:3)" "403 AGENT_URL_NOT_ALLOWED"

# ---- the portal ---------------------------------------------------------
t0=$(date -u +%Y-%m-%dT%H:%M:%SZ)
flood "portal, one address" "$PORTAL_PORT" 127.0.0.2 4200
expect_match "portal, one address: at most $PER_ADDRESS of 4200 kept ($OPEN)" \
	"$([ "${OPEN:-99999}" -le "$PER_ADDRESS" ] && echo yes || echo no)" yes
expect "portal, one address: an authenticated request from another address" "$(me_from 127.0.0.3)" 200
expect "portal, one address: the node's heartbeat goes on" "$(heartbeat_since "$t0")" yes
flood_stop

t0=$(date -u +%Y-%m-%dT%H:%M:%SZ)
flood "portal, 40 addresses" "$PORTAL_PORT" 127.0.1.1-40 "$PER_ADDRESS"
expect_match "portal, 40 addresses: the reserve is kept ($OPEN open)" \
	"$([ "${OPEN:-99999}" -lt $((40 * PER_ADDRESS)) ] && echo yes || echo no)" yes
expect "portal, 40 addresses: a new address waits its turn" "$(me_from 127.0.2.1)" 000
expect "portal, 40 addresses: the node's heartbeat goes on" "$(heartbeat_since "$t0")" yes
expect "portal, 40 addresses: an authenticated request from the node's address" "$(me_from 127.0.0.1)" 200
flood_stop

w=$(python3 "$FLOOD" silent 127.0.0.1 "$PORTAL_PORT" 30)
expect_match "portal: a silent connection is closed after ${HEADER_SECS} s ($w)" \
	"$(python3 -c "import sys; w=sys.argv[1]; print('yes' if w != 'open' and float(w) < $HEADER_SECS + 5 else 'no')" "$w")" yes

# ---- the node agent -------------------------------------------------------
flood "agent, one address" "$AGENT_PORT" 127.0.0.2 4200
expect_match "agent, one address: at most $PER_ADDRESS of 4200 kept ($OPEN)" \
	"$([ "${OPEN:-99999}" -le "$PER_ADDRESS" ] && echo yes || echo no)" yes
expect "agent, one address: the portal's calls go on" "$(packages_fresh)" true
flood_stop

flood "agent, 40 addresses" "$AGENT_PORT" 127.0.1.1-40 "$PER_ADDRESS"
expect_match "agent, 40 addresses: the reserve is kept ($OPEN open)" \
	"$([ "${OPEN:-99999}" -lt $((40 * PER_ADDRESS)) ] && echo yes || echo no)" yes
expect "agent, 40 addresses: the portal's calls go on" "$(packages_fresh)" true
t0=$(date -u +%Y-%m-%dT%H:%M:%SZ)
expect "agent, 40 addresses: the node's heartbeat goes on" "$(heartbeat_since "$t0")" yes
flood_stop

w=$(python3 "$FLOOD" silent 127.0.0.1 "$AGENT_PORT" 30)
expect_match "agent: a silent connection is closed after ${HEADER_SECS} s ($w)" \
	"$(python3 -c "import sys; w=sys.argv[1]; print('yes' if w != 'open' and float(w) < $HEADER_SECS + 5 else 'no')" "$w")" yes

finish
