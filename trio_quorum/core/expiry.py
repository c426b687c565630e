"""ExpiryQueue: time-bucketed expiry, ZooKeeper's ``ExpiryQueue`` (sans-IO).

Keys (session ids, connections) are grouped in buckets whose times are
multiples of ``expiration_interval`` (the tickTime), so expiring thousands of
sessions costs one wake-up per tick instead of one timer per session.

``update(key, timeout, now)`` moves ``key`` to the bucket
``round_to_next_interval(now + timeout) = ((now + timeout) // interval + 1) * interval``.
Hence, for a key last updated at ``now`` with ``timeout``, its expiry time ``E``
satisfies ``now + timeout < E <= now + timeout + interval``:

* nothing expires before its timeout has fully elapsed;
* everything has expired once ``timeout + interval`` has elapsed.

Time is an argument everywhere (integer milliseconds on any monotonic clock);
the module reads no clock.  Unlike ZooKeeper's ``poll``, which hands back one
bucket per call, :meth:`ExpiryQueue.poll` drains every bucket that is due, so a
driver that wakes late (or a MockClock that jumped) loses nothing.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

__sans_io__ = True

__all__ = ["ExpiryQueue"]

K = TypeVar("K", bound=Hashable)


class ExpiryQueue(Generic[K]):
    """Buckets of keys by expiry time.

    Args:
        expiration_interval: bucket width in ms (ZooKeeper uses tickTime); > 0.
    """

    __slots__ = ("interval", "_expiry", "_buckets", "_heap")

    def __init__(self, expiration_interval: int) -> None:
        if expiration_interval <= 0:
            raise ValueError(f"expiration_interval must be > 0, got {expiration_interval}")
        self.interval = expiration_interval
        self._expiry: dict[K, int] = {}
        self._buckets: dict[int, set[K]] = {}
        # Bucket times, possibly stale (a bucket emptied by remove/update stays
        # here until it reaches the top); the dict is the truth.
        self._heap: list[int] = []

    def round_to_next_interval(self, time: int) -> int:
        """The bucket time a key due at ``time`` goes to (strictly after ``time``)."""
        return (time // self.interval + 1) * self.interval

    def update(self, key: K, timeout: int, now: int) -> int | None:
        """Put ``key`` in the bucket for ``now + timeout``.

        Returns the new expiry time, or ``None`` when the key was already in
        that bucket (ZooKeeper's cheap path for frequent touches).
        """
        new = (((now + timeout) // self.interval) + 1) * self.interval
        prev = self._expiry.get(key)
        if prev == new:
            return None
        bucket = self._buckets.get(new)
        if bucket is None:
            bucket = self._buckets[new] = set()
            heapq.heappush(self._heap, new)
        bucket.add(key)
        self._expiry[key] = new
        if prev is not None:
            old = self._buckets.get(prev)
            if old is not None:
                old.discard(key)
                if not old:
                    del self._buckets[prev]
        return new

    def remove(self, key: K) -> int | None:
        """Forget ``key``; returns the expiry time it had, or ``None``."""
        prev = self._expiry.pop(key, None)
        if prev is not None:
            old = self._buckets.get(prev)
            if old is not None:
                old.discard(key)
                if not old:
                    del self._buckets[prev]
        return prev

    def poll(self, now: int) -> list[K]:
        """Remove and return every key whose bucket time is ``<= now``."""
        heap = self._heap
        out: list[K] = []
        while heap and heap[0] <= now:
            t = heapq.heappop(heap)
            bucket = self._buckets.pop(t, None)
            if bucket:
                for key in bucket:
                    del self._expiry[key]
                out.extend(bucket)
        return out

    def next_expiration_time(self) -> int | None:
        """Time of the earliest non-empty bucket, or ``None`` when empty."""
        heap = self._heap
        while heap and heap[0] not in self._buckets:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def expiry_of(self, key: K) -> int | None:
        """The bucket time ``key`` is in, or ``None``."""
        return self._expiry.get(key)

    def buckets(self) -> dict[int, frozenset[K]]:
        """``{expiry time: keys}`` in time order (for ``dump`` / ``cons``)."""
        return {t: frozenset(self._buckets[t]) for t in sorted(self._buckets)}

    def __contains__(self, key: object) -> bool:
        return key in self._expiry

    def __len__(self) -> int:
        return len(self._expiry)

    def __iter__(self) -> Iterator[K]:
        return iter(self._expiry)
