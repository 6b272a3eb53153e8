#!/usr/bin/env bash
# t6-migration-rollback: abort before the cutover leaves the source untouched
# and serving (and the target available again; an abort asked while a
# rehearsal waits for the dead target stops its retries, and finishes by
# itself once the target is back); rollback after the cutover
# serves from the source again, warns that writes made on the target are
# not copied back, withdraws the offboarding request; a new migration then
# works, and once the offboarding is approved rollback is refused. The
# app's custom domain moves with it each time (the temporary app stands
# for the app), and no other app can take it meanwhile. After the abort and
# after the rollback the target's environments are clean (no settings,
# secrets, tables, files nor packages of the app), and so is a node linked
# to another app.
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
# a custom domain on the source, and another app (on a node that never
# starts: settings live in the portal) that would like it
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=crm.example.test \
	-addext subjectAltName=DNS:crm.example.test -keyout "$T/crm.key" -out "$T/crm.crt" 2>/dev/null
check "custom domain on the source" "$NUBO" settings domain-add crm Production crm.example.test --cert "$T/crm.crt" --key "$T/crm.key"
OTHER=$(make_user other@example.com)
"$NUBO" admin nodes create spare --generation v4 >/dev/null
NUBO_API_KEY=$OTHER "$NUBO" apps create rival --no-sandbox >/dev/null
"$NUBO" nodes link spare rival >/dev/null
domains() { "$NUBO" settings show "$1" Production --json | python3 -c 'import json,sys; print(",".join(sorted(json.load(sys.stdin)["settings"].get("domains", {}))))'; }
rival_claims() { check_fails "$1" 1 env NUBO_API_KEY="$OTHER" "$NUBO" settings domain-add rival Production crm.example.test --cert "$T/crm.crt" --key "$T/crm.key"
	expect_match "$1: named" "$(cat "$T/last.err")" "custom domain 'crm.example.test' is already used by another app$"; }
# custom domains held by the environments of node v4 (the target)
v4_domains() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM environment_settings s JOIN environments e ON e.id = s.environment_id JOIN nodes n ON n.id = e.node_id, json_each(s.doc_json, \"$.domains\") d WHERE n.name = ?", ("v4",)).fetchone()[0])' "$T/portal/portal.db"; }
rival_claims "another app cannot take the domain"
# settings, a secret, a constant and a runtime setting on the source
SECRET=s3cr3t-$RANDOM$RANDOM
check "a variable on the source" "$NUBO" settings env-set crm Production PLAIN_VAR plain-$SECRET
printf '%s' "$SECRET" > "$T/secret"
check "a secret on the source" "$NUBO" settings env-set crm Production API_TOKEN --secret < "$T/secret"
check "a constant on the source" "$NUBO" settings set-constant crm Production Greeting "Hello $SECRET"
# pgq SQL DB: a query on v4's PostgreSQL as its admin
pgq() {
	PGPASSWORD=$(jq_get password < "$T/node-v4/pg/admin.json") psql -X -h 127.0.0.1 \
		-p "$(sed -n 3p "$T/node-v4.ports")" -U nubo_admin -d "$2" -v ON_ERROR_STOP=1 -Atc "$1"
}
# v4_clean LABEL: nothing of crm is left in v4's environments (portal and node)
v4_clean() {
	local id dir tables
	expect "$1: no settings in the portal" "$(sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM environment_settings s JOIN environments e ON e.id = s.environment_id JOIN nodes n ON n.id = e.node_id WHERE n.name = 'v4' AND s.doc_json NOT IN ('{}', '')")" 0
	expect "$1: no package deployed" "$(sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM environments e JOIN nodes n ON n.id = e.node_id WHERE n.name = 'v4' AND (e.package IS NOT NULL OR e.state != 'notdeployed')")" 0
	expect "$1: no snapshot" "$(sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM snapshots s JOIN nodes n ON n.id = s.node_id WHERE n.name = 'v4'")" 0
	expect "$1: the secret is nowhere on the node" "$(grep -rlF "$SECRET" "$T/node-v4/envs" "$T/node-v4/packages" | wc -l)" 0
	expect "$1: no package in the repository" "$(ls "$T/node-v4/packages" | wc -l)" 0
	for id in $(sqlite3 "$T/portal/portal.db" "SELECT e.id FROM environments e JOIN nodes n ON n.id = e.node_id WHERE n.name = 'v4'"); do
		dir=$T/node-v4/envs/$id
		expect "$1: environment $id on the node again" "$(jq_get state < "$dir/env.json")" notdeployed
		expect "$1: no files in $id" "$(find "$dir/files" -mindepth 1 2>/dev/null | wc -l)" 0
		expect "$1: no app in $id" "$(find "$dir/app" -mindepth 1 2>/dev/null | wc -l)" 0
		if [ "$(pgq "SELECT count(*) FROM pg_database WHERE datname = 'env_$id'" postgres)" = 1 ]; then
			tables=$(pgq "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog','information_schema')" "env_$id") ||
				fail "$1: cannot count the tables of env_$id"
			expect "$1: no tables in env_$id" "$tables" 0
		else
			pass "$1: no database env_$id"
		fi
	done
}

