"""The admin dashboard (/admin) in real headless Chromium against a real server: sign
in, browse and filter an entity, edit a row and watch it reach a second live tab, lock
a user and see their sign-in refused, revoke a session and see its socket closed,
upload and preview a file, watch a chart move under load, run a server function.
After each, the admin token must be in no URL the browser used, no server log line,
no localStorage and no cookie. Each page's screenshot goes to docs/admin/ (README).

Needs Debian's chromium and chromium-driver (.ci/run installs them), driven through
selenium with /usr/bin/chromedriver; skipped without them unless CI is set.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.chromium import launch, needs_chromium
from tests.handlers.accounts import PASSWORD, signin, signup
from tests.serverproc import ADMIN_TOKEN, Api, ServerProcess, error_of
from tests.wsclient import WsClient

# Charts keep drawing in a headless tab; screenshots without scrollbars.
PAGE_FLAGS = (
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--hide-scrollbars",
)
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "admin"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAIElEQVR4nGNgGAWDD/wnEmMYQEzgqAGj"
    "BoyGwSAGAAB3Qz/BZZSbJAAAAABJRU5ErkJggg=="
)

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(make_module_server) -> ServerProcess:
    """The pages read what the store has; the endpoints are tested on both backends in
    test_admin_manage.py. Access lines logged, to check them for the token."""
    return make_module_server("sqlite", APP="examples/todos.py", LOG_LEVEL="info")


@pytest.fixture(scope="module")
def admin(server) -> Api:
    return Api(server.url, ADMIN_TOKEN)


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[webdriver.Chrome]:
    driver = launch(tmp_path_factory.mktemp("profile"), *PAGE_FLAGS)
    viewport(driver, 1280, 800)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, timeout: float = 30):
    """Until `condition(driver)`; elements re-rendered meanwhile are looked up again."""
    ignored = (StaleElementReferenceException, NoSuchElementException)
    return WebDriverWait(driver, timeout, ignored_exceptions=ignored).until(condition)


def css(driver, selector: str):
    return driver.find_element(By.CSS_SELECTOR, selector)


def open_page(driver, server, page: str) -> None:
    """Go to /admin#/page in a fresh document, signing in if the tab has no token."""
    driver.get("about:blank")
    driver.get(f"{server.url}/admin#/{page}")
    wait(driver, lambda d: css(d, "#signin").is_displayed() or css(d, "#nav").is_displayed())
    if css(driver, "#signin").is_displayed():
        css(driver, "#token").send_keys(ADMIN_TOKEN)
        css(driver, "#signin button[type=submit]").click()
        wait(driver, lambda d: css(d, "#nav").is_displayed())


def filter_rows(driver, where: str, order: str, limit: int) -> None:
    for selector, value in (("#where", where), ("#order", order), ("#limit", str(limit))):
        field = css(driver, selector)
        field.clear()
        field.send_keys(value)
    css(driver, "#apply").click()


def confirm(driver) -> None:
    wait(driver, lambda d: css(d, "#confirm").get_attribute("open") is not None)
    css(driver, "#confirm-ok").click()


