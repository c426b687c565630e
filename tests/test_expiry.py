"""expiry: ZooKeeper's ExpiryQueue with time as an argument."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_quorum.core.expiry import ExpiryQueue


def test_buckets_round_up_to_next_interval() -> None:
    q: ExpiryQueue[str] = ExpiryQueue(2000)
    assert q.update("a", 5000, now=1000) == 8000  # (6000 // 2000 + 1) * 2000
    assert q.update("b", 5500, now=1000) == 8000  # same bucket
    assert q.update("a", 5000, now=1100) is None  # unchanged bucket: cheap no-op
    assert q.next_expiration_time() == 8000
    assert q.poll(7999) == []
    assert sorted(q.poll(8000)) == ["a", "b"]
    assert len(q) == 0 and q.next_expiration_time() is None


def test_update_moves_key_and_remove_forgets_it() -> None:
    q: ExpiryQueue[int] = ExpiryQueue(1000)
    q.update(1, 1000, now=0)
    q.update(2, 1000, now=0)
    assert q.update(1, 1000, now=3000) == 5000
    assert q.poll(2000) == [2]
    assert q.remove(1) == 5000
    assert q.remove(1) is None
    assert q.poll(10_000) == []
    assert q.next_expiration_time() is None


def test_poll_drains_every_due_bucket() -> None:
    q: ExpiryQueue[int] = ExpiryQueue(100)
    for i in range(10):
        q.update(i, i * 100, now=0)
    assert sorted(q.poll(550)) == [0, 1, 2, 3, 4]
    assert q.next_expiration_time() == 600
    assert q.buckets() == {
        600: frozenset({5}),
        700: frozenset({6}),
        800: frozenset({7}),
        900: frozenset({8}),
        1000: frozenset({9}),
    }


def test_rejects_non_positive_interval() -> None:
    with pytest.raises(ValueError):
        ExpiryQueue(0)


ops = st.lists(
    st.tuples(st.integers(0, 5), st.integers(1, 20_000), st.integers(0, 3000), st.booleans()),
    max_size=40,
)


@given(st.integers(1, 5000), ops, st.integers(0, 10**12))
def test_nothing_early_everything_by_timeout_plus_tick(tick: int, steps, start: int) -> None:
    """Drive updates forward in time; check each key's expiry against its last update."""
    q: ExpiryQueue[int] = ExpiryQueue(tick)
    now = start
    last: dict[int, tuple[int, int]] = {}  # key -> (time of last update, timeout)
    for key, timeout, advance, remove in steps:
        now += advance
        for k in q.poll(now):
            t0, to = last.pop(k)
            assert now > t0 + to, "expired before its timeout"
        for k, (t0, to) in last.items():
            assert now < t0 + to + tick, f"{k} overdue"
        if remove:
            q.remove(key)
            last.pop(key, None)
        else:
            q.update(key, timeout, now)
            last[key] = (now, timeout)
    # Jump to the latest deadline: everything must be gone by timeout + tick.
    if last:
        deadline = max(t0 + to + tick for t0, to in last.values())
        nxt = q.next_expiration_time()
        assert nxt is not None and nxt <= deadline
        # Just before each key's own earliest possible expiry nothing of it expires.
        for k in q.poll(deadline):
            t0, to = last.pop(k)
            assert deadline > t0 + to
        assert not last
    assert len(q) == 0
