"""An upload whose client goes away mid-body is no longer a request in flight.

Tornado never ends a streamed request whose body was cut off, so it stayed counted:
health's `connections.http` (and /metrics' in-flight gauge) kept it for good, and a
stopping server waited out SHUTDOWN_TIMEOUT for it on every SIGTERM.
"""

from __future__ import annotations

import socket
import time

import requests

from tests.serverproc import ADMIN_TOKEN, Api

BOUNDARY = "abortboundary"


def _in_flight(url: str) -> int:
    """Requests in flight, not counting the health request asking."""
    return requests.get(url + "/api/admin/health", timeout=10).json()["connections"]["http"] - 1


def _settled(url: str, want: int) -> int:
    """The in-flight count once it reaches `want`, or as it stands after 10 s."""
    deadline = time.monotonic() + 10
    while (seen := _in_flight(url)) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    return seen


def test_an_upload_cut_off_mid_body_is_not_left_in_flight(server):
    path = f"abort/{time.monotonic_ns()}.txt"
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="path"\r\n\r\n{path}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        "Content-Type: text/plain\r\n\r\nthe first bytes of many"
    ).encode()
    request = (
        "POST /api/storage/upload HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {ADMIN_TOKEN}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        "Content-Length: 100000\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request + head)
        # Counted while its body streams: the upload has begun.
        assert _settled(server.url, 1) == 1
    # The client is gone: the request is over, though its body never ended.
    assert _settled(server.url, 0) == 0
    listed = Api(server.url, ADMIN_TOKEN).get("/api/storage", params={"prefix": "abort/"})
    assert path not in [f["path"] for f in listed.json()["files"]]
