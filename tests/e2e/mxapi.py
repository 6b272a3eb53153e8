#!/usr/bin/env python3
"""The Mendix Cloud API faces (docs/MENDIX-API.md) as a pipeline uses them.

Against a real portal and a real v4 node (t9-mendix-api.sh sets them up,
with app 'shop' linked to the node): the CI flow of Deploy API v1/v2 with
the sample app, every answer's field names and types checked against
../shared/reference/mendix-cloud-api.md, what really happened checked
through the node's router and the store, each sloppy-client case, and
every error of the reference that nubo can produce, once.

usage: mxapi.py PORTAL_URL ROUTER_PORT USER KEY VIEWER_KEY READONLY_KEY
                PACKAGE TMPDIR STORE NODE_PID PAT PAT_READONLY
"""
import hashlib
import http.client
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
import uuid

URL, ROUTER, USER, KEY, VIEWER_KEY, RO_KEY, PKG, TMP, STORE = sys.argv[1:10]
NODE_PID = int(sys.argv[10])
PAT, PAT_RO = sys.argv[11:13]
U = urllib.parse.urlparse(URL)
APP = "shop"
HOST = "shop-test.nubo.localhost"
passed = failed = 0


def ok(msg):
    global passed
    passed += 1
    print("ok - " + msg)


def fail(msg):
    global failed
    failed += 1
    print("not ok - " + msg)


def check(what, cond, detail=""):
    if cond:
        ok(what)
    else:
        fail(what + (": " + str(detail)[:300] if detail else ""))
    return cond


def request(method, path, body=None, headers=None, user=USER, key=KEY,
            raw=None, ctype="application/json"):
    """One request to the portal: (status, parsed JSON or raw bytes)."""
    h = dict(headers or {})
    if user is not None:
        h.setdefault("Mendix-Username", user)
    if key is not None:
        h.setdefault("Mendix-ApiKey", key)
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None and ctype:
        h.setdefault("Content-Type", ctype)
    c = http.client.HTTPConnection(U.hostname, U.port, timeout=900)
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    text = r.read()
    c.close()
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        doc = text
    return r.status, doc


def v1(method, path, body=None, **kw):
    return request(method, "/api/1" + path, body, **kw)


def v2(method, path, body=None, **kw):
    return request(method, "/api/v2" + path, body, **kw)


def nubo(method, path, body=None):
    """nubo's own API (/api/v1) with the admin's key."""
    return request(method, "/api/v1" + path, body, user=None, key=None,
                   headers={"Authorization": "Bearer " + KEY})


def multipart(path, fname, data, name=None, query="", **kw):
    """POST a package as multipart/form-data, part 'file' (as curl -F)."""
    b = "----mx" + uuid.uuid4().hex
    body = (("--%s\r\nContent-Disposition: form-data; name=\"file\"; "
             "filename=\"%s\"\r\nContent-Type: application/octet-stream"
             "\r\n\r\n") % (b, fname)).encode() + data + \
        ("\r\n--%s--\r\n" % b).encode()
    q = "?name=" + urllib.parse.quote(name) if name else ""
    if query:
        q += ("&" if q else "?") + query
    return request("POST", path + q, raw=body,
                   ctype="multipart/form-data; boundary=" + b, **kw)


def routed(path="/", method="GET", body=None, host=HOST):
    """Through the node's router with the app's hostname."""
    c = http.client.HTTPConnection("127.0.0.1", int(ROUTER), timeout=30)
    h = {"Host": host}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    text = r.read().decode(errors="replace")
    c.close()
    return r.status, text


def routed_until(path, ok_fn, secs=10, host=HOST):
    """routed(path) until ok_fn(status, text), at most secs: after a
    start, an old nginx worker may take a connection for a moment on a
    loaded machine."""
    until = time.time() + secs
    while True:
        st, text = routed(path, host=host)
        if ok_fn(st, text) or time.time() > until:
            return st, text
        time.sleep(0.2)


def fetch(url):
    """GET a signed URL (on the node): (status, bytes)."""
    lu = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(lu.hostname, lu.port, timeout=60)
    c.request("GET", lu.path + "?" + lu.query)
    r = c.getresponse()
    return r.status, r.read()


# --- shapes of the reference ----------------------------------------------
APP_FIELDS = {"AppId": str, "Name": str, "ProjectId": str, "Url": str}
ENV_FIELDS = {"Status": str, "EnvironmentId": str, "Url": str, "Mode": str,
              "ModelVersion": str, "MendixVersion": str, "Production": bool,
              "Instances": int, "MemoryPerInstance": int, "TotalMemory": int}
PKG_FIELDS = {"PackageId": str, "Name": str, "Description": str,
              "Version": str, "Creator": str, "CreationDate": int,
              "Status": str, "Size": int}
SETTINGS_FIELDS = {"Constants": list, "CustomSettings": list,
                   "ScheduledEvents": list}
CONST_FIELDS = {"Name": str, "DataType": str, "Value": str,
                "DeployedValue": str}
EVENT_FIELDS = {"Name": str, "Value": str, "DeployedValue": str}
NONE = type(None)
SNAP_FIELDS = {"snapshot_id": str, "status_message": (str, NONE),
               "finished_at": (str, NONE), "updated_at": str,
               "created_at": str, "state": str,
               "model_version": (str, NONE), "expires_at": (str, NONE),
               "comment": str}
ARCHIVE_FIELDS = {"archive_id": str, "status_message": (str, NONE),
                  "finished_at": (str, NONE), "updated_at": (str, NONE),
                  "created_at": (str, NONE), "state": str,
                  "data_type": str, "snapshot_id": str, "url": (str, NONE)}
RESTORE_FIELDS = {"restore_id": str, "status_message": (str, NONE),
                  "finished_at": (str, NONE), "updated_at": str,
                  "created_at": str, "state": str,
                  "source_snapshot_id": str,
                  "source_environment_id": (str, NONE),
                  "target_environment_id": (str, NONE)}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                  r"[0-9a-f]{12}$")


def shape(what, doc, fields):
    """doc has exactly these fields with these types (bool is no int)."""
    if not isinstance(doc, dict):
        return check(what + ": an object", False, doc)
    bad = []
    for f, t in fields.items():
        v = doc.get(f, KeyError)
        if v is KeyError:
            bad.append("missing " + f)
        elif type(v) not in (t if isinstance(t, tuple) else (t,)):
            bad.append("%s is %s, not %s" % (f, type(v).__name__, t))
    extra = set(doc) - set(fields) - {"Url"}
    if extra:
        bad.append("fields not in the reference: %s" % sorted(extra))
    return check(what + ": fields and types of the reference", not bad,
                 "; ".join(bad) + " in " + json.dumps(doc))


def error(what, got, status, code):
    st, doc = got
    check("%s: %d %s in the v1 error shape" % (what, status, code),
          st == status and isinstance(doc, dict) and
          doc.get("errorCode") == code and
          isinstance(doc.get("errorMessage"), str) and
          doc["errorMessage"] != "" and set(doc) == {"errorCode",
                                                     "errorMessage"},
          "%d %s" % (st, doc))


def want(what, got, status=200):
    st, doc = got
    check(what + ": %d with a JSON body" % status,
          st == status and doc is not None and not isinstance(doc, bytes),
          "%d %s" % (st, doc))
    return doc


def poll(what, fn, done, secs=120):
    until = time.time() + secs
    while True:
        got = fn()
        if done(got) or time.time() > until:
            return got
        time.sleep(0.2)


# A second version of the sample app, its Greeting default changed: the
# router then tells which package runs.
def repack(src, dest, version, greeting):
    out = io.BytesIO()
    with tarfile.open(src, "r:gz") as tin, \
            tarfile.open(fileobj=out, mode="w:gz") as tout:
        for m in tin.getmembers():
            f = tin.extractfile(m) if m.isfile() else None
            data = f.read() if f else None
            if m.name.lstrip("./") == "nubo.json":
                man = json.loads(data)
                man["version"] = version
                man["constants"][0]["default"] = greeting
                data = json.dumps(man).encode()
                m.size = len(data)
            tout.addfile(m, io.BytesIO(data) if data is not None else None)
    with open(dest, "wb") as f:
        f.write(out.getvalue())


PKG2 = os.path.join(TMP, "notes-1.0.1.tar.gz")
repack(PKG, PKG2, "1.0.1", "Hello from 1.0.1")
# for t9's CLI upload with labels, after this script
repack(PKG, os.path.join(TMP, "notes-1.0.2.tar.gz"), "1.0.2",
       "Hello from 1.0.2")
