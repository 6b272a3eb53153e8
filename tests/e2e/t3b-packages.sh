#!/usr/bin/env bash
# t3b: the package repository of a node (SPEC §2 Packages, §6) through the
# CLI: every bad package is rejected with a clear message and nothing is
# listed or left on the node's disk; upload, list, show, download (sha256
# equal, Range), re-upload, conflicting re-upload, delete; the portal's
# records answer while the node is down; a package in use cannot be
# deleted; permissions (node TC uploads; a transport member through the
# app; others are refused); upload URLs are single-use, short-lived and
# bound to the declared size; the repository quota of a node and of each
# app on the sandbox node (running uploads count); on the sandbox node
# every app has its own repository that no other app can see, claim,
# reach or deploy from.
. "$(dirname "$0")/lib.sh"

PKG=$NUBO_BUILD/packages/notes-1.0.0.tar.gz
[ -f "$PKG" ] || { echo "missing $PKG: run make examples"; exit 1; }
SHA=$(sha256sum "$PKG" | cut -d' ' -f1)
SIZE=$(stat -c %s "$PKG")

start_portal
start_node repo v3
check "create app" "$NUBO" apps create notesapp --no-sandbox
check "link app to node" "$NUBO" nodes link repo notesapp
REPO=$T/node-repo/packages

count_packages() {
	"$NUBO" packages list repo --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["packages"]))'
}

# --- every bad package: refused, clear message, nothing left -----------
python3 "$NUBO_SRC/tests/e2e/badpackages.py" "$T/bad" "$PKG" > "$T/bad.list"
n=0
while IFS=$'\t' read -r file want; do
	n=$((n + 1))
	name=$(basename "$file")
	rc=0
	"$NUBO" packages upload repo "$file" > "$T/last.out" 2> "$T/last.err" || rc=$?
	if [ "$rc" = 1 ] && grep -qF -- "$want" "$T/last.err"; then
		pass "bad package $name refused: $(tail -1 "$T/last.err" | cut -c1-90)"
	else
		fail "bad package $name: exit $rc, wanted 1 and '$want'"
		sed -n '1,5s/^/    /p' "$T/last.out" "$T/last.err"
	fi
done < "$T/bad.list"
[ "$n" -ge 30 ] && pass "$n bad packages tried" || fail "only $n bad packages"
expect "nothing listed after the bad uploads" "$(count_packages)" 0
expect "nothing left in the node's repository folder" \
	"$(find "$REPO" -mindepth 1 -not -path "$REPO/.uploads" | wc -l)" 0
expect "no upload leftovers" "$(find "$REPO/.uploads" -type f 2>/dev/null | wc -l)" 0

# --- upload, list, show --------------------------------------------------
check "upload the sample app" "$NUBO" packages upload repo "$PKG"
expect "its progress ends with one 100% line" "$(grep -c ': 100% (' "$T/last.err")" 1
expect_match "upload reports id and sha256" "$(cat "$T/last.out")" "notes-1.0.0 .*$SHA"
out=$("$NUBO" packages list repo --json)
expect "listed" "$(printf '%s' "$out" | jq_get packages.0.id)" notes-1.0.0
expect "list: sha256" "$(printf '%s' "$out" | jq_get packages.0.sha256)" "$SHA"
expect "list: size" "$(printf '%s' "$out" | jq_get packages.0.size)" "$SIZE"
expect "list: uploaded by" "$(printf '%s' "$out" | jq_get packages.0.uploaded_by)" admin@nubo.localhost
expect "list: node reachable" "$(printf '%s' "$out" | jq_get node_reachable)" true
out=$("$NUBO" packages show repo notes-1.0.0 --json)
expect "show: version" "$(printf '%s' "$out" | jq_get version)" 1.0.0
expect "show: manifest start" "$(printf '%s' "$out" | jq_get manifest.start)" bin/notes
expect "show: manifest constant" "$(printf '%s' "$out" | jq_get manifest.constants.0.name)" Greeting
expect "show: scheduled event" "$(printf '%s' "$out" | jq_get manifest.scheduled_events.0.every)" 1h
expect "show: file name" "$(printf '%s' "$out" | jq_get file_name)" notes-1.0.0.tar.gz
expect_match "show: uploaded at" "$(printf '%s' "$out" | jq_get uploaded_at)" '^20[0-9-]+T[0-9:]+Z$'
check "table output" "$NUBO" packages list repo
expect_match "table has the package" "$(cat "$T/last.out")" "notes-1.0.0 +1.0.0"
check_fails "show of an unknown package" 1 "$NUBO" packages show repo nope-1
expect_match "unknown package message" "$(cat "$T/last.err")" "no package 'nope-1'"

