#!/usr/bin/env bash
# t9: nubo across hosts. Network namespaces made here (hosts-lib.sh) stand
# for the hosts — a portal, a v3 node, a v4 node and a client — joined by
# a bridge in a namespace of their own (the switch), with addresses of
# 198.18.9.0/24 (t7 uses 198.18.96.x, t8 198.18.8.1). Every daemon listens only on its
# own namespace's address, with TLS (a CA made here with openssl): the
# portal, each node's agent and each node's router (HTTPS on 443, with a
# certificate for the app hostnames; port 80 redirects). From the client:
# nodes join by URL + token, the sample app is deployed and reached over
# HTTPS by its hostname (curl --resolve, verified against the CA), a custom
# domain answers with its own certificate, a backup is downloaded, and the
# v3 → v4 migration runs node to node while v4's link goes down (it shows
# offline, the step waits as retrying, nothing done is lost) and comes
# back (online again, the step is tried again by itself and the migration
# finishes: no resume), twice, the second time in the database stream.
# v4 gets its app certificates from pebble (an ACME server on the
# portal's host): after the migration the client reaches the app on v4
# verified against pebble's root. Plain HTTP to a listener outside
# loopback is refused; no login to a node's PostgreSQL from another host
# succeeds (it listens on the node's address, with TLS, for migrations
# that replicate: t9-hosts-replicate).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"
. "$(dirname "$0")/hosts-lib.sh"

check "the CLI on the client's host works with the CA" "$NUBO" apps list

# --- pebble, an ACME server, on the portal's host: v4's app hostnames get
# their certificates from it (HTTP-01 on v4's router port 80; pebble's
# DNS, pebble-challtestsrv, answers every name with v4's address) ---
cert pebble "IP:$P_IP"
PEBBLE_DIR=https://$P_IP:14000/dir
# the namespaces' processes are all killed by netns_release
ip netns exec "$NS_P" pebble-challtestsrv -dns01 "$P_IP:8053" -management "127.0.0.1:8055" \
	-http01 "" -https01 "" -tlsalpn01 "" -defaultIPv4 "$V4_IP" -defaultIPv6 "" \
	> "$T/challtestsrv.log" 2>&1 &
cat > "$T/pebble.json" <<JSON
{"pebble": {"listenAddress": "$P_IP:14000", "managementListenAddress": "$P_IP:15000",
  "certificate": "$T/pebble.pem", "privateKey": "$T/pebble.key",
  "httpPort": 80, "tlsPort": 5001, "ocspResponderURL": "",
  "externalAccountBindingRequired": false}}
JSON
ip netns exec "$NS_P" env PEBBLE_VA_NOSLEEP=1 PEBBLE_VA_ALWAYS_VALID=0 PEBBLE_WFE_NONCEREJECT=0 \
	pebble -config "$T/pebble.json" -dnsserver "$P_IP:8053" >> "$T/pebble.log" 2>&1 &
for _ in $(seq 150); do
	in_c curl -s --cacert "$T/ca.pem" -o /dev/null "$PEBBLE_DIR" && break
	sleep 0.2
done
in_c curl -s --cacert "$T/ca.pem" "https://$P_IP:15000/roots/0" > "$T/pebble-root.pem" ||
	tail -5 "$T/pebble.log" "$T/challtestsrv.log" >&2
expect_match "pebble answers on the portal's host; its issuing root is fetched" "$(head -1 "$T/pebble-root.pem")" "BEGIN CERTIFICATE"

# --- nodes join by URL + token ---
# v3 also answers over HTTPS on its IPv6 loopback; v4 orders certificates
EXTRA_v3='--router-tls-listen [::1]:8443'
EXTRA_v4="--acme-directory $PEBBLE_DIR --acme-email ops@t9.test --acme-ca $T/ca.pem"
for n in v3 v4; do
	"$NUBO" admin nodes create "$n" --generation "$n" --json | jq_get token > "$T/node-$n.token"
	NODE_DIRS+=("$T/node-$n")