PKG1_BYTES = open(PKG, "rb").read()
PKG2_BYTES = open(PKG2, "rb").read()
db = sqlite3.connect(STORE, timeout=30, isolation_level=None)

# --- authentication -----------------------------------------------------
error("no headers", v1("GET", "/apps", user=None, key=None), 401,
      "UNAUTHENTICATED")
error("only Mendix-Username", v1("GET", "/apps", key=None), 401,
      "UNAUTHENTICATED")
error("a wrong API key", v1("GET", "/apps", key="nubo_" + "0" * 40), 401,
      "UNAUTHENTICATED")
error("the key of another user", v1("GET", "/apps",
                                    user="viewer@mx.test"), 401,
      "UNAUTHENTICATED")
error("a Bearer key instead of the Mendix headers",
      v1("GET", "/apps", user=None, key=None,
         headers={"Authorization": "Bearer " + KEY}), 401, "UNAUTHENTICATED")
# sloppy: header names in any case, the user's email in any case
st, doc = v1("GET", "/apps", user=None, key=None,
             headers={"mendix-username": USER.upper(), "MENDIX-APIKEY": KEY})
check("sloppy: header names and the email in any case", st == 200 and
      isinstance(doc, list), "%d %s" % (st, doc))

# --- apps and environments ----------------------------------------------
apps = want("GET /apps", v1("GET", "/apps"))
mine = [a for a in apps or [] if a.get("AppId") == APP]
check("GET /apps lists the app by its subdomain", len(mine) == 1, apps)
if mine:
    shape("GET /apps item", mine[0], APP_FIELDS)
app = want("GET /apps/{AppId}", v1("GET", "/apps/" + APP))
shape("GET /apps/{AppId}", app, APP_FIELDS)
puuid = db.execute("SELECT uuid FROM apps WHERE subdomain = ?",
                   (APP,)).fetchone()[0]
check("ProjectId is the app's uuid", (app or {}).get("ProjectId") == puuid,
      app)
check("the app's Url is its Production environment's",
      (app or {}).get("Url", "").startswith("http://shop-production."), app)
error("unknown AppId", v1("GET", "/apps/no-such-app"), 404, "APP_NOT_FOUND")
error("unknown AppId under environments",
      v1("GET", "/apps/no-such-app/environments/Test"), 404, "APP_NOT_FOUND")
error("the packages, as a member without transport",
      v1("GET", "/apps/" + APP + "/packages", user="viewer@mx.test",
         key=VIEWER_KEY), 403, "NO_ACCESS")

# a Free App environment for a project: an app with a sandbox, its id the
# ProjectId
error("POST /apps with a ProjectId that is no uuid",
      v1("POST", "/apps", {"ProjectId": "nope"}), 400, "INVALID_PROJECTID")
error("POST /apps for a project that has an app",
      v1("POST", "/apps", {"ProjectId": puuid}), 400,
      "APPLICATION_ALREADY_EXISTS")
NEWP = str(uuid.uuid4())
fa = want("POST /apps {ProjectId}", v1("POST", "/apps", {"ProjectId": NEWP}))
shape("the Free App", fa, APP_FIELDS)
check("its ProjectId is the one given, its AppId made from it",
      (fa or {}).get("ProjectId") == NEWP and
      fa.get("AppId") == "app-" + NEWP.replace("-", "")[:8], fa)
fe = want("the Free App's environments", v1("GET", "/apps/%s/environments" %
                                             (fa or {}).get("AppId")))
check("one Sandbox environment, Empty", [(e.get("Mode"), e.get("Status"))
                                         for e in fe or []] ==
      [("Sandbox", "Empty")], fe)

# the router's access log of the Free App's environment goes with the app
FREE = (fa or {}).get("AppId", "")
FREE_ENV = (db.execute("SELECT e.id FROM environments e JOIN apps a ON"
                       " a.id = e.app_id WHERE a.subdomain = ?",
                       (FREE,)).fetchone() or [0])[0]
with open(os.path.join(TMP, "node-sandbox.ports")) as f:
    SANDBOX_ROUTER = f.read().split()[1]
ALOG = os.path.join(TMP, "node-sandbox", "nginx", "logs",
                    "env-%s.access.log" % FREE_ENV)
# (once the sandbox node has the new environment: a request through it)
until = time.time() + 30
while not os.path.exists(ALOG) and time.time() < until:
    c = http.client.HTTPConnection("127.0.0.1", int(SANDBOX_ROUTER),
                                   timeout=30)
    c.request("GET", "/", headers={"Host": urllib.parse.urlparse(
        (fe or [{}])[0].get("Url", "")).hostname or "x"})
    c.getresponse().read()
    c.close()
    time.sleep(0.2)
check("the Free App's environment has its router access log",
      os.path.exists(ALOG), ALOG)
st, doc = nubo("DELETE", "/apps/" + FREE)
check("delete the Free App (nubo's API)", st == 200, "%d %s" % (st, doc))
left = [n for n in os.listdir(os.path.dirname(ALOG))
        if n.startswith("env-%s.access.log" % FREE_ENV)]
check("its access log is gone from the router's logs", left == [], left)

envs = want("GET environments", v1("GET", "/apps/%s/environments" % APP))
check("three environments", isinstance(envs, list) and
      sorted(e.get("Mode") for e in envs) ==
      ["Acceptance", "Production", "Test"], envs)
for e in envs or []:
    shape("environment %s" % e.get("Mode"), e, ENV_FIELDS)
    check("%s: Status Empty (notdeployed)" % e.get("Mode"),
          e.get("Status") == "Empty", e)
    check("%s: Production only for Production" % e.get("Mode"),
          e.get("Production") == (e.get("Mode") == "Production"), e)
    check("%s: EnvironmentId a uuid" % e.get("Mode"),
          UUID.match(e.get("EnvironmentId", "")) is not None, e)
ids = {e.get("EnvironmentId") for e in envs or []}
check("EnvironmentIds differ", len(ids) == 3, ids)
stored = {r[0] for r in db.execute(
    "SELECT e.uuid FROM environments e JOIN nodes n ON n.id = e.node_id"
    " JOIN apps a ON a.id = n.app_id WHERE a.subdomain = ?", (APP,))}
check("EnvironmentId is the environment's uuid in the store", ids == stored,
      "%s vs %s" % (ids, stored))
for mode in ("test", "TEST", "Test", "tEsT"):
    e = want("sloppy: Mode %s" % mode,
             v1("GET", "/apps/%s/environments/%s" % (APP, mode)))
    check("Mode %s answers environment Test" % mode,
          (e or {}).get("Mode") == "Test", e)
e = want("sloppy: trailing slash",
         v1("GET", "/apps/%s/environments/Test/" % APP))
check("a trailing / answers the same", (e or {}).get("Mode") == "Test", e)
error("unknown Mode", v1("GET", "/apps/%s/environments/Nope" % APP), 404,
      "ENVIRONMENT_NOT_FOUND")
error("an AppId that can name no app", v1("GET", "/apps/Bad_App"), 400,
      "INVALID_APPID")
error("a Mode that can name no environment",
      v1("GET", "/apps/%s/environments/no_env" % APP), 400,
      "INVALID_ENVIRONMENT")

ENV = "/apps/%s/environments/test" % APP    # lower case on purpose

# --- nothing deployed yet -------------------------------------------------
error("start with nothing deployed", v1("POST", ENV + "/start", {}), 500,
      "NO_MDA_HAS_BEEN_DEPLOYED")
error("clean with nothing deployed", v1("POST", ENV + "/clean"), 422,
      "ENVIRONMENT_NOT_DEPLOYED")
error("the package of an empty environment", v1("GET", ENV + "/package"),
      404, "PACKAGE_NOT_FOUND")
error("the start job that is not", v1("GET", ENV + "/start/999999"), 404,
      "NO_SUCH_STARTJOB")

# --- upload (v2) → poll the job -----------------------------------------
up = want("v2 upload", multipart("/api/v2/apps/%s/packages/upload" % APP,
                                 "notes-1.0.0.tar.gz", PKG1_BYTES,
                                 name="notes-main.mda",
                                 query="branch=main&revision=7"))
check("v2 upload answers {PackageId, JobId} (strings)",
      isinstance(up, dict) and set(up) == {"PackageId", "JobId"} and
      all(isinstance(v, str) for v in up.values()), up)
check("v2 upload: PackageId from the manifest",
      (up or {}).get("PackageId") == "notes-1.0.0", up)
