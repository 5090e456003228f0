"""Drive the system's Chromium with Selenium (browser tests and the docs' screenshots); no browser download.

Debian: ``apt-get install chromium chromium-driver``; ``selenium`` is in the ``test`` extra.
"""

from __future__ import annotations

import os
import shutil

__all__ = ["BrowserUnavailable", "headless_chromium"]


class BrowserUnavailable(RuntimeError):
    """No usable Chromium, chromedriver or selenium here; the message says which."""


def headless_chromium(width: int = 1100, height: int = 900):
    """A Selenium WebDriver for headless Chromium, or :class:`BrowserUnavailable` with the reason."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise BrowserUnavailable("selenium is not installed (pip install -e '.[test]')") from None
    binary = os.environ.get("PERFACE_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver_path = os.environ.get("PERFACE_CHROMEDRIVER") or shutil.which("chromedriver")
    if not binary or not driver_path:
        raise BrowserUnavailable("no chromium and chromedriver on PATH (Debian: apt-get install chromium "
                                 "chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    try:
        return webdriver.Chrome(service=Service(driver_path), options=opts)
    except WebDriverException as exc:
        raise BrowserUnavailable(f"chromium did not start: {str(exc).splitlines()[0]}") from None
