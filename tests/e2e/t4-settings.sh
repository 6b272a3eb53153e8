#!/usr/bin/env bash
# t4: environment settings (SPEC §2 Configuration, seed §3.2.3) through the
# real CLI and API: every tab (Model Options, Network, Runtime,
# Maintenance), validation naming the setting and the reason, TLS
# certificates checked at upload (expired, mismatched key, wrong domain),
# secrets never shown back, export v3 → import v4 → empty diff, v4-only
# settings refused on v3 naming each, permissions, and bad input on every
# settings route (4xx, nothing changed).
. "$(dirname "$0")/lib.sh"

start_portal
ADMIN=$ADMIN_KEY
TC=$(make_user tc@example.com)
DEV=$(make_user dev@example.com)
as() { local key=$1; shift; NUBO_API_KEY=$key "$NUBO" "$@"; }

# Two real nodes with their routers (nginx) and a TLS port for custom domains.
TLS3=$(free_port); TLS4=$(free_port)
start_node cloud-v3 v3 --router-tls-port "$TLS3" --start-timeout 30
start_node cloud-v4 v4 --router-tls-port "$TLS4" --start-timeout 30
as "$TC" apps create shop --no-sandbox >/dev/null
as "$TC" apps create shop-v4 --no-sandbox >/dev/null
as "$ADMIN" nodes link cloud-v3 shop >/dev/null
as "$ADMIN" nodes link cloud-v4 shop-v4 >/dev/null
as "$TC" members add shop dev@example.com >/dev/null
as "$TC" members grant shop dev@example.com --settings Test >/dev/null

S3=/apps/shop/environments/Test/settings
S4=/apps/shop-v4/environments/Test/settings
db() { python3 -c 'import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone(); print("" if r is None else r[0])' "$T/portal/portal.db" "$1"; }
doc3() { db "SELECT s.doc_json FROM environment_settings s JOIN environments e ON e.id = s.environment_id JOIN nodes n ON n.id = e.node_id WHERE n.name = 'cloud-v3' AND e.name = 'Test'"; }
doc4() { db "SELECT s.doc_json FROM environment_settings s JOIN environments e ON e.id = s.environment_id JOIN nodes n ON n.id = e.node_id WHERE n.name = 'cloud-v4' AND e.name = 'Test'"; }

# ---- certificates made by the test --------------------------------------
mkdir -p "$T/tls"
cert() { # cert NAME CN [SAN…]: self-signed, valid now
	local name=$1 cn=$2; shift 2
	local san="DNS:$cn"; for d in "$@"; do san="$san,DNS:$d"; done
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$cn" \
		-addext "subjectAltName=$san" -keyout "$T/tls/$name.key" \
		-out "$T/tls/$name.crt" 2>/dev/null
}
cert good shop.example.test
cert wild '*.example.test'
cert other other.example.test
expired_cert() { # a certificate that expired in 2020, via `openssl ca`
	local d=$T/tls/ca; mkdir -p "$d/new"; : > "$d/index.txt"; echo 01 > "$d/serial"
	cat > "$d/ca.cnf" <<EOF
[ca]
default_ca = x
[x]
dir = $d
database = $d/index.txt
new_certs_dir = $d/new
serial = $d/serial
default_md = sha256
policy = p
copy_extensions = copy
[p]
commonName = supplied
EOF
	openssl req -new -newkey rsa:2048 -nodes -keyout "$T/tls/old.key" -out "$d/csr.pem" \
		-subj /CN=old.example.test -addext subjectAltName=DNS:old.example.test 2>/dev/null
	openssl ca -batch -config "$d/ca.cnf" -selfsign -keyfile "$T/tls/old.key" -in "$d/csr.pem" \
		-startdate 20200101000000Z -enddate 20200201000000Z -out "$T/tls/old.crt" -notext 2>/dev/null
}
expired_cert
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=Test-CA \
	-addext basicConstraints=critical,CA:TRUE -keyout "$T/tls/ca.key" -out "$T/tls/ca.crt" 2>/dev/null

# ---- Model Options -------------------------------------------------------
check "set a constant" as "$TC" settings set-constant shop Test Greeting hello
check "enable a scheduled event" as "$TC" settings event shop Test Cleanup on
check "disable a scheduled event" as "$TC" settings event shop Test Report off
expect "constant shown" "$(as "$TC" settings show shop Test --json | jq_get settings.constants.Greeting)" hello
expect "event shown" "$(as "$TC" settings show shop Test --json | jq_get settings.scheduled_events.Cleanup)" true
check_fails "event on|off only" 2 as "$TC" settings event shop Test Cleanup maybe
check "unset a constant" as "$TC" settings unset-constant shop Test Greeting
check_fails "unset an unknown constant" 1 as "$TC" settings unset-constant shop Test Nope
expect_match "unknown constant named" "$(cat "$T/last.err")" "no constant 'Nope'"
check "set it again" as "$TC" settings set-constant shop Test Greeting hello

# ---- Network: custom domains ----------------------------------------------
check "add a custom domain" as "$TC" settings domain-add shop Test shop.example.test --cert "$T/tls/good.crt" --key "$T/tls/good.key"
check "wildcard certificate covers a subdomain" as "$TC" settings domain-add shop Test www.example.test --cert "$T/tls/wild.crt" --key "$T/tls/wild.key"
before=$(doc3)
check_fails "expired certificate refused" 1 as "$TC" settings domain-add shop Test old.example.test --cert "$T/tls/old.crt" --key "$T/tls/old.key"
expect_match "expired named" "$(cat "$T/last.err")" "domains.old.example.test.*expired"
check_fails "mismatched key refused" 1 as "$TC" settings domain-add shop Test shop.example.test --cert "$T/tls/good.crt" --key "$T/tls/other.key"
expect_match "mismatch named" "$(cat "$T/last.err")" "does not match"
check_fails "certificate for another domain refused" 1 as "$TC" settings domain-add shop Test shop.example.test --cert "$T/tls/other.crt" --key "$T/tls/other.key"
expect_match "coverage named" "$(cat "$T/last.err")" "does not cover 'shop.example.test'"
check_fails "wildcard does not cover two levels" 1 as "$TC" settings domain-add shop Test a.b.example.test --cert "$T/tls/wild.crt" --key "$T/tls/wild.key"
check_fails "invalid domain refused" 1 as "$TC" settings domain-add shop Test 'bad_domain.example' --cert "$T/tls/good.crt" --key "$T/tls/good.key"
check_fails "domain-add needs --cert and --key" 2 as "$TC" settings domain-add shop Test x.example.test --cert "$T/tls/good.crt"
# every PEM block, chain order, and what nginx itself could not load
cat "$T/tls/good.crt" "$T/tls/good.key" > "$T/tls/keyincert.crt"
check_fails "private key in the certificate field refused" 1 as "$TC" settings domain-add shop Test shop.example.test --cert "$T/tls/keyincert.crt" --key "$T/tls/good.key"
expect_match "key block named" "$(cat "$T/last.err")" "block 2 of the certificate \(line [0-9]+\) is a 'PRIVATE KEY'"
{ cat "$T/tls/good.crt"; printf -- '-----BEGIN CERTIFICATE-----\nMIIDazCCAlOgAwIBAgIU\n'; } > "$T/tls/cut.crt"
check_fails "certificate with a block cut short refused" 1 as "$TC" settings domain-add shop Test shop.example.test --cert "$T/tls/cut.crt" --key "$T/tls/good.key"
expect_match "cut block named" "$(cat "$T/last.err")" "has no -----END CERTIFICATE----- line"
{ cat "$T/tls/good.crt"; echo trailing text; } > "$T/tls/trailing.crt"
check_fails "text after the certificate refused" 1 as "$TC" settings domain-add shop Test shop.example.test --cert "$T/tls/trailing.crt" --key "$T/tls/good.key"
expect_match "trailing text named" "$(cat "$T/last.err")" "text outside a PEM block on line"
openssl req -new -newkey rsa:2048 -nodes -subj /CN=shop.example.test -addext subjectAltName=DNS:shop.example.test \
	-keyout "$T/tls/signed.key" -out "$T/tls/signed.csr" 2>/dev/null
