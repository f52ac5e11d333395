"""/api/admin/users: listing with paging, roles and claims; over real HTTP on both backends."""

from __future__ import annotations

import jwt
import pytest

from tests.handlers.accounts import signup
from tests.serverproc import error_of


def test_list_users_pages(admin, anon):
    for _ in range(3):
        signup(anon)
    total = admin.get("/api/admin/users?limit=1").json()["total"]
    assert total >= 3
    first = admin.get("/api/admin/users?limit=2&offset=0")
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"users", "total", "hasMore"}
    assert len(body["users"]) == 2 and body["hasMore"] is True
    for user in body["users"]:
        assert set(user) == {
            "id",
            "email",
            "role",
            "claims",
            "mfaEnabled",
            "createdAt",
            "locked",
            "lockedAt",
            "lockedUntil",
        }
    last = admin.get(f"/api/admin/users?limit=2&offset={total - 1}").json()
    assert len(last["users"]) == 1 and last["hasMore"] is False
    ids = {u["id"] for u in admin.get("/api/admin/users?limit=1000").json()["users"]}
    assert len(ids) == total


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "offset=-1", "limit=²"])
def test_list_users_bad_paging_is_400(admin, query):
    response = admin.get(f"/api/admin/users?{query}")
    assert response.status_code == 400
    assert error_of(response)["code"] == "INVALID_ARGUMENT"


def test_role_and_claims_appear_in_the_next_token(admin, anon):
    account = signup(anon)
    claims = {"plan": "pro", "organizationId": "org_xyz"}
    patched = admin.patch(
        f"/api/admin/users/{account.id}", json={"role": "editor", "claims": claims}
    )
    assert patched.status_code == 200
    assert patched.json()["role"] == "editor" and patched.json()["claims"] == claims
    me = account.api.get("/api/auth/me").json()
    assert me["role"] == "editor" and me["claims"] == claims
    refreshed = anon.post("/api/auth/refresh", json={"refreshToken": account.refresh}).json()
    payload = jwt.decode(refreshed["accessToken"], options={"verify_signature": False})
    assert payload["role"] == "editor" and payload["claims"] == claims


def test_admin_endpoints_refuse_users_and_anonymous(anon):
    account = signup(anon)
    for method, path in [("GET", "/api/admin/users"), ("PATCH", f"/api/admin/users/{account.id}")]:
        kwargs = {"json": {"role": "admin"}} if method == "PATCH" else {}
        none = anon.request(method, path, **kwargs)
        assert none.status_code == 401
        assert error_of(none)["code"] == "UNAUTHENTICATED"
        user = account.api.request(method, path, **kwargs)
        assert user.status_code == 403
        assert error_of(user)["code"] == "PERMISSION_DENIED"
    assert account.api.get("/api/auth/me").json()["role"] == "user"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"role": 5},
        {"role": ""},
        {"role": "has space"},
        {"claims": []},
        {"claims": "x"},
        {"x": 1},
    ],
)
def test_patch_bad_input_is_400(admin, anon, body):
    account = signup(anon)
    response = admin.patch(f"/api/admin/users/{account.id}", json=body)
    assert response.status_code == 400
    assert error_of(response)["code"] == "INVALID_ARGUMENT"


def test_patch_unknown_user_is_404(admin):
    response = admin.patch("/api/admin/users/usr_nobody", json={"role": "editor"})
    assert response.status_code == 404
    assert error_of(response)["code"] == "NOT_FOUND"
