"""Presence rooms in PostgreSQL, shared by every process on the database.

`ab_presence` holds every room's peers, each tagged with the process (node) that
holds its socket; `ab_nodes` each process's last heartbeat. A change locks its room's
row in `ab_presence_rooms`, takes a number from `ab_presence_seq` and NOTIFYs channel
`ab_presence` in the same transaction, so a room's changes are numbered in commit
order and every listener hears them in that order. A change is an entry
`[seq, room, event, peer, userId?, data?]` (a join carries the user and data, an update
the data, a leave neither); several go in one payload, never over PAYLOAD_MAX bytes;
an entry too large for one goes to `ab_presence_log` and the payload carries
`[seq, room, "ref"]`. Rooms are locked in name order, so two writers never deadlock.

These functions run on the presence threads (store.presence_link) with their own
connections, `%s` placeholders; `room_peers` and `load_room` on the read pool.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg
import ujson

from store.base import Txn

CHANNEL = "ab_presence"

PAYLOAD_MAX = 7900
"""Bytes of one NOTIFY payload at most (PostgreSQL refuses 8000 and more)."""

NOW_MS = "(extract(epoch from clock_timestamp()) * 1000)::bigint"
"""The database's clock: heartbeats and their bound never compare two machines' clocks."""

LOG_KEEP_MS = 60_000
"""How long a change sent by reference stays readable."""

EMPTY_ROOM_KEEP_MS = 3_600_000
"""How long an empty room's row stays before it is swept."""

Entry = list[Any]
"""`[seq, room, event, peer, ...]` as heard on the channel."""


@dataclasses.dataclass(slots=True)
class Op:
    """One peer's change as a process asks for it. `accepted` is set by `write` for
    an enter: False if the room was full."""

    kind: str  # enter | update | leave
    room: str
    peer: str
    user_id: str | None = None
    data: Any = None
    accepted: bool = True


def dumps(value: Any) -> str:
    return ujson.dumps(value, ensure_ascii=False, escape_forward_slashes=False)


def register(conn: psycopg.Connection[Any], node: str) -> None:
    """Start as `node`: the peers of an earlier process of the same name (it is gone:
    names carry the pid) leave, announced, and the node's row is fresh."""
    with conn.transaction():
        entries = _remove_node(conn, node)
        _insert_node(conn, node)
        _notify(conn, entries)


def unregister(conn: psycopg.Connection[Any], node: str) -> None:
    """Stop as `node`: its peers leave every room now, announced."""
    with conn.transaction():
        _notify(conn, _remove_node(conn, node))


def heartbeat(
    conn: psycopg.Connection[Any], node: str, figures: str, timeout_ms: int
) -> tuple[bool, int, list[str]]:
    """Beat and reap, in one transaction: (whether the node's row was still there, how
    many nodes are live after the reaping, the nodes removed). A missing row means
    another node took this one for dead and removed its peers."""
    with conn.transaction():
        kept = _beat(conn, node, figures)
        dead = _reap(conn, node, timeout_ms)
        row = conn.execute(
            f"SELECT count(*) FROM ab_nodes WHERE heartbeat_at >= {NOW_MS} - %s", (timeout_ms,)
        ).fetchone()
    return kept, int(row[0]) if row else 1, dead


def _beat(conn: psycopg.Connection[Any], node: str, figures: str | None = None) -> bool:
    """Refresh the node's row, or put it back; whether it was there."""
    if figures is None:
        cur = conn.execute(f"UPDATE ab_nodes SET heartbeat_at = {NOW_MS} WHERE node = %s", (node,))
    else:
        cur = conn.execute(
            f"UPDATE ab_nodes SET heartbeat_at = {NOW_MS}, figures = %s WHERE node = %s",
            (figures, node),
        )
    if cur.rowcount:
        return True
    _insert_node(conn, node)
    return False


def _insert_node(conn: psycopg.Connection[Any], node: str) -> None:
    conn.execute(
        f"INSERT INTO ab_nodes (node, started_at, heartbeat_at) VALUES (%s, {NOW_MS}, {NOW_MS})",
        (node,),
    )


