"""Barriers (kazoo's ``Barrier`` and ``DoubleBarrier``).

* :class:`Barrier`: a node whose existence holds everyone in ``wait()``;
  ``remove()`` lets them all through.
* :class:`DoubleBarrier`: ``num_clients`` participants ``enter()`` together
  (each waits until all have arrived) and ``leave()`` together (each waits
  until all have left).  Participants are ephemeral children
  ``<path>/<identifier>``; the last to arrive creates ``<path>/ready``.
  Cancelled inside ``enter``, a participant deletes its node.
"""

from __future__ import annotations

import uuid
from types import TracebackType

from ..errors import NodeExistsError, NoNodeError
from ..ops import Operations
from ._util import cleanup_prefix

__all__ = ["Barrier", "DoubleBarrier"]

_READY = "ready"


class Barrier:
    def __init__(self, zk: Operations, path: str) -> None:
        self.zk = zk
        self.path = path

    async def create(self) -> None:
        """Put the barrier up (no-op when it is up)."""
        try:
            await self.zk.create(self.path, makepath=True)
        except NodeExistsError:
            pass

    async def remove(self) -> bool:
        """Take the barrier down; False when it was not up."""
        try:
            await self.zk.delete(self.path)
            return True
        except NoNodeError:
            return False

    async def wait(self) -> None:
        """Return once the barrier is down (at once if it is not up)."""
        while True:
            stat, watch = await self.zk.exists_and_watch(self.path)
            try:
                if stat is None:
                    return
                await watch.wait()
            finally:
                watch.cancel()


class DoubleBarrier:
    """``async with zk.double_barrier(path, n):`` enters on the way in, leaves on the way out."""

    def __init__(self, zk: Operations, path: str, num_clients: int, identifier: str = "") -> None:
        self.zk = zk
        self.path = path
        self.num_clients = num_clients
        self.node = identifier or uuid.uuid4().hex
        self.participating = False

    async def enter(self) -> None:
        zk = self.zk
        ready = f"{self.path}/{_READY}"
        try:
            await zk.create(f"{self.path}/{self.node}", ephemeral=True, makepath=True)
            self.participating = True
            while True:
                stat, watch = await zk.exists_and_watch(ready)
                try:
                    if stat is not None:
                        return
                    children = [c for c in await zk.get_children(self.path) if c != _READY]
                    if len(children) >= self.num_clients:
                        try:
                            await zk.create(ready)
                        except NodeExistsError:
                            pass
                        return
                    await watch.wait()
                finally:
                    watch.cancel()
        except BaseException:
            await cleanup_prefix(zk, self.path, self.node, self.node)
            self.participating = False
            raise

    async def leave(self) -> None:
        zk = self.zk
        await cleanup_prefix(zk, self.path, self.node, self.node)
        self.participating = False
        while True:
            try:
                children, watch = await zk.get_children_and_watch(self.path)
            except NoNodeError:
                return
            try:
                if not [c for c in children if c != _READY]:
                    try:
                        await zk.delete(f"{self.path}/{_READY}")
                    except NoNodeError:
                        pass
                    return
                await watch.wait()
            finally:
                watch.cancel()

    async def __aenter__(self) -> DoubleBarrier:
        await self.enter()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.leave()
