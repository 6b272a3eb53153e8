#!/usr/bin/env bash
# t2: apps, members, permissions, Technical Contacts, nodes and linking
# through the real CLI — the seed's app/node steps (a temporary Free App
# without a sandbox linked to a v4 node, a second app linked to it that
# unlinks the first automatically, the temporary app deleted), linking an
# app with a sandbox refused until `apps unlink-sandbox`, the activity log,
# and bad input on every write route of this area (4xx with a code, store
# unchanged).
. "$(dirname "$0")/lib.sh"

start_portal
ADMIN=$ADMIN_KEY
TC=$(make_user tc@example.com)
DEV=$(make_user dev@example.com)
OPS=$(make_user ops@example.com)
OUT=$(make_user out@example.com)
as() { local key=$1; shift; NUBO_API_KEY=$key "$NUBO" "$@"; }

# ---- nodes (platform admin) -------------------------------------------
check "admin creates the sandbox node" as "$ADMIN" admin nodes create sandbox --generation v3 --sandbox
check "admin creates a v3 node" as "$ADMIN" admin nodes create cloud-v3 --generation v3 --technical-contact tc@example.com
node=$(as "$ADMIN" admin nodes create cloud-v4 --generation v4 --env Test --env acceptance --env Production --env Staging --technical-contact tc@example.com --json)
expect_match "node token shown once" "$(printf '%s' "$node" | jq_get token)" '^nubonode_[0-9a-f]{48}$'
expect "v4 node environments (standard names canonical, flexible kept)" \
	"$(printf '%s' "$node" | python3 -c 'import json,sys; print(",".join(e["name"] for e in json.load(sys.stdin)["environments"]))')" \
	"Test,Acceptance,Production,Staging"
expect "v3 node gets the default environments" \
	"$(as "$ADMIN" nodes show cloud-v3 --json | python3 -c 'import json,sys; print(",".join(e["name"] for e in json.load(sys.stdin)["environments"]))')" \
	"Test,Acceptance,Production"
check_fails "flexible environments only on v4" 1 as "$ADMIN" admin nodes create bad --generation v3 --env Staging
expect_match "flexible environment message" "$(cat "$T/last.err")" "v3 node has only"
check_fails "a user cannot create nodes" 1 as "$TC" admin nodes create mine --generation v4
check_fails "admin nodes create needs --generation" 2 as "$ADMIN" admin nodes create x
expect "new node is available" "$(as "$ADMIN" nodes show cloud-v4 --json | jq_get status)" available
expect "node Technical Contact" "$(as "$TC" nodes show cloud-v4 --json | jq_get technical_contact)" tc@example.com
expect "tc sees the nodes they are Technical Contact of" \
	"$(as "$TC" nodes list --json | python3 -c 'import json,sys; print(",".join(n["name"] for n in json.load(sys.stdin)))')" "cloud-v3,cloud-v4"
expect "admin sees every node" "$(as "$ADMIN" nodes list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 3
expect "an outsider sees no node" "$(as "$OUT" nodes list --json)" "[]"
check_fails "an outsider cannot show a node" 1 as "$OUT" nodes show cloud-v4

# Token rotation: the new token differs and is the one stored (its sha256).
tok1=$(printf '%s' "$node" | jq_get token)
tok2=$(as "$ADMIN" admin nodes token cloud-v4 --json | jq_get token)
expect_match "rotated token" "$tok2" '^nubonode_[0-9a-f]{48}$'
db_hash() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select token_hash from nodes where name=?", (sys.argv[2],)).fetchone()[0])' "$T/portal/portal.db" "$1"; }
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
expect "store keeps the sha256 of the new token" "$(db_hash cloud-v4)" "$(sha "$tok2")"
expect "old token is gone" "$([ "$(sha "$tok1")" != "$(db_hash cloud-v4)" ] && echo yes)" yes
check_fails "token rotation is admin only" 1 as "$TC" admin nodes token cloud-v4

