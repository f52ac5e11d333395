"""The Python client sends a request refused with 401 again, after the refresh, only as
the user it was first sent as. If another user signed in on the same client between
the 401 and the re-send (before the refresh, while it is in flight, or after it), the
request fails with 401 and is not performed as them; if it is the same user again, it
is sent again and succeeds as that user. A queued write of the first user waits for
them. Real server, both backends; the interleaving is fixed by hooks in the test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from actorbase_client import ActorbaseError, Client, MemoryTokenStorage
from actorbase_client.tokens import Claims, Tokens

from tests.clients.conftest import PASSWORD, eventually, new_email, run
from tests.serverproc import ADMIN_TOKEN, Api

WHEN = ("before_refresh", "during_refresh", "after_refresh")


class HookedStorage(MemoryTokenStorage):
    """Memory token storage that runs `after_save` once, after the next save (a save
    is awaited: another task, e.g. a sign-in, may run meanwhile)."""

    def __init__(self) -> None:
        super().__init__()
        self.after_save: Callable[[], Awaitable[None]] | None = None

    async def save(self, tokens: Tokens) -> None:
        await super().save(tokens)
        hook, self.after_save = self.after_save, None
        if hook is not None:
            await hook()


def _owners(server: Any, entity: str) -> list[str]:
    """The `userId` of every row of `entity`, as the admin sees them."""
    response = Api(server.url, ADMIN_TOKEN).get(f"/api/data/{entity}")
    assert response.status_code == 200, response.text
    return sorted(row["userId"] for row in response.json()["data"])


async def _account(ab: Client) -> tuple[str, str]:
    email = new_email()
    await ab.auth.sign_up(email, PASSWORD)
    return email, str(ab.auth.user["id"])


async def _refused_as(ab: Client, email: str) -> str:
    """Sign `email` in on `ab` with an access token the server refuses (its signature
    spoilt, its claims intact: still the user's) and a good refresh token."""
    await ab.auth.sign_in(email, PASSWORD)
    tokens = ab._http.tokens
    assert tokens is not None
    await ab._http.set_tokens(Tokens(tokens.access_token + "x", tokens.refresh_token))
    assert ab._http.claims is not None
    return str(ab._http.claims.user_id)


def _hook(ab: Client, storage: HookedStorage, when: str, sign_in: Callable[[], Awaitable[Any]]):
    """Arrange for `sign_in` to run once on `ab`, between the next 401 and its re-send:
    - before_refresh: the 401 came back, the refresh has not started;
    - during_refresh: the refresh request is on its way (answered after the sign-in);
    - after_refresh: the refresh stored its new tokens (the save is awaited)."""
    http = ab._http
    if when == "before_refresh":
        refresh = http.refresh

        async def hooked_refresh(stale: str | None = None) -> Tokens:
            if stale is not None:
                http.refresh = refresh  # type: ignore[method-assign]
                await sign_in()
            return await refresh(stale)

        http.refresh = hooked_refresh  # type: ignore[method-assign]
    elif when == "during_refresh":
        request = http.request

        async def hooked_request(method: str, path: str, **kwargs: Any) -> Any:
            if path != "/api/auth/refresh":
                return await request(method, path, **kwargs)
            http.request = request  # type: ignore[method-assign]
            in_flight = asyncio.ensure_future(request(method, path, **kwargs))
            await sign_in()
            return await in_flight

        http.request = hooked_request  # type: ignore[method-assign]
    else:

        async def after_save() -> None:
            await sign_in()

        storage.after_save = after_save


@pytest.mark.parametrize("when", WHEN)
def test_a_refused_request_is_not_sent_again_as_another_user(server, when):
    entity = f"resend_{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        storage = HookedStorage()
        async with Client(server.url, token_storage=storage) as ab:
            email_b, user_b = await _account(ab)
            email_a, user_a = await _account(ab)
            assert await _refused_as(ab, email_a) == user_a
            _hook(ab, storage, when, lambda: ab.auth.sign_in(email_b, PASSWORD))
            with pytest.raises(ActorbaseError) as refused:
                await ab.data(entity).create({"by": "A"})
            assert (refused.value.code, refused.value.status) == ("UNAUTHENTICATED", 401)
            # Not performed at all: in particular not as B.
            assert _owners(server, entity) == []
            # B's sign-in stands (not undone by A's refresh), and B writes as B.
            assert ab.auth.user is not None and ab.auth.user["id"] == user_b
            assert ab._http.claims is not None and ab._http.claims.user_id == user_b
            assert Claims.of(ab._http.tokens.access_token).user_id == user_b
            created = await ab.data(entity).create({"by": "B"})
            assert created["data"]["userId"] == user_b
            assert _owners(server, entity) == [user_b]

    run(scenario())


@pytest.mark.parametrize("when", WHEN)
def test_a_refused_request_is_sent_again_as_the_same_user(server, when):
    entity = f"resend_{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        storage = HookedStorage()
        async with Client(server.url, token_storage=storage) as ab:
            email_a, user_a = await _account(ab)
            assert await _refused_as(ab, email_a) == user_a
            refused = ab._http.tokens
            _hook(ab, storage, when, lambda: ab.auth.sign_in(email_a, PASSWORD))
            created = await ab.data(entity).create({"by": "A"})
            assert created["data"]["userId"] == user_a
            assert _owners(server, entity) == [user_a]  # once
            assert ab._http.tokens != refused
            assert ab._http.claims is not None and ab._http.claims.user_id == user_a

    run(scenario())


def test_a_refused_request_is_sent_again_after_a_plain_refresh(server):
    entity = f"resend_{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        async with Client(server.url) as ab:
            email_a, user_a = await _account(ab)
            await _refused_as(ab, email_a)
            created = await ab.data(entity).create({"by": "A"})
            assert created["data"]["userId"] == user_a
            assert _owners(server, entity) == [user_a]

    run(scenario())


def test_a_queued_write_refused_with_401_waits_for_its_user(server):
    """A's write in the outbox meets a 401; B signs in before the refresh: the write is
    neither sent as B nor dropped, and lands as A once A is back."""
    row = f"w-{uuid.uuid4().hex[:8]}"
    entity = f"resend_{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        storage = HookedStorage()
        # Long backoffs: the outbox retries only when kicked (a sign-in, a flush).
        async with Client(
            server.url, token_storage=storage, reconnect_base=5, reconnect_max=5
        ) as ab:
            email_b, user_b = await _account(ab)
            email_a, user_a = await _account(ab)
            await _refused_as(ab, email_a)
            _hook(ab, storage, "before_refresh", lambda: ab.auth.sign_in(email_b, PASSWORD))
            op = {"entity": entity, "id": row, "op": "set", "data": {"by": "A"}}
            write = asyncio.ensure_future(ab.mutate([op]))
            await eventually(lambda: ab.outbox.pending == 1, what="queued")
            assert await ab.outbox.flush() == 1  # refused, and not sent again as B
            assert ab._http.claims is not None and ab._http.claims.user_id == user_b
            assert await ab.outbox.flush() == 1 and not write.done()  # held for A
            assert _owners(server, entity) == []
            await ab.auth.sign_in(email_a, PASSWORD)
            outcome = await asyncio.wait_for(write, 20)
            assert outcome["results"][0]["status"] == "created"
            assert _owners(server, entity) == [user_a]

    run(scenario())
