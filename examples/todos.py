"""The reference app: todo lists, shared within an organization.

Run it with ``APP=examples/todos.py actorbase serve``. README "Writing an app" walks
through it. A user owns the lists and todos they create; a list marked `shared` is
readable by every user whose `organizationId` claim matches the list's (an admin
sets claims with PATCH /api/admin/users/{id}).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from store.functions import Context, FunctionError

schema = {
    "todos": {
        "attributes": {
            "title": {"type": "string", "required": True},
            "done": {"type": "boolean"},
            "priority": {"type": "number"},
            "listId": {"type": "string", "index": True},
        },
        "links": {
            "user": {"field": "userId", "to": "users", "reverse": "todos"},
            "list": {"field": "listId", "to": "lists", "reverse": "todos"},
        },
    },
    "lists": {
        "attributes": {
            "name": {"type": "string", "required": True},
            "organizationId": {"type": "string", "index": True},
            "shared": {"type": "boolean"},
        },
    },
}

_OWNER = {"userId": "$auth.id"}
_SAME_ORGANIZATION = {
    "$auth.claims.organizationId": {"$exists": True},
    "organizationId": "$auth.claims.organizationId",
    "shared": True,
}

rules = {
    "todos": {"read": _OWNER, "create": _OWNER, "update": _OWNER, "delete": _OWNER},
    "lists": {
        "read": {"$or": [_OWNER, _SAME_ORGANIZATION]},
        "create": _OWNER,
        "update": _OWNER,
        "delete": _OWNER,
    },
}


def createTodo(
    ctx: Context,
    title: Annotated[str, Field(min_length=1)],
    listId: str,
    priority: int = 0,
) -> str:
    """Add a todo to one of the caller's lists, creating the list (named for its id)
    on first use, as the seed's `{"title": "Buy milk", "listId": "list-1"}` expects;
    returns the todo's id. Another user's list, seen or not, is not found."""
    lst = ctx.db.get("lists", listId)
    if lst is None and ctx.admin.get("lists", listId) is None:
        ctx.db.insert("lists", {"name": listId}, id=listId)
    elif lst is None or lst["userId"] != ctx.auth.id:
        raise FunctionError("NOT_FOUND", f"No list {listId}")
    return ctx.db.insert(
        "todos", {"title": title, "done": False, "priority": priority, "listId": listId}
    )


functions = [createTodo]