openssl x509 -req -in "$T/tls/signed.csr" -CA "$T/tls/ca.crt" -CAkey "$T/tls/ca.key" -CAcreateserial -days 30 \
	-copy_extensions copy -out "$T/tls/signed.crt" 2>/dev/null
cat "$T/tls/signed.crt" "$T/tls/other.crt" > "$T/tls/badchain.crt"
check_fails "chain whose second certificate is not the issuer refused" 1 as "$TC" settings domain-add shop Test shop.example.test --cert "$T/tls/badchain.crt" --key "$T/tls/signed.key"
expect_match "chain order named" "$(cat "$T/last.err")" "certificate 2 \(CN=other.example.test\) does not sign certificate 1"
openssl req -x509 -newkey rsa:1024 -nodes -days 30 -subj /CN=shop.example.test -addext subjectAltName=DNS:shop.example.test \
	-keyout "$T/tls/weak.key" -out "$T/tls/weak.crt" 2>/dev/null
check_fails "RSA-1024 certificate nginx cannot load refused" 1 as "$TC" settings domain-add shop Test shop.example.test --cert "$T/tls/weak.crt" --key "$T/tls/weak.key"
expect_match "weak key named" "$(cat "$T/last.err")" "the router cannot use the certificate: ee key too small"
expect "failed uploads changed nothing" "$(doc3)" "$before"
expect "private key stored encrypted" "$(count 'BEGIN PRIVATE KEY' doc3)" 0
expect_match "key file is 0600" "$(stat -c %a "$SECRETS_KEY")" '^600$'
expect "domain listed" "$(as "$TC" settings show shop Test --json | python3 -c 'import json,sys; print(",".join(sorted(json.load(sys.stdin)["settings"]["domains"])))')" "shop.example.test,www.example.test"
expect "private key never shown" "$(count 'PRIVATE KEY' as "$TC" settings show shop Test --json)" 0
check "remove a custom domain" as "$TC" settings domain-remove shop Test www.example.test

# ---- custom domains are unique across the cloud ----------------------------
# rival: another tenant's app (its node never starts: settings live in the
# portal); its Technical Contact is no member of shop
OTHER=$(make_user other@example.com)
as "$ADMIN" admin nodes create spare --generation v4 >/dev/null
as "$OTHER" apps create rival --no-sandbox >/dev/null
as "$ADMIN" nodes link spare rival >/dev/null
SR=/apps/rival/environments/Test/settings
domain_body() { python3 -c 'import json,sys; print(json.dumps({"certificate": open(sys.argv[1]).read(), "private_key": open(sys.argv[2]).read()}))' "$T/tls/$1.crt" "$T/tls/$1.key"; }
# every environment's settings, as one digest
docs_all() { db "SELECT group_concat(doc_json, '|') FROM (SELECT doc_json FROM environment_settings ORDER BY environment_id)" | sha256sum | cut -c1-16; }
before_all=$(docs_all)
check_fails "another tenant's claim of shop's custom domain refused" 1 as "$OTHER" settings domain-add rival Test shop.example.test --cert "$T/tls/good.crt" --key "$T/tls/good.key"
expect "it hears only that another app holds it" "$(cat "$T/last.err")" "nubo: setting 'domains.shop.example.test': custom domain 'shop.example.test' is already used by another app"
r=$(api_as "$OTHER" PUT "$SR/domains/shop.example.test" "$(domain_body good)")
expect "409 DOMAIN_TAKEN, no holder named to a non-member" "$(printf '%s' "$r" | python3 -c 'import json,sys; e=json.load(sys.stdin)["error"]; print(e["code"], [sorted(d) for d in e["details"]])')" "DOMAIN_TAKEN [['reason', 'setting']]"
expect "status 409" "$(status_as "$OTHER" PUT "$SR/domains/shop.example.test" "$(domain_body good)")" 409
expect "case and a trailing dot make no other name" "$(api_as "$OTHER" PUT "$SR/domains/SHOP.Example.TEST." "$(domain_body good)" | jq_get error.code)" DOMAIN_TAKEN
expect "nor through an import" "$(api_as "$OTHER" PUT "$SR" "{\"domains\":{\"Shop.example.test\":$(domain_body good)}}" | jq_get error.code)" DOMAIN_TAKEN
expect "refused claims changed nothing" "$(docs_all)" "$before_all"
check_fails "shop's Technical Contact claims it for shop-v4" 1 as "$TC" settings domain-add shop-v4 Test shop.example.test --cert "$T/tls/good.crt" --key "$T/tls/good.key"
expect_match "a member of the holder hears which environment of which app" "$(cat "$T/last.err")" "custom domain 'shop.example.test' is already used by environment 'Test' of app 'shop'"
expect "with a stable code and the holder" "$(api_as "$TC" PUT "$S4/domains/shop.example.test" "$(domain_body good)" | python3 -c 'import json,sys; e=json.load(sys.stdin)["error"]; print(e["code"], e["details"][0]["holder"])')" "DOMAIN_TAKEN {'app': 'shop', 'environment': 'Test'}"
check_fails "another environment of the same app refused" 1 as "$TC" settings domain-add shop Production shop.example.test --cert "$T/tls/good.crt" --key "$T/tls/good.key"
expect_match "naming that environment" "$(cat "$T/last.err")" "already used by environment 'Test' of this app"
check "the same environment renews its certificate" as "$TC" settings domain-add shop Test shop.example.test --cert "$T/tls/good.crt" --key "$T/tls/good.key"
check "written with a capital and a trailing dot it is the same domain" as "$TC" settings domain-add shop Test Shop.Example.Test. --cert "$T/tls/good.crt" --key "$T/tls/good.key"
expect "kept once, lowercase" "$(as "$TC" settings show shop Test --json | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["settings"]["domains"]))')" shop.example.test
expect "listed twice in one document refused" "$(api_as "$TC" PATCH "$S3" "{\"domains\":{\"shop.example.test\":$(domain_body good),\"SHOP.example.test.\":$(domain_body good)}}" | jq_get error.code)" SETTINGS_INVALID
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=nubo.localhost -addext 'subjectAltName=DNS:nubo.localhost,DNS:*.nubo.localhost' \
	-keyout "$T/tls/cloud.key" -out "$T/tls/cloud.crt" 2>/dev/null