JOB = "/api/v2/apps/%s/jobs/%s" % (APP, (up or {}).get("JobId"))
st, job = poll("v2 job", lambda: request("GET", JOB),
               lambda g: g[0] != 200 or g[1].get("Status") in
               ("Completed", "Failed"))
check("v2 job: Completed", st == 200 and job == {"Status": "Completed"},
      "%d %s" % (st, job))
error("v2 job of another id", request("GET", "/api/v2/apps/%s/jobs/999999"
                                      % APP), 404, "JOB_NOT_FOUND")
# --- upload (v1): answered when stored -----------------------------------
error("an upload with a bad branch label",
      multipart("/api/1/apps/%s/packages/upload" % APP, "notes-1.0.1.tar.gz",
                PKG2_BYTES, query="branch=a/b&revision=9"), 400,
      "INVALID_PARAMETERS")
p2 = want("v1 upload", multipart("/api/1/apps/%s/packages/upload" % APP,
                                 "notes-1.0.1.tar.gz", PKG2_BYTES,
                                 query="branch=main&revision=9"))
shape("v1 upload answer", p2, PKG_FIELDS)
check("v1 upload: Succeeded, version 1.0.1, the file's size",
      (p2 or {}).get("Status") == "Succeeded" and
      p2.get("Version") == "1.0.1" and p2.get("Size") == len(PKG2_BYTES) and
      p2.get("PackageId") == "notes-1.0.1", p2)
check("v1 upload: CreationDate in epoch milliseconds",
      abs((p2 or {}).get("CreationDate", 0) / 1000 - time.time()) < 600, p2)
# the same PackageId with other bytes: the node refuses to store it
PKG2X = os.path.join(TMP, "notes-1.0.1-other.tar.gz")
repack(PKG, PKG2X, "1.0.1", "Another 1.0.1")
st, doc = multipart("/api/1/apps/%s/packages/upload" % APP,
                    "notes-1.0.1.tar.gz", open(PKG2X, "rb").read())
error("an upload the node cannot store", (st, doc), 500,
      "UPLOAD_COPY_FAILED")
check("… saying why", "already exists with other content" in
      str((doc or {}).get("errorMessage") if isinstance(doc, dict) else ""),
      doc)
up = want("v2 upload the node cannot store", multipart(
    "/api/v2/apps/%s/packages/upload" % APP, "notes-1.0.1.tar.gz",
    open(PKG2X, "rb").read()))
st, job = poll("v2 job", lambda: request("GET", "/api/v2/apps/%s/jobs/%s" %
                                         (APP, (up or {}).get("JobId"))),
               lambda g: g[0] != 200 or g[1].get("Status") in
               ("Completed", "Failed"))
check("v2 job of it: Failed with its ErrorMessage", st == 200 and
      job.get("Status") == "Failed" and "already exists" in
      job.get("ErrorMessage", ""), "%d %s" % (st, job))
error("an upload that is no package",
      multipart("/api/1/apps/%s/packages/upload" % APP, "x.mda",
                b"not a package at all"), 500, "INVALID_PACKAGE")
error("an upload without a part 'file'",
      request("POST", "/api/1/apps/%s/packages/upload" % APP,
              raw=b"--b\r\nContent-Disposition: form-data; name=\"other\""
              b"\r\n\r\nx\r\n--b--\r\n",
              ctype="multipart/form-data; boundary=b"), 400,
      "INVALID_PARAMETERS")
error("an upload that is not multipart",
      request("POST", "/api/1/apps/%s/packages/upload" % APP,
              raw=PKG1_BYTES, ctype="application/octet-stream"), 400,
      "INVALID_PARAMETERS")

pkgs = want("GET packages", v1("GET", "/apps/%s/packages" % APP))
check("both packages listed", sorted(p.get("PackageId") for p in pkgs or [])
      == ["notes-1.0.0", "notes-1.0.1"], pkgs)
for p in pkgs or []:
    shape("package %s" % p.get("PackageId"), p, PKG_FIELDS)
p1 = want("GET package ?url=true",
          v1("GET", "/apps/%s/packages/notes-1.0.0?url=true" % APP))
shape("GET package", p1, PKG_FIELDS)
check("the v2 upload's ?name is the package's Name",
      (p1 or {}).get("Name") == "notes-main.mda", p1)
loc = ((p1 or {}).get("Url") or {}).get("Location")
check("?url=true: Url {Location, TTL}", isinstance(loc, str) and
      isinstance(p1["Url"].get("TTL"), int) and p1["Url"]["TTL"] > 0, p1)
if loc:
    data = fetch(loc)[1]
    check("the Location serves the uploaded bytes",
          hashlib.sha256(data).digest() ==
          hashlib.sha256(PKG1_BYTES).digest(), len(data))
error("an unknown package", v1("GET", "/apps/%s/packages/nope-1" % APP),
      404, "PACKAGE_NOT_FOUND")
st, doc = v1("GET", "/apps/%s/packages/notes-1.0.1/download" % APP)
check("the deprecated download: a redirect to the package's URL",
      st == 302 and isinstance(doc, dict) and
      isinstance(doc.get("Location"), str), "%d %s" % (st, doc))
if st == 302:
    st, data = fetch(doc["Location"])
    check("… which serves the package's bytes", st == 200 and
          data == PKG2_BYTES, st)

# --- Team Server and Build API: branches and revisions are upload labels ---
BR_FIELDS = {"Name": str, "DisplayName": str, "LatestRevisionNumber": int,
             "LatestRevisionMendixVersion": str,
             "LatestTaggedVersion": (str, NONE)}
REV_FIELDS = {"Number": int, "CommitMessage": str, "Date": int,
              "Author": str, "MendixVersion": str}
brs = want("GET branches", v1("GET", "/apps/%s/branches" % APP))
check("one branch, main, at revision 9", isinstance(brs, list) and
      [(b.get("Name"), b.get("LatestRevisionNumber")) for b in brs] ==
      [("main", 9)], brs)
for b in brs or []:
    shape("branch %s" % b.get("Name"), b, BR_FIELDS)
revs = want("GET revisions", v1("GET", "/apps/%s/branches/main/revisions" %
                                APP))
check("revisions 9 and 7, newest first", [x.get("Number") for x in
                                          revs or []] == [9, 7], revs)
for x in revs or []:
    shape("revision %s" % x.get("Number"), x, REV_FIELDS)
error("an unknown branch", v1("GET", "/apps/%s/branches/nope" % APP), 404,
      "BRANCH_NOT_FOUND")
b = want("build main revision 9", v1("POST", "/apps/%s/packages" % APP, {
    "Branch": "main", "Revision": 9, "Version": "1.0.1",
    "Description": "release notes"}))
check("the build is the package uploaded as main 9",
      b == {"PackageId": "notes-1.0.1"}, b)
p = want("poll the built package", v1("GET", "/apps/%s/packages/notes-1.0.1"
                                      % APP))
check("Succeeded, with the build's Version and Description",
      (p or {}).get("Status") == "Succeeded" and
      p.get("Description") == "release notes" and
      p.get("Version") == "1.0.1", p)
error("a build with a Version that is not major.minor.patch",
      v1("POST", "/apps/%s/packages" % APP, {"Branch": "main",
                                              "Version": "1.0"}), 400,
      "INVALID_VERSION")
st, doc = v1("POST", "/apps/%s/packages" % APP, {"Branch": "feature",
                                                  "Version": "1.0.0"})
check("a build of a branch never uploaded: 404 saying how to upload one",
      st == 404 and doc.get("errorCode") == "PACKAGE_NOT_FOUND" and
      "nubo packages upload --app shop FILE --branch feature" in
      doc.get("errorMessage", ""), "%d %s" % (st, doc))
b = want("build main, no revision", v1("POST", "/apps/%s/packages" % APP, {
    "Branch": "main", "Version": "1.0.2"}))
check("without a revision: the newest", b == {"PackageId": "notes-1.0.1"},
      b)
b = want("the branch again", v1("GET", "/apps/%s/branches/main" % APP))
shape("GET branches/{Name}", b, BR_FIELDS)
check("LatestTaggedVersion: the last build's Version",
      (b or {}).get("LatestTaggedVersion") == "1.0.2", b)
check("revision 9's CommitMessage is the build's Description",
      [x.get("CommitMessage") for x in v1(
          "GET", "/apps/%s/branches/main/revisions" % APP)[1]][:1] ==
      ["release notes"])

