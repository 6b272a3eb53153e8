#!/usr/bin/env bash
# t5b: restores cannot touch live data (SPEC §6 hostile dumps, §8 Security
# model). Custom-format dumps whose table of contents hides statements
# against the live database, the environment's role, another environment,
# extensions, SECURITY DEFINER functions and objects owned by other roles
# are uploaded and restored — and fed to the migration's node-to-node
# import. Each must fail (nothing changed) or end with a database that
# only the environment's role owns, with no setting a dump made. No
# password is on any pg_restore or pg_dump command line, and a node killed
# with -9 leaves none of them running.
. "$(dirname "$0")/lib.sh"

PKG=$(ls "$NUBO_BUILD"/packages/notes-*.tar.gz 2>/dev/null | head -1)
[ -n "$PKG" ] || { echo "t5b: the notes package is not built (make examples)" >&2; exit 1; }
start_portal
check "create app" "$NUBO" apps create shop --no-sandbox
start_node cloud4 v4 --start-timeout 30 --stop-grace 3 --env-disk-max 1
check "link" "$NUBO" nodes link cloud4 shop
"$NUBO" packages upload cloud4 "$PKG" >/dev/null
for e in Test Production; do
	check "transport $e" "$NUBO" envs transport shop $e notes-1.0.0
	check "start $e (makes its database)" "$NUBO" envs start shop $e
	check "stop $e" "$NUBO" envs stop shop $e
done

PGPORT=$(sed -n 3p "$T/node-cloud4.ports")
ADMIN_PW=$(jq_get password < "$T/node-cloud4/pg/admin.json")
admin_url() { echo "postgresql://nubo_admin:$ADMIN_PW@127.0.0.1:$PGPORT/${1:-postgres}"; }
env_id() { sqlite3 "$T/portal/portal.db" "SELECT e.id FROM environments e JOIN nodes n ON n.id=e.node_id WHERE n.name='cloud4' AND e.name='$1'"; }
db_pw() { jq_get db_password < "$T/node-cloud4/envs/$(env_id "$1")/env.json"; }
db_url() { echo "postgresql://env_$(env_id "$1"):$(db_pw "$1")@127.0.0.1:$PGPORT/env_$(env_id "$1")"; }
asql() { psql -X -At -v ON_ERROR_STOP=1 "$(admin_url "${2:-postgres}")" -c "$1"; }
TID=$(env_id Test); PID=$(env_id Production)
throwaway_roles() { asql "SELECT count(*) FROM pg_roles WHERE rolname ~ '^nubo_(restore|import)_'"; }
psql -X -q -v ON_ERROR_STOP=1 "$(db_url Test)" -c "CREATE TABLE live (v text); INSERT INTO live VALUES ('test data')"
psql -X -q -v ON_ERROR_STOP=1 "$(db_url Production)" -c "CREATE TABLE live (v text); INSERT INTO live VALUES ('production data')"
# what must never change: both live databases, their owners, every role
# and database setting, the list of databases and roles
world() {
	psql -X -At "$(db_url Test)" -c "SELECT v FROM live"
	psql -X -At "$(db_url Production)" -c "SELECT v FROM live"
	asql "SELECT datname, datdba::regrole, datconnlimit, datallowconn, datacl FROM pg_database ORDER BY 1"
	asql "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin FROM pg_roles ORDER BY 1"
	asql "SELECT setdatabase, setrole, setconfig FROM pg_db_role_setting ORDER BY 1, 2"
}

