"""``acceptedEpoch`` / ``currentEpoch`` files (``QuorumPeer.readLongFromFile`` / ``writeLongToFile``).

Both live in ``<dataDir>/version-2/`` and hold one decimal long without a
newline.  They are replaced atomically (temp file, fsync, rename, fsync of the
directory, ZooKeeper's ``AtomicFileWritingIdiom``): after a crash the file
holds the old or the new epoch, never a mix.  These calls block; async
callers run them with ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import os

from .api import CorruptStorage
from .files import atomic_write, version_dir

__all__ = ["ACCEPTED_EPOCH", "CURRENT_EPOCH", "read_epoch", "write_epoch"]

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
