"""A distributed mutex with kazoo's znode layout: ``<path>/<uuid>__lock__<seq>`` (ephemeral sequential).

Contenders queue by sequence number; each waits for the deletion of the one
just ahead of it (no herd effect).  ``async with zk.lock(path):`` holds it
for the block.  Cancelled while waiting (or failing), a contender deletes its
node before the cancellation propagates: no orphan znode blocks the queue.
The lock is as good as the session: a block holding it is cancelled when
the session expires (``open_client`` raises SessionExpiredError).
"""

from __future__ import annotations

from functools import partial
from types import TracebackType

from ..errors import NoNodeError
from ..ops import Operations
from ._util import cleanup_prefix, retry, sort_by_sequence, unique_prefix

__all__ = ["Lock", "LOCK_MARKER"]

LOCK_MARKER = "__lock__"


class Lock:
    """``async with zk.lock("/locks/x", identifier="me"):`` (``identifier`` is the node's data)."""

    marker = LOCK_MARKER

    def __init__(self, zk: Operations, path: str, identifier: str = "") -> None:
        self.zk = zk
        self.path = path.rstrip("/") or "/"
        self.identifier = identifier
        self.node: str | None = None  # our node's name while we hold or wait for the lock
        self.is_acquired = False

    async def acquire(self) -> None:
        """Wait for the lock.  Bound the wait with ``trio.move_on_after`` / ``fail_after``:
        a cancelled (or failed) acquire deletes its node before it propagates."""
        if self.is_acquired:
            raise RuntimeError("lock already acquired by this Lock object")
        prefix = unique_prefix(self.marker)
        self.node = None
        try:
            await self._create(prefix)
            await self._wait_turn()
        except BaseException:
            await cleanup_prefix(self.zk, self.path, prefix, self.node)
            self.node = None
            raise
        self.is_acquired = True

    async def _create(self, prefix: str) -> None:
        zk = self.zk
        data = self.identifier.encode()

        async def create() -> str:
            # after a connection loss the create may have happened: look for it first
            try:
                for c in await zk.get_children(self.path):
                    if c.startswith(prefix):
                        return str(c)
            except NoNodeError:
                pass
            full: str = await zk.create(f"{self.path}/{prefix}", data, ephemeral=True, sequence=True,
                                        makepath=True)
            return full.rsplit("/", 1)[1]

        self.node = await retry(zk, create)

    async def _wait_turn(self) -> None:
        zk = self.zk
        assert self.node is not None
        while True:
            order = sort_by_sequence(await retry(zk, lambda: zk.get_children(self.path)), self.marker)
            if self.node not in order:
                raise NoNodeError(f"{self.path}/{self.node}")  # deleted under us (session moved on?)
            i = order.index(self.node)
            if i == 0:
                return
            ahead = f"{self.path}/{order[i - 1]}"
            stat, watch = await retry(zk, partial(zk.exists_and_watch, ahead))
            try:
                if stat is not None:
                    await watch.wait()
            finally:
                watch.cancel()

    async def release(self) -> None:
        """Delete our node (shielded: a release always completes, bounded)."""
        if self.node is not None:
            await cleanup_prefix(self.zk, self.path, "", self.node)
        self.node = None
        self.is_acquired = False

    async def contenders(self) -> list[str]:
        """The identifiers of the holder and the waiters, in queue order."""
        out = []
        for name in sort_by_sequence(await self.zk.get_children(self.path), self.marker):
            try:
                data, _ = await self.zk.get(f"{self.path}/{name}")
            except NoNodeError:
                continue
            out.append(data.decode(errors="replace"))
        return out

    async def __aenter__(self) -> Lock:
        await self.acquire()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.release()
