"""examples/web/ in real headless Chromium against a real server (APP=examples/todos.py).

Two browsers (own profiles: own tokens, own IndexedDB outbox) signed in as one user,
each reaching the server through its own `Link`, so one can lose its network while the
other goes on. Every scenario ends with each page holding exactly the server's rows
(its live result and its DOM, against a REST query), every write answered, the outbox
empty, and no diff lost or applied twice: the client applied each q-init and q-diff
its WebSocket received exactly once, no result held an id twice, and no row's change
reached the page twice (see `assert_no_diff_lost_or_doubled`).

Needs Debian's chromium and chromium-driver (.ci/run installs them); skipped without
them unless CI is set. ACTORBASE_JS_CLIENT points at another checkout's clients/js.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.serverproc import Api, ServerProcess
from tests.webpage import (
    ROOT,
    Link,
    PageHost,
    chrome,
    chromium_available,
    client_dir,
    set_offline,
)

pytestmark = [
    pytest.mark.skipif(
        not chromium_available() and not os.environ.get("CI"),
        reason="chromium and chromium-driver are not installed (.ci/run installs them)",
    ),
    # Two browsers and a server per test, and scenarios that wait out 30 s on purpose.
    pytest.mark.timeout(300),
]

APP = str(ROOT / "examples" / "todos.py")
QUERY = {"todos": {"$order": {"createdAt": "asc"}, "$limit": 1000}}
PASSWORD = "correct horse battery"


class Tab:
    """One browser running the example, signed in through its form."""

    def __init__(self, driver: webdriver.Chrome, link: Link, host: PageHost) -> None:
        self.driver = driver
        self.link = link
        driver.get(f"{host.url}/examples/web/?server={link.url}")
        self.wait_for(lambda: self.js("return Boolean(window.__todo_debug)"), "app loaded")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait_for(self, predicate: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; page: {self.snapshot()}")
            time.sleep(0.1)

    def sign_in(self, email: str) -> None:
        self.driver.find_element(By.ID, "auth-email").send_keys(email)
        self.driver.find_element(By.ID, "auth-password").send_keys(PASSWORD)
        self.driver.find_element(By.ID, "signin").click()
        self.wait_for(lambda: self.driver.find_element(By.ID, "app").is_displayed(), "sign-in")
        self.wait_for(lambda: self.js("return __todo_debug.results") > 0, "first result")
        assert not self.driver.find_element(By.ID, "auth").is_displayed()

    def add(self, title: str) -> None:
        self.js(
            "document.getElementById('title').value = arguments[0];"
            "document.querySelector('#add button').click();",
            title,
        )

    def row_id(self, title: str) -> str:
        return self.wait_for(
            lambda: next((r["id"] for r in self.dom() if r["title"] == title), None),
            f"row {title!r} shown",
        )

    def toggle(self, row_id: str) -> None:
        self.js(f"document.querySelector('li[data-id=\"{row_id}\"] .toggle').click()")

    def delete(self, row_id: str) -> None:
        self.js(f"document.querySelector('li[data-id=\"{row_id}\"] .delete').click()")

    def dom(self) -> list[dict[str, Any]]:
        return self.js(
            "return [...document.querySelectorAll('#todos li')].map((li) => ({"
            " id: li.dataset.id, title: li.querySelector('.title').textContent,"
            " done: li.querySelector('.toggle').checked,"
            " pending: li.classList.contains('pending')}))"
        )

    def rows(self) -> list[dict[str, Any]]:
        return self.js("return __todo_debug.rows()")

    def state(self) -> str:
        return self.driver.find_element(By.ID, "state").get_attribute("data-state")

    def outbox(self) -> int:
        return int(self.driver.find_element(By.ID, "outbox").text)

    def debug(self, key: str) -> Any:
        return self.js(f"return __todo_debug[{key!r}]")

    def frames(self) -> list[dict[str, Any]]:
        return self.js("return window.__frames")

    def online(self) -> bool:
        return self.js("return navigator.onLine")

    def snapshot(self) -> dict[str, Any]:
        try:
            return {
                "state": self.state(),
                "outbox": self.outbox(),
                "error": self.driver.find_element(By.ID, "error").text,
                "dom": self.dom(),
                "console": [e["message"] for e in self.driver.get_log("browser")][-10:],
            }
        except Exception as exc:  # the snapshot only decorates a failure message
            return {"unavailable": repr(exc)}


@pytest.fixture(scope="module")
def host() -> Iterator[PageHost]:
    if not (client_dir() / "src" / "index.js").exists():
        pytest.fail(f"no JS client at {client_dir()} (ACTORBASE_JS_CLIENT names another)")
    pages = PageHost()
    yield pages
    pages.close()


@pytest.fixture
def launch(host, tmp_path) -> Iterator[Callable[[ServerProcess], Tab]]:
    """Factory: a browser with its own profile and link, running the example."""
    opened: list[tuple[webdriver.Chrome, Link]] = []

    def _launch(server: ServerProcess) -> Tab:
        driver = chrome(tmp_path / f"profile{len(opened)}")
        link = host.link(server.port)
        opened.append((driver, link))
        return Tab(driver, link, host)

    yield _launch
    for driver, link in opened:
        driver.quit()
        link.close()


def start_server(make_server, backend: str, host: PageHost, **env: Any) -> ServerProcess:
    return make_server(backend, APP=APP, CORS_ORIGINS=host.url, **env)


def signed_up(server: ServerProcess) -> tuple[str, Api]:
    """A fresh user (email, REST client with their token)."""
    email = f"web-{secrets.token_hex(4)}@example.com"
    r = Api(server.url).post("/api/auth/signup", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return email, Api(server.url, r.json()["accessToken"])


def server_rows(api: Api) -> list[dict[str, Any]]:
    r = api.post("/api/query", json=QUERY)
    assert r.status_code == 200, r.text
    return r.json()["todos"]


def settle(api: Api, tabs: list[Tab], timeout: float = 45) -> list[dict[str, Any]]:
    """Wait until every tab is open, has sent all it queued, and shows exactly the
    server's rows; then check that none lost or applied a diff twice. Returns the rows."""
    deadline = time.monotonic() + timeout
    while True:
        rows = server_rows(api)
        expected_dom = [
            {"id": r["id"], "title": r["title"], "done": r["done"], "pending": False} for r in rows
        ]
        behind = [
            tab
            for tab in tabs
            if tab.state() != "open"
            or tab.outbox() != 0
            or any(m["state"] == "pending" for m in tab.debug("mutations"))
            or tab.rows() != rows
            or tab.dom() != expected_dom
        ]
        if not behind:
            break
        if time.monotonic() > deadline:
            assert behind[0].rows() == rows, behind[0].snapshot()
            raise AssertionError(f"not settled: {behind[0].snapshot()}")
        time.sleep(0.2)
    for tab in tabs:
        assert_no_diff_lost_or_doubled(tab)
    return rows


