#!/usr/bin/env bash
# t8b: automatic certificates (ACME) from a real ACME server: Debian's
# pebble on loopback, which resolves every name to 127.0.0.1 through
# pebble-challtestsrv's DNS and validates HTTP-01 against the node's plain
# router port. An app hostname gets a certificate pebble issued (curl
# --resolve verifies it against pebble's root, fetched from its management
# API); the account key and certificates are 0600; a custom domain with
# the user's certificate is served with it (nothing ordered), one added
# without a certificate gets pebble's; a renewal that fails (the ACME
# server gone) keeps the current certificates, which still serve, and
# shows in `nubo envs show` and the activity log.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"

command -v pebble >/dev/null || { echo "pebble is not installed (scripts/install-deps)"; exit 1; }

# --- pebble: its own TLS certificate, a DNS answering 127.0.0.1 ---
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pebble-test-ca" \
	-keyout "$T/pca.key" -out "$T/pca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$T/pebble.key" \
	-out "$T/pebble.csr" 2>/dev/null
openssl x509 -req -in "$T/pebble.csr" -CA "$T/pca.pem" -CAkey "$T/pca.key" -CAcreateserial \
	-days 2 -extfile <(echo "subjectAltName=IP:127.0.0.1,DNS:localhost") -out "$T/pebble.pem" 2>/dev/null
PEBBLE_PORT=$(free_port)
PEBBLE_MGMT=$(free_port)
DNS_PORT=$(free_port)
DNS_MGMT=$(free_port)
start_node_ports() { # the node's router ports are known before pebble starts
	start_node v3 v3 --router-tls-port "$ROUTER_TLS" --acme-directory "https://127.0.0.1:$PEBBLE_PORT/dir" \
		--acme-email ops@example.org --acme-ca "$T/pca.pem" "$@"
}
ROUTER_TLS=$(free_port)

start_portal
# the node's plain router port (lib.sh keeps it in node-v3.ports)
NUBO_API_KEY=$ADMIN_KEY "$NUBO" admin nodes create v3 --generation v3 --json | jq_get token > "$T/node-v3.token"
{ free_port; free_port; free_port; } > "$T/node-v3.ports"
NODE_DIRS+=("$T/node-v3")
ROUTER_PLAIN=$(sed -n 2p "$T/node-v3.ports")

pebble-challtestsrv -dns01 "127.0.0.1:$DNS_PORT" -management "127.0.0.1:$DNS_MGMT" \
	-http01 "" -https01 "" -tlsalpn01 "" -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
	> "$T/challtestsrv.log" 2>&1 &
CHALL_PID=$!
# its command line does not name $T (what stop_all checks): stopped here,
# by its pid while that still runs it
stop_challtestsrv() {
	if ours "$CHALL_PID" "127.0.0.1:$DNS_PORT"; then
		kill -TERM "$CHALL_PID" 2>/dev/null || true
		wait "$CHALL_PID" 2>/dev/null || true
	fi
}
trap 'stop_challtestsrv; cleanup' EXIT
cat > "$T/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$PEBBLE_PORT",
  "managementListenAddress": "127.0.0.1:$PEBBLE_MGMT",
  "certificate": "$T/pebble.pem", "privateKey": "$T/pebble.key",
  "httpPort": $ROUTER_PLAIN, "tlsPort": $(free_port),
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
start_pebble() {
	PEBBLE_VA_NOSLEEP=1 PEBBLE_VA_ALWAYS_VALID=0 PEBBLE_WFE_NONCEREJECT=0 \
		pebble -config "$T/pebble.json" -dnsserver "127.0.0.1:$DNS_PORT" >> "$T/pebble.log" 2>&1 &
	PEBBLE_PID=$!
	PIDS+=("$PEBBLE_PID")
	for _ in $(seq 50); do
		curl -s --cacert "$T/pca.pem" -o /dev/null "https://127.0.0.1:$PEBBLE_PORT/dir" && return 0
		sleep 0.2
	done
	echo "pebble did not start" >&2
	tail "$T/pebble.log" >&2
	return 1
}
start_pebble
curl -s --cacert "$T/pca.pem" "https://127.0.0.1:$PEBBLE_MGMT/roots/0" > "$T/pebble-root.pem"
expect_match "pebble's issuing root is fetched" "$(head -1 "$T/pebble-root.pem")" "BEGIN CERTIFICATE"

