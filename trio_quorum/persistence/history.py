"""What a ZAB peer does to a FileStore's history: DIFF reads, TRUNC, SNAP install (blocking).

The :class:`~.filestore.FileStore` runs these in a worker thread while its log
writer is idle (no flush in flight, the log file closed for truncate and
install); they only touch files by name, never the writer's descriptor.

Invariants:

* Every change is ordered so that a crash at any point leaves a directory that
  restores to *a prefix of the old history that reaches at least the target*,
  or to exactly the target: snapshots newer than the target go first (a
  restart must never pick one), then whole log files after the target, newest
  first (never a gap), then the last kept file is cut at the record boundary
  and fsynced; directories are fsynced after their deletions.
* A snapshot named ``Z`` may be fuzzy (hold txns after ``Z`` that were applied
  while it was written).  Keeping it across a truncate to ``T >= Z`` is still
  right under ZAB: a peer applies only committed txns, and a TRUNC only ever
  drops uncommitted ones, so nothing a snapshot holds is ever truncated.
* Reads are bounded by the durable end the store reports (``bound``), so a
  flush writing the active log concurrently is never observed half-way.
"""

from __future__ import annotations

import logging
import os

from ..protocol.txn import TxnHeader, TxnRecord
from .api import CorruptStorage, LogGap
from .files import (
    atomic_write,
    fsync_dir,
    list_logs,
    list_snapshots,
    logs_for,
    scan_log_file,
    snapshot_complete,
)
from .snapshot import snapshot_name
from .txnlog import FILE_HEADER_SIZE

__all__ = ["min_logged_zxid", "read_txns", "truncate_history", "install_history"]

log = logging.getLogger("trio_quorum.persistence")

Txn = tuple[TxnHeader, TxnRecord]


def min_logged_zxid(snap_dir: str, log_dir: str, durable_zxid: int) -> int:
    """``M`` such that the logs hold every txn with zxid >= ``M`` (up to the durable end).

    ``M`` is the first zxid of the oldest log file, or one past the newest
    complete snapshot older than that file when there is one: restore trusts
    the oldest log to continue from such a snapshot (ZooKeeper's
    ``getLogFiles`` does not look for gaps either), so no txn lies between
    them.  That is what lets a log that starts a new epoch, ``(e, 1)``,
    serve a DIFF from the snapshot before it.  Without a log file:
    ``durable_zxid + 1``.
    """
    return _lowest(list_logs(log_dir), snap_dir, durable_zxid)


def _lowest(logs: list[tuple[int, str]], snap_dir: str, durable_zxid: int) -> int:
    if not logs:
        return durable_zxid + 1
    first = logs[0][0]
    for z, p in reversed(list_snapshots(snap_dir)):
        if z < first and snapshot_complete(p):
            return min(first, z + 1)
    return first


def read_txns(
    snap_dir: str,
    log_dir: str,
    after: int,
    up_to: int | None,
    durable_zxid: int,
    bound: tuple[str | None, int] = (None, 0),
) -> list[Txn]:
    """Logged txns with ``after < zxid <= min(up_to, durable_zxid)``, oldest first.

    ``bound`` is ``(path, size)``: only the first ``size`` bytes of the log
    file ``path`` are durable (the one the writer appends to).  Only the files
    that can hold such txns are opened: the newest starting at or before
    ``after + 1`` and the later ones (:func:`~.files.logs_for`).

    Raises:
        LogGap: ``after < min_logged_zxid - 1``, or a needed file vanished
            (purged meanwhile).
    """
    logs = list_logs(log_dir)
    lowest = _lowest(logs, snap_dir, durable_zxid)
    if after < lowest - 1:
        raise LogGap(f"txns after {after:#x} are no longer logged (logged from zxid {lowest:#x} on)")
    hi = durable_zxid if up_to is None else min(up_to, durable_zxid)
    out: list[Txn] = []
    if hi <= after:
        return out
    bound_path, bound_size = bound
    for first, path in logs_for(logs, after + 1):
        if first > hi:
            break
        try:
            scan = scan_log_file(path, bound_size if path == bound_path else None)
        except FileNotFoundError:
            raise LogGap(f"{path} was removed while it was read (purged)") from None
        for e in scan.entries:
            z = e.hdr.zxid
            if z > hi:
                return out
            if z > after:
                out.append((e.hdr, e.rec))
    return out


