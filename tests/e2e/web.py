#!/usr/bin/python3
"""The portal's pages in headless Chromium (Debian's chromium,
chromium-driver and python3-selenium), driven by t9-web.sh against a real
portal, a v3 and a v4 node: sign in, create an app, link it on the Nodes
page (another app: the automatic unlink said before the confirmation),
upload the sample package, transport and start it, see it running, read,
search and download its log, create and download a backup, save an
access profile on v3 (what v3 lacks said), migrate it to the v4 node
(plan, start, abort — its journal kept —, start again, rehearse, cut
over, roll back — v3 serves again —, start and cut over once more,
approve the offboarding; its notes served by v4), on v4 add and
remove a custom domain (an uploaded certificate, a refused one, one left
to ACME), an access profile per path, a header, a constant, a scheduled
event, a runtime setting, a variable and the maintenance window,
export Test's settings and
import them into Acceptance (refused without the secret's value, then
taken), rename it, delete another app (its name typed), add a member and
grant it logs on Test in the Team grid, a node's page (Technical
Contact, address, no certificate waiting, an offboarding request by
hand, its activity), create and revoke API keys, sign out. Every change
is read back through the API. A stored name, comment, key name or log
line holding <script> shows as text. The member is offered no actions
but its logs (no settings, a node's admin controls disabled), and the
requests forged from its session are refused (403, without the CSRF
header too). On every page: no console errors, no failed requests,
every form field labelled, and a screenshot (OUT/NN-page.png), the
Environments page also at 360 px wide.

usage: web.py PORTAL_URL OUT_DIR NUBO NODE ROUTER_PORT PACKAGE V4_NODE V4_ROUTER_PORT
The CLI (NUBO, with NUBO_URL and NUBO_API_KEY of the admin in the
environment) makes what the pages do not: users, a second app, a constant.
"""
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request

import chromium
from selenium.common.exceptions import (NoSuchElementException,
                                        StaleElementReferenceException,
                                        TimeoutException)
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

URL, OUT, NUBO, NODE, ROUTER, PKG, NODE4, ROUTER4 = sys.argv[1:9]
ADMIN = ("admin@nubo.localhost", "adminpass1")
EVIL = "<script>window.pwned=1</script>"
passed = failed = 0
shots = 0


def ok(what, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok - " + what)
    else:
        failed += 1
        print("not ok - " + what + (": " + str(detail)[:300] if detail else ""))
    return cond


downloads = tempfile.mkdtemp(prefix="nubo-web-dl.")
d = chromium.start(downloads)


def wait(cond, secs=20, what="the page"):
    try:
        return WebDriverWait(d, secs, poll_frequency=0.2).until(cond)
    except TimeoutException:
        ok("waiting for " + what, False, "timed out after %d s" % secs)
        return None


def css(sel):
    return d.find_elements(By.CSS_SELECTOR, sel)


def text_of(sel):
    """The visible text of what sel matches, read at once (the page
    redraws while a job runs); "" when all of it is blank (two empty
    alerts must not read as " ", which a wait takes for an answer)."""
    return d.execute_script(
        "return [...document.querySelectorAll(arguments[0])]"
        ".map((e) => e.innerText.trim()).filter((t) => t).join(' ')", sel)


urls = {}


def drain():
    """Console errors and failed requests since the last call."""
    errors = [l["message"] for l in d.get_log("browser")
              if l["level"] == "SEVERE"]
    failed_req = []
    for l in d.get_log("performance"):
        m = json.loads(l["message"])["message"]
        p = m["params"]
        if m["method"] == "Network.requestWillBeSent":
            urls[p["requestId"]] = p["request"]["url"]
        elif m["method"] == "Network.responseReceived":
            r = p["response"]
            if r["status"] >= 400:
                failed_req.append("%d %s" % (r["status"], r["url"]))
        elif m["method"] == "Network.loadingFailed" and not p.get("canceled"):
            url = urls.get(p["requestId"], "?")
            # the page's requests only: Chromium's own (its services)
            # go elsewhere and are none of the page's business
            if url.startswith("http://127.0.0.1"):
                failed_req.append("failed %s %s" % (p.get("errorText"), url))
    return errors, failed_req


def unlabelled():
    """Form fields without a label: no <label for>, no wrapping label,
    no aria-label(ledby)."""
    return d.execute_script("""
      const bad = [];
      for (const el of document.querySelectorAll('input, select, textarea')) {
        if (el.type === 'hidden') continue;
        const named = (el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]'))
          || el.closest('label') || el.getAttribute('aria-label')
          || el.getAttribute('aria-labelledby');
        if (!named) bad.push(el.outerHTML.slice(0, 80));
      }
      return bad;""")


def page_check(name, expect_refused=()):
    """The checks of every page, and its screenshot."""
    global shots
    time.sleep(0.3)     # late requests of the page show in the logs
    errors, bad = drain()
    bad = [b for b in bad if not any(x in b for x in expect_refused)]
    ok("%s: no console errors" % name, not errors or bool(expect_refused)
       and all(any(x in e for x in ("401", "403")) for e in errors), errors)
    ok("%s: no failed requests" % name, not bad, bad)
    ok("%s: every form field has a label" % name, not unlabelled(), unlabelled())
    ok("%s: the page drew (no 'Something went wrong')" % name,
       "Something went wrong" not in text_of("h1"), text_of("main")[:200])
    ok("%s: no injected script ran" % name,
       d.execute_script("return window.pwned === undefined"))
    shots += 1
    d.save_screenshot(os.path.join(OUT, "%02d-%s.png" % (shots, name)))


def go(hash_):
    """Open a page and wait until the page says it drew it (main's
    data-rendered is its hash): the page before may look alike."""
    if d.current_url == URL + "/" + hash_:
        d.refresh()         # the same hash: no navigation otherwise
    else:
        d.get(URL + "/" + hash_)
    wait(lambda _: d.execute_script(
        "return document.getElementById('main').dataset.rendered") == hash_,
        what=hash_ or "/")


def signin(email, password):
    go("#/signin")
    wait(EC.presence_of_element_located((By.CSS_SELECTOR, "input[type=email]")))
    css("input[type=email]")[0].send_keys(email)
    css("input[type=password]")[0].send_keys(password)
    css("form button[type=submit]")[0].click()


def click(xpath):
    """Click what xpath names; found again when the page redrew it just
    then (a live view redraws while a job runs)."""
    for _ in range(10):
        try:
            d.find_element(By.XPATH, xpath).click()
            return
        except (StaleElementReferenceException, NoSuchElementException):
            time.sleep(0.3)
    d.find_element(By.XPATH, xpath).click()


def downloaded(before, secs=30):
    """The file a download added to the download folder once Chromium
    finished it, or None. While it downloads, Chromium holds the final
    name as an empty placeholder beside its partial file (.crdownload or
    hidden)."""
    for _ in range(secs * 5):
        names = set(os.listdir(downloads)) - before
        new = [f for f in names if not f.endswith(".crdownload") and not f.startswith(".")]
        partial = [f for f in names if f not in new]
        if new and not partial and os.path.getsize(os.path.join(downloads, new[0])) > 0:
            return os.path.join(downloads, new[0])
        time.sleep(0.2)
    return None


def cli(*args):
    return subprocess.run([NUBO, *args], check=True, capture_output=True,
                          text=True).stdout


def api_get(path):
    """GET /api/v1 + path as the admin (the CLI's key): what a page did,
    read back through the API."""
    req = urllib.request.Request(
        os.environ["NUBO_URL"] + "/api/v1" + path,
        headers={"Authorization": "Bearer " + os.environ["NUBO_API_KEY"]})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def settings_of(env):
    return api_get("/apps/webshop/environments/%s/settings" % env)["settings"]


def cert_for(domain, days=30):
    """A self-signed certificate for domain and its key: two PEM files."""
    d = tempfile.mkdtemp(prefix="nubo-web-cert.")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", d + "/key.pem", "-out", d + "/cert.pem",
                    "-days", str(days), "-subj", "/CN=" + domain,
                    "-addext", "subjectAltName=DNS:" + domain],
                   check=True, capture_output=True)
    return d + "/cert.pem", d + "/key.pem"


