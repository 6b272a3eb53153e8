#!/usr/bin/env bash
# t8: every part over TLS. A CA and certificates made here with openssl
# (for 127.0.0.1 / localhost); a portal and two nodes (v3, v4) speaking
# HTTPS only on loopback: plain HTTP gets no API answer; the CLI refuses a
# portal it cannot verify and works with --ca / NUBO_CA; a node that does
# not trust the portal's certificate cannot join; the portal pins each
# node's key at its first registration and refuses another one (the
# portal's calls and signed URLs check it too) until `nubo admin nodes
# trust`, and once more until the platform admin trusts it on the node's
# page in headless Chromium; an app deploys, starts, is backed up and downloaded, and migrates
# v3 → v4 over TLS; a certificate renewed on SIGHUP reaches new
# connections while an open one keeps working; plain HTTP on an address
# outside loopback (one of a network namespace made here) is refused
# unless --insecure-http.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"

# --- certificates ---
SAN="subjectAltName=IP:127.0.0.1,DNS:localhost"
ca() { # NAME: a CA
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" \
		-keyout "$T/$1.key" -out "$T/$1.pem" 2>/dev/null
}
cert() { # NAME [CA]: a key and a certificate for 127.0.0.1 / localhost
	openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$T/$1.key" \
		-out "$T/$1.csr" 2>/dev/null
	openssl x509 -req -in "$T/$1.csr" -CA "$T/${2:-ca}.pem" -CAkey "$T/${2:-ca}.key" \
		-CAcreateserial -days 2 -extfile <(echo "$SAN") -out "$T/$1.pem" 2>/dev/null
}
pin() { # FILE: the key pin libcurl and the portal use
	echo "sha256//$(openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der |
		openssl dgst -sha256 -binary | base64)"
}
ca ca
ca otherca
cert portal
cert v3
cert v4
cert v4-new
cert v4-newer
cert portal-renewed

# --- the portal over HTTPS ---
CURL_TLS=(--cacert "$T/ca.pem")
PORTAL_SCHEME=https
PORTAL_ARGS=(--tls-cert "$T/portal.pem" --tls-key "$T/portal.key")
start_portal
expect "HTTPS answers, verified against the CA" \
	"$(curl -s --cacert "$T/ca.pem" -o /dev/null -w '%{http_code}' "$PORTAL_URL/api/v1/openapi.json")" 200
plain=$(curl -s -m 10 "http://127.0.0.1:$PORTAL_PORT/api/v1/openapi.json" || true)
expect "plain HTTP to the HTTPS listener gets no API answer" "$(grep -c openapi <<< "$plain" || true)" 0
expect "  (not even a status line)" "$(curl -s -m 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORTAL_PORT/api/v1/openapi.json" || true)" 000
check_fails "the CLI refuses a portal whose certificate it cannot verify" 1 "$NUBO" apps list
expect_match "  and says why" "$(cat "$T/last.err")" "certificate"
check "the CLI verifies it with --ca" "$NUBO" --ca "$T/ca.pem" apps list
check_fails "  not with another CA" 1 "$NUBO" --ca "$T/otherca.pem" apps list
NUBO_CA=$T/ca.pem check "  and with NUBO_CA" "$NUBO" apps list
export NUBO_CA=$T/ca.pem

# --- nodes join by https:// and verify the portal ---
NODE_SCHEME=https
node_tls() { echo --tls-cert "$T/$1.pem" --tls-key "$T/$1.key"; }
registrations() { grep -c "registered as node '$1'" "$T/node-$1.log" || true; }
# shellcheck disable=SC2046
NODE_NO_WAIT=1 start_node v3 v3 $(node_tls v3) --portal-ca "$T/otherca.pem"
for _ in $(seq 100); do
	grep -q "cannot register" "$T/node-v3.log" && break
	sleep 0.2
done
expect_match "a node with the wrong --portal-ca cannot join" \
	"$(grep -m1 "cannot register" "$T/node-v3.log")" "portal unreachable: .*certificate"
expect "  it never registered" "$(registrations v3)" 0
expect "  the portal has no URL for it" "$(api_as "$ADMIN_KEY" GET /nodes/v3 | jq_get agent_url)" ""
stop_node v3
# shellcheck disable=SC2046
start_node v3 v3 $(node_tls v3) --portal-ca "$T/ca.pem"
# shellcheck disable=SC2046
start_node v4 v4 $(node_tls v4) --portal-ca "$T/ca.pem"
expect "v3's agent is reached by https" "$(api_as "$ADMIN_KEY" GET /nodes/v3 | jq_get agent_url)" "$NODE_URL_v3"
expect "the portal pinned v3's key" "$(api_as "$ADMIN_KEY" GET /nodes/v3 | jq_get tls_pin)" "$(pin "$T/v3.pem")"
expect "and v4's" "$(api_as "$ADMIN_KEY" GET /nodes/v4 | jq_get tls_pin)" "$(pin "$T/v4.pem")"
expect "the node logs the key it presents" "$(grep -cF "agent certificate key: $(pin "$T/v4.pem")" "$T/node-v4.log")" 1
expect_match "the activity log says so" "$(api_as "$ADMIN_KEY" GET /nodes/v4/activity)" "node.certificate-pinned"
plain=$(curl -s -m 10 "http://127.0.0.1:${NODE_URL_v3##*:}/agent/v1/environments" || true)
expect "plain HTTP to a node's agent gets no answer" "$plain" ""

