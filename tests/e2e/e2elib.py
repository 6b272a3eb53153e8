"""Small helpers for the Python parts of the end-to-end tests: one
keep-alive HTTP connection to the portal, and store access."""
import http.client
import json
import time
import urllib.parse


class Portal:
    def __init__(self, url):
        self.u = urllib.parse.urlparse(url)
        self.conn = None

    def _connect(self):
        if self.conn:
            self.conn.close()
        self.conn = http.client.HTTPConnection(self.u.hostname, self.u.port,
                                               timeout=60)

    def call(self, method, path, key=None, body=None, raw=None, user=None):
        """One request: (status, parsed JSON body or raw bytes). A path
        under /api/ (a Mendix face, docs/MENDIX-API.md) is sent as it
        is, with user and key as Mendix-Username and Mendix-ApiKey (under
        /api/v4 the key as an MxToken); other paths go under /api/v1 with
        the key as a Bearer token."""
        headers = {}
        mx = path.startswith("/api/")
        if key and path.startswith("/api/v4"):
            headers["Authorization"] = "MxToken " + key
        elif key and mx:
            headers["Mendix-Username"] = user or ""
            headers["Mendix-ApiKey"] = key
        elif key:
            headers["Authorization"] = "Bearer " + key
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self._connect()
                self.conn.request(method, path if mx else "/api/v1" + path,
                                  body=data, headers=headers)
                resp = self.conn.getresponse()
                text = resp.read()
                break
            except (http.client.HTTPException, OSError):
                if attempt:
                    raise
                self._connect()
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = text
        return resp.status, doc


def must(status, doc, want, what):
    """Setup step: exit the test when the portal does not answer want."""
    if status != want:
        raise SystemExit(f"setup failed: {what}: HTTP {status} {doc}")
    return doc


def now_iso(offset=0):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ",
                         time.gmtime(time.time() + offset))


def error_of(doc):
    """(code, message) of an error answer in nubo's shape or a Mendix
    face's ({"errorCode", "errorMessage"}; v4: {"error": {"code": status,
    "x-nubo-code"}}); (None, "") otherwise."""
    if not isinstance(doc, dict):
        return None, ""
    if "errorCode" in doc:
        return doc.get("errorCode"), doc.get("errorMessage") or ""
    err = doc.get("error") or {}
    if not isinstance(err, dict):
        return None, ""
    if isinstance(err.get("code"), int):
        return err.get("x-nubo-code"), err.get("message") or ""
    return err.get("code"), err.get("message") or ""
