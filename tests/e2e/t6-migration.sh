#!/usr/bin/env bash
# t6-migration: the seed's whole procedure with real nodes, PostgreSQL and
# nginx: the sample app on a v3 node (Test and Production deployed, with
# notes and attachments; Acceptance never deployed), `nubo migrate start`
# to a v4 node (temporary app, link, package, settings, data, start,
# verify), writes on the source, a rehearsal that copies only what changed,
# more writes, the cutover (the v4 router serves the original hostnames;
# the v3 one shows the maintenance page), offboarding approval and the
# final link; every row and file is compared at the end. Until an
# environment's cutover reaches its route step, the v4 router answers
# neither its original hostname nor its custom domain. In each phase the
# target is made to differ from the source just before the verify step
# (one changed row, one changed file, one missing file, one extra file,
# one file's mode): the phase must fail naming it, and go on once the
# target is put back.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"

# the test hook: the migration is held at a step while the routers are
# asked, or while the target is made to differ
export NUBO_TEST_PAUSE_FILE=$T/pause
start_portal
start_node v3 v3
TLS4=$(free_port)
start_node v4 v4 --router-tls-port "$TLS4"

"$NUBO" apps create notes --no-sandbox >/dev/null
"$NUBO" nodes link v3 notes >/dev/null
deploy v3 notes Test
deploy v3 notes Production
check "a constant set on v3" "$NUBO" settings set-constant notes Production Greeting "Hello from v3"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=notes.example.test \
	-addext subjectAltName=DNS:notes.example.test -keyout "$T/notes.key" -out "$T/notes.crt" 2>/dev/null
check "a custom domain on v3" "$NUBO" settings domain-add notes Production notes.example.test --cert "$T/notes.crt" --key "$T/notes.key"
# tls4 PATH: the status of the custom domain at v4's router, or curl's
# error (curl-35: the handshake refused, no server for the name)
tls4() {
	local rc=0 code
	code=$(curl -s -o /dev/null -w '%{http_code}' --resolve "notes.example.test:$TLS4:127.0.0.1" \
		--cacert "$T/notes.crt" "https://notes.example.test:$TLS4$1") || rc=$?
	if [ "$rc" = 0 ]; then echo "$code"; else echo "curl-$rc"; fi
}
# v4_unrouted WHAT: for 3 s, v4 answers notes' original Production hostname
# with 404 (unknown host) and refuses its custom domain's handshake (a
# heartbeat, every 2 s, would have brought any other spec)
v4_unrouted() {
	local i seen=""
	for i in $(seq 12); do
		seen="$seen $(route_status v4 notes-production.nubo.localhost /api/notes)/$(tls4 /api/notes)"
		sleep 0.25
	done
	expect "$1: v4 answers neither the original hostname nor the custom domain" \
		"$(tr ' ' '\n' <<< "$seen" | sort -u | tr -d '\n')" "404/curl-35"
}

add_notes v3 notes-test 3 2
add_notes v3 notes-production 5 3
# file names are bytes: they survive the copy, the delta and verification
odd_names_write "$(env_dir v3 Production)/files" "$(jq_get uid < "$(env_dir v3 Production)/env.json")"
expect "source serves" "$(route_status v3 notes-production.nubo.localhost /api/notes)" 200

