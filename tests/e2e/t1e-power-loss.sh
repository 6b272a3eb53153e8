#!/usr/bin/env bash
# t1e: what the portal confirmed stays confirmed. The portal's data folder
# lives on an ext4 filesystem in a loop device made here, mounted with
# errors=remount-ro and a 600 s journal commit interval, so that nothing
# reaches the disk unless it was synced. A filesystem error
# (/sys/fs/ext4/<dev>/trigger_fs_error) then aborts the journal as an OS
# crash or a power loss would: what was not synced is gone. After kill -9,
# e2fsck and a new mount, every write the API confirmed is there, the
# secrets key is the very same, and no temp file is left — at several
# points: right after `portal init`, right after the first start (the key
# is made), and after a batch of confirmed API writes and a CLI login.
# The loop device is unmounted and detached on every exit.
# its mounts in a mount namespace of its own: a namespace another process
# makes meanwhile (ip netns exec, a sandbox) would hold a copy of the loop
# device's mount, and e2fsck or losetup -d would find the device in use
if [ -z "${NUBO_OWN_MOUNTS:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
	export NUBO_OWN_MOUNTS=1
	exec unshare -m --propagation private -- bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"

loop_disk 64M
DEVNAME=$(basename "$LOOP")

disk_mount() {
	mount -o errors=remount-ro,commit=600 "$LOOP" "$DISK"
}
disk_mount
mkdir -p "$DISK/portal" "$DISK/config" "$DISK/keys"
ln -s "$DISK/portal" "$T/portal"
SECRETS_KEY=$DISK/keys/secrets.key
export XDG_CONFIG_HOME=$DISK/config

# crash WHEN: the filesystem fails (journal aborted, remounted read-only),
# the portal dies, e2fsck repairs, the filesystem comes back.
crash() {
	local rc=0
	echo 1 > "/sys/fs/ext4/$DEVNAME/trigger_fs_error"
	expect "$1: the filesystem failed (read-only)" \
		"$(touch "$DISK/probe" 2>/dev/null && echo writable || echo read-only)" read-only
	if [ -n "${PORTAL_PID:-}" ] && ours "$PORTAL_PID" "$T/portal"; then
		kill9_portal
	fi
	umount "$DISK"
	e2fsck -fy "$LOOP" > "$T/fsck.out" 2>&1 || rc=$?
	# 0: clean, 1: errors corrected; anything else is a broken filesystem
	if [ "$rc" -gt 1 ]; then
		fail "$1: e2fsck exit $rc"
		sed 's/^/    /' "$T/fsck.out"
	fi
	disk_mount
}

# no_temps WHEN: no temp file of an atomic write is left in the folder
no_temps() {
	expect "$1: no temp file left" "$(find "$DISK/portal" "$DISK/keys" -name '*.tmp.*' | wc -l)" 0
}

# 1. right after `portal init`: the platform admin and its key
"$NUBOD" portal init --data "$T/portal" --password adminpass1 > "$T/init.txt"
ADMIN_KEY=$(awk '/API key/ {print $NF}' "$T/init.txt")
INIT_KEY=$ADMIN_KEY
crash "after init"
start_portal
expect "after init: the admin's key works" "$(status_as "$INIT_KEY" GET /me)" 200

# 2. right after the first start: the key that seals every secret
# (--secrets-key, outside the data folder)
KEYFILE=$SECRETS_KEY
expect "first start: a secrets key" "$(test -s "$KEYFILE" && echo yes)" yes
KEYSUM=$(sha256sum < "$KEYFILE")
crash "after the first start"
# a temp file a crash left behind is cleaned at start
echo partial > "$SECRETS_KEY.tmp.4242"
echo partial > "$DISK/portal/other.tmp.4243"
start_portal
expect "after the first start: the admin's key works" "$(status_as "$INIT_KEY" GET /me)" 200
expect "after the first start: the same secrets key" "$(sha256sum < "$KEYFILE" 2>/dev/null)" "$KEYSUM"
no_temps "after the first start"

# 3. after a batch of confirmed API writes (and a CLI login: the CLI's
# config is an atomic file replace too)
confirmed=0
for i in $(seq 12); do
	st=$(status_as "$ADMIN_KEY" POST /apps "{\"subdomain\":\"durable$i\",\"name\":\"Durable $i\",\"sandbox\":false}")
	[ "$st" = 201 ] && confirmed=$((confirmed + 1))
done
expect "writes: 12 apps created (confirmed)" "$confirmed" 12
BOB=$(make_user bob@example.com bobpass123)
check "writes: a key made for bob" test -n "$BOB"
check "writes: nubo login" "$NUBO" login "$PORTAL_URL" --key "$ADMIN_KEY"
crash "after confirmed writes"
start_portal
n=0
for i in $(seq 12); do
	[ "$(status_as "$ADMIN_KEY" GET /apps/durable$i)" = 200 ] && n=$((n + 1))
done
expect "after confirmed writes: every confirmed app is there" "$n" 12
expect "after confirmed writes: bob's key works" "$(status_as "$BOB" GET /me)" 200
expect "after confirmed writes: the CLI login is there" \
	"$(env -u NUBO_URL -u NUBO_API_KEY "$NUBO" whoami --json 2>/dev/null | jq_get email 2>/dev/null)" admin@nubo.localhost
expect "after confirmed writes: the same secrets key" "$(sha256sum < "$KEYFILE" 2>/dev/null)" "$KEYSUM"
no_temps "after confirmed writes"

finish
