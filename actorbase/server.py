"""The process: start the parts in a declared order, stop them in reverse.

Order: bind the socket (fail fast if the port is taken), the APP definition,
secrets, store and migrations, the app's indexes, the read pool, accounts, file
storage, the transactor, the function workers, then serve, logging the effective
configuration (config.effective, no secrets) once.
Stopping (SIGTERM/SIGINT) stops accepting, answers every request and WebSocket
mutation already received (each socket is closed with 1001 only after its answers),
lets queued writes commit, closes the store, and returns 0, all within
SHUTDOWN_TIMEOUT. A writer that cannot be kept alive (actors.writer) stops the
process the same way, with exit status 1.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import signal
import socket

import tornado.httpserver
import tornado.netutil
import uvloop

import actorbase
from actorbase import logs
from actorbase.cluster import ClusterPresence, node_figures, node_name
from actorbase.context import Context
from actorbase.metrics import Metrics
from actors.cluster_rooms import ClusterRooms
from actors.dispatcher import Dispatcher
from actors.functions import FunctionPool
from actors.hub import Hub, UserLoad
from actors.periodic import every
from actors.retention import Retention
from actors.room import Rooms
from actors.runtime import bind_loop
from actors.transactor import ChangeSet, Transactor
from actors.writer import Writer
from config import effective, secrets
from config.app import AppError, load_app
from config.settings import ConfigError, Settings
from handlers.bodylimit import largest_body
from handlers.ratelimit import RateLimits
from handlers.routes import make_app
from store.auth_service import AuthService
from store.base import StoreUnavailable
from store.factory import open_store
from store.readpool import ReadPool
from store.schema import ensure_indexes
from store.signing_keys import SigningKeys
from store.stats import Stats, sessions_since, utc_midnight_ms
from store.storage import open_blobs
from store.txfeed import TxFeed

logger = logging.getLogger(__name__)
started = logging.getLogger(logs.START_LOGGER)

GC_YOUNG_THRESHOLD = 20_000
"""Net allocations between young collections (CPython's default: 700).

A full collection walks every tracked object and stops the loop meanwhile: ~0.7 s
with 10,000 sockets open. CPython runs one once the objects promoted to the oldest
generation since the last one reach a quarter of it. At 700, objects that live a few
milliseconds (a frame in flight, a pending read) were promoted, and a full collection
came every few seconds under load; at 20,000 mostly objects that stay are promoted.
Young collections stay short (tens of milliseconds at most, measured); at 5,000 a
0.4 s stall was back in one run of two, 50,000 makes the young ones longer.
"""


class Server:
    """One actorbase server process. `run` blocks until a stop signal."""

    def __init__(
        self, settings: Settings, shared_port: bool = False, announce: bool = True
    ) -> None:
        self.settings = settings
        self._shared_port = shared_port
        self._announce = announce
        self.ctx: Context | None = None
        self._http: tornado.httpserver.HTTPServer | None = None
        self._stopping = asyncio.Event()
        self._feed: TxFeed | None = None
        self._presence: ClusterPresence | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._key_reloader: asyncio.Task[None] | None = None
        self.exit_code = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        # One of several on the port binds once ready: the kernel then sends it no
        # connection it would keep waiting while starting.
        sockets = [] if self._shared_port else listen(self.settings)
        try:
            await self._start(sockets)
            await self._stopping.wait()
            logger.info("stopping")
        finally:
            await self._stop()

    async def _start(self, sockets: list[socket.socket]) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        # Connection, subscription and room actors are drained on this loop.
        bind_loop(loop)
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        try:
            app = load_app(s.app)
        except AppError as exc:
            raise SystemExit(f"actorbase: APP {s.app}: {exc}") from None
        token, generated = secrets.admin_token(s.admin_token, s.data_path)
        # Opening and migrating block: keep them off the loop like every other store call.
        try:
            store = await loop.run_in_executor(None, open_store, s.database_url, s.read_threads)
        except StoreUnavailable as exc:
            raise SystemExit(f"actorbase: {exc}") from None
        try:
            await loop.run_in_executor(None, store.claim)
            applied = await loop.run_in_executor(None, store.migrate)
        except StoreUnavailable as exc:
            await loop.run_in_executor(None, store.close)
            raise SystemExit(f"actorbase: {exc}") from None
        if applied:
            logger.info("applied migrations %s", applied)
        try:
            await loop.run_in_executor(None, ensure_indexes, store, app.schema)
        except store.integrity_errors as exc:
            raise SystemExit(
                f"actorbase: APP {s.app}: a unique attribute already has duplicates: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        metrics = Metrics()
        reads = ReadPool(store, s.read_threads, metrics.read_executor(s.read_threads))
        # The signing keys live in the database: every process on it uses the same.
        keep = secrets.kept_in(store.secret, s.data_path)
        # Loads or generates the signing keys: blocking.
        keys = await loop.run_in_executor(None, SigningKeys.open, s, store, reads, keep)
        # Makes a dummy bcrypt hash: blocking.
        auth = await loop.run_in_executor(None, AuthService.build, s, store, reads, keys)
        # Creates the storage directory or checks the bucket answers: blocking, fails fast.
        try:
            blobs = await loop.run_in_executor(None, open_blobs, s, keys)
        except ConfigError as exc:
            raise SystemExit(f"actorbase: configuration error: {exc}") from None
        if s.is_postgres and blobs.label == "local" and self._announce:
            logger.warning(
                "PostgreSQL with local file storage (%s): files stay on this machine, "
                "other processes (dynos) will not find them; set STORAGE_URL=s3://...",
                s.storage_url,
            )
        stats = Stats()
        midnight = utc_midnight_ms()
        stats.active_today.seed(
            midnight, await reads.read(lambda txn: sessions_since(txn, midnight))
        )
        transactor = Writer(
            functools.partial(
                Transactor.start,
                store,
                s.group_commit,
                s.group_commit_max,
                stats.mutations,
                app.schema,
                metrics=metrics,
            ),
            on_give_up=lambda reason: loop.call_soon_threadsafe(self._give_up, reason),
        )
        functions = None
        if app.functions:
            functions = FunctionPool(
                app,
                transactor,
                database_url=s.database_url,
                size=s.function_workers,
                cpu_seconds=s.function_cpu_seconds,
                wall_seconds=s.function_wall_seconds,
                memory_bytes=s.function_memory_mb << 20,
                query_limits=s.query_limits,
            )
            try:
                await functions.start()
            except RuntimeError as exc:
                await loop.run_in_executor(None, transactor.stop, s.shutdown_timeout)
                raise SystemExit(f"actorbase: APP {s.app}: {exc}") from None
        # Live queries hear of every commit, in tx order, before any socket is accepted:
        # on PostgreSQL from the database, as other processes may share it.
        dispatcher = Dispatcher(loop, reads, s.fanout_turn, s.query_max_bytes, metrics.sent)
        if s.is_postgres:
            self._feed = TxFeed(
                s.database_url,
                lambda tx, changes: dispatcher.listener(ChangeSet(tx, changes)),
                lambda: dispatcher.subscriptions > 0,
                dispatcher.gap,
            )
            await loop.run_in_executor(None, self._feed.start)
        else:
            transactor.add_listener(dispatcher.listener)
        hub = Hub(
            reads,
            auth.accounts,
            auth.live,
            s.ws_ping_interval,
            s.sse_heartbeat,
            s.session_check_interval,
            UserLoad(s.ws_max_connections_per_user, s.max_subscriptions_per_user),
        )
        hub.start()
        # On PostgreSQL presence rooms span every process on the database.
        node = node_name(s)
        rooms: Rooms | ClusterRooms
        if s.is_postgres:
            self._presence = ClusterPresence(s, node, reads, lambda: node_figures(self.ctx))
            rooms = await self._presence.start()
        else:
            rooms = Rooms(s.presence_rate, s.fanout_turn, s.presence_max_peers)
        # The tables that only grow get their dead rows out.
        self._sweeper = asyncio.ensure_future(every(s.sweep_interval, auth.sweep, "sweep"))
        retention = Retention(s, store, reads, auth.accounts, blobs)
        self._pruner = asyncio.ensure_future(every(s.sweep_interval, retention.sweep, "retention"))
        # Keys rotated by another process (`actorbase keys rotate`) reach this one.
        self._key_reloader = asyncio.ensure_future(
            every(s.key_reload_interval, keys.reload, "signing key reload")
        )
        self.ctx = Context(
            settings=s,
            store=store,
            reads=reads,
            transactor=transactor,
            limiter=RateLimits.from_settings(s),
            admin_token=token,
            auth=auth,
            blobs=blobs,
            dispatcher=dispatcher,
            rooms=rooms,
            node=node,
            presence=self._presence.writer if self._presence is not None else None,
            hub=hub,
            stats=stats,
            app=app,
            functions=functions,
            metrics=metrics,
        )
        metrics.watch(self.ctx)
        self._http = tornado.httpserver.HTTPServer(
            make_app(self.ctx), max_body_size=largest_body(s), xheaders=False
        )
        # What start-up built (modules, classes, the app, the store) lives as long as the
        # process: out of every later collection. Only this: objects frozen later could
        # never be collected once garbage, and closed sockets leave reference cycles.
        gc.collect()
        gc.freeze()
        sockets = sockets or listen(s, reuse_port=True)
        self._http.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        if generated:
            started.warning(
                "generated admin token (stored in %s): %s", s.data_path / "admin_token", token
            )
        if self._announce:
            started.info("configuration", extra=logs.fields(effective.describe(s, app)))
            started.info(
                "actorbase %s listening on http://%s:%s (%s)",
                actorbase.__version__,
                s.host,
                port,
                store.label,
            )

    async def _stop(self) -> None:
        ctx, loop = self.ctx, asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout
        if self._http is not None:
            self._http.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._pruner is not None:
            self._pruner.cancel()
        if self._key_reloader is not None:
            self._key_reloader.cancel()
        if ctx is None:
            return
        # From here responses say `Connection: close` and WebSocket mutations are refused.
        ctx.shutting_down = True
        # WebSockets and SSE streams never finish on their own: close them (1001),
        # which stops their connection actors, once their pending mutations are answered.
        if ctx.hub is not None:
            await ctx.hub.close_all(max(0.1, deadline - loop.time()))
        # Polled only while stopping: an Event would cost every request a check. None
        # in flight at two polls in a row: a request that was still being read (sent
        # before the signal) has had its turn to start before idle connections close.
        idle = 0
        while idle < 2 and loop.time() < deadline:
            idle = idle + 1 if ctx.http_inflight == 0 else 0
            await asyncio.sleep(0.01)
        if self._http is not None:
            try:
                await asyncio.wait_for(
                    self._http.close_all_connections(), max(0.1, deadline - loop.time())
                )
            except TimeoutError:
                logger.warning("closed with connections still open")
        if ctx.functions is not None:
            ctx.functions.stop()
        if self._presence is not None:
            await self._presence.stop()
        # The transactor finishes every mutation queued before the stop message.
        await loop.run_in_executor(None, ctx.transactor.stop, max(0.1, deadline - loop.time()))
        if self._feed is not None:
            await loop.run_in_executor(None, self._feed.stop)
        await loop.run_in_executor(None, ctx.blobs.close)
        ctx.auth.shutdown()
        ctx.reads.shutdown()
        await loop.run_in_executor(None, ctx.store.close)
        logger.info("stopped")

    def _give_up(self, reason: str) -> None:
        """The writer cannot be kept alive: stop, and exit non-zero so that the
        platform (a process manager, Heroku) starts the process afresh."""
        logger.critical("stopping: %s", reason)
        self.exit_code = 1
        self._stopping.set()


def listen(settings: Settings, reuse_port: bool = False) -> list[socket.socket]:
    """Bind PORT on HOST now: fail fast, with one line, if it is taken. `reuse_port`:
    one of several processes sharing it (actorbase.supervisor)."""
    s = settings
    try:
        return tornado.netutil.bind_sockets(s.port, s.host, reuse_port=reuse_port)
    except OSError as exc:
        raise SystemExit(f"actorbase: cannot listen on {s.host}:{s.port}: {exc.strerror}") from None


def serve(settings: Settings, shared_port: bool = False, announce: bool = True) -> int:
    """Run one server process until stopped; `shared_port`: one of several
    (actorbase.supervisor) on PORT with SO_REUSEPORT; `announce`: log the
    configuration and where it listens (the supervisor's first child only)."""
    logs.configure(settings.log_level, settings.log_format)
    server = Server(settings, shared_port, announce)
    # libuv's loop: its readiness callbacks, timers and (un)registrations are C, where
    # asyncio's selector loop spends Python on each (~15% of a REST request's CPU,
    # measured in docs/benchmarks.md). Tornado runs on any asyncio loop.
    uvloop.run(server.run())
    return server.exit_code
