#!/usr/bin/env bash
# t1a: users and API keys through the real CLI — login (password on stdin,
# config file 0600), whoami, admin users, keys create/list/revoke, and the
# rule that a key never does more than its user or the key that made it.
. "$(dirname "$0")/lib.sh"

start_portal
unset NUBO_API_KEY

# Login with the password on standard input; the stored config is 0600.
check "login (password on stdin)" sh -c "echo adminpass1 | '$NUBO' login '$PORTAL_URL' --email admin@nubo.localhost"
expect "config file mode" "$(stat -c %a "$XDG_CONFIG_HOME/nubo/config")" 600
expect "config dir mode" "$(stat -c %a "$XDG_CONFIG_HOME/nubo")" 700
expect "whoami after login" "$("$NUBO" whoami --json | jq_get email)" admin@nubo.localhost
check_fails "login with a wrong password" 1 sh -c "echo wrongpass1 | '$NUBO' login '$PORTAL_URL' --email admin@nubo.localhost"
expect "failed login keeps the old login" "$("$NUBO" whoami --json | jq_get email)" admin@nubo.localhost
check_fails "login to a bad URL is a usage error" 2 "$NUBO" login ftp://x

# Users (admin only).
check "admin users create" "$NUBO" admin users create bob@example.com --password bobpass123 --name Bob
expect "created user is bob" "$(grep -c 'bob@example.com' "$T/last.out")" 1
check "admin users create (password on stdin)" sh -c "echo evepass123 | '$NUBO' admin users create eve@example.com"
check_fails "duplicate user" 1 "$NUBO" admin users create BOB@example.com --password bobpass123
expect_match "duplicate user message" "$(cat "$T/last.err")" "exists"
check_fails "short password" 1 "$NUBO" admin users create carl@example.com --password short
check_fails "bad email" 1 "$NUBO" admin users create not-an-email --password longenough1
check_fails "admin users create without EMAIL" 2 "$NUBO" admin users create
users=$("$NUBO" admin users list --json)
expect "users list" "$(printf '%s' "$users" | python3 -c 'import json,sys; print(",".join(u["email"] for u in json.load(sys.stdin)))')" "admin@nubo.localhost,bob@example.com,eve@example.com"
expect "is_admin is a boolean" "$(printf '%s' "$users" | jq_get 1.is_admin)" false

BOB=$(api_as "" POST /sessions '{"email":"bob@example.com","password":"bobpass123"}' | jq_get key)
expect_match "bob logs in" "$BOB" '^nubo_[0-9a-f]{40}$'
check_fails "bob is not an admin" 1 env NUBO_API_KEY="$BOB" "$NUBO" admin users list
check_fails "bob cannot create users" 1 env NUBO_API_KEY="$BOB" "$NUBO" admin users create x@example.com --password longenough1
expect "bob whoami" "$(NUBO_API_KEY=$BOB "$NUBO" whoami --json | jq_get is_admin)" false
expect "unknown email and wrong password look alike" \
	"$(api_as "" POST /sessions '{"email":"nobody@example.com","password":"whatever12"}' | jq_get error.code)" \
	"$(api_as "" POST /sessions '{"email":"bob@example.com","password":"whatever12"}' | jq_get error.code)"

# Bob's apps.
NUBO_API_KEY=$BOB "$NUBO" apps create bobapp --no-sandbox >/dev/null
NUBO_API_KEY=$BOB "$NUBO" apps create bobtwo --no-sandbox >/dev/null
"$NUBO" apps create adminapp --no-sandbox >/dev/null

