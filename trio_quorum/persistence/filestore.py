"""Durable storage on Apache ZooKeeper 3.8's on-disk format (``FileTxnSnapLog``).

:class:`FileStore` implements :class:`~trio_quorum.persistence.api.Storage`.

Modules.  The txn log file and the syncer thread that writes it are
:mod:`.logwriter` (group commit: one write + one fdatasync per flush, for
every appender waiting); restore is :mod:`.recovery`; the snapshot writers
(in the event loop, or from a forked child) are here, with the store.

Invariants:

* ``_durable <= _appended``: counts of entries; ``sync`` returns only once
  ``_durable`` covers every entry appended before it was called.
* Taking the queue and handing it to the syncer thread is one synchronous
  step, so no entry is dropped half-way, and a cancelled ``sync`` does not
  cancel the write; while a flush is in flight only that thread touches the
  log file (``sync_inline`` refuses then).
* After any write or fsync error the store is *failed*: every waiter and every
  later ``append`` and ``sync`` raise :class:`StorageFailed`; nothing after
  the last good sync is acknowledged.
* A log file is named after its first zxid and is started after a restore
  (never appending to a file with a torn tail) and after every snapshot trigger
  (the roll).

Snapshots are *fuzzy* (as ZooKeeper's): the zxid in the name is the tree's
lastProcessedZxid when the snapshot starts; serialisation walks the live tree
in the event loop one ~256 KB chunk at a time (``next()`` on the encoder) and
each chunk is written by a worker thread, so the event loop stalls for one
chunk at most and the tree never has a second thread reading it.  Changes
applied between chunks may or may not be in the file; that is safe because
recovery replays every logged txn after the snapshot's zxid, and replaying a
txn over a state that already contains it yields the same state (the log is
fsynced before a txn is applied, so every txn the snapshot may contain is in
the log).  ACL ids are only appended to the snapshot's ACL section from the
cache at the start; a node that picked up an ACL created later makes the
snapshot retry (rare), so no node references an ACL missing from its file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from ..protocol.txn import TxnDigest, TxnHeader, TxnRecord
from .api import CorruptStorage, StorageFailed
from .epochs import ACCEPTED_EPOCH, CURRENT_EPOCH, load_epochs, write_epoch
from .files import atomic_write, fsync_dir, version_dir
from .forkchild import ForkUnavailable as _ForkUnavailable
from .forkchild import prepare_child
from .forkchild import reap as _reap
from .forkchild import unlink_quietly as _unlink_quietly
from .history import install_history, read_txns, truncate_history
from .history import min_logged_zxid as _min_logged_zxid
from .logwriter import Segment, TxnLogWriter
from .recovery import restore_into
from .snapshot import encode_snapshot, snapshot_name
from .txnlog import DEFAULT_PRE_ALLOC_SIZE, append_entry

if TYPE_CHECKING:
    from ..core.datatree import DataTree

__all__ = ["FileStore", "FileStoreStatistics", "open_file_store"]

log = logging.getLogger("trio_quorum.persistence")

_SNAPSHOT_CHUNK = 256 * 1024
_SNAPSHOT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class FileStoreStatistics:
    appended: int
    durable: int
    flushes: int
    fsyncs: int
    bytes_written: int
    snapshots: int
    last_fsync_ms: float
    slow_fsyncs: int


class _AclMissing(Exception):
    pass


class FileStore:
    """Txn logs + snapshots in ``<dir>/version-2``, compatible with ZooKeeper 3.8.

    Args:
        data_dir: ZooKeeper's ``dataDir`` (snapshots, epoch files).
        data_log_dir: ``dataLogDir`` (txn logs); defaults to ``data_dir``.
        force_sync: ``zookeeper.forceSync``; ``False`` skips fsync (unsafe).
        snap_count: ``snapCount``; a snapshot follows every ~snapCount txns
            (randomised in (snapCount/2, snapCount] like ZooKeeper).
        pre_alloc_size: log preallocation step in bytes (64 MB by default).
        fsync_warning_ms: ``fsync.warningthresholdms``.
        nursery: where background snapshots run; without one,
            :meth:`maybe_snapshot` takes the snapshot before returning.
        fork_snapshots: write snapshots from a forked child process (a
            consistent copy-on-write image of the tree, encoded on the other
            core); default: where ``os.fork`` and ``os.pidfd_open`` exist.
        fsync: the durability call on a file descriptor (``os.fdatasync``);
            injectable to count or fail it in tests.
        pwrite: ``os.pwrite``-like write; injectable for fault tests.
        clock: monotonic seconds, for the slow-fsync warning.
        rng: randomness for the snapshot roll.
    """

    def __init__(
        self,
        data_dir: str,
        data_log_dir: str | None = None,
        *,
        force_sync: bool = True,
        snap_count: int = 100_000,
        pre_alloc_size: int = DEFAULT_PRE_ALLOC_SIZE,
        fsync_warning_ms: int = 1000,
        nursery: trio.Nursery | None = None,
        fsync: Callable[[int], None] | None = None,
        pwrite: Callable[[int, Any, int], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        dbid: int = 0,
        fork_snapshots: bool | None = None,
    ) -> None:
        if snap_count < 2:
            raise ValueError(f"snap_count must be >= 2, got {snap_count}")
        self.data_dir = data_dir
        self.data_log_dir = data_log_dir or data_dir
        self.snap_dir = version_dir(data_dir)
        self.log_dir = version_dir(self.data_log_dir)
        self.force_sync = force_sync
        self.snap_count = snap_count
        self.pre_alloc_size = pre_alloc_size
        self.fsync_warning_ms = fsync_warning_ms
        self._nursery = nursery
        self._rng = rng or random.Random()
        #: Background snapshots are written by a forked child (``None``: where
        #: ``os.fork`` and ``os.pidfd_open`` exist); else in the event loop.
        self.fork_snapshots = (
            fork_snapshots if fork_snapshots is not None else hasattr(os, "fork") and hasattr(os, "pidfd_open")
        )
        self._rand_roll = self._rng.randrange(max(1, snap_count // 2))
        # queue (event loop side)
        self._segments: list[Segment] = []
        self._roll_requested = True
        self._appended = 0
        self._durable = 0
        self._last_zxid = 0
        self._log_count = 0
        # What a DIFF may read: txns up to _durable_zxid, and of the log file
        # the writer appends to only the bytes up to _durable_bound.
        self._durable_zxid = 0
        self._flush_zxid = 0
        self._durable_bound: tuple[str | None, int] = (None, 0)
        # ZAB: epochs (-1 until restored); the history operation running, if any
        self._accepted_epoch = -1
        self._current_epoch = -1
        self._rewriting: str | None = None
        self._epoch_error: CorruptStorage | None = None
        self._failed: BaseException | None = None
        self._closed = False
        self._flushing = False
        self._flush_done = trio.Event()
        # the log file and its syncer thread
        self._log = TxnLogWriter(
            self.log_dir,
            on_flushed=self._flush_finished,
            dbid=dbid,
            force_sync=force_sync,
            pre_alloc_size=pre_alloc_size,
            fsync_warning_ms=fsync_warning_ms,
            fsync=fsync,
            pwrite=pwrite,
            clock=clock,
        )
        # snapshots
        self._snapshotting = False
        self._snapshot_done = trio.Event()
        self._snapshot_done.set()
        self._snapshots = 0

    @classmethod
    def from_config(cls, cfg: Any, **kwargs: Any) -> FileStore:
        """Build from a :class:`trio_quorum.config.ServerConfig`-like object."""
        return cls(
            cfg.data_dir,
            cfg.data_log_dir or cfg.data_dir,
            force_sync=getattr(cfg, "force_sync", True),
            snap_count=getattr(cfg, "snap_count", 100_000),
            pre_alloc_size=getattr(cfg, "pre_alloc_size_kb", 65536) * 1024,
            fsync_warning_ms=getattr(cfg, "fsync_warning_threshold_ms", 1000),
            **kwargs,
        )

    # ------------------------------------------------------------------ API

    @property
    def last_zxid(self) -> int:
        """Zxid of the last appended (or restored) transaction."""
        return self._last_zxid

    def statistics(self) -> FileStoreStatistics:
        return FileStoreStatistics(
            self._appended,
            self._durable,
            self._log.flushes,
            self._log.fsyncs,
            self._log.bytes_written,
            self._snapshots,
            self._log.last_fsync_ms,
            self._log.slow_fsyncs,
        )

    async def restore(self, tree: DataTree, sessions: dict[int, int]) -> int:
        """Load the newest valid snapshot and replay the log after it.

        An empty data directory gets ``snapshot.0`` of the tree as it is (as
        ZooKeeper does).  A torn last log record is truncated away (logged).

        Raises:
            CorruptStorage: corruption in the middle of a log, no valid
                snapshot among existing ones, or logs without any snapshot
                (inconsistent epochs raise when the epochs are read).
            StorageFailed: called with appends not yet durable, or during a
                truncate / install.

        May be called again on a store that is in use (after :meth:`truncate`):
        the next append then starts a new log file.  Also loads (and, where
        missing, writes) ``acceptedEpoch``/``currentEpoch`` like
        ``QuorumPeer.loadDataBase``.
        """
        if self._rewriting is not None or self._flushing or self._appended != self._durable:
            raise StorageFailed("restore while writes are in flight")
        await self.wait_snapshot_done()
        self._log.close()
        zxid, epochs = await trio.to_thread.run_sync(self._restore_sync, tree, sessions)
        if isinstance(epochs, CorruptStorage):
            self._epoch_error = epochs
        else:
            self._epoch_error = None
            self._accepted_epoch, self._current_epoch = epochs
        self._after_rewrite(zxid)
        return zxid

    def append(self, hdr: TxnHeader, rec: TxnRecord, digest: TxnDigest | None = None) -> None:
        """Queue one transaction; durable once a later :meth:`sync` returns."""
        if self._failed is not None:
            raise StorageFailed(f"storage failed earlier: {self._failed!r}")
        if self._closed:
            raise StorageFailed("storage is closed")
        if self._rewriting is not None:
            raise StorageFailed(f"append during {self._rewriting}")
        segments = self._segments
        if self._roll_requested or not segments:
            segments.append(Segment(self._roll_requested, hdr.zxid))
            self._roll_requested = False
        append_entry(segments[-1].buf, hdr, rec, digest)  # == buf += encode_entry(...)
        self._appended += 1
        self._log_count += 1
        if hdr.zxid > self._last_zxid:
            self._last_zxid = hdr.zxid

    async def sync(self) -> None:
        """Make every entry appended before this call durable (group commit).

        Cancelling a waiting caller is safe: a flush it started still runs to
        the end and is accounted (its entries are written and, if this call is
        retried, not written twice); only the caller stops waiting.

        Raises:
            StorageFailed: a write or fsync failed (now or earlier).
        """
        target = self._appended
        while self._durable < target:
            if self._failed is not None:
                raise StorageFailed(f"storage failed: {self._failed!r}") from self._failed
            if not self._flushing:
                self._start_flush()
            await self._flush_done.wait()

    def sync_inline(self) -> bool:
        """Make everything appended durable NOW, blocking the calling thread.

        The direct write path of an idle pipeline (server/pipeline.py): when
        nothing else is waiting, handing the fsync to the syncer thread and
        waking the event loop back costs more than the fsync itself (~60-200
        us of hand-off against ~120-150 us of write + fdatasync here).  Runs
        write + fdatasync in the caller; the syncer thread is idle then (it
        only ever touches the file while a flush is in flight), so the two
        never share the file.

        Returns:
            True when everything appended is durable; False, having done
            nothing, when a flush is in flight on the syncer thread (use
            :meth:`sync`).

        Raises:
            StorageFailed: the write or fsync failed (now or earlier); every
                later call raises too.
        """
        if self._failed is not None:
            raise StorageFailed(f"storage failed: {self._failed!r}") from self._failed
        if self._flushing:
            return False
        target = self._appended
        if self._durable >= target:
            return True
        segments, self._segments = self._segments, []
        try:
            self._log.write_segments(segments)
        except BaseException as exc:
            self._failed = exc
            log.error("txn log write failed; refusing further writes: %r", exc)
            raise StorageFailed(f"storage failed: {exc!r}") from exc
        self._durable = target
        self._durable_zxid = self._last_zxid
        self._durable_bound = self._log.position()
        return True

    def snapshot_soon(self, tree: DataTree, sessions: dict[int, int]) -> bool:
        """:meth:`maybe_snapshot` without awaiting: start a due snapshot in the background nursery.

        Returns False when a snapshot is due but there is no nursery to run it
        in (nothing is done: a later :meth:`maybe_snapshot` takes it).
        """
        if self._log_count <= self.snap_count // 2 + self._rand_roll or self._rewriting is not None:
            return True
        if self._nursery is None:
            return False
        if self._begin_snapshot():
            self._nursery.start_soon(self._snapshot_task, tree, dict(sessions))
        return True

    def _begin_snapshot(self) -> bool:
        """A snapshot is due: roll the log, re-draw the roll; False if one is still running."""
        self._rand_roll = self._rng.randrange(max(1, self.snap_count // 2))
        self._log_count = 0
        self._roll_requested = True
        if self._snapshotting:
            log.warning("Too busy to snap, skipping")
            return False
        self._snapshotting = True
        self._snapshot_done = trio.Event()
        return True

    def attach_nursery(self, nursery: trio.Nursery | None) -> None:
        """Run later background snapshots in ``nursery`` (``None``: inline, in the caller).

        For an owner that did not pass ``nursery=`` at construction (the
        standalone server's storage actor): without a nursery,
        :meth:`maybe_snapshot` writes the whole snapshot before returning,
        stalling its caller (the pipeline) for the snapshot's duration.
        """
        self._nursery = nursery

    async def maybe_snapshot(self, tree: DataTree, sessions: dict[int, int]) -> None:
        """Roll the log and take a fuzzy snapshot once enough txns were logged."""
        if self.snapshot_soon(tree, sessions):
            return
        # Due, and no nursery: take it here, before returning.
        if self._begin_snapshot():
            await self._snapshot_task(tree, dict(sessions))

    async def take_snapshot(self, tree: DataTree, sessions: dict[int, int]) -> str:
        """Roll the log and write a snapshot now; return its path."""
        await self.wait_snapshot_done()
        self._roll_requested = True
        self._log_count = 0
        self._snapshotting = True
        self._snapshot_done = trio.Event()
        path = await self._snapshot_task(tree, dict(sessions))
        if path is None:
            raise StorageFailed("snapshot failed")
        return path

    async def wait_snapshot_done(self) -> None:
        """Wait until no background snapshot is running."""
        await self._snapshot_done.wait()

    async def aclose(self) -> None:
        """Flush and fsync what is queued, stop the syncer thread, close the log file."""
        if self._closed:
            return
        try:
            if self._failed is None:
                await self.sync()
        finally:
            self._closed = True
            # The thread must be gone before the fd is closed under it (a
            # cancelled aclose can leave a flush in flight); joining an idle
            # thread takes microseconds, a busy one at most one flush.
            with trio.CancelScope(shield=True):
                await self._log.stop()
            self._log.close()

    # ------------------------------------------------------------ group commit

    def _start_flush(self) -> None:
        """Hand the whole queue to the syncer thread (one synchronous step)."""
        self._flushing = True
        self._flush_zxid = self._last_zxid
        segments, self._segments = self._segments, []
        self._log.submit(segments, self._appended)

    def _flush_finished(self, target: int, exc: BaseException | None) -> None:
        """Event loop (via ``run_sync_soon``): account a flush, wake its waiters."""
        if exc is not None:
            if self._failed is None:
                self._failed = exc
                log.error("txn log write failed; refusing further writes: %r", exc)
        else:
            self._durable = target
            # the syncer thread is idle now (the next flush starts after this)
            self._durable_zxid = self._flush_zxid
            self._durable_bound = self._log.position()
        self._flushing = False
        done, self._flush_done = self._flush_done, trio.Event()
        done.set()

    # ---------------------------------------------------------------- restore

    def _restore_sync(
        self, tree: DataTree, sessions: dict[int, int]
    ) -> tuple[int, tuple[int, int] | CorruptStorage]:
        zxid = restore_into(self.snap_dir, self.log_dir, tree, sessions, self._write_snapshot_sync)
        return zxid, load_epochs(self.data_dir, zxid)

    # ------------------------------------------------------------------- ZAB

    @property
    def accepted_epoch(self) -> int:
        """``acceptedEpoch`` (-1 before :meth:`restore`).

        Raises:
            CorruptStorage: the restored epochs are inconsistent (ZooKeeper's
                ``loadDataBase`` checks); only a quorum peer reads them.
        """
        if self._epoch_error is not None:
            raise self._epoch_error
        return self._accepted_epoch

    @property
    def current_epoch(self) -> int:
        """``currentEpoch`` (-1 before :meth:`restore`); raises as :attr:`accepted_epoch`."""
        if self._epoch_error is not None:
            raise self._epoch_error
        return self._current_epoch

    async def set_accepted_epoch(self, epoch: int) -> None:
        """Durably replace ``acceptedEpoch`` (temp file, fsync, rename, fsync of the directory).

        Runs to the end even if the caller is cancelled meanwhile.

        Raises:
            StorageFailed: the write failed (the file holds the old value).
        """
        await self._write_epoch(ACCEPTED_EPOCH, epoch)
        self._accepted_epoch = epoch

    async def set_current_epoch(self, epoch: int) -> None:
        """Durably replace ``currentEpoch``; see :meth:`set_accepted_epoch`."""
        await self._write_epoch(CURRENT_EPOCH, epoch)
        self._current_epoch = epoch

    async def _write_epoch(self, name: str, epoch: int) -> None:
        if not -1 <= epoch < (1 << 63):
            raise ValueError(f"epoch out of range: {epoch}")
        try:
            await trio.to_thread.run_sync(write_epoch, self.data_dir, name, epoch)
        except OSError as exc:
            raise StorageFailed(f"writing {name} failed: {exc!r}") from exc

    def min_logged_zxid(self) -> int:
        """``M``: the logs hold every txn with zxid >= ``M`` (:func:`.history.min_logged_zxid`);
        :meth:`read_txns` ``(after)`` works iff ``after >= M - 1``.  Lists the log directory."""
        return _min_logged_zxid(self.snap_dir, self.log_dir, self._durable_zxid)

    async def read_txns(
        self, after_zxid: int, up_to_zxid: int | None = None
    ) -> list[tuple[TxnHeader, TxnRecord]]:
        """Durable txns with ``after_zxid < zxid <= up_to_zxid`` from the log files (DIFF).

        Reads in a worker thread, beside appends and flushes: only what was
        durable when called is returned.

        Raises:
            LogGap: the logs no longer reach back to ``after_zxid``.
            StorageFailed: during a truncate / install.
            CorruptStorage: a log file is corrupt.
        """
        if self._rewriting is not None:
            raise StorageFailed(f"read_txns during {self._rewriting}")
        return await trio.to_thread.run_sync(
            read_txns, self.snap_dir, self.log_dir, after_zxid, up_to_zxid, self._durable_zxid, self._durable_bound
        )

    async def truncate(self, zxid: int) -> None:
        """Durably drop every logged txn after ``zxid`` and every snapshot newer than it (TRUNC).

        Everything appended before is made durable first; the log file in
        use is closed (the next append starts ``log.<its zxid>``).  The
        caller's tree is untouched: rebuild it with :meth:`restore`.

        Raises:
            CorruptStorage: no complete snapshot at or before ``zxid``
                (nothing was changed; the learner needs a SNAP).
            StorageFailed: a file operation failed (the directory then
                restores to a prefix of the old history at least up to
                ``zxid``), or the store had failed.
        """
        if zxid < 0:
            raise ValueError(f"zxid must be >= 0, got {zxid}")
        await self._quiesce("truncate")
        try:
            last = await trio.to_thread.run_sync(
                lambda: truncate_history(self.snap_dir, self.log_dir, zxid, fsync=self.force_sync)
            )
        except OSError as exc:
            raise StorageFailed(f"truncate to {zxid:#x} failed: {exc!r}") from exc
        finally:
            self._rewriting = None
        self._after_rewrite(last)

    async def install_snapshot(self, tree: DataTree, sessions: dict[int, int], zxid: int) -> None:
        """Durably replace the history with ``tree``/``sessions`` at ``zxid`` (after a SNAP).

        Writes ``snapshot.<zxid>`` (with 3.9's lastZxid section, which 3.8
        ignores), after dropping newer snapshots and the logged txns after
        ``zxid``, then removes every log file.  The tree is encoded in the
        event loop a chunk at a time; the caller must not change it meanwhile.

        Raises:
            StorageFailed: a file operation failed, or the store had failed.
        """
        await self._quiesce("install_snapshot")
        try:
            chunks = []
            for chunk in encode_snapshot(
                dict(sessions), tree.acl_cache.items(), tree.snapshot_nodes(java_order=False),
                chunk_size=_SNAPSHOT_CHUNK, last_zxid=zxid,
            ):
                chunks.append(chunk)
                await trio.lowlevel.checkpoint()
            blob = b"".join(chunks)
            del chunks
            await trio.to_thread.run_sync(
                lambda: install_history(self.snap_dir, self.log_dir, zxid, blob, fsync=self.force_sync)
            )
        except OSError as exc:
            raise StorageFailed(f"installing snapshot {zxid:#x} failed: {exc!r}") from exc
        finally:
            self._rewriting = None
        self._snapshots += 1
        self._after_rewrite(zxid)

    async def _quiesce(self, what: str) -> None:
        """Refuse appends, make every earlier one durable, let a running snapshot end."""
        if self._rewriting is not None:
            raise StorageFailed(f"{what} during {self._rewriting}")
        if self._closed:
            raise StorageFailed("storage is closed")
        self._rewriting = what
        try:
            await self.sync()
            await self.wait_snapshot_done()
        except BaseException:
            self._rewriting = None
            raise
        assert not self._flushing
        # the writer is idle: no descriptor into a file about to change
        self._log.close()

    def _after_rewrite(self, last: int) -> None:
        """The history on disk now ends at ``last`` and no log file is open."""
        self._last_zxid = self._durable_zxid = last
        self._durable_bound = (None, 0)
        self._roll_requested = True
        self._log_count = 0

    # --------------------------------------------------------------- snapshots

    def _write_snapshot_sync(self, tree: DataTree, sessions: dict[int, int], zxid: int) -> str:
        """Blocking snapshot of a tree nobody else is using (restore of an empty dir)."""
        blob = b"".join(encode_snapshot(sessions, tree.acl_cache.items(), tree.snapshot_nodes()))
        path = os.path.join(self.snap_dir, snapshot_name(zxid))
        atomic_write(path, blob, fsync=self.force_sync)
        self._snapshots += 1
        return path

    async def _snapshot_task(self, tree: DataTree, sessions: dict[int, int]) -> str | None:
        try:
            for _ in range(_SNAPSHOT_ATTEMPTS):
                try:
                    return await self._write_snapshot(tree, sessions)
                except _AclMissing as exc:
                    log.info("snapshot raced an ACL change (%s); retrying", exc)
            log.error("snapshot skipped: ACLs kept changing while it was written")
            return None
        except OSError as exc:
            # a failed snapshot loses nothing: the log still holds every txn
            log.error("snapshot failed: %r", exc)
            return None
        finally:
            self._snapshotting = False
            self._snapshot_done.set()

    async def _write_snapshot(self, tree: DataTree, sessions: dict[int, int]) -> str:
        if self.fork_snapshots:
            try:
                return await self._write_snapshot_forked(tree, sessions)
            except _ForkUnavailable as exc:
                log.warning("forked snapshots unavailable (%s): snapshots are written in the event loop", exc)
                self.fork_snapshots = False
        return await self._write_snapshot_in_loop(tree, sessions)

    async def _write_snapshot_forked(self, tree: DataTree, sessions: dict[int, int]) -> str:
        """Write the snapshot from a forked child: the other core does the work.

        ``fork()`` gives the child a copy-on-write image of the tree as it is at
        this instant, so the snapshot is consistent (a fuzzy snapshot with no
        fuzz: every txn up to ``zxid`` and none after).  The child encodes,
        writes, fsyncs, renames and exits; the event loop only waits for its
        pidfd.  Cancelled (the store is stopping): the child is killed and
        its temp file removed; the log still has every txn.

        Raises:
            OSError: the child failed (its reason is on stderr).
            _ForkUnavailable: no fork/pidfd here (the caller falls back).
        """
        zxid = tree.last_processed_zxid
        path = os.path.join(self.snap_dir, snapshot_name(zxid))
        tmp = path + ".tmp"
        if not hasattr(os, "pidfd_open") or not hasattr(os, "fork"):
            raise _ForkUnavailable("os.fork/os.pidfd_open missing")
        log.info("Snapshotting: %#x to %s (forked writer)", zxid, path)
        parent = os.getpid()
        with warnings.catch_warnings():
            # 3.12+ warns that fork() with threads running may deadlock the
            # child: ours takes no lock another thread could hold (no logging,
            # no trio, no threading), only the tree, the encoder and os.*.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns (coverage cannot see it)
            _snapshot_child(parent, tree, sessions, tmp, path, self.snap_dir, self.force_sync)
        try:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError as exc:
                _reap(pid, kill=True)
                raise _ForkUnavailable(f"pidfd_open: {exc}") from exc
            try:
                await trio.lowlevel.wait_readable(pidfd)  # readable once the child exited
            finally:
                os.close(pidfd)
            code = _reap(pid)
        except BaseException:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                _reap(pid, kill=True)
            _unlink_quietly(tmp)
            raise
        if code != 0:
            _unlink_quietly(tmp)
            raise OSError(f"snapshot writer (pid {pid}) exited with status {code}")
        self._snapshots += 1
        return path

    async def _write_snapshot_in_loop(self, tree: DataTree, sessions: dict[int, int]) -> str:
        """The fuzzy snapshot written by this process, a chunk per step, beside the pipeline."""
        zxid = tree.last_processed_zxid
        acl_items = tree.acl_cache.items()
        known = {ref for ref, _ in acl_items}
        path = os.path.join(self.snap_dir, snapshot_name(zxid))
        tmp = path + ".tmp"
        log.info("Snapshotting: %#x to %s", zxid, path)

        def nodes() -> Any:
            # Set order, not Java HashSet order: readers (ZooKeeper's included) only
            # need parents before children, and ordering a node's children the Java
            # way hashes every name in Python at once (~0.3 s of event loop for a
            # node with 100k children, at every snapshot).
            for p, node in tree.snapshot_nodes(java_order=False):
                if node.acl != -1 and node.acl not in known:
                    raise _AclMissing(f"{p} uses ACL id {node.acl}")
                yield p, node

        f = await trio.to_thread.run_sync(open, tmp, "wb")
        try:
            for chunk in encode_snapshot(sessions, acl_items, nodes(), chunk_size=_SNAPSHOT_CHUNK):
                await trio.to_thread.run_sync(f.write, chunk)
            await trio.to_thread.run_sync(self._finish_snapshot, f, tmp, path)
        except BaseException:
            f.close()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_unlink_quietly, tmp)
            raise
        self._snapshots += 1
        return path

    def _finish_snapshot(self, f: Any, tmp: str, path: str) -> None:
        f.flush()
        if self.force_sync:
            os.fsync(f.fileno())
        f.close()
        os.replace(tmp, path)
        if self.force_sync:
            fsync_dir(self.snap_dir)


def _snapshot_child(
    parent: int, tree: DataTree, sessions: dict[int, int], tmp: str, path: str, snap_dir: str, force_sync: bool
) -> NoReturn:  # pragma: no cover - runs in the forked child
    """The forked snapshot writer: encode, write, fsync, rename, exit.  Never returns.

    Only the tree, the encoder and ``os`` calls: no logging, no trio, no
    locks (other threads of the parent do not exist here);
    :func:`~.forkchild.prepare_child` first.  (The encoder stays here, looked
    up in this module, so tests can replace it.)
    """
    code = 1
    try:
        prepare_child(parent)
        acl_items = list(tree.acl_cache.items())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for chunk in encode_snapshot(sessions, acl_items, tree.snapshot_nodes(java_order=False),
                                     chunk_size=_SNAPSHOT_CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        if force_sync:
            os.fsync(fd)
        os.close(fd)
        os.replace(tmp, path)
        if force_sync:
            fsync_dir(snap_dir)
        code = 0
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            os.write(2, f"trio-quorum snapshot writer: {exc!r}\n".encode())
    finally:
        os._exit(code)


@asynccontextmanager
async def open_file_store(data_dir: str, data_log_dir: str | None = None, **kwargs: Any) -> AsyncIterator[FileStore]:
    """A :class:`FileStore` with its own nursery for background snapshots.

    On exit the queue is flushed and fsynced and a running snapshot is
    cancelled (its temp file removed; the log still has everything).
    """
    async with trio.open_nursery() as nursery:
        store = FileStore(data_dir, data_log_dir, nursery=nursery, **kwargs)
        try:
            yield store
        finally:
            nursery.cancel_scope.cancel(reason="file store closing")
            with trio.CancelScope(shield=True):
                await store.aclose()
