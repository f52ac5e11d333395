"""Test app: many declared indexes and unique attributes, so processes starting
together spend a while creating them (tests/actorbase/test_deploy_boot.py)."""

from __future__ import annotations

schema = {
    entity: {
        "attributes": {
            **{f"a{i}": {"type": "string", "index": True} for i in range(12)},
            **{f"u{i}": {"type": "string", "unique": True} for i in range(4)},
        },
        "indexes": [f"nested.n{i}" for i in range(4)],
    }
    for entity in ("alpha", "beta", "gamma")
}
