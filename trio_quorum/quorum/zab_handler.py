"""The leader's view of one learner: ZooKeeper's ``LearnerHandler`` (sans-IO).

One :class:`LearnerHandler` per connected follower or observer.  It owns what
is per learner: the handshake phase, what the learner said about itself, its
cumulative ACK, when it was last heard from, and its outbound packet stream
(batched into one ``Send`` per core call).  It decides nothing that needs the
quorum: :class:`~trio_quorum.quorum.leader.LeaderCore` owns the handlers and
makes those decisions, so that choosing a sync plan and joining the
forwarding set happen in one step, as under ZooKeeper's ``startForwarding``
lock (a proposal can never fall between a learner's sync and its stream).

Phases (a learner only moves forward; any packet out of place drops it)::

    INFO --ACKEPOCH--> EPOCH_ACKED --leader syncs--> SYNCING --ACK(NEWLEADER)-->
    SYNCED --leader established, UPTODATE sent--> SERVING

Invariants:

* The stream a learner receives is: LEADERINFO; DIFF/TRUNC/SNAP; the sync
  txns; NEWLEADER; then (interleaved, in zxid order) every PROPOSAL (followers)
  or INFORM (observers) and COMMIT made after its sync point; UPTODATE once.
* ``acked`` only grows and only counts after ACK(NEWLEADER) (phase SYNCED or
  later); it never exceeds the last zxid this learner was sent.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from trio_quorum.quorum import zab_packets as p
from trio_quorum.quorum.sync import SyncMode, SyncPlan
from trio_quorum.quorum.zab_effects import Effect, Send, SendSnapshot

__sans_io__ = True

__all__ = ["HandlerPhase", "LearnerHandler"]


class HandlerPhase(enum.IntEnum):
    INFO = 0
    EPOCH_ACKED = 1
    SYNCING = 2
    SYNCED = 3
    SERVING = 4


@dataclass(frozen=True, slots=True)
class _SnapMark:
    """A SNAP's place in the outbound stream; the driver fills in the state."""

    zxid: int


#: Packets a learner may send in each phase (anything else is a protocol error).
_ALLOWED: dict[HandlerPhase, tuple[type, ...]] = {
    HandlerPhase.INFO: (p.AckEpoch,),
    HandlerPhase.EPOCH_ACKED: (),
    HandlerPhase.SYNCING: (p.Ack,),
    HandlerPhase.SYNCED: (p.Ack, p.Ping, p.Revalidate, p.Request, p.SyncRequest),
    HandlerPhase.SERVING: (p.Ack, p.Ping, p.Revalidate, p.Request, p.SyncRequest),
}


class LearnerHandler:
    """Per-learner state on the leader.

    Args:
        sid: the learner's server id.
        observer: OBSERVERINFO (never votes, receives INFORM).
        voter: a member of the voting view (observers never are).
        accepted_epoch / last_zxid: from FOLLOWERINFO / OBSERVERINFO.
        now: when the learner connected (ms).
    """

    __slots__ = (
        "sid",
        "observer",
        "voter",
        "accepted_epoch",
        "current_epoch",
        "last_zxid",
        "phase",
        "acked",
        "sent_upto",
        "last_heard",
        "leaderinfo_sent",
        "_out",
    )

    def __init__(
        self,
        sid: int,
        *,
        observer: bool,
        voter: bool,
        accepted_epoch: int,
        last_zxid: int,
        now: int,
    ) -> None:
        self.sid = sid
        self.observer = observer
        self.voter = voter and not observer
        self.accepted_epoch = accepted_epoch
        self.current_epoch = -1
        self.last_zxid = last_zxid
        self.phase = HandlerPhase.INFO
        self.acked = -1
        #: The highest zxid this learner was sent (proposal or inform).
        self.sent_upto = -1
        self.last_heard = now
        self.leaderinfo_sent = False
        self._out: list[p.Packet | _SnapMark] = []

    # -- what the leader asks about --------------------------------------

    @property
    def forwarding(self) -> bool:
        """Receives the broadcast (its sync point is fixed)."""
        return self.phase >= HandlerPhase.SYNCING

    @property
    def synced(self) -> bool:
        """ACKed NEWLEADER: its log holds the leader's history; its ACKs count."""
        return self.phase >= HandlerPhase.SYNCED

    def check(self, packet: p.Packet) -> str | None:
        """Why ``packet`` may not arrive now, or None if it may."""
        if not isinstance(packet, _ALLOWED[self.phase]):
            return f"unexpected {type(packet).__name__} from learner {self.sid} in phase {self.phase.name}"
        if isinstance(packet, p.AckEpoch) and not self.leaderinfo_sent:
            return f"ACKEPOCH from learner {self.sid} before LEADERINFO"
        if isinstance(packet, p.Ack) and self.phase is not HandlerPhase.SYNCING:
            # (In SYNCING the one ACK allowed is NEWLEADER's; the leader checks its zxid.)
            if self.observer:
                return f"observer {self.sid} acked a proposal"
            if packet.zxid > self.sent_upto:
                return f"learner {self.sid} acked 0x{packet.zxid:x}, beyond what it was sent (0x{self.sent_upto:x})"
        return None

    # -- outbound stream --------------------------------------------------

    def queue(self, packet: p.Packet) -> None:
        self._out.append(packet)

    def queue_proposals(self, proposals: Sequence[p.Proposal]) -> None:
        """The broadcast: PROPOSALs to a follower (observers wait for INFORM)."""
        if not self.observer and proposals:
            self._out.extend(proposals)
            self.sent_upto = proposals[-1].zxid

    def queue_commits(self, proposals: Sequence[p.Proposal]) -> None:
        """One cumulative COMMIT to a follower; an INFORM per txn to an observer."""
        if not proposals:
            return
        if self.observer:
            self._out.extend(p.Inform(x.zxid, x.txn) for x in proposals)
            self.sent_upto = proposals[-1].zxid
        else:
            self._out.append(p.Commit(proposals[-1].zxid))

    def queue_sync(
        self,
        plan: SyncPlan,
        committed: Sequence[p.Proposal],
        in_flight: Sequence[p.Proposal],
        new_leader_zxid: int,
    ) -> None:
        """Queue the whole sync (``plan`` from choose_sync) and NEWLEADER; start forwarding."""
        out = self._out
        if plan.mode is SyncMode.SNAP:
            out.append(_SnapMark(plan.zxid))
        elif plan.mode is SyncMode.TRUNC:
            out.append(p.Trunc(plan.zxid))
        else:
            out.append(p.Diff(plan.zxid))
        self.sent_upto = plan.zxid
        replay = committed[plan.committed_from :]
        if replay:
            out.extend(replay)
            out.append(p.Commit(replay[-1].zxid))
            self.sent_upto = replay[-1].zxid
        self.queue_proposals(in_flight[plan.in_flight_from :])
        out.append(p.NewLeader(new_leader_zxid))
        self.phase = HandlerPhase.SYNCING

    def take(self) -> list[Effect]:
        """The queued stream as effects (one ``Send`` per run of packets); clears it."""
        if not self._out:
            return []
        effects: list[Effect] = []
        run: list[p.Packet] = []
        for item in self._out:
            if isinstance(item, _SnapMark):
                if run:
                    effects.append(Send(self.sid, tuple(run)))
                    run = []
                effects.append(SendSnapshot(self.sid, item.zxid))
            else:
                run.append(item)
        if run:
            effects.append(Send(self.sid, tuple(run)))
        self._out.clear()
        return effects

    def discard(self) -> None:
        self._out.clear()
