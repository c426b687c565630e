"""ZAB quorum packets as frozen, slotted records (sans-IO).

One class per ZooKeeper ``Leader.java`` packet type (the number in brackets),
with the fields the cores need and nothing else.  The cores never look inside
a transaction, a snapshot or a forwarded request: those payloads are opaque
objects (bytes on the wire; whatever the driver likes in tests).  Encoding the
records for a peer link is the link's business, not this module's.

Direction: L = learner -> leader, l = leader -> learner.

=====================  ===  ==================================================
record                 dir  meaning
=====================  ===  ==================================================
FollowerInfo [11]       L   sid, acceptedEpoch, last logged zxid (discovery)
ObserverInfo [16]       L   the same, from a non-voting observer
LeaderInfo [17]         l   the new epoch (``zxid = epoch << 32`` in ZooKeeper)
AckEpoch [18]           L   learner's currentEpoch and last logged zxid
Diff [13]               l   sync by replay; zxid = leader's last committed
Trunc [14]              l   drop every logged txn with zxid > ``zxid``
Snap [15]               l   replace the state by ``snapshot`` (state at ``zxid``)
NewLeader [10]          l   end of sync: ``zxid = epoch << 32``
Ack [3]                 L   cumulative: every proposal <= zxid is logged
UpToDate [12]           l   the quorum is established: start serving
Proposal [2]            l   zxid + opaque txn
Commit [4]              l   cumulative: every proposal <= zxid is committed
Inform [8]              l   to observers: a committed txn (zxid + txn)
Ping [5]               l/L  leader: "send me your touches"; learner: touches
Revalidate [6]          L   session id + timeout (a client reconnected here)
RevalidateAnswer [6]    l   session id + valid
SyncRequest [7]         L   a follower's ``sync``; ``token`` opaque
Sync [7]                l   the answer, sent once earlier proposals committed
Request [1]             L   a forwarded client write, opaque
=====================  ===  ==================================================

Differences from ZooKeeper, on purpose: ACK and COMMIT are cumulative (one
packet per batch); ACKEPOCH always carries the learner's real currentEpoch
(ZooKeeper sends -1 on a repeat of the same epoch and then does not count
it); SYNC carries an opaque token so a follower can match answers to clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__sans_io__ = True

__all__ = [
    "Ack",
    "AckEpoch",
    "Commit",
    "Diff",
    "FollowerInfo",
    "Inform",
    "LeaderInfo",
    "NewLeader",
    "ObserverInfo",
    "Packet",
    "Ping",
    "Proposal",
    "Request",
    "Revalidate",
    "RevalidateAnswer",
    "Snap",
    "Sync",
    "SyncRequest",
    "Trunc",
    "UpToDate",
]


@dataclass(frozen=True, slots=True)
class FollowerInfo:
    sid: int
    accepted_epoch: int
    last_zxid: int


@dataclass(frozen=True, slots=True)
class ObserverInfo:
    sid: int
    accepted_epoch: int
    last_zxid: int


@dataclass(frozen=True, slots=True)
class LeaderInfo:
    epoch: int


@dataclass(frozen=True, slots=True)
class AckEpoch:
    current_epoch: int
    last_zxid: int


@dataclass(frozen=True, slots=True)
class Diff:
    zxid: int


@dataclass(frozen=True, slots=True)
class Trunc:
    zxid: int


@dataclass(frozen=True, slots=True)
class Snap:
    zxid: int
    snapshot: object = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class NewLeader:
    zxid: int


@dataclass(frozen=True, slots=True)
class Ack:
    zxid: int


@dataclass(frozen=True, slots=True)
class UpToDate:
    pass


@dataclass(frozen=True, slots=True)
class Proposal:
    zxid: int
    txn: object


@dataclass(frozen=True, slots=True)
class Commit:
    zxid: int


@dataclass(frozen=True, slots=True)
class Inform:
    zxid: int
    txn: object


@dataclass(frozen=True, slots=True)
class Ping:
    #: session id -> timeout (ms) of the sessions the learner's clients touched;
    #: empty from the leader.
    touches: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Revalidate:
    session_id: int
    timeout: int


@dataclass(frozen=True, slots=True)
class RevalidateAnswer:
    session_id: int
    valid: bool


@dataclass(frozen=True, slots=True)
class SyncRequest:
    token: object


@dataclass(frozen=True, slots=True)
class Sync:
    token: object


@dataclass(frozen=True, slots=True)
class Request:
    payload: object


Packet = (
    FollowerInfo
    | ObserverInfo
    | LeaderInfo
    | AckEpoch
    | Diff
    | Trunc
    | Snap
    | NewLeader
    | Ack
    | UpToDate
    | Proposal
    | Commit
    | Inform
    | Ping
    | Revalidate
    | RevalidateAnswer
    | SyncRequest
    | Sync
    | Request
)