def _reap(conn: psycopg.Connection[Any], node: str, timeout_ms: int) -> list[str]:
    """Remove the nodes without a heartbeat for `timeout_ms`, their peers leaving every
    room (announced); the names of the nodes removed. Any live node may run it: a dead
    node's row is taken by one of them (SKIP LOCKED), and one that beats meanwhile is
    not taken (the bound is checked again on the locked row)."""
    dead = [
        r[0]
        for r in conn.execute(
            f"SELECT node FROM ab_nodes WHERE heartbeat_at < {NOW_MS} - %s AND node <> %s "
            "ORDER BY node FOR UPDATE SKIP LOCKED",
            (timeout_ms, node),
        ).fetchall()
    ]
    if dead:
        _notify(conn, _remove_node(conn, *dead))
    return dead


def _remove_node(conn: psycopg.Connection[Any], *nodes: str) -> list[Entry]:
    """Every peer of `nodes` leaves (rooms locked in name order, as writers do)."""
    names = list(nodes)
    rooms = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT room FROM ab_presence WHERE node = ANY(%s) ORDER BY room", (names,)
        ).fetchall()
    ]
    entries: list[Entry] = []
    for room in rooms:
        _lock_room(conn, room)
        rows = conn.execute(
            "DELETE FROM ab_presence WHERE room = %s AND node = ANY(%s) "
            "RETURNING nextval('ab_presence_seq'), peer",
            (room, names),
        ).fetchall()
        rows.sort()
        entries += [[int(seq), room, "leave", peer] for seq, peer in rows]
        if rows:
            _set_room_seq(conn, room, int(rows[-1][0]))
    conn.execute("DELETE FROM ab_nodes WHERE node = ANY(%s)", (names,))
    return entries


def write(conn: psycopg.Connection[Any], node: str, ops: list[Op], max_peers: int) -> bool:
    """Apply `ops` in one transaction, each room's in order, and announce them; an
    enter into a full room is refused (`accepted` False) and changes nothing. Returns
    whether the node's row was still there (False: it was put back, and the caller
    enters its peers again, as others saw them leave)."""
    by_room: dict[str, list[Op]] = {}
    for op in ops:
        by_room.setdefault(op.room, []).append(op)
    entries: list[Entry] = []
    with conn.transaction():
        kept = _beat(conn, node)
        for room in sorted(by_room):
            entries += _write_room(conn, node, room, by_room[room], max_peers)
        _notify(conn, entries)
    return kept


def _write_room(
    conn: psycopg.Connection[Any], node: str, room: str, ops: list[Op], max_peers: int
) -> list[Entry]:
    _lock_room(conn, room)
    count: int | None = None
    entries: list[Entry] = []
    for op in ops:
        if op.kind == "leave":
            row = conn.execute(
                "DELETE FROM ab_presence WHERE room = %s AND peer = %s "
                "RETURNING nextval('ab_presence_seq')",
                (room, op.peer),
            ).fetchone()
            if row is not None:
                entries.append([int(row[0]), room, "leave", op.peer])
                if count is not None:
                    count -= 1
            continue
        data = dumps(op.data)
        row = conn.execute(
            "UPDATE ab_presence SET data = %s, seq = nextval('ab_presence_seq'), node = %s "
            "WHERE room = %s AND peer = %s RETURNING seq",
            (data, node, room, op.peer),
        ).fetchone()
        if row is not None:
            entries.append([int(row[0]), room, "update", op.peer, op.data])
            continue
        if op.kind != "enter":
            continue  # an update of a peer that left meanwhile
        if count is None:
            cur = conn.execute("SELECT count(*) FROM ab_presence WHERE room = %s", (room,))
            count = int(cur.fetchone()[0])
        if count >= max_peers:
            op.accepted = False
            continue
        row = conn.execute(
            "INSERT INTO ab_presence (room, peer, node, user_id, data, joined, seq) "
            "SELECT %s, %s, %s, %s, %s, s.v, s.v FROM (SELECT nextval('ab_presence_seq') AS v) s "
            "RETURNING seq",
            (room, op.peer, node, op.user_id, data),
        ).fetchone()
        count += 1
        entries.append([int(row[0]), room, "join", op.peer, op.user_id, op.data])
    if entries:
        _set_room_seq(conn, room, max(e[0] for e in entries))
    return entries


def _lock_room(conn: psycopg.Connection[Any], room: str) -> None:
    """Hold the room's row until COMMIT: its changes take their numbers one at a time."""
    conn.execute(
        f"INSERT INTO ab_presence_rooms (room, seq, updated_at) VALUES (%s, 0, {NOW_MS}) "
        "ON CONFLICT (room) DO UPDATE SET updated_at = EXCLUDED.updated_at",
        (room,),
    )


