#!/usr/bin/env bash
# t6-migration-prereq: every prerequisite of a migration (seed §2) fails
# with a clear message and changes nothing; the dry run lists every step;
# offboarding requests (seed §3.3) are refused without saved data unless
# forced, only admins approve, approval detaches the app (a Free App again)
# and marks the node offboarded. Nodes register (a real portal call) but
# run no agent: nothing here needs one.
. "$(dirname "$0")/lib.sh"

start_portal
A=$ADMIN_KEY
TC=$(make_user tc@example.com)
OTHER=$(make_user other@example.com)

node() {	# node NAME GEN [extra json]: create as admin, register; print token
	local tok
	tok=$(api_as "$A" POST /nodes "{\"name\":\"$1\",\"generation\":\"$2\",\"technical_contact\":\"tc@example.com\"${3:-}}" | jq_get token)
	curl -s -o /dev/null -H "Authorization: Bearer $tok" -H 'Content-Type: application/json' \
		--data-binary "{\"url\":\"http://127.0.0.1:9/\",\"router\":\"127.0.0.1:9\",\"generation\":\"$2\"}" \
		"$PORTAL_URL/api/v1/agent/register"
	echo "$tok"
}
node v3a v3 >/dev/null
node v3b v3 >/dev/null
node v4a v4 >/dev/null
node v4b v4 >/dev/null
node v4flex v4 ',"environments":["Test","Production"]' >/dev/null
api_as "$A" POST /nodes '{"name":"v4unreg","generation":"v4","technical_contact":"tc@example.com"}' >/dev/null
api_as "$A" POST /nodes '{"name":"v4other","generation":"v4"}' >/dev/null
curl -s -o /dev/null -H "Authorization: Bearer $(api_as "$A" POST /nodes/v4other/token '' | jq_get token)" \
	-H 'Content-Type: application/json' --data-binary '{"url":"http://127.0.0.1:9/","generation":"v4"}' \
	"$PORTAL_URL/api/v1/agent/register"

as_tc() { NUBO_API_KEY=$TC "$NUBO" "$@"; }
as_tc apps create shop --no-sandbox >/dev/null
as_tc apps create blog --no-sandbox >/dev/null
as_tc apps create free --no-sandbox >/dev/null
as_tc nodes link v3a shop >/dev/null
as_tc nodes link v4b blog >/dev/null

mig() { api_as "$TC" POST /migrations "$1"; }
code() { printf '%s' "$1" | jq_get error.code; }

r=$(mig '{"app":"shop","to":"v4a","mode":"plan"}')
expect "plan lists the steps" "$(printf '%s' "$r" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["steps"]) > 20, d["from"], d["to"])')" "True v3a v4a"
expect_match "plan covers every environment" "$(printf '%s' "$r" | python3 -c 'import json,sys; print(sorted({s.get("environment") or "" for s in json.load(sys.stdin)["steps"]}))')" "Acceptance.*Production.*Test"
expect_match "plan says sizes are unknown without an agent" "$r" "sizes unknown"
check "cli plan" as_tc migrate plan shop --to v4a
expect_match "cli plan shows downtime" "$(cat "$T/last.out")" "estimated downtime"
expect "plan created nothing" "$(api_as "$TC" GET '/migrations?app=shop' | jq_get migrations)" "[]"

