"""/api/docs in real headless Chromium: Swagger UI loads from our own files, lists the
operations of /api/openapi.json, and "Try it out" → "Execute" on the health check
shows the server's answer.

Needs Debian's chromium and chromium-driver (.ci/run installs them); driven through
selenium with /usr/bin/chromedriver, so nothing is downloaded at run time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
    reason="chromium and chromium-driver are not installed (.ci/run installs them)",
)


@pytest.fixture(scope="module")
def server(make_module_server):
    """The page does not touch the store: one SQLite server is enough."""
    return make_module_server("sqlite")


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    driver = webdriver.Chrome(
        options=options, service=Service(CHROMEDRIVER or "/usr/bin/chromedriver")
    )
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
