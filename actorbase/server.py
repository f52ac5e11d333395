"""The process: start the parts in a declared order, stop them in reverse.

Order: bind the socket (fail fast if the port is taken), secrets, store and
migrations, the read pool, the transactor, then serve. Stopping (SIGTERM/SIGINT)
stops accepting, lets in-flight requests and queued writes finish, closes the
sockets and the store, and returns, all within SHUTDOWN_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys

import tornado.httpserver
import tornado.netutil

import actorbase
from actorbase.context import Context
from actors.transactor import Transactor
from config import secrets
from config.settings import Settings
from handlers.ratelimit import RateLimiter
from handlers.routes import make_app
from store.factory import open_store
from store.readpool import ReadPool

logger = logging.getLogger(__name__)


class Server:
    """One actorbase server process. `run` blocks until a stop signal."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ctx: Context | None = None
        self._http: tornado.httpserver.HTTPServer | None = None
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        sockets = self._bind()
        try:
            await self._start(sockets)
            await self._stopping.wait()
            logger.info("stopping")
        finally:
            await self._stop()

    def _bind(self) -> list[socket.socket]:
        s = self.settings
        try:
            return tornado.netutil.bind_sockets(s.port, s.host, reuse_port=False)
        except OSError as exc:
            raise SystemExit(
                f"actorbase: cannot listen on {s.host}:{s.port}: {exc.strerror}"
            ) from None

    async def _start(self, sockets: list[socket.socket]) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        token, generated = secrets.admin_token(s.admin_token, s.data_path)
        # Opening and migrating block: keep them off the loop like every other store call.
        store = await loop.run_in_executor(None, open_store, s.database_url, s.read_threads)
        applied = await loop.run_in_executor(None, store.migrate)
        if applied:
            logger.info("applied migrations %s", applied)
        reads = ReadPool(store, s.read_threads)
        transactor = Transactor.start(store, s.group_commit, s.group_commit_max)
        self.ctx = Context(
            settings=s,
            store=store,
            reads=reads,
            transactor=transactor,
            limiter=RateLimiter(s.rate_limit, s.rate_limit_window),
            admin_token=token,
        )
        app = make_app(self.ctx)
        self._http = tornado.httpserver.HTTPServer(
            app, max_body_size=s.max_body_bytes + 65536, xheaders=False
        )
        self._http.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        if generated:
            print(f"actorbase: generated admin token (stored in {s.data_path / 'admin_token'}):")
            print(f"  {token}")
        print(
            f"actorbase {actorbase.__version__} listening on http://{s.host}:{port} "
            f"({store.label})",
            flush=True,
        )

    async def _stop(self) -> None:
        ctx, loop = self.ctx, asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_timeout
        if self._http is not None:
            self._http.stop()
        if ctx is None:
            return
        ctx.shutting_down = True
        # Polled only while stopping: an Event would cost every request a check.
        while ctx.http_inflight > 0 and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self._http is not None:
            try:
                await asyncio.wait_for(
                    self._http.close_all_connections(), max(0.1, deadline - loop.time())
                )
            except TimeoutError:
                logger.warning("closed with connections still open")
        # The transactor finishes every mutation queued before the stop message.
        await loop.run_in_executor(
            None, lambda: ctx.transactor.stop(block=True, timeout=max(0.1, deadline - loop.time()))
        )
        ctx.reads.shutdown()
        await loop.run_in_executor(None, ctx.store.close)
        logger.info("stopped")


def serve(settings: Settings) -> int:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(Server(settings).run())
    return 0