# ---- seed §2, §3.1: a temporary Free App without sandbox, linked to v4 --
check "create the original app (with a sandbox)" as "$TC" apps create shop --name "Shop"
expect "original app has a sandbox" "$(as "$TC" apps show shop --json | jq_get sandbox)" true
check "create a temporary Free App without a sandbox" as "$TC" apps create shop-tmp --no-sandbox --temporary
expect "temporary app is free" "$(as "$TC" apps show shop-tmp --json | jq_get status)" free
check "link the temporary app to the v4 node" as "$TC" nodes link cloud-v4 shop-tmp
expect "temporary app is licensed" "$(as "$TC" apps show shop-tmp --json | jq_get status)" licensed
expect "temporary app's node" "$(as "$TC" apps show shop-tmp --json | jq_get node)" cloud-v4
expect "node is linked" "$(as "$TC" nodes show cloud-v4 --json | jq_get status)" linked
expect "node's app" "$(as "$TC" nodes show cloud-v4 --json | jq_get app)" shop-tmp
expect "temporary app uses the node's environments" \
	"$(as "$TC" apps show shop-tmp --json | python3 -c 'import json,sys; print(",".join(e["name"] for e in json.load(sys.stdin)["environments"]))')" \
	"Test,Acceptance,Production,Staging"
check "linking again is idempotent" as "$TC" nodes link cloud-v4 shop-tmp

# ---- an app with a sandbox is refused until unlink-sandbox ------------
check_fails "linking an app with a sandbox is refused" 1 as "$TC" nodes link cloud-v4 shop
expect_match "refusal names unlink-sandbox" "$(cat "$T/last.err")" "nubo apps unlink-sandbox shop"
expect "refused link changed nothing" "$(as "$TC" nodes show cloud-v4 --json | jq_get app)" shop-tmp
expect "refusal code" "$(api_as "$TC" POST /nodes/cloud-v4/link '{"app":"shop"}' | jq_get error.code)" APP_HAS_SANDBOX
check_fails "unlink-sandbox without --yes (no terminal) is a usage error" 2 as "$TC" apps unlink-sandbox shop
expect "API refuses without confirm" "$(api_as "$TC" POST /apps/shop/unlink-sandbox '{"confirm":false}' | jq_get error.code)" CONFIRMATION_REQUIRED
expect "still a sandbox" "$(as "$TC" apps show shop --json | jq_get sandbox)" true
check_fails "only the Technical Contact unlinks a sandbox" 1 as "$DEV" apps unlink-sandbox shop --yes
check "unlink-sandbox --yes" as "$TC" apps unlink-sandbox shop --yes
expect "sandbox gone" "$(as "$TC" apps show shop --json | jq_get sandbox)" false
expect "sandbox environment gone from the sandbox node" "$(as "$ADMIN" nodes show sandbox --json | jq_get environments)" "[]"
check_fails "unlink-sandbox twice" 1 as "$TC" apps unlink-sandbox shop --yes

# ---- seed §3.4: link the original app; the temporary one is unlinked --
check "link the original app to the v4 node" as "$TC" nodes link cloud-v4 shop
expect_match "the temporary app is reported unlinked" "$(cat "$T/last.out")" "'shop-tmp' was unlinked automatically"
expect "node's app is now the original" "$(as "$TC" nodes show cloud-v4 --json | jq_get app)" shop
expect "original app is licensed" "$(as "$TC" apps show shop --json | jq_get status)" licensed
expect "temporary app is a Free App again" "$(as "$TC" apps show shop-tmp --json | jq_get status)" free
expect "temporary app has no node" "$(as "$TC" apps show shop-tmp --json | jq_get node)" ""
expect "the original app keeps the node's environments" \
	"$(as "$TC" apps show shop --json | python3 -c 'import json,sys; print(",".join(e["name"] for e in json.load(sys.stdin)["environments"]))')" \
	"Test,Acceptance,Production,Staging"
