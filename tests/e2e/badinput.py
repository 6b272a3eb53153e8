#!/usr/bin/env python3
"""Bad input for every write route (SPEC §6), generated from the route table.

For each route with a method other than GET, on a fresh app linked to a
fresh node that has registered (its agent URL answers nothing; the caller
is platform admin and Technical Contact of both, so every access check
passes and the handler's own validation is reached): malformed, truncated,
non-object, invalid UTF-8, duplicate-key, 100-deep and 2 MB bodies, an
unknown field, each discovered field with every wrong JSON type, and
unknown {app}/{node}/{env} ids. Each must get its own answer — 400
BAD_REQUEST (naming the field for an unknown field or a wrong type), 413
BODY_TOO_LARGE, 404 APP_NOT_FOUND / NODE_NOT_FOUND / ENVIRONMENT_NOT_FOUND
— not just any 4xx (a refusal by state or by an unreachable node before
the body is looked at proves nothing about the handler's validation), and
the store must be exactly as before (a dump of every table, compared).

usage: badinput.py NUBOD PORTAL_URL ADMIN_KEY STORE_PATH
"""
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import Portal, error_of, must, now_iso  # noqa: E402

NUBOD, URL, ADMIN_KEY, STORE = sys.argv[1:5]
portal = Portal(URL)
# the Mendix faces (paths under /api/) take the key's user too
call = lambda *a, **kw: portal.call(*a, user="admin@nubo.localhost", **kw)  # noqa: E731
db = sqlite3.connect(STORE, timeout=30, isolation_level=None)
db.execute("PRAGMA foreign_keys=ON")
ADMIN = db.execute("SELECT id FROM users WHERE is_admin = 1 ORDER BY id"
                   " LIMIT 1").fetchone()[0]
PARAM = re.compile(r"\{([^}]+)\}")
UNKNOWN_FIELD = "zz_no_such_field"
passed = failed = 0
worlds = 0


def ok(msg):
    global passed
    passed += 1
    print("ok - " + msg)


def fail(msg):
    global failed
    failed += 1
    print("not ok - " + msg)