# --- first deployment ------------------------------------------------------
error("transport of an unknown package",
      v1("POST", ENV + "/transport", {"PackageId": "nope-1.0"}), 404,
      "PACKAGE_NOT_FOUND")
error("transport without PackageId", v1("POST", ENV + "/transport", {}),
      400, "INVALID_PARAMETERS")
error("transport with an unknown field",
      v1("POST", ENV + "/transport", {"PackageId": "notes-1.0.0",
                                      "Bogus": 1}), 400, "INVALID_PARAMETERS")
# sloppy: a JSON body without Content-Type, a trailing /
e = want("sloppy: transport with a JSON body without Content-Type",
         v1("POST", ENV + "/transport/", raw=b'{"PackageId": "notes-1.0.0"}',
            ctype=None))
shape("transport answer", e, ENV_FIELDS)
check("transported: Status Stopped, ModelVersion 1.0.0",
      (e or {}).get("Status") == "Stopped" and
      e.get("ModelVersion") == "1.0.0", e)
# sloppy: start with no body at all
s = want("sloppy: start without a body", v1("POST", ENV + "/start"))
check("start answers {JobId} (a string)", isinstance(s, dict) and
      set(s) == {"JobId"} and isinstance(s["JobId"], str), s)
error("a second start while the first runs", v1("POST", ENV + "/start", {}),
      500, "APP_ALREADY_HAS_A_STARTING_JOB")
first = want("GET start job at once", v1("GET", ENV + "/start/%s" %
                                         (s or {}).get("JobId")))
check("start job: Starting at first", first == {"Status": "Starting"},
      first)
st, sj = poll("start job", lambda: v1("GET", ENV + "/start/%s" %
                                      (s or {}).get("JobId")),
              lambda g: g[0] != 200 or g[1].get("Status") == "Started")
check("start job: Started", st == 200 and sj == {"Status": "Started"},
      "%d %s" % (st, sj))
e = want("GET env after start", v1("GET", ENV))
check("Status Running", (e or {}).get("Status") == "Running", e)
error("start of a running environment", v1("POST", ENV + "/start", {}), 200,
      "ALREADY_STARTED")
st, text = routed_until("/", lambda st, t: "Hello from notes" in t)
check("the router serves package 1.0.0", st == 200 and
      "Hello from notes" in text, "%d %s" % (st, text[:200]))
st, text = routed("/api/notes", "POST", {"title": "kept until clean"})
check("a note written through the app", st in (200, 201), "%d %s" %
      (st, text))

# refused while running
error("transport while running", v1("POST", ENV + "/transport",
                                    {"PackageId": "notes-1.0.1"}), 403,
      "APP_IS_RUNNING")
error("clean while running", v1("POST", ENV + "/clean", {}), 403,
      "ENVIRONMENT_NOT_STOPPED")
error("deleting the package that runs",
      v1("DELETE", "/apps/%s/packages/notes-1.0.0" % APP), 409,
      "PACKAGE_IN_USE")
error("start as a member without transport",
      v1("POST", ENV + "/start", {}, user="viewer@mx.test",
         key=VIEWER_KEY), 403, "NO_ACCESS")
error("stop with a read-only key", v1("POST", ENV + "/stop", {}, key=RO_KEY),
      403, "KEY_READ_ONLY")
check("the read-only key still reads",
      v1("GET", ENV, key=RO_KEY)[0] == 200)

# --- the CI flow: stop → clean → transport → start → poll ----------------
# sloppy: what `curl -d '{}'` sends (a form's Content-Type)
e = want("sloppy: stop with {} as curl -d sends it",
         v1("POST", ENV + "/stop", raw=b"{}",
            ctype="application/x-www-form-urlencoded"))
shape("stop answer", e, ENV_FIELDS)
check("stopped: Status Stopped", (e or {}).get("Status") == "Stopped", e)
cl = want("clean", v1("POST", ENV + "/clean"))
check("clean answers [{Status, Mode, Url}]", isinstance(cl, list) and
      len(cl) == 1 and set(cl[0]) == {"Status", "Mode", "Url"} and
      cl[0]["Mode"] == "Test", cl)
e = want("transport 1.0.1", v1("POST", ENV + "/transport",
                               {"PackageId": "notes-1.0.1"}))
check("ModelVersion 1.0.1", (e or {}).get("ModelVersion") == "1.0.1", e)
s = want("start with {AutoSyncDb}", v1("POST", ENV + "/start",
                                       {"AutoSyncDb": True}))
st, sj = poll("start job", lambda: v1("GET", ENV + "/start/%s" %
                                      (s or {}).get("JobId")),
              lambda g: g[0] != 200 or g[1].get("Status") == "Started")
check("start job of 1.0.1: Started", st == 200 and sj == {"Status":
                                                          "Started"},
      "%d %s" % (st, sj))
st, text = routed_until("/", lambda st, t: "Hello from 1.0.1" in t)
check("the router serves the new package (1.0.1)", st == 200 and
      "Hello from 1.0.1" in text, "%d %s" % (st, text[:200]))
st, text = routed_until("/api/notes", lambda st, t: st == 200)
check("clean wiped the data: no notes", st == 200 and
      json.loads(text) == [], "%d %s" % (st, text[:200]))
p = want("GET {Mode}/package", v1("GET", ENV + "/package"))
shape("the environment's package", p, PKG_FIELDS)
check("the environment runs notes-1.0.1",
      (p or {}).get("PackageId") == "notes-1.0.1", p)

# --- settings get / set ------------------------------------------------------
s = want("GET settings", v1("GET", ENV + "/settings"))
shape("settings", s, SETTINGS_FIELDS)
for c in (s or {}).get("Constants", []):
    shape("constant %s" % c.get("Name"), c, CONST_FIELDS)
for ev in (s or {}).get("ScheduledEvents", []):
    shape("scheduled event %s" % ev.get("Name"), ev, EVENT_FIELDS)
check("the package's constant with its default",
      [(c.get("Name"), c.get("DataType"), c.get("Value"))
       for c in (s or {}).get("Constants", [])] ==
      [("Greeting", "String", "Hello from 1.0.1")], s)
check("the package's scheduled event, Disabled",
      [(ev.get("Name"), ev.get("Value")) for ev in
       (s or {}).get("ScheduledEvents", [])] == [("Cleanup", "Disabled")], s)
# what a client reads it sends back, values changed
body = json.loads(json.dumps(s))
body["Constants"][0]["Value"] = "Hi from the pipeline"
body["ScheduledEvents"][0]["Value"] = "Enabled"
s2 = want("POST settings (the GET answer, values changed)",
          v1("POST", ENV + "/settings", body))
shape("settings answer", s2, SETTINGS_FIELDS)
check("the new values are shown",
      (s2 or {}).get("Constants", [{}])[0].get("Value") ==
      "Hi from the pipeline" and
      s2.get("ScheduledEvents", [{}])[0].get("Value") == "Enabled", s2)
error("an unknown constant", v1("POST", ENV + "/settings", {
    "Constants": [{"Name": "Nope", "Value": "x"}]}), 400,
    "CONSTANT_NOT_FOUND")
error("an unknown scheduled event", v1("POST", ENV + "/settings", {
    "ScheduledEvents": [{"Name": "Nope", "Value": "Enabled"}]}), 400,
    "SCHEDULED_EVENT_NOT_FOUND")
error("a constant without a Value", v1("POST", ENV + "/settings", {
    "Constants": [{"Name": "Greeting"}]}), 400, "INVALID_PARAMETERS")
act = db.execute("SELECT count(*) FROM activity a JOIN apps p ON p.id ="
                 " a.app_id WHERE p.subdomain = ? AND a.action ="
                 " 'settings.change'", (APP,)).fetchone()[0]
check("the change is in the app's activity log", act >= 1, act)
# the new constant reaches the app at its next start. A v1 stop waits for
# its job without holding one of the portal's HTTP threads (it has 4):
# with the node frozen (SIGSTOP) the jobs hang, and meanwhile, with six
# stops waiting, other requests answer at once.
stopped = []
os.kill(NODE_PID, signal.SIGSTOP)
try:
    bgs = [threading.Thread(target=lambda: stopped.append(
        v1("POST", ENV + "/stop"))) for _ in range(6)]
    for bg in bgs:
        bg.start()
    time.sleep(1)
    times = []
    for _ in range(8):
        t0 = time.time()
        times.append((v1("GET", "/apps/" + APP)[0], time.time() - t0))
    waiting = sum(bg.is_alive() for bg in bgs)
finally:
    os.kill(NODE_PID, signal.SIGCONT)
