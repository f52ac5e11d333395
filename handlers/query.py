"""POST /api/query: several entities, nested links, one snapshot, one tx."""

from __future__ import annotations

import time
from typing import Any

from handlers.base import ApiHandler
from handlers.openapi import INTEGER, obj, operation
from store import permissions
from store.query.ast import Node
from store.query.execute import run
from store.query.parse import parse_query
from store.rules import Stripper


class QueryHandler(ApiHandler):
    """Parses on the loop (cheap, and errors are 400s before any I/O), reads on the
    read pool in one transaction, so every entity reflects the same tx."""

    openapi = {
        "post": operation(
            "Query several entities (with nested links) in one snapshot",
            "data",
            {200: obj(("tx",), tx=INTEGER) | {"additionalProperties": True}},
            body={"type": "object", "additionalProperties": {"type": "object"}},
        )
    }

    async def post(self) -> None:
        started = time.perf_counter()
        principal = self.require_auth()
        query = parse_query(self.json_body(), self.ctx.links, self.ctx.query_limits)
        permissions.check_query(principal, query)

        def rule(entity: str) -> Node:
            return permissions.read_filter(principal, entity)

        def fields(entity: str) -> Stripper | None:
            return permissions.stripper(principal, entity)

        max_bytes = self.ctx.query_limits.max_bytes
        result: dict[str, Any] = await self.ctx.reads.read(
            lambda txn: run(txn, query, rule, fields, max_bytes)
        )
        self.ctx.stats.queries.record(time.perf_counter() - started)
        self.send(result)