done

# plain HTTP outside loopback is refused before anything starts
check_fails "a router with plain HTTP on its host's address and no HTTPS listener is refused" 1 \
	ip netns exec "$NS_V3" "$NUBOD" node --data "$T/nonode" --portal "$PORTAL_URL" --token x \
	--listen "$V3_IP:7443" --tls-cert "$T/v3.pem" --tls-key "$T/v3.key" --router-listen "$V3_IP:80"
expect_match "  and says why" "$(cat "$T/last.err")" "refusing plain HTTP for apps on $V3_IP:80, an address outside loopback"
check_fails "an agent with plain HTTP on its host's address is refused" 1 \
	ip netns exec "$NS_V3" "$NUBOD" node --data "$T/nonode" --portal "$PORTAL_URL" --token x \
	--listen "$V3_IP:7443" --router-tls-listen "$V3_IP:443"
expect_match "  and says why" "$(cat "$T/last.err")" "refusing plain HTTP on $V3_IP:7443"
check_fails "a bad router address is refused" 2 \
	"$NUBOD" node --data "$T/nonode" --portal "$PORTAL_URL" --token x --router-tls-listen "$V3_IP"
check_fails "--router-tls-cert without an HTTPS listener is refused" 1 \
	"$NUBOD" node --data "$T/nonode" --portal "$PORTAL_URL" --token x \
	--router-tls-cert "$T/apps.pem" --router-tls-key "$T/apps.key"
check_fails "an app certificate whose key is another's is refused" 1 \
	"$NUBOD" node --data "$T/nonode" --portal "$PORTAL_URL" --token x --router-tls-listen 127.0.0.1:1 \
	--router-tls-cert "$T/apps.pem" --router-tls-key "$T/shop.key"
expect "  none of them made anything" "$([ -e "$T/nonode" ] && echo made || echo nothing)" nothing

start_host_node v3 "$NS_V3" "$V3_IP"
start_host_node v4 "$NS_V4" "$V4_IP"
v3=$("$NUBO" nodes show v3 --json)
expect "v3's agent is reached on its own address" "$(jq_get agent_url <<< "$v3")" "https://$V3_IP:7443"
expect "  its router over HTTPS there" "$(jq_get router_tls <<< "$v3")" "$V3_IP:443"
expect "  no plain router serving apps (port 80 redirects)" "$(jq_get router <<< "$v3")" ""
expect "  online" "$(jq_get online <<< "$v3")" true
expect_match "the node says where its router listens" "$(grep -m1 'router on' "$T/node-v3.log")" \
	"router on $V3_IP:80 \(redirects to HTTPS\), $V3_IP:443 \(HTTPS\)"
expect "v3 listens on its own address only (PostgreSQL there too, and on its loopback with [::1]:8443)" \
	"$(ip netns exec "$NS_V3" ss -Htln | awk '{print $4}' | sort -u | tr '\n' ' ')" \
	"127.0.0.1:5433 $V3_IP:443 $V3_IP:5433 $V3_IP:7443 $V3_IP:80 [::1]:8443 "

# --- the sample app, deployed and reached from the client by its hostname ---
"$NUBO" apps create notes --no-sandbox >/dev/null
"$NUBO" nodes link v3 notes >/dev/null
deploy v3 notes Test
HOST=notes-test.$DOMAIN
# app NODE_IP METHOD PATH [curl options…]: through the router over HTTPS,
# verified against $APP_CA
APP_CA=$T/ca.pem
app() {
	local ip=$1 method=$2 path=$3
	shift 3
	in_c curl -s --cacert "$APP_CA" --resolve "$HOST:443:$ip" -X "$method" "$@" "https://$HOST$path"
}
expect "the app answers over HTTPS by its hostname (verified against the CA)" \
	"$(app "$V3_IP" GET /api/notes -o /dev/null -w '%{http_code}')" 200
