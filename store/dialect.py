"""What differs between SQLite and PostgreSQL SQL, and nothing else.

SQL elsewhere is written once with ``?`` placeholders; `Dialect.sql` adapts it.
Values from a request are always bound as parameters. Attribute paths and entity
names are embedded as SQL literals, but only after validation against a regex that
admits no quote, backslash, comma or brace (so identical queries produce identical
text, which is what lets the planners match expression and partial indexes).

Every condition here is either TRUE, FALSE or NULL where NULL means "no match";
the compiler wraps negations in ``coalesce(…, FALSE)`` so NULL never flips to a match.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from store.query.ast import Path
from store.rows import ENTITY_RE, SYSTEM_COLUMNS, dumps

SortPart = tuple[str, str]
"""An ORDER BY expression and its kind: 'int', 'num' (exact number) or 'str'."""

_SEGMENT_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]{0,63}$")
_RANGE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}

TYPE_RANK = {"null": 0, "boolean": 1, "number": 2, "string": 3, "array": 4, "object": 4}
"""Sort order across types; missing sorts as null. Arrays and objects tie with each
other (only the id tie-break orders them), so both backends agree exactly."""


def json_type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def system_column(path: Path) -> str | None:
    """The column behind a system field path (``createdAt`` → ``created_at``)."""
    return SYSTEM_COLUMNS.get(path[0]) if len(path) == 1 else None


def _segments(path: Path) -> Path:
    if not path or not all(_SEGMENT_RE.fullmatch(p) for p in path):
        raise ValueError(f"unvalidated attribute path {path!r}")
    return path


def entity_literal(entity: str) -> str:
    """A validated entity name as an SQL string literal."""
    if not ENTITY_RE.fullmatch(entity):
        raise ValueError(f"unvalidated entity name {entity!r}")
    return f"'{entity}'"


def glob_pattern(like: str) -> str:
    """A LIKE pattern (``%``, ``_``, backslash escapes) as an equivalent GLOB pattern,
    which SQLite matches case-sensitively."""
    out = []
    chars = iter(like)
    for c in chars:
        if c == "\\":
            c = next(chars)
            out.append(f"[{c}]" if c in "*?[" else c)
        elif c == "%":
            out.append("*")
        elif c == "_":
            out.append("?")
        else:
            out.append(f"[{c}]" if c in "*?[" else c)
    return "".join(out)


class Dialect:
    name: str
    json_in: str
    """SQL for a bound JSON document parameter."""
    json_out: str
    """SQL that reads the `data` column back as JSON text."""
    json_object: str
    """The function building a `data` document from key/value pairs."""

    lock_row: str = ""
    """Appended to a SELECT of one row to lock it until COMMIT (SQLite's write
    transaction locks the whole database already)."""

    def sql(self, text: str) -> str:
        return text

    def rows_at(self, keys: list[tuple[str, str]], select: str, params: list[Any]) -> str:
        """A SELECT of `select` (columns of ab_rows) from the rows whose `(entity, id)`
        is one of `keys`, bound in a fixed number of parameters (one statement text for
        any count, so PostgreSQL prepares it once)."""
        raise NotImplementedError

    def ids_in(self, ids: list[str], params: list[Any]) -> str:
        """`id` is one of `ids`, bound in one parameter (one statement text for any
        count, so PostgreSQL prepares it once)."""
        raise NotImplementedError

    def text(self, expr: str) -> str:
        """`expr` compared by code point."""
        return expr

    def num_param(self, value: Any, params: list[Any]) -> str:
        """A bound number (or a cursor's decimal text) compared against `num` parts."""
        if isinstance(value, str):
            value = int(value) if re.fullmatch(r"-?\d{1,18}", value) else float(value)
        params.append(value)
        return "?"

    def value(self, path: Path) -> str:
        """The JSON value at `path` (the expression indexes are built on)."""
        raise NotImplementedError

    def missing_or_null(self, path: Path) -> str:
        raise NotImplementedError

    def present(self, path: Path) -> str:
        """The key exists, even holding null."""
        raise NotImplementedError

    def equals(self, path: Path, value: Any, params: list[Any]) -> str:
        """Same JSON type and equal; arrays/objects by canonical JSON text."""
        raise NotImplementedError

    def compare(self, path: Path, op: str, value: int | float | str, params: list[Any]) -> str:
        """`gt/gte/lt/lte` against a number or string; other types never match."""
        raise NotImplementedError

    def like(self, path: Path, pattern: str, insensitive: bool, params: list[Any]) -> str:
        """A string attribute matching a LIKE pattern."""
        raise NotImplementedError

    def like_test(self, subject: str, pattern: str, insensitive: bool, params: list[Any]) -> str:
        """`subject` (SQL text) matches a LIKE pattern (``%``, ``_``, backslash
        escapes); `insensitive` folds ASCII letters only, identically on both backends."""
        raise NotImplementedError

    def sort_parts(self, path: Path) -> list[SortPart]:
        """ORDER BY expressions giving the type rank, then order within the type."""
        raise NotImplementedError

    def link_value(self, path: Path) -> tuple[str, str]:
        """(expression, condition): the string at `path`, for joining on ids."""
        raise NotImplementedError

    analyze: tuple[str, ...] = ("ANALYZE ab_rows",)
    """Refresh planner statistics so a new expression index is actually chosen."""

    def index_sql(self, entity: str, path: Path) -> tuple[str, str]:
        """(name, DDL) of a partial expression index serving equality on `path`
        within `entity`, ordered by createdAt."""
        digest = hashlib.blake2s(f"{entity}:{'.'.join(path)}".encode(), digest_size=8).hexdigest()
        name = f"ab_ix_{entity[:40]}_{digest}"
        return name, (
            f'CREATE INDEX IF NOT EXISTS "{name}" ON ab_rows '
            f"(({self.value(path)}), created_at, id) WHERE entity = {entity_literal(entity)}"
        )


class SQLiteDialect(Dialect):
    name = "sqlite"
    # Bounded sampling: without statistics SQLite prefers the primary key over any
    # partial expression index, but a full ANALYZE reads every row.
    analyze = ("PRAGMA analysis_limit = 1000", "ANALYZE ab_rows")
    json_in = "?"
    json_out = "data"
    json_object = "json_object"
    _TYPES = {
        "null": ("null",),
        "boolean": ("true", "false"),
        "number": ("integer", "real"),
        "string": ("text",),
        "array": ("array",),
        "object": ("object",),
    }

    @staticmethod
    def _lit(path: Path) -> str:
        return "'$" + "".join(f'."{p}"' for p in _segments(path)) + "'"

    def rows_at(self, keys: list[tuple[str, str]], select: str, params: list[Any]) -> str:
        params.append(dumps([list(key) for key in keys]))
        return (
            f"SELECT {select} FROM ab_rows WHERE (entity, id) IN "
            "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))"
        )

    def ids_in(self, ids: list[str], params: list[Any]) -> str:
        params.append(dumps(ids))
        return "id IN (SELECT value FROM json_each(?))"

    def _type(self, path: Path) -> str:
        return f"json_type(data, {self._lit(path)})"

    def _type_in(self, path: Path, kind: str) -> str:
        names = ", ".join(f"'{t}'" for t in self._TYPES[kind])
        return f"{self._type(path)} IN ({names})"

    def value(self, path: Path) -> str:
        return f"json_extract(data, {self._lit(path)})"

    def missing_or_null(self, path: Path) -> str:
        return f"coalesce({self._type(path)}, 'null') = 'null'"

    def present(self, path: Path) -> str:
        return f"{self._type(path)} IS NOT NULL"

    def equals(self, path: Path, value: Any, params: list[Any]) -> str:
        kind = json_type_of(value)
        if kind == "null":
            return self.missing_or_null(path)
        if kind == "boolean":
            return f"{self._type(path)} = '{'true' if value else 'false'}'"
        if kind in ("array", "object"):
            params.append(dumps(value))
            return f"({self._type_in(path, kind)} AND {self.value(path)} = json(?))"
        params.append(value)
        return f"({self._type_in(path, kind)} AND {self.value(path)} = ?)"

    def compare(self, path: Path, op: str, value: int | float | str, params: list[Any]) -> str:
        params.append(value)
        kind = json_type_of(value)
        return f"({self._type_in(path, kind)} AND {self.value(path)} {_RANGE[op]} ?)"

    def like(self, path: Path, pattern: str, insensitive: bool, params: list[Any]) -> str:
        test = self.like_test(self.value(path), pattern, insensitive, params)
        return f"({self._type_in(path, 'string')} AND {test})"

    def like_test(self, subject: str, pattern: str, insensitive: bool, params: list[Any]) -> str:
        # LIKE folds ASCII case only; GLOB is the case-sensitive matcher.
        if insensitive:
            params.append(pattern)
            return f"{subject} LIKE ? ESCAPE '\\'"
        params.append(glob_pattern(pattern))
        return f"{subject} GLOB ?"

    def sort_parts(self, path: Path) -> list[SortPart]:
        t, v = self._type(path), self.value(path)
        rank = (
            f"CASE {t} WHEN 'true' THEN 1 WHEN 'false' THEN 1 WHEN 'integer' THEN 2 "
            "WHEN 'real' THEN 2 WHEN 'text' THEN 3 WHEN 'array' THEN 4 WHEN 'object' THEN 4 "
            "ELSE 0 END"
        )
        num = (
            f"CASE {t} WHEN 'true' THEN 1 WHEN 'false' THEN 0 WHEN 'integer' THEN {v} "
            f"WHEN 'real' THEN {v} END"
        )
        string = f"CASE {t} WHEN 'text' THEN {v} END"
        return [(rank, "int"), (num, "num"), (string, "str")]

    def link_value(self, path: Path) -> tuple[str, str]:
        return self.value(path), f"{self._type(path)} = 'text'"


_NUMERIC_RE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")


class PostgresDialect(Dialect):
    name = "postgresql"
    json_in = "?::jsonb"
    json_out = "data::text"
    json_object = "jsonb_build_object"
    lock_row = " FOR UPDATE"

    def sql(self, text: str) -> str:
        return text.replace("%", "%%").replace("?", "%s")

    def rows_at(self, keys: list[tuple[str, str]], select: str, params: list[Any]) -> str:
        # One primary-key lookup per key, whatever the statistics: `IN (unnest …)` is
        # planned once for the prepared statement, and a plan made while ab_rows was
        # small (a new database) hash-joins a scan of the whole table, every group, for
        # as long as the connection lives. OFFSET 0 keeps the lateral subquery from
        # being flattened into such a join.
        params.extend(([e for e, _ in keys], [i for _, i in keys]))
        return (
            "SELECT r.* FROM unnest(?::text[], ?::text[]) AS k(e, i) CROSS JOIN LATERAL "
            f"(SELECT {select} FROM ab_rows WHERE entity = k.e AND id = k.i OFFSET 0) AS r"
        )

    def ids_in(self, ids: list[str], params: list[Any]) -> str:
        params.append(ids)
        return "id = ANY(?::text[])"

    def text(self, expr: str) -> str:
        return f'{expr} COLLATE "C"'

    def num_param(self, value: Any, params: list[Any]) -> str:
        # Bound as text: float8 → numeric casts round to 15 digits, text is exact.
        text = value if isinstance(value, str) else repr(value)
        if not _NUMERIC_RE.fullmatch(text):
            raise ValueError(f"not a number: {text!r}")
        params.append(text)
        return "?::numeric"

    @staticmethod
    def _lit(path: Path) -> str:
        # Quoted elements: an unquoted NULL in an array literal would be SQL NULL.
        return "'{" + ",".join(f'"{p}"' for p in _segments(path)) + "}'"

    def value(self, path: Path) -> str:
        return f"(data #> {self._lit(path)})"

    def _type(self, path: Path) -> str:
        return f"jsonb_typeof({self.value(path)})"

    def _string(self, path: Path) -> str:
        return f"(data #>> {self._lit(path)})"

    def missing_or_null(self, path: Path) -> str:
        return f"coalesce({self._type(path)}, 'null') = 'null'"

    def present(self, path: Path) -> str:
        return f"{self.value(path)} IS NOT NULL"

    def equals(self, path: Path, value: Any, params: list[Any]) -> str:
        if value is None:
            return self.missing_or_null(path)
        params.append(dumps(value))
        if isinstance(value, list | dict):
            # jsonb = would equate 1 and 1.0 inside arrays; SQLite compares text.
            return f"({self.value(path)}::text = (?::jsonb)::text)"
        return f"{self.value(path)} = ?::jsonb"

    def compare(self, path: Path, op: str, value: int | float | str, params: list[Any]) -> str:
        sign = _RANGE[op]
        if isinstance(value, str):
            params.append(value)
            test, kind = f"{self.text(self._string(path))} {sign} ?", "string"
        else:
            test = f"({self.value(path)})::numeric {sign} {self.num_param(value, params)}"
            kind = "number"
        # CASE, not AND: PostgreSQL may evaluate AND operands in any order, and the
        # cast would fail on a non-number.
        return f"CASE WHEN {self._type(path)} = '{kind}' THEN {test} ELSE FALSE END"

    def like(self, path: Path, pattern: str, insensitive: bool, params: list[Any]) -> str:
        test = self.like_test(self._string(path), pattern, insensitive, params)
        return f"CASE WHEN {self._type(path)} = 'string' THEN {test} ELSE FALSE END"

    def like_test(self, subject: str, pattern: str, insensitive: bool, params: list[Any]) -> str:
        params.append(pattern)
        subject, pat = self.text(subject), "?"
        if insensitive:
            upper, lower = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
            subject = f"translate({subject}, '{upper}', '{lower}')"
            pat = f"translate(?, '{upper}', '{lower}')"
        return f"{subject} LIKE {pat} ESCAPE '\\'"

    def sort_parts(self, path: Path) -> list[SortPart]:
        t, v = self._type(path), self.value(path)
        rank = (
            f"CASE {t} WHEN 'boolean' THEN 1 WHEN 'number' THEN 2 WHEN 'string' THEN 3 "
            "WHEN 'array' THEN 4 WHEN 'object' THEN 4 ELSE 0 END"
        )
        num = (
            f"CASE {t} WHEN 'number' THEN ({v})::numeric "
            f"WHEN 'boolean' THEN CASE WHEN ({v})::boolean THEN 1 ELSE 0 END END"
        )
        string = self.text(f"(CASE {t} WHEN 'string' THEN {v} #>> '{{}}' END)")
        return [(rank, "int"), (num, "num"), (string, "str")]

    def link_value(self, path: Path) -> tuple[str, str]:
        return f"(data #>> {self._lit(path)})", f"{self._type(path)} = 'string'"
