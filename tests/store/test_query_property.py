"""The compiler and the matcher agree: SQL on SQLite, SQL on PostgreSQL and
`store.query.match` give the same rows in the same order for random rows and random
`$where`/`$order` trees, and keyset cursors continue exactly where a page ended."""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.base import Store
from store.factory import open_store
from store.query.ast import TRUE, Limits
from store.query.execute import DEFAULT_ORDER, run
from store.query.links import NO_LINKS
from store.query.match import compare, matches
from store.query.parse import parse_order_object, parse_query, parse_where
from store.rows import Row
from tests.serverproc import PostgresDatabase

_names = itertools.count()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(0, 2),
    st.sampled_from([0.5, 2.0, -1.5]),
    st.sampled_from(["", "a", "A", "ab", "aB", "é", "É", "r1", "u1", "%", "_"]),
)
values = st.one_of(
    scalars,
    scalars,
    st.lists(scalars, max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), scalars, max_size=2),
)
paths = st.one_of(
    st.just("a"), st.sampled_from(["b", "n", "n.a", "a.x", "id", "userId", "createdAt"])
)
ordered = st.one_of(st.integers(0, 2), st.sampled_from([0.5, 2.0, "a", "A", "ab", "é", "r1"]))
patterns = st.one_of(
    st.sampled_from(["a", "A", "a%", "A%", "%B", "_", "_b", "%", "é", "É", "\\%", "\\_", "\\a"]),
    st.lists(st.sampled_from(["a", "A", "b", "é", "É", "%", "_", "\\%", "\\_"]), max_size=3).map(
        "".join
    ),
)
_condition_kinds = [
    values,
    st.builds(lambda v: {"$ne": v}, values),
    st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), ordered),
    st.builds(
        lambda op, v: {op: v}, st.sampled_from(["$in", "$nin"]), st.lists(values, max_size=3)
    ),
    st.builds(lambda op, v: {op: v}, st.sampled_from(["$like", "$ilike"]), patterns),
    st.builds(lambda op, v: {op: v}, st.sampled_from(["$exists", "$isNull"]), st.booleans()),
]
conditions = st.sampled_from(_condition_kinds).flatmap(lambda kind: kind)
"""Each kind of condition equally likely (one_of would weigh by flattened branches)."""
leaves = st.builds(lambda p, c: {p: c}, paths, conditions)
wheres = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"$not": x}, inner),
    ),
    max_leaves=4,
)
orders = st.dictionaries(paths, st.sampled_from(["asc", "desc"]), max_size=2)
rows = st.lists(
    st.tuples(
        st.fixed_dictionaries(
            {"a": st.one_of(st.sampled_from(["a", "A", "ab", "é", "É", "%", "_"]), values)},
            optional={"b": values, "n": st.fixed_dictionaries({}, optional={"a": values})},
        ),
        st.sampled_from([None, "u1", "u2"]),
        st.integers(0, 2),
    ),
    max_size=10,
)


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Iterator[list[Store]]:
    opened = [open_store(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'p.db'}")]
    db = None
    if os.environ.get("TEST_DATABASE_URL"):
        db = PostgresDatabase(os.environ["TEST_DATABASE_URL"])
        opened.append(open_store(db.url, 2))
    for store in opened:
        store.migrate()
    yield opened
    for store in opened:
        store.close()
    if db is not None:
        db.drop()


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=rows, where=wheres, order=orders, page=st.integers(1, 3))
def test_sql_and_matcher_agree(stores, data, where, order, page):
    _check(stores, data, where, order, page)


@pytest.mark.parametrize("kind", range(len(_condition_kinds)))
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=rows, order=orders, draw=st.data())
def test_each_operator_agrees(stores, kind, data, order, draw):
    """One condition of one kind at a time: dense coverage of each operator's edges."""
    path = draw.draw(st.one_of(st.just("a"), paths))
    where = {path: draw.draw(_condition_kinds[kind])}
    _check(stores, data, where, order, 2)


wild_patterns = st.lists(
    st.sampled_from(["a", "A", "b", "%", "%", "_", "_", "\\%", "\\_", "\\\\"]), max_size=10
).map("".join)
"""Mostly wildcards, escapes always whole: the matcher's segment search against the SQL."""
wild_rows = st.lists(
    st.tuples(
        st.fixed_dictionaries(
            {"a": st.lists(st.sampled_from("aAb%_\\"), max_size=12).map("".join)}
        ),
        st.just(None),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=10,
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=wild_rows, op=st.sampled_from(["$like", "$ilike"]), pattern=wild_patterns)
def test_wildcard_heavy_like_agrees(stores, data, op, pattern):
    """`%` and `_` runs, escapes and repeats: the linear matcher answers as LIKE/GLOB do."""
    _check(stores, data, {"a": {op: pattern}}, {}, 2)


def _check(stores: list[Store], data, where, order, page: int) -> None:
    entity = f"prop{next(_names)}"
    stored = [
        Row(entity, f"r{i}", attrs, created, created, user)
        for i, (attrs, user, created) in enumerate(data)
    ]
    node = parse_where(where)
    keys = parse_order_object(order)
    wire = [r.to_wire() for r in stored]
    cmp = functools.cmp_to_key(compare(keys))
    expected = [r["id"] for r in sorted((r for r in wire if matches(node, r)), key=cmp)]
    by_default = functools.cmp_to_key(compare(keys or DEFAULT_ORDER))
    paged = [r["id"] for r in sorted((r for r in wire if matches(node, r)), key=by_default)]
    for store in stores:
        with store.write() as txn:
            tx = txn.next_tx()
            for row in stored:
                txn.insert(row, tx)
        got = store.read(lambda txn: [r.id for r in txn.select(entity, node, keys)])
        assert got == expected, (store.label, where, order)
        first, rest = _pages(store, entity, where, order, page)
        assert first == paged[:page], (store.label, where, order)
        assert rest == paged[page:], (store.label, where, order)


def _pages(store: Store, entity: str, where, order, page: int) -> tuple[list[str], list[str]]:
    """The first page of `page` rows, then everything after its cursor."""
    body = {"$where": where, "$order": order, "$limit": page}
    first = store.read(lambda txn: run(txn, parse_query({entity: body}, NO_LINKS, Limits()), _all))
    ids = [r["id"] for r in first[entity]]
    token = first.get("$cursors", {}).get(entity)
    if token is None:
        return ids, []
    more = {"$where": where, "$order": order, "$limit": 1000, "$after": token}
    rest = store.read(lambda txn: run(txn, parse_query({entity: more}, NO_LINKS, Limits()), _all))
    return ids, [r["id"] for r in rest[entity]]


def _all(entity: str):
    return TRUE
