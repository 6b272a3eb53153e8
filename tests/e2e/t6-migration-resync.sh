#!/usr/bin/env bash
# t6-migration-resync: `nubo migrate rehearse APP --resync TABLE` (issue
# 14) with real nodes, PostgreSQL and nginx. The sample app on a v3 node,
# with two tables joined by a foreign key (parent, child); --resync is
# refused for a migration that copies with a dump. A migration that
# replicates starts; then DDL on the source: a column added to notes (its
# values written after the DDL, by the app and by psql), a table created
# with rows (labels), a column added to parent, a table dropped (gone).
# The cutover is refused before anything is queued, naming them and the
# remedy; hostile --resync lists (names that are not plain identifiers,
# through the CLI and the API; a table on neither node; a table that a
# foreign key of a table outside the list references; a table only on
# the source left out) are refused with nothing changed on v4. `rehearse
# --resync notes,attachments,labels --resync public.parent,"child",gone`
# makes them again on v4 (gone dropped) and copies their rows again;
# writes after it follow; the cutover goes through (with no replication
# slot free on v3: its baseline left out, saying why, the downtime's
# verify reading every table whole), and psql finds every
# row of the changed tables (the new column's values included) equal on
# both nodes, and no load role left.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"

start_portal
start_node v3 v3
start_node v4 v4

"$NUBO" apps create notes --no-sandbox >/dev/null
"$NUBO" nodes link v3 notes >/dev/null
deploy v3 notes Production
add_notes v3 notes-production 3 1
env_sql v3 Production "CREATE TABLE parent (id int PRIMARY KEY, name text);
	CREATE TABLE child (id int PRIMARY KEY, parent int REFERENCES parent);
	INSERT INTO parent VALUES (1, 'one'), (2, 'two'); INSERT INTO child VALUES (10, 1), (20, 2);
	CREATE TABLE gone (id int PRIMARY KEY); INSERT INTO gone VALUES (1)" >/dev/null

# mid: the newest migration's id; round: its round and state
mid() { api_as "$ADMIN_KEY" GET "/migrations?app=notes" | python3 -c 'import json,sys; print(json.load(sys.stdin)["migrations"][-1]["id"])'; }
round() { api_as "$ADMIN_KEY" GET "/migrations/$(mid)" | python3 -c 'import json,sys; m = json.load(sys.stdin); print(m["round"], m["state"])'; }

# --- a migration that copies with a dump has nothing to resync ---
check "migrate start (a dump)" "$NUBO" migrate start notes --to v4 --dump
out=$("$NUBO" migrate rehearse notes --resync notes 2>&1) && fail "--resync on a dump migration was taken" ||
	expect_match "--resync on a dump migration is refused" "$out" "copies the database with a dump.*--resync is for a migration that replicates"
expect "and nothing was queued" "$(round)" "0 copied"
check "migrate abort (the dump)" "$NUBO" migrate abort notes

