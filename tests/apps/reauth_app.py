"""Test app whose rules turn on the caller's role and claims, for re-`auth` on a
WebSocket (tests/handlers/test_hardening_reauth.py)."""

from __future__ import annotations

rules = {
    # A team's documents, readable by members of that team only.
    "teamdocs": {
        "read": {"$auth.claims.team": {"$exists": True}, "team": "$auth.claims.team"},
    },
    # Staff rows anyone reads; the salary field only with claim payroll.
    "staff": {
        "read": True,
        "fields": {"salary": {"read": {"$auth.claims.payroll": True}}},
    },
    # Own notes; deleting them takes role editor.
    "notes": {"delete": {"userId": "$auth.id", "$auth.role": "editor"}},
    "$rooms": {"$or": [{"room": {"$like": "public-%"}}, {"$auth.claims.team": "red"}]},
}