before_all=$(docs_all)
check_fails "another app's cloud hostname refused" 1 as "$OTHER" settings domain-add rival Test shop-test.nubo.localhost --cert "$T/tls/cloud.crt" --key "$T/tls/cloud.key"
expect_match "reserved named" "$(cat "$T/last.err")" "'shop-test.nubo.localhost' is in the cloud's domain 'nubo.localhost', where only this environment's own hostname 'rival-test.nubo.localhost'"
expect "reserved code" "$(api_as "$OTHER" PUT "$SR/domains/Shop-Test.nubo.localhost." "$(domain_body cloud)" | jq_get error.code)" DOMAIN_RESERVED
check_fails "the cloud domain itself refused" 1 as "$TC" settings domain-add shop Test nubo.localhost --cert "$T/tls/cloud.crt" --key "$T/tls/cloud.key"
check_fails "a name under the cloud domain no app has yet refused" 1 as "$TC" settings domain-add shop Test future-test.nubo.localhost --cert "$T/tls/cloud.crt" --key "$T/tls/cloud.key"
check_fails "another environment's cloud hostname of the same app refused" 1 as "$TC" settings domain-add shop Test shop-production.nubo.localhost --cert "$T/tls/cloud.crt" --key "$T/tls/cloud.key"
expect "refused claims changed nothing (cloud names)" "$(docs_all)" "$before_all"
check "the environment's own cloud hostname allowed" as "$OTHER" settings domain-add rival Test rival-test.nubo.localhost --cert "$T/tls/cloud.crt" --key "$T/tls/cloud.key"
# a new app whose hostname would be a custom domain someone holds (one
# stored before these rules: planted in rival's settings)
python3 - "$T/portal/portal.db" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
env = db.execute("SELECT e.id FROM environments e JOIN nodes n ON n.id = e.node_id WHERE n.name = 'spare' AND e.name = 'Test'").fetchone()[0]
doc = json.loads(db.execute("SELECT doc_json FROM environment_settings WHERE environment_id = ?", (env,)).fetchone()[0])
doc["domains"]["newshop-production.nubo.localhost"] = doc["domains"]["rival-test.nubo.localhost"]
db.execute("UPDATE environment_settings SET doc_json = ? WHERE environment_id = ?", (json.dumps(doc), env))
db.commit()
PY
check_fails "an app whose hostname is another app's custom domain refused" 1 as "$TC" apps create newshop --no-sandbox
expect "naming the hostname, not the holder" "$(cat "$T/last.err")" "nubo: subdomain 'newshop' is taken: its hostname 'newshop-production.nubo.localhost' is another app's custom domain"
expect "no app made" "$(status_as "$ADMIN" GET /apps/newshop)" 404
check "the holder gives it up" as "$OTHER" settings domain-remove rival Test newshop-production.nubo.localhost
check "then the app can be made" as "$TC" apps create newshop --no-sandbox
check "and removed" as "$TC" apps delete newshop --yes
check "the own hostname removed again" as "$OTHER" settings domain-remove rival Test rival-test.nubo.localhost
# two claims at once: exactly one wins, every round
body=$(python3 -c 'import json,sys; print(json.dumps({"certificate": open(sys.argv[1]).read(), "private_key": open(sys.argv[2]).read()}))' "$T/tls/wild.crt" "$T/tls/wild.key")
won=""
for i in $(seq 8); do
	status_as "$TC" PUT "$S3/domains/race$i.example.test" "$body" > "$T/race-a" & a=$!
	status_as "$TC" PUT "$S4/domains/race$i.example.test" "$body" > "$T/race-b" & b=$!
	wait "$a" "$b"
	won="$won $(cat "$T/race-a")/$(cat "$T/race-b")"
done
expect "8 concurrent pairs of claims: one 200 and one 409 each" "$(tr ' ' '\n' <<< "$won" | grep -cE '^(200/409|409/200)$')" 8
expect "each race domain held by one environment" "$(db "SELECT COUNT(*) FROM environment_settings s, json_each(s.doc_json, '\$.domains') d WHERE d.key LIKE 'race%'")" 8
for i in $(seq 8); do
	status_as "$TC" DELETE "$S3/domains/race$i.example.test" > /dev/null
	status_as "$TC" DELETE "$S4/domains/race$i.example.test" > /dev/null
done
expect "race domains removed" "$(db "SELECT COUNT(*) FROM environment_settings s, json_each(s.doc_json, '\$.domains') d WHERE d.key LIKE 'race%'")" 0

# ---- Network: access restrictions, headers --------------------------------
check "access profile: allow list + basic auth + client CA" as "$TC" settings access-set shop Test office \
	--allow 127.0.0.1 --allow 10.0.0.0/8 --allow ::1 --deny 127.0.0.2 --user alice:wonderland1 --client-ca "$T/tls/ca.crt"
expect "CIDRs normalised" "$(as "$TC" settings show shop Test --json | jq_get settings.access.profiles.office.allow)" '["127.0.0.1/32", "10.0.0.0/8", "::1/128"]'
expect "applied to the whole environment" "$(as "$TC" settings show shop Test --json | jq_get settings.access.paths./)" office
expect "basic-auth password not shown" "$(count 'password' as "$TC" settings show shop Test --json)" 0
expect_match "basic-auth stored as an htpasswd hash" "$(doc3)" '"alice":\{"password_hash":"\$6\$'
check_fails "per-path rule refused on v3" 1 as "$TC" settings access-set shop Test admins --allow 127.0.0.1 --path /admin
expect_match "per-path named" "$(cat "$T/last.err")" "access.paths./admin.*not supported on v3"
check_fails "bad CIDR refused" 1 as "$TC" settings access-set shop Test office --allow 10.0.0.1/8
expect_match "host bits named" "$(cat "$T/last.err")" "access.profiles.office.allow.*host bits"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=leaf.example.test \
	-addext basicConstraints=critical,CA:FALSE -keyout "$T/tls/leaf.key" -out "$T/tls/leaf.crt" 2>/dev/null
