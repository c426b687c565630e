"""An in-memory ensemble of ZAB cores (h11's ConnectionPair idea, for N peers).

One :class:`Node` per server: a core (leader or learner), a fake :class:`Disk`
and an effect executor that keeps the effect contract of zab_effects (in
order; synchronous persists immediate; LogTxns durable only when the test says
so, unless ``auto_persist``).  Links are FIFO queues the test delivers from one
packet at a time, so any interleaving can be scripted or drawn by Hypothesis.

The harness also checks, as effects are executed (``Ensemble.violations``):

* a ``SendSnapshot(zxid)`` finds the leader's tree at exactly ``zxid``;
* every txn the leader commits is acked by a quorum of voters (ACKs seen on
  the wire + the leader's own persist) and durable on a quorum of disks;
* every ``Commit`` on any node matches the leader's committed sequence and
  extends its tree without a gap;
* a ``SyncDone`` finds the learner's tree past every proposal made before the
  SYNC reached the leader.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from trio_quorum.quorum import zab_effects as fx
from trio_quorum.quorum import zab_packets as p
from trio_quorum.quorum.leader import LeaderCore
from trio_quorum.quorum.learner import LearnerCore

TICK = 100
INIT_LIMIT = 10
SYNC_LIMIT = 5


@dataclass
class Disk:
    accepted_epoch: int = 0
    current_epoch: int = 0
    log: list[p.Proposal] = field(default_factory=list)
    #: how many entries of ``log`` are durable
    flushed: int = 0
    #: the data tree, as the txns applied to it (reloaded from the log at start)
    tree: list[p.Proposal] = field(default_factory=list)

    @classmethod
    def with_log(cls, zxids: list[int], *, accepted: int, current: int) -> Disk:
        log = [p.Proposal(z, f"t{z:x}") for z in zxids]
        return cls(accepted, current, list(log), len(log), list(log))

    @property
    def last_zxid(self) -> int:
        return self.log[-1].zxid if self.log else 0

    def durable(self) -> list[p.Proposal]:
        return self.log[: self.flushed]

    def crash(self) -> None:
        """Lose what was not fsynced; the tree is rebuilt from the log."""
        del self.log[self.flushed :]
        self.tree = list(self.log)


@dataclass
class Node:
    sid: int
    disk: Disk
    observer: bool = False
    voter: bool = True
    auto_persist: bool = True
    core: LeaderCore | LearnerCore | None = None
    effects: list[fx.Effect] = field(default_factory=list)
    touches: dict[int, int] = field(default_factory=dict)
    stopped: str | None = None


class Ensemble:
    def __init__(
        self,
        disks: dict[int, Disk],
        *,
        leader: int,
        observers: frozenset[int] = frozenset(),
        commit_log_count: int = 500,
        auto_persist: bool = True,
    ) -> None:
        self.now = 0
        self.leader_sid = leader
        self.voters = frozenset(s for s in disks if s not in observers)
        self.quorum = len(self.voters) // 2 + 1
        self.nodes = {
            sid: Node(
                sid,
                d,
                observer=sid in observers,
                voter=sid not in observers,
                auto_persist=auto_persist,
            )
            for sid, d in disks.items()
        }
        self.links: dict[tuple[int, int], deque[p.Packet]] = {}
        self.commit_log_count = commit_log_count
        self.violations: list[str] = []
        self.committed: list[p.Proposal] = []  # the leader's Commit effects, in order
        self.acks: dict[int, int] = {}  # highest ACK the leader received per sid
        self.sync_marks: dict[object, int] = {}
        self.sync_modes: dict[int, list[str]] = {}

    # -- set-up ------------------------------------------------------------------

    @property
    def leader(self) -> LeaderCore:
        core = self.nodes[self.leader_sid].core
        assert isinstance(core, LeaderCore)
        return core

    def learner(self, sid: int) -> LearnerCore:
        core = self.nodes[sid].core
        assert isinstance(core, LearnerCore)
        return core

    def start(self) -> None:
        node = self.nodes[self.leader_sid]
        d = node.disk
        node.core = LeaderCore(
            node.sid,
            self.voters,
            accepted_epoch=d.accepted_epoch,
            current_epoch=d.current_epoch,
            last_zxid=d.last_zxid,
            history=d.log,
            history_base=0,  # the fake disk holds the whole log
            tick_time=TICK,
            init_limit=INIT_LIMIT,
            sync_limit=SYNC_LIMIT,
            commit_log_count=self.commit_log_count,
        )
        self.acks[node.sid] = d.last_zxid
        self.run(node, node.core.start(self.now))
        for sid in self.nodes:
            if sid != self.leader_sid:
                self.connect(sid)

    def connect(self, sid: int) -> None:
        """A (new) learner core from what is on ``sid``'s disk, and FOLLOWERINFO."""
        node = self.nodes[sid]
        d = node.disk
        node.stopped = None
        node.core = LearnerCore(
            sid,
            accepted_epoch=d.accepted_epoch,
            current_epoch=d.current_epoch,
            last_zxid=d.last_zxid,
            observer=node.observer,
            tick_time=TICK,
            init_limit=INIT_LIMIT,
            sync_limit=SYNC_LIMIT,
        )
        self.links[(sid, self.leader_sid)] = deque()
        self.links[(self.leader_sid, sid)] = deque()
        self.run(node, node.core.start(self.now))

    def disconnect(self, sid: int, *, crash: bool) -> None:
        """Cut ``sid``'s link (everything in flight is lost); optionally crash it."""
        self.links.pop((sid, self.leader_sid), None)
        self.links.pop((self.leader_sid, sid), None)
        node = self.nodes[sid]
        node.core = None
        if crash:
            node.disk.crash()
        else:
            # The fsync in progress completes; a new learner core starts from a
            # state that holds its whole log (ZooKeeper reloads the database).
            d = node.disk
            d.flushed = len(d.log)
            d.tree = list(d.log)
        self.run(self.nodes[self.leader_sid], self.leader.learner_lost(sid))

    # -- driving -------------------------------------------------------------------

    def pending(self) -> list[tuple[int, int]]:
        return [k for k, q in self.links.items() if q]

    def deliver(self, src: int, dst: int, n: int = 1) -> None:
        q = self.links[(src, dst)]
        for _ in range(min(n, len(q))):
            packet = q.popleft()
            node = self.nodes[dst]
            if node.core is None or node.stopped:
                continue
            if isinstance(node.core, LeaderCore):
                self._observe_at_leader(src, packet)
                self.run(node, node.core.receive(src, packet, self.now))
            else:
                if isinstance(packet, (p.Diff, p.Trunc, p.Snap)):
                    self.sync_modes.setdefault(dst, []).append(type(packet).__name__.upper())
                self.run(node, node.core.receive(packet, self.now))

    def deliver_all(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            pending = self.pending()
            if not pending:
                return
            for src, dst in pending:
                if (src, dst) in self.links:
                    self.deliver(src, dst, len(self.links[(src, dst)]))
        raise AssertionError("network did not quiesce")

    def flush(self, sid: int) -> None:
        """The fsync of ``sid``'s log completes."""
        node = self.nodes[sid]
        d = node.disk
        if d.flushed == len(d.log) or not d.log:
            return
        d.flushed = len(d.log)
        if node.core is not None and not node.stopped:
            self.run(node, node.core.persisted(d.log[-1].zxid))

    def tick(self, advance: int) -> None:
        self.now += advance
        for node in list(self.nodes.values()):
            if node.core is not None and not node.stopped:
                self.run(node, node.core.tick(self.now))

    def propose(self, *txns: object) -> list[int]:
        node = self.nodes[self.leader_sid]
        zxids, effects = self.leader.propose_many(txns)
        self.run(node, effects)
        return zxids

    # -- the effect executor -----------------------------------------------------------

    def run(self, node: Node, effects: list[fx.Effect]) -> None:
        node.effects.extend(effects)
        d = node.disk
        logged = False
        for e in effects:
            if isinstance(e, fx.PersistAcceptedEpoch):
                d.accepted_epoch = e.epoch
            elif isinstance(e, fx.PersistCurrentEpoch):
                d.current_epoch = e.epoch
            elif isinstance(e, fx.Truncate):
                del d.log[sum(1 for x in d.log if x.zxid <= e.zxid) :]
                d.flushed = min(d.flushed, len(d.log))
                d.tree = list(d.log)
            elif isinstance(e, fx.ApplySnapshot):
                state = list(e.snapshot)  # type: ignore[call-overload]
                d.log, d.flushed, d.tree = list(state), len(state), list(state)
            elif isinstance(e, fx.LogTxns):
                d.log.extend(e.proposals)
                logged = True
            elif isinstance(e, fx.Commit):
                self._check_commit(node, e.proposals)
                d.tree.extend(e.proposals)
            elif isinstance(e, fx.Send):
                q = self.links.get((node.sid, e.sid))
                if q is not None:
                    q.extend(e.packets)
            elif isinstance(e, fx.SendSnapshot):
                if not d.tree or d.tree[-1].zxid != e.zxid:
                    have = d.tree[-1].zxid if d.tree else 0
                    self.violations.append(f"snapshot at {e.zxid:#x} but the tree is at {have:#x}")
                q = self.links.get((node.sid, e.sid))
                if q is not None:
                    q.append(p.Snap(e.zxid, tuple(d.tree)))
            elif isinstance(e, fx.SendToLeader):
                q = self.links.get((node.sid, self.leader_sid))
                if q is not None:
                    q.extend(e.packets)
            elif isinstance(e, (fx.StepDown, fx.LeaderLost)):
                node.stopped = e.reason
            elif isinstance(e, fx.DropLearner):
                self.links.pop((e.sid, self.leader_sid), None)
                self.links.pop((self.leader_sid, e.sid), None)
            elif isinstance(e, fx.ReplyPing):
                assert isinstance(node.core, LearnerCore)
                self.run(node, node.core.ping_reply(node.touches))
            elif isinstance(e, fx.RevalidateSession):
                self.run(node, self.leader.revalidated(e.sid, e.session_id, e.session_id % 2 == 0))
            elif isinstance(e, fx.SyncDone):
                mark = self.sync_marks.get(e.token, -1)
                if (d.tree[-1].zxid if d.tree else 0) < mark:
                    self.violations.append(
                        f"SyncDone({e.token}) on {node.sid} before {mark:#x} was applied"
                    )
        if logged and node.auto_persist:
            self.flush(node.sid)

    # -- invariant checks ------------------------------------------------------------

    def _observe_at_leader(self, src: int, packet: p.Packet) -> None:
        if isinstance(packet, p.Ack):
            self.acks[src] = max(self.acks.get(src, -1), packet.zxid)
        elif isinstance(packet, p.SyncRequest):
            log = self.nodes[
                self.leader_sid
            ].disk.log  # every proposal is logged (maybe not durable)
            self.sync_marks[packet.token] = log[-1].zxid if log else 0

    def _check_commit(self, node: Node, proposals: tuple[p.Proposal, ...]) -> None:
        if node.sid == self.leader_sid:
            d = node.disk
            self.acks[node.sid] = d.log[d.flushed - 1].zxid if d.flushed else 0
            for x in proposals:
                ackers = [s for s in self.voters if self.acks.get(s, -1) >= x.zxid]
                if len(ackers) < self.quorum:
                    self.violations.append(f"{x.zxid:#x} committed with acks from {ackers} only")
                holders = [s for s in self.voters if x in self.nodes[s].disk.durable()]
                if len(holders) < self.quorum:
                    self.violations.append(f"{x.zxid:#x} committed but durable on {holders} only")
            self.committed.extend(proposals)
            return
        tree = node.disk.tree
        prev = tree[-1].zxid if tree else 0
        leader_tree = self.nodes[self.leader_sid].disk.tree
        index = {x.zxid: i for i, x in enumerate(leader_tree)}
        for x in proposals:
            i = index.get(x.zxid)
            if i is None or leader_tree[i] != x:
                self.violations.append(f"{node.sid} committed {x} which the leader did not")
            elif (leader_tree[i - 1].zxid if i else 0) != prev:
                self.violations.append(f"{node.sid} committed {x.zxid:#x} after {prev:#x}: a gap")
            prev = x.zxid

    # -- queries -------------------------------------------------------------------------

    def sent_by(self, sid: int) -> list[p.Packet]:
        out: list[p.Packet] = []
        for e in self.nodes[sid].effects:
            if isinstance(e, (fx.Send, fx.SendToLeader)):
                out.extend(e.packets)
        return out

    def links_sent_to(self, sid: int) -> list[p.Packet]:
        """Every packet the leader sent ``sid`` (SNAPs without their state)."""
        out: list[p.Packet] = []
        for e in self.nodes[self.leader_sid].effects:
            if isinstance(e, fx.Send) and e.sid == sid:
                out.extend(e.packets)
            elif isinstance(e, fx.SendSnapshot) and e.sid == sid:
                out.append(p.Snap(e.zxid, None))
        return out

    def effects_of(self, sid: int, kind: type) -> list[fx.Effect]:
        return [e for e in self.nodes[sid].effects if isinstance(e, kind)]


# -- the harness's own checks can fail ------------------------------------------------


def test_the_executor_flags_a_commit_without_quorum() -> None:
    ens = Ensemble({1: Disk(), 2: Disk(), 3: Disk()}, leader=1)
    ens.start()
    ens.deliver_all()
    assert ens.violations == []
    bogus = p.Proposal((1 << 32) | 1, "never proposed")
    ens.run(ens.nodes[1], [fx.Commit((bogus,))])
    assert any("committed with acks from" in v for v in ens.violations)
    assert any("durable on" in v for v in ens.violations)


def test_the_executor_flags_a_learner_commit_the_leader_did_not_make() -> None:
    ens = Ensemble({1: Disk(), 2: Disk(), 3: Disk()}, leader=1)
    ens.start()
    ens.deliver_all()
    ens.run(ens.nodes[2], [fx.Commit((p.Proposal((1 << 32) | 1, "forged"),))])
    assert ens.violations == [
        f"2 committed {p.Proposal((1 << 32) | 1, 'forged')} which the leader did not"
    ]
