"""File storage over real HTTP: upload, signed URLs, listing, deletion, limits,
aborted uploads and isolation, on both databases and both storage backends (local
disk, and S3 as moto's standalone server in its own process)."""

from __future__ import annotations

import datetime
import hashlib
import secrets
import select
import socket
import time
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
import requests
from urllib3.filepost import encode_multipart_formdata

from store import files
from store.factory import open_store
from store.storage.local import sign
from tests.s3server import S3Server
from tests.serverproc import ADMIN_TOKEN, Api, ServerProcess, error_of

MAX_UPLOAD = 1024 * 1024
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
TEXT = "hello, storage ✓\n".encode() * 50


class Blobs:
    """A server's storage as the operator sees it: proves what is (not) left behind."""

    def __init__(self, kind: str, server: ServerProcess, s3: S3Server | None, bucket: str) -> None:
        self.kind = kind
        self.root = server.data_dir / "storage"
        self.s3 = s3.client() if s3 else None
        self.bucket = bucket

    def objects(self) -> set[str]:
        if self.s3 is None:
            return {str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()}
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {o["Key"] for page in pages for o in page.get("Contents", [])}

    def in_progress(self) -> list[str]:
        """Temp files, or multipart uploads not completed nor aborted."""
        if self.s3 is None:
            return [p.name for p in (self.root / "tmp").iterdir()]
        return [
            u["Key"] for u in self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        ]


@pytest.fixture(scope="module")
def env(make_module_server, backend, storage, request) -> tuple[ServerProcess, Blobs]:
    extra: dict[str, Any] = {"MAX_UPLOAD_BYTES": MAX_UPLOAD}
    moto, bucket = None, ""
    if storage == "s3":
        moto = request.getfixturevalue("s3")
        bucket = moto.bucket()
        extra.update(moto.server_env(bucket))
    server = make_module_server(backend, **extra)
    return server, Blobs(storage, server, moto, bucket)


@pytest.fixture
def server(env) -> ServerProcess:
    return env[0]


@pytest.fixture
def blobs(env) -> Blobs:
    return env[1]


def signup(server: ServerProcess) -> Api:
    email = f"u{secrets.token_hex(5)}@example.com"
    response = requests.post(
        server.url + "/api/auth/signup",
        json={"email": email, "password": "Storage-Tests-" + secrets.token_hex(4)},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return Api(server.url, response.json()["accessToken"])


def upload(
    api: Api, path: str, content: bytes, content_type: str = "text/plain", name: str = "f"
) -> requests.Response:
    return api.post(
        "/api/storage/upload",
        files={"file": (name, content, content_type)},
        data={"path": path},
    )


def listed(api: Api, prefix: str) -> list[str]:
    response = api.get("/api/storage", params={"prefix": prefix})
    assert response.status_code == 200, response.text
    return [f["path"] for f in response.json()["files"]]


def prefix() -> str:
    """Every test writes under its own prefix: the module's server is shared."""
    return f"t{secrets.token_hex(4)}/"


def iso_seconds(text: str) -> float:
    return (
        datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
        .replace(tzinfo=datetime.UTC)
        .timestamp()
    )


def wait_until(check, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# -- upload, download, URL --------------------------------------------------------------


def test_upload_returns_the_seed_shape_and_the_url_serves_the_bytes(server, blobs):
    admin = Api(server.url, ADMIN_TOKEN)
    path = prefix() + "images/photo.png"
    response = upload(admin, path, PNG, "image/png", "photo.png")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"path", "url", "size", "contentType"}
    assert (body["path"], body["size"], body["contentType"]) == (path, len(PNG), "image/png")
    got = requests.get(body["url"], timeout=30)
    assert got.status_code == 200
    assert got.content == PNG
    assert got.headers["Content-Type"].startswith("image/png")
    if blobs.kind == "local":
        assert got.headers["X-Content-Type-Options"] == "nosniff"
        assert got.headers["Content-Disposition"].startswith('inline; filename="photo.png"')
        assert urlsplit(body["url"]).netloc == urlsplit(server.url).netloc
    else:  # S3 applies these overrides; moto does not implement them, so check the URL
        query = parse_qs(urlsplit(body["url"]).query)
        assert query["response-content-type"] == ["image/png"]
        assert query["response-content-disposition"][0].startswith('inline; filename="photo.png"')


def test_get_returns_a_signed_url_with_its_expiry(server):
    admin = Api(server.url, ADMIN_TOKEN)
    path = prefix() + "notes.txt"
    assert upload(admin, path, TEXT).status_code == 201
    response = admin.get("/api/storage/" + quote(path))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"url", "expiresAt"}
    assert abs(iso_seconds(body["expiresAt"]) - (time.time() + 3600)) < 30
    assert requests.get(body["url"], timeout=30).content == TEXT
    short = admin.get("/api/storage/" + quote(path), params={"expiresIn": 120}).json()
    assert abs(iso_seconds(short["expiresAt"]) - (time.time() + 120)) < 30
    for bad in ("10", "700000", "abc", "-5", "1.5"):
        response = admin.get("/api/storage/" + quote(path), params={"expiresIn": bad})
        assert response.status_code == 400, bad
        assert error_of(response)["code"] == "INVALID_ARGUMENT"


