import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = os.path.join(os.environ.get("NUBO_FILES_DIR", "/tmp"), "events.log")


class H(BaseHTTPRequestHandler):
    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            return self.reply(200, {"ok": True})
        if self.path == "/events":
            try:
                with open(LOG) as f:
                    names = f.read().split()
            except FileNotFoundError:
                names = []
            return self.reply(200, {n: names.count(n) for n in set(names)})
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        return self.reply(200, {"path": self.path, "env": env})

    def do_POST(self):
        if self.path.startswith("/_nubo/events/"):
            with open(LOG, "a") as f:
                f.write(self.path[len("/_nubo/events/"):] + "\n")
            return self.reply(200, {"ran": True})
        return self.reply(404, {})

    def log_message(self, *a):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
