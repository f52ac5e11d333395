"""POST /api/mutate: an atomic batch of set/merge/delete ops."""

from __future__ import annotations

import asyncio

from actors.transactor import submit
from handlers.base import ApiHandler
from handlers.openapi import INTEGER, OBJECT, STRING, array, obj, operation
from store.mutations import parse_ops


class MutateHandler(ApiHandler):
    openapi = {
        "post": operation(
            "Apply set/merge/delete ops atomically",
            "data",
            {
                200: obj(
                    ("tx", "results"),
                    tx=INTEGER,
                    results=array(obj(("op", "id", "status"), op=STRING, id=STRING, status=STRING)),
                )
            },
            body=obj(
                ("ops",),
                ops=array(
                    obj(
                        ("entity", "id", "op"),
                        entity=STRING,
                        id=STRING,
                        op={"enum": ["set", "merge", "delete"]},
                        data=OBJECT,
                    )
                ),
            ),
        )
    }

    async def post(self) -> None:
        principal = self.require_auth()
        body = self.json_object()
        ops = parse_ops(body.get("ops"))
        outcome = await asyncio.wrap_future(submit(self.ctx.transactor, ops, principal))
        self.send({"tx": outcome.tx, "results": outcome.results})