# keys create prints the key once, on stdout alone.
K=$(NUBO_API_KEY=$BOB "$NUBO" keys create --name ci 2>/dev/null)
expect_match "keys create prints the key" "$K" '^nubo_[0-9a-f]{40}$'
expect "new key works" "$(NUBO_API_KEY=$K "$NUBO" whoami --json | jq_get email)" bob@example.com
expect "keys list never shows secrets" "$(count "$K" env NUBO_API_KEY="$BOB" "$NUBO" keys list --json)" 0
expect "keys list never shows hashes" "$(count '"hash"' env NUBO_API_KEY="$BOB" "$NUBO" keys list --json)" 0
check "keys list (table)" env NUBO_API_KEY="$BOB" "$NUBO" keys list
expect_match "keys list shows the name" "$(cat "$T/last.out")" " ci "

# Scoped and read-only keys.
S=$(NUBO_API_KEY=$BOB "$NUBO" keys create --app bobapp 2>/dev/null)
expect "scoped key sees its app" "$(NUBO_API_KEY=$S "$NUBO" apps list --json | jq_get 0.subdomain)" bobapp
expect "scoped key sees only its app" "$(NUBO_API_KEY=$S "$NUBO" apps list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 1
check_fails "scoped key: other app refused" 1 env NUBO_API_KEY="$S" "$NUBO" apps show bobtwo
check_fails "scoped key cannot create a key for another app" 1 env NUBO_API_KEY="$S" "$NUBO" keys create --app bobtwo
check_fails "scoped key creates a child key (it inherits the scope)" 0 env NUBO_API_KEY="$S" "$NUBO" keys create --name child
CHILD=$(cat "$T/last.out")
check_fails "child of a scoped key is scoped too" 1 env NUBO_API_KEY="$CHILD" "$NUBO" apps show bobtwo
check_fails "scoped key cannot create apps" 1 env NUBO_API_KEY="$S" "$NUBO" apps create other --no-sandbox
check_fails "key for an app you are not a member of" 1 env NUBO_API_KEY="$BOB" "$NUBO" keys create --app adminapp
check_fails "key for an unknown app" 1 env NUBO_API_KEY="$BOB" "$NUBO" keys create --app nosuchapp
R=$(NUBO_API_KEY=$BOB "$NUBO" keys create --read-only 2>/dev/null)
expect "read-only key reads" "$(NUBO_API_KEY=$R "$NUBO" whoami --json | jq_get key_read_only)" true
check_fails "read-only key cannot write" 1 env NUBO_API_KEY="$R" "$NUBO" apps create rokey --no-sandbox
check_fails "read-only key cannot create keys" 1 env NUBO_API_KEY="$R" "$NUBO" keys create
check_fails "read-only key cannot revoke" 1 env NUBO_API_KEY="$R" "$NUBO" keys revoke 1

# A key limited to named apps works only on those (SPEC §2), on the
# caller's own routes too: it lists only their migrations, offboarding
# requests and keys, and another app's migration or request is not there
# (404, as a missing one), also when waited for. The migrations, nodes and
# requests go straight into the store: no node needs to run for a read.
sql() { sqlite3 "$T/portal/portal.db" "$1"; }
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for a in bobapp bobtwo ""; do
	n=node-${a:-none} st=linked
	[ -n "$a" ] || st=available
	sql "INSERT INTO nodes (name, generation, status, technical_contact, app_id, created_at) SELECT '$n', 'v4', '$st', u.id, (SELECT id FROM apps WHERE subdomain = '$a'), '$now' FROM users u WHERE u.email = 'bob@example.com'"
	sql "INSERT INTO offboarding_requests (node_id, app_id, state, requested_by, requested_at) SELECT n.id, n.app_id, 'pending', n.technical_contact, '$now' FROM nodes n WHERE n.name = '$n'"
	[ -z "$a" ] || sql "INSERT INTO migrations (uuid, app_id, source_node_id, target_node_id, environments_json, state, phase, created_by, created_at, updated_at) SELECT '$(cat /proc/sys/kernel/random/uuid)', n.app_id, n.id, n.id, '[]', 'completed', 'finalize', n.technical_contact, '$now', '$now' FROM nodes n WHERE n.name = '$n'"
