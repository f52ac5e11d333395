"""The data REST API: /api/data/{entity} and /api/data/{entity}/{id}."""

from __future__ import annotations

import time
from typing import Any

from actorbase.errors import InvalidArgument, NotFound
from actors.transactor import submit
from handlers import jsonwire, loopreply
from handlers.base import ApiHandler
from handlers.openapi import BOOLEAN, INTEGER, OBJECT, STRING, array, obj, operation, param, ref
from store import permissions
from store.base import Txn
from store.mutations import Op, Outcome, data_op, new_id
from store.query.ast import TRUE
from store.query.execute import select_rows
from store.query.parse import parse_filter, parse_order
from store.rows import check_entity, check_id

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


class _DataHandler(ApiHandler):
    async def mutate(self, ops: list[Op]) -> Outcome:
        """Send `ops` to the transactor and wait, off the loop, for COMMIT."""
        return await loopreply.wrap(submit(self.ctx.transactor, ops, self.require_auth()))

    def visible(self, entity: str, row: dict[str, Any] | None) -> dict[str, Any] | None:
        """A written row as its writer may read it back (unreadable fields stripped)."""
        return None if row is None else permissions.strip(self.require_auth(), entity, row)


_ENTITY = param("entity", STRING, "path", "An entity name, ^[a-z][a-z0-9_]{0,62}$")
_ROW = obj(("data",), data=ref("Row"))
_WRITTEN = obj(("data", "tx"), data=ref("Row"), tx=INTEGER)


class EntityHandler(_DataHandler):
    """GET lists rows (limit, offset, order, where); POST creates one."""

    openapi = {
        "get": operation(
            "List rows",
            "data",
            {
                200: obj(
                    ("data", "total", "hasMore"),
                    data=array(ref("Row")),
                    total=INTEGER,
                    hasMore=BOOLEAN,
                )
            },
            params=(
                _ENTITY,
                param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
                param("offset", {"type": "integer", "minimum": 0}),
                param("order", STRING, description="Sort keys, e.g. -createdAt,title"),
                param("where", STRING, description="A $where object as JSON"),
            ),
        ),
        "post": operation(
            "Create a row (409 if the id exists)",
            "data",
            {201: _WRITTEN},
            params=(_ENTITY,),
            body=ref("Attributes"),
        ),
    }

    async def get(self, entity: str) -> None:
        started = time.perf_counter()
        principal = self.require_auth()
        check_entity(entity)
        limit = self.int_argument("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = self.int_argument("offset", 0, 0, 10**9)
        raw_order = self.get_query_argument("order", None)
        order = parse_order(raw_order, self.ctx.query_limits) if raw_order is not None else ()
        raw_where = self.get_query_argument("where", None)
        where = (
            parse_filter(jsonwire.decode(raw_where, "where"), "where", self.ctx.query_limits)
            if raw_where is not None
            else TRUE
        )
        permissions.check_named(principal, entity, where, order)
        where = permissions.restrict(principal, entity, where)

        max_bytes = self.ctx.query_limits.max_bytes

        def read(txn: Txn) -> tuple[list[dict[str, Any]], int]:
            rows = select_rows(txn, entity, where, order, limit, offset, max_bytes)
            return rows, txn.count(entity, where)

        rows, total = await self.ctx.reads.read(read)
        self.ctx.stats.queries.record(time.perf_counter() - started)
        strip = permissions.stripper(principal, entity)
        self.send(
            {
                "data": rows if strip is None else [strip(r) for r in rows],
                "total": total,
                "hasMore": offset + len(rows) < total,
            }
        )

    async def post(self, entity: str) -> None:
        check_entity(entity)
        body = self.json_object()
        id = check_id(body["id"], "id") if "id" in body else new_id()
        outcome = await self.mutate([data_op("create", entity, id, body)])
        self.send({"data": self.visible(entity, outcome.rows[0]), "tx": outcome.tx}, status=201)


class RowHandler(_DataHandler):
    """GET, PATCH (merge) and DELETE one row."""

    _params = (_ENTITY, param("id", STRING, "path"))
    openapi = {
        "get": operation("One row", "data", {200: _ROW}, params=_params),
        "patch": operation(
            "Merge attributes into a row (null removes one)",
            "data",
            {200: _WRITTEN},
            params=_params,
            body=OBJECT,
        ),
        "delete": operation("Delete a row", "data", {204: None}, params=_params),
    }

    async def get(self, entity: str, id: str) -> None:
        started = time.perf_counter()
        principal = self.require_auth()
        check_entity(entity)
        check_id(id)
        row = await self.ctx.reads.get(entity, id)
        self.ctx.stats.queries.record(time.perf_counter() - started)
        if row is None or not permissions.can_read(principal, row):
            raise NotFound(f"{entity}/{id} not found")
        self.send({"data": permissions.strip(principal, entity, row.to_wire())})

    async def patch(self, entity: str, id: str) -> None:
        check_entity(entity)
        check_id(id)
        body = self.json_object()
        if "id" in body and body["id"] != id:
            raise InvalidArgument("id: cannot change a row's id")
        outcome = await self.mutate([data_op("merge", entity, id, body)])
        self.send({"data": self.visible(entity, outcome.rows[0]), "tx": outcome.tx})

    async def delete(self, entity: str, id: str) -> None:
        check_entity(entity)
        check_id(id)
        await self.mutate([Op("delete", entity, id)])
        self.no_content()
