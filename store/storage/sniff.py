"""What an upload's bytes say it is, checked against what the client declared.

Only types we can verify from content are accepted at all: binary formats by their
magic bytes, text formats by being valid UTF-8 without NUL or other control bytes
(checked over the whole stream, not just the head). HTML, SVG and scripts are not
in the table, so ALLOWED_UPLOAD_TYPES cannot let a browser-executable type in.
"""

from __future__ import annotations

import codecs
import re

from actorbase.errors import UnsupportedMediaType

_MAGIC: dict[str, tuple[tuple[int, bytes], ...]] = {
    "image/png": ((0, b"\x89PNG\r\n\x1a\n"),),
    "image/jpeg": ((0, b"\xff\xd8\xff"),),
    "image/gif": ((0, b"GIF8"),),
    "image/webp": ((0, b"RIFF"), (8, b"WEBP")),
    "application/pdf": ((0, b"%PDF-"),),
}
"""Binary types: every (offset, bytes) pair must match."""

TEXT_TYPES = frozenset({"text/plain", "text/csv", "application/json"})
SNIFFABLE = frozenset(_MAGIC) | TEXT_TYPES
"""Every type ALLOWED_UPLOAD_TYPES may name."""


HEAD_BYTES = 16
"""How much of the start of a file `Sniffer` needs before it can decide."""

_GENERIC = frozenset({"", "application/octet-stream"})
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
"""Bytes no text file has (tab, newlines and form feed are fine)."""


def _magic_type(head: bytes) -> str | None:
    for content_type, checks in _MAGIC.items():
        if all(head[at : at + len(magic)] == magic for at, magic in checks):
            return content_type
    return None


def normalize(declared: str | None) -> str:
    """``Image/PNG; charset=x`` → ``image/png``."""
    return (declared or "").split(";", 1)[0].strip().lower()


class Sniffer:
    """Decides an upload's type from its declared type and its first bytes, then
    keeps checking text content as it streams. Raises 415 as soon as it can tell.

    Feed it with `feed`; call `finish` at the end of the file. Not thread-safe.
    """

    def __init__(self, declared: str | None, allowed: frozenset[str]) -> None:
        self._declared = normalize(declared)
        self._allowed = allowed
        if self._declared not in _GENERIC and self._declared not in allowed:
            raise UnsupportedMediaType(f"File type {self._declared} is not allowed")
        self._pending = b""
        self.content_type: str | None = None
        self._text = codecs.getincrementaldecoder("utf-8")()

    def feed(self, data: bytes) -> None:
        if self.content_type is None:
            # Held back only until HEAD_BYTES have arrived: at most one chunk.
            self._pending += data
            if len(self._pending) < HEAD_BYTES:
                return
            data, self._pending = self._pending, b""
            self._decide(data[:HEAD_BYTES])
        if self.content_type in TEXT_TYPES:
            self._check_text(data)

    def finish(self) -> str:
        """The verified content type; raises 415 if the whole file did not pass."""
        if self.content_type is None:
            self._decide(self._pending)
            if self.content_type in TEXT_TYPES:
                self._check_text(self._pending)
        if self.content_type in TEXT_TYPES:
            self._check_text(b"", final=True)
        assert self.content_type is not None
        return self.content_type

    def _decide(self, head: bytes) -> None:
        found = _magic_type(head)
        if self._declared in _GENERIC:
            if found is None or found not in self._allowed:
                raise UnsupportedMediaType("File type could not be determined or is not allowed")
            self.content_type = found
        elif self._declared in TEXT_TYPES:
            if found is not None:
                raise UnsupportedMediaType(f"File content is {found}, not {self._declared}")
            self.content_type = self._declared
        elif found != self._declared:
            raise UnsupportedMediaType(f"File content does not match {self._declared}")
        else:
            self.content_type = found

    def _check_text(self, data: bytes, final: bool = False) -> None:
        try:
            self._text.decode(data, final)
        except UnicodeDecodeError:
            raise UnsupportedMediaType(f"File is not UTF-8 {self.content_type}") from None
        if _CONTROL.search(data):
            raise UnsupportedMediaType(f"File contains binary data, not {self.content_type}")