def assert_no_diff_lost_or_doubled(tab: Tab) -> None:
    """The client applied every frame of its live query the wire carried, once (its
    counts against the page's WebSocket frames), no result held an id twice, and no
    row's diff came twice: after the q-init, the txs of the diffs touching a row
    strictly increase (a resume sends only what came after the tx it gives)."""
    applied = tab.js("return __todo_debug.applied()")
    frames = [f for f in tab.frames() if f["id"] == applied["id"]]
    assert applied["inits"] == len([f for f in frames if f["type"] == "q-init"]), applied
    assert applied["diffs"] == len([f for f in frames if f["type"] == "q-diff"]), applied
    assert tab.debug("duplicates") == 0
    txs = [tx for tx in tab.debug("txs") if tx is not None]
    assert txs == sorted(txs), txs
    touched: dict[str, list[int]] = {}
    for frame in frames:
        if frame["type"] == "q-init":
            touched.clear()
        for row_id in frame["ids"]:
            touched.setdefault(row_id, []).append(frame["tx"])
    for row_id, row_txs in touched.items():
        assert row_txs == sorted(set(row_txs)), (row_id, row_txs)
    mutations = tab.debug("mutations")
    assert all(m["state"] == "ok" for m in mutations), mutations


def test_sign_up_sign_out_and_another_user(make_server, backend, host, launch):
    """The form signs up; signing out empties the page; the next user sees only theirs
    (examples/todos.py's owner-only rules)."""
    server = start_server(make_server, backend, host)
    tab = launch(server)
    first = f"web-{secrets.token_hex(4)}@example.com"
    tab.driver.find_element(By.ID, "auth-email").send_keys(first)
    tab.driver.find_element(By.ID, "auth-password").send_keys(PASSWORD)
    tab.driver.find_element(By.ID, "signup").click()
    tab.wait_for(lambda: tab.driver.find_element(By.ID, "email").text == first, "signed up")
    tab.add("mine")
    first_api = Api(server.url, signed_in_token(server, first))
    settle(first_api, [tab])

    tab.driver.find_element(By.ID, "signout").click()
    tab.wait_for(lambda: tab.driver.find_element(By.ID, "auth").is_displayed(), "signed out")
    assert tab.dom() == [] and not tab.driver.find_element(By.ID, "app").is_displayed()
    for field in ("auth-email", "auth-password"):
        tab.driver.find_element(By.ID, field).clear()
    second, second_api = signed_up(server)
    tab.sign_in(second)
    tab.add("theirs")
    rows = settle(second_api, [tab])
    assert [r["title"] for r in rows] == ["theirs"]
    assert [r["title"] for r in server_rows(first_api)] == ["mine"]


