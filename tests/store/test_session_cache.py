"""store.session_cache in isolation: the rules no server test can time (a database
read racing a revocation, the bounds). A plain data structure: nothing is mocked."""

from __future__ import annotations

import time

from store.principal import Principal
from store.session_cache import SessionCache


def _principal(user: str = "u1", session: str = "s1", ttl: float = 60) -> Principal:
    return Principal(user_id=user, session_id=session, expires_at=time.time() + ttl)


def test_a_token_is_served_until_its_exp_and_not_after():
    cache = SessionCache()
    live, dead = _principal(ttl=60), _principal(ttl=-0.001)
    cache.verified("live-token", live)
    cache.verified("dead-token", dead)
    assert cache.principal("live-token") is live
    assert cache.principal("dead-token") is None
    assert cache.principal("unknown") is None


def test_tokens_and_sessions_are_bounded_least_recently_used_first():
    cache = SessionCache(max_tokens=2, max_sessions=2)
    for name in ("a", "b"):
        cache.verified(name, _principal())
    cache.principal("a")  # now b is the least recently used
    cache.verified("c", _principal())
    assert cache.principal("b") is None
    assert cache.principal("a") is not None and cache.principal("c") is not None
    far = int(time.time() * 1000) + 60_000
    for session in ("s1", "s2", "s3"):
        cache.confirm(session, "u1", far, cache.epoch)
    now = int(time.time() * 1000)
    assert cache.live("s1", "u1", now) is None  # dropped: ask the database again
    assert cache.live("s3", "u1", now) is True


def test_an_unknown_session_is_asked_of_the_database_then_held():
    cache = SessionCache()
    now = int(time.time() * 1000)
    assert cache.live("s1", "u1", now) is None
    cache.confirm("s1", "u1", now + 60_000, cache.epoch)
    assert cache.live("s1", "u1", now) is True
    assert cache.live("s1", "u1", now + 60_000) is None  # past the session's expiry


def test_an_ended_session_never_comes_back():
    cache = SessionCache()
    now = int(time.time() * 1000)
    seen: list[set[str]] = []
    cache.on_end(seen.append)
    cache.confirm("s1", "u1", now + 60_000, cache.epoch)
    cache.end(["s1"])
    assert seen == [{"s1"}]
    assert cache.live("s1", "u1", now) is False
    cache.confirm("s1", "u1", now + 60_000, cache.epoch)  # a stale "live" answer
    assert cache.live("s1", "u1", now) is False


def test_a_read_begun_before_a_revocation_is_not_cached():
    cache = SessionCache()
    now = int(time.time() * 1000)
    epoch = cache.epoch  # the database read starts
    cache.end(["s2"])  # some session ends meanwhile (this one, for all we know)
    cache.confirm("s1", "u1", now + 60_000, epoch)  # the read answers "live"
    assert cache.live("s1", "u1", now) is None  # not held: the next request asks again


def test_a_session_the_database_says_ended_is_remembered():
    cache = SessionCache()
    cache.confirm("s1", "u1", None, cache.epoch)
    assert cache.live("s1", "u1", int(time.time() * 1000)) is False