def _set_room_seq(conn: psycopg.Connection[Any], room: str, seq: int) -> None:
    conn.execute("UPDATE ab_presence_rooms SET seq = %s WHERE room = %s", (seq, room))


def _notify(conn: psycopg.Connection[Any], entries: list[Entry]) -> None:
    for payload in _payloads(conn, entries):
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))


def _payloads(conn: psycopg.Connection[Any], entries: Iterable[Entry]) -> Iterator[str]:
    """The entries packed into payloads of at most PAYLOAD_MAX bytes, in order; an entry
    that cannot fit in one alone is logged and sent as a reference."""
    parts: list[str] = []
    size = 2  # the brackets
    for entry in entries:
        text = dumps(entry)
        length = len(text.encode())
        if length + 2 > PAYLOAD_MAX:
            conn.execute(
                f"INSERT INTO ab_presence_log (seq, entry, at) VALUES (%s, %s, {NOW_MS})",
                (entry[0], text),
            )
            text = dumps([entry[0], entry[1], "ref"])
            length = len(text.encode())
        if parts and size + 1 + length > PAYLOAD_MAX:
            yield "[" + ",".join(parts) + "]"
            parts, size = [], 2
        parts.append(text)
        size += length + (1 if len(parts) > 1 else 0)
    if parts:
        yield "[" + ",".join(parts) + "]"


def logged(conn: psycopg.Connection[Any], seqs: list[int]) -> dict[int, Entry]:
    """The entries sent by reference, by seq (one swept meanwhile is missing)."""
    rows = conn.execute(
        "SELECT seq, entry FROM ab_presence_log WHERE seq = ANY(%s)", (seqs,)
    ).fetchall()
    return {int(seq): ujson.loads(entry) for seq, entry in rows}


def sweep(conn: psycopg.Connection[Any]) -> None:
    """Drop logged entries past LOG_KEEP_MS and rooms empty for EMPTY_ROOM_KEEP_MS."""
    with conn.transaction():
        conn.execute(f"DELETE FROM ab_presence_log WHERE at < {NOW_MS} - %s", (LOG_KEEP_MS,))
        conn.execute(
            f"DELETE FROM ab_presence_rooms r WHERE updated_at < {NOW_MS} - %s "
            "AND NOT EXISTS (SELECT 1 FROM ab_presence p WHERE p.room = r.room)",
            (EMPTY_ROOM_KEEP_MS,),
        )


def load_room(txn: Txn, room: str) -> tuple[int, list[dict[str, Any]]]:
    """The room's last change number and its peers `[{id, userId, data}]` in the order
    they joined, from one snapshot (one statement): every change numbered up to it is
    in them, none after it."""
    rows = txn.execute(
        "SELECT r.seq, p.peer, p.user_id, p.data FROM ab_presence_rooms r "
        "LEFT JOIN ab_presence p ON p.room = r.room WHERE r.room = ? ORDER BY p.joined",
        (room,),
    ).fetchall()
    seq = int(rows[0][0]) if rows else 0
    peers = [
        {"id": peer, "userId": user_id, "data": ujson.loads(data)}
        for _, peer, user_id, data in rows
        if peer is not None
    ]
    return seq, peers


def room_peers(txn: Txn, room: str) -> list[dict[str, Any]]:
    """Every process's peers of `room`, in the order they joined."""
    return load_room(txn, room)[1]


def room_census(txn: Txn, limit: int) -> dict[str, int]:
    """Room name → peers on every process, the first `limit` rooms by name."""
    rows = txn.execute(
        "SELECT room, count(*) FROM ab_presence GROUP BY room ORDER BY room LIMIT ?", (limit,)
    ).fetchall()
    return {room: int(n) for room, n in rows}


def room_count(txn: Txn) -> int:
    """Rooms with a peer on any process."""
    return int(txn.execute("SELECT count(DISTINCT room) FROM ab_presence").fetchone()[0])


def live_nodes(txn: Txn, timeout_ms: int) -> list[dict[str, Any]]:
    """The nodes with a heartbeat within `timeout_ms`, each with the figures it sent:
    `[{node, startedAt, heartbeatAt, ...figures}]`."""
    rows = txn.execute(
        f"SELECT node, started_at, heartbeat_at, figures FROM ab_nodes "
        f"WHERE heartbeat_at >= {NOW_MS} - ? ORDER BY node",
        (timeout_ms,),
    ).fetchall()
    return [
        {"node": n, "startedAt": int(s), "heartbeatAt": int(h), **ujson.loads(f)}
        for n, s, h, f in rows
    ]
