"""A seeded, in-memory ensemble of :class:`Election` cores on a fake clock.

The network drops, duplicates and reorders (random delays) notifications while
``now < chaos_until``, then delivers every message within ``delay``.  Links can
be cut and healed and peers crashed and recovered; like the real driver, a
healed or reconnected link re-sends the latest notification of its outbox.

ZAB is not simulated, only what election needs from it (a stand-in for
``Leader.lead`` / ``Follower.followLeader`` timing out): ``sync_timeout`` after
a decision and then periodically, a leader that no longer has a quorum of
connected followers, or a follower whose leader is not LEADING, goes back to
LOOKING.  A leader that has a quorum establishes the epoch ``max + 1`` and
syncs its learners (epoch and zxid), as ``updateElectionVote`` does.

Everything is a pure function of the seed and the scenario: no clock, no IO.
"""

from __future__ import annotations

import functools
import heapq
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from trio_quorum.quorum.election import (
    Broadcast,
    Effect,
    Elected,
    Election,
    Notification,
    SendTo,
    ServerState,
    total_order,
)
from trio_quorum.quorum.verifier import QuorumVerifier

LOOKING = ServerState.LOOKING
LEADING = ServerState.LEADING
FOLLOWING = ServerState.FOLLOWING
OBSERVING = ServerState.OBSERVING


@dataclass
class Peer:
    sid: int
    zxid: int
    epoch: int
    election: Election | None = None
    up: bool = False
    established: int | None = None  # the epoch this peer established as leader


@dataclass(order=True)
class _Event:
    time: float
    seq: int
    kind: str = field(compare=False)
    sid: int = field(compare=False)
    notification: Notification | None = field(compare=False, default=None)


@dataclass(frozen=True)
class Decision:
    time: float
    sid: int
    elected: Elected


