"""GET /api/admin/health: no auth, the seed's fields plus `database`, `node` (this
process's name) and `nodes` (processes live on the database, 1 on SQLite), and
`reason` when unhealthy.

503 when the database does not answer or the writer is down (given up, see
actors.writer): a load balancer then sends no more traffic. While stopping it says
unhealthy with 200, as it still answers what it was sent.
"""

from __future__ import annotations

import time

import actorbase
from actorbase.context import Context
from handlers.base import ApiHandler
from handlers.openapi import INTEGER, PUBLIC, STRING, obj, operation

_HEALTH = obj(
    ("status", "version", "uptime", "postgres", "connections", "protocolVersion"),
    status={"enum": ["healthy", "unhealthy"]},
    version=STRING,
    uptime=INTEGER,
    postgres={"enum": ["connected", "disconnected", "not configured"]},
    database=STRING,
    reason=STRING,
    connections=obj(("websocket", "http"), websocket=INTEGER, http=INTEGER),
    protocolVersion=INTEGER,
    node=STRING,
    nodes=INTEGER,
)


class HealthHandler(ApiHandler):
    openapi = {
        "get": operation(
            "Health check (no auth)", "admin", {200: _HEALTH, 503: _HEALTH}, auth=PUBLIC
        )
    }

    async def get(self) -> None:
        ctx = self.ctx
        up = await ctx.reads.call(ctx.store.ping)
        postgres = (
            ("connected" if up else "disconnected")
            if ctx.settings.is_postgres
            else "not configured"
        )
        reason = _unhealthy(ctx, up)
        body = {
            "status": "healthy" if reason is None else "unhealthy",
            "version": actorbase.__version__,
            "uptime": int(time.monotonic() - ctx.started_at),
            "postgres": postgres,
            "database": ctx.store.label,
            "connections": {"websocket": ctx.websockets, "http": ctx.http_inflight},
            "protocolVersion": actorbase.PROTOCOL_VERSION,
            # Which process answered, and how many share the database (heartbeats).
            "node": ctx.node,
            "nodes": ctx.presence.live if ctx.presence is not None else 1,
        }
        if reason is not None:
            body["reason"] = reason
        # Stopping alone is no failure: what was sent is still answered.
        self.send(body, status=200 if up and ctx.transactor.alive else 503)


def _unhealthy(ctx: Context, up: bool) -> str | None:
    """Why the server is not healthy, or None."""
    if not up:
        return "the database does not answer"
    if ctx.shutting_down:
        return "the server is shutting down"
    if not ctx.transactor.alive:
        return f"writes fail: {ctx.transactor.failure or 'the writer is down'}"
    return None
