#!/usr/bin/env bash
# t6-migration-rollback: abort before the cutover leaves the source untouched
# and serving (and the target available again); rollback after the cutover
# serves from the source again, warns that writes made on the target are
# not copied back, withdraws the offboarding request; a new migration then
# works, and once the offboarding is approved rollback is refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"

start_portal
start_node v3 v3
start_node v4 v4
"$NUBO" apps create crm --no-sandbox >/dev/null
"$NUBO" nodes link v3 crm >/dev/null
deploy v3 crm Production
add_notes v3 crm-production 3 2
src=$(notes_digest v3 crm-production)
fp=$(env_fingerprint v3 Production)
mstate() { api_as "$ADMIN_KEY" GET '/migrations?app=crm' | jq_get migrations.$1.$2; }

# --- abort ---
check "start" "$NUBO" migrate start crm --to v4
expect "target linked to the temporary app" "$(api_as "$ADMIN_KEY" GET /nodes/v4 | jq_get app)" "$(mstate 0 temporary_app)"
check_fails "rollback before cutover refused" 1 "$NUBO" migrate rollback crm
expect_match "rollback says why" "$(cat "$T/last.err")" "only possible after the cutover"
check "abort" "$NUBO" migrate abort crm
expect "aborted" "$(mstate 0 state)" aborted
expect "source untouched" "$(env_fingerprint v3 Production)" "$fp"
expect "source serving" "$(notes_digest v3 crm-production)" "$src"
expect "source still linked" "$(api_as "$ADMIN_KEY" GET /apps/crm | jq_get node)" v3
expect "target available again" "$(api_as "$ADMIN_KEY" GET /nodes/v4 | jq_get status)" available
expect "temporary app gone" "$(api_as "$ADMIN_KEY" GET /apps | python3 -c 'import json,sys; print(sum(a["temporary"] for a in json.load(sys.stdin)["apps"]))')" 0
expect "no offboarding request" "$(api_as "$ADMIN_KEY" GET /offboarding-requests | jq_get offboarding_requests)" "[]"
check_fails "abort twice refused" 1 "$NUBO" migrate abort crm

# --- rollback ---
check "run again to the cutover" "$NUBO" migrate start crm --to v4
check "cutover" "$NUBO" migrate cutover crm
expect "cut over" "$(mstate 1 state)" cut-over
check_fails "abort after cutover refused" 1 "$NUBO" migrate abort crm
expect_match "abort says why" "$(cat "$T/last.err")" "only possible before the cutover"
add_notes v4 crm-production 1 0
expect "v4 took a write" "$(notes_digest v4 crm-production | cut -d' ' -f1)" 4
check "rollback" "$NUBO" migrate rollback crm
expect_match "rollback warns about writes on the target" "$(cat "$T/last.err")" "not copied back"
expect "rolled back" "$(mstate 1 state)" rolled-back
expect "source serves again" "$(notes_digest v3 crm-production)" "$src"
expect "the write made on v4 is not on v3" "$(notes_digest v3 crm-production | cut -d' ' -f1)" 3
expect "target stopped" "$(route_status v4 crm-production.nubo.localhost /api/notes)" 404
expect "offboarding request withdrawn" "$(api_as "$ADMIN_KEY" GET /offboarding-requests | jq_get offboarding_requests.0.state)" cancelled
expect "source linked again" "$(api_as "$ADMIN_KEY" GET /nodes/v3 | jq_get status)" linked

# --- a third migration; rollback refused once offboarding is approved ---
check "run" "$NUBO" migrate run crm --to v4
expect "run by an admin goes through the approval to the end" "$(mstate 2 state)" completed
expect "linked to v4" "$(api_as "$ADMIN_KEY" GET /apps/crm | jq_get node)" v4
check_fails "rollback after approval refused" 1 "$NUBO" migrate rollback crm
expect "v4 serves everything v3 had" "$(notes_digest v4 crm-production)" "$src"

finish
