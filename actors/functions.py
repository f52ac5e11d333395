"""Server functions: a pool of worker processes, and the retry loop that makes each
call one serializable transaction.

Everything here runs on the IOLoop and only awaits: pipes are asyncio streams, and
commits are transactor futures bridged with `asyncio.wrap_future`. A call takes an
idle worker (waiting if all are busy), which runs the function in one snapshot and
answers with its result, buffered writes and read set; the writes go to the
transactor with the read set, and a `StaleRead` (a commit since the snapshot changed
what the function read) runs the function again, up to MAX_ATTEMPTS times. A worker
that overran a limit, crashed or missed its wall-clock deadline is killed and
replaced in the background; the other workers keep serving meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import signal
import sys
from typing import Any

import ujson

from actorbase.errors import ApiError, Conflict, Internal, NotFound, ResourceExceeded
from actorbase.logs import REQUEST_ID
from actors.transactor import submit
from actors.writer import Writer
from config.app import App
from store.function_worker import MAX_FRAME, encode_frame
from store.functions import ERROR_CODES, ReadSet, StaleRead, op_from_json
from store.principal import ADMIN, Principal
from store.query.ast import Limits

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 100
"""Runs of one call before giving up with CONFLICT (each lost only to a commit that
changed what it read, so the system as a whole always makes progress)."""
SPAWN_TIMEOUT = 60.0
RESPAWN_DELAY = 1.0
"""Pause before retrying a worker that failed to start (e.g. the database is down)."""


class WorkerDied(Exception):
    """The worker process exited or broke the protocol mid-call."""


class WorkerProcess:
    """One worker process and its pipes; one call at a time."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.request_id: str | None = None
        """The request of the call it runs (or ran last): its output is about that."""
        # In a context of its own: not that of the request whose call respawned it.
        self._relay = asyncio.get_running_loop().create_task(
            self._relay_output(), context=contextvars.Context()
        )

    async def _relay_output(self) -> None:
        """What the worker writes to stderr (a function's `print`, a traceback), one
        log line per line, so it takes the log's format and its call's request id."""
        assert self.proc.stderr is not None
        while True:
            try:
                line = await self.proc.stderr.readline()
            except ValueError:  # over the reader's limit (64 KiB): dropped
                line = b"(a line over 64 KiB, dropped)\n"
            if not line:
                return
            text = line.decode(errors="replace").rstrip("\r\n")
            logger.warning(
                "function worker %d: %s", self.proc.pid, text, extra={"request_id": self.request_id}
            )

    @classmethod
    async def spawn(cls, config: dict[str, Any]) -> WorkerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "store.function_worker",
            ujson.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        worker = cls(proc)
        try:
            hello = await asyncio.wait_for(worker._read(), SPAWN_TIMEOUT)
        except (TimeoutError, WorkerDied):
            worker.kill()
            raise RuntimeError("a function worker did not start") from None
        if "ready" not in hello:
            worker.kill()
            raise RuntimeError(f"a function worker could not start: {hello.get('failed')}")
        return worker

    async def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        try:
            header = await self.proc.stdout.readexactly(4)
            size = int.from_bytes(header, "big")
            if size > MAX_FRAME:
                raise WorkerDied(f"frame of {size} bytes")
            return ujson.loads(await self.proc.stdout.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            raise WorkerDied(str(exc)) from None

    async def call(self, request: dict[str, Any], wall_seconds: float) -> dict[str, Any]:
        """The worker's reply; ResourceExceeded past the wall-clock deadline or for a
        worker the OS killed over its CPU limit; WorkerDied if it died otherwise."""
        assert self.proc.stdin is not None
        self.request_id = REQUEST_ID.get()
        try:
            self.proc.stdin.write(encode_frame(request))
            await self.proc.stdin.drain()
            return await asyncio.wait_for(self._read(), wall_seconds)
        except TimeoutError:
            self.kill()
            raise ResourceExceeded(
                f"Function {request['name']} exceeded its wall time limit ({wall_seconds:g} s)"
            ) from None
        except (WorkerDied, ConnectionError) as exc:
            code = await self.proc.wait()
            if code in (-signal.SIGXCPU, -signal.SIGKILL):
                raise ResourceExceeded(
                    f"Function {request['name']} exceeded its CPU time limit"
                ) from None
            raise WorkerDied(f"exit code {code}: {exc}") from None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()


class FunctionPool:
    """The app's functions, run in `size` worker processes."""

    def __init__(
        self,
        app: App,
        transactor: Writer,
        *,
        database_url: str,
        size: int,
        cpu_seconds: float,
        wall_seconds: float,
        memory_bytes: int,
        query_limits: Limits,
    ) -> None:
        self._app = app
        self._transactor = transactor
        self._size = size
        self._wall = wall_seconds
        self._config = {
            "app": app.spec,
            "database_url": database_url,
            "cpu_seconds": cpu_seconds,
            "memory_bytes": memory_bytes,
            # As /api/query has them: a function's queries are bounded alike.
            "query_limits": dataclasses.astuple(query_limits),
        }
        self._idle: asyncio.Queue[WorkerProcess] = asyncio.Queue()
        self._all: set[WorkerProcess] = set()
        self._spawning: set[asyncio.Task[None]] = set()
        self._stopped = False

    async def start(self) -> None:
        """Start every worker; raises if one cannot (the server then refuses to start)."""
        workers = await asyncio.gather(
            *(WorkerProcess.spawn(self._config) for _ in range(self._size)),
            return_exceptions=True,
        )
        failed = [w for w in workers if isinstance(w, BaseException)]
        for w in workers:
            if isinstance(w, WorkerProcess):
                self._add(w)
        if failed:
            self.stop()
            raise failed[0]

    def _add(self, worker: WorkerProcess) -> None:
        self._all.add(worker)
        self._idle.put_nowait(worker)

    def _replace(self, worker: WorkerProcess) -> None:
        worker.kill()
        self._all.discard(worker)
        if not self._stopped:
            task = asyncio.ensure_future(self._respawn())
            self._spawning.add(task)
            task.add_done_callback(self._spawning.discard)

    async def _respawn(self) -> None:
        while not self._stopped:
            try:
                worker = await WorkerProcess.spawn(self._config)
            except Exception:
                logger.exception("could not replace a function worker; retrying")
                await asyncio.sleep(RESPAWN_DELAY)
                continue
            if self._stopped:
                worker.kill()
            else:
                self._add(worker)
            return

    def stop(self) -> None:
        """Kill the workers (a call in flight fails with INTERNAL)."""
        self._stopped = True
        for task in self._spawning:
            task.cancel()
        for worker in self._all:
            worker.kill()
        self._all.clear()

    async def call(self, name: str, args_json: str, principal: Principal) -> tuple[Any, int]:
        """`(result, tx)` of one call: the commit's tx, or for a call that wrote
        nothing the tx of the snapshot it read."""
        if name not in self._app.functions:
            raise NotFound(f"No function named {name}")
        auth = {
            "id": principal.user_id,
            "role": principal.role,
            "claims": principal.claims,
            "admin": principal.is_admin,
        }
        request = {"name": name, "args": args_json, "auth": auth}
        for _ in range(MAX_ATTEMPTS):
            reply = await self._run(request)
            if "error" in reply:
                raise _error(reply["error"])
            reads = ReadSet.from_json(reply["reads"])
            ops = [op_from_json(raw, principal, ADMIN) for raw in reply["ops"]]
            if not ops:
                return reply["result"], reads.tx
            try:
                outcome = await asyncio.wrap_future(submit(self._transactor, ops, principal, reads))
            except StaleRead:
                continue
            return reply["result"], outcome.tx
        raise Conflict(f"Function {name} kept conflicting with concurrent writes; try again")

    async def _run(self, request: dict[str, Any]) -> dict[str, Any]:
        worker = await self._idle.get()
        keep = False
        try:
            reply = await worker.call(request, self._wall)
            keep = not reply.get("retire")
            return reply
        except WorkerDied as exc:
            logger.error("function worker died running %s: %s", request["name"], exc)
            raise Internal() from None
        finally:
            if keep and not self._stopped:
                self._idle.put_nowait(worker)
            else:
                self._replace(worker)


def _error(raw: dict[str, Any]) -> ApiError:
    """A worker's error object as the exception `handlers.base` renders."""
    cls = ERROR_CODES.get(raw.get("code", ""), Internal)
    extra = {k: v for k, v in raw.items() if k not in ("code", "message", "status")}
    return cls(raw.get("message"), **extra)