def screenshot(driver, name: str) -> None:
    """The page from its top, 1280x800 (or the narrow size set)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def viewport(driver, width: int, height: int, mobile: bool = False) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def assert_token_nowhere(driver, server) -> None:
    """Not in the address, any URL the page fetched, localStorage, cookies or the log;
    and no script errors."""
    assert ADMIN_TOKEN not in driver.current_url
    urls = driver.execute_script("return performance.getEntries().map(e => e.name)")
    assert urls and not any(ADMIN_TOKEN in u for u in urls)
    assert driver.execute_script("return JSON.stringify(localStorage)") == "{}"
    assert driver.get_cookies() == []
    assert "tornado.access" in server.log()  # access lines are written ...
    assert ADMIN_TOKEN not in server.log()  # ... without the token
    errors = [
        e
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and "favicon" not in e["message"] and "/api/" not in e["message"]
    ]
    assert errors == []


def test_sign_in_keeps_the_token_in_the_tab_only(server, browser):
    driver = browser
    driver.get(server.url + "/admin")
    wait(driver, lambda d: css(d, "#signin").is_displayed())
    screenshot(driver, "signin")
    css(driver, "#token").send_keys("not-the-admin-token-" + "y" * 20)
    css(driver, "#signin button[type=submit]").click()
    wait(driver, lambda d: "not the admin token" in css(d, "#signin-error").text)
    assert driver.execute_script("return sessionStorage.length") == 0
    open_page(driver, server, "data")
    stored = driver.execute_script("return Object.values(sessionStorage)")
    assert stored == [ADMIN_TOKEN]
    assert_token_nowhere(driver, server)
    css(driver, "#signout").click()
    wait(driver, lambda d: css(d, "#signin").is_displayed())
    assert driver.execute_script("return sessionStorage.length") == 0


def test_browse_filter_and_live_edit_reaches_a_second_tab(server, browser, admin):
    driver = browser
    entity = "tasks_" + uuid.uuid4().hex[:6]
    for i in range(25):
        body = {"id": f"t{i:02d}", "title": f"task {i}", "done": i % 2 == 0, "rank": i}
        assert admin.post(f"/api/data/{entity}", json=body).status_code == 201
    open_page(driver, server, "data")
    first = driver.current_window_handle
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'[data-entity="{entity}"]'))
    css(driver, f'[data-entity="{entity}"]').click()
    wait(driver, lambda d: entity in css(d, "#attributes").text)
    assert "done: boolean (25)" in css(driver, "#attributes").text
    filter_rows(driver, '{"done": false}', '{"rank": "asc"}', 5)

    def ids(d) -> list[str]:
        return [
            r.get_attribute("data-id")
            for r in d.find_elements(By.CSS_SELECTOR, "#rows tr[data-id]")
        ]

    wait(driver, lambda d: ids(d) == ["t01", "t03", "t05", "t07", "t09"])
    css(driver, "#next").click()  # the cursor's next page
    wait(driver, lambda d: ids(d) == ["t11", "t13", "t15", "t17", "t19"])
    css(driver, "#prev").click()
    wait(driver, lambda d: ids(d)[:1] == ["t01"])
    screenshot(driver, "data")

    driver.switch_to.new_window("tab")  # a second tab: signs in on its own
    second = driver.current_window_handle
    open_page(driver, server, "data")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'[data-entity="{entity}"]'))
    css(driver, f'[data-entity="{entity}"]').click()
    wait(driver, lambda d: ids(d))
    filter_rows(driver, '{"done": false}', '{"rank": "asc"}', 5)
    wait(driver, lambda d: ids(d)[:1] == ["t01"])
    css(driver, "#live").click()
    wait(driver, lambda d: "live: live" in css(d, "#status").text)

    driver.switch_to.window(first)
    css(driver, '[aria-label="Edit t03"]').click()
    wait(driver, lambda d: css(d, "#editor").get_attribute("open") is not None)
    text = css(driver, "#editor-text")
    text.clear()
    text.send_keys('{"title": "edited in tab one", "done": false, "rank": 3}')
    css(driver, "#editor-ok").click()
    wait(driver, lambda d: css(d, "#editor").get_attribute("open") is None)
    assert admin.get(f"/api/data/{entity}/t03").json()["data"]["title"] == "edited in tab one"

    driver.switch_to.window(second)
    wait(driver, lambda d: "edited in tab one" in css(d, 'tr[data-id="t03"]').text)
    # a row deleted elsewhere leaves the live table too
    assert admin.delete(f"/api/data/{entity}/t01").status_code == 204
    wait(driver, lambda d: "t01" not in ids(d))
    screenshot(driver, "data-live")
    assert_token_nowhere(driver, server)
    driver.close()
    driver.switch_to.window(first)

    css(driver, '[aria-label="Delete t05"]').click()  # destructive: asks first
    confirm(driver)
    wait(driver, lambda d: "t05" not in ids(d))
    assert admin.get(f"/api/data/{entity}/t05").status_code == 404


def test_lock_a_user_and_their_sign_in_is_refused(server, browser, admin):
    driver = browser
    anon = Api(server.url)
    account = signup(anon)
    open_page(driver, server, "users")
    search = css(driver, "#user-search")
    search.send_keys(account.email)
    css(driver, "#user-find").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'[data-user="{account.id}"]'))
    css(driver, f'[data-user="{account.id}"] button').click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#lock"))
    css(driver, "#lock").click()
    confirm(driver)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#locked-badge"))
    refused = anon.post("/api/auth/signin", json={"email": account.email, "password": PASSWORD})
    assert error_of(refused)["code"] == "PERMISSION_DENIED"
    screenshot(driver, "users")
    css(driver, "#unlock").click()
    confirm(driver)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#lock"))
    assert "accessToken" in signin(anon, account.email)
    assert_token_nowhere(driver, server)


def test_revoke_a_session_and_its_socket_closes(server, browser):
    driver = browser
    anon = Api(server.url)
    account = signup(anon, headers={"User-Agent": "Mozilla/5.0 (Macintosh) Firefox/120.0"})
    signin(anon, account.email)  # a second session, which stays
    loop = asyncio.new_event_loop()
    try:
        ws = loop.run_until_complete(WsClient.connect(server.url, account.access))
        mine = [s for s in account.api.get("/api/auth/sessions").json()["sessions"] if s["current"]]
        open_page(driver, server, "users")
        css(driver, "#user-search").send_keys(account.id)
        css(driver, "#user-find").click()
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'[data-user="{account.id}"]'))
        css(driver, f'[data-user="{account.id}"] button').click()
        wait(
            driver,
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sessions tr[data-session]")) == 2,
        )
        assert "Firefox on macOS" in css(driver, "#sessions").text
        screenshot(driver, "users-sessions")
        css(driver, f'[aria-label="Revoke session {mine[0]["id"]}"]').click()
        confirm(driver)
        assert loop.run_until_complete(ws.closed_with())[0] == 4001
        wait(
            driver,
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#sessions tr[data-session]")) == 1,
        )
    finally:
        loop.close()
    assert account.api.get("/api/auth/me").status_code == 401
    assert_token_nowhere(driver, server)


def test_upload_and_preview_a_file(server, browser, admin, tmp_path):
    driver = browser
    image = tmp_path / "dot.png"
    image.write_bytes(PNG)
    folder = "shots-" + uuid.uuid4().hex[:6]
    open_page(driver, server, "files")
    css(driver, "#upload-path").send_keys(f"{folder}/dot.png")
    css(driver, "#upload-file").send_keys(str(image))
    css(driver, "#upload-go").click()
    wait(
        driver,
        lambda d: (
            d.find_elements(By.CSS_SELECTOR, "#preview-img")
            and d.execute_script("return document.getElementById('preview-img').naturalWidth") == 16
        ),
    )
    src = css(driver, "#preview-img").get_attribute("src")
    assert ADMIN_TOKEN not in src and requests.get(src, timeout=10).content == PNG
    listed = admin.get("/api/storage", params={"prefix": folder + "/"}).json()["files"]
    assert [f["path"] for f in listed] == [f"{folder}/dot.png"]
    css(driver, "#prefix").send_keys(folder + "/")
    css(driver, "#browse").click()
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-path="{folder}/dot.png"]'))
    screenshot(driver, "files")
    css(driver, f'[aria-label="Delete {folder}/dot.png"]').click()
    confirm(driver)
    wait(
        driver, lambda d: not d.find_elements(By.CSS_SELECTOR, f'tr[data-path="{folder}/dot.png"]')
    )
    assert admin.get("/api/storage", params={"prefix": folder + "/"}).json()["files"] == []
    assert_token_nowhere(driver, server)


async def _close(ws: WsClient) -> None:
    ws.close()  # Tornado's client closes on its own loop, which must be running


def test_a_chart_moves_under_load(server, browser):
    driver = browser
    account = signup(Api(server.url))
    room = "lobby-" + uuid.uuid4().hex[:6]
    loop = asyncio.new_event_loop()
    ws = loop.run_until_complete(WsClient.connect(server.url, account.access))
    loop.run_until_complete(ws.send({"type": "presence-enter", "room": room, "data": {"n": 1}}))
    loop.run_until_complete(ws.expect("presence-change", room=room))
    try:
        open_page(driver, server, "live")

        def requests_per_second(d) -> float:
            value = css(d, '[data-chart="Requests/s"] [data-series="requests"]').get_attribute(
                "data-value"
            )
            return float(value or 0)

        wait(driver, lambda d: requests_per_second(d) >= 0)
        before = requests_per_second(driver)
        stop = threading.Event()

        def load() -> None:
            session = requests.Session()
            while not stop.is_set():
                session.get(server.url + "/api/admin/health", timeout=10)

        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:  # the figure is a 10 s average: +5/s is 50 more requests in it
            wait(driver, lambda d: requests_per_second(d) >= before + 5, timeout=60)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
        # drawn through the samples, one every 2 s
        wait(
            driver,
            lambda d: css(d, '[data-chart="Requests/s"] path').get_attribute("d").count("L") >= 4,
            timeout=40,
        )
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-room="{room}"]'))
        css(driver, f'tr[data-room="{room}"] button').click()
        wait(driver, lambda d: account.id in css(d, "#peers").text)
        screenshot(driver, "live")
    finally:
        loop.run_until_complete(_close(ws))
        loop.close()
    assert_token_nowhere(driver, server)


def test_app_page_shows_the_app_and_runs_a_function(server, browser, admin):
    driver = browser
    open_page(driver, server, "app")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#app-schema"))
    assert '"todos"' in css(driver, "#app-schema").text
    assert "$auth.id" in css(driver, "#app-rules").text
    args = css(driver, "#args-createTodo")
    args.clear()
    args.send_keys('{"title": "", "listId": "l1"}')
    css(driver, '[data-function="createTodo"] button[type=submit]').click()
    wait(driver, lambda d: "INVALID_ARGUMENT" in css(d, '[data-function="createTodo"] .error').text)
    args.clear()
    list_id = "list-" + uuid.uuid4().hex[:6]
    args.send_keys(f'{{"title": "from the dashboard", "listId": "{list_id}"}}')
    css(driver, '[data-function="createTodo"] button[type=submit]').click()
    wait(driver, lambda d: '"result"' in css(d, "#result-createTodo").text)
    found = admin.post("/api/query", json={"todos": {"$where": {"listId": list_id}}}).json()
    assert [t["title"] for t in found["todos"]] == ["from the dashboard"]
    screenshot(driver, "app")
    assert_token_nowhere(driver, server)


def test_narrow_screen_and_keyboard(server, browser):
    driver = browser
    viewport(driver, 390, 844, mobile=True)
    try:
        open_page(driver, server, "users")
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#users table"))
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 390 + 1  # nothing wider than the screen: tables scroll in place
        # every control is a real, focusable element with a name
        unnamed = driver.execute_script(
            "return [...document.querySelectorAll('button, input, select, textarea, a')]"
            ".filter(e => !e.hidden && e.offsetParent !== null)"
            ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')"
            " && !e.textContent.trim() && !e.placeholder).map(e => e.outerHTML)"
        )
        assert unnamed == []
        css(driver, "#nav a").send_keys("")  # focusable
        assert driver.switch_to.active_element.tag_name == "a"
        screenshot(driver, "narrow")
    finally:
        viewport(driver, 1280, 800)
