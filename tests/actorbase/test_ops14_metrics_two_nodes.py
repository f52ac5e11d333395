"""Two server processes on one PostgreSQL database (issue 14, item 5): the storage
figures are the data's, the same on both whichever process stored the files; request
counts and live sockets are each process's own."""

from __future__ import annotations

import asyncio
import uuid

from tests.handlers.test_ops_metrics import eventually, requests_of, scrape, value
from tests.serverproc import ADMIN_TOKEN, Api
from tests.wsclient import WsClient


def test_storage_figures_are_cluster_wide_and_process_figures_are_not(two_servers):
    _, servers = two_servers
    a, b = (Api(s.url, ADMIN_TOKEN) for s in servers)
    before = scrape(b)
    sizes = (5, 7, 11)
    for n in sizes:  # stored through A only
        path = f"m2/{uuid.uuid4().hex}.txt"
        response = a.post(
            "/api/storage/upload",
            files={"file": ("f.txt", b"x" * n, "text/plain")},
            data={"path": path},
        )
        assert response.status_code == 201, response.text
    files = value(before, "actorbase_storage_files") + len(sizes)
    stored = value(before, "actorbase_storage_bytes") + sum(sizes)

    def caught_up(samples) -> bool:
        return (
            value(samples, "actorbase_storage_files") == files
            and value(samples, "actorbase_storage_bytes") == stored
        )

    on_a, on_b = eventually(a, caught_up), eventually(b, caught_up)
    # The uploads were answered by A: B counted none of them.
    uploads_a = requests_of(on_a, "storage", "POST", "201")
    assert uploads_a == len(sizes)
    assert requests_of(on_b, "storage", "POST", "201") == 0

    async def one_socket_on_a() -> None:
        ws = await WsClient.connect(servers[0].url, ADMIN_TOKEN)
        try:
            busy = eventually(
                a, lambda s: value(s, "actorbase_connections", transport="websocket") == 1
            )
            assert value(busy, "actorbase_connections", transport="websocket") == 1
            assert value(scrape(b), "actorbase_connections", transport="websocket") == 0
        finally:
            ws.close()

    asyncio.run(one_socket_on_a())
