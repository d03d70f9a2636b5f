"""Fixtures for browser tests: Debian's headless Chromium under Playwright, and where screenshots go.

Chromium is /usr/bin/chromium (``apt-get install chromium``), never a Playwright-downloaded browser. The
console tests themselves live in tests/e2e/test_projection_console.py, so that they share the one running
system of the e2e session (a second ``system`` fixture here would start a second system on the same ports);
they import these fixtures.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / ".local" / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


# Playwright's async API on the test session's event loop: the sync API would leave its own loop
# running in the main thread and break every asyncio test that runs after it.
@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[object]:
    """Headless Debian Chromium under Playwright; skipped (saying why) only if it is not installed."""
    async_api = pytest.importorskip("playwright.async_api", reason="pip package playwright is not installed")
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    async with async_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser) -> AsyncIterator[object]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    opened = await context.new_page()
    yield opened
    await context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