def make_world():
    """Fresh app + linked v4 node (Test/Acceptance/Production) owned by the
    admin, a node token, a user and a key; returns (fixtures, token)."""
    global worlds
    worlds += 1
    n, t = worlds, now_iso()
    app_uuid = str(uuid.uuid4())
    app = db.execute("INSERT INTO apps (uuid, subdomain, name,"
                     " technical_contact, created_at) VALUES (?, ?, ?, ?, ?)",
                     (app_uuid, f"bad-app{n}", f"app {n}", ADMIN,
                      t)).lastrowid
    db.execute("INSERT INTO members (app_id, user_id, created_at)"
               " VALUES (?, ?, ?)", (app, ADMIN, t))
    token = "nubo_node_" + uuid.uuid4().hex
    node = db.execute("INSERT INTO nodes (name, generation, status,"
                      " technical_contact, app_id, token_hash, created_at)"
                      " VALUES (?, 'v4', 'linked', ?, ?, ?, ?)",
                      (f"bad-node{n}", ADMIN, app,
                       hashlib.sha256(token.encode()).hexdigest(),
                       t)).lastrowid
    for env in ("Test", "Acceptance", "Production"):
        db.execute("INSERT INTO environments (node_id, name, created_at)"
                   " VALUES (?, ?, ?)", (node, env, t))
    user = must(*call("POST", "/users", ADMIN_KEY,
                      {"email": f"bad{n}@input.test",
                       "password": "badinput12"}), 201, "user")
    key = must(*call("POST", "/keys", ADMIN_KEY, {"name": f"bad{n}"}), 201,
               "key")
    job = db.execute("INSERT INTO jobs (kind, state, app_id, node_id,"
                     " created_at) VALUES ('badinput', 'completed', ?, ?, ?)",
                     (app, node, t)).lastrowid
    migration = db.execute("INSERT INTO migrations (uuid, app_id,"
                           " source_node_id, target_node_id, environments_json,"
                           " state, phase, created_by, created_at, updated_at)"
                           " VALUES (?, ?, ?, ?, '[]', 'completed', 'finalize',"
                           " ?, ?, ?)", (str(uuid.uuid4()), app, node, node,
                                         ADMIN, t, t)).lastrowid
    # approved and purged: a purge is refused by state, no job starts
    request = db.execute("INSERT INTO offboarding_requests (node_id, state,"
                         " requested_at, purged_at) VALUES (?, 'approved',"
                         " ?, ?)", (node, t, t)).lastrowid
    # the node has registered: handlers go as far as calling its agent,
    # which is not there (port 1 refuses)
    must(*call("POST", "/agent/register", token,
               {"url": "http://127.0.0.1:1", "generation": "v4"}), 200,
         "register")
    snap = str(uuid.uuid4())
    db.execute("INSERT INTO snapshots (uuid, environment_id, app_id, node_id,"
               " type, state, created_at) SELECT ?, id, ?, ?, 'manual',"
               " 'completed', ? FROM environments WHERE node_id = ? AND"
               " name = 'Test'", (snap, app, node, t, node))
    # Path parameter -> value; keep in step with permissions.py.
    return {
        "app": f"bad-app{n}", "env": "Test", "node": f"bad-node{n}",
        "user": str(user["id"]), "key": str(key["id"]), "id": str(job),
        "migration": str(migration), "request": str(request),
        "package": "notes-1.0.0",
        "name": "Greeting", "domain": "shop.example.test",
        "header": "X-Frame-Options", "snapshot": snap,
        "run": str(uuid.uuid4()),
        "AppId": f"bad-app{n}", "Mode": "test", "PackageId": "notes-1.0.0",
        "JobId": str(job), "ProjectId": app_uuid,
        "EnvironmentId": db.execute("SELECT uuid FROM environments WHERE"
                                    " node_id = ? AND name = 'Test'",
                                    (node,)).fetchone()[0],
        "SnapshotId": snap, "ArchiveId": str(uuid.uuid4()),
        "RestoreId": str(uuid.uuid4()), "appId": app_uuid, "Name": "main",
        "tag": "customer-facing", "Tag": "eu", "date": "2026-01-31",
        "Date": "2026-01-31",
        "environmentId": db.execute("SELECT uuid FROM environments WHERE"
                                    " node_id = ? AND name = 'Test'",
                                    (node,)).fetchone()[0],
    }, token


def dump():
    # login_failures is left out: a wrong password is counted on purpose
    # (the login lockout, src/portal/lockout.c); t1d tests that table.
    return "\n".join(line for line in db.iterdump()
                     if '"login_failures"' not in line)


def settle():
    """Wait (at most 60 s) until no job is queued or running."""
    for _ in range(600):
        if db.execute("SELECT count(*) FROM jobs WHERE state IN"
                      " ('queued', 'running')").fetchone()[0] == 0:
            return
        time.sleep(0.1)
    fail("jobs still running after 60 s: %s" % db.execute(
        "SELECT id, kind, state FROM jobs WHERE state IN ('queued',"
        " 'running')").fetchall())


def fill(pattern, fixtures):
    return PARAM.sub(lambda m: urllib.parse.quote(fixtures[m.group(1)],
                                                  safe=""), pattern)


WRONG = [12345, "text", True, [], {}, None, 1.5]


def message(doc):
    return error_of(doc)[1]


def discover(method, path, key, agent):
    """The required fields of a route and a value of the right type for
    each, learnt from its errors ("missing field 'x'", "field 'x' must
    be …"). Runs before the store is dumped: the final probe may succeed.
    An agent route ignores unknown fields (node-contract.md,
    Compatibility): there a value is right when its type is not refused."""
    body = {}
    for _ in range(12):
        st, doc = call(method, path, key, body)
        m = re.search(r"missing field '([^']+)'", message(doc))
        if st != 400 or not m or m.group(1) in body:
            break
        name = m.group(1)
        for v in ["text", 1, True, ["text"], {}, 1.5]:
            # The unknown field comes after: a right type answers about it.
            st, doc = call(method, path, key,
                           raw=(json.dumps({**body, name: v})[:-1] +
                                ', "%s": 1}' % UNKNOWN_FIELD).encode())
            if UNKNOWN_FIELD in message(doc) or (
                    agent and "field '%s' must be" % name not in
                    message(doc)):
                body[name] = v
                break
        else:
            break
    return body


