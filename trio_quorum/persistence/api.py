"""The storage interface the server drives (sans-IO declaration of an IO boundary).

The server's pipeline only ever talks to storage through :class:`Storage`.
Two implementations exist (or will): the durable one on ZooKeeper 3.8's
on-disk format (``trio_quorum.persistence.filestore``) and an in-memory one
for deterministic simulation that loses unsynced writes on a simulated crash
(``trio_quorum.persistence.memstore``).

Contract:

* :meth:`Storage.restore` runs once before serving; it fills the given tree and
  session table from the newest valid snapshot plus the log tail and returns the
  last zxid on disk.
* :meth:`Storage.append` hands over transactions in zxid order; they are
  durable only once :meth:`Storage.sync` has returned for them.  The pipeline
  replies to a client (or acks a proposal) only after ``sync`` returned.
  Implementations group-commit: many appends, one fsync.
* A failed write or fsync raises :class:`StorageFailed`; the server then stops
  taking writes and exits: an uncertain log is never acknowledged.
* :meth:`Storage.sync_inline` is :meth:`Storage.sync` in the caller's thread,
  for a pipeline with nothing else in flight (one write, no hand-off).
* :meth:`Storage.maybe_snapshot` is called after transactions were applied to
  the tree; every ~snapCount transactions it rolls the log and writes a fuzzy
  snapshot in the background without stalling the pipeline.

What a ZAB peer needs on top (both stores, same semantics; docs/storage.md):

* Epochs: :attr:`Storage.accepted_epoch` / :attr:`Storage.current_epoch` are
  -1 before :meth:`Storage.restore` and afterwards what ``QuorumPeer.loadDataBase``
  computes (:func:`resolve_epochs`); reading them raises its
  :class:`CorruptStorage` when the stored ones are inconsistent (restore itself
  does not: a standalone server never needs them); ``set_*`` are durable
  before returning.
* DIFF: :meth:`Storage.read_txns` returns durable (synced) transactions after a
  zxid; it is complete exactly when ``after_zxid >= min_logged_zxid() - 1``
  (else :class:`LogGap`: the leader sends a SNAP).
* TRUNC: :meth:`Storage.truncate` durably drops logged txns after a zxid (and
  newer snapshots); the caller then restores a fresh tree from the store.
* SNAP: :meth:`Storage.install_snapshot` durably replaces the history with a
  snapshot received from the leader.
* ``last_zxid`` after each of them is what a restart's ``restore`` would return.
* Calling ``append`` or ``sync`` while ``truncate``/``install_snapshot`` runs is
  a caller error (:class:`StorageFailed`); both first make every earlier append
  durable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

__sans_io__ = True

if TYPE_CHECKING:
    from ..core.datatree import DataTree
    from ..protocol.txn import TxnHeader, TxnRecord


__all__ = ["Storage", "StorageFailed", "CorruptStorage", "LogGap", "epoch_of", "resolve_epochs"]


class StorageFailed(Exception):
    """A write or fsync failed; nothing after the last successful sync is durable."""


class CorruptStorage(Exception):
    """The data directory cannot be trusted (e.g. corruption in the middle of a log)."""


class LogGap(LookupError):
    """The logs no longer hold every txn after the requested zxid (purged, or it
    predates the log, or it is after the last one): a DIFF cannot be served."""


def epoch_of(zxid: int) -> int:
    """``ZxidUtils.getEpochFromZxid``: the high 32 bits."""
    return zxid >> 32


def resolve_epochs(
    last_zxid: int, accepted: int | None, current: int | None, current_tmp: int | None = None
) -> tuple[int, int, bool, bool]:
    """The epochs a restored peer starts with, as ``QuorumPeer.loadDataBase`` decides them.

    Args:
        last_zxid: the last zxid restored (the tree's lastProcessedZxid).
        accepted, current: the stored epochs, ``None`` when their file is absent.
        current_tmp: a readable ``currentEpoch.tmp`` left by an interrupted
            write, ``None`` if absent.

    Returns:
        ``(accepted, current, write_accepted, write_current)``: a missing epoch
        is the epoch of ``last_zxid`` and must be written back (ZooKeeper does);
        a ``current`` older than ``last_zxid``'s epoch is replaced by
        ``current_tmp`` when that one is recent enough (also written back).

    Raises:
        CorruptStorage: ``current`` is older than the last zxid's epoch (and
            no usable temp file), or ``accepted < current``.
    """
    zepoch = epoch_of(last_zxid)
    write_current = write_accepted = False
    if current is None:
        current, write_current = zepoch, True
    if zepoch > current:
        if current_tmp is None or current_tmp < zepoch:
            raise CorruptStorage(
                f"The current epoch, {current:#x}, is older than the last zxid, {last_zxid:#x}"
            )
        current, write_current = current_tmp, True
    if accepted is None:
        accepted, write_accepted = zepoch, True
    if accepted < current:
        raise CorruptStorage(f"The accepted epoch, {accepted:#x} is less than the current epoch, {current:#x}")
    return accepted, current, write_accepted, write_current


class Storage(Protocol):
    async def restore(self, tree: DataTree, sessions: dict[int, int]) -> int:
        """Load snapshot + log into ``tree`` and ``sessions`` (id -> timeout ms); return the last zxid."""
        ...

    def append(self, hdr: TxnHeader, rec: TxnRecord) -> None:
        """Queue one transaction for the log (not yet durable)."""
        ...

    async def sync(self) -> None:
        """Make everything appended so far durable (one group commit); raise StorageFailed on error."""
        ...

    def sync_inline(self) -> bool:
        """:meth:`sync`, blocking the caller, for the direct write path of an idle pipeline.

        Returns False (nothing done) when a group commit is already in flight;
        raises StorageFailed like :meth:`sync`.
        """
        ...

    def snapshot_soon(self, tree: DataTree, sessions: dict[int, int]) -> bool:
        """:meth:`maybe_snapshot` without awaiting; False when a due snapshot needs one."""
        ...

    async def maybe_snapshot(self, tree: DataTree, sessions: dict[int, int]) -> None:
        """Roll the log and snapshot in the background when snapCount is reached."""
        ...

    async def aclose(self) -> None:
        """Flush, fsync and close files (shielded, bounded by the caller)."""
        ...

    @property
    def last_zxid(self) -> int:
        """Zxid of the last appended transaction (or restored, truncated to, installed)."""
        ...

    # -- ZAB ------------------------------------------------------------------
    @property
    def accepted_epoch(self) -> int:
        """``acceptedEpoch``: -1 before :meth:`restore`; CorruptStorage if inconsistent."""
        ...

    @property
    def current_epoch(self) -> int:
        """``currentEpoch``: -1 before :meth:`restore`."""
        ...

    async def set_accepted_epoch(self, epoch: int) -> None:
        """Durably store ``acceptedEpoch`` (atomic replace + fsync) before returning."""
        ...

    async def set_current_epoch(self, epoch: int) -> None:
        """Durably store ``currentEpoch`` (atomic replace + fsync) before returning."""
        ...

    async def read_txns(
        self, after_zxid: int, up_to_zxid: int | None = None
    ) -> list[tuple[TxnHeader, TxnRecord]]:
        """Durable txns with ``after_zxid < zxid <= up_to_zxid`` (default: all), in zxid order.

        Raises:
            LogGap: ``after_zxid < min_logged_zxid() - 1`` (the txns right
                after it are no longer logged): send a SNAP instead.
        """
        ...

    def min_logged_zxid(self) -> int:
        """``M`` such that the logs hold every durable txn with zxid >= ``M``.

        The oldest logged zxid, or one past the snapshot the oldest log continues
        from (a log starting an epoch at ``(e, 1)`` after snapshot ``S``: ``S + 1``),
        or ``last durable zxid + 1`` when nothing is logged.
        :meth:`read_txns` ``(after)`` is complete iff ``after >= M - 1``.
        """
        ...

    async def truncate(self, zxid: int) -> None:
        """Durably drop every logged txn after ``zxid`` and every snapshot newer than it.

        A restart then restores exactly the history up to ``zxid``; the
        caller rebuilds its tree with :meth:`restore` (allowed again here).

        Raises:
            CorruptStorage: ``zxid`` is older than the oldest snapshot (the
                learner needs a SNAP).
        """
        ...

    async def install_snapshot(self, tree: DataTree, sessions: dict[int, int], zxid: int) -> None:
        """Durably make ``tree``/``sessions`` (state at ``zxid``) the whole history.

        Drops every logged txn and every newer snapshot; the next append
        starts a new log; a restart restores this snapshot.
        """
        ...
