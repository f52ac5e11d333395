"""What handlers are given: the collaborators built at start, injected via initialize()."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pykka

    from actors.transactor import Transactor
    from config.settings import Settings
    from handlers.ratelimit import RateLimiter
    from store.base import Store
    from store.readpool import ReadPool


@dataclasses.dataclass
class Context:
    """Shared by every handler; mutable counters are touched on the IOLoop thread only."""

    settings: Settings
    store: Store
    reads: ReadPool
    transactor: pykka.ActorRef[Transactor]
    limiter: RateLimiter
    admin_token: str
    started_at: float = dataclasses.field(default_factory=time.monotonic)
    http_inflight: int = 0
    websockets: int = 0
    shutting_down: bool = False
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
