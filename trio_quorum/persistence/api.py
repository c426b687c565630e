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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

__sans_io__ = True

if TYPE_CHECKING:
    from ..core.datatree import DataTree
    from ..protocol.txn import TxnHeader, TxnRecord



__all__ = ["Storage", "StorageFailed", "CorruptStorage"]


class StorageFailed(Exception):
    """A write or fsync failed; nothing after the last successful sync is durable."""


class CorruptStorage(Exception):
    """The data directory cannot be trusted (e.g. corruption in the middle of a log)."""


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
        """Zxid of the last appended transaction."""
        ...
