"""POST /api/mutate: an atomic batch of set/merge/delete ops.

An `Idempotency-Key` header makes a retry safe: a key its user already committed
answers with that commit's tx and results (and `Idempotent-Replayed: true`) instead of
applying the ops again; the same key with other ops is 409 CONFLICT (store.idempotency).
"""

from __future__ import annotations

from actors.transactor import submit
from handlers import loopreply
from handlers.base import ApiHandler
from handlers.openapi import INTEGER, OBJECT, STRING, array, obj, operation, param
from store import idempotency
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
            params=(
                param(
                    "Idempotency-Key",
                    {"type": "string", "pattern": f"^{idempotency.KEY_RE.pattern}$"},
                    "header",
                    "Retry-safe: a key already committed answers with that commit's outcome",
                ),
            ),
        )
    }

    async def post(self) -> None:
        principal = self.require_auth()
        body = self.json_object()
        ops = parse_ops(body.get("ops"))
        raw_key = self.request.headers.get("Idempotency-Key")
        key = idempotency.key_for(raw_key, principal, ops, "Idempotency-Key")
        outcome = await loopreply.wrap(submit(self.ctx.transactor, ops, principal, key=key))
        if outcome.replayed:
            self.set_header("Idempotent-Replayed", "true")
        self.send({"tx": outcome.tx, "results": outcome.results})
