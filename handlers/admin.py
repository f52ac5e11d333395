"""GET /api/admin/stats and /api/admin/schema (admin token only).

Stats come from counters kept as work happens (store.stats) plus two cheap counted
reads (users; storage totals over ab_files' metadata); the schema from the counters
the transactor keeps in ab_schema_stats (store.schema_stats). Neither scans entity rows.
Queries, mutations and subscriptions are the answering node's (`node`); users are the
database's. On PostgreSQL `activeToday` also counts the users whose session was opened
or refreshed today (on any process), and `nodes` lists every live node's own figures,
as each last sent them with its heartbeat (actorbase.cluster).
"""

from __future__ import annotations

from typing import Any

from actorbase.cluster import node_figures
from actorbase.errors import PermissionDenied
from handlers.base import ApiHandler
from handlers.openapi import ADMIN, INTEGER, NUMBER, STRING, array, obj, operation
from store import files, schema_stats
from store.base import Txn
from store.presence_tables import live_nodes
from store.stats import sessions_since, user_count, utc_midnight_ms

"""An app that declares no attribute types: the schema is inferred from data alone."""


class AdminHandler(ApiHandler):
    def require_admin(self) -> None:
        if not self.require_auth().is_admin:
            raise PermissionDenied("This endpoint needs the admin token")


_RATE = obj(
    ("total", "perSecond", "avgLatencyMs"), total=INTEGER, perSecond=NUMBER, avgLatencyMs=NUMBER
)
_COUNTED = obj(("name", "type", "count"), name=STRING, type=STRING, count=INTEGER)


class StatsHandler(AdminHandler):
    openapi = {
        "get": operation(
            "Server counters: queries, mutations, subscriptions, storage, users",
            "admin",
            {
                200: obj(
                    ("queries", "mutations", "subscriptions", "storage", "users"),
                    queries=_RATE,
                    mutations=_RATE,
                    subscriptions=obj(("active",), active=INTEGER),
                    storage=obj(
                        ("totalFiles", "totalBytes"), totalFiles=INTEGER, totalBytes=INTEGER
                    ),
                    users=obj(("total", "activeToday"), total=INTEGER, activeToday=INTEGER),
                    node=STRING,
                    nodes=array(obj(("node",), node=STRING)),
                )
            },
            auth=ADMIN,
        )
    }

    async def get(self) -> None:
        self.require_admin()
        ctx = self.ctx

        cluster = ctx.presence is not None
        timeout_ms = int(ctx.settings.node_timeout * 1000)
        midnight = utc_midnight_ms()

        def read(txn: Txn) -> tuple[int, tuple[int, int], set[str], list[dict[str, Any]]]:
            # Across processes, users active today are those the sessions table knows
            # of too; each node's figures come with its heartbeat.
            if not cluster:
                return user_count(txn), files.totals(txn), set(), []
            return (
                user_count(txn),
                files.totals(txn),
                sessions_since(txn, midnight),
                live_nodes(txn, timeout_ms),
            )

        users, (file_count, file_bytes), active, nodes = await ctx.reads.read(read)
        dispatcher = ctx.dispatcher
        if not cluster:
            nodes = [{"node": ctx.node, **node_figures(ctx)}]
        self.send(
            {
                "queries": ctx.stats.queries.snapshot(),
                "mutations": ctx.stats.mutations.snapshot(),
                "subscriptions": {
                    "active": dispatcher.subscriptions if dispatcher is not None else 0
                },
                "storage": {"totalFiles": file_count, "totalBytes": file_bytes},
                "users": {"total": users, "activeToday": ctx.stats.active_today.count(active)},
                # The figures above but users are this node's; each live node's follow.
                "node": ctx.node,
                "nodes": nodes,
            }
        )


class SchemaHandler(AdminHandler):
    openapi = {
        "get": operation(
            "Entities, their attributes' types and relations, with counts",
            "admin",
            {
                200: obj(
                    ("entities",),
                    entities=array(
                        obj(
                            ("name", "count", "attributes", "relations"),
                            name=STRING,
                            count=INTEGER,
                            attributes=array(_COUNTED),
                            relations=array(
                                obj(
                                    ("name", "target", "count"),
                                    name=STRING,
                                    target=STRING,
                                    count=INTEGER,
                                )
                            ),
                        )
                    ),
                )
            },
            auth=ADMIN,
        )
    }

    async def get(self) -> None:
        self.require_admin()
        records = await self.ctx.reads.read(schema_stats.counts)
        app = self.ctx.app
        self.send({"entities": schema_stats.describe(records, app.links, app.declared_types())})
