"""The seed's error codes, in one place.

Everything below the wire raises one of these; `handlers.base` renders them as
``{"error": {"code", "message", "status", ...}}``. Anything else that escapes is
rendered as INTERNAL with a generic message and logged with its traceback.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ApiError(Exception):
    """An error a client can act on, carrying its wire code and HTTP status."""

    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal server error"

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        self.extra = extra
        super().__init__(self.message)

    def to_wire(self) -> dict[str, Any]:
        """The body the seed prescribes: code, message, status, then any extras."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "status": self.status,
                **self.extra,
            }
        }


class InvalidArgument(ApiError):
    code, status, default_message = "INVALID_ARGUMENT", 400, "Invalid request"


class InvalidCredentials(ApiError):
    code, status, default_message = "INVALID_CREDENTIALS", 401, "Invalid email or password"


class Unauthenticated(ApiError):
    code, status, default_message = "UNAUTHENTICATED", 401, "Missing or invalid token"


class PermissionDenied(ApiError):
    code, status, default_message = "PERMISSION_DENIED", 403, "Permission denied"


class NotFound(ApiError):
    code, status, default_message = "NOT_FOUND", 404, "Not found"


class Conflict(ApiError):
    code, status, default_message = "CONFLICT", 409, "Conflict"


class QueryTooComplex(ApiError):
    code, status, default_message = "QUERY_TOO_COMPLEX", 400, "Query is too complex"


class ResourceExceeded(ApiError):
    code, status, default_message = "RESOURCE_EXCEEDED", 400, "Resource limit exceeded"


class PayloadTooLarge(ApiError):
    """413: the seed lists the status without a code; this is the code we give it."""

    code, status, default_message = "PAYLOAD_TOO_LARGE", 413, "Request body too large"


class UnsupportedMediaType(ApiError):
    """415: the seed lists the status without a code; this is the code we give it."""

    code, status, default_message = "UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported media type"


class RangeNotSatisfiable(ApiError):
    """416 for a signed download's Range outside the file; no seed code, so this one."""

    code, status, default_message = "RANGE_NOT_SATISFIABLE", 416, "Range not satisfiable"


class AccountLocked(ApiError):
    code, status, default_message = "ACCOUNT_LOCKED", 429, "Account locked"

    def __init__(self, retry_after: int) -> None:
        minutes = max(1, -(-retry_after // 60))
        super().__init__(
            "Account locked due to too many failed attempts. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            retryAfter=retry_after,
        )
        self.retry_after = retry_after


class RateLimited(ApiError):
    code, status, default_message = "RATE_LIMITED", 429, "Rate limit exceeded"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Rate limit exceeded. Try again in {retry_after} seconds.", retryAfter=retry_after
        )
        self.retry_after = retry_after


class Internal(ApiError):
    """Deliberately vague: details go to the log, never to the client."""
