"""How a leader brings one learner up to date: DIFF, TRUNC or SNAP (pure).

ZooKeeper's ``LearnerHandler.syncFollower`` + ``queueCommittedProposals`` +
``Leader.startForwarding``, as one pure function over zxids:
:func:`choose_sync` looks at the learner's last logged zxid ``L`` and the
leader's history and returns a :class:`SyncPlan`.

The leader's history, as the function sees it:

* ``committed``: the zxids of its in-memory committed log, ascending (a window:
  ZooKeeper keeps ``commitLogCount`` = 500); when not empty its last element is
  ``last`` (the leader's last committed zxid);
* ``in_flight``: zxids proposed but not committed, ascending, all > ``last``
  (ZooKeeper's ``outstandingProposals``; pass ``()`` for an observer, which
  only ever receives committed txns);
* ``base``: the zxid just before ``committed[0]`` when the window holds every
  txn after it (0 for a log complete from the start), else None (unknown);
* ``H = committed ++ in_flight``; ``bottom`` = ``base`` when known, else
  ``committed[0]`` (or ``last`` when the window is empty): the oldest point
  the leader can replay from.

The plan, by cases (``t`` = the largest zxid of H below ``L``):

==============================================  =============================
learner                                         plan
==============================================  =============================
``L == last``                                   empty DIFF, then in-flight
``L`` in the committed part of H                DIFF, then H after ``L``
``L = (e, 0)`` (an epoch start, never a txn),   DIFF, then H after ``L``
``bottom <= L <= top of H``                     (ZooKeeper's isPeerNewEpochZxid)
``L < bottom``, or an epoch start above H       SNAP at ``last``, then in-flight
``L`` > ``last`` (beyond what is committed,      TRUNC to ``last``, then in-flight
even if in flight: ZooKeeper's rule)
otherwise (``L`` not in H: the learner logged   TRUNC to ``t``, then H after ``t``
txns this leader never had, older epoch)
==============================================  =============================

Why TRUNC to ``t`` is right (ZAB's prefix property): a learner's log is a
prefix of the leader's history up to some point ``p`` followed by txns the
leader does not have, and no zxid of H lies in ``(p, L]``; so ``t == p``, the
learner holds everything of H up to ``t`` and nothing else above it.
ZooKeeper refuses a TRUNC whose target is in an older epoch than the next txn
it would send ("Cannot send TRUNC to peer ... from different epoch") and sends
a SNAP instead, because its log truncation needs the exact zxid in the file;
our :class:`~trio_quorum.quorum.zab_effects.Truncate` means "drop every txn
above ``t``", which holds across epochs, so we TRUNC there too.

Invariant (checked by the property tests): replaying the plan on any learner
log that satisfies the prefix property yields exactly the leader's history.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from trio_quorum.quorum.zab_zxid import is_epoch_start, zxid_hex

__sans_io__ = True

__all__ = ["SyncMode", "SyncPlan", "choose_sync"]


class SyncMode(enum.Enum):
    """ZooKeeper's ``SyncMode`` for the learner side (the packet the leader starts with)."""

    DIFF = "diff"
    TRUNC = "trunc"
    SNAP = "snap"


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What to send a learner, in this order:

    1. ``DIFF(zxid)`` / ``TRUNC(zxid)`` / ``SNAP(zxid, state at zxid)``;
    2. ``committed[committed_from:]`` as PROPOSALs followed by one COMMIT of the last;
    3. ``in_flight[in_flight_from:]`` as PROPOSALs (their COMMITs follow with the broadcast).
    """

    mode: SyncMode
    zxid: int
    committed_from: int
    in_flight_from: int


def choose_sync(
    learner_last_zxid: int,
    committed: Sequence[int],
    leader_last_zxid: int,
    in_flight: Sequence[int] = (),
    base: int | None = None,
) -> SyncPlan:
    """Choose how to sync a learner whose last logged zxid is ``learner_last_zxid``.

    Args:
        learner_last_zxid: from the learner's ACKEPOCH.
        committed: the leader's committed-log window (zxids, ascending).
        leader_last_zxid: the leader's last committed zxid.
        in_flight: outstanding proposals (zxids, ascending, all > leader_last_zxid).
        base: the zxid just before ``committed[0]`` if the window holds every
            txn after it (ZooKeeper reads its on-disk log for this; we only
            know it while the window was never trimmed), else None.

    Raises:
        ValueError: the inputs are not a history (unsorted, window not ending at
            ``leader_last_zxid``, in-flight not above it).
    """
    L, last = learner_last_zxid, leader_last_zxid
    nc, nf = len(committed), len(in_flight)
    if nc and committed[-1] != last:
        raise ValueError(f"committed log ends at {zxid_hex(committed[-1])}, not at {zxid_hex(last)}")
    if nf and in_flight[0] <= last:
        raise ValueError(f"in-flight proposal {zxid_hex(in_flight[0])} is not above {zxid_hex(last)}")

    if L == last:
        return SyncPlan(SyncMode.DIFF, last, nc, 0)
    if base is not None and base > (committed[0] if nc else last):
        raise ValueError(f"base {zxid_hex(base)} is above the committed log")
    bottom = base if base is not None else committed[0] if nc else last
    top = in_flight[-1] if nf else last
    if L < bottom or (L > top and is_epoch_start(L)):
        return SyncPlan(SyncMode.SNAP, last, nc, 0)

    if L < last:
        i = bisect_right(committed, L)  # committed[i-1] <= L < committed[i]
        # i == 0 only when L >= base (the checks above), so base is known then.
        prev = committed[i - 1] if i else base
        assert prev is not None
        if prev == L or is_epoch_start(L):
            return SyncPlan(SyncMode.DIFF, last, i, 0)
        return SyncPlan(SyncMode.TRUNC, prev, i, 0)

    # L > last: the learner logged txns this leader has not committed (some
    # may be its proposals in flight).  ZooKeeper's rule: TRUNC to the last
    # committed, then every proposal in flight again.  A DIFF would leave them
    # in the learner's tree (a learner applies its whole log when a role
    # ends), served and snapshotted before they commit, and perhaps never.
    if is_epoch_start(L):
        return SyncPlan(SyncMode.DIFF, last, nc, bisect_right(in_flight, L))
    return SyncPlan(SyncMode.TRUNC, last, nc, 0)

