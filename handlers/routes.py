"""The route table: every endpoint, wired to its handler with the shared context."""

from __future__ import annotations

from collections.abc import Callable

import tornado.web

from actorbase.context import Context
from handlers import bodylimit, upgrade
from handlers.accesslog import log_request
from handlers.admin import SchemaHandler, StatsHandler
from handlers.admin_live import AppHandler, PulseHandler, RoomsHandler
from handlers.admin_ui import AdminAssetHandler, AdminClientHandler, AdminPageHandler
from handlers.admin_users import (
    AdminSessionHandler,
    AdminSessionsHandler,
    AdminUserHandler,
    AdminUserMfaHandler,
    AdminUsersHandler,
)
from handlers.auth import (
    JwksHandler,
    MeHandler,
    MfaDisableHandler,
    MfaEnableHandler,
    MfaEnrollHandler,
    MfaVerifyHandler,
    PasswordHandler,
    RefreshHandler,
    SessionHandler,
    SessionsHandler,
    SigninHandler,
    SignoutHandler,
    SignupHandler,
)
from handlers.base import NotFoundHandler
from handlers.cors import Preflight, PreflightHandler
from handlers.data import EntityHandler, RowHandler
from handlers.functions import FunctionHandler
from handlers.health import HealthHandler
from handlers.metrics import MetricsHandler
from handlers.mutate import MutateHandler
from handlers.openapi import SWAGGER_UI_DIR, DocsAssetHandler, DocsHandler, OpenApiHandler
from handlers.presence import PresenceHandler
from handlers.query import QueryHandler
from handlers.signed import SignedFileHandler
from handlers.sse import SubscribeHandler
from handlers.storage import FileHandler, ListHandler, UploadHandler
from handlers.ws import WebSocket
from store.storage.local import SIGNED_PREFIX


def make_app(ctx: Context) -> tornado.web.Application:
    deps = {"ctx": ctx}
    routes = [
        # CORS preflights first: answered without a token or a rate budget.
        (Preflight(), PreflightHandler, deps),
        (r"/api/admin/health", HealthHandler, deps),
        (r"/api/data/([^/]+)", EntityHandler, deps),
        (r"/api/data/([^/]+)/([^/]+)", RowHandler, deps),
        (r"/api/mutate", MutateHandler, deps),
        (r"/api/query", QueryHandler, deps),
        (r"/api/fn/([^/]+)", FunctionHandler, deps),
        (r"/ws", WebSocket, deps),
        (r"/api/subscribe", SubscribeHandler, deps),
        (r"/api/presence/([^/]+)", PresenceHandler, deps),
        (r"/api/storage/upload", UploadHandler, deps),
        (r"/api/storage/?", ListHandler, deps),
        (r"/api/storage/(.+)", FileHandler, deps),
        (SIGNED_PREFIX + r"(.+)", SignedFileHandler, deps),
        (r"/api/auth/signup", SignupHandler, deps),
        (r"/api/auth/signin", SigninHandler, deps),
        (r"/api/auth/mfa/enroll", MfaEnrollHandler, deps),
        (r"/api/auth/mfa/enable", MfaEnableHandler, deps),
        (r"/api/auth/mfa/disable", MfaDisableHandler, deps),
        (r"/api/auth/mfa/verify", MfaVerifyHandler, deps),
        (r"/api/auth/refresh", RefreshHandler, deps),
        (r"/api/auth/me", MeHandler, deps),
        (r"/api/auth/signout", SignoutHandler, deps),
        (r"/api/auth/sessions", SessionsHandler, deps),
        (r"/api/auth/sessions/([^/]+)", SessionHandler, deps),
        (r"/api/auth/password", PasswordHandler, deps),
        (r"/api/admin/users", AdminUsersHandler, deps),
        (r"/api/admin/users/([^/]+)", AdminUserHandler, deps),
        (r"/api/admin/users/([^/]+)/mfa", AdminUserMfaHandler, deps),
        (r"/api/admin/users/([^/]+)/sessions", AdminSessionsHandler, deps),
        (r"/api/admin/users/([^/]+)/sessions/([^/]+)", AdminSessionHandler, deps),
        (r"/.well-known/jwks.json", JwksHandler, deps),
        (r"/api/admin/stats", StatsHandler, deps),
        (r"/api/admin/schema", SchemaHandler, deps),
        (r"/api/admin/pulse", PulseHandler, deps),
        (r"/api/admin/rooms", RoomsHandler, deps),
        (r"/api/admin/app", AppHandler, deps),
        (r"/api/openapi.json", OpenApiHandler, deps),
        (r"/api/docs", DocsHandler, deps),
        (r"/api/docs/(.+)", DocsAssetHandler, {"path": SWAGGER_UI_DIR}),
        (r"/metrics", MetricsHandler, deps),
        (r"/admin/?", AdminPageHandler),
        (r"/admin/client/(.+)", AdminClientHandler),
        (r"/admin/(.+)", AdminAssetHandler),
    ]
    # Request ids and route names for the access log; plain WebSocket upgrades first.
    return upgrade.Application(
        routes,
        ctx=ctx,
        limit=ctx.settings.max_body_bytes,
        drain=bodylimit.largest_body(ctx.settings),
        default_handler_class=NotFoundHandler,
        default_handler_args=deps,
        compress_response=False,
        xheaders=False,
        # user, route, request id, no tokens or signatures; then counted for /metrics
        log_function=_counted(ctx, ctx.metrics.logger(log_request)),
    )


def _counted(
    ctx: Context, log: Callable[[tornado.web.RequestHandler], None]
) -> Callable[[tornado.web.RequestHandler], None]:
    """The log function, then the request counted for /api/admin/pulse (IOLoop)."""

    def log_and_count(handler: tornado.web.RequestHandler) -> None:
        log(handler)
        ctx.stats.requests.record(handler.request.request_time())

    return log_and_count
