#!/usr/bin/env bash
# t1f: browser sessions and the pages' headers (src/portal/route-users.c,
# auth.c, web.c) — POST /session signs in with the lockout of POST
# /sessions and sets an HttpOnly, SameSite=Strict cookie (Secure under
# TLS); the cookie is accepted instead of an API key, but a request other
# than GET needs the session's CSRF token in X-CSRF-Token and changes
# nothing without it; a session's secret is no API key nor the reverse;
# sign-out and expiry end the session; a sign-in another site's page
# sends (a text/plain form that parses as JSON, Sec-Fetch-Site:
# cross-site) is refused; two session cookies (one tossed by a sibling
# host) are refused; under TLS the cookie is __Host-nubo_session, which
# no other host can set; pages are served with a strict CSP,
# nosniff, frame-ancestors 'none', strong ETags (304) and gzip when accepted.
. "$(dirname "$0")/lib.sh"

start_portal
make_user web@example.com webpass123 >/dev/null
make_user lock@example.com lockpass12 >/dev/null

# signin EMAIL PASSWORD: the HTTP status; body in $T/s.json, headers in $T/s.h
signin() {
	curl -s "${CURL_TLS[@]}" -D "$T/s.h" -o "$T/s.json" -w '%{http_code}' \
		-H 'Content-Type: application/json' \
		--data-binary "{\"email\":\"$1\",\"password\":\"$2\"}" "$PORTAL_URL/api/v1/session"
}
header() { tr -d '\r' < "$1" | awk -v h="$(tr A-Z a-z <<< "$2"):" 'tolower($1) == h {sub(/^[^:]*: */, ""); print}'; }
# web METHOD PATH [CSRF] [BODY]: a request with the session cookie only;
# prints the status, body in $T/w.json, headers in $T/w.h
web() {
	local args=(-s "${CURL_TLS[@]}" -D "$T/w.h" -o "$T/w.json" -w '%{http_code}' -X "$1"
		-H "Cookie: nubo_session=$COOKIE")
	[ -n "${3:-}" ] && args+=(-H "X-CSRF-Token: $3")
	[ -n "${4:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
	curl "${args[@]}" "$PORTAL_URL/api/v1$2"
}
wcode() { jq_get error.code < "$T/w.json"; }
apps_count() { "$NUBO" apps list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

# --- sign in ---------------------------------------------------------------
expect "wrong password refused" "$(signin web@example.com wrongpass1)" 401
expect "wrong password: BAD_CREDENTIALS" "$(jq_get error.code < "$T/s.json")" BAD_CREDENTIALS
expect "no cookie for a failed sign-in" "$(header "$T/s.h" Set-Cookie)" ""
expect "a body without password refused" "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary '{"email":"web@example.com"}' "$PORTAL_URL/api/v1/session")" 400
# Login CSRF: another site's page posting a form whose text parses as
# JSON (enctype=text/plain), or marked cross-site by the browser, signs
# nobody in; refused before the password is checked (no lockout count).
form_signin() { # CONTENT-TYPE [HEADER]: the status; headers in $T/f.h
	curl -s -D "$T/f.h" -o "$T/f.json" -w '%{http_code}' -H "Content-Type: $1" ${2:+-H "$2"} \
		--data-binary '{"email":"web@example.com","password":"webpass123"}' "$PORTAL_URL/api/v1/session"
}
expect "login CSRF: a text/plain body is refused" "$(form_signin text/plain)" 415
expect "login CSRF: no cookie for it" "$(header "$T/f.h" Set-Cookie)" ""
expect "login CSRF: a form's type is refused" "$(form_signin application/x-www-form-urlencoded)" 415
expect "login CSRF: a cross-site request is refused" "$(form_signin application/json 'Sec-Fetch-Site: cross-site')" 403
expect "login CSRF: it says why" "$(jq_get error.code < "$T/f.json")" CROSS_SITE
expect "login CSRF: no cookie for that either" "$(header "$T/f.h" Set-Cookie)" ""
expect "a same-origin sign-in is taken" "$(form_signin 'application/json; charset=utf-8' 'Sec-Fetch-Site: same-origin')" 201
expect "sign in" "$(signin web@example.com webpass123)" 201
cookie=$(header "$T/s.h" Set-Cookie)
COOKIE=$(sed -n 's/^nubo_session=\([^;]*\);.*/\1/p' <<< "$cookie")
CSRF=$(jq_get csrf_token < "$T/s.json")
expect_match "the cookie holds a secret" "$COOKIE" '^nubo_[0-9a-f]{40}$'
expect_match "the cookie is HttpOnly" "$cookie" '; HttpOnly(;|$)'
expect_match "the cookie is SameSite=Strict" "$cookie" '; SameSite=Strict(;|$)'
expect_match "the cookie is for the whole portal" "$cookie" '; Path=/;'
expect_match "the cookie ends with the session" "$cookie" '; Max-Age=43200;'
expect "the cookie is not Secure over plain HTTP" "$(grep -c Secure <<< "$cookie")" 0
expect_match "the answer tells the CSRF token" "$CSRF" '^[0-9a-f]{40}$'
expect "the session's secret is not in the answer" "$(grep -c "$COOKIE" "$T/s.json")" 0
expect "the store keeps no session secret" "$(sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM api_keys WHERE hash = '$COOKIE' OR prefix = '$COOKIE'")" 0

# --- the cookie instead of an API key ---------------------------------------
expect "GET /me with the cookie" "$(web GET /me)" 200
expect "/me: who" "$(jq_get email < "$T/w.json")" web@example.com
expect "/me: a session" "$(jq_get session < "$T/w.json")" true
expect "/me tells the CSRF token again" "$(jq_get csrf_token < "$T/w.json")" "$CSRF"
expect "/me with an API key: no session, no CSRF token" "$(api_as "$ADMIN_KEY" GET /me | jq_get session)/$(api_as "$ADMIN_KEY" GET /me | jq_get csrf_token)" "false/"
expect "GET needs no CSRF token" "$(web GET /apps)" 200
# Cookie tossing: an app on a sibling host of the domain (its tenant's
# code) sets a second session cookie with a longer path, which the
# browser sends first — neither is taken.
make_user mallory@example.com mallorypass1 >/dev/null
expect "another user signs in" "$(signin mallory@example.com mallorypass1)" 201
THEIRS=$(header "$T/s.h" Set-Cookie | sed -n 's/^nubo_session=\([^;]*\);.*/\1/p')
expect "two session cookies refused" "$(curl -s -o "$T/w.json" -w '%{http_code}' -H "Cookie: nubo_session=$THEIRS; nubo_session=$COOKIE" "$PORTAL_URL/api/v1/me")" 401
expect "two session cookies: it says why" "$(wcode)" SESSION_COOKIE_TWICE
expect "sessions are not listed as API keys" "$(web GET /keys; grep -c 'browser session' "$T/w.json")" "2000"

# --- CSRF -------------------------------------------------------------------
before=$(apps_count)
expect "POST without the CSRF header refused" "$(web POST /apps "" '{"subdomain":"csrf-none"}')" 403
expect "POST without the CSRF header: CSRF_TOKEN_MISSING" "$(wcode)" CSRF_TOKEN_MISSING
expect_match "the refusal says what is missing" "$(jq_get error.message < "$T/w.json")" "X-CSRF-Token"
expect "POST with a wrong CSRF token refused" "$(web POST /apps 0123456789abcdef0123456789abcdef01234567 '{"subdomain":"csrf-wrong"}')" 403
expect "wrong CSRF token: CSRF_TOKEN_WRONG" "$(wcode)" CSRF_TOKEN_WRONG
expect "POST with the token of another session refused" "$(signin web@example.com webpass123 >/dev/null; web POST /apps "$(jq_get csrf_token < "$T/s.json")" '{"subdomain":"csrf-other"}')" 403
expect "PATCH/DELETE need it too" "$(web DELETE /keys/1)/$(web PATCH /apps/none "" '{}')" "403/403"
expect "refused requests changed nothing" "$(apps_count)" "$before"
expect "POST with the CSRF token" "$(web POST /apps "$CSRF" '{"subdomain":"web-made","sandbox":false}')" 201
expect "the app is the session user's" "$("$NUBO" apps show web-made --json | jq_get technical_contact)" web@example.com
expect "an API key needs no CSRF token" "$(status_as "$ADMIN_KEY" POST /apps '{"subdomain":"key-made","sandbox":false}')" 201

# --- a session is not an API key, nor the reverse ---------------------------
expect "the session secret as a Bearer key refused" "$(status_as "$COOKIE" GET /me)" 401
expect "an API key as the cookie refused" "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: nubo_session=$ADMIN_KEY" "$PORTAL_URL/api/v1/me")" 401
expect "a made-up cookie refused" "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: nubo_session=nubo_0000" "$PORTAL_URL/api/v1/me")" 401
expect "sign-out with an API key: NOT_A_SESSION" "$(status_as "$ADMIN_KEY" DELETE /session)" 400

