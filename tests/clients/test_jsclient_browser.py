"""The JS client's browser-only paths in real headless Chromium: an upload through
XMLHttpRequest reporting progress, the session kept in localStorage, writes queued in
IndexedDB, and a live query over the browser's own WebSocket (clients/js's Node tests
cover everything else; these paths do not exist in Node).

The client's sources are served as they are (no build step) from a static server on
another origin, allowed by CORS_ORIGINS. Needs Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver

from tests.chromium import launch, needs_chromium
from tests.serverproc import free_port

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "js"

pytestmark = needs_chromium

# Runs in the page (selenium's execute_async_script): the client from its sources.
SCRIPT = """
const [api, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const { createClient, localStorageTokens, indexedDbOutbox } = await import("/src/index.js");
  const options = { url: api, tokenStorage: localStorageTokens("s"), outbox: indexedDbOutbox("o") };
  const ab = createClient(options);
  await ab.auth.signUp({ email: `b${Date.now()}@example.com`, password: "correct horse battery" });
  const progress = [];
  const bytes = new TextEncoder().encode("browser upload\\n".repeat(50000));
  const file = new Blob([bytes], { type: "text/plain" });
  const up = await ab.storage.upload("b/up.txt", file, { onProgress: (p) => progress.push(p) });
  const live = ab.live({ notes: { $order: { n: "asc" } } });
  await new Promise((resolve) => live.subscribe((r) => r && resolve()));
  const { tx } = await ab.mutate([{ entity: "notes", id: "n1", op: "set", data: { n: 1 } }]);
  while (live.tx < tx) await new Promise((r) => setTimeout(r, 20));
  // A second client in the page: the session comes back from localStorage.
  const again = createClient(options);
  const me = again.auth.user && (await again.data("notes").get("n1"));
  done({ size: up.size, total: bytes.length, progress, liveIds: live.result.notes.map((r) => r.id),
         state: ab.connection.state, restored: me && me.id,
         stored: JSON.parse(localStorage.getItem("s")).user.id === ab.auth.user.id });
})().catch((e) => done({ error: String((e && e.stack) || e) }));
"""

# Writes made while the API is unreachable wait in IndexedDB; a reload finds them.
QUEUE = """
const [api, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const { createClient, localStorageTokens, indexedDbOutbox } = await import("/src/index.js");
  const ab = createClient({
    url: api, tokenStorage: localStorageTokens("s"), outbox: indexedDbOutbox("o"),
  });
  ab.mutate([{ entity: "notes", id: "queued", op: "set", data: { n: 2 } }]).catch(() => {});
  while (ab.outbox.pending < 1) await new Promise((r) => setTimeout(r, 20));
  const rows = await new Promise((resolve, reject) => {
    const open = indexedDB.open("o");
    open.onsuccess = () => {
      const get = open.result.transaction("outbox").objectStore("outbox").getAll();
      get.onsuccess = () => resolve(get.result);
      get.onerror = () => reject(get.error);
    };
  });
  done({ queued: rows.map((e) => e.ops[0].id) });
})().catch((e) => done({ error: String((e && e.stack) || e) }));
"""

FLUSH = """
const [api, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const { createClient, localStorageTokens, indexedDbOutbox } = await import("/src/index.js");
  const ab = createClient({
    url: api, tokenStorage: localStorageTokens("s"), outbox: indexedDbOutbox("o"),
  });
  await ab.outbox.flush();
  while (ab.outbox.pending) await new Promise((r) => setTimeout(r, 50));
  done({ row: await ab.data("notes").get("queued") });
})().catch((e) => done({ error: String((e && e.stack) || e) }));
"""


@pytest.fixture(scope="module")
def static() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=CLIENT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/src/index.js", timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait()


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    driver = launch(tmp_path / "profile")
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def test_upload_progress_session_and_live_query_in_chromium(make_server, static, browser):
    server = make_server("sqlite", CORS_ORIGINS=static)
    browser.get(static + "/")
    out = browser.execute_async_script(SCRIPT, server.url)
    assert "error" not in out, out.get("error")
    assert out["size"] == out["total"] == 750_000
    progress = out["progress"]
    assert progress[-1]["loaded"] == out["total"]
    assert all(b["loaded"] >= a["loaded"] for a, b in itertools.pairwise(progress))
    assert out["liveIds"] == ["n1"]
    assert out["state"] == "open"
    assert out["stored"] is True
    assert out["restored"] == "n1"


def test_writes_queued_in_indexeddb_survive_a_reload(make_server, static, browser):
    server = make_server("sqlite", CORS_ORIGINS=static)
    browser.get(static + "/")
    signed = browser.execute_async_script(
        """
        const [api, done] = [arguments[0], arguments[arguments.length - 1]];
        import("/src/index.js").then(async ({ createClient, localStorageTokens }) => {
          const ab = createClient({ url: api, tokenStorage: localStorageTokens("s") });
          const email = `q${Date.now()}@example.com`;
          await ab.auth.signUp({ email, password: "correct horse battery" });
          done(ab.auth.user.id);
        }).catch((e) => done(null));
        """,
        server.url,
    )
    assert signed
    # The same session against a port nothing listens on: every send fails, writes wait.
    dead = f"http://127.0.0.1:{free_port()}"
    out = browser.execute_async_script(QUEUE, dead)
    assert out == {"queued": ["queued"]}, out
    browser.refresh()
    out = browser.execute_async_script(FLUSH, server.url)
    assert "error" not in out, out.get("error")
    assert out["row"]["n"] == 2
