"""A thread that LISTENs on a PostgreSQL connection of its own and hands on what is
NOTIFYed, getting the connection back when it is lost.

The commit feed (store.txfeed) and the presence feed (store.presence_link) both follow
other processes this way. A notification sent while the connection was down is lost,
so each says what to do on (re)connecting: the feed reads what it may have missed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

logger = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]

RECONNECT_DELAY = 0.5
"""Seconds between attempts to get the LISTEN connection back."""

POLL = 0.5
"""Seconds between looks at the stop flag while no notification comes."""


class Listener:
    """LISTEN on `channel`; `on_payloads(conn, payloads)` runs on the thread for each
    notification, `on_reconnect(conn)` after the connection came back."""

    def __init__(
        self,
        url: str,
        channel: str,
        application_name: str,
        on_payloads: Callable[[Conn, list[str]], None],
        on_reconnect: Callable[[Conn], None],
    ) -> None:
        self._url = url
        self._channel = channel
        self._name = application_name  # how it shows in pg_stat_activity and the log
        self._on_payloads = on_payloads
        self._on_reconnect = on_reconnect
        self._conn: Conn | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=application_name, daemon=True)

    def connect(self) -> Conn:
        """Listen (blocks: call it off the loop); what is NOTIFYed from now on is kept
        for the thread, which `start` begins."""
        self._conn = self._listen()
        return self._conn

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop handing on and close the connection. Blocks up to POLL seconds."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._conn is not None:
            self._conn.close()

    def _listen(self) -> Conn:
        conn = psycopg.connect(self._url, autocommit=True, application_name=self._name)
        conn.execute(f"LISTEN {self._channel}")
        return conn

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._listen()
                    self._on_reconnect(self._conn)
                # The generator holds the connection's lock: read after leaving it.
                payloads = [n.payload for n in self._conn.notifies(timeout=POLL, stop_after=1)]
                if payloads:
                    self._on_payloads(self._conn, payloads)
            except psycopg.Error as exc:
                logger.warning("%s lost its connection (%s); reconnecting", self._name, exc)
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                self._stopping.wait(RECONNECT_DELAY)
            except Exception:
                logger.exception("%s failed", self._name)
                time.sleep(RECONNECT_DELAY)
