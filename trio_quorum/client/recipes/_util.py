"""Helpers shared by the recipes: retry over connection loss, shielded cleanup, sequence order."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from ..errors import (
    ClientClosedError,
    ConnectionLoss,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from ..ops import Operations

__all__ = ["retry", "cleanup_prefix", "sequence_of", "sort_by_sequence", "unique_prefix", "CLEANUP_TIMEOUT"]

T = TypeVar("T")
#: bound on the shielded deletion of a recipe's own znode
CLEANUP_TIMEOUT = 10.0


async def retry(zk: Operations, fn: Callable[[], Awaitable[T]], attempts: int = 20) -> T:
    """``await fn()``, again after each ConnectionLoss / OperationTimeout once reconnected."""
    for _ in range(attempts - 1):
        try:
            return await fn()
        except (ConnectionLoss, OperationTimeoutError):
            await zk.wait_connected()
    return await fn()


def unique_prefix(marker: str) -> str:
    """``<uuid hex><marker>``: a node name prefix this contender alone uses (kazoo's layout)."""
    return uuid.uuid4().hex + marker


def sequence_of(name: str) -> int:
    """The 10-digit sequence suffix of a sequential node's name (-1 if none)."""
    tail = name[-10:]
    return int(tail) if tail.isdigit() else -1


def sort_by_sequence(names: list[str], marker: str) -> list[str]:
    return sorted((n for n in names if marker in n), key=sequence_of)


async def cleanup_prefix(zk: Operations, parent: str, prefix: str, known: str | None = None) -> None:
    """Delete this contender's node(s) under ``parent`` (shielded, bounded, retried).

    ``known`` is the node's name when its create returned; otherwise the
    children are searched for ``prefix`` (a create in flight when cancelled is
    answered before the getChildren sent after it, on the same session).
    """
    with trio.move_on_after(CLEANUP_TIMEOUT) as scope:
        scope.shield = True
        try:
            if known is not None:
                names = [known]
            else:
                names = [c for c in await retry(zk, lambda: zk.get_children(parent)) if c.startswith(prefix)]
            for name in names:
                try:
                    await retry(zk, lambda n=name: zk.delete(f"{parent}/{n}"))  # type: ignore[misc]
                except NoNodeError:
                    pass
        except (SessionExpiredError, ClientClosedError, NoNodeError):
            pass  # the session (and its ephemerals) is gone, or the parent is