# Test's database as a framework's often is: much schema (here functions),
# little data, so its dump is larger than its tables' size (the copy's
# estimate of the database)
env_sql v3 Test "DO \$\$ BEGIN FOR i IN 1..150 LOOP EXECUTE format('CREATE FUNCTION pad_%s() RETURNS text LANGUAGE sql AS %L', i, 'SELECT ' || quote_literal(repeat('x', 4000))); END LOOP; END \$\$" >/dev/null
plan_tables=$("$NUBO" migrate plan notes --to v4 --json | python3 -c 'import json,sys; print(*[e["tables"] for e in json.load(sys.stdin)["environments"] if e["environment"] == "Production"])')
expect "the plan counts the app's tables (notes, attachments, events)" "$plan_tables" 3
# verify_catches WHAT CHANGE UNDO WANT CMD…: CMD runs with the migration
# paused before Production's verify step, where CHANGE (shell code) makes
# the target differ from the source; CMD must fail with the verify step
# naming the difference (WANT, a regex, after VERIFY_SAYS when set); UNDO
# puts the target back. With
# CMD "-": the migration is already on its way there (in the background,
# pid $cut).
verify_catches() {
	local what=$1 change=$2 undo=$3 want=$4 cli rc=0
	shift 4
	pause_at verify:Production
	if [ "$1" = - ]; then
		cli=$cut
	else
		"$@" > "$T/verify.out" 2> "$T/verify.err" &
		cli=$!
	fi
	if ! reached verify:Production; then
		fail "$what: the migration never reached Production's verify step"
		unpause
		wait "$cli" || rc=$?
		sed 's/^/    /' "$T/verify.err" | tail -5
		return 0
	fi
	eval "$change"
	unpause
	wait "$cli" || rc=$?
	expect "$what: the phase fails" "$rc" 1
	expect_match "$what: the verify step names it" "$(cat "$T/verify.err")" \
		"${VERIFY_SAYS-the target differs from the source in 1 place\(s\): }$want"
	eval "$undo"
}
# target_file: a file of the target's Production file store (an attachment)
target_file() {
	(cd "$(env_dir v4 Production)/files" && find . -type f ! -path './.nubo-*' | sort | head -n 1 | cut -c3-)
}

