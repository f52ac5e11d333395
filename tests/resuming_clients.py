"""Clients that lose their node and come back, as docs/resume.md tells a client to:
reconnect, auth again, resubscribe from the last tx seen (WebSocket `since`, SSE
`Last-Event-ID`), enter presence again; and a writer that retries a write whose answer
was lost with the same Idempotency-Key.

Every client counts each row it was told of, so a diff missed or sent twice on a
resume shows as a count other than one. Used by tests.failover.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from typing import Any

import requests
import tornado.httpclient
import tornado.websocket
import ujson

from tests.wsclient import apply_presence


def live_query(entity: str) -> dict[str, Any]:
    return {entity: {"$order": {"n": "asc"}, "$limit": 1000}}


class LiveResult:
    """One live query's result as a client holds it, and how often each row was added."""

    def __init__(self, entity: str) -> None:
        self.entity = entity
        self.rows: dict[str, dict[str, Any]] = {}
        self.adds: collections.Counter[str] = collections.Counter()
        self.tx: int | None = None
        """The tx of the last q-init or q-diff applied: where a resume starts."""
        self.resumes: list[str] = []
        """The kind of the first frame after each resume: q-diff, or q-init if the
        server could not replay (then counts start over for the rows it carries)."""
        self._resuming = False

    def resubscribing(self) -> int | None:
        """The `since` to send; the next frame is the resume's answer."""
        self._resuming = self.tx is not None
        return self.tx

    def apply(self, kind: str, body: dict[str, Any]) -> None:
        if self._resuming:
            self.resumes.append(kind)
            self._resuming = False
        if kind == "q-init":
            self.rows = {r["id"]: r for r in body["data"][self.entity]}
            self.adds = collections.Counter(self.rows)
        elif kind == "q-diff":
            for rid in body["removed"]:
                self.rows.pop(rid, None)
            for row in body["added"]:
                self.rows[row["id"]] = row
                self.adds[row["id"]] += 1
            for change in body["updated"]:
                row = self.rows[change["id"]]
                row.update({k: v for k, v in change.items() if v is not None})
                for k in [k for k, v in change.items() if v is None]:
                    row.pop(k, None)
        else:
            return
        self.tx = body["tx"]


