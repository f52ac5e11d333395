"""No 500 from any input (issue 12, item 5; and the seed's createTodo, item 7), on both
backends: boolean nesting and `$like` patterns bounded on every channel, forged
cursors, NUL in path and query arguments, oversized bodies (declared and chunked),
names with a trailing newline."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import select
import socket
import time
import uuid
from pathlib import Path

import pytest
import requests

from store.query.parse import MAX_NESTING, MAX_PATTERN
from store.schema import MAX_INDEXED_BYTES
from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api, error_of
from tests.wsclient import SseClient, WsClient

ROOT = Path(__file__).parents[2]
TODOS = str(ROOT / "examples" / "todos.py")
FN_APP = str(ROOT / "tests" / "apps" / "fn_app.py")
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
JSON = {"Content-Type": "application/json"}
"""Copied into each request: `Api.request` adds the token to the dict it is given."""


def name() -> str:
    return "h" + uuid.uuid4().hex[:10]


def nested(kind: str, depth: int, leaf: str = '{"title": "a"}') -> str:
    """`depth` levels of `kind` around `leaf`, as JSON text (too deep for json.dumps)."""
    text = leaf
    for _ in range(depth):
        text = {
            "not": '{"$not": %s}',
            "and": '{"$and": [%s]}',
            "or": '{"$or": [%s, {"b": 1}]}',
        }[kind] % text
    return text


def post_query(api: Api, text: str) -> requests.Response:
    return api.post("/api/query", data=text.encode(), headers=dict(JSON))


def too_complex(response: requests.Response) -> str:
    error = error_of(response)
    assert (response.status_code, error["code"]) == (400, "QUERY_TOO_COMPLEX"), response.text
    return error["message"]


@pytest.fixture(scope="module")
def todos(make_module_server, backend):
    return make_module_server(backend, APP=TODOS)


@pytest.fixture(scope="module")
def fns(make_module_server, backend):
    return make_module_server(backend, APP=FN_APP)


@pytest.fixture
def user(anon):
    return signup(anon)


# -- boolean nesting and patterns -----------------------------------------------------


@pytest.mark.parametrize("kind", ["not", "and", "or"])
def test_boolean_nesting_is_bounded_on_query_and_data(user, kind):
    ent = name()
    assert user.api.post(f"/api/data/{ent}", json={"title": "a"}).status_code == 201
    deepest = nested(kind, MAX_NESTING)
    r = post_query(user.api, f'{{"{ent}": {{"$where": {deepest}}}}}')
    assert r.status_code == 200, r.text
    got = user.api.get(f"/api/data/{ent}", params={"where": deepest})
    assert got.status_code == 200, got.text
    for depth in (MAX_NESTING + 1, 30, 100, 500):
        text = nested(kind, depth)
        message = too_complex(post_query(user.api, f'{{"{ent}": {{"$where": {text}}}}}'))
        assert message.startswith(f"{ent}.$where.") and "nest deeper than" in message
        too_complex(user.api.get(f"/api/data/{ent}", params={"where": text}))
    # Deeper than the JSON decoder goes (1,024 levels) is not JSON at all: still a 400.
    r = post_query(user.api, f'{{"{ent}": {{"$where": {nested(kind, 1000)}}}}}')
    assert r.status_code == 400 and error_of(r)["code"] in ("QUERY_TOO_COMPLEX", "INVALID_ARGUMENT")


def test_deepest_nesting_compiles_under_a_link_with_not_at_the_leaf(admin):
    """The worst case SQLite must parse: MAX_NESTING NOTs around `$nin` (one more NOT),
    inside a link's per-parent query, beside the read rule."""
    parent = name()
    field = parent[:-1] + "Id"  # `xxxId` → `xxxs`, the naming convention
    parent = parent[:-1] + "s"
    child = name() + "s"  # a reverse link is named for its (plural) entity
    assert admin.post(f"/api/data/{parent}", json={"id": "p1"}).status_code == 201
    r = admin.post(f"/api/data/{child}", json={"id": "c1", field: "p1", "n": 1})
    assert r.status_code == 201, r.text
    leaf = '{"n": {"$nin": [5, 6]}}'
    where = nested("not", MAX_NESTING, leaf)
    expected = ["c1"] if MAX_NESTING % 2 == 0 else []  # an odd count negates the leaf
    body = f'{{"{parent}": {{"$where": {where}, "{child}": {{"$where": {where}}}}}}}'
    r = post_query(admin, body)
    assert r.status_code == 200, r.text
    rows = r.json()[parent]
    assert [c["id"] for row in rows for c in row[child]] == expected, (parent, child, rows)
    nots = MAX_NESTING - 1  # operator-level $not around $ne (itself a NOT)
    path_not = '{"n": ' + '{"$not": ' * nots + '{"$ne": 2}' + "}" * nots + "}"
    r = post_query(admin, f'{{"{parent}": {{"{child}": {{"$where": {path_not}}}}}}}')
    assert r.status_code == 200, r.text


