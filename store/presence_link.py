"""The two threads that join a process's presence rooms to every other process's.

`PresenceWriter` writes this process's peers' changes to PostgreSQL (store.
presence_tables) on a connection of its own, a batch per transaction: while one batch
commits the next gathers, and a peer's updates queued meanwhile are coalesced into
one (latest wins), so a burst costs a few NOTIFYs, not one per update. The same
thread beats this node's heartbeat every NODE_HEARTBEAT seconds and removes the nodes
silent for NODE_TIMEOUT (their peers leave, announced). If others took this node for
dead (a pause longer than the bound), its row is put back and its peers enter again.

`PresenceFeed` LISTENs on channel `ab_presence` on a connection of its own and hands
each notification's entries on, in the order PostgreSQL delivers them (commit order);
after a lost connection it listens again and asks for every room to be read afresh.

Neither runs on the IOLoop; both block on their own connections.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import ujson

from store import presence_tables as tables
from store.pglisten import Conn, Listener
from store.presence_tables import Entry, Op

logger = logging.getLogger(__name__)

RECONNECT_DELAY = 0.5
"""Seconds between attempts to get a lost connection back."""

SWEEP_EVERY = 60.0
"""Seconds between sweeps of the reference log and empty rooms."""

APPLICATION_NAME = "actorbase-presence"
"""How the presence connections show in pg_stat_activity."""


class PresenceWriter:
    """This node's presence writes, heartbeat and reaping, on a thread of its own."""

    def __init__(
        self,
        url: str,
        node: str,
        max_peers: int,
        heartbeat: float,
        timeout: float,
        figures: Callable[[], dict[str, Any]],
    ) -> None:
        self._url = url
        self.node = node
        self._max_peers = max_peers
        self._heartbeat = heartbeat
        self._timeout_ms = int(timeout * 1000)
        self._figures = figures
        self.live = 1
        """Nodes with a recent heartbeat, this one included, as of the last beat."""
        self._conn: psycopg.Connection[Any] | None = None
        self._cond = threading.Condition()
        self._ops: list[tuple[Op, concurrent.futures.Future[bool] | None]] = []
        self._stopping = False
        self._mine: dict[tuple[str, str], Op] = {}
        """This node's peers as written: entered again if the node was taken for dead."""
        self._thread = threading.Thread(target=self._run, name="presence-writer", daemon=True)

    def start(self) -> None:
        """Register this node (an earlier process of its name leaves its rooms), then
        start the thread. Blocks: call it off the loop."""
        self._conn = self._connect()
        tables.register(self._conn, self.node)
        _, self.live, _ = tables.heartbeat(self._conn, self.node, "{}", self._timeout_ms)
        self._thread.start()

    def submit(self, op: Op) -> concurrent.futures.Future[bool]:
        """Queue `op`; any thread. The future says whether it was accepted (False: an
        enter into a full room); set once its batch committed."""
        reply: concurrent.futures.Future[bool] = concurrent.futures.Future()
        with self._cond:
            if self._stopping:
                reply.set_result(True)  # the node is leaving: all its peers go with it
                return reply
            self._ops.append((op, reply))
            self._cond.notify()
        return reply

    def stop(self) -> None:
        """Write what is queued, then leave: every peer of this node leaves its rooms
        at once rather than after NODE_TIMEOUT. Blocks."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()
        if self._conn is not None:
            try:
                tables.unregister(self._conn, self.node)
            except psycopg.Error as exc:
                logger.warning("presence: could not leave the cluster cleanly (%s)", exc)
            self._conn.close()

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._url, autocommit=True, application_name=APPLICATION_NAME)

    def _run(self) -> None:
        next_beat = time.monotonic() + self._heartbeat
        next_sweep = time.monotonic() + SWEEP_EVERY
        while True:
            with self._cond:
                while not self._ops and not self._stopping:
                    wait = next_beat - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                batch, self._ops = _coalesce(self._ops), []
                stopping = self._stopping
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                if batch:
                    self._write(batch)
                now = time.monotonic()
                if now >= next_beat and not stopping:
                    next_beat = now + self._heartbeat
                    self._beat()
                    if now >= next_sweep:
                        next_sweep = now + SWEEP_EVERY
                        tables.sweep(self._conn)
            except psycopg.Error as exc:
                logger.warning("presence writer lost its connection (%s); reconnecting", exc)
                if stopping:
                    return  # unregistering fails too; the others' reaping will do
                with self._cond:
                    self._ops[:0] = batch  # written again, in order, once back
                self._close()
                time.sleep(RECONNECT_DELAY)
                continue
            except Exception:
                logger.exception("presence writer failed")
                for _, reply in batch:
                    if reply is not None and not reply.done():
                        reply.set_result(False)
                time.sleep(RECONNECT_DELAY)
                continue
            if stopping:
                with self._cond:
                    if not self._ops:
                        return

    def _write(self, batch: list[tuple[Op, concurrent.futures.Future[bool] | None]]) -> None:
        assert self._conn is not None
        ops = [op for op, _ in batch]
        kept = tables.write(self._conn, self.node, ops, self._max_peers)
        for op in ops:
            key = (op.room, op.peer)
            if op.kind == "leave":
                self._mine.pop(key, None)
            elif op.kind == "enter" and op.accepted:
                self._mine[key] = Op("enter", op.room, op.peer, op.user_id, op.data)
            elif key in self._mine:
                self._mine[key].data = op.data
        for op, reply in batch:
            if reply is not None and not reply.done():
                reply.set_result(op.accepted)
        if not kept:
            self._rejoin()

    def _beat(self) -> None:
        assert self._conn is not None
        figures = ujson.dumps(self._figures())
        kept, self.live, dead = tables.heartbeat(self._conn, self.node, figures, self._timeout_ms)
        if not kept:
            self._rejoin()
        for name in dead:
            logger.warning("presence: node %s stopped beating; its peers left", name)

    def _rejoin(self) -> None:
        """Others took this node for dead and saw its peers leave: they enter again."""
        logger.warning("presence: this node was taken for dead; its peers enter again")
        ops = [(Op("enter", o.room, o.peer, o.user_id, o.data), None) for o in self._mine.values()]
        with self._cond:
            self._ops[:0] = ops

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None


def _coalesce(
    ops: list[tuple[Op, concurrent.futures.Future[bool] | None]],
) -> list[tuple[Op, concurrent.futures.Future[bool] | None]]:
    """An update folds into the peer's enter or update queued before it (latest wins)."""
    out: list[tuple[Op, concurrent.futures.Future[bool] | None]] = []
    last: dict[tuple[str, str], tuple[Op, concurrent.futures.Future[bool] | None]] = {}
    for item in ops:
        op, reply = item
        key = (op.room, op.peer)
        prior = last.get(key)
        if op.kind == "update" and prior is not None and prior[0].kind != "leave":
            prior[0].data = op.data
            if reply is not None:
                reply.set_result(True)
            continue
        out.append(item)
        last[key] = item
    return out


