#!/usr/bin/env bash
# t8-thirdparty: a web app nubo did not write, on frameworks installed from
# Debian (python3-flask, python3-psycopg2), as a user would host it: a
# package with a shell start script (tests/e2e/apps/flaskapp) that writes a
# pid file and a cache next to its code and keeps uploads in nested folders
# (uploads/YYYY/MM/xx/) of its files folder, a row each in PostgreSQL.
# Uploads through it on a v3 node; a backup whose archive holds the nested
# files; the migration v3 → v4 (`migrate start` names the URL to test the
# copy); uploads on v4; two instances, uploads on both, each seeing every
# file; `envs run` of Flask's own commands; `envs psql`; a restore into a
# never-started environment says what to do next; a queued job says what
# it waits for; uploads after a restore, a node restart and a clean, the
# files always the app's. Every upload's bytes are read back and compared.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"

APPS=$NUBO_SRC/tests/e2e/apps
/usr/bin/python3 -c 'import flask, psycopg2' 2>/dev/null ||
	{ fail "python3-flask and python3-psycopg2 are not installed (scripts/install-deps)"; finish; exit 1; }
start_portal
start_node v3 v3
start_node v4 v4
H=uploads-production.nubo.localhost

"$NUBO" apps create uploads --no-sandbox >/dev/null
"$NUBO" nodes link v3 uploads >/dev/null
tar czf "$T/uploads-1.0.0.tar.gz" -C "$APPS/flaskapp" .
check "the Flask app's package uploads" "$NUBO" packages upload v3 "$T/uploads-1.0.0.tar.gz"
check "transport" "$NUBO" envs transport uploads Production uploads-1.0.0
check "start" "$NUBO" envs start uploads Production

