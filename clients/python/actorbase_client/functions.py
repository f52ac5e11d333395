"""Server functions: `await ab.functions.call("createTodo", {...})`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .http import Http


class Functions:
    def __init__(self, http: Http) -> None:
        self._http = http

    async def call(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """→ {"result", "tx"} as the function answered."""
        response = await self._http.request(
            "POST", f"/api/fn/{quote(name, safe='')}", json=args or {}
        )
        return dict(response.body)
