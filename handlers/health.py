"""GET /api/admin/health: no auth, the seed's fields plus `database`."""

from __future__ import annotations

import time

import actorbase
from handlers.base import ApiHandler
from handlers.openapi import INTEGER, PUBLIC, STRING, obj, operation

_HEALTH = obj(
    ("status", "version", "uptime", "postgres", "connections", "protocolVersion"),
    status={"enum": ["healthy", "unhealthy"]},
    version=STRING,
    uptime=INTEGER,
    postgres={"enum": ["connected", "disconnected", "not configured"]},
    database=STRING,
    connections=obj(("websocket", "http"), websocket=INTEGER, http=INTEGER),
    protocolVersion=INTEGER,
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
        self.send(
            {
                "status": "healthy" if up and not ctx.shutting_down else "unhealthy",
                "version": actorbase.__version__,
                "uptime": int(time.monotonic() - ctx.started_at),
                "postgres": postgres,
                "database": ctx.store.label,
                "connections": {"websocket": ctx.websockets, "http": ctx.http_inflight},
                "protocolVersion": actorbase.PROTOCOL_VERSION,
            },
            status=200 if up else 503,
        )