check "migrate start --replicate" "$NUBO" migrate start notes --to v4 --replicate
T_PROD=env_$(api_as "$ADMIN_KEY" GET /nodes/v4 | python3 -c '
import json, sys
print(*[e["id"] for e in json.load(sys.stdin)["environments"] if e["name"] == "Production"])')
expect "v4 follows: notes copied" "$(db_sql v4 "$T_PROD" "SELECT count(*) FROM notes")" 3

# --- DDL on the source after the start, and rows written after it: the
# cutover is refused before anything is queued, naming the tables and the
# remedy ---
env_sql v3 Production "ALTER TABLE notes ADD COLUMN mood text DEFAULT 'calm';
	UPDATE notes SET mood = 'happy' WHERE id = (SELECT min(id) FROM notes);
	CREATE TABLE labels (id serial PRIMARY KEY, note int, text text);
	INSERT INTO labels (note, text) SELECT id, 'label of ' || id FROM notes;
	ALTER TABLE parent ADD COLUMN weight int; UPDATE parent SET weight = 7 WHERE id = 2;
	DROP TABLE gone" >/dev/null
add_notes v3 notes-production 1 0
env_sql v3 Production "INSERT INTO notes (title, body, mood) VALUES ('after', 'the DDL', 'excited')" >/dev/null
ROUND=$(round | cut -d' ' -f1)
out=$("$NUBO" migrate cutover notes 2>&1) && fail "a cutover after DDL on the source went ahead" ||
	expect_match "the cutover is refused, naming the changed tables" "$out" \
		"Production\.public\.labels \(only on the source\).*Production\.public\.notes \(its columns differ\).*Production\.public\.parent \(its columns differ\).*Production\.public\.gone \(only on the target\)"
expect_match "and names the remedy, with the tables that reference those (attachments, child)" "$out" \
	"nubo migrate rehearse notes --resync public\.(gone|labels|notes|parent|attachments|child)(,public\.(gone|labels|notes|parent|attachments|child)){5}'"
REMEDY=$(printf '%s' "$out" | grep -o "\-\-resync [^' ]*" | head -1)
expect "the refused cutover queued nothing: the migration is copied" "$(round)" "$ROUND copied"
expect "the source still serves" "$(route_status v3 notes-production.nubo.localhost /api/notes)" 200

# --- hostile lists: refused, nothing changed ---
out=$("$NUBO" migrate rehearse notes --resync 'notes;DROP TABLE parent' 2>&1) && fail "a hostile table name was taken" ||
	expect_match "the CLI refuses a name that is not a plain identifier" "$out" "--resync: 'notes;DROP TABLE parent' is not a table's name"
for bad in '"x\"; DROP TABLE parent; --"' '"Notes"' '"public.notes.x"' '"../notes"' '""' '5'; do
	expect "the API refuses resync [$bad]" "$(status_as "$ADMIN_KEY" POST "/migrations/$(mid)/rehearse" "{\"resync\":[$bad]}")" 400
done
expect_match "naming it" "$(api_as "$ADMIN_KEY" POST "/migrations/$(mid)/rehearse" '{"resync":["public.notes; DROP TABLE parent"]}')" \
	"BAD_TABLE.*is not a table's name"
out=$("$NUBO" migrate rehearse notes --resync nosuch,labels 2>&1) && fail "a table on neither node was taken" ||
	expect_match "a table on neither node is refused, naming it" "$out" "no environment has table public\.nosuch on either node"
out=$("$NUBO" migrate rehearse notes --resync notes 2>&1) && fail "a table only on the source was left out" ||
	expect_match "a table only on the source left out is refused, naming it" "$out" "table public\.labels of 'Production' is only on the source: resync it too"
out=$("$NUBO" migrate rehearse notes --resync notes,attachments,labels,parent 2>&1) && fail "a table referenced by a foreign key was taken" ||
	expect_match "a table another one references is refused, naming both" "$out" \
		"cannot make public\.parent again: table public\.child references it \(foreign key child_parent_fkey\).*nothing was changed"
# the nodes' routes themselves (as the portal calls them)
KEY=$(api_as "$ADMIN_KEY" GET "/migrations/$(mid)" | jq_get uuid)
TID=${T_PROD#env_}
SID=$(env_id v3 Production)
expect "v4: a bad table name" "$(agent v4 POST "/environments/$TID/subscription/resync" "{\"migration\":\"$KEY\",\"tables\":[\"notes; DROP TABLE parent\"],\"dump_url\":\"http://127.0.0.1:1/\"}")/$(answer error.code)" 400/BAD_TABLE
expect "v4: a bad key" "$(agent v4 POST "/environments/$TID/subscription/resync" '{"migration":"x_y","drop":["gone"]}')/$(answer error.code)" 400/BAD_MIGRATION_KEY
expect "v4: another migration's key" "$(agent v4 POST "/environments/$TID/subscription/resync" '{"migration":"other","drop":["gone"]}')/$(answer error.code)" 404/SUBSCRIPTION_NOT_FOUND
expect "v4: a referenced table" "$(agent v4 POST "/environments/$TID/subscription/resync" "{\"migration\":\"$KEY\",\"drop\":[\"parent\"]}")/$(answer error.code)" 409/TABLE_REFERENCED
expect "v3: the tables' schema is a signed URL's" "$(curl -s -o /dev/null -w '%{http_code}' "$NODE_URL_v3/agent/v1/environments/$SID/dump/schema/public.notes")" 401
expect "v3: a bad name in the tables' schema" "$(agent v3 GET "/environments/$SID/dump/schema/public.notes,x%3Bdrop")/$(answer error.code)" 400/BAD_TABLE
expect "v3: a table it does not have" "$(agent v3 GET "/environments/$SID/dump/schema/public.nosuch")/$(answer error.code)" 500/DUMP_FAILED
expect "nothing was queued" "$(round)" "$ROUND copied"
expect "v4's parent is as it was" "$(db_sql v4 "$T_PROD" "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'parent'")" "id,name"
expect "v4's child keeps its foreign key" "$(db_sql v4 "$T_PROD" "SELECT count(*) FROM pg_constraint WHERE conname = 'child_parent_fkey'")" 1
expect "v4 has no labels table" "$(db_sql v4 "$T_PROD" "SELECT to_regclass('public.labels') IS NULL")" t

# --- the resync: made again, copied again, then followed ---
# (notes with attachments: a foreign key of attachments references it)
check "migrate rehearse $REMEDY (the remedy the refused cutover named)" \
	"$NUBO" migrate rehearse notes $REMEDY
expect "the remedy's rehearsal made the tables again" "$(step_result notes data Production "$((ROUND + 1))" -1 |
	python3 -c 'import json,sys; print(",".join(sorted(json.load(sys.stdin)["resynced"])))')" \
	"public.attachments,public.child,public.labels,public.notes,public.parent"
expect "and dropped the one dropped on the source" "$(step_result notes data Production "$((ROUND + 1))" -1 | jq_get dropped)" '["public.gone"]'
# again, the names given as a user may write them (repeated, quoted)
check "migrate rehearse --resync notes,attachments,labels --resync parent,child" \
	"$NUBO" migrate rehearse notes --resync notes,attachments,labels --resync public.parent,'"child"'
expect "the rehearsal made the tables again, in the order given" "$(step_result notes data Production "$((ROUND + 2))" -1 | jq_get resynced)" \
	'["public.notes", "public.attachments", "public.labels", "public.parent", "public.child"]'
expect "v4 has no table gone" "$(db_sql v4 "$T_PROD" "SELECT to_regclass('public.gone') IS NULL")" t
env_sql v3 Production "INSERT INTO notes (title, body, mood) VALUES ('later', 'after the resync', 'sleepy');
	INSERT INTO labels (note, text) VALUES (1, 'later'); UPDATE parent SET weight = 8 WHERE id = 1" >/dev/null
want=$(env_sql v3 Production "SELECT count(*) FROM notes")
for _ in $(seq 100); do
	[ "$(db_sql v4 "$T_PROD" "SELECT count(*) FROM notes")" = "$want" ] && break
	sleep 0.1
done
expect "writes after the resync follow" "$(db_sql v4 "$T_PROD" "SELECT mood FROM notes WHERE title = 'later'")" "sleepy"
expect "no load role is left on v4" "$(node_sql v4 "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'nubo_resync_%'")" 0
expect "v4's tables belong to the environment's role" \
	"$(db_sql v4 "$T_PROD" "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'public'")" "$T_PROD"

# --- and with no replication slot free on v3 (filled up by others): the
# cutover's baseline cannot mark the source; it is left out, saying why,
# and the verify during the downtime reads every table whole ---
free=$(node_sql v3 "SELECT current_setting('max_replication_slots')::int - count(*) FROM pg_replication_slots")
node_sql v3 "SELECT count(pg_create_logical_replication_slot('t6_filler_' || i, 'pgoutput')) FROM generate_series(1, $free) i" >/dev/null
expect "v3's replication slots are all taken" "$(node_sql v3 "SELECT current_setting('max_replication_slots')::int - count(*) FROM pg_replication_slots")" 0

# --- the cutover, asked for with v4's agent stopped (SIGSTOP: its port
# takes the connection, nothing answers): the request does not wait for
# it — its schema check gives up within seconds and the cutover's first
# step checks again once v4 answers; the data is equal (psql) ---
kill -STOP "$NODE_PID_v4"
t0=$(date +%s)
expect "a cutover asked for with v4 not answering is queued" \
	"$(status_as "$ADMIN_KEY" POST "/migrations/$(mid)/cutover" '{}')" 202
took=$(($(date +%s) - t0))
kill -CONT "$NODE_PID_v4"
[ "$took" -le 40 ] && pass "  within ${took} s (a request's node calls give up after 15)" ||
	fail "  the request took ${took} s"
for _ in $(seq 900); do
	case "$(round)" in *" cut-over"|*" failed"|*" copied") break;; esac
	sleep 0.2