start_node_ports
HOST=notes-test.nubo.localhost
"$NUBO" apps create notes --no-sandbox >/dev/null
"$NUBO" nodes link v3 notes >/dev/null
deploy v3 notes Test
tls_status() { # NAME CA: the status of the app by NAME over HTTPS, verified against CA
	# (why curl got no answer goes to tls-errors.log, which a failure shows)
	curl -sS -m 10 --cacert "$2" --resolve "$1:$ROUTER_TLS:127.0.0.1" -o /dev/null \
		-w '%{http_code}' "https://$1:$ROUTER_TLS/api/notes" 2> >(
		sed "s/^/$(date +%T.%N) $1: /" >> "$T/tls-errors.log") || true
}
https_status() { tls_status "$HOST" "$T/pebble-root.pem"; }
until_200() { # FUNC: until it answers 200, at most 30 s
	for _ in $(seq 100); do
		[ "$("$1")" = 200 ] && return 0
		sleep 0.3
	done
}
until_200 https_status
expect "the app hostname answers over HTTPS with pebble's certificate (verified)" "$(https_status)" 200
expect_match "  issued by pebble" "$(openssl s_client -connect "127.0.0.1:$ROUTER_TLS" -servername "$HOST" </dev/null 2>/dev/null |
	openssl x509 -noout -issuer)" "Pebble"
expect_match "  the challenge reached the router" "$(grep -c "acme: environment .* has a new certificate for $HOST" "$T/node-v3.log")" "^1$"
# the portal learns it from the next heartbeat
for _ in $(seq 50); do
	show=$("$NUBO" envs show notes Test --json)
	[ "$(jq -r .certificate.source <<< "$show")" = acme ] && break
	sleep 0.2
done
expect "envs show tells the certificate's source" "$(jq -r .certificate.source <<< "$show")" acme
expect "  and names" "$(jq -r '.certificate.names[0]' <<< "$show")" "$HOST"
expect "  no failure" "$(jq -r .certificate_error <<< "$show")" null
expect "the account key is 0600" "$(stat -c %a "$T/node-v3/acme/account.key")" 600
expect "  the certificate and its key too" "$(stat -c %a "$T/node-v3"/acme/env-*.crt "$T/node-v3"/acme/env-*.key | sort -u)" 600
# the app's other environments (Acceptance, Production) get theirs too
for _ in $(seq 150); do
	[ "$(grep -c "has a new certificate for" "$T/node-v3.log")" = 3 ] && break
	sleep 0.2
done
expect "  every environment of the app got one" "$(grep -c "has a new certificate" "$T/node-v3.log")" 3
expect "no challenge file is left behind" "$(find "$T/node-v3/acme/www/.well-known/acme-challenge" -type f | wc -l)" 0
expect "a plain request for a challenge path that does not exist is 404" \
	"$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $HOST" "http://127.0.0.1:$ROUTER_PLAIN/.well-known/acme-challenge/nothing")" 404
expect "  the app still answers in plain on loopback" "$(route_status v3 "$HOST" /api/notes)" 200
ENV_ID=$(sed -n "s/.*acme: environment \([0-9]*\) has a new certificate for $HOST.*/\1/p" "$T/node-v3.log" | head -1)
serial=$(openssl s_client -connect "127.0.0.1:$ROUTER_TLS" -servername "$HOST" </dev/null 2>/dev/null | openssl x509 -noout -serial)

