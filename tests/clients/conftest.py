"""Fixtures for the Python client's tests: the client from this checkout, a helper to
run a scenario on a fresh event loop, and a TCP gate to cut the network on demand.

The client talks to the real server (tests/serverproc.py) over real sockets; the gate
is a plain TCP relay in front of it, so a test can drop connections, hold the client
off, or swallow one response, without touching the client or the server."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

# The client of this checkout, whether or not (and from wherever) it is pip-installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))

T = TypeVar("T")

PASSWORD = "correct horse battery"


def run(coro: Coroutine[Any, Any, T], timeout: float = 100) -> T:
    """Run one scenario on a fresh loop (the suite has no pytest-asyncio)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def new_email() -> str:
    return f"py-{uuid.uuid4().hex[:12]}@example.com"


async def eventually(check: Callable[[], Any], within: float = 15, what: str = "") -> Any:
    """Poll `check` until it returns something truthy (a condition, not a clock)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


async def signed_up(ab: Any, email: str | None = None) -> str:
    await ab.auth.sign_up(email or new_email(), PASSWORD)
    return str(ab.auth.user["id"])


class Gate:
    """A TCP relay to `target_port`. `cut()` closes every relayed connection and
    refuses new ones until `open()`; `freeze()` silently drops whatever the connections
    open now carry, both ways, as a cable pulled without a FIN would (new connections
    pass); `swallow_next(marker)` forwards the next request
    containing `marker` to the server but closes the client's side without its
    response (an acknowledgement lost on the way back)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open = True
        self._links: set[asyncio.StreamWriter] = set()
        self._swallow: bytes | None = None
        self._relays: set[asyncio.Task[Any]] = set()
        self._frozen: set[asyncio.StreamWriter] = set()
        self.swallowed = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Gate:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
        if self._relays:  # cut() aborted their sockets: they end on their own
            await asyncio.wait(list(self._relays), timeout=5)

    def cut(self) -> None:
        self._open = False
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    def open(self) -> None:
        self._open = True

    def freeze(self) -> None:
        self._frozen.update(self._links)

    def swallow_next(self, marker: bytes) -> None:
        self._swallow = marker

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        task.add_done_callback(self._relays.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))
        swallowing = asyncio.Event()

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    if dst in self._frozen:
                        continue
                    if up and self._swallow is not None and self._swallow in data:
                        self._swallow = None
                        self.swallowed += 1
                        swallowing.set()
                    if not up and swallowing.is_set():
                        # The server answered: the client never hears it.
                        writer.transport.abort()
                        return
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(
            pump(reader, up_writer, True), pump(up_reader, writer, False), return_exceptions=True
        )
        self._links.discard(writer)
        self._links.discard(up_writer)


@pytest.fixture
def gate_factory() -> Callable[[int], Awaitable[Gate]]:
    async def make(port: int) -> Gate:
        return await Gate(port).start()

    return make
