"""In-memory :class:`~trio_quorum.persistence.api.Storage` (tests, simulation, no dataDir).

The log is two lists: ``durable`` (everything a :meth:`MemStore.sync` has
covered) and ``pending`` (appended, not yet synced).  :meth:`MemStore.crash`
models a power cut: pending transactions are lost, durable ones survive, and a
later :meth:`MemStore.restore` (a "restarted" server given the same store)
replays exactly the durable prefix.  This is the property the deterministic
simulation relies on: a reply or ack released only after ``sync`` survives a
crash; anything else may vanish.

Invariants:

* ``append`` requires strictly increasing zxids (as the txn log does).
* ``sync`` is a checkpoint (it yields to the scheduler, like a real fsync in
  a worker thread), then moves ``pending`` to ``durable`` atomically; a
  cancelled ``sync`` makes nothing durable.
* Faults are injected with :meth:`fail_syncs`; a failing ``sync`` raises
  :class:`StorageFailed` and keeps the pending transactions pending.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from .api import StorageFailed

if TYPE_CHECKING:
    from ..core.datatree import DataTree
    from ..protocol.txn import TxnHeader, TxnRecord

__all__ = ["MemStore"]

#: ``replay(tree, sessions, hdr, rec)`` applies one restored transaction.
Replay = Callable[["DataTree", dict[int, int], "TxnHeader", "TxnRecord"], None]


class MemStore:
    """A Storage that keeps the log in memory and loses unsynced writes on :meth:`crash`.

    Args:
        replay: how :meth:`restore` applies a durable transaction to the tree
            and the session table; defaults to :func:`default_replay`.
    """

    def __init__(self, replay: Replay | None = None) -> None:
        self.durable: list[tuple[TxnHeader, TxnRecord]] = []
        self.pending: list[tuple[TxnHeader, TxnRecord]] = []
        self._replay = replay or default_replay
        self._fail_syncs = 0
        self.sync_count = 0
        self.snapshot_calls = 0
        self.closed = False

    # -- Storage ---------------------------------------------------------------
    async def restore(self, tree: DataTree, sessions: dict[int, int]) -> int:
        """Replay every durable transaction into ``tree`` / ``sessions``; return the last zxid."""
        await trio.lowlevel.checkpoint()
        self.closed = False
        last = 0
        for hdr, rec in self.durable:
            self._replay(tree, sessions, hdr, rec)
            last = hdr.zxid
        return last

    def append(self, hdr: TxnHeader, rec: TxnRecord) -> None:
        if self.closed:
            raise StorageFailed("append on a closed store")
        last = self.last_zxid
        if hdr.zxid <= last:
            raise StorageFailed(f"zxid 0x{hdr.zxid:x} is not after the last logged 0x{last:x}")
        self.pending.append((hdr, rec))

    async def sync(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._fail_syncs:
            self._fail_syncs -= 1
            raise StorageFailed("injected fsync failure")
        if self.pending:
            self.durable.extend(self.pending)
            self.pending.clear()
        self.sync_count += 1

    def sync_inline(self) -> bool:
        """:meth:`sync` without awaiting (the server's direct write path); same faults."""
        if self._fail_syncs:
            self._fail_syncs -= 1
            raise StorageFailed("injected fsync failure")
        if self.pending:
            self.durable.extend(self.pending)
            self.pending.clear()
        self.sync_count += 1
        return True

    async def maybe_snapshot(self, tree: DataTree, sessions: dict[int, int]) -> None:
        self.snapshot_calls += 1

    def snapshot_soon(self, tree: DataTree, sessions: dict[int, int]) -> bool:
        self.snapshot_calls += 1
        return True

    async def aclose(self) -> None:
        """Like a clean shutdown: sync what is pending, then refuse appends."""
        if not self.closed:
            if self.pending and not self._fail_syncs:
                self.durable.extend(self.pending)
                self.pending.clear()
            self.closed = True

    @property
    def last_zxid(self) -> int:
        if self.pending:
            return self.pending[-1][0].zxid
        return self.durable[-1][0].zxid if self.durable else 0

    # -- fault injection ------------------------------------------------------
    def crash(self) -> list[tuple[TxnHeader, TxnRecord]]:
        """Simulated power cut: drop and return the unsynced transactions."""
        lost, self.pending = self.pending, []
        self.closed = True
        return lost

    def fail_syncs(self, n: int = 1) -> None:
        """Make the next ``n`` calls to :meth:`sync` raise :class:`StorageFailed`."""
        self._fail_syncs = n


def default_replay(tree: DataTree, sessions: dict[int, int], hdr: TxnHeader, rec: TxnRecord) -> None:
    """Apply a restored transaction the way ``FileTxnSnapLog.processTransaction`` does:
    session create/close update ``sessions``, everything goes through the tree."""
    from ..protocol.consts import OpCode
    from ..protocol.txn import CreateSessionTxn

    if hdr.type == OpCode.createSession and isinstance(rec, CreateSessionTxn):
        sessions[hdr.client_id] = rec.timeout
    elif hdr.type == OpCode.closeSession:
        sessions.pop(hdr.client_id, None)
    tree.apply(hdr, rec)
