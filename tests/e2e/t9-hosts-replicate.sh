#!/usr/bin/env bash
# t9-hosts-replicate: a migration that replicates (issue #14) between nodes
# on different hosts — the hosts of t9 (hosts-lib.sh: network namespaces,
# a CA, TLS on every daemon). v3's PostgreSQL listens on v3's address with
# TLS from its start and admits nobody there outside a migration. `nubo
# migrate start --replicate` makes the migration's role, slot and
# publication on v3 and a hostssl rule for v4's address alone; v4
# subscribes over TLS, verifying v3's certificate and address
# (verify-full, the certificate the portal checked against v3's pin).
# While it replicates: the subscription's session uses TLS (pg_stat_ssl),
# the role is refused without TLS and from the client's host, and notes
# written after the start arrive on v4; the password is in no log. After
# the cutover: rows equal on both sides (psql), and no slot, publication,
# subscription, role, rule or certificate is left.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"
. "$(dirname "$0")/hosts-lib.sh"

# the nodes' PostgreSQL is on their hosts' loopback: psql runs there
# (db_sql, and migrate-lib's leftovers through it)
ns_of() { [ "$1" = v3 ] && echo "$NS_V3" || echo "$NS_V4"; }
db_sql() { # NODE DB SQL: as the node's admin
	local pw
	pw=$(jq_get password < "$T/node-$1/pg/admin.json")
	PGPASSWORD=$pw ip netns exec "$(ns_of "$1")" psql -X -A -t -q -v ON_ERROR_STOP=1 \
		"host=127.0.0.1 port=5433 user=nubo_admin dbname=$2 sslmode=disable" -c "$3"
}
# v3_login NS USER PASSWORD DB SSL…: a login to v3's PostgreSQL on its
# address from NS's host (SSL: conninfo words), psql's first line
v3_login() {
	local ns=$1 user=$2 pw=$3 db=$4
	shift 4
	PGPASSWORD=$pw ip netns exec "$ns" psql -X -A -t -q \
		"host=$V3_IP port=5433 user=$user dbname=$db connect_timeout=5 $*" -c 'SELECT 1' 2>&1 | head -1
}

for n in v3 v4; do
	"$NUBO" admin nodes create "$n" --generation "$n" --json | jq_get token > "$T/node-$n.token"
	NODE_DIRS+=("$T/node-$n")
done
start_host_node v3 "$NS_V3" "$V3_IP"
start_host_node v4 "$NS_V4" "$V4_IP"
expect_match "v3's PostgreSQL listens on v3's address with TLS" "$(cat "$T/node-v3.log")" \
	"PostgreSQL listens on $V3_IP:5433 too, with TLS"
crt=$T/node-v3/pg/tls/server.crt
expect_match "  its certificate names v3's address" "$(openssl x509 -in "$crt" -noout -ext subjectAltName)" "IP Address:$V3_IP"
expect "  and holds the agent's key (the one the portal pins)" \
	"$(openssl x509 -in "$crt" -noout -pubkey | sha256sum)" "$(openssl x509 -in "$T/v3.pem" -noout -pubkey | sha256sum)"
expect "  its key file is the cluster user's, 0600" "$(stat -c '%U %a' "$T/node-v3/pg/tls/server.key")" "nubo-pg 600"

"$NUBO" apps create notes --no-sandbox >/dev/null
"$NUBO" nodes link v3 notes >/dev/null
deploy v3 notes Test
HOST=notes-test.$DOMAIN
app() { # NODE_IP METHOD PATH [curl options…]: over HTTPS by the app's hostname
	local ip=$1 method=$2 path=$3
	shift 3
	in_c curl -s --cacert "$T/ca.pem" --resolve "$HOST:443:$ip" -X "$method" "$@" "https://$HOST$path"
}
note() { # NODE_IP TITLE: a note through the app
	app "$1" POST /api/notes -H 'Content-Type: application/json' \
		--data-binary "{\"title\":\"$2\",\"body\":\"written on $1\"}" -o /dev/null -w '%{http_code}'
}
for i in 1 2 3; do
	expect "a note before the migration ($i)" "$(note "$V3_IP" "before $i")" 200
done
S_DB=env_$(env_id v3 Test)

# --- outside a migration: nobody logs in from another host ---
ADMIN_PW=$(jq_get password < "$T/node-v3/pg/admin.json")
expect_match "before the migration: v3's admin cannot log in from v4's host" \
	"$(v3_login "$NS_V4" nubo_admin "$ADMIN_PW" postgres sslmode=require)" "pg_hba.conf rejects connection for host \"$V4_IP\""

