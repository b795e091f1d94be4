"""Headless Chromium for browser tests, driven over its DevTools protocol (Playwright).

The browser is the system's Chromium (Debian's ``chromium`` package: ``apt-get install
chromium``; ``.ci/run`` installs it when it is missing), never one Playwright downloads:
``playwright install`` is not part of the install. Playwright talks to it over the DevTools
protocol, so a test waits for what it checks (the elements a page draws after its own
``fetch`` calls), with a bounded timeout, instead of a fixed (virtual) time budget. Each
browser runs with its own throw-away profile and no background requests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Binary names of Chromium-family browsers, in order of preference.
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Playwright already turns off sync, component updates, background networking and the
# first-run UI, and runs without the sandbox (CI runs as root); these are the rest.
FLAGS = ("--disable-gpu", "--disable-quic", "--disable-dev-shm-usage", "--hide-scrollbars")
WINDOW = {"width": 1600, "height": 1000}
LAUNCH_TIMEOUT_S = 120  # a few seconds on an idle machine; much more on 2 busy cores
PAGE_TIMEOUT_S = 120  # the page's load, then what the caller waits for


class BrowserError(RuntimeError):
    """Chromium did not produce what was asked."""


def find_chromium() -> str | None:
    """The path of a Chromium-family browser, ``$CHROMIUM`` first; ``None`` if there is none."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_chromium() -> str:
    """The browser path, or fail (under CI) / skip (elsewhere) with how to install it."""
    path = find_chromium()
    if path is None:
        message = (
            "headless Chromium not found (looked for $CHROMIUM, " + ", ".join(CANDIDATES) + "): "
            "install it with `apt-get install -y chromium` (.ci/run does this in CI)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


class Browser:
    """One headless Chromium; :meth:`render` opens a page in a fresh context each time."""

    def __init__(self, chromium: str, browser) -> None:
        self.chromium = chromium
        self._browser = browser

    def render(
        self,
        url: str,
        ready: str,
        count: int = 1,
        screenshot: Path | None = None,
        timeout_s: float = PAGE_TIMEOUT_S,
    ) -> str:
        """The DOM of ``url`` once at least ``count`` elements match the CSS selector ``ready``.

        Waits (at most ``timeout_s``) for the page to load, then for those elements, which a
        page may draw only after its own requests answer. ``screenshot``: a PNG of the
        window, taken then. A page that does not get there is a :class:`BrowserError` that
        says how far it got.
        """
        from playwright.sync_api import Error as PlaywrightError

        context = self._browser.new_context(viewport=WINDOW)
        try:
            page = context.new_page()
            page.set_default_timeout(timeout_s * 1000)
            try:
                page.goto(url, wait_until="load")
                page.wait_for_function(
                    "([selector, count]) => document.querySelectorAll(selector).length >= count",
                    arg=[ready, count],
                )
            except PlaywrightError as error:
                drawn = _count(page, ready)
                raise BrowserError(
                    f"{url}: waited {timeout_s:g} s for {count} element(s) matching {ready!r}, "
                    f"found {drawn}: {error.message.splitlines()[0]}\n"
                    f"page: {_content(page)[:2000]}"
                ) from error
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.unlink(missing_ok=True)
                # Finite CSS animations (kedro-viz's panels fading in) shown finished.
                page.screenshot(path=str(screenshot), animations="disabled")
                if screenshot.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
                    raise BrowserError(f"no PNG screenshot of {url} in {screenshot}")
            return page.content()
        finally:
            context.close()


def _count(page, selector: str) -> int | str:
    try:
        return page.evaluate("(selector) => document.querySelectorAll(selector).length", selector)
    except Exception as error:  # the page itself is gone: say so in the message
        return f"unknown ({error})"


def _content(page) -> str:
    try:
        return page.content()
    except Exception as error:
        return f"unavailable ({error})"


@contextlib.contextmanager
def launch(chromium: str) -> Iterator[Browser]:
    """Start ``chromium`` headless under Playwright; closed (with its processes) after."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=chromium,
                headless=True,
                args=list(FLAGS),
                timeout=LAUNCH_TIMEOUT_S * 1000,
            )
        except PlaywrightError as error:
            raise BrowserError(f"{chromium} did not start under Playwright: {error}") from error
        try:
            yield Browser(chromium, browser)
        finally:
            browser.close()
