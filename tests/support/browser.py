"""A real Chromium for the console's end-to-end tests, driven through Selenium.

Debian's ``chromium`` and ``chromium-driver`` packages (``make test`` installs them
when missing, like the database servers). A missing browser fails the tests: the
console is not tested without one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from selenium.webdriver.remote.webdriver import WebDriver

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
"""Where the tests save a screenshot of each page they visit."""

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def _find(names: tuple[str, ...], env: str) -> str:
    configured = os.environ.get(env)
    if configured:
        return configured
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError(
        f"no {names[0]} on PATH (set {env}): `make test` installs Debian's chromium and "
        "chromium-driver; install them with apt-get"
    )


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile, quit afterwards."""
    options = webdriver.ChromeOptions()
    options.binary_location = _find(_CANDIDATES, "RAGSERVE_TEST_CHROMIUM")
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    service = Service(_find(("chromedriver",), "RAGSERVE_TEST_CHROMEDRIVER"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(
    driver: WebDriver, condition: Callable[[WebDriver], object], timeout: float = 20
) -> None:
    """Wait until ``condition(driver)`` is truthy.

    An element found by the condition can go stale before it is read when the page
    is being replaced (a form posted, then redirected): that is asked again, not a
    failure (a CI run once failed there).
    """
    WebDriverWait(
        driver, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
    ).until(condition)


def screenshot(driver: WebDriver, name: str) -> Path:
    """Save the page as ``test-artifacts/console/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    # The whole page, not only the window: grow the window to the document's height.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    size = driver.get_window_size()
    driver.set_window_size(size["width"], min(max(int(height), size["height"]), 4000))
    driver.save_screenshot(str(path))
    driver.set_window_size(size["width"], size["height"])
    return path