# put NODE NAME SIZE: SIZE random bytes uploaded as NAME through NODE's
# router; "id name instance" appended to $T/uploaded
: > "$T/uploaded"
put() {
	local var=ROUTER_${1//-/_} f=$T/up-$2
	head -c "$3" /dev/urandom > "$f"
	if ! curl -sf -H "Host: $H" --data-binary @"$f" \
		"http://127.0.0.1:${!var}/uploads/$2" > "$T/put.json"; then
		fail "upload of $2 through $1"
		return 0
	fi
	echo "$(jq_get id < "$T/put.json") $2 $(jq_get instance < "$T/put.json")" >> "$T/uploaded"
}
# read_back NODE: every upload so far, read through NODE's router, has its
# bytes (prints the names that do not)
read_back() {
	local id name inst
	while read -r id name inst; do
		route "$1" "$H" "/uploads/$id" > "$T/back" || true
		cmp -s "$T/back" "$T/up-$name" || printf '%s ' "$name"
	done < "$T/uploaded"
}
# on_disk NODE: the uploads below the files folder, as "path mode" lines
on_disk() {
	(cd "$(env_dir "$1" Production)/files" && find uploads -type f -printf '%p %m\n' | sort)
}

# --- v3: uploads through the app ---
expect "the app wrote its pid file and cache in its working directory" \
	"$(route v3 $H /health | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["pid_file"], d["cache"])')" "True True"
put v3 small.txt 17
put v3 photo.jpg 100000
put v3 report.pdf 1048576
expect "3 uploads read back byte for byte on v3" "$(read_back v3)" ""
expect_match "stored in nested folders of the files folder, 0640" "$(on_disk v3)" \
	"^uploads/[0-9]{4}/[0-9]{2}/[0-9a-f]{2}/[0-9a-f]{32}-small.txt 640$"
expect "3 files there" "$(on_disk v3 | wc -l)" 3
expect "all of them the app's" "$(env_foreign v3 Production)" ""
work=$(env_dir v3 Production)/work/1
expect "its cache is in the instance's working area" "$(find "$work/cache" -type f | wc -l)" 3
expect "the package itself is unchanged" "$(find "$(env_dir v3 Production)/app" -name app.pid -o -name cache | wc -l)" 0

# --- backup: the archive holds the nested files ---
snap=$("$NUBO" backups create uploads Production --json 2>/dev/null | jq_get snapshot)
expect_match "backup" "$snap" "^[0-9a-f-]{36}$"
check "download the archive" "$NUBO" backups download uploads Production "$snap" --output "$T/full.tar.gz"
tar tzf "$T/full.tar.gz" > "$T/members"
expect "the archive lists each upload at its nested path" \
	"$(grep -cE '^tree/uploads/[0-9]{4}/[0-9]{2}/[0-9a-f]{2}/[0-9a-f]{32}-(small.txt|photo.jpg|report.pdf)$' "$T/members")" 3
pdf=$(grep -E -- '-report.pdf$' "$T/members")
tar xzf "$T/full.tar.gz" -O "$pdf" > "$T/pdf.out"
check "plain tar gives the upload's bytes" cmp "$T/pdf.out" "$T/up-report.pdf"

# a restore into Acceptance, never started: its data must travel too
check "restore into Acceptance, never started on v3" "$NUBO" backups restore uploads Acceptance "$snap"
expect "  its rows are there" "$(env_sql v3 Acceptance 'SELECT count(*) FROM uploads')" 3

# --- migrate v3 → v4 ---
# nothing copied to v4 yet: the estimate scales what v3 measured, the
# Flask app's own start and the backup's dump
# (a dump: the copy is served on v4 before the cutover, to test it)
check "migrate plan" "$NUBO" migrate plan uploads --to v4 --dump
expect_match "the plan's estimate comes from the app's measured start and dump" "$(cat "$T/last.out")" \
	"downtime estimate: nothing copied to this node yet; measured elsewhere: dump [0-9.]+ s \(this environment's snapshot $snap: .*start [0-9.]+ s \(this environment's last start, job [0-9]+\)"
estimate=$("$NUBO" migrate plan uploads --to v4 --dump --json | python3 -c 'import json,sys; print([e for e in json.load(sys.stdin)["environments"] if e["environment"] == "Production"][0]["estimated_downtime_seconds"])')
check "migrate start" "$NUBO" migrate start uploads --to v4 --dump
tmp=$(api_as "$ADMIN_KEY" GET '/migrations?app=uploads' | jq_get migrations.0.temporary_app)
expect_match "migrate start ends with the URL to test the copy" "$(cat "$T/last.out")" \
	"^next: test the app on node 'v4' at http://$tmp-production\.nubo\.localhost:$ROUTER_v4/, then: nubo migrate rehearse\|cutover\|abort uploads --to v4$"
expect "that URL serves the copy: every upload there" \
	"$(route v4 "$tmp-production.nubo.localhost" /check | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["uploads"], d["bad"])')" "3 []"
check "cutover" "$NUBO" migrate cutover uploads
req=$(api_as "$ADMIN_KEY" GET /offboarding-requests | jq_get offboarding_requests.0.id)
check "the offboarding approved" "$NUBO" admin offboarding approve "$req"
expect "the approval says one thing of the app: the migration links it on" \
	"$(sed 1d "$T/last.out")" "app 'uploads' is detached from it; its migration goes on with the final link to the new node (nubo migrate status uploads --follow)"
check "the migration finishes" "$NUBO" migrate status uploads --follow
echo "# Production's downtime: estimated $estimate s before the first copy, measured $(api_as "$ADMIN_KEY" GET "/migrations/$(api_as "$ADMIN_KEY" GET '/migrations?app=uploads' | jq_get migrations.0.id)" | jq_get downtime_ms) ms"
expect "the app is on v4" "$(api_as "$ADMIN_KEY" GET /apps/uploads | jq_get node)" v4
expect "v4 serves every upload made on v3" "$(read_back v4)" ""
expect "the files on v4 are the app's" "$(env_foreign v4 Production)" ""
expect "the data restored into never-started Acceptance was migrated too" \
	"$(env_sql v4 Acceptance 'SELECT count(*) FROM uploads') $(find "$(env_dir v4 Acceptance)/files/uploads" -type f | wc -l)" "3 3"
compare_envs v3 v4 Acceptance "  identical to the source"

# --- uploads on v4 ---
put v4 after-migration.bin 300000
put v4 deep.txt 5
expect "uploads through the app on v4 work" "$(wc -l < "$T/uploaded")" 5
expect "and read back" "$(read_back v4)" ""
expect_match "into the nested folders" "$(on_disk v4)" "/[0-9a-f]{32}-after-migration.bin 640"

# --- two instances: uploads on both, each sees every file ---
check "scale to two instances" "$NUBO" envs scale uploads Production --instances 2
for i in $(seq 20); do
	put v4 "two-$i.dat" $((1000 * i))
	[ "$(awk 'NR > 5 {print $3}' "$T/uploaded" | sort -u | paste -sd,)" = "1,2" ] && [ "$i" -ge 4 ] && break
done
n=$(wc -l < "$T/uploaded")
expect "uploads were served by both instances" "$(awk 'NR > 5 {print $3}' "$T/uploaded" | sort -u | paste -sd,)" "1,2"
expect "every upload reads back through the router" "$(read_back v4)" ""
seen=""
for i in $(seq 20); do
	seen="$seen $(route v4 $H /check | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%s:%s:%s" % (d["instance"], d["uploads"], len(d["bad"])))')"