class PresenceFeed:
    """Every process's presence changes, in commit order, on a thread of its own."""

    def __init__(
        self,
        url: str,
        on_entries: Callable[[list[Entry]], None],
        on_reconnect: Callable[[], None],
    ) -> None:
        self._on_entries = on_entries
        self._listener = Listener(
            url, tables.CHANNEL, APPLICATION_NAME, self._notified, lambda _: on_reconnect()
        )

    def start(self) -> None:
        """Listen, then start the thread. Blocks: call it off the loop."""
        self._listener.connect()
        self._listener.start()

    def stop(self) -> None:
        """Stop handing on and close the connection. Blocks up to pglisten.POLL seconds."""
        self._listener.stop()

    def _notified(self, conn: Conn, payloads: list[str]) -> None:
        for payload in payloads:
            self._on_entries(self._entries(conn, payload))

    def _entries(self, conn: Conn, payload: str) -> list[Entry]:
        """The payload's entries, those sent by reference read from the log (one swept
        meanwhile asks for its room to be read afresh)."""
        entries: list[Entry] = ujson.loads(payload)
        refs = [e[0] for e in entries if e[2] == "ref"]
        if not refs:
            return entries
        found = tables.logged(conn, refs)
        return [
            (found.get(e[0]) or [e[0], e[1], "resync"]) if e[2] == "ref" else e for e in entries
        ]
