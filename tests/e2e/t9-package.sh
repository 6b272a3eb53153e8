#!/usr/bin/env bash
# t9-package: the Debian package (make deb: CPack from the build) holds
# nubod, nubo, the systemd units, the example config files and the man
# pages; the units pass systemd-analyze verify, the package passes
# lintian (no error), the man pages say every option --help prints, and
# make install honours PREFIX and DESTDIR.
. "$(dirname "$0")/lib.sh"

# --- build the package, as make deb does, into $T ---
check "cpack builds the package" cpack --config "$NUBO_BUILD/CPackConfig.cmake" -G DEB -B "$T/deb"
DEB=$(ls "$T"/deb/nubo_*_*.deb 2>/dev/null | head -n 1)
expect "one .deb" "$(test -f "$DEB" && echo yes)" yes

# --- contents: paths and modes ---
dpkg-deb -c "$DEB" | awk '{print $1, $6}' > "$T/contents"
has() {	# has MODE PATH
	if grep -qxF -- "$1 ./$2" "$T/contents"; then pass "package holds $2 ($1)"
	else fail "package holds $2 ($1): $(grep -F -- "./$2" "$T/contents" || echo missing)"; fi
}
has -rwxr-xr-x usr/sbin/nubod
has -rwxr-xr-x usr/sbin/nubo-init
has -rwxr-xr-x usr/bin/nubo
has -rw-r--r-- usr/lib/systemd/system/nubo-portal.service
has -rw-r--r-- usr/lib/systemd/system/nubo-node.service
has -rw-r--r-- etc/nubo/portal.conf
has -rw------- etc/nubo/node.conf
has -rw-r--r-- usr/share/man/man1/nubo.1.gz
has -rw-r--r-- usr/share/man/man8/nubod.8.gz
has lrwxrwxrwx usr/share/man/man8/nubo-init.8.gz
has -rw-r--r-- usr/share/doc/nubo/copyright
has -rw-r--r-- usr/share/doc/nubo/changelog.Debian.gz
expect "nothing under /var or /usr/local" "$(grep -cE ' \./(var|usr/local)/' "$T/contents" || true)" 0

# --- control: conffiles, postinst, dependencies ---
mkdir "$T/control"
dpkg-deb -e "$DEB" "$T/control"
expect "the config files are conffiles" "$(sort "$T/control/conffiles" | tr '\n' ' ')" \
	"/etc/nubo/node.conf /etc/nubo/portal.conf "
expect "postinst is executable" "$(stat -c %a "$T/control/postinst")" 755
check "postinst is valid sh" sh -n "$T/control/postinst"
expect_match "postinst makes the portal's user" "$(cat "$T/control/postinst")" "adduser --system --group --home /var/lib/nubo/portal"
expect_match "postinst makes the secrets folder the portal's" "$(cat "$T/control/postinst")" \
	"install -d -m 0700 -o nubo-portal -g nubo-portal /etc/nubo/secrets"
depends=$(dpkg-deb -f "$DEB" Depends)
expect_match "depends on adduser (postinst)" "$depends" "(^|, )adduser(,|$)"
expect_match "depends on the libraries nubod links (shlibdeps)" "$depends" "libmicrohttpd12.*libsodium23|libsodium23.*libmicrohttpd12"
expect_match "recommends the node's tools" "$(dpkg-deb -f "$DEB" Recommends)" "bubblewrap.*slirp4netns"

# --- the files themselves ---
R=$T/root
dpkg-deb -x "$DEB" "$R"
check "the packaged nubod runs" "$R/usr/sbin/nubod" --help
check "the packaged nubo runs" "$R/usr/bin/nubo" --help
# the example files are valid: nubod reads them before --help answers
check "portal.conf is read by nubod portal" "$R/usr/sbin/nubod" portal --config "$R/etc/nubo/portal.conf" --help
check "node.conf is read by nubod node" "$R/usr/sbin/nubod" node --config "$R/etc/nubo/node.conf" --help
expect_match "portal.conf: data in /var/lib/nubo" "$(cat "$R/etc/nubo/portal.conf")" "^data = /var/lib/nubo/portal$"
expect_match "node.conf: data in /var/lib/nubo" "$(cat "$R/etc/nubo/node.conf")" "^data = /var/lib/nubo/node$"

# man pages: groff has nothing to say, and they hold every option that
# --help prints (both come from the same tables)
for page in man1/nubo.1.gz man8/nubod.8.gz; do
	MANWIDTH=200 man --warnings -E UTF-8 -l "$R/usr/share/man/$page" > "$T/page.txt" 2> "$T/page.err" || true
	expect "$page renders without warnings" "$(cat "$T/page.err")" ""
	expect_match "$page has a NAME" "$(cat "$T/page.txt")" "^NAME"
	cp "$T/page.txt" "$T/${page#*/}.txt"
