"""A shared integer counter (kazoo's ``Counter``): the value is the node's data, in decimal.

Updates are compare-and-set on the node's version (setData with the version
read), retried on BadVersion, so concurrent ``add`` calls never lose one.
"""

from __future__ import annotations

from ..errors import BadVersionError, NodeExistsError, NoNodeError
from ..ops import Operations

__all__ = ["Counter"]


class Counter:
    def __init__(self, zk: Operations, path: str, default: int = 0) -> None:
        self.zk = zk
        self.path = path
        self.default = default

    async def get(self) -> int:
        try:
            data, _ = await self.zk.get(self.path)
        except NoNodeError:
            return self.default
        return int(data) if data else self.default

    async def add(self, delta: int) -> int:
        """Add ``delta`` atomically; return the new value."""
        zk = self.zk
        while True:
            try:
                data, stat = await zk.get(self.path)
            except NoNodeError:
                try:
                    value = self.default + delta
                    await zk.create(self.path, str(value).encode(), makepath=True)
                    return value
                except NodeExistsError:
                    continue
            value = (int(data) if data else self.default) + delta
            try:
                await zk.set(self.path, str(value).encode(), version=stat.version)
                return value
            except BadVersionError:
                continue

