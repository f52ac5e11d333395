"""An app's permission rules, compiled once at start and bound per caller.

Rules are `$where` conditions (the query language) in which `$auth.id`,
`$auth.role` and `$auth.claims.<key>` may stand for values, and `$auth.*` keys state
conditions on the caller alone (``{"$auth.role": "admin"}``); `true` and `false`
allow or deny outright. `bind` substitutes the caller's values (a missing claim is
null) and folds the conditions on the caller away, so what is left is an ordinary
`Node` over rows: compiled into SQL for reads, matched in Python for writes and
live diffs. The two therefore agree, as the query language guarantees.

The rule set (see README "Writing an app")::

    {entity: {"read", "create", "update", "delete": rule,
              "fields": {name: {"read", "write": rule}}},
     "$storage": {"read", "write", "delete": rule},   # over {path, userId, contentType, size}
     "$rooms": rule}                                 # over {room}

Anything not given falls back to the owner-only default: a row (or file) is its
creator's (`{"userId": "$auth.id"}`); any signed-in user may use any presence room;
any signed-in user may read `users` rows (accounts, so that links to a row's author
work), but `users.email` only on their own row or with role `admin`. The admin
token bypasses rules altogether (callers check `Principal.is_admin` first).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from actorbase.errors import InvalidArgument
from store.query.ast import FALSE, TRUE, And, Cmp, Node, Not, Or
from store.query.match import MISSING, get_path, matches
from store.query.parse import parse_where
from store.rows import ENTITY_RE, USERS

AUTH = "$auth"
_AUTH_KEY = "_ab_auth_"
"""Stand-in for a `$auth.*` key while `parse_where` (which reserves `$` keys) parses."""
ROW_OPS = ("read", "create", "update", "delete")
FILE_OPS = ("read", "write", "delete")
OWNER: dict[str, Any] = {"userId": f"{AUTH}.id"}
"""The default rule: the row or file is the caller's."""


class RuleError(ValueError):
    """A rule set that does not parse; the message starts with the path of the mistake."""


@dataclasses.dataclass(frozen=True, slots=True)
class AuthRef:
    """A `$auth.…` value inside a compiled rule, replaced by the caller's by `bind`."""

    path: tuple[str, ...]


def compile_rule(raw: Any, where: str) -> Node:
    """`true`, `false` or a `$where` object with `$auth` references; RuleError names
    the path of a mistake."""
    if raw is True:
        return TRUE
    if raw is False:
        return FALSE
    try:
        return _unstand(parse_where(_stand_in(raw, where), where), where)
    except InvalidArgument as exc:
        raise RuleError(exc.message) from None


def _stand_in(raw: Any, where: str) -> Any:
    """`raw` with `$auth.x` keys renamed so `parse_where` accepts them as paths."""
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: must be true, false or a $where object")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        here = f"{where}.{key}"
        if key in ("$and", "$or") and isinstance(value, list):
            out[key] = [_stand_in(v, f"{here}[{i}]") for i, v in enumerate(value)]
        elif key == "$not":
            out[key] = _stand_in(value, here)
        elif key.startswith(AUTH + "."):
            _auth_path(key, here)
            out[_AUTH_KEY + key[len(AUTH) :]] = value
        else:
            out[key] = value
    return out


def _auth_path(ref: str, where: str) -> tuple[str, ...]:
    parts = tuple(ref.split("."))[1:]
    if parts in (("id",), ("role",)) or (len(parts) >= 2 and parts[0] == "claims"):
        return parts
    raise RuleError(
        f"{where}: unknown reference {ref!r} (use $auth.id, $auth.role or $auth.claims.<key>)"
    )


def _unstand(node: Node, where: str) -> Node:
    if isinstance(node, And):
        return And(tuple(_unstand(n, where) for n in node.items))
    if isinstance(node, Or):
        return Or(tuple(_unstand(n, where) for n in node.items))
    if isinstance(node, Not):
        return Not(_unstand(node.item, where))
    path = (AUTH, *node.path[1:]) if node.path[0] == _AUTH_KEY else node.path
    value = node.value
    if isinstance(value, str) and value.startswith(AUTH + "."):
        value = AuthRef(_auth_path(value, f"{where}.{'.'.join(node.path)}"))
    return Cmp(path, node.op, value)


def auth_of(user_id: str | None, role: str, claims: dict[str, Any]) -> dict[str, Any]:
    """The object `$auth` stands for."""
    return {"id": user_id, "role": role, "claims": claims}


def bind(node: Node, auth: dict[str, Any]) -> Node:
    """`node` for one caller: references replaced by their values, conditions on the
    caller decided, constants folded (so an unconditional rule is exactly TRUE/FALSE)."""
    if isinstance(node, And):
        items = [bind(n, auth) for n in node.items]
        if FALSE in items:
            return FALSE
        kept = tuple(n for n in items if n != TRUE)
        return kept[0] if len(kept) == 1 else And(kept)
    if isinstance(node, Or):
        items = [bind(n, auth) for n in node.items]
        if TRUE in items:
            return TRUE
        kept = tuple(n for n in items if n != FALSE)
        return kept[0] if len(kept) == 1 else Or(kept)
    if isinstance(node, Not):
        inner = bind(node.item, auth)
        if inner == TRUE:
            return FALSE
        if inner == FALSE:
            return TRUE
        return Not(inner)
    value = node.value
    if isinstance(value, AuthRef):
        found = get_path(auth, value.path)
        value = None if found is MISSING else found
        if not _operand_fits(node.op, value):
            return FALSE
    bound = Cmp(node.path, node.op, value)
    if node.path[0] == AUTH:
        return TRUE if matches(Cmp(node.path[1:], node.op, value), auth) else FALSE
    return bound


