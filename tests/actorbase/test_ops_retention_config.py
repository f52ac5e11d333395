"""TX_RETENTION's syntax: a duration and/or a count, validated at start (one line)."""

from __future__ import annotations

import pytest

from config.retention import TxRetention
from config.settings import ConfigError, load
from tests.actorbase.test_deploy_failures import one_line, run
from tests.serverproc import ServerProcess


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("7d", TxRetention(7 * 86_400_000, None)),
        ("90s", TxRetention(90_000, None)),
        ("30m,500", TxRetention(1_800_000, 500)),
        ("1000000, 12h", TxRetention(43_200_000, 1_000_000)),
        ("5", TxRetention(None, 5)),
    ],
)
def test_durations_and_counts(raw, expected):
    assert load({"TX_RETENTION": raw}).tx_retention == expected


def test_the_default_keeps_a_week_and_a_million_commits():
    assert load({}).tx_retention == TxRetention(7 * 86_400_000, 1_000_000)


@pytest.mark.parametrize("raw", ["", "0", "-3", "7w", "1.5d", "7d,8d", "5,6", "7d,"])
def test_bad_values_name_the_setting(raw):
    with pytest.raises(ConfigError, match=r"^TX_RETENTION: must be a duration"):
        load({"TX_RETENTION": raw})


def test_a_bad_value_stops_the_server_with_one_line(tmp_path):
    server = ServerProcess(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    line = one_line(run(server, "serve", TX_RETENTION="a week"))
    assert "TX_RETENTION: must be a duration" in line