expect "envs show gives its https URL" "$("$NUBO" envs show notes Test --json | jq_get url)" "https://$HOST"
for i in 1 2 3; do
	app "$V3_IP" POST /api/notes -H 'Content-Type: application/json' \
		--data-binary "{\"title\":\"note $i\",\"body\":\"written on v3 over https\"}" -o /dev/null
done
head -c 65536 /dev/urandom > "$T/attach.bin"
id=$(app "$V3_IP" GET /api/notes | python3 -c 'import json,sys; n=json.load(sys.stdin); n=n.get("notes",n) if isinstance(n,dict) else n; print(n[0]["id"])')
app "$V3_IP" POST "/api/notes/$id/attachments?name=a.bin" --data-binary @"$T/attach.bin" -o /dev/null
# digest NODE_IP: every note and attachment as the app serves them (an
# unreachable app names its address: never equal to another's digest)
digest() {
	local notes
	notes=$(app "$1" GET /api/notes) || { echo "unreachable: $1"; return 0; }
	python3 - "$notes" <<'PY'
import hashlib, json, sys
n = json.loads(sys.argv[1]); n = n.get("notes", n) if isinstance(n, dict) else n
print(len(n), sum(len(x.get("attachments", [])) for x in n),
      hashlib.sha256(json.dumps(sorted([[x["id"], x["title"], x["body"],
      sorted(a["uuid"] for a in x.get("attachments", []))] for x in n])).encode()).hexdigest()[:16])
PY
}
src=$(digest "$V3_IP")
expect_match "  three notes and an attachment written over HTTPS" "$src" "^3 1 "
expect "the app answers on v3's IPv6 loopback listener too" \
	"$(ip netns exec "$NS_V3" curl -s --cacert "$T/ca.pem" --resolve "$HOST:8443:[::1]" -o /dev/null -w '%{http_code}' "https://$HOST:8443/api/notes")" 200
expect "plain HTTP on the router's port 80 redirects to HTTPS" \
	"$(in_c curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "Host: $HOST" "http://$V3_IP/api/notes")" \
	"308 https://$HOST/api/notes"
expect "a hostname no app has gets no TLS handshake" \
	"$(in_c curl -s --cacert "$T/ca.pem" --resolve "nothing.$DOMAIN:443:$V3_IP" -o /dev/null -w '%{http_code}' "https://nothing.$DOMAIN/" || true)" 000
check "a custom domain with its own certificate" "$NUBO" settings domain-add notes Test shop.t9.test \
	--cert "$T/shop.pem" --key "$T/shop.key"
for _ in $(seq 50); do
	in_c curl -s --cacert "$T/ca.pem" --resolve "shop.t9.test:443:$V3_IP" -o /dev/null https://shop.t9.test/api/notes && break
	sleep 0.2
done
expect "  answers on the router's address with that certificate (SNI)" \
	"$(in_c curl -s --cacert "$T/ca.pem" --resolve "shop.t9.test:443:$V3_IP" -o /dev/null -w '%{http_code}' https://shop.t9.test/api/notes)" 200

# --- the app hostnames' certificate renewed: SIGHUP to the agent ---
serial() { # the serial of the certificate v3's router presents for NAME
	in_c openssl s_client -connect "$V3_IP:443" -servername "$1" -CAfile "$T/ca.pem" </dev/null 2>/dev/null |
		openssl x509 -noout -serial
}
expect "v3's router presents the app hostnames' certificate" "$(serial "$HOST")" "$(openssl x509 -in "$T/apps.pem" -noout -serial)"
cert apps-renewed "DNS:*.$DOMAIN"
cp "$T/apps-renewed.pem" "$T/apps.pem"
cp "$T/apps-renewed.key" "$T/apps.key"
kill -HUP "$NODE_PID_v3"
for _ in $(seq 100); do
	[ "$(serial "$HOST")" = "$(openssl x509 -in "$T/apps-renewed.pem" -noout -serial)" ] && break
	sleep 0.1
