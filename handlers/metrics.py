"""GET /metrics: the process's figures in Prometheus' text format (actorbase.metrics).

For the admin token or METRICS_TOKEN (a scraper's own credential, which opens nothing
else); any other bearer, a user's access token included, is 401 UNAUTHENTICATED.
"""

from __future__ import annotations

import hmac

from actorbase.errors import Unauthenticated
from handlers.base import ApiHandler
from handlers.openapi import ADMIN, STRING, operation
from store.principal import Principal

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, which `generate_latest` writes and every Prometheus reads
(the library's CONTENT_TYPE_LATEST, version 1.0.0, is new to older servers)."""


class MetricsHandler(ApiHandler):
    openapi = {
        "get": operation(
            "Prometheus metrics (text exposition format)",
            "admin",
            {200: STRING},
            auth=ADMIN,
            content_type="text/plain",
            description="Also open to the METRICS_TOKEN setting's bearer token.",
        )
    }

    async def authenticate(self) -> Principal | None:
        """Compare the bearer with the two tokens only: a scrape never verifies a JWT."""
        token = self.bearer()
        settings = self.ctx.settings
        allowed = [self.ctx.admin_token, settings.metrics_token or ""]
        if token is None or not any(
            t and hmac.compare_digest(token.encode(), t.encode()) for t in allowed
        ):
            raise Unauthenticated("/metrics needs the admin token or METRICS_TOKEN")
        return None

    async def get(self) -> None:
        body = await self.ctx.metrics.scrape(self.ctx.reads)
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(body)
