"""What the ZAB cores ask their drivers to do: effects as frozen records (sans-IO).

Every core method returns a ``list[Effect]``.  The contract a driver must keep
(docs/zab.md, "The effect contract"):

1. Execute the effects of one list **in order**, and all of them before
   feeding the core its next input.
2. ``PersistAcceptedEpoch``, ``PersistCurrentEpoch``, ``Truncate`` and
   ``ApplySnapshot`` are *synchronous*: they are durable (written, fsynced,
   renamed) before the driver executes the next effect.  The cores put them
   before any ``Send`` that depends on them, so "persist before send" holds by
   order alone.
3. ``LogTxns`` is *asynchronous* (group commit): append, fsync whenever, and
   report durability with ``core.persisted(zxid)`` = "every txn this core
   asked me to log with a zxid <= zxid is on disk".  Anything that must wait
   for that fsync (an ACK of a proposal, the ACK of NEWLEADER, the leader's
   own vote) is withheld by the core until ``persisted`` is called; that is the
   ZOOKEEPER-4646 fix built into the API rather than left to the driver.
4. Within one list every local effect comes before every ``Send``: a core
   never needs a packet to leave before a local step.
5. ``StepDown`` / ``LeaderLost`` are final: the core ignores further input;
   the driver leaves the role (the supervisor cancels the role subtree).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from trio_quorum.quorum.zab_packets import Packet, Proposal

__sans_io__ = True

__all__ = [
    "ApplySnapshot",
    "Commit",
    "DropLearner",
    "Effect",
    "Established",
    "LeaderLost",
    "LogTxns",
    "PersistAcceptedEpoch",
    "PersistCurrentEpoch",
    "ReplyPing",
    "RevalidateSession",
    "Send",
    "SendSnapshot",
    "SendToLeader",
    "SessionRevalidated",
    "StartServing",
    "StepDown",
    "SubmitRequest",
    "SyncDone",
    "TouchSessions",
    "Truncate",
    "ZabState",
]


class ZabState(enum.Enum):
    """ZooKeeper's ``QuorumPeer.ZabState`` (plus STOPPED for a core that gave up)."""

    #: Leader: collecting FOLLOWERINFO / ACKEPOCH. Learner: registering.
    DISCOVERY = "discovery"
    #: Leader: syncing learners, waiting for a quorum of NEWLEADER ACKs.
    #: Learner: receiving DIFF/TRUNC/SNAP, then NEWLEADER, then UPTODATE.
    SYNCHRONIZATION = "synchronization"
    #: Proposals flow.
    BROADCAST = "broadcast"
    #: StepDown / LeaderLost was emitted; the core takes no more input.
    STOPPED = "stopped"


# -- synchronous persistence (durable before the next effect) ---------------


@dataclass(frozen=True, slots=True)
class PersistAcceptedEpoch:
    epoch: int


@dataclass(frozen=True, slots=True)
class PersistCurrentEpoch:
    epoch: int


@dataclass(frozen=True, slots=True)
class Truncate:
    """Drop every logged txn with zxid > ``zxid`` and reload the state from the log."""

    zxid: int


@dataclass(frozen=True, slots=True)
class ApplySnapshot:
    """Replace the whole state by ``snapshot`` (the state at ``zxid``), durably."""

    zxid: int
    snapshot: object = field(compare=False, repr=False)


# -- asynchronous persistence (durability reported by core.persisted) -------


@dataclass(frozen=True, slots=True)
class LogTxns:
    """Append these proposals to the txn log, in order; fsync at leisure."""

    proposals: tuple[Proposal, ...]


# -- state machine ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Commit:
    """Apply these committed txns to the data tree, in order (``zxid`` = the last)."""

    proposals: tuple[Proposal, ...]

    @property
    def zxid(self) -> int:
        return self.proposals[-1].zxid


# -- messages ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Leader -> learner ``sid``: these packets, in order, as one batch."""

    sid: int
    packets: tuple[Packet, ...]


@dataclass(frozen=True, slots=True)
class SendSnapshot:
    """Leader -> learner ``sid``: a SNAP carrying the data tree as of ``zxid``.

    The core has emitted ``Commit`` for every txn up to ``zxid`` before this
    effect, so a driver that executes effects in order serializes its tree as
    it stands (or forks it) and sends ``Snap(zxid, snapshot)`` at this point of
    the learner's packet stream.
    """

    sid: int
    zxid: int


@dataclass(frozen=True, slots=True)
class SendToLeader:
    packets: tuple[Packet, ...]


# -- role events -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Established:
    """Leader: a quorum acked NEWLEADER; start serving clients (writes may be proposed)."""

    epoch: int


@dataclass(frozen=True, slots=True)
class StartServing:
    """Learner: UPTODATE received; start serving clients."""

    epoch: int


@dataclass(frozen=True, slots=True)
class StepDown:
    """Leader gives up leadership (back to LOOKING)."""

    reason: str


@dataclass(frozen=True, slots=True)
class LeaderLost:
    """Learner gives up on this leader (back to LOOKING)."""

    reason: str


@dataclass(frozen=True, slots=True)
class DropLearner:
    """Leader: close the link to ``sid`` (it misbehaved or went silent)."""

    sid: int
    reason: str


# -- requests and sessions ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    """Leader: a learner forwarded a client write; feed it to the pipeline."""

    sid: int
    payload: object


@dataclass(frozen=True, slots=True)
class TouchSessions:
    """Leader: the sessions learner ``sid`` saw activity on (from its PING)."""

    sid: int
    touches: Mapping[int, int]


@dataclass(frozen=True, slots=True)
class RevalidateSession:
    """Leader: check the session; answer with ``leader.revalidated(sid, ...)``."""

    sid: int
    session_id: int
    timeout: int


@dataclass(frozen=True, slots=True)
class SessionRevalidated:
    session_id: int
    valid: bool


@dataclass(frozen=True, slots=True)
class ReplyPing:
    """Learner: the leader pinged; answer with ``learner.ping_reply(touches)``."""


@dataclass(frozen=True, slots=True)
class SyncDone:
    """Learner: the leader's answer to ``sync(token)``; everything before it is applied."""

    token: object


Effect = (
    PersistAcceptedEpoch
    | PersistCurrentEpoch
    | Truncate
    | ApplySnapshot
    | LogTxns
    | Commit
    | Send
    | SendSnapshot
    | SendToLeader
    | Established
    | StartServing
    | StepDown
    | LeaderLost
    | DropLearner
    | SubmitRequest
    | TouchSessions
    | RevalidateSession
    | SessionRevalidated
    | ReplyPing
    | SyncDone
)