def form_alert(label):
    """The error shown on the action form whose button says label."""
    return text_of("form[aria-labelledby='t-%s'] [role=alert]" %
                   "".join(c if c.isalpha() else "-" for c in label.lower()))


def submit(label, **fields):
    """Fill the named inputs (file inputs get a path) and press label."""
    for name, value in fields.items():
        el = css("input[name=%s]" % name)[0]
        if el.get_attribute("type") != "file":
            el.clear()
        el.send_keys(value)
    click("//button[normalize-space()='%s']" % label)


t0 = time.time()
try:
    # --- sign in -----------------------------------------------------------
    go("")
    wait(EC.presence_of_element_located((By.CSS_SELECTOR, "input[type=email]")),
         what="the sign-in form")
    ok("signed out: the sign-in page", "Sign in" in text_of("h1"))
    page_check("signin")
    signin(ADMIN[0], "wrong-password")
    wait(lambda _: text_of("[role=alert]"), what="the refusal")
    ok("a wrong password: the error where the form is",
       "wrong email or password" in text_of("form [role=alert]"),
       text_of("form [role=alert]"))
    page_check("signin-refused", expect_refused=("/api/v1/session",))
    css("input[type=password]")[0].send_keys(ADMIN[1])
    css("form button[type=submit]")[0].click()
    wait(lambda _: "Apps" in text_of("h1"), what="the apps page")
    ok("signed in: the apps page", text_of("h1") == "Apps", text_of("h1"))
    ok("the header names who is signed in", ADMIN[0] in text_of("#who"))
    cookies = {c["name"]: c for c in d.get_cookies()}
    ok("the session cookie is HttpOnly and SameSite=Strict",
       cookies.get("nubo_session", {}).get("httpOnly") is True and
       cookies["nubo_session"].get("sameSite") == "Strict", cookies)
    ok("the page cannot read the session cookie",
       "nubo_session" not in d.execute_script("return document.cookie"))
    page_check("apps")

    # --- create an app whose name holds <script> -------------------------
    css("input[name=subdomain]")[0].send_keys("webshop")
    css("input[name=name]")[0].send_keys("Web " + EVIL)
    css("form button[type=submit]")[0].click()
    wait(lambda _: "Environments" in text_of("nav.tabs"), what="the app page")
    ok("the new app's page", d.current_url.endswith("#/apps/webshop"), d.current_url)
    ok("a name holding <script> is shown as text",
       text_of("h1") == "Web " + EVIL, text_of("h1"))
    ok("no script element came from the data (only the page's early.js and app.js)",
       sorted(re.sub(r".*/", "", s.get_attribute("src") or "(inline)") for s in css("script"))
       == ["app.js", "early.js"], [s.get_attribute("outerHTML") for s in css("script")])
    ok("not linked: the page says where to link it",
       "link it to a node on the Nodes page" in text_of("main"), text_of("main")[:200])
    page_check("app-unlinked")

    # --- link it on the Nodes page ------------------------------------------
    go("#/nodes")
    wait(lambda _: css("table"), what="the nodes")
    ok("the node is listed, no app yet",
       NODE in text_of("tbody") and "available" in text_of("tbody"), text_of("tbody"))
    page_check("nodes")
    Select(css("select[name=app]")[0]).select_by_value("webshop")
    click("//button[normalize-space()='Link to %s']" % NODE)
    wait(lambda _: "Linked webshop" in text_of("tbody") or text_of("tbody .error"),
         20, "the link")
    ok("linked on the Nodes page", "Linked webshop to " + NODE in text_of("tbody"),
       text_of("tbody"))
    ok("the node now serves webshop", "webshop" in text_of("tbody td:nth-child(5)"),
       text_of("tbody"))
    # another app of the admin: the automatic unlink is said before the
    # confirmation, and cancelling changes nothing
    cli("apps", "create", "other", "--no-sandbox")
    go("#/nodes")
    wait(lambda _: css("select[name=app]"), what="the nodes again")
    Select(css("select[name=app]")[0]).select_by_value("other")
    click("//button[normalize-space()='Link to %s']" % NODE)
    wait(lambda _: text_of("tbody [role=alert]"), what="the confirmation")
    ok("linking another app says what it unlinks and wipes, before it is done",
       "Linking other unlinks webshop and wipes" in text_of("tbody [role=alert]"),
       text_of("tbody [role=alert]"))
    page_check("nodes-confirm-unlink")
    click("//button[normalize-space()='Cancel']")
    ok("cancelled: still linked to webshop",
       json.loads(cli("nodes", "show", NODE, "--json")).get("app") == "webshop")

    # --- upload --------------------------------------------------------------
    go("#/apps/webshop/packages")
    wait(lambda _: css("input[type=file]"), what="the upload form")
    ok("an empty repository", "No packages yet" in text_of("main"))
    css("input[type=file]")[0].send_keys(PKG)
    css("form button[type=submit]")[0].click()
    wait(lambda _: "Uploaded" in text_of("[role=status]") or text_of("form [role=alert]"),
         30, "the upload")
    ok("upload: done", "Uploaded notes-1.0.0" in text_of("[role=status]"),
       text_of("form [role=alert]") or text_of("[role=status]"))
    ok("upload: the progress bar is full",
       css("progress")[0].get_attribute("value") == "100")
    ok("upload: listed", "notes" in text_of("table") and "1.0.0" in text_of("table"))
    page_check("packages")
    before = set(os.listdir(downloads))
    click("//button[@aria-label='Download notes-1.0.0']")
    got = downloaded(before)
    ok("package download: the same bytes as uploaded", got is not None and
       open(got, "rb").read() == open(PKG, "rb").read(), got)

    # --- transport, start, running ----------------------------------------
    go("#/apps/webshop/environments")
    wait(lambda _: css("table"), what="the environments")
    ok("three environments", len(css("tbody tr")) == 3, len(css("tbody tr")))
    Select(d.find_element(By.ID, css("select[name=package]")[0].get_attribute("id"))).select_by_value("notes-1.0.0")
    click("//button[normalize-space()='Transport to Test']")
    wait(lambda _: "Transport: done" in text_of("[data-env-status]") or
         "failed" in text_of("[data-env-status]") or "refused" in text_of("[data-env-status]"),
         60, "the transport")
    ok("transport: done", "Transport: done" in text_of("[data-env-status]"),
       text_of("[data-env-status]"))
    row = lambda: d.find_element(By.XPATH, "//tbody/tr[td[1][normalize-space()='Test']]")
    ok("transport: the package is deployed", "notes-1.0.0" in row().text, row().text)
    # a constant the app prints in its log at start (the Logs tab below)
    cli("settings", "set-constant", "webshop", "Test", "Greeting", EVIL)
    click("//button[@aria-label='Start Test']")
    wait(lambda _: "Start: done" in text_of("[data-env-status]") or
         "failed" in text_of("[data-env-status]"), 90, "the start")
    ok("start: done", "Start: done" in text_of("[data-env-status]"),
       text_of("[data-env-status]"))
    errors, bad = drain()
    jobs = [u for u in urls.values() if "/api/v1/jobs/" in u]
    ok("the job was followed by long polling (GET /jobs/{id}?wait=&revision=)",
       any("?wait=25&revision=" in u for u in jobs), jobs)
    ok("the start: no console errors, no failed requests",
       not errors and not bad, errors + bad)
    ok("Test is running, 1 of 1 instances",
       "running" in row().text and "1 of 1" in row().text, row().text)
    link = row().find_elements(By.CSS_SELECTOR, "a")
    ok("Test's URL is shown", link and "webshop-test." in link[0].text,
       [a.text for a in link])
    req = urllib.request.Request("http://127.0.0.1:%s/healthz" % ROUTER,
                                 headers={"Host": "webshop-test.nubo.localhost"})
    # the node answers once nginx reloaded, but on a loaded machine an old
    # worker may take a connection for a moment (lib.sh,
    # route_status_becomes): 10 s to answer
    for _ in range(50):
        try:
            st = urllib.request.urlopen(req, timeout=10).status
        except Exception as e:     # noqa: BLE001 — reported as the check
            st = e
        if st == 200:
            break
        time.sleep(0.2)
    ok("the app answers through the node's router", st == 200, st)
    click("//button[normalize-space()='Maintenance page on for Acceptance']")
    wait(lambda _: "Maintenance page on" in text_of("[data-env-status]") or
         "refused" in text_of("[data-env-status]"), 20, "the maintenance page")
    ok("the maintenance page switched on for Acceptance, said in its row",
       "maintenance page" in d.find_element(
           By.XPATH, "//tbody/tr[td[1][normalize-space()='Acceptance']]").text,
       text_of("[data-env-status]"))
    click("//button[normalize-space()='Maintenance page off for Acceptance']")
    wait(lambda _: "Maintenance page off" in text_of("[data-env-status]"), 20, "the maintenance page off")
    ok("Clean and Scale offered to the Technical Contact",
       css("button[aria-label='Clean Test']") and "Scale Test" in text_of("tbody button"))
    page_check("environments")
    d.set_window_size(360, 800)
    go("#/apps/webshop/environments")
    wait(lambda _: css("table"), what="the environments at 360 px")
    widths = d.execute_script("""
      return [document.documentElement.scrollWidth].concat(
        [...document.querySelectorAll('.table-wrap')].map((e) => e.scrollWidth - e.clientWidth));""")
    ok("360 px: nothing wider than the window, no table to scroll sideways",
       widths[0] <= 360 and all(w <= 0 for w in widths[1:]), widths)
    page_check("environments-360px")
    d.set_window_size(1200, 900)

    # --- logs: a line holding <script>, search, download ---------------------
    go("#/apps/webshop/logs")
    wait(lambda _: css("pre.log"), what="the logs page")
    Select(css("select[name=environment]")[0]).select_by_value("Test")
    wait(lambda _: "greeting: " in text_of("pre.log"), 30, "the app's log lines")
    ok("a log line holding <script> is shown as text",
       "greeting: " + EVIL in text_of("pre.log"), text_of("pre.log")[-300:])
    ok("the log shows the app's start", "listening on" in text_of("pre.log"))
    css("input[name=search]")[0].send_keys("greeting")
    wait(lambda _: "match" in text_of("main [role=status]"), what="the search")
    ok("search: only the matching lines",
       text_of("pre.log").strip().endswith(EVIL) and
       all("greeting" in l for l in text_of("pre.log").strip().split("\n")),
       text_of("pre.log")[:300])
    page_check("logs")
    before = set(os.listdir(downloads))
    click("//button[normalize-space()='Download']")
    got = downloaded(before)
    ok("logs: downloaded as webshop-Test.log",
       got is not None and got.endswith("webshop-Test.log"), os.listdir(downloads))
    if got:
        ok("logs: the download holds the lines",
           "greeting: " + EVIL in open(got, encoding="utf-8", errors="replace").read())
    # followed live: a restart's lines show without a reload, each read
    # held by the portal until there are new lines (long polling)
    n0 = text_of("pre.log").count("greeting: ")
    cli("envs", "restart", "webshop", "Test")
    wait(lambda _: text_of("pre.log").count("greeting: ") > n0, 30,
         "the restart's lines in the followed log")
    ok("logs: a restart's lines show without a reload",
       text_of("pre.log").count("greeting: ") > n0, text_of("pre.log")[-300:])
    errors, bad = drain()
    ok("logs followed: no console errors, no failed requests", not errors and not bad, errors + bad)
    ok("logs: followed by long polling (GET …/logs?offset=N&wait=25)",
       any("/logs?offset=" in u and "&wait=25" in u for u in urls.values()),
       [u for u in urls.values() if "/logs" in u][-3:])

    # --- a one-off run: its output as text, its exit status; a second
    # run's failure said ------------------------------------------------
    go("#/apps/webshop/run")
    wait(lambda _: css("input[name=run_command]"), what="the run page")
    Select(css("select[name=environment]")[0]).select_by_value("Test")
    submit("Run", run_command="echo \"$((6 * 7)) %s\"; echo to stderr >&2; pwd" % EVIL)
    wait(lambda _: "Exited" in text_of("main [role=status]") or form_alert("Run"), 60, "the run's end")
    out = text_of("pre.log")
    ok("run: the command's output shown as text, stderr too",
       out.startswith("42 " + EVIL) and "to stderr" in out, out[:300] or form_alert("Run"))
    ok("run: its exit status said", "Exited with status 0" in text_of("main [role=status]"),
       text_of("main [role=status]"))
    submit("Run", run_command="echo failing; exit 3")
    wait(lambda _: "status 3" in text_of("main [role=status]") or form_alert("Run"), 60, "the failing run")
    ok("run: a failing command's status said", "Exited with status 3" in text_of("main [role=status]") and
       text_of("pre.log").strip() == "failing", text_of("main [role=status]") + " / " + text_of("pre.log"))
    page_check("run")

    # --- backups: create with a <script> comment, download ----------------
    go("#/apps/webshop/backups")
    wait(lambda _: css("input[name=comment]"), what="the backups page")
    Select(css("select[name=environment]")[0]).select_by_value("Test")
    css("input[name=comment]")[0].send_keys(EVIL)
    click("//button[normalize-space()='Create backup']")
    wait(lambda _: "Backup of Test: done" in text_of("form [role=status]") or
         "Backup of Test failed" in text_of("form [role=alert]") or
         "Backup refused" in text_of("form [role=alert]"), 90, "the backup")
    ok("backup: done", "Backup of Test: done" in text_of("form [role=status]"),
       text_of("form [role=alert]"))
    wait(lambda _: css("tbody tr"), what="the backup in the list")
    ok("backup: listed, completed", "completed" in text_of("tbody"), text_of("tbody"))
    ok("a comment holding <script> is shown as text", EVIL in text_of("tbody"),
       text_of("tbody"))
    page_check("backups")
    before = set(os.listdir(downloads))
    css("tbody button")[0].click()      # Full
    got = downloaded(before)
    ok("backup: downloaded", got is not None, os.listdir(downloads))
    if got:
        try:
            with tarfile.open(got) as tf:
                names = tf.getnames()
        except (tarfile.TarError, OSError) as e:
            names = [str(e)]
        ok("backup: the download is a backup archive (.metadata, db/db.backup)",
           "db/db.backup" in names and ".metadata" in names, names[:10])
    page_check("backups-downloaded")

    # upload: a bad archive refused with the node's reason, the downloaded
    # one taken; restore: what it replaces said first, refused while Test runs
    junk = os.path.join(tempfile.mkdtemp(), "junk.tar.gz")
    with open(junk, "wb") as f:
        f.write(os.urandom(3000))
    css("input[name=archive]")[0].send_keys(junk)
    click("//button[normalize-space()='Upload backup']")
    wait(lambda _: "refused" in text_of("form [role=alert]") or
         "Uploaded" in text_of("form [role=status]"), 30, "the bad upload")
    ok("a bad archive is refused, the node's reason shown in the form",
       "The archive was refused" in text_of("form [role=alert]"),
       text_of("form [role=alert]") or text_of("form [role=status]"))
    drain()     # that refusal is the point
    if got:
        rows_before = len(css("tbody tr"))
        css("input[name=archive]")[0].clear()
        css("input[name=archive]")[0].send_keys(got)
        css("input[name=upload_comment]")[0].send_keys("uploaded " + EVIL)
        click("//button[normalize-space()='Upload backup']")
        # (the bad upload's refusal stays until this submit clears it)
        wait(lambda _: "Uploaded: backup" in text_of("form [role=status]"), 60, "the upload")
        ok("the downloaded archive uploads", "Uploaded: backup" in text_of("form [role=status]"),
           text_of("form [role=alert]"))
        wait(lambda _: len(css("tbody tr")) > rows_before, what="the uploaded backup in the list")
        ok("listed as an uploaded backup with its comment as text",
           "uploaded" in text_of("tbody") and "uploaded " + EVIL in text_of("tbody"),
           text_of("tbody"))
    page_check("backups-uploaded")
    click("(//button[normalize-space()='Restore…'])[1]")
    wait(lambda _: "Restore into Test" in text_of("tbody button"), what="the restore confirmation")
    ok("restore: says what it replaces before it runs",
       "replaces the database and the files of Test" in text_of("tbody"), text_of("tbody"))
    page_check("backups-restore-confirm")
    click("//button[normalize-space()='Restore into Test']")
    wait(lambda _: "Restore refused" in text_of("tbody [role=alert]") or
         "Restore into Test: done" in text_of("tbody"), 30, "the restore's answer")
    ok("restore into a running environment: refused where the action was",
       "Restore refused" in text_of("tbody [role=alert]") and
       "environment is running" in text_of("tbody [role=alert]"),
       text_of("tbody [role=alert]"))
    drain()

    # --- settings on v3: what v3 lacks is said; a profile saved -----------
    go("#/apps/webshop/settings")
    wait(lambda _: css("input[name=profile_name]"), what="the settings tab")
    Select(css("select[name=environment]")[0]).select_by_value("Acceptance")
    wait(lambda _: "Acceptance on %s (v3)" % NODE in text_of("main"), what="Acceptance's settings")
    ok("v3: per-path access restrictions said missing, the path fixed at /",
       "per-path restrictions need v4" in text_of("main") and
       css("input[name=profile_path]")[0].get_attribute("readonly") is not None)
    ok("v3: the headers v3 lacks are named, not hidden", "This is a v3 node" in text_of("main"))
    submit("Save profile", profile_name="office", profile_allow="10.0.0.0/8, 192.0.2.7",
           profile_user="tester", profile_password="testpass12")
    wait(lambda _: "office" in text_of("main table") or form_alert("Save profile"),
         what="the saved profile")
    acc = settings_of("Acceptance").get("access", {})
    office = acc.get("profiles", {}).get("office", {})
    ok("v3: the access profile saved (allow list, basic auth user, at /)",
       "10.0.0.0/8" in office.get("allow", []) and "tester" in office.get("basic_auth", {})
       and acc.get("paths") == {"/": "office"}, form_alert("Save profile") or acc)
    page_check("settings-v3")

    # --- migration to v4: plan, start, rehearse, cut over, offboarding -------
    def app_call(router, path, data=None):
        req = urllib.request.Request(
            "http://127.0.0.1:%s%s" % (router, path), data=data,
            headers={"Host": "webshop-test.nubo.localhost",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None
        except (OSError, ValueError) as e:
            return str(e), None

    for i in range(3):
        app_call(ROUTER, "/api/notes", json.dumps(
            {"title": "note %d" % i, "body": "written on v3"}).encode())
    ok("three notes written through the app on v3",
       (app_call(ROUTER, "/api/stats")[1] or {}).get("notes") == 3,
       app_call(ROUTER, "/api/stats"))

    def stats(router):
        """The app's /api/stats through router once it answers (10 s)."""
        st = None
        for _ in range(50):
            st = app_call(router, "/api/stats")
            if st[0] == 200:
                break
            time.sleep(0.2)
        return st

    def plan_and_start(what):
        """Plan a migration to NODE4, start it, wait until copied."""
        Select(css("select[name=target]")[0]).select_by_value(NODE4)
        click("//button[normalize-space()='Plan']")
        wait(lambda _: "Start the migration to" in text_of("main") or
             text_of("main [role=alert]"), 30, what + "'s plan")
        click("//button[normalize-space()='Start the migration to %s']" % NODE4)
        mig_wait("Start the migration")
        wait(lambda _: "Cut over" in text_of("main button"), 30, what + ", copied")

    def mig_wait(what, secs=120):
        wait(lambda _: ("%s: done" % what) in text_of("main [role=status]") or
             text_of("main > div > [role=alert]"), secs, what)
        return ok("migration: %s done" % what.lower(),
                  ("%s: done" % what) in text_of("main [role=status]"),
                  text_of("main [role=alert]"))

    go("#/apps/webshop/migration")
    wait(lambda _: css("select[name=target]"), what="the migration form")
    page_check("migration")
    Select(css("select[name=target]")[0]).select_by_value(NODE4)
    click("//button[normalize-space()='Plan']")
    wait(lambda _: "Start the migration to" in text_of("main") or
         text_of("main [role=alert]"), 30, "the plan")
    ok("the plan: Test with its package, sizes and an estimated downtime",
       "notes-1.0.0" in text_of("main table") and "estimated downtime" in text_of("main"),
       text_of("main [role=alert]") or text_of("main")[:300])
    ok("the plan lists the cutover's steps",
       "first request served by the target" in text_of("main"))
    ok("the plan copies the database by replication, and says how each table is carried",
       "follows the source (PostgreSQL logical replication)" in text_of("main") and
       "replicated (primary key)" in text_of("main table"), text_of("main")[:400])
    page_check("migration-plan")
    click("//button[normalize-space()='Start the migration to %s']" % NODE4)
    mig_wait("Start the migration")
    errors, bad = drain()
    ok("the migration's start followed: no console errors, no failed requests",
       not errors and not bad, errors + bad)
    ok("the migration started replicates (read through the API)",
       [m["method"] for m in api_get("/migrations?app=webshop")["migrations"]] == ["replicate"])
    ok("the migration was followed by long polling (GET /migrations/{id}?wait=&revision=)",
       any("/api/v1/migrations/" in u and "?wait=25&revision=" in u for u in urls.values()),
       [u for u in urls.values() if "/migrations" in u][-3:])
    wait(lambda _: "Cut over" in text_of("main button"), 30, "the copied migration")
    ok("copied: rehearse, cut over and abort offered, no roll back",
       all(b in text_of("main button") for b in ("Rehearse", "Cut over", "Abort")) and
       "Roll back" not in text_of("main button"), text_of("main button"))

    def journal_rows():
        """The journal's rows as [#, phase, step, env, state, attempts,
        started, finished, took, detail]."""
        return d.execute_script("""
          const t = [...document.querySelectorAll('main table')].find((x) =>
            x.caption && x.caption.textContent.startsWith(arguments[0]));
          return t ? [...t.tBodies[0].rows].map((r) => [...r.cells].map((c) => c.innerText)) : [];""",
                                "Journal")

    rows = journal_rows()
    ok("copied: the journal lists each step done, with its start and end times",
       len(rows) >= 4 and all(r[6] and r[7] for r in rows if r[4] == "done") and
       any(r[4] == "done" for r in rows), rows[:3])
    page_check("migration-copied")
    # abort: the migration ends, its journal stays readable, and a new
    # one starts from the plan
    click("//button[normalize-space()='Abort']")
    mig_wait("Abort")
    wait(lambda _: "Earlier migrations" in text_of("main"), 30, "the aborted migration")
    migs = api_get("/migrations?app=webshop")["migrations"]
    ok("abort: the migration is aborted (read through the API)",
       [m["state"] for m in migs] == ["aborted"], migs)
    click("//button[normalize-space()='Journal']")
    wait(lambda _: "Journal of migration" in text_of("main"), what="the aborted migration's journal")
    rows = journal_rows()
    ok("abort: the earlier migration's journal shows its abort steps",
       any(r[1].startswith("abort") for r in rows) and
       all(r[4] in ("done", "skipped") for r in rows if r[1].startswith("abort")), rows[-3:])
    page_check("migration-aborted")
    plan_and_start("the second migration")
    click("//button[normalize-space()='Rehearse']")
    mig_wait("Rehearse")
    wait(lambda _: "Cut over" in text_of("main button"), 30, "the rehearsed migration")
    click("//button[normalize-space()='Cut over']")
    mig_wait("Cut over")
    wait(lambda _: "measured downtime" in text_of("main"), 30, "the cut-over migration")
    ok("cut over: the measured downtime is shown", "measured downtime" in text_of("main"),
       text_of("main")[:300])
    # the page redraws while it polls the migration (main holds only its
    # heading for a moment): wait for the request rather than read once
    off = wait(lambda _: ("Offboarding of node %s" % NODE) in text_of("main"),
               30, "the offboarding request")
    ok("cut over: the offboarding request of %s is shown" % NODE, off,
       text_of("main")[:400])
    ok("cut over: roll back offered, with what it does not carry back",
       "Roll back" in text_of("main button") and "is not carried back" in text_of("main"),
       text_of("main button"))
    page_check("migration-cut-over")
    # roll back: v3 serves again; then a third migration, cut over
    # without a rehearsal, carries on to the offboarding
    click("//button[normalize-space()='Roll back']")
    mig_wait("Roll back")
    wait(lambda _: "Earlier migrations" in text_of("main"), 30, "the rolled-back migration")
    migs = api_get("/migrations?app=webshop")["migrations"]
    ok("roll back: the migration is rolled back (read through the API)",
       [m["state"] for m in migs] == ["aborted", "rolled-back"], migs)
    st = stats(ROUTER)
    ok("roll back: v3 serves the app again with its notes",
       st[0] == 200 and (st[1] or {}).get("notes") == 3, st)
    plan_and_start("the third migration")
    click("//button[normalize-space()='Cut over']")
    mig_wait("Cut over")
    wait(lambda _: ("Offboarding of node %s" % NODE) in text_of("main"), 30, "the offboarding request again")
    click("//button[normalize-space()='Approve the offboarding of %s']" % NODE)
    mig_wait("Approve offboarding")
    for _ in range(60):
        go("#/apps/webshop/migration")
        if "Earlier migrations" in text_of("main"):
            break
        time.sleep(1)
    ok("after the approval the migration is completed",
       "completed" in text_of("main table"), text_of("main")[:300])
    page_check("migration-completed")
    st = stats(ROUTER4)
    ok("the app is served by %s with all its notes" % NODE4,
       st[0] == 200 and (st[1] or {}).get("notes") == 3, st)
    go("#/apps")
    wait(lambda _: css("table"), what="the apps")
    ok("the apps page shows webshop on %s" % NODE4,
       any(NODE4 in r.text for r in css("tbody tr") if "webshop" in r.text),
       text_of("tbody"))

    # --- settings (Environment Details) on v4 ---------------------------------
    go("#/apps/webshop/settings")
    wait(lambda _: css("input[name=constant_name]"), what="the settings tab")
    Select(css("select[name=environment]")[0]).select_by_value("Test")
    wait(lambda _: "on %s (v4)" % NODE4 in text_of("main"), what="Test's settings")
    ok("settings: the constant set on v3 came along, shown as text",
       "Greeting" in text_of("main table") and EVIL in text_of("main table"), text_of("main")[:300])
    css("input[name=var_name]")[0].send_keys("API_TOKEN")
    css("input[name=var_value]")[0].send_keys("hunter2-secret")
    click("//button[normalize-space()='Set variable']")
    wait(lambda _: "API_TOKEN" in text_of("main table"), what="the new variable")
    ok("a secret variable is listed masked, its value nowhere in the page",
       "(secret)" in text_of("main table") and "hunter2" not in d.page_source)
    css("input[name=var_name]")[0].send_keys("1BAD")
    css("input[name=var_value]")[0].send_keys("x")
    click("//button[normalize-space()='Set variable']")
    wait(lambda _: "1BAD" in text_of("main [role=alert]"), what="the refusal")
    ok("a bad variable name: refused with the reason, on its form",
       "1BAD" in text_of("form[aria-labelledby='t-set-variable'] [role=alert]"),
       text_of("main [role=alert]"))
    drain()     # that refusal is the point
    Select(css("select[name=diff_env]")[0]).select_by_value("Acceptance")
    click("//button[normalize-space()='Compare']")
    wait(lambda _: "side by side" in text_of("main"), what="the diff")
    ok("compare with Acceptance: the variable, side by side, masked",
       "env_vars.API_TOKEN" in text_of("main table") and "(secret)" in text_of("main table"),
       text_of("main")[-300:])
    page_check("settings")
    before = set(os.listdir(downloads))
    click("//button[normalize-space()='Export settings']")
    exported = downloaded(before)
    ok("export: Test's settings downloaded as a file",
       exported is not None and exported.endswith("webshop-Test-settings.json"), os.listdir(downloads))

    # every entry of Acceptance's tabs set and removed in the page, each
    # effect read back through the API
    Select(css("select[name=environment]")[0]).select_by_value("Acceptance")
    wait(lambda _: "Acceptance on %s (v4)" % NODE4 in text_of("main"), what="Acceptance's settings on v4")
    crt, key = cert_for("shop.example.test")
    submit("Add domain", domain="shop.example.test", domain_certificate=crt, domain_key=key)
    wait(lambda _: "shop.example.test" in text_of("main table") or form_alert("Add domain"),
         what="the new domain")
    dom = settings_of("Acceptance").get("domains", {})
    ok("domain: added with the uploaded certificate, its key not shown",
       dom.get("shop.example.test", {}).get("certificate", "").startswith("-----BEGIN CERTIFICATE") and
       "(kept, not shown)" in text_of("main table") and "PRIVATE KEY" not in d.page_source,
       form_alert("Add domain") or dom)
    other_crt, other_key = cert_for("other.example.test")
    submit("Add domain", domain="bad.example.test", domain_certificate=other_crt, domain_key=other_key)
    wait(lambda _: form_alert("Add domain"), what="the refused domain")
    ok("domain: a certificate that does not cover it is refused, the reason on the form",
       "bad.example.test" in form_alert("Add domain") and
       "bad.example.test" not in settings_of("Acceptance").get("domains", {}), form_alert("Add domain"))
    drain()     # that refusal is the point
    go("#/apps/webshop/settings")
    Select(css("select[name=environment]")[0]).select_by_value("Acceptance")
    wait(lambda _: "Acceptance on %s (v4)" % NODE4 in text_of("main"), what="Acceptance's settings again")
    submit("Add domain", domain="auto.example.test")
    wait(lambda _: "auto.example.test" in text_of("main table") or form_alert("Add domain"),
         what="the ACME domain")
    ok("domain: without a certificate it is ordered by ACME",
       settings_of("Acceptance").get("domains", {}).get("auto.example.test") == {} and
       "ordered automatically (ACME)" in text_of("main table"), form_alert("Add domain"))
    click("//button[@aria-label='Remove domain shop.example.test']")
    wait(lambda _: "shop.example.test" not in text_of("main table"), what="the removed domain")
    ok("domain: removed", sorted(settings_of("Acceptance").get("domains", {})) == ["auto.example.test"],
       settings_of("Acceptance").get("domains"))

    had_office = "office" in settings_of("Acceptance").get("access", {}).get("profiles", {})
    submit("Save profile", profile_name="admins", profile_allow="192.0.2.0/24", profile_path="/admin")
    wait(lambda _: "admins" in text_of("main table") or form_alert("Save profile"), what="the v4 profile")
    acc = settings_of("Acceptance").get("access", {})
    ok("access: a profile per path on v4", acc.get("profiles", {}).get("admins", {}).get("allow") ==
       ["192.0.2.0/24"] and acc.get("paths", {}).get("/admin") == "admins", form_alert("Save profile") or acc)
    ok("access: the other profiles kept, their basic auth passwords too",
       not had_office or "tester" in acc.get("profiles", {}).get("office", {}).get("basic_auth", {}), acc)
    # a client-certificate CA: kept when the profile is saved again
    # without one; a file that is not a certificate refused on the form
    ca_crt, _ = cert_for("clients.example.test")
    submit("Save profile", profile_name="admins", profile_allow="192.0.2.0/24", profile_path="/admin",
           profile_client_ca=ca_crt)
    wait(lambda _: "required, signed by the CA set" in text_of("main table") or form_alert("Save profile"),
         what="the profile's client CA")
    with open(ca_crt, encoding="ascii") as f:
        ca_pem = f.read()
    got = settings_of("Acceptance").get("access", {}).get("profiles", {}).get("admins", {})
    ok("access: a client-certificate CA set on a profile",
       got.get("client_ca", "").strip() == ca_pem.strip(), form_alert("Save profile") or got)
    submit("Save profile", profile_name="admins", profile_allow="192.0.2.0/25", profile_path="/admin")
    wait(lambda _: "192.0.2.0/25" in text_of("main table") or form_alert("Save profile"), what="the profile saved again")
    got = settings_of("Acceptance").get("access", {}).get("profiles", {}).get("admins", {})
    ok("access: saved again without a file, the profile keeps its CA",
       got.get("allow") == ["192.0.2.0/25"] and got.get("client_ca", "").strip() == ca_pem.strip(), got)
    drain()
    submit("Save profile", profile_name="admins", profile_path="/admin", profile_client_ca=__file__)
    wait(lambda _: form_alert("Save profile"), what="the refused CA")
    got = settings_of("Acceptance").get("access", {}).get("profiles", {}).get("admins", {})
    ok("access: a CA file that is not PEM refused, the reason on the form, nothing changed",
       "client_ca" in form_alert("Save profile") and got.get("allow") == ["192.0.2.0/25"], form_alert("Save profile"))
    drain()
    click("//button[@aria-label='Remove profile admins']")
    wait(lambda _: "admins" not in text_of("main table"), what="the removed profile")
    acc = settings_of("Acceptance").get("access", {})
    ok("access: a removed profile leaves no path naming it",
       "admins" not in acc.get("profiles", {}) and "/admin" not in acc.get("paths", {}), acc)

    submit("Set header", header_name="Referrer-Policy", header_value="no-referrer")
    wait(lambda _: "Referrer-Policy" in text_of("main table"), what="the header")
    ok("header: set", settings_of("Acceptance").get("headers", {}).get("Referrer-Policy") == "no-referrer")
    click("//button[@aria-label='Remove header Referrer-Policy']")
    wait(lambda _: "Referrer-Policy" not in text_of("main table"), what="the removed header")
    ok("header: removed", "Referrer-Policy" not in settings_of("Acceptance").get("headers", {}))

    submit("Set constant", constant_name="Greeting", constant_value="hi there")
    wait(lambda _: "hi there" in text_of("main table"), what="the constant")
    click("//button[@aria-label='Reset constant Greeting']")
    wait(lambda _: "hi there" not in text_of("main table"), what="the reset constant")
    ok("constant: set, then reset to the package's default",
       "Greeting" not in settings_of("Acceptance").get("constants", {}))

    css("input[name=event_enabled]")[0].click()     # off
    submit("Set event", event_name="Cleanup")
    wait(lambda _: "Cleanup" in text_of("main table"), what="the event")
    ok("scheduled event: disabled", settings_of("Acceptance").get("scheduled_events") == {"Cleanup": False})
    click("//button[@aria-label='Enable event Cleanup']")
    wait(lambda _: css("button[aria-label='Disable event Cleanup']"), what="the enabled event")
    ok("scheduled event: enabled from its row",
       settings_of("Acceptance").get("scheduled_events") == {"Cleanup": True})

    submit("Set setting", runtime_name="Http.Timeout", runtime_value="30")
    wait(lambda _: "Http.Timeout" in text_of("main table"), what="the runtime setting")
    ok("runtime: a custom setting set",
       settings_of("Acceptance").get("runtime", {}).get("settings") == {"Http.Timeout": "30"})
    click("//button[@aria-label='Remove runtime setting Http.Timeout']")
    wait(lambda _: "Http.Timeout" not in text_of("main table"), what="the removed runtime setting")
    ok("runtime: removed", not settings_of("Acceptance").get("runtime", {}).get("settings"))

    css("input[name=var_secret]")[0].click()        # not secret
    submit("Set variable", var_name="FEATURE_X", var_value="on")
    wait(lambda _: "FEATURE_X" in text_of("main table"), what="the plain variable")
    ok("variable: a plain one shows its value", "FEATURE_X on" in text_of("main table").replace("\t", " "),
       text_of("main table"))
    click("//button[@aria-label='Remove variable FEATURE_X']")
    wait(lambda _: "FEATURE_X" not in text_of("main table"), what="the removed variable")
    ok("variable: removed", "FEATURE_X" not in settings_of("Acceptance").get("env_vars", {}))
    click("//button[normalize-space()='Set window']")
    wait(lambda _: css("button[aria-label='Remove the maintenance window']"), what="the window")
    win = settings_of("Acceptance").get("maintenance_window") or {}
    ok("maintenance: the weekly window set", (win.get("day"), win.get("start")) == ("monday", "02:00"), win)
    click("//button[@aria-label='Remove the maintenance window']")
    wait(lambda _: "No maintenance window" in text_of("main"), what="the removed window")
    ok("maintenance: the window removed", not settings_of("Acceptance").get("maintenance_window"))
    page_check("settings-edited")

    # import: Test's export lacks its secret, so Acceptance refuses it and
    # keeps its settings; with the secret's value given it is taken whole
    if exported:
        before_import = settings_of("Acceptance")
        submit("Import", settings_file=exported)
        wait(lambda _: form_alert("Import"), what="the refused import")
        ok("import: a file without the secret's value is refused, the reason on the form",
           "API_TOKEN" in form_alert("Import") and settings_of("Acceptance") == before_import,
           form_alert("Import"))
        drain()
        with open(exported, encoding="utf-8") as f:
            doc = json.load(f)
        doc["env_vars"]["API_TOKEN"]["value"] = "imported-secret"
        fixed = os.path.join(tempfile.mkdtemp(), "with-secret.json")
        with open(fixed, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        css("input[name=settings_file]")[0].clear()
        submit("Import", settings_file=fixed)
        wait(lambda _: "API_TOKEN" in text_of("main table") or
             "API_TOKEN" not in form_alert("Import") and form_alert("Import"), what="the import")
        got = settings_of("Acceptance")
        ok("import: Acceptance now has Test's settings (the constant, the secret masked)",
           got.get("constants", {}).get("Greeting") == EVIL and
           got.get("env_vars", {}).get("API_TOKEN", {}).get("secret") is True and
           not got.get("domains"), form_alert("Import") or got)
        page_check("settings-imported")

    # --- manage: rename, delete with the name typed --------------------------
    go("#/apps/webshop/manage")
    wait(lambda _: css("input[name=name]"), what="the manage tab")
    page_check("manage")
    css("input[name=name]")[0].clear()
    css("input[name=name]")[0].send_keys("Web shop")
    click("//button[normalize-space()='Rename']")
    wait(lambda _: text_of("h1") == "Web shop", what="the new name")
    ok("renamed in the page", text_of("h1") == "Web shop", text_of("h1"))
    go("#/apps/other/manage")
    wait(lambda _: css("input[name=confirm_delete]"), what="other's manage tab")
    css("input[name=confirm_delete]")[0].send_keys("othr")
    click("//button[normalize-space()='Delete the app']")
    wait(lambda _: text_of("main [role=alert]"), what="the refusal")
    ok("delete: a mistyped name refuses, where the form is",
       "type other exactly" in text_of("main [role=alert]"), text_of("main [role=alert]"))
    css("input[name=confirm_delete]")[0].clear()
    css("input[name=confirm_delete]")[0].send_keys("other")
    click("//button[normalize-space()='Delete the app']")
    wait(lambda _: d.current_url.endswith("#/apps") and css("tbody"), what="the apps page")
    wait(lambda _: d.execute_script(
        "return document.getElementById('main').dataset.rendered") == "#/apps")
    ok("deleted: gone from the apps", "other" not in [r.text.split()[0] for r in css("tbody tr") if r.text],
       text_of("tbody"))
    page_check("apps-after-delete")

    # --- team: add a member, grant logs on Test in the grid -----------------
    cli("admin", "users", "create", "viewer@example.com", "--password", "viewerpass1")
    go("#/apps/webshop/team")
    wait(lambda _: css("input[name=member_email]"), what="the team tab")
    css("input[name=member_email]")[0].send_keys("viewer@example.com")
    click("//button[normalize-space()='Add member']")
    box = "input[aria-label='logs on Test for viewer@example.com']"
    wait(lambda _: css(box), what="the new member's grid")
    ok("a new member holds nothing",
       not any(b.is_selected() for b in css("section[aria-label*='viewer@example.com'] input[type=checkbox]")))
    css(box)[0].click()
    click("//button[normalize-space()='Save viewer@example.com']")
    wait(lambda _: "Saved the permissions" in text_of("main [role=status]") or
         text_of("main section [role=alert]"), what="the saved grid")
    perms = [m for m in json.loads(cli("members", "list", "webshop", "--json"))
             if m["email"] == "viewer@example.com"]
    ok("the grid saved logs on Test, nothing else",
       perms and {k: v for k, v in perms[0]["permissions"].items() if v} == {"logs": ["Test"]},
       perms)
    page_check("team")

    # --- activity ---------------------------------------------------------
    go("#/apps/webshop/activity")
    wait(lambda _: css("tbody tr"), what="the activity log")
    ok("the activity log shows what was done, by whom",
       "admin@nubo.localhost" in text_of("tbody") and "snapshot" in text_of("tbody").lower(),
       text_of("tbody")[:300])
    page_check("activity")

    # --- platform admin: offboarding requests, a node, a user -------------
    go("#/admin")
    wait(lambda _: css("input[name=node_name]"), what="the platform page")
    ok("the platform page lists the offboarding request, approved",
       NODE in text_of("main table") and "approved" in text_of("main table"),
       text_of("main table")[:300])
    css("input[name=node_name]")[0].send_keys("cloud9")
    click("//button[normalize-space()='Create node']")
    token = wait(lambda _: d.execute_script(
        "const i = document.querySelector('input[name=shown_once]'); return i && i.value")
        or text_of("form [role=alert]").strip(), what="the new node's token") or ""
    ok("a new node's agent token is shown once", len(token) >= 32, token or text_of("form [role=alert]"))
    wait(lambda _: "cloud9" in text_of("main table"), what="the new node in the list")
    css("input[name=user_email]")[0].send_keys("ops@example.com")
    css("input[name=user_password]")[0].send_keys("opspass123")
    click("//button[normalize-space()='Create user']")
    listed = wait(lambda _: "ops@example.com" in text_of("main table"), what="the new user")
    ok("a new user is listed", listed, text_of("form [role=alert]") or text_of("main table")[-300:])
    page_check("platform")

    # --- a node's page: Technical Contact, address, certificate, an
    # offboarding request by hand, its activity --------------------------
    go("#/nodes")
    wait(lambda _: css("a[href='#/nodes/cloud9']"), what="the link to cloud9's page")
    click("//a[@href='#/nodes/cloud9']")
    wait(lambda _: css("input[name=node_tc]") and d.execute_script(
        "return document.getElementById('main').dataset.rendered") == "#/nodes/cloud9", what="cloud9's page")
    ok("node: no other certificate waiting, no trust offered",
       "No other certificate is waiting" in text_of("main") and
       "Trust the new certificate" not in text_of("main button"), text_of("main")[:300])
    submit("Set Technical Contact", node_tc="viewer@example.com")
    wait(lambda _: "viewer@example.com" in text_of("main table") or form_alert("Set Technical Contact"),
         what="the new Technical Contact")
    ok("node: the Technical Contact set", api_get("/nodes/cloud9").get("technical_contact") ==
       "viewer@example.com", form_alert("Set Technical Contact"))
    submit("Set address", node_address="not an address")
    wait(lambda _: form_alert("Set address"), what="the refused address")
    ok("node: a bad address refused, the reason on the form, nothing changed",
       form_alert("Set address") and api_get("/nodes/cloud9").get("address") is None,
       form_alert("Set address"))
    drain()
    submit("Set address", node_address="192.0.2.9")
    wait(lambda _: "192.0.2.9" in text_of("main table"), what="the address")
    ok("node: the address set", api_get("/nodes/cloud9").get("address") == "192.0.2.9")
    submit("Request the offboarding of cloud9", offboard_reason="retired " + EVIL)
    wait(lambda _: "pending" in text_of("main table") or form_alert("Request the offboarding of cloud9"),
         what="the offboarding request")
    reqs = [x for x in api_get("/offboarding-requests")["offboarding_requests"] if x["node"] == "cloud9"]
    ok("node: an offboarding request filed by hand, pending, its reason as text",
       [x["state"] for x in reqs] == ["pending"] and ("retired " + EVIL) in text_of("main table"),
       form_alert("Request the offboarding of cloud9") or reqs)
    ok("node: the activity shows what was done",
       all(a in text_of("main table") for a in ("node.technical-contact", "node.offboarding-request")),
       text_of("main table")[-400:])
    page_check("node")

    # --- API keys: shown once, working, revoked --------------------------------
    def key_status(key):
        req = urllib.request.Request(URL + "/api/v1/me",
                                     headers={"Authorization": "Bearer " + key})
        try:
            return urllib.request.urlopen(req, timeout=10).status
        except urllib.error.HTTPError as e:
            return e.code

    def new_key(name):
        go("#/keys")
        wait(lambda _: css("input[name=name]"), what="the keys page")
        css("input[name=name]")[0].send_keys(name)
        click("//button[normalize-space()='Create key']")
        wait(lambda _: css("input[name=new_key]") or text_of("form [role=alert]"),
             what="the new key")
        got = css("input[name=new_key]")
        if not got:
            return text_of("form [role=alert]")
        key = got[0].get_attribute("value")
        wait(lambda _: key[:12] in text_of("tbody"), what="the new key in the list")
        return key

    kept = new_key("kept " + EVIL)
    ok("a new key is shown once", kept.startswith("nubo_") and len(kept) == 45, kept)
    ok("the page says it is shown once", "shown this once" in text_of("main"))
    ok("the key works", key_status(kept) == 200)
    ok("a key name holding <script> is shown as text", "kept " + EVIL in text_of("tbody"),
       text_of("tbody"))
    page_check("keys-created")
    gone = new_key("to revoke")
    ok("the list shows no secret", kept not in text_of("main table") and
       gone not in text_of("main table"))
    prefix = gone[:12]
    d.find_element(By.CSS_SELECTOR, "button[aria-label='Revoke key %s']" % prefix).click()
    wait(lambda _: "Programs using this key stop working" in text_of("tbody"),
         what="the revoke confirmation")
    click("//button[normalize-space()='Revoke %s…']" % prefix)
    wait(lambda _: "revoked" in text_of("tbody"), what="the revocation")
    ok("revoked: the key is refused", key_status(gone) == 401, key_status(gone))
    ok("revoked: the other key still works", key_status(kept) == 200)
    page_check("keys-revoked")

    # --- sign out -----------------------------------------------------------
    d.find_element(By.ID, "signout").click()
    wait(lambda _: css("input[type=email]"), what="the sign-in page")
    ok("signed out: the sign-in page says so", "signed out" in text_of("main"))
    ok("signed out: the cookie is gone",
       "nubo_session" not in {c["name"] for c in d.get_cookies()})
    ok("signed out: the key made in the browser still works", key_status(kept) == 200)
    go("#/apps/webshop")
    wait(lambda _: css("input[type=email]"), what="the sign-in page")
    ok("signed out: an app page asks to sign in", "Sign in" in text_of("h1"))
    page_check("signed-out")

    # --- a member with only logs on Test sees no actions ------------------------
    signin("viewer@example.com", "viewerpass1")
    wait(lambda _: "Apps" in text_of("h1"), what="the viewer's apps page")
    go("#/apps/webshop/environments")
    wait(lambda _: css("table"), what="the viewer's environments")
    ok("viewer: sees the environments", "running" in text_of("tbody"))
    ok("viewer: no Platform link", not d.find_element(By.ID, "nav-admin").is_displayed())
    ok("viewer: no Start / Stop / Transport offered",
       not css("tbody button") and "view only" in text_of("tbody"),
       [b.text for b in css("tbody button")])
    page_check("viewer-environments")
    go("#/apps/webshop/backups")
    wait(lambda _: "backups permission" in text_of("main"), what="the viewer's backups")
    ok("viewer: no backup actions offered",
       not css("input[name=comment]") and not css("tbody button"))
    page_check("viewer-backups")
    go("#/apps/webshop/settings")
    wait(lambda _: "settings permission" in text_of("main"), what="the viewer's settings tab")
    ok("viewer: no settings controls without the settings permission",
       not css("main form") and not css("main input[type=file]"), text_of("main")[:200])
    go("#/nodes/cloud9")
    wait(lambda _: css("input[name=node_tc]"), what="the viewer's node page")
    ok("viewer (the node's Technical Contact): the admin's controls shown disabled, said whose",
       not css("input[name=node_tc]")[0].is_enabled() and
       not d.find_element(By.XPATH, "//button[normalize-space()='Set address']").is_enabled() and
       "Only a platform admin changes this" in text_of("main"), text_of("main")[:300])
    page_check("viewer-node")
    go("#/apps/webshop/logs")
    wait(lambda _: css("select[name=environment]"), what="the viewer's logs")
    ok("viewer: the logs of Test only (the grid's grant)",
       [o.get_attribute("value") for o in css("select[name=environment] option")] == ["Test"])
    wait(lambda _: "listening on" in text_of("pre.log"), 20, "the viewer's log lines")
    page_check("viewer-logs")
    # the server decides anyway: the same requests forged from the
    # viewer's session are refused
    got = d.execute_async_script("""
      const done = arguments[arguments.length - 1];
      (async () => {
        const me = await (await fetch('/api/v1/me')).json();
        const url = '/api/v1/apps/webshop/environments/Test/snapshots';
        const out = [];
        for (const headers of [{'X-CSRF-Token': me.csrf_token}, {}]) {
          headers['Content-Type'] = 'application/json';
          const r = await fetch(url, {method: 'POST', headers, body: '{}'});
          out.push(r.status, (await r.json()).error.code);
        }
        for (const [method, path, body] of [
            ['PUT', '/api/v1/nodes/cloud9/address', {address: '192.0.2.66'}],
            ['PUT', '/api/v1/apps/webshop/environments/Acceptance/settings/headers/X-Frame-Options',
             {value: 'DENY'}]]) {
          const r = await fetch(path, {method, body: JSON.stringify(body),
            headers: {'X-CSRF-Token': me.csrf_token, 'Content-Type': 'application/json'}});
          out.push(r.status, (await r.json()).error.code);
        }
        done(out);
      })().catch((e) => done(String(e)));""")
    ok("viewer: a forged backup request with the CSRF token is refused (403)",
       got[:2] == [403, "FORBIDDEN"], got)
    ok("viewer: a request without the CSRF header is refused (403)",
       got[2:4] == [403, "CSRF_TOKEN_MISSING"], got)
    ok("viewer: a forged node address and a forged setting are refused (403), nothing changed",
       got[4:] == [403, "FORBIDDEN", 403, "FORBIDDEN"] and
       api_get("/nodes/cloud9").get("address") == "192.0.2.9" and
       "X-Frame-Options" not in settings_of("Acceptance").get("headers", {}), got)
    drain()     # those two refusals are the point, not page errors

    # the session ends elsewhere while the page keeps its hint: the GETs
    # early.js asks for early are refused, the sign-in page shows, and
    # after signing in again an app page is drawn from fresh answers
    d.execute_async_script("""
      const done = arguments[arguments.length - 1];
      (async () => {
        const me = await (await fetch('/api/v1/me')).json();
        await fetch('/api/v1/session', {method: 'DELETE', headers: {'X-CSRF-Token': me.csrf_token}});
        done();
      })().catch((e) => done(String(e)));""")
    go("#/apps/webshop/environments")
    wait(lambda _: css("input[type=email]"), what="the sign-in page after the session ended")
    ok("a session ended elsewhere: the sign-in page", "Sign in" in text_of("h1"), text_of("main")[:200])
    drain()     # the refused early GETs are the point
    css("input[type=email]")[0].send_keys("viewer@example.com")
    css("input[type=password]")[0].send_keys("viewerpass1")
    css("form button[type=submit]")[0].click()
    wait(lambda _: "Apps" in text_of("h1"), what="the apps page after signing in again")
    go("#/apps/webshop/environments")
    wait(lambda _: css("tbody tr"), what="the environments after signing in again")
    ok("signed in again: the environments drawn, no refused answer kept from before",
       "running" in text_of("tbody") and "Sign in" not in text_of("h1"), text_of("main")[:200])
    page_check("signed-in-again")
finally:
    ok("the browser run took %.0f s" % (time.time() - t0), True)
    d.quit()
print("web.py: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
