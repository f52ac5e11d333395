"""Real clients for the realtime tests: Tornado's WebSocket client, a raw socket that
can stop reading (to make the server see a slow consumer), and an SSE reader."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

import requests
import tornado.websocket
import ujson


class WsClient:
    """One WebSocket; `expect` waits for a matching message, keeping the others."""

    def __init__(self, ws: tornado.websocket.WebSocketClientConnection) -> None:
        self.ws = ws
        self.inbox: list[dict[str, Any]] = []
        self.closed = False

    @classmethod
    async def connect(cls, base: str, token: str | None = None) -> WsClient:
        ws = await tornado.websocket.websocket_connect(base.replace("http", "ws", 1) + "/ws")
        client = cls(ws)
        if token is not None:
            await client.send({"type": "auth", "token": token})
            await client.expect("auth-ok")
        return client

    async def send(self, message: Any) -> None:
        await self.ws.write_message(message if isinstance(message, str) else ujson.dumps(message))

    async def _read(self, within: float) -> dict[str, Any] | None:
        text = await asyncio.wait_for(self.ws.read_message(), within)
        if text is None:
            self.closed = True
            return None
        return ujson.loads(text)

    async def expect(self, kind: str, within: float = 10, **fields: Any) -> dict[str, Any]:
        """The first message of type `kind` with `fields` (others are kept for later)."""

        def match(m: dict[str, Any]) -> bool:
            return m.get("type") == kind and all(m.get(k) == v for k, v in fields.items())

        for i, m in enumerate(self.inbox):
            if match(m):
                return self.inbox.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            m = await self._read(max(0.01, deadline - loop.time()))
            if m is None:
                raise AssertionError(f"closed ({self.close_code}) waiting for {kind}: {self.inbox}")
            if match(m):
                return m
            self.inbox.append(m)

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Every message that arrives within `seconds` (plus what is kept)."""
        try:
            while True:
                m = await self._read(seconds)
                if m is None:
                    break
                self.inbox.append(m)
        except TimeoutError:
            pass
        out, self.inbox = self.inbox, []
        return out

    async def closed_with(self, within: float = 10) -> tuple[int | None, str | None]:
        """Wait for the server to close; its code and reason."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not self.closed:
            m = await self._read(max(0.01, deadline - loop.time()))
            if m is not None:
                self.inbox.append(m)
        return self.close_code, self.close_reason

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self.ws.close_reason

    def close(self) -> None:
        self.ws.close()


def apply_presence(peers: dict[str, dict[str, Any]], message: dict[str, Any]) -> None:
    """Apply one `presence-change` to `peers` (peer id -> peer) as a client does: a
    snapshot replaces them all, `join` and `update` set one peer, `leave` removes it."""
    if "peers" in message:
        peers.clear()
        peers.update((p["id"], p) for p in message["peers"])
    elif message["event"] == "leave":
        peers.pop(message["peer"]["id"], None)
    else:
        peers[message["peer"]["id"]] = message["peer"]


class RawWs:
    """A blocking WebSocket on a socket with a tiny receive buffer, so that the server
    sees a slow consumer while the test does not read."""

    def __init__(self, base: str, rcvbuf: int = 4096) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        self.close_code: int | None = None
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head

    def send(self, message: Any) -> None:
        data = ujson.dumps(message).encode()
        mask = os.urandom(4)
        n = len(data)
        header = bytes([0x81])
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, timeout: float = 10) -> dict[str, Any] | None:
        """The next text message (pings answered), or None when the server closed."""
        self.sock.settimeout(timeout)
        while True:
            b0, b1 = self._need(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._need(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._need(8))[0]
            payload = self._need(n)
            opcode = b0 & 0x0F
            if opcode == 8:
                self.close_code = struct.unpack(">H", payload[:2])[0] if n >= 2 else None
                return None
            if opcode == 1:
                message = ujson.loads(payload)
                if message.get("type") == "ping":
                    self.send({"type": "pong"})
                    continue
                return message

    def close(self) -> None:
        self.sock.close()


class SseClient:
    """A streaming SSE reader over requests: `events()` yields (event, id, data)."""

    def __init__(self, base: str, query: Any, token: str | None = None, **headers: str) -> None:
        params = {"q": ujson.dumps(query)}
        hdrs = {"Accept": "text/event-stream", **headers}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        self.response = requests.get(
            base + "/api/subscribe", params=params, headers=hdrs, stream=True, timeout=15
        )
        self._lines = self.response.iter_lines(decode_unicode=True)
        self.comments: list[str] = []

    def next_event(self, until: Callable[[str], bool] | None = None) -> tuple[str, str | None, Any]:
        event, event_id, data = "message", None, None
        for line in self._lines:
            if line == "":
                if data is not None:
                    return event, event_id, ujson.loads(data)
                continue
            if line.startswith(":"):
                self.comments.append(line)
                if until is not None and until(line):
                    return "comment", None, line
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                event = value
            elif field == "id":
                event_id = value
            elif field == "data":
                data = value
        raise EOFError("stream ended")

    def close(self) -> None:
        self.response.close()
