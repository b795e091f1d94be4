"""Headless Chromium for browser tests: find the binary, screenshot a page, dump its DOM.

Debian's ``chromium`` package (``apt-get install chromium``; ``.ci/run`` installs it when it
is missing). Each call runs a fresh browser with its own throw-away profile and no network
access beyond the page asked for (no sync, no component updates, no background requests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# Binary names of Chromium-family browsers, in order of preference.
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)
WINDOW = "1600,1000"
# Virtual time the page gets to fetch its data and draw (the clock waits for pending
# network requests, so a slow server does not cut the page short).
VIRTUAL_TIME_BUDGET_MS = 20_000
TIMEOUT_S = 120


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


def _run(chromium: str, url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            chromium,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW}",
            f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
            *args,
            url,
        ]
        try:
            result = subprocess.run(command, capture_output=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as error:
            raise BrowserError(
                f"{chromium} did not finish within {TIMEOUT_S} s on {url}"
            ) from error
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace")[-2000:]
        raise BrowserError(f"{chromium} exited with {result.returncode} on {url}:\n{tail}")
    return result


def _document(result: subprocess.CompletedProcess[bytes], chromium: str, url: str) -> str:
    """The DOM ``--dump-dom`` printed; an error when there is none."""
    dom = result.stdout.decode(errors="replace")
    if "<body" not in dom:
        raise BrowserError(f"{chromium} returned no document for {url}: {dom[:200]!r}")
    return dom


def dump_dom(chromium: str, url: str) -> str:
    """The page's DOM after its scripts ran (``--dump-dom``)."""
    return _document(_run(chromium, url, "--dump-dom"), chromium, url)


def dom_and_screenshot(chromium: str, url: str, path: Path) -> tuple[str, Path]:
    """The page's DOM and a PNG of it at ``path``, from one browser run (one start saved)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    result = _run(chromium, url, "--dump-dom", f"--screenshot={path}")
    if not path.is_file() or path.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        raise BrowserError(f"{chromium} wrote no PNG screenshot of {url} to {path}")
    return _document(result, chromium, url), path
