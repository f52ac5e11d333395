"""The client's local result against the server: `$order` (across JSON types, asc
and desc, id last) and `$where` (for optimistic rows) agree with the server's answers,
and a 1,000-row diff applied to a 10,000-row result gives exactly the rows in order
that rebuilding it would."""

from __future__ import annotations

import random
import uuid

import pytest
from actorbase_client.order import key_function
from actorbase_client.result import ResultSet
from actorbase_client.where import matches

from tests.clients.conftest import run, signed_up
from tests.serverproc import Api

VALUES = [None, True, False, 0, -1.5, 2, 10, "", "B", "a", "é", "10", [1], {"k": 1}, [], "a_b"]


@pytest.fixture(scope="module")
def mixed(server):
    """One user's rows whose `v` covers every JSON type (and one row without it)."""

    async def make():
        from actorbase_client import Client

        async with Client(server.url) as ab:
            await signed_up(ab)
            u = uuid.uuid4().hex[:6]
            ops = [
                {"entity": "mixed", "id": f"{u}-{i:02d}", "op": "set", "data": {"v": v, "w": i % 3}}
                for i, v in enumerate(VALUES)
            ]
            ops.append({"entity": "mixed", "id": f"{u}-zz", "op": "set", "data": {"w": 0}})
            await ab.mutate(ops)
            return ab._http.tokens.access_token

    return Api(server.url, run(make()))


@pytest.mark.parametrize(
    "order",
    [{"v": "asc"}, {"v": "desc"}, {"w": "desc", "v": "asc"}, {"w": "asc", "v": "desc"}],
)
def test_order_agrees_with_the_server(mixed, order):
    rows = mixed.post("/api/query", json={"mixed": {"$order": order}}).json()["mixed"]
    assert len(rows) == len(VALUES) + 1
    shuffled = random.Random(7).sample(rows, len(rows))
    assert sorted(shuffled, key=key_function(order)) == rows


@pytest.mark.parametrize(
    "where",
    [
        {"v": None},
        {"v": {"$ne": None}},
        {"v": {"$gt": 0}},
        {"v": {"$gte": "a"}},
        {"v": {"$in": [2, "B", True, [1]]}},
        {"v": {"$nin": [2, None]}},
        {"v": {"$like": "a%"}},
        {"v": {"$ilike": "b"}},
        {"v": {"$like": "a\\_b"}},
        {"v": {"$exists": False}},
        {"v": {"$isNull": True}},
        {"$or": [{"v": 0}, {"w": 2}]},
        {"$not": {"w": {"$lt": 1}}},
        {"v": {"k": 1}},
        {"v": 2.0},
    ],
)
def test_where_agrees_with_the_server(mixed, where):
    everything = mixed.post("/api/query", json={"mixed": {}}).json()["mixed"]
    answer = mixed.post("/api/query", json={"mixed": {"$where": where}})
    assert answer.status_code == 200, answer.text
    expected = {r["id"] for r in answer.json()["mixed"]}
    assert {r["id"] for r in everything if matches(where, r)} == expected


def test_a_large_diff_gives_the_rebuilt_result():
    rng = random.Random(3)
    order = {"p": "desc", "createdAt": "asc"}
    key = key_function(order)
    rows = {
        f"r{i}": {"id": f"r{i}", "p": rng.randint(0, 50), "createdAt": i} for i in range(10_000)
    }
    result = ResultSet({"$order": order})
    result.load(sorted(rows.values(), key=key))
    ids = list(rows)
    removed = rng.sample(ids, 300)
    kept = [i for i in ids if i not in set(removed)]
    updated = [{"id": i, "p": rng.randint(0, 50), "x": 1} for i in rng.sample(kept, 400)]
    updated += [{"id": i, "p": None} for i in rng.sample(kept, 50)]  # null deletes
    added = [{"id": f"n{i}", "p": rng.randint(0, 50), "createdAt": 20_000 + i} for i in range(250)]
    result.apply(added, updated, removed)

    for rid in removed:
        del rows[rid]
    for fields in updated:
        row = dict(rows[fields["id"]])
        for k, v in fields.items():
            if v is None:
                row.pop(k, None)
            else:
                row[k] = v
        rows[fields["id"]] = row
    for row in added:
        rows[row["id"]] = row
    assert result.view() == sorted(rows.values(), key=key)
    assert len(result.view()) == 10_000 - 300 + 250