# Routes whose body is (part of) the settings document: an unknown field
# there is an unknown setting, reported with the others.
SETTINGS_DOCUMENT = {
    "PUT /apps/{app}/environments/{env}/settings": "SETTINGS_INVALID",
    "PATCH /apps/{app}/environments/{env}/settings": "SETTINGS_INVALID",
    "PUT /apps/{app}/environments/{env}/settings/headers": "SETTINGS_INVALID",
    "PUT /apps/{app}/environments/{env}/settings/maintenance-window":
        "SETTINGS_INVALID",
}
# The Mendix faces answer nubo's generic codes in their words
# (docs/MENDIX-API.md, src/portal/mx.c) and take packages as multipart
# uploads, which refuse any JSON body.
MX_CODES = {"BAD_JSON": "INVALID_PARAMETERS", "BAD_REQUEST":
            "INVALID_PARAMETERS", "BODY_NOT_ALLOWED": "INVALID_PARAMETERS"}
MULTIPART = {"POST /api/1/apps/{AppId}/packages/upload",
             "POST /api/v2/apps/{AppId}/packages/upload"}
# a DELETE that takes a JSON body (the Mendix Deploy API's tags)
DELETE_WITH_BODY = {"DELETE /api/1/apps/{AppId}/environments/{Mode}/tags"}
routes = json.loads(subprocess.check_output([NUBOD, "routes"]))
writes = [r for r in routes if r["method"] != "GET"]
if not writes:
    fail("no write routes in the route table")
