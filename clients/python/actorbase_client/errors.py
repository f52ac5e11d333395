"""The one exception type callers catch, built from the server's error format."""

from __future__ import annotations

from typing import Any


class ActorbaseError(Exception):
    """A failed call: the seed's `{code, message, status}` plus `details` (validation
    errors) and `retry_after` (seconds, on 429). Network failures are `NetworkError`."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int,
        details: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details = details
        self.retry_after = retry_after

    @classmethod
    def from_wire(cls, body: Any, status: int) -> ActorbaseError:
        """From a response body or a WebSocket `error`/`mutate-error` message; a body
        that is not the seed's format still gives an error with the status."""
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return cls("INTERNAL" if status >= 500 else "UNKNOWN", f"HTTP {status}", status)
        return cls(
            str(error.get("code", "UNKNOWN")),
            str(error.get("message", "")),
            int(error.get("status", status) or status),
            error.get("details"),
            error.get("retryAfter"),
        )

    @property
    def transient(self) -> bool:
        """Whether the same request may succeed later unchanged (an outbox keeps it)."""
        return self.status in (0, 408, 429) or self.status >= 500


class NetworkError(ActorbaseError):
    """The server could not be reached, or the connection dropped before an answer:
    the request may or may not have been applied (retry with the same idempotency key)."""

    def __init__(self, message: str) -> None:
        super().__init__("UNAVAILABLE", message, 0)
