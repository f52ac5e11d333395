"""What differs between SQLite and PostgreSQL SQL, and nothing else.

SQL elsewhere is written once with ``?`` placeholders; `Dialect.sql` adapts it.
Values are always bound as parameters: attribute paths too (a JSON path string on
SQLite, a text[] on PostgreSQL), so nothing from a request is spliced into SQL.
"""

from __future__ import annotations

from typing import Any

from store.query.ast import Path
from store.rows import SYSTEM_COLUMNS, dumps


class Dialect:
    name: str
    json_in: str
    """SQL for a bound JSON document parameter."""
    json_out: str
    """SQL that reads the `data` column back as JSON text."""

    def sql(self, text: str) -> str:
        return text

    def type_is(self, path: Path, json_types: tuple[str, ...], params: list[Any]) -> str:
        """A condition: the attribute at `path` holds one of `json_types`
        (null, boolean, number, string, array, object)."""
        raise NotImplementedError

    def value(self, path: Path, params: list[Any]) -> str:
        """The attribute at `path` as a comparable SQL value (for order and ranges)."""
        raise NotImplementedError

    def equals(self, path: Path, value: Any, params: list[Any]) -> str:
        raise NotImplementedError

    def missing_or_null(self, path: Path, params: list[Any]) -> str:
        raise NotImplementedError


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


class SQLiteDialect(Dialect):
    name = "sqlite"
    json_in = "?"
    json_out = "data"
    _TYPES = {
        "null": ("null",),
        "boolean": ("true", "false"),
        "number": ("integer", "real"),
        "string": ("text",),
        "array": ("array",),
        "object": ("object",),
    }

    @staticmethod
    def _json_path(path: Path) -> str:
        return "$" + "".join('."' + p.replace('"', '\\"') + '"' for p in path)

    def type_is(self, path: Path, json_types: tuple[str, ...], params: list[Any]) -> str:
        params.append(self._json_path(path))
        names = [t for j in json_types for t in self._TYPES[j]]
        params.extend(names)
        return f"json_type(data, ?) IN ({','.join('?' * len(names))})"

    def value(self, path: Path, params: list[Any]) -> str:
        params.append(self._json_path(path))
        return "json_extract(data, ?)"

    def equals(self, path: Path, value: Any, params: list[Any]) -> str:
        kind = json_type_of(value)
        if kind == "null":
            return self.missing_or_null(path, params)
        if kind == "boolean":
            params.extend([self._json_path(path), "true" if value else "false"])
            return "json_type(data, ?) = ?"
        type_sql = self.type_is(path, (kind,), params)
        if kind in ("array", "object"):
            params.extend([self._json_path(path), dumps(value)])
            return f"({type_sql} AND json_extract(data, ?) = json(?))"
        params.extend([self._json_path(path), value])
        return f"({type_sql} AND json_extract(data, ?) = ?)"

    def missing_or_null(self, path: Path, params: list[Any]) -> str:
        params.append(self._json_path(path))
        return "coalesce(json_type(data, ?), 'null') = 'null'"


class PostgresDialect(Dialect):
    name = "postgresql"
    json_in = "?::jsonb"
    json_out = "data::text"

    def sql(self, text: str) -> str:
        return text.replace("%", "%%").replace("?", "%s")

    def type_is(self, path: Path, json_types: tuple[str, ...], params: list[Any]) -> str:
        params.append(list(path))
        params.extend(json_types)
        return f"jsonb_typeof(data #> ?::text[]) IN ({','.join('?' * len(json_types))})"

    def value(self, path: Path, params: list[Any]) -> str:
        params.append(list(path))
        return "(data #> ?::text[])"

    def equals(self, path: Path, value: Any, params: list[Any]) -> str:
        if value is None:
            return self.missing_or_null(path, params)
        params.extend([list(path), dumps(value)])
        return "(data #> ?::text[]) = ?::jsonb"

    def missing_or_null(self, path: Path, params: list[Any]) -> str:
        params.append(list(path))
        return "coalesce(jsonb_typeof(data #> ?::text[]), 'null') = 'null'"


def system_column(path: Path) -> str | None:
    """The column behind a system field path (``createdAt`` → ``created_at``)."""
    return SYSTEM_COLUMNS.get(path[0]) if len(path) == 1 else None
