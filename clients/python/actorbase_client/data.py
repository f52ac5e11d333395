"""One entity's rows over REST: get, list, create, update, remove."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from .http import Http


class Collection:
    """`ab.data("todos")`: the `/api/data/{entity}` endpoints. Writes here are plain
    REST (not optimistic, not queued offline); use `ab.mutate` for those."""

    def __init__(self, http: Http, entity: str) -> None:
        self._http = http
        self.entity = entity
        self._path = f"/api/data/{quote(entity, safe='')}"

    async def get(self, id: str) -> dict[str, Any]:
        response = await self._http.request("GET", f"{self._path}/{quote(id, safe='')}")
        return dict(response.body["data"])

    async def list(
        self,
        *,
        where: dict[str, Any] | None = None,
        order: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """→ {"data": [rows], "total", "hasMore"}; `order` as the server takes it
        (`"-createdAt,title"`), `where` a `$where` object."""
        params = {
            "where": json.dumps(where) if where is not None else None,
            "order": order,
            "limit": limit,
            "offset": offset,
        }
        response = await self._http.request("GET", self._path, params=params)
        return dict(response.body)

    async def create(self, doc: dict[str, Any]) -> dict[str, Any]:
        """→ {"data": row, "tx"}."""
        response = await self._http.request("POST", self._path, json=doc)
        return dict(response.body)

    async def update(self, id: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge `patch` (null removes a key) → {"data": row, "tx"}."""
        path = f"{self._path}/{quote(id, safe='')}"
        response = await self._http.request("PATCH", path, json=patch)
        return dict(response.body)

    async def remove(self, id: str) -> None:
        await self._http.request("DELETE", f"{self._path}/{quote(id, safe='')}")