done
MIG_OWN=$(sql "SELECT m.id FROM migrations m JOIN apps a ON a.id = m.app_id WHERE a.subdomain = 'bobapp'")
MIG_TWO=$(sql "SELECT m.id FROM migrations m JOIN apps a ON a.id = m.app_id WHERE a.subdomain = 'bobtwo'")
OFF_OWN=$(sql "SELECT o.id FROM offboarding_requests o JOIN nodes n ON n.id = o.node_id WHERE n.name = 'node-bobapp'")
OFF_TWO=$(sql "SELECT o.id FROM offboarding_requests o JOIN nodes n ON n.id = o.node_id WHERE n.name = 'node-bobtwo'")
OFF_NONE=$(sql "SELECT o.id FROM offboarding_requests o JOIN nodes n ON n.id = o.node_id WHERE n.name = 'node-none'")
TWO=$(NUBO_API_KEY=$BOB "$NUBO" keys create --app bobtwo --name two 2>/dev/null)
apps_of() { python3 -c 'import json,sys; print(",".join(sorted(str(x.get(sys.argv[1])) for x in json.load(sys.stdin)[sys.argv[2]])))' "$@"; }
expect "bob's own key lists every migration" "$(api_as "$BOB" GET /migrations | apps_of app migrations)" bobapp,bobtwo
expect "scoped key lists only its app's migrations" "$(api_as "$S" GET /migrations | apps_of app migrations)" bobapp
expect "scoped key: ?app= of another app lists none" "$(api_as "$S" GET '/migrations?app=bobtwo' | apps_of app migrations)" ""
expect "scoped key shows its app's migration" "$(status_as "$S" GET "/migrations/$MIG_OWN")" 200
expect "scoped key: another app's migration is not there" "$(api_as "$S" GET "/migrations/$MIG_TWO" | jq_get error.code)" MIGRATION_NOT_FOUND
rev=$(api_as "$BOB" GET "/migrations/$MIG_TWO" | jq_get revision)
expect_match "bob's own key shows the other app's migration" "$rev" '^[0-9a-f]{16}$'
expect "scoped key: another app's migration is not there when waited for" "$(api_as "$S" GET "/migrations/$MIG_TWO?wait=1&revision=$rev" | jq_get error.code)" MIGRATION_NOT_FOUND
expect "bob's own key lists every offboarding request" "$(api_as "$BOB" GET /offboarding-requests | apps_of node offboarding_requests)" node-bobapp,node-bobtwo,node-none
expect "scoped key lists only its app's offboarding requests" "$(api_as "$S" GET /offboarding-requests | apps_of node offboarding_requests)" node-bobapp
expect "scoped key shows its app's offboarding request" "$(status_as "$S" GET "/offboarding-requests/$OFF_OWN")" 200
expect "scoped key: another app's offboarding request is not there" "$(api_as "$S" GET "/offboarding-requests/$OFF_TWO" | jq_get error.code)" OFFBOARDING_REQUEST_NOT_FOUND
expect "scoped key: a request of a node without an app is not there" "$(api_as "$S" GET "/offboarding-requests/$OFF_NONE" | jq_get error.code)" OFFBOARDING_REQUEST_NOT_FOUND
expect "scoped key: the child key sees no more" "$(api_as "$CHILD" GET "/offboarding-requests/$OFF_TWO" | jq_get error.code)" OFFBOARDING_REQUEST_NOT_FOUND
expect "bob's own key lists keys of every scope" "$(api_as "$BOB" GET /keys | python3 -c 'import json,sys; print(sorted({",".join(k["app_names"] or ["*"]) for k in json.load(sys.stdin)["keys"]}))')" "['*', 'bobapp', 'bobtwo']"
expect "scoped key lists only keys within its scope" "$(api_as "$S" GET /keys | python3 -c 'import json,sys; print(sorted(",".join(k["app_names"] or ["*"]) for k in json.load(sys.stdin)["keys"]))')" "['bobapp', 'bobapp']"
check_fails "scoped key cannot revoke a key of another app" 1 env NUBO_API_KEY="$S" "$NUBO" keys revoke "$TWO"
expect "the key of another app still works" "$(status_as "$TWO" GET /apps/bobtwo)" 200

