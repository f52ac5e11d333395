"""POST /api/mutate: an atomic batch of set/merge/delete ops."""

from __future__ import annotations

import asyncio

from actors.transactor import submit
from handlers.base import ApiHandler
from store.mutations import parse_ops


class MutateHandler(ApiHandler):
    async def post(self) -> None:
        principal = self.require_auth()
        body = self.json_object()
        ops = parse_ops(body.get("ops"))
        outcome = await asyncio.wrap_future(submit(self.ctx.transactor, ops, principal))
        self.send({"tx": outcome.tx, "results": outcome.results})
