# The body of t6-migration-steps-{1,2,3}: one whole migration (start,
# rehearse, cutover, offboarding approval, finalize) of an app with two
# environments, killed with SIGKILL at EVERY step boundary: the migration
# pauses before each step (the test hook), one process is killed there —
# the portal, the source node or the target node, in turn — and brought
# back, and the migration goes on (re-queued by the restarted portal, or
# the step that met the dead node tried again by itself once it is back;
# `nubo migrate resume` when a step failed otherwise). The
# three scripts start the rotation at a different process (ROTATION=0,1,2),
# so that together they kill each process at each boundary. At the end the
# data on the target equals the source's (psql and sha256sum), writes made
# between the rehearsal and the cutover arrived, and nothing is left twice.
# Sourced by the scripts after setting ROTATION (and MIGRATE_ARGS, the
# options of `nubo migrate start`).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/migrate-lib.sh"

export NUBO_TEST_PAUSE_FILE=$T/pause
VICTIMS=(portal v3 v4)
KILLS=()

start_portal
start_node v3 v3
start_node v4 v4
"$NUBO" apps create shop --no-sandbox >/dev/null
"$NUBO" nodes link v3 shop >/dev/null
deploy v3 shop Test
deploy v3 shop Production
add_notes v3 shop-test 2 2
add_notes v3 shop-production 3 3
bulk_rows v3 Production 2000