acts=$(as "$TC" apps activity shop-tmp --json)
expect "temporary app's activity records the automatic unlink" "$(printf '%s' "$acts" | jq_get 0.action)" app.unlink
expect_match "automatic unlink detail" "$(printf '%s' "$acts" | jq_get 0.detail)" "automatically.*Free App again"
check_fails "an app linked elsewhere is refused" 1 as "$TC" nodes link cloud-v3 shop
expect "linked-elsewhere code" "$(api_as "$TC" POST /nodes/cloud-v3/link '{"app":"shop"}' | jq_get error.code)" APP_LINKED_ELSEWHERE
expect "v3 node still available" "$(as "$TC" nodes show cloud-v3 --json | jq_get status)" available
check_fails "a linked app cannot be deleted" 1 as "$TC" apps delete shop --yes
expect_match "delete refusal message" "$(cat "$T/last.err")" "linked to node 'cloud-v4'"
check_fails "apps delete needs --yes off a terminal" 2 as "$TC" apps delete shop-tmp </dev/null
check "delete the temporary app" as "$TC" apps delete shop-tmp --yes
check_fails "deleted app is gone" 1 as "$TC" apps show shop-tmp
check "an app with a sandbox" as "$TC" apps create sbx
expect "its sandbox environment is on the sandbox node" "$(as "$ADMIN" nodes show sandbox --json | python3 -c 'import json,sys; print([(e["name"], e["app"]) for e in json.load(sys.stdin)["environments"]])')" "[('Sandbox', 'sbx')]"
check "delete it" as "$TC" apps delete sbx --yes
expect "its sandbox environment went with it" "$(as "$ADMIN" nodes show sandbox --json | jq_get environments)" "[]"
check_fails "there is no plain unlink command" 2 as "$TC" nodes unlink cloud-v4 shop
expect "nor an unlink route" "$(status_as "$TC" POST /nodes/cloud-v4/unlink '{"app":"shop"}')" 404

# Linking needs the Technical Contact of the node AND of the app.
check "dev creates an app" as "$DEV" apps create devapp --no-sandbox
check_fails "dev is not Technical Contact of the node" 1 as "$DEV" nodes link cloud-v3 devapp
check_fails "tc is not Technical Contact of dev's app" 1 as "$TC" nodes link cloud-v3 devapp
expect "that refusal is a 403 FORBIDDEN" "$(api_as "$TC" POST /nodes/cloud-v3/link '{"app":"devapp"}' | jq_get error.code)" FORBIDDEN
check_fails "the sandbox node takes no links" 1 as "$ADMIN" nodes link sandbox devapp
check "admin passes both checks" as "$ADMIN" nodes link cloud-v3 devapp
expect "devapp linked to the v3 node" "$(as "$DEV" apps show devapp --json | jq_get node)" cloud-v3
check "admin sets the v3 node's Technical Contact" as "$ADMIN" admin nodes set-technical-contact cloud-v3 dev@example.com
expect "v3 node TC" "$(as "$DEV" nodes show cloud-v3 --json | jq_get technical_contact)" dev@example.com
check_fails "set-technical-contact is admin only" 1 as "$TC" admin nodes set-technical-contact cloud-v3 tc@example.com
check_fails "set-technical-contact to an unknown user" 1 as "$ADMIN" admin nodes set-technical-contact cloud-v3 nobody@example.com

# Racing links of one app to two nodes: exactly one wins, the other is a
# clean 409 (the check and the update share one transaction).
for n in race-a race-b; do as "$ADMIN" admin nodes create "$n" --generation v4 >/dev/null; done
for round in 1 2 3; do
	as "$ADMIN" apps create "race$round" --no-sandbox >/dev/null
	status_as "$ADMIN" POST /nodes/race-a/link "{\"app\":\"race$round\"}" > "$T/race-a" &
	pa=$!
	status_as "$ADMIN" POST /nodes/race-b/link "{\"app\":\"race$round\"}" > "$T/race-b" &
	pb=$!
	wait "$pa" "$pb"
	expect "race $round: one link wins, the other is refused" "$(printf '%s\n%s\n' "$(cat "$T/race-a")" "$(cat "$T/race-b")" | sort | tr '\n' ' ')" "200 409 "
	expect "race $round: the app is on exactly one node" "$(as "$ADMIN" nodes list --json | python3 -c 'import json,sys; print(sum(n["app"] == sys.argv[1] for n in json.load(sys.stdin)))' "race$round")" 1
done

# ---- rename ------------------------------------------------------------
check "rename the app" as "$TC" apps rename shop "Shop (v4)"
expect "renamed" "$(as "$TC" apps show shop --json | jq_get name)" "Shop (v4)"
expect "subdomain unchanged" "$(as "$TC" apps show shop --json | jq_get subdomain)" shop