done
expect "the cutover ran once v4 was back" "$(round | cut -d' ' -f2)" cut-over
R=$(round | cut -d' ' -f1)
base=$(step_result notes baseline Production "$R" -1)
expect "no slot free on v3: Production's baseline was left out" "$(jq_get baseline <<< "$base")" false
expect_match "  saying why" "$(jq_get why <<< "$base")" "replication slot"
ver=$(step_result notes verify Production "$R" -1)
expect "  the downtime's verify read every table whole" "$(jq -r 'has("by_key")' <<< "$ver")" false
expect_match "  and compared them" "$(jq -r '.tables // empty' <<< "$ver")" "^[1-9]"
node_sql v3 "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE slot_name LIKE 't6_filler_%'" >/dev/null
for q in "SELECT string_agg(id || ':' || title || ':' || coalesce(mood, '-'), ',' ORDER BY id) FROM notes" \
	"SELECT string_agg(id || ':' || note || ':' || text, ',' ORDER BY id) FROM labels" \
	"SELECT string_agg(id || ':' || name || ':' || coalesce(weight::text, '-'), ',' ORDER BY id) FROM parent" \
	"SELECT string_agg(id || ':' || parent, ',' ORDER BY id) FROM child"; do
	a=$(env_sql v3 Production "$q")
	b=$(env_sql v4 Production "$q")
	[ -n "$a" ] && [ "$a" = "$b" ] && pass "equal on both nodes: ${q##* FROM }" ||
		fail "${q##* FROM } differs: v3 '$a', v4 '$b'"
done
expect "the new column's values written after the DDL are on v4" \
	"$(env_sql v4 Production "SELECT string_agg(title || '=' || mood, ',' ORDER BY id) FROM notes WHERE mood <> 'calm'")" \
	"$(env_sql v3 Production "SELECT string_agg(title || '=' || mood, ',' ORDER BY id) FROM notes WHERE mood <> 'calm'")"
expect_match "(happy, excited and sleepy among them)" \
	"$(env_sql v4 Production "SELECT string_agg(mood, ',' ORDER BY id) FROM notes WHERE mood <> 'calm'")" "^happy,excited,sleepy$"
expect "v4 keeps the foreign key of child" "$(env_sql v4 Production "SELECT count(*) FROM pg_constraint WHERE conname = 'child_parent_fkey'")" 1
compare_envs v3 v4 Production "Production: rows and files equal (psql, sha256sum)"
finish
