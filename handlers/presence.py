"""GET /api/presence/{room}: who is in a presence room now (the seed's shape).

`{room, peers: [{id, userId, data}]}`: `id` is the peer's connection id, as in the
WebSocket `presence-change` messages. The app's `$rooms` rule decides who may look
(by default any signed-in user, at any room).
"""

from __future__ import annotations

from actorbase.errors import InvalidArgument
from actors.room import ROOM_RE
from handlers.base import ApiHandler
from store import permissions


class PresenceHandler(ApiHandler):
    async def get(self, room: str) -> None:
        principal = self.require_auth()
        if not ROOM_RE.fullmatch(room):
            raise InvalidArgument("room: 1-128 letters, digits or _ . : @ ~ -")
        permissions.check_room(principal, room)
        assert self.ctx.rooms is not None
        self.send({"room": room, "peers": await self.ctx.rooms.peers(room)})
