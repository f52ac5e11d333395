"""Test app: a read-modify-write function the test can hold between its read and its
write, so the tx log can be pruned past its snapshot meanwhile."""

from __future__ import annotations

import os
import time
from pathlib import Path

from store.functions import Context


def bump_when(ctx: Context, id: str, started: str, go: str) -> int:
    """Add one to a counter: read it, touch `started`, wait until `go` exists (at most
    20 s), then write."""
    row = ctx.admin.get("counters", id)
    value = (row or {}).get("value", 0) + 1
    Path(started).touch()
    deadline = time.monotonic() + 20
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.02)
    ctx.admin.set("counters", id, {"value": value})
    return value


functions = [bump_when]