mjson() { api_as "$ADMIN_KEY" GET /migrations/1; }
# pending_points: the steps of the current phase not yet done, in order,
# as the test hook names them (STEP or STEP:ENVIRONMENT).
pending_points() {
	mjson | python3 -c '
import json, sys
m = json.load(sys.stdin)
for s in m["steps"]:
    if s["phase"] == m["phase"] and s["round"] == m["round"] and s["state"] not in ("done", "skipped"):
        print(s["name"] + (":" + s["environment"] if s.get("environment") else ""))'
}
at_point() { [ "$(cat "$T/pause.reached" 2>/dev/null)" = "$1" ]; }
# wait_point P [STATUS…]: until a process is paused at P, or the
# migration's job stopped (failed, or the phase ended) or its status is
# one of STATUS…; 0 when paused at P.
wait_point() {
	local i p=$1 st
	shift
	for i in $(seq 900); do
		at_point "$p" && return 0
		st=$(mstate status 2>/dev/null)
		case " failed waiting finished $* " in *" $st "*) at_point "$p"; return;; esac
		kill -0 "$PORTAL_PID" 2>/dev/null || { echo "the portal died" >&2; return 1; }
		sleep 0.2
	done
	return 1
}
# go_on NEXT: let the migration reach NEXT ("" = the end of the phase),
# resuming it when a step failed because a process was down.
go_on() {
	local next=$1 tries
	for tries in 1 2 3 4; do
		if [ -n "$next" ]; then
			wait_point "$next" && return 0
		else
			wait_point "(none)"
			case "$(mstate status)" in waiting|finished) return 0;; esac
		fi
		[ "$(mstate status)" = failed ] || continue
		"$NUBO" migrate resume shop --no-wait >/dev/null || return 1
	done
	return 1
}
# boundary P NEXT: the migration is paused before step P; kill the next
# process in turn there, bring it back and go on to NEXT.
boundary() {
	local p=$1 next=$2 v=${VICTIMS[$(( (ROTATION + ${#KILLS[@]}) % 3 ))]}
	KILLS+=("$v@$p")
	case $v in
	portal)
		kill9_portal
		pause_at "${next:-(none)}"
		start_portal ;;
	*)
		kill9_node "$v"
		pause_at "${next:-(none)}"	# releases P: the step meets a dead node
		# and waits to be tried again (retrying), or fails
		wait_point "${next:-(none)}" retrying
		restart_node "$v" "$v" ;;
	esac
	go_on "$next" && return 0
	fail "after killing $v before $p: stuck ($(mstate status 2>&1): $(mstate error 2>&1))"
	tail -n 40 "$T/portal.log" >&2
	return 1
}
# phase FIRST COMMAND…: run a phase paused before FIRST, then kill at every
# boundary of the phase.
phase() {
	local first=$1 points p i
	shift
	pause_at "$first"
	"$@" >/dev/null || { fail "$*"; return 1; }
	wait_point "$first" || { fail "$*: never paused at $first"; return 1; }
	mapfile -t points < <(pending_points)
	for i in "${!points[@]}"; do
		p=${points[$i]}
		at_point "$p" || { fail "expected a pause at $p"; return 1; }
		boundary "$p" "${points[$((i + 1))]:-}" || return 1
	done
	pass "$* — killed at ${#points[@]} boundaries"
}

phase prerequisites "$NUBO" migrate start shop --to v4 ${MIGRATE_ARGS:---dump} --no-wait
expect "start phase: copied" "$(mstate state)" copied
add_notes v3 shop-production 2 1
phase prerequisites "$NUBO" migrate rehearse shop --no-wait
expect "rehearsal: copied" "$(mstate state)" copied
compare_envs v3 v4 Production "after the rehearsal: Production equal"
# written between the rehearsal and the cutover: must arrive
add_notes v3 shop-production 1 1
add_notes v3 shop-test 1 1
before_prod=$(notes_digest v3 shop-production)
before_test=$(notes_digest v3 shop-test)
phase prerequisites "$NUBO" migrate cutover shop --no-wait
expect "cutover: cut-over" "$(mstate state)" cut-over
req=$(api_as "$ADMIN_KEY" GET /offboarding-requests | jq_get offboarding_requests.0.id)
phase final-link "$NUBO" admin offboarding approve "$req"
check "the migration finishes" "$NUBO" migrate status shop --follow
expect "completed" "$(mstate state)" completed

expect "v4 serves Production's notes under the original hostname" "$(notes_digest v4 shop-production)" "$before_prod"
expect "v4 serves Test's notes under the original hostname" "$(notes_digest v4 shop-test)" "$before_test"
compare_envs v3 v4 Production "Production equal (psql, sha256sum)"
compare_envs v3 v4 Test "Test equal (psql, sha256sum)"
expect "the app is linked to v4" "$(api_as "$ADMIN_KEY" GET /nodes/v4 | jq_get app)" shop
expect "no temporary app left" "$(api_as "$ADMIN_KEY" GET /apps | python3 -c 'import json,sys; print(sum(a["temporary"] for a in json.load(sys.stdin)["apps"]))')" 0
expect "one offboarding request" "$(api_as "$ADMIN_KEY" GET /offboarding-requests | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["offboarding_requests"]))')" 1
expect "one package in the target's repository" "$(ls "$T/node-v4/packages" | grep -vc '^\.')" 1
expect "no half-copied files left" "$(find "$T/node-v4/envs" -path '*/.nubo-partial*' | wc -l)" 0
expect "no leftover databases" "$(node_sql v4 "SELECT count(*) FROM pg_database WHERE datname ~ '^env_[0-9]+_(in|old)$'")" 0
for e in Test Production; do
	expect "$e: one backup kept by the migration on the target, completed" "$(api_as "$ADMIN_KEY" GET "/apps/shop/environments/$e/snapshots" | python3 -c '
import json, sys
print([s["state"] for s in json.load(sys.stdin)["snapshots"] if s.get("comment", "").startswith("kept by migration")])')" "['completed']"
done
expect "one migration" "$(api_as "$ADMIN_KEY" GET '/migrations?app=shop' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["migrations"]))')" 1
expect "every step done" "$(mjson | python3 -c '
import json,sys
m = json.load(sys.stdin)
print(sorted({s["state"] for s in m["steps"]}))')" "['done']"
case ${MIGRATE_ARGS:-} in *--replicate*)
	expect "the data steps replicated" "$(step_result shop data Production 0 | jq_get method)" replicate ;;
esac
echo "# kills: ${KILLS[*]}"
expect "killed at every step boundary" "${#KILLS[@]}" "$(mjson | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["steps"]))')"
retried=$(mjson | python3 -c 'import json,sys; print(sum(s["attempts"] > 1 for s in json.load(sys.stdin)["steps"]))')
echo "# steps run again after a kill: $retried"
expect_match "kills made steps run again" "$retried" '^[1-9][0-9]*$'
expect "v3 keeps nothing of a replication" "$(leftovers v3 postgres)" "$NOTHING"
expect "v4 keeps nothing of a replication" "$(leftovers v4 postgres)" "$NOTHING"
finish