def test_optimistic_rows_show_before_the_server_answers(make_server, backend, host, launch):
    server = start_server(make_server, backend, host)
    email, api = signed_up(server)
    a, b = launch(server), launch(server)
    a.sign_in(email)
    b.sign_in(email)
    a.add("first")
    first = a.row_id("first")
    settle(api, [a, b])

    a.link.hold()  # the server gets a's writes and answers; a hears nothing yet
    a.add("held")
    a.toggle(first)
    held = a.row_id("held")
    a.wait_for(
        lambda: (
            {(r["title"], r["done"], r["pending"]) for r in a.dom()}
            == {("first", True, True), ("held", False, True)}
        ),
        "both writes shown, pending",
    )
    assert [m["state"] for m in a.debug("mutations")[-2:]] == ["pending", "pending"]
    # The server has committed the first (b hears its diff; the client sends one write at
    # a time, in order, so the toggle waits): a still waits for the answer.
    b.wait_for(lambda: "held" in [r["title"] for r in b.dom()], "b sees a's held write")
    assert {r["title"] for r in server_rows(api)} == {"first", "held"}
    assert a.state() == "open"
    a.delete(first)
    a.wait_for(lambda: [r["id"] for r in a.dom()] == [held], "the delete shown")
    log = a.debug("log")
    assert {"what": "shown", "id": held} in log
    assert {"what": "answered", "id": held} not in log

    a.link.release()
    rows = settle(api, [a, b])
    assert [(r["title"], r["done"]) for r in rows] == [("held", False)]
    log = a.debug("log")
    assert log.index({"what": "shown", "id": held}) < log.index({"what": "answered", "id": held})


def test_rows_come_back_after_a_server_restart(make_server, backend, host, launch):
    server = start_server(make_server, backend, host)
    email, api = signed_up(server)
    a, b = launch(server), launch(server)
    a.sign_in(email)
    b.sign_in(email)
    for title in ("one", "two"):
        a.add(title)
    b.add("three")
    settle(api, [a, b])
    one, two = a.row_id("one"), a.row_id("two")

    server.stop()
    for tab in (a, b):
        tab.wait_for(lambda tab=tab: tab.state() != "open", "the page notices the server left")
    a.add("while down")
    a.toggle(one)
    b.delete(two)
    for tab in (a, b):
        tab.wait_for(lambda tab=tab: tab.outbox() > 0, "writes queued in the outbox")
    assert "while down" in [r["title"] for r in a.dom()]
    assert two not in [r["id"] for r in b.dom()]

    server.start()
    rows = settle(api, [a, b])
    assert sorted((r["title"], r["done"]) for r in rows) == [
        ("one", True),
        ("three", False),
        ("while down", False),
    ]
    for tab in (a, b):
        inits = [f for f in tab.frames() if f["type"] == "q-init"]
        assert len(inits) == 1, "the live query resumed from its tx instead of starting over"

    a.driver.refresh()  # a fresh page: signed in from storage, the same rows
    a.wait_for(lambda: a.js("return window.__todo_debug?.results") > 0, "reloaded result")
    settle(api, [a, b])