for bg in bgs:
    bg.join(120)
check("while six v1 stops wait for their jobs, other requests answer at "
      "once", waiting == 6 and all(st == 200 and d < 2 for st, d in times),
      "stops still waiting: %d; %s" % (waiting, times))
check("the stops answer once the node is back", len(stopped) == 6 and
      all(st == 200 and d.get("Status") == "Stopped" for st, d in stopped),
      stopped)
s = want("start to apply", v1("POST", ENV + "/start", {}))
poll("start job", lambda: v1("GET", ENV + "/start/%s" %
                             (s or {}).get("JobId")),
     lambda g: g[0] != 200 or g[1].get("Status") == "Started")
st, text = routed_until("/", lambda st, t: "Hi from the pipeline" in t)
check("the app shows the constant set through the API", st == 200 and
      "Hi from the pipeline" in text, "%d %s" % (st, text[:200]))

# --- logs/{date}: a download URL of the day's application log -------------
TODAY = time.strftime("%Y-%m-%d", time.gmtime())
lg = want("GET logs/{today}", v1("GET", ENV + "/logs/" + TODAY))
check("logs: {Environment, Date, DownloadUrl}", isinstance(lg, dict) and
      set(lg) == {"Environment", "Date", "DownloadUrl"} and
      lg["Environment"] == "Test" and lg["Date"] == TODAY, lg)
st, data = fetch((lg or {}).get("DownloadUrl", "http://127.0.0.1:1/"))
lines = data.decode(errors="replace").splitlines() if st == 200 else []
check("the download is today's app log: its lines, all of today",
      st == 200 and any("[instance 1]" in x for x in lines) and
      all(x.startswith(TODAY) for x in lines), "%d %s" % (st, lines[:3]))
lg = want("GET logs of a day without lines", v1("GET", ENV +
                                                "/logs/2001-01-01"))
st, data = fetch((lg or {}).get("DownloadUrl", "http://127.0.0.1:1/"))
check("a day without lines: an empty file", st == 200 and data == b"",
      "%d %r" % (st, data[:80]))
error("logs of a date that is none", v1("GET", ENV + "/logs/yesterday"),
      400, "INVALID_PARAMETERS")
# the router's access log: the requests made through it above
DAY = time.strftime("%Y-%m-%d", time.localtime())   # nginx's local time
al = want("GET access-logs/{today}", v1("GET", ENV + "/access-logs/" + DAY))
check("access-logs: {Environment, Date, DownloadUrl}", isinstance(al, dict)
      and set(al) == {"Environment", "Date", "DownloadUrl"} and
      al["Date"] == DAY, al)
st, data = fetch((al or {}).get("DownloadUrl", "http://127.0.0.1:1/"))
lines = data.decode(errors="replace").splitlines() if st == 200 else []
check("the download holds the requests the router served today",
      st == 200 and any(HOST in x and '"GET /api/notes HTTP/1.1" 200' in x
                        for x in lines) and
      all(x.startswith(DAY) for x in lines), "%d %s" % (st, lines[:3]))
al = want("GET access-logs of a day without requests", v1(
    "GET", ENV + "/access-logs/2001-01-01"))
st, data = fetch((al or {}).get("DownloadUrl", "http://127.0.0.1:1/"))
check("a day without requests: an empty file", st == 200 and data == b"",
      "%d %r" % (st, data[:80]))
error("logs as a member without the logs permission",
      v1("GET", ENV + "/logs/" + TODAY, user="viewer@mx.test",
         key=VIEWER_KEY), 403, "NO_ACCESS")

# --- tags ---------------------------------------------------------------------
T1 = ENV + "/tags"
check("no tags yet", want("GET tags", v1("GET", T1)) == [])
check("POST a tag answers {Tag}", want("POST a tag", v1(
    "POST", T1, {"Tag": "customer-facing"})) == {"Tag": "customer-facing"})
want("POST another", v1("POST", T1, {"Tag": "eu"}))
check("GET tags: both", v1("GET", T1)[1] == ["customer-facing", "eu"])
check("a viewer reads them", v1("GET", T1, user="viewer@mx.test",
                                key=VIEWER_KEY)[1] == ["customer-facing",
                                                       "eu"])
error("a viewer may not tag", v1("POST", T1, {"Tag": "x"},
                                 user="viewer@mx.test", key=VIEWER_KEY),
      403, "NO_ACCESS")
check("DELETE with a body {Tag}", want("DELETE a tag (body)", v1(
    "DELETE", T1, {"Tag": "eu"})) == {"Tag": "eu"})
check("DELETE …/tags/{Tag}", want("DELETE a tag (path)", v1(
    "DELETE", T1 + "/customer-facing")) == {"Tag": "customer-facing"})
check("no tags left", v1("GET", T1)[1] == [])
error("an unknown tag", v1("DELETE", T1, {"Tag": "nope"}), 404,
      "TAG_NOT_FOUND")
error("a tag with a '/'", v1("POST", T1, {"Tag": "a/b"}), 400,
      "INVALID_TAG")
error("a tag without Tag", v1("POST", T1, {}), 400, "INVALID_PARAMETERS")

# --- scale -------------------------------------------------------------------
e = want("scale", v1("POST", ENV + "/scale", {"Instances": 2,
                                              "MemoryPerInstance": 256}))
shape("scale answer", e, ENV_FIELDS)
check("scaled: 2 × 256 MB, TotalMemory 512",
      (e or {}).get("Instances") == 2 and e.get("MemoryPerInstance") == 256
      and e.get("TotalMemory") == 512 and e.get("Status") == "Running", e)
running = db.execute("SELECT status_json FROM environments e JOIN nodes n"
                     " ON n.id = e.node_id WHERE n.name = 'mx' AND e.name ="
                     " 'Test'").fetchone()[0]
check("the node runs 2 instances",
      len([i for i in json.loads(running).get("instances") or []
           if i.get("state") == "running"]) == 2, running)
error("scale to 0 instances", v1("POST", ENV + "/scale", {"Instances": 0}),
      400, "INVALID_REQUEST")
error("scale with a string", v1("POST", ENV + "/scale",
                                {"Instances": "two"}), 400,
      "INVALID_PARAMETERS")

# --- Backups API v2: snapshot → poll → archives → restore elsewhere ------
st, text = routed("/api/notes", "POST", {"title": "kept by the snapshot"})
check("a note to back up", st in (200, 201), "%d %s" % (st, text))
EIDS = {e["Mode"]: e["EnvironmentId"] for e in envs or []}
B = "/api/v2/apps/%s/environments/%s" % (puuid, EIDS.get("Test"))
BA = "/api/v2/apps/%s/environments/%s" % (puuid, EIDS.get("Acceptance"))
page = want("v2 snapshots (none yet)", request("GET", B + "/snapshots"))
check("the list's shape: {limit, offset, total, snapshots}",
      page == {"limit": 100, "offset": 0, "total": 0, "snapshots": []}, page)
sn = want("v2 create a snapshot", request("POST", B + "/snapshots",
                                          {"comment": "before release"}))
shape("the new snapshot", sn, SNAP_FIELDS)
check("the new snapshot is queued (or already running)",
      (sn or {}).get("state") in ("queued", "running") and
      sn.get("comment") == "before release", sn)
SID = (sn or {}).get("snapshot_id")
st, sn = poll("snapshot", lambda: request("GET", B + "/snapshots/%s" % SID),
              lambda g: g[0] != 200 or g[1].get("state") in ("completed",
                                                            "failed"))
check("the snapshot completes", st == 200 and sn.get("state") ==
      "completed", "%d %s" % (st, sn))
shape("the completed snapshot", sn, SNAP_FIELDS)
check("dates in ISO 8601 with milliseconds and Z",
      all(ISO_MS.match(sn.get(k) or "") for k in ("created_at",
                                                   "finished_at",
                                                   "updated_at",
                                                   "expires_at")), sn)
check("the snapshot's model_version is what its archive's .metadata says "
      "(the package)", (sn or {}).get("model_version") == "notes-1.0.1", sn)
up = want("v2 comment a snapshot", request("PUT", B + "/snapshots/%s" % SID,
                                           {"comment": "release 1.0.1"}))
shape("PUT snapshot", up, SNAP_FIELDS)
check("PUT changes the comment, not updated_at",
      (up or {}).get("comment") == "release 1.0.1" and
      up.get("updated_at") == sn.get("updated_at"), up)