# --- a key made in the browser is the user's, not the session's -------------
expect "POST /keys with the session" "$(web POST /keys "$CSRF" '{"name":"from-web"}')" 201
WEBKEY=$(jq_get key < "$T/w.json")
expect "the key has no parent (the session)" "$(jq_get parent_id < "$T/w.json")" ""
expect "the key does not end with the session" "$(jq_get expires_at < "$T/w.json")" ""

# --- sign-out ---------------------------------------------------------------
expect "sign-out without the CSRF header refused" "$(web DELETE /session)" 403
expect "the session still works" "$(web GET /me)" 200
expect "sign out" "$(web DELETE /session "$CSRF")" 200
expect_match "sign-out clears the cookie" "$(header "$T/w.h" Set-Cookie)" '^nubo_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict'
expect "a signed-out session is refused" "$(web GET /me)" 401
expect "signed out: SESSION_ENDED" "$(wcode)" SESSION_ENDED
expect "a signed-out session cannot change anything" "$(web POST /apps "$CSRF" '{"subdomain":"after-out"}')" 401
expect "the key made with it outlives the sign-out" "$(status_as "$WEBKEY" GET /me)" 200

# --- the lockout of POST /sessions -----------------------------------------
for i in 1 2 3 4 5; do
	expect "lock: wrong password $i" "$(signin lock@example.com wrong-$i)" 401
