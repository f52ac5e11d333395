"""`actorbase serve` with WEB_CONCURRENCY: N server processes on one port, supervised.

The parent checks the port is free (failing fast with one line if not), applies the
migrations once, then starts each child as a fresh `python -m actorbase serve
--shared-port`, which binds PORT with SO_REUSEPORT once it is ready to accept.
Why SO_REUSEPORT: the kernel spreads new connections evenly over the children's
listening sockets. With one socket bound before the children start and shared by
them, the child that wakes first accepts every connection waiting (Tornado accepts in
a loop): 32 keep-alive connections opened at once all landed on one child (measured),
so one core did all the work. The cost: connections still in a child's queue when
it dies are reset (as they would be with one process), none in its siblings'.
Why not fork: a forked child inherits a copy of whatever threads and locks the
parent had (the migration's connection pool, logging); a fresh interpreter has none.

A child that exits is replaced; more than RESTART_LIMIT replacements within
RESTART_WINDOW seconds is a crash loop: the service stops with one line and exit
status 1. SIGTERM or SIGINT: the parent passes SIGTERM on; each child drains as a
single process does (server.Server._stop), and the parent exits once every child
has, 0 if they all stopped cleanly.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from actorbase import logs
from config.settings import Settings
from store.base import StoreUnavailable
from store.factory import open_store

logger = logging.getLogger(__name__)
started = logging.getLogger(logs.START_LOGGER)

RESTART_LIMIT = 5
RESTART_WINDOW = 60.0
STOP_GRACE = 5.0
"""Seconds past SHUTDOWN_TIMEOUT a child may take to exit (its store closing, the
interpreter ending) before it is killed."""

_PR_SET_PDEATHSIG = 1


def processes(settings: Settings) -> int:
    """How many server processes to run: WEB_CONCURRENCY, else one per core usable
    by this process on PostgreSQL; always 1 on SQLite (one writing process)."""
    if not settings.is_postgres:
        return 1
    if settings.web_concurrency is not None:
        return settings.web_concurrency
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def serve(settings: Settings, argv: list[str], shared_port: bool, announce: bool = True) -> int:
    """Run this invocation of `actorbase serve`: a supervised child (`shared_port`),
    one process, or the supervisor of several. `announce`: log the start-up lines
    (the supervisor asks only its first child to, so they appear once)."""
    from actorbase import server

    logs.configure(settings.log_level, settings.log_format)
    if shared_port:
        _die_with_parent()
        return server.serve(settings, shared_port=True, announce=announce)
    count = processes(settings)
    asked = settings.web_concurrency
    if not settings.is_postgres and asked is not None and asked > 1:
        logger.warning(
            "WEB_CONCURRENCY=%d: running one process, as SQLite takes writes from one "
            "process only (use PostgreSQL for several)",
            asked,
        )
    if count == 1:
        return server.serve(settings)
    # Taken (by anything, SO_REUSEPORT or not): one line now, not a crash loop later.
    sockets = server.listen(settings)
    port = sockets[0].getsockname()[1]
    for s in sockets:
        s.close()
    return Supervisor(settings, argv, count, port).run()


def _die_with_parent() -> None:
    """A child gets SIGTERM (and drains) if its supervisor dies without stopping it,
    rather than serving on as an orphan nobody replaces or stops. Linux only."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """Starts `count` children on `port` (PORT as checked: PORT=0 picks one, which
    every child then shares), replaces those that exit, and stops them all on
    SIGTERM/SIGINT."""

    def __init__(self, settings: Settings, argv: list[str], count: int, port: int) -> None:
        self.settings = settings
        self.argv = argv
        self.count = count
        self.port = port
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self._stop_signal: int | None = None
        self._restarts: collections.deque[float] = collections.deque()
        self._announced = False

    def run(self) -> int:
        """Supervise until stopped; the exit status."""
        _migrate(self.settings)
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno())
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)
        started.info(
            "supervising %d server processes on %s:%s",
            self.count,
            self.settings.host,
            self.port,
        )
        for index in range(1, self.count + 1):
            self._start(index)
        code = 0
        while self._stop_signal is None:
            select.select([wake_r], [], [], 1.0)
            while True:
                try:
                    if not wake_r.recv(512):
                        break
                except BlockingIOError:
                    break
            if self._stop_signal is None and not self._replace_exited():
                code = 1
                break
        return max(code, self._stop_all())

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGCHLD and self._stop_signal is None:
            self._stop_signal = sig

    def _start(self, index: int) -> None:
        command = [sys.executable, "-m", "actorbase", *self.argv, "--shared-port"]
        command += ["--node-id", f"{self.settings.node_id}-{index}", "--port", str(self.port)]
        # The children run one configuration: the first one started says it (and where
        # it listens) once, rather than every child and every replacement again.
        if self._announced:
            command.append("--quiet-start")
        self._announced = True
        # Our own interpreter and arguments: nothing here comes from a client.
        self.children[index] = subprocess.Popen(command)  # noqa: S603

    def _replace_exited(self) -> bool:
        """Replace every child that exited; False once that is a crash loop."""
        for index, child in list(self.children.items()):
            status = child.poll()
            if status is None:
                continue
            now = time.monotonic()
            self._restarts.append(now)
            while self._restarts[0] < now - RESTART_WINDOW:
                self._restarts.popleft()
            if len(self._restarts) > RESTART_LIMIT:
                logger.critical(
                    "stopping: server processes exited %d times within %d s (the last, "
                    "pid %d, with status %s): a crash loop",
                    len(self._restarts),
                    RESTART_WINDOW,
                    child.pid,
                    status,
                )
                del self.children[index]
                return False
            logger.warning(
                "server process %d (pid %d) exited with status %s: starting another",
                index,
                child.pid,
                status,
            )
            self._start(index)
        return True

    def _stop_all(self) -> int:
        """SIGTERM every child, wait for all; 0 if each stopped cleanly (a child still
        starting dies of the SIGTERM itself, having had nothing in flight)."""
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_timeout + STOP_GRACE
        code = 0
        for child in self.children.values():
            try:
                status = child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error("server process pid %d did not stop: killed", child.pid)
                child.kill()
                status = child.wait()
            if status not in (0, -signal.SIGTERM):
                code = 1
        started.info("stopped %d server processes", len(self.children))
        return code


def _migrate(settings: Settings) -> None:
    """Apply pending migrations once, before any child opens the store (children
    find none left; `actorbase migrate` in a release phase leaves none either, and
    both take the migration lock)."""
    try:
        store = open_store(settings.database_url, 1)
    except StoreUnavailable as exc:
        raise SystemExit(f"actorbase: {exc}") from None
    try:
        applied = store.migrate()
    except StoreUnavailable as exc:
        raise SystemExit(f"actorbase: {exc}") from None
    finally:
        store.close()
    if applied:
        logger.info("applied migrations %s", applied)
