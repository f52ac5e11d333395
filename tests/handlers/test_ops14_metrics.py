"""/metrics (issue 14, item 5) on both backends, read with prometheus_client's parser:
names and labels after Prometheus' conventions (every family typed and documented,
counters in `_total`, durations in seconds, snake_case names and labels, no
high-cardinality label values); README's Monitoring table names exactly the families
exported; session revocations counted by why."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.handlers.accounts import PASSWORD, signin, signup
from tests.handlers.test_ops_metrics import scrape, value

README = Path(__file__).resolve().parents[2] / "README.md"
NAME = re.compile(r"[a-z_][a-z0-9_]*")
UNITS = ("_seconds_count", "_bytes", "_total", "_info")
BOUNDED_LABELS = {
    "route": None,  # checked against the route classes by test_ops_metrics
    "method": {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"},
    "code": None,
    "transport": {"websocket", "sse"},
    "reason": {"slow_consumer", "revoked", "auth", "shutdown", "other"},
    "op": {"read", "write"},
    "backend": {"sqlite", "postgresql"},
    "version": None,
}


def families(admin) -> dict:
    response = admin.get("/metrics")
    assert response.status_code == 200, response.text
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def readme_metrics() -> set[str]:
    text = README.read_text()
    table = text[text.index("| Metric | Type | Labels | Meaning |") :]
    table = table[: table.index("\n\n")]
    names = set()
    for row in table.splitlines()[2:]:
        names |= set(re.findall(r"`(actorbase_[a-z_]+)`", row.split("|")[1]))
    return names


def test_names_and_labels_follow_prometheus_conventions(server, admin, anon):
    signup(anon)
    admin.get("/api/data/conventions")
    missing = {"entity": "conv", "id": "nowhere", "op": "delete"}
    assert admin.post("/api/mutate", json={"ops": [missing]}).status_code == 404
    found = families(admin)
    ours = {name: f for name, f in found.items() if name.startswith("actorbase_")}
    assert ours
    for name, family in found.items():
        assert NAME.fullmatch(name), name
        assert family.documentation.strip(), f"{name} has no HELP"
        assert family.type in ("counter", "gauge", "histogram", "info", "unknown"), name
        if name.endswith("_created"):  # the client library's own start times
            continue
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples), name
        if name in ours and family.type == "gauge":
            assert not name.endswith("_total"), name
        if name in ours and family.type == "histogram" and "duration" in name:
            assert name.endswith("_seconds"), name
        for sample in family.samples:
            for label, given in sample.labels.items():
                assert NAME.fullmatch(label) and not label.startswith("__"), (name, label)
                if name in ours and label != "le":
                    allowed = BOUNDED_LABELS.get(label, set())
                    assert allowed is None or given in allowed, (name, label, given)
    # A few series an operator greps for, with their unit suffix.
    series = {s.name for f in ours.values() for s in f.samples}
    assert {n for n in series if n.endswith(UNITS)} >= {
        "actorbase_http_requests_total",
        "actorbase_http_request_duration_seconds_count",
        "actorbase_mutations_failed_total",
        "actorbase_build_info",
    }


def test_the_readme_table_names_every_family_exported(admin):
    exported = {
        name.removesuffix("_total")
        for name in families(admin)
        if name.startswith("actorbase_") and not name.endswith("_created")
    }
    documented = {name.removesuffix("_total") for name in readme_metrics()}
    assert exported == documented


def test_session_revocations_are_counted_by_why(admin, anon):
    """`actorbase_sessions_revoked_total{reason}` moves by exactly the sessions each
    kind of revocation ended on this process."""
    before = scrape(admin)
    # signout: one session
    signout = signup(anon)
    assert signout.api.post("/api/auth/signout").status_code == 204
    # reuse: a spent refresh token again ends its session
    reused = signup(anon)
    assert anon.post("/api/auth/refresh", json={"refreshToken": reused.refresh}).status_code == 200
    assert anon.post("/api/auth/refresh", json={"refreshToken": reused.refresh}).status_code == 401
    # session: a user ends one of their other sessions
    owner = signup(anon)
    other = signin(anon, owner.email)
    sessions = owner.api.get("/api/auth/sessions").json()["sessions"]
    (other_id,) = [s["id"] for s in sessions if not s["current"]]
    assert owner.api.delete(f"/api/auth/sessions/{other_id}").status_code == 204
    assert other["refreshToken"]
    # password: a change ends the user's two other sessions
    changer = signup(anon)
    signin(anon, changer.email)
    signin(anon, changer.email)
    changed = changer.api.post(
        "/api/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": "another horse battery"},
    )
    assert changed.status_code in (200, 204), changed.text
    # admin: revoke all three sessions of a user, then lock another (two sessions)
    target = signup(anon)
    signin(anon, target.email)
    signin(anon, target.email)
    revoked = admin.delete(f"/api/admin/users/{target.id}/sessions")
    assert revoked.json() == {"revoked": 3}
    locked = signup(anon)
    signin(anon, locked.email)
    assert admin.patch(f"/api/admin/users/{locked.id}", json={"locked": True}).status_code == 200
    after = scrape(admin)
    expected = {"signout": 1, "reuse": 1, "session": 1, "password": 2, "admin": 3, "locked": 2}
    for reason, count in expected.items():
        moved = value(after, "actorbase_sessions_revoked_total", reason=reason) - value(
            before, "actorbase_sessions_revoked_total", reason=reason
        )
        assert moved == count, reason
