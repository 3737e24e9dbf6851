"""A real headless Chromium (Debian's chromium and chromium-driver, driven by Selenium) for
the pages' tests, and the built pages (web/dist) it loads. scripts/setup.sh installs both.

Selenium's calls block, and the ops dashboard a test starts runs on the test's event loop:
`Page` therefore makes every browser call in a worker thread, and waits on conditions that
the browser polls (WebDriverWait), never on sleeps.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.support.ui import WebDriverWait

from region.web import DIST

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE = (412, 860)  # a phone-sized window: the pages must work there


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    chromium = shutil.which("chromium") or CHROMIUM
    driver_bin = shutil.which("chromedriver") or CHROMEDRIVER
    for path, what in ((chromium, "chromium"), (driver_bin, "chromium-driver")):
        if not Path(path).exists():
            pytest.fail(f"{what} is missing: run scripts/setup.sh (Debian's {what} package)")
    if not (DIST / "viewer.js").exists():
        pytest.fail(f"the pages are not built in {DIST}: run scripts/setup.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", f"--window-size={PHONE[0]},{PHONE[1]}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=driver_bin))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The browser, called from a worker thread so that the event loop keeps serving."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    async def open(self, url: str) -> None:
        await asyncio.to_thread(self.driver.get, url)

    async def js(self, script: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.driver.execute_script, script, *args)

    async def until(self, script: str, *args: Any, what: str, timeout_s: float = 20.0) -> Any:
        """Waits until ``script`` returns something truthy; fails naming ``what`` and the
        page's state when it does not within ``timeout_s``."""
        def check(driver: webdriver.Chrome) -> Any:
            return driver.execute_script(script, *args)

        wait: Callable[..., Any] = WebDriverWait(self.driver, timeout_s, poll_frequency=0.1
                                                ).until
        try:
            return await asyncio.to_thread(wait, check)
        except TimeoutException:
            state = await self.js("return document.getElementById('status')?.dataset ?? null")
            pytest.fail(f"{what} did not happen within {timeout_s:.0f} s; status {state}; "
                        f"console: {await self.console()}")

    async def console(self) -> list[str]:
        entries = await asyncio.to_thread(self.driver.get_log, "browser")
        return [f"{e['level']}: {e['message']}" for e in entries]

    async def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.driver.save_screenshot, str(path))


@pytest.fixture
def page(browser: webdriver.Chrome) -> Iterator[Page]:
    browser.get("about:blank")
    browser.get_log("browser")  # type: ignore[no-untyped-call]  # an empty console
    yield Page(browser)
