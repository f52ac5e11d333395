"""The WebSocket handshake and frame protocol over raw sockets, on both accept paths:
plain upgrades answered before routing (handlers.upgrade) and the rest through
Tornado's handler (handlers.ws.WebSocket), on both backends."""

from __future__ import annotations

import base64
import os
import socket
import struct
from typing import Any

import pytest
import ujson

from tests.serverproc import ADMIN_TOKEN, ServerProcess

ALLOWED = "https://app.example.com"


@pytest.fixture(scope="module")
def server(make_module_server, backend) -> ServerProcess:
    return make_module_server(backend, CORS_ORIGINS=ALLOWED, WS_MAX_MESSAGE_BYTES="1024")


def frame(payload: bytes, opcode: int = 1, fin: bool = True) -> bytes:
    """A masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def text(message: Any) -> bytes:
    return frame(ujson.dumps(message).encode())


class Raw:
    """A blocking client that sends handshake bytes as given and reads frames."""

    def __init__(self, server: ServerProcess, request: bytes) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.sendall(request)
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {
            k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
        }

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self) -> tuple[int, bytes]:
        """The next frame from the server: its opcode and payload (never masked)."""
        b0, b1 = self._need(2)
        assert b1 & 0x80 == 0, "a server's frames are not masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._need(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._need(8))[0]
        return b0 & 0x0F, self._need(n)

    def message(self) -> dict[str, Any]:
        opcode, payload = self.frame()
        assert opcode == 1, (opcode, payload)
        return ujson.loads(payload)

    def close(self) -> None:
        self.sock.close()


def handshake(server: ServerProcess, key: str | None = None, **headers: str) -> bytes:
    host = server.url.removeprefix("http://")
    fields = {
        "Host": host,
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key or base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    for name, value in headers.items():
        name = name.replace("_", "-")
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    lines = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return f"GET /ws HTTP/1.1\r\n{lines}\r\n".encode()


def test_accept_value_request_id_and_pipelined_first_frame(server):
    # RFC 6455 1.3's example key and answer; auth sent in the handshake's own packet.
    request = handshake(server, "dGhlIHNhbXBsZSBub25jZQ==", X_Request_ID="perfws-accept-1")
    ws = Raw(server, request + text({"type": "auth", "token": ADMIN_TOKEN}))
    assert ws.status == 101
    assert ws.headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert ws.headers["upgrade"].lower() == "websocket"
    assert ws.headers["connection"].lower() == "upgrade"
    assert ws.headers["x-request-id"] == "perfws-accept-1"
    assert "sec-websocket-protocol" not in ws.headers
    assert ws.message()["type"] == "auth-ok"
    ws.close()


def test_offered_subprotocols_and_compression_are_declined(server):
    ws = Raw(
        server,
        handshake(
            server,
            Sec_WebSocket_Protocol="chat, v2",
            Sec_WebSocket_Extensions="permessage-deflate; client_max_window_bits",
        ),
    )
    assert ws.status == 101
    assert "sec-websocket-protocol" not in ws.headers
    assert "sec-websocket-extensions" not in ws.headers
    ws.sock.sendall(text({"type": "auth", "token": ADMIN_TOKEN}))
    assert ws.message()["type"] == "auth-ok"
    ws.close()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "https://evil.example.com"}, 403),
        ({"Origin": "https://evil.example.com", "Sec-Fetch-Site": "cross-site"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),  # cross-site without an Origin
        ({"Sec-WebSocket-Version": "8"}, 426),
        ({"Sec-WebSocket-Key": None}, 400),
        ({"Upgrade": "h2c"}, 400),
        ({"Connection": "keep-alive"}, 400),
        ({"Origin": ALLOWED}, 101),
        ({"Origin": ALLOWED, "Sec-Fetch-Site": "cross-site"}, 101),
        ({"Origin": "https://evil.example.com", "Sec-Fetch-Site": "same-origin"}, 101),
        ({"Connection": "keep-alive, Upgrade"}, 101),
    ],
)
def test_handshakes_answered_as_tornado_does(server, headers, status):
    ws = Raw(server, handshake(server, **{k.replace("-", "_"): v for k, v in headers.items()}))
    assert ws.status == status, ws.headers
    if status == 426:
        assert ws.headers["sec-websocket-version"] == "13"
    if status == 101:
        ws.sock.sendall(text({"type": "auth", "token": ADMIN_TOKEN}))
        assert ws.message()["type"] == "auth-ok"
    ws.close()


def test_a_handshake_with_a_body_takes_the_long_path_and_works(server):
    request = handshake(server, Content_Length="5") + b"hello"
    ws = Raw(server, request)
    assert ws.status == 101
    ws.sock.sendall(text({"type": "auth", "token": ADMIN_TOKEN}))
    assert ws.message()["type"] == "auth-ok"
    ws.close()


@pytest.mark.parametrize("body", [None, "5"])  # the short path, then the long one
def test_frame_protocol(server, body):
    extra = {"Content_Length": body} if body else {}
    ws = Raw(server, handshake(server, **extra) + (b"hello" if body else b""))
    assert ws.status == 101
    # A message in three fragments, a ping interleaved: the pong echoes its payload.
    auth = ujson.dumps({"type": "auth", "token": ADMIN_TOKEN}).encode()
    ws.sock.sendall(
        frame(auth[:10], opcode=1, fin=False)
        + frame(b"are you there", opcode=9)
        + frame(auth[10:20], opcode=0, fin=False)
        + frame(auth[20:], opcode=0)
    )
    assert ws.frame() == (10, b"are you there")
    assert ws.message()["type"] == "auth-ok"
    # Over WS_MAX_MESSAGE_BYTES: an error, the socket stays open.
    ws.sock.sendall(text({"type": "pong", "pad": "x" * 1100}))
    assert ws.message()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    # Over four times that: closed with 1009.
    ws.sock.sendall(frame(b"x" * 4200))
    opcode, payload = ws.frame()
    assert opcode == 8 and struct.unpack(">H", payload[:2])[0] == 1009
    ws.close()


def test_client_close_is_echoed(server):
    ws = Raw(server, handshake(server))
    ws.sock.sendall(text({"type": "auth", "token": ADMIN_TOKEN}))
    assert ws.message()["type"] == "auth-ok"
    ws.sock.sendall(frame(struct.pack(">H", 1000) + b"bye", opcode=8))
    opcode, payload = ws.frame()
    assert opcode == 8 and struct.unpack(">H", payload[:2])[0] == 1000
    assert ws.sock.recv(10) == b""  # then the server closes the connection
    ws.close()


def test_unnegotiated_reserved_bits_drop_the_connection(server):
    ws = Raw(server, handshake(server))
    ws.sock.sendall(bytes([0x81 | 0x40, 0x80 | 2]) + b"\0\0\0\0{}")  # RSV1 unnegotiated
    assert ws.sock.recv(10) == b""
    ws.close()
