"""The RADIUS duplicate cache: in progress, answered, expired, bounded (clock injected)."""

from __future__ import annotations

from ocsd.radius_server import ReplyCache
from protocols.radius.packet import RetransmissionKey


def _key(n: int) -> RetransmissionKey:
    return ("192.0.2.1", 40000 + n, 4, n % 256, n.to_bytes(16, "big"))


def test_in_progress_then_answered_then_expired() -> None:
    cache = ReplyCache(ttl_s=30.0, size=10)
    assert cache.get(_key(1), 100.0) is None
    cache.start(_key(1), 100.0)
    assert cache.get(_key(1), 100.5) == (130.0, None)  # a retransmission while in progress
    cache.answer(_key(1), b"reply", 101.0)
    assert cache.get(_key(1), 130.5) == (131.0, b"reply")  # lives ttl_s from the answer
    assert cache.get(_key(1), 131.0) is None
    assert cache.get(_key(2), 101.0) is None


def test_a_request_not_answered_is_forgotten() -> None:
    cache = ReplyCache(ttl_s=30.0, size=10)
    cache.start(_key(1), 100.0)
    cache.discard(_key(1))
    assert cache.get(_key(1), 100.0) is None
    cache.discard(_key(1))  # twice is harmless
    assert len(cache) == 0


def test_a_stale_entry_is_replaced_at_the_new_end() -> None:
    cache = ReplyCache(ttl_s=30.0, size=2)
    cache.start(_key(1), 100.0)
    cache.answer(_key(1), b"old", 100.0)
    cache.start(_key(2), 120.0)
    cache.start(_key(1), 140.0)  # the same key after its entry went stale
    assert cache.get(_key(1), 140.0) == (170.0, None)
    cache.start(_key(3), 141.0)  # full: the oldest (key 2) goes, not the renewed key 1
    assert cache.get(_key(2), 141.0) is None
    assert cache.get(_key(1), 141.0) == (170.0, None)
    assert len(cache) == 2


def test_size_is_bounded_oldest_first() -> None:
    cache = ReplyCache(ttl_s=30.0, size=3)
    for n in range(5):
        cache.start(_key(n), 100.0 + n)
    assert len(cache) == 3
    assert [cache.get(_key(n), 105.0) is not None for n in range(5)] == [False, False] + [True] * 3


def test_an_answer_whose_entry_was_pushed_out_is_kept_within_the_bound() -> None:
    cache = ReplyCache(ttl_s=30.0, size=2)
    cache.start(_key(1), 100.0)
    cache.start(_key(2), 100.0)
    cache.start(_key(3), 100.0)  # pushes key 1 out while it is worked on
    cache.answer(_key(1), b"late", 101.0)
    assert len(cache) == 2
    assert cache.get(_key(1), 101.0) == (131.0, b"late")
    assert cache.get(_key(2), 101.0) is None


def test_stale_entries_are_removed() -> None:
    cache = ReplyCache(ttl_s=30.0, size=1000)
    for n in range(100):
        cache.start(_key(n), 100.0 + n / 100)
        cache.answer(_key(n), b"r", 100.0 + n / 100)
    assert len(cache) == 100
    cache.start(_key(500), 200.0)  # every earlier entry is stale by now
    assert len(cache) == 1
    for n in range(501, 600):  # and entries keep going as they go stale
        cache.start(_key(n), 200.0 + (n - 500))
    assert len(cache) <= 31


def test_new_limits_apply_to_the_next_request() -> None:
    cache = ReplyCache(ttl_s=30.0, size=10)
    for n in range(5):
        cache.start(_key(n), 100.0)
    cache.size, cache.ttl_s = 2, 5.0
    cache.start(_key(9), 100.0)
    assert len(cache) == 2
    assert cache.get(_key(9), 104.0) == (105.0, None)
