#!/usr/bin/env python3
"""The permission matrix of SPEC §2, checked against an expected table.

tests/e2e/access.txt, written by hand and reviewed, says who may call each
route; it must list exactly the routes `nubod routes` prints, with the same
access levels (a route added, removed or opened up in src/portal/routes.c
fails here until the table says so too). Every route is then called as
every principal below, the expected outcome coming from the table:

  denied  -> exactly 401 (no/unknown/revoked/expired credentials) or 403
  allowed -> anything but 401/403 (and never 500); on reads (GET) a 2xx
             unless ALLOWED_NOT_2XX names the route and why; and the
             writes in SUCCEEDS really succeed for the callers they name

Path parameters are filled from FIXTURES; a route with a parameter that has
no fixture FAILS the test (add one below), so no route is skipped silently.

Fixtures (apps, members, permissions, nodes, environments) are written
straight into the store so that this test depends only on the schema, not
on the API that manages them; users and keys go through the API. Routes
that may change state (every method but GET) each get a fresh "world" (app,
node, victim user and key), and run the principals that must be denied
before those that may succeed, so a successful DELETE cannot spoil a later
check.

usage: permissions.py NUBOD PORTAL_URL ADMIN_KEY STORE_PATH
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
call = portal.call

PERMS = ["transport", "backups", "settings", "logs", "manage"]
ENV = "Test"            # the {env} fixture
OTHER_ENV = "Acceptance"  # where member-otherenv holds its permissions

# Who holds which permission on which environments ("*": all) in every
# world: make_world() writes these rows, expect() and the grant cases
# below derive their answers from them.
HOLDS = {"member-" + p: {p: ["*"]} for p in PERMS}
HOLDS["member-otherenv"] = {p: [OTHER_ENV] for p in PERMS}
# manage on Test only (the finding: it granted everything everywhere)
HOLDS["member-manage-test"] = {"manage": [ENV], "transport": ["*"],
                               "logs": [ENV]}
HOLDS["member-none"] = {}


def holds(p, perm, env):
    """p holds perm on env (None: on some environment; "*": on all)."""
    envs = HOLDS.get(p, {}).get(perm, [])
    if env is None:
        return bool(envs)
    return "*" in envs or (env != "*" and env in envs)


db = sqlite3.connect(STORE, timeout=30, isolation_level=None)
db.execute("PRAGMA foreign_keys=ON")


def user_id(email):
    return db.execute("SELECT id FROM users WHERE email = ?", (email,)).fetchone()[0]


# --- users and their keys (through the API) -------------------------------
MEMBERS = sorted(HOLDS)
USERS = ["tc", "nodetc", "nonmember", "victim", "grantee"] + MEMBERS
keys = {"admin": ADMIN_KEY}
for name in USERS:
    email = f"{name}@matrix.test"
    must(*call("POST", "/users", ADMIN_KEY,
               {"email": email, "password": "matrixpass1"}), 201, "create " + email)
    st, doc = call("POST", "/sessions", None,
                   {"email": email, "password": "matrixpass1"})
    keys[name] = must(st, doc, 201, "login " + email)["key"]
UID = {n: user_id(f"{n}@matrix.test") for n in USERS}

# The expired key: made to expire two seconds from now (waited for below).
expired = must(*call("POST", "/keys", keys["tc"], {"expires_at": now_iso(2)}),
               201, "expiring key")
expired_at = time.time() + 2
keys["expired"] = expired["key"]
# The revoked key.
rev = must(*call("POST", "/keys", keys["tc"], {"name": "revoked"}), 201, "key")
must(*call("DELETE", "/keys/%d" % rev["id"], keys["tc"]), 200, "revoke")
keys["revoked"] = rev["key"]
# A read-only key of the platform admin.
keys["readonly"] = must(*call("POST", "/keys", ADMIN_KEY, {"read_only": True}),
                        201, "read-only key")["key"]


def now_db():
    return now_iso()


def insert(sql, args=()):
    return db.execute(sql, args).lastrowid


# An app of tc that the scoped key is limited to ("another app").
other_app = insert("INSERT INTO apps (uuid, subdomain, name, technical_contact,"
                   " created_at) VALUES (?, 'matrix-other', 'other', ?, ?)",
                   (str(uuid.uuid4()), UID["tc"], now_db()))
insert("INSERT INTO members (app_id, user_id, created_at) VALUES (?, ?, ?)",
       (other_app, UID["tc"], now_db()))
keys["scoped-other"] = must(*call("POST", "/keys", keys["tc"],
                                  {"apps": ["matrix-other"]}), 201,
                            "scoped key")["key"]

# A node agent: its token authenticates agent routes only.
agent_token = "nubo_node_" + uuid.uuid4().hex
insert("INSERT INTO nodes (name, generation, token_hash, created_at)"
       " VALUES ('matrix-agent', 'v4', ?, ?)",
       (hashlib.sha256(agent_token.encode()).hexdigest(), now_db()))
keys["agent"] = agent_token
# Whose the keys are: the Mendix faces (paths under /api/, docs/
# MENDIX-API.md) take the user's email with the key.
EMAIL = {n: f"{n}@matrix.test" for n in USERS}
EMAIL.update({"admin": "admin@nubo.localhost",
              "readonly": "admin@nubo.localhost", "expired": "tc@matrix.test",
              "revoked": "tc@matrix.test", "scoped-other": "tc@matrix.test",
              "agent": "agent@matrix.test"})


def call_as(method, path, p, body=None):
    """call() as principal p (None: no credentials)."""
    if p is None or p == "nokey":
        return call(method, path, None, body)
    return call(method, path, keys[p], body, user=EMAIL[p])


WORLDS = 0


def make_world():
    """A fresh app (TC: tc) linked to a fresh v4 node (TC: nodetc) with
    Test/Acceptance/Production, the members and their permissions, a victim
    user and key. Returns the path fixtures."""
    global WORLDS
    WORLDS += 1
    n = WORLDS
    t = now_db()
    app_uuid = str(uuid.uuid4())
    app = insert("INSERT INTO apps (uuid, subdomain, name, technical_contact,"
                 " created_at) VALUES (?, ?, ?, ?, ?)",
                 (app_uuid, f"matrix-app{n}", f"app {n}", UID["tc"], t))
    node = insert("INSERT INTO nodes (name, generation, status,"
                  " technical_contact, app_id, created_at)"
                  " VALUES (?, 'v4', 'linked', ?, ?, ?)",
                  (f"matrix-node{n}", UID["nodetc"], app, t))
    for env in ("Test", "Acceptance", "Production"):
        insert("INSERT INTO environments (node_id, name, created_at)"
               " VALUES (?, ?, ?)", (node, env, t))
    for m in ["tc"] + MEMBERS:
        insert("INSERT INTO members (app_id, user_id, created_at)"
               " VALUES (?, ?, ?)", (app, UID[m], t))
    for m in MEMBERS:
        for p, envs in HOLDS[m].items():
            for e in envs:
                insert("INSERT INTO member_permissions (app_id, user_id,"
                       " permission, environment) VALUES (?, ?, ?, ?)",
                       (app, UID[m], p, e))
    victim = must(*call("POST", "/users", ADMIN_KEY,
                        {"email": f"victim{n}@matrix.test",
                         "password": "matrixpass1"}), 201, "victim")
    vkey = must(*call("POST", "/sessions", None,
                      {"email": f"victim{n}@matrix.test",
                       "password": "matrixpass1"}), 201, "victim key")
    job = insert("INSERT INTO jobs (kind, state, app_id, node_id, created_at)"
                 " VALUES ('matrix', 'completed', ?, ?, ?)", (app, node, t))
    # a finished migration and an approved offboarding request whose
    # node's data is purged already: every action on them is refused by
    # state (409), so no job starts
    migration = insert("INSERT INTO migrations (uuid, app_id, source_node_id,"
                       " target_node_id, environments_json, state, phase,"
                       " created_by, created_at, updated_at) VALUES"
                       " (?, ?, ?, ?, '[]', 'completed', 'finalize', ?, ?, ?)",
                       (str(uuid.uuid4()), app, node, node, UID["tc"], t, t))
    request = insert("INSERT INTO offboarding_requests (node_id, state,"
                     " requested_at, purged_at) VALUES (?, 'approved', ?, ?)",
                     (node, t, t))
    # a package in the node's repository (its linked app's)
    insert("INSERT INTO packages (node_id, package, name, version,"
           " size, sha256, uploaded_at, synced_at) VALUES (?,"
           " 'notes-1.0.0', 'notes', '1.0.0', 1, ?, ?, ?)",
           (node, "0" * 64, t, t))
    # a snapshot of {env} (route-backups.c)
    snap = str(uuid.uuid4())
    insert("INSERT INTO snapshots (uuid, environment_id, app_id, node_id,"
           " type, state, created_at) SELECT ?, id, ?, ?, 'manual',"
           " 'completed', ? FROM environments WHERE node_id = ? AND name = ?",
           (snap, app, node, t, node, ENV))
    # Path parameter -> value. A route with a parameter missing here fails
    # the test: add a fixture for it (create the object above if needed).
    return {
        "app": f"matrix-app{n}",
        "env": ENV,
        "node": f"matrix-node{n}",
        "user": str(victim["id"]),
        "key": str(db.execute("SELECT id FROM api_keys WHERE hash = ?",
                              (hashlib.sha256(vkey["key"].encode()).hexdigest(),)
                              ).fetchone()[0]),
        "id": str(job),
        "migration": str(migration), "request": str(request),
        "package": "notes-1.0.0",
        # settings items (route-settings.c)
        "name": "Greeting", "domain": "shop.example.test",
        "header": "X-Frame-Options",
        "snapshot": snap,
        # one-off runs live on the node (runs.c): any uuid reaches the
        # handler
        "run": str(uuid.uuid4()),
        # the Mendix faces' names (docs/MENDIX-API.md); the Mode in
        # another case than the environment's name, as clients send it
        "AppId": f"matrix-app{n}", "Mode": ENV.lower(),
        "PackageId": "notes-1.0.0", "JobId": str(job),
        "ProjectId": app_uuid, "EnvironmentId": db.execute(
            "SELECT uuid FROM environments WHERE node_id = ? AND name = ?",
            (node, ENV)).fetchone()[0],
        "SnapshotId": snap, "ArchiveId": str(uuid.uuid4()),
        "RestoreId": str(uuid.uuid4()),
        "Name": "main", "tag": "customer-facing", "Tag": "eu",
        "date": "2026-01-31", "Date": "2026-01-31",
        "appId": app_uuid, "environmentId": db.execute(
            "SELECT uuid FROM environments WHERE node_id = ? AND name = ?",
            (node, ENV)).fetchone()[0],
    }


PRINCIPALS = ["admin", "tc", "nodetc", "nonmember"] + MEMBERS + \
    ["nokey", "revoked", "expired", "readonly", "scoped-other", "agent"]


def expect(route, p):
    """'allow', 401 or 403 for principal p on route, from its access level."""
    a, method, path = route["access"], route["method"], route["path"]
    if a == "public":
        return "allow"
    if p in ("nokey", "revoked", "expired"):
        return 401
    if p == "agent":
        return "allow" if a == "agent" else 401
    if a == "agent":
        return 401          # user API keys are not node tokens
    if p == "readonly":
        if method != "GET":
            return 403
        p = "admin"         # a read-only key of the platform admin
    if p == "scoped-other":
        # tc's key limited to another app: nothing on this world's app or
        # node, no platform routes, and of its own routes reads and keys.
        if "{app}" in path or "{AppId}" in path or "{ProjectId}" in path \
                or "{appId}" in path or "{node}" in path:
            return 403
        if a == "user" and (method == "GET" or path.startswith("/keys")):
            return "allow"
        return 403
    if path.startswith("/migrations/{migration}/") and method == "POST":
        # acting on a migration: its app's Technical Contact who is also
        # Technical Contact of both nodes (here: nobody but the admin)
        return "allow" if p == "admin" else 403
    if p == "admin" or a == "user":
        return "allow"
    members = ["tc"] + MEMBERS
    if a == "admin":
        return 403
    if a == "app-member":
        return "allow" if p in members else 403
    if a in PERMS:
        # on {env}, or on some environment when the route has none
        env = ENV if "{env}" in path or "{Mode}" in path or \
            "{EnvironmentId}" in path or "{environmentId}" in path else None
        return "allow" if p == "tc" or holds(p, a, env) else 403
    if a == "app-technical-contact":
        return "allow" if p == "tc" else 403
    if a == "node-view":
        return "allow" if p in members + ["nodetc"] else 403
    if a == "node-transport":
        return "allow" if p in ("tc", "nodetc") or \
            holds(p, "transport", None) else 403
    if a == "node-technical-contact":
        return "allow" if p == "nodetc" else 403
    raise KeyError(a)


routes = json.loads(subprocess.check_output([NUBOD, "routes"]))
passed = failed = 0


def fail(msg):
    global failed
    failed += 1
    print("not ok - " + msg)


# The expected access table, compared with the route table both ways.
TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "access.txt")
expected = {}
with open(TABLE, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3 or (parts[0], parts[1]) in expected:
            fail("access.txt:%d: not 'METHOD PATH ACCESS' or a route twice: "
                 "%s" % (n, line.strip()))
            continue
        expected[(parts[0], parts[1])] = parts[2]
table_bad = 0
for rt in routes:
    want = expected.get((rt["method"], rt["path"]))
    if want is None:
        table_bad += 1
        fail("%s %s (%s): not in tests/e2e/access.txt: add it there with "
             "the access it must have" % (rt["method"], rt["path"],
                                          rt["access"]))
    elif want != rt["access"]:
        table_bad += 1
        fail("%s %s: the route table gives access '%s', tests/e2e/access.txt"
             " expects '%s'" % (rt["method"], rt["path"], rt["access"], want))
for (method, path), want in sorted(expected.items()):
    if not any(r["method"] == method and r["path"] == path for r in routes):
        table_bad += 1
        fail("%s %s: in tests/e2e/access.txt but no such route" % (method,
                                                                    path))
if table_bad == 0:
    passed += 1
    print("ok - the route table matches tests/e2e/access.txt (%d routes)" %
          len(routes))
# From here on the matrix expects what the table says (a route missing
# from it is still called, with the route table's level, and already
# failed above).
for rt in routes:
    rt["access"] = expected.get((rt["method"], rt["path"]), rt["access"])


# Reads an allowed caller cannot complete in this test's world (its nodes
# have no running agent), or objects a 'user' route shows only to some
# users (others are told it is not there): ALLOWED_NOT_2XX[route] =
# (status, code, the principals concerned, None: all allowed ones).
ALLOWED_NOT_2XX = {
    ("GET", "/apps/{app}/environments/{env}/logs"):
        (502, "NODE_UNAVAILABLE", None),
    ("GET", "/apps/{app}/environments/{env}/runs/{run}"):
        (502, "NODE_UNAVAILABLE", None),
    # the package's bytes are on the node
    ("GET", "/nodes/{node}/packages/{package}/download"):
        (503, "NODE_UNREACHABLE", None),
    ("GET", "/apps/{app}/packages/{package}/download"):
        (503, "NODE_UNREACHABLE", None),
    ("GET", "/migrations/{migration}"):
        (404, "MIGRATION_NOT_FOUND", {"nodetc", "nonmember", "scoped-other"}),
    ("GET", "/jobs/{id}"):
        (404, "JOB_NOT_FOUND", {"nodetc", "nonmember", "scoped-other"}),
    ("GET", "/offboarding-requests/{request}"):
        (404, "OFFBOARDING_REQUEST_NOT_FOUND",
         {"tc", "nonmember", "scoped-other"} | set(MEMBERS)),
    # the Mendix faces: the world's job is no start job, nothing is
    # deployed to {Mode}
    ("GET", "/api/1/apps/{AppId}/environments/{Mode}/start/{JobId}"):
        (404, "NO_SUCH_STARTJOB", None),
    ("GET", "/api/1/apps/{AppId}/environments/{Mode}/package"):
        (404, "PACKAGE_NOT_FOUND", None),
    # the package's bytes are on the node (a node that never registered)
    ("GET", "/api/1/apps/{AppId}/packages/{PackageId}/download"):
        (503, "NODE_UNREACHABLE", None),
    # a day's log is on the node (a node that never registered)
    ("GET", "/apps/{app}/environments/{env}/logs/{date}"):
        (503, "NODE_UNREACHABLE", None),
    ("GET", "/api/1/apps/{AppId}/environments/{Mode}/logs/{Date}"):
        (503, "NODE_UNREACHABLE", None),
    ("GET", "/apps/{app}/environments/{env}/access-logs/{date}"):
        (503, "NODE_UNREACHABLE", None),
    ("GET", "/api/1/apps/{AppId}/environments/{Mode}/access-logs/{Date}"):
        (503, "NODE_UNREACHABLE", None),
    # no package carries a branch label in this world
    ("GET", "/api/1/apps/{AppId}/branches/{Name}"):
        (404, "BRANCH_NOT_FOUND", None),
    ("GET", "/api/1/apps/{AppId}/branches/{Name}/revisions"):
        (404, "BRANCH_NOT_FOUND", None),
    # an archive's bytes are on the node; the restore fixture is none
    ("GET", "/api/v2/apps/{ProjectId}/environments/{EnvironmentId}/"
     "snapshots/{SnapshotId}/archives/{ArchiveId}"):
        (404, "NOT_FOUND", None),
    ("GET", "/api/v2/apps/{ProjectId}/environments/{EnvironmentId}/"
     "restores/{RestoreId}"):
        (404, "NOT_FOUND", None),
}
# Writes an allowed caller gets a 500 for, because the reference answers
# that refusal with a 500 (docs/MENDIX-API.md): (status, code).
ALLOWED_500 = {
    ("POST", "/api/1/apps/{AppId}/environments/{Mode}/start"):
        (500, "NO_MDA_HAS_BEEN_DEPLOYED"),
}
# Query strings a read needs.
QUERY = {
    ("GET", "/apps/{app}/environments/{env}/settings/diff"):
        "?app={app}&env=Production",
}

PARAM = re.compile(r"\{([^}]+)\}")
world0 = make_world()
# Unknown parameters and access levels first: they fail loudly.
runnable = []
for rt in routes:
    names = PARAM.findall(rt["path"])
    missing = [x for x in names if x not in world0]
    if missing:
        fail("%s %s: no fixture for path parameter {%s}: add one to "
             "make_world() in tests/e2e/permissions.py" % (
                 rt["method"], rt["path"], "}, {".join(missing)))
        continue
    try:
        for p in PRINCIPALS:
            expect(rt, p)
    except KeyError as e:
        fail("%s %s: access level %s unknown to the matrix: teach expect() "
             "in tests/e2e/permissions.py what it means" % (
                 rt["method"], rt["path"], e))
        continue
    runnable.append(rt)

wait = expired_at + 1.2 - time.time()
if wait > 0:
    time.sleep(wait)

# Reads on one shared world, then each write on a fresh one.
order = [r for r in runnable if r["method"] == "GET"] + \
        [r for r in runnable if r["method"] != "GET"]
for rt in order:
    world = world0 if rt["method"] == "GET" else make_world()
    path = PARAM.sub(lambda m: urllib.parse.quote(world[m.group(1)], safe=""),
                     rt["path"] + QUERY.get((rt["method"], rt["path"]), ""))
    exp = {p: expect(rt, p) for p in PRINCIPALS}
    # Denied principals first: an allowed DELETE must not turn a later 403
    # into a 404.
    who = sorted(PRINCIPALS, key=lambda p: exp[p] == "allow")
    bad = 0
    for p in who:
        body = {} if rt["method"] not in ("GET", "DELETE") else None
        st, doc = call_as(rt["method"], path, p, body)
        want = exp[p]
        other = ALLOWED_NOT_2XX.get((rt["method"], rt["path"]))
        if other and other[2] is not None and p not in other[2]:
            other = None
        e500 = ALLOWED_500.get((rt["method"], rt["path"]))
        if want != "allow":
            ok = st == want
        elif other:
            ok = st == other[0] and error_of(doc)[0] == other[1]
            want = "%d %s" % other[:2]
        elif rt["method"] == "GET":
            ok = 200 <= st < 300
            want = "2xx"
        elif e500 and st == 500:
            ok = error_of(doc)[0] == e500[1]
            want = "not 401/403, or %d %s" % e500
        else:
            ok = st not in (401, 403) and st != 500
            want = "not 401/403/500"
        if ok and exp[p] != "allow":
            ok = error_of(doc)[0] is not None
        if not ok:
            bad += 1
            fail("%s %s (%s) as %s: got %d, wanted %s: %s" % (
                rt["method"], rt["path"], rt["access"], p, st, want,
                json.dumps(doc)[:200]))
    if bad == 0:
        passed += 1
        print("ok - %s %s (%s): %d principals" % (
            rt["method"], rt["path"], rt["access"], len(who)))



# Writes an allowed caller really completes (not only "was not refused"):
# (method, path, principal, body, status, SQL run first on the world's
# store rows — {app} and {node} filled in). Each on a fresh world.
SUCCEEDS = [
    ("DELETE", "/apps/{app}", "tc", None, 200,
     "UPDATE nodes SET app_id = NULL, status = 'available'"
     " WHERE name = '{node}'"),
    ("PATCH", "/apps/{app}", "member-manage", {"name": "renamed"}, 200, None),
    ("POST", "/apps/{app}/members", "member-manage",
     {"email": "grantee@matrix.test"}, 201, None),
    ("POST", "/apps/{app}/technical-contact", "tc",
     {"email": "member-none@matrix.test"}, 200, None),
    ("PUT", "/apps/{app}/environments/{env}/settings/env-vars/{name}",
     "member-settings", {"value": "x"}, 200, None),
    ("PUT", "/apps/{app}/environments/{env}/settings/headers/{header}",
     "member-settings", {"value": "DENY"}, 200, None),
    ("PATCH", "/apps/{app}/environments/{env}/snapshots/{snapshot}",
     "member-backups", {"comment": "kept"}, 200, None),
    ("PUT", "/nodes/{node}/technical-contact", "admin",
     {"email": "tc@matrix.test"}, 200, None),
    ("POST", "/nodes/{node}/token", "admin", {}, 200, None),
    ("POST", "/nodes/{node}/trust", "admin", {}, 200,
     "UPDATE nodes SET tls_pin_pending = 'sha256//matrix'"
     " WHERE name = '{node}'"),
    ("POST", "/users", "admin",
     {"email": "new@matrix.test", "password": "matrixpass1"}, 201, None),
    ("POST", "/nodes", "admin", {"name": "matrix-new", "generation": "v4"},
     201, None),
    ("POST", "/apps", "member-none",
     {"subdomain": "matrix-new", "sandbox": False}, 201, None),
    ("POST", "/keys", "member-none", {"name": "new"}, 201, None),
    ("POST", "/api/1/apps/{AppId}/environments/{Mode}/settings",
     "member-settings", {"CustomSettings": [{"Name": "x.y", "Value": "1"}]},
     200, None),
    ("PUT", "/api/v2/apps/{ProjectId}/environments/{EnvironmentId}/"
     "snapshots/{SnapshotId}", "member-backups", {"comment": "kept"}, 200,
     None),
    ("PATCH", "/api/v4/apps/{appId}", "tc",
     {"technicalContact": {"userId": "member-none@matrix.test"}}, 200, None),
    ("PATCH", "/api/v4/apps/{appId}/environments/{environmentId}/"
     "permissions", "tc", {"permissions": [
         {"member": {"userId": "member-none@matrix.test"},
          "canDeployApp": True}]}, 200, None),
]
for method, pattern, p, body, want, prep in SUCCEEDS:
    if not any(r["method"] == method and r["path"] == pattern for r in routes):
        fail("SUCCEEDS: no route %s %s any more" % (method, pattern))
        continue
    w = make_world()
    if prep:
        db.execute(prep.format(**w))
    path = PARAM.sub(lambda m: urllib.parse.quote(w[m.group(1)], safe=""),
                     pattern)
    st, doc = call_as(method, path, p, body)
    if st == want:
        passed += 1
        print("ok - %s %s as %s: %d" % (method, pattern, p, st))
    else:
        fail("%s %s as %s: got %d, wanted %d: %s" % (
            method, pattern, p, st, want, json.dumps(doc)[:200]))


def check(what, ok, detail=""):
    global passed
    if ok:
        passed += 1
        print("ok - " + what)
    else:
        fail(what + (": " + detail if detail else ""))


# --- grants: nobody grants or takes away more than they hold -------------
# Generated from HOLDS: each granter × permission × environment, four ways
# (grant to a member, take it away, add a member with it, remove a member
# holding it); the answer is derived from what the granter holds.
def may_grant(p, perm, env):
    if p in ("admin", "tc"):
        return True
    if perm == "manage" and env == "*":
        return False    # the Technical Contact's alone
    return holds(p, "manage", env) and holds(p, perm, env)


gw = make_world()
GAPP = gw["app"]
GAPP_ID = db.execute("SELECT id FROM apps WHERE subdomain = ?",
                     (GAPP,)).fetchone()[0]
GUID = UID["grantee"]


def grantee_rows():
    return sorted(db.execute("SELECT permission, environment FROM"
                             " member_permissions WHERE app_id = ? AND"
                             " user_id = ?", (GAPP_ID, GUID)).fetchall())


def grantee_set(rows, member=True):
    db.execute("DELETE FROM members WHERE app_id = ? AND user_id = ?",
               (GAPP_ID, GUID))
    if not member:
        return
    db.execute("INSERT INTO members (app_id, user_id, created_at) VALUES"
               " (?, ?, ?)", (GAPP_ID, GUID, now_db()))
    for perm, env in rows:
        db.execute("INSERT INTO member_permissions (app_id, user_id,"
                   " permission, environment) VALUES (?, ?, ?, ?)",
                   (GAPP_ID, GUID, perm, env))


def is_grantee_member():
    return db.execute("SELECT count(*) FROM members WHERE app_id = ? AND"
                      " user_id = ?", (GAPP_ID, GUID)).fetchone()[0] == 1


GRANTERS = ["admin", "tc", "member-manage", "member-otherenv",
            "member-manage-test", "member-transport"]
MEMBERS_PATH = "/apps/%s/members" % GAPP
PERM_PATH = "/apps/%s/members/%d/permissions" % (GAPP, GUID)
# a row the granters below may not touch, kept by every change
KEEP = ("backups", "Production")
grant_bad = 0
grant_cases = 0
for g in GRANTERS:
    route_ok = g in ("admin", "tc") or holds(g, "manage", None)
    for perm in PERMS:
        for env in ("*", ENV, OTHER_ENV):
            allowed = route_ok and may_grant(g, perm, env)
            code = "FORBIDDEN" if not route_ok else "PERMISSION_NOT_HELD"
            row = (perm, env)
            keep = [] if g in ("admin", "tc") or (perm, env) == (
                KEEP[0], "*") else [KEEP]
            body_of = lambda rows: {"permissions": {
                q: [e for (x, e) in rows if x == q]
                for q in {x for (x, _) in rows}}}
            cases = [
                ("grant", "PUT", PERM_PATH, keep, body_of(keep + [row]),
                 sorted(keep + [row]), True),
                ("take away", "PUT", PERM_PATH, keep + [row], body_of(keep),
                 sorted(keep), True),
                ("add a member with", "POST", MEMBERS_PATH, None,
                 {"email": "grantee@matrix.test",
                  "permissions": {perm: [env]}}, [row], True),
                ("remove a member holding", "DELETE",
                 "/apps/%s/members/%d" % (GAPP, GUID), [row], None, [], False),
            ]
            for what, method, path, start, body, after, member_after in cases:
                grant_cases += 1
                grantee_set(start or [], start is not None)
                before = grantee_rows()
                was_member = is_grantee_member()
                st, doc = call(method, path, keys[g], body)
                err = (doc or {}).get("error", {}) if isinstance(doc, dict) else {}
                if allowed:
                    ok = st in (200, 201) and grantee_rows() == sorted(after) \
                        and is_grantee_member() == member_after
                else:
                    ok = st == 403 and err.get("code") == code and \
                        grantee_rows() == before and \
                        is_grantee_member() == was_member
                if not ok:
                    grant_bad += 1
                    fail("%s: %s %s on %s: got %d %s (rows now %s), wanted %s" % (
                        g, what, perm, env, st, json.dumps(doc)[:160],
                        grantee_rows(), "allowed" if allowed else "403 " + code))
check("grants: %d cases generated from HOLDS (%d granters)" % (
    grant_cases, len(GRANTERS)), grant_bad == 0)
# the finding, step by step: manage on Test only cannot hand out everything
grantee_set([])
st, doc = call("PUT", PERM_PATH, keys["member-manage-test"],
               {"permissions": {p: ["*"] for p in PERMS}})
check("manage on Test only cannot grant all five on every environment",
      st == 403 and grantee_rows() == [], "%d %s" % (st, doc))
st, doc = call("PUT", PERM_PATH, keys["member-manage-test"],
               {"permissions": {"manage": [ENV], "transport": [ENV],
                                "logs": [ENV]}})
check("… but what it holds on Test", st == 200 and grantee_rows() == sorted(
    [("logs", ENV), ("manage", ENV), ("transport", ENV)]), "%d %s" % (st, doc))
st, doc = call("PUT", PERM_PATH, keys["member-manage-test"],
               {"permissions": {"transport": ["*"]}})
check("transport on all environments needs manage on all of them",
      st == 403 and doc["error"]["code"] == "PERMISSION_NOT_HELD",
      "%d %s" % (st, doc))


# --- read-only keys never reveal secrets ---------------------------------
keys["tc-readonly"] = must(*call("POST", "/keys", keys["tc"],
                                 {"read_only": True}), 201, "tc read-only key")["key"]
EXPORT = "/apps/%s/environments/%s/settings/export" % (GAPP, ENV)
for p, q, want in [("admin", "include", 200), ("tc", "include", 200),
                   ("readonly", "include", (403, "KEY_READ_ONLY")),
                   ("tc-readonly", "include", (403, "KEY_READ_ONLY")),
                   ("tc-readonly", "mask", 200),
                   ("member-settings", "include", (403, "FORBIDDEN")),
                   ("member-settings", "mask", 200)]:
    st, doc = call("GET", EXPORT + "?secrets=" + q, keys[p])
    if want == 200:
        ok = st == 200 and doc.get("secrets") == (
            "included" if q == "include" else "masked")
    else:
        ok = st == want[0] and doc["error"]["code"] == want[1]
    check("settings export ?secrets=%s as %s: %s" % (q, p, want), ok,
          "%d %s" % (st, json.dumps(doc)[:160]))

# --- settings diff: an app the caller cannot see is not there -------------
t = now_db()
hidden = insert("INSERT INTO apps (uuid, subdomain, name, technical_contact,"
                " created_at) VALUES (?, 'matrix-hidden', 'hidden', ?, ?)",
                (str(uuid.uuid4()), UID["tc"], t))
hnode = insert("INSERT INTO nodes (name, generation, status, app_id,"
               " created_at) VALUES ('matrix-hidden-node', 'v4', 'linked',"
               " ?, ?)", (hidden, t))
insert("INSERT INTO environments (node_id, name, created_at) VALUES"
       " (?, 'Test', ?)", (hnode, t))
for m in ("tc", "member-otherenv"):   # a member without permissions there
    insert("INSERT INTO members (app_id, user_id, created_at) VALUES"
           " (?, ?, ?)", (hidden, UID[m], t))
keys["tc-scoped"] = must(*call("POST", "/keys", keys["tc"], {"apps": [GAPP]}),
                         201, "tc key scoped to the grant world")["key"]


def diff(p, env, oapp, oenv):
    return call("GET", "/apps/%s/environments/%s/settings/diff?app=%s&env=%s"
                % (GAPP, env, oapp, oenv), keys[p])


for p, env, oapp, oenv, want in [
        ("member-settings", ENV, "matrix-hidden", "Test", (404, "APP_NOT_FOUND")),
        ("member-settings", ENV, "matrix-hidden", "Nope", (404, "APP_NOT_FOUND")),
        ("member-settings", ENV, "matrix-nosuch", "Test", (404, "APP_NOT_FOUND")),
        ("tc-scoped", ENV, "matrix-hidden", "Test", (404, "APP_NOT_FOUND")),
        ("member-otherenv", OTHER_ENV, "matrix-hidden", "Nope",
         (404, "ENVIRONMENT_NOT_FOUND")),
        ("member-otherenv", OTHER_ENV, "matrix-hidden", "Test",
         (403, "FORBIDDEN")),
        ("tc", ENV, "matrix-hidden", "Test", (200, None))]:
    st, doc = diff(p, env, oapp, oenv)
    if want[0] == 200:
        ok = st == 200 and doc["b"]["app"] == oapp
    else:
        ok = st == want[0] and doc["error"]["code"] == want[1]
        if want[1] == "APP_NOT_FOUND":
            ok = ok and doc["error"]["message"] == "no app '%s'" % oapp
    check("settings diff as %s against %s/%s: %s" % (p, oapp, oenv, want), ok,
          "%d %s" % (st, json.dumps(doc)[:160]))

# --- a Mendix face's EnvironmentId must be the app's ----------------------
# another world's Test has the name of this world's Test: its uuid under
# this world's ProjectId names no environment of the app
w1, w2 = make_world(), make_world()
st, doc = call_as("GET", "/api/v2/apps/%s/environments/%s/snapshots" % (
    w1["ProjectId"], w2["EnvironmentId"]), "admin")
check("another app's EnvironmentId under this ProjectId: 404",
      st == 404 and error_of(doc)[0] == "ENVIRONMENT_NOT_FOUND",
      "%d %s" % (st, doc))

if not routes:
    fail("nubod routes printed no routes")
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