expect "v3 target refused" "$(code "$(mig '{"app":"shop","to":"v3b","mode":"plan"}')")" MIGRATION_REFUSED
expect_match "v3 target message" "$(mig '{"app":"shop","to":"v3b"}' | jq_get error.message)" "v4 nodes only"
as_tc apps create back --no-sandbox >/dev/null
r=$(api_as "$TC" POST /migrations '{"app":"blog","to":"v3b","mode":"plan"}')
expect "v4 to v3 refused" "$(code "$r")" MIGRATION_REFUSED
expect_match "v4 to v3 message" "$(printf '%s' "$r" | jq_get error.message)" "from a v4 node .* to a v3 node .* refused"
expect "free app: nothing to migrate" "$(code "$(mig '{"app":"free","to":"v4a"}')")" APP_NOT_LINKED
expect "target linked to a real app" "$(code "$(mig '{"app":"shop","to":"v4b"}')")" NODE_NOT_AVAILABLE
expect "target never registered" "$(code "$(mig '{"app":"shop","to":"v4unreg"}')")" NODE_NOT_AVAILABLE
expect "target without Acceptance" "$(code "$(mig '{"app":"shop","to":"v4flex"}')")" ENVIRONMENT_NOT_FOUND
expect "caller not TC of the target" "$(code "$(mig '{"app":"shop","to":"v4other"}')")" NOT_TECHNICAL_CONTACT
expect "other user does not see the app" "$(code "$(api_as "$OTHER" POST /migrations '{"app":"shop","to":"v4a"}')")" APP_NOT_FOUND
expect "same node" "$(code "$(mig '{"app":"shop","to":"v3a"}')")" SAME_NODE
expect "unknown node" "$(code "$(mig '{"app":"shop","to":"nope"}')")" NODE_NOT_FOUND
expect "unknown app" "$(code "$(mig '{"app":"nope","to":"v4a"}')")" APP_NOT_FOUND
expect "bad mode" "$(code "$(mig '{"app":"shop","to":"v4a","mode":"fast"}')")" BAD_REQUEST
expect "unknown field" "$(code "$(mig '{"app":"shop","to":"v4a","x":1}')")" BAD_REQUEST
r=$(mig '{"app":"shop","to":"v4a","method":"copy"}')
expect "bad method" "$(code "$r")" BAD_REQUEST
expect_match "  named" "$(jq_get error.message <<< "$r")" "method must be dump or replicate, not 'copy'"
r=$(mig '{"app":"shop","to":"v4a","method":"dump","replicate":true}')
expect "method and replicate that contradict" "$(code "$r")" BAD_REQUEST
expect_match "  said so" "$(jq_get error.message <<< "$r")" "contradict"
expect "plan not told how: replicate" "$(mig '{"app":"shop","to":"v4a"}' | jq_get method)" replicate
expect "plan with replicate false: the dump" "$(mig '{"app":"shop","to":"v4a","replicate":false}' | jq_get method)" dump
check_fails "cli --replicate with --dump is a usage error" 2 as_tc migrate plan shop --to v4a --replicate --dump
expect_match "  said so" "$(cat "$T/last.err")" "exclude each other"
expect "unknown migration" "$(status_as "$TC" GET /migrations/999)" 404
expect "bad migration id" "$(status_as "$TC" POST /migrations/abc/abort '{}')" 404
check_fails "cli plan without --to is a usage error" 2 as_tc migrate plan shop
check_fails "cli status without a migration" 1 as_tc migrate status shop
expect_match "cli says how to start" "$(cat "$T/last.err")" "nubo migrate start shop --to NODE"
expect "nothing changed: no temporary app" "$(api_as "$TC" GET /apps | python3 -c 'import json,sys; print(sum(a["temporary"] for a in json.load(sys.stdin)["apps"]))')" 0
expect "nothing changed: v4a available" "$(api_as "$A" GET /nodes/v4a | jq_get status)" available

# --- offboarding (seed §3.3) ---
# (refusal until the latest backup and package are downloaded: t5-backups,
# on a node that ran the app; v3a never ran anything, so nothing blocks it)
expect "offboarding by a non-TC" "$(status_as "$OTHER" POST /nodes/v3a/offboarding-requests '{"force":true}')" 403
expect "offboarding bad body" "$(status_as "$TC" POST /nodes/v3a/offboarding-requests '{"force":"yes"}')" 400
expect "node still linked" "$(api_as "$A" GET /nodes/v3a | jq_get status)" linked
check "cli offboard (nothing was ever deployed on v3a)" as_tc nodes offboard v3a --reason "moving to v4"
expect "node offboarding" "$(api_as "$A" GET /nodes/v3a | jq_get status)" offboarding
expect "second request refused" "$(code "$(api_as "$TC" POST /nodes/v3a/offboarding-requests '{"force":true}')")" OFFBOARDING_PENDING
id=$(api_as "$TC" GET /offboarding-requests | jq_get offboarding_requests.0.id)
expect "TC sees the request" "$(api_as "$TC" GET /offboarding-requests | jq_get offboarding_requests.0.state)" pending
expect "others do not" "$(api_as "$OTHER" GET /offboarding-requests | jq_get offboarding_requests)" "[]"
expect "TC sees it by id" "$(api_as "$TC" GET "/offboarding-requests/$id" | jq_get node)" v3a
expect "others get 404 by id" "$(api_as "$OTHER" GET "/offboarding-requests/$id" | jq_get error.code)" OFFBOARDING_REQUEST_NOT_FOUND
expect "TC cannot purge" "$(status_as "$TC" POST "/offboarding-requests/$id/purge" '{}')" 403
expect "TC cannot approve" "$(status_as "$TC" POST "/offboarding-requests/$id/approve" '{}')" 403
expect "approve unknown" "$(status_as "$A" POST /offboarding-requests/99/approve '{}')" 404
check "admin approves" env NUBO_API_KEY=$A "$NUBO" admin offboarding approve "$id"
expect_match "approval says the app stays" "$(cat "$T/last.out")" "app 'shop' is detached and stays a Free App"
expect "node offboarded" "$(api_as "$A" GET /nodes/v3a | jq_get status)" offboarded
expect "app is a Free App" "$(api_as "$TC" GET /apps/shop | jq_get status)" free
expect "approve twice" "$(code "$(api_as "$A" POST "/offboarding-requests/$id/approve" '{}')")" OFFBOARDING_WRONG_STATE
expect_match "data kept until" "$(api_as "$A" GET /offboarding-requests | jq_get offboarding_requests.0.keep_until)" "^20[0-9][0-9]-"
check "cli list" env NUBO_API_KEY=$A "$NUBO" admin offboarding list
expect_match "cli list shows it" "$(cat "$T/last.out")" "v3a .*approved"
expect "offboarded node cannot be offboarded" "$(code "$(api_as "$TC" POST /nodes/v3a/offboarding-requests '{"force":true}')")" NODE_OFFBOARDED
expect "offboarded source: nothing to migrate" "$(code "$(mig '{"app":"shop","to":"v4a"}')")" APP_NOT_LINKED

finish