# --- every route that reaches another environment checks that one too -----
# A member with backups (or settings) on Test only must not get at
# Production through Test's routes, nor directly.
check "a snapshot of Production" "$NUBO" backups create shop Production
PSNAP=$("$NUBO" backups list shop Production --json | jq_get snapshots.0.id)
check "a snapshot of Test" "$NUBO" backups create shop Test
TSNAP=$("$NUBO" backups list shop Test --json | jq_get snapshots.0.id)
BK=$(make_user backups-test@example.com)
ST=$(make_user settings-test@example.com)
check "member with backups on Test only" api_as "$ADMIN_KEY" POST /apps/shop/members '{"email":"backups-test@example.com","permissions":{"backups":["Test"]}}'
check "member with settings on Test only" api_as "$ADMIN_KEY" POST /apps/shop/members '{"email":"settings-test@example.com","permissions":{"settings":["Test"]}}'
E=/apps/shop/environments
expect "restore Production's snapshot into Test: refused" "$(status_as "$BK" POST $E/Test/restores "{\"snapshot\":\"$PSNAP\"}")" 403
expect_match "the refusal names Production" "$(api_as "$BK" POST $E/Test/restores "{\"snapshot\":\"$PSNAP\"}" | jq_get error.message)" "permission on environment 'Production'"
expect "no restore was recorded" "$(sqlite3 "$T/portal/portal.db" "SELECT count(*) FROM restores")" 0
expect "restore Test's own snapshot into Test: allowed" "$(status_as "$BK" POST $E/Test/restores "{\"snapshot\":\"$TSNAP\"}")" 202
expect "Production's snapshot through Test's path: not found" "$(status_as "$BK" GET $E/Test/snapshots/$PSNAP)" 404
expect "its download through Test's path: not found" "$(status_as "$BK" POST $E/Test/snapshots/$PSNAP/download '{}')" 404
expect "its download through Production's path: refused" "$(status_as "$BK" POST $E/Production/snapshots/$PSNAP/download '{}')" 403
expect "Production's snapshots: refused" "$(status_as "$BK" GET $E/Production/snapshots)" 403
expect "an upload into Production: refused" "$(status_as "$BK" POST $E/Production/snapshot-uploads '{}')" 403
expect "a restore into Production: refused" "$(status_as "$BK" POST $E/Production/restores "{\"snapshot\":\"$TSNAP\"}")" 403
expect "Production's restores: refused" "$(status_as "$BK" GET $E/Production/restores)" 403
expect "settings diff Test ↔ Production: refused" "$(status_as "$ST" GET "$E/Test/settings/diff?app=shop&env=Production")" 403
expect "settings diff Test ↔ Test: allowed" "$(status_as "$ST" GET "$E/Test/settings/diff?app=shop&env=Test")" 200
expect "settings export of Production: refused" "$(status_as "$ST" GET $E/Production/settings/export)" 403
expect "settings import into Production: refused" "$(status_as "$ST" PUT $E/Production/settings "$(api_as "$ADMIN_KEY" GET $E/Test/settings/export)")" 403
for i in $(seq 100); do
	[ "$(sqlite3 "$T/portal/portal.db" "SELECT state FROM restores")" = completed ] && break
	sleep 0.2
done
expect "the allowed restore completed" "$(sqlite3 "$T/portal/portal.db" "SELECT state FROM restores")" completed

# --- hostile dumps ---------------------------------------------------------
# A dump of a scratch database whose table carries a long comment; the
# comment's TOC entry is then overwritten in place (same length, so every
# offset in the archive stays right) with the statement to smuggle in.
H=$T/hostile; mkdir -p "$H"
asql "CREATE DATABASE scratch"
asql "CREATE TABLE public.t (id int); INSERT INTO public.t SELECT generate_series(1, 3); COMMENT ON TABLE public.t IS '$(printf 'x%.0s' $(seq 700))'" scratch
pg_dump -Fc -Z0 -O -x -f "$H/base.dump" "$(admin_url scratch)"
WORLD=$(world)
expect_match "both live databases hold their data" "$WORLD" "test data"
smuggle() { # NAME SQL: $H/NAME.dump
	python3 - "$H/base.dump" "$H/$1.dump" "$2" <<'EOF'
import sys
b = open(sys.argv[1], 'rb').read()
start = b.index(b"COMMENT ON TABLE public.t IS '")
end = b.index(b"';\n", start) + 3
sql = sys.argv[3].encode()
assert len(sql) <= end - start, "statement too long"
open(sys.argv[2], 'wb').write(b[:start] + sql + b' ' * (end - start - len(sql)) + b[end:])
EOF
}
archive() { # NAME: $H/NAME.tar.gz from $H/NAME.dump
	rm -rf "$H/a" && mkdir -p "$H/a/db"
	cp "$H/$1.dump" "$H/a/db/db.backup"
	printf '{"duration":"0","dumpSize":"%s","modelVersion":"x","databaseSize":"1","filesSize":"0"}' \
		"$(stat -c %s "$H/a/db/db.backup")" > "$H/a/.metadata"
	tar czf "$H/$1.tar.gz" -C "$H/a" .metadata db
}
# upload NAME's archive to Test and restore it; the CLI's exit status
restore_dump() { # NAME
	local sid rc=0
	archive "$1"
	"$NUBO" backups upload shop Test "$H/$1.tar.gz" > "$T/last.out" 2> "$T/last.err" || return 9
	sid=$("$NUBO" backups list shop Test --json | jq_get snapshots.0.id)
	"$NUBO" backups restore shop Test "$sid" > "$T/last.out" 2> "$T/last.err" || rc=$?
	return $rc
}
refused() { # NAME SQL MESSAGE: the restore fails and the world is as it was
	local rc=0
	smuggle "$1" "$2"
	restore_dump "$1" || rc=$?
	expect "hostile dump refused: $1" "$rc" 1
	expect_match "$1: pg_restore's reason" "$(cat "$T/last.err")" "$3"
	expect "$1: nothing changed" "$(world)" "$WORLD"
}
refused drop-live "DROP DATABASE env_$TID;" "must be owner of database env_$TID"
refused drop-other "DROP DATABASE env_$PID;" "must be owner of database env_$PID"
refused alter-role "ALTER ROLE env_$TID SET default_transaction_read_only = on;" "permission denied"
refused alter-other-role "ALTER ROLE env_$PID SET default_transaction_read_only = on;" "permission denied"
refused alter-live-db "ALTER DATABASE env_$TID SET default_transaction_read_only = on;" "must be owner of database"
refused extension "CREATE EXTENSION dblink SCHEMA public;" "permission denied to create extension"
refused owner "ALTER TABLE public.t OWNER TO nubo_admin;" "must be (able to SET ROLE|member of role)"
refused new-role "CREATE ROLE intruder SUPERUSER LOGIN;" "permission denied to create role|must be superuser to create superusers"
refused copy-program "COPY public.t FROM PROGRAM 'touch $H/pwned';" "permission denied|must be superuser"
[ ! -e "$H/pwned" ] && pass "no program ran" || fail "COPY FROM PROGRAM ran"