for rt in writes:
    method, pattern = rt["method"], rt["path"]
    name = f"{method} {pattern}"
    fixtures, token = make_world()
    missing = [p for p in PARAM.findall(pattern) if p not in fixtures]
    if missing:
        fail(f"{name}: no fixture for path parameter {{{missing[0]}}}: add "
             "one to make_world() in tests/e2e/badinput.py")
        continue
    key = token if rt["access"] == "agent" else ADMIN_KEY
    path = fill(pattern, fixtures)
    takes_body = method != "DELETE" or name in DELETE_WITH_BODY
    agent = rt["access"] == "agent"
    good = discover(method, path, key, agent) if takes_body else {}

    # (what, body, (status, code, text the message must hold) or a
    # ("path", parameter, bogus value) for an unknown id)
    # a DELETE takes no body at all
    BAD = (400, "BAD_JSON" if takes_body else "BODY_NOT_ALLOWED", None)
    cases = [
        ("malformed JSON", b'{"name": ', BAD),
        ("truncated JSON", json.dumps(good).encode()[:-1] or b"{", BAD),
        ("not an object", b"[1, 2, 3]", BAD),
        ("a bare string", b'"hello"', BAD),
        ("invalid UTF-8", b'{"name": "\xff\xfe"}', BAD),
        ("duplicate keys", b'{"a": 1, "a": 2}', BAD),
        ("nested 100 deep", b'{"a": ' * 100 + b"1" + b"}" * 100, BAD),
        ("2 MB body", b'{"a": "' + b"x" * (2 * 1024 * 1024) + b'"}',
         (413, "BODY_TOO_LARGE", None) if takes_body else BAD),
    ]
    # a node's body may carry fields of a newer node: accepted (below)
    if takes_body and not agent:
        cases.append(("unknown field", json.dumps(
            {**good, UNKNOWN_FIELD: 1}).encode(),
            (400, SETTINGS_DOCUMENT.get(name, "BAD_REQUEST"), UNKNOWN_FIELD)))
    for f in good:
        for v in WRONG:
            if type(v) is type(good[f]) or (isinstance(v, (int, float)) and
                                            not isinstance(v, bool) and
                                            isinstance(good[f], (int, float))
                                            and not isinstance(good[f], bool)):
                continue
            cases.append((f"field '{f}' as {json.dumps(v)}",
                          json.dumps({**good, f: v}).encode(),
                          (400, "BAD_REQUEST", "'%s'" % f)))
    if name in MULTIPART:
        cases = [(what, raw, (400, "BAD_REQUEST", "multipart"))
                 for what, raw, _ in cases]
    for p, bogus in (("app", "no-such-app"), ("node", "no-such-node"),
                     ("env", "NoSuchEnv"), ("AppId", "no-such-app"),
                     ("Mode", "NoSuchEnv"), ("ProjectId", str(uuid.uuid4())),
                     ("EnvironmentId", str(uuid.uuid4())),
                     ("appId", str(uuid.uuid4())),
                     ("environmentId", str(uuid.uuid4()))):
        if "{%s}" % p in pattern:
            cases.append((f"unknown {{{p}}}", json.dumps(good).encode()
                          if takes_body else None,
                          ("path", p, bogus)))

    # the probe that found the fields may have started a job: it ends
    # (the node is not there) before the store is compared
    settle()
    before = dump()
    bad = []
    NOT_FOUND = {"app": "APP_NOT_FOUND", "node": "NODE_NOT_FOUND",
                 "env": "ENVIRONMENT_NOT_FOUND", "AppId": "APP_NOT_FOUND",
                 "Mode": "ENVIRONMENT_NOT_FOUND", "ProjectId": "APP_NOT_FOUND",
                 "EnvironmentId": "ENVIRONMENT_NOT_FOUND",
                 "appId": "APP_NOT_FOUND",
                 "environmentId": "ENVIRONMENT_NOT_FOUND"}
    for what, raw, want in cases:
        p = path
        if want[0] == "path":
            p = fill(pattern, {**fixtures, want[1]: want[2]})
            want = (404, NOT_FOUND[want[1]], want[2])
        # v4 keeps nubo's code (x-nubo-code) beside the HTTP status
        if pattern.startswith("/api/") and not pattern.startswith("/api/v4"):
            want = (want[0], MX_CODES.get(want[1], want[1]), want[2])
        st, doc = call(method, p, key, raw=raw)
        code, msg = error_of(doc)
        if st != want[0] or code != want[1] or \
                (want[2] and want[2] not in msg):
            bad.append(f"{what}: HTTP {st} {str(doc)[:160]}, wanted "
                       f"{want[0]} {want[1]}" +
                       (f" naming {want[2]}" if want[2] else ""))
    after = dump()
    if before != after:
        import difflib
        diff = [line for line in difflib.unified_diff(
            before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        bad.append("store changed:\n      " + "\n      ".join(diff[:10]))
    if bad:
        fail(f"{name}: " + "; ".join(bad[:1]))
        for b in bad[1:8]:
            print("    " + b)
    else:
        ok(f"{name}: {len(cases)} bad inputs refused, store unchanged")

# The node->portal protocol accepts and ignores fields it does not know
# (a node upgraded before the portal, node-contract.md), at the top and
# inside, and still refuses a known field of the wrong type.
fixtures, token = make_world()
heartbeat = {"environments": [{"id": 999999, "state": "stopped",
                               UNKNOWN_FIELD: {"x": 1}}],
             "disk": {"free_bytes": 1 << 30, "total_bytes": 1 << 31,
                      "reserve_bytes": 1 << 20, "low": False,
                      UNKNOWN_FIELD: 1},
             UNKNOWN_FIELD: [1, 2]}
st, doc = call("POST", "/agent/status", token, heartbeat)
if st == 200 and isinstance(doc, dict) and "environments" in doc:
    ok("a heartbeat with fields of a newer node is accepted")
else:
    fail(f"a heartbeat with unknown fields: HTTP {st} {str(doc)[:160]}")
for what, bad, field in (
        ("environments as a string", {**heartbeat, "environments": "x"},
         "environments"),
        ("an environment's state as a number",
         {**heartbeat, "environments": [{"id": 1, "state": 3}]}, "state"),
        ("disk.low as a string",
         {**heartbeat, "disk": {**heartbeat["disk"], "low": "no"}}, "low")):
    before = dump()
    st, doc = call("POST", "/agent/status", token, bad)
    if st == 400 and (doc.get("error") or {}).get("code") == "BAD_REQUEST" \
            and "'%s'" % field in message(doc) and dump() == before:
        ok(f"a heartbeat with {what} is still refused, naming it")
    else:
        fail(f"a heartbeat with {what}: HTTP {st} {str(doc)[:160]}")
st, doc = call("POST", "/agent/register", token,
               {"url": "http://127.0.0.1:1", "generation": "v4",
                UNKNOWN_FIELD: "x"})
if st == 200:
    ok("a registration with a field of a newer node is accepted")
else:
    fail(f"a registration with an unknown field: HTTP {st} {str(doc)[:160]}")

# Rules of SPEC §2/§6 that a generic sweep cannot know.
fixtures, _ = make_world()
SPECIFIC = [
    ("POST", "/apps", {"subdomain": "Upper"}, "INVALID_SUBDOMAIN"),
    ("POST", "/apps", {"subdomain": "1digit"}, "INVALID_SUBDOMAIN"),
    ("POST", "/apps", {"subdomain": "a"}, "INVALID_SUBDOMAIN"),
    ("POST", "/apps", {"subdomain": "a" * 40}, "INVALID_SUBDOMAIN"),
    ("POST", "/apps", {"subdomain": "under_score"}, "INVALID_SUBDOMAIN"),
    ("POST", "/apps", {"subdomain": ""}, "INVALID_SUBDOMAIN"),
    ("POST", "/apps", {"subdomain": "bad-app1", "sandbox": False}, "SUBDOMAIN_TAKEN"),
    ("POST", "/users", {"email": "no-at-sign", "password": "longenough"}, "INVALID_EMAIL"),
    ("POST", "/users", {"email": "a@b.c", "password": "short"}, "INVALID_PASSWORD"),
    ("POST", "/users", {"email": "a b@c.d", "password": "longenough"}, "INVALID_EMAIL"),
    ("POST", "/users", {"email": "x@y.z", "password": "longenough", "name": "n" * 500}, "INVALID_NAME"),
    ("POST", "/keys", {"expires_at": "yesterday"}, "INVALID_EXPIRY"),
    ("POST", "/keys", {"expires_at": "2001-01-01T00:00:00Z"}, "INVALID_EXPIRY"),
    ("POST", "/keys", {"apps": [1, 2]}, None),
    ("POST", "/keys", {"apps": ["no-such-app"]}, "APP_NOT_FOUND"),
    ("POST", "/keys", {"name": "k" * 500}, "INVALID_NAME"),
    ("POST", "/sessions", {"email": "admin@nubo.localhost", "password": "x" * 5000}, "BAD_CREDENTIALS"),
    ("POST", "/sessions", {"email": "admin@nubo.localhost", "password": "wrongpass1"}, "BAD_CREDENTIALS"),
    ("POST", "/sessions", {"email": "admin@nubo.localhost", "password": "adminpass1", "name": "n" * 500}, "INVALID_NAME"),
    ("POST", "/sessions", {"email": "admin@nubo.localhost", "password": "adminpass1", "expires_in": -5}, None),
    ("DELETE", "/keys/999999", None, "KEY_NOT_FOUND"),
]
for method, path, body, code in SPECIFIC:
    if not any(r["method"] == method and
               re.fullmatch(PARAM.sub("[^/]+", r["path"]), path)
               for r in routes):
        fail(f"{method} {path}: no such route any more; update SPECIFIC")
        continue
    before = dump()
    st, doc = call(method, path, ADMIN_KEY, body)
    after = dump()
    got = (doc.get("error") or {}).get("code") if isinstance(doc, dict) else None
    if 400 <= st < 500 and got and (code is None or got == code) and \
            before == after:
        ok(f"{method} {path} {json.dumps(body)[:60]}: {st} {got}")
    else:
        fail(f"{method} {path} {json.dumps(body)[:60]}: HTTP {st} {got}"
             f"{' (store changed)' if before != after else ''}, wanted {code}")

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
