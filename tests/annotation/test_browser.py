"""End to end in a real browser (Debian chromium + chromium-driver, driven by Selenium): open an invite
link, answer ten triplets with the keyboard, undo one, and check the admin page's counts."""

from __future__ import annotations

import pytest

from perface.annotation.app import BackgroundServer
from perface.annotation.browser import BrowserUnavailable, headless_chromium

pytestmark = pytest.mark.slow


@pytest.fixture
def browser():
    try:
        driver = headless_chromium()
    except BrowserUnavailable as exc:
        pytest.skip(f"no real browser for the end-to-end test: {exc}")
    yield driver
    driver.quit()


def _wait_ready(driver, answered: int) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 15).until(lambda d: d.find_element("tag name", "body").get_attribute("data-state") == "ready"
                                    and d.find_element("id", "progress").text.startswith(f"{answered} answered"))


def test_keyboard_answers_undo_and_admin_counts(project, browser) -> None:
    from selenium.webdriver.common.keys import Keys

    p, admin = project
    token = p.invite("ann1")
    with BackgroundServer(p) as url:
        browser.get(f"{url}/a/{token}")
        assert "Which face looks more like" in browser.page_source
        body = browser.find_element("tag name", "body")
        body.send_keys(Keys.ENTER)  # leave the instructions
        _wait_ready(browser, 0)
        for i in range(10):
            # catch share 0.2: the 5th and 10th items are catch trials, whose right answer here is A
            body.send_keys(Keys.ARROW_LEFT if i % 2 or i % 5 == 4 else Keys.ARROW_RIGHT)
            _wait_ready(browser, i + 1)
        assert browser.find_element("id", "img-c").get_property("naturalWidth") == 8  # images really loaded
        body.send_keys(Keys.BACKSPACE)
        _wait_ready(browser, 9)
        assert not browser.find_element("id", "undo").is_enabled()
        browser.get(f"{url}/admin/{admin}")
        assert browser.find_element("id", "total-votes").text == "9"
        row = browser.find_element("css selector", "#annotators tbody tr")
        assert row.find_element("class name", "votes").text == "9"
        assert "1 / 1" in row.text and "flagged" not in row.text  # the undone 10th no longer counts
