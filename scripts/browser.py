"""Headless Chromium for the page `minitx view` writes, with the network blocked.

tests/test_view.py and scripts/make_view_screenshot.py open pages with it. We drive the
system's own Chromium (Debian's package `chromium`, /usr/bin/chromium) through the Python
package playwright (the `test` extra); playwright would download a browser of its own only if
told to (`playwright install`), which we never do.

    with offline_page() as (page, log):
        page.goto(path.as_uri())
        ...
    log.errors     console errors and uncaught exceptions, as text
    log.requests   every URL the page asked for, file:// included; every other one was refused
"""

import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# The flags that let Chromium run headless here as root, with no sandbox, and keep it from
# reaching for the network on its own (updates, sync, first-run pages); a fresh profile each
# time (playwright gives every launch an empty --user-data-dir).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path():
    """The system Chromium, or None."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def why_no_browser():
    """None when a page can be opened here; else one line saying what is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is missing (.venv/bin/pip install -e '.[test]')"
    if chromium_path() is None:
        return "no Chromium on this machine (Debian: apt-get install chromium)"
    return None


@dataclass
class Log:
    errors: list = field(default_factory=list)
    requests: list = field(default_factory=list)

    def outside(self):
        """The requests that were not for a local file."""
        return [url for url in self.requests if not url.startswith("file://")]


@contextmanager
def offline_page(width=1280, height=900):
    """A fresh page in headless Chromium that may load file:// URLs and nothing else."""
    from playwright.sync_api import sync_playwright

    log = Log()

    def route(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=FLAGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            context.route("**/*", route)
            page = context.new_page()
            page.on("request", lambda request: log.requests.append(request.url))
            page.on("console", lambda message: message.type == "error" and log.errors.append(message.text))
            page.on("pageerror", lambda error: log.errors.append(str(error)))
            yield page, log
        finally:
            browser.close()
