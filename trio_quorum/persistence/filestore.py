"""Durable storage on Apache ZooKeeper 3.8's on-disk format (``FileTxnSnapLog``).

:class:`FileStore` implements :class:`~trio_quorum.persistence.api.Storage`.

Group commit.  :meth:`FileStore.append` encodes the entry at once, in the event
loop (it is cheap and keeps the bytes immutable), and queues it.
:meth:`FileStore.sync` makes everything queued so far durable: if no flush is
in flight, the caller takes the whole queue and hands it to the store's
*syncer thread*, which does ONE positional write plus ONE fdatasync per
touched file; every caller (the one that started the flush included) then
waits for the flush to finish, and one of them starts the next flush with
whatever queued up in the meantime.  So N concurrent appenders cost about two
fsyncs, not N.

The syncer thread.  ``trio.to_thread.run_sync`` costs 110-140 µs per call on
a 2-core machine (thread-pool bookkeeping, a fresh wake-up channel per call),
which is most of a 1x1 write's latency next to a ~150 µs fdatasync.  So each
store has ONE long-lived thread, started at the first flush, fed through a
``threading.Condition`` and reporting back with
``TrioToken.run_sync_soon`` (which sets a ``trio.Event``): ~60 µs round trip
for a no-op.  The completion (``_durable`` moves, or the store fails) runs in
the event loop as that callback, not in the task that started the flush, so a
waiter may be cancelled at any moment: its flush still completes and is
accounted, and nothing is left half-done.  The thread is non-daemon and
stopped by :meth:`FileStore.aclose`; as a safety net for a store that is never
closed (a crashed caller) it also exits after ``_SYNCER_IDLE_S`` without work
and is started again by the next flush, so it can delay interpreter exit by
at most that long.

Invariants:

* ``_durable <= _appended``: counts of entries; ``sync`` returns only once
  ``_durable`` covers every entry appended before it was called.
* Only the syncer thread touches the open log file (until ``aclose`` has
  stopped it); the event loop only builds byte segments.  Taking the queue and
  handing it to the thread is one synchronous step, so no entry is dropped
  half-way, and a cancelled ``sync`` does not cancel the write.
* After any write or fsync error the store is *failed*: every waiter and every
  later ``append`` and ``sync`` raise :class:`StorageFailed`; nothing after
  the last good sync is acknowledged.
* A log file is named after its first zxid and is started after a restore
  (never appending to a file with a torn tail) and after every snapshot trigger
  (the roll).  Files grow in ``pre_alloc_size`` steps (sparse zero padding, as
  ZooKeeper's ``FilePadding``) so fdatasync rarely has metadata to write.

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
import gc
import logging
import os
import random
import signal
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from ..protocol.consts import KeeperError, OpCode
from ..protocol.txn import CreateSessionTxn, TxnDigest, TxnHeader, TxnRecord
from .api import CorruptStorage, StorageFailed
from .files import (
    LogTail,
    atomic_write,
    fsync_dir,
    list_logs,
    load_newest_snapshot,
    read_log,
    version_dir,
)
from .snapshot import encode_snapshot, snapshot_name
from .txnlog import DEFAULT_PRE_ALLOC_SIZE, append_entry, encode_file_header, log_name, padded_size

if TYPE_CHECKING:
    from ..core.datatree import DataTree

__all__ = ["FileStore", "FileStoreStatistics", "open_file_store"]

log = logging.getLogger("trio_quorum.persistence")

_SNAPSHOT_CHUNK = 256 * 1024
_SNAPSHOT_ATTEMPTS = 3
# Idle seconds after which the syncer thread exits (restarted on demand); only
# matters for a store nobody closes, and bounds how long it can hold up exit.
_SYNCER_IDLE_S = 2.0

# One flush for the syncer thread: segments, the _appended count they cover,
# and the token of the trio run to report back to.
_FlushJob = tuple[list["_Segment"], int, trio.lowlevel.TrioToken]


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


class _Segment:
    """Entries bound for one log file; ``new_file`` starts ``log.<first_zxid>``."""

    __slots__ = ("new_file", "first_zxid", "buf")

    def __init__(self, new_file: bool, first_zxid: int) -> None:
        self.new_file = new_file
        self.first_zxid = first_zxid
        self.buf = bytearray()


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
        self._fsync: Callable[[int], None] = fsync or os.fdatasync
        self._pwrite = pwrite or os.pwrite
        self._clock = clock
        self._rng = rng or random.Random()
        self._dbid = dbid
        #: Background snapshots are written by a forked child (``None``: where
        #: ``os.fork`` and ``os.pidfd_open`` exist); else in the event loop.
        self.fork_snapshots = (
            fork_snapshots if fork_snapshots is not None else hasattr(os, "fork") and hasattr(os, "pidfd_open")
        )
        self._rand_roll = self._rng.randrange(max(1, snap_count // 2))
        # queue (event loop side)
        self._segments: list[_Segment] = []
        self._roll_requested = True
        self._appended = 0
        self._durable = 0
        self._last_zxid = 0
        self._log_count = 0
        self._failed: BaseException | None = None
        self._closed = False
        self._flushing = False
        self._flush_done = trio.Event()
        # syncer thread (jobs in through _jobs under _jobs_cond; None = stop)
        self._jobs_cond = threading.Condition(threading.Lock())
        self._jobs: list[_FlushJob | None] = []
        self._syncer: threading.Thread | None = None
        # log file (flusher thread side)
        self._fd: int | None = None
        self._path: str | None = None
        self._pos = 0
        self._size = 0
        # snapshots
        self._snapshotting = False
        self._snapshot_done = trio.Event()
        self._snapshot_done.set()
        # statistics
        self._flushes = 0
        self._fsyncs = 0
        self._bytes = 0
        self._snapshots = 0
        self._last_fsync_ms = 0.0
        self._slow_fsyncs = 0

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
            self._flushes,
            self._fsyncs,
            self._bytes,
            self._snapshots,
            self._last_fsync_ms,
            self._slow_fsyncs,
        )

    async def restore(self, tree: DataTree, sessions: dict[int, int]) -> int:
        """Load the newest valid snapshot and replay the log after it.

        An empty data directory gets ``snapshot.0`` of the tree as it is (as
        ZooKeeper does).  A torn last log record is truncated away (logged).

        Raises:
            CorruptStorage: corruption in the middle of a log, no valid
                snapshot among existing ones, or logs without any snapshot.
        """
        zxid = await trio.to_thread.run_sync(self._restore_sync, tree, sessions)
        self._last_zxid = zxid
        self._roll_requested = True
        return zxid

    def append(self, hdr: TxnHeader, rec: TxnRecord, digest: TxnDigest | None = None) -> None:
        """Queue one transaction; durable once a later :meth:`sync` returns."""
        if self._failed is not None:
            raise StorageFailed(f"storage failed earlier: {self._failed!r}")
        if self._closed:
            raise StorageFailed("storage is closed")
        segments = self._segments
        if self._roll_requested or not segments:
            segments.append(_Segment(self._roll_requested, hdr.zxid))
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
            self._write_segments(segments)
        except BaseException as exc:
            self._failed = exc
            log.error("txn log write failed; refusing further writes: %r", exc)
            raise StorageFailed(f"storage failed: {exc!r}") from exc
        self._durable = target
        return True

    def snapshot_soon(self, tree: DataTree, sessions: dict[int, int]) -> bool:
        """:meth:`maybe_snapshot` without awaiting: start a due snapshot in the background nursery.

        Returns False when a snapshot is due but there is no nursery to run it
        in (nothing is done: a later :meth:`maybe_snapshot` takes it).
        """
        if self._log_count <= self.snap_count // 2 + self._rand_roll:
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
                await self._stop_syncer()
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)

    # ------------------------------------------------------------ group commit

    def _start_flush(self) -> None:
        """Hand the whole queue to the syncer thread (one synchronous step)."""
        self._flushing = True
        segments, self._segments = self._segments, []
        job: _FlushJob = (segments, self._appended, trio.lowlevel.current_trio_token())
        with self._jobs_cond:
            self._jobs.append(job)
            if self._syncer is None:
                self._syncer = threading.Thread(
                    target=self._syncer_main, name=f"trio-quorum-syncer {self.log_dir}", daemon=False
                )
                self._syncer.start()
            else:
                self._jobs_cond.notify()

    def _flush_finished(self, target: int, exc: BaseException | None) -> None:
        """Event loop (via ``run_sync_soon``): account a flush, wake its waiters."""
        if exc is not None:
            if self._failed is None:
                self._failed = exc
                log.error("txn log write failed; refusing further writes: %r", exc)
        else:
            self._durable = target
        self._flushing = False
        done, self._flush_done = self._flush_done, trio.Event()
        done.set()

    def _syncer_main(self) -> None:
        """Syncer thread: run flush jobs until told to stop (or idle too long)."""
        cond, jobs = self._jobs_cond, self._jobs
        while True:
            with cond:
                if not jobs:
                    cond.wait(_SYNCER_IDLE_S)
                    if not jobs:
                        # under the lock, so _start_flush sees None and starts a new thread
                        self._syncer = None
                        return
                job = jobs.pop(0)
            if job is None:
                return
            segments, target, token = job
            exc: BaseException | None = None
            try:
                self._write_segments(segments)
            except BaseException as e:  # every waiter gets it as StorageFailed
                exc = e
            try:
                token.run_sync_soon(self._flush_finished, target, exc)
            except trio.RunFinishedError:
                # The run that asked is gone (its store was never closed), so
                # no task can wait or race us: account it here, so that a
                # later run using this store does not find a flush in flight.
                self._flush_finished(target, exc)

    async def _stop_syncer(self) -> None:
        with self._jobs_cond:
            thread = self._syncer
            if thread is None:
                return
            self._syncer = None
            self._jobs.append(None)
            self._jobs_cond.notify()
        await trio.to_thread.run_sync(thread.join)

    def _open_log(self, zxid: int) -> None:
        os.makedirs(self.log_dir, exist_ok=True)
        path = os.path.join(self.log_dir, log_name(zxid))
        log.info("Creating new log file: %s", log_name(zxid))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self._fd, self._path = fd, path
        header = encode_file_header(self._dbid)
        self._pos = 0
        self._size = 0
        # The header goes in before the file is extended (preallocated): a
        # crash in between must not leave a file of zeros with no header.
        self._write_at(header, extend=False)
        self._size = self._pos
        if self.force_sync:
            fsync_dir(self.log_dir)

    def _write_at(self, data: bytes | bytearray, *, extend: bool = True) -> None:
        fd = self._fd
        assert fd is not None
        new_size = padded_size(self._pos + len(data), self._size, self.pre_alloc_size)
        if extend and new_size != self._size:
            os.ftruncate(fd, new_size)
            self._size = new_size
        view = memoryview(data)
        pos = self._pos
        while view:
            n = self._pwrite(fd, view, pos)
            if n <= 0:
                raise OSError(f"short write to {self._path}")
            pos += n
            view = view[n:]
        self._bytes += pos - self._pos
        self._pos = pos

    def _write_segments(self, segments: list[_Segment]) -> None:
        """Worker thread: write every segment, then one fdatasync per touched file."""
        to_sync: list[tuple[int, str]] = []
        for seg in segments:
            if seg.new_file or self._fd is None:
                if self._fd is not None:
                    to_sync.append((self._fd, self._path or "?"))
                self._open_log(seg.first_zxid)
            self._write_at(seg.buf)
        if self._fd is not None:
            to_sync.append((self._fd, self._path or "?"))
        self._flushes += 1
        for fd, _path in to_sync:
            if self.force_sync:
                start = self._clock()
                self._fsync(fd)
                self._fsyncs += 1
                ms = (self._clock() - start) * 1000.0
                self._last_fsync_ms = ms
                if ms > self.fsync_warning_ms:
                    self._slow_fsyncs += 1
                    log.warning(
                        "fsync-ing the write ahead log in %s took %dms which will adversely effect operation "
                        "latency.File size is %d bytes. See the ZooKeeper troubleshooting guide",
                        threading.current_thread().name,
                        ms,
                        os.fstat(fd).st_size,
                    )
            if fd != self._fd:
                os.close(fd)

    # ---------------------------------------------------------------- restore

    def _restore_sync(self, tree: DataTree, sessions: dict[int, int]) -> int:
        os.makedirs(self.snap_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        # A crash mid-snapshot leaves its temp file; nothing reads it and no
        # snapshot is being written before we serve, so it is safe to drop here
        # (purge could not: it runs beside live snapshots).
        for name in os.listdir(self.snap_dir):
            if name.startswith("snapshot.") and name.endswith(".tmp"):
                log.info("Removing %s, left by an interrupted snapshot", name)
                os.unlink(os.path.join(self.snap_dir, name))
        found = load_newest_snapshot(self.snap_dir)
        if found is None:
            if list_logs(self.log_dir):
                raise CorruptStorage(
                    f"No snapshot found in {self.snap_dir}, but there are log entries in {self.log_dir}. "
                    "Something is broken!"
                )
            snap_zxid = 0
            self._write_snapshot_sync(tree, sessions, 0)
        else:
            snap_zxid, snap, path = found
            log.info("Reading snapshot %s", path)
            try:
                loaded = tree.load_snapshot(snap.acls, snap.iter_nodes(), snap_zxid)
            except (KeyError, ValueError) as exc:
                raise CorruptStorage(f"{path}: invalid data tree: {exc}") from exc
            _adopt(tree, loaded)
            sessions.clear()
            sessions.update(snap.sessions)
        last = snap_zxid
        tail = LogTail()
        for e in read_log(self.log_dir, snap_zxid + 1, tail):
            hdr, rec = e.hdr, e.rec
            if hdr.type == OpCode.createSession and isinstance(rec, CreateSessionTxn):
                sessions[hdr.client_id] = rec.timeout
            elif hdr.type == OpCode.closeSession:
                sessions.pop(hdr.client_id, None)
            try:
                tree.apply(hdr, rec)
            except KeeperError as exc:
                # replay over a fuzzy snapshot: the change may already be there
                log.debug("replay of zxid %#x: %r", hdr.zxid, exc)
            last = max(last, hdr.zxid)
        if tail.torn is not None and tail.path is not None:
            log.warning("Truncating torn txn log %s at offset %d (%s)", tail.path, tail.end, tail.torn)
            if tail.end < 16:
                os.unlink(tail.path)
            else:
                with open(tail.path, "r+b") as f:
                    f.truncate(tail.end)
                    os.fsync(f.fileno())
        return max(last, tail.last_zxid)

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


def _adopt(tree: DataTree, loaded: DataTree) -> None:
    # DataTree.load_snapshot builds a new tree; Storage.restore fills the caller's
    if loaded is not tree and loaded is not None:
        # The caller's configuration of the tree (its watch-event ACL filter)
        # survives; everything the snapshot holds is replaced.
        keep = tree.watch_acl_filter
        tree.__dict__.clear()
        tree.__dict__.update(loaded.__dict__)
        tree.watch_acl_filter = keep


class _ForkUnavailable(Exception):
    pass


def _snapshot_child(
    parent: int, tree: DataTree, sessions: dict[int, int], tmp: str, path: str, snap_dir: str, force_sync: bool
) -> NoReturn:  # pragma: no cover - runs in the forked child
    """The forked snapshot writer: encode, write, fsync, rename, exit.  Never returns.

    Only the tree, the encoder and ``os`` calls: no logging, no trio, no
    locks (other threads of the parent do not exist here).  Every inherited fd
    but stdio is closed first, so a client socket the parent closes is really
    closed (not kept open by this process).  It dies with the parent.
    """
    code = 1
    try:
        gc.disable()  # short-lived, and a collection would touch (copy) every page
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        os.closerange(3, _max_fd())
        _die_with_parent(parent)
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


def _reap(pid: int, *, kill: bool = False) -> int:
    """Reap an exited child (after its pidfd turned readable), or kill it first; its exit code."""
    if kill:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 65536


def _die_with_parent(parent: int) -> None:  # pragma: no cover - runs in the forked child
    """Linux: SIGKILL this child when the parent dies (a SIGKILLed server leaves no writer)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


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
