#!/usr/bin/python3
"""t8-tls's step in the browser: a node presented another certificate
than the one the portal pinned; the platform admin sees the waiting key on
the node's page (#/nodes/NODE) and trusts it there. Headless Chromium
(chromium.py) against the test's HTTPS portal, whose certificate comes
from the test's own CA (so Chromium is told to accept it).

usage: web-trust.py PORTAL_URL NODE WAITING_PIN"""
import sys

import chromium
from selenium.common.exceptions import (StaleElementReferenceException,
                                        TimeoutException)
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

URL, NODE, PIN = sys.argv[1:4]
failed = 0


def ok(what, cond, detail=""):
    global failed
    print(("ok - " if cond else "not ok - ") + what +
          ("" if cond or not detail else ": " + str(detail)[:300]))
    failed += 0 if cond else 1
    return cond


def wait(cond, what, secs=20):
    # the page renders again while a condition reads it: an element
    # found a moment before may be gone; ask again
    try:
        return WebDriverWait(d, secs, poll_frequency=0.2,
                             ignored_exceptions=(StaleElementReferenceException,)).until(cond)
    except TimeoutException:
        ok("waiting for " + what, False, "timed out after %d s" % secs)
        return None


def main_text():
    return d.execute_script("return document.getElementById('main').innerText")


d = chromium.start(extra_args=["--ignore-certificate-errors"])
try:
    d.get(URL + "/#/signin")
    wait(lambda _: d.find_elements(By.CSS_SELECTOR, "input[type=email]"), "the sign-in form")
    d.find_element(By.CSS_SELECTOR, "input[type=email]").send_keys("admin@nubo.localhost")
    d.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys("adminpass1")
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(lambda _: "Apps" in d.find_element(By.TAG_NAME, "h1").text, "the apps page")
    d.get(URL + "/#/nodes/" + NODE)
    wait(lambda _: d.execute_script("return document.getElementById('main').dataset.rendered")
         == "#/nodes/" + NODE, "the node's page")
    ok("the node's page shows the key waiting", "presented another certificate" in main_text()
       and PIN in main_text(), main_text()[:400])
    d.find_element(By.XPATH, "//button[normalize-space()='Trust the new certificate']").click()
    wait(lambda _: "No other certificate is waiting" in main_text() or
         d.find_elements(By.CSS_SELECTOR, "main .error[role=alert]") and
         d.find_element(By.CSS_SELECTOR, "main .error[role=alert]").text, "the trust")
    ok("trusted on the page: that key is pinned, none waits",
       "No other certificate is waiting" in main_text() and PIN in main_text(), main_text()[:400])
    errors = [l["message"] for l in d.get_log("browser") if l["level"] == "SEVERE"]
    ok("no console errors", not errors, errors)
finally:
    d.quit()
sys.exit(1 if failed else 0)
