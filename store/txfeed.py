"""Every commit to a shared PostgreSQL database, from any server process, in tx order.

Several actorbase processes may serve one PostgreSQL database (a second machine when
one is not enough), and each process's live queries must hear of every commit: its
own and the others'. Inside each commit the transactor NOTIFYs channel `ab_tx` with
the last tx id of its group (`Store.announce`). PostgreSQL delivers notifications in
commit order, and tx ids follow commit order (the counter row stays locked until
COMMIT), so a `TxFeed` thread that LISTENs on a connection of its own reads, on each
notification, the change sets from where it stopped up to that tx from `ab_tx`, and
hands them on in tx order. Reading from where it stopped, not the notified group,
also covers anything missed while its connection was down: it reconnects and catches
up. An id with no `ab_tx` row is handed on with no changes, so nothing waits for it.

A process that lags past TX_RETENTION (stopped, cut off) finds the log pruned past
its cursor (store.txlog's floor, read with the rows): it cannot tell what it missed,
so it hands on a gap instead (`on_gap`), and every live query reads afresh.

While the process has no live query (`wanted()` is false) the feed moves its cursor
without reading: a live query opened later reads a snapshot taken after it opened,
which holds every tx the feed passed over, as those had committed before it looked.

On SQLite one process owns the file and the transactor hands its change sets over
directly (`actors.transactor.AddListener`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import ujson

from store import txlog
from store.mutations import Change
from store.pglisten import Conn, Listener

logger = logging.getLogger(__name__)

CHANNEL = "ab_tx"
"""The NOTIFY channel; its payload is the last tx id of a committed group."""

APPLICATION_NAME = "actorbase-txfeed"
"""How the feed's connection shows in pg_stat_activity."""

PAGE = 1000
"""Most tx ids read in one query."""

OnTx = Callable[[int, list[Change]], None]
"""Called on the feed's thread with each tx id and its changes, in tx order."""

OnGap = Callable[[int], None]
"""Called on the feed's thread, in order with `OnTx`, when the commits up to this tx
id are no longer all in the log: whoever follows them must read afresh."""

_PAGE_SQL = (
    "SELECT f.value, t.tx, t.changes FROM ab_counters f "
    f"LEFT JOIN ab_tx t ON t.tx > %s AND t.tx <= %s WHERE f.name = '{txlog.FLOOR}' ORDER BY t.tx"
)
"""A page of the log and the floor, in one snapshot: rows after the floor are all there."""


class TxFeed:
    """A thread that turns the database's commit notifications into change sets."""

    def __init__(self, url: str, on_tx: OnTx, wanted: Callable[[], bool], on_gap: OnGap) -> None:
        self._on_tx = on_tx
        self._on_gap = on_gap
        self._wanted = wanted
        self._cursor = 0
        self._listener = Listener(
            url,
            CHANNEL,
            APPLICATION_NAME,
            self._notified,
            lambda conn: self._catch_up(conn, _last_tx(conn)),  # what came while it was down
        )

    def start(self) -> int:
        """Listen, then start the thread; the last tx committed when listening began
        (everything after it will be handed on). Blocks: call it off the loop."""
        self._cursor = _last_tx(self._listener.connect())
        self._listener.start()
        return self._cursor

    def stop(self) -> None:
        """Stop handing on and close the connection. Blocks up to pglisten.POLL seconds."""
        self._listener.stop()

    def _notified(self, conn: Conn, payloads: list[str]) -> None:
        notified = [int(p) for p in payloads if p.isdigit()]
        if notified:
            self._catch_up(conn, max(notified))

    def _catch_up(self, conn: Conn, upto: int) -> None:
        """Hand on every tx after the cursor up to `upto`, in order, PAGE at a time (a
        long outage must not be read in one piece); a gap if the log was pruned past
        the cursor."""
        if not self._wanted():
            self._cursor = max(self._cursor, upto)
            return
        while self._cursor < upto:
            end = min(upto, self._cursor + PAGE)
            rows = conn.execute(_PAGE_SQL, (self._cursor, end)).fetchall()
            floor = int(rows[0][0])
            if not txlog.covered(floor, self._cursor):
                logger.warning(
                    "commit feed fell behind the tx log's retention (at tx %d, pruned up to "
                    "%d): live queries read afresh",
                    self._cursor,
                    floor,
                )
                self._on_gap(upto)  # reads taken from now on have everything up to it
                self._cursor = upto
                return
            by_tx = {int(tx): changes for _, tx, changes in rows if tx is not None}
            for tx in range(self._cursor + 1, end + 1):
                changes = by_tx.get(tx) or []
                if isinstance(changes, str):
                    changes = ujson.loads(changes)
                self._on_tx(tx, [Change(**c) for c in changes])
                self._cursor = tx


def _last_tx(conn: Conn) -> int:
    row = conn.execute("SELECT value FROM ab_counters WHERE name = 'tx'").fetchone()
    return int(row[0]) if row else 0
