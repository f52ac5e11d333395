"""The JavaScript client the admin dashboard runs on, served at /admin/client/ from the
package on both backends: its real modules with a JavaScript type under the page's
CSP, nothing outside clients/js/src however the path is written, and a wheel that
carries the files themselves (the checkout has a symlink)."""

from __future__ import annotations

import http.client
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT_SRC = ROOT / "clients" / "js" / "src"
MODULES = sorted(p.name for p in CLIENT_SRC.glob("*.js"))


def raw_get(url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET with the path sent as written (no client-side dot-segment clean-up)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_every_client_module_is_served_as_javascript_under_the_csp(server):
    assert "index.js" in MODULES and "socket.js" in MODULES
    for name in MODULES:
        status, headers, body = raw_get(server.url, f"/admin/client/{name}")
        assert status == 200, name
        assert headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert body == (CLIENT_SRC / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/client/../../setup.cfg",
        "/admin/client/%2e%2e/%2e%2e/setup.cfg",
        "/admin/client/..%2f..%2f..%2fsetup.cfg",
        "/admin/client/%2e%2e/test/server.js",
        "/admin/client/%2e%2e/package.json",
        "/admin/client/nope.js",
        "/admin/client/",
    ],
)
def test_nothing_outside_the_client_is_served(server, path):
    status, headers, body = raw_get(server.url, path)
    assert status == 404, (path, body[:200])
    assert headers["Content-Type"].startswith("application/json")
    assert b'"NOT_FOUND"' in body


def test_the_package_path_is_the_client_itself_in_git():
    link = ROOT / "handlers" / "admin_static" / "client"
    assert link.is_symlink()
    assert link.resolve() == CLIENT_SRC.resolve()
    staged = subprocess.run(
        ["git", "ls-files", "-s", "handlers/admin_static/client"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert staged.startswith("120000 ")  # a symlink in git, not a copy that drifts


def test_the_wheel_carries_the_client_files(tmp_path):
    build = tmp_path / "src"
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source, target = ROOT / name.decode(), build / name.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(source.readlink())
        elif source.is_file():
            target.write_bytes(source.read_bytes())
    wheels = tmp_path / "w"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(build), "-w", str(wheels), "--no-deps", "-q"],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("actorbase-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        for name in MODULES:
            info = zf.getinfo(f"handlers/admin_static/client/{name}")
            assert info.external_attr >> 28 != 0o12  # a file, not a link
            assert zf.read(info) == (CLIENT_SRC / name).read_bytes()
        names = set(zf.namelist())
    for page in ("index.html", "admin.css", "main.js", "session.js", "views/data.js"):
        assert f"handlers/admin_static/{page}" in names
    assert "handlers/admin_static/api.js" not in names
    assert "handlers/admin_static/live.js" not in names
