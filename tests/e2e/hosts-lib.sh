# The hosts of the t9 tests (sourced after lib.sh and migrate-lib.sh):
# network namespaces made here stand for a portal, a v3 node, a v4 node
# and a client, joined by a bridge in a namespace of their own (the
# switch), with addresses of 198.18.9.0/24 (t7 uses 198.18.96.x, t8
# 198.18.8.1; each test's switch is its own, so two t9 tests may run at
# once). A CA made here with openssl and a certificate per host; the
# portal on its host over HTTPS, and $NUBO, the CLI, on the client's.
# netns_release (the EXIT trap) removes the namespaces and what runs in
# them. node_args and start_host_node start a node on its host.
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
	fail "needs root and ip (iproute2) for network namespaces"
	finish
	exit 1
fi

# --- the hosts ---
NET=198.18.9
P_IP=$NET.1 V3_IP=$NET.3 V4_IP=$NET.4 C_IP=$NET.10
NS_SW=nubo-t9-$$-sw
NS_P=nubo-t9-$$-portal
NS_V3=nubo-t9-$$-v3
NS_V4=nubo-t9-$$-v4
NS_C=nubo-t9-$$-client
ALL_NS=("$NS_P" "$NS_V3" "$NS_V4" "$NS_C" "$NS_SW")
DBHOST=$T/dbhost
PGBIN=/usr/lib/postgresql/15/bin
netns_release() {
	local ns
	stop_all
	if [ -f "$DBHOST/data/postmaster.pid" ]; then
		runuser -u nubo-pg -- "$PGBIN/pg_ctl" -D "$DBHOST/data" stop -m immediate -w >/dev/null 2>&1 || true
	fi
	for ns in "${ALL_NS[@]}"; do
		# what stop_all missed would keep the namespace alive unnamed
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
		ip netns del "$ns" 2>/dev/null || true
	done
}
trap 'netns_release; cleanup' EXIT
# a test stopped by a signal (ctest's timeout) cleans up too
trap 'exit 143' TERM INT HUP
ip netns add "$NS_SW"
ip -n "$NS_SW" link add br0 type bridge
ip -n "$NS_SW" link set br0 up
ip -n "$NS_SW" link set lo up
host_ns() { # NS PORTNAME IP: a host on the switch
	ip netns add "$1"
	ip -n "$NS_SW" link add "$2" type veth peer name eth0 netns "$1"
	ip -n "$NS_SW" link set "$2" master br0 up
	ip -n "$1" link set lo up
	ip -n "$1" addr add "$3/24" dev eth0
	ip -n "$1" link set eth0 up
}
host_ns "$NS_P" p "$P_IP"
host_ns "$NS_V3" v3 "$V3_IP"
host_ns "$NS_V4" v4 "$V4_IP"
host_ns "$NS_C" c "$C_IP"
in_p() { ip netns exec "$NS_P" "$@"; }
in_c() { ip netns exec "$NS_C" "$@"; }

# --- certificates: a CA, one per host, the app hostnames, a custom domain ---
DOMAIN=apps.t9.test
ca() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" \
		-keyout "$T/$1.key" -out "$T/$1.pem" 2>/dev/null
}
cert() { # NAME SAN
	openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$T/$1.key" \
		-out "$T/$1.csr" 2>/dev/null
	openssl x509 -req -in "$T/$1.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" \
		-CAcreateserial -days 2 -extfile <(echo "subjectAltName=$2") -out "$T/$1.pem" 2>/dev/null
}
ca ca
cert portal "IP:$P_IP"
cert v3 "IP:$V3_IP"
cert v4 "IP:$V4_IP"
cert apps "DNS:*.$DOMAIN"
cert shop "DNS:shop.t9.test"

# --- the portal on its host, HTTPS only ---
PORTAL_URL=https://$P_IP:7443
"$NUBOD" portal init --data "$T/portal" --password adminpass1 > "$T/init.txt"
ADMIN_KEY=$(awk '/API key/ {print $NF}' "$T/init.txt")
export NUBO_TEST_PAUSE_FILE=$T/pause
# not through in_p: $! is then the daemon itself (ip netns exec execs it)
ip netns exec "$NS_P" "$NUBOD" portal --data "$T/portal" --secrets-key "$SECRETS_KEY" \
	--listen "$P_IP:7443" --url "$PORTAL_URL" --domain "$DOMAIN" \
	--tls-cert "$T/portal.pem" --tls-key "$T/portal.key" >> "$T/portal.log" 2>&1 &
PORTAL_PID=$!
PIDS+=("$PORTAL_PID")
for _ in $(seq 100); do
	in_c curl -s --cacert "$T/ca.pem" -o /dev/null "$PORTAL_URL/api/v1/openapi.json" && break
	sleep 0.2
done
expect "the client reaches the portal over HTTPS (verified against the CA)" \
	"$(in_c curl -s --cacert "$T/ca.pem" -o /dev/null -w '%{http_code}' "$PORTAL_URL/api/v1/openapi.json")" 200
expect "plain HTTP to the portal's listener gets no answer" \
	"$(in_c curl -s -m 10 -o /dev/null -w '%{http_code}' "http://$P_IP:7443/api/v1/openapi.json" || true)" 000
expect "the portal listens on its own address only" \
	"$(in_p ss -Htln | awk '{print $4}' | sort -u | tr '\n' ' ')" "$P_IP:7443 "
# the CLI runs on the client's host
cat > "$T/nubo-client" <<EOF
#!/bin/sh
exec ip netns exec $NS_C $NUBO "\$@"
EOF
chmod +x "$T/nubo-client"
NUBO=$T/nubo-client
export NUBO_URL=$PORTAL_URL NUBO_API_KEY=$ADMIN_KEY NUBO_CA=$T/ca.pem

# --- nodes join by URL + token ---
# node_args NAME IP: a node's options (its own address everywhere)
node_args() {
	local extra=EXTRA_$1
	echo --data "$T/node-$1" --portal "$PORTAL_URL" --token "$(cat "$T/node-$1.token")" \
		--portal-ca "$T/ca.pem" --listen "$2:7443" --tls-cert "$T/$1.pem" --tls-key "$T/$1.key" \
		--router-listen "$2:80" --router-tls-listen "$2:443" \
		--router-tls-cert "$T/apps.pem" --router-tls-key "$T/apps.key" \
		--pg-port 5433 --start-timeout 60 "${!extra:-}"
}
# start_host_node NAME NS IP: the node's agent on its host
start_host_node() {
	local before n
	before=$(grep -c "registered as node '$1'" "$T/node-$1.log" 2>/dev/null || true)
	# shellcheck disable=SC2046
	ip netns exec "$2" "$NUBOD" node $(node_args "$1" "$3") >> "$T/node-$1.log" 2>&1 &
	PIDS+=("$!")
	printf -v "NODE_PID_$1" %s "$!"
	for _ in $(seq 150); do
		n=$(grep -sc "registered as node '$1'" "$T/node-$1.log") || true
		# (no log yet: no count, no registration)
		[ "${n:-0}" -gt "${before:-0}" ] && return 0
		sleep 0.2
	done
	fail "node $1 did not register"
	tail -20 "$T/node-$1.log" >&2
	return 1
}
