#!/usr/bin/env bash
# t1: the whole permission matrix (SPEC §2), generated from `nubod routes`:
# every route × {platform admin, app Technical Contact, member with each
# single permission, member without permissions, member with permissions on
# another environment only, non-member, node Technical Contact, no key,
# revoked key, expired key, read-only key, key scoped to another app, node
# agent token}. See tests/e2e/permissions.py for how it is built.
. "$(dirname "$0")/lib.sh"

start_portal
if python3 "$NUBO_SRC/tests/e2e/permissions.py" "$NUBOD" "$PORTAL_URL" \
	"$ADMIN_KEY" "$T/portal/portal.db"; then
	pass "permissions.py: every check above"
else
	fail "permissions.py: see the not-ok lines above"
fi
finish
