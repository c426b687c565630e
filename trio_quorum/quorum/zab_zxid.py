"""zxid arithmetic, ZooKeeper's ``ZxidUtils`` (sans-IO).

A zxid is a 64-bit transaction id ``epoch << 32 | counter``: the high half is
the epoch of the leader that proposed it, the low half counts that leader's
proposals from 1.  ``(epoch, 0)`` is never a transaction: it names "the start
of epoch ``epoch``" (NEWLEADER and LEADERINFO carry it).

Invariants:

* zxids of one history are strictly increasing, so comparing zxids compares
  positions in the history (across epochs too).
* A leader never proposes a zxid whose counter is ``0xffffffff``: as in
  ZooKeeper (``Leader.propose``: "zxid lower 32 bits have rolled over"), the
  counter running out forces a re-election, i.e. a new epoch.
  :func:`next_zxid` raises :class:`ZxidRolloverError` instead of returning it.
"""

from __future__ import annotations

__sans_io__ = True

__all__ = [
    "COUNTER_MASK",
    "ZxidRolloverError",
    "counter_of",
    "epoch_of",
    "is_epoch_start",
    "make_zxid",
    "next_zxid",
    "zxid_hex",
]

COUNTER_MASK = 0xFFFFFFFF


class ZxidRolloverError(Exception):
    """The leader's zxid counter is exhausted; the leader must step down."""


def make_zxid(epoch: int, counter: int) -> int:
    """``epoch << 32 | counter``; both halves must fit in 32 bits (counter) / be >= 0."""
    if epoch < 0 or not 0 <= counter <= COUNTER_MASK:
        raise ValueError(f"bad zxid parts epoch={epoch} counter={counter}")
    return (epoch << 32) | counter


def epoch_of(zxid: int) -> int:
    return zxid >> 32


def counter_of(zxid: int) -> int:
    return zxid & COUNTER_MASK


def is_epoch_start(zxid: int) -> bool:
    """True for ``(epoch, 0)``: a position, never a transaction."""
    return zxid & COUNTER_MASK == 0


def next_zxid(zxid: int) -> int:
    """The zxid a leader proposes after ``zxid`` (same epoch).

    Raises:
        ZxidRolloverError: the next counter would be ``0xffffffff``.
    """
    if (zxid & COUNTER_MASK) + 1 >= COUNTER_MASK:
        raise ZxidRolloverError(
            f"zxid lower 32 bits have rolled over after {zxid_hex(zxid)}, "
            "forcing re-election, and therefore new epoch start"
        )
    return zxid + 1


def zxid_hex(zxid: int) -> str:
    return f"0x{zxid:x}"
