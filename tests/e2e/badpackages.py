#!/usr/bin/env python3
"""Write one bad package per SPEC §6 package case into DIR, named
<case>.<ext>, and print "<file>\t<expected message part>" lines.
Usage: badpackages.py DIR GOOD_PACKAGE (a valid .tar.gz to damage)."""
import gzip
import io
import os
import sys
import tarfile
import zipfile
import zlib

out, good = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
MANIFEST = b'{"name":"bad","version":"1.0.0","start":"run.sh"}'
RUN = b"#!/bin/sh\nexec sleep 1000\n"
cases = []


def entry(tf, name, data=b"", kind=tarfile.REGTYPE, link="", size=None):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = 0o755
    ti.linkname = link
    if kind == tarfile.REGTYPE:
        ti.size = len(data) if size is None else size
        tf.addfile(ti, io.BytesIO(data))
    else:
        tf.addfile(ti)


def tgz(case, want, entries, manifest=MANIFEST, run=True):
    path = os.path.join(out, case + ".tar.gz")
    with tarfile.open(path, "w:gz") as tf:
        if manifest is not None:
            entry(tf, "nubo.json", manifest)
        if run:
            entry(tf, "run.sh", RUN)
        for e in entries:
            entry(tf, *e)
    cases.append((path, want))


tgz("no-manifest", "no nubo.json", [], manifest=None)
tgz("manifest-in-subfolder", "no nubo.json", [("app/nubo.json", MANIFEST)],
    manifest=None)
tgz("manifest-malformed", "nubo.json: malformed JSON", [], manifest=b'{"name":')
tgz("manifest-unknown-field", "unknown field 'colour'", [],
    manifest=b'{"name":"bad","version":"1","start":"run.sh","colour":"red"}')
tgz("manifest-wrong-type", "field 'version' must be a string", [],
    manifest=b'{"name":"bad","version":1,"start":"run.sh"}')
tgz("manifest-bad-constant", "unknown type 'money'", [],
    manifest=b'{"name":"bad","version":"1","start":"run.sh","constants":'
             b'[{"name":"Price","type":"money"}]}')
tgz("manifest-bad-event", "every '1 hour'", [],
    manifest=b'{"name":"bad","version":"1","start":"run.sh",'
             b'"scheduled_events":[{"name":"Tick","every":"1 hour"}]}')
tgz("manifest-deep", "nested deeper", [],
    manifest=b'{"name":"bad","version":"1","start":"run.sh","x":' +
             b"[" * 100 + b"]" * 100 + b"}")
tgz("manifest-huge", "larger than", [],
    manifest=b'{"name":"' + b"x" * 70000 + b'"}')
tgz("start-missing", "start file 'run.sh' is missing", [], run=False)
tgz("start-outside", "outside the package", [],
    manifest=b'{"name":"bad","version":"1","start":"../../bin/sh"}')
tgz("start-absolute", "outside the package", [],
    manifest=b'{"name":"bad","version":"1","start":"/bin/sh"}')
tgz("dotdot", "escapes the package root", [("../../etc/evil", b"x")])
tgz("dotdot-inner", "escapes the package root", [("a/../../evil", b"x")])
tgz("absolute", "absolute path", [("/etc/evil", b"x")])
tgz("symlink-absolute", "points outside", [("passwd", b"", tarfile.SYMTYPE,
                                            "/etc/passwd")])
tgz("symlink-up", "points outside", [("x/up", b"", tarfile.SYMTYPE,
                                      "../../../etc")])
tgz("symlink-then-write", "not a folder",
    [("etc", b"", tarfile.SYMTYPE, "sub"), ("etc/x", b"x")])
tgz("hardlink-out", "points outside", [("pw", b"", tarfile.LNKTYPE,
                                        "/etc/passwd")])
tgz("hardlink-up", "points outside", [("pw", b"", tarfile.LNKTYPE,
                                       "../../etc/shadow")])
tgz("device", "device file", [("null", b"", tarfile.CHRTYPE)])
tgz("fifo", "named pipe", [("pipe", b"", tarfile.FIFOTYPE)])
tgz("duplicate", "duplicate entry 'run.sh'", [("./run.sh", b"again")])
# names that are not UTF-8 (the byte 0xff) are shown as \xNN
tgz("device-odd-name", "entry 'null\\xff' is a device file",
    [("null\udcff", b"", tarfile.CHRTYPE)])
tgz("dotdot-odd-name", "entry '../\\xfe/evil' escapes the package root",
    [("../\udcfe/evil", b"x")])

# an entry whose header claims more than 1 GiB
path = os.path.join(out, "oversized-entry.tar.gz")
hdr = tarfile.TarInfo("huge.bin")
hdr.size = (1 << 30) + 1
raw = hdr.tobuf(format=tarfile.USTAR_FORMAT)
with gzip.open(path, "wb") as g:
    g.write(raw + b"\0" * 4096)
cases.append((path, "larger than"))

# 100,001 entries
path = os.path.join(out, "too-many-entries.tar.gz")
with tarfile.open(path, "w:gz", compresslevel=1) as tf:
    entry(tf, "nubo.json", MANIFEST)
    entry(tf, "run.sh", RUN)
    for i in range(100000):
        entry(tf, "d/%d" % i, b"")
cases.append((path, "more than 100000 entries"))

# gzip bomb: 100 MB of zeros
path = os.path.join(out, "gzip-bomb.tar.gz")
with tarfile.open(path, "w:gz", compresslevel=9) as tf:
    entry(tf, "nubo.json", MANIFEST)
    entry(tf, "run.sh", RUN)
    ti = tarfile.TarInfo("zeros")
    ti.size = 100 << 20

    class Zeros(io.RawIOBase):
        left = 100 << 20

        def readable(self):
            return True

        def readinto(self, b):
            n = min(len(b), self.left)
            b[:n] = b"\0" * n
            self.left -= n
            return n
    tf.addfile(ti, io.BufferedReader(Zeros(), 1 << 20))
cases.append((path, "gzip bomb"))

# damaged copies of a good package
data = open(good, "rb").read()
for case, blob, want in [
        ("truncated", data[:len(data) // 2], "truncated"),
        ("truncated-trailer", data[:-3], "truncated"),
        ("bit-flipped", data[:len(data) // 3] +
         bytes([data[len(data) // 3] ^ 0x10]) + data[len(data) // 3 + 1:],
         "broken archive"),
        ("crc-flipped", data[:-6] + bytes([data[-6] ^ 0xff]) + data[-5:],
         "broken archive"),
        ("empty", b"", "empty upload"),
        ("not-an-archive", b"hello, I am a text file\n" * 10,
         "not a package archive")]:
    path = os.path.join(out, case + ".mda")
    open(path, "wb").write(blob)
    cases.append((path, want))

# zip variants
path = os.path.join(out, "zip-dotdot.zip")
with zipfile.ZipFile(path, "w") as z:
    z.writestr("nubo.json", MANIFEST)
    z.writestr("run.sh", RUN)
    z.writestr("../evil", b"x")
cases.append((path, "escapes the package root"))
path = os.path.join(out, "zip-truncated.zip")
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("nubo.json", MANIFEST)
    z.writestr("run.sh", RUN * 1000)
open(path, "wb").write(buf.getvalue()[:len(buf.getvalue()) - 40])
cases.append((path, "broken archive"))

for path, want in cases:
    print("%s\t%s" % (path, want))
