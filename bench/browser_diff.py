"""The JS client in headless Chromium: applying a diff to a large live result, and what
a reconnect after a server restart costs on the wire.

1. `applyDiff` (the client's diff-apply function) on a 10,000-row result kept in
   `$order`, taking a 1,000-row diff, timed with performance.now() over --runs runs
   (after warm-up; each run starts from the same 10,000 rows, which it does not change).
   Two diffs: "toggle" (200 removed, 200 added anywhere in the order, 600 updated in a
   field the order does not read) under `{createdAt: asc}`, and "reorder" (1,000 rows
   updated in the field the order reads, so all of them move) under `{priority: asc}`.
   Target (issue 16): ≤ 20 ms.
2. examples/web/ signed in with a live result of --rows todos (1,000 by default, the
   most one query holds: `$limit` ≤ 1,000; part 1's 10,000 rows are made in the
   page); the page's link to the
   server is cut, the server restarted on its port and data, one todo changed, the
   link restored: the frames the page's WebSocket received from then on are counted
   (one `q-diff` when resumed from the last tx; a `q-init` would resend every row).

    python -m bench.browser_diff [--runs 50] [--rows 1000] [--database-url …]
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.serverproc import Api, ServerProcess
from tests.webpage import ROOT, PageHost, chrome

PASSWORD = "correct horse battery"

APPLY = (Path(__file__).parent / "browser_diff.js").read_text()


def apply_diff(host: PageHost, runs: int, profile: Path) -> dict[str, Any]:
    driver = chrome(profile)
    try:
        driver.set_script_timeout(120)
        driver.get(host.url + "/")
        return driver.execute_async_script(APPLY, runs)
    finally:
        driver.quit()


def seed(api: Api, rows: int) -> None:
    for start in range(0, rows, 1000):
        ops = [
            {
                "entity": "todos",
                "id": f"seed-{i:06d}",
                "op": "set",
                "data": {"title": f"todo {i}", "done": False},
            }
            for i in range(start, min(rows, start + 1000))
        ]
        r = api.post("/api/mutate", json={"ops": ops})
        assert r.status_code == 200, r.text


def wait(predicate: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {what}")
        time.sleep(0.05)


def resume(host: PageHost, rows: int, database_url: str | None, tmp: Path) -> dict[str, Any]:
    data_dir = tmp / "server"
    server = ServerProcess(
        data_dir,
        database_url or f"sqlite:///{data_dir / 'actorbase.db'}",
        APP=str(ROOT / "examples" / "todos.py"),
        CORS_ORIGINS=host.url,
    ).start()
    link = host.link(server.port)
    driver = chrome(tmp / "profile-resume")
    try:
        email = f"bench-{secrets.token_hex(4)}@example.com"
        r = Api(server.url).post("/api/auth/signup", json={"email": email, "password": PASSWORD})
        api = Api(server.url, r.json()["accessToken"])
        seed(api, rows)
        driver.get(f"{host.url}/examples/web/?server={link.url}")
        wait(lambda: driver.execute_script("return Boolean(window.__todo_debug)"), "page")
        driver.execute_script(
            "document.getElementById('auth-email').value = arguments[0];"
            "document.getElementById('auth-password').value = arguments[1];"
            "document.getElementById('signin').click();",
            email,
            PASSWORD,
        )
        count = "return __todo_debug.rows().length"
        wait(lambda: driver.execute_script(count) == rows, "the live result")
        init = [f for f in driver.execute_script("return __frames") if f["type"] == "q-init"]

        link.cut()
        server.stop()
        server.start()
        r = api.patch("/api/data/todos/seed-000000", json={"done": True})
        assert r.status_code == 200, r.text
        before = len(driver.execute_script("return __frames"))
        t0 = time.monotonic()
        link.restore()
        shown = "return __todo_debug.rows().find((r) => r.id === 'seed-000000')?.done === true"
        wait(lambda: driver.execute_script(shown), "the change after the restart")
        took = time.monotonic() - t0
        time.sleep(1)  # anything else the resume sends arrives within this
        after = driver.execute_script("return __frames")[before:]
        return {"init_bytes": init[0]["bytes"], "after": after, "seconds": took}
    finally:
        driver.quit()
        link.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rows", type=int, default=1000, help="live rows (1,000: $limit's most)")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print(f"{platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    host = PageHost()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            applied = apply_diff(host, args.runs, Path(tmp) / "profile-diff")
            if "error" in applied:
                raise SystemExit(applied["error"])
            print(f"applyDiff from {applied['source']}, {args.runs} runs, 10,000 rows:")
            for name in ("toggle", "reorder"):
                case = applied[name]
                times = case["times"]
                print(
                    f"  {name}: 1,000-row diff p50 {statistics.median(times):.2f} ms,"
                    f" p90 {statistics.quantiles(times, n=10)[-1]:.2f} ms,"
                    f" max {max(times):.2f} ms (result {case['rows']} rows,"
                    f" in order: {case['sorted']})"
                )
            res = resume(host, args.rows, args.database_url, Path(tmp))
            kinds = [f["type"] for f in res["after"] if f["type"] in ("q-init", "q-diff")]
            print(
                f"resume after restart, {args.rows} live rows, 1 changed: frames"
                f" {[(f['type'], f['rows'], f['bytes']) for f in res['after']]};"
                f" q-init {kinds.count('q-init')}, q-diff {kinds.count('q-diff')};"
                f" the first q-init was {res['init_bytes']:,} bytes;"
                f" change shown {res['seconds']:.2f} s after the link came back"
            )
    finally:
        host.close()


if __name__ == "__main__":
    main()
