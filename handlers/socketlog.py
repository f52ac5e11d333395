"""Open and close lines of WebSockets and SSE streams: who, from where, how it ended.

A socket's access line is written when its handshake is answered (101, or 200 for an
SSE stream once it ends); these say when it opened and, on close, the close code and
reason, who closed it (`server` or `client`), how long it lived and, for WebSockets,
how many messages went each way. Code 1006 means no close frame: the connection was
dropped. The close line carries the request id of the socket's handshake, given
explicitly as it may be written outside the request's scope.
"""

from __future__ import annotations

import logging
import time

from actorbase.logs import bounded, fields

logger = logging.getLogger("actorbase.sockets")

CLOSE_ABNORMAL = 1006
"""RFC 6455: the connection closed without a close frame."""


def opened(channel: str, user: str | None, remote_ip: str) -> None:
    """`channel` ("websocket" or "sse") is open; `user` if already known."""
    logger.info(
        "%s open",
        channel,
        extra=fields({"channel": channel, "user": user, "remote_ip": remote_ip}, ("channel",)),
    )


def closed(
    channel: str,
    *,
    request_id: str | None,
    user: str | None,
    remote_ip: str,
    server_close: tuple[int | None, str | None] | None,
    client_close: tuple[int | None, str | None],
    opened_at: float,
    messages_in: int | None = None,
    messages_out: int | None = None,
) -> None:
    """The close line: the server's code and reason if it closed (`server_close`),
    else the client's; `opened_at` is a `time.monotonic()` reading."""
    by, (code, reason) = (
        ("server", server_close) if server_close is not None else ("client", client_close)
    )
    code = CLOSE_ABNORMAL if code is None else code
    values = {
        "channel": channel,
        "close_code": code,
        "close_reason": bounded(reason or "", 123),  # a close frame's reason fits 123 bytes
        "closed_by": by,
        "duration_ms": round(1000.0 * (time.monotonic() - opened_at), 1),
        "user": user,
        "remote_ip": remote_ip,
        "messages_in": messages_in,
        "messages_out": messages_out,
    }
    logger.info(
        "%s close %d",
        channel,
        code,
        extra={**fields(values, ("channel", "close_code")), "request_id": request_id},
    )
