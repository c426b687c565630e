"""Blocking file helpers for the data directories (run them in a worker thread).

Layout (ZooKeeper's ``FileTxnSnapLog``): ``<dataDir>/version-2/snapshot.<hex>``,
``<dataLogDir>/version-2/log.<hex>``, ``<dataDir>/version-2/{acceptedEpoch,currentEpoch}``.

Invariants:

* Everything here is synchronous and may block; async callers go through
  ``trio.to_thread.run_sync``.
* Files are only replaced atomically (:func:`atomic_write`: temp name, fsync,
  rename, fsync of the directory), so a crash leaves the old or the new file.
* Logs are read through ``mmap`` so the sparse, preallocated zero tail of a
  64 MB log is never copied into memory.
"""

from __future__ import annotations

import logging
import mmap
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .api import CorruptStorage
from .snapshot import SNAP_PREFIX, Snapshot, decode_snapshot, looks_complete
from .txnlog import LOG_PREFIX, LogEntry, LogScan, has_nonzero, scan_log, zxid_from_name

__all__ = [
    "VERSION_DIR",
    "version_dir",
    "list_logs",
    "list_snapshots",
    "logs_for",
    "scan_log_file",
    "read_log",
    "LogTail",
    "load_newest_snapshot",
    "snapshot_complete",
    "atomic_write",
    "fsync_dir",
]

log = logging.getLogger("trio_quorum.persistence")

VERSION_DIR = "version-2"
#: ZooKeeper tries at most this many snapshots (``findNValidSnapshots(100)``).
MAX_SNAPSHOTS_TRIED = 100


def version_dir(base: str, *, create: bool = False) -> str:
    d = os.path.join(base, VERSION_DIR)
    if create:
        os.makedirs(d, exist_ok=True)
    return d


def _list(d: str, prefix: str) -> list[tuple[int, str]]:
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        z = zxid_from_name(name, prefix)
        if z >= 0 and not name.endswith(".tmp"):
            out.append((z, os.path.join(d, name)))
    out.sort()
    return out


def list_logs(log_dir: str) -> list[tuple[int, str]]:
    """``(zxid, path)`` of every ``log.*`` in ``log_dir`` (a version-2 dir), oldest first."""
    return _list(log_dir, LOG_PREFIX)


def list_snapshots(snap_dir: str) -> list[tuple[int, str]]:
    """``(zxid, path)`` of every ``snapshot.*``, oldest first."""
    return _list(snap_dir, SNAP_PREFIX)


def logs_for(logs: list[tuple[int, str]], zxid: int) -> list[tuple[int, str]]:
    """``FileTxnLog.getLogFiles``: the newest log starting at or before ``zxid`` and every later one."""
    start = 0
    for z, _ in logs:
        if z > zxid:
            break
        start = max(start, z)
    return [(z, p) for z, p in logs if z >= start]


def _read_view(path: str) -> tuple[memoryview | bytes, mmap.mmap | None]:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return b"", None
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return memoryview(m), m


def _nonzero_after(fd: int, view: memoryview | bytes) -> Callable[[int], bool]:
    # Preallocated logs are sparse: look for non-zero bytes only in data
    # regions (SEEK_DATA/SEEK_HOLE), so a 64 MB zero tail costs nothing.
    def check(pos: int) -> bool:
        end = len(view)
        while pos < end:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                return False  # ENXIO: no data after pos
            hole = min(end, os.lseek(fd, start, os.SEEK_HOLE))
            if has_nonzero(view[start:hole], 0):
                return True
            pos = hole
        return False

    return check


def scan_log_file(path: str, limit: int | None = None) -> LogScan:
    """Scan one log file (see :func:`txnlog.scan_log`), only its first ``limit`` bytes if given."""
    view, m = _read_view(path)
    whole = view
    if limit is not None and limit < len(view):
        view = view[:limit]
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            seekable = hasattr(os, "SEEK_DATA")
            return scan_log(view, path, nonzero_after=_nonzero_after(fd, view) if seekable else None)
        finally:
            os.close(fd)
    finally:
        if isinstance(view, memoryview):
            view.release()
        if isinstance(whole, memoryview):
            whole.release()
        if m is not None:
            m.close()


@dataclass(slots=True)
class LogTail:
    """Where the log ends: the last file, its valid end and what follows it."""

    path: str | None = None
    end: int = 0
    torn: str | None = None
    last_zxid: int = -1


def read_log(log_dir: str, from_zxid: int, tail: LogTail | None = None) -> Iterator[LogEntry]:
    """Entries with ``zxid >= from_zxid`` across ``log.*`` files in zxid order.

    A torn tail in the *last* file ends the log (recorded in ``tail`` for the
    caller to truncate).  A torn tail in an earlier file is what ZooKeeper leaves
    after a crash (it starts a new file and never truncates); it is skipped
    with a warning when the next file starts past the last valid zxid, and is
    corruption otherwise.
    """
    files = logs_for(list_logs(log_dir), from_zxid)
    last_zxid = -1
    for i, (_fz, path) in enumerate(files):
        scan = scan_log_file(path)
        for e in scan.entries:
            z = e.hdr.zxid
            if z > last_zxid:
                last_zxid = z
            if z >= from_zxid:
                yield e
        if scan.torn is not None and i + 1 < len(files):
            next_z = files[i + 1][0]
            if next_z <= last_zxid:
                raise CorruptStorage(
                    f"{path}: bad entry at offset {scan.end} ({scan.torn}) and {files[i + 1][1]} "
                    f"starts at zxid {next_z:#x} <= {last_zxid:#x}"
                )
            log.warning("%s: ignoring torn entry at offset %d (%s); a later log follows", path, scan.end, scan.torn)
        if tail is not None:
            tail.path, tail.end, tail.torn = path, scan.end, scan.torn
    if tail is not None:
        tail.last_zxid = last_zxid


def snapshot_complete(path: str) -> bool:
    """The snapshot file ends with its seal (``SnapStream.isValidSnapshot``), i.e. it is whole."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 10:
                return False
            f.seek(size - 5)
            return looks_complete(f.read(5))
    except OSError:
        return False


def load_newest_snapshot(snap_dir: str) -> tuple[int, Snapshot, str] | None:
    """The newest snapshot that parses and whose seals match, as ``(zxid, snapshot, path)``.

    Falls back to older ones (up to 100 that look complete), logging why each
    newer one was refused.  ``None`` when there is no snapshot at all.

    Raises:
        CorruptStorage: snapshots exist but none is valid.
    """
    snaps = list_snapshots(snap_dir)
    if not snaps:
        return None
    tried = 0
    for zxid, path in reversed(snaps):
        if path.endswith((".gz", ".snappy")):
            log.warning("%s: compressed snapshots are not supported, skipping", path)
            continue
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < 10:
                    raise CorruptStorage(f"{path}: too short ({size} bytes)")
                f.seek(size - 5)
                if not looks_complete(f.read(5)):
                    raise CorruptStorage(f"{path}: incomplete (no end seal)")
                tried += 1
                f.seek(0)
                data = f.read()
            return zxid, decode_snapshot(data, path), path
        except (CorruptStorage, OSError) as exc:
            log.warning("problem reading snap file %s: %s", path, exc)
        if tried >= MAX_SNAPSHOTS_TRIED:
            break
    raise CorruptStorage(f"Not able to find valid snapshots in {snap_dir}")


def fsync_dir(d: str) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data``: write ``path.tmp``, fsync, rename, fsync the directory."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if fsync:
        fsync_dir(os.path.dirname(path) or ".")
