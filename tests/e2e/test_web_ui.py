"""The web page in a real browser (Debian's headless Chromium through Selenium).

A first-time viewer opens /ui/, sees trending and a feed, likes three videos; the
API records them, the feed re-renders without them, and the operator panel shows
the model and can retrain. Chromium and chromedriver must be installed
(`apt-get install -y chromium chromium-driver`): without them this test fails,
it does not skip.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.servers import RecoMindProcess

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver import Chrome as WebDriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as exc:  # fail below with the fix, never skip
    SELENIUM_MISSING: str | None = f"selenium is not installed ({exc}): pip install selenium"
else:
    SELENIUM_MISSING = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1100",
)
WAIT_S = 10.0  # an action is applied within ~1 s; the page refreshes 1.2 s after it
T = TypeVar("T")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    if SELENIUM_MISSING:
        pytest.fail(SELENIUM_MISSING, pytrace=False)
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"headless Chromium is needed and {', '.join(missing)} is missing: "
            "apt-get install -y chromium chromium-driver",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    # Both paths are given, so Selenium Manager never looks for (or downloads) a browser.
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(
        executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log")
    )
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


# -- helpers ---------------------------------------------------------------------------------


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], T | None], what: str) -> T:
    """Wait up to WAIT_S for a truthy result; a re-render mid-check just means look again."""
    wait = WebDriverWait(driver, WAIT_S, 0.1, ignored_exceptions=[StaleElementReferenceException])
    try:
        result = wait.until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out after {WAIT_S}s waiting for {what}") from None
    assert result is not None  # until() returns only a truthy result
    return result


def poll(check: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + WAIT_S
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_S}s waiting for {what}")
        time.sleep(0.2)


def cards(driver: WebDriver, list_id: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, f"#{list_id} > [data-video-id]")


def card_ids(driver: WebDriver, list_id: str) -> list[str]:
    return [c.get_attribute("data-video-id") or "" for c in cards(driver, list_id)]


def render_count(driver: WebDriver, list_id: str) -> int:
    return int(driver.find_element(By.ID, list_id).get_attribute("data-render-count") or 0)


def text_match(element_id: str, pattern: str) -> Callable[[WebDriver], str | None]:
    """A wait condition: the first group of `pattern` in the element's text, once it matches."""

    def check(d: WebDriver) -> str | None:
        found = re.search(pattern, d.find_element(By.ID, element_id).text)
        return found[1] if found else None

    return check


def js_errors(driver: WebDriver) -> list[str]:
    """Script errors in the console; failed requests (the expected 404s) are the API's story."""
    return [
        e["message"]
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
    ]


def like_one(driver: WebDriver, liked: dict[str, list[str]]) -> None:
    """Click Like on the first feed card not liked yet; remember its id and tags."""

    def click_like(d: WebDriver) -> bool:
        for card in cards(d, "feed"):
            video_id = card.get_attribute("data-video-id") or ""
            if video_id in liked:
                continue
            tags = [
                t.text.removeprefix("#") for t in card.find_elements(By.CSS_SELECTOR, ".tags li")
            ]
            card.find_element(By.CSS_SELECTOR, 'button[data-action="like"]').click()
            liked[video_id] = tags
            return True
        return False

    wait_for(driver, click_like, "a feed card to like")
    video_id = list(liked)[-1]

    def marked_or_gone(d: WebDriver) -> bool:
        found = d.find_elements(By.CSS_SELECTOR, f'#feed > [data-video-id="{video_id}"]')
        return not found or "like" in (found[0].get_attribute("data-acted") or "").split()

    wait_for(driver, marked_or_gone, f"the card of {video_id} to be marked as liked")


# -- the tests ---------------------------------------------------------------------------------