page = want("v2 snapshots", request("GET", B + "/snapshots?offset=0&limit=5"))
check("listed: total 1", (page or {}).get("total") == 1 and
      page.get("limit") == 5 and [x["snapshot_id"] for x in
                                  page.get("snapshots", [])] == [SID], page)
page = want("v2 snapshots past the end", request("GET", B +
                                                 "/snapshots?offset=1"))
check("offset 1: none, total 1", (page or {}).get("snapshots") == [] and
      page.get("total") == 1, page)
error("a limit of 0", request("GET", B + "/snapshots?limit=0"), 400,
      "INVALID_PARAMETERS")
error("an unknown snapshot", request("GET", B + "/snapshots/%s" %
                                     uuid.uuid4()), 404, "NOT_FOUND")
error("an unknown EnvironmentId", request(
    "GET", "/api/v2/apps/%s/environments/%s/snapshots" % (puuid,
                                                         uuid.uuid4())),
    404, "ENVIRONMENT_NOT_FOUND")
error("an unknown ProjectId", request(
    "GET", "/api/v2/apps/%s/environments/%s/snapshots" % (uuid.uuid4(),
                                                         EIDS.get("Test"))),
    404, "APP_NOT_FOUND")
error("backups as a member without the backups permission",
      request("GET", B + "/snapshots", user="viewer@mx.test",
              key=VIEWER_KEY), 403, "NO_ACCESS")
error("an archive of an unknown data_type",
      request("POST", B + "/snapshots/%s/archives?data_type=zip" % SID),
      400, "UNSUPPORTED")


archives = {}
for dt in ("database_only", "files_and_database"):
    a = want("v2 archive %s" % dt, request(
        "POST", B + "/snapshots/%s/archives?data_type=%s" % (SID, dt)))
    shape("archive %s" % dt, a, ARCHIVE_FIELDS)
    check("archive %s: completed, with a URL" % dt,
          (a or {}).get("state") == "completed" and
          a.get("data_type") == dt and a.get("snapshot_id") == SID and
          isinstance(a.get("url"), str), a)
    archives[dt] = a or {}
st, data = fetch(archives["database_only"].get("url", "http://127.0.0.1:1/"))
check("database_only: a PostgreSQL custom-format dump", st == 200 and
      data[:5] == b"PGDMP", "%d %r" % (st, data[:20]))
st, data = fetch(archives["files_and_database"].get("url",
                                                     "http://127.0.0.1:1/"))
names = []
if st == 200:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        names = tf.getnames()
check("files_and_database: a Mendix-layout .tar.gz", ".metadata" in names
      and "db/db.backup" in names, "%d %s" % (st, names[:10]))
a = want("v2 GET archive", request("GET", B + "/snapshots/%s/archives/%s" % (
    SID, archives["database_only"].get("archive_id"))))
shape("GET archive", a, ARCHIVE_FIELDS)
check("the archive again, by its id", (a or {}).get("archive_id") ==
      archives["database_only"].get("archive_id") and
      a.get("data_type") == "database_only", a)
error("an unknown archive", request("GET", B + "/snapshots/%s/archives/%s" %
                                    (SID, uuid.uuid4())), 404, "NOT_FOUND")

# restore into another environment of the app (Acceptance), which then
# serves the snapshot's notes
error("a restore into the running environment",
      request("POST", B + "/restores?source_snapshot_id=" + SID), 400,
      "INVALID_STATE")
error("a restore without source_snapshot_id", request("POST", BA +
                                                      "/restores"), 400,
      "INVALID_PARAMETERS")
error("a restore of an unknown snapshot",
      request("POST", BA + "/restores?source_snapshot_id=%s" %
              uuid.uuid4()), 404, "NOT_FOUND")
# a backup or restore while a job of nubo's runs on the environment
# (a stop, held by the frozen node): Mendix refuses, nubo would queue it
os.kill(NODE_PID, signal.SIGSTOP)
try:
    st, doc = nubo("POST", "/apps/%s/environments/Acceptance/stop" % APP)
    check("nubo's stop of Acceptance is a job", st == 202, "%d %s" % (st,
                                                                     doc))
    BUSY_JOB = ((doc or {}).get("job") or {}).get("id")
    error("a snapshot while a job runs on the environment",
          request("POST", BA + "/snapshots", {}), 400, "ENVIRONMENT_BUSY")
    error("a restore while a job runs on the environment",
          request("POST", BA + "/restores?source_snapshot_id=" + SID), 400,
          "ENVIRONMENT_BUSY")
finally:
    os.kill(NODE_PID, signal.SIGCONT)
st, doc = poll("the stop", lambda: nubo("GET", "/jobs/%s" % BUSY_JOB),
               lambda g: g[0] != 200 or g[1].get("state") in ("completed",
                                                             "failed"))
check("the stop ends once the node is back", st == 200 and
      doc.get("state") == "completed", "%d %s" % (st, doc))
want("transport 1.0.1 to Acceptance", v1(
    "POST", "/apps/%s/environments/Acceptance/transport" % APP,
    {"PackageId": "notes-1.0.1"}))
rs = want("v2 restore into Acceptance", request(
    "POST", BA + "/restores?source_snapshot_id=%s&db_only=false" % SID))
shape("the restore", rs, RESTORE_FIELDS)
RID = (rs or {}).get("restore_id")
st, rs = poll("restore", lambda: request("GET", BA + "/restores/%s" % RID),
              lambda g: g[0] != 200 or g[1].get("state") in ("completed",
                                                            "failed"))
shape("GET restore", rs, RESTORE_FIELDS)
check("the restore completes", st == 200 and rs.get("state") ==
      "completed", "%d %s" % (st, rs))
check("source and target environments",
      (rs or {}).get("source_environment_id") == EIDS.get("Test") and
      rs.get("target_environment_id") == EIDS.get("Acceptance") and
      rs.get("source_snapshot_id") == SID, rs)
error("an unknown restore", request("GET", BA + "/restores/%s" %
                                    uuid.uuid4()), 404, "NOT_FOUND")
s = want("start Acceptance", v1("POST", "/apps/%s/environments/acceptance/"
                                "start" % APP))
poll("start job", lambda: v1("GET", "/apps/%s/environments/Acceptance/"
                             "start/%s" % (APP, (s or {}).get("JobId"))),
     lambda g: g[0] != 200 or g[1].get("Status") == "Started")
st, text = routed_until("/api/notes", lambda st, t: "kept by the snapshot"
                        in t, host="shop-acceptance.nubo.localhost")
check("Acceptance serves the snapshot's notes", st == 200 and
      "kept by the snapshot" in text, "%d %s" % (st, text[:300]))
d = want("v2 delete the snapshot", request("DELETE", B + "/snapshots/%s" %
                                           SID))
check("DELETE answers {}", d == {}, d)
error("the deleted snapshot", request("GET", B + "/snapshots/%s" % SID),
      404, "NOT_FOUND")

# --- delete a package no longer deployed ------------------------------------
d = want("DELETE package", v1("DELETE", "/apps/%s/packages/notes-1.0.0" %
                              APP))
check("DELETE answers {}", d == {}, d)
error("the deleted package", v1("GET", "/apps/%s/packages/notes-1.0.0" %
                                APP), 404, "PACKAGE_NOT_FOUND")

# --- Deploy API v4 (personal access tokens) --------------------------------
def v4(method, path, body=None, token=PAT, **kw):
    h = {"Authorization": "MxToken " + token} if token else {}
    return request(method, "/api/v4" + path, body, headers=h, user=None,
                   key=None, **kw)


def error4(what, got, status):
    st, doc = got
    e = (doc or {}).get("error") if isinstance(doc, dict) else None
    check("%s: %d in the v4 error shape" % (what, status),
          st == status and isinstance(e, dict) and e.get("code") == status
          and isinstance(e.get("message"), str) and e["message"] != "" and
          (status != 400 or isinstance(e.get("invalid-params"), list)),
          "%d %s" % (st, doc))
    return e or {}


APP4_FIELDS = {"id": str, "name": str, "licenseType": str, "subdomain": str,
               "technicalContact": dict, "region": str}
ENV4_FIELDS = {"id": str, "appId": str, "name": str, "state": str,
               "isProduction": bool, "url": str, "dbVersion": str,
               "planName": str}
PKG4_FIELDS = {"id": str, "appId": str, "modelVersion": str,
               "runtimeVersion": str, "createdOn": str,
               "expiresOn": (str, NONE), "description": str,
               "fileName": str, "fileSize": int}