# what a dump may do to the database it is loaded into is undone before
# the environment gets it: settings, connection limit, grants, owners
smuggle own-db "DO \$\$BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = on', current_database()); EXECUTE format('ALTER DATABASE %I CONNECTION LIMIT 0', current_database()); EXECUTE format('GRANT ALL ON DATABASE %I TO PUBLIC', current_database()); END\$\$;"
check "a dump that changes its own database restores" restore_dump own-db
expect "its database settings were reset" "$(asql "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'env_$TID'")" 0
expect "its connection limit was reset" "$(asql "SELECT datconnlimit FROM pg_database WHERE datname = 'env_$TID'")" -1
expect "nobody but the owner may connect" "$(asql "SELECT count(*) FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = 'env_$TID' AND a.grantee <> d.datdba")" 0
expect "the environment's role owns the database" "$(asql "SELECT datdba::regrole FROM pg_database WHERE datname = 'env_$TID'")" "env_$TID"
check "the app's role writes (not read-only)" psql -X -q -v ON_ERROR_STOP=1 "$(db_url Test)" -c "INSERT INTO public.t VALUES (4)"
expect "no throwaway role is left" "$(throwaway_roles)" 0

smuggle definer "CREATE FUNCTION public.sd() RETURNS text LANGUAGE sql SECURITY DEFINER AS \$\$SELECT current_user::text\$\$;"
check "a SECURITY DEFINER function restores" restore_dump definer
expect "it belongs to the environment's role" "$(asql "SELECT proowner::regrole FROM pg_proc WHERE proname = 'sd'" "env_$TID")" "env_$TID"
expect "it runs as the environment's role" "$(psql -X -At "$(db_url Test)" -c "SELECT public.sd()")" "env_$TID"

# a dump made without --no-owner, its objects owned by another role
asql "CREATE ROLE someone_else"
asql "CREATE DATABASE owned"
asql "CREATE TABLE public.o (id int); CREATE SEQUENCE public.s; CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'; ALTER TABLE public.o OWNER TO someone_else; ALTER SEQUENCE public.s OWNER TO someone_else; ALTER FUNCTION public.f() OWNER TO someone_else" owned
pg_dump -Fc -f "$H/owned.dump" "$(admin_url owned)"
check "a dump with objects owned by other roles restores" restore_dump owned
expect "every object is the environment's role's" "$(asql "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relowner::regrole::text <> 'env_$TID'" "env_$TID")/$(asql "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' AND p.proowner::regrole::text <> 'env_$TID'" "env_$TID")" 0/0
expect "and the tables are there" "$(psql -X -At "$(db_url Test)" -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'o'")" 1
expect "Production was never touched" "$(psql -X -At "$(db_url Production)" -c "SELECT v FROM live")" "production data"
expect "no role setting anywhere" "$(asql "SELECT count(*) FROM pg_db_role_setting")" 0

