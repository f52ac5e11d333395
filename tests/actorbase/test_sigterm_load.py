"""SIGTERM under REST and WebSocket write load, on both backends: every request sent
before the signal is answered, every WebSocket mutate sent before it is answered
before the 1001 close, the exit status is 0, and every acknowledged write is there
after a restart on the same database."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import signal
import threading
import time

import requests
import tornado.websocket
import ujson

from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api

REST_THREADS = 4
WS_CLIENTS = 3
WINDOW = 8
"""Mutates a WebSocket client keeps unanswered at most (it streams, pipelined)."""


@dataclasses.dataclass
class Sent:
    at: float
    """time.monotonic() once handed to the socket."""
    answer: str | None = None
    """status code, "mutate-ok", "mutate-error:<code>", or "connection error"."""


def _rest_writer(base: str, n: int, stop: threading.Event, log: dict[str, Sent]) -> None:
    api = Api(base, ADMIN_TOKEN)  # one keep-alive session per thread
    i = 0
    while not stop.is_set():
        id = f"h{n}-{i}"
        i += 1
        log[id] = sent = Sent(time.monotonic())
        try:
            response = api.post("/api/data/sigterm", json={"id": id, "n": i})
        except requests.ConnectionError:
            sent.answer = "connection error"
            return  # refused: the server stopped listening
        sent.answer = str(response.status_code)


async def _ws_writer(base: str, token: str, n: int, log: dict[str, Sent]) -> int | None:
    """Stream mutates until the server closes; returns the close code."""
    ws = await tornado.websocket.websocket_connect(base.replace("http", "ws", 1) + "/ws")
    await ws.write_message(ujson.dumps({"type": "auth", "token": token}))
    assert ujson.loads(await ws.read_message())["type"] == "auth-ok"
    window = asyncio.Semaphore(WINDOW)

    async def send() -> None:
        i = 0
        while True:
            await window.acquire()
            id = f"w{n}-{i}"
            i += 1
            op = {"op": "set", "entity": "sigterm", "id": id, "data": {"n": i}}
            # Logged first: the answer may be read before this write's future resolves.
            log[id] = sent = Sent(math.inf)
            try:
                await ws.write_message(ujson.dumps({"type": "mutate", "id": id, "ops": [op]}))
            except tornado.websocket.WebSocketClosedError:
                return
            sent.at = time.monotonic()

    sender = asyncio.ensure_future(send())
    while (text := await ws.read_message()) is not None:
        message = ujson.loads(text)
        if message["type"] == "mutate-ok":
            log[message["id"]].answer = "mutate-ok"
        elif message["type"] in ("mutate-error", "error") and "id" in message:
            log[message["id"]].answer = f"{message['type']}:{message['error']['code']}"
        else:
            continue
        window.release()
    sender.cancel()
    return ws.close_code


def test_sigterm_under_write_load_answers_everything(make_server, backend):
    server = make_server(backend, WS_MESSAGE_RATE=100000)
    user = signup(Api(server.url))
    rest: dict[str, Sent] = {}
    ws: dict[str, Sent] = {}
    stop = threading.Event()

    async def go() -> tuple[float, list[int | None], int]:
        threads = [
            threading.Thread(target=_rest_writer, args=(server.url, n, stop, rest))
            for n in range(REST_THREADS)
        ]
        for thread in threads:
            thread.start()
        clients = [
            asyncio.ensure_future(_ws_writer(server.url, user.access, n, ws))
            for n in range(WS_CLIENTS)
        ]
        await asyncio.sleep(1.5)  # under load
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        codes = await asyncio.wait_for(asyncio.gather(*clients), 30)
        exit_code = await asyncio.get_running_loop().run_in_executor(None, server.proc.wait, 30)
        stop.set()
        for thread in threads:
            thread.join(30)
        return signalled, codes, exit_code

    try:
        signalled, close_codes, exit_code = asyncio.run(go())
    finally:
        stop.set()
    assert exit_code == 0, server.log()
    assert close_codes == [1001] * WS_CLIENTS

    # HTTP: a response for every request; refused only once the server had stopped.
    before = [s for s in rest.values() if s.at < signalled]
    assert len(before) > 20, "no load before the signal"
    answers = {s.answer for s in rest.values()}
    assert answers <= {"201", "connection error"}, answers
    assert all(s.answer == "201" for s in before), [s for s in before if s.answer != "201"]

    # WebSocket: everything sent before the signal was answered before the close.
    before = [s for s in ws.values() if s.at < signalled]
    assert len(before) > 20, "no load before the signal"
    assert all(s.answer is not None for s in before), [s for s in before if s.answer is None]
    answers = {s.answer for s in ws.values()} - {None}
    assert answers <= {"mutate-ok", "mutate-error:INTERNAL"}, answers

    acknowledged = {id for id, s in rest.items() if s.answer == "201"} | {
        id for id, s in ws.items() if s.answer == "mutate-ok"
    }
    server.start()
    listed = Api(server.url, ADMIN_TOKEN).get("/api/data/sigterm", params={"limit": 1000})
    total = listed.json()["total"]
    stored: set[str] = set()
    for offset in range(0, total, 1000):
        page = Api(server.url, ADMIN_TOKEN).get(
            "/api/data/sigterm", params={"limit": 1000, "offset": offset, "order": "id"}
        )
        stored |= {row["id"] for row in page.json()["data"]}
    assert acknowledged <= stored, sorted(acknowledged - stored)[:10]
