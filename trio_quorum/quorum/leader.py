"""The ZAB leader: discovery, synchronization, broadcast (sans-IO).

ZooKeeper's ``Leader.lead()`` + ``getEpochToPropose`` / ``waitForEpochAck`` /
``waitForNewLeaderAck`` / ``propose`` / ``processAck`` / ``processSync``, as one
state machine that a leading actor drives.  It owns a
:class:`~trio_quorum.quorum.zab_handler.LearnerHandler` per learner link
(keyed by sid; the peer link knows the sid before the first packet).

API (every method returns ``list[Effect]``; ``now`` is monotonic ms)::

    core = LeaderCore(sid, voters, accepted_epoch=.., current_epoch=.., last_zxid=..,
                      history=[Proposal, ...], tick_time=.., init_limit=.., sync_limit=..)
    core.start(now)
    core.receive(sid, packet, now)          # a packet from learner sid
    core.learner_lost(sid)                  # its link closed
    core.propose(txn) / core.propose_many(txns) -> (zxids, effects)   # BROADCAST only
    core.persisted(zxid)                    # the leader's own log is durable up to zxid
    core.revalidated(sid, session_id, valid)
    core.sync(token)                        # the leader's own clients' sync (answered as SyncDone)
    core.tick(now)                          # every tickTime/2: PINGs, liveness

Phases (``core.state``):

1. DISCOVERY: FOLLOWERINFO from a quorum of voters (the leader counts itself)
   fixes ``epoch = max(acceptedEpoch) + 1`` -> PersistAcceptedEpoch, LEADERINFO to
   every learner.  ACKEPOCH from a quorum -> PersistCurrentEpoch, SYNCHRONIZATION.
   An ACKEPOCH whose (currentEpoch, lastZxid) is ahead of the leader's makes it
   step down ("Follower is ahead of the leader"): the election chose wrong.
2. SYNCHRONIZATION: each learner that acked the epoch gets its sync (choose_sync)
   and NEWLEADER.  A quorum of ACK(NEWLEADER) (the leader counts itself: its
   history is its own log) -> ``Established``, UPTODATE, BROADCAST.  Learners
   arriving later go through the same steps at once.
3. BROADCAST: ``propose`` assigns zxids; a proposal commits when a quorum of
   voters has acknowledged it (the leader's own vote is ``persisted``), and
   proposals commit strictly in zxid order.

Invariants:

* Every committed zxid was acked by a quorum of voters after they were synced
  (``acked`` only counts after ACK(NEWLEADER); ACKs are cumulative, which is
  sound because a synced learner receives every proposal after its sync point,
  in order).
* Commit is in zxid order and contiguous: ``Commit`` effects, COMMIT and INFORM
  packets never skip a proposal.
* Before ``initLimit*tickTime`` in DISCOVERY or SYNCHRONIZATION, or when fewer
  than a quorum of voters were heard within ``syncLimit*tickTime`` in
  BROADCAST, the core emits ``StepDown`` and stops.
* A SYNC request is answered after the COMMIT of every proposal made before it,
  on the same stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from trio_quorum.quorum import zab_packets as p
from trio_quorum.quorum.sync import choose_sync
from trio_quorum.quorum.zab_effects import (
    Commit,
    DropLearner,
    Effect,
    Established,
    LogTxns,
    PersistAcceptedEpoch,
    PersistCurrentEpoch,
    RevalidateSession,
    StepDown,
    SubmitRequest,
    SyncDone,
    TouchSessions,
    ZabState,
)
from trio_quorum.quorum.zab_handler import HandlerPhase, LearnerHandler
from trio_quorum.quorum.zab_zxid import ZxidRolloverError, epoch_of, make_zxid, next_zxid, zxid_hex

__sans_io__ = True

__all__ = ["LeaderCore", "NotLeadingError"]

class NotLeadingError(Exception):
    """``propose`` before the leader is established, or after it stopped."""


class LeaderCore:
    """One leader's ZAB state.

    Args:
        sid: this server's id (a member of ``voters``).
        voters: the voting members (participants), this server included.
        accepted_epoch / current_epoch: this server's persisted epochs.
        last_zxid: this server's last logged zxid.
        history: the tail of this server's log (ascending, ending at
            ``last_zxid``): the committed-log window learners are diffed from.
        history_base: the zxid just before ``history[0]`` if ``history`` holds
            every txn after it (0 when it is the whole log), else None: a
            learner below the window then gets a SNAP.
        tick_time / init_limit / sync_limit: ZooKeeper's knobs (ms, ticks, ticks).
        commit_log_count: how many committed proposals to keep for DIFFs.
    """

    def __init__(
        self,
        sid: int,
        voters: Iterable[int],
        *,
        accepted_epoch: int,
        current_epoch: int,
        last_zxid: int,
        history: Sequence[p.Proposal] = (),
        history_base: int | None = None,
        tick_time: int,
        init_limit: int,
        sync_limit: int,
        commit_log_count: int = 500,
    ) -> None:
        self.sid = sid
        self.voters = frozenset(voters)
        if sid not in self.voters:
            raise ValueError(f"leader {sid} is not a voter of {sorted(self.voters)}")
        if history and history[-1].zxid != last_zxid:
            raise ValueError("history must end at last_zxid")
        self.quorum_size = len(self.voters) // 2 + 1
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch
        #: (currentEpoch, lastZxid) before this leadership: ZooKeeper's leaderStateSummary.
        self._summary = (current_epoch, last_zxid)
        self.tick_time = tick_time
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.commit_log_count = commit_log_count

        self.state = ZabState.DISCOVERY
        self.epoch: int | None = None
        self._phase_started = 0
        self.handlers: dict[int, LearnerHandler] = {}
        self._epoch_votes: dict[int, int] = {}
        self._epoch_ackers: set[int] = set()
        self._newleader_ackers: set[int] = set()

        self._committed: list[p.Proposal] = list(history[-commit_log_count:]) if commit_log_count else []
        self._committed_zxids = [x.zxid for x in self._committed]
        if len(self._committed) < len(history):
            history_base = history[-len(self._committed) - 1].zxid if self._committed else last_zxid
        #: The zxid before the window's first txn, when nothing between is missing.
        self._base = history_base
        self.last_committed = last_zxid
        self._outstanding: deque[p.Proposal] = deque()
        self.last_proposed = last_zxid
        self._self_persisted = last_zxid
        #: (zxid to wait for, learner sid or None for the leader's own client, token), zxids non-decreasing.
        self._pending_syncs: deque[tuple[int, int | None, object]] = deque()
        self._local: list[Effect] = []

    # -- public API ----------------------------------------------------------

    def start(self, now: int) -> list[Effect]:
        self._phase_started = now
        self._epoch_votes[self.sid] = self.accepted_epoch
        self._maybe_decide_epoch()
        return self._flush()

    def receive(self, sid: int, packet: p.Packet, now: int) -> list[Effect]:
        if self.state is ZabState.STOPPED:
            return []
        if isinstance(packet, (p.FollowerInfo, p.ObserverInfo)):
            self._on_info(sid, packet, now)
            return self._flush()
        h = self.handlers.get(sid)
        if h is None:
            self._local.append(DropLearner(sid, f"{type(packet).__name__} from {sid} before FOLLOWERINFO"))
            return self._flush()
        error = h.check(packet)
        if error is not None:
            self._drop(h, error)
            return self._flush()
        h.last_heard = now
        if isinstance(packet, p.Ack):
            self._on_ack(h, packet.zxid)
        elif isinstance(packet, p.AckEpoch):
            self._on_ackepoch(h, packet)
        elif isinstance(packet, p.Ping):
            if packet.touches:
                self._local.append(TouchSessions(sid, packet.touches))
        elif isinstance(packet, p.Request):
            self._local.append(SubmitRequest(sid, packet.payload))
        elif isinstance(packet, p.Revalidate):
            self._local.append(RevalidateSession(sid, packet.session_id, packet.timeout))
        elif isinstance(packet, p.SyncRequest):
            self._on_sync_request(sid, packet.token)
        return self._flush()

    def learner_lost(self, sid: int) -> list[Effect]:
        """The link to ``sid`` closed; forget its handler (its past votes stay counted)."""
        h = self.handlers.pop(sid, None)
        if h is not None:
            h.discard()
        return self._flush()

    def propose(self, txn: object) -> tuple[int, list[Effect]]:
        zxids, effects = self.propose_many((txn,))
        if not zxids:
            raise NotLeadingError("zxid counter exhausted; stepping down")
        return zxids[0], effects

    def propose_many(self, txns: Iterable[object]) -> tuple[list[int], list[Effect]]:
        """Propose ``txns`` in order.

        Returns the zxids given, and the effects (LogTxns for the leader's own
        log, PROPOSALs to followers).  On zxid counter rollover the rest of the
        batch is refused (fewer zxids than txns) and the effects end with
        ``StepDown``: a new epoch must start (ZooKeeper's XidRolloverException).

        Raises:
            NotLeadingError: not in BROADCAST.
        """
        if self.state is not ZabState.BROADCAST:
            raise NotLeadingError(f"cannot propose in state {self.state.name}")
        proposals: list[p.Proposal] = []
        rollover: str | None = None
        z = self.last_proposed
        for txn in txns:
            try:
                z = next_zxid(z)
            except ZxidRolloverError as e:
                rollover = str(e)
                break
            proposals.append(p.Proposal(z, txn))
        if proposals:
            self.last_proposed = z
            self._outstanding.extend(proposals)
            self._local.append(LogTxns(tuple(proposals)))
            for h in self.handlers.values():
                if h.forwarding:
                    h.queue_proposals(proposals)
        if rollover is not None:
            self._step_down(rollover)
        return [x.zxid for x in proposals], self._flush()

    def persisted(self, zxid: int) -> list[Effect]:
        """The leader's own log is durable up to ``zxid``: its own ACK."""
        if self.state is ZabState.BROADCAST and zxid > self._self_persisted:
            self._self_persisted = min(zxid, self.last_proposed)
            self._advance_commit()
        return self._flush()

    def revalidated(self, sid: int, session_id: int, valid: bool) -> list[Effect]:
        h = self.handlers.get(sid)
        if h is not None and self.state is not ZabState.STOPPED:
            h.queue(p.RevalidateAnswer(session_id, valid))
        return self._flush()

    def sync(self, token: object) -> list[Effect]:
        """A ``sync`` from the leader's own client: ``SyncDone(token)`` once prior proposals commit."""
        self._on_sync_request(None, token)
        return self._flush()

    def tick(self, now: int) -> list[Effect]:
        if self.state is ZabState.STOPPED:
            return []
        init_ms = self.init_limit * self.tick_time
        sync_ms = self.sync_limit * self.tick_time
        for h in list(self.handlers.values()):
            limit = sync_ms if h.synced else init_ms
            if now - h.last_heard > limit:
                self._drop(h, f"learner {h.sid} silent for {now - h.last_heard} ms (limit {limit} ms)")
        if self.state is not ZabState.BROADCAST:
            if now - self._phase_started > init_ms:
                what = "epoch" if self.state is ZabState.DISCOVERY else "NEWLEADER"
                self._step_down(f"Timeout while waiting for {what} to be acked by quorum")
            return self._flush()
        synced = {self.sid} | {h.sid for h in self.handlers.values() if h.voter and h.synced}
        if len(synced) < self.quorum_size:
            self._step_down(f"Not sufficient followers synced, only synced with sids: {sorted(synced)}")
            return self._flush()
        for h in self.handlers.values():
            if h.synced:
                h.queue(p.Ping())
        return self._flush()

    def synced_learners(self) -> list[int]:
        return sorted(sid for sid, h in self.handlers.items() if h.synced)

    # -- discovery ---------------------------------------------------------------

    def _on_info(self, sid: int, info: p.FollowerInfo | p.ObserverInfo, now: int) -> None:
        if info.sid != sid:
            self._local.append(DropLearner(sid, f"link of {sid} announced sid {info.sid}"))
            return
        observer = isinstance(info, p.ObserverInfo)
        old = self.handlers.pop(sid, None)
        if old is not None:
            old.discard()  # a reconnect replaces the old link (ZooKeeper does the same)
        h = self.handlers[sid] = LearnerHandler(
            sid,
            observer=observer,
            voter=sid in self.voters,
            accepted_epoch=info.accepted_epoch,
            last_zxid=info.last_zxid,
            now=now,
        )
        if self.epoch is None:
            self._epoch_votes[sid] = info.accepted_epoch
            self._maybe_decide_epoch()
        else:
            h.queue(p.LeaderInfo(self.epoch))
            h.leaderinfo_sent = True

    def _maybe_decide_epoch(self) -> None:
        if self.epoch is not None:
            return
        if len(self.voters.intersection(self._epoch_votes)) < self.quorum_size:
            return
        self.epoch = max(self._epoch_votes.values()) + 1
        self.accepted_epoch = self.epoch
        self._local.append(PersistAcceptedEpoch(self.epoch))
        for h in self.handlers.values():
            h.queue(p.LeaderInfo(self.epoch))
            h.leaderinfo_sent = True
        self._epoch_ackers.add(self.sid)
        self._maybe_epoch_quorum()

    def _on_ackepoch(self, h: LearnerHandler, ack: p.AckEpoch) -> None:
        # Before the epoch is decided, compare with the leader's state from
        # before this leadership (ZooKeeper's waitForEpochAck); after it, with
        # its state now: a learner that acked this very epoch and restarted
        # has currentEpoch == epoch, ahead of the old summary but not of us.
        mine = self._summary if self.state is ZabState.DISCOVERY else (self.current_epoch, self.last_proposed)
        if (ack.current_epoch, ack.last_zxid) > mine:
            reason = (
                f"Follower {h.sid} is ahead of the leader: its (currentEpoch, lastZxid) = "
                f"({ack.current_epoch}, {zxid_hex(ack.last_zxid)}), the leader's = "
                f"({mine[0]}, {zxid_hex(mine[1])})"
            )
            if self.state is ZabState.DISCOVERY:
                self._step_down(reason)
            else:
                self._drop(h, reason)
            return
        h.current_epoch, h.last_zxid = ack.current_epoch, ack.last_zxid
        h.phase = HandlerPhase.EPOCH_ACKED
        if h.voter:
            self._epoch_ackers.add(h.sid)
        if self.state is ZabState.DISCOVERY:
            self._maybe_epoch_quorum()
        else:
            self._sync(h)

    def _maybe_epoch_quorum(self) -> None:
        if self.state is not ZabState.DISCOVERY or len(self._epoch_ackers) < self.quorum_size:
            return
        assert self.epoch is not None
        self.state = ZabState.SYNCHRONIZATION
        self._local.append(PersistCurrentEpoch(self.epoch))
        self.current_epoch = self.epoch
        # The leader's history is its own log and its currentEpoch is durable
        # once the effect above ran: its own NEWLEADER ACK.
        self._newleader_ackers.add(self.sid)
        for h in self.handlers.values():
            if h.phase is HandlerPhase.EPOCH_ACKED:
                self._sync(h)
        self._maybe_establish()

    # -- synchronization -----------------------------------------------------------

    def _sync(self, h: LearnerHandler) -> None:
        assert self.epoch is not None
        in_flight: Sequence[p.Proposal] = () if h.observer else self._outstanding
        plan = choose_sync(
            h.last_zxid, self._committed_zxids, self.last_committed, [x.zxid for x in in_flight], self._base
        )
        h.queue_sync(plan, self._committed, list(in_flight), make_zxid(self.epoch, 0))

    def _on_ack(self, h: LearnerHandler, zxid: int) -> None:
        assert self.epoch is not None
        if h.phase is HandlerPhase.SYNCING:
            if zxid != make_zxid(self.epoch, 0):
                self._drop(h, f"learner {h.sid} sent ACK {zxid_hex(zxid)} instead of NEWLEADER's")
                return
            h.phase = HandlerPhase.SYNCED
            h.acked = zxid
            if h.voter:
                self._newleader_ackers.add(h.sid)
            if self.state is ZabState.BROADCAST:
                h.queue(p.UpToDate())
                h.phase = HandlerPhase.SERVING
            else:
                self._maybe_establish()
            return
        if zxid > h.acked and epoch_of(zxid) == self.epoch:
            h.acked = zxid
            if h.voter:
                self._advance_commit()

    def _maybe_establish(self) -> None:
        if self.state is not ZabState.SYNCHRONIZATION or len(self._newleader_ackers) < self.quorum_size:
            return
        assert self.epoch is not None
        self.state = ZabState.BROADCAST
        self.last_proposed = self._self_persisted = make_zxid(self.epoch, 0)
        self._local.append(Established(self.epoch))
        for h in self.handlers.values():
            if h.phase is HandlerPhase.SYNCED:
                h.queue(p.UpToDate())
                h.phase = HandlerPhase.SERVING

    # -- broadcast ---------------------------------------------------------------

    def _advance_commit(self) -> None:
        if not self._outstanding:
            return
        votes = [self._self_persisted]
        votes.extend(h.acked for h in self.handlers.values() if h.voter and h.synced)
        if len(votes) < self.quorum_size:
            return
        votes.sort(reverse=True)
        point = votes[self.quorum_size - 1]  # acked by at least a quorum
        if point < self._outstanding[0].zxid:
            return
        done: list[p.Proposal] = []
        while self._outstanding and self._outstanding[0].zxid <= point:
            done.append(self._outstanding.popleft())
        self._committed.extend(done)
        self._committed_zxids.extend(x.zxid for x in done)
        if len(self._committed) > 2 * self.commit_log_count:
            cut = len(self._committed) - self.commit_log_count
            if self._base is not None:
                self._base = self._committed_zxids[cut - 1]
            del self._committed[:cut]
            del self._committed_zxids[:cut]
        self.last_committed = done[-1].zxid
        self._local.append(Commit(tuple(done)))
        for h in self.handlers.values():
            if h.forwarding:
                h.queue_commits(done)
        self._answer_syncs()

    def _on_sync_request(self, who: int | None, token: object) -> None:
        if self._outstanding:
            self._pending_syncs.append((self.last_proposed, who, token))
        else:
            self._reply_sync(who, token)

    def _answer_syncs(self) -> None:
        pending = self._pending_syncs
        while pending and pending[0][0] <= self.last_committed:
            _, who, token = pending.popleft()
            self._reply_sync(who, token)

    def _reply_sync(self, who: int | None, token: object) -> None:
        if who is None:
            self._local.append(SyncDone(token))
            return
        h = self.handlers.get(who)
        if h is not None:
            h.queue(p.Sync(token))

    # -- plumbing ----------------------------------------------------------------

    def _drop(self, h: LearnerHandler, reason: str) -> None:
        if self.handlers.get(h.sid) is h:
            del self.handlers[h.sid]
        h.discard()
        self._local.append(DropLearner(h.sid, reason))

    def _step_down(self, reason: str) -> None:
        self.state = ZabState.STOPPED
        for h in self.handlers.values():
            h.discard()
        self._local.append(StepDown(reason))

    def _flush(self) -> list[Effect]:
        effects = self._local
        self._local = []
        if self.state is not ZabState.STOPPED:
            for h in self.handlers.values():
                effects.extend(h.take())
        return effects