def test_live_query_and_writes_go_on_through_token_expiry(make_server, backend, host, launch):
    ttl = 30  # ACCESS_TOKEN_TTL's least
    server = start_server(make_server, backend, host, ACCESS_TOKEN_TTL=ttl)
    email, api = signed_up(server)
    a, b = launch(server), launch(server)
    a.sign_in(email)
    b.sign_in(email)
    tokens = {tab: tab.js("return JSON.stringify(localStorage)") for tab in (a, b)}
    ends = time.monotonic() + ttl + 12
    count = 0
    while time.monotonic() < ends:  # writes from both sides past the first token's expiry
        (a if count % 2 == 0 else b).add(f"note {count}")
        count += 1
        time.sleep(4)
    api = Api(server.url, signed_in_token(server, email))
    rows = settle(api, [a, b])
    assert sorted(r["title"] for r in rows) == sorted(f"note {i}" for i in range(count))
    for tab in (a, b):
        assert tab.js("return JSON.stringify(localStorage)") != tokens[tab], "token refreshed"
        inits = [f for f in tab.frames() if f["type"] == "q-init"]
        assert len(inits) == 1, "the token was renewed without starting the live query over"


def signed_in_token(server: ServerProcess, email: str) -> str:
    r = Api(server.url).post("/api/auth/signin", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()["accessToken"]


def test_thirty_seconds_offline_with_writes_queued(make_server, backend, host, launch):
    server = start_server(make_server, backend, host)
    email, api = signed_up(server)
    a, b = launch(server), launch(server)
    a.sign_in(email)
    b.sign_in(email)
    for title in ("keep", "toggle me", "delete me", "b toggles"):
        a.add(title)
    settle(api, [a, b])
    ids = {title: a.row_id(title) for title in ("keep", "toggle me", "delete me", "b toggles")}

    went = time.monotonic()
    seen_states = len(a.debug("states"))
    set_offline(a.driver, True)
    a.link.cut()  # DevTools' offline mode leaves open sockets alone; the link does not
    a.wait_for(lambda: not a.online() and a.state() == "offline", "a shows offline")
    a.add("offline 1")
    a.toggle(ids["toggle me"])
    a.delete(ids["delete me"])
    a.add("offline 2")
    b.add("from b meanwhile")
    b.toggle(ids["b toggles"])
    a.wait_for(lambda: a.outbox() == 4, "a's writes queued")
    titles = [r["title"] for r in a.dom()]
    assert "offline 1" in titles and "offline 2" in titles and "delete me" not in titles
    time.sleep(max(0.0, 30 - (time.monotonic() - went)))
    assert not a.online() and a.state() != "open" and a.outbox() == 4
    assert "open" not in a.debug("states")[seen_states:], "a stayed away the whole 30 s"
    assert "offline 1" not in [r["title"] for r in server_rows(api)], "nothing left a"

    # A reload before the server is back: the queue comes back from IndexedDB. (The
    # page itself must load, so DevTools goes online; the API stays cut off.)
    set_offline(a.driver, False)
    a.driver.refresh()
    a.wait_for(lambda: a.js("return Boolean(window.__todo_debug)"), "reloaded")
    a.wait_for(lambda: a.outbox() == 4, "the outbox restored from IndexedDB")
    assert a.state() != "open"

    a.link.restore()
    rows = settle(api, [a, b])
    assert sorted((r["title"], r["done"]) for r in rows) == [
        ("b toggles", True),
        ("from b meanwhile", False),
        ("keep", False),
        ("offline 1", False),
        ("offline 2", False),
        ("toggle me", True),
    ]
    assert [r["title"] for r in rows].index("offline 1") < [r["title"] for r in rows].index(
        "offline 2"
    ), "the outbox sent a's writes in order"
