#!/usr/bin/env python3
"""Idle-connection floods against a daemon on loopback (bounded in count
and time; it stops by itself).

flood.py hold HOST PORT SOURCES PER_SOURCE SECONDS
    Open PER_SOURCE connections from each source address (SOURCES is one
    address, 127.0.0.2, or a range of the last byte, 127.0.1.1-40), each a
    slow client that never finishes its request's headers (one byte every
    3 s). Once they settled, print "open N refused M" (N still open) and
    hold them until SECONDS passed (or the test ends it).
flood.py silent HOST PORT SECONDS
    One connection that sends nothing: print how many seconds passed
    until the server closed it, or "open" after SECONDS.
"""
import select
import socket
import sys
import time


def sources(spec):
    if "-" not in spec:
        return [spec]
    base, last = spec.rsplit("-", 1)
    head, first = base.rsplit(".", 1)
    return ["%s.%d" % (head, i) for i in range(int(first), int(last) + 1)]


def still_open(s):
    try:
        return s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def hold(host, port, spec, per_source, seconds):
    deadline = time.monotonic() + min(seconds, 300)
    socks = []
    for src in sources(spec):
        for _ in range(min(per_source, 10000)):
            s = socket.socket()
            s.settimeout(3)
            try:
                s.bind((src, 0))
                s.connect((host, port))
                s.setblocking(False)
                socks.append(s)
            except OSError:
                s.close()
    time.sleep(1.5)
    live = [s for s in socks if still_open(s)]
    for s in socks:
        if s not in live:
            s.close()
    print("open %d refused %d" % (len(live), len(socks) - len(live)), flush=True)
    request = b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n"
    sent = 0
    while time.monotonic() < deadline:
        time.sleep(3)
        if sent < len(request):
            for s in live:
                try:
                    s.send(request[sent:sent + 1])
                except OSError:
                    pass
            sent += 1
    for s in live:
        s.close()


def silent(host, port, seconds):
    s = socket.create_connection((host, port), timeout=3)
    s.setblocking(False)
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        r, _, _ = select.select([s], [], [], 0.5)
        if r and not still_open(s):
            print("%.1f" % (time.monotonic() - start))
            return
    print("open")


def main():
    mode = sys.argv[1]
    if mode == "hold":
        hold(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]),
             float(sys.argv[6]))
    elif mode == "silent":
        silent(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
