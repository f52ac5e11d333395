"""The process's Prometheus metrics, served at GET /metrics (handlers.metrics).

One `Metrics` per application, each with its own CollectorRegistry (never the
library's global one), so several servers in one interpreter never share a figure.

Three kinds of figure, each counted where it is cheapest:
- events counted as they happen: requests, the hottest path, as plain numbers on the
  IOLoop (~1 µs a request; a prometheus_client counter and histogram cost 5 µs with
  their locks); commits, fan-outs, closes, read-pool waits and store errors, from
  several threads, as prometheus_client counters and histograms (thread-safe);
- levels read at scrape time from what the process keeps anyway (open sockets,
  subscriptions, rooms, queue lengths) and the request figures: `_Live`, on the
  IOLoop, no locks;
- figures about the data (users, active today, stored files, the last tx): read from
  the database through the read pool when a scrape asks and they are older than
  DATA_MAX_AGE, so on PostgreSQL every process reports the same cluster-wide numbers
  and a scrape never blocks the loop.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import tornado.web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

import actorbase
from actorbase.errors import ApiError, Internal
from actors.connection import CLOSE_SLOW
from actors.hub import CLOSE_AUTH, CLOSE_GOING_AWAY, REVOKED
from store.figures import DataFigures, read_data_figures
from store.timedpool import TimedExecutor

if TYPE_CHECKING:
    from actorbase.context import Context
    from actors.transactor import Mutation
    from store.mutations import Outcome
    from store.readpool import ReadPool

DATA_MAX_AGE = 1.0
"""Seconds a scrape reuses the data figures read for the one before it."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
"""Seconds: most requests here take well under a millisecond, so the low end is finer
than the library's default."""

GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
"""Mutations per database transaction (GROUP_COMMIT_MAX is 256 by default)."""

ROUTE_CLASSES = {
    "handlers.data": "data",
    "handlers.query": "query",
    "handlers.mutate": "mutate",
    "handlers.auth": "auth",
    "handlers.storage": "storage",
    "handlers.signed": "storage",
    "handlers.functions": "functions",
    "handlers.admin": "admin",
    "handlers.admin_users": "admin",
    "handlers.admin_live": "admin",
    "handlers.admin_ui": "admin",
    "handlers.health": "health",
    "handlers.presence": "presence",
    "handlers.sse": "sse",
    "handlers.ws": "ws",
    "handlers.openapi": "docs",
    "handlers.cors": "preflight",
    "handlers.metrics": "metrics",
}
"""The `route` label, by the module of the handler that served the request: a fixed
set, whatever paths clients send. A path no route matches is `unmatched`."""

_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
"""Methods kept as their own label value; any other is `OTHER` (clients choose them)."""

CLOSE_REASONS = {CLOSE_SLOW: "slow_consumer", CLOSE_AUTH: "auth", CLOSE_GOING_AWAY: "shutdown"}
"""The `reason` label of a server close, by close code; CLOSE_AUTH with the hub's
REVOKED reason is `revoked` (token expiry is `auth`)."""


def route_class(cls: type) -> str:
    """The `route` label of requests served by handler class `cls`."""
    if cls.__name__ == "NotFoundHandler":
        return "unmatched"
    return ROUTE_CLASSES.get(cls.__module__, "other")


