"""Old snapshot and log removal (``PurgeTxnLog`` / ``DatadirCleanupManager``).

Rule (ZooKeeper's): keep the newest N (>= 3) snapshots that look complete;
let X be the zxid of the oldest one kept; delete every snapshot and log whose
name zxid is < X, except the newest log starting at or before X (it may hold
the txns right after snapshot X).  So every kept snapshot stays recoverable.
"""

from __future__ import annotations

import logging
import os

import trio

from .files import list_logs, list_snapshots, logs_for, snapshot_complete, version_dir

__all__ = ["MIN_RETAIN", "purge", "run_purge_timer"]

log = logging.getLogger("trio_quorum.persistence")

MIN_RETAIN = 3


def purge(data_dir: str, data_log_dir: str | None = None, retain: int = MIN_RETAIN) -> list[str]:
    """Delete what the newest ``retain`` snapshots do not need; return the removed paths.

    Raises:
        ValueError: ``retain`` < 3.
    """
    if retain < MIN_RETAIN:
        raise ValueError(f"snapRetainCount must be at least {MIN_RETAIN}, got {retain}")
    snap_dir = version_dir(data_dir)
    log_dir = version_dir(data_log_dir or data_dir)
    kept = [(z, p) for z, p in reversed(list_snapshots(snap_dir)) if snapshot_complete(p)][:retain]
    if not kept:
        return []
    least = kept[-1][0]
    logs = list_logs(log_dir)
    needed = {p for _, p in logs_for(logs, least)}
    doomed = [p for z, p in logs if z < least and p not in needed]
    doomed += [p for z, p in list_snapshots(snap_dir) if z < least]
    removed = []
    for p in doomed:
        try:
            os.unlink(p)
        except OSError as exc:
            log.warning("Failed to remove %s: %s", p, exc)
        else:
            log.info("Removing file: %s", p)
            removed.append(p)
    return removed


async def run_purge_timer(
    data_dir: str,
    data_log_dir: str | None,
    snap_retain_count: int,
    purge_interval_hours: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The purge-timer actor: purge now, then every ``purge_interval_hours`` (0 = off).

    A failed purge is logged and retried at the next interval; it never stops
    the server.
    """
    if purge_interval_hours <= 0:
        log.info("Purge task is not scheduled.")
        task_status.started()
        return
    retain = max(MIN_RETAIN, snap_retain_count)
    log.info("autopurge.snapRetainCount set to %d, autopurge.purgeInterval set to %s", retain, purge_interval_hours)
    task_status.started()
    while True:
        try:
            await trio.to_thread.run_sync(purge, data_dir, data_log_dir, retain)
        except OSError as exc:
            log.error("Error occurred while purging: %r", exc)
        await trio.sleep(purge_interval_hours * 3600)
