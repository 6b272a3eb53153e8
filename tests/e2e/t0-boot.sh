#!/usr/bin/env bash
# t0: the portal initialises, starts, serves its OpenAPI document (equal to
# docs/openapi.json), and refuses what it must.
. "$(dirname "$0")/lib.sh"

start_portal

doc=$(curl -s "$PORTAL_URL/api/v1/openapi.json")
expect "openapi served" "$(printf '%s' "$doc" | jq_get openapi)" "3.0.3"
served=$(printf '%s' "$doc" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin), sort_keys=True))')
kept=$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$NUBO_SRC/docs/openapi.json")
expect "docs/openapi.json is the served document (regenerate: nubod openapi > docs/openapi.json)" "$served" "$kept"

check_fails "init twice refused" 1 "$NUBOD" portal init --data "$T/portal"
check_fails "nubod without arguments is a usage error" 2 "$NUBOD"
check_fails "portal without --data is a usage error" 2 "$NUBOD" portal
expect "unknown path" "$(status_as "$ADMIN_KEY" GET /nope)" 404
expect "the portal's pages at /" "$(curl -s -o /dev/null -w '%{http_code}' "$PORTAL_URL/")" 200
expect "outside /api/v1 and the pages" "$(curl -s -o /dev/null -w '%{http_code}' "$PORTAL_URL/nope")" 404
expect "wrong method" "$(status_as "$ADMIN_KEY" PUT /apps)" 405
expect "no key" "$(status_as "" GET /apps)" 401
expect "unknown key" "$(status_as nubo_0000 GET /apps)" 401
expect "GET with a body" "$(status_as "$ADMIN_KEY" GET /apps '{}')" 400
check "me" "$NUBO" apps list

finish
