"""A thread pool that times its queue: how long a call waited for a thread."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

from actorbase.errors import ApiError


class TimedExecutor(concurrent.futures.ThreadPoolExecutor):
    """A thread pool that reports how long each call waited for a thread, and counts
    calls that failed with anything but an API error (a database that refused or went
    away). What `loop.run_in_executor` submits goes through `submit`."""

    def __init__(
        self,
        threads: int,
        name: str,
        waited: Callable[[float], None],
        failed: Callable[[], None],
    ) -> None:
        super().__init__(threads, thread_name_prefix=name)
        self._waited = waited
        self._failed = failed

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return super().submit(self._timed, time.monotonic(), fn, args, kwargs)

    @property
    def queued(self) -> int:
        """Calls waiting for a thread."""
        return self._work_queue.qsize()

    def _timed(self, queued: float, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        self._waited(time.monotonic() - queued)
        try:
            return fn(*args, **kwargs)
        except ApiError:
            raise
        except Exception:
            self._failed()
            raise
