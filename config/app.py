"""Load the app a user deploys: the module named by APP, checked once at start.

APP is a dotted module (`myapp.backend`, found from the working directory too) or a
path to a .py file. The module may define `schema` (store.schema), `rules`
(store.rules) and `functions`: a list of functions (called by their `__name__`) or a
dict name → function. A function takes a `store.functions.Context` first, then
keyword arguments declared with type hints, which pydantic validates. Anything
wrong raises AppError with one line naming the place of the mistake; the server
turns it into a refusal to start. The server process and every function worker load
the same module through `load_app`, so they agree on every definition.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import re
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pydantic

from actorbase.errors import InvalidArgument, QueryTooComplex
from store.query.links import NO_LINKS, Links
from store.query.parse import check_nesting
from store.rules import DEFAULT_RULES, RuleError, RuleSet, compile_rules
from store.schema import Schema, SchemaError, compile_schema

FUNCTION_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class AppError(Exception):
    """The APP module cannot be used; the message is one line."""


@dataclasses.dataclass(frozen=True, slots=True)
class Function:
    """A server function and the pydantic model its arguments must fit."""

    name: str
    fn: Callable[..., Any]
    arguments: type[pydantic.BaseModel]


@dataclasses.dataclass(frozen=True, eq=False)
class App:
    """What the rest of the server needs from the app definition."""

    spec: str | None = None
    schema: Schema = dataclasses.field(default_factory=Schema)
    rules: RuleSet = DEFAULT_RULES
    functions: dict[str, Function] = dataclasses.field(default_factory=dict)
    raw_schema: Any = None
    raw_rules: Any = None
    """The module's `schema` and `rules` as written, for the admin to read."""

    @property
    def links(self) -> Links:
        return self.schema.links if self.schema.entities else NO_LINKS

    def declared_types(self) -> dict[str, dict[str, str]]:
        """`{entity: {attribute: type}}` for the attributes the schema types."""
        return {
            entity: {name: a.type for name, a in spec.attributes.items() if a.type}
            for entity, spec in self.schema.entities.items()
        }

    def entity_json_schemas(self) -> dict[str, dict[str, Any]]:
        """A JSON schema per declared entity (its typed attributes, its required ones)."""
        return {
            entity: {
                "type": "object",
                "properties": {
                    name: {"type": a.type} if a.type else {} for name, a in spec.attributes.items()
                },
                "required": sorted(name for name, a in spec.attributes.items() if a.required),
            }
            for entity, spec in self.schema.entities.items()
        }

    def function_json_schemas(self) -> dict[str, dict[str, Any]]:
        """A JSON schema per server function: its pydantic argument model's."""
        return {name: f.arguments.model_json_schema() for name, f in self.functions.items()}


EMPTY = App()
"""No APP: schemaless entities, owner-only rules, no functions."""


def load_app(spec: str | None) -> App:
    """Import and check the app named by `spec` (None: the empty app)."""
    if not spec:
        return EMPTY
    module = _import(spec)
    try:
        schema = compile_schema(getattr(module, "schema", None))
        raw_rules = getattr(module, "rules", None)
        check_nesting(raw_rules, "rules")  # before compiling, which recurses
        rules = compile_rules(raw_rules)
    except (SchemaError, RuleError, QueryTooComplex) as exc:
        raise AppError(str(exc)) from None
    functions = _functions(getattr(module, "functions", None))
    raw_schema = getattr(module, "schema", None)
    return App(spec, schema, rules, functions, raw_schema, raw_rules)


def _import(spec: str) -> ModuleType:
    try:
        if spec.endswith(".py"):
            path = Path(spec).resolve()
            if not path.is_file():
                raise AppError(f"no such file {spec}")
            loader = importlib.util.spec_from_file_location("actorbase_app", path)
            assert loader is not None and loader.loader is not None
            module = importlib.util.module_from_spec(loader)
            sys.modules["actorbase_app"] = module
            loader.loader.exec_module(module)
            return module
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        return importlib.import_module(spec)
    except AppError:
        raise
    except Exception as exc:
        where = _where(exc)
        raise AppError(f"cannot import: {type(exc).__name__}: {exc}{where}") from None