PERM4_FIELDS = {"member": dict, "canDeployApp": str, "canManageBackups": str,
                "canViewAlerts": str, "canAccessAPI": str,
                "canViewLogs": str, "canManagePrivileges": str}
error4("v4 without a token", v4("GET", "/apps", token=None), 401)
error4("v4 with a wrong token", v4("GET", "/apps", token="nubo_" + "1" * 40),
       401)
error("a personal access token on Deploy API v1",
      v1("GET", "/apps", key=PAT), 401, "UNAUTHENTICATED")
c = http.client.HTTPConnection(U.hostname, U.port, timeout=30)
c.request("GET", "/api/v1/apps", headers={"Authorization": "Bearer " + PAT})
r = c.getresponse()
check("a personal access token on nubo's own API: 401", r.status == 401 and
      json.loads(r.read())["error"]["code"] == "UNAUTHENTICATED", r.status)
pg = want("v4 apps", v4("GET", "/apps"))
check("v4 apps: {apps, pagination}", isinstance(pg, dict) and
      set(pg) == {"apps", "pagination"} and pg["pagination"] ==
      {"offset": 0, "limit": 100, "size": len(pg["apps"])}, pg)
a4 = [a for a in (pg or {}).get("apps", []) if a.get("subdomain") == APP]
check("v4 apps lists the app", len(a4) == 1, pg)
a4 = want("v4 app", v4("GET", "/apps/" + puuid))
shape("v4 app", a4, APP4_FIELDS)
check("v4 app: licensed, its Technical Contact",
      (a4 or {}).get("licenseType") == "licensed" and a4.get("id") == puuid
      and a4.get("technicalContact", {}).get("userId") == USER, a4)
pg = want("v4 apps licenseType=free", v4("GET", "/apps?licenseType=free"))
check("a licensed app is not among the free ones", APP not in
      [a.get("subdomain") for a in (pg or {}).get("apps", [])], pg)
e = error4("v4 apps limit=0", v4("GET", "/apps?limit=0"), 400)
check("invalid-params names limit", (e.get("invalid-params") or [{}])[0]
      .get("name") == "limit", e)
error4("v4 unknown app", v4("GET", "/apps/%s" % uuid.uuid4()), 404)
pg = want("v4 environments", v4("GET", "/apps/%s/environments?expand="
                                "package&sort=-name" % puuid))
es = (pg or {}).get("environments", [])
check("v4 environments: {environments, pagination}", isinstance(pg, dict)
      and set(pg) == {"environments", "pagination"} and pg["pagination"] ==
      {"offset": 0, "limit": 100, "size": len(es)}, pg)
check("sorted by name, descending", [x.get("name") for x in es] ==
      ["Test", "Production", "Acceptance"], es)
for x in es:
    shape("v4 environment %s" % x.get("name"), {k: v for k, v in x.items()
                                                if k != "package"},
          ENV4_FIELDS)
t4 = es[0] if es else {}
check("Test: running, its uuid, not production",
      t4.get("state") == "running" and t4.get("id") == EIDS.get("Test") and
      t4.get("isProduction") is False, t4)
shape("expand=package", t4.get("package"), PKG4_FIELDS)
check("the package Test runs", (t4.get("package") or {}).get("id") ==
      "notes-1.0.1" and t4["package"].get("modelVersion") == "1.0.1", t4)
check("Production: no package", "package" in es[1] and es[1]["package"]
      is None if len(es) > 1 else False, es)
x = want("v4 environment", v4("GET", "/apps/%s/environments/%s" %
                              (puuid, EIDS.get("Test"))))
shape("v4 GET environment", x, ENV4_FIELDS)
check("v4 environment without expand has no package",
      (x or {}).get("name") == "Test" and "package" not in x, x)
error4("v4 unknown environment", v4("GET", "/apps/%s/environments/%s" %
                                    (puuid, uuid.uuid4())), 404)
P4 = "/apps/%s/environments/%s/permissions" % (puuid, EIDS.get("Test"))
pm = want("v4 permissions", v4("GET", P4))
check("v4 permissions: {technicalContact, permissions, pagination}",
      isinstance(pm, dict) and set(pm) == {"technicalContact", "permissions",
                                           "pagination"} and
      pm["technicalContact"].get("userId") == USER, pm)
for x in (pm or {}).get("permissions", []):
    shape("v4 permission of %s" % x.get("member", {}).get("userId"), x,
          PERM4_FIELDS)
vw = [x for x in (pm or {}).get("permissions", [])
      if x["member"]["userId"] == "viewer@mx.test"]
check("the viewer holds nothing on Test", vw and all(
    vw[0][k] == "false" for k in PERM4_FIELDS if k not in ("member",
                                                           "canAccessAPI")),
      vw)
pm = want("v4 permissions of one user", v4("GET", P4 +
                                           "?userId=viewer@mx.test"))
check("userId picks one", len((pm or {}).get("permissions", [])) == 1, pm)
# expand=package runs nubo's GET /apps/{app}/packages/{package}, which is
# the transport permission's: a face route has the level of the nubo route
# it runs (docs/MENDIX-API.md), so a member without transport on an
# environment gets it without its package field (null would say that
# nothing is deployed there).
EXPAND = "/apps/%s/environments?expand=package" % puuid


def expanded(token):
    """{environment name: its package's id, or '-' without a field}."""
    pg = want("v4 environments?expand=package as the viewer",
              v4("GET", EXPAND, token=token))
    return {x.get("name"): (x["package"] or {}).get("id") if "package" in x
            else "-" for x in (pg or {}).get("environments", [])}


ex = expanded(VIEWER_KEY)
check("expand=package: no package for a member without transport",
      ex == {"Test": "-", "Acceptance": "-", "Production": "-"}, ex)
x = want("v4 environment?expand=package as the viewer", v4(
    "GET", "/apps/%s/environments/%s?expand=package" % (
        puuid, EIDS.get("Test")), token=VIEWER_KEY))
check("expand=package of one environment: no package without transport",
      (x or {}).get("name") == "Test" and "package" not in x, x)
patch = {"permissions": [{"member": {"userId": "viewer@mx.test"},
                          "canDeployApp": True, "canViewLogs": True}]}
error4("a read-only token's PATCH", v4("PATCH", P4, patch, token=PAT_RO),
       403)
pm = want("v4 PATCH permissions", v4("PATCH", P4, patch))
check("v4 PATCH permissions answers {permissions}", isinstance(pm, dict)
      and set(pm) == {"permissions"}, pm)
for x in (pm or {}).get("permissions", []):
    shape("v4 PATCH: permission of %s" % x.get("member", {}).get("userId"),
          x, PERM4_FIELDS)
vw = [x for x in (pm or {}).get("permissions", [])
      if x["member"]["userId"] == "viewer@mx.test"]
check("the viewer may now deploy to Test and read its logs", vw and
      vw[0]["canDeployApp"] == "true" and vw[0]["canViewLogs"] == "true"
      and vw[0]["canManageBackups"] == "false", vw)
rows = sorted(db.execute(
    "SELECT mp.permission, mp.environment FROM member_permissions mp JOIN"
    " users u ON u.id = mp.user_id JOIN apps a ON a.id = mp.app_id WHERE"
    " u.email = 'viewer@mx.test' AND a.subdomain = ?", (APP,)).fetchall())
check("nubo's permissions of the viewer", rows == [("logs", "Test"),
                                                   ("transport", "Test")],
      rows)
ex = expanded(VIEWER_KEY)
check("expand=package: the package only where the member has transport",
      ex == {"Test": "notes-1.0.1", "Acceptance": "-", "Production": "-"},
      ex)
x = want("v4 environment?expand=package with transport", v4(
    "GET", "/apps/%s/environments/%s?expand=package" % (
        puuid, EIDS.get("Test")), token=VIEWER_KEY))
check("expand=package of one environment with transport on it",
      ((x or {}).get("package") or {}).get("id") == "notes-1.0.1", x)
error4("a PATCH for a non-member", v4("PATCH", P4, {"permissions": [
    {"member": {"userId": "nobody@mx.test"}, "canDeployApp": True}]}), 404)
error4("canAccessAPI false", v4("PATCH", P4, {"permissions": [
    {"member": {"userId": "viewer@mx.test"}, "canAccessAPI": False}]}), 400)
error4("the read-only token may not hand over the app",
       v4("PATCH", "/apps/" + puuid, {"technicalContact": {
           "userId": "viewer@mx.test"}}, token=PAT_RO), 403)
a4 = want("v4 technical contact change", v4(
    "PATCH", "/apps/" + puuid, {"technicalContact": {"userId":
                                                     "viewer@mx.test"}}))
