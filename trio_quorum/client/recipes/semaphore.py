"""A counting semaphore: at most ``max_leases`` holders at a time.

Contenders queue as ephemeral sequential children ``<path>/<uuid>__lease__<seq>``;
the first ``max_leases`` in sequence order hold a lease.  A waiter watches the
contender ``max_leases`` places ahead of it (when that one goes, it moves up).
Not kazoo's layout (kazoo's Semaphore keeps leases under ``<path>/leases``
behind a lock); same guarantees, simpler and cancellation-safe like the lock.
"""

from __future__ import annotations

from functools import partial

from ..errors import NoNodeError
from ..ops import Operations
from ._util import retry, sort_by_sequence
from .lock import Lock

__all__ = ["Semaphore", "LEASE_MARKER"]

LEASE_MARKER = "__lease__"


class Semaphore(Lock):
    """``async with zk.semaphore("/sem/x", max_leases=3):``"""

    marker = LEASE_MARKER

    def __init__(self, zk: Operations, path: str, max_leases: int = 1, identifier: str = "") -> None:
        super().__init__(zk, path, identifier)
        if max_leases < 1:
            raise ValueError("max_leases must be >= 1")
        self.max_leases = max_leases

    async def _wait_turn(self) -> None:
        zk = self.zk
        assert self.node is not None
        while True:
            order = sort_by_sequence(await retry(zk, lambda: zk.get_children(self.path)), self.marker)
            if self.node not in order:
                raise NoNodeError(f"{self.path}/{self.node}")
            i = order.index(self.node)
            if i < self.max_leases:
                return
            ahead = f"{self.path}/{order[i - self.max_leases]}"
            stat, watch = await retry(zk, partial(zk.exists_and_watch, ahead))
            try:
                if stat is not None:
                    await watch.wait()
            finally:
                watch.cancel()
