"""Leader election on the lock recipe (kazoo's ``Election``): the lock's holder is the leader.

``await zk.election("/app/leader", "me").run(lead)`` waits to be elected, then
runs ``lead()``; leadership ends when it returns (the node is deleted).
Cancelling a candidate (waiting or leading) deletes its node.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..ops import Operations
from .lock import Lock

__all__ = ["Election"]


class Election:
    def __init__(self, zk: Operations, path: str, identifier: str = "") -> None:
        self.lock = Lock(zk, path, identifier)

    async def run(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Wait for leadership, run ``await fn(*args)`` as leader, give leadership up; return its result."""
        async with self.lock:
            return await fn(*args)

    async def contenders(self) -> list[str]:
        """The identifiers of the leader (first) and the candidates, in order."""
        return await self.lock.contenders()
