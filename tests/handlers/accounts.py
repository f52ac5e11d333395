"""Helpers for the account tests: fresh users over the real HTTP API."""

from __future__ import annotations

import dataclasses
import uuid

from tests.serverproc import Api

PASSWORD = "correct horse battery"


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


@dataclasses.dataclass
class Account:
    """A signed-up user: their email, id, tokens, and a client using the access token."""

    email: str
    id: str
    access: str
    refresh: str
    api: Api


def signup(anon: Api, email: str | None = None, password: str = PASSWORD, **kw) -> Account:
    email = email or new_email()
    response = anon.post("/api/auth/signup", json={"email": email, "password": password}, **kw)
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(
        email,
        body["user"]["id"],
        body["accessToken"],
        body["refreshToken"],
        anon.with_token(body["accessToken"]),
    )


def signin(anon: Api, email: str, password: str = PASSWORD, **kw) -> dict:
    response = anon.post("/api/auth/signin", json={"email": email, "password": password}, **kw)
    assert response.status_code == 200, response.text
    return response.json()


def granted(admin: Api, account: Account, **fields) -> Account:
    """`account` after the admin set its role and/or claims, with refreshed tokens that
    carry them."""
    assert admin.patch(f"/api/admin/users/{account.id}", json=fields).status_code == 200
    r = Api(admin.base).post("/api/auth/refresh", json={"refreshToken": account.refresh})
    assert r.status_code == 200, r.text
    body = r.json()
    access = body["accessToken"]
    return Account(account.email, account.id, access, body["refreshToken"], Api(admin.base, access))