# --- a custom domain with the user's certificate: it is served, ACME
# orders nothing for it ---
openssl req -newkey rsa:2048 -nodes -subj "/CN=shop.t8b.test" -keyout "$T/shop.key" -out "$T/shop.csr" 2>/dev/null
openssl x509 -req -in "$T/shop.csr" -CA "$T/pca.pem" -CAkey "$T/pca.key" -CAcreateserial -days 2 \
	-extfile <(echo "subjectAltName=DNS:shop.t8b.test") -out "$T/shop.pem" 2>/dev/null
check "a custom domain with an uploaded certificate" "$NUBO" settings domain-add notes Test shop.t8b.test \
	--cert "$T/shop.pem" --key "$T/shop.key"
shop_status() { tls_status shop.t8b.test "$T/pca.pem"; }
until_200 shop_status
expect "  is served with the uploaded certificate (verified against its CA)" "$(shop_status)" 200
expect "  the app hostname keeps pebble's" "$(https_status)" 200
sleep 3	# two rounds of the ACME thread
expect "  ACME ordered nothing for the domain" "$(grep -c "shop.t8b.test" "$T/node-v3.log")" 0

# --- a custom domain without a certificate of the user's: ACME gets one ---
check "a custom domain without a certificate" "$NUBO" settings domain-add notes Test www.t8b.test
check_fails "  --cert without --key is refused" 2 "$NUBO" settings domain-add notes Test www2.t8b.test --cert "$T/shop.pem"
www_status() { tls_status www.t8b.test "$T/pebble-root.pem"; }
until_200 www_status
expect "  is served with pebble's certificate (verified)" "$(www_status)" 200
expect "  ordered once" "$(grep -c "acme: custom domain www.t8b.test has a new certificate" "$T/node-v3.log")" 1
expect "  the uploaded one still serves its domain" "$(shop_status)" 200
expect "  the settings show it without a certificate" \
	"$("$NUBO" settings show notes Test --json | jq -c '.settings.domains["www.t8b.test"]')" "{}"

# --- a restarted node keeps its certificate and orders nothing ---
stop_node v3
start_node_ports
served_serial() {
	openssl s_client -connect "127.0.0.1:$ROUTER_TLS" -servername "$HOST" </dev/null 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null
}
expect "after a restart the same certificate serves" "$(served_serial)" "$serial"
expect "  nothing was ordered again for it" "$(grep -c "acme: ordering the certificate of environment $ENV_ID " "$T/node-v3.log")" 1

# --- a renewal that fails keeps the current certificate ---
stop_node v3
kill "$PEBBLE_PID"
wait "$PEBBLE_PID" 2>/dev/null || true
NUBO_TEST_ACME_RENEW_AT=0 start_node_ports
for _ in $(seq 60); do
	[ "$(env_state notes Test certificate_error)" != "" ] && break
	sleep 0.5
done
err=$(env_state notes Test certificate_error)
expect_match "a failed renewal shows in envs show" "$err" "renewal failed: cannot reach the ACME server.*the current certificate \(valid until .*\) stays; next try in 30 s"
expect "  the current certificate still serves (verified)" "$(https_status)" 200
expect "  the same one" "$(served_serial)" "$serial"
expect_match "  the custom domain's renewal failed too" "$err" "custom domain 'www.t8b.test': renewal failed"
expect "  and its certificate still serves (verified)" "$(www_status)" 200
expect_match "  and in the activity log" "$("$NUBO" apps activity notes 2>&1)" "certificate_failed"
expect_match "  the CLI prints it" "$("$NUBO" envs show notes Test 2>&1)" "renewal failed"

# --- bad options are refused with a clear message ---
check_fails "--acme-directory must be https" 2 "$NUBOD" node --data "$T/bad" --portal "$PORTAL_URL" --token x \
	--acme-directory http://127.0.0.1:1/dir
expect_match "  and says so" "$(cat "$T/last.err")" "https:// URL"
check_fails "--acme-email must be an address" 2 "$NUBOD" node --data "$T/bad" --portal "$PORTAL_URL" --token x \
	--acme-directory "https://127.0.0.1:1/dir" --acme-email 'nobody'
finish