verify_catches "start: one row changed on the target" \
	'row=$(env_sql v4 Production "SELECT id, title FROM notes ORDER BY id LIMIT 1")
	 env_sql v4 Production "UPDATE notes SET title = title || '"'"' (changed)'"'"' WHERE id = ${row%%|*}"' \
	'env_sql v4 Production "UPDATE notes SET title = '"'"'${row#*|}'"'"' WHERE id = ${row%%|*}"' \
	"table [a-z_.]*notes: " "$NUBO" migrate start notes --to v4 --dump
cp "$T/verify.err" "$T/migrate-start.err"
expect_match "progress lines" "$(cat "$T/migrate-start.err")" "data (Test|Production)"
check "migrate start goes on once the target is put back" "$NUBO" migrate resume notes
sed 's/^/    /' "$T/last.err" | tail -5
m=$(api_as "$ADMIN_KEY" GET '/migrations?app=notes' | jq_get migrations.0)
expect "state copied" "$(printf '%s' "$m" | jq_get state)" copied
tmp=$(printf '%s' "$m" | jq_get temporary_app)
expect_match "temporary app" "$tmp" "^notes-m[0-9]+$"
expect "temporary app is temporary, without sandbox" "$(api_as "$ADMIN_KEY" GET "/apps/$tmp" | python3 -c 'import json,sys; a=json.load(sys.stdin); print(a["temporary"], a["sandbox"], a["node"])')" "True False v4"
expect "v4 serves the copy under the temporary app's hostname" \
	"$(notes_digest v4 "$tmp-production")" "$(notes_digest v3 notes-production)"
expect "v3 still serves" "$(route_status v3 notes-production.nubo.localhost /api/notes)" 200
expect "verify counts the tables the plan counted" "$(step_result notes verify Production 0 | jq_get tables)" "$plan_tables"
expect "and the sequences apart" "$(step_result notes verify Production 0 | jq_get sequences)" 2
expect "Test's dump outgrew its estimate" "$(step_result notes data Test 0 | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["bytes"] > r["database_bytes"])')" True
expect "no copy progress shows more done than its total" "$(api_as "$ADMIN_KEY" GET "/migrations/$(api_as "$ADMIN_KEY" GET '/migrations?app=notes' | jq_get migrations.0.id)" | python3 -c '
import json, sys
for s in json.load(sys.stdin)["steps"]:
    p = s.get("progress") or {}
    if s["name"] == "data" and p.get("bytes", 0) > p.get("bytes_total", 0) > 0:
        print(s.get("environment"), p["bytes"], ">", p["bytes_total"])')" ""
expect_match "and none is printed so" "$(cat "$T/migrate-start.err")" "data Test"
expect "the printed lines agree" "$(python3 -c '
import re, sys
u = {"B": 1, "kB": 1024, "MB": 1 << 20, "GB": 1 << 30}
for l in open(sys.argv[1]):
    m = re.search(r"— ([0-9.]+) (B|kB|MB|GB) / ([0-9.]+) (B|kB|MB|GB)", l)
    if m and float(m[1]) * u[m[2]] > float(m[3]) * u[m[4]]:
        print(l.strip())' "$T/migrate-start.err")" ""
expect "Acceptance skipped (never deployed)" "$(step_result notes data Acceptance 0 | jq_get skipped | cut -c1-7)" "nothing"
v4_unrouted "before the cutover"

# long polling: GET /migrations/{id}?wait=S&revision=R answers once the
# migration (record, steps, job) is no longer at revision R, or after S
# seconds; bad queries are refused
mid=$(api_as "$ADMIN_KEY" GET '/migrations?app=notes' | jq_get migrations.0.id)
rev=$(api_as "$ADMIN_KEY" GET "/migrations/$mid" | jq_get revision)
expect_match "a migration says its revision" "$rev" "^[0-9a-f]{16}$"
for q in "?wait=5" "?revision=$rev" "?wait=0&revision=$rev" "?wait=61&revision=$rev" "?wait=5&revision=${rev^^}"; do
	expect "GET /migrations/{id}$q is refused" "$(status_as "$ADMIN_KEY" GET "/migrations/$mid$q")" 400
done
t0=$(date +%s%N)
doc=$(api_as "$ADMIN_KEY" GET "/migrations/$mid?wait=2&revision=$rev")
held=$((($(date +%s%N) - t0) / 1000000))
expect "an unchanged migration's wait answers it as it was" "$(jq_get revision <<<"$doc")/$(jq_get state <<<"$doc")" "$rev/copied"
[ "$held" -ge 1900 ] && pass "an unchanged migration's wait is held (${held} ms)" || fail "an unchanged migration's wait answered after ${held} ms"
t0=$(date +%s%N)
expect "a revision the client did not see answers at once" "$(api_as "$ADMIN_KEY" GET "/migrations/$mid?wait=30&revision=0000000000000001" | jq_get state)" copied
held=$((($(date +%s%N) - t0) / 1000000))
[ "$held" -lt 1500 ] && pass "at once (${held} ms)" || fail "a stale revision's wait took ${held} ms"
# a wait held while the rehearsal below starts answers with its change
(api_as "$ADMIN_KEY" GET "/migrations/$mid?wait=60&revision=$rev" > "$T/held.json"; date +%s%N > "$T/held.end") &
held_pid=$! t0=$(date +%s%N)

# writes on the source, then a rehearsal copies only what changed
add_notes v3 notes-production 2 1
verify_catches "rehearsal: one file changed on the target" \
	'f=$(target_file); d=$(env_dir v4 Production)/files; cp -p "$d/$f" "$T/kept"; printf x >> "$d/$f"' \
	'cp -p "$T/kept" "$d/$f"' \
	"file [^ ]+: sha256 " "$NUBO" migrate rehearse notes
wait "$held_pid"
held=$((($(cat "$T/held.end") - t0) / 1000000))
if [ "$(jq_get revision < "$T/held.json")" != "$rev" ] && [ "$held" -lt 55000 ]; then
	pass "a held wait answered once the rehearsal changed the migration (${held} ms)"
else
	fail "the held wait answered after ${held} ms: $(head -c 200 "$T/held.json")"
fi
verify_catches "rehearsal: one file missing on the target" \
	'f=$(target_file); d=$(env_dir v4 Production)/files; mv "$d/$f" "$T/kept"' \
	'mv "$T/kept" "$d/$f"' \
	"file [^ ]+: missing on the target" "$NUBO" migrate resume notes
check "rehearse" "$NUBO" migrate resume notes
r=$(step_result notes data Production 1)
expect "rehearsal copied only the new file" "$(printf '%s' "$r" | jq_get files_copied)" 1
expect "rehearsal kept the others (3 attachments, 4 odd names)" "$(printf '%s' "$r" | jq_get files_unchanged)" 7
expect "rehearsal verified" "$(step_result notes verify Production 1 | jq_get differences)" "[]"
st=$("$NUBO" migrate status notes)
expect_match "status estimates Production's cutover from the rehearsal" "$st" "Production +[0-9.]+ s — measured in the rehearsal of migration [0-9]+: copy [0-9.]+ s, verify [0-9.]+ s, start [0-9.]+ s"
expect_match "an environment never deployed is not down" "$st" "Acceptance +0.0 s — nothing deployed"

# writes between the rehearsal and the cutover must reach the target
add_notes v3 notes-production 2 2
add_notes v3 notes-test 1 1
odd_names_write "$(env_dir v3 Production)/files" "$(jq_get uid < "$(env_dir v3 Production)/env.json")" " (changed)"
before_p=$(notes_digest v3 notes-production)
before_t=$(notes_digest v3 notes-test)
# the cutover held before Production's maintenance page: Test is cut over
# (its route step done), Production's target stopped, its source serving
pause_at maintenance:Production
"$NUBO" migrate cutover notes > "$T/verify.out" 2> "$T/verify.err" & cut=$!
for _ in $(seq 600); do [ -f "$T/pause.reached" ] && break; sleep 0.2; done
expect "cutover held before Production's maintenance" "$(cat "$T/pause.reached")" maintenance:Production
expect "v4 serves Test's original hostname after its route step" "$(route_status v4 notes-test.nubo.localhost /api/notes)" 200
v4_unrouted "before Production's route step"
expect "v3 still serves Production" "$(route_status v3 notes-production.nubo.localhost /api/notes)" 200
# on to Production's verify step, where the target is made to differ
verify_catches "cutover: one extra file on the target" \
	'd=$(env_dir v4 Production)/files; echo extra > "$d/extra.bin"; chown --reference="$d" "$d/extra.bin"' \
	'rm "$d/extra.bin"' \
	"file extra.bin: only on the target" -
verify_catches "cutover: one file's mode changed on the target" \
	'f=$(target_file); d=$(env_dir v4 Production)/files; m=$(stat -c %a "$d/$f"); chmod 600 "$d/$f"' \
	'chmod "$m" "$d/$f"' \
	"file [^ ]+: mode 0[0-7]+ on the source, 0600 on the target" "$NUBO" migrate resume notes
# a folder the app can no longer write into (root's, as the file delta
# once made them; its group still the app's, so it can be read) is a
# difference even with the same mode
verify_catches "cutover: one folder's owner changed on the target" \
	'd=$(env_dir v4 Production)/files; sub=$(cd "$d" && find . -mindepth 1 -type d ! -path "./.nubo-*" | sort | head -n 1 | cut -c3-); chown root "$d/$sub"' \
	'chown --reference="$d" "$d/$sub"' \
	"folder [^ ]+: owned by the app on the source, by uid 0 gid [0-9]+ on the target" "$NUBO" migrate resume notes
# a folder the app may not even list is not taken for empty (what is in
# it would be missing from both sides' lists alike)
VERIFY_SAYS= verify_catches "cutover: one folder the app cannot list on the target" \
	'd=$(env_dir v4 Production)/files; sub=$(cd "$d" && find . -mindepth 1 -type d ! -path "./.nubo-*" | sort | head -n 1 | cut -c3-); chown root:root "$d/$sub"' \
	'chown --reference="$d" "$d/$sub"' \
	"cannot list folder [^ ]+ \\(owner uid 0, mode 0750\\): the environment's user may not read it" "$NUBO" migrate resume notes
check "cutover" "$NUBO" migrate resume notes
m=$(api_as "$ADMIN_KEY" GET '/migrations?app=notes' | jq_get migrations.0)
expect "state cut-over" "$(printf '%s' "$m" | jq_get state)" cut-over
expect_match "downtime measured" "$(printf '%s' "$m" | jq_get downtime_ms)" "^[0-9]+$"
expect_match "cli prints the downtime" "$(cat "$T/last.out")" "downtime: [0-9.]+ s"
expect "v4 serves the ORIGINAL hostname: Production" "$(notes_digest v4 notes-production)" "$before_p"
expect "v4 serves the ORIGINAL hostname: Test" "$(notes_digest v4 notes-test)" "$before_t"
expect "v3 shows the maintenance page" "$(route_status v3 notes-production.nubo.localhost /api/notes)" 503
expect "v4 serves the custom domain after the route step" "$(tls4 /api/notes)" 200
expect "strict verify at cutover" "$(step_result notes verify Production 2 | jq_get differences)" "[]"
expect_match "the cut-over data is kept in a backup" "$(step_result notes keep Production 2 | jq_get snapshot)" "^[0-9a-f-]{36}$"
expect "offboarding filed" "$(api_as "$ADMIN_KEY" GET /offboarding-requests | jq_get offboarding_requests.0.state)" pending
expect "v3 is offboarding" "$(api_as "$ADMIN_KEY" GET /nodes/v3 | jq_get status)" offboarding

# seed §3.3 and §3.4
req=$(api_as "$ADMIN_KEY" GET /offboarding-requests | jq_get offboarding_requests.0.id)
check "admin approves the offboarding" "$NUBO" admin offboarding approve "$req"
check "the migration finishes" "$NUBO" migrate status notes --follow
expect "migration completed" "$(api_as "$ADMIN_KEY" GET '/migrations?app=notes' | jq_get migrations.0.state)" completed
expect "app linked to v4" "$(api_as "$ADMIN_KEY" GET /apps/notes | jq_get node)" v4
expect "v3 offboarded" "$(api_as "$ADMIN_KEY" GET /nodes/v3 | jq_get status)" offboarded
expect "temporary app deleted" "$(status_as "$ADMIN_KEY" GET "/apps/$tmp")" 404
expect "no temporary app left" "$(api_as "$ADMIN_KEY" GET /apps | python3 -c 'import json,sys; print(sum(a["temporary"] for a in json.load(sys.stdin)["apps"]))')" 0
expect "still served after the final link" "$(notes_digest v4 notes-production)" "$before_p"
expect_match "configuration carried over: the constant (seed §3.2.3)" "$("$NUBO" settings show notes Production --json)" "Hello from v3"
expect_match "the app on v4 runs with it" "$(route v4 notes-production.nubo.localhost /)" "Hello from v3"
expect "settings step reported nothing left behind" "$(step_result notes settings Production 0 | jq_get not_carried_over)" "[]"
compare_envs v3 v4 Production "final data equals the source: Production"
compare_envs v3 v4 Test "final data equals the source: Test"
expect "files of any name arrived with their last bytes" "$(odd_names_check "$(env_dir v4 Production)/files" " (changed)")" ""
foreign=$(env_foreign v4 Production)
expect "everything in the target's file store is the app's" "$foreign" ""
expect "new writes on v4 work" "$(add_notes v4 notes-production 1 0 && echo ok)" ok
expect "new attachments on v4 work" "$(add_notes v4 notes-production 1 3 && echo ok)" ok

finish
