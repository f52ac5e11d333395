"""An incremental multipart/form-data parser (RFC 7578) for streamed uploads.

`feed` takes the body as it arrives and returns events; a part's data is handed
on in slices of what was fed, so memory stays at one chunk plus a boundary's
length whatever the size of the file. Malformed input raises 400.
"""

from __future__ import annotations

import dataclasses
import re

from actorbase.errors import InvalidArgument

MAX_HEADER_BYTES = 8192
"""The most a part's header block may be."""
MAX_PARTS = 16

_PARAM = re.compile(r';\s*([A-Za-z0-9_*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


@dataclasses.dataclass(frozen=True, slots=True)
class Part:
    """A part starts: its form field name, filename (if a file) and Content-Type."""

    name: str
    filename: str | None
    content_type: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Data:
    """The next bytes of the current part."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class PartEnd:
    """The current part is complete."""


Event = Part | Data | PartEnd


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type; 400 otherwise."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise InvalidArgument("Content-Type must be multipart/form-data")
    found = dict(_params(";" + params))
    boundary = found.get("boundary", "")
    if not 1 <= len(boundary) <= 70 or not boundary.isascii():
        raise InvalidArgument("multipart/form-data needs a boundary of 1 to 70 characters")
    return boundary.encode()


def _params(header: str) -> list[tuple[str, str]]:
    out = []
    for key, raw in _PARAM.findall(header):
        value = raw.strip()
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((key.lower(), value))
    return out


class MultipartParser:
    """Feed it the body in order; call `close` at its end to check it was complete."""

    def __init__(self, boundary: bytes) -> None:
        self._delimiter = b"\r\n--" + boundary
        # The first delimiter may open the body without a CRLF before it.
        self._buffer = b"\r\n"
        self._state = "preamble"
        self._parts = 0

    def feed(self, data: bytes) -> list[Event]:
        self._buffer += data
        events: list[Event] = []
        while True:
            if self._state == "preamble":
                at = self._buffer.find(self._delimiter)
                if at < 0:
                    self._buffer = self._buffer[-len(self._delimiter) :]
                    return events
                self._buffer = self._buffer[at + len(self._delimiter) :]
                self._state = "after-delimiter"
            elif self._state == "after-delimiter":
                if len(self._buffer) < 2:
                    return events
                if self._buffer.startswith(b"--"):
                    self._state = "done"
                    self._buffer = b""
                    return events
                if not self._buffer.startswith(b"\r\n"):
                    raise InvalidArgument("Malformed multipart body")
                self._buffer = self._buffer[2:]
                self._state = "headers"
            elif self._state == "headers":
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEADER_BYTES:
                        raise InvalidArgument("Multipart part headers are too large")
                    return events
                if end > MAX_HEADER_BYTES:
                    raise InvalidArgument("Multipart part headers are too large")
                self._parts += 1
                if self._parts > MAX_PARTS:
                    raise InvalidArgument("Too many multipart parts")
                events.append(_part(self._buffer[:end]))
                self._buffer = self._buffer[end + 4 :]
                self._state = "body"
            elif self._state == "body":
                at = self._buffer.find(self._delimiter)
                if at < 0:
                    # Keep what could be the start of a delimiter split across chunks.
                    keep = len(self._delimiter) - 1
                    if len(self._buffer) > keep:
                        events.append(Data(self._buffer[:-keep]))
                        self._buffer = self._buffer[-keep:]
                    return events
                if at:
                    events.append(Data(self._buffer[:at]))
                events.append(PartEnd())
                self._buffer = self._buffer[at + len(self._delimiter) :]
                self._state = "after-delimiter"
            else:  # done: the epilogue is ignored
                self._buffer = b""
                return events

    def close(self) -> None:
        """The body ended: raise 400 unless the closing delimiter was seen."""
        if self._state != "done":
            raise InvalidArgument("Multipart body ended before its closing boundary")


def _part(block: bytes) -> Part:
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument("Multipart part headers are not UTF-8") from None
    headers: dict[str, str] = {}
    for line in text.split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon:
            raise InvalidArgument("Malformed multipart part header")
        headers[name.strip().lower()] = value.strip()
    disposition = headers.get("content-disposition", "")
    if not disposition.lower().startswith("form-data"):
        raise InvalidArgument("Multipart part without Content-Disposition: form-data")
    params = dict(_params(disposition))
    if "name" not in params:
        raise InvalidArgument("Multipart part without a name")
    return Part(params["name"], params.get("filename"), headers.get("content-type"))
