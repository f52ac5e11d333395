"""A function worker process: `python -m store.function_worker <config json>`.

It imports the APP module, opens its own read-only connection to the database and
runs one call at a time, each inside one read snapshot. Reads stay in this process
(no round trip per read, and a slow or runaway function never holds a read thread
of the server); writes are buffered and sent back with the read set, for the
server's transactor to commit or refuse as stale.

Limits, enforced by the OS so that no Python code can dodge them:
- CPU: ITIMER_PROF raises `CpuExceeded` after FUNCTION_CPU_SECONDS of CPU in a
  call; RLIMIT_CPU, set per call a second beyond that, kills the worker if the
  exception is swallowed or C code never yields.
- memory: RLIMIT_AS is set once to the worker's size after start-up plus
  FUNCTION_MEMORY_MB, so an allocation beyond it raises MemoryError.
- wall time: the server kills the worker at the deadline.
A worker that overran asks to be replaced (`retire`).

Protocol on stdin/stdout: frames of a 4-byte big-endian length and JSON. The real
stdout is kept for frames; fd 1 is pointed at stderr so `print` in a function lands
in the server's log instead of corrupting the stream.
"""

from __future__ import annotations

import math
import os
import resource
import signal
import struct
import sys
import traceback
from typing import Any, BinaryIO

import pydantic_core
import ujson

from actorbase.errors import ApiError, Internal, ResourceExceeded
from config.app import App, AppError, load_app, validate_arguments
from store.base import Store, Txn
from store.factory import open_store
from store.functions import Context, FunctionError, op_to_json
from store.principal import ADMIN, Principal
from store.query.ast import Limits

_HEADER = struct.Struct(">I")
MAX_FRAME = 64 << 20
"""Largest frame either side accepts (a result, or a call's arguments)."""


class CpuExceeded(BaseException):
    """Raised into the function by SIGPROF; a BaseException so `except Exception`
    in user code does not swallow it."""


def read_frame(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    return ujson.loads(stream.read(size))


def encode_frame(value: Any) -> bytes:
    body = ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False).encode()
    return _HEADER.pack(len(body)) + body


def _on_sigprof(signum: int, frame: Any) -> None:
    raise CpuExceeded


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _vm_size() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


class Worker:
    def __init__(self, app: App, store: Store, cpu_seconds: float, limits: Limits) -> None:
        self.app = app
        self.store = store
        self.cpu_seconds = cpu_seconds
        self.limits = limits

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        function = self.app.functions[request["name"]]
        try:
            args = validate_arguments(function, request["args"])
        except ApiError as exc:
            return {"error": exc.to_wire()["error"]}
        auth = request["auth"]
        principal = (
            ADMIN
            if auth["admin"]
            else Principal(auth["id"], auth["role"], auth["claims"], rules=self.app.rules)
        )
        soft = math.ceil(_cpu_used() + self.cpu_seconds) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
        try:
            signal.setitimer(signal.ITIMER_PROF, self.cpu_seconds)
            try:
                return self.store.read(lambda txn: self._call(function.fn, txn, principal, args))
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
        except CpuExceeded:
            limit = f"{self.cpu_seconds:g} s"
            return _limit(f"Function {function.name} exceeded its CPU time limit ({limit})")
        except MemoryError:
            return _limit(f"Function {function.name} exceeded its memory limit")
        except FunctionError as exc:
            return {"error": {"code": exc.code, "message": exc.message}}
        except ApiError as exc:
            return {"error": exc.to_wire()["error"]}
        except Exception:
            print(f"function {function.name} failed:", file=sys.stderr)
            traceback.print_exc()
            return {"error": Internal().to_wire()["error"]}

    def _call(
        self, fn: Any, txn: Txn, principal: Principal, args: dict[str, Any]
    ) -> dict[str, Any]:
        ctx = Context(txn, self.app.links, self.limits, principal, ADMIN)
        result = pydantic_core.to_jsonable_python(fn(ctx, **args))
        return {
            "result": result,
            "ops": [op_to_json(op) for op in ctx.ops],
            "reads": ctx.reads.to_json(),
        }


def _limit(message: str) -> dict[str, Any]:
    return {"error": ResourceExceeded(message).to_wire()["error"], "retire": True}


def main() -> None:
    config = ujson.loads(sys.argv[1])
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        app = load_app(config["app"])
        store = open_store(config["database_url"], 1)
        store.read(lambda txn: txn.last_tx())  # connect now, inside the baseline
    except (AppError, Exception) as exc:
        out.write(encode_frame({"failed": f"{type(exc).__name__}: {exc}".splitlines()[0]}))
        return
    signal.signal(signal.SIGPROF, _on_sigprof)
    limit = _vm_size() + config["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    worker = Worker(app, store, config["cpu_seconds"], Limits(*config["query_limits"]))
    out.write(encode_frame({"ready": os.getpid()}))
    while True:
        request = read_frame(stdin)
        if request is None:
            return  # the server closed the pipe: it is stopping or replacing us
        try:
            reply = worker.handle(request)
            frame = encode_frame(reply)
        except MemoryError:
            frame = encode_frame(_limit("Function exceeded its memory limit"))
            reply = {"retire": True}
        except (TypeError, OverflowError, pydantic_core.PydanticSerializationError) as exc:
            print(
                f"function {request.get('name')} returned a value that is not JSON: {exc}",
                file=sys.stderr,
            )
            reply = {"error": Internal().to_wire()["error"]}
            frame = encode_frame(reply)
        out.write(frame)
        if reply.get("retire"):
            return


if __name__ == "__main__":
    main()
