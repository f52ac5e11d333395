"""Who is asking: the admin token, a signed-in user, or nobody."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.rules import RuleSet


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """The caller as rules see it (`$auth.id`, `$auth.role`, `$auth.claims.*`)."""

    user_id: str | None
    role: str = "user"
    claims: dict[str, Any] = dataclasses.field(default_factory=dict)
    is_admin: bool = False
    session_id: str | None = None
    expires_at: float | None = dataclasses.field(default=None, compare=False)
    """When the access token stops being valid (its `exp`); None: the admin token."""
    rules: RuleSet | None = dataclasses.field(default=None, compare=False, repr=False)
    """The app's rules, bound at authentication (None: the owner-only default)."""


ADMIN = Principal(user_id=None, role="admin", is_admin=True)