done
missing=
for cmd in portal node archive; do
	for o in $("$NUBOD" "$cmd" --help | sed -n 's/^  \(-[a-z], \)\{0,1\}--\([a-z-]*\).*/\2/p'); do
		grep -q -- "--$o\b" "$T/nubod.8.gz.txt" || missing="$missing $cmd:--$o"
	done
done
expect "nubod(8) has every option of portal, node and archive --help" "$missing" ""
expect "  (node --help lists more than 20 options)" \
	"$(test "$("$NUBOD" node --help | grep -c '^  --')" -gt 20 && echo yes)" yes
missing=
n=0
while read -r cmd; do
	n=$((n + 1))
	grep -qF "nubo $cmd" "$T/nubo.1.gz.txt" || missing="$missing [$cmd]"
done < <("$NUBO" --help | sed -n '/^commands:/,/^$/ s/^  \([a-z][a-z -]*[a-z]\)  .*/\1/p')
expect "nubo(1) has every command of nubo --help" "$missing" ""
expect "  (more than 50 of them)" "$(test "$n" -gt 50 && echo yes)" yes

# --- systemd-analyze verify on the units ---
# The host has no nubod installed: the copies verified here name the
# extracted one (the path the unit names is checked to be in the package),
# and man finds the extracted pages (Documentation=man:nubod(8)).
verify_units() {	# verify_units DIR: 0 when every unit in DIR verifies with no message
	local out rc=0
	out=$(MANPATH=$R/usr/share/man systemd-analyze verify "$1"/*.service 2>&1) || rc=$?
	[ -n "$out" ] && printf '    %s\n' "$out" | sed -n '1,20p'
	[ "$rc" = 0 ] && [ -z "$out" ]
}
printf '[Unit]\nDescription=probe\n[Service]\nExecStart=/bin/true\n' > "$T/probe.service"
if ! command -v systemd-analyze > /dev/null; then
	fail "systemd-analyze is not installed (scripts/install-deps installs systemd): units not verified"
elif ! probe=$(systemd-analyze verify "$T/probe.service" 2>&1) || [ -n "$probe" ]; then
	# e.g. a container without the units systemd-analyze loads: say so,
	# the checks below still run
	echo "# systemd-analyze cannot verify units here (a trivial unit gives: $probe): not verified"
else
	mkdir "$T/units" "$T/broken"
	for u in nubo-portal nubo-node; do
		exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$R/usr/lib/systemd/system/$u.service")
		expect "$u.service starts /usr/sbin/nubod" "$exe" /usr/sbin/nubod
		expect "  which is in the package" "$(test -x "$R$exe" && echo yes)" yes
		sed "s|^ExecStart=/usr/sbin/nubod|ExecStart=$R/usr/sbin/nubod|" \
			"$R/usr/lib/systemd/system/$u.service" > "$T/units/$u.service"
	done
	check "systemd-analyze verify: both units, no message" verify_units "$T/units"
	# the check can fail: an unknown key and a bad value are reported
	sed 's/^NoNewPrivileges=yes/NoNewPrivileges=maybe/; $a Frobnicate=yes' \
		"$T/units/nubo-portal.service" > "$T/broken/nubo-portal.service"
	check_fails "  a broken unit does not verify" 1 verify_units "$T/broken"
fi
portal_unit=$(cat "$R/usr/lib/systemd/system/nubo-portal.service")
node_unit=$(cat "$R/usr/lib/systemd/system/nubo-node.service")
for want in "^User=nubo-portal$" "^NoNewPrivileges=yes$" "^ProtectSystem=strict$" "^PrivateTmp=yes$" \
	"^ReadWritePaths=-/etc/nubo/secrets$" "^StateDirectory=nubo/portal$" "--config /etc/nubo/portal.conf$"; do
	expect_match "nubo-portal.service: $want" "$portal_unit" "$want"
done
for want in "^KillMode=process$" "^NoNewPrivileges=yes$" "^ProtectSystem=full$" "^PrivateTmp=yes$" \
	"^StateDirectory=nubo/node$" "--config /etc/nubo/node.conf$"; do
	expect_match "nubo-node.service: $want" "$node_unit" "$want"
done
expect "the node's unit leaves cgroups and namespaces to the node" \
	"$(grep -cE '^(ProtectControlGroups|ProtectKernelTunables|RestrictNamespaces|PrivateDevices|MemoryDenyWriteExecute)=' <<< "$node_unit" || true)" 0

# --- the portal as its unit runs it: an unprivileged user, the system
# read-only but for its data folder and /etc/nubo/secrets (ProtectSystem=
# strict, ReadWritePaths=), a private /tmp; the packaged nubod and
# portal.conf, bound where the package puts them (bubblewrap) ---
mkdir -m 700 "$T/state" "$T/secrets"
chown 65534:65534 "$T/state" "$T/secrets"
# the host's system read-only (each top-level folder and /etc's entries
# bound in: /etc/nubo and /var/lib/nubo do not exist on the host), then
# the package's files and the two writable folders
unit_root=()
for e in /*; do
	case $e in /etc|/var|/tmp|/proc|/dev|/run|/sys|/home|/root|/lost+found) continue ;; esac
	if [ -L "$e" ]; then unit_root+=(--symlink "$(readlink "$e")" "$e")
	else unit_root+=(--ro-bind "$e" "$e"); fi
done
unit_root+=(--dir /etc)
for e in /etc/*; do unit_root+=(--ro-bind "$e" "$e"); done
as_unit() (	# UMask=0077 too; bubblewrap's child (the daemon) in $T/unit.info
	umask 077
	exec setpriv --reuid=65534 --regid=65534 --clear-groups -- \
		bwrap "${unit_root[@]}" --dev /dev --proc /proc --tmpfs /tmp \
		--dir /etc/nubo --ro-bind "$R/etc/nubo/portal.conf" /etc/nubo/portal.conf \
		--bind "$T/secrets" /etc/nubo/secrets \
		--dir /var/lib/nubo --bind "$T/state" /var/lib/nubo/portal \
		--ro-bind "$R/usr/sbin" /usr/sbin --remount-ro / --die-with-parent \
		--info-fd 3 "$@" 3> "$T/unit.info"
)
check_fails "  (in there, /etc/nubo is read-only)" 1 as_unit /usr/bin/touch /etc/nubo/x
check_fails "  (and so is /var/lib/nubo)" 1 as_unit /usr/bin/touch /var/lib/nubo/x
UNIT_PORT=$(free_port)
check "portal init as the unit's user, from /etc/nubo/portal.conf by default" \
	as_unit /usr/sbin/nubod portal init --email ops@example.com
UNIT_KEY=$(awk '/API key/ {print $NF}' "$T/last.out")
as_unit /usr/sbin/nubod portal --config /etc/nubo/portal.conf --listen "127.0.0.1:$UNIT_PORT" \
	> "$T/unit-portal.log" 2>&1 &
UNIT_PID=$!
PIDS+=("$UNIT_PID")
wait_http "http://127.0.0.1:$UNIT_PORT/api/v1/openapi.json"
check "  it answers, with its store and sealing key where the unit lets it write" \
	env NUBO_URL="http://127.0.0.1:$UNIT_PORT" NUBO_API_KEY="$UNIT_KEY" "$NUBO" apps create unitapp --no-sandbox
expect "  the store is the user's" "$(stat -c '%u %a' "$T/state/portal.db")" "65534 600"
expect "  the sealing key is in /etc/nubo/secrets" "$(stat -c '%u %a' "$T/secrets/portal.key")" "65534 600"
# SIGTERM to nubod itself, bubblewrap's child (bubblewrap passes none on)
kill -TERM "$(jq -r '."child-pid"' "$T/unit.info")"
wait "$UNIT_PID" 2>/dev/null || true
expect_match "  and it stopped cleanly" "$(cat "$T/unit-portal.log")" "stopping"

# --- lintian: no error ---
if command -v lintian > /dev/null; then
	lintian --fail-on error "$DEB" > "$T/lintian.txt" 2>&1 && rc=0 || rc=$?
	sed 's/^/    /' "$T/lintian.txt"
	expect "lintian finds no error" "$rc $(grep -c '^E:' "$T/lintian.txt" || true)" "0 0"
else
	fail "lintian is not installed (scripts/install-deps installs it)"
fi

# --- make install: PREFIX and DESTDIR ---
check "make install PREFIX=/opt/nubo DESTDIR=…" make -s -C "$NUBO_SRC" install \
	BUILD="$NUBO_BUILD" PREFIX=/opt/nubo DESTDIR="$T/inst"
for f in opt/nubo/sbin/nubod opt/nubo/sbin/nubo-init opt/nubo/bin/nubo etc/nubo/portal.conf \
	etc/nubo/node.conf opt/nubo/share/man/man8/nubod.8.gz opt/nubo/share/man/man1/nubo.1.gz \
	opt/nubo/lib/systemd/system/nubo-portal.service; do
	expect "installed $f" "$(test -e "$T/inst/$f" && echo yes)" yes
done
expect_match "the unit names the prefix's nubod" \
	"$(cat "$T/inst/opt/nubo/lib/systemd/system/nubo-node.service" 2>/dev/null)" \
	"^ExecStart=/opt/nubo/sbin/nubod node --config /etc/nubo/node.conf$"
expect "nothing installed outside DESTDIR" "$(test -e /opt/nubo && echo yes || echo no)" no

finish