def test_range_requests(server, blobs):
    admin = Api(server.url, ADMIN_TOKEN)
    path = prefix() + "range.txt"
    content = bytes(range(48, 58)) * 100  # 1000 bytes of digits
    url = upload(admin, path, content).json()["url"]
    part = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=30)
    assert part.status_code == 206
    assert part.content == content[10:20]
    assert part.headers["Content-Range"] == "bytes 10-19/1000"
    tail = requests.get(url, headers={"Range": "bytes=-5"}, timeout=30)
    assert (tail.status_code, tail.content) == (206, content[-5:])
    rest = requests.get(url, headers={"Range": "bytes=990-"}, timeout=30)
    assert (rest.status_code, rest.content) == (206, content[990:])
    beyond = requests.get(url, headers={"Range": "bytes=5000-"}, timeout=30)
    assert beyond.status_code == 416
    if blobs.kind == "local":  # moto leaves Content-Range off its 416s
        assert beyond.headers["Content-Range"] == "bytes */1000"


def test_types_follow_declared_and_magic_bytes(server, blobs):
    admin = Api(server.url, ADMIN_TOKEN)
    base = prefix()
    before = blobs.objects()
    refused = [
        (b"<html><script>alert(1)</script></html>", "text/html"),  # not an allowed type
        (b"just text, not a picture at all", "image/png"),  # magic bytes disagree
        (PNG, "text/plain"),  # a PNG is not text
        (b"text with a \x00 NUL byte in it", "text/plain"),
        (b"\xff\xfe not UTF-8 text at all....", "text/csv"),
        (b"nothing recognisable in here", "application/octet-stream"),
    ]
    for content, content_type in refused:
        response = upload(admin, base + "x", content, content_type)
        assert response.status_code == 415, (content_type, response.text)
        assert error_of(response)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    sniffed = upload(admin, base + "y.png", PNG, "application/octet-stream")
    assert sniffed.status_code == 201
    assert sniffed.json()["contentType"] == "image/png"
    csv = upload(admin, base + "t.csv", b"a,b\n1,2\n", "text/csv; charset=utf-8")
    assert csv.json()["contentType"] == "text/csv"
    assert len(blobs.objects() - before) == 2
    assert blobs.in_progress() == []
    listed = admin.get("/api/storage", params={"prefix": base}).json()["files"]
    assert [f["path"] for f in listed] == [base + "t.csv", base + "y.png"]


@pytest.mark.parametrize(
    "path",
    [
        "../etc/passwd",
        "a/../b",
        "/abs",
        "a\\b",
        "a\x00b",
        "a\nb",
        "a//b",
        "./a",
        "a/",
        "",
        "x" * 513,
    ],
)
def test_bad_paths_are_400(server, path):
    admin = Api(server.url, ADMIN_TOKEN)
    response = upload(admin, path, TEXT)
    assert response.status_code == 400, response.text
    assert error_of(response)["code"] == "INVALID_ARGUMENT"
    if path:
        response = admin.get("/api/storage/" + quote(path, safe=""))
        assert response.status_code in (400, 404)
        error_of(response)


