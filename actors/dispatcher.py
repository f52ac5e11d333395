"""The dispatcher: routes committed change sets to the live queries they touch.

It lives on the IOLoop thread (every method but `listener` is called there), so its
maps need no lock. The transactor calls `listener` on its own thread once per change
set, in tx order; one `call_soon_threadsafe` per change set crosses into the loop,
where the set is told (never asked: the transactor must not wait for a socket) to the
subscriptions on the touched entities only. Tells keep that order per subscription.

It also owns the sharing: subscriptions with the same normalized query and the same
permission context are members of one SubscriptionActor. Membership is counted here,
synchronously, so an actor is never stopped while a join is on its way to it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pykka

from actors.subscription import (
    Changes,
    Join,
    Leave,
    Member,
    Resync,
    SubscriptionActor,
    principal_key,
    query_entities,
)
from actors.transactor import ChangeSet
from store.principal import Principal
from store.query.ast import Query
from store.readpool import ReadPool


@dataclasses.dataclass(eq=False, slots=True)
class _Shared:
    ref: pykka.ActorRef[Any]
    entities: frozenset[str]
    key: tuple[str, str] | None
    members: int = 0


class Dispatcher:
    """Change-set routing and the registry of live queries; loop thread only."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        reads: ReadPool,
        fanout_turn: float,
        max_bytes: int | None = None,
        on_sent: Callable[[float], None] | None = None,
    ) -> None:
        """`on_sent`: told when a diff reached every member (actors.subscription)."""
        self._on_sent = on_sent
        self._loop = loop
        self._reads = reads
        self._fanout_turn = fanout_turn
        self._max_bytes = max_bytes
        self._by_key: dict[tuple[str, str], _Shared] = {}
        self._by_entity: dict[str, set[_Shared]] = {}
        self._by_member: dict[Member, _Shared] = {}
        self.last_tx = 0
        """The last tx routed: what a q-init served from memory reflects."""

    @property
    def subscriptions(self) -> int:
        """Client subscriptions open in this process (the commit feed reads it from its
        thread: the length of a dict is one atomic read)."""
        return len(self._by_member)

    @property
    def computations(self) -> int:
        """Distinct live queries computed (shared subscriptions count once)."""
        return len({id(s) for s in self._by_member.values()})

    def listener(self, changeset: ChangeSet) -> None:
        """The transactor's listener: on its thread, after COMMIT, in tx order."""
        self._loop.call_soon_threadsafe(self._route, changeset)

    def gap(self, tx: int) -> None:
        """The commit feed's gap (store.txfeed): on its thread, in order with
        `listener`; every live query reads afresh."""
        self._loop.call_soon_threadsafe(self._resync, tx)

    def _resync(self, tx: int) -> None:
        self.last_tx = max(self.last_tx, tx)
        message = Resync(tx)
        for shared in set(self._by_member.values()):
            shared.ref.tell(message)

    def _route(self, changeset: ChangeSet) -> None:
        self.last_tx = max(self.last_tx, changeset.tx)
        targets: set[_Shared] = set()
        for change in changeset.changes:
            targets.update(self._by_entity.get(change.entity, ()))
        message = Changes(changeset)
        for shared in targets:
            shared.ref.tell(message)

    def join(
        self,
        member: Member,
        query: Query,
        normalized: str,
        principal: Principal,
        resume_from: int | None = None,
    ) -> None:
        """Subscribe `member` to `query`; its q-init (or replay) goes to its sink.

        A resume gets a private actor: its starting point is the client's, not the
        shared computation's."""
        key = (normalized, principal_key(principal))
        shared = self._by_key.get(key) if resume_from is None else None
        if shared is None:
            ref = SubscriptionActor.start(
                query,
                principal,
                self._reads,
                self._fanout_turn,
                resume_from,
                self._max_bytes,
                self._on_sent,
            )
            shared = _Shared(ref, query_entities(query), key if resume_from is None else None)
            if shared.key is not None:
                self._by_key[key] = shared
            for entity in shared.entities:
                self._by_entity.setdefault(entity, set()).add(shared)
        shared.members += 1
        self._by_member[member] = shared
        shared.ref.tell(Join(member, self.last_tx, resume_from))

    def leave(self, member: Member) -> None:
        """Unsubscribe `member`; the last member out stops the computation."""
        shared = self._by_member.pop(member, None)
        if shared is None:
            return
        shared.members -= 1
        if shared.members > 0:
            shared.ref.tell(Leave(member))
            return
        if shared.key is not None:
            self._by_key.pop(shared.key, None)
        for entity in shared.entities:
            group = self._by_entity.get(entity)
            if group is not None:
                group.discard(shared)
                if not group:
                    del self._by_entity[entity]
        shared.ref.stop(block=False)
