"""This process as one node of several on a PostgreSQL database: its name, the
figures it publishes with its heartbeat, and its presence threads started and
stopped together (store.presence_link, actors.cluster_rooms)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from actorbase.context import Context
from actors.cluster_rooms import ClusterRooms
from config.settings import Settings
from store.presence_link import PresenceFeed, PresenceWriter
from store.readpool import ReadPool


def node_name(settings: Settings) -> str:
    """NODE_ID (DYNO or the hostname by default) and the pid: several processes of one
    dyno (WEB_CONCURRENCY) stay apart, and a restarted one is a new node."""
    return f"{settings.node_id}:{os.getpid()}"


def node_figures(ctx: Context | None) -> dict[str, Any]:
    """What this node publishes with each heartbeat, for /api/admin/stats on any node.
    Read on the writer thread: each figure is one int or a meter's snapshot (see
    store.stats on reading meters from another thread)."""
    if ctx is None:
        return {}
    dispatcher = ctx.dispatcher
    return {
        "queries": ctx.stats.queries.snapshot(),
        "mutations": ctx.stats.mutations.snapshot(),
        "subscriptions": {"active": dispatcher.subscriptions if dispatcher is not None else 0},
        "connections": {"websocket": ctx.websockets, "http": ctx.http_inflight},
        "pulse": pulse_figures(ctx),
    }


def pulse_figures(ctx: Context) -> dict[str, Any]:
    """The last few seconds of this node, for the admin dashboard's charts (sent with
    the heartbeat too, so any node can chart every node)."""
    dispatcher = ctx.dispatcher
    return {
        "requests": ctx.stats.requests.recent(),
        "mutations": ctx.stats.mutations.recent(),
        "sockets": ctx.websockets,
        "subscriptions": dispatcher.subscriptions if dispatcher is not None else 0,
        "rooms": len(ctx.rooms) if ctx.rooms is not None else 0,
    }


class ClusterPresence:
    """The presence writer and feed of this node, and the rooms they serve."""

    def __init__(
        self, settings: Settings, node: str, reads: ReadPool, figures: Callable[[], dict[str, Any]]
    ) -> None:
        s = settings
        self.writer = PresenceWriter(
            s.database_url, node, s.presence_max_peers, s.node_heartbeat, s.node_timeout, figures
        )
        self.rooms = ClusterRooms(
            self.writer, reads, s.presence_rate, s.fanout_turn, s.presence_max_peers
        )
        self._feed: PresenceFeed | None = None
        self._url = s.database_url

    async def start(self) -> ClusterRooms:
        """Register the node and listen; blocking parts off the loop."""
        loop = asyncio.get_running_loop()
        rooms = self.rooms
        self._feed = PresenceFeed(
            self._url,
            lambda entries: loop.call_soon_threadsafe(rooms.apply, entries),
            lambda: loop.call_soon_threadsafe(rooms.reread),
        )
        await loop.run_in_executor(None, self._feed.start)
        await loop.run_in_executor(None, self.writer.start)
        return rooms

    async def stop(self) -> None:
        """Write what is queued and leave (this node's peers leave every room now)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.writer.stop)
        if self._feed is not None:
            await loop.run_in_executor(None, self._feed.stop)
