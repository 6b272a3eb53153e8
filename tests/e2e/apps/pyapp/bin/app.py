import http.server, json, os, subprocess, sys

def psql(sql):
    r = subprocess.run(["psql", os.environ["DATABASE_URL"], "-Atqc", sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())
    return r.stdout.strip()

class H(http.server.BaseHTTPRequestHandler):
    def answer(self, code, doc):
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        try:
            if self.path == "/health":
                return self.answer(200, {"ok": True})
            if self.path.startswith("/raw/"):
                # bytes as given (hex), whatever they are: apps print anything
                sys.stdout.flush()
                sys.stdout.buffer.write(b"raw: " + bytes.fromhex(self.path[5:]) + b"\n")
                sys.stdout.buffer.flush()
            if self.path.startswith("/add/"):
                psql("CREATE TABLE IF NOT EXISTS notes (t text)")
                psql("INSERT INTO notes VALUES ('%s')" % self.path[5:].replace("'", ""))
            if self.path.startswith("/file/"):
                with open(os.path.join(os.environ["NUBO_FILES_DIR"], "f.txt"), "a") as f:
                    f.write(self.path[6:] + "\n")
            count = None
            if self.path.startswith(("/add/", "/count")):
                count = int(psql("SELECT count(*) FROM notes") or 0) if psql(
                    "SELECT to_regclass('notes') IS NOT NULL") == "t" else 0
            self.answer(200, {"port": os.environ["PORT"],
                              "instance": os.environ.get("NUBO_INSTANCE"),
                              "app": os.environ["NUBO_APP"],
                              "env": os.environ["NUBO_ENV"],
                              "files": os.environ["NUBO_FILES_DIR"],
                              "user": os.getuid(),
                              "db": psql("SELECT current_database()"),
                              "count": count})
        except Exception as e:
            self.answer(500, {"error": str(e)})

    def log_message(self, fmt, *args):
        print("request", self.path, flush=True)

print("pyapp listening on port", os.environ["PORT"], flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