def test_operator_level_not_counts_and_operands_nest_at_most_100(user):
    ent = name()
    deep_not = '{"n": ' + '{"$not": ' * (MAX_NESTING + 1) + "1" + "}" * (MAX_NESTING + 1) + "}"
    too_complex(post_query(user.api, f'{{"{ent}": {{"$where": {deep_not}}}}}'))
    deep_value = '{"n": ' + "[" * 900 + "]" * 900 + "}"
    too_complex(post_query(user.api, f'{{"{ent}": {{"$where": {deep_value}}}}}'))
    ok_value = '{"n": ' + "[" * 50 + "]" * 50 + "}"
    assert post_query(user.api, f'{{"{ent}": {{"$where": {ok_value}}}}}').status_code == 200


def test_data_where_and_order_spend_the_operator_budget(user):
    ent = name()
    where = json.dumps({"n": {"$in": list(range(5000))}})
    message = too_complex(user.api.get(f"/api/data/{ent}", params={"where": where}))
    assert "QUERY_MAX_OPERATORS" in message
    user.api.post(f"/api/data/{ent}", json={"a": 1})
    order = ",".join(f"k{i}" for i in range(700))  # 2,100 ORDER BY terms: a 500 before
    message = too_complex(user.api.get(f"/api/data/{ent}", params={"order": order}))
    assert message.startswith("order:") and "QUERY_MAX_OPERATORS" in message
    r = user.api.get(f"/api/data/{ent}", params={"order": ",".join(f"k{i}" for i in range(200))})
    assert r.status_code == 200 and r.json()["total"] == 1, r.text


def test_like_patterns_are_bounded(user):
    ent = name()
    user.api.post(f"/api/data/{ent}", json={"title": "a" * 2000})
    longest = "%" + "a" * (MAX_PATTERN - 2) + "%"
    for op in ("$like", "$ilike"):
        r = user.api.post("/api/query", json={ent: {"$where": {"title": {op: longest}}}})
        assert r.status_code == 200 and len(r.json()[ent]) == 1, r.text
        r = user.api.post("/api/query", json={ent: {"$where": {"title": {op: longest + "a"}}}})
        assert "pattern longer than" in too_complex(r)
    huge = {ent: {"$where": {"title": {"$like": "%a" * 30_000}}}}
    too_complex(user.api.post("/api/query", json=huge))


def test_long_string_operand_on_an_indexed_attribute(todos):
    """listId has an expression index in the example app: a 10 KB key is no 500."""
    alice = signup(Api(todos.url))
    long = "x" * 10_000
    for where in ({"listId": long}, {"listId": {"$gt": long}}, {"listId": {"$in": [long]}}):
        r = alice.api.post("/api/query", json={"todos": {"$where": where}})
        assert r.status_code == 200 and r.json()["todos"] == [], r.text
    r = alice.api.get("/api/data/todos", params={"where": json.dumps({"listId": long})})
    assert r.status_code == 200, r.text


