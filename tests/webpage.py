"""What the browser tests and bench need around a real page: a static server for
`examples/web/` and the JS client, a TCP link per browser that can hold or cut that
browser's traffic to the API server, and headless Chromium (Debian's chromium and
chromium-driver, driven by selenium; nothing is downloaded at run time).

The client is served from ACTORBASE_JS_CLIENT when set (another checkout's
`clients/js`), else from this repository's `clients/js`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import tornado.web
from selenium import webdriver

from tests.chromium import CHROMEDRIVER, CHROMIUM, launch
from tests.serverproc import free_port

ROOT = Path(__file__).resolve().parent.parent
BLANK = b"<!doctype html><meta charset=utf-8><link rel=icon href=data:,><title>blank</title>"
T = TypeVar("T")

# Installed before any page script: every frame the page's WebSockets receive, as
# {type, id, tx, rows, ids, bytes} (ids: the rows a diff touches), in window.__frames:
# the wire, whatever the client does with it.
FRAME_RECORDER = """
(() => {
  const Native = window.WebSocket;
  window.__frames = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        try {
          const m = JSON.parse(event.data);
          const ids = [...(m.added ?? []).map((r) => r.id), ...(m.updated ?? []).map((r) => r.id),
                       ...(m.removed ?? [])];
          window.__frames.push({type: m.type, id: m.id ?? null, tx: m.tx ?? null,
                                rows: ids.length, ids, bytes: event.data.length});
        } catch (e) {}
      });
    }
  };
})();
"""


def client_dir() -> Path:
    """The JS client package to serve at /clients/js/."""
    return Path(os.environ.get("ACTORBASE_JS_CLIENT") or ROOT / "clients" / "js").resolve()


def chromium_available() -> bool:
    return bool(CHROMIUM and CHROMEDRIVER)


class _Blank(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(BLANK)


class _Static(tornado.web.StaticFileHandler):
    def set_extra_headers(self, path: str) -> None:
        # Pages and modules are edited while the tests run: never serve a stale one.
        self.set_header("Cache-Control", "no-store")


class Link:
    """A TCP relay between one browser and the API server. `cut()` drops its open
    connections and refuses new ones (the browser's network is gone, the server and
    other browsers are not); `hold()` keeps the server's bytes from this browser
    until `release()` (the server has answered; the page has not heard yet). The
    server may be restarted on its port behind it."""

    def __init__(self, host: PageHost, upstream_port: int) -> None:
        self._host = host
        self._upstream = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._up = True
        self._flowing: asyncio.Event | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._server = host.run(self._listen())

    async def _listen(self) -> asyncio.Server:
        self._flowing = asyncio.Event()
        self._flowing.set()
        return await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer.transport, up_writer.transport)
        self._transports.update(pair)
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, downstream=False),
                self._pipe(up_reader, writer, downstream=True),
            )
        finally:
            self._transports.difference_update(pair)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, downstream: bool
    ) -> None:
        assert self._flowing is not None
        try:
            while data := await reader.read(65536):
                if downstream:
                    await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()

    def cut(self) -> None:
        def _cut() -> None:
            self._up = False
            for transport in list(self._transports):
                transport.abort()

        self._host.call(_cut)

    def restore(self) -> None:
        self._host.call(lambda: setattr(self, "_up", True))

    def hold(self) -> None:
        self._host.call(lambda: self._flowing.clear())  # type: ignore[union-attr]

    def release(self) -> None:
        self._host.call(lambda: self._flowing.set())  # type: ignore[union-attr]

    def close(self) -> None:
        self.release()
        self.cut()
        self._host.call(self._server.close)


class PageHost:
    """A thread with its own event loop serving the pages (`url`) and the links."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._http = self.run(self._listen())

    async def _listen(self) -> Any:
        app = tornado.web.Application(
            [
                (r"/", _Blank),
                (
                    r"/examples/web/(.*)",
                    _Static,
                    {"path": str(ROOT / "examples" / "web"), "default_filename": "index.html"},
                ),
                (r"/clients/js/(.*)", _Static, {"path": str(client_dir())}),
            ]
        )
        return app.listen(self.port, "127.0.0.1")

    def run(self, coroutine: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)  # type: ignore[arg-type]

    def call(self, fn: Any) -> None:
        async def _call() -> None:
            fn()

        self.run(_call())

    def link(self, upstream_port: int) -> Link:
        return Link(self, upstream_port)

    def close(self) -> None:
        self.call(self._http.stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def chrome(profile_dir: Path) -> webdriver.Chrome:
    """Headless Chromium with its own profile (its own localStorage and IndexedDB), the
    frame recorder installed in every page, and DevTools' network domain enabled."""
    driver = launch(profile_dir, capabilities={"goog:loggingPrefs": {"browser": "ALL"}})
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FRAME_RECORDER})
    driver.execute_cdp_cmd("Network.enable", {})
    return driver


def set_offline(driver: webdriver.Chrome, offline: bool) -> None:
    """DevTools' offline switch: navigator.onLine and the online/offline events, and no
    new request leaves the page (sockets already open are not closed by it: cut the
    page's Link for that)."""
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
