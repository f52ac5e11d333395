"""The effective configuration is printed once at start (issue 14, item 6), however many
server processes `actorbase serve` supervises: with WEB_CONCURRENCY=2 on PostgreSQL
only the first child says it (a replaced child too stays quiet), on SQLite the one
process does."""

from __future__ import annotations

import os
import signal
import time

from tests.actorbase.test_web_concurrency import _alive, _children, _nodes_answering

START_LINES = (
    "actorbase.start: configuration ",
    "actorbase.start: actorbase 0.1.0 listening on ",
)


def _count(log: str, needle: str) -> int:
    return sum(needle in line for line in log.splitlines())


def _wait_for(condition, within: float = 30) -> None:
    """Wait (a timeout, not a measurement) until `condition()` holds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_several_processes_print_the_configuration_once(make_server, backend):
    server = make_server(backend, WEB_CONCURRENCY=2, LOG_LEVEL="info", NODE_HEARTBEAT=0.2)
    if backend == "postgres":
        assert len(_nodes_answering(server.url, 2)) == 2  # both children serve
        # A child replaced after a crash starts quietly too.
        second = max(_children(server.proc.pid))
        os.kill(second, signal.SIGKILL)
        _wait_for(lambda: not _alive(second) and len(_children(server.proc.pid)) == 2)
        # The replacement binds the port once it is ready.
        _wait_for(lambda: len(_nodes_answering(server.url, 2, tries=16)) == 2, within=60)
        assert "starting another" in server.log()
    log = server.log()
    for needle in START_LINES:
        assert _count(log, needle) == 1, log
    if backend == "postgres":
        assert _count(log, "supervising 2 server processes") == 1
        assert _count(log, "PostgreSQL with local file storage") == 1
    else:
        assert _count(log, "WEB_CONCURRENCY=2: running one process") == 1
    assert server.stop() == 0