# ---- members and permissions ------------------------------------------
check "add dev as a member" as "$TC" members add shop dev@example.com
check_fails "adding twice" 1 as "$TC" members add shop dev@example.com
check_fails "adding an unknown user" 1 as "$TC" members add shop nobody@example.com
check_fails "a non-member cannot list members" 1 as "$OUT" members list shop
m=$(as "$DEV" members list shop --json)
expect "dev is listed, without permissions" "$(printf '%s' "$m" | python3 -c 'import json,sys; d={x["email"]:x for x in json.load(sys.stdin)}; print(d["dev@example.com"]["permissions"]["transport"], d["tc@example.com"]["technical_contact"])')" "[] True"
check_fails "dev (no manage) cannot rename" 1 as "$DEV" apps rename shop X
check "grant dev transport on Test and Acceptance, logs everywhere" as "$TC" members grant shop dev@example.com --transport Test,acceptance --logs all
p=$(as "$TC" members list shop --json | python3 -c 'import json,sys; d={x["email"]:x for x in json.load(sys.stdin)}; p=d["dev@example.com"]["permissions"]; print(p["transport"], p["logs"], p["backups"])')
expect "permissions stored (environment names canonical)" "$p" "['Test', 'Acceptance'] ['*'] []"
check_fails "an unknown environment is refused" 1 as "$TC" members grant shop dev@example.com --transport Nope
expect "unknown environment code" "$(api_as "$TC" PUT /apps/shop/members/dev@example.com/permissions '{"permissions":{"transport":["Nope"]}}' | jq_get error.code)" ENVIRONMENT_NOT_FOUND
check_fails "dev cannot grant themselves" 1 as "$DEV" members grant shop dev@example.com --manage all
check_fails "grant needs a permission" 2 as "$TC" members grant shop dev@example.com
check "grant dev manage" as "$TC" members grant shop dev@example.com --manage all
expect "earlier permissions kept by grant" "$(as "$TC" members list shop --json | python3 -c 'import json,sys; d={x["email"]:x for x in json.load(sys.stdin)}; print(d["dev@example.com"]["permissions"]["transport"])')" "['Test', 'Acceptance']"
check_fails "dev still cannot change their own permissions" 1 as "$DEV" members grant shop dev@example.com --backups all
check "dev (manage) renames" as "$DEV" apps rename shop "Shop"
check "dev (manage) adds ops" as "$DEV" members add shop ops@example.com
check "dev (manage) grants ops logs on Production" as "$DEV" members grant shop ops@example.com --logs Production
check_fails "dev cannot grant backups, which dev does not hold" 1 as "$DEV" members grant shop ops@example.com --backups Production
expect_match "the refusal says so" "$(cat "$T/last.err")" "cannot grant 'backups' on environment 'Production': you do not hold it"
check_fails "dev cannot delete the app (Technical Contact only)" 1 as "$DEV" apps delete shop --yes
check_fails "the Technical Contact cannot be removed" 1 as "$DEV" members remove shop tc@example.com
expect "TC removal code" "$(api_as "$DEV" DELETE /apps/shop/members/tc@example.com | jq_get error.code)" MEMBER_IS_TECHNICAL_CONTACT
check_fails "the Technical Contact's permissions are fixed" 1 as "$ADMIN" members grant shop tc@example.com --logs none
check "dev removes ops" as "$DEV" members remove shop ops@example.com
check_fails "ops is gone" 1 as "$OPS" apps show shop
check_fails "removing a non-member" 1 as "$TC" members remove shop ops@example.com
expect "member list after removal" "$(as "$TC" members list shop --json | python3 -c 'import json,sys; print(",".join(x["email"] for x in json.load(sys.stdin)))')" "dev@example.com,tc@example.com"
check "dev sees the node of their app" as "$DEV" nodes show cloud-v4
expect "dev sees the nodes of both their apps" "$(as "$DEV" nodes list --json | python3 -c 'import json,sys; print(",".join(n["name"] for n in json.load(sys.stdin)))')" "cloud-v3,cloud-v4"
SCOPED=$(api_as "$DEV" POST /keys '{"name":"devapp only","apps":["devapp"]}' | jq_get key)
expect "a key limited to devapp lists only devapp's node" "$(as "$SCOPED" nodes list --json | python3 -c 'import json,sys; print(",".join(n["name"] for n in json.load(sys.stdin)))')" "cloud-v3"
check_fails "a key limited to devapp cannot show shop's node" 1 as "$SCOPED" nodes show cloud-v4