done
expect "both instances read all $n files" "$(tr ' ' '\n' <<< "$seen" | sed '/^$/d' | sort -u | paste -sd,)" "1:$n:0,2:$n:0"

# --- one-off commands: the framework's own CLI ---
check "envs run: flask routes" "$NUBO" envs run uploads Production -- flask --app uploads routes
expect_match "  lists the app's routes" "$(cat "$T/last.out")" "upload +POST +/uploads/<name>"
check "envs run: the app's own command" "$NUBO" envs run uploads Production -- flask --app uploads uploads-count
expect "  counts the uploads" "$(cat "$T/last.out")" "uploads: $n"
check "envs psql: a query" "$NUBO" envs psql uploads Production \
	--command "SELECT 'rows=' || count(*) || ' bytes=' || sum(size) || ' instances=' || string_agg(DISTINCT instance, ',') FROM uploads"
expect_match "  answers from the app's table" "$(cat "$T/last.out")" \
	"rows=$n bytes=$(cat "$T"/up-* | wc -c) instances=1,2$"

# --- a short-lived URL to the database (nubo envs db-url) ---
pgport=$(sed -n 3p "$T/node-v4.ports")
eid=$(basename "$(env_dir v4 Production)")
rc=0; url=$("$NUBO" envs db-url uploads Production --ttl 20 2> "$T/dburl.err") || rc=$?
expect "envs db-url answers" "$rc" 0
expect_match "db-url prints a URL to the node's PostgreSQL" "$url" \
	"^postgresql://nubo_cred_${eid}_[0-9a-f]{12}:[0-9a-f]{48}@127\.0\.0\.1:$pgport/env_$eid$"
expect_match "and says until when and from where it works" "$(cat "$T/dburl.err")" \
	"^valid until [0-9T:-]+Z; reachable on the host of node 'v4' only, where its PostgreSQL listens on 127\.0\.0\.1:$pgport; from elsewhere through an SSH tunnel to that host \(ssh -N -L $pgport:127\.0\.0\.1:$pgport 127\.0\.0\.1\), with the URL as it is$"
expect "psql with it reads the app's table" "$(psql -X -A -t -c 'SELECT count(*) FROM uploads' "$url" 2>&1)" "$n"
expect "its session acts as the environment's role" "$(psql -X -A -t -c 'SELECT current_user' "$url" 2>&1)" "env_$eid"
check "it creates a table" psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE TABLE made_with_url (x int)' "$url"
expect "  which is the environment's" "$(env_sql v4 Production "SELECT tableowner FROM pg_tables WHERE tablename = 'made_with_url'")" "env_$eid"
check_fails "it cannot reach another database" 2 psql -X -c 'SELECT 1' "${url%/*}/postgres"
expect_match "the activity log names it, without the password" "$("$NUBO" apps activity uploads --json)" \
	"made database credential 'nubo_cred_${eid}_[0-9a-f]{12}' of environment 'Production', valid until"
