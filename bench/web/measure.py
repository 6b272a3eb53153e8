#!/usr/bin/python3
"""bench/web's driver (see run): headless Chromium through chromium-driver.
usage: measure.py PORTAL_URL FLOOR_URL FLOOR_ROOT"""
import re
import os
import shutil
import statistics
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tests", "e2e"))
import chromium  # noqa: E402

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

PORTAL, FLOOR, ROOT = sys.argv[1:4]
RUNS = int(os.environ.get("RUNS", "11"))
PAGE = "/#/apps/shop/environments"

# no DevTools network recording: it slows each request down, and the
# page makes more requests than the floor; bytes come from the page's
# own Resource Timing instead
d = chromium.start(network_log=False)
# the time of the first environment row, from the navigation's start
d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
  new MutationObserver((_, obs) => {
    if (document.querySelector('tbody tr')) {
      window.__row = performance.now();
      obs.disconnect();
    }
  }).observe(document, {childList: true, subtree: true});"""})


def load(url):
    """Open url from a blank page; ms to the first row, bytes on the wire."""
    d.get("about:blank")
    d.get(url)
    WebDriverWait(d, 30, poll_frequency=0.02).until(
        lambda _: d.execute_script("return window.__row || null"))
    ms = d.execute_script("return window.__row")
    time.sleep(0.2)
    # bytes on the wire: each response's headers and compressed body (0
    # for what the cache answered without asking)
    size = d.execute_script("""
      return performance.getEntriesByType('navigation').concat(
        performance.getEntriesByType('resource'))
        .reduce((n, e) => n + e.transferSize, 0);""")
    return ms, size


def cold(url):
    d.execute_cdp_cmd("Network.clearBrowserCache", {})
    return load(url)


try:
    d.get(PORTAL + "/#/signin")
    WebDriverWait(d, 20).until(lambda _: d.find_elements(By.CSS_SELECTOR, "input[type=email]"))
    d.find_element(By.CSS_SELECTOR, "input[type=email]").send_keys("admin@nubo.localhost")
    d.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys("adminpass1")
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(d, 20).until(lambda _: "Apps" in d.find_element(By.TAG_NAME, "h1").text)

    portal_cold = [cold(PORTAL + PAGE) for _ in range(RUNS)]
    load(PORTAL + PAGE)     # the page as drawn, for the floor below
    if os.environ.get("WEB_BENCH_TRACE"):
        # per resource (ms from the navigation's start): start, connect
        # start and end, request sent, first byte, last byte
        for e in d.execute_script("return performance.getEntriesByType('resource').map("
                                  "(e) => [e.name, Math.round(e.startTime), Math.round(e.connectStart), Math.round(e.connectEnd), Math.round(e.requestStart), Math.round(e.responseStart), Math.round(e.responseEnd)])"):
            print("  trace", *e)
        print("  row", round(d.execute_script("return window.__row")))
        # the page: request sent, first and last byte, DOM interactive
        print("  page", *d.execute_script("const e = performance.getEntriesByType('navigation')[0];"
                                         "return [e.requestStart, e.responseStart, e.responseEnd, e.domInteractive].map(Math.round)"))

    # the floor: the same page as rendered, without scripts, from nginx
    html = d.execute_script("""
      const doc = document.documentElement.cloneNode(true);
      doc.querySelectorAll('script').forEach((s) => s.remove());
      return '<!doctype html>\\n' + doc.outerHTML;""")
    with open(os.path.join(ROOT, "index.html"), "w", encoding="utf-8") as f:
        f.write(re.sub(r'/v/[0-9a-f]+/', '/', html))
    for name in ("style.css", "favicon.svg"):
        with urllib.request.urlopen(PORTAL + "/" + name) as r, \
                open(os.path.join(ROOT, name), "wb") as f:
            shutil.copyfileobj(r, f)
    os.system("chmod -R a+rX " + ROOT)
    floor_cold = [cold(FLOOR + "/index.html") for _ in range(RUNS)]
    # warm loads alternate, so that the machine's moods fall on both
    portal_warm, floor_warm = [], []
    for _ in range(RUNS):
        portal_warm.append(load(PORTAL + PAGE))
        floor_warm.append(load(FLOOR + "/index.html"))
finally:
    d.quit()

med = lambda xs, i: statistics.median(x[i] for x in xs)   # noqa: E731
print("environments page, first row (median of %d loads):" % RUNS)
print("  %-28s %8.1f ms %8.1f kB" % ("portal, cold (empty cache)", med(portal_cold, 0), med(portal_cold, 1) / 1024))
print("  %-28s %8.1f ms %8.1f kB" % ("portal, warm (cached)", med(portal_warm, 0), med(portal_warm, 1) / 1024))
print("  %-28s %8.1f ms %8.1f kB" % ("floor: static, cold", med(floor_cold, 0), med(floor_cold, 1) / 1024))
print("  %-28s %8.1f ms %8.1f kB" % ("floor: static, warm", med(floor_warm, 0), med(floor_warm, 1) / 1024))
print("  warm loads, ms (portal; floor): %s; %s" % (
    " ".join("%.0f" % x[0] for x in portal_warm), " ".join("%.0f" % x[0] for x in floor_warm)))
print("result warm_ratio=%.2f first_kb=%.1f" % (
    med(portal_warm, 0) / med(floor_warm, 0), med(portal_cold, 1) / 1024))
