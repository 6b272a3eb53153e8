#!/usr/bin/env bash
# t9: the portal's pages in a real browser (headless Chromium through
# chromium-driver and python3-selenium, tests/e2e/web.py) against a real
# portal, a v3 and a v4 node: the seed's procedure in the browser — sign
# in, create an app, link it to the v3 node, upload the sample package,
# transport and start it, its log, a backup made and downloaded, the
# migration to v4 (plan, start, abort with its journal, start again,
# rehearse, cut over, roll back, start and cut over again, the
# offboarding approved; its notes served by v4),
# Environment Details edited on v3 and v4 (domains with certificates,
# access profiles, headers, constants, events, runtime, variables,
# export and import) — and the Manage, Team, node and API keys pages;
# <script> in stored values shows as text; a member is offered only
# what it may do, and forged requests are refused; no console
# errors or failed requests, every field labelled. Screenshots of each
# page: $NUBO_BUILD/test-output/t9-web/.
. "$(dirname "$0")/lib.sh"

PKG=$(ls "$NUBO_BUILD"/packages/notes-*.tar.gz 2>/dev/null | head -1)
[ -n "$PKG" ] || { echo "t9: the notes package is not built (make examples)" >&2; exit 1; }
for f in /usr/bin/chromium /usr/bin/chromedriver; do
	[ -x "$f" ] || { fail "$f missing: run scripts/install-deps"; finish; exit 1; }
done
OUT=$NUBO_BUILD/test-output/t9-web
rm -rf "$OUT"
mkdir -p "$OUT"

start_portal
start_node cloud3 v3 --start-timeout 30 --stop-grace 3
start_node cloud4 v4 --start-timeout 30 --stop-grace 3
# Chromium's own files (profile, downloads, caches) in this test's folder
mkdir -p "$T/home"
if HOME=$T/home XDG_CACHE_HOME=$T/cache TMPDIR=$T /usr/bin/python3 "$NUBO_SRC/tests/e2e/web.py" "$PORTAL_URL" "$OUT" \
	"$NUBO" cloud3 "$ROUTER_cloud3" "$PKG" cloud4 "$ROUTER_cloud4"; then
	pass "web.py: every check above"
else
	fail "web.py: see the not-ok lines above"
fi
expect "screenshots written" "$(ls "$OUT"/*.png 2>/dev/null | wc -l | awk '$1 >= 10 {print "yes"}')" yes
finish