pw=${url#postgresql://*:}
pw=${pw%%@*}
expect "  and never holds the password" "$(count "$pw" "$NUBO" apps activity uploads --json)" 0
psql -X -c 'SELECT pg_sleep(120)' "$url" > /dev/null 2>&1 & held=$!
DEV=$(make_user dev@example.com)
"$NUBO" members add uploads dev@example.com >/dev/null
"$NUBO" members grant uploads dev@example.com --transport all --backups all --logs all >/dev/null
NUBO_API_KEY=$DEV check_fails "a member without the settings permission is refused" 1 "$NUBO" envs db-url uploads Production
expect_match "  with the permission named" "$(cat "$T/last.err")" "settings"
"$NUBO" members grant uploads dev@example.com --settings Production >/dev/null
NUBO_API_KEY=$DEV check "with it, the member gets one" "$NUBO" envs db-url uploads Production --ttl 5
check_fails "a ttl out of range is a usage error" 2 "$NUBO" envs db-url uploads Production --ttl 0
expires=$(sed -n 's/^valid until \([^;]*\);.*/\1/p' "$T/dburl.err")
while [ "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \< "$expires" ] || [ "$(date -u +%Y-%m-%dT%H:%M:%SZ)" = "$expires" ]; do sleep 0.5; done
sleep 1
rc=0; psql -X -c 'SELECT 1' "$url" > "$T/expired.out" 2>&1 || rc=$?
expect "after its expiry the URL is refused" "$rc" 2
expect_match "  by PostgreSQL's password check" "$(cat "$T/expired.out")" "password authentication failed"
for _ in $(seq 60); do
	[ "$(node_sql v4 "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'nubo_cred_%'")" = 0 ] && break
	sleep 0.5
done
expect "the expired logins are dropped" "$(node_sql v4 "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'nubo_cred_%'")" 0
rc=0; wait "$held" || rc=$?
expect "a session still open at the expiry was ended" "$rc" 2
expect "what it made stays the environment's" "$(env_sql v4 Production "SELECT tableowner FROM pg_tables WHERE tablename = 'made_with_url'")" "env_$eid"

# --- a queued job says what it waits for ---
# the node held (SIGSTOP) while a backup's job calls it: the next job of
# the environment waits in the queue, and says for what
kill -STOP "$NODE_PID_v4"
check "a backup queued while the node does not answer" "$NUBO" backups create uploads Production --no-wait
"$NUBO" backups create uploads Production > "$T/queued.out" 2> "$T/queued.err" & q=$!
for _ in $(seq 100); do grep -q "waiting for" "$T/queued.err" && break; sleep 0.1; done
kill -CONT "$NODE_PID_v4"
rc=0; wait "$q" || rc=$?
expect "the second backup completes once the first did" "$rc" 0
expect_match "while queued, it said what it waited for" "$(cat "$T/queued.err")" \
	"^backup: queued — waiting for the backup of Production to finish$"
snap4=$(awk '/^snapshot .* completed$/ {print $2}' "$T/queued.out")

# --- a restore into a never-started environment says what to do ---
check "restore into Test, never started on v4" "$NUBO" backups restore uploads Test "$snap4"
expect_match "the restore says what to do next" "$(cat "$T/last.out")" \
	"^next: environment 'Test' has never been started: its data is in place for the first start; deploy a package with 'nubo envs transport uploads Test PACKAGE', then 'nubo envs start uploads Test'$"
check "doing so: transport" "$NUBO" envs transport uploads Test uploads-1.0.0
check "and start" "$NUBO" envs start uploads Test
H=uploads-test.nubo.localhost
expect "Test serves every upload, restored" "$(read_back v4)" ""

# --- the app writes after each path that writes into its environment ---
# (the migration's copy and delta and the scale above): a restore, a
# clean and a node restart leave every folder and file the app's, so its
# next uploads land in the nested folders they made
H=uploads-production.nubo.localhost
check "stop Production for a restore" "$NUBO" envs stop uploads Production
check "restore Production on v4" "$NUBO" backups restore uploads Production "$snap4"
check "start it" "$NUBO" envs start uploads Production
put v4 after-restore.txt 4000
expect "after the restore, uploads into the folders it made work" "$(read_back v4)" ""
expect_match "  in those nested folders" "$(on_disk v4)" "/[0-9a-f]{32}-after-restore.txt 640"
expect "  and everything there is the app's" "$(env_foreign v4 Production)" ""
stop_node v4
restart_node v4 v4
put v4 after-node-restart.txt 5000
expect "after a node restart, uploads work" "$(read_back v4)" ""
expect "  and everything there is the app's" "$(env_foreign v4 Production)" ""
check "stop Test for a clean" "$NUBO" envs stop uploads Test
check "clean Test" "$NUBO" envs clean uploads Test --yes
check "start it" "$NUBO" envs start uploads Test
f=$T/after-clean.bin
head -c 3000 /dev/urandom > "$f"
id=$(curl -sf -H "Host: uploads-test.nubo.localhost" --data-binary @"$f" "http://127.0.0.1:$ROUTER_v4/uploads/after-clean.bin" | jq_get id)
expect "after a clean, the app's first upload is stored" "$id" 1
check "  and reads back" cmp <(route v4 uploads-test.nubo.localhost /uploads/1) "$f"
expect "  and everything there is the app's" "$(env_foreign v4 Test)" ""

finish