# Expiry: never later than the parent key; bad times refused.
E=$(NUBO_API_KEY=$BOB "$NUBO" keys create --expires 2099-01-01T00:00:00Z 2>/dev/null)
expect "expiring key knows its expiry" "$(NUBO_API_KEY=$E "$NUBO" whoami --json | jq_get key_expires_at)" 2099-01-01T00:00:00Z
check_fails "child cannot outlive its parent" 1 env NUBO_API_KEY="$E" "$NUBO" keys create --expires 2100-01-01T00:00:00Z
E2=$(NUBO_API_KEY=$E "$NUBO" keys create 2>/dev/null)
expect "child inherits the parent's expiry" "$(NUBO_API_KEY=$E2 "$NUBO" whoami --json | jq_get key_expires_at)" 2099-01-01T00:00:00Z
check_fails "expiry in the past" 1 env NUBO_API_KEY="$BOB" "$NUBO" keys create --expires 2001-01-01T00:00:00Z
check_fails "expiry not a time" 1 env NUBO_API_KEY="$BOB" "$NUBO" keys create --expires tomorrow
# 8 s: room for a slow CLI (a sanitizer build on a loaded machine) before
# the expiry, which is then waited for by the clock
xexp=$(($(date +%s) + 8))
X=$(NUBO_API_KEY=$BOB "$NUBO" keys create --expires "$(date -u -d "@$xexp" +%Y-%m-%dT%H:%M:%SZ)")
check "short-lived key works at first" env NUBO_API_KEY="$X" "$NUBO" whoami
while [ "$(date +%s)" -le "$xexp" ]; do sleep 0.2; done
check_fails "expired key refused" 1 env NUBO_API_KEY="$X" "$NUBO" whoami
expect_match "expired message" "$(cat "$T/last.err")" "expired"

# Revocation: by prefix, by id, by the key itself; children go too.
check "revoke by prefix" env NUBO_API_KEY="$BOB" "$NUBO" keys revoke "${K:0:12}"
check_fails "revoked key refused" 1 env NUBO_API_KEY="$K" "$NUBO" whoami
expect_match "revoked message" "$(cat "$T/last.err")" "revoked"
check "revoke a parent (by the key itself)" env NUBO_API_KEY="$BOB" "$NUBO" keys revoke "$S"
check_fails "its child is revoked too" 1 env NUBO_API_KEY="$CHILD" "$NUBO" whoami
id=$(NUBO_API_KEY=$BOB "$NUBO" keys list --json | python3 -c 'import json,sys; print([k["id"] for k in json.load(sys.stdin) if k["revoked_at"] is None and k["read_only"]][0])')
check "revoke by id" env NUBO_API_KEY="$BOB" "$NUBO" keys revoke "$id"
check_fails "read-only key revoked" 1 env NUBO_API_KEY="$R" "$NUBO" whoami
check_fails "revoke an unknown key" 1 env NUBO_API_KEY="$BOB" "$NUBO" keys revoke 99999
ADMINKEYID=$("$NUBO" keys list --json | jq_get 0.id)
check_fails "bob cannot revoke the admin's key" 1 env NUBO_API_KEY="$BOB" "$NUBO" keys revoke "$ADMINKEYID"
check "admin key still works" "$NUBO" whoami

# CLI conventions.
check "keys --help" "$NUBO" keys --help
check "keys create --help" "$NUBO" keys create --help
check "admin users create --help" "$NUBO" admin users create --help
check_fails "unknown option" 2 "$NUBO" keys list --bogus
check_fails "keys revoke without KEY" 2 "$NUBO" keys revoke
check_fails "no login" 1 env -u NUBO_API_KEY XDG_CONFIG_HOME="$T/none" "$NUBO" whoami

finish