check_fails "not a CA refused" 1 as "$TC" settings access-set shop Test office --client-ca "$T/tls/leaf.crt"
check "X-Frame-Options on v3" as "$TC" settings header-set shop Test x-frame-options SAMEORIGIN
expect "header spelled canonically" "$(as "$TC" settings show shop Test --json | jq_get settings.headers.X-Frame-Options)" SAMEORIGIN
check_fails "v4-only header refused on v3" 1 as "$TC" settings header-set shop Test Content-Security-Policy "default-src 'self'"
expect_match "header named" "$(cat "$T/last.err")" "headers.Content-Security-Policy.*not supported on v3"
check_fails "bad header value refused" 1 as "$TC" settings header-set shop Test X-Frame-Options sometimes

# ---- Runtime -------------------------------------------------------------
check "runtime settings" as "$TC" settings runtime shop Test --set Pool.Max=10 --set Cache=on
check "unset a runtime setting" as "$TC" settings runtime shop Test --unset Cache
expect "runtime settings shown" "$(as "$TC" settings show shop Test --json | jq_get settings.runtime.settings)" '{"Pool.Max": "10"}'
check_fails "instances refused on v3" 1 as "$TC" settings runtime shop Test --instances 2
expect_match "instances named" "$(cat "$T/last.err")" "runtime.instances.*v3"
check "plain env var" as "$TC" settings env-set shop Test FEATURE_X on
printf 'the-secret-value\n' > "$T/secret.txt"
check "secret env var from stdin" sh -c "NUBO_API_KEY=$TC '$NUBO' settings env-set shop Test API_TOKEN --secret < '$T/secret.txt'"
check_fails "reserved env var refused" 1 as "$TC" settings env-set shop Test DATABASE_URL x
expect_match "reserved named" "$(cat "$T/last.err")" "env_vars.DATABASE_URL.*reserved"
expect "secret not shown by the API" "$(count 'the-secret-value' api_as "$TC" GET "$S3")" 0
expect "secret not shown by the CLI" "$(count 'the-secret-value' as "$TC" settings show shop Test)" 0
expect_match "CLI marks it secret" "$(as "$TC" settings show shop Test)" 'API_TOKEN +\(secret\)'
expect "secret not in a masked export" "$(count 'the-secret-value' as "$TC" settings export shop Test)" 0
expect "secret not in the store in clear" "$(count 'the-secret-value' doc3)" 0
expect "Technical Contact may export secrets" "$(as "$TC" settings export shop Test --include-secrets | grep -c 'the-secret-value')" 1
check_fails "a settings member may not export secrets" 1 as "$DEV" settings export shop Test --include-secrets
check "a settings member may export masked" as "$DEV" settings export shop Test

# ---- Maintenance -----------------------------------------------------------
check "maintenance window" as "$TC" settings window shop Test Sun 02:30 120 --apply-pending
expect "window day normalised" "$(as "$TC" settings show shop Test --json | jq_get settings.maintenance_window.day)" sunday
check_fails "window 25:00 refused" 1 as "$TC" settings window shop Test sunday 25:00 60
expect_match "window named" "$(cat "$T/last.err")" "maintenance_window.start"
check_fails "window day refused" 1 as "$TC" settings window shop Test funday 02:00 60
check_fails "window too short" 1 as "$TC" settings window shop Test monday 02:00 5

# ---- export v3 → import v4 → diff -----------------------------------------
as "$TC" settings export shop Test --include-secrets --output "$T/v3.json"
expect_match "export file is 0600" "$(stat -c %a "$T/v3.json")" '^600$'
expect "export names its format" "$(jq_get format < "$T/v3.json")" "nubo-settings/1"
expect "export names its generation" "$(jq_get generation < "$T/v3.json")" v3
check_fails "diff before import differs" 0 as "$TC" settings diff shop Test shop-v4 Test
expect_match "diff lists a difference" "$(cat "$T/last.out")" "constants.Greeting"
# a custom domain belongs to one environment cloud-wide: shop's stays
before4=$(doc4)
check_fails "import with another app's custom domain refused" 1 as "$TC" settings import shop-v4 Test "$T/v3.json"
expect_match "the conflict named" "$(cat "$T/last.err")" "setting 'domains.shop.example.test': custom domain 'shop.example.test' is already used by environment 'Test' of app 'shop'"
expect "refused import changed nothing" "$(doc4)" "$before4"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("domains"); json.dump(d, open(sys.argv[2], "w"))' "$T/v3.json" "$T/v3-own.json"
check "import the v3 settings (without shop's domain) into v4" as "$TC" settings import shop-v4 Test "$T/v3-own.json"
expect "diff v3 ↔ v4: only the custom domain" "$(as "$TC" settings diff shop Test shop-v4 Test --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(",".join(x["setting"] for x in d["differences"]), len(d["unsupported"]))')" "domains.shop.example.test 0"
expect_match "diff names it" "$(as "$TC" settings diff shop Test shop-v4 Test)" "domains.shop.example.test"
expect "secret arrived on v4" "$(as "$TC" settings export shop-v4 Test --include-secrets | jq_get env_vars.API_TOKEN.value)" "the-secret-value"
# masked import keeps the target's secrets
as "$TC" settings export shop-v4 Test --output "$T/v4-masked.json"
check "re-import a masked export keeps the secrets" as "$TC" settings import shop-v4 Test "$T/v4-masked.json"
expect "secret kept" "$(as "$TC" settings export shop-v4 Test --include-secrets | jq_get env_vars.API_TOKEN.value)" "the-secret-value"
# v4-only settings
check "v4: per-path rule" as "$TC" settings access-set shop-v4 Test admins --allow 127.0.0.1 --path /admin
check "v4: CSP header" as "$TC" settings header-set shop-v4 Test Content-Security-Policy "default-src 'self'"
check "v4: instances and memory" as "$TC" settings runtime shop-v4 Test --instances 2 --memory 512
out=$(as "$TC" settings diff shop Test shop-v4 Test --json)
expect "diff lists v4-only settings as unsupported on v3" "$(printf '%s' "$out" | python3 -c 'import json,sys; print(",".join(sorted(u["setting"] for u in json.load(sys.stdin)["unsupported"])))')" \
	"access.paths./admin,headers.Content-Security-Policy,runtime.instances,runtime.memory_mb"