# a domain another app holds (one stored before the rules, planted) stops
# the migration at once: 409, no migration, nothing changed
python3 - "$T/portal/portal.db" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
env = lambda node: db.execute("SELECT e.id FROM environments e JOIN nodes n ON n.id = e.node_id WHERE n.name = ? AND e.name = 'Production'", (node,)).fetchone()[0]
crm = json.loads(db.execute("SELECT doc_json FROM environment_settings WHERE environment_id = ?", (env("v3"),)).fetchone()[0])
db.execute("INSERT INTO environment_settings (environment_id, doc_json, version) VALUES (?, ?, 1)"
           " ON CONFLICT (environment_id) DO UPDATE SET doc_json = excluded.doc_json",
           (env("spare"), json.dumps({"domains": {"crm.example.test": crm["domains"]["crm.example.test"]}})))
db.commit()
PY
check_fails "migration of a domain another app holds refused" 1 "$NUBO" migrate start crm --to v4
expect_match "naming it (to the admin: which app)" "$(cat "$T/last.err")" "custom domain 'crm.example.test' is already used by environment 'Production' of app 'rival'"
expect "409 DOMAIN_TAKEN" "$(api_as "$ADMIN_KEY" POST /migrations '{"app":"crm","to":"v4","mode":"start"}' | jq_get error.code)" DOMAIN_TAKEN
expect "no migration made" "$(api_as "$ADMIN_KEY" GET '/migrations?app=crm' | jq_get migrations)" "[]"
expect "target still available" "$(api_as "$ADMIN_KEY" GET /nodes/v4 | jq_get status)" available
check "the other app gives it up" env NUBO_API_KEY="$OTHER" "$NUBO" settings domain-remove rival Production crm.example.test

# estimate FIELD: the plan's downtime estimate for Production, as JSON
# (seconds, basis), with the figures it says it used checked against the
# migrations' own records: ok, or what does not add up
estimate() {
	"$NUBO" migrate plan crm --to v4 --dump --json > "$T/plan.json" || { echo "plan failed"; return; }
	local id
	: > "$T/migs.json"
	for id in $(api_as "$ADMIN_KEY" GET '/migrations?app=crm' | python3 -c 'import json,sys; print(*[m["id"] for m in json.load(sys.stdin)["migrations"]])'); do
		api_as "$ADMIN_KEY" GET "/migrations/$id" >> "$T/migs.json" || { echo "migration $id unreadable"; return; }
		echo >> "$T/migs.json"
	done
	# the records the estimate names, when it names them
	python3 -c 'import json,sys; b=[e for e in json.load(sys.stdin)["environments"] if e["environment"] == "Production"][0]["estimate_basis"]; print((b.get("snapshot") or {}).get("id", "-"), (b.get("start_job") or {}).get("id", "-"))' < "$T/plan.json" > "$T/named"
	read -r snap job < "$T/named"
	{ [ "$snap" = - ] && echo '{}' || api_as "$ADMIN_KEY" GET "/apps/crm/environments/Production/snapshots/$snap"; } > "$T/snap.json"
	{ [ "$job" = - ] && echo '{}' || api_as "$ADMIN_KEY" GET "/jobs/$job"; } > "$T/job.json"
	python3 - "$T/plan.json" "$T/migs.json" "$T/snap.json" "$T/job.json" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))
migs = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
snap, job = json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
e = [x for x in plan["environments"] if x["environment"] == "Production"][0]
secs, b = e["estimated_downtime_seconds"], e["estimate_basis"]
def step(m, phase, name):
    r = [s for s in m["steps"] if s["phase"] == phase and s["name"] == name and s.get("environment") == "Production" and s["state"] == "done"]
    return r[-1]["result"] if r else None
def grown(bytes0, secs0):
    if bytes0 >= 64 * 1048576:
        return secs0 * e["database_bytes"] / bytes0
    return secs0 + max(e["database_bytes"] - bytes0, 0) / (30.0 * 1048576)
