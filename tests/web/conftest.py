"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, a live server.

No browser is downloaded: ``scripts/services.sh`` installs Debian's ``chromium``
(``RAGCAST_TEST_CHROMIUM`` points elsewhere).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

from tests.client.conftest import LiveServer, serve_in_thread
from tests.conftest import make_settings

CHROMIUM = Path(os.environ.get("RAGCAST_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # media may start without a user gesture (play() follows a click, after a fetch)
    "--autoplay-policy=no-user-gesture-required",
]
VIEWPORT = {"width": 1360, "height": 900}


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """The Playwright driver (shipped inside the Python package)."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium from Debian."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/services.sh (it installs chromium)")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (own storage) that fails the test on any uncaught script error."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_console(message: ConsoleMessage) -> None:
        # The browser logs refused requests itself; the page shows those to the user.
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    page.on("console", on_console)
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A live ragcast server (workers on) with the dashboard at ``/``."""
    with serve_in_thread(make_settings(tmp_path / "server")) as live:
        yield live
