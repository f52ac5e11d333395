"""Nodes behind HAProxy losing one to kill -9, and what their clients
(tests.resuming_clients) see of it: shared by tests/actorbase/test_balancer_haproxy.py,
which asserts on it, and bench/balancer.py, which times it."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import signal
import time
from pathlib import Path
from typing import Any

import requests

from tests.haproxy import HAProxy
from tests.resuming_clients import SseMember, Writer, WsMember, until
from tests.serverproc import ServerProcess

Client = WsMember | SseMember


@dataclasses.dataclass
class KillFigures:
    """What one kill -9 cost the clients of the node."""

    slot: str
    clients: int
    resubscribed: float
    """Seconds from the kill to every client of the node resumed on another."""
    presence: float
    """Seconds from the kill to every member's room holding exactly the live members."""
    missed: int
    duplicated: int


class Cluster:
    """Nodes in fixed slots (s0, s1, ...) behind one HAProxy: a killed node is replaced
    by a new process on the same port, which the balancer's checks bring back."""

    def __init__(self, nodes: list[ServerProcess], path: Path, env: dict[str, Any]) -> None:
        self.nodes = nodes
        """The list nodes_on_one_database stops at the end: replacements go in it."""
        self.path = path
        self.env = env
        self.replaced = 0
        self.slots = {f"s{i}": i for i in range(len(nodes))}
        self.haproxy = HAProxy(
            path / "haproxy",
            {name: nodes[i].port for name, i in self.slots.items()},
            check_inter="200ms",
            fall=2,
            rise=1,
            stream_timeout="30s",
        )

    def node(self, slot: str) -> ServerProcess:
        return self.nodes[self.slots[slot]]

    def replace(self, slot: str) -> None:
        """Start a new node on `slot`'s port and wait for the balancer to use it."""
        old = self.node(slot)
        self.replaced += 1
        new = ServerProcess(self.path / f"r{self.replaced}", old.database_url, **self.env)
        new.port, new.url = old.port, old.url
        new.env["PORT"] = str(old.port)
        self.nodes[self.slots[slot]] = new
        new.start()
        self.haproxy.wait_status(slot, "UP")


def rest_peers(base: str, member: WsMember) -> set[str]:
    """The room's peers as `GET /api/presence/{room}` lists them."""
    r = requests.get(
        f"{base}/api/presence/{member.room}",
        headers={"Authorization": f"Bearer {member.token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return {p["id"] for p in r.json()["peers"]}


def missed_and_duplicated(client: Client, acked: dict[int, int], upto: int) -> tuple[int, int]:
    """Writes acknowledged at a tx up to `upto` the client was never told of, and rows
    it was told of more than once."""
    adds = dict(client.live.adds)  # copies, in one step: the writer and SSE threads go on
    missed = sum(f"w{n:05d}" not in adds for n, tx in dict(acked).items() if tx <= upto)
    return missed, sum(count > 1 for count in adds.values())


async def caught_up(clients: list[Client], tx: int, within: float = 60) -> None:
    await until(
        lambda: all((c.live.tx or 0) >= tx for c in clients),
        within,
        f"every client at tx {tx}: {[c.live.tx for c in clients]}",
    )


async def kill_and_resume(
    cluster: Cluster,
    members: list[WsMember],
    sse: list[SseMember],
    writer: Writer,
    victim: str,
    catch_a_write: bool = False,
    within: float = 60,
) -> KillFigures:
    """kill -9 the node in slot `victim`, wait for its clients to resume elsewhere and
    every member's room to hold exactly the live members, then replace the node.

    `catch_a_write`: stop the node first (SIGSTOP) until a write has waited on it for
    a moment, so that the kill loses that write's answer and the writer must retry."""
    clients: list[Client] = [*members, *sse]
    on_it = [c for c in clients if c.server == victim]
    assert on_it, f"no client on {victim}"
    before = {id(c): (c.connections, len(c.live.resumes)) for c in on_it}
    dead_ids = {m.conn_id for m in members if m.server == victim}
    node = cluster.node(victim)
    assert node.proc is not None
    if catch_a_write:
        node.proc.send_signal(signal.SIGSTOP)
        with contextlib.suppress(AssertionError):
            await until(
                lambda: writer.sent_at is not None and time.monotonic() - writer.sent_at > 0.15,
                3,
                "a write waiting on the stopped node",
            )
    killed_at = time.monotonic()
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait()

    def resumed() -> bool:
        return all(
            c.connections > before[id(c)][0] and len(c.live.resumes) > before[id(c)][1]
            for c in on_it
        )

    await until(resumed, within, f"the clients of {victim} to resume")
    resubscribed = time.monotonic() - killed_at

    def converged() -> bool:
        live = {m.conn_id for m in members}
        return not dead_ids & live and all(m.peers.keys() == live for m in members)

    await until(converged, within, "every member to see the live members only")
    presence = time.monotonic() - killed_at
    for _ in cluster.slots:  # round robin: each live node answers one
        peers = await asyncio.to_thread(rest_peers, cluster.haproxy.url, members[0])
        assert peers == {m.conn_id for m in members}, (peers, dead_ids)
    await asyncio.to_thread(cluster.replace, victim)
    upto = max(list(writer.acked.values()), default=0)
    await caught_up(clients, upto, within)
    counts = [missed_and_duplicated(c, writer.acked, upto) for c in clients]
    return KillFigures(
        victim,
        len(on_it),
        resubscribed,
        presence,
        sum(m for m, _ in counts),
        sum(d for _, d in counts),
    )


def busiest(clients: list[Client], slots: list[str]) -> str:
    """The slot with the most clients on it."""
    on = collections.Counter(c.server for c in clients)
    return max(slots, key=lambda s: on[s])
