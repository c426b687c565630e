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

The "disk" (what survives :meth:`crash`) is ``durable``, ``snapshots`` (a list
of ``(zxid, bytes)`` in ZooKeeper's format, oldest first) and ``epochs`` (the
two epoch "files").  Crash model, precisely:

* lost: ``pending`` (appended, never covered by a completed ``sync``);
* kept: every txn a completed ``sync``/``sync_inline`` covered, every epoch a
  completed ``set_*_epoch`` wrote, every completed ``truncate``,
  ``install_snapshot``, ``take_snapshot`` and ``purge``.
* Each of those operations first yields to the scheduler (as the file store
  waits for its worker thread), then changes the disk in one synchronous step:
  cancelled at that checkpoint, nothing happened; returned, it all happened.
  (A cancelled FileStore operation may have completed: a caller must treat a
  cancelled one as "maybe".)

Restore: the newest snapshot (if any, else the tree as given, like
``snapshot.0`` of an empty dir), then every durable txn after it; the epochs
as :func:`~.api.resolve_epochs` decides (missing ones are written).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from .api import CorruptStorage, LogGap, StorageFailed, resolve_epochs
from .snapshot import encode_snapshot_bytes, load_snapshot_bytes

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
        #: ``(zxid, snapshot bytes)``, oldest first (the "snapshot files")
        self.snapshots: list[tuple[int, bytes]] = []
        #: the "epoch files": ``"acceptedEpoch"`` / ``"currentEpoch"`` -> value
        self.epochs: dict[str, int] = {}
        self._accepted_epoch = -1
        self._current_epoch = -1
        self._epoch_error: CorruptStorage | None = None
        self._replay = replay or default_replay
        self._fail_syncs = 0
        self.sync_count = 0
        self.snapshot_calls = 0
        self.closed = False

    # -- Storage ---------------------------------------------------------------
    async def restore(self, tree: DataTree, sessions: dict[int, int]) -> int:
        """Load the newest snapshot, replay the durable txns after it; return the last zxid.

        Without a snapshot, every durable txn is replayed into ``tree`` as
        given.  May be called again (after :meth:`truncate`), with a fresh tree.

        Raises:
            StorageFailed: unsynced appends are pending (as FileStore).
            CorruptStorage: (when the epochs are read) inconsistent epochs.
        """
        if self.pending:
            raise StorageFailed("restore while writes are in flight")
        await trio.lowlevel.checkpoint()
        self.closed = False
        last = 0
        if self.snapshots:
            last, blob = self.snapshots[-1]
            load_snapshot_bytes(blob, tree, sessions, last, name=f"snapshot.{last:x}")
        for hdr, rec in self.durable:
            if hdr.zxid > last:
                self._replay(tree, sessions, hdr, rec)
                last = hdr.zxid
        self._epoch_error = None
        try:
            acc, cur, write_acc, write_cur = resolve_epochs(
                last, self.epochs.get("acceptedEpoch"), self.epochs.get("currentEpoch")
            )
        except CorruptStorage as exc:
            self._epoch_error = exc
            return last
        if write_acc:
            self.epochs["acceptedEpoch"] = acc
        if write_cur:
            self.epochs["currentEpoch"] = cur
        self._accepted_epoch, self._current_epoch = acc, cur
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
        return self._durable_zxid()

    def _durable_zxid(self) -> int:
        """What a restore returns: the newest of the last durable txn and the newest snapshot."""
        last = self.durable[-1][0].zxid if self.durable else 0
        return max(last, self.snapshots[-1][0]) if self.snapshots else last

    # -- ZAB ---------------------------------------------------------------------
    @property
    def accepted_epoch(self) -> int:
        if self._epoch_error is not None:
            raise self._epoch_error
        return self._accepted_epoch

    @property
    def current_epoch(self) -> int:
        if self._epoch_error is not None:
            raise self._epoch_error
        return self._current_epoch

    async def set_accepted_epoch(self, epoch: int) -> None:
        await self._write_epoch("acceptedEpoch", epoch)
        self._accepted_epoch = epoch

    async def set_current_epoch(self, epoch: int) -> None:
        await self._write_epoch("currentEpoch", epoch)
        self._current_epoch = epoch

    async def _write_epoch(self, name: str, epoch: int) -> None:
        if not -1 <= epoch < (1 << 63):
            raise ValueError(f"epoch out of range: {epoch}")
        await trio.lowlevel.checkpoint()
        if self._fail_syncs:
            self._fail_syncs -= 1
            raise StorageFailed(f"injected failure writing {name}")
        self.epochs[name] = epoch

    def min_logged_zxid(self) -> int:
        """``M``: every txn with zxid >= ``M`` is logged (as FileStore: the oldest logged
        zxid, or one past the newest snapshot before it, or past 0 with no snapshot at all;
        the last durable zxid + 1 when nothing is logged)."""
        if not self.durable:
            return self._durable_zxid() + 1
        first = self.durable[0][0].zxid
        before = [z for z, _ in self.snapshots if z < first]
        if before:
            return min(first, before[-1] + 1)
        return 1 if not self.snapshots else first

    async def read_txns(
        self, after_zxid: int, up_to_zxid: int | None = None
    ) -> list[tuple[TxnHeader, TxnRecord]]:
        """Durable txns with ``after_zxid < zxid <= up_to_zxid``; :class:`LogGap` as the Storage contract says."""
        await trio.lowlevel.checkpoint()
        lowest = self.min_logged_zxid()
        if after_zxid < lowest - 1:
            raise LogGap(f"txns after {after_zxid:#x} are no longer logged (oldest logged zxid {lowest:#x})")
        durable = self.durable
        i = bisect.bisect_right(durable, after_zxid, key=_zxid)
        j = len(durable) if up_to_zxid is None else bisect.bisect_right(durable, up_to_zxid, key=_zxid)
        return durable[i:j]

    async def truncate(self, zxid: int) -> None:
        """Drop the durable txns after ``zxid`` and newer snapshots (syncs pending ones first).

        Raises:
            CorruptStorage: there are snapshots, all newer than ``zxid``.
        """
        if zxid < 0:
            raise ValueError(f"zxid must be >= 0, got {zxid}")
        await self.sync()
        if self.snapshots and self.snapshots[0][0] > zxid:
            raise CorruptStorage(
                f"cannot truncate to {zxid:#x}: no snapshot at or before it "
                f"(oldest snapshot: {self.snapshots[0][0]:#x}); a SNAP is needed"
            )
        self.snapshots = [(z, b) for z, b in self.snapshots if z <= zxid]
        self.durable = [t for t in self.durable if t[0].zxid <= zxid]

    async def install_snapshot(self, tree: DataTree, sessions: dict[int, int], zxid: int) -> None:
        """Make ``tree``/``sessions`` at ``zxid`` the whole history: newer snapshots and every
        logged txn go (pending ones are synced, then dropped with the rest)."""
        blob = encode_snapshot_bytes(tree, sessions, zxid)
        await self.sync()
        self.snapshots = [(z, b) for z, b in self.snapshots if z < zxid]
        self.snapshots.append((zxid, blob))
        self.durable = []

    # -- snapshots and purge (the file store's take_snapshot / purge) -------------
    async def take_snapshot(self, tree: DataTree, sessions: dict[int, int]) -> int:
        """Snapshot ``tree`` at its lastProcessedZxid; return that zxid."""
        zxid = tree.last_processed_zxid
        blob = encode_snapshot_bytes(tree, sessions, zxid)
        await trio.lowlevel.checkpoint()
        self.snapshots = [(z, b) for z, b in self.snapshots if z != zxid]
        self.snapshots.append((zxid, blob))
        self.snapshots.sort(key=lambda s: s[0])
        return zxid

    def purge(self, retain: int = 3) -> None:
        """Keep the newest ``retain`` snapshots and the txns after the oldest of them."""
        if retain < 3:
            raise ValueError(f"snapRetainCount must be at least 3, got {retain}")
        if not self.snapshots:
            return
        self.snapshots = self.snapshots[-retain:]
        least = self.snapshots[0][0]
        self.durable = [t for t in self.durable if t[0].zxid > least]

    # -- fault injection ------------------------------------------------------
    def crash(self) -> list[tuple[TxnHeader, TxnRecord]]:
        """Simulated power cut: drop and return the unsynced transactions."""
        lost, self.pending = self.pending, []
        self.closed = True
        return lost

    def fail_syncs(self, n: int = 1) -> None:
        """Make the next ``n`` calls to :meth:`sync` (or epoch writes) raise :class:`StorageFailed`."""
        self._fail_syncs = n


def _zxid(t: tuple[TxnHeader, TxnRecord]) -> int:
    return t[0].zxid


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
