# Helpers of the migration tests (t6-*): deploy the sample app, write notes
# and attachments through a node's router, and compare what two nodes hold
# independently of nubo's own checksums (psql and sha256sum).
# Sourced after lib.sh.

NOTES_PKG=$NUBO_BUILD/packages/notes-1.0.0.tar.gz
[ -f "$NOTES_PKG" ] || { echo "no $NOTES_PKG: run make examples" >&2; exit 1; }

# deploy NODE APP ENV: the sample package into NODE's repository through
# nubo (unless it is there already), then transport and start it on APP's
# ENV. Any of these failing ends the test (set -e), loudly.
deploy() {
	local node=$1 app=$2 env=$3
	if ! "$NUBO" packages show "$node" notes-1.0.0 >/dev/null 2>&1; then
		"$NUBO" packages upload "$node" "$NOTES_PKG" >/dev/null
	fi
	"$NUBO" envs transport "$app" "$env" notes-1.0.0 >/dev/null
	"$NUBO" envs start "$app" "$env" >/dev/null
}

# add_notes NODE HOSTPREFIX NOTES ATTACHMENTS: NOTES notes through NODE's
# router, the first one with ATTACHMENTS random attachments (64 kB each).
add_notes() {
	local node=$1 host=$2.nubo.localhost n=$3 a=$4 i id var
	var=ROUTER_${node//-/_}
	for i in $(seq "$n"); do
		id=$(curl -sf -H "Host: $host" -H 'Content-Type: application/json' \
			--data-binary "{\"title\":\"note $RANDOM\",\"body\":\"written on $node at $(date +%s.%N)\"}" \
			"http://127.0.0.1:${!var}/api/notes" | jq_get id) || return 1
		if [ "$i" = 1 ] && [ "$a" -gt 0 ]; then
			for _ in $(seq "$a"); do
				head -c 65536 /dev/urandom > "$T/attach.bin"
				curl -sf -H "Host: $host" --data-binary @"$T/attach.bin" \
					"http://127.0.0.1:${!var}/api/notes/$id/attachments?name=f$RANDOM.bin" >/dev/null || return 1
			done
		fi
	done
}

# notes_digest NODE HOSTPREFIX: one line summing up every note and the
# sha256 of every attachment, as the app serves them through NODE's router;
# when the router does not answer, a line naming it and exit status 1.
notes_digest() {
	local var=ROUTER_${1//-/_}
	python3 - "http://127.0.0.1:${!var}" "$2.nubo.localhost" <<'PY'
import hashlib, json, sys, urllib.request
base, host = sys.argv[1], sys.argv[2]
def get(p):
    req = urllib.request.Request(base + p, headers={"Host": host})
    with urllib.request.urlopen(req, timeout=20) as r:
        return r.read()
try:
    notes = json.loads(get("/api/notes"))
except Exception as e:
    # never a digest: names the router (two unreachable ones do not
    # compare equal) and fails (an assignment from it ends the test)
    print(f"unreachable: {host} at {base}: {e}"); sys.exit(1)
if isinstance(notes, dict):
    notes = notes.get("notes", [])
h = hashlib.sha256()
count = files = 0
for n in sorted(notes, key=lambda n: n["id"]):
    count += 1
    h.update(json.dumps([n["id"], n["title"], n["body"], n.get("created_at")]).encode())
    for a in n.get("attachments", []):
        files += 1
        h.update(a["uuid"].encode() + hashlib.sha256(get("/api/attachments/" + a["uuid"])).hexdigest().encode())
print(f"{count} notes, {files} attachments, {h.hexdigest()[:16]}")
PY
}

# step_result APP STEP ENV ROUND [N]: the result of that step of APP's
# migration N (0 the first, the default; -1 the newest), as JSON.
step_result() {
	api_as "$ADMIN_KEY" GET "/migrations/$(api_as "$ADMIN_KEY" GET "/migrations?app=$1" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["migrations"][int(sys.argv[1])]["id"])' "${5:-0}")" |
		python3 -c '
import json, sys
m = json.load(sys.stdin)
for s in m["steps"]:
    if s["name"] == sys.argv[1] and (s.get("environment") or "") == sys.argv[2] and s["round"] == int(sys.argv[3]):
        print(json.dumps(s.get("result")))
        break
else:
    print("{}")' "$2" "$3" "$4"
}

# env_sql NODE ENV SQL: run SQL in ENV's database on NODE (as its role,
# password from the node's env.json), unaligned output.
env_sql() {
	local node=$1 env=$2 id pw pg
	id=$(api_as "$ADMIN_KEY" GET "/nodes/$node" | python3 -c '
import json, sys
for e in json.load(sys.stdin)["environments"]:
    if e["name"] == sys.argv[1]: print(e["id"])' "$env")
	pw=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["db_password"])' "$T/node-$node/envs/$id/env.json")
	pg=$(sed -n 3p "$T/node-$node.ports")
	PGPASSWORD=$pw psql -X -A -t -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg" -U "env_$id" "env_$id" -c "$3"
}

# db_sql NODE DB SQL: SQL as the node's admin in database DB
db_sql() {
	local pg pw
	pg=$(sed -n 3p "$T/node-$1.ports")
	pw=$(jq_get password < "$T/node-$1/pg/admin.json")
	PGPASSWORD=$pw psql -X -A -t -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg" -U nubo_admin "$2" -c "$3"
}
# leftovers NODE DB: what replication left on NODE's cluster: slots,
# publications in DB, subscriptions, replication roles, pg_hba rules,
# records
leftovers() {
	echo "slots=$(db_sql "$1" postgres "SELECT count(*) FROM pg_replication_slots")" \
		"publications=$(db_sql "$1" "$2" "SELECT count(*) FROM pg_publication")" \
		"subscriptions=$(db_sql "$1" postgres "SELECT count(*) FROM pg_subscription")" \
		"roles=$(db_sql "$1" postgres "SELECT count(*) FROM pg_roles WHERE rolreplication AND rolname <> 'nubo_admin'")" \
		"rules=$(grep -c nubo_repl_ "$T/node-$1/pg/data/pg_hba.conf" || true)" \
		"records=$(find "$T/node-$1/replication" -type f 2>/dev/null | wc -l)"
}
NOTHING="slots=0 publications=0 subscriptions=0 roles=0 rules=0 records=0"

# env_dir NODE ENV: the environment's folder on NODE.
env_dir() {
	local id
	id=$(api_as "$ADMIN_KEY" GET "/nodes/$1" | python3 -c '
import json, sys
for e in json.load(sys.stdin)["environments"]:
    if e["name"] == sys.argv[1]: print(e["id"])' "$2")
	echo "$T/node-$1/envs/$id"
}

# bulk_rows NODE ENV N: N more rows (~120 bytes each) in table bulk.
bulk_rows() {
	env_sql "$1" "$2" "CREATE TABLE IF NOT EXISTS bulk (id bigserial PRIMARY KEY, payload text NOT NULL);
		INSERT INTO bulk (payload) SELECT repeat(md5(random()::text), 3) FROM generate_series(1, $3)" >/dev/null
}

# env_fingerprint NODE ENV: the environment's database (per table: count and
# md5 of the rows in order) and file store (sha256sum of every file; every
# file's and folder's mode, and its owner: "app" for the environment's own
# user, whose uid differs from node to node), read straight from the
# node's PostgreSQL and disk with psql, find and sha256sum.
env_fingerprint() {
	local t dir uid
	dir=$(env_dir "$1" "$2")
	uid=$(jq_get uid < "$dir/env.json")
	{
		for t in $(env_sql "$1" "$2" "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog','information_schema') AND table_type = 'BASE TABLE' ORDER BY 1"); do
			env_sql "$1" "$2" "SELECT '$t', count(*), md5(COALESCE(string_agg(t::text, '|' ORDER BY t::text), '')) FROM $t t"
		done
		(cd "$dir/files" 2>/dev/null && find . -type f ! -path './.nubo-*' -print0 | sort -z | xargs -0 -r sha256sum)
		(cd "$dir/files" 2>/dev/null && find . -mindepth 1 ! -path './.nubo-*' -printf '%P %y %m %U:%G\n' | sort | sed "s/ $uid:$uid\$/ app/")
	} | sha256sum | cut -c1-16
}

# env_foreign NODE ENV: what in the environment's file store its own user
# does not own (one line each; nothing when all is the app's).
env_foreign() {
	local dir uid
	dir=$(env_dir "$1" "$2")
	uid=$(jq_get uid < "$dir/env.json")
	(cd "$dir/files" && find . ! -path './.nubo-*' \( ! -uid "$uid" -o ! -gid "$uid" \) -printf '%P %U:%G %m\n')
}

# compare_envs A B ENV NAME: the fingerprints of ENV on nodes A and B match
# (and are not the fingerprint of nothing).
compare_envs() {
	local a b
	a=$(env_fingerprint "$1" "$3")
	b=$(env_fingerprint "$2" "$3")
	if [ "$a" = "$(printf '' | sha256sum | cut -c1-16)" ]; then
		fail "$4: nothing to compare on $1"
		return
	fi
	expect "$4" "$b" "$a"
}

# Fault tests: the test hook pauses a process at a named point while
# $NUBO_TEST_PAUSE_FILE names it (see src/common/testhook.c).
# pause_at POINT: arm the hook (and release whoever waits at another point).
# The file is replaced in one rename: a process polling it never reads it
# half-written (empty) and runs past the new point.
pause_at() {
	rm -f "$T/pause.reached"
	echo "$1" > "$T/pause.new"
	mv -f "$T/pause.new" "$T/pause"
}
# reached POINT: wait until a process is paused there (at most 120 s).
reached() {
	local i
	for i in $(seq 1200); do
		[ "$(cat "$T/pause.reached" 2>/dev/null)" = "$1" ] && return 0
		sleep 0.1
	done
	echo "never paused at $1" >&2
	return 1
}
unpause() { rm -f "$T/pause" "$T/pause.reached"; }
# kill9_node NAME / restart_node NAME GEN: kill a node's agent with SIGKILL;
# start it again and wait for its agent.
kill9_node() {
	local var=NODE_PID_$1
	if ! ours "${!var}" "$T/node-$1"; then
		# never kill a recycled pid: the agent exited by itself
		fail "node $1's agent (pid ${!var}) had already exited"
		tail -n 20 "$T/node-$1.log" >&2
		return 0
	fi
	kill -KILL "${!var}"
	wait "${!var}" 2>/dev/null || true
}
restart_node() {
	local var=NODE_URL_$1
	start_node "$1" "$2"
	wait_http "${!var}/agent/v1/node" 60
}

# mstate FIELD: a field of the migration of app shop (or $MIG_APP);
# wait_failed_or: until its job stopped (failed, retrying, waiting for the
# next phase, or finished).
mstate() { api_as "$ADMIN_KEY" GET "/migrations?app=${MIG_APP:-shop}" | jq_get "migrations.0.$1"; }
wait_failed_or() {
	local i
	for i in $(seq 600); do
		case "$(mstate status)" in failed|retrying|waiting|finished) return 0;; esac
		sleep 0.2
	done
}

# writer_start HOSTPREFIX: notes through v3's router until writer_stop,
# every id the app acknowledged (its INSERT committed) appended to
# $T/written; it ends by itself when the test's folder is gone (a test
# that ended early), so that it never outlives the test.
writer_start() {
	: > "$T/written"
	(
		while [ -d "$T" ] && [ ! -e "$T/writer.stop" ]; do
			id=$(curl -sf -m 5 -H "Host: $1.nubo.localhost" -H 'Content-Type: application/json' \
				--data-binary '{"title":"live","body":"written while replicating"}' \
				"http://127.0.0.1:$ROUTER_v3/api/notes" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null) &&
				echo "$id" >> "$T/written"
			sleep 0.05
		done
	) &
	WRITER=$!
}
writer_stop() {
	touch "$T/writer.stop"
	wait "$WRITER" 2>/dev/null || true
}

# agent NODE METHOD PATH [BODY]: call the node's agent as the portal does;
# prints the HTTP status, the answer is in $T/agent.json (answer FIELD)
agent() {
	local var=NODE_URL_$1 secret args=()
	secret=$(jq_get portal_secret < "$T/node-$1/agent.json")
	[ -n "${4:-}" ] && args=(-H 'Content-Type: application/json' --data-binary "$4")
	curl -s -o "$T/agent.json" -w '%{http_code}' -X "$2" \
		-H "Authorization: Bearer $secret" "${args[@]}" "${!var}/agent/v1$3"
}
answer() { jq_get "$1" < "$T/agent.json"; }
