"""GET /api/openapi.json (OpenAPI 3.1, built from the route table) and /api/docs.

The document cannot drift from the code: `document` walks the application's rules,
names each path from the route's regex and its handler method's parameters, and
takes each operation from the `openapi` class attribute the handler declares next to
its methods ({"get": operation(...), ...}); tests check that every route and method
is in the document and nothing else is. App-declared entities get a typed path of
their own (`/api/data/todos` with a `Todo` schema) and server functions one each
(`/api/fn/{name}`), from what the route table passes to `OpenApiHandler`.

/api/docs is Swagger UI from the `swagger-ui-bundle-v2` package's files, served
locally (no CDN), pointed at /api/openapi.json.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Mapping
from typing import Any

import swagger_ui_bundle
import tornado.routing
import tornado.web
import ujson

import actorbase
from actorbase.errors import ApiError, InvalidArgument, NotFound
from handlers.base import ApiHandler
from handlers.cors import handler_methods

Schema = dict[str, Any]

SWAGGER_UI_DIR = str(swagger_ui_bundle.swagger_ui_path)
NO_SCHEMAS: Mapping[str, Schema] = types.MappingProxyType({})

USER = "user"
ADMIN = "admin"
PUBLIC = "public"
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    USER: [{"bearerAuth": []}, {"adminToken": []}],
    ADMIN: [{"adminToken": []}],
    PUBLIC: [],
}

_ERROR = {
    "description": "An error in the seed's format: `{error: {code, message, status}}`",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}

# -- building blocks handlers use to declare their operations ------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    """A JSON object schema; other properties are allowed."""
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
NUMBER: Schema = {"type": "number"}
OBJECT: Schema = {"type": "object"}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def param(name: str, schema: Schema, where: str = "query", description: str = "") -> Schema:
    spec: Schema = {"name": name, "in": where, "schema": schema}
    if where == "path":
        spec["required"] = True
    if description:
        spec["description"] = description
    return spec


def operation(
    summary: str,
    tag: str,
    responses: Mapping[int, Schema | None],
    *,
    auth: str = USER,
    body: Schema | None = None,
    body_type: str = "application/json",
    params: tuple[Schema, ...] = (),
    content_type: str = "application/json",
    description: str = "",
) -> Schema:
    """One operation: `responses` maps each success status to its body schema (None:
    no body); errors share the Error schema as the default response."""
    spec: Schema = {"summary": summary, "tags": [tag], "security": _SECURITY[auth]}
    if description:
        spec["description"] = description
    if params:
        spec["parameters"] = list(params)
    if body is not None:
        spec["requestBody"] = {"required": True, "content": {body_type: {"schema": body}}}
    spec["responses"] = {
        str(status): (
            {"description": _REASONS.get(status, "Success")}
            if schema is None
            else {
                "description": _REASONS.get(status, "Success"),
                "content": {content_type: {"schema": schema}},
            }
        )
        for status, schema in responses.items()
    }
    spec["responses"]["default"] = _ERROR
    return spec


_REASONS = {
    101: "Switching Protocols",
    200: "OK",
    201: "Created",
    204: "No Content",
    206: "Partial Content",
    503: "Service Unavailable",
}

# -- shared schemas ---------------------------------------------------------------------------

COMPONENTS: Schema = {
    "schemas": {
        "Error": obj(
            ("error",),
            error=obj(
                ("code", "message", "status"),
                code=STRING,
                message=STRING,
                status=INTEGER,
                retryAfter={**INTEGER, "description": "Seconds to wait (429 responses)"},
                details=array(OBJECT),
            ),
        ),
        "Row": obj(
            ("id", "createdAt", "updatedAt", "userId"),
            id=STRING,
            createdAt={**INTEGER, "description": "ms since epoch, set by the server"},
            updatedAt={**INTEGER, "description": "ms since epoch, set by the server"},
            userId={"type": ["string", "null"], "description": "the creator"},
        ),
        "Tokens": obj(("accessToken", "refreshToken"), accessToken=STRING, refreshToken=STRING),
        "User": obj(
            ("id", "email", "createdAt"),
            id=STRING,
            email=STRING,
            role=STRING,
            claims=OBJECT,
            mfaEnabled=BOOLEAN,
            createdAt={**STRING, "format": "date-time"},
        ),
        "Credentials": obj(("email", "password"), email=STRING, password=STRING),
        "Attributes": {
            "type": "object",
            "description": "A row's attributes; id, createdAt, updatedAt are the server's",
        },
    },
    "securitySchemes": {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A user's access token from /api/auth/signup, signin or refresh",
        },
        "adminToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "The server's ADMIN_TOKEN: every endpoint, bypassing rules",
        },
    },
    "headers": {
        name: {"description": text, "schema": INTEGER}
        for name, text in (
            ("X-RateLimit-Limit", "Requests allowed per window by the budget that applied"),
            ("X-RateLimit-Remaining", "Requests left in that budget"),
            ("X-RateLimit-Reset", "When that budget is full again, Unix time in seconds"),
        )
    },
}

# -- operations of handlers owned elsewhere (the realtime handlers) ---------------------------

_LIVE_QUERY = param("q", STRING, description="The query, as JSON: {entity: {$where, ...}}")

EXTERNAL: dict[str, dict[str, Schema]] = {
    "handlers.ws.WebSocket": {
        "get": operation(
            "WebSocket: live queries, mutations, presence",
            "realtime",
            {101: None},
            auth=PUBLIC,
            description="Upgrade to a WebSocket, then send {type: 'auth', token} first. "
            "A plain GET gets 400 (text).",
        )
        | {
            "responses": {
                "101": {"description": "Switching Protocols"},
                "400": {
                    "description": "Not a WebSocket upgrade",
                    "content": {"text/html": {"schema": STRING}},
                },
                "default": _ERROR,
            }
        },
    },
    "handlers.sse.SubscribeHandler": {
        "get": operation(
            "A live query as Server-Sent Events",
            "realtime",
            {200: STRING},
            params=(
                _LIVE_QUERY,
                param("token", STRING, description="For EventSource"),
                param(
                    "since",
                    {"type": "integer", "minimum": 0},
                    description="Resume from the last tx seen (as Last-Event-ID does)",
                ),
            ),
            content_type="text/event-stream",
        ),
    },
    "handlers.presence.PresenceHandler": {
        "get": operation(
            "Who is in a presence room",
            "realtime",
            {200: obj(("room", "peers"), room=STRING, peers=array(OBJECT))},
            params=(param("room", STRING, "path"),),
        ),
    },
}
"""Kept here, keyed by class, until those modules declare `openapi` themselves."""

# -- the document ---------------------------------------------------------------------------------

_GROUP = re.compile(r"\((?:[^()\\]|\\.)*\)")


def path_template(pattern: str, names: list[str]) -> str:
    """`/api/data/([^/]+)/([^/]+)` → `/api/data/{entity}/{id}` (names in group order)."""
    groups = iter(names)
    path = _GROUP.sub(lambda _: "{" + next(groups) + "}", pattern.removesuffix("$"))
    return path.removesuffix("/?").replace("\\", "")


def _path_names(cls: type, methods: list[str], count: int) -> list[str]:
    method = getattr(cls, methods[0].lower())
    names = [p for p in inspect.signature(method).parameters if p != "self"]
    return names[:count]


def operations_of(cls: type) -> dict[str, Schema]:
    """The declared operations of a handler class, by lower-case method."""
    declared = getattr(cls, "openapi", None)
    if declared is None:
        declared = EXTERNAL.get(f"{cls.__module__}.{cls.__qualname__}", {})
    return declared


def document(
    app: tornado.web.Application,
    entities: Mapping[str, Schema] = NO_SCHEMAS,
    functions: Mapping[str, Schema] = NO_SCHEMAS,
) -> Schema:
    """The OpenAPI 3.1 document for `app`'s routes, then a typed path per declared
    entity (`entities`: name → JSON schema of its attributes) and per server function
    (`functions`: name → JSON schema of its arguments). KeyError if a handler lacks
    the operation of a method it implements."""
    paths: dict[str, Schema] = {}
    for rule in app.wildcard_router.rules:
        matcher = rule.matcher
        if not isinstance(matcher, tornado.routing.PathMatches):
            continue  # the CORS preflight matcher: not an endpoint
        cls = rule.target
        methods = handler_methods(cls)
        names = _path_names(cls, methods, matcher.regex.groups)
        declared = operations_of(cls)
        item = paths.setdefault(path_template(matcher.regex.pattern, names), {})
        for method in methods:
            spec = dict(declared[method.lower()])
            spec["operationId"] = f"{cls.__name__}.{method.lower()}"
            if issubclass(cls, ApiHandler):
                spec["responses"] = _with_rate_headers(spec["responses"])
            item[method.lower()] = spec
    for name, schema in sorted(entities.items()):
        paths.update(entity_paths(name, schema))
    for name, schema in sorted(functions.items()):
        paths[f"/api/fn/{name}"] = function_path(name, schema)
    components = {**COMPONENTS, "schemas": dict(COMPONENTS["schemas"])}
    for name, schema in entities.items():
        components["schemas"][type_name(name)] = schema
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "actorbase",
            "version": actorbase.__version__,
            "description": "Self-hosted realtime backend. Errors are "
            "`{error: {code, message, status}}`; every response carries X-RateLimit-Limit, "
            "-Remaining and -Reset (Unix seconds); 429s add Retry-After.",
        },
        "paths": paths,
        "components": components,
    }


def _with_rate_headers(responses: Mapping[str, Schema]) -> dict[str, Schema]:
    headers = {name: {"$ref": f"#/components/headers/{name}"} for name in COMPONENTS["headers"]}
    return {status: {**r, "headers": headers} for status, r in responses.items()}


def type_name(entity: str) -> str:
    """`todos` → `Todo`, `order_items` → `OrderItem`: an entity's schema name."""
    plural = entity.endswith("s") and not entity.endswith("ss") and len(entity) > 1
    singular = entity[:-1] if plural else entity
    return "".join(part.capitalize() for part in singular.split("_"))