done
expect "  the renewed one after SIGHUP" "$(serial "$HOST")" "$(openssl x509 -in "$T/apps-renewed.pem" -noout -serial)"
expect "  the custom domain keeps its own" "$(serial shop.t9.test)" "$(openssl x509 -in "$T/shop.pem" -noout -serial)"
expect "  the app still answers" "$(app "$V3_IP" GET /api/notes -o /dev/null -w '%{http_code}')" 200

# --- PostgreSQL: the node's own, nobody else's ---
# it listens on v3's address (with TLS, for replicating migrations), and
# admits nobody from there outside a migration: not its admin, not an
# environment's role, with or without TLS, from the client or from v4
pg_login() { # NS USER PASSWORD DB SSLMODE: psql's first line
	PGPASSWORD=$3 ip netns exec "$1" psql -X -A -t -q \
		"host=$V3_IP port=5433 user=$2 dbname=$4 sslmode=$5 connect_timeout=5" -c 'SELECT 1' 2>&1 | head -1
}
ADMIN_PW=$(jq_get password < "$T/node-v3/pg/admin.json")
TEST_ID=$(env_id v3 Test)
ENV_PW=$(jq_get db_password < "$T/node-v3/envs/$TEST_ID/env.json")
for ns in "$NS_C" "$NS_V4"; do
	for mode in require disable; do
		expect_match "no login to v3's PostgreSQL from ${ns##*-}'s host as its admin (sslmode $mode)" \
			"$(pg_login "$ns" nubo_admin "$ADMIN_PW" postgres "$mode")" "pg_hba.conf rejects connection for host"
		expect_match "  nor as an environment's role (sslmode $mode)" \
			"$(pg_login "$ns" "env_$TEST_ID" "$ENV_PW" "env_$TEST_ID" "$mode")" "pg_hba.conf rejects connection for host"
	done
done
expect "  v3's PostgreSQL serves TLS there (the handshake completes)" \
	"$(in_c openssl s_client -starttls postgres -connect "$V3_IP:5433" </dev/null 2>/dev/null | grep -c 'BEGIN CERTIFICATE')" 1
expect_match "its pg_hba admits the sandboxes' socket and the node's loopback only (replication roles: only by a migration's rule)" \
	"$(grep -vE '^(#|$)' "$T/node-v3/pg/data/pg_hba.conf" | tr -s ' ' | tr '\n' '|')" \
	"^local sameuser all scram-sha-256\|host all \+nubo_replication all reject\|host all all 127.0.0.1/32 scram-sha-256\|host all all ::1/128 scram-sha-256\|host all all 0.0.0.0/0 reject\|host all all ::/0 reject\|$"

# a node whose --pg server is on another host (here a cluster on the
# portal's host whose pg_hba.conf admits everyone from everywhere) says
# which rules let the environments' roles in from other hosts
mkdir -m 700 "$DBHOST"
chown nubo-pg "$DBHOST"
echo "dbhost-pw-$$" > "$T/dbhost.pw"
chmod 644 "$T/dbhost.pw"
runuser -u nubo-pg -- "$PGBIN/initdb" -D "$DBHOST/data" -U nubo_admin --pwfile="$T/dbhost.pw" \
	--auth=scram-sha-256 >/dev/null
printf 'host all all 0.0.0.0/0 scram-sha-256\nhost all all %s/32 md5\n' "$V3_IP" >> "$DBHOST/data/pg_hba.conf"
ip netns exec "$NS_P" runuser -u nubo-pg -- "$PGBIN/pg_ctl" -D "$DBHOST/data" -l "$DBHOST/log" -w \
	-o "-c listen_addresses=$P_IP -c port=5432 -c unix_socket_directories=$DBHOST" start >/dev/null
