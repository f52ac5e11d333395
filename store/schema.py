"""An app's optional schema: attribute types, required and unique attributes,
indexes and links. Entities it does not declare stay schemaless.

Declared as (README "Writing an app")::

    {entity: {"attributes": {name: {"type": "string", "required": True,
                                    "unique": True, "index": True}},
              "indexes": ["address.city"],
              "links": {name: {"field": "listId", "to": "lists", "reverse": "todos"}}}}

`validate` runs in the transactor on every row written (400 INVALID_ARGUMENT with
`details: [{field, message}]`); uniqueness is enforced by a unique expression index
per unique attribute, created at start (`ensure_indexes`), so the database settles
races, across processes too; the transactor's look-up first only gives the 409 a
friendlier message.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from actorbase.errors import Conflict, InvalidArgument
from store.base import Store, Txn
from store.dialect import entity_literal
from store.query.ast import And, Cmp, Link, Not, Path
from store.query.links import Links, link
from store.query.parse import SEGMENT_RE, parse_path
from store.rows import ENTITY_RE, SYSTEM_FIELDS, Row, dumps

TYPES = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}
_ATTRIBUTE_KEYS = {"type", "required", "unique", "index"}
MAX_INDEXED_BYTES = 2000
"""Longest value (bytes of JSON) of an indexed or unique attribute: a PostgreSQL btree
entry holds at most ~2,700 bytes, and a longer one fails the write."""


class SchemaError(ValueError):
    """A schema that does not parse; the message starts with the path of the mistake."""


@dataclasses.dataclass(frozen=True, slots=True)
class Attribute:
    type: str | None = None
    required: bool = False
    unique: bool = False
    index: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class EntitySchema:
    attributes: dict[str, Attribute]
    indexes: tuple[Path, ...]
    links: tuple[Link, ...]

    @property
    def indexed(self) -> list[Path]:
        """Every path with an index of its own: `indexes`, `index` and `unique`."""
        own = [(n,) for n, a in self.attributes.items() if a.index or a.unique]
        return list(dict.fromkeys([*self.indexes, *own]))


@dataclasses.dataclass(frozen=True, eq=False)
class Schema:
    entities: dict[str, EntitySchema] = dataclasses.field(default_factory=dict)

    @property
    def links(self) -> Links:
        return Links(tuple(lk for e in self.entities.values() for lk in e.links))

    def validate(self, row: Row) -> None:
        """400 with one detail per broken attribute of `row` (its entity's schema)."""
        spec = self.entities.get(row.entity)
        if spec is None:
            return
        details = []
        for name, attr in spec.attributes.items():
            value = row.data.get(name)
            if value is None:
                if attr.required:
                    details.append({"field": name, "message": "Required"})
                continue
            if attr.type is not None and not _is(value, attr.type):
                details.append(
                    {"field": name, "message": f"Expected {attr.type}, received {_kind(value)}"}
                )
        for path in spec.indexed:
            value = _at(row.data, path)
            if value is not None and len(dumps(value).encode()) > MAX_INDEXED_BYTES:
                message = f"At most {MAX_INDEXED_BYTES} bytes in an indexed attribute"
                details.append({"field": ".".join(path), "message": message})
        if details:
            raise InvalidArgument("Validation failed", details=details)

    def check_unique(self, txn: Txn, row: Row, before: Row | None) -> None:
        """409 naming the attribute if another row of the entity holds the same value."""
        spec = self.entities.get(row.entity)
        if spec is None:
            return
        for name, attr in spec.attributes.items():
            value = row.data.get(name)
            if not attr.unique or value is None:
                continue
            if before is not None and before.data.get(name) == value:
                continue
            where = And((Cmp((name,), "eq", value), Not(Cmp(("id",), "eq", row.id))))
            if txn.count(row.entity, where):
                raise Conflict(f"{row.entity}.{name} must be unique: {value!r} is taken")


def _at(data: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _is(value: Any, kind: str) -> bool:
    if isinstance(value, bool) and kind != "boolean":
        return False
    return isinstance(value, TYPES[kind])


def _kind(value: Any) -> str:
    for name in ("boolean", "integer", "number", "string", "object", "array"):
        if _is(value, name):
            return "number" if name == "integer" else name
    return "null"


def compile_schema(raw: Any) -> Schema:
    """Parse an app's `schema`; SchemaError names the path of the first mistake."""
    if raw is None:
        return Schema()
    if not isinstance(raw, dict):
        raise SchemaError("schema: must be a dict of entity → {attributes, indexes, links}")
    entities = {}
    for entity, spec in raw.items():
        where = f"schema.{entity}"
        if not isinstance(entity, str) or not ENTITY_RE.fullmatch(entity):
            raise SchemaError(f"{where}: entity names match ^[a-z][a-z0-9_]{{0,62}}$")
        entities[entity] = _entity(entity, spec, where)
    return Schema(entities)


def _entity(entity: str, spec: Any, where: str) -> EntitySchema:
    if not isinstance(spec, dict):
        raise SchemaError(f"{where}: must be a dict with attributes, indexes, links")
    unknown = sorted(set(spec) - {"attributes", "indexes", "links"})
    if unknown:
        raise SchemaError(f"{where}.{unknown[0]}: unknown; expected attributes, indexes, links")
    attributes = {}
    for name, attr in _dict(spec.get("attributes", {}), f"{where}.attributes").items():
        here = f"{where}.attributes.{name}"
        if not isinstance(name, str) or not SEGMENT_RE.fullmatch(name) or name.startswith("$"):
            raise SchemaError(f"{here}: not a top-level attribute name")
        if name in SYSTEM_FIELDS:
            raise SchemaError(f"{here}: {name} is set by the server")
        attr = _dict(attr, here)
        bad = sorted(set(attr) - _ATTRIBUTE_KEYS)
        if bad:
            raise SchemaError(
                f"{here}.{bad[0]}: unknown; expected {', '.join(sorted(_ATTRIBUTE_KEYS))}"
            )
        kind = attr.get("type")
        if kind is not None and kind not in TYPES:
            raise SchemaError(f"{here}.type: must be one of {', '.join(TYPES)}, got {kind!r}")
        for flag in ("required", "unique", "index"):
            if not isinstance(attr.get(flag, False), bool):
                raise SchemaError(f"{here}.{flag}: must be true or false")
        attributes[name] = Attribute(
            kind, **{k: attr[k] for k in ("required", "unique", "index") if k in attr}
        )
    indexes_raw = spec.get("indexes", [])
    if not isinstance(indexes_raw, list) or not all(isinstance(p, str) for p in indexes_raw):
        raise SchemaError(f"{where}.indexes: must be a list of attribute paths")
    try:
        indexes = tuple(parse_path(p, f"{where}.indexes[{i}]") for i, p in enumerate(indexes_raw))
    except InvalidArgument as exc:
        raise SchemaError(exc.message) from None
    links = []
    for name, spec_link in _dict(spec.get("links", {}), f"{where}.links").items():
        here = f"{where}.links.{name}"
        spec_link = _dict(spec_link, here)
        if set(spec_link) != {"field", "to", "reverse"} or not all(
            isinstance(v, str) for v in spec_link.values()
        ):
            raise SchemaError(f"{here}: must be {{field, to, reverse}}, all strings")
        field, to, reverse = spec_link["field"], spec_link["to"], spec_link["reverse"]
        if not all(ENTITY_RE.fullmatch(v) for v in (name, to, reverse)):
            raise SchemaError(f"{here}: the name, to and reverse match ^[a-z][a-z0-9_]{{0,62}}$")
        if not SEGMENT_RE.fullmatch(field):
            raise SchemaError(f"{here}.field: not a top-level attribute name")
        links.append(link(f"{entity}.{field}", to, name, reverse))
    return EntitySchema(attributes, indexes, tuple(links))


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SchemaError(f"{where}: must be a dict")
    return value


def ensure_indexes(store: Store, schema: Schema) -> list[str]:
    """Create (if missing) every declared index and one unique index per unique
    attribute; returns their names. Existing duplicates make this fail (at start)."""
    indexes = []
    for entity, spec in schema.entities.items():
        paths = list(spec.indexes) + [(n,) for n, a in spec.attributes.items() if a.index]
        indexes += [store.dialect.index_sql(entity, path) for path in paths]
        indexes += [
            _unique_index(store, entity, name)
            for name, attr in spec.attributes.items()
            if attr.unique
        ]
    store.create_indexes(indexes)
    return [name for name, _ in indexes]


def _unique_index(store: Store, entity: str, name: str) -> tuple[str, str]:
    digest = hashlib.blake2s(f"{entity}:{name}".encode(), digest_size=8).hexdigest()
    index = f"ab_ux_{entity[:40]}_{digest}"
    return index, (
        f'CREATE UNIQUE INDEX IF NOT EXISTS "{index}" ON ab_rows '
        f"(({store.dialect.value((name,))})) WHERE entity = {entity_literal(entity)}"
    )