# ---- Technical Contact transfer ---------------------------------------
check_fails "only the Technical Contact transfers the role" 1 as "$DEV" apps transfer shop dev@example.com
check_fails "transfer to an unknown user" 1 as "$TC" apps transfer shop nobody@example.com
check "transfer the Technical Contact role to ops (not a member)" as "$TC" apps transfer shop ops@example.com
expect "ops is the Technical Contact" "$(as "$OPS" apps show shop --json | jq_get technical_contact)" ops@example.com
m=$(as "$OPS" members list shop --json)
expect "exactly one Technical Contact, ops became a member, tc stays with every permission" \
	"$(printf '%s' "$m" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(sum(x["technical_contact"] for x in m), [x["email"] for x in m if x["technical_contact"]][0], {x["email"]:x for x in m}["tc@example.com"]["permissions"]["manage"])')" \
	"1 ops@example.com ['*']"
check_fails "the former Technical Contact cannot delete any more" 1 as "$TC" apps delete shop --yes
check "the new Technical Contact may remove the former one" as "$OPS" members remove shop tc@example.com

# ---- the activity log -------------------------------------------------
acts=$(as "$OPS" apps activity shop --json)
actions=$(printf '%s' "$acts" | python3 -c 'import json,sys; print(" ".join(reversed([a["action"] for a in json.load(sys.stdin)])))')
expect "activity shows every change, oldest to newest" "$actions" \
	"app.create app.unlink-sandbox app.link app.rename member.add member.permissions member.permissions app.rename member.add member.permissions member.remove member.add app.technical-contact member.remove"
expect "activity says who" "$(printf '%s' "$acts" | jq_get 0.user)" ops@example.com
expect_match "activity records that the sandbox data is gone" "$(printf '%s' "$acts" | python3 -c 'import json,sys; print([a["detail"] for a in json.load(sys.stdin) if a["action"]=="app.unlink-sandbox"][0])')" "data are gone"
expect_match "activity records the link and the automatic unlink" "$(printf '%s' "$acts" | python3 -c 'import json,sys; print([a["detail"] for a in json.load(sys.stdin) if a["action"]=="app.link"][0])')" "'shop-tmp' was unlinked automatically"
expect "activity --limit" "$(as "$OPS" apps activity shop --limit 2 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 2
check "activity as a table" as "$OPS" apps activity shop
expect_match "table has the transfer" "$(cat "$T/last.out")" "Technical Contact changed from tc@example.com to ops@example.com"
check_fails "a non-member cannot read the activity" 1 as "$OUT" apps activity shop
expect "bad limit" "$(api_as "$OPS" GET '/apps/shop/activity?limit=0' | jq_get error.code)" BAD_REQUEST
nacts() { # KEY: the node's entries of its own and of links, oldest first
	as "$1" nodes activity cloud-v4 --json | python3 -c 'import json,sys; print(" ".join(reversed([a["action"] + ":" + (a["app"] or "-") for a in json.load(sys.stdin) if a["action"].startswith(("node.", "app.link", "app.unlink"))])))'
}
expect "node activity: created, token, links and the automatic unlink" "$(nacts "$ADMIN")" \
	"node.create:- node.technical-contact:- node.token:- app.link:- app.unlink:- app.link:shop" # shop-tmp was deleted
# a non-admin reads the entries of the apps they are a member of (no more
# than each app's own activity shows them) and the node's own
expect "the node's Technical Contact, no member of its app any more, reads the node's own" "$(nacts "$TC")" \
	"node.create:- node.technical-contact:- node.token:-"
expect "node activity includes what happened to its app" "$(as "$OPS" nodes activity cloud-v4 --json | jq_get 0.action)" member.remove
check_fails "an outsider cannot read a node's activity" 1 as "$OUT" nodes activity cloud-v4
expect "bad node activity limit" "$(api_as "$TC" GET '/nodes/cloud-v4/activity?limit=1001' | jq_get error.message)" "limit must be 1 to 1000, not '1001'"
expect "node activity --limit" "$(as "$TC" nodes activity cloud-v4 --limit 3 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 3
# A deleted app's log is detached: a new app never inherits it.
check "create an app after a delete" as "$OPS" apps create fresh --no-sandbox
expect "a new app's activity starts empty but for its creation" \
	"$(as "$OPS" apps activity fresh --json | python3 -c 'import json,sys; print(" ".join(a["action"] for a in json.load(sys.stdin)))')" "app.create"