# its agent and router on v3's loopback; no portal needed for the check
ip netns exec "$NS_V3" "$NUBOD" node --data "$T/node-ext" --portal "$PORTAL_URL" --token none \
	--listen 127.0.0.1:7081 --router-port 8081 --router-listen "$V3_IP:8082" --insecure-http \
	--pg "postgresql://nubo_admin:dbhost-pw-$$@$P_IP:5432/postgres" >> "$T/node-ext.log" 2>&1 &
PIDS+=("$!")
NODE_DIRS+=("$T/node-ext")
EXT_PID=$!
for _ in $(seq 100); do
	grep -q "agent listening" "$T/node-ext.log" && break
	sleep 0.2
done
expect_match "a node with --pg on another host names the rule open to the network" "$(cat "$T/node-ext.log")" \
	"the PostgreSQL server at $P_IP: pg_hba.conf line [0-9]+ admits \{all\} from the network 0\.0\.0\.0/0\.0\.0\.0, not from the node's address only"
expect_match "  and the one without scram-sha-256" "$(cat "$T/node-ext.log")" \
	"pg_hba.conf line [0-9]+ admits \{all\} from $V3_IP with md5, not scram-sha-256"
expect "  not the rules of the server's own loopback" \
	"$(grep -c "admits {all} from the network 127\.0\.0\.1\|admits {all} from 127\.0\.0\.1" "$T/node-ext.log" || true)" 0
expect_match "with --insecure-http its router serves apps in clear on $V3_IP:8082, and warns" "$(cat "$T/node-ext.log")" \
	"router: serving apps with plain HTTP on $V3_IP:8082 \(--insecure-http\)"
expect "  the client gets the router's own answer there, not a redirect" \
	"$(in_c curl -s -o /dev/null -w '%{http_code}' -H 'Host: nothing.t9.test' "http://$V3_IP:8082/")" 404
kill -TERM "$EXT_PID"
wait "$EXT_PID" 2>/dev/null || true
"$NUBOD" node stop-all --data "$T/node-ext" >/dev/null 2>&1 || true
runuser -u nubo-pg -- "$PGBIN/pg_ctl" -D "$DBHOST/data" stop -m fast -w >/dev/null

# --- a backup, downloaded on the client's host ---
check "backups create" "$NUBO" backups create notes Test --comment hosts
SID=$("$NUBO" backups list notes Test --json | jq_get snapshots.0.id)
check "backups download from the client (node to client over HTTPS, pinned)" \
	"$NUBO" backups download notes Test "$SID" --output "$T/full.tar.gz"
expect_match "  a real archive" "$(tar tzf "$T/full.tar.gz" | head -50)" "db"

# --- v3 -> v4, node to node, while v4's link goes down and comes back ---
online() { "$NUBO" nodes show "$1" --json | jq_get online; }
online_becomes() { # NODE WANT SECONDS
	local i
	for i in $(seq $(($3 * 2))); do
		[ "$(online "$1")" = "$2" ] && return 0
		sleep 0.5
	done
	return 1
}
# mstatus: the migration's status and, for one retrying, the reason
mstatus() { "$NUBO" migrate status notes --json | python3 -c '
import json, sys
m = json.load(sys.stdin)
c = m.get("current_step") or {}
print(m["status"], (c.get("progress") or {}).get("retrying", ""))'; }
mstatus_becomes() { # WANT SECONDS
	local i
	for i in $(seq $(($2 * 2))); do
		[ "$(mstatus | cut -d' ' -f1)" = "$1" ] && return 0
		sleep 0.5
	done
	return 1
}
pause_at data:Test
"$NUBO" migrate run notes --to v4 > "$T/migrate1.out" 2>&1 &
MIG=$!
reached data:Test
ip -n "$NS_SW" link set v4 down
down_at=$(date +%s.%N)
check "v4 shows offline once its link is down" online_becomes v4 false 30
echo "# v4 shown offline $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $down_at }") s after its link went down"
expect "  v3 stays online" "$(online v3)" true
expect_match "  nubo nodes list says so" "$("$NUBO" nodes list | awk '$1 == "v4" {print $NF}')" "^no$"
unpause
check "the step v4 cannot do waits to be tried again (status retrying)" mstatus_becomes retrying 90
expect_match "  with the reason" "$(mstatus)" "^retrying .*(v4|198\.18\.9\.4|reach|connect|timed out)"
expect_match "  migrate status says it is tried again by itself, and how to give up" \
	"$("$NUBO" migrate status notes)" "tried again by itself once it answers; to give up: nubo migrate abort notes --to v4"
