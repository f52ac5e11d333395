"""Test app: functions for retries, limits, errors and argument validation."""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import Field

from store.functions import Context, FunctionError


def increment(ctx: Context, id: str) -> int:
    """Read-modify-write of one counter: only serializable retries keep it exact."""
    row = ctx.admin.get("counters", id)
    value = (row or {}).get("value", 0) + 1
    ctx.admin.set("counters", id, {"value": value})
    return value


def spin(ctx: Context) -> None:
    while True:
        pass


def spin_stubbornly(ctx: Context) -> None:
    """Swallows everything it can: the OS limit must still end it."""
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass


def sleep(ctx: Context, seconds: float) -> None:
    import time

    time.sleep(seconds)


def allocate(ctx: Context, mib: int) -> int:
    return len(bytearray(mib << 20))


def crash(ctx: Context) -> None:
    os._exit(3)


def refuse(ctx: Context, code: str) -> None:
    raise FunctionError(code, f"Refused with {code}")


def boom(ctx: Context) -> None:
    raise RuntimeError("secret internals")


def echo(
    ctx: Context,
    title: Annotated[str, Field(min_length=1, max_length=5)],
    count: Annotated[int, Field(ge=0)] = 0,
    tags: list[str] | None = None,
) -> dict:
    return {"title": title, "count": count, "tags": tags, "me": ctx.auth.id}


def bad_result(ctx: Context) -> object:
    return object()


def run_query(ctx: Context, query: dict[str, Any]) -> dict[str, Any]:
    """A query as the caller: the server's QUERY_MAX_* bound it as on /api/query."""
    return ctx.db.query(query)


functions = [
    increment,
    spin,
    spin_stubbornly,
    sleep,
    allocate,
    crash,
    refuse,
    boom,
    echo,
    bad_result,
    run_query,
]