class WsMember:
    """A WebSocket client: one live query and one presence room, through `base`."""

    def __init__(self, index: int, base: str, token: str, entity: str, room: str) -> None:
        self.index = index
        self.url = base.replace("http", "ws", 1) + "/ws"
        self.token = token
        self.room = room
        self.query = live_query(entity)
        self.live = LiveResult(entity)
        self.peers: dict[str, dict[str, Any]] = {}
        self.left: set[str] = set()
        """Peer ids this member heard leave."""
        self.rejoined: list[str] = []
        """Peer ids heard joining after they had left (a dead socket's id never should)."""
        self.server: str | None = None
        """The balancer's name for the node this socket is on (X-Served-By)."""
        self.conn_id: str | None = None
        self.connections = 0
        self.errors: list[dict[str, Any]] = []
        self._ws: tornado.websocket.WebSocketClientConnection | None = None
        self._stop = False

    @property
    def data(self) -> dict[str, Any]:
        return {"member": self.index}

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Connect, and on every loss reconnect, until `close`."""
        while not self._stop:
            with contextlib.suppress(
                OSError, tornado.httpclient.HTTPClientError, tornado.websocket.WebSocketError
            ):
                await self._session(ready)
            ready = None
            if not self._stop:
                await asyncio.sleep(0.1)

    async def _session(self, ready: asyncio.Event | None) -> None:
        request = tornado.httpclient.HTTPRequest(self.url, connect_timeout=5, request_timeout=5)
        ws = self._ws = await tornado.websocket.websocket_connect(request)
        try:
            self.server = ws.headers.get("X-Served-By")
            await self._send({"type": "auth", "token": self.token})
            while True:
                m = await self._read()
                if m is None:
                    return
                if m["type"] == "auth-ok":
                    break
                self._handle(m)
            await self._send(
                {
                    "type": "subscribe",
                    "id": "s",
                    "query": self.query,
                    "since": self.live.resubscribing(),
                }
            )
            await self._send(
                {"type": "presence-enter", "id": "p", "room": self.room, "data": self.data}
            )
            self.conn_id = m["connectionId"]
            self.connections += 1
            if ready is not None:
                ready.set()
            while (m := await self._read()) is not None:
                self._handle(m)
        finally:
            ws.close()
            self._ws = None

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.write_message(ujson.dumps(message))

    async def _read(self) -> dict[str, Any] | None:
        assert self._ws is not None
        text = await self._ws.read_message()
        return None if text is None else ujson.loads(text)

    def _handle(self, m: dict[str, Any]) -> None:
        kind = m["type"]
        if kind == "ping":
            assert self._ws is not None
            self._ws.write_message('{"type":"pong"}')
        elif kind in ("q-init", "q-diff"):
            self.live.apply(kind, m)
        elif kind == "presence-change":
            if m.get("event") == "leave":
                self.left.add(m["peer"]["id"])
            elif m.get("event") == "join" and m["peer"]["id"] in self.left:
                self.rejoined.append(m["peer"]["id"])
            apply_presence(self.peers, m)
        elif kind == "error":
            self.errors.append(m)

    def close(self) -> None:
        self._stop = True
        if self._ws is not None:
            self._ws.close()


class SseMember:
    """An SSE client on a thread: reconnects with `Last-Event-ID` on every loss."""

    def __init__(self, base: str, token: str, entity: str) -> None:
        self.base = base
        self.token = token
        self.live = LiveResult(entity)
        self.server: str | None = None
        self.connections = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SseMember:
        self._thread.start()
        return self

    def _run(self) -> None:
        params = {"q": ujson.dumps(self.live_query)}
        while not self._stop.is_set():
            headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
            since = self.live.resubscribing()
            if since is not None:
                headers["Last-Event-ID"] = str(since)
            try:
                with requests.get(
                    self.base + "/api/subscribe",
                    params=params,
                    headers=headers,
                    stream=True,
                    timeout=(5, 10),
                ) as response:
                    if response.status_code != 200:
                        self.errors.append(f"{response.status_code} {response.text[:200]}")
                        time.sleep(0.1)
                        continue
                    self.server = response.headers.get("X-Served-By")
                    self.connections += 1
                    self._read(response)
            except requests.RequestException:
                pass
            time.sleep(0.1)

    @property
    def live_query(self) -> dict[str, Any]:
        return live_query(self.live.entity)

    def _read(self, response: requests.Response) -> None:
        event, data = "message", None
        for line in response.iter_lines(decode_unicode=True):
            if self._stop.is_set():
                return
            if line == "":
                if data is not None:
                    with self._lock:
                        self.live.apply(event, ujson.loads(data))
                event, data = "message", None
            elif line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(15)


class Writer:
    """Numbered writes, one after another, each a new row `w<n>` with an idempotency
    key: an answer lost to a dead node (a 502/503 or a cut connection from the
    balancer) is retried with the same key until one comes."""

    def __init__(
        self, base: str, token: str, entity: str, interval: float = 0.05, most: int = 900
    ) -> None:
        """At most `most` writes: the live query's $limit (1000) must hold them all."""
        self.base = base
        self.most = most
        self.entity = entity
        self.interval = interval
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.acked: dict[int, int] = {}
        """n -> the tx its answer named."""
        self.retries = 0
        self.replayed = 0
        self.sent_at: float | None = None
        """When the request now waiting for its answer went out."""
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set() and n < self.most:
            n += 1
            self._write(n)
            time.sleep(self.interval)

    def _write(self, n: int) -> None:
        ops = [{"entity": self.entity, "id": f"w{n:05d}", "op": "set", "data": {"n": n}}]
        key = f"{self.entity}-{n}"
        for _ in range(600):
            self.sent_at = time.monotonic()
            with contextlib.suppress(requests.RequestException):
                r = self.session.post(
                    self.base + "/api/mutate",
                    json={"ops": ops},
                    headers={"Idempotency-Key": key},
                    timeout=5,
                )
                self.sent_at = None
                if r.status_code == 200:
                    self.acked[n] = r.json()["tx"]
                    self.replayed += r.headers.get("Idempotent-Replayed") == "true"
                    return
                if r.status_code < 500:
                    self.failures.append(f"w{n}: {r.status_code} {r.text[:200]}")
                    return
            self.sent_at = None
            self.retries += 1
            time.sleep(0.05)
        self.failures.append(f"w{n}: no answer after 600 tries")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


async def until(done, within: float, what: str) -> float:
    """Wait for `done()`; the seconds it took. AssertionError naming `what` after
    `within` seconds."""
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > within:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start