done
expect "lock: 6th sign-in refused with the right password" "$(signin lock@example.com lockpass12)" 429
expect "lock: TOO_MANY_ATTEMPTS" "$(jq_get error.code < "$T/s.json")" TOO_MANY_ATTEMPTS
expect_match "lock: Retry-After" "$(header "$T/s.h" Retry-After)" '^[0-9]+$'
expect "lock: the CLI's login is locked too" "$(status_as "" POST /sessions '{"email":"lock@example.com","password":"lockpass12"}')" 429

# --- pages ------------------------------------------------------------------
page() { curl -s "${CURL_TLS[@]}" -D "$T/p.h" -o "$T/p.body" -w '%{http_code}' "$@"; }
expect "GET / serves the portal" "$(page "$PORTAL_URL/")" 200
expect_match "a page is HTML" "$(header "$T/p.h" Content-Type)" '^text/html'
csp=$(header "$T/p.h" Content-Security-Policy)
expect_match "CSP: scripts of this origin only" "$csp" "script-src 'self';"
expect_match "CSP: nothing else by default" "$csp" "^default-src 'none';"
expect_match "CSP: never framed" "$csp" "frame-ancestors 'none'"
expect "CSP: no inline script or eval" "$(grep -cE "unsafe-inline|unsafe-eval" <<< "$csp")" 0
expect "pages: nosniff" "$(header "$T/p.h" X-Content-Type-Options)" nosniff
expect "pages: X-Frame-Options" "$(header "$T/p.h" X-Frame-Options)" DENY
expect "the page has no inline script" "$(grep -ciE '<script>|<script [^>]*>[^<]|\son[a-z]+=' "$T/p.body")" 0
etag=$(header "$T/p.h" ETag)
expect_match "a strong ETag" "$etag" '^"[0-9a-f]{32}"$'
expect "the same ETag answers 304" "$(page -H "If-None-Match: $etag" "$PORTAL_URL/")" 304
expect "another ETag answers 200" "$(page -H 'If-None-Match: "0000"' "$PORTAL_URL/")" 200
plain=$(sha256sum < "$T/p.body")
expect "gzip when accepted" "$(page -H 'Accept-Encoding: gzip, br' "$PORTAL_URL/app.js"; header "$T/p.h" Content-Encoding)" 200gzip
expect "the gzip form has an ETag of its own" "$(header "$T/p.h" ETag | grep -c -- '-gz"$')" 1
expect "Vary: Accept-Encoding" "$(header "$T/p.h" Vary)" Accept-Encoding
gunzip -c < "$T/p.body" > "$T/app.gz.js"
expect "the gzip form is the same script" "$(page "$PORTAL_URL/app.js"; cmp -s "$T/p.body" "$T/app.gz.js" && echo same)" 200same
expect "no gzip when refused (q=0)" "$(page -H 'Accept-Encoding: gzip;q=0' "$PORTAL_URL/app.js" >/dev/null; header "$T/p.h" Content-Encoding)" ""
expect_match "a script is JavaScript" "$(header "$T/p.h" Content-Type)" '^text/javascript'
ver=$(page "$PORTAL_URL/" >/dev/null; sed -n 's|.*src="/v/\([0-9a-f]*\)/app.js".*|\1|p' "$T/p.body")
expect_match "the page names its scripts under /v/<version>/" "$ver" '^[0-9a-f]{16}$'
expect "a versioned script is served" "$(page "$PORTAL_URL/v/$ver/app.js")" 200
expect "  and cached for good (its URL changes with it)" "$(header "$T/p.h" Cache-Control)" "public, max-age=31536000, immutable"
expect "  the same bytes as /app.js" "$(sha256sum < "$T/p.body")" "$(curl -s "$PORTAL_URL/app.js" | sha256sum)"
expect "another version's URL: revalidated" "$(page "$PORTAL_URL/v/0123456789abcdef/app.js" >/dev/null; header "$T/p.h" Cache-Control)" no-cache
expect "index.html is revalidated" "$(page "$PORTAL_URL/" >/dev/null; header "$T/p.h" Cache-Control)" no-cache
expect "an unknown page: 404" "$(page "$PORTAL_URL/nope.js")" 404
expect "no files outside web/" "$(page --path-as-is "$PORTAL_URL/../CMakeLists.txt")" 404
expect "POST / refused" "$(page -X POST "$PORTAL_URL/")" 405
expect "API answers: nosniff" "$(curl -s -D - -o /dev/null "$PORTAL_URL/api/v1/openapi.json" | header /dev/stdin X-Content-Type-Options)" nosniff
expect_match "API answers are never framed" "$(curl -s -D - -o /dev/null "$PORTAL_URL/api/v1/openapi.json" | header /dev/stdin Content-Security-Policy)" "frame-ancestors 'none'"