# --- download: whole, Range, resume --------------------------------------
check "download" "$NUBO" packages download repo notes-1.0.0 --output "$T/dl.tar.gz"
expect "downloaded sha256 equal" "$(sha256sum "$T/dl.tar.gz" | cut -d' ' -f1)" "$SHA"
url=$(api_as "$ADMIN_KEY" GET /nodes/repo/packages/notes-1.0.0/download | jq_get url)
expect "Range answers 206" "$(curl -s -o "$T/range.bin" -w '%{http_code}' -r 100-1099 "$url")" 206
expect "Range bytes are right" "$(sha256sum < "$T/range.bin")" "$(tail -c +101 "$PKG" | head -c 1000 | sha256sum)"
# change the signature's last hex digit (to a different one)
last=${url: -1}
if [ "$last" = 0 ]; then bad=${url%?}1; else bad=${url%?}0; fi
expect "a tampered signature is refused" "$(curl -s -o /dev/null -w '%{http_code}' "$bad")" 401
head -c 5000 "$PKG" > "$T/resume.tar.gz.part"
check "download resumes a partial file" "$NUBO" packages download repo notes-1.0.0 --output "$T/resume.tar.gz"
expect "resumed download sha256 equal" "$(sha256sum "$T/resume.tar.gz" | cut -d' ' -f1)" "$SHA"
printf 'garbage' > "$T/bad.tar.gz.part"
dd if="$PKG" bs=1 skip=7 count=2000 2>/dev/null >> "$T/bad.tar.gz.part"
check_fails "a corrupt partial download is detected" 1 "$NUBO" packages download repo notes-1.0.0 --output "$T/bad.tar.gz"
expect_match "corruption message" "$(cat "$T/last.err")" "corrupt"
expect "corrupt download not kept" "$(ls "$T"/bad.tar.gz* 2>/dev/null | wc -l)" 0

# --- re-uploads ----------------------------------------------------------
check "the same package again is accepted" "$NUBO" packages upload repo "$PKG"
expect_match "and reported as already there" "$(cat "$T/last.out")" "already had"
mkdir -p "$T/other/bin"
tar xzf "$PKG" -C "$T/other"
echo "# changed" >> "$T/other/bin/notes"
tar czf "$T/other.tar.gz" -C "$T/other" .
check_fails "other content under the same version refused" 1 "$NUBO" packages upload repo "$T/other.tar.gz"
expect_match "conflict message" "$(cat "$T/last.err")" "already exists with other content"
expect "still one package" "$(count_packages)" 1