# --- an app over TLS: deploy, start, back up, download ---
"$NUBO" apps create notes --no-sandbox >/dev/null
"$NUBO" nodes link v3 notes >/dev/null
deploy v3 notes Test
expect "deployed and running (package uploaded to the node over https)" \
	"$(route_status v3 notes-test.nubo.localhost /api/notes)" 200
add_notes v3 notes-test 3 2
src=$(notes_digest v3 notes-test)
check "backups create" "$NUBO" backups create notes Test --comment tls
SID=$("$NUBO" backups list notes Test --json | jq_get snapshots.0.id)
check "backups download over https (pinned to v3's key)" "$NUBO" backups download notes Test "$SID" --output "$T/full.tar.gz"
expect_match "  a real archive" "$(tar tzf "$T/full.tar.gz" | head -50)" "db"
url=$(api_as "$ADMIN_KEY" POST "/apps/notes/environments/Test/snapshots/$SID/download" '{}' | jq_get url)
expect "the signed URL is https and names the node's key" "$(sed -E 's|^(https://127\.0\.0\.1:)[0-9]+/.*(#pin=)|\1\2|' <<< "$url")" \
	"https://127.0.0.1:#pin=$(pin "$T/v3.pem")"

# --- a node presenting another certificate is refused until trusted ---
stop_node v4
before=$(registrations v4)
# shellcheck disable=SC2046
NODE_NO_WAIT=1 start_node v4 v4 $(node_tls v4-new) --portal-ca "$T/ca.pem"
for _ in $(seq 100); do
	grep -q "cannot register.*presented a certificate" "$T/node-v4.log" && break
	sleep 0.2
done
expect "v4 with another certificate is refused" \
	"$(grep -m1 "cannot register.*presented a certificate" "$T/node-v4.log" |
		grep -cF "presented a certificate with key $(pin "$T/v4-new.pem"), not the certificate pinned")" 1
expect "  not registered again" "$(registrations v4)" "$before"
v4=$(api_as "$ADMIN_KEY" GET /nodes/v4)
expect "  the pin stays" "$(jq_get tls_pin <<< "$v4")" "$(pin "$T/v4.pem")"
expect "  the new key waits" "$(jq_get tls_pin_pending <<< "$v4")" "$(pin "$T/v4-new.pem")"
expect_match "  the activity log says so" "$(api_as "$ADMIN_KEY" GET /nodes/v4/activity)" "node.certificate-refused"
tar czf "$T/tiny.tar.gz" -C "$NUBO_SRC/tests/e2e/apps/pyapp" .
check_fails "  an upload URL for it is refused by the CLI (not its pinned key)" 1 \
	"$NUBO" packages upload v4 "$T/tiny.tar.gz"
expect_match "  and says why" "$(cat "$T/last.err")" "pinned"
check_fails "trust with a key that is not the waiting one is refused" 1 \
	"$NUBO" admin nodes trust v4 --pin "$(pin "$T/v4.pem")"
check "nubo admin nodes trust" "$NUBO" admin nodes trust v4 --pin "$(pin "$T/v4-new.pem")"
registers_with() { # CERT: once trusted, v4 registers again with CERT's key pinned
	for _ in $(seq 100); do
		[ "$(registrations v4)" -gt "$before" ] && break
		sleep 0.2
	done
	expect "  then v4 registers" "$(registrations v4)" "$((before + 1))"
	expect "  with its new key pinned" "$(api_as "$ADMIN_KEY" GET /nodes/v4 | jq_get tls_pin)" "$(pin "$1")"
}
registers_with "$T/v4-new.pem"
expect_match "  the activity log says who trusted it" "$(api_as "$ADMIN_KEY" GET /nodes/v4/activity)" "node.certificate-trusted"

# --- and once more, trusted by the platform admin on the node's page in
# the browser (headless Chromium, tests/e2e/web-trust.py) ---
stop_node v4
before=$(registrations v4)
# shellcheck disable=SC2046
NODE_NO_WAIT=1 start_node v4 v4 $(node_tls v4-newer) --portal-ca "$T/ca.pem"
for _ in $(seq 100); do
	[ "$(api_as "$ADMIN_KEY" GET /nodes/v4 | jq_get tls_pin_pending)" = "$(pin "$T/v4-newer.pem")" ] && break
	sleep 0.2
done
expect "v4 with yet another certificate: its key waits" \
	"$(api_as "$ADMIN_KEY" GET /nodes/v4 | jq_get tls_pin_pending)" "$(pin "$T/v4-newer.pem")"
