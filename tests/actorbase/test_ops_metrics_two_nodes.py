"""Two server processes on one PostgreSQL database: /metrics reports the data's
figures cluster-wide (the same on both), the process's own figures per process."""

from __future__ import annotations

import pytest

from tests.handlers.accounts import signup
from tests.handlers.test_ops_metrics import eventually, value
from tests.serverproc import ADMIN_TOKEN, Api


@pytest.fixture
def nodes(two_servers):
    _, servers = two_servers
    return servers, [Api(s.url, ADMIN_TOKEN) for s in servers], [Api(s.url) for s in servers]


def test_data_figures_agree_across_processes(nodes):
    servers, (a, b), (anon_a, anon_b) = nodes
    for _ in range(3):
        signup(anon_a)
    for _ in range(2):
        signup(anon_b)
    before_b = eventually(b, lambda s: value(s, "actorbase_users") == 5)
    tx = 0
    for i in range(4):  # writes through node A only
        tx = a.post("/api/data/cluster", json={"i": i}).json()["tx"]
    (users,) = servers[0].sql("SELECT count(*) FROM ab_users")[0]
    assert users == 5

    def caught_up(s):
        return value(s, "actorbase_users") == users and value(s, "actorbase_last_tx") == tx

    on_a, on_b = eventually(a, caught_up), eventually(b, caught_up)
    for name in ("actorbase_users", "actorbase_users_active_today", "actorbase_last_tx"):
        assert value(on_a, name) == value(on_b, name), name
    assert value(on_a, "actorbase_users_active_today") == 5
    # The writer's own counter is the process's: B committed none of A's writes.
    assert value(on_b, "actorbase_tx_committed_total") == value(
        before_b, "actorbase_tx_committed_total"
    )
    assert value(on_a, "actorbase_tx_committed_total") >= 4
