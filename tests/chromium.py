"""Debian's headless Chromium for the browser tests, driven through selenium with
/usr/bin/chromedriver, so nothing is downloaded at run time (.ci/run installs both)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

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

needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
    reason="chromium and chromium-driver are not installed (.ci/run installs them)",
)


def launch(
    profile: Path, *flags: str, capabilities: dict[str, Any] | None = None
) -> webdriver.Chrome:
    """Headless Chromium with a profile of its own (its own storage), FLAGS plus `flags`."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or "/usr/bin/chromium"
    for flag in (*FLAGS, *flags):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    for name, value in (capabilities or {}).items():
        options.set_capability(name, value)
    return webdriver.Chrome(
        options=options, service=Service(CHROMEDRIVER or "/usr/bin/chromedriver")
    )