# --- the declared sizes count against the environment's budget -----------
# (--env-disk-max 1: one MB) before anything is written
rm -rf "$H/a" && mkdir -p "$H/a/db" "$H/a/tree/ab/cd"
cp "$H/base.dump" "$H/a/db/db.backup"
head -c 1200000 /dev/urandom > "$H/a/tree/ab/cd/big"
printf '{"duration":"0","dumpSize":"%s","modelVersion":"x","databaseSize":"1","filesSize":"1200000"}' \
	"$(stat -c %s "$H/a/db/db.backup")" > "$H/a/.metadata"
tar czf "$H/big.tar.gz" -C "$H/a" .metadata db tree
WORLD=$(world)
BEFORE_FILES=$(ls -A "$T/node-cloud4/envs/$TID")
check "upload an archive larger than the budget" "$NUBO" backups upload shop Test "$H/big.tar.gz"
check_fails "its restore is refused" 1 "$NUBO" backups restore shop Test "$("$NUBO" backups list shop Test --json | jq_get snapshots.0.id)"
expect_match "as not enough space, naming the need and the room" "$(cat "$T/last.err")" "not enough space on node 'cloud4': the restore needs 1[0-9]{6} bytes, there is room for 1048576 \(the environment's budget"
expect "nothing changed in the databases" "$(world)" "$WORLD"
expect "nothing was written to the environment's folder" "$(ls -A "$T/node-cloud4/envs/$TID")" "$BEFORE_FILES"

# --- the migration's import runs as a throwaway role too -------------------
# The node-to-node import (transfer.c) pulls a dump from a URL; here the
# URL serves a hostile dump, the request carries the portal's secret.
WORLD=$(world)
SECRET=$(jq_get portal_secret < "$T/node-cloud4/agent.json")
HTTP_PORT=$(free_port)
python3 -m http.server --bind 127.0.0.1 "$HTTP_PORT" --directory "$H" > "$T/http.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$HTTP_PORT/" 10
run_import() { # NAME KEY: run the import of $H/NAME.dump into Test; its final state
	local i s
	curl -s -o /dev/null -X POST -H "Authorization: Bearer $SECRET" -H 'Content-Type: application/json' \
		--data-binary "{\"key\":\"$2\",\"dump_url\":\"http://127.0.0.1:$HTTP_PORT/$1.dump\"}" \
		"$NODE_URL_cloud4/agent/v1/environments/$TID/import"
	for i in $(seq 300); do
		curl -s -H "Authorization: Bearer $SECRET" "$NODE_URL_cloud4/agent/v1/environments/$TID/import" > "$T/import.json"
		s=$(jq_get state < "$T/import.json")
		[ "$s" = running ] || break
		sleep 0.1
	done
	echo "$s"
}
expect "import of a dump dropping the live database: failed" "$(run_import drop-live k1)" failed
expect_match "the import says why" "$(jq_get error < "$T/import.json")" "must be owner of database env_$TID"
expect "import drop-live: nothing changed" "$(world)" "$WORLD"
expect "import of a dump altering the role: failed" "$(run_import alter-role k2)" failed
expect "import alter-role: nothing changed" "$(world)" "$WORLD"
expect "import of a dump changing its own database: done" "$(run_import own-db k3)" completed
expect "import: database settings reset" "$(asql "SELECT count(*) FROM pg_db_role_setting")" 0
expect "import: connection limit reset" "$(asql "SELECT datconnlimit FROM pg_database WHERE datname = 'env_$TID'")" -1
expect "import: the environment's role owns it" "$(asql "SELECT datdba::regrole FROM pg_database WHERE datname = 'env_$TID'")" "env_$TID"
expect "import: no throwaway role is left" "$(throwaway_roles)" 0

