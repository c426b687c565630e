"""``acceptedEpoch`` / ``currentEpoch`` files (``QuorumPeer.readLongFromFile`` / ``writeLongToFile``).

Both live in ``<dataDir>/version-2/`` and hold one decimal long without a
newline.  They are replaced atomically (temp file, fsync, rename, fsync of the
directory, ZooKeeper's ``AtomicFileWritingIdiom``): after a crash the file
holds the old or the new epoch, never a mix.  These calls block; async
callers run them with ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import logging
import os

from .api import CorruptStorage, resolve_epochs
from .files import atomic_write, version_dir

__all__ = ["ACCEPTED_EPOCH", "CURRENT_EPOCH", "read_epoch", "write_epoch", "load_epochs"]

log = logging.getLogger("trio_quorum.persistence")

ACCEPTED_EPOCH = "acceptedEpoch"
CURRENT_EPOCH = "currentEpoch"


def read_epoch(data_dir: str, name: str) -> int | None:
    """The epoch stored in ``name`` (:data:`ACCEPTED_EPOCH` or :data:`CURRENT_EPOCH`), ``None`` if absent.

    Raises:
        CorruptStorage: the file exists but does not hold a decimal long.
    """
    path = os.path.join(version_dir(data_dir), name)
    try:
        with open(path, "rb") as f:
            raw = f.read(64)
    except FileNotFoundError:
        return None
    line = raw.split(b"\n", 1)[0].strip()
    try:
        value = int(line.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise CorruptStorage(f"{path}: not a decimal epoch: {raw[:32]!r}") from None
    if not -(1 << 63) <= value < (1 << 63):
        raise CorruptStorage(f"{path}: epoch {value} out of range")
    return value


def write_epoch(data_dir: str, name: str, value: int) -> None:
    """Durably replace ``name`` with ``value``."""
    if name not in (ACCEPTED_EPOCH, CURRENT_EPOCH):
        raise ValueError(f"unknown epoch file {name!r}")
    atomic_write(os.path.join(version_dir(data_dir, create=True), name), str(int(value)).encode())


def load_epochs(data_dir: str, last_zxid: int) -> tuple[int, int] | CorruptStorage:
    """``(acceptedEpoch, currentEpoch)`` after a restore to ``last_zxid`` (``QuorumPeer.loadDataBase``).

    A missing file gets the epoch of ``last_zxid`` and is written (as
    ZooKeeper does, so the value no longer depends on the log: a later
    truncate cannot lower it).  A ``currentEpoch`` older than that epoch is
    replaced by a ``currentEpoch.tmp`` an interrupted write left, if it is
    recent enough (:func:`~.api.resolve_epochs`).

    Returns the error instead of raising it for inconsistent epochs (see
    :func:`~.api.resolve_epochs`): only a quorum peer needs them (the store
    raises it when they are read); a standalone server starts regardless,
    as ZooKeeper's standalone server never reads them.

    Raises:
        CorruptStorage: an epoch file does not hold a number.
    """
    accepted = read_epoch(data_dir, ACCEPTED_EPOCH)
    current = read_epoch(data_dir, CURRENT_EPOCH)
    tmp = None
    if current is not None and (last_zxid >> 32) > current:
        try:
            tmp = read_epoch(data_dir, CURRENT_EPOCH + ".tmp")
        except CorruptStorage:
            tmp = None
    try:
        acc, cur, write_acc, write_cur = resolve_epochs(last_zxid, accepted, current, tmp)
    except CorruptStorage as exc:
        log.warning("%s", exc)
        return exc
    if write_cur:
        log.info("%s not found or stale: setting it to %d", CURRENT_EPOCH, cur)
        write_epoch(data_dir, CURRENT_EPOCH, cur)
    if write_acc:
        log.info("%s not found: setting it to %d", ACCEPTED_EPOCH, acc)
        write_epoch(data_dir, ACCEPTED_EPOCH, acc)
    return acc, cur