class Metrics:
    """Every figure of one application; see the module docstring for who writes what."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self._requests: dict[tuple[type, str, int], _Tally] = {}
        """Per (handler class, method, status): its count, and its route's latencies."""
        self._latencies: dict[tuple[str, str], _Latency] = {}
        self.tx_committed = Counter(
            "actorbase_tx_committed",
            "Transactions (one per mutation) this process's writer committed",
            registry=registry,
        )
        self.mutations_failed = Counter(
            "actorbase_mutations_failed",
            "Mutations answered with an error, by the error code",
            ("code",),
            registry=registry,
        )
        self.mutation_seconds = Histogram(
            "actorbase_mutation_duration_seconds",
            "Time from a mutation's submission to its COMMIT",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.group_size = Histogram(
            "actorbase_commit_group_size",
            "Mutations committed together in one database transaction (group commit)",
            buckets=GROUP_BUCKETS,
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "actorbase_commit_duration_seconds",
            "Time the writer spent on one database transaction (a group)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.fanout_seconds = Histogram(
            "actorbase_diff_fanout_seconds",
            "Time from a commit reaching this process to its diff handed to the last "
            "subscriber's socket, per live query",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._closes = Counter(
            "actorbase_connections_closed",
            "WebSockets and SSE streams the server closed, by transport and reason",
            ("transport", "reason"),
            registry=registry,
        )
        self.read_wait_seconds = Histogram(
            "actorbase_read_pool_wait_seconds",
            "Time a store read waited for a read-pool thread",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._store_errors = Counter(
            "actorbase_store_errors",
            "Store calls that failed unexpectedly: reads, and mutations answered INTERNAL",
            ("op",),
            registry=registry,
        )
        self._reads: TimedExecutor | None = None
        self._live: _Live | None = None
        self._store_errors.labels("write")  # both ops reported from the start, at 0
        self._data: DataFigures | None = None
        self._data_at = float("-inf")

    # -- events -------------------------------------------------------------------------

    def observe(self, handler: tornado.web.RequestHandler) -> None:
        """Count one finished request (the Application's log_function calls this, on
        the IOLoop: plain numbers, no lock, ~1 µs)."""
        request = handler.request
        method = request.method if request.method in _METHODS else "OTHER"
        key = (handler.__class__, method, handler.get_status())
        tally = self._requests.get(key)
        if tally is None:
            tally = self._requests[key] = self._tally(*key)
        tally.count += 1
        latency = tally.latency
        seconds = request.request_time()
        latency.sum += seconds
        latency.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def _tally(self, cls: type, method: str, status: int) -> _Tally:
        route = route_class(cls)
        latency = self._latencies.get((route, method))
        if latency is None:
            latency = self._latencies[route, method] = _Latency()
        return _Tally((route, method, str(status)), latency)

    def _request_families(self) -> Iterator[Metric]:
        """The request figures as they are now (IOLoop)."""
        counts: dict[tuple[str, str, str], int] = {}
        for tally in self._requests.values():  # two classes may share a route class
            counts[tally.labels] = counts.get(tally.labels, 0) + tally.count
        requests = CounterMetricFamily(
            "actorbase_http_requests",
            "HTTP requests answered, by route class, method and status code",
            labels=("route", "method", "code"),
        )
        for labels, count in counts.items():
            requests.add_metric(labels, count)
        yield requests
        durations = HistogramMetricFamily(
            "actorbase_http_request_duration_seconds",
            "Time from a request's arrival to its last byte (an SSE stream: its life)",
            labels=("route", "method"),
        )
        for labels, latency in self._latencies.items():
            cumulative = list(itertools.accumulate(latency.buckets))
            bounds = [*map(floatToGoString, LATENCY_BUCKETS), "+Inf"]
            durations.add_metric(labels, list(zip(bounds, cumulative, strict=True)), latency.sum)
        yield durations

    def logger(
        self, log: Callable[[tornado.web.RequestHandler], None]
    ) -> Callable[[tornado.web.RequestHandler], None]:
        """A log_function that writes the access log with `log`, then counts."""

        def log_and_observe(handler: tornado.web.RequestHandler) -> None:
            log(handler)
            self.observe(handler)

        return log_and_observe

    def committed(
        self,
        group: list[Mutation],
        outcomes: list[Outcome | ApiError],
        started: float,
        done: float,
    ) -> None:
        """One group commit (on the writer's thread): its size, time and outcomes."""
        self.group_size.observe(len(group))
        self.commit_seconds.observe(done - started)
        for mutation, outcome in zip(group, outcomes, strict=True):
            if not isinstance(outcome, ApiError):
                self.tx_committed.inc()
                self.mutation_seconds.observe(done - mutation.queued_at)
                continue
            self.mutations_failed.labels(outcome.code).inc()
            if isinstance(outcome, Internal):
                self._store_errors.labels("write").inc()

    def sent(self, seen_at: float) -> None:
        """A diff of a commit seen at `seen_at` (time.monotonic) reached every member."""
        self.fanout_seconds.observe(time.monotonic() - seen_at)

    def closed(self, transport: str, code: int, reason: str) -> None:
        """The server closed a socket or stream (once per connection)."""
        kind = CLOSE_REASONS.get(code, "other")
        if kind == "auth" and reason == REVOKED:
            kind = "revoked"
        self._closes.labels(transport, kind).inc()

    def read_executor(self, threads: int) -> TimedExecutor:
        """The read pool's threads, timed; its queue length is reported at scrape."""
        self._reads = TimedExecutor(
            threads, "read", self.read_wait_seconds.observe, self._store_errors.labels("read").inc
        )
        return self._reads

    # -- levels and data ----------------------------------------------------------------

    def watch(self, ctx: Context) -> None:
        """Report `ctx`'s open connections, live queries, rooms and queues at scrape."""
        self._live = _Live(ctx, self)
        self.registry.register(self._live)

    async def scrape(self, reads: ReadPool) -> bytes:
        """The text exposition of every figure (IOLoop). The loop's own state is read
        here, on the loop; the data figures and the text (which reads /proc for the
        process figures) are made on the read pool."""
        now = time.monotonic()
        if now - self._data_at >= DATA_MAX_AGE:
            self._data = await reads.read(read_data_figures)
            self._data_at = now
        if self._live is not None:
            self._live.take()
        return await reads.call(functools.partial(generate_latest, self.registry))

    @property
    def data(self) -> DataFigures | None:
        return self._data

    @property
    def reads_queued(self) -> int:
        return self._reads.queued if self._reads is not None else 0


class _Latency:
    """One route class and method's request latencies: a histogram's buckets (not
    cumulative; the last is +Inf) and sum. IOLoop only."""

    __slots__ = ("buckets", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0


class _Tally:
    """Requests of one handler class, method and status. IOLoop only."""

    __slots__ = ("count", "labels", "latency")

    def __init__(self, labels: tuple[str, str, str], latency: _Latency) -> None:
        self.labels = labels
        self.latency = latency
        self.count = 0


class _Live:
    """A custom collector: what the process holds, read on the IOLoop by `take` (every
    field it reads is touched on that thread only) and handed to whichever thread
    renders the scrape."""

    def __init__(self, ctx: Context, metrics: Metrics) -> None:
        self._ctx = ctx
        self._metrics = metrics
        self._families: list[Metric] = []

    def take(self) -> None:
        """Read the figures now (IOLoop)."""
        self._families = list(self._read())

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)

    def _read(self) -> Iterator[Metric]:
        ctx, metrics = self._ctx, self._metrics
        yield from metrics._request_families()
        info = GaugeMetricFamily(
            "actorbase_build_info",
            "Always 1: the version and backend",
            labels=("version", "backend"),
        )
        info.add_metric((actorbase.__version__, ctx.store.label), 1)
        yield info
        connections = GaugeMetricFamily(
            "actorbase_connections", "Open WebSockets and SSE streams", labels=("transport",)
        )
        hub = ctx.hub
        connections.add_metric(("websocket",), ctx.websockets)
        connections.add_metric(("sse",), sum(1 for _ in hub.streams) if hub is not None else 0)
        yield connections
        yield _gauge(
            "actorbase_http_requests_in_flight",
            "HTTP requests being answered (open SSE streams included)",
            ctx.http_inflight,
        )
        dispatcher = ctx.dispatcher
        yield _gauge(
            "actorbase_subscriptions",
            "Live-query subscriptions open (WebSocket and SSE)",
            dispatcher.subscriptions if dispatcher is not None else 0,
        )
        yield _gauge(
            "actorbase_live_queries",
            "Distinct live queries computed (identical subscriptions share one)",
            dispatcher.computations if dispatcher is not None else 0,
        )
        yield _gauge(
            "actorbase_presence_rooms",
            "Presence rooms with at least one peer",
            len(ctx.rooms) if ctx.rooms is not None else 0,
        )
        yield _gauge(
            "actorbase_writer_queue_length",
            "Mutations waiting for the writer",
            ctx.transactor.queued,
        )
        revoked = CounterMetricFamily(
            "actorbase_sessions_revoked",
            "Sessions this process revoked, by why",
            labels=("reason",),
        )
        for reason, count in sorted(ctx.auth.revoked.items()):
            revoked.add_metric((reason,), count)
        yield revoked
        yield CounterMetricFamily(
            "actorbase_writer_restarts",
            "Times a dead writer was replaced",
            ctx.transactor.restarts,
        )
        yield _gauge(
            "actorbase_read_pool_queue_length",
            "Store reads waiting for a read-pool thread",
            metrics.reads_queued,
        )
        data = metrics.data
        if data is None:
            return
        yield _gauge("actorbase_users", "Accounts (cluster-wide)", data.users)
        yield _gauge(
            "actorbase_users_active_today",
            "Users who signed in or refreshed a session since UTC midnight (cluster-wide)",
            data.active_today,
        )
        yield _gauge("actorbase_storage_files", "Stored files (cluster-wide)", data.files)
        yield _gauge(
            "actorbase_storage_bytes", "Bytes of stored files (cluster-wide)", data.file_bytes
        )
        yield _gauge(
            "actorbase_last_tx",
            "The newest committed tx id (cluster-wide: its rate is the database's tx rate)",
            data.last_tx,
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