def test_long_values_of_indexed_attributes_are_400_not_a_btree_error(todos):
    """PostgreSQL's btree refuses an entry over ~2.7 KB (random text does not compress)."""
    alice = signup(Api(todos.url))
    long = secrets.token_hex(5000)
    r = alice.api.post("/api/data/todos", json={"title": "a", "listId": long})
    assert r.status_code == 400, r.text
    assert error_of(r)["details"] == [
        {"field": "listId", "message": f"At most {MAX_INDEXED_BYTES} bytes in an indexed attribute"}
    ]
    fits = secrets.token_hex((MAX_INDEXED_BYTES - 2) // 2)  # 2 bytes of JSON quotes
    r = alice.api.post("/api/data/todos", json={"title": "a", "listId": fits})
    assert r.status_code == 201, r.text
    row = r.json()["data"]
    r = alice.api.patch(f"/api/data/todos/{row['id']}", json={"listId": fits + "ab"})
    assert r.status_code == 400 and error_of(r)["code"] == "INVALID_ARGUMENT"


def test_live_queries_refuse_deep_nesting(server, user):
    ent = name()
    deep = json.loads(nested("and", MAX_NESTING + 1))
    sse = requests.get(
        server.url + "/api/subscribe",
        params={"q": json.dumps({ent: {"$where": deep}})},
        headers={"Authorization": f"Bearer {user.access}"},
        timeout=10,
    )
    too_complex(sse)
    shallow = SseClient(server.url, {ent: {"$where": json.loads(nested("and", 3))}}, user.access)
    assert shallow.next_event()[0] == "q-init"
    shallow.close()

    async def go():
        ws = await WsClient.connect(server.url, user.access)
        await ws.send({"type": "subscribe", "id": "deep", "query": {ent: {"$where": deep}}})
        error = await ws.expect("error", id="deep")
        assert error["error"]["code"] == "QUERY_TOO_COMPLEX"
        pattern = {"title": {"$like": "a" * (MAX_PATTERN + 1)}}
        await ws.send({"type": "subscribe", "id": "like", "query": {ent: {"$where": pattern}}})
        assert (await ws.expect("error", id="like"))["error"]["code"] == "QUERY_TOO_COMPLEX"
        await ws.send({"type": "subscribe", "id": "ok", "query": {ent: {}}})
        await ws.expect("q-init", id="ok")
        ws.close()

    asyncio.run(go())


def test_functions_queries_refuse_deep_nesting(fns):
    user = signup(Api(fns.url))
    deep = json.loads(nested("not", MAX_NESTING + 1))
    r = user.api.post("/api/fn/run_query", json={"query": {"things": {"$where": deep}}})
    too_complex(r)


def test_rules_nested_too_deep_stop_the_server_with_one_line(make_server, tmp_path):
    app = tmp_path / "deep_rules.py"
    rule = nested("not", MAX_NESTING + 1, '{"userId": "$auth.id"}')
    app.write_text(f"rules = {{'todos': {{'read': {rule}}}}}\n")
    server = make_server("sqlite", start=False, APP=str(app))
    with pytest.raises(RuntimeError):
        server.start(timeout=20)
    lines = [line for line in server.log().splitlines() if line.strip()]
    assert len(lines) == 1 and "rules.todos.read.$not" in lines[0], server.log()
    assert "nest deeper than" in lines[0]


# -- forged cursors -------------------------------------------------------------------------


def _forge(fingerprint: str, values: str) -> str:
    raw = f'["{fingerprint}",{values}]'.encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_forged_cursors_are_invalid_argument(user):
    ent = name()
    for i in range(3):
        user.api.post(f"/api/data/{ent}", json={"n": i, "s": f"s{i}"})
    forms = {}
    for order in ({"n": "asc"}, {"s": "asc"}, None):
        body: dict = {"$limit": 1, **({"$order": order} if order else {})}
        page = user.api.post("/api/query", json={ent: body}).json()
        token = page["$cursors"][ent]
        fingerprint, values = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        forms[json.dumps(order)] = (body, fingerprint, values)
        again = user.api.post("/api/query", json={ent: {**body, "$after": token}})
        assert again.status_code == 200 and again.json()[ent][0]["n"] == 1  # a real one works
    by_n, by_s, by_created = forms['{"n": "asc"}'], forms['{"s": "asc"}'], forms["null"]
    forged = [
        (by_n, '[2,"1e999999",null,"x"]'),
        (by_n, '[2,"-1e999999",null,"x"]'),
        (by_n, '[2,"1e-999999",null,"x"]'),
        (by_n, '[2,"0e-999999",null,"x"]'),
        (by_n, '[2,"1' + "0" * 500 + '",null,"x"]'),
        (by_n, '[2,1,null,"x"]'),
        (by_n, '[2,"1",null]'),
        (by_s, '[3,null,"\\ud800","x"]'),
        (by_s, '[3,null,"a\\u0000","x"]'),
        (by_s, '[3,null,"x","\\udfff"]'),
        (by_s, '[3,null,"x","\\u0000"]'),
        (by_s, '[3,null,{"a":1},"x"]'),
        (by_created, '[1e999999,"x"]'),
        (by_created, '[99999999999999999999999,"x"]'),
        (by_created, '[1.5,"x"]'),
        (by_created, '[true,"x"]'),
        (by_created, '[1,"\\ud800"]'),
        (by_created, '[1,"\\u0000"]'),
        (by_created, "[1," + "[" * 2000 + "]" * 2000 + "]"),
        (by_created, "{}"),
    ]
    for (body, fingerprint, _), values in forged:
        query = {ent: {**body, "$after": _forge(fingerprint, values)}}
        r = user.api.post("/api/query", json=query)
        assert (r.status_code, error_of(r)["code"]) == (400, "INVALID_ARGUMENT"), (values, r.text)
    for token in ("%%%", "\u00e9", "e30", base64.urlsafe_b64encode(b"\xff\xfe").decode()):
        r = user.api.post("/api/query", json={ent: {"$after": token}})
        assert (r.status_code, error_of(r)["code"]) == (400, "INVALID_ARGUMENT"), (token, r.text)


# -- NUL in path and query arguments ---------------------------------------------------


def test_nul_in_any_path_or_query_argument_is_400(server, user, admin):
    routes = [
        (user.api, "DELETE", "/api/auth/sessions/sess%00x"),
        (admin, "PATCH", "/api/admin/users/usr%00x"),
        (user.api, "GET", "/api/storage/a%00b.txt"),
        (user.api, "DELETE", "/api/storage/a%00b.txt"),
        (user.api, "GET", "/api/storage?cursor=a%00b"),
        (user.api, "GET", "/api/storage?prefix=a%00"),
        (user.api, "GET", "/api/storage?limit=1&x%00=1"),
        (user.api, "GET", "/api/data/to%00dos"),
        (user.api, "POST", "/api/data/to%00dos"),
        (user.api, "GET", "/api/data/todos/a%00b"),
        (user.api, "PATCH", "/api/data/todos/a%00b"),
        (user.api, "DELETE", "/api/data/todos/a%00b"),
        (user.api, "GET", "/api/data/todos?order=title%00"),
        (user.api, "GET", "/api/data/todos?where=%7B%22a%00%22%3A1%7D"),
        (user.api, "POST", "/api/fn/create%00Todo"),
        (user.api, "GET", "/api/presence/room%00"),
        (user.api, "GET", "/api/subscribe?q=%7B%22t%00%22%3A%7B%7D%7D"),
        (user.api, "GET", "/api/admin/users?limit=1%00"),
        (Api(server.url), "GET", "/api/files/a%00b?k=a&e=1&s=x"),
        (Api(server.url), "POST", "/api/auth/signin?next=%00"),
    ]
    for api, method, path in routes:
        kwargs = {"json": {"role": "x", "claims": {}}} if method in ("POST", "PATCH") else {}
        r = api.request(method, path, **kwargs)
        assert r.status_code == 400, (method, path, r.status_code, r.text)
        assert error_of(r)["code"] == "INVALID_ARGUMENT", (method, path)
        assert all(h in r.headers for h in RATE_HEADERS), (method, path)
    # Swagger UI's static files are served by Tornado's StaticFileHandler.
    for path in ("/api/docs/a%00b", "/api/docs/swagger-ui.css%00"):
        r = Api(server.url).get(path)
        assert (r.status_code, error_of(r)["code"]) == (400, "INVALID_ARGUMENT"), (path, r.text)


# -- oversized bodies -------------------------------------------------------------------


def _raw_request(port: int, head: str, pieces: list[bytes]) -> bytes:
    """Send `head` and then `pieces` until the server answers; the raw response."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        for piece in pieces:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        response = b""
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in response and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
        head_part, _, rest = response.partition(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":")[1]
                for line in head_part.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
        )
        while len(rest) < length and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return head_part + b"\r\n\r\n" + rest


def _parse(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


def _assert_413(status: int, headers: dict[str, str], body: dict) -> None:
    assert status == 413, body
    assert body["error"]["code"] == "PAYLOAD_TOO_LARGE" and body["error"]["status"] == 413
    assert headers["content-type"].startswith("application/json")
    assert all(h.lower() in headers for h in RATE_HEADERS), headers


def test_declared_5mb_body_is_a_json_413_and_the_connection_stays_usable(server, admin):
    ent = name()
    session = requests.Session()
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}", **JSON}
    body = b'{"a": "' + b"x" * (5 << 20) + b'"}'
    r = session.post(f"{server.url}/api/data/{ent}", data=body, headers=auth, timeout=60)
    _assert_413(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.json())
    ok = session.post(f"{server.url}/api/data/{ent}", json={"a": 1}, headers=auth, timeout=30)
    assert ok.status_code == 201, ok.text
    assert admin.get(f"/api/data/{ent}").json()["total"] == 1


def test_chunked_body_over_the_limit_is_a_json_413(server, admin):
    ent = name()

    def chunks():
        yield b'{"a": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}", **JSON}
    r = requests.post(f"{server.url}/api/data/{ent}", data=chunks(), headers=auth, timeout=60)
    assert r.request.headers["Transfer-Encoding"] == "chunked"
    _assert_413(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.json())
    assert admin.get(f"/api/data/{ent}").json()["total"] == 0


def test_chunked_body_under_the_limit_is_read_whole(admin):
    ent = name()

    def chunks():
        yield b'{"a": "'
        yield b"x" * 100_000
        yield b'"}'

    r = admin.post(f"/api/data/{ent}", data=chunks(), headers=dict(JSON))
    assert r.status_code == 201 and len(r.json()["data"]["a"]) == 100_000


def test_a_huge_declared_body_is_answered_before_it_is_sent(server):
    """Over the largest body any route takes: 413 at once, nothing of it read."""
    head = (
        f"POST /api/query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n"
    )
    _assert_413(*_parse(_raw_request(server.port, head, [])))


def test_chunked_body_past_the_drain_limit_is_a_json_413(server):
    head = (
        f"POST /api/mutate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"x" * (1 << 20)
    pieces = [b"%x\r\n%s\r\n" % (len(piece), piece)] * 40 + [b"0\r\n\r\n"]
    _assert_413(*_parse(_raw_request(server.port, head, pieces)))


# -- names with a trailing newline -------------------------------------------------------


def test_names_with_a_trailing_newline_are_refused(server, user, admin):
    ent = name()
    for method, path in (
        ("POST", f"/api/data/{ent}%0A"),
        ("GET", f"/api/data/{ent}%0A"),
        ("GET", f"/api/data/{ent}/abc%0A"),
        ("PATCH", f"/api/data/{ent}/abc%0A"),
        ("GET", "/api/presence/room%0A"),
    ):
        r = user.api.request(method, path, json={"a": 1} if method != "GET" else None)
        assert (r.status_code, error_of(r)["code"]) == (400, "INVALID_ARGUMENT"), (path, r.text)
    r = user.api.post(f"/api/data/{ent}", json={"id": "abc\n", "a": 1})
    assert error_of(r)["code"] == "INVALID_ARGUMENT"
    r = user.api.post("/api/mutate", json={"ops": [{"entity": ent + "\n", "id": "a", "op": "set"}]})
    assert error_of(r)["code"] == "INVALID_ARGUMENT"
    r = user.api.post("/api/query", json={ent + "\n": {}})
    assert error_of(r)["code"] == "INVALID_ARGUMENT"
    r = user.api.post("/api/query", json={ent: {"$where": {"title\n": 1}}})
    assert error_of(r)["code"] == "INVALID_ARGUMENT"
    r = user.api.post("/api/query", json={ent: {"$fields": ["title\n"]}})
    assert error_of(r)["code"] == "INVALID_ARGUMENT"
    assert user.api.post("/api/fn/createTodo%0A", json={}).status_code == 404
    r = admin.patch(f"/api/admin/users/{user.id}", json={"role": "admin\n"})
    assert error_of(r)["code"] == "INVALID_ARGUMENT"
    names = [e["name"] for e in admin.get("/api/admin/schema").json()["entities"]]
    assert not any("\n" in n for n in names), names

    async def go():
        ws = await WsClient.connect(server.url, user.access)
        await ws.send({"type": "presence-enter", "room": "room\n", "data": {}})
        assert (await ws.expect("error"))["error"]["code"] == "INVALID_ARGUMENT"
        ws.close()

    asyncio.run(go())


def test_a_trailing_newline_cannot_skip_the_apps_schema_and_rules(todos):
    alice = signup(Api(todos.url))
    r = alice.api.post("/api/data/todos%0A", json={"done": "not a boolean"})
    assert (r.status_code, error_of(r)["code"]) == (400, "INVALID_ARGUMENT")


# -- the seed's createTodo ---------------------------------------------------------------


def test_the_seeds_create_todo_works_on_a_fresh_database(todos):
    alice, bob = signup(Api(todos.url)), signup(Api(todos.url))
    r = alice.api.post("/api/fn/createTodo", json={"title": "Buy milk", "listId": "list-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"result", "tx"} and isinstance(body["tx"], int)
    todo = alice.api.get(f"/api/data/todos/{body['result']}").json()["data"]
    assert (todo["title"], todo["listId"], todo["userId"]) == ("Buy milk", "list-1", alice.id)
    lst = alice.api.get("/api/data/lists/list-1").json()["data"]
    assert lst["userId"] == alice.id
    again = alice.api.post("/api/fn/createTodo", json={"title": "Eggs", "listId": "list-1"})
    assert again.status_code == 200, again.text
    theirs = bob.api.post("/api/fn/createTodo", json={"title": "Mine now", "listId": "list-1"})
    assert theirs.status_code == 404 and error_of(theirs)["message"] == "No list list-1"
    todos_of_list = alice.api.get(
        "/api/data/todos", params={"where": json.dumps({"listId": "list-1"})}
    ).json()
    assert todos_of_list["total"] == 2