if b["measured"] == "elsewhere":
    # the dump as the snapshot measured it, the start as its job did;
    # no restore on v4 yet: the load as long as the dump
    dump = grown(snap["dump_size"], snap["dump_ms"] / 1000.0) if "snapshot" in b else e["database_bytes"] / (30.0 * 1048576)
    start = job["run_ms"] / 1000.0 if "start_job" in b else 2.0
    ok = ("snapshot" not in b or (b["snapshot"]["ms"] == snap["dump_ms"] > 0 and snap["state"] == "completed")) \
        and ("start_job" not in b or (b["start_job"]["ms"] == job["run_ms"] > 0 and job["kind"] in ("env.start", "env.restart") \
            and job["app"] == "crm" and job["environment"] == "Production" and job["state"] == "completed")) \
        and "restore" not in b and abs(b["load_seconds"] - dump) < 0.01 and "no restore on this node" in b["text"] \
        and abs(b["dump_seconds"] - dump) < 0.01 and abs(b["start_seconds"] - start) < 0.01 \
        and abs(secs - (3 * dump + start + 1.0)) < 0.01
    print("elsewhere%s%s" % (" snapshot" if "snapshot" in b else "", " start" if "start_job" in b else ""), end=" ")
elif b["measured"] == "nothing":
    ok = abs(secs - (3.0 + e["database_bytes"] / (30.0 * 1048576))) < 0.01 and "nothing measured" in b["text"]
elif b["measured"] == "start":
    m = [x for x in migs if x["id"] == b["migration"]][0]
    copy, verify, start = (step(m, "start", n)["seconds"] for n in ("data", "verify", "start"))
    grow = max(e["database_bytes"] - b["database_bytes"], 0) / (30.0 * 1048576)
    ok = abs(b["copy_seconds"] - copy) < 0.01 and abs(b["verify_seconds"] - verify) < 0.01 and abs(b["start_seconds"] - start) < 0.01 \
        and b["database_bytes"] == step(m, "start", "data")["database_bytes"] \
        and abs(secs - (copy + grow + verify + start + 1.0)) < 0.01
elif b["measured"] == "cutover":
    m = [x for x in migs if x["id"] == b["migration"]][0]
    grow = max(e["database_bytes"] - b["database_bytes"], 0) / (30.0 * 1048576)
    ok = abs(b["downtime_seconds"] * 1000 - step(m, "cutover", "served")["downtime_ms"]) < 1 \
        and b["database_bytes"] == step(m, "cutover", "data")["database_bytes"] \
        and abs(b["copy_seconds"] - step(m, "cutover", "data")["seconds"]) < 0.01 \
        and abs(secs - (b["downtime_seconds"] + grow)) < 0.01
else:
    ok = False
print("%s %s" % (b["measured"], "ok" if ok and secs > 0 else "does not add up: %s %s" % (secs, json.dumps(b))))
PY
}
expect "before any migration and any snapshot the estimate scales the environment's measured start" "$(estimate)" "elsewhere start elsewhere ok"
check "a snapshot" "$NUBO" backups create crm Production
expect "then it scales the snapshot's measured dump too" "$(estimate)" "elsewhere snapshot start elsewhere ok"

# --- abort ---
check "start" "$NUBO" migrate start crm --to v4 --dump
expect_match "after the first copy, status estimates the cutover from it" "$("$NUBO" migrate status crm)" "Production +[0-9.]+ s — measured in the first copy of migration [0-9]+: copy [0-9.]+ s, verify"
expect "target linked to the temporary app" "$(api_as "$ADMIN_KEY" GET /nodes/v4 | jq_get app)" "$(mstate 0 temporary_app)"
expect "the domain moved with the settings to the temporary app's environment" "$(domains "$(mstate 0 temporary_app)")" crm.example.test
expect "settings step left nothing behind" "$(step_result crm settings Production 0 | jq_get not_carried_over)" "[]"
# one settings file holds it (the app's own log shows its greeting too)
expect "the secret went to the target" "$(grep -rlF --exclude-dir=logs "$SECRET" "$T/node-v4/envs" | wc -l)" 1
expect_match "the tables went to the target" "$(env_sql v4 Production "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")" '^[1-9]'
rival_claims "during the migration another app cannot take it"
check_fails "rollback before cutover refused" 1 "$NUBO" migrate rollback crm
expect_match "rollback says why" "$(cat "$T/last.err")" "only possible after the cutover"
# a rehearsal that meets a dead target waits to try again (retrying);
# abort stops the retries and runs, waiting for v4 itself in turn
kill9_node v4
"$NUBO" migrate rehearse crm --no-wait >/dev/null
for _ in $(seq 240); do [ "$(mstate 0 status)" = retrying ] && break; sleep 0.25; done
expect "a rehearsal whose target is down waits to try again" "$(mstate 0 status)" retrying
expect_match "  and says abort gives up" "$(mstate 0 next)" "tried again by itself once it answers; to give up: nubo migrate abort crm --to v4"
check_fails "  a rehearsal asked again is refused: busy" 1 "$NUBO" migrate rehearse crm
expect_match "  says so" "$(cat "$T/last.err")" "is running a step: wait for it"
check "abort stops the retries" "$NUBO" migrate abort crm --no-wait
expect_match "  the rehearsal's error says what stopped it" "$("$NUBO" migrate status crm --json | python3 -c '
import json, sys
m = json.load(sys.stdin)
print([s["error"] for s in m["steps"] if s["phase"] == "rehearse" and s["state"] == "failed"][-1])')" "cannot reach the node at"
for _ in $(seq 240); do [ "$(mstate 0 status)" = retrying ] && break; sleep 0.25; done
expect "  the abort waits for v4 in turn" "$(mstate 0 state) $(mstate 0 status)" "aborting retrying"
restart_node v4 v4
check "abort finishes once v4 is back" "$NUBO" migrate status crm --follow
expect "aborted" "$(mstate 0 state)" aborted
expect "source untouched" "$(env_fingerprint v3 Production)" "$fp"
expect "source serving" "$(notes_digest v3 crm-production)" "$src"
expect "source still linked" "$(api_as "$ADMIN_KEY" GET /apps/crm | jq_get node)" v3
expect "target available again" "$(api_as "$ADMIN_KEY" GET /nodes/v4 | jq_get status)" available
expect "temporary app gone" "$(api_as "$ADMIN_KEY" GET /apps | python3 -c 'import json,sys; print(sum(a["temporary"] for a in json.load(sys.stdin)["apps"]))')" 0
expect "no offboarding request" "$(api_as "$ADMIN_KEY" GET /offboarding-requests | jq_get offboarding_requests)" "[]"
check_fails "abort twice refused" 1 "$NUBO" migrate abort crm
rival_claims "after the abort another app cannot take it"
expect "the target gave the domain back" "$(v4_domains)" 0
v4_clean "after the abort"
expect "after the aborted copy the estimate comes from its measured steps" "$(estimate)" "start ok"

