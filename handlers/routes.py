"""The route table: every endpoint, wired to its handler with the shared context."""

from __future__ import annotations

import tornado.web

from actorbase.context import Context
from handlers.base import NotFoundHandler
from handlers.data import EntityHandler, RowHandler
from handlers.health import HealthHandler
from handlers.mutate import MutateHandler


def make_app(ctx: Context) -> tornado.web.Application:
    deps = {"ctx": ctx}
    routes = [
        (r"/api/admin/health", HealthHandler, deps),
        (r"/api/data/([^/]+)", EntityHandler, deps),
        (r"/api/data/([^/]+)/([^/]+)", RowHandler, deps),
        (r"/api/mutate", MutateHandler, deps),
    ]
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args=deps,
        compress_response=False,
        xheaders=False,
    )
