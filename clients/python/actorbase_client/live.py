"""A live query's local result: q-init and q-diff frames applied per entity, in
`$order`, links included (a link's rows travel as the parent row's field), with
pending optimistic mutations on top. Iterate it (`async for result in live`) or
`subscribe(callback)`; each result is `{entity: [rows]}`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ActorbaseError
from .events import Listeners
from .optimistic import Optimistic, Pending
from .order import Row
from .result import ResultSet

Result = dict[str, list[Row]]


@dataclass(slots=True)
class LiveStats:
    """Frames applied: after a reconnect that resumed, `diffs` grows by one and
    `inits` not at all (a `q-init` means the server could not resume)."""

    inits: int = 0
    diffs: int = 0


class Transport(Protocol):
    def add(self, live: LiveQuery) -> None: ...
    def remove(self, live: LiveQuery) -> None: ...


class LiveQuery:
    def __init__(
        self, query: dict[str, Any], sub_id: str, transport: Transport, optimistic: Optimistic
    ) -> None:
        self.query = query
        self.id = sub_id
        self.tx: int | None = None
        """The tx of the last frame applied: a resubscription resumes from it."""
        self.error: ActorbaseError | None = None
        self.stats = LiveStats()
        self.closed = False
        self._transport = transport
        self._optimistic = optimistic
        self._sets = {entity: ResultSet(spec or {}) for entity, spec in query.items()}
        self._result: Result | None = None
        self._listeners: Listeners[Result | ActorbaseError] = Listeners()
        transport.add(self)

    @property
    def entities(self) -> set[str]:
        return set(self._sets)

    @property
    def result(self) -> Result | None:
        """The current result (None until the first q-init)."""
        return self._result

    def subscribe(self, callback: Callable[[Result], object]) -> Callable[[], None]:
        """Call `callback` with every new result (at once with the current one, if
        any); returns the function that stops it."""
        if self._result is not None:
            callback(self._result)
        return self._listeners.add(
            lambda value: None if isinstance(value, ActorbaseError) else callback(value)
        )

    async def __aiter__(self) -> AsyncIterator[Result]:
        """Successive results, from the current one; raises ActorbaseError if the
        server ends the query (e.g. its permissions changed)."""
        if self.error is not None:
            raise self.error
        async for value in self._listeners.iterate(self._result):
            if isinstance(value, ActorbaseError):
                raise value
            yield value

    async def ready(self) -> Result:
        """The first result (at once if there is one)."""
        async for result in self:
            return result
        raise ActorbaseError("INVALID_ARGUMENT", "The live query was closed", 400)

    def close(self) -> None:
        """Unsubscribe; an `async for` over it ends."""
        if not self.closed:
            self.closed = True
            self._transport.remove(self)
            self._listeners.end()

    # -- frames (called by the transport) ------------------------------------------------

    def handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "q-init":
            data = msg.get("data") or {}
            for entity, rows in self._sets.items():
                rows.load(data.get(entity) or [])
            self.stats.inits += 1
        elif kind == "q-diff":
            entity = msg.get("entity") or next(iter(self._sets))
            target = self._sets.get(entity)
            if target is not None:
                target.apply(
                    msg.get("added") or [], msg.get("updated") or [], msg.get("removed") or []
                )
            self.stats.diffs += 1
        elif kind == "error":
            self.error = ActorbaseError.from_wire(msg, 400)
            self.closed = True
            self._transport.remove(self)
            self._listeners.emit(self.error)
            return
        else:
            return
        if isinstance(msg.get("tx"), int):
            self.tx = msg["tx"]
        self.refresh()

    def refresh(self) -> None:
        """Recompute the result (a frame came, or the pending mutations changed)."""
        self._result = {
            entity: self._optimistic.overlay(entity, rows, self.tx)
            for entity, rows in self._sets.items()
        }
        self._listeners.emit(self._result)

    def overlay_changes(self, key: str, entity: str) -> bool:
        """Whether pending mutation `key` alone would change this result of `entity`
        (timestamps aside): if not, nothing is left to wait for."""
        rows = self._sets[entity]
        alone = Optimistic()
        alone.user_id = self._optimistic.user_id
        alone.pending = [Pending(p.key, p.ops) for p in self._optimistic.pending if p.key == key]
        return bool(alone.pending) and _differs(alone.overlay(entity, rows, None), rows.view())


def _differs(a: list[Row], b: list[Row]) -> bool:
    if len(a) != len(b):
        return True
    skip = ("createdAt", "updatedAt")
    for x, y in zip(a, b, strict=True):
        if x is y:
            continue
        if {k: v for k, v in x.items() if k not in skip} != {
            k: v for k, v in y.items() if k not in skip
        }:
            return True
    return False
