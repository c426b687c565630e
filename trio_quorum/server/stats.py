"""Server and connection statistics (ZooKeeper's ``ServerStats`` / ``ServerCnxn`` stats).

Counters only; nothing here reads a clock (callers pass times in ms).  The
pipeline's final stage updates them once per reply, so each update is a few
integer additions.

Invariants: latencies are whole milliseconds (ZooKeeper's resolution); a reset
(``srst`` / ``crst``) zeroes counters but keeps gauges such as ``outstanding``.
The ensemble's figures (:class:`QuorumStats`, :class:`LeaderStats`) are
snapshots the peer takes from its ZAB core when a four-letter word asks.
"""

from __future__ import annotations

__sans_io__ = True

from collections.abc import Iterable
from typing import Any

__all__ = ["ServerStats", "ConnStats", "LAST_OP_NAMES", "LeaderStats", "QuorumStats", "leader_stats"]

#: ``FinalRequestProcessor``'s four-letter ``lastOp`` names shown by ``cons``.
LAST_OP_NAMES: dict[int, str] = {
    11: "PING",
    -10: "SESS",
    14: "MULT",
    22: "MLTR",
    1: "CREA",
    15: "CREA",
    19: "CREA",
    21: "CREA",
    2: "DELE",
    20: "DELE",
    5: "SETD",
    16: "RECO",
    7: "SETA",
    -11: "CLOS",
    9: "SYNC",
    13: "CHEC",
    3: "EXIS",
    4: "GETD",
    101: "SETW",
    105: "STW2",
    6: "GETA",
    8: "GETC",
    12: "GETC",
    17: "CHKW",
    18: "REMW",
    103: "GETE",
    104: "GETACN",
    106: "ADDW",
    107: "HOMI",
    100: "AUTH",
}


class ServerStats:
    """Whole-server counters for ``srvr`` / ``stat`` / ``mntr``."""

    __slots__ = (
        "packets_received",
        "packets_sent",
        "min_latency",
        "max_latency",
        "total_latency",
        "count",
        "outstanding",
        "auth_failed",
        "fsync_count",
        "fsync_total_ms",
        "last_client_response_size",
        "min_client_response_size",
        "max_client_response_size",
    )

    def __init__(self) -> None:
        self.outstanding = 0
        self.reset()

    def reset(self) -> None:
        self.packets_received = 0
        self.packets_sent = 0
        self.min_latency = 0
        self.max_latency = 0
        self.total_latency = 0
        self.count = 0
        self.auth_failed = 0
        self.fsync_count = 0
        self.fsync_total_ms = 0.0
        self.last_client_response_size = -1
        self.min_client_response_size = -1
        self.max_client_response_size = -1

    def update_latency(self, latency_ms: int) -> None:
        self.update_latency_n(latency_ms, 1)

    def update_latency_n(self, latency_ms: int, n: int) -> None:
        """``n`` responses that all took ``latency_ms`` (one socket read's requests)."""
        if self.count == 0 or latency_ms < self.min_latency:
            self.min_latency = latency_ms
        if latency_ms > self.max_latency:
            self.max_latency = latency_ms
        self.total_latency += latency_ms * n
        self.count += n

    @property
    def avg_latency(self) -> float:
        return self.total_latency / self.count if self.count else 0.0


class ConnStats:
    """Per-connection counters for ``cons``."""

    __slots__ = (
        "packets_received",
        "packets_sent",
        "min_latency",
        "max_latency",
        "total_latency",
        "count",
        "last_op",
        "last_cxid",
        "last_zxid",
        "last_response_time",
        "last_latency",
    )

    def __init__(self) -> None:
        self.packets_received = 0
        self.packets_sent = 0
        self.reset()

    def reset(self) -> None:
        self.packets_received = 0
        self.packets_sent = 0
        self.min_latency = 0
        self.max_latency = 0
        self.total_latency = 0
        self.count = 0
        self.last_op = "NA"
        self.last_cxid = -1
        self.last_zxid = -1
        self.last_response_time = 0
        self.last_latency = 0

    def update_for_responses(self, cxid: int, zxid: int, op: int, latency_ms: int, end_ms: int, n: int) -> None:
        """:meth:`update_for_response` for ``n`` responses with the same latency;
        ``cxid``/``op`` are the last one's (``cxid`` < 0: none moved lcxid)."""
        if cxid >= 0:
            self.last_cxid = cxid
        self.last_zxid = zxid
        self.last_op = LAST_OP_NAMES.get(op, "NA")
        self.last_response_time = end_ms
        self.last_latency = latency_ms
        if self.count == 0 or latency_ms < self.min_latency:
            self.min_latency = latency_ms
        if latency_ms > self.max_latency:
            self.max_latency = latency_ms
        self.total_latency += latency_ms * n
        self.count += n

    def update_for_response(self, cxid: int, zxid: int, op: int, start_ms: int, end_ms: int) -> None:
        """``ServerCnxn.updateStatsForResponse``: pings and notifications do not move lcxid."""
        self.update_for_responses(cxid, zxid, op, end_ms - start_ms, end_ms, 1)

    @property
    def avg_latency(self) -> int:
        return self.total_latency // self.count if self.count else 0


class LeaderStats:
    """What ``mntr`` shows of a leader (ZooKeeper's ``Leader`` gauges), taken when asked.

    ``synced_followers`` are participants receiving the broadcast (voting or
    not), ``synced_observers`` the observers receiving it, ``learners`` every
    learner connected in any phase.  Proposal sizes are -1 until one is recorded.
    """

    __slots__ = ("learners", "synced_followers", "synced_non_voting_followers", "synced_observers",
                 "pending_syncs", "uptime_ms", "proposal_sizes")

    def __init__(self, *, learners: int, synced_followers: int, synced_non_voting_followers: int,
                 synced_observers: int, pending_syncs: int, uptime_ms: int,
                 proposal_sizes: tuple[int, int, int] = (-1, -1, -1)) -> None:
        self.learners = learners
        self.synced_followers = synced_followers
        self.synced_non_voting_followers = synced_non_voting_followers
        self.synced_observers = synced_observers
        self.pending_syncs = pending_syncs
        self.uptime_ms = uptime_ms
        #: (last, min, max) bytes of the proposals made (ZooKeeper's ``BufferStats``).
        self.proposal_sizes = proposal_sizes


def leader_stats(handlers: Iterable[Any], *, pending_syncs: int, uptime_ms: int) -> LeaderStats:
    """:class:`LeaderStats` from a leader core's learner handlers (``observer``, ``voter``, ``forwarding``)."""
    learners = synced = non_voting = observers = 0
    for h in handlers:
        learners += 1
        if not h.forwarding:
            continue
        if h.observer:
            observers += 1
        else:
            synced += 1
            if not h.voter:
                non_voting += 1
    return LeaderStats(learners=learners, synced_followers=synced, synced_non_voting_followers=non_voting,
                       synced_observers=observers, pending_syncs=pending_syncs, uptime_ms=uptime_ms)


class QuorumStats:
    """What ``mntr`` / ``srvr`` show of a peer serving in an ensemble (leader, follower, observer).

    ``peer_state`` is ZooKeeper's detailed peer state (``following - broadcast``);
    ``quorum_size`` the number of voters; ``leader`` only on the leader.
    """

    __slots__ = ("peer_state", "quorum_size", "leader")

    def __init__(self, peer_state: str, quorum_size: int, leader: LeaderStats | None = None) -> None:
        self.peer_state = peer_state
        self.quorum_size = quorum_size
        self.leader = leader