# --- expiry: 12 hours after sign-in -----------------------------------------
expect "sign in again" "$(signin web@example.com webpass123)" 201
COOKIE=$(header "$T/s.h" Set-Cookie | sed -n 's/^nubo_session=\([^;]*\);.*/\1/p')
export NUBO_CLOCK_OFFSET=$((12 * 3600 + 60))
stop_portal
start_portal
expect "an expired session is refused" "$(web GET /me)" 401
expect "expired: SESSION_EXPIRED" "$(wcode)" SESSION_EXPIRED
unset NUBO_CLOCK_OFFSET

# --- TLS: the cookie is Secure ----------------------------------------------
stop_portal
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext "subjectAltName=IP:127.0.0.1" -keyout "$T/tls.key" -out "$T/tls.pem" 2>/dev/null
CURL_TLS=(--cacert "$T/tls.pem")
PORTAL_SCHEME=https
PORTAL_ARGS=(--tls-cert "$T/tls.pem" --tls-key "$T/tls.key")
start_portal
expect "sign in over HTTPS" "$(signin web@example.com webpass123)" 201
expect_match "under TLS the cookie is Secure" "$(header "$T/s.h" Set-Cookie)" '; Secure(;|$)'
expect_match "under TLS the cookie is a __Host- cookie (no other host can set it)" "$(header "$T/s.h" Set-Cookie)" '^__Host-nubo_session=nubo_[0-9a-f]{40}; Path=/;'
COOKIE=$(header "$T/s.h" Set-Cookie | sed -n 's/^__Host-nubo_session=\([^;]*\);.*/\1/p')
expect "under TLS the __Host- cookie signs in" "$(curl -s "${CURL_TLS[@]}" -o /dev/null -w '%{http_code}' -H "Cookie: __Host-nubo_session=$COOKIE" "$PORTAL_URL/api/v1/me")" 200
expect "under TLS a plain nubo_session cookie (a sibling host could set it) is not taken" "$(curl -s "${CURL_TLS[@]}" -o /dev/null -w '%{http_code}' -H "Cookie: nubo_session=$COOKIE" "$PORTAL_URL/api/v1/me")" 401

finish