expect "  nubo migrate run still follows it" "$(kill -0 "$MIG" 2>/dev/null && echo following || echo exited)" following
# the step, tried again by itself once v4 is back, goes on into the
# database stream v4 pulls from v3: pause there
pause_at stream
ip -n "$NS_SW" link set v4 up
up_at=$(date +%s.%N)
check "v4 is online again once its link is back" online_becomes v4 true 60
echo "# v4 shown online $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $up_at }") s after its link came back"
expect_match "  its log says the heartbeat works again" "$(cat "$T/node-v4.log")" "heartbeat to $PORTAL_URL works again"
check "the migration goes on by itself (no resume): the stream starts" reached stream
# and once more in the middle of the stream: long enough that the portal
# cannot follow v4's import (the step fails, as unreachable)
ip -n "$NS_SW" link set v4 down
check "v4 offline again, its link down in the middle of the stream" online_becomes v4 false 30
unpause		# v4 reads on from a link that is down
check "  the step waits to be tried again" mstatus_becomes retrying 90
ip -n "$NS_SW" link set v4 up
check "  and online again" online_becomes v4 true 60
rc=0
wait "$MIG" || rc=$?
expect "nubo migrate run ends with the migration done, nobody resumed it" "$rc" 0
[ "$rc" = 0 ] || tail -20 "$T/migrate1.out"
m=$("$NUBO" migrate status notes --json)
expect "  the migration completed" "$(jq_get state <<< "$m")" completed
steps=$(python3 -c '
import json, sys
m = json.load(sys.stdin)
s = m.get("steps", [])
print(len(s), sum(1 for x in s if x["state"] in ("done", "skipped")),
      [x["attempts"] for x in s if x["name"] == "data" and x.get("environment") == "Test"][:1])
' <<< "$m")
expect_match "  every step done (or skipped: nothing deployed there), the interrupted one tried again" "$steps" "^([0-9]+) \1 \[[2-9]\]$"
imports=$(grep -rh "migration import migration-" "$T/node-v4/envs/" 2>/dev/null | grep -o "migration-[0-9]*-step-[0-9]*: completed" | sort)
expect_match "  v4 logged its imports" "$imports" "completed"
expect "  none ran twice to completion" "$(printf '%s\n' "$imports" | uniq -d)" ""
# v4 orders the app hostname's certificate from pebble once it has it
APP_CA=$T/pebble-root.pem
for _ in $(seq 150); do
	[ "$(app "$V4_IP" GET /api/notes -o /dev/null -w '%{http_code}')" = 200 ] && break
	sleep 0.4
done
expect "v4 serves the app hostname with a certificate pebble issued (verified against pebble's root)" \
	"$(app "$V4_IP" GET /api/notes -o /dev/null -w '%{http_code}')" 200
expect_match "  issued by pebble" "$(in_c openssl s_client -connect "$V4_IP:443" -servername "$HOST" </dev/null 2>/dev/null |
	openssl x509 -noout -issuer)" "Pebble"
expect_match "  v4's log says so" "$(cat "$T/node-v4.log")" "acme: environment [0-9]+ has a new certificate for $HOST"
expect "v4 serves what v3 had, over HTTPS on its own address" "$(digest "$V4_IP")" "$src"
expect "  and envs show names v4's router" "$("$NUBO" envs show notes Test --json | jq_get router_tls)" "$V4_IP:443"

finish
