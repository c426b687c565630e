"""Restore: the newest valid snapshot plus the txn log after it, into a caller's tree.

Blocking (the store runs it in a worker thread before anything is served).

Invariants:

* Replay starts at the snapshot's zxid + 1 and applies every logged txn in
  order; a txn that fails against the tree is one a fuzzy snapshot already
  contains, and replaying it again changes nothing (ZooKeeper's rule).
* A torn last record (a crash mid-append) is truncated away and logged;
  corruption anywhere else raises :class:`~.api.CorruptStorage`.
* Logs without any snapshot are corruption; an empty directory gets
  ``snapshot.0`` of the tree as it is (ZooKeeper does the same).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..protocol.consts import KeeperError, OpCode
from ..protocol.txn import CreateSessionTxn
from .api import CorruptStorage
from .files import LogTail, list_logs, load_newest_snapshot, read_log
from .snapshot import adopt_tree

if TYPE_CHECKING:
    from ..core.datatree import DataTree

__all__ = ["restore_into"]

log = logging.getLogger("trio_quorum.persistence")


def restore_into(
    snap_dir: str,
    log_dir: str,
    tree: DataTree,
    sessions: dict[int, int],
    write_first_snapshot: Callable[[DataTree, dict[int, int], int], object],
) -> int:
    """Fill ``tree`` and ``sessions`` from ``snap_dir``/``log_dir``; the last zxid found.

    ``write_first_snapshot(tree, sessions, 0)`` writes ``snapshot.0`` into an
    empty directory.
    """
    os.makedirs(snap_dir, exist_ok=True)
    os.makedirs(log_dir, exist_ok=True)
    # A crash mid-snapshot leaves its temp file; nothing reads it and no
    # snapshot is being written before we serve, so it is safe to drop here
    # (purge could not: it runs beside live snapshots).
    for name in os.listdir(snap_dir):
        if name.startswith("snapshot.") and name.endswith(".tmp"):
            log.info("Removing %s, left by an interrupted snapshot", name)
            os.unlink(os.path.join(snap_dir, name))
    found = load_newest_snapshot(snap_dir)
    if found is None:
        if list_logs(log_dir):
            raise CorruptStorage(
                f"No snapshot found in {snap_dir}, but there are log entries in {log_dir}. Something is broken!"
            )
        snap_zxid = 0
        write_first_snapshot(tree, sessions, 0)
    else:
        snap_zxid, snap, path = found
        log.info("Reading snapshot %s", path)
        try:
            loaded = tree.load_snapshot(snap.acls, snap.iter_nodes(), snap_zxid)
        except (KeyError, ValueError) as exc:
            raise CorruptStorage(f"{path}: invalid data tree: {exc}") from exc
        adopt_tree(tree, loaded)
        sessions.clear()
        sessions.update(snap.sessions)
    last = snap_zxid
    tail = LogTail()
    for e in read_log(log_dir, snap_zxid + 1, tail):
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