# --- the replication across hosts ---
# data_result N KEY: a field of the result of Test's Nth data step (-1:
# the last), as JSON
data_result() {
	"$NUBO" migrate status notes --json | python3 -c '
import json, sys
d = [s for s in json.load(sys.stdin)["steps"] if s["name"] == "data" and s.get("environment") == "Test"]
print(json.dumps((d[int(sys.argv[1])].get("result") or {}).get(sys.argv[2])))' "$1" "$2"
}
check "migrate start --replicate, v3 to v4 on another host" "$NUBO" migrate start notes --to v4 --replicate
expect "  its data step replicates" "$(data_result 0 method)" '"replicate"'
expect "  and started the replication" "$(data_result 0 replication)" '"started"'
REC=$(ls "$T"/node-v3/replication/*.json)
ROLE=nubo_repl_$(basename "$REC" .json | sed 's/-/_/g')
PW=$(jq_get password < "$REC")
T_DB=env_$(env_id v4 Test)
expect "v3's pg_hba admits the migration's role from v4's address alone, over TLS only" \
	"$(grep nubo_repl_ "$T/node-v3/pg/data/pg_hba.conf" | tr -s ' ')" \
	"hostssl $S_DB $ROLE $V4_IP/32 scram-sha-256"
expect_match "v4's subscription verifies v3's certificate and address" \
	"$(db_sql v4 postgres "SELECT subconninfo FROM pg_subscription")" \
	"host=$V3_IP port=5433 .*sslmode=verify-full sslrootcert='$T/node-v4/pg/tls/source-nubo_sub_[a-z0-9_]+\.crt'"
expect "  with the certificate v3 presents" "$(sha256sum < "$T"/node-v4/pg/tls/source-*.crt)" "$(sha256sum < "$crt")"
ssl=""
for _ in $(seq 50); do
	ssl=$(db_sql v3 postgres "SELECT string_agg(DISTINCT host(a.client_addr) || ' ' || s.ssl || ' ' || s.version, ',') FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = '$ROLE' AND a.backend_type = 'walsender'")
	[ -n "$ssl" ] && break
	sleep 0.2
done
expect_match "the subscription's session on v3 comes from v4 over TLS (pg_stat_ssl)" "$ssl" "^$V4_IP true TLSv1\.[23]$"
expect_match "the role without TLS from v4's host: refused" \
	"$(v3_login "$NS_V4" "$ROLE" "$PW" "$S_DB" sslmode=disable)" \
	"pg_hba.conf rejects connection for host \"$V4_IP\", user \"$ROLE\", database \"$S_DB\", no encryption"
expect_match "the role with TLS from the client's host: refused" \
	"$(v3_login "$NS_C" "$ROLE" "$PW" "$S_DB" sslmode=require)" \
	"pg_hba.conf rejects connection for host \"$C_IP\", user \"$ROLE\", database \"$S_DB\", SSL encryption"
expect_match "v3's admin with TLS from v4's host: refused" \
	"$(v3_login "$NS_V4" nubo_admin "$ADMIN_PW" postgres sslmode=require)" "pg_hba.conf rejects connection for host \"$V4_IP\""
expect "the role with TLS from v4's host, verifying v3 as the subscription does: admitted" \
	"$(v3_login "$NS_V4" "$ROLE" "$PW" "$S_DB" sslmode=verify-full "sslrootcert=$crt")" 1
expect_match "  a certificate that is not v3's fails verification" \
	"$(v3_login "$NS_V4" "$ROLE" "$PW" "$S_DB" sslmode=verify-full "sslrootcert=$T/ca.pem")" "certificate verify failed"
expect "the password is in no log" "$(grep -rlF "$PW" "$T"/*.log "$T"/node-*/pg/log 2>/dev/null || true)" ""

# --- writes after the start arrive on v4 ---
for i in 1 2 3 4; do
	expect "a note after the start ($i)" "$(note "$V3_IP" "after $i")" 200
done
db_sql v3 "$S_DB" "UPDATE notes SET body = 'changed on v3' WHERE title = 'before 1'" >/dev/null
rows() { db_sql "$1" "$2" "SELECT count(*) || ' ' || md5(string_agg(id || ':' || title || ':' || body, '|' ORDER BY id)) FROM notes"; }
want=$(rows v3 "$S_DB")
got=""
for _ in $(seq 100); do
	got=$(rows v4 "$T_DB")
	[ "$got" = "$want" ] && break
	sleep 0.2
done
expect_match "the notes written and changed after the start are on v4" "$got" "^7 "
expect "  equal to v3's (psql)" "$got" "$want"

# --- the cutover ---
check "migrate cutover" "$NUBO" migrate cutover notes
expect "  the migration is cut over" "$("$NUBO" migrate status notes --json | jq_get state)" cut-over
expect "  the cutover dropped the replication" "$(data_result -1 dropped)" true
expect "rows equal on both sides (psql)" "$(rows v4 "$T_DB")" "$want"
for _ in $(seq 150); do
	[ "$(app "$V4_IP" GET /api/notes -o /dev/null -w '%{http_code}')" = 200 ] && break
	sleep 0.4
done
expect "the app answers on v4 over HTTPS" "$(app "$V4_IP" GET /api/notes -o /dev/null -w '%{http_code}')" 200
expect "  a note written there is saved" "$(note "$V4_IP" "on v4")" 200
expect "v3 keeps nothing of the replication" "$(leftovers v3 "$S_DB")" "$NOTHING"
expect "v4 keeps nothing of the replication" "$(leftovers v4 postgres)" "$NOTHING"
expect "  nor the certificate it verified v3 with" "$(ls "$T"/node-v4/pg/tls/source-* 2>/dev/null || true)" ""
expect_match "after the migration the role is gone: no login from v4's host" \
	"$(v3_login "$NS_V4" "$ROLE" "$PW" "$S_DB" sslmode=verify-full "sslrootcert=$crt")" "pg_hba.conf rejects connection for host \"$V4_IP\""
expect "the password is in no log" "$(grep -rlF "$PW" "$T"/*.log "$T"/node-*/pg/log 2>/dev/null || true)" ""

finish
