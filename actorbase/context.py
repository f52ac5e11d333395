"""What handlers are given: the collaborators built at start, injected via initialize()."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from actorbase.metrics import Metrics
from config.app import EMPTY, App
from store.query.ast import Limits
from store.query.links import Links
from store.stats import Stats

if TYPE_CHECKING:
    from actors.cluster_rooms import ClusterRooms
    from actors.dispatcher import Dispatcher
    from actors.functions import FunctionPool
    from actors.hub import Hub
    from actors.room import Rooms
    from actors.writer import Writer
    from config.settings import Settings
    from handlers.ratelimit import RateLimits
    from store.auth_service import AuthService
    from store.base import Store
    from store.presence_link import PresenceWriter
    from store.readpool import ReadPool
    from store.storage.base import Blobs


@dataclasses.dataclass
class Context:
    """Shared by every handler; mutable counters are touched on the IOLoop thread only."""

    settings: Settings
    store: Store
    reads: ReadPool
    transactor: Writer
    """The supervised writer: pass it to actors.transactor.submit."""
    limiter: RateLimits
    admin_token: str
    auth: AuthService
    blobs: Blobs
    started_at: float = dataclasses.field(default_factory=time.monotonic)
    http_inflight: int = 0
    websockets: int = 0
    shutting_down: bool = False
    dispatcher: Dispatcher | None = None
    """Routes committed change sets to live queries (set at start)."""
    rooms: Rooms | ClusterRooms | None = None
    """Presence rooms (set at start): this process's, or on PostgreSQL every process's."""
    node: str = ""
    """This process's name among those sharing the database (NODE_ID:pid)."""
    presence: PresenceWriter | None = None
    """On PostgreSQL: writes presence and beats this node's heartbeat (live nodes)."""
    hub: Hub | None = None
    """Open WebSockets and SSE streams, their heartbeats and session checks."""
    stats: Stats = dataclasses.field(default_factory=Stats)
    """Counters for /api/admin/stats; live subscriptions are `dispatcher.subscriptions`."""
    app: App = EMPTY
    """The APP definition: schema, rules, functions."""
    functions: FunctionPool | None = None
    """Runs the app's server functions (None when it has none)."""
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    """The Prometheus figures served at /metrics (one registry per application)."""

    @property
    def query_limits(self) -> Limits:
        return self.settings.query_limits

    @property
    def links(self) -> Links:
        """The app's declared links: every query parser takes them from here."""
        return self.app.links