# --- rollback ---
check "run again to the cutover" "$NUBO" migrate start crm --to v4 --dump
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
expect "the domain stays the app's after the rollback" "$(domains crm)" crm.example.test
rival_claims "after the rollback another app cannot take it"
expect "the target gave it back" "$(v4_domains)" 0
v4_clean "after the rollback"
expect "after a cutover the estimate comes from its measured downtime" "$(estimate)" "cutover ok"
expect_match "cli plan says what the estimate comes from" "$("$NUBO" migrate plan crm --to v4 --dump)" "downtime estimate: measured at a cutover to this node \\(migration [0-9]+, Production\\): down [0-9.]+ s"

# --- a third migration; rollback refused once offboarding is approved ---
check "run" "$NUBO" migrate run crm --to v4 --dump
expect "run by an admin goes through the approval to the end" "$(mstate 2 state)" completed
expect "linked to v4" "$(api_as "$ADMIN_KEY" GET /apps/crm | jq_get node)" v4
check_fails "rollback after approval refused" 1 "$NUBO" migrate rollback crm
expect "v4 serves everything v3 had" "$(notes_digest v4 crm-production)" "$src"
expect "the app keeps its domain on the new node" "$(domains crm)" crm.example.test
rival_claims "after the migration another app cannot take it"
check "the app can still renew it" "$NUBO" settings domain-add crm Production crm.example.test --cert "$T/crm.crt" --key "$T/crm.key"
expect "the secret is on v4 with the app" "$(grep -rlF --exclude-dir=logs "$SECRET" "$T/node-v4/envs" | wc -l)" 1

# --- another app linked to v4 takes over none of crm's environments ---
"$NUBO" apps create shop --no-sandbox >/dev/null
expect "a tag on crm's Production" "$(api_as "$ADMIN_KEY" PUT /apps/crm/environments/Production/tags/crm-only | jq_get tags.0)" crm-only
check "link another app to v4" "$NUBO" nodes link v4 shop
expect "shop's Production has none of crm's tags" "$(api_as "$ADMIN_KEY" GET /apps/shop/environments/Production/tags | jq_get tags)" "[]"
expect "crm is a Free App again" "$(api_as "$ADMIN_KEY" GET /apps/crm | jq_get node)" ""
v4_clean "after linking another app"
shop_settings=$("$NUBO" settings show shop Production --json) || fail "settings show shop Production"
expect "shop's Production has none of crm's variables, secret or constant" "$(printf '%s' "$shop_settings" | grep -cE "PLAIN_VAR|API_TOKEN|$SECRET")" 0
expect_match "the node's log says so" "$(api_as "$ADMIN_KEY" GET /nodes/v4/activity | python3 -c 'import json,sys; print([a["detail"] for a in json.load(sys.stdin)["activity"] if a["action"] == "node.cleaned"][0])')" "cleaned the environments of node 'v4' \(another app was linked\)"
deploy v4 shop Production
expect "shop runs on the clean environment" "$(notes_digest v4 shop-production | cut -d' ' -f1-4)" "0 notes, 0 attachments,"

finish