def test_first_time_viewer_likes_three_videos(
    demo_server: RecoMindProcess, browser: WebDriver, tmp_path: Path
) -> None:
    before = get_json(f"{demo_server.url}/admin/stats")[1]["counts"]["video_actions"]
    browser.get(f"{demo_server.url}/")  # redirects to /ui/

    assert browser.current_url.startswith(f"{demo_server.url}/ui/")
    wait_for(browser, lambda d: len(cards(d, "trending")) >= 10, "10 trending cards")
    wait_for(browser, lambda d: len(cards(d, "feed")) >= 10, "10 feed cards")
    viewer = browser.find_element(By.ID, "viewer-id").get_attribute("value") or ""
    assert re.fullmatch(r"web-[0-9a-f]+", viewer), viewer
    assert get_json(f"{demo_server.url}/users/{viewer}")[0] == 404
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "profile").get_attribute("data-state") == "new",
        "the profile line to say 'new viewer'",
    )
    assert "new viewer" in browser.find_element(By.ID, "profile").text
    assert browser.find_element(By.ID, "feed-source").text == "trending"
    first = cards(browser, "feed")[0]
    assert first.find_element(By.CSS_SELECTOR, ".title").text
    assert first.find_element(By.CSS_SELECTOR, ".reason").text  # explain=true by default
    assert first.find_element(By.CSS_SELECTOR, ".tags li").text.startswith("#")

    liked: dict[str, list[str]] = {}
    for _ in range(3):
        like_one(browser, liked)
    clicked_at = render_count(browser, "feed")

    # (1) the API recorded the likes: counts rose, the profile is made of their tags
    poll(
        lambda: (
            get_json(f"{demo_server.url}/admin/stats")[1]["counts"]["video_actions"] >= before + 3
        ),
        "three more video_actions in /admin/stats",
    )

    def profile_with_tags() -> dict[str, Any] | None:
        status, body = get_json(f"{demo_server.url}/users/{viewer}")
        return body if status == 200 and body["top_tags"] else None

    profile = poll(profile_with_tags, f"GET /users/{viewer} to show top tags")
    liked_tags = {t for tags in liked.values() for t in tags}
    assert set(profile["top_tags"]) <= liked_tags, (profile, liked)

    # (2) the feed re-rendered, personalised and without the liked videos
    def refreshed_feed(d: WebDriver) -> list[str] | None:
        ids = card_ids(d, "feed")
        fresh = render_count(d, "feed") > clicked_at
        return ids if fresh and len(ids) >= 10 and not set(ids) & set(liked) else None

    wait_for(browser, refreshed_feed, "the feed to re-render without the liked videos")
    assert browser.find_element(By.ID, "feed-source").text in {"cache", "table", "computed"}
    wait_for(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#profile #top-tags li"),
        "the page to show the viewer's top tags",
    )
    shown = browser.find_element(By.ID, "top-tags").text
    assert all(f"#{t}" in shown for t in profile["top_tags"]), (shown, profile)
    browser.save_screenshot(str(tmp_path / "viewer.png"))

    # (3) the operator panel shows the model in use, and retraining makes a new one
    browser.find_element(By.ID, "tab-operator").click()
    version = wait_for(
        browser, text_match("model-version", r"^(v\d+)$"), "a model version in the operator panel"
    )
    assert browser.find_elements(By.CSS_SELECTOR, '#consumers tr[data-group] td[data-key="lag"]')
    assert not browser.find_element(By.ID, "view-viewer").is_displayed()
    browser.find_element(By.ID, "retrain").click()
    new_version = wait_for(
        browser, text_match("retrain-result", r"Trained (v\d+)"), "the retrain result"
    )
    assert new_version != version
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "model-version").text == new_version,
        f"the operator panel to show {new_version} in use",
    )
    browser.save_screenshot(str(tmp_path / "operator.png"))
    print(f"screenshots: {tmp_path / 'viewer.png'} {tmp_path / 'operator.png'}")
    assert not js_errors(browser)


def test_known_viewer_and_api_errors_are_shown(
    demo_server: RecoMindProcess, browser: WebDriver
) -> None:
    browser.get(f"{demo_server.url}/ui/")
    wait_for(browser, lambda d: len(cards(d, "feed")) >= 10, "the first feed")

    id_field = browser.find_element(By.ID, "viewer-id")
    id_field.clear()
    id_field.send_keys("u1")
    browser.find_element(By.ID, "viewer-switch").click()
    wait_for(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#profile #top-tags li"),
        "u1's top tags",
    )
    status, u1 = get_json(f"{demo_server.url}/users/u1")
    assert status == 200
    assert browser.find_element(By.ID, "top-tags").text.split() == [f"#{t}" for t in u1["top_tags"]]
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "feed-source").text in {"cache", "table", "computed"},
        "u1's personalised feed",
    )
    assert "viewer=u1" in browser.current_url

    id_field.clear()
    id_field.send_keys("not a valid id!")
    browser.find_element(By.ID, "viewer-switch").click()
    wait_for(
        browser, lambda d: d.find_element(By.ID, "error").is_displayed(), "the API's error shown"
    )
    # the problem+json `detail`, word for word
    error = browser.find_element(By.ID, "error").text
    assert "must be a non-empty string of at most 64 characters" in error
    browser.find_element(By.ID, "error-dismiss").click()
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert not js_errors(browser)


def test_with_api_keys_the_page_asks_for_one_and_then_works(
    tmp_path: Path, browser: WebDriver
) -> None:
    key = "ui-key-" + os.urandom(6).hex()
    server = RecoMindProcess(tmp_path / "home", command="demo", env={"RECOMIND_API_KEYS": key})
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        browser.get(f"{server.url}/ui/")
        form = wait_for(
            browser,
            lambda d: (
                d.find_element(By.ID, "key-form")
                if d.find_element(By.ID, "key-form").is_displayed()
                else None
            ),
            "the API-key form after the API's 401",
        )
        assert not cards(browser, "feed")
        assert "needs a key" in browser.find_element(By.ID, "error").text

        browser.find_element(By.ID, "api-key").send_keys("not-the-key")
        browser.find_element(By.ID, "key-use").click()
        wait_for(
            browser,
            lambda d: "not valid" in d.find_element(By.ID, "error").text,
            "a wrong key refused",
        )
        assert form.is_displayed() and not cards(browser, "feed")

        browser.find_element(By.ID, "api-key").send_keys(key)
        browser.find_element(By.ID, "key-use").click()
        wait_for(browser, lambda d: len(cards(d, "feed")) >= 10, "the feed with the key")
        wait_for(browser, lambda d: len(cards(d, "trending")) >= 5, "trending with the key")
        assert not form.is_displayed()
        assert not browser.find_element(By.ID, "error").is_displayed()

        video = card_ids(browser, "feed")[0]
        viewer = browser.find_element(By.ID, "viewer-id").get_attribute("value") or ""
        cards(browser, "feed")[0].find_element(
            By.CSS_SELECTOR, "button[data-action='like']"
        ).click()

        def liked() -> bool:
            request = urllib.request.Request(
                f"{server.url}/users/{viewer}", headers={"X-API-Key": key}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return bool(json.load(response)["top_tags"])
            except urllib.error.HTTPError as err:
                if err.code != 404:  # 404: the like is not applied yet
                    raise
                return False

        poll(liked, f"{viewer}'s like of {video} recorded through the page's key")
        assert get_json(f"{server.url}/users/{viewer}")[0] == 401  # still closed without a key
        assert not js_errors(browser)
    finally:
        server.stop()