shape("v4 PATCH app", a4, APP4_FIELDS)
check("the app's Technical Contact is the viewer now",
      (a4 or {}).get("technicalContact", {}).get("userId") ==
      "viewer@mx.test" and db.execute(
          "SELECT u.email FROM apps a JOIN users u ON u.id ="
          " a.technical_contact WHERE a.subdomain = ?",
          (APP,)).fetchone()[0] == "viewer@mx.test", a4)

# --- starts that fail: MISSING_CONSTANT, then START_FAILED ----------------
# A package declaring a constant without a default, whose program dies at
# once, in Production (empty until now).
def broken_package(dest):
    out = io.BytesIO()
    man = {"name": "broken", "version": "1.0.0", "start": "bin/fail",
           "health": "/healthz",
           "constants": [{"name": "ApiToken", "type": "string"}]}
    script = b"#!/bin/sh\necho 'broken: failing on purpose'\nexit 3\n"
    with tarfile.open(fileobj=out, mode="w:gz") as tf:
        for name, data, mode in (("nubo.json", json.dumps(man).encode(),
                                  0o644), ("bin/fail", script, 0o755)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = mode
            tf.addfile(ti, io.BytesIO(data))
    with open(dest, "wb") as f:
        f.write(out.getvalue())
    return out.getvalue()


PROD = "/apps/%s/environments/Production" % APP
p = want("v1 upload of a package that cannot start", multipart(
    "/api/1/apps/%s/packages/upload" % APP, "broken-1.0.0.tar.gz",
    broken_package(os.path.join(TMP, "broken-1.0.0.tar.gz"))))
want("transport it to Production", v1("POST", PROD + "/transport",
                                       {"PackageId": "broken-1.0.0"}))
s = want("start it without a value for ApiToken", v1("POST", PROD + "/start"))
got = poll("start job", lambda: v1("GET", PROD + "/start/%s" %
                                   (s or {}).get("JobId")),
           lambda g: g[0] != 200 or g[1].get("Status") == "Started")
error("a constant without default or value", got, 500, "MISSING_CONSTANT")
check("… naming the constant", "'ApiToken'" in str(got[1]), got)
job = nubo("GET", "/jobs/%s" % (s or {}).get("JobId"))[1] or {}
check("nubo's start job failed with the node's code",
      job.get("state") == "failed" and
      (job.get("result") or {}).get("code") == "MISSING_CONSTANT", job)
check("Production stays stopped", v1("GET", PROD)[1].get("Status") ==
      "Stopped")
want("set ApiToken", v1("POST", PROD + "/settings", {
    "Constants": [{"Name": "ApiToken", "Value": "t0ken"}]}))
# The node cannot make Production's database (its first start): the
# node's PostgreSQL refuses its admin, whose password has expired, set so
# by a session of that admin, which sets it back after.
with open(os.path.join(TMP, "node-mx", "pg", "admin.json")) as f:
    PGPW = json.load(f)["password"]
with open(os.path.join(TMP, "node-mx.ports")) as f:
    PGPORT = f.read().split()[2]
psql = subprocess.Popen(
    ["psql", "-h", "127.0.0.1", "-p", PGPORT, "-U", "nubo_admin", "-d",
     "postgres", "-qAt", "-v", "ON_ERROR_STOP=1"],
    env={**os.environ, "PGPASSWORD": PGPW}, stdin=subprocess.PIPE,
    stdout=subprocess.PIPE, text=True)
try:
    psql.stdin.write("ALTER ROLE nubo_admin VALID UNTIL '2000-01-01';\n"
                     "SELECT 'expired';\n")
    psql.stdin.flush()
    check("the node's PostgreSQL admin expired",
          psql.stdout.readline().strip() == "expired")
    s = want("start without a database", v1("POST", PROD + "/start", {}))
    got = poll("start job", lambda: v1("GET", PROD + "/start/%s" %
                                       (s or {}).get("JobId")),
               lambda g: g[0] != 200 or g[1].get("Status") == "Started")
finally:
    psql.stdin.write("ALTER ROLE nubo_admin VALID UNTIL 'infinity';\n"
                     "SELECT 'back';\n")
    psql.stdin.flush()
    back = psql.stdout.readline().strip()
    psql.stdin.close()
    psql.wait(30)
check("the admin is valid again", back == "back", back)
error("a start whose database cannot be made", got, 500, "DB_SYNC_FAILED")
s = want("start it again", v1("POST", PROD + "/start", {}))
got = poll("start job", lambda: v1("GET", PROD + "/start/%s" %
                                   (s or {}).get("JobId")),
           lambda g: g[0] != 200 or g[1].get("Status") == "Started")
error("a start whose app dies at once", got, 500, "START_FAILED")
e = want("GET Production after the failed start", v1("GET", PROD))
check("Status Stopped (nubo's failed)", (e or {}).get("Status") ==
      "Stopped", e)

# --- each API key's request budget (600 a minute by default) --------------
c = http.client.HTTPConnection(U.hostname, U.port, timeout=30)
c.request("POST", "/api/v1/keys", body=json.dumps({"name": "budget"}),
          headers={"Authorization": "Bearer " + KEY,
                   "Content-Type": "application/json"})
RK = json.loads(c.getresponse().read())["key"]
H = {"Mendix-Username": USER, "Mendix-ApiKey": RK}
t0 = time.time()
served = 0
limited = None
for _ in range(2000):
    c.request("GET", "/api/v2/apps/%s/jobs/999999" % APP, headers=H)
    r = c.getresponse()
    body = r.read()
    if r.status == 429:
        limited = (r, json.loads(body))
        break
    served += 1
took = time.time() - t0
check("a key gets its 600 requests, then 429", limited is not None and
      600 <= served <= 600 + int(took * 10) + 1, "%d served in %.1f s" % (
          served, took))
if limited:
    r, doc = limited
    check("429 RATE_LIMITED in the v1 shape, with Retry-After",
          doc.get("errorCode") == "RATE_LIMITED" and
          (r.getheader("Retry-After") or "").isdigit() and
          int(r.getheader("Retry-After")) >= 1, "%s %s" % (
              r.getheader("Retry-After"), doc))
    st, doc = request("GET", "/api/v4/apps", headers={
        "Authorization": "MxToken " + RK}, user=None, key=None)
    check("the budget is the key's on every face (v4: 429 in its shape)",
          st == 429 and doc.get("error", {}).get("code") == 429, "%d %s" % (
              st, doc))
    check("another key is not limited", v1("GET", "/apps")[0] == 200)
    time.sleep(int(limited[0].getheader("Retry-After") or "1") + 0.2)
    st, _ = request("GET", "/api/v2/apps/%s/jobs/999999" % APP, key=RK)
    check("after Retry-After the key is served again", st == 404, st)

# --- the same operations, the same jobs and log ---------------------------
kinds = [r[0] for r in db.execute(
    "SELECT kind FROM jobs j JOIN apps a ON a.id = j.app_id WHERE"
    " a.subdomain = ? ORDER BY j.id", (APP,))]
check("nubo's own jobs ran them", {"package.upload", "env.transport",
                                   "env.start", "env.stop", "env.clean",
                                   "env.scale", "snapshot.create",
                                   "snapshot.restore"} <= set(kinds), kinds)
acts = {r[0] for r in db.execute(
    "SELECT a.action FROM activity a JOIN apps p ON p.id = a.app_id WHERE"
    " p.subdomain = ?", (APP,))}
check("and the activity log has them", {"env.tag", "env.untag",
                                        "env.transport", "env.start",
                                        "env.stop", "env.clean",
                                        "package.upload",
                                        "package.delete", "snapshot.create",
                                        "snapshot.comment",
                                        "snapshot.download",
                                        "snapshot.restore",
                                        "snapshot.delete"} <= acts, acts)
check("the v4 changes are in the log too", {
    "member.permissions", "app.technical-contact"} <= acts, acts)
# every 2xx above had a JSON body (want()); nubo's own API is unchanged
c = http.client.HTTPConnection(U.hostname, U.port, timeout=30)
c.request("GET", "/api/v1/apps/" + APP, headers={"Authorization":
                                                 "Bearer " + KEY})
r = c.getresponse()
doc = json.loads(r.read())
check("nubo's own API still answers its own shape", r.status == 200 and
      doc.get("subdomain") == APP, doc)
error("an unknown path under /api/1", v1("GET", "/nothing/here"), 404,
      "NOT_FOUND")

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