def test_a_path_of_512_bytes_is_fine(server):
    admin = Api(server.url, ADMIN_TOKEN)
    path = prefix() + "é" * ((512 - 10) // 2)
    path += "x" * (512 - len(path.encode()))
    assert len(path.encode()) == 512
    assert upload(admin, path, TEXT).status_code == 201


def test_malformed_forms_are_400(server, blobs):
    admin = Api(server.url, ADMIN_TOKEN)
    before = blobs.objects()
    cases = [
        {"data": {"path": "a.txt"}},  # no file
        {"files": {"file": ("f", TEXT, "text/plain")}},  # no path
        {"files": {"file": ("f", TEXT, "text/plain")}, "data": {"path": "a", "other": "x"}},
    ]
    for kwargs in cases:
        response = admin.post("/api/storage/upload", **kwargs)
        assert response.status_code == 400, response.text
        assert error_of(response)["code"] == "INVALID_ARGUMENT"
    not_multipart = admin.post("/api/storage/upload", json={"path": "a"})
    assert not_multipart.status_code == 400
    truncated, content_type = encode_multipart_formdata(
        {"path": "a", "file": ("f", TEXT, "text/plain")}
    )
    cut = admin.post(
        "/api/storage/upload", data=truncated[:-20], headers={"Content-Type": content_type}
    )
    assert cut.status_code == 400
    assert blobs.objects() == before
    assert blobs.in_progress() == []


# -- size limits and aborted uploads ---------------------------------------------------


def _form(path: str, content: bytes, content_type: str = "text/plain") -> tuple[bytes, str]:
    return encode_multipart_formdata(
        [("path", path), ("file", ("f", content, content_type))], boundary="abBoundary" + "x" * 20
    )


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def _head(path: str, token: str, content_type: str, length: int | None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Authorization: Bearer {token}",
        f"Content-Type: {content_type}",
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _send_until_answered(sock: socket.socket, pieces: list[bytes]) -> tuple[int, int]:
    """Send `pieces` one by one, stopping as soon as the server answers.
    Returns (status, bytes of `pieces` sent before the answer)."""
    sent = 0
    for piece in pieces:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(piece)
    response = b""
    deadline = time.monotonic() + 10
    while b"\r\n" not in response and time.monotonic() < deadline:
        response += sock.recv(4096)
    return int(response.split(b" ", 2)[1]), sent


def test_declared_content_length_over_the_limit_is_413_before_the_body(server, blobs):
    with _connect(server) as sock:
        sock.sendall(
            _head("/api/storage/upload", ADMIN_TOKEN, "multipart/form-data; boundary=b", 100 << 20)
        )
        status, _ = _send_until_answered(sock, [])
    assert status == 413
    assert blobs.in_progress() == []


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_413_while_streaming(server, blobs, chunked):
    base = prefix()
    body, content_type = _form(base + "big.txt", b"a" * (MAX_UPLOAD + 1))
    pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    if chunked:
        pieces = [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces] + [b"0\r\n\r\n"]
    before = blobs.objects()
    with _connect(server) as sock:
        sock.sendall(
            _head("/api/storage/upload", ADMIN_TOKEN, content_type, None if chunked else len(body))
        )
        status, _ = _send_until_answered(sock, pieces)
    assert status == 413
    wait_until(lambda: blobs.in_progress() == [])
    assert blobs.objects() == before
    admin = Api(server.url, ADMIN_TOKEN)
    assert admin.get("/api/storage", params={"prefix": base}).json()["files"] == []
    # Exactly the limit is fine.
    assert upload(admin, base + "max.txt", b"a" * MAX_UPLOAD).status_code == 201


def test_an_aborted_upload_leaves_nothing(server, blobs):
    admin = Api(server.url, ADMIN_TOKEN)
    base = prefix()
    before = blobs.objects()
    body, content_type = _form(base + "half.txt", b"b" * (MAX_UPLOAD - 100))
    with _connect(server) as sock:
        sock.sendall(_head("/api/storage/upload", ADMIN_TOKEN, content_type, len(body)))
        sock.sendall(body[: len(body) // 2])
        time.sleep(0.5)  # the server has started writing the file
    wait_until(lambda: blobs.in_progress() == [])
    assert blobs.objects() == before
    assert admin.get("/api/storage", params={"prefix": base}).json()["files"] == []
    # The server is fine afterwards, and the path is free.
    assert upload(admin, base + "half.txt", TEXT).status_code == 201


# -- listing, deleting, replacing --------------------------------------------------------


def test_list_pages_with_a_cursor_and_filters_by_prefix(server):
    admin = Api(server.url, ADMIN_TOKEN)
    base = prefix()
    names = [f"{base}docs/{i:02d}.txt" for i in range(5)] + [f"{base}img/a.png"]
    for name in names:
        content, kind = (PNG, "image/png") if name.endswith(".png") else (TEXT, "text/plain")
        assert upload(admin, name, content, kind).status_code == 201
    seen, cursor = [], None
    while True:
        params = {"prefix": base + "docs/", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = admin.get("/api/storage", params=params).json()
        seen += page["files"]
        if not page["hasMore"]:
            assert "cursor" not in page
            break
        assert len(page["files"]) == 2
        cursor = page["cursor"]
    assert [f["path"] for f in seen] == names[:5]
    first = seen[0]
    assert set(first) == {"path", "size", "contentType", "updatedAt"}
    assert (first["size"], first["contentType"]) == (len(TEXT), "text/plain")
    assert abs(iso_seconds(first["updatedAt"]) - time.time()) < 60
    everything = admin.get("/api/storage", params={"prefix": base}).json()
    assert [f["path"] for f in everything["files"]] == names
    assert everything["hasMore"] is False
    # `%` and `_` in a prefix are literal characters, not patterns.
    assert admin.get("/api/storage", params={"prefix": base + "d_cs"}).json()["files"] == []
    for params in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"cursor": "%%%"}):
        response = admin.get("/api/storage", params=params)
        assert response.status_code == 400, params
        error_of(response)


def test_delete_removes_metadata_and_blob(server, blobs):
    admin = Api(server.url, ADMIN_TOKEN)
    path = prefix() + "gone.txt"
    before = blobs.objects()
    url = upload(admin, path, TEXT).json()["url"]
    assert len(blobs.objects() - before) == 1
    response = admin.delete("/api/storage/" + quote(path))
    assert response.status_code == 204
    assert blobs.objects() == before
    assert admin.get("/api/storage/" + quote(path)).status_code == 404
    assert error_of(admin.delete("/api/storage/" + quote(path)))["code"] == "NOT_FOUND"
    assert requests.get(url, timeout=30).status_code in (403, 404)


def test_replacing_a_file_swaps_the_blob(server, blobs):
    admin = Api(server.url, ADMIN_TOKEN)
    path = prefix() + "same.txt"
    before = blobs.objects()
    old_url = upload(admin, path, b"old contents\n").json()["url"]
    new = upload(admin, path, b"new contents, longer\n").json()
    assert len(blobs.objects() - before) == 1
    assert requests.get(new["url"], timeout=30).content == b"new contents, longer\n"
    listed = admin.get("/api/storage", params={"prefix": path}).json()["files"]
    assert [(f["path"], f["size"]) for f in listed] == [(path, 21)]
    if blobs.kind == "local":
        assert requests.get(old_url, timeout=30).status_code == 404


# -- who may see what -----------------------------------------------------------------


def test_files_are_private_to_their_owner(server):
    alice, bob = signup(server), signup(server)
    admin, anon = Api(server.url, ADMIN_TOKEN), Api(server.url)
    base = prefix()
    path = base + "alice.txt"
    assert upload(alice, path, TEXT).status_code == 201
    assert upload(bob, base + "bob.txt", TEXT).status_code == 201

    assert alice.get("/api/storage/" + quote(path)).status_code == 200
    assert error_of(bob.get("/api/storage/" + quote(path)))["code"] == "NOT_FOUND"
    assert error_of(bob.delete("/api/storage/" + quote(path)))["code"] == "NOT_FOUND"
    taken = upload(bob, path, b"mine now\n")
    assert taken.status_code == 403
    assert error_of(taken)["code"] == "PERMISSION_DENIED"
    assert listed(alice, base) == [path]
    assert listed(bob, base) == [base + "bob.txt"]
    assert listed(admin, base) == [path, base + "bob.txt"]
    assert admin.get("/api/storage/" + quote(path)).status_code == 200
    # The admin may replace it; it stays Alice's.
    assert upload(admin, path, b"by admin\n").status_code == 201
    assert alice.get("/api/storage/" + quote(path)).status_code == 200
    for method, target in (("GET", "/api/storage"), ("GET", "/api/storage/" + quote(path))):
        assert error_of(anon.request(method, target))["code"] == "UNAUTHENTICATED"
    assert error_of(upload(anon, base + "anon.txt", TEXT))["code"] == "UNAUTHENTICATED"
    assert bob.delete("/api/storage/" + quote(base + "bob.txt")).status_code == 204
    assert alice.delete("/api/storage/" + quote(path)).status_code == 204


def test_storage_totals_come_from_metadata(server):
    admin = Api(server.url, ADMIN_TOKEN)
    store = open_store(server.database_url, 1)
    try:
        count, size = store.read(files.totals)
        assert upload(admin, prefix() + "count.txt", TEXT).status_code == 201
        assert store.read(files.totals) == (count + 1, size + len(TEXT))
    finally:
        store.close()


# -- local signed URLs ------------------------------------------------------------------


def _local_only(blobs: Blobs) -> None:
    if blobs.kind != "local":
        pytest.skip("S3 checks its own presigned URLs")


def test_tampered_and_expired_urls_are_refused(server, blobs):
    _local_only(blobs)
    admin = Api(server.url, ADMIN_TOKEN)
    path = prefix() + "secret.txt"
    other = prefix() + "other.txt"
    url = upload(admin, path, TEXT).json()["url"]
    other_key = parse_qs(urlsplit(upload(admin, other, TEXT).json()["url"]).query)["k"][0]
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}

    def fetch(path_: str, **changes: str) -> requests.Response:
        q = urlencode({**query, **changes})
        return requests.get(f"{parts.scheme}://{parts.netloc}{path_}?{q}", timeout=30)

    assert fetch(parts.path).status_code == 200
    tampered = [
        fetch(parts.path, s=query["s"][:-2] + ("AA" if not query["s"].endswith("AA") else "BB")),
        fetch(parts.path, e=str(int(query["e"]) + 3600)),
        fetch(parts.path, k=other_key),
        fetch(parts.path.replace("secret", "other")),
        fetch(parts.path, s="é"),
        fetch(parts.path, e="١٢"),
    ]
    for response in tampered:
        assert response.status_code == 403
        assert error_of(response)["code"] == "PERMISSION_DENIED"
    # A validly signed URL past its expiry (signed here with the server's own key).
    [(secret,)] = server.sql("SELECT value FROM ab_secrets WHERE name = 'storage_url_key'")
    secret = secret.encode()
    past = int(time.time()) - 5
    expired = fetch(parts.path, e=str(past), s=sign(secret, path, query["k"], past))
    assert expired.status_code == 403
    assert "expired" in error_of(expired)["message"]
    # A bearer token does not stand in for a signature.
    bare = requests.get(
        f"{parts.scheme}://{parts.netloc}{parts.path}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=30,
    )
    assert bare.status_code == 403


def test_local_downloads_are_safe_to_open(server, blobs):
    _local_only(blobs)
    admin = Api(server.url, ADMIN_TOKEN)
    path = prefix() + 'we"ird; name\u00e9.csv'
    url = upload(admin, path, b"a,b\n1,2\n", "text/csv").json()["url"]
    got = requests.get(url, timeout=30)
    assert got.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    disposition = got.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert 'filename="we_ird__name_.csv"' in disposition
    assert "filename*=UTF-8''we%22ird%3B%20name%C3%A9.csv" in disposition
    head = requests.head(url, timeout=30)
    assert (head.status_code, head.headers["Content-Length"], head.content) == (200, "8", b"")


def test_public_url_sets_the_host_of_signed_urls(make_server, backend):
    server = make_server(backend, PUBLIC_URL="https://files.example.com/")
    url = upload(Api(server.url, ADMIN_TOKEN), "a.txt", TEXT).json()["url"]
    assert url.startswith("https://files.example.com/api/files/a.txt?")


def test_checksum_is_recorded(server):
    admin = Api(server.url, ADMIN_TOKEN)
    path = prefix() + "sum.txt"
    assert upload(admin, path, TEXT).status_code == 201
    store = open_store(server.database_url, 1)
    try:
        meta = store.read(lambda txn: files.get(txn, path))
    finally:
        store.close()
    assert meta is not None
    assert meta.checksum == hashlib.sha256(TEXT).hexdigest()
