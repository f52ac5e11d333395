"""The admin's view of the live system: /api/admin/pulse, /api/admin/rooms, /api/admin/app.

Pulse is what the dashboard charts every few seconds: requests and mutations per
second with their p50/p99 latencies over the last few seconds, open sockets, live
queries and presence rooms, for this node and (PostgreSQL) every live node as it
last sent them with its heartbeat, and the cluster's totals. Rooms lists presence
rooms with their peer counts (peers themselves: GET /api/presence/{room}). App shows
the loaded app's schema, rules and functions' argument schemas, read-only.
"""

from __future__ import annotations

import time
from typing import Any

from actorbase.cluster import pulse_figures
from handlers.admin import AdminHandler
from handlers.openapi import ADMIN, INTEGER, NUMBER, OBJECT, STRING, array, obj, operation, param
from store.base import Txn
from store.presence_tables import live_nodes, room_census, room_count

MAX_ROOMS = 1000

_RECENT = obj(("perSecond", "p50Ms", "p99Ms"), perSecond=NUMBER, p50Ms=NUMBER, p99Ms=NUMBER)
_PULSE = obj(
    ("requests", "mutations", "sockets", "subscriptions", "rooms"),
    requests=_RECENT,
    mutations=_RECENT,
    sockets=INTEGER,
    subscriptions=INTEGER,
    rooms=INTEGER,
)


class PulseHandler(AdminHandler):
    openapi = {
        "get": operation(
            "The last seconds of every node: rates, p50/p99 latencies, sockets, rooms",
            "admin",
            {
                200: obj(
                    ("node", "at", "nodes", "cluster"),
                    node=STRING,
                    at=INTEGER,
                    nodes=array({"allOf": [_PULSE, obj(("node",), node=STRING)]}),
                    cluster=_PULSE,
                )
            },
            auth=ADMIN,
        )
    }

    async def get(self) -> None:
        self.require_admin()
        ctx = self.ctx
        own = {"node": ctx.node, **pulse_figures(ctx)}
        nodes = [own]
        rooms = own["rooms"]
        if ctx.presence is not None:
            timeout_ms = int(ctx.settings.node_timeout * 1000)

            def read(txn: Txn) -> tuple[list[dict[str, Any]], int]:
                return live_nodes(txn, timeout_ms), room_count(txn)

            others, rooms = await ctx.reads.read(read)
            # This node's figures are fresh; the others' as of their last heartbeat.
            nodes += [
                {"node": n["node"], **n["pulse"]}
                for n in others
                if n["node"] != ctx.node and "pulse" in n
            ]
        self.send(
            {
                "node": ctx.node,
                "at": int(time.time() * 1000),
                "nodes": nodes,
                "cluster": _sum(nodes, rooms),
            }
        )


def _sum(nodes: list[dict[str, Any]], rooms: int) -> dict[str, Any]:
    """Rates and counts add up; a latency percentile does not, so the cluster's is the
    worst node's (an upper bound)."""

    def recent(key: str) -> dict[str, float]:
        return {
            "perSecond": round(sum(n[key]["perSecond"] for n in nodes), 3),
            "p50Ms": max(n[key]["p50Ms"] for n in nodes),
            "p99Ms": max(n[key]["p99Ms"] for n in nodes),
        }

    return {
        "requests": recent("requests"),
        "mutations": recent("mutations"),
        "sockets": sum(n["sockets"] for n in nodes),
        "subscriptions": sum(n["subscriptions"] for n in nodes),
        "rooms": rooms,
    }


class RoomsHandler(AdminHandler):
    openapi = {
        "get": operation(
            "Presence rooms with a peer, and how many (every node's on PostgreSQL)",
            "admin",
            {
                200: obj(
                    ("rooms",),
                    rooms=array(obj(("room", "peers"), room=STRING, peers=INTEGER)),
                )
            },
            auth=ADMIN,
            params=(param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_ROOMS}),),
        )
    }

    async def get(self) -> None:
        self.require_admin()
        limit = self.int_argument("limit", 100, 1, MAX_ROOMS)
        ctx = self.ctx
        if ctx.presence is not None:
            census = await ctx.reads.read(lambda txn: room_census(txn, limit))
        else:
            census = ctx.rooms.census() if ctx.rooms is not None else {}  # type: ignore[union-attr]
        rooms = [{"room": name, "peers": census[name]} for name in sorted(census)[:limit]]
        self.send({"rooms": rooms})


class AppHandler(AdminHandler):
    openapi = {
        "get": operation(
            "The loaded app: its schema, rules and functions' argument schemas",
            "admin",
            {
                200: obj(
                    ("app", "schema", "rules", "functions"),
                    app={"type": ["string", "null"]},
                    schema=OBJECT,
                    rules=OBJECT,
                    functions=array(obj(("name", "arguments"), name=STRING, arguments=OBJECT)),
                )
            },
            auth=ADMIN,
        )
    }

    async def get(self) -> None:
        self.require_admin()
        app = self.ctx.app
        self.send(
            {
                "app": app.spec,
                "schema": app.raw_schema or {},
                "rules": app.raw_rules or {},
                "functions": [
                    {"name": name, "arguments": schema}
                    for name, schema in sorted(app.function_json_schemas().items())
                ],
            }
        )