mkdir -p "$T/home"
if HOME=$T/home XDG_CACHE_HOME=$T/cache TMPDIR=$T /usr/bin/python3 "$NUBO_SRC/tests/e2e/web-trust.py" \
	"$PORTAL_URL" v4 "$(pin "$T/v4-newer.pem")"; then
	pass "web-trust.py: the waiting key shown on v4's page and trusted there"
else
	fail "web-trust.py: see the not-ok lines above"
fi
registers_with "$T/v4-newer.pem"

# --- a migration v3 -> v4 over TLS, node to node ---
check "migrate run v3 -> v4" "$NUBO" migrate run notes --to v4
expect "v4 serves what v3 had" "$(notes_digest v4 notes-test)" "$src"

# --- the portal's certificate renewed on SIGHUP ---
serial() { # the serial of the certificate 127.0.0.1:PORT presents
	openssl s_client -connect "127.0.0.1:$1" -CAfile "$T/ca.pem" </dev/null 2>/dev/null |
		openssl x509 -noout -serial
}
before=$(serial "$PORTAL_PORT")
expect "the portal presents its certificate" "$before" "$(openssl x509 -in "$T/portal.pem" -noout -serial)"
python3 - "$PORTAL_PORT" "$T/ca.pem" "$T/keepalive" <<'PY' &
import http.client, os, ssl, sys, time
port, ca, flag = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = http.client.HTTPSConnection("127.0.0.1", port, context=ssl.create_default_context(cafile=ca))
c.request("GET", "/api/v1/openapi.json"); r = c.getresponse(); r.read()
open(flag + ".1", "w").write(str(r.status))
while not os.path.exists(flag + ".go"):
    time.sleep(0.1)
c.request("GET", "/api/v1/openapi.json"); r = c.getresponse(); r.read()
open(flag + ".2", "w").write(str(r.status))
PY
KA=$!
for _ in $(seq 100); do [ -f "$T/keepalive.1" ] && break; sleep 0.1; done
cp "$T/portal-renewed.pem" "$T/portal.pem"
cp "$T/portal-renewed.key" "$T/portal.key"
kill -HUP "$PORTAL_PID"
for _ in $(seq 100); do grep -q "TLS certificate reloaded" "$T/portal.log" && break; sleep 0.1; done
touch "$T/keepalive.go"
wait "$KA" || true
expect "a new connection gets the renewed certificate" "$(serial "$PORTAL_PORT")" "$(openssl x509 -in "$T/portal-renewed.pem" -noout -serial)"
expect "a connection open across the reload keeps working" "$(cat "$T/keepalive.1")/$(cat "$T/keepalive.2" 2>/dev/null)" 200/200
check "the CLI still works" "$NUBO" apps list
echo garbage > "$T/portal.pem"
kill -HUP "$PORTAL_PID"
for _ in $(seq 100); do grep -q "not reloaded" "$T/portal.log" && break; sleep 0.1; done
expect_match "a bad file on SIGHUP keeps the current certificate" "$(cat "$T/portal.log")" "not reloaded"
check "  which still serves" "$NUBO" apps list

# --- plain HTTP outside loopback ---
check_fails "a node refuses plain HTTP on an address outside loopback" 1 \
	"$NUBOD" node --data "$T/nonode" --portal "$PORTAL_URL" --token x --listen 198.18.0.1:7080
expect_match "  and says why" "$(cat "$T/last.err")" "refusing plain HTTP on 198.18.0.1:7080, an address outside loopback"
NS=nubo-t8-$$
ip netns add "$NS"
trap 'ip netns del "$NS" 2>/dev/null; cleanup' EXIT
ip -n "$NS" link set lo up
ip -n "$NS" addr add 198.18.8.1/32 dev lo
"$NUBOD" portal init --data "$T/portal2" >/dev/null
in_ns() { ip netns exec "$NS" "$@"; }
check_fails "a portal refuses plain HTTP on 198.18.8.1 (a namespace of this test)" 1 \
	in_ns "$NUBOD" portal --data "$T/portal2" --secrets-key "$T/secrets2.key" --listen 198.18.8.1:7070
expect_match "  and says why" "$(cat "$T/last.err")" "refusing plain HTTP on 198.18.8.1:7070.*--insecure-http"
# not through in_ns: $! is then the daemon itself (ip netns exec execs it)
ip netns exec "$NS" "$NUBOD" portal --data "$T/portal2" --secrets-key "$T/secrets2.key" \
	--listen 198.18.8.1:7070 --insecure-http > "$T/portal2.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do
	in_ns curl -s -o /dev/null http://198.18.8.1:7070/api/v1/openapi.json && break
	sleep 0.2
done
expect "with --insecure-http it serves plain HTTP there" \
	"$(in_ns curl -s -o /dev/null -w '%{http_code}' http://198.18.8.1:7070/api/v1/openapi.json)" 200
expect_match "  and warns at start" "$(cat "$T/portal2.log")" "plain HTTP \(--insecure-http\): API keys, tokens and data cross the network in clear"
finish
