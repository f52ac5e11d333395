"""Random ids without a system call each: `os.urandom` read 4 KiB at a time.

A create used to pay two `getrandom` calls on the IOLoop (its row id and its request
id), ~10% of the loop thread under load. The bytes are the same CSPRNG's; each thread
keeps its own buffer, and a forked child (WEB_CONCURRENCY) starts with none, so no two
processes hand out the same bytes.
"""

from __future__ import annotations

import os
import threading

_CHUNK = 4096


class _Buffer(threading.local):
    data: bytes = b""
    at: int = 0


_local = _Buffer()


def _forget() -> None:
    global _local
    _local = _Buffer()


os.register_at_fork(after_in_child=_forget)


def token_bytes(n: int) -> bytes:
    """`n` (at most 4096) random bytes, as `secrets.token_bytes`."""
    buf = _local
    if buf.at + n > len(buf.data):
        buf.data, buf.at = os.urandom(_CHUNK), 0
    out = buf.data[buf.at : buf.at + n]
    buf.at += n
    return out


def token_hex(n: int) -> str:
    """`n` random bytes as hex, as `secrets.token_hex`."""
    return token_bytes(n).hex()


def uuid4() -> str:
    """A random (version 4) UUID in its canonical text form, as `str(uuid.uuid4())`."""
    raw = bytearray(token_bytes(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
