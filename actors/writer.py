"""The transactor under supervision: every write reaches a live transactor, or the
process stops.

pykka stops an actor that an exception escapes. The transactor is the only writer, so
a dead one would fail every later write while the process looked alive. The `Writer`
holds the current transactor; when one dies it starts a successor with the same store
and listeners and hands it the mutations still queued (the group in flight got
INTERNAL from the dead one's `on_failure`). A writer that keeps dying (MAX_RESTARTS
within RESTART_WINDOW seconds) is given up: writes fail, `alive` turns False (health
says so) and `on_give_up` tells the process to exit non-zero.

Callers hold the `Writer`, never a transactor's ref, so they see the successor.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

from actorbase.errors import Internal
from actors.transactor import AddListener, Listener, Mutation, Transactor, answer

logger = logging.getLogger(__name__)

MAX_RESTARTS = 3
RESTART_WINDOW = 60.0
"""More than MAX_RESTARTS deaths within this many seconds: something is broken that a
fresh transactor does not mend (the database, a bug on every commit)."""


class Writer:
    """Starts, supervises and stops the transactor. Thread-safe: `tell` comes from the
    IOLoop, a death is handled on the dying transactor's thread."""

    def __init__(
        self,
        make: Callable[..., pykka.ActorRef[Transactor]],
        on_give_up: Callable[[str], None] | None = None,
    ) -> None:
        """`make(listeners=..., on_death=...)` starts a transactor (`Transactor.start`
        with the store and settings bound)."""
        self._make = make
        self._on_give_up = on_give_up
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._deaths: collections.deque[float] = collections.deque()
        self._stopping = False
        self.failure: str | None = None
        """Why writes stopped for good (None while the writer works)."""
        self.restarts = 0
        self._ref = self._start()

    @property
    def alive(self) -> bool:
        """False once the writer was given up or stopped (or, for a moment, while a
        dead transactor's successor starts)."""
        return self.failure is None and not self._stopping and self._ref.is_alive()

    @property
    def queued(self) -> int:
        """Messages (mutations) waiting in the current transactor's mailbox."""
        return self._ref.actor_inbox.qsize()  # type: ignore[attr-defined]

    def tell(self, message: Any) -> None:
        """Send to the current transactor; ActorDeadError once stopped or given up."""
        with self._lock:
            if self._stopping or self.failure is not None:
                # Behind a stop message a mutation would be dropped unanswered.
                raise pykka.ActorDeadError("the writer has stopped")
            if not self._ref.is_alive():
                # Dead, and its on_failure has not run yet: no need to wait for it.
                self._replace()
            self._ref.tell(message)

    def add_listener(self, listener: Listener) -> None:
        """`listener` hears every commit, of this transactor and of its successors."""
        with self._lock:
            self._listeners.append(listener)
            self._ref.tell(AddListener(listener))

    def stop(self, timeout: float) -> None:
        """Stop after the mutations queued so far commit (blocks: off the loop)."""
        with self._lock:
            self._stopping = True
            ref = self._ref
        try:
            ref.stop(block=True, timeout=timeout)
        except pykka.Timeout:
            logger.warning("the writer did not finish its queue within %.1f s", timeout)

    def _start(self) -> pykka.ActorRef[Transactor]:
        return self._make(listeners=list(self._listeners), on_death=self._died)

    def _died(self, dead: Transactor) -> None:
        """On the dead transactor's thread, before pykka drops what is left in its
        inbox: give its queued mutations to the successor (or fail them)."""
        with self._lock:
            if self._stopping:
                return
            if self._ref.actor_urn == dead.actor_urn and self.failure is None:
                self._replace()
            while True:
                try:
                    envelope = dead.actor_inbox.get_nowait()  # type: ignore[attr-defined]
                except queue.Empty:
                    break
                if isinstance(envelope.message, Mutation):
                    if self.failure is None:
                        self._ref.tell(envelope.message)
                    else:
                        answer(envelope.message.reply, Internal("The writer has stopped"))
                elif envelope.reply_to is not None:
                    envelope.reply_to.set_exception(
                        exc_info=(pykka.ActorDeadError, pykka.ActorDeadError("restarted"), None)
                    )

    def _replace(self) -> None:
        """Start a successor, unless the writer keeps dying: then give up. Holds the lock."""
        now = time.monotonic()
        while self._deaths and now - self._deaths[0] > RESTART_WINDOW:
            self._deaths.popleft()
        self._deaths.append(now)
        if len(self._deaths) > MAX_RESTARTS:
            self.failure = f"the writer died {len(self._deaths)} times in {RESTART_WINDOW:g} s"
            logger.critical("%s: giving up", self.failure)
            if self._on_give_up is not None:
                self._on_give_up(self.failure)
            return
        logger.error("the writer died: starting a new one")
        self.restarts += 1
        self._ref = self._start()
