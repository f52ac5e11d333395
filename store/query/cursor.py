"""Opaque page cursors: the ORDER BY values of a page's last row.

A cursor holds exactly the values the database sorted by (type rank, value, id), so
the next page is a keyset condition "strictly after this row" and stays correct when
rows are inserted or deleted between pages. It is tied to its entity and `$order`
by a fingerprint; any other use is INVALID_ARGUMENT, never a wrong page. A cursor is
client input like any other: it is decoded by `handlers.jsonwire` (no NUL, lone
surrogate, non-finite or oversized number) and each value checked against what the
database can bind, so a forged one is a 400 on both backends, never a database error.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import hashlib
import re
from typing import Any

import ujson

from actorbase.errors import InvalidArgument
from handlers import jsonwire
from store.query.ast import OrderKey
from store.query.sql import OrderPart

_NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")


def _fingerprint(entity: str, order: tuple[OrderKey, ...]) -> str:
    spec = entity + "|" + ",".join(("-" if k.descending else "") + ".".join(k.path) for k in order)
    return hashlib.blake2s(spec.encode(), digest_size=8).hexdigest()


def encode(
    entity: str, order: tuple[OrderKey, ...], parts: list[OrderPart], values: list[Any]
) -> str:
    """The cursor after a row whose ORDER BY values (as the driver returned them)
    are `values`. Numbers travel as exact decimal text."""
    plain = [
        (repr(v) if isinstance(v, float) else str(v)) if kind == "num" and v is not None else v
        for (_, kind, _), v in zip(parts, values, strict=True)
    ]
    raw = ujson.dumps([_fingerprint(entity, order), plain], ensure_ascii=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(
    token: str, entity: str, order: tuple[OrderKey, ...], parts: list[OrderPart], where: str
) -> list[Any]:
    """The ORDER BY values in `token`, checked against this query's `parts`."""
    bad = InvalidArgument(f"{where}: not a cursor of this entity and $order")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        fingerprint, values = jsonwire.decode(raw, where)
    except (ValueError, TypeError, binascii.Error, InvalidArgument):
        raise bad from None
    if fingerprint != _fingerprint(entity, order) or not isinstance(values, list):
        raise bad
    if len(values) != len(parts):
        raise bad
    for (_, kind, _), value in zip(parts, values, strict=True):
        if not _valid(kind, value):
            raise bad
    return values


def _valid(kind: str, value: Any) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63
    if value is None:
        return True
    if kind == "num":
        return isinstance(value, str) and len(value) < 400 and _double(value)
    return isinstance(value, str)


def _double(text: str) -> bool:
    """Decimal text of a number a row can hold (a double): PostgreSQL's numeric
    refuses `1e999999` and `0e-999999` outright, and no stored number is near them."""
    if not _NUMBER_RE.fullmatch(text):
        return False
    number = decimal.Decimal(text)
    return -400 < number.adjusted() < 400