def entity_paths(entity: str, schema: Schema) -> dict[str, Schema]:
    """Typed /api/data/{entity} and /api/data/{entity}/{id} for a declared entity."""
    row = {"allOf": [ref("Row"), ref(type_name(entity))]}
    tag = entity
    data_body = {"allOf": [ref(type_name(entity))]}
    one = obj(("data",), data=row)
    written = obj(("data", "tx"), data=row, tx=INTEGER)
    row_id = param("id", STRING, "path")
    return {
        f"/api/data/{entity}": {
            "get": operation(
                f"List {entity}",
                tag,
                {
                    200: obj(
                        ("data", "total", "hasMore"),
                        data=array(row),
                        total=INTEGER,
                        hasMore=BOOLEAN,
                    )
                },
                params=_LIST_PARAMS,
            ),
            "post": operation(f"Create a {type_name(entity)}", tag, {201: written}, body=data_body),
        },
        f"/api/data/{entity}/{{id}}": {
            "get": operation(f"One {type_name(entity)}", tag, {200: one}, params=(row_id,)),
            "patch": operation(
                f"Merge into a {type_name(entity)}",
                tag,
                {200: written},
                body=OBJECT,
                params=(row_id,),
            ),
            "delete": operation(
                f"Delete a {type_name(entity)}", tag, {204: None}, params=(row_id,)
            ),
        },
    }


