"""Debian's Chromium driven by Playwright, for the browser tests."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"  # Debian's Chromium, never a downloaded browser build


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def launched_chromium():
    """Debian's Chromium driven by Playwright, closed on exit."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium"
    )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextmanager
def fresh_page(browser):
    """A page in a fresh browser profile (no stored UI state), closed on exit."""
    context = browser.new_context(viewport={"width": 1600, "height": 1200})
    context.set_default_timeout(60_000)
    yield context.new_page()
    context.close()
