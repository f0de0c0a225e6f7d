"""Headless Chromium (Debian's `chromium`, driven by Playwright) for the web page tests.

Playwright never downloads a browser here: it drives /usr/bin/chromium, which
`./scripts/test` installs when it is missing. Screenshots go to test-artifacts/browser/,
printed at the end of the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, async_playwright

from tests.support.servers import REPO

CHROMIUM = os.environ.get("QGJOB_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO / "test-artifacts" / "browser"
# axe-core's WCAG 2.1 A/AA rules (contrast, labels, landmarks, names of links and buttons…)
# and its best practices.
AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}


async def assert_accessible(page: Page) -> None:
    """No axe-core violation on the page as it is now."""
    results = await Axe().run(page, options=AXE_OPTIONS)
    assert results.violations_count == 0, f"{page.url}:\n{results.generate_report()}"


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists() and shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"{CHROMIUM} is missing: run ./scripts/test (it installs Debian's chromium) "
            "or `apt-get install -y chromium`"
        )
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SCREENSHOTS.exists() and any(SCREENSHOTS.glob("*.png")):
        terminalreporter.write_line(f"browser screenshots: {SCREENSHOTS}")
