"""Headless Chromium for the web tests and bench/web: Debian's chromium
through chromium-driver (python3-selenium), its profile and downloads in
fresh folders below TMPDIR, the console and the network (the DevTools
performance log) recorded."""
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service


def start(downloads=None, extra_args=(), network_log=True):
    """A new headless Chromium (1200×900); downloads go to downloads;
    extra_args: more command-line switches; network_log=False leaves the
    DevTools network recording off (it slows every request down)."""
    o = Options()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-dev-shm-usage", "--window-size=1200,900",
              "--no-first-run", "--disable-extensions",
              "--disable-background-networking", "--disable-sync",
              "--disable-component-update",
              "--user-data-dir=" + tempfile.mkdtemp(prefix="chromium-profile."),
              *extra_args):
        o.add_argument(a)
    if downloads:
        o.add_experimental_option("prefs", {
            "download.default_directory": downloads,
            "download.prompt_for_download": False,
        })
    logs = {"browser": "ALL"}
    if network_log:
        logs["performance"] = "ALL"
    o.set_capability("goog:loggingPrefs", logs)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.set_page_load_timeout(30)
    return d
