"""A ZAB learner (follower or observer): ZooKeeper's ``Learner`` + ``Follower`` + ``Observer`` (sans-IO).

One :class:`LearnerCore` per connection to a leader; a new connection (after
``LeaderLost``) gets a new core built from what is on disk.

API (every method returns ``list[Effect]``; ``now`` is monotonic ms)::

    core = LearnerCore(sid, accepted_epoch=.., current_epoch=.., last_zxid=..,
                       observer=False, tick_time=.., init_limit=.., sync_limit=..)
    core.start(now)                    # FOLLOWERINFO / OBSERVERINFO
    core.receive(packet, now)          # a packet from the leader
    core.receive_many(packets, now)    # a batch (LogTxns / Commit effects merged)
    core.persisted(zxid)               # every txn <= zxid we asked to log is durable
    core.ping_reply(touches)           # after ReplyPing: our clients' session touches
    core.forward(payload)              # REQUEST: a client write for the leader
    core.sync(token)                   # SYNC: answered by SyncDone(token)
    core.revalidate(session_id, timeout)
    core.tick(now)                     # LeaderLost when the leader went silent

Phases::

    REGISTERING --LEADERINFO--> EPOCH_ACKED --DIFF|TRUNC|SNAP--> SYNCING
      --NEWLEADER--> NEWLEADER_PENDING --persisted--> ACKED --UPTODATE--> SERVING

Invariants (the effect contract is in zab_effects):

* ``PersistAcceptedEpoch(e)`` precedes ACKEPOCH; a LEADERINFO with an epoch
  below ours makes the learner give up (ZooKeeper: "Leaders epoch ... is less
  than accepted epoch").
* ZOOKEEPER-4646: ACK(NEWLEADER) leaves only after every txn received during
  the sync is durable (``persisted`` reached the last of them), and after
  ``PersistCurrentEpoch``.  Until then the core withholds it, whatever else
  arrives.
* A follower ACKs (cumulatively) only what ``persisted`` reported, and only
  after ACK(NEWLEADER); observers never ACK proposals.
* ``Commit`` effects are in zxid order, without gaps, and only for txns the
  learner received; a COMMIT for an unknown zxid is a protocol error.
* Any packet out of place, or a silent leader (``initLimit`` ticks until
  UPTODATE, ``syncLimit`` ticks after), ends the core with ``LeaderLost``.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Mapping

from trio_quorum.quorum import zab_packets as p
from trio_quorum.quorum.zab_effects import (
    ApplySnapshot,
    Commit,
    Effect,
    LeaderLost,
    LogTxns,
    PersistAcceptedEpoch,
    PersistCurrentEpoch,
    ReplyPing,
    SendToLeader,
    SessionRevalidated,
    StartServing,
    SyncDone,
    Truncate,
    ZabState,
)
from trio_quorum.quorum.zab_zxid import epoch_of, is_epoch_start, make_zxid, zxid_hex

__sans_io__ = True

__all__ = ["LearnerCore", "LearnerPhase"]


class LearnerPhase(enum.IntEnum):
    REGISTERING = 0
    EPOCH_ACKED = 1
    SYNCING = 2
    NEWLEADER_PENDING = 3
    ACKED = 4
    SERVING = 5
    STOPPED = 6


_ZAB_STATE = {
    LearnerPhase.REGISTERING: ZabState.DISCOVERY,
    LearnerPhase.EPOCH_ACKED: ZabState.DISCOVERY,
    LearnerPhase.SYNCING: ZabState.SYNCHRONIZATION,
    LearnerPhase.NEWLEADER_PENDING: ZabState.SYNCHRONIZATION,
    LearnerPhase.ACKED: ZabState.SYNCHRONIZATION,
    LearnerPhase.SERVING: ZabState.BROADCAST,
    LearnerPhase.STOPPED: ZabState.STOPPED,
}


class LearnerCore:
    """One learner's ZAB state for one connection to a leader.

    Args:
        sid: this server's id.
        accepted_epoch / current_epoch: this server's persisted epochs.
        last_zxid: the last zxid in this server's log (its state holds all of it).
        observer: register as an observer (OBSERVERINFO; INFORMs, no ACKs).
        tick_time / init_limit / sync_limit: ZooKeeper's knobs (ms, ticks, ticks).
    """

    def __init__(
        self,
        sid: int,
        *,
        accepted_epoch: int,
        current_epoch: int,
        last_zxid: int,
        observer: bool = False,
        tick_time: int,
        init_limit: int,
        sync_limit: int,
    ) -> None:
        self.sid = sid
        self.observer = observer
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch
        self.tick_time = tick_time
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.phase = LearnerPhase.REGISTERING
        self.epoch: int | None = None
        #: The end of our log as we asked for it (last txn logged, truncated to or snapshotted).
        self.last_logged = last_zxid
        #: The durable end of our log.
        self.last_persisted = last_zxid
        self.last_committed = last_zxid
        self.last_acked = -1
        self.last_heard = 0
        self._newleader_zxid = -1
        #: last_logged when NEWLEADER arrived: what must be durable before its ACK.
        self._sync_end = -1
        self._pending: deque[p.Proposal] = deque()
        self._local: list[Effect] = []
        self._out: list[p.Packet] = []
        # LogTxns / Commit of one call, merged (a batch of packets -> one effect each).
        self._log_buf: list[p.Proposal] = []
        self._apply_buf: list[p.Proposal] = []

    @property
    def state(self) -> ZabState:
        return _ZAB_STATE[self.phase]

    # -- public API ------------------------------------------------------------

    def start(self, now: int) -> list[Effect]:
        self.last_heard = now
        info = p.ObserverInfo if self.observer else p.FollowerInfo
        self._out.append(info(self.sid, self.accepted_epoch, self.last_logged))
        return self._flush()

    def receive(self, packet: p.Packet, now: int) -> list[Effect]:
        if self.phase is not LearnerPhase.STOPPED:
            self.last_heard = now
            self._on_packet(packet)
        return self._flush()

    def receive_many(self, packets: Iterable[p.Packet], now: int) -> list[Effect]:
        for packet in packets:
            if self.phase is LearnerPhase.STOPPED:
                break
            self.last_heard = now
            self._on_packet(packet)
        return self._flush()

    def persisted(self, zxid: int) -> list[Effect]:
        if self.phase is not LearnerPhase.STOPPED and zxid > self.last_persisted:
            self.last_persisted = min(zxid, self.last_logged)
            self._maybe_ack_newleader()  # (which acks what follows, too)
            self._maybe_ack()
        return self._flush()

    def ping_reply(self, touches: Mapping[int, int]) -> list[Effect]:
        if self.phase in (LearnerPhase.ACKED, LearnerPhase.SERVING):
            self._out.append(p.Ping(dict(touches)))
        return self._flush()

    def forward(self, payload: object) -> list[Effect]:
        return self._send_if_serving(p.Request(payload))

    def sync(self, token: object) -> list[Effect]:
        return self._send_if_serving(p.SyncRequest(token))

    def revalidate(self, session_id: int, timeout: int) -> list[Effect]:
        return self._send_if_serving(p.Revalidate(session_id, timeout))

    def tick(self, now: int) -> list[Effect]:
        if self.phase is LearnerPhase.STOPPED:
            return []
        ticks = self.sync_limit if self.phase is LearnerPhase.SERVING else self.init_limit
        silent = now - self.last_heard
        if silent > ticks * self.tick_time:
            self._lose(
                f"leader silent for {silent} ms (limit {ticks} ticks of {self.tick_time} ms)"
            )
        return self._flush()

    # -- packets ---------------------------------------------------------------------

    def _on_packet(self, packet: p.Packet) -> None:  # noqa: C901 - one dispatch table, read top down
        phase = self.phase
        if phase is LearnerPhase.REGISTERING:
            if isinstance(packet, p.LeaderInfo):
                return self._on_leaderinfo(packet.epoch)
        elif phase is LearnerPhase.EPOCH_ACKED:
            if isinstance(packet, p.Diff):
                self.phase = LearnerPhase.SYNCING
                return None
            if isinstance(packet, p.Trunc):
                return self._on_trunc(packet.zxid)
            if isinstance(packet, p.Snap):
                return self._on_snap(packet)
        else:
            if isinstance(packet, p.Proposal):
                return self._on_proposal(packet)
            if isinstance(packet, p.Commit):
                return self._on_commit(packet.zxid)
            if (
                isinstance(packet, p.Inform)
                and self.observer
                and phase >= LearnerPhase.NEWLEADER_PENDING
            ):
                return self._on_inform(packet)
            if isinstance(packet, p.NewLeader) and phase is LearnerPhase.SYNCING:
                return self._on_newleader(packet.zxid)
            if isinstance(packet, p.UpToDate) and phase is LearnerPhase.ACKED:
                assert self.epoch is not None
                self.phase = LearnerPhase.SERVING
                self._emit(StartServing(self.epoch))
                return None
            if phase >= LearnerPhase.ACKED:
                if isinstance(packet, p.Ping):
                    self._emit(ReplyPing())
                    return None
                if isinstance(packet, p.Sync):
                    self._emit(SyncDone(packet.token))
                    return None
                if isinstance(packet, p.RevalidateAnswer):
                    self._emit(SessionRevalidated(packet.session_id, packet.valid))
                    return None
        return self._lose(f"unexpected {type(packet).__name__} in phase {phase.name}")

    def _on_leaderinfo(self, epoch: int) -> None:
        if epoch < self.accepted_epoch:
            return self._lose(
                f"Leaders epoch, {epoch}, is less than accepted epoch, {self.accepted_epoch}"
            )
        if epoch > self.accepted_epoch:
            self._emit(PersistAcceptedEpoch(epoch))
            self.accepted_epoch = epoch
        self.epoch = epoch
        self._out.append(p.AckEpoch(self.current_epoch, self.last_logged))
        self.phase = LearnerPhase.EPOCH_ACKED
        return None

    def _on_trunc(self, zxid: int) -> None:
        self._emit(Truncate(zxid))
        self.last_logged = self.last_persisted = zxid
        self.last_committed = min(self.last_committed, zxid)
        self.phase = LearnerPhase.SYNCING

    def _on_snap(self, snap: p.Snap) -> None:
        self._emit(ApplySnapshot(snap.zxid, snap.snapshot))
        self.last_logged = self.last_persisted = self.last_committed = snap.zxid
        self.phase = LearnerPhase.SYNCING

    def _on_proposal(self, proposal: p.Proposal) -> None:
        if self.observer and self.phase is not LearnerPhase.SYNCING:
            return self._lose(f"observer got PROPOSAL {zxid_hex(proposal.zxid)} outside sync")
        if proposal.zxid <= self.last_logged:
            return self._lose(
                f"PROPOSAL {zxid_hex(proposal.zxid)} not after our last {zxid_hex(self.last_logged)}"
            )
        self._pending.append(proposal)
        self.last_logged = proposal.zxid
        self._log((proposal,))
        return None

    def _on_commit(self, zxid: int) -> None:
        if zxid <= self.last_committed:
            return None
        pending = self._pending
        if not pending or pending[0].zxid > zxid or (pending[-1].zxid < zxid):
            return self._lose(f"COMMIT of {zxid_hex(zxid)}, a proposal we never received")
        done: list[p.Proposal] = []
        while pending and pending[0].zxid <= zxid:
            done.append(pending.popleft())
        if done[-1].zxid != zxid:
            return self._lose(f"COMMIT of {zxid_hex(zxid)}, a proposal we never received")
        self.last_committed = zxid
        self._apply(tuple(done))
        return None

    def _on_inform(self, inform: p.Inform) -> None:
        if inform.zxid <= self.last_logged:
            return self._lose(
                f"INFORM {zxid_hex(inform.zxid)} not after our last {zxid_hex(self.last_logged)}"
            )
        proposal = p.Proposal(inform.zxid, inform.txn)
        self.last_logged = self.last_committed = inform.zxid
        self._log((proposal,))
        self._apply((proposal,))
        return None

    def _on_newleader(self, zxid: int) -> None:
        if self.epoch is None or zxid != make_zxid(self.epoch, 0):
            return self._lose(f"NEWLEADER {zxid_hex(zxid)} does not start epoch {self.epoch}")
        self._newleader_zxid = zxid
        self._sync_end = self.last_logged
        self.phase = LearnerPhase.NEWLEADER_PENDING
        self._maybe_ack_newleader()
        return None

    # -- acknowledgements --------------------------------------------------------------

    def _maybe_ack_newleader(self) -> None:
        # ZOOKEEPER-4646: everything received in the sync must be durable before
        # currentEpoch moves and before the leader may count us.
        if self.phase is not LearnerPhase.NEWLEADER_PENDING or self.last_persisted < self._sync_end:
            return
        assert self.epoch is not None
        self._emit(PersistCurrentEpoch(self.epoch))
        self.current_epoch = self.epoch
        self._out.append(p.Ack(self._newleader_zxid))
        self.last_acked = self._newleader_zxid
        self.phase = LearnerPhase.ACKED
        # Proposals of this epoch received in the sync (in flight at the leader)
        # may be durable already: their ACK must not wait for another fsync.
        self._maybe_ack()

    def _maybe_ack(self) -> None:
        if self.observer or self.phase < LearnerPhase.ACKED:
            return
        z = self.last_persisted
        if z > self.last_acked and epoch_of(z) == self.epoch and not is_epoch_start(z):
            self._out.append(p.Ack(z))
            self.last_acked = z

    # -- plumbing -----------------------------------------------------------------------

    def _send_if_serving(self, packet: p.Packet) -> list[Effect]:
        if self.phase is LearnerPhase.SERVING:
            self._out.append(packet)
        return self._flush()

    def _log(self, proposals: tuple[p.Proposal, ...]) -> None:
        self._log_buf.extend(proposals)

    def _apply(self, proposals: tuple[p.Proposal, ...]) -> None:
        self._apply_buf.extend(proposals)

    def _emit(self, effect: Effect) -> None:
        """Append a local effect after the buffered LogTxns / Commit (order matters)."""
        self._drain_buffers()
        self._local.append(effect)

    def _drain_buffers(self) -> None:
        if self._log_buf:
            self._local.append(LogTxns(tuple(self._log_buf)))
            self._log_buf.clear()
        if self._apply_buf:
            self._local.append(Commit(tuple(self._apply_buf)))
            self._apply_buf.clear()

    def _lose(self, reason: str) -> None:
        self.phase = LearnerPhase.STOPPED
        self._out.clear()
        self._emit(LeaderLost(reason))

    def _flush(self) -> list[Effect]:
        self._drain_buffers()
        effects = self._local
        self._local = []
        if self._out:
            effects.append(SendToLeader(tuple(self._out)))
            self._out.clear()
        return effects