class Sim:
    def __init__(
        self,
        verifier: QuorumVerifier,
        *,
        zxids: dict[int, int] | None = None,
        epochs: dict[int, int] | None = None,
        seed: int = 0,
        drop: float = 0.0,
        dup: float = 0.0,
        delay: tuple[float, float] = (0.0005, 0.002),
        chaos_until: float = 0.0,
        sync_timeout: float = 0.5,
        drop_filter: Callable[[int, int, Notification, float], bool] | None = None,
        **election_kwargs: float,
    ) -> None:
        self.verifier = verifier
        self.rng = random.Random(seed)
        self.drop, self.dup, self.delay, self.chaos_until = drop, dup, delay, chaos_until
        self.sync_timeout = sync_timeout
        #: (src, dst, notification, now) -> True to lose that message (scripted loss).
        self.drop_filter = drop_filter
        self.election_kwargs = election_kwargs
        zxids = zxids or {}
        epochs = epochs or {}
        self.peers = {
            s: Peer(s, zxids.get(s, 0), epochs.get(s, 0)) for s in sorted(verifier.members)
        }
        self.now = 0.0
        self._seq = 0
        self._queue: list[_Event] = []
        self._checks: dict[int, float] = {}
        self.outbox: dict[tuple[int, int], Notification] = {}
        self.cut_links: set[frozenset[int]] = set()
        self.decisions: list[Decision] = []
        self.delivered = 0
        self.trace: list[tuple[float, int, int, Notification]] = []
        # sid -> the last LOOKING vote it sent since its last start() (monotonicity check).
        self._proposed: dict[int, Notification] = {}

    # -- scenario controls ----------------------------------------------------

    def start(self, sids: Iterable[int] | None = None) -> None:
        """Boot peers (a fresh Election, logical clock 0) and start their rounds."""
        for sid in sorted(self.peers if sids is None else sids):
            p = self.peers[sid]
            p.up, p.established = True, None
            p.election = Election(sid, self.verifier, p.zxid, p.epoch, **self.election_kwargs)
            self._proposed.pop(sid, None)
            self._execute(sid, p.election.start(self.now))
            self._redeliver_to(sid)

    def crash(self, sid: int) -> None:
        p = self.peers[sid]
        p.up, p.election, p.established = False, None, None
        self._checks.pop(sid, None)

    def cut(self, a: int, b: int) -> None:
        self.cut_links.add(frozenset((a, b)))

    def heal(self, a: int, b: int) -> None:
        self.cut_links.discard(frozenset((a, b)))
        for src, dst in ((a, b), (b, a)):
            n = self.outbox.get((src, dst))
            if n is not None and self.peers[src].up:
                self._send(src, dst, n)

    def election(self, sid: int) -> Election:
        e = self.peers[sid].election
        assert e is not None, f"peer {sid} is down"
        return e

    def connected(self, a: int, b: int) -> bool:
        return (
            self.peers[a].up and self.peers[b].up and frozenset((a, b)) not in self.cut_links
        )

    # -- the loop -------------------------------------------------------------

    def run(self, until: Callable[[], bool], limit: float, max_events: int = 200_000) -> bool:
        """Process events in time order until ``until()`` or sim time ``limit``."""
        for _ in range(max_events):
            if until():
                return True
            t, what = self._next()
            if t is None or t > limit:
                self.now = max(self.now, limit)
                return until()
            self.now = max(self.now, t)
            what()
        raise AssertionError("event budget exhausted (livelock?)")

    def run_for(self, duration: float) -> None:
        end = self.now + duration
        self.run(lambda: False, end)

    def _next(self) -> tuple[float | None, Callable[[], None]]:
        best: float | None = None
        action: Callable[[], None] = self._deliver_one
        if self._queue:
            best = self._queue[0].time
        for sid, p in self.peers.items():
            if p.up and p.election is not None:
                d = p.election.next_deadline()
                if d is not None and (best is None or d < best):
                    best, action = d, functools.partial(self._tick, sid)
        for sid, t in self._checks.items():
            if best is None or t < best:
                best, action = t, functools.partial(self._role_check, sid)
        return best, action

    def _deliver_one(self) -> None:
        ev = heapq.heappop(self._queue)
        assert ev.notification is not None
        src = ev.notification.sid
        if not self.connected(src, ev.sid):
            return
        e = self.election(ev.sid)
        self.delivered += 1
        self.trace.append((self.now, src, ev.sid, ev.notification))
        self._execute(ev.sid, e.receive(ev.notification, self.now))

    def _tick(self, sid: int) -> None:
        self._execute(sid, self.election(sid).tick(self.now))

    # -- effects, the driver's part -------------------------------------------

    def _execute(self, sid: int, effects: list[Effect]) -> None:
        for eff in effects:
            if isinstance(eff, Broadcast):
                assert sid not in eff.to and eff.to == self.verifier.participants - {sid}
                for dst in sorted(eff.to):
                    self._send(sid, dst, eff.notification)
            elif isinstance(eff, SendTo):
                self._send(sid, eff.sid, eff.notification)
            else:
                assert isinstance(eff, Elected)
                self.decisions.append(Decision(self.now, sid, eff))
                self._checks[sid] = self.now + self.sync_timeout

    def _send(self, src: int, dst: int, n: Notification) -> None:
        assert n.sid == src
        if n.state is LOOKING:
            # Within one round of one start(), a proposal only moves up.
            prev = self._proposed.get(src)
            if prev is not None and prev.election_epoch == n.election_epoch:
                assert not total_order(prev.vote, n.vote), (prev, n)
            self._proposed[src] = n
        self.outbox[(src, dst)] = n
        if not self.connected(src, dst):
            return
        if self.drop_filter is not None and self.drop_filter(src, dst, n, self.now):
            return
        chaos = self.now < self.chaos_until
        if chaos and self.rng.random() < self.drop:
            return
        copies = 2 if chaos and self.rng.random() < self.dup else 1
        for _ in range(copies):
            lo, hi = self.delay
            if chaos:
                hi = hi * 20  # reorder: delays spread wide while the network misbehaves
            self._seq += 1
            t = self.now + self.rng.uniform(lo, hi)
            heapq.heappush(self._queue, _Event(t, self._seq, "msg", dst, n))

    def _redeliver_to(self, sid: int) -> None:
        # A (re)started peer's links come up: peers re-send their latest vote.
        for (src, dst), n in sorted(self.outbox.items(), key=lambda kv: kv[0]):
            if dst == sid and src != sid and self.peers[src].up:
                self._send(src, dst, n)

    # -- the ZAB stand-in -----------------------------------------------------

    def restart(self, sid: int) -> None:
        """The role gave up: back to LOOKING with the peer's current log."""
        p = self.peers[sid]
        p.established = None
        self._checks.pop(sid, None)
        self._proposed.pop(sid, None)
        self._execute(sid, self.election(sid).start(self.now, last_zxid=p.zxid, current_epoch=p.epoch))

    def _role_check(self, sid: int) -> None:
        p = self.peers[sid]
        e = self.election(sid)
        self._checks[sid] = self.now + self.sync_timeout
        if e.state is LEADING:
            learners = [
                s for s, q in self.peers.items()
                if s != sid and self.connected(s, sid) and q.election is not None
                and q.election.state in (FOLLOWING, OBSERVING) and q.election.vote.leader == sid
            ]
            voters = {sid, *(s for s in learners if self.verifier.is_voter(s))}
            if not self.verifier.contains_quorum(voters):
                self.restart(sid)
                return
            if p.established is None:
                p.established = max(self.peers[s].epoch for s in voters) + 1
                p.epoch = p.established
                e.update_election_vote(p.established)
            for s in learners:
                q = self.peers[s]
                if q.epoch != p.established:
                    q.epoch, q.zxid = p.established, p.zxid
                    self.election(s).update_election_vote(p.established)
        elif e.state in (FOLLOWING, OBSERVING):
            leader = e.vote.leader
            lp = self.peers.get(leader)
            if (
                lp is None or not self.connected(sid, leader) or lp.election is None
                or lp.election.state is not LEADING
            ):
                self.restart(sid)

    # -- observations ---------------------------------------------------------

    def leader_of(self, sids: Iterable[int]) -> int | None:
        """The one established leader every peer of ``sids`` agrees on, if any."""
        sids = list(sids)
        es = [self.peers[s].election for s in sids]
        if any(e is None or e.state is LOOKING for e in es):
            return None
        leaders = {e.vote.leader for e in es if e is not None}
        if len(leaders) != 1:
            return None
        (leader,) = leaders
        lp = self.peers[leader]
        if lp.election is None or lp.election.state is not LEADING or lp.established is None:
            return None
        return leader

    def stable(self, sids: Iterable[int] | None = None) -> bool:
        sids = [s for s in self.peers if self.peers[s].up] if sids is None else list(sids)
        return self.leader_of(sids) is not None

    def decided_by_round(self) -> dict[int, dict[int, set[int]]]:
        """round -> leader -> sids (participants) that decided it in that round."""
        out: dict[int, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
        for d in self.decisions:
            if self.verifier.is_voter(d.sid):
                out[d.elected.election_epoch][d.elected.leader].add(d.sid)
        return out

    def assert_one_leader_per_round(self) -> None:
        """No round has two leaders each decided by a quorum of participants."""
        for rnd, by_leader in self.decided_by_round().items():
            backed = [ldr for ldr, sids in by_leader.items() if self.verifier.contains_quorum(sids)]
            assert len(backed) <= 1, f"round {rnd}: leaders {backed} each backed by a quorum"
