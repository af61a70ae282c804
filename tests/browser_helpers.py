"""Shared by the browser tests: Debian's chromium driven headless through selenium, with the
chromium driver from apt (never Selenium Manager, which would download one), waits on
what the page shows, and the screenshots ``scripts/screenshots.sh`` asks for.

Outside CI a missing browser or selenium skips the tests, saying what to install; under
CI (``CI=true``) it fails them: a browser suite that silently skips in CI tests nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import running_in_ci

try:
    from selenium import webdriver
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the dev extras are not installed: the tests skip (fail under CI)
    webdriver = None  # type: ignore[assignment]

# Where the test writes screenshots (a directory); unset, as in a normal run: none.
SCREENSHOTS_ENV = "CHANNELSYNC_SCREENSHOTS"
BROWSER_ENV = "CHANNELSYNC_CHROMIUM"  # another chromium binary than Debian's
DRIVER_ENV = "CHANNELSYNC_CHROMEDRIVER"
WAIT = 30.0  # seconds an eventual condition may take before the test fails
DESKTOP = (1280, 900)
PHONE = 390
MIN_SHOT_HEIGHT, MAX_SHOT_HEIGHT = 360, 2400

T = TypeVar("T")


def _program(env: str, names: tuple[str, ...]) -> str | None:
    wanted = os.environ.get(env)
    if wanted:
        return wanted if os.access(wanted, os.X_OK) else None
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}",
                                                                        os.X_OK) else None)
        if found:
            return found
    return None


def chromium_or_skip() -> tuple[str, str]:
    """The chromium binary and its driver; a skip (a failure under CI) without them."""
    missing = []
    if webdriver is None:
        missing.append("selenium (pip install -e '.[dev]')")
    browser = _program(BROWSER_ENV, ("chromium", "chromium-browser"))
    driver = _program(DRIVER_ENV, ("chromedriver",))
    if browser is None:
        missing.append("chromium (apt-get install chromium)")
    if driver is None:
        missing.append("chromedriver (apt-get install chromium-driver)")
    if missing:
        reason = "the browser tests need " + ", ".join(missing)
        if running_in_ci():
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)
    assert browser is not None and driver is not None
    return browser, driver


def start_chromium(browser: str, driver: str, log_path: Path) -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={DESKTOP[0]},{DESKTOP[1]}", "--no-first-run",
                "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--disable-default-apps", "--hide-scrollbars", "--force-device-scale-factor=1",
                "--disable-features=PasswordLeakDetection,Translate,OptimizationHints",
                "--lang=en-US"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"credentials_enable_service": False,
                                              "profile.password_manager_enabled": False})
    # The driver's path given: Selenium Manager is never asked (it would go online).
    service = Service(executable_path=driver, log_output=str(log_path))
    try:
        return webdriver.Chrome(options=options, service=service)
    except WebDriverException as exc:
        message = f"chromium would not start ({browser}, {driver}): {exc.msg}"
        if running_in_ci():
            pytest.fail(message)
        pytest.skip(message)


class Page:
    """One browser on one site: go to a path, find by ``data-testid``, wait for a state."""

    def __init__(self, driver: WebDriver, base_url: str) -> None:
        self.driver, self.base = driver, base_url
        shots = os.environ.get(SCREENSHOTS_ENV, "").strip()
        self.shots = Path(shots) if shots else None

    def go(self, path: str) -> None:
        self.driver.get(self.base + path)

    @property
    def path(self) -> str:
        url = self.driver.current_url
        assert url.startswith(self.base), url
        return url[len(self.base):]

    def css(self, selector: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def all(self, testid: str) -> list[WebElement]:
        return self.css(f'[data-testid="{testid}"]')

    def one(self, testid: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')

    def text(self, testid: str) -> str:
        return " ".join(self.one(testid).text.split())

    def fill(self, testid: str, value: str) -> None:
        field = self.one(testid)
        field.clear()
        field.send_keys(value)

    def click(self, testid: str) -> None:
        """Click and wait for the page it leads to (the old one goes stale)."""
        element = self.one(testid)
        element.click()
        self.wait(lambda: _stale(element), f"the page after clicking {testid}")

    def wait(self, check: Callable[[], T], what: str, timeout: float = WAIT) -> T:
        """Until ``check()`` is truthy (an element missing or replaced meanwhile: not yet)."""
        waiting = WebDriverWait(self.driver, timeout, poll_frequency=0.1,
                                ignored_exceptions=(NoSuchElementException,
                                                    StaleElementReferenceException))
        return waiting.until(lambda _: check(), f"waited {timeout:.0f} s for {what}")

    def wait_loaded(self, path: str, check: Callable[[], T], what: str) -> T:
        """Until ``check()`` holds on ``path``, loaded again each time (a server-rendered
        page shows what the ledger held when it was rendered)."""

        def look() -> T:
            self.go(path)
            return check()

        return self.wait(look, what)

    def shoot(self, name: str, *, width: int = DESKTOP[0], phone: bool = False) -> None:
        """The whole page as ``<screenshots>/<name>.png``, when screenshots were asked for."""
        if self.shots is None:
            return
        self.shots.mkdir(parents=True, exist_ok=True)
        metrics: dict[str, Any] = {"width": width, "height": DESKTOP[1], "deviceScaleFactor": 1,
                                   "mobile": phone}
        cdp = self.driver.execute_cdp_cmd  # type: ignore[attr-defined]
        cdp("Emulation.setDeviceMetricsOverride", metrics)
        try:
            height = int(self.driver.execute_script(  # the page's content, not the window
                "return Math.ceil(document.body.getBoundingClientRect().height)"))
            metrics["height"] = max(min(height, MAX_SHOT_HEIGHT), MIN_SHOT_HEIGHT)
            cdp("Emulation.setDeviceMetricsOverride", metrics)
            self.driver.execute_script("window.scrollTo(0, 0)")
            self.driver.save_screenshot(str(self.shots / f"{name}.png"))
        finally:
            cdp("Emulation.clearDeviceMetricsOverride", {})


def _stale(element: WebElement) -> bool:
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    return False


def chromium(log_path: Path) -> Iterator[WebDriver]:
    """A headless chromium for the length of the fixture that yields it."""
    browser, driver_path = chromium_or_skip()
    driver = start_chromium(browser, driver_path, log_path)
    try:
        yield driver
    finally:
        driver.quit()
