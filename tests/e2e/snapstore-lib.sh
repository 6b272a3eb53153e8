# What the tests of the node's snapshot store share (t5c, t5e): sourced
# after lib.sh. start_store_notes TEST: a portal, app shop on node cloud3
# with the sample notes app running in its Test; then D (the node's
# folder), STORE, EID, FILES, DBURL and the helpers below.
start_store_notes() {
	PKG=$(ls "$NUBO_BUILD"/packages/notes-*.tar.gz 2>/dev/null | head -1)
	[ -n "$PKG" ] || { echo "$1: the notes package is not built (make examples)" >&2; exit 1; }
	start_portal
	start_notes shop cloud3 "$PKG"
	D=$T/node-cloud3
	STORE=$D/store
	EID=$(env_id cloud3 Test)
	FILES=$D/envs/$EID/files
	DBURL="postgresql://env_$EID:$(jq_get db_password < "$D/envs/$EID/env.json")@127.0.0.1:$(sed -n 3p "$T/node-cloud3.ports")/env_$EID"
}
sql() { psql -X -At -v ON_ERROR_STOP=1 "$DBURL" -c "$1"; }
# a document as the app stores it (tree/xx/yy/<uuid>), the environment's
# (the new file and its folders only: a chown moves a file's ctime, and
# a file whose ctime moved is read again)
# flip_byte FILE [OFFSET]: the byte at OFFSET (10) of FILE inverted — a
# change whatever the byte was (writing a fixed byte there changed
# nothing when the file already held it: 1 time in 256 with random
# contents)
flip_byte() {
	python3 - "$1" "${2:-10}" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([b[0] ^ 0xFF]))
PY
}
put_doc() { # BYTES
	local u d
	u=$(python3 -c 'import uuid; print(uuid.uuid4())')
	d=$FILES/${u:0:2}/${u:2:2}
	mkdir -p "$d" && head -c "$1" /dev/urandom > "$d/$u"
	chown --reference="$FILES" "$FILES/${u:0:2}" "$d" "$d/$u"
	echo "$d/$u"
}
# the rows and every file's sha256, as one hash
state() {
	{ sql "SELECT id, title, body FROM notes ORDER BY id"
	  (cd "$FILES" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); } | sha256sum | cut -c1-64
}
snap() { # COMMENT: take a snapshot, print its id
	"$NUBO" backups create shop Test --comment "$1" >/dev/null &&
		"$NUBO" backups list shop Test --json | jq_get snapshots.0.id
}
