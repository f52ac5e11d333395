"""Where a live query resumes: the last tx a client saw, as WebSocket `subscribe`
carries it (`since`) and an SSE URL may (`?since=`), checked alike for both.

The resume itself is the SSE `Last-Event-ID` path (actors.subscription `_resume`):
the changes since are replayed from the tx log as one q-diff (an empty one when
nothing changed), or, when the log no longer holds them or the query has links, a
fresh q-init. A client only ever saw a tx up to the database's current one, so a
`since` past it is a mistake (another database, a client's corrupted state) and is
refused as INVALID_ARGUMENT rather than quietly answered with a q-init.
"""

from __future__ import annotations

import re
from typing import Any

from actorbase.context import Context
from actorbase.errors import InvalidArgument

_TX = re.compile(r"\d{1,18}")

_WHAT = "since: must be a non-negative integer, the last tx the client saw"


def since_of(raw: Any) -> int | None:
    """`since` of a JSON message: absent or null is no resume."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise InvalidArgument(_WHAT)
    return raw


def since_param(raw: str | None) -> int | None:
    """`since` of a query string: decimal digits, or absent."""
    if raw is None:
        return None
    if not _TX.fullmatch(raw):
        raise InvalidArgument(_WHAT)
    return int(raw)


async def check_since(ctx: Context, since: int) -> None:
    """InvalidArgument if `since` is past the database's current tx. The last tx this
    process routed answers from memory; only a `since` past it (a process just
    started, a commit of another process not routed here yet) costs one read."""
    assert ctx.dispatcher is not None
    if since <= ctx.dispatcher.last_tx:
        return
    current = await ctx.reads.read(lambda txn: txn.last_tx())
    if since > current:
        raise InvalidArgument(f"since: {since} is past the current tx {current}")