# --- permissions ---------------------------------------------------------
DEV=$(make_user dev@example.com)
OUT=$(make_user outsider@example.com)
check "add dev as a member" "$NUBO" members add notesapp dev@example.com
check "grant dev transport" "$NUBO" members grant notesapp dev@example.com --transport all
expect "a transport member lists through the app" "$(NUBO_API_KEY=$DEV "$NUBO" packages list --app notesapp --json | jq_get packages.0.id)" notes-1.0.0
sed 's/"version": "1.0.0"/"version": "1.0.1"/' "$T/other/nubo.json" > "$T/other/nubo.json.new"
mv "$T/other/nubo.json.new" "$T/other/nubo.json"
(cd "$T/other" && python3 -c 'import zipfile,os
z=zipfile.ZipFile("../v101.mda","w",zipfile.ZIP_DEFLATED)
for d,_,fs in os.walk("."):
    for f in fs: z.write(os.path.join(d,f))
z.close()')
check "a transport member uploads through the app (zip as .mda)" env NUBO_API_KEY="$DEV" "$NUBO" packages upload --app notesapp "$T/v101.mda"
expect "two packages" "$(count_packages)" 2
expect "uploader recorded" "$("$NUBO" packages show repo notes-1.0.1 --json | jq_get uploaded_by)" dev@example.com
check_fails "a transport member cannot upload to the node directly" 1 env NUBO_API_KEY="$DEV" "$NUBO" packages upload repo "$PKG"
check_fails "a transport member cannot delete" 1 env NUBO_API_KEY="$DEV" "$NUBO" packages delete repo notes-1.0.1
VIEW=$(make_user viewer@example.com)
check "add viewer as a member" "$NUBO" members add notesapp viewer@example.com
check "grant viewer logs only" "$NUBO" members grant notesapp viewer@example.com --logs all
check "a member without transport sees the node's list" env NUBO_API_KEY="$VIEW" "$NUBO" packages list repo
check_fails "a member without transport cannot download a package" 1 env NUBO_API_KEY="$VIEW" "$NUBO" packages download repo notes-1.0.0 --output "$T/viewer.tar.gz"
expect_match "download refusal names the transport permission" "$(cat "$T/last.err")" "'transport' permission"
expect "nothing downloaded" "$(ls "$T"/viewer.tar.gz* 2>/dev/null | wc -l)" 0
check "a transport member downloads" env NUBO_API_KEY="$DEV" "$NUBO" packages download repo notes-1.0.0 --output "$T/dev.tar.gz"
expect "a transport member's download is whole" "$(sha256sum < "$T/dev.tar.gz" | cut -d' ' -f1)" "$SHA"
check_fails "an outsider cannot list" 1 env NUBO_API_KEY="$OUT" "$NUBO" packages list repo
check_fails "an outsider cannot download" 1 env NUBO_API_KEY="$OUT" "$NUBO" packages download repo notes-1.0.0 --output "$T/x"
expect "an outsider gets no upload URL" "$(status_as "$OUT" POST /apps/notesapp/packages/uploads '{}')" 403
expect "upload URL refuses an oversized declared size" "$(status_as "$ADMIN_KEY" POST /nodes/repo/packages/uploads '{"size":99999999999}')" 413
expect "upload URL refuses unknown fields" "$(status_as "$ADMIN_KEY" POST /nodes/repo/packages/uploads '{"colour":1}')" 400

# --- upload URLs: single use, short-lived, bound to the declared size -----
expect "an upload URL needs the package's size" "$(api_as "$ADMIN_KEY" POST /nodes/repo/packages/uploads '{}' | jq_get error.message)" "missing field 'size'"
expect "a size of 0 is refused" "$(status_as "$ADMIN_KEY" POST /nodes/repo/packages/uploads '{"size":0}')" 400
ticket=$(api_as "$ADMIN_KEY" POST /nodes/repo/packages/uploads "{\"size\":$SIZE}")
up=$(printf '%s' "$ticket" | jq_get url)
expect "the ticket says single use and the size" "$(printf '%s' "$ticket" | jq_get single_use) $(printf '%s' "$ticket" | jq_get size)" "true $SIZE"
life=$(( $(printf '%s' "$up" | sed 's/.*[?&]expires=\([0-9]*\).*/\1/') - $(date +%s) ))
[ "$life" -gt 0 ] && [ "$life" -le 600 ] && pass "an upload URL lives 10 minutes at most ($life s)" || fail "an upload URL lives $life s"
ncode() { curl -s -o "$T/ncode.json" -w '%{http_code}' "$@"; printf ' %s' "$(jq_get error.code < "$T/ncode.json")"; }
expect "an upload URL signs POST only (GET with it refused)" "$(curl -s -o /dev/null -w "%{http_code}" -X GET "$up")" 405
expect "an unsigned upload is refused" "$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$PKG" "${up%%\?*}")" 401
expect "the size in the URL is signed (changed: refused)" "$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$PKG" "${up/\/uploads\/$SIZE-//uploads/$((SIZE + 1))-}")" 401
head -c $((SIZE - 1)) "$PKG" > "$T/short.bin"
expect "a body shorter than declared is refused" "$(ncode --data-binary @"$T/short.bin" "$up")" "400 PACKAGE_SIZE_MISMATCH"
cat "$PKG" "$PKG" > "$T/long.bin"
expect "a body longer than declared is refused" "$(ncode --data-binary @"$T/long.bin" "$up")" "400 PACKAGE_SIZE_MISMATCH"
expect "no length (chunked) is refused" "$(ncode -H 'Transfer-Encoding: chunked' --data-binary @"$PKG" "$up")" "411 LENGTH_REQUIRED"
expect "the declared bytes are taken (the same package again)" "$(ncode --data-binary @"$PKG" "$up")" "200 "
expect "the same URL again is refused" "$(ncode --data-binary @"$PKG" "$up")" "410 UPLOAD_URL_USED"
# a client that goes away half-way: the node's reading and checking of the
# upload (a thread that follows the temp file) stops, and nothing is left
cut=$(api_as "$ADMIN_KEY" POST /nodes/repo/packages/uploads "{\"size\":$SIZE}" | jq_get url)
began=$(python3 - "$cut" "$PKG" "$REPO/.uploads" <<'PY'
import os, socket, sys, time, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
data = open(sys.argv[2], "rb").read()
s = socket.create_connection((u.hostname, u.port))
s.sendall(b"POST %s?%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
          b"Content-Type: application/octet-stream\r\n\r\n" %
          (u.path.encode(), u.query.encode(), u.netloc.encode(), len(data)))
s.sendall(data[:len(data) // 2])
for _ in range(50):         # the node has begun storing it
    if os.path.isdir(sys.argv[3]) and os.listdir(sys.argv[3]):
        break
    time.sleep(0.1)
print(len(os.listdir(sys.argv[3])))
s.close()
PY
)
expect "the node was storing the upload when it was cut off" "$began" 1
for _ in $(seq 50); do
	[ "$(find "$REPO/.uploads" -type f | wc -l)" = 0 ] && break
	sleep 0.1
done
expect "an upload cut off half-way leaves no temp file" "$(find "$REPO/.uploads" -type f | wc -l)" 0
expect "nothing listed by refused uploads" "$(count_packages)" 2
expect "no upload left behind" "$(find "$REPO/.uploads" -type f | wc -l)" 0

# --- the portal's records while the node is down -------------------------
USED=$("$NUBO" packages list repo --json | jq_get quota.used)
expect "the list counts the repository's bytes" "$USED" "$(($(stat -c %s "$REPO/notes-1.0.0/package") + $(stat -c %s "$REPO/notes-1.0.1/package")))"
stop_node repo
out=$("$NUBO" packages list repo --json)
expect "list while the node is down" "$(printf '%s' "$out" | jq_get packages.1.id)" notes-1.0.1
expect "list says the node is not reachable" "$(printf '%s' "$out" | jq_get node_reachable)" false
expect "show while the node is down" "$("$NUBO" packages show repo notes-1.0.0 --json | jq_get sha256)" "$SHA"
check_fails "delete while the node is down refused" 1 "$NUBO" packages delete repo notes-1.0.1
check_fails "upload while the node is down fails" 1 "$NUBO" packages upload repo "$PKG"
# back with a repository quota that has room for one byte less than v1.0.2
sed 's/"version": "1.0.1"/"version": "1.0.2"/' "$T/other/nubo.json" > "$T/other/nubo.json.new"
mv "$T/other/nubo.json.new" "$T/other/nubo.json"
tar czf "$T/v102.tar.gz" -C "$T/other" .
S102=$(stat -c %s "$T/v102.tar.gz")
QUOTA=$((USED + S102 - 1))
start_node repo v3 --package-quota "$QUOTA"
expect "both still there after the node restarts" "$(count_packages)" 2
expect "a used upload URL stays used after a node restart" "$(ncode --data-binary @"$PKG" "$up")" "410 UPLOAD_URL_USED"
expect "the list shows the quota" "$("$NUBO" packages list repo --json | python3 -c 'import json,sys; q=json.load(sys.stdin)["quota"]; print(q["used"], q["limit"])')" "$USED $QUOTA"
check "the table shows it too" "$NUBO" packages list repo
expect_match "quota line" "$(tail -1 "$T/last.out")" "^quota: $USED of $QUOTA bytes used"
check_fails "an upload past the node's quota is refused" 1 "$NUBO" packages upload repo "$T/v102.tar.gz"
expect_match "the refusal says how full it is" "$(cat "$T/last.err")" "holds $USED of its $QUOTA bytes: no room for $S102 more"
up102=$(api_as "$ADMIN_KEY" POST /nodes/repo/packages/uploads "{\"size\":$S102}" | jq_get url)
expect "the node answers 507 PACKAGE_QUOTA_EXCEEDED" "$(ncode --data-binary @"$T/v102.tar.gz" "$up102")" "507 PACKAGE_QUOTA_EXCEEDED"
expect "nothing listed past the quota" "$(count_packages)" 2

# --- delete; delete of a package in use ----------------------------------
check "delete" "$NUBO" packages delete repo notes-1.0.1
expect "gone from the list" "$(count_packages)" 1
expect "gone from the node's disk" "$(ls "$REPO")" notes-1.0.0
check_fails "delete again: not found" 1 "$NUBO" packages delete repo notes-1.0.1
expect "with room made, the URL the quota refused takes the upload" "$(ncode --data-binary @"$T/v102.tar.gz" "$up102")" "201 "
check "a transport member lists the app's packages first" env NUBO_API_KEY="$DEV" "$NUBO" packages list --app notesapp
expect "the upload's activity entry is the uploader's, not the first lister's" "$("$NUBO" apps activity notesapp --json | python3 -c 'import json,sys; print(*[a["user"] for a in json.load(sys.stdin) if a["action"] == "package.upload" and "notes-1.0.2" in a["detail"]])')" admin@nubo.localhost
check "delete it again" "$NUBO" packages delete repo notes-1.0.2
if "$NUBO" envs transport notesapp Acceptance notes-1.0.0 > "$T/last.out" 2> "$T/last.err"; then
	pass "transport to Acceptance"
	check_fails "delete of a deployed package refused" 1 "$NUBO" packages delete repo notes-1.0.0
	expect_match "in-use message names the environment" "$(cat "$T/last.err")" "deployed to Acceptance"
	expect "the package is still listed" "$(count_packages)" 1
	expect_match "show lists where it is deployed" "$("$NUBO" packages show repo notes-1.0.0 --json | jq_get environments)" Acceptance
else
	fail "transport to Acceptance"; sed 's/^/    /' "$T/last.err"
fi
# a package whose files have names that are not UTF-8 (Latin-1 é, 0xe9)
# and UTF-8 ones: accepted, and unpacked under the same bytes
mkdir -p "$T/odd" && tar xzf "$PKG" -C "$T/odd"
sed -i 's/"version": "1.0.0"/"version": "1.0.3"/' "$T/odd/nubo.json"
mkdir "$T/odd/$(printf 'caf\xe9')" "$T/odd/données"
printf 'latin-1' > "$T/odd/$(printf 'caf\xe9')/$(printf 'men\xfa').txt"
printf 'utf-8' > "$T/odd/données/crème.txt"
tar czf "$T/odd.tar.gz" -C "$T/odd" .
check "a package with names that are not UTF-8 is accepted" "$NUBO" packages upload repo "$T/odd.tar.gz"
check "and transported" "$NUBO" envs transport notesapp Test notes-1.0.3
app_dir=$(dirname "$(grep -l '"version": "1.0.3"' "$T"/node-repo/envs/*/app/nubo.json)")
expect "the name that is not UTF-8 unpacked byte for byte" "$(cat "$app_dir/$(printf 'caf\xe9')/$(printf 'men\xfa').txt" 2>&1)" latin-1
expect "the UTF-8 name unpacked" "$(cat "$app_dir/données/crème.txt" 2>&1)" utf-8
expect_match "show answers for it" "$("$NUBO" packages show repo notes-1.0.3 --json | jq_get environments)" Test

# --- the sandbox node: every Free App has a repository of its own ---------
# (SPEC §6: an app sees and deploys only its own packages; a tenant cannot
# pre-claim another's name-version, nor reach it through a signed URL)
NODE_CREATE_ARGS=--sandbox start_node sbx v4
ALICE=$(make_user alice@example.com)
MAL=$(make_user mallory@example.com)
as_alice() { NUBO_API_KEY=$ALICE "$NUBO" "$@"; }
as_mal() { NUBO_API_KEY=$MAL "$NUBO" "$@"; }
check "alice's free app with a sandbox" as_alice apps create alice-app
check "mallory's free app with a sandbox" as_mal apps create mal-app
AU=$(sqlite3 "$T/portal/portal.db" "SELECT uuid FROM apps WHERE subdomain = 'alice-app'")
MU=$(sqlite3 "$T/portal/portal.db" "SELECT uuid FROM apps WHERE subdomain = 'mal-app'")
mkdir -p "$T/evil"
tar xzf "$PKG" -C "$T/evil"
echo "# mallory was here" >> "$T/evil/bin/notes"
tar czf "$T/evil.tar.gz" -C "$T/evil" .
ESHA=$(sha256sum "$T/evil.tar.gz" | cut -d' ' -f1)
check "mallory uploads her own notes-1.0.0 first" as_mal packages upload --app mal-app "$T/evil.tar.gz"
check "alice's notes-1.0.0 is accepted all the same (no PACKAGE_EXISTS)" as_alice packages upload --app alice-app "$PKG"
expect "alice's repository holds her bytes" "$(as_alice packages show --app alice-app notes-1.0.0 --json | jq_get sha256)" "$SHA"
expect "mallory's holds hers" "$(as_mal packages show --app mal-app notes-1.0.0 --json | jq_get sha256)" "$ESHA"
expect "each lists one package" "$(as_alice packages list --app alice-app --json | jq_get packages.0.sha256) $(as_mal packages list --app mal-app --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["packages"]))')" "$SHA 1"
expect "on the node: one repository per app" "$(sha256sum "$T/node-sbx/app-packages/$AU/notes-1.0.0/package" "$T/node-sbx/app-packages/$MU/notes-1.0.0/package" | cut -d' ' -f1 | paste -sd' ')" "$SHA $ESHA"
expect "nothing in the sandbox node's own repository" "$(ls "$T/node-sbx/packages")" ""
check_fails "mallory cannot list alice's repository" 1 as_mal packages list --app alice-app
check_fails "mallory cannot show alice's package" 1 as_mal packages show --app alice-app notes-1.0.0
check_fails "mallory cannot download alice's package" 1 as_mal packages download --app alice-app notes-1.0.0 --output "$T/stolen.tar.gz"
check_fails "mallory cannot delete alice's package" 1 as_mal packages delete --app alice-app notes-1.0.0
check_fails "mallory cannot upload into alice's repository" 1 as_mal packages upload --app alice-app "$T/evil.tar.gz"
check_fails "mallory cannot list the sandbox node's repository" 1 as_mal packages list sbx
# a signed URL names its repository: one for mallory's cannot reach alice's
up=$(api_as "$MAL" POST /apps/mal-app/packages/uploads "{\"size\":$(stat -c %s "$T/evil.tar.gz")}" | jq_get url)
expect "mallory's upload URL rewritten to alice's repository is refused" "$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$T/evil.tar.gz" "${up/$MU/$AU}")" 401
dl=$(api_as "$MAL" GET /apps/mal-app/packages/notes-1.0.0/download | jq_get url)
expect "mallory's download URL rewritten to alice's package is refused" "$(curl -s -o /dev/null -w '%{http_code}' "${dl/$MU/$AU}")" 401
expect "alice's package is still hers" "$(sha256sum < "$T/node-sbx/app-packages/$AU/notes-1.0.0/package" | cut -d' ' -f1)" "$SHA"
# deploy: each sandbox deploys its own app's package, and only that
check "alice transports notes-1.0.0 to her sandbox" as_alice envs transport alice-app Sandbox notes-1.0.0
AID=$(sqlite3 "$T/portal/portal.db" "SELECT e.id FROM environments e JOIN apps a ON a.id = e.app_id WHERE a.subdomain = 'alice-app'")
expect "alice's sandbox runs her code, not mallory's" "$(sha256sum < "$T/node-sbx/envs/$AID/app/bin/notes")" "$(tar xzf "$PKG" -O bin/notes | sha256sum)"
sed 's/"version": "1.0.0"/"version": "2.0.0"/' "$T/evil/nubo.json" > "$T/evil/nubo.json.new"
mv "$T/evil/nubo.json.new" "$T/evil/nubo.json"
tar czf "$T/alice2.tar.gz" -C "$T/evil" .
check "alice uploads notes-2.0.0, which mallory does not have" as_alice packages upload --app alice-app "$T/alice2.tar.gz"
check_fails "mallory cannot deploy alice's notes-2.0.0" 1 as_mal envs transport mal-app Sandbox notes-2.0.0
expect_match "her sandbox has no such package" "$(cat "$T/last.err")" "no package 'notes-2.0.0'"
check "the admin uploads to the sandbox node's own repository" "$NUBO" packages upload sbx "$T/alice2.tar.gz"
check_fails "a sandbox does not deploy from the node's repository either" 1 as_mal envs transport mal-app Sandbox notes-2.0.0
check "mallory deploys her own notes-1.0.0" as_mal envs transport mal-app Sandbox notes-1.0.0
expect "alice's package shows only alice's sandbox" "$(as_alice packages show --app alice-app notes-1.0.0 --json | python3 -c 'import json,sys; print([e["name"] for e in json.load(sys.stdin)["environments"]])')" "['Sandbox']"
check "alice deletes notes-2.0.0 from her repository" as_alice packages delete --app alice-app notes-2.0.0
check_fails "alice's deployed notes-1.0.0 cannot be deleted" 1 as_alice packages delete --app alice-app notes-1.0.0
expect_match "in-use message" "$(cat "$T/last.err")" "deployed to Sandbox"
expect "the node's repository keeps its notes-2.0.0" "$("$NUBO" packages list sbx --json | jq_get packages.0.id)" notes-2.0.0

# --- each app's repository has its own quota on the sandbox node ----------
# room for one notes package, not two (the sanitizer build's is larger)
APPQ=$((SIZE * 3 / 2))
stop_node sbx
start_node sbx v4 --app-package-quota "$APPQ"
CAROL=$(make_user carol@example.com)
as_carol() { NUBO_API_KEY=$CAROL "$NUBO" "$@"; }
check "carol's free app with a sandbox" as_carol apps create carol-app
CU=$(sqlite3 "$T/portal/portal.db" "SELECT uuid FROM apps WHERE subdomain = 'carol-app'")
expect "carol's repository: empty, $APPQ bytes" "$(as_carol packages list --app carol-app --json | python3 -c 'import json,sys; q=json.load(sys.stdin)["quota"]; print(q["used"], q["limit"])')" "0 $APPQ"
check_fails "alice, over the app quota now, cannot upload more" 1 as_alice packages upload --app alice-app "$T/v102.tar.gz"
expect_match "her refusal names her app's repository" "$(cat "$T/last.err")" "the app's package repository holds [0-9]+ of its $APPQ bytes"
# a running upload holds its declared size against the quota
up=$(api_as "$CAROL" POST /apps/carol-app/packages/uploads "{\"size\":$SIZE}" | jq_get url)
curl -s -o "$T/slow.json" -w '%{http_code}' --limit-rate 6k --data-binary @"$PKG" "$up" > "$T/slow.code" &
SLOW=$!
for _ in $(seq 300); do
	ls "$T/node-sbx/app-packages/$CU/.uploads/" 2>/dev/null | grep -q up- && break
	sleep 0.1
done
check_fails "a second upload while the first runs finds no room" 1 as_carol packages upload --app carol-app "$T/alice2.tar.gz"
expect_match "the running upload counts" "$(cat "$T/last.err")" "holds $SIZE of its $APPQ bytes: no room for"
wait "$SLOW"
expect "the slow upload completes" "$(cat "$T/slow.code") $(jq_get id < "$T/slow.json")" "201 notes-1.0.0"
check_fails "and its package still fills the quota" 1 as_carol packages upload --app carol-app "$T/alice2.tar.gz"
check "carol deletes it" as_carol packages delete --app carol-app notes-1.0.0
check "then the other fits" as_carol packages upload --app carol-app "$T/alice2.tar.gz"
finish