expect "and no other difference than two" "$(printf '%s' "$out" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["differences"]))')" 2
as "$TC" settings export shop-v4 Test --include-secrets --output "$T/v4.json"
before=$(doc3)
check_fails "v4-only settings refused on v3" 1 as "$TC" settings import shop Test "$T/v4.json"
for s in access.paths./admin headers.Content-Security-Policy runtime.instances runtime.memory_mb; do
	expect_match "refusal names $s" "$(cat "$T/last.err")" "setting '$s'"
done
expect "refused import changed nothing" "$(doc3)" "$before"

# ---- permissions -------------------------------------------------------------
check "settings member on Test can change Test" as "$DEV" settings set-constant shop Test Greeting hi
check_fails "but not Production" 1 as "$DEV" settings set-constant shop Production Greeting hi
expect_match "forbidden named" "$(cat "$T/last.err")" "'settings' permission on environment 'Production'"
check_fails "diff needs settings on both sides" 1 as "$DEV" settings diff shop Test shop-v4 Test
expect "no key" "$(status_as "" GET "$S3")" 401

# ---- bad input on every settings route (SPEC §6) ---------------------------
before=$(doc3)
bad() { # bad NAME STATUS METHOD PATH BODY
	expect "$1" "$(status_as "$TC" "$3" "$4" "${5:-}")" "$2"
}
bad "import: malformed JSON" 400 PUT "$S3" '{"constants":'
bad "import: not an object" 400 PUT "$S3" '[1]'
bad "import: unknown section" 400 PUT "$S3" '{"colour":"red"}'
bad "import: wrong format" 400 PUT "$S3" '{"format":"other/9"}'
bad "import: wrong type" 400 PUT "$S3" '{"constants":[1,2]}'
bad "import: deep nesting" 400 PUT "$S3" "$(python3 -c 'print("{\"constants\":" + "["*40 + "]"*40 + "}")')"
python3 -c 'print("{\"constants\":{\"A\":\"" + "x"*1100000 + "\"}}")' > "$T/big.json"
expect "import: oversized" "$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $TC" --data-binary @"$T/big.json" "$PORTAL_URL/api/v1$S3")" 413
bad "patch: unknown section" 400 PATCH "$S3" '{"nope":{}}'
bad "patch: bad env var" 400 PATCH "$S3" '{"env_vars":{"A B":"x"}}'
bad "constant: missing value" 400 PUT "$S3/constants/Greeting" '{}'
bad "constant: unknown field" 400 PUT "$S3/constants/Greeting" '{"value":"x","extra":1}'
bad "constant: bad name" 400 PUT "$S3/constants/1bad" '{"value":"x"}'
bad "constant: object value" 400 PUT "$S3/constants/Greeting" '{"value":{"a":1}}'
bad "event: not boolean" 400 PUT "$S3/scheduled-events/Cleanup" '{"enabled":"yes"}'
bad "event: unknown field" 400 PUT "$S3/scheduled-events/Cleanup" '{"enabled":true,"x":1}'
bad "domain: missing key" 400 PUT "$S3/domains/a.example.test" '{"certificate":"x"}'
bad "domain: garbage PEM" 400 PUT "$S3/domains/a.example.test" '{"certificate":"x","private_key":"y"}'
bad "domain: invalid name" 400 PUT "$S3/domains/a..example.test" '{"certificate":"x","private_key":"y"}'
bad "domain: delete unknown" 404 DELETE "$S3/domains/none.example.test"
bad "access: unknown field" 400 PUT "$S3/access" '{"profiles":{},"rules":[]}'
bad "access: path to no profile" 400 PUT "$S3/access" '{"profiles":{},"paths":{"/":"ghost"}}'
bad "access: bad CIDR" 400 PUT "$S3/access" '{"profiles":{"p":{"allow":["300.1.1.1"]}},"paths":{"/":"p"}}'
bad "access: bad user" 400 PUT "$S3/access" '{"profiles":{"p":{"basic_auth":{"a:b":{"password":"password1"}}}}}'
bad "access: short password" 400 PUT "$S3/access" '{"profiles":{"p":{"basic_auth":{"ab":{"password":"x"}}}}}'
bad "access: bad hash" 400 PUT "$S3/access" '{"profiles":{"p":{"basic_auth":{"ab":{"password_hash":"plain"}}}}}'
bad "headers: not allowed" 400 PUT "$S3/headers" '{"Server":"x"}'
bad "headers: injection" 400 PUT "$S3/headers/X-Frame-Options" '{"value":"DENY\"; return 200; #"}'
bad "header: delete unknown" 404 DELETE "$S3/headers/X-XSS-Protection"
bad "runtime: wrong type" 400 PATCH "$S3/runtime" '{"settings":{"A":1}}'
bad "runtime: unknown field" 400 PATCH "$S3/runtime" '{"cpu":2}'
bad "runtime: bad key" 400 PATCH "$S3/runtime" '{"settings":{"a b":"x"}}'
bad "env var: missing value" 400 PUT "$S3/env-vars/X" '{"secret":true}'
bad "env var: control character" 400 PUT "$S3/env-vars/X" '{"value":"a\u0001b"}'
bad "env var: delete unknown" 404 DELETE "$S3/env-vars/NOPE"
bad "window: missing fields" 400 PUT "$S3/maintenance-window" '{"day":"monday"}'
bad "window: bad duration type" 400 PUT "$S3/maintenance-window" '{"day":"monday","start":"01:00","duration_minutes":"2h"}'
bad "window: 12:60" 400 PUT "$S3/maintenance-window" '{"day":"monday","start":"12:60","duration_minutes":60}'
bad "diff: missing other" 400 GET "$S3/diff"
bad "diff: unknown app" 404 GET "$S3/diff?app=ghost&env=Test"
bad "diff: unknown env" 404 GET "$S3/diff?app=shop-v4&env=Ghost"
bad "export: bad secrets" 400 GET "$S3/export?secrets=all"
bad "unknown environment" 404 GET /apps/shop/environments/Ghost/settings
bad "unknown app" 404 GET /apps/ghost/environments/Test/settings
expect "bad input changed nothing" "$(doc3)" "$before"
expect_match "error names setting and reason" "$(api_as "$TC" PUT "$S3/access" '{"profiles":{"p":{"allow":["300.1.1.1"]}},"paths":{"/":"p"}}')" \
	"setting 'access.profiles.p.allow': '300.1.1.1' is not an IP address or CIDR"