def _operand_fits(op: str, value: Any) -> bool:
    """Whether a substituted value is a legal operand (a null claim orders nothing)."""
    if op in ("like", "ilike"):
        return isinstance(value, str)
    if op in ("gt", "gte", "lt", "lte"):
        return not isinstance(value, bool) and isinstance(value, int | float | str)
    return True


def named_fields(node: Node) -> set[str]:
    """Top-level attributes a condition looks at."""
    if isinstance(node, Cmp):
        return {node.path[0]}
    if isinstance(node, Not):
        return named_fields(node.item)
    out: set[str] = set()
    for item in node.items:
        out |= named_fields(item)
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class FieldRules:
    read: Node = TRUE
    write: Node = TRUE


@dataclasses.dataclass(frozen=True, slots=True)
class EntityRules:
    read: Node
    create: Node
    update: Node
    delete: Node
    fields: dict[str, FieldRules] = dataclasses.field(default_factory=dict)

    def op(self, action: str) -> Node:
        return getattr(self, action)


Stripper = Callable[[dict[str, Any]], dict[str, Any]]
"""Removes from a wire row the fields its reader may not see (rows are not mutated)."""


@dataclasses.dataclass(frozen=True, eq=False)
class RuleSet:
    """Compiled rules; methods take the caller's `$auth` object (never the admin)."""

    entities: dict[str, EntityRules]
    default: EntityRules
    storage: dict[str, Node]
    rooms: Node

    def entity(self, entity: str) -> EntityRules:
        return self.entities.get(entity, self.default)

    def row_rule(self, auth: dict[str, Any], entity: str, action: str) -> Node:
        return bind(self.entity(entity).op(action), auth)

    def field_rule(self, auth: dict[str, Any], entity: str, field: str, action: str) -> Node:
        rules = self.entity(entity).fields.get(field)
        return TRUE if rules is None else bind(getattr(rules, action), auth)

    def stripper(self, auth: dict[str, Any], entity: str) -> Stripper | None:
        """None when every field is readable on every row (the common case)."""
        hidden = {
            name: rule
            for name, rules in self.entity(entity).fields.items()
            if (rule := bind(rules.read, auth)) != TRUE
        }
        if not hidden:
            return None

        def strip(row: dict[str, Any]) -> dict[str, Any]:
            drop = [n for n, rule in hidden.items() if n in row and not matches(rule, row)]
            return {k: v for k, v in row.items() if k not in drop} if drop else row

        return strip


def compile_rules(raw: Any) -> RuleSet:
    """Compile an app's `rules`; RuleError names the path of the first mistake."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RuleError("rules: must be a dict of entity → rules")
    default = _entity_rules({}, "rules.$default")
    entities: dict[str, EntityRules] = {}
    storage = {op: compile_rule(OWNER, "rules.$storage") for op in FILE_OPS}
    rooms = TRUE
    for key, value in raw.items():
        where = f"rules.{key}"
        if key == "$storage":
            storage.update(_ops(value, FILE_OPS, where))
        elif key == "$rooms":
            rooms = compile_rule(value, where)
        elif isinstance(key, str) and ENTITY_RE.fullmatch(key):
            entities[key] = _entity_rules(value, where)
        else:
            raise RuleError(f"{where}: not an entity name, $storage or $rooms")
    users = entities.get(USERS, default)
    if "read" not in raw.get(USERS, {}):
        users = dataclasses.replace(users, read=TRUE)
    if "email" not in users.fields:
        email = FieldRules(
            read=compile_rule({"$or": [{"id": f"{AUTH}.id"}, {f"{AUTH}.role": "admin"}]}, "")
        )
        users = dataclasses.replace(users, fields={**users.fields, "email": email})
    entities[USERS] = users
    return RuleSet(entities, default, storage, rooms)


def _ops(raw: Any, allowed: tuple[str, ...], where: str) -> dict[str, Node]:
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: must be a dict of {', '.join(allowed)} → rule")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise RuleError(f"{where}.{unknown[0]}: unknown; expected {', '.join(allowed)}")
    return {op: compile_rule(rule, f"{where}.{op}") for op, rule in raw.items()}


def _entity_rules(raw: Any, where: str) -> EntityRules:
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: must be a dict of read/create/update/delete/fields")
    ops = {op: raw[op] for op in ROW_OPS if op in raw}
    rest = {k: v for k, v in raw.items() if k not in ROW_OPS}
    fields_raw = rest.pop("fields", {})
    if rest:
        raise RuleError(
            f"{where}.{next(iter(rest))}: unknown; expected {', '.join(ROW_OPS)}, fields"
        )
    compiled = _ops(ops, ROW_OPS, where)
    owner = compile_rule(OWNER, where)
    if not isinstance(fields_raw, dict):
        raise RuleError(f"{where}.fields: must be a dict of field → {{read, write}}")
    fields = {}
    for name, spec in fields_raw.items():
        here = f"{where}.fields.{name}"
        if not isinstance(name, str) or "." in name or name.startswith("$"):
            raise RuleError(f"{here}: must be a top-level attribute name")
        fields[name] = FieldRules(**_ops(spec, ("read", "write"), here))
    return EntityRules(**{op: compiled.get(op, owner) for op in ROW_OPS}, fields=fields)


DEFAULT_RULES = compile_rules(None)
"""What an app without rules gets: owner-only rows and files, open rooms."""
