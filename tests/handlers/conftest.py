"""Fixtures the storage suites share: moto's S3 server and the storage backend axis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.s3server import S3Server


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[S3Server]:
    """moto's standalone S3 server, a separate process spoken to over HTTP."""
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=("local", "s3"))
def storage(request) -> str:
    return request.param