# ---- through the real nodes: router (nginx) and the settings test app -------
APPS=$NUBO_SRC/tests/e2e/apps
put_package() { # NODE ID SRCDIR (into the node's repository folder)
	mkdir -p "$T/node-$1/packages/$2"
	tar czf "$T/node-$1/packages/$2/package" -C "$3" .
}
put_package cloud-v3 settingsapp-1.0.0 "$APPS/settingsapp"
put_package cloud-v4 settingsapp-1.0.0 "$APPS/settingsapp"
H3=shop-test.nubo.localhost
H4=shop-v4-test.nubo.localhost
# http NODE HOST PATH [curl args…]: status and body through the router
get() { local var=ROUTER_${1//-/_} host=$2 path=$3; shift 3
	curl -s -H "Host: $host" "$@" "http://127.0.0.1:${!var}$path"; }
code() { local var=ROUTER_${1//-/_} host=$2 path=$3; shift 3
	curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" "$@" "http://127.0.0.1:${!var}$path"; }
appenv() { get cloud-v3 "$H3" / -u alice:wonderland1 | jq_get "env.$1"; }

check "v3 access: allow 127.0.0.1, deny 127.0.0.2, basic auth" as "$TC" settings access-set shop Test office \
	--allow 127.0.0.1 --deny 127.0.0.2 --user alice:wonderland1
check "enable scheduled event Tick" as "$TC" settings event shop Test Tick on
check "disable scheduled event Nightly" as "$TC" settings event shop Test Nightly off
check "transport the settings app" as "$TC" envs transport shop Test settingsapp-1.0.0
check "start it" as "$TC" envs start shop Test
expect "running" "$(as "$TC" envs show shop Test --json | jq_get state)" running
# with a package deployed, constants are checked against its manifest
check_fails "constant the package does not declare refused" 1 as "$TC" settings set-constant shop Test Nope x
expect_match "undeclared constant named" "$(cat "$T/last.err")" "constants.Nope.*not declared by the deployed package 'settingsapp'"
check_fails "integer constant refuses text" 1 as "$TC" settings set-constant shop Test MaxItems many
expect_match "wrong type named" "$(cat "$T/last.err")" "constants.MaxItems.*integer"
check_fails "boolean constant refuses yes" 1 as "$TC" settings set-constant shop Test ShopOpen yes
check_fails "event the package does not declare refused" 1 as "$TC" settings event shop Test Bogus on
expect "restart not pending after a start" "$(as "$TC" settings show shop Test --json | jq_get restart_pending)" false

expect "IP restriction: 127.0.0.2 refused" "$(code cloud-v3 "$H3" / --interface 127.0.0.2 -u alice:wonderland1)" 403
expect "127.0.0.1 without credentials: basic auth asked" "$(code cloud-v3 "$H3" /)" 401
expect "wrong password refused" "$(code cloud-v3 "$H3" / -u alice:wrongpassword)" 401
expect "127.0.0.1 with credentials allowed" "$(code cloud-v3 "$H3" / -u alice:wonderland1)" 200
expect_match "header on responses" "$(curl -s -D - -o /dev/null -H "Host: $H3" -u alice:wonderland1 "http://127.0.0.1:$ROUTER_cloud_v3/")" $'X-Frame-Options: SAMEORIGIN\r'
expect_match "header on refusals too" "$(curl -s -D - -o /dev/null -H "Host: $H3" "http://127.0.0.1:$ROUTER_cloud_v3/")" 'X-Frame-Options: SAMEORIGIN'
expect "constant reaches the app" "$(appenv NUBO_CONST_Greeting)" hi
expect "package default for an unset constant" "$(appenv NUBO_CONST_MaxItems)" 10
expect "env var reaches the app" "$(appenv FEATURE_X)" on
expect "secret env var reaches the app" "$(appenv API_TOKEN)" the-secret-value
expect "runtime setting reaches the app" "$(appenv NUBO_RUNTIME_Pool_Max)" 10
expect "secret still never shown by the API" "$(count 'the-secret-value' api_as "$TC" GET "$S3")" 0

# a change that needs a restart
check "change a constant while running" as "$TC" settings set-constant shop Test Greeting changed
expect "restart pending" "$(as "$TC" settings show shop Test --json | jq_get restart_pending)" true
expect_match "CLI says restart pending" "$(as "$TC" settings env-set shop Test FEATURE_Y yes)" "restart pending"
expect "app unchanged before the restart" "$(appenv NUBO_CONST_Greeting)" hi
check "restart" as "$TC" envs restart shop Test
expect "constant after the restart" "$(appenv NUBO_CONST_Greeting)" changed
expect "new env var after the restart" "$(appenv FEATURE_Y)" yes
expect "restart no longer pending" "$(as "$TC" settings show shop Test --json | jq_get restart_pending)" false
# pending restarts applied in the maintenance window (one open now)
win=$(python3 -c 'import datetime as d; t=d.datetime.now(d.timezone.utc)-d.timedelta(minutes=1); print(t.strftime("%A").lower(), t.strftime("%H:%M"))')
check "maintenance window open now, applying pending restarts" as "$TC" settings window shop Test ${win% *} ${win#* } 30 --apply-pending
check "change a constant again" as "$TC" settings set-constant shop Test Greeting in-window
for _ in $(seq 80); do
	[ "$(appenv NUBO_CONST_Greeting)" = in-window ] && break
	sleep 0.25
done
expect "restarted in the window without asking" "$(appenv NUBO_CONST_Greeting)" in-window
# the flag clears when the restart job ends, a moment after the app answers
for _ in $(seq 80); do
	[ "$(as "$TC" settings show shop Test --json | jq_get restart_pending)" = false ] && break
	sleep 0.25
done
expect "restart no longer pending after the window restart" "$(as "$TC" settings show shop Test --json | jq_get restart_pending)" false
expect_match "activity log records the window restart" "$(as "$TC" apps activity shop 2>/dev/null || true)" "maintenance window"
check "remove the window" as "$TC" settings window-remove shop Test
check "a router-only change needs no restart" as "$TC" settings header-set shop Test X-Frame-Options DENY
expect "header change needs no restart" "$(as "$TC" settings show shop Test --json | jq_get restart_pending)" false
for _ in $(seq 40); do
	curl -s -D - -o /dev/null -H "Host: $H3" "http://127.0.0.1:$ROUTER_cloud_v3/" | grep -q 'X-Frame-Options: DENY' && break
	sleep 0.25
done
expect_match "header change served without restart" "$(curl -s -D - -o /dev/null -H "Host: $H3" "http://127.0.0.1:$ROUTER_cloud_v3/")" 'X-Frame-Options: DENY'

# scheduled events: Tick (every 1s) enabled, Nightly (every 1s) disabled
for _ in $(seq 40); do
	[ "$(get cloud-v3 "$H3" /events -u alice:wonderland1 | jq_get Tick)" -ge 2 ] 2>/dev/null && break
	sleep 0.25
done
ev=$(get cloud-v3 "$H3" /events -u alice:wonderland1)
expect_match "enabled event fired" "$(printf '%s' "$ev" | jq_get Tick)" '^[2-9]|^[1-9][0-9]+'
expect "disabled event did not fire" "$(printf '%s' "$ev" | jq_get Nightly)" ""
expect_match "node logs the event" "$(as "$TC" envs logs shop Test --lines 200)" "scheduled event Tick: instance on port [0-9]+ answered 200"

# custom domain over TLS with the test's certificate
tls() { curl -s --resolve "$1:$TLS3:127.0.0.1" --cacert "$T/tls/good.crt" "${@:3}" "https://$1:$TLS3$2"; }
expect "custom domain over TLS, verified with the test certificate" "$(tls shop.example.test / -u alice:wonderland1 | jq_get env.NUBO_ENV)" Test
expect "access restrictions on the custom domain too" "$(tls shop.example.test / -o /dev/null -w '%{http_code}')" 401
expect "certificate served is the uploaded one" \
	"$(echo | openssl s_client -connect "127.0.0.1:$TLS3" -servername shop.example.test 2>/dev/null | openssl x509 -noout -fingerprint -sha256)" \
	"$(openssl x509 -in "$T/tls/good.crt" -noout -fingerprint -sha256)"
# the longest name the validator takes (253, labels of 63) loads in nginx
# (its server_names hash refused exact names over ~115 characters)
LONG=$(python3 -c 'print(".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 48, "example", "test"]))')
expect "a 253-character domain" "${#LONG}" 253
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=long.example.test \
	-addext "subjectAltName=DNS:$LONG" -keyout "$T/tls/long.key" -out "$T/tls/long.crt" 2>/dev/null
check "a 253-character custom domain accepted" as "$TC" settings domain-add shop Test "$LONG" --cert "$T/tls/long.crt" --key "$T/tls/long.key"
tlslong() { curl -s --resolve "$LONG:$TLS3:127.0.0.1" --cacert "$T/tls/long.crt" "$@" "https://$LONG:$TLS3/"; }
for _ in $(seq 80); do
	[ "$(tlslong -o /dev/null -w '%{http_code}')" = 401 ] && break
	sleep 0.25
done
expect "the 253-character domain served over TLS" "$(tlslong -u alice:wonderland1 | jq_get env.NUBO_ENV)" Test
expect "no router error for the 253-character domain" "$(as "$TC" envs show shop Test --json | jq_get router_error)" ""
# its files go with it once nginx no longer names them
longkey=$(find "$T/node-cloud-v3/nginx/settings" -name "${LONG:0:128}-*.key")
expect_match "the long domain's key written (its name cut to 128 characters)" "$longkey" '\.key$'
check "remove the 253-character domain" as "$TC" settings domain-remove shop Test "$LONG"
for _ in $(seq 80); do
	[ -e "$longkey" ] || break
	sleep 0.25
done
expect "a removed domain's key file is gone" "$([ -e "$longkey" ] && echo left || echo gone)" gone
expect "a removed domain's certificate file is gone" "$(find "$T/node-cloud-v3/nginx/settings" -name "${LONG:0:128}-*" | wc -l)" 0
expect "the other domain's key stays" "$(find "$T/node-cloud-v3/nginx/settings" -name 'shop.example.test-*.key' | wc -l)" 1
keys=$(find "$T/node-cloud-v3/nginx/settings" -name '*.key')
expect_match "private key written under the node's nginx prefix" "$keys" '\.key$'
expect "private key files are 0600" "$(stat -c %a $keys | sort -u)" 600

# v4: per-path rules, client certificates, v4 headers, instances
openssl req -new -newkey rsa:2048 -nodes -subj /CN=client -keyout "$T/tls/client.key" -out "$T/tls/client.csr" 2>/dev/null
openssl x509 -req -in "$T/tls/client.csr" -CA "$T/tls/ca.crt" -CAkey "$T/tls/ca.key" -CAcreateserial \
	-days 30 -out "$T/tls/client.crt" 2>/dev/null
ca_json=$(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$T/tls/ca.crt")
expect "v4 access: / open, /admin only from 127.0.0.2, /secure needs a client certificate" "$(status_as "$TC" PUT "$S4/access" \
	"{\"profiles\":{\"open\":{\"allow\":[\"127.0.0.0/8\"]},\"admins\":{\"allow\":[\"127.0.0.2\"]},\"certs\":{\"client_ca\":$ca_json}},\"paths\":{\"/\":\"open\",\"/admin\":\"admins\",\"/secure\":\"certs\"}}")" 200
# the router's ACME challenge location: a second location of that name
# made nginx refuse the config (with --acme-directory); refused always
before_acme=$(doc4)
expect "access path at the ACME challenge location refused" "$(status_as "$TC" PUT "$S4/access" \
	'{"profiles":{"open":{"allow":["127.0.0.0/8"]}},"paths":{"/.well-known/acme-challenge/":"open"}}')" 400
expect_match "the ACME path named with the reason" "$(api_as "$TC" PATCH "$S4" '{"access":{"profiles":{"open":{"allow":["127.0.0.0/8"]}},"paths":{"/.well-known/acme-challenge/tok":"open"}}}')" \
	"access.paths./.well-known/acme-challenge/tok.*ACME challenge location"
expect "refused ACME paths changed nothing" "$(doc4)" "$before_acme"
check "v4: a custom domain of its own" as "$TC" settings domain-add shop-v4 Test v4.example.test --cert "$T/tls/wild.crt" --key "$T/tls/wild.key"
check "transport on v4" as "$TC" envs transport shop-v4 Test settingsapp-1.0.0
check "start on v4" as "$TC" envs start shop-v4 Test
expect "v4 runs the instances set in the settings" "$(as "$TC" envs show shop-v4 Test --json | python3 -c 'import json,sys; print(len([i for i in json.load(sys.stdin)["running"] if i["state"]=="running"]))')" 2
expect "v4: / allowed" "$(code cloud-v4 "$H4" /)" 200
expect "v4: /admin refused from 127.0.0.1" "$(code cloud-v4 "$H4" /admin)" 403
expect "v4: /admin/users refused from 127.0.0.1" "$(code cloud-v4 "$H4" /admin/users)" 403
expect "v4: /admin allowed from 127.0.0.2" "$(code cloud-v4 "$H4" /admin --interface 127.0.0.2)" 200
expect_match "v4: CSP header" "$(curl -s -D - -o /dev/null -H "Host: $H4" "http://127.0.0.1:$ROUTER_cloud_v4/")" "Content-Security-Policy: default-src 'self'"
tls4() { curl -s -o /dev/null -w '%{http_code}' --resolve "v4.example.test:$TLS4:127.0.0.1" --cacert "$T/tls/wild.crt" "${@:2}" "https://v4.example.test:$TLS4$1"; }
expect "v4: its custom domain served over TLS" "$(tls4 /)" 200
expect "v4: /secure without a client certificate refused" "$(tls4 /secure)" 403
expect "v4: /secure with a client certificate from the CA" "$(tls4 /secure --cert "$T/tls/client.crt" --key "$T/tls/client.key")" 200
expect "v4: /secure over plain HTTP refused" "$(code cloud-v4 "$H4" /secure)" 403

# ---- one environment's bad configuration never freezes the router ----------
# A certificate nginx cannot load made every later `nginx -t` fail: other
# environments' restarts were answered 502 while the portal said running.
# Planted on the node and in the portal's store, bypassing the portal's
# validation (as a damaged file or a future validator gap would).
HA=shop-acceptance.nubo.localhost
envid() { db "SELECT e.id FROM environments e JOIN nodes n ON n.id = e.node_id WHERE n.name = '$1' AND e.name = '$2'"; }
router_error() { as "$TC" envs show shop "$1" --json | jq_get router_error; }
check "transport into Acceptance" as "$TC" envs transport shop Acceptance settingsapp-1.0.0
check "start Acceptance" as "$TC" envs start shop Acceptance
expect "Acceptance served" "$(code cloud-v3 "$HA" /)" 200
crt=$(ls "$T/node-cloud-v3/nginx/settings/env_$(envid cloud-v3 Test)"/shop.example.test-*.crt)
echo 'damaged' > "$crt"
check "restart Test with its certificate file damaged on the node" as "$TC" envs restart shop Test
expect "Test served after the restart" "$(code cloud-v3 "$H3" / -u alice:wonderland1)" 200
expect "the damaged certificate file is written again" "$(cmp -s "$crt" "$T/tls/good.crt" && echo same)" same
expect "its custom domain served" "$(tls shop.example.test / -u alice:wonderland1 | jq_get env.NUBO_ENV)" Test
# a certificate whose key does not match, in Acceptance's stored settings
python3 - "$T/portal/portal.db" "$(envid cloud-v3 Test)" "$(envid cloud-v3 Acceptance)" "$T/tls/other.crt" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
test = json.loads(db.execute("SELECT doc_json FROM environment_settings WHERE environment_id = ?", (sys.argv[2],)).fetchone()[0])
row = db.execute("SELECT doc_json FROM environment_settings WHERE environment_id = ?", (sys.argv[3],)).fetchone()
acc = json.loads(row[0]) if row else {}
acc.setdefault("domains", {})["acc.example.test"] = {
    "certificate": open(sys.argv[4]).read(),
    "private_key_sealed": test["domains"]["shop.example.test"]["private_key_sealed"]}
# an access path the portal refuses, at the router's ACME location
acc["access"] = {"profiles": {"p": {"allow": ["127.0.0.0/8"]}},
                 "paths": {"/.well-known/acme-challenge/": "p"}}
db.execute("INSERT INTO environment_settings (environment_id, doc_json, version) VALUES (?, ?, 1)"
           " ON CONFLICT (environment_id) DO UPDATE SET doc_json = excluded.doc_json", (sys.argv[3], json.dumps(acc)))
db.commit()
PY
for _ in $(seq 60); do
	[ -n "$(router_error Acceptance)" ] && break
	sleep 0.25
done
expect_match "the bad domain is reported on Acceptance (envs show)" "$(router_error Acceptance)" \
	"^custom domain 'acc.example.test' is not served: .*(key values mismatch|cannot load)"
expect_match "and in the portal's environment status" "$(api_as "$TC" GET /apps/shop/environments/Acceptance)" \
	'"router_error": *"custom domain .acc.example.test. is not served'
expect "the node's data folder is not named" "$(e=$(router_error Acceptance); [[ $e == *"$T"* ]] && echo named || echo not)" not
expect "Acceptance still running" "$(as "$TC" envs show shop Acceptance --json | jq_get state)" running
expect_match "the node skips an access path at the ACME location" \
	"$(grep -c "access path '/.well-known/acme-challenge/' skipped" "$T/node-cloud-v3.log")" '^[1-9]'
python3 - "$T/portal/portal.db" "$(envid cloud-v3 Acceptance)" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
doc = json.loads(db.execute("SELECT doc_json FROM environment_settings WHERE environment_id = ?", (sys.argv[2],)).fetchone()[0])
doc.pop("access", None)
db.execute("UPDATE environment_settings SET doc_json = ? WHERE environment_id = ?", (json.dumps(doc), sys.argv[2]))
db.commit()
PY
expect "Acceptance still served on its hostname" "$(code cloud-v3 "$HA" /)" 200
check_fails "the left-out domain gets no other environment's server (handshake refused)" 35 \
	curl -s -o /dev/null --resolve "acc.example.test:$TLS3:127.0.0.1" -k "https://acc.example.test:$TLS3/"
expect "Test reports nothing" "$(router_error Test)" ""
check "restart Test while Acceptance's domain is bad" as "$TC" envs restart shop Test
expect "Test served after the restart" "$(code cloud-v3 "$H3" / -u alice:wonderland1)" 200
expect "Test's custom domain served" "$(tls shop.example.test / -u alice:wonderland1 | jq_get env.NUBO_ENV)" Test
expect_match "envs show prints it" "$(as "$TC" envs show shop Acceptance)" "router_error +custom domain 'acc.example.test' is not served"
check "the bad domain removed through the portal" as "$TC" settings domain-remove shop Acceptance acc.example.test
for _ in $(seq 60); do
	[ -z "$(router_error Acceptance)" ] && break
	sleep 0.25
done
expect "Acceptance reports nothing once it is gone" "$(router_error Acceptance)" ""
# `running` means the router serves it: with no config nginx would take
# at all, a start never says running. Production was never deployed (the
# router serves its not-running page), so once transported its start
# needs a new config; an environment of one instance is routed to its
# socket in every other state, so a start or a restart alone needs none.
HP=shop-production.nubo.localhost
expect "Production: the router answers 503" "$(code cloud-v3 "$HP" /)" 503
expect_match "with the not-running page" "$(route cloud-v3 "$HP" /)" "This app is not running"
rm -f "$T/node-cloud-v3/nginx/nginx.conf.new"
mkdir "$T/node-cloud-v3/nginx/nginx.conf.new"
check "transport into Production while nginx takes no config" as "$TC" envs transport shop Production settingsapp-1.0.0
check_fails "a start the router cannot route fails" 1 as "$TC" envs start shop Production
expect_match "naming the router" "$(cat "$T/last.err")" "the router did not take a configuration"
expect "Production is failed, not running" "$(as "$TC" envs show shop Production --json | jq_get state)" failed
rmdir "$T/node-cloud-v3/nginx/nginx.conf.new"
check "started again once the router takes its config" as "$TC" envs start shop Production
expect "Production served" "$(code cloud-v3 "$HP" /)" 200
expect "Test served all along" "$(code cloud-v3 "$H3" / -u alice:wonderland1)" 200

finish
