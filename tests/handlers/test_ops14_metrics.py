"""/metrics names and labels after Prometheus' conventions (issue 14, item 5), checked on
a live scrape on both backends with prometheus_client's parser: every family typed and
documented, counters in `_total`, durations in seconds, snake_case names and labels,
no high-cardinality label values; and README's Monitoring table names exactly the
families actorbase exports."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.handlers.accounts import signup

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
            for label, value in sample.labels.items():
                assert NAME.fullmatch(label) and not label.startswith("__"), (name, label)
                if name in ours and label != "le":
                    allowed = BOUNDED_LABELS.get(label, set())
                    assert allowed is None or value in allowed, (name, label, value)
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