def _where(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f" ({exc.filename}:{exc.lineno})"
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f" ({tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})" if tb is not None else ""


def _functions(raw: Any) -> dict[str, Function]:
    if raw is None:
        return {}
    if isinstance(raw, list | tuple):
        pairs = [(getattr(fn, "__name__", None), fn) for fn in raw]
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        raise AppError("functions: must be a list of functions or a dict name → function")
    out = {}
    for name, fn in pairs:
        where = f"functions.{name}"
        if not isinstance(name, str) or not FUNCTION_NAME_RE.fullmatch(name):
            raise AppError(f"{where}: names are 1-64 letters, digits or _")
        if not callable(fn):
            raise AppError(f"{where}: not a function")
        out[name] = Function(name, fn, _arguments(name, fn, where))
    return out


def _arguments(name: str, fn: Callable[..., Any], where: str) -> type[pydantic.BaseModel]:
    """A pydantic model of `fn`'s parameters after the context, from their type hints."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise AppError(f"{where}: cannot resolve type hints: {exc}") from None
    params = list(inspect.signature(fn).parameters.values())
    if not params or params[0].kind not in (
        params[0].POSITIONAL_ONLY,
        params[0].POSITIONAL_OR_KEYWORD,
    ):
        raise AppError(f"{where}: the first parameter must take the Context")
    fields: dict[str, Any] = {}
    for p in params[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise AppError(f"{where}.{p.name}: arguments are named; no *args, **kwargs or /")
        if p.name not in hints:
            raise AppError(f"{where}.{p.name}: needs a type hint (arguments are validated)")
        default = ... if p.default is p.empty else p.default
        fields[p.name] = (hints[p.name], default)
    try:
        return pydantic.create_model(
            f"{name}_arguments",
            __config__=pydantic.ConfigDict(extra="forbid", strict=True),
            **fields,
        )
    except Exception as exc:
        raise AppError(f"{where}: {exc}".splitlines()[0]) from None


def validate_arguments(function: Function, raw_json: str) -> dict[str, Any]:
    """The typed arguments of a call, from its JSON body; 400 INVALID_ARGUMENT
    "Validation failed" with one `{field, message}` per problem otherwise."""
    try:
        model = function.arguments.model_validate_json(raw_json)
    except pydantic.ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": _message(e)}
            for e in exc.errors(include_url=False)
        ]
        raise InvalidArgument("Validation failed", details=details) from None
    return {name: getattr(model, name) for name in type(model).model_fields}


_RECEIVED = {str: "string", bool: "boolean", int: "number", float: "number", list: "array"}


def _received(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    return _RECEIVED.get(type(value), type(value).__name__)


_EXPECTED = {
    "string_type": "string",
    "int_type": "integer",
    "int_from_float": "integer",
    "float_type": "number",
    "bool_type": "boolean",
    "list_type": "array",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
}


def _plural(n: Any, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _message(error: Any) -> str:
    """pydantic's error, worded as the seed (and Zod) word it."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "Required"
    if kind == "extra_forbidden":
        return "Unrecognized key"
    if kind in _EXPECTED:
        return f"Expected {_EXPECTED[kind]}, received {_received(error.get('input'))}"
    if kind == "string_too_short":
        return f"String must be at least {_plural(ctx.get('min_length'), 'character')}"
    if kind == "string_too_long":
        return f"String must be at most {_plural(ctx.get('max_length'), 'character')}"
    if kind == "string_pattern_mismatch":
        return f"String must match the pattern {ctx.get('pattern')}"
    if kind == "too_short":
        return f"Array must contain at least {_plural(ctx.get('min_length'), 'element')}"
    if kind == "too_long":
        return f"Array must contain at most {_plural(ctx.get('max_length'), 'element')}"
    bounds = {
        "greater_than": ("greater than", "gt"),
        "greater_than_equal": ("greater than or equal to", "ge"),
        "less_than": ("less than", "lt"),
        "less_than_equal": ("less than or equal to", "le"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"Number must be {words} {ctx.get(key)}"
    if kind in ("literal_error", "enum"):
        return f"Invalid value. Expected {ctx.get('expected')}"
    if kind == "json_invalid":
        return "Body is not valid JSON"
    return str(error["msg"])
