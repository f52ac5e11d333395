"""Property-based API testing with schemathesis against /api/openapi.json: generated
requests, with the admin token and with a user's token, must never get a 500 and every
response must conform to the document (status, content type, body schema, headers).

Bounded: MAX_EXAMPLES per operation and token (SCHEMATHESIS_EXAMPLES raises it for a
deeper run; 120 found nothing on 2026-11-27). Two operations are left out because a
plain HTTP client cannot exercise them: /ws (a WebSocket upgrade) and /api/subscribe
(an event stream that stays open); their own suites cover them.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.handlers.accounts import signup
from tests.serverproc import ADMIN_TOKEN, Api

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def fuzzed(make_module_server, backend):
    return make_module_server(backend)


@pytest.fixture(scope="module")
def api_schema(fuzzed):
    schema = schemathesis.openapi.from_url(fuzzed.url + "/api/openapi.json")
    return schema.exclude(path="/ws").exclude(path="/api/subscribe")


@pytest.fixture(scope="module")
def user_tokens() -> dict[str, str]:
    """A fresh user per operation, made on first use: one operation may sign out."""
    return {}


schema = schemathesis.pytest.from_fixture("api_schema")
_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


# Framing headers belong to the HTTP client: a generated `Content-Length: u/Q3xi` is
# refused by Tornado's HTTP/1 parser with a bare 400 before any handler sees a request.
_FRAMING = {"content-length", "transfer-encoding", "connection", "host"}


def _check(case, base_url: str, token: str) -> None:
    for name in [n for n in case.headers or {} if n.lower() in _FRAMING]:
        del case.headers[name]
    case.call_and_validate(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
    )


@schema.parametrize()
@_SETTINGS
def test_as_admin(case, fuzzed):
    _check(case, fuzzed.url, ADMIN_TOKEN)


@schema.parametrize()
@_SETTINGS
def test_as_user(case, fuzzed, user_tokens):
    label = case.operation.label
    if label not in user_tokens:
        user_tokens[label] = signup(Api(fuzzed.url)).access
    _check(case, fuzzed.url, user_tokens[label])