# ---- bad input: 4xx with a code, store unchanged ----------------------
dump() { python3 -c 'import sqlite3,sys; print("\n".join(sqlite3.connect(sys.argv[1]).iterdump()))' "$T/portal/portal.db"; }
before=$(dump)
bad() {	# bad NAME KEY METHOD PATH BODY STATUS CODE
	local name=$1 key=$2 method=$3 path=$4 body=$5 want=$6 code=$7 got
	got=$(api_as "$key" "$method" "$path" "$body")
	expect "$name" "$(status_as "$key" "$method" "$path" "$body") $(printf '%s' "$got" | jq_get error.code)" "$want $code"
}
bad "rename: unknown field" "$OPS" PATCH /apps/shop '{"name":"x","colour":"red"}' 400 BAD_REQUEST
bad "rename: wrong type" "$OPS" PATCH /apps/shop '{"name":7}' 400 BAD_REQUEST
bad "rename: empty name" "$OPS" PATCH /apps/shop '{"name":""}' 400 INVALID_NAME
bad "rename: control characters" "$OPS" PATCH /apps/shop '{"name":"a\u0001b"}' 400 INVALID_NAME
bad "rename: subdomain is permanent" "$OPS" PATCH /apps/shop '{"name":"x","subdomain":"other"}' 400 SUBDOMAIN_IMMUTABLE
bad "rename: unknown app" "$ADMIN" PATCH /apps/nope '{"name":"x"}' 404 APP_NOT_FOUND
bad "rename: malformed JSON" "$OPS" PATCH /apps/shop '{"name":' 400 BAD_JSON
bad "delete: unknown app" "$ADMIN" DELETE /apps/nope '' 404 APP_NOT_FOUND
bad "unlink-sandbox: no confirm" "$OPS" POST /apps/shop/unlink-sandbox '{}' 400 BAD_REQUEST
bad "unlink-sandbox: confirm not a boolean" "$OPS" POST /apps/shop/unlink-sandbox '{"confirm":"yes"}' 400 BAD_REQUEST
bad "unlink-sandbox: no sandbox" "$OPS" POST /apps/shop/unlink-sandbox '{"confirm":true}' 409 APP_HAS_NO_SANDBOX
bad "transfer: unknown field" "$OPS" POST /apps/shop/technical-contact '{"email":"dev@example.com","x":1}' 400 BAD_REQUEST
bad "transfer: wrong type" "$OPS" POST /apps/shop/technical-contact '{"email":["dev@example.com"]}' 400 BAD_REQUEST
bad "transfer: unknown user" "$OPS" POST /apps/shop/technical-contact '{"email":"nobody@example.com"}' 404 USER_NOT_FOUND
bad "members add: unknown field" "$OPS" POST /apps/shop/members '{"email":"out@example.com","role":"x"}' 400 BAD_REQUEST
bad "members add: missing email" "$OPS" POST /apps/shop/members '{}' 400 BAD_REQUEST
bad "members add: unknown user" "$OPS" POST /apps/shop/members '{"email":"nobody@example.com"}' 404 USER_NOT_FOUND
bad "members add: unknown permission" "$OPS" POST /apps/shop/members '{"email":"out@example.com","permissions":{"deploy":["*"]}}' 400 UNKNOWN_PERMISSION
bad "members add: bad environment name" "$OPS" POST /apps/shop/members '{"email":"out@example.com","permissions":{"logs":["../x"]}}' 400 INVALID_ENVIRONMENT_NAME
bad "members add: unknown app" "$ADMIN" POST /apps/nope/members '{"email":"out@example.com"}' 404 APP_NOT_FOUND
bad "members remove: unknown member" "$OPS" DELETE /apps/shop/members/out@example.com '' 404 MEMBER_NOT_FOUND
bad "permissions: unknown field" "$OPS" PUT /apps/shop/members/dev@example.com/permissions '{"permissions":{},"x":1}' 400 BAD_REQUEST
bad "permissions: not an object" "$OPS" PUT /apps/shop/members/dev@example.com/permissions '{"permissions":["transport"]}' 400 BAD_REQUEST
bad "permissions: list expected" "$OPS" PUT /apps/shop/members/dev@example.com/permissions '{"permissions":{"transport":"*"}}' 400 BAD_REQUEST
bad "permissions: names must be strings" "$OPS" PUT /apps/shop/members/dev@example.com/permissions '{"permissions":{"transport":[1]}}' 400 BAD_REQUEST
bad "permissions: * stands alone" "$OPS" PUT /apps/shop/members/dev@example.com/permissions '{"permissions":{"transport":["*","Test"]}}' 400 BAD_REQUEST
bad "permissions: invalid environment name" "$OPS" PUT /apps/shop/members/dev@example.com/permissions '{"permissions":{"transport":["Test Env"]}}' 400 INVALID_ENVIRONMENT_NAME
bad "permissions: unknown environment" "$OPS" PUT /apps/shop/members/dev@example.com/permissions '{"permissions":{"transport":["Staging2"]}}' 404 ENVIRONMENT_NOT_FOUND
bad "permissions: unknown member" "$OPS" PUT /apps/shop/members/out@example.com/permissions '{"permissions":{}}' 404 MEMBER_NOT_FOUND
bad "nodes create: unknown field" "$ADMIN" POST /nodes '{"name":"n1","generation":"v4","region":"eu"}' 400 BAD_REQUEST
bad "nodes create: wrong type" "$ADMIN" POST /nodes '{"name":"n1","generation":4}' 400 BAD_REQUEST
bad "nodes create: bad name" "$ADMIN" POST /nodes '{"name":"No Spaces","generation":"v4"}' 400 INVALID_NAME
bad "nodes create: bad generation" "$ADMIN" POST /nodes '{"name":"n1","generation":"v5"}' 400 INVALID_GENERATION
bad "nodes create: bad environment name" "$ADMIN" POST /nodes '{"name":"n1","generation":"v4","environments":["Test","bad name"]}' 400 INVALID_ENVIRONMENT_NAME
bad "nodes create: environment name not a string" "$ADMIN" POST /nodes '{"name":"n1","generation":"v4","environments":[1]}' 400 INVALID_ENVIRONMENT_NAME
bad "nodes create: duplicate environment" "$ADMIN" POST /nodes '{"name":"n1","generation":"v4","environments":["Test","TEST"]}' 400 DUPLICATE_ENVIRONMENT
bad "nodes create: no environments" "$ADMIN" POST /nodes '{"name":"n1","generation":"v4","environments":[]}' 400 INVALID_ENVIRONMENTS
bad "nodes create: flexible on v3" "$ADMIN" POST /nodes '{"name":"n1","generation":"v3","environments":["Test","Staging"]}' 400 FLEXIBLE_ENVIRONMENTS_V4_ONLY
bad "nodes create: unknown Technical Contact" "$ADMIN" POST /nodes '{"name":"n1","generation":"v4","technical_contact":"nobody@example.com"}' 404 USER_NOT_FOUND
bad "nodes create: name taken" "$ADMIN" POST /nodes '{"name":"cloud-v4","generation":"v4"}' 409 NODE_EXISTS
bad "nodes create: not an admin" "$OPS" POST /nodes '{"name":"n1","generation":"v4"}' 403 FORBIDDEN
bad "node TC: unknown node" "$ADMIN" PUT /nodes/nope/technical-contact '{"email":"ops@example.com"}' 404 NODE_NOT_FOUND
bad "node TC: unknown field" "$ADMIN" PUT /nodes/cloud-v4/technical-contact '{"email":"ops@example.com","x":1}' 400 BAD_REQUEST
bad "node token: unknown node" "$ADMIN" POST /nodes/nope/token '' 404 NODE_NOT_FOUND
bad "link: unknown node" "$ADMIN" POST /nodes/nope/link '{"app":"shop"}' 404 NODE_NOT_FOUND
bad "link: unknown app" "$ADMIN" POST /nodes/cloud-v3/link '{"app":"nope"}' 404 APP_NOT_FOUND
bad "link: invalid subdomain" "$ADMIN" POST /nodes/cloud-v3/link '{"app":"Not A Subdomain!"}' 404 APP_NOT_FOUND
bad "link: unknown field" "$ADMIN" POST /nodes/cloud-v3/link '{"app":"shop","force":true}' 400 BAD_REQUEST
bad "link: wrong type" "$ADMIN" POST /nodes/cloud-v3/link '{"app":1}' 400 BAD_REQUEST
bad "link: app linked elsewhere" "$ADMIN" POST /nodes/cloud-v3/link '{"app":"shop"}' 409 APP_LINKED_ELSEWHERE
bad "apps create: invalid subdomain" "$OPS" POST /apps '{"subdomain":"Bad_Sub","sandbox":false}' 400 INVALID_SUBDOMAIN
after=$(dump)
expect "bad input changed nothing in the store" "$([ "$before" = "$after" ] && echo same || echo changed)" same

finish