# --- no password on a command line; nothing outlives a killed node -------
# running_tool TOOL DB SECRET…: this node's TOOL (its conninfo names the
# node's port) is running, as $FOUND; its command line names database DB…
# and holds no password
running_tool() {
	local tool=$1 db=$2 args i s
	shift 2
	FOUND=
	for i in $(seq 200); do
		FOUND=$(pgrep -o -f "$tool.*port='$PGPORT'") && break
		sleep 0.05
	done
	[ -n "$FOUND" ] && pass "$tool is running" || { fail "$tool never ran"; return; }
	args=$(tr '\0' ' ' < "/proc/$FOUND/cmdline")
	expect_match "$tool's command line names the database" "$args" "dbname='$db"
	for s in password "$@"; do
		case "$args" in *"$s"*) fail "a password is on $tool's command line: $args"; return ;; esac
	done
	pass "no password on $tool's command line"
}
# A dump that sleeps in a TOC entry keeps pg_restore busy until the node
# is killed (however slow the machine; the settling drops its database
# WITH (FORCE), which ends the sleep).
smuggle sleepy "SELECT pg_sleep(600);"
archive sleepy
check "upload a slow dump" "$NUBO" backups upload shop Test "$H/sleepy.tar.gz"
SLOW=$("$NUBO" backups list shop Test --json | jq_get snapshots.0.id)
check "restore it (not waiting)" "$NUBO" backups restore shop Test "$SLOW" --no-wait
running_tool pg_restore "env_${TID}_new_" "$(db_pw Test)" "$ADMIN_PW"
PGR=$FOUND
expect "it runs as a throwaway role" "$(asql "SELECT count(*) FROM pg_stat_activity WHERE usename LIKE 'nubo\\_restore\\_${TID}\\_%'")" 1
# pg_dump, held on a lock the test takes (and ends once it has looked)
PGAPPNAME=t5b-locker psql -X -q "$(db_url Production)" -c "BEGIN; LOCK TABLE live IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600); COMMIT" > /dev/null 2>&1 &
LOCKER=$!
locked() { asql "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.application_name = 't5b-locker' AND l.mode = 'AccessExclusiveLock' AND l.granted"; }
for i in $(seq 100); do [ "$(locked)" = 0 ] || break; sleep 0.1; done
expect "the test holds a lock on Production's table" "$(locked)" 1
check "a snapshot of Production (not waiting)" "$NUBO" backups create shop Production --no-wait
running_tool pg_dump "env_$PID'" "$(db_pw Production)" "$ADMIN_PW"
PGD=$FOUND
kill -9 "$NODE_PID_cloud4"
wait "$NODE_PID_cloud4" 2>/dev/null || true
for i in $(seq 40); do
	{ kill -0 "$PGR" 2>/dev/null || kill -0 "$PGD" 2>/dev/null; } || break
	sleep 0.05
done
for p in pg_restore:"$PGR" pg_dump:"$PGD"; do
	if [ -z "${p#*:}" ]; then fail "${p%%:*} was not seen, so not seen to die"
	elif kill -0 "${p#*:}" 2>/dev/null; then fail "${p%%:*} outlived the node"; kill -9 "${p#*:}"
	else pass "${p%%:*} died with the node"; fi
done
asql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 't5b-locker'" > /dev/null
wait "$LOCKER" || true	# psql ends with the error of its terminated session
# a database that cannot be dropped (a template) keeps the journal: the
# restore is settled once it can be, and until then says why
NEWDB=$(asql "SELECT datname FROM pg_database WHERE datname LIKE 'env\_${TID}\_new\_%'")
expect_match "the killed restore left its new database" "$NEWDB" "^env_${TID}_new_"
asql "ALTER DATABASE $NEWDB IS_TEMPLATE true"
start_node cloud4 v4 --start-timeout 30 --stop-grace 3 --env-disk-max 1
expect "a journal that could not be settled is kept" "$(ls "$T/node-cloud4/envs/$TID/restore.json" 2>/dev/null | wc -l)" 1
expect "its database is still there" "$(asql "SELECT count(*) FROM pg_database WHERE datname = '$NEWDB'")" 1
check_fails "a new restore waits for it" 1 "$NUBO" backups restore shop Test "$TSNAP"
expect_match "and says why" "$(cat "$T/last.err")" "not cleaned up yet.*cannot drop a template database"
check_fails "the environment does not start meanwhile" 1 "$NUBO" envs start shop Test
asql "ALTER DATABASE $NEWDB IS_TEMPLATE false"
for i in $(seq 100); do
	[ -e "$T/node-cloud4/envs/$TID/restore.json" ] || break
	sleep 0.2
done
expect "the journal is settled on a retry" "$(ls "$T/node-cloud4/envs/$TID/restore.json" 2>/dev/null | wc -l)" 0
expect "the restore's database is gone after the restart" "$(asql "SELECT count(*) FROM pg_database WHERE datname LIKE 'env\\_${TID}\\_%'")" 0
expect "its throwaway role is gone after the restart" "$(throwaway_roles)" 0
expect "Test's data is what the last import left" "$(psql -X -At "$(db_url Test)" -c "SELECT count(*) FROM public.t")" 3
check "a restore works again" "$NUBO" backups restore shop Test "$TSNAP"
expect "with the data of the snapshot" "$(psql -X -At "$(db_url Test)" -c "SELECT v FROM live")" "test data"

finish
