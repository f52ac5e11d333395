"""A secret generated into DATA_DIR (the admin token) by processes starting together
on one host (honcho's web=2): one value, never a half-written file."""

from __future__ import annotations

import threading

from config.secrets import load_or_create


def test_a_secret_still_being_made_is_never_read_half_written(tmp_path):
    path = tmp_path / "admin_token"
    first_is_making, first_may_finish = threading.Event(), threading.Event()
    got: dict[str, str] = {}

    def slow() -> str:
        first_is_making.set()
        first_may_finish.wait(30)
        return "first"

    first = threading.Thread(target=lambda: got.update(first=load_or_create(path, slow)[0]))
    first.start()
    assert first_is_making.wait(30)
    # The second process starts while the first one is still making its secret.
    got["second"] = load_or_create(path, lambda: "second")[0]
    first_may_finish.set()
    first.join(30)
    assert got["first"] == got["second"] != ""
    assert path.read_text().strip() == got["first"]
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["admin_token"]
