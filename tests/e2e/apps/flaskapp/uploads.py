"""Uploads: a small Flask app that keeps files users upload in nested
folders (uploads/YYYY/MM/xx/) of $NUBO_FILES_DIR and a row per upload in
PostgreSQL, with a cache and a pid file in its working directory."""
import hashlib
import os
import re
import time
import uuid

import click
import psycopg2
from flask import Flask, abort, jsonify, request, send_file

app = Flask(__name__)
FILES = os.environ["NUBO_FILES_DIR"]
CACHE = os.path.join(os.getcwd(), "cache")
INSTANCE = os.environ.get("NUBO_INSTANCE") or "run"


def db():
    return psycopg2.connect(os.environ["DATABASE_URL"])


def init_db():
    with db() as conn, conn.cursor() as cur:
        # two instances start at once: one creates, the other waits
        cur.execute("SELECT pg_advisory_xact_lock(17)")
        cur.execute("""CREATE TABLE IF NOT EXISTS uploads (
            id serial PRIMARY KEY, path text UNIQUE NOT NULL,
            name text NOT NULL, size bigint NOT NULL, sha256 text NOT NULL,
            instance text NOT NULL, created_at timestamptz DEFAULT now())""")


@app.cli.command("init-db")
def init_db_command():
    """Create the schema."""
    init_db()
    click.echo("schema ready")


@app.cli.command("uploads-count")
def uploads_count_command():
    """Print how many uploads the database holds."""
    with db() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM uploads")
        click.echo("uploads: %d" % cur.fetchone()[0])


@app.get("/health")
def health():
    with open("app.pid") as f:
        pid = f.read().strip()
    return {"ok": True, "pid_file": pid == str(os.getpid()),
            "cache": os.path.isdir(CACHE)}


@app.post("/uploads/<name>")
def upload(name):
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", name):
        abort(400)
    data = request.get_data()
    digest = hashlib.sha256(data).hexdigest()
    uid = uuid.uuid4().hex
    now = time.gmtime()
    rel = os.path.join("uploads", "%04d" % now.tm_year, "%02d" % now.tm_mon,
                       uid[:2], uid + "-" + name)
    path = os.path.join(FILES, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".part", "wb") as f:
        f.write(data)
    os.rename(path + ".part", path)
    # what a framework keeps next to its code: a cache entry per upload
    with open(os.path.join(CACHE, uid), "w") as f:
        f.write(digest)
    with db() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO uploads (path, name, size, sha256, instance)"
                    " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    (rel, name, len(data), digest, INSTANCE))
        upload_id = cur.fetchone()[0]
    return jsonify(id=upload_id, path=rel, sha256=digest, size=len(data),
                   instance=INSTANCE), 201


@app.get("/uploads/<int:upload_id>")
def download(upload_id):
    with db() as conn, conn.cursor() as cur:
        cur.execute("SELECT path FROM uploads WHERE id = %s", (upload_id,))
        row = cur.fetchone()
    if row is None:
        abort(404)
    return send_file(os.path.join(FILES, row[0]),
                     mimetype="application/octet-stream")


@app.get("/check")
def check():
    """Every upload the database lists, read back from the files folder:
    how many there are and which are missing or differ on this instance."""
    with db() as conn, conn.cursor() as cur:
        cur.execute("SELECT path, sha256 FROM uploads ORDER BY id")
        rows = cur.fetchall()
    bad = []
    for rel, digest in rows:
        try:
            with open(os.path.join(FILES, rel), "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != digest:
                    bad.append(rel)
        except OSError as e:
            bad.append("%s: %s" % (rel, e.strerror))
    return jsonify(instance=INSTANCE, uploads=len(rows), bad=bad,
                   cached=len(os.listdir(CACHE)))
