# Shared harness for the end-to-end tests: a throwaway cloud on loopback in
# a temporary folder, real binaries, and small assertion helpers.
# Source it, call the start_* functions you need, then `finish`.
set -euo pipefail

# The system's programs first: a python3 behind a version manager's shim
# costs a shell start per call, and the tests call it thousands of times.
PATH=/usr/bin:/bin:$PATH
NUBO_SRC=${NUBO_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
NUBO_BUILD=${NUBO_BUILD:-$NUBO_SRC/build}
NUBOD=$NUBO_BUILD/nubod
NUBO=$NUBO_BUILD/nubo

T=$(mktemp -d /tmp/nubo-test.XXXXXX)
chmod 755 "$T"
# The portal's sealing key, outside its data folder (--secrets-key).
SECRETS_KEY=$T/secrets.key
export XDG_CONFIG_HOME=$T/config
# No nightly snapshots in tests unless a test asks (t5 sets a time).
export NUBO_NIGHTLY_TIME=${NUBO_NIGHTLY_TIME:-off}
# Daemons write "POINT PID" here as they pass named points (testhook_mark:
# a scheduler pass, a heartbeat, the end of a download); see wait_passes.
export NUBO_TEST_MARK_FILE=$T/marks
# Sanitizer builds (make asan): every report of every process started
# from here — daemons, the CLI, tools — goes to a file in $T/sanitizer
# (one per process), which finish() fails the test on: a report is never
# hidden behind an expected exit status. Instances get no environment of
# ours; their reports land in their app.log, which finish() reads too.
mkdir -m 1777 "$T/sanitizer"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T/sanitizer/report"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$T/sanitizer/report"
PIDS=()
NODE_DIRS=()
# TLS (t8): curl's options for the portal's and nodes' URLs (--cacert),
# the scheme and options of the portal, the nodes' scheme.
CURL_TLS=()
PORTAL_SCHEME=${PORTAL_SCHEME:-http}
PORTAL_ARGS=()
NODE_SCHEME=${NODE_SCHEME:-http}
PASSED=0
FAILED=0

# ours PID [WHAT]: PID is still a daemon of this test (its command line
# names WHAT, by default this test's folder). A daemon that died leaves its
# pid to be reused — by another test's portal, on a machine running many —
# so no pid is signalled without this check.
ours() {
	grep -qaF -- "${2:-$T}" "/proc/$1/cmdline" 2>/dev/null
}

# Stop every daemon this test started: SIGTERM, then SIGKILL after 5 s.
stop_all() {
	local pid
	for pid in "${PIDS[@]}"; do
		ours "$pid" && kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do ours "$pid" || break; sleep 0.1; done
		ours "$pid" && kill -KILL "$pid" 2>/dev/null || true
	done
	# Nodes leave apps, nginx and PostgreSQL running when they stop (they
	# re-adopt them); stop those for good.
	local d
	for d in "${NODE_DIRS[@]}"; do
		"$NUBOD" node stop-all --data "$d" >/dev/null 2>&1 || true
	done
	NODE_DIRS=()
	# Whatever still names this test's folder (an nginx, a sandbox, an
	# app a node or its stop-all lost track of) is killed, said on
	# stderr: a test leaves nothing running on the machine.
	local left=() p
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		[ "$p" != $$ ] && [ "$p" != "$BASHPID" ] && ours "$p" && left+=("$p")
	done
	if [ ${#left[@]} -gt 0 ]; then
		echo "# left running, killed: $(for p in "${left[@]}"; do
			tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-80
			echo -n "; "; done)" >&2
		kill -KILL "${left[@]}" 2>/dev/null || true
	fi
}

# loop_disk SIZE MKFS-OPTIONS…: an ext4 filesystem of SIZE (truncate's
# units) on a loop device made here: sets LOOP; mount it yourself at
# $DISK. On exit the daemons stop, $DISK is unmounted and the device
# detached. A test without root or loop devices fails and finishes.
LOOP=
DISK=$T/disk
loop_disk() {
	local size=$1
	shift
	if [ "$(id -u)" != 0 ] || ! command -v losetup >/dev/null ||
		! command -v mkfs.ext4 >/dev/null || [ ! -e /dev/loop-control ]; then
		fail "needs root, losetup, mkfs.ext4 and loop devices (/dev/loop-control)"
		finish
		exit 1
	fi
	trap 'loop_release; cleanup' EXIT
	truncate -s "$size" "$T/disk.img"
	LOOP=$(losetup -f --show "$T/disk.img")
	mkfs.ext4 -q -F "$@" "$LOOP"
	mkdir -p "$DISK"
}
loop_release() {
	stop_all
	if mountpoint -q "$DISK"; then
		umount "$DISK" || umount -l "$DISK"
	fi
	if [ -n "$LOOP" ]; then
		losetup -d "$LOOP"
		LOOP=
	fi
}

cleanup() {
	stop_all
	free_ports_release
	if [ -n "${NUBO_KEEP:-}" ]; then
		echo "kept $T" >&2
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT

# A free TCP port on 127.0.0.1 for a daemon of this test, in 10000-19999:
# below the kernel's ephemeral range, where every outgoing connection
# takes its local port (a port picked there can be taken between this
# check and the daemon's bind), and below the nodes' instance range
# (20000-32767). A lock folder (PORT_LOCKS/PORT, holding this test's pid)
# keeps the port this test's until it ends, so that tests running at the
# same time never pick the same one; a dead test's locks are taken over.
PORT_LOCKS=/tmp/nubo-test-ports
free_port() {
	python3 - "$PORT_LOCKS" "$$" <<'PY'
import os, random, shutil, socket, sys, time
locks, me = sys.argv[1], sys.argv[2]
os.makedirs(locks, mode=0o1777, exist_ok=True)
for _ in range(2000):
    port = random.randint(10000, 19999)
    lock = os.path.join(locks, str(port))
    try:
        os.mkdir(lock)
    except FileExistsError:
        try:
            os.kill(int(open(os.path.join(lock, "pid")).read()), 0)
            continue                    # a live test's
        except ProcessLookupError:
            pass                        # its test is gone
        except (OSError, ValueError):
            if time.time() - os.stat(lock).st_mtime < 60:
                continue                # being taken right now
        try:                            # one taker wins the rename
            os.rename(lock, "%s.stale.%s" % (lock, me))
        except OSError:
            continue
        shutil.rmtree("%s.stale.%s" % (lock, me), ignore_errors=True)
        continue
    with open(os.path.join(lock, "pid"), "w") as f:
        f.write(me)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        shutil.rmtree(lock, ignore_errors=True)
        continue
    finally:
        s.close()
    print(port)
    sys.exit(0)
sys.exit("free_port: no free port in 10000-19999")
PY
}

# Give back the ports free_port handed to this test.
free_ports_release() {
	local d
	for d in "$PORT_LOCKS"/*/; do
		[ "$(cat "$d/pid" 2>/dev/null)" = "$$" ] && rm -rf "$d"
	done
	return 0
}

# Wait until URL answers (any HTTP status), at most $2 seconds (default 20).
wait_http() {
	local url=$1 limit=${2:-20} i
	for i in $(seq $((limit * 10))); do
		if curl -s "${CURL_TLS[@]}" -o /dev/null "$url"; then return 0; fi
		sleep 0.1
	done
	echo "timed out waiting for $url" >&2
	return 1
}

# passes POINT PID: how many times process PID passed POINT so far.
passes() {
	[ -f "$NUBO_TEST_MARK_FILE" ] || { echo 0; return 0; }
	grep -c "^$1 $2\$" "$NUBO_TEST_MARK_FILE" || [ $? = 1 ]
}

# wait_passes POINT PID N [FROM]: wait until process PID passed POINT N
# more times than FROM (default: than it has now), at most 120 s: what a
# test waits for instead of a sleep that would "prove" that nothing
# happened.
wait_passes() {
	local want i
	want=$((${4:-$(passes "$1" "$2")} + $3))
	for i in $(seq 1200); do
		[ "$(passes "$1" "$2")" -ge "$want" ] && return 0
		sleep 0.1
	done
	fail "process $2 did not pass '$1' $3 more time(s) in 120 s"
	return 1
}

# env_id NODE ENV: the id of environment ENV on node NODE (the node's
# envs/<id> folder, the agent's /environments/<id>)
env_id() { sqlite3 "$T/portal/portal.db" "SELECT e.id FROM environments e JOIN nodes n ON n.id = e.node_id WHERE n.name = '$1' AND e.name = '$2'"; }
# env_state APP ENV [FIELD]: the portal's view of an environment (state)
env_state() { "$NUBO" envs show "$1" "$2" --json | jq_get "${3:-state}"; }
# wait_env_state APP ENV WANT SECONDS: 0 once the portal says WANT
wait_env_state() {
	local i
	for i in $(seq $(($4 * 5))); do
		[ "$(env_state "$1" "$2")" = "$3" ] && return 0
		sleep 0.2
	done
	return 1
}

# start_notes APP NODE PKG: app APP (no sandbox) linked to a new v3 node
# NODE, the sample notes app (package file PKG) running in its Test
start_notes() {
	check "create app" "$NUBO" apps create "$1" --no-sandbox
	start_node "$2" v3 --start-timeout 30 --stop-grace 3
	check "link" "$NUBO" nodes link "$2" "$1"
	"$NUBO" packages upload "$2" "$3" >/dev/null
	check "transport" "$NUBO" envs transport "$1" Test notes-1.0.0
	check "start" "$NUBO" envs start "$1" Test
}

# Start a portal in $T/portal; sets PORTAL_URL, ADMIN_KEY and logs the CLI
# in as the admin (NUBO_URL / NUBO_API_KEY).
start_portal() {
	PORTAL_PORT=${PORTAL_PORT:-$(free_port)}
	PORTAL_URL=$PORTAL_SCHEME://127.0.0.1:$PORTAL_PORT
	if [ ! -f "$T/portal/portal.db" ]; then
		"$NUBOD" portal init --data "$T/portal" --password adminpass1 > "$T/init.txt"
		ADMIN_KEY=$(awk '/API key/ {print $NF}' "$T/init.txt")
	fi
	"$NUBOD" portal --data "$T/portal" --listen "127.0.0.1:$PORTAL_PORT" \
		--secrets-key "$SECRETS_KEY" "${PORTAL_ARGS[@]}" >> "$T/portal.log" 2>&1 &
	PORTAL_PID=$!
	PIDS+=("$PORTAL_PID")
	wait_http "$PORTAL_URL/api/v1/openapi.json"
	export NUBO_URL=$PORTAL_URL NUBO_API_KEY=$ADMIN_KEY
}

stop_portal() {
	kill -TERM "$PORTAL_PID"
	wait "$PORTAL_PID" 2>/dev/null || true
}

kill9_portal() {
	if ! ours "$PORTAL_PID" "$T/portal"; then
		# never kill a recycled pid: the portal exited by itself
		fail "the portal (pid $PORTAL_PID) had already exited"
		tail -n 20 "$T/portal.log" >&2
		return 0
	fi
	kill -KILL "$PORTAL_PID"
	wait "$PORTAL_PID" 2>/dev/null || true
}

# start_node NAME [GENERATION] [nubod node options…]: create the node in the
# portal (with $NODE_CREATE_ARGS, e.g. --sandbox; unless it exists: then
# only start its agent again) and start
# `nubod node` in $T/node-NAME. Sets NODE_URL_<NAME>, ROUTER_<NAME> (the
# router's port) and NODE_PID_<NAME> (dashes in NAME become _).
# ROUTER_NO_WAIT=1: a node whose nginx cannot start (the agent runs on
# without it): wait for the registration only, not for the router.
start_node() {
	local name=$1 gen=${2:-v3} var token dir agent router pg
	shift 2 || shift $#
	var=${name//-/_}
	dir=$T/node-$name
	if [ ! -f "$T/node-$name.token" ]; then
		# shellcheck disable=SC2086
		NUBO_API_KEY=$ADMIN_KEY "$NUBO" admin nodes create "$name" --generation "$gen" ${NODE_CREATE_ARGS:-} --json |
			jq_get token > "$T/node-$name.token"
		free_port > "$T/node-$name.ports"
		free_port >> "$T/node-$name.ports"
		free_port >> "$T/node-$name.ports"
		NODE_DIRS+=("$dir")
	fi
	token=$(cat "$T/node-$name.token")
	{ read -r agent; read -r router; read -r pg; } < "$T/node-$name.ports"
	# a restarted node: wait for a registration after the earlier ones
	local before
	before=$(grep -c "registered as node '$name'" "$T/node-$name.log" 2>/dev/null || true)
	"$NUBOD" node --data "$dir" --portal "$PORTAL_URL" --token "$token" \
		--listen "127.0.0.1:$agent" --router-port "$router" --pg-port "$pg" \
		"$@" >> "$T/node-$name.log" 2>&1 &
	PIDS+=("$!")
	printf -v "NODE_PID_$var" %s "$!"
	printf -v "NODE_URL_$var" %s "$NODE_SCHEME://127.0.0.1:$agent"
	printf -v "ROUTER_$var" %s "$router"
	[ -n "${ROUTER_NO_WAIT:-}" ] || wait_http "http://127.0.0.1:$router/" 60
	# NODE_NO_WAIT: a test that expects the registration to be refused
	[ -z "${NODE_NO_WAIT:-}" ] || return 0
	# registered: the portal knows the agent's URL
	local i
	for i in $(seq 100); do
		if [ "$(grep -c "registered as node '$name'" "$T/node-$name.log")" -gt "${before:-0}" ]; then return 0; fi
		sleep 0.2
	done
	echo "node $name did not register" >&2
	tail -20 "$T/node-$name.log" >&2
	return 1
}

# stop_node NAME: SIGTERM the agent (its apps keep running).
stop_node() {
	local var=NODE_PID_${1//-/_}
	kill -TERM "${!var}"
	wait "${!var}" 2>/dev/null || true
}

# kill_instance PID: SIGKILL an instance by the pid nubo shows for it. An
# instance waiting to be restarted is listed with pid 0, and `kill -9 0`
# would end this test's own process group (the test, its daemons, ctest,
# CI's runner): a pid below 2 fails the test instead.
kill_instance() {
	if [ "${1:-0}" -gt 1 ] 2>/dev/null; then
		kill -KILL "$1"
	else
		fail "no instance's pid to kill ('${1:-}')"
		return 1
	fi
}

# route NODE HOST [PATH]: GET through the node's router by Host header;
# prints the body (curl -s).
route() {
	local var=ROUTER_${1//-/_}
	curl -s -H "Host: $2" "http://127.0.0.1:${!var}${3:-/}"
}

# route_status NODE HOST [PATH]: the HTTP status through the router.
route_status() {
	local var=ROUTER_${1//-/_}
	curl -s -o /dev/null -w '%{http_code}' -H "Host: $2" "http://127.0.0.1:${!var}${3:-/}"
}

# route_status_becomes NODE HOST PATH WANT [SECONDS]: the status through
# the router, once it is WANT or after SECONDS (default 10). The node
# answers a change once nginx has reloaded, but on a loaded machine an old
# worker may still take a connection for a moment (the node gives them 5 s
# and logs a warning); after a node's restart, wait for an app this way
# before asking it anything.
route_status_becomes() {
	local i st
	for i in $(seq $((${5:-10} * 5))); do
		st=$(route_status "$1" "$2" "$3")
		[ "$st" = "$4" ] && break
		sleep 0.2
	done
	echo "$st"
}

# Create a user (as admin) and print a fresh API key for them.
make_user() {
	local email=$1 pass=${2:-password123}
	NUBO_API_KEY=$ADMIN_KEY "$NUBO" admin users create "$email" --password "$pass" >/dev/null
	api_as "" POST /sessions "{\"email\":\"$email\",\"password\":\"$pass\"}" | jq_get key
}

# api_as KEY METHOD PATH [BODY]: print the response body.
api_as() {
	local key=$1 method=$2 path=$3 body=${4:-}
	local args=(-s "${CURL_TLS[@]}" -X "$method")
	[ -n "$key" ] && args+=(-H "Authorization: Bearer $key")
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
	curl "${args[@]}" "$PORTAL_URL/api/v1$path"
}

# status_as KEY METHOD PATH [BODY]: print the HTTP status only.
status_as() {
	local key=$1 method=$2 path=$3 body=${4:-}
	local args=(-s "${CURL_TLS[@]}" -o /dev/null -w '%{http_code}' -X "$method")
	[ -n "$key" ] && args+=(-H "Authorization: Bearer $key")
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
	curl "${args[@]}" "$PORTAL_URL/api/v1$path"
}

# File names are bytes: accents, CJK, an emoji, a byte that is not UTF-8
# (docs/FORMATS.md, File names). odd_names_write DIR UID [TAG]: a file of
# each name below DIR (a/ for the first), its bytes naming it, owned by
# UID with the app's modes; odd_names_check DIR [TAG]: they are there with
# those bytes (prints what is missing or different).
ODD_NAMES=("a/Zufall-ÄÖÜ.txt" "日本語のファイル.txt" "emoji-😀.bin" "$(printf 'latin1-\xff.bin')")
odd_names_write() {
	local n
	mkdir -p "$1/a"
	for n in "${ODD_NAMES[@]}"; do
		printf 'the bytes of %s%s\n' "$n" "${3:-}" > "$1/$n"
		chmod 0640 "$1/$n"
	done
	chmod 0750 "$1/a"
	chown -R "$2:$2" "$1/a" "$1/${ODD_NAMES[1]}" "$1/${ODD_NAMES[2]}" "$1/${ODD_NAMES[3]}"
}
odd_names_check() {
	local n
	for n in "${ODD_NAMES[@]}"; do
		[ "$(cat "$1/$n" 2>/dev/null)" = "the bytes of $n${2:-}" ] || printf '%q ' "$n"
	done
}

# node_sql NODE SQL: SQL in the node's own cluster as its admin, in
# postgres (no environment's role may connect to it).
node_sql() {
	local pg pw
	pg=$(sed -n 3p "$T/node-$1.ports")
	pw=$(jq_get password < "$T/node-$1/pg/admin.json")
	PGPASSWORD=$pw psql -X -A -t -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg" -U nubo_admin postgres -c "$2"
}

# Read a field of the JSON on stdin: jq_get key.sub.0.name ("" when the
# field is not there). When stdin is not JSON — the command before the
# pipe failed, say — or is an error answer without the field (api_as
# prints the portal's {"error": {"code", …}} of a refused request as any
# other body), it prints a line saying so and fails, so that comparing
# "$(cmd | jq_get x)" with "" cannot pass on a failed cmd.
jq_get() {
	python3 -c '
import json, sys
text = sys.stdin.read()
try:
    v = json.loads(text)
except ValueError:
    print("jq_get: not JSON: %r" % text[:60]); sys.exit(1)
doc = v
for k in sys.argv[1].split(".") if sys.argv[1] else []:
    v = v[int(k)] if isinstance(v, list) else v.get(k)
    if v is None: break
if v is None and isinstance(doc, dict) and ("errorCode" in doc or
        (isinstance(doc.get("error"), dict) and "code" in doc["error"])):
    print("jq_get: no %r in an error answer: %s" % (sys.argv[1], text[:120]))
    sys.exit(1)
print("" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else (str(v).lower() if isinstance(v, bool) else v)))
' "$1"
}

pass() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }

# check NAME CMD…: the command succeeds.
check() {
	local name=$1; shift
	if "$@" > "$T/last.out" 2> "$T/last.err"; then pass "$name"
	else fail "$name (exit $?)"; sed -n '1,20s/^/    /p' "$T/last.out" "$T/last.err"; fi
}

# check_fails NAME CODE CMD…: the command exits with CODE.
check_fails() {
	local name=$1 want=$2 rc=0; shift 2
	"$@" > "$T/last.out" 2> "$T/last.err" || rc=$?
	if [ "$rc" = "$want" ]; then pass "$name"
	else fail "$name (exit $rc, wanted $want)"; sed -n '1,20s/^/    /p' "$T/last.out" "$T/last.err"; fi
}

# count [-v] REGEX CMD…: how many lines of CMD's output match REGEX
# (grep -E; -v: do not match); when CMD fails, a line saying so instead —
# never a 0 that an expected "none" could take for an answer.
count() {
	local v= re out rc=0
	[ "$1" = -v ] && { v=-v; shift; }
	re=$1
	shift
	out=$("$@") || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "'$*' failed (exit $rc)"
		return 0
	fi
	grep $v -cE -- "$re" <<< "$out" || [ $? = 1 ]
}

# expect NAME GOT WANT
expect() {
	if [ "$2" = "$3" ]; then pass "$1"
	else fail "$1: got '$2', wanted '$3'"; fi
}

# expect_match NAME TEXT REGEX (no pipe: grep -q stops reading at the
# first match, and under pipefail printf's SIGPIPE on a long TEXT would
# count as no match)
expect_match() {
	if grep -qE -- "$3" <<< "$2"; then pass "$1"
	else fail "$1: '$2' does not match /$3/"; fi
}

finish() {
	local logs
	# Daemons stop cleanly first, so that sanitizer builds (make asan) get
	# to report leaks; any sanitizer report fails the test.
	stop_all
	logs=$(find "$T/sanitizer" -type f)
	if [ -n "$logs" ]; then
		fail "sanitizer reports: $(echo $logs)"
		head -n 40 $logs | sed 's/^/    /'
	fi
	logs=$(grep -rlE --include='*.log' \
		'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T" 2>/dev/null) || [ $? = 1 ]
	if [ -n "$logs" ]; then
		fail "sanitizer reports in logs: $logs"
		grep -hE -A12 'ERROR: (Address|Leak)Sanitizer|runtime error:' $logs | sed -n '1,60s/^/    /p'
	fi
	# a failure shows what the daemons said just before (the test's
	# folder is gone after it, and CI keeps only this output)
	if [ "$FAILED" -gt 0 ]; then
		for logs in "$T"/*.log; do
			[ -f "$logs" ] || continue
			echo "--- the last lines of $(basename "$logs"):"
			tail -n 25 "$logs" | sed 's/^/    /'
		done
	fi
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}
