"""/api/docs in real headless Chromium: Swagger UI loads from our own files, lists the
operations of /api/openapi.json, and "Try it out" → "Execute" on the health check
shows the server's answer.

Needs Debian's chromium and chromium-driver (.ci/run installs them); driven through
selenium with /usr/bin/chromedriver, so nothing is downloaded at run time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.chromium import launch, needs_chromium

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(make_module_server):
    """The page does not touch the store: one SQLite server is enough."""
    return make_module_server("sqlite")


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    driver = launch(tmp_path / "profile")
    try:
        yield driver
    finally:
        driver.quit()


def test_swagger_ui_lists_operations_and_executes_health(server, browser):
    wait = WebDriverWait(browser, 30)
    browser.get(server.url + "/api/docs")
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
    paths = {
        e.get_attribute("data-path")
        for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    }
    assert {"/api/admin/health", "/api/query", "/api/admin/stats", "/api/auth/signup"} <= paths
    assert len(browser.find_elements(By.CSS_SELECTOR, ".opblock")) >= 30

    health = browser.find_element(
        By.XPATH,
        "//div[contains(@class, 'opblock-get')][.//*[@data-path='/api/admin/health']]",
    )
    health.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait.until(lambda _: health.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
    health.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    wait.until(lambda _: health.find_elements(By.CSS_SELECTOR, ".execute"))
    health.find_element(By.CSS_SELECTOR, ".execute").click()
    wait.until(
        lambda _: any(
            "healthy" in e.text
            for e in health.find_elements(By.CSS_SELECTOR, ".live-responses-table .microlight")
        )
    )
    codes = health.find_elements(By.CSS_SELECTOR, ".live-responses-table .response-col_status")
    assert any(c.text.strip() == "200" for c in codes)
    errors = [
        entry
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "favicon" not in entry["message"]
    ]
    assert errors == []
