#!/usr/bin/env bash
# t1d: password login lockout (POST /sessions, src/portal/lockout.c) — 5
# failed logins for one email lock it for 15 minutes: the 6th attempt is
# refused with 429 TOO_MANY_ATTEMPTS and Retry-After even with the right
# password; unknown emails lock the same way; a success resets the count;
# 20 failures from one address lock that address for every account; the
# counts survive a restart and end with the window (NUBO_CLOCK_OFFSET);
# concurrent attempts cannot overrun the cap; `nubo login` says so.
. "$(dirname "$0")/lib.sh"

start_portal
BOBKEY=$(make_user bob@example.com bobpass123)
make_user carol@example.com carolpass1 >/dev/null
make_user dave@example.com davepass12 >/dev/null

# login EMAIL PASSWORD [curl options…]: the HTTP status; the body goes to
# $T/login.json and the headers to $T/login.h.
login() {
	curl -s -D "$T/login.h" -o "$T/login.json" -w '%{http_code}' "${@:3}" \
		-H 'Content-Type: application/json' \
		--data-binary "{\"email\":\"$1\",\"password\":\"$2\"}" \
		"$PORTAL_URL/api/v1/sessions"
}
code() { jq_get error.code < "$T/login.json"; }
retry_after() { tr -d '\r' < "$T/login.h" | awk 'tolower($1) == "retry-after:" {print $2}'; }

# Requests refused as malformed are not login attempts.
for i in 1 2 3 4 5 6; do
	curl -s -o /dev/null -H 'Content-Type: application/json' \
		--data-binary '{"email":"carol@example.com"}' "$PORTAL_URL/api/v1/sessions"
done
expect "malformed requests are not counted" "$(login carol@example.com carolpass1)" 201

# A success resets the count: 4 wrong, right, 4 wrong is not a lockout.
for i in 1 2 3 4; do
	expect "bob: wrong password $i" "$(login bob@example.com wrong-$i)" 401
done
expect "bob: right password after 4 wrong" "$(login bob@example.com bobpass123)" 201
for i in 1 2 3 4; do
	expect "bob: wrong password $i after the success" "$(login bob@example.com wrong-$i)" 401
done
bob_locked=$(date +%s)
expect "bob: 5th consecutive wrong password is still checked" "$(login bob@example.com wrong-5)" 401
expect "bob: 5th failure answers BAD_CREDENTIALS" "$(code)" BAD_CREDENTIALS

# Locked: refused without looking at the password.
expect "bob: 6th attempt refused with the RIGHT password" "$(login bob@example.com bobpass123)" 429
expect "bob: error code" "$(code)" TOO_MANY_ATTEMPTS
expect_match "bob: message names the account" "$(jq_get error.message < "$T/login.json")" \
	"^too many failed logins for 'bob@example.com'; try again in 15 minutes$"
ra=$(retry_after)
expect_match "bob: Retry-After present" "$ra" '^[0-9]+$'
expect "bob: Retry-After is at most 15 minutes" "$([ "${ra:-0}" -gt 880 ] && [ "${ra:-0}" -le 900 ] && echo yes)" yes
expect "bob: wrong password refused the same way" "$(login bob@example.com wrong-6)" 429
expect "bob: email case does not matter" "$(login BOB@Example.COM bobpass123)" 429
expect "carol is not affected" "$(login carol@example.com carolpass1)" 201
expect "bob's API keys keep working" "$(status_as "$BOBKEY" GET /me)" 200

# The CLI says what happened and fails.
check_fails "nubo login on a locked account" 1 sh -c "echo bobpass123 | '$NUBO' login '$PORTAL_URL' --email bob@example.com"
expect_match "nubo login explains" "$(cat "$T/last.err")" "too many failed logins for 'bob@example.com'; try again in 15 minutes"

# Unknown emails are counted and locked like known ones.
for i in 1 2 3 4 5; do
	expect "nobody: wrong login $i" "$(login nobody@example.com wrong-$i)" 401
	expect "nobody: looks like a wrong password $i" "$(code)" BAD_CREDENTIALS
done
expect "nobody: 6th attempt refused" "$(login nobody@example.com wrong-6)" 429
expect "nobody: same code as a known account" "$(code)" TOO_MANY_ATTEMPTS
expect_match "nobody: Retry-After present" "$(retry_after)" '^[0-9]+$'

# Concurrent attempts cannot overrun the cap (from 127.0.0.3): 10 at once,
# exactly 5 are checked.
pids=()
for i in $(seq 10); do
	login dave@example.com "wrong-$i" --interface 127.0.0.3 > "$T/dave.$i" &
	pids+=("$!")
done
wait "${pids[@]}"
expect "dave: 10 concurrent wrong logins, 5 checked" "$(cat "$T"/dave.* | grep -o 401 | wc -l)" 5
expect "dave: the other 5 refused" "$(cat "$T"/dave.* | grep -o 429 | wc -l)" 5

# One address spraying many accounts (from 127.0.0.2): 20 failures lock
# the address for every account, the right password included.
for i in $(seq 20); do
	st=$(login "spray$i@example.com" guess123 --interface 127.0.0.2)
	[ "$st" = 401 ] || fail "spray $i: got $st, wanted 401"
done
expect "spray: 21st attempt refused even with carol's password" "$(login carol@example.com carolpass1 --interface 127.0.0.2)" 429
expect "spray: error code" "$(code)" TOO_MANY_ATTEMPTS
expect_match "spray: message names the address" "$(jq_get error.message < "$T/login.json")" "from 127\.0\.0\.2;"
expect_match "spray: Retry-After present" "$(retry_after)" '^[0-9]+$'
expect_match "the portal logs each lockout" "$(cat "$T/portal.log")" "login lockout: 127\.0\.0\.2 locked"
expect "the portal logs bob's lockout once" "$(grep -c "login lockout: 'bob@example.com' locked" "$T/portal.log")" 1
expect "spray: carol from another address logs in" "$(login carol@example.com carolpass1)" 201
STORE=$T/portal/portal.db
expect "the store never holds a typed email" \
	"$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM login_failures WHERE subject LIKE ?", ("%@%",)).fetchone()[0])' "$STORE")" 0

# The counts survive a restart, and the lock lasts its whole window.
stop_portal
start_portal
expect "after a restart: bob still locked" "$(login bob@example.com bobpass123)" 429
export NUBO_CLOCK_OFFSET=600
stop_portal
start_portal
expect "10 minutes later: bob still locked" "$(login bob@example.com bobpass123)" 429
# 15 minutes from the lock, less the 10 shifted and the real time since
# (a slow machine or a sanitizer build takes minutes to get here)
left=$((900 - 600 - ($(date +%s) - bob_locked)))
expect "10 minutes later: Retry-After about 5 minutes" "$(ra=$(retry_after); [ "${ra:-0}" -ge $((left - 2)) ] && [ "${ra:-0}" -le 300 ] && echo yes)" yes
export NUBO_CLOCK_OFFSET=$((15 * 60 + 5))
stop_portal
start_portal
expect "after the window: bob logs in" "$(login bob@example.com bobpass123)" 201
expect "after the window: nobody is checked again" "$(login nobody@example.com wrong-7)" 401
expect "after the window: dave logs in" "$(login dave@example.com davepass12 --interface 127.0.0.3)" 201
expect "after the window: the address is free" "$(login carol@example.com carolpass1 --interface 127.0.0.2)" 201
check "after the window: nubo login works" sh -c "echo bobpass123 | '$NUBO' login '$PORTAL_URL' --email bob@example.com"

finish