def function_path(name: str, arguments: Schema) -> Schema:
    return {
        "post": operation(
            f"Call the server function {name}",
            "functions",
            {200: obj(("result",), result={}, tx=INTEGER)},
            body=arguments,
        )
    }


_LIST_PARAMS = (
    param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
    param("offset", {"type": "integer", "minimum": 0}),
    param("order", STRING, description="e.g. -createdAt,title"),
    param("where", STRING, description="A $where object as JSON"),
)

# -- handlers -------------------------------------------------------------------------------------


class OpenApiHandler(ApiHandler):
    openapi = {"get": operation("This document (OpenAPI 3.1)", "meta", {200: OBJECT}, auth=PUBLIC)}

    async def authenticate(self) -> None:
        """Public: a token, good or bad, changes nothing here."""
        return None

    async def get(self) -> None:
        app = self.ctx.app
        self.send(
            document(self.application, app.entity_json_schemas(), app.function_json_schemas())
        )


_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>actorbase API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#swagger-ui",
  deepLinking: true, tryItOutEnabled: false, persistAuthorization: false});
</script>
</body>
</html>
"""


class DocsHandler(ApiHandler):
    """GET /api/docs: the Swagger UI page."""

    openapi = {
        "get": operation(
            "Swagger UI for this API", "meta", {200: STRING}, auth=PUBLIC, content_type="text/html"
        )
    }

    async def authenticate(self) -> None:
        return None

    async def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(_DOCS_PAGE)


class DocsAssetHandler(tornado.web.StaticFileHandler):
    """Swagger UI's own files, from the installed package."""

    openapi = {
        method: operation(
            "A Swagger UI file",
            "meta",
            {200: STRING},
            auth=PUBLIC,
            params=(param("path", STRING, "path"),),
            content_type="*/*",
        )
        for method in ("get", "head")
    }

    def prepare(self) -> None:
        # os.stat raises ValueError on a NUL, which would be a 500.
        if any("\x00" in arg for arg in self.path_args):
            raise tornado.web.HTTPError(400, reason="Path arguments may not contain NUL")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Missing or refused files answer in the API's error format (a path outside
        the package's folder is simply not found)."""
        if status_code in (403, 404):
            status_code, code = 404, NotFound.code
        else:
            code = InvalidArgument.code if status_code < 500 else ApiError.code
        self.set_status(status_code)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        body = {"error": {"code": code, "message": self._reason, "status": status_code}}
        self.finish(ujson.dumps(body))
