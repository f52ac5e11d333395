"""POST /api/fn/{name}: call a server function of the app (the seed's shape).

The body is the function's arguments as a JSON object → `{result, tx}`. Unknown
names are 404; arguments that do not fit the function's type hints are 400
"Validation failed" with `details: [{field, message}]`; a function over a limit is
400 RESOURCE_EXCEEDED. The call runs in a worker process (actors.functions); this
handler only awaits it.
"""

from __future__ import annotations

from actorbase.errors import NotFound
from handlers.base import ApiHandler
from handlers.openapi import INTEGER, OBJECT, STRING, obj, operation, param


class FunctionHandler(ApiHandler):
    openapi = {
        "post": operation(
            "Call a server function",
            "functions",
            {200: obj(("result", "tx"), result={}, tx=INTEGER)},
            params=(param("name", STRING, "path", "The function's name"),),
            body=OBJECT,
        )
    }

    async def post(self, name: str) -> None:
        principal = self.require_auth()
        pool = self.ctx.functions
        if pool is None:
            raise NotFound(f"No function named {name}")
        args = "{}"
        if self.request.body:
            self.json_object()  # a JSON object of arguments, or 400
            args = self.request.body.decode("utf-8", "replace")
        result, tx = await pool.call(name, args, principal)
        self.send({"result": result, "tx": tx})
