"""The process's log lines: text for people, JSON for log shippers (LOG_FORMAT).

Every line carries the id of the request it is about (`REQUEST_ID`, set by
handlers.requestscope while a request's code runs) and the structured fields its
call passed with `extra=fields(...)`. What a client controls never reaches a line
as is: secret query parameters and JWTs are redacted (`redact`) in every message,
and in text lines control characters are escaped (`escape`), so no client can forge
a line or a field. JSON lines are one object each, escaped by the encoder.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
"""The id of the request whose code is running (None outside requests)."""

REDACTED = "[redacted]"

SIGNATURE_PARAMETERS = frozenset(
    {"s", "sig", "signature", "x-amz-signature", "x-amz-credential", "googleaccessid"}
)
"""Query parameters that carry a URL signature: `s` of local signed URLs
(handlers.signed), S3's presigned ones (the secret-bearing `X-Amz-Security-Token`
ends in "token", as does every access, refresh and MFA token parameter)."""

_PARAMETER = re.compile(r"(?<=[?&;])([^=&;?#\s]+)=([^&;#\s]*)")
_JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BARE = re.compile(r'[^\s"=]+')


def secret_parameter(name: str) -> bool:
    """Whether a query parameter's value is a credential (however percent-encoded)."""
    name = unquote_plus(name).lower()
    return name.endswith("token") or name in SIGNATURE_PARAMETERS


def redact(text: str) -> str:
    """`text` (a URI or a whole message) with the values of its secret query
    parameters and any JWT replaced by [redacted]."""
    if "=" in text:
        text = _PARAMETER.sub(_redact_parameter, text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    return text


def _redact_parameter(match: re.Match[str]) -> str:
    name = match.group(1)
    return f"{name}={REDACTED}" if secret_parameter(name) else match.group(0)


def escape(text: str) -> str:
    """`text` with control characters (newlines included) as visible escapes."""
    return _CONTROL.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def bounded(text: str, limit: int = 200) -> str:
    """A client-given value cut to `limit` characters (marked when cut)."""
    return text if len(text) <= limit else text[:limit] + "…"


def fields(values: Mapping[str, Any], inline: Iterable[str] = ()) -> dict[str, Any]:
    """`extra=` for a line with structured fields: JSON lines carry them all; text
    lines append `key=value` for those not already `inline` in the message."""
    return {"fields": dict(values), "inline": frozenset(inline)}


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request's id, unless the call gave one
    (a socket's close line is written after its request's code has finished)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value … request_id=…`, one line per record
    (a traceback follows on lines of its own)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        parts = [escape(redact(record.message))]
        inline = getattr(record, "inline", frozenset())
        for key, value in getattr(record, "fields", {}).items():
            if value is not None and key not in inline:
                parts.append(f"{key}={_text_value(value)}")
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            parts.append(f"request_id={request_id}")
        record.message = " ".join(parts)
        return super().formatMessage(record)


def _text_value(value: Any) -> str:
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple | frozenset | set):
        value = ",".join(map(str, value))
    text = escape(str(value))
    return text if _BARE.fullmatch(text) else '"' + text.replace('"', '\\"') + '"'


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message,
    request_id, the record's fields, and `exc_info` (the traceback) if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in getattr(record, "fields", {}).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        # ASCII only: U+2028 and friends would split a line for some readers.
        return json.dumps(line, ensure_ascii=True, default=str)


START_LOGGER = "actorbase.start"
"""Start-up lines (the configuration, where it listens): shown whatever LOG_LEVEL."""


def configure(level: str, fmt: str) -> None:
    """Route every logger to stderr in `fmt` ("text" or "json") at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger(START_LOGGER).setLevel(logging.INFO)
    logging.captureWarnings(True)  # Python's warnings too, in the same format
