"""An app that attacks its neighbours. GET /probe?<targets> tries every
way out of its sandbox the test names and answers, per attempt, whether
it got through ("escaped": true is a failure of nubo). Controls (its own
database and files) must keep working, so a probe that cannot do
anything at all does not pass for isolation."""
import errno, http.server, json, os, socket, subprocess, sys, time
import urllib.parse

def psql(url, sql):
    r = subprocess.run(["psql", url, "-Atqc", sql], capture_output=True,
                       text=True, timeout=20)
    return r.returncode, (r.stdout + r.stderr).strip()

def own_url(db=None):
    u = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    if db:
        u = u._replace(path="/" + db)
    return urllib.parse.urlunsplit(u)

def try_read(path):
    with open(path, "rb") as f:
        return f.read(200).decode("latin-1")

def try_connect_tcp(host, port):
    s = socket.create_connection((host, int(port)), timeout=3)
    s.close()
    return "connected"

def try_connect_unix(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    s.connect(path)
    s.close()
    return "connected"

def environ_scan():
    """Any process visible whose environment is not ours."""
    mine = os.environ.get("DATABASE_URL")
    seen = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            env = open("/proc/%s/environ" % p, "rb").read().decode("latin-1")
        except OSError:
            continue
        for kv in env.split("\0"):
            if kv.startswith("DATABASE_URL=") and kv[13:] != mine:
                seen.append(p)
    if seen:
        return "foreign environment in /proc/%s" % ",".join(seen)
    raise PermissionError("no foreign process visible")

def attacks(q):
    g = lambda k: q.get(k, [""])[0]
    node, bdir = g("node_dir"), g("b_dir")
    a = {}
    a["proc_environ_scan"] = environ_scan
    a["proc_environ_b"] = lambda: try_read("/proc/%s/environ" % g("b_pid"))
    a["signal_b"] = lambda: os.kill(int(g("b_pid")), 0) or "signalled"
    a["signal_postmaster"] = lambda: os.kill(int(g("pg_pid")), 0) or "signalled"
    a["files_b_list"] = lambda: str(os.listdir(bdir + "/files"))
    a["files_b_read"] = lambda: try_read(bdir + "/files/marker.txt")
    a["files_b_write"] = lambda: open(bdir + "/files/pwned.txt", "w").write("x")
    a["env_json_b"] = lambda: try_read(bdir + "/env.json")
    a["agent_json"] = lambda: try_read(node + "/agent.json")
    a["pg_admin_json"] = lambda: try_read(node + "/pg/admin.json")
    a["pg_hba_write"] = lambda: open(node + "/pg/data/pg_hba.conf", "a").write("local all all trust\n")
    a["pg_data_read"] = lambda: str(os.listdir(node + "/pg/data"))
    a["nginx_conf_read"] = lambda: try_read(node + "/nginx/nginx.conf")
    a["db_of_b"] = lambda: db_attempt(own_url(g("b_db")))
    a["db_postgres"] = lambda: db_attempt(own_url("postgres"))
    a["db_template1"] = lambda: db_attempt(own_url("template1"))
    a["db_b_with_b_role"] = lambda: db_attempt("postgresql://%s@127.0.0.1:5432/%s" % (g("b_db"), g("b_db")))
    a["db_host_tcp"] = lambda: try_connect_tcp("127.0.0.1", g("pg_port"))
    a["db_host_socket"] = lambda: try_connect_unix("%s/pg/run/.s.PGSQL.%s" % (node, g("pg_port")))
    a["instance_b_port"] = lambda: try_connect_tcp("127.0.0.1", g("b_port"))
    a["instance_b_socket"] = lambda: try_connect_unix(g("b_socket"))
    a["agent_port"] = lambda: try_connect_tcp("127.0.0.1", g("agent_port"))
    a["portal_port"] = lambda: try_connect_tcp("127.0.0.1", g("portal_port"))
    a["router_port"] = lambda: try_connect_tcp("127.0.0.1", g("router_port"))
    a["write_usr"] = lambda: open("/usr/local/bin/pwned", "w").write("x")
    a["write_etc"] = lambda: open("/etc/pwned", "w").write("x")
    a["setuid_root"] = lambda: os.setuid(0) or "uid 0"
    a["user_namespace"] = lambda: nested_userns()
    a["package_file_write"] = lambda: open(os.path.join(os.getcwd(), "bin/probe.py"), "a").write("#")
    a["package_file_chmod"] = lambda: os.chmod(os.path.join(os.getcwd(), "bin/probe.py"), 0o777) or "chmod"
    return a

def db_attempt(url):
    rc, out = psql(url, "SELECT current_database()")
    if rc == 0:
        return "connected to " + out
    raise PermissionError(out)

def nested_userns():
    r = subprocess.run(["unshare", "-U", "-r", "id", "-u"],
                       capture_output=True, text=True, timeout=10)
    if r.returncode == 0:
        return "nested user namespace: " + r.stdout.strip()
    raise PermissionError(r.stderr.strip())

def run_probe(q):
    out = {}
    for name, fn in attacks(q).items():
        try:
            detail = fn()
            out[name] = {"escaped": True, "detail": str(detail)[:200]}
        except Exception as e:
            out[name] = {"escaped": False, "detail": "%s: %s" % (type(e).__name__, e)}
    # controls: what the app must still be able to do
    rc, db = psql(os.environ["DATABASE_URL"], "SELECT current_database()")
    out["control_own_db"] = {"ok": rc == 0, "detail": db}
    try:
        p = os.path.join(os.environ["NUBO_FILES_DIR"], "control.txt")
        open(p, "w").write("ok")
        out["control_own_files"] = {"ok": open(p).read() == "ok", "detail": p}
    except Exception as e:
        out["control_own_files"] = {"ok": False, "detail": str(e)}
    try:
        open("work-control", "w").write("ok")
        out["control_working_area"] = {"ok": open("work-control").read() == "ok", "detail": os.getcwd()}
    except Exception as e:
        out["control_working_area"] = {"ok": False, "detail": str(e)}
    try:
        open("/tmp/control", "w").write("ok")
        out["control_tmp"] = {"ok": True, "detail": "/tmp writable"}
    except Exception as e:
        out["control_tmp"] = {"ok": False, "detail": str(e)}
    return out

def fork_bomb():
    """Fork until the kernel refuses; report how many we got."""
    r = subprocess.run([sys.executable, "-c", """
import os, signal, sys, time
n = 0
kids = []
try:
    while n < 100000:
        pid = os.fork()
        if pid == 0:
            time.sleep(20)
            os._exit(0)
        kids.append(pid)
        n += 1
except OSError as e:
    pass
print(n, flush=True)
for k in kids:
    os.kill(k, signal.SIGKILL)
for k in kids:
    os.waitpid(k, 0)
"""], capture_output=True, text=True, timeout=120)
    return {"forks": int(r.stdout.strip() or -1), "stderr": r.stderr[-300:]}

def eat_memory(mb):
    """A child that touches mb MB: its fate says whether a limit held."""
    r = subprocess.run([sys.executable, "-c", """
import sys
blocks = []
for i in range(%d):
    b = bytearray(1024 * 1024)
    for j in range(0, len(b), 4096):
        b[j] = 1
    blocks.append(b)
print("survived", flush=True)
""" % mb], capture_output=True, text=True, timeout=120)
    return {"returncode": r.returncode, "stdout": r.stdout.strip()}

class H(http.server.BaseHTTPRequestHandler):
    def answer(self, code, doc):
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        try:
            if u.path == "/health":
                return self.answer(200, {"ok": True})
            if u.path == "/whoami":
                return self.answer(200, {"uid": os.getuid(), "gid": os.getgid(),
                    "pid": os.getpid(), "env": os.environ["NUBO_ENV"],
                    "app": os.environ["NUBO_APP"],
                    "nproc": len([p for p in os.listdir("/proc") if p.isdigit()]),
                    "work_control": os.path.exists("work-control")})
            if u.path == "/mark":
                v = q["v"][0]
                open(os.path.join(os.environ["NUBO_FILES_DIR"], "marker.txt"), "w").write(v)
                psql(os.environ["DATABASE_URL"], "CREATE TABLE IF NOT EXISTS marker (v text)")
                rc, out = psql(os.environ["DATABASE_URL"], "DELETE FROM marker; INSERT INTO marker VALUES ('%s')" % v.replace("'", ""))
                return self.answer(200 if rc == 0 else 500, {"v": v, "db": out})
            if u.path == "/read":
                f = open(os.path.join(os.environ["NUBO_FILES_DIR"], "marker.txt")).read()
                rc, db = psql(os.environ["DATABASE_URL"], "SELECT v FROM marker")
                return self.answer(200, {"file": f, "db": db})
            if u.path == "/touch":
                open("work-control", "w").write("ok")
                return self.answer(200, {"cwd": os.getcwd()})
            if u.path == "/probe":
                return self.answer(200, run_probe(q))
            if u.path == "/forkbomb":
                return self.answer(200, fork_bomb())
            if u.path == "/eat":
                return self.answer(200, eat_memory(int(q["mb"][0])))
            if u.path == "/eat-self":
                blocks = []
                for i in range(int(q["mb"][0])):
                    b = bytearray(1024 * 1024)
                    for j in range(0, len(b), 4096):
                        b[j] = 1
                    blocks.append(b)
                return self.answer(200, {"survived": True})
            return self.answer(404, {"error": "no such probe"})
        except Exception as e:
            return self.answer(500, {"error": "%s: %s" % (type(e).__name__, e)})

    def log_message(self, fmt, *args):
        pass

host = os.environ.get("PROBE_LISTEN", "127.0.0.1")
print("probe listening on %s:%s" % (host, os.environ["PORT"]), flush=True)
http.server.ThreadingHTTPServer((host, int(os.environ["PORT"])), H).serve_forever()
