"""The txn log file and the syncer thread of a :class:`~.filestore.FileStore`.

Group commit.  :meth:`FileStore.append` encodes the entry at once, in the event
loop (it is cheap and keeps the bytes immutable), and queues it as a
:class:`Segment`.  :meth:`FileStore.sync` makes everything queued so far
durable: if no flush is in flight, the caller takes the whole queue and hands
it to the store's *syncer thread* (:meth:`TxnLogWriter.submit`), which does ONE
positional write plus ONE fdatasync per touched file; every caller (the one
that started the flush included) then waits for the flush to finish, and one
of them starts the next flush with whatever queued up in the meantime.  So N
concurrent appenders cost about two fsyncs, not N.

The syncer thread.  ``trio.to_thread.run_sync`` costs 110-140 µs per call on
a 2-core machine (thread-pool bookkeeping, a fresh wake-up channel per call),
which is most of a 1x1 write's latency next to a ~150 µs fdatasync.  So each
store has ONE long-lived thread, started at the first flush, fed through a
``threading.Condition`` and reporting back with
``TrioToken.run_sync_soon`` (the ``on_flushed`` callback, which sets a
``trio.Event``): ~60 µs round trip for a no-op.  The completion runs in the
event loop as that callback, not in the task that started the flush, so a
waiter may be cancelled at any moment: its flush still completes and is
accounted, and nothing is left half-done.  The thread is non-daemon and
stopped by :meth:`TxnLogWriter.stop`; as a safety net for a store that is
never closed (a crashed caller) it also exits after ``SYNCER_IDLE_S`` without
work and is started again by the next flush, so it can delay interpreter exit
by at most that long.

Invariants:

* Only one thread at a time touches the open log file: the syncer thread
  while a flush is in flight, else the event loop (``FileStore.sync_inline``),
  never both (the store does not write inline while ``_flushing``).
* A log file is named after its first zxid and gets its header before it is
  extended (preallocated): a crash in between must not leave a file of zeros
  with no header.  Files grow in ``pre_alloc_size`` steps (sparse zero
  padding, as ZooKeeper's ``FilePadding``) so fdatasync rarely has metadata
  to write.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import trio

from .files import fsync_dir
from .txnlog import DEFAULT_PRE_ALLOC_SIZE, encode_file_header, log_name, padded_size

__all__ = ["SYNCER_IDLE_S", "Segment", "TxnLogWriter"]

log = logging.getLogger("trio_quorum.persistence")

# Idle seconds after which the syncer thread exits (restarted on demand); only
# matters for a store nobody closes, and bounds how long it can hold up exit.
SYNCER_IDLE_S = 2.0


class Segment:
    """Entries bound for one log file; ``new_file`` starts ``log.<first_zxid>``."""

    __slots__ = ("new_file", "first_zxid", "buf")

    def __init__(self, new_file: bool, first_zxid: int) -> None:
        self.new_file = new_file
        self.first_zxid = first_zxid
        self.buf = bytearray()


# One flush for the syncer thread: segments, the append count they cover,
# and the token of the trio run to report back to.
_FlushJob = tuple[list[Segment], int, trio.lowlevel.TrioToken]


class TxnLogWriter:
    """Writes segments to ``log.<zxid>`` files in ``log_dir``, inline or on its syncer thread.

    Args:
        on_flushed: ``(target, exc)`` called in the event loop when a submitted
            flush is done (``exc`` is what it raised, or ``None``).
        fsync, pwrite, clock: injectable ``os.fdatasync``, ``os.pwrite`` and
            monotonic clock (fault tests, the slow-fsync warning).
    """

    def __init__(
        self,
        log_dir: str,
        *,
        on_flushed: Callable[[int, BaseException | None], None],
        dbid: int = 0,
        force_sync: bool = True,
        pre_alloc_size: int = DEFAULT_PRE_ALLOC_SIZE,
        fsync_warning_ms: int = 1000,
        fsync: Callable[[int], None] | None = None,
        pwrite: Callable[[int, Any, int], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log_dir = log_dir
        self.force_sync = force_sync
        self.pre_alloc_size = pre_alloc_size
        self.fsync_warning_ms = fsync_warning_ms
        self._on_flushed = on_flushed
        self._dbid = dbid
        self._fsync: Callable[[int], None] = fsync or os.fdatasync
        self._pwrite = pwrite or os.pwrite
        self._clock = clock
        # syncer thread (jobs in through _jobs under _jobs_cond; None = stop)
        self._jobs_cond = threading.Condition(threading.Lock())
        self._jobs: list[_FlushJob | None] = []
        self._syncer: threading.Thread | None = None
        # the open log file
        self._fd: int | None = None
        self._path: str | None = None
        self._pos = 0
        self._size = 0
        # statistics
        self.flushes = 0
        self.fsyncs = 0
        self.bytes_written = 0
        self.last_fsync_ms = 0.0
        self.slow_fsyncs = 0

    def submit(self, segments: list[Segment], target: int) -> None:
        """Hand ``segments`` to the syncer thread; ``on_flushed(target, ...)`` follows."""
        job: _FlushJob = (segments, target, trio.lowlevel.current_trio_token())
        with self._jobs_cond:
            self._jobs.append(job)
            if self._syncer is None:
                self._syncer = threading.Thread(
                    target=self._syncer_main, name=f"trio-quorum-syncer {self.log_dir}", daemon=False
                )
                self._syncer.start()
            else:
                self._jobs_cond.notify()

    async def stop(self) -> None:
        """Stop the syncer thread after the flush it is doing (if any)."""
        with self._jobs_cond:
            thread = self._syncer
            if thread is None:
                return
            self._syncer = None
            self._jobs.append(None)
            self._jobs_cond.notify()
        await trio.to_thread.run_sync(thread.join)

    def position(self) -> tuple[str | None, int]:
        """``(path, end of the data written)`` of the open log file (call while no flush runs)."""
        return (self._path, self._pos) if self._fd is not None else (None, 0)

    def close(self) -> None:
        """Close the open log file (after :meth:`stop`: the thread must not be using it)."""
        fd, self._fd = self._fd, None
        self._path = None
        if fd is not None:
            os.close(fd)

    def _syncer_main(self) -> None:
        """Syncer thread: run flush jobs until told to stop (or idle too long)."""
        cond, jobs = self._jobs_cond, self._jobs
        while True:
            with cond:
                if not jobs:
                    cond.wait(SYNCER_IDLE_S)
                    if not jobs:
                        # under the lock, so submit sees None and starts a new thread
                        self._syncer = None
                        return
                job = jobs.pop(0)
            if job is None:
                return
            segments, target, token = job
            exc: BaseException | None = None
            try:
                self.write_segments(segments)
            except BaseException as e:  # every waiter gets it as StorageFailed
                exc = e
            try:
                token.run_sync_soon(self._on_flushed, target, exc)
            except trio.RunFinishedError:
                # The run that asked is gone (its store was never closed), so
                # no task can wait or race us: account it here, so that a
                # later run using this store does not find a flush in flight.
                self._on_flushed(target, exc)

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
        self.bytes_written += pos - self._pos
        self._pos = pos

    def write_segments(self, segments: list[Segment]) -> None:
        """Write every segment, then one fdatasync per touched file (blocking)."""
        to_sync: list[tuple[int, str]] = []
        for seg in segments:
            if seg.new_file or self._fd is None:
                if self._fd is not None:
                    to_sync.append((self._fd, self._path or "?"))
                self._open_log(seg.first_zxid)
            self._write_at(seg.buf)
        if self._fd is not None:
            to_sync.append((self._fd, self._path or "?"))
        self.flushes += 1
        for fd, _path in to_sync:
            if self.force_sync:
                start = self._clock()
                self._fsync(fd)
                self.fsyncs += 1
                ms = (self._clock() - start) * 1000.0
                self.last_fsync_ms = ms
                if ms > self.fsync_warning_ms:
                    self.slow_fsyncs += 1
                    log.warning(
                        "fsync-ing the write ahead log in %s took %dms which will adversely effect operation "
                        "latency.File size is %d bytes. See the ZooKeeper troubleshooting guide",
                        threading.current_thread().name,
                        ms,
                        os.fstat(fd).st_size,
                    )
            if fd != self._fd:
                os.close(fd)
