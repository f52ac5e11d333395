"""GET /admin: the admin dashboard, plain HTML, CSS and ES modules shipped in this
package (handlers/admin_static) on the JavaScript client (/admin/client/), served by
the server itself: no CDN, no build step.

The page holds no secret: the operator types the admin token into it, the page keeps
it in sessionStorage for the tab only and sends it in `Authorization` headers and the
WebSocket's `auth` message, never in a URL. The headers below keep the page from
loading anything but its own files (images: signed file URLs, which may be S3's),
from being framed, and from leaking its address to other sites.
"""

from __future__ import annotations

import os
from typing import Any

from handlers.openapi import PUBLIC, STRING, DocsAssetHandler, operation, param

ADMIN_UI_DIR = os.path.join(os.path.dirname(__file__), "admin_static")
# The JavaScript client (clients/js/src), which the dashboard runs on: in a checkout
# admin_static/client is a symlink to it, in a wheel a copy made by the build (setup.cfg
# package_data follows the link), so there is one client and no copy to keep in step.
# Resolved here because Tornado serves no symlink leading out of a handler's root.
ADMIN_CLIENT_DIR = os.path.realpath(os.path.join(ADMIN_UI_DIR, "client"))

_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob: http: https:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


class _Secured(DocsAssetHandler):
    def set_default_headers(self) -> None:
        for name, value in _HEADERS.items():
            self.set_header(name, value)


class AdminPageHandler(_Secured):
    """/admin and /admin/: the dashboard's one page (its views are #fragments)."""

    openapi = {
        method: operation(
            "The admin dashboard (sign in with the admin token)",
            "admin",
            {200: STRING},
            auth=PUBLIC,
            content_type="text/html",
        )
        for method in ("get", "head")
    }

    def initialize(self, **kwargs: Any) -> None:  # type: ignore[override]
        super().initialize(path=ADMIN_UI_DIR, default_filename="index.html")

    async def get(self, path: str = "", include_body: bool = True) -> None:
        await super().get("index.html", include_body)

    async def head(self, path: str = "") -> None:
        await self.get(include_body=False)


class AdminAssetHandler(_Secured):
    """/admin/{path}: the dashboard's CSS and modules."""

    openapi = {
        method: operation(
            "A file of the admin dashboard",
            "admin",
            {200: STRING},
            auth=PUBLIC,
            params=(param("path", STRING, "path"),),
            content_type="*/*",
        )
        for method in ("get", "head")
    }

    root = ADMIN_UI_DIR

    def initialize(self, **kwargs: Any) -> None:  # type: ignore[override]
        super().initialize(path=self.root)

    def get_content_type(self) -> str:
        """ES modules need a JavaScript type, whatever the host's mimetypes say."""
        assert self.absolute_path is not None
        if self.absolute_path.endswith(".js"):
            return "text/javascript; charset=utf-8"
        return super().get_content_type()


class AdminClientHandler(AdminAssetHandler):
    """/admin/client/{path}: the JavaScript client's modules, same origin as the page
    (its CSP allows no other); documented as the dashboard's files they are."""

    root = ADMIN_CLIENT_DIR
