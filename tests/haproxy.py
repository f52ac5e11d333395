"""HAProxy (Debian's package) in front of actorbase nodes, for the load-balancer test
and bench: round robin, health checks on /api/admin/health, `timeout tunnel` for
WebSockets and server/client timeouts above the SSE heartbeat. Each response names
the server that answered in `X-Served-By`, so a test knows where a socket landed.

A server slot is a fixed 127.0.0.1 port: a node that dies is replaced by a new one
on the same port (as a restarted dyno is), and HAProxy's checks bring it back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.serverproc import free_port

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def config(
    port: int,
    servers: dict[str, int],
    stats_socket: Path | None = None,
    check_inter: str = "2s",
    fall: int = 3,
    rise: int = 2,
    stream_timeout: str = "60s",
    tunnel_timeout: str = "1h",
    check_timeout: str = "2s",
) -> str:
    """An HAProxy config: `servers` maps a name to a port on 127.0.0.1.

    `stream_timeout` (client and server inactivity) must exceed SSE_HEARTBEAT, as an
    SSE stream is an ordinary response to HAProxy; `tunnel_timeout` must exceed
    WS_PING_INTERVAL, as an upgraded WebSocket is a tunnel. `check_timeout` apart from
    `check_inter`: a dead node refuses at once, a busy one may answer a check slowly,
    and `shutdown-sessions` would cut its sockets if a slow answer marked it down."""
    stats = f"    stats socket {stats_socket} mode 600 level admin\n" if stats_socket else ""
    # A node marked down (hung, or cut off) loses its sockets: their clients reconnect.
    on_down = "on-marked-down shutdown-sessions"
    lines = "".join(f"    server {name} 127.0.0.1:{p}\n" for name, p in servers.items())
    return f"""global
    maxconn 4096
{stats}
defaults
    mode http
    timeout connect 2s
    timeout check {check_timeout}
    timeout client {stream_timeout}
    timeout server {stream_timeout}
    timeout tunnel {tunnel_timeout}
    timeout client-fin 5s
    timeout http-request 10s
    retries 3
    option redispatch 1

frontend actorbase
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET /api/admin/health
    http-check expect status 200
    default-server check inter {check_inter} fall {fall} rise {rise} {on_down}
    http-response set-header X-Served-By %s
{lines}"""


def require_haproxy() -> None:
    """Skip without haproxy, unless in CI (.ci/run installs it)."""
    if not os.path.exists(HAPROXY):
        if os.environ.get("CI"):
            raise RuntimeError("haproxy is not installed (.ci/run installs it)")
        pytest.skip("haproxy is not installed")


class HAProxy:
    """One HAProxy process on a free port; `url` is where clients connect."""

    def __init__(self, workdir: Path, servers: dict[str, int], **options: str | int) -> None:
        require_haproxy()
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.servers = servers
        self.sock = workdir / "haproxy.sock"
        self.cfg = workdir / "haproxy.cfg"
        self.cfg.write_text(config(self.port, servers, self.sock, **options))
        self.log_path = workdir / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15) -> HAProxy:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(self.cfg)], stdout=log, stderr=subprocess.STDOUT
        )
        self.wait(lambda: list(self.status().values()) == ["UP"] * len(self.servers), timeout)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def command(self, line: str) -> str:
        """One command on the stats socket (HAProxy's runtime API)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.sock))
            s.sendall(line.encode() + b"\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return out.decode()

    def stat(self, field: str) -> dict[str, str]:
        """One column of `show stat` for each server."""
        rows = self.command("show stat").splitlines()
        head = rows[0].lstrip("# ").split(",")
        out = {}
        for row in rows[1:]:
            fields = dict(zip(head, row.split(","), strict=False))
            if fields.get("pxname") == "nodes" and fields.get("svname") in self.servers:
                out[fields["svname"]] = fields[field]
        return out

    def status(self) -> dict[str, str]:
        """Each server's check status as HAProxy sees it: UP, DOWN, ..."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"haproxy exited {self.proc.returncode}:\n{self.log()}")
        with contextlib.suppress(OSError):
            return {name: s.split(" ")[0] for name, s in self.stat("status").items()}
        return {}

    def wait(self, done, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"haproxy: timed out, servers {self.status()}:\n{self.log()}")
            time.sleep(0.05)

    def wait_status(self, name: str, status: str, timeout: float = 15) -> None:
        self.wait(lambda: self.status().get(name) == status, timeout)

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kw)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