def _unlink(path: str) -> None:
    log.info("Removing %s", path)
    os.unlink(path)


def truncate_history(
    snap_dir: str, log_dir: str, zxid: int, *, require_snapshot: bool = True, fsync: bool = True
) -> int:
    """``FileTxnLog.truncate`` plus the snapshots: drop every txn and snapshot after ``zxid``.

    Returns:
        the last zxid a restore of the directory now returns: the newest of
        the last kept txn and the newest kept complete snapshot.

    Raises:
        CorruptStorage: ``require_snapshot`` and no complete snapshot at or
            before ``zxid`` (a restart could not restore: the peer needs a SNAP).
        OSError: a file operation failed.
    """
    snaps = list_snapshots(snap_dir)
    kept_snaps = [z for z, p in snaps if z <= zxid and snapshot_complete(p)]
    if require_snapshot and not kept_snaps:
        oldest = f"{snaps[0][0]:#x}" if snaps else "none"
        raise CorruptStorage(
            f"cannot truncate to {zxid:#x}: no snapshot at or before it (oldest snapshot: {oldest}); "
            "a SNAP is needed"
        )
    newer = [p for z, p in snaps if z > zxid]
    for p in reversed(newer):
        _unlink(p)
    if newer and fsync:
        fsync_dir(snap_dir)
    logs = list_logs(log_dir)
    later = [p for z, p in logs if z > zxid]
    for p in reversed(later):
        _unlink(p)
    if later and fsync:
        fsync_dir(log_dir)
    kept = [p for z, p in logs if z <= zxid]
    last_logged = -1
    # Cut the last kept file after the last txn <= zxid; if that leaves it
    # without txns, drop it and look at the one before (which then ends the
    # log; its entries are all before the dropped file's first zxid).
    while kept:
        path = kept[-1]
        scan = scan_log_file(path)
        cut = scan.end
        for e in scan.entries:
            if e.hdr.zxid > zxid:
                cut = e.offset
                break
            last_logged = max(last_logged, e.hdr.zxid)
        if last_logged >= 0:
            size = os.path.getsize(path)
            if cut < size:
                log.info("Truncating %s at offset %d (after zxid %#x)", path, cut, zxid)
                with open(path, "r+b") as f:
                    f.truncate(max(cut, FILE_HEADER_SIZE))
                    if fsync:
                        os.fsync(f.fileno())
            break
        _unlink(path)
        if fsync:
            fsync_dir(log_dir)
        kept.pop()
    return max([last_logged, *kept_snaps, 0])


def install_history(snap_dir: str, log_dir: str, zxid: int, blob: bytes, *, fsync: bool = True) -> str:
    """Make the snapshot ``blob`` (state at ``zxid``) the whole history; return its path.

    Order (crash-safe, see the module invariants): truncate to ``zxid`` (so a
    crash before the snapshot lands restores a prefix of the old history),
    write ``snapshot.<zxid>`` atomically, then remove every log file (all of
    their txns are now at or before ``zxid``, and a history the leader did not
    send must not be replayed).  Older snapshots stay (purge removes them).
    """
    truncate_history(snap_dir, log_dir, zxid, require_snapshot=False, fsync=fsync)
    os.makedirs(snap_dir, exist_ok=True)
    path = os.path.join(snap_dir, snapshot_name(zxid))
    atomic_write(path, blob, fsync=fsync)
    logs = list_logs(log_dir)
    for _z, p in reversed(logs):
        _unlink(p)
    if logs and fsync:
        fsync_dir(log_dir)
    return path
