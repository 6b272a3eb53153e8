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

def try_talk_tcp(host, port):
    """Connect and read what the other side says first."""
    s = socket.create_connection((host, int(port)), timeout=5)
    s.settimeout(5)
    said = s.recv(200).decode("latin-1")
    s.close()
    return "connected, heard: " + said

def try_exchange(host, port):
    """Connect, say something, and count it as reached only if the other
    side answers: slirp4netns completes a handshake with its own
    addresses even when nothing is behind them."""
    s = socket.create_connection((host, int(port)), timeout=3)
    s.settimeout(3)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    said = s.recv(200)
    s.close()
    if not said:
        raise ConnectionError("connected, then closed without a word")
    return "answered: " + said.decode("latin-1")

def try_hear(host, port, banner):
    """Reached only if the listener's own banner is heard."""
    said = try_exchange(host, port)
    if banner and banner in said:
        return said
    raise ConnectionError("not the listener: " + said[:80])

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
    # every database the cluster lists (names may be listed, as in
    # PostgreSQL: see the controls) and the ones known anyway
    a["db_connect_listed"] = lambda: db_attempt_all([g("b_db"), "postgres", "template1"])
    # the cluster's sessions, memberships, dependencies
    for name, sql in (
            ("db_list_users", "SELECT string_agg(usename, ',') FROM pg_user"),
            ("db_list_groups", "SELECT count(*) FROM pg_group"),
            ("db_list_members", "SELECT count(*) FROM pg_auth_members"),
            ("db_list_sessions", "SELECT string_agg(datname || '/' || usename, ',') FROM pg_stat_activity"),
            ("db_list_sessions_fn", "SELECT count(*) FROM pg_stat_get_activity(NULL)"),
            ("db_list_db_stats", "SELECT string_agg(datname, ',') FROM pg_stat_database"),
            ("db_list_dependencies", "SELECT count(*) FROM pg_shdepend")):
        a[name] = (lambda sql: lambda: db_query(sql))(sql)
    a["db_host_tcp"] = lambda: try_connect_tcp("127.0.0.1", g("pg_port"))
    a["db_host_socket"] = lambda: try_connect_unix("%s/pg/run/.s.PGSQL.%s" % (node, g("pg_port")))
    a["instance_b_port"] = lambda: try_connect_tcp("127.0.0.1", g("b_port"))
    a["instance_b_socket"] = lambda: try_connect_unix(g("b_socket"))
    a["agent_port"] = lambda: try_connect_tcp("127.0.0.1", g("agent_port"))
    a["portal_port"] = lambda: try_connect_tcp("127.0.0.1", g("portal_port"))
    a["router_port"] = lambda: try_connect_tcp("127.0.0.1", g("router_port"))
    # with egress (nubod node --egress) the way out is slirp4netns, whose
    # gateway 10.0.2.2 stands for the host's loopback unless that is
    # disabled, and whose 10.0.2.3 forwards to the host's resolver unless
    # that is disabled (it then leads outside, where anything may
    # answer: only the test's loopback listener's banner counts)
    for k in ("agent_port", "portal_port", "router_port", "pg_port",
              "b_port", "host_port"):
        a[k + "_gw"] = (lambda k: lambda: try_exchange("10.0.2.2", g(k)))(k)
    a["host_port_dns"] = lambda: try_hear("10.0.2.3", g("host_port"), g("host_banner"))
    a["host_port"] = lambda: try_hear("127.0.0.1", g("host_port"), g("host_banner"))
    # the outside world: reached only with egress (the test says which)
    a["egress_outside"] = lambda: try_talk_tcp(*g("outside").rsplit(":", 1))
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

def db_attempt_all(known):
    """Connect to each database the cluster lists and each one known,
    but our own: one that lets us in is an escape."""
    rc, own = psql(os.environ["DATABASE_URL"], "SELECT current_database()")
    rc, listed = psql(os.environ["DATABASE_URL"], "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database")
    names = sorted(set((listed.split(",") if rc == 0 else []) + known) - {own, ""})
    refused = []
    for db in names:
        try:
            return db_attempt(own_url(db))
        except PermissionError:
            refused.append(db)
    raise PermissionError("refused by %d databases (%s): %s" % (
        len(refused), "listed" if rc == 0 else "not listed: " + listed[:80], ",".join(refused)))

def db_query(sql):
    rc, out = psql(os.environ["DATABASE_URL"], sql)
    if rc == 0:
        return "listed: " + out
    raise PermissionError(out)

def nested_userns():
    r = subprocess.run(["unshare", "-U", "-r", "id", "-u"],
                       capture_output=True, text=True, timeout=10)
    if r.returncode == 0:
        return "nested user namespace: " + r.stdout.strip()
    raise PermissionError(r.stderr.strip())

def run_one(q, name):
    try:
        detail = attacks(q)[name]()
        return {"escaped": True, "detail": str(detail)[:200]}
    except Exception as e:
        return {"escaped": False, "detail": "%s: %s" % (type(e).__name__, e)}

def control_query(sql, want):
    """What the app must be able to do: sql answers, naming want."""
    rc, out = psql(os.environ["DATABASE_URL"], sql)
    return rc == 0 and want in out.replace("\n", ",").split(","), out

def control_files():
    p = os.path.join(os.environ["NUBO_FILES_DIR"], "control.txt")
    open(p, "w").write("ok")
    return open(p).read() == "ok", p

def control_working_area():
    open("work-control", "w").write("ok")
    return open("work-control").read() == "ok", os.getcwd()

def control_tmp():
    open("/tmp/control", "w").write("ok")
    return True, "/tmp writable"

def controls():
    """What the app must still be able to do, each (ok, detail): a probe
    that cannot do anything at all does not pass for isolation."""
    url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    own_db, own_role = url.path.lstrip("/"), url.username
    c = {}
    c["control_own_db"] = lambda: control_query("SELECT current_database()", own_db)
    c["control_own_tables"] = lambda: control_query(
        "CREATE TABLE IF NOT EXISTS control_t (v text); "
        "INSERT INTO control_t VALUES ('ok'); SELECT count(*) > 0 FROM control_t", "t")
    # the lists of the cluster's databases and roles, their settings,
    # comments and labels: open, as in PostgreSQL (pg_dump reads them);
    # every database but our own refuses a connection (db_connect_listed)
    c["control_list_databases"] = lambda: control_query(
        "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database", own_db)
    c["control_list_roles"] = lambda: control_query(
        "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles", own_role)
    for name, table in (("settings", "pg_db_role_setting"),
                        ("comments", "pg_shdescription"),
                        ("labels", "pg_shseclabel")):
        c["control_list_" + name] = (lambda t: lambda: control_query(
            "SELECT count(*) >= 0 FROM " + t, "t"))(table)
    c["control_own_files"] = control_files
    c["control_working_area"] = control_working_area
    c["control_tmp"] = control_tmp
    return c

def run_control(name):
    try:
        ok, detail = controls()[name]()
        return {"ok": ok, "detail": str(detail)[:200]}
    except Exception as e:
        return {"ok": False, "detail": "%s: %s" % (type(e).__name__, e)}

def run_probe(q):
    out = {}
    for name in attacks(q):
        out[name] = run_one(q, name)
    for name in controls():
        out[name] = run_control(name)
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
            if u.path == "/attempt":
                return self.answer(200, run_one(q, q["name"][0]))
            if u.path == "/control":
                return self.answer(200, run_control(q["name"][0]))
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
