"""Fast leader election, ZooKeeper's ``FastLeaderElection`` as a sans-IO core.

One :class:`Election` lives as long as its peer.  While the peer is LOOKING it
runs rounds of FLE; in every other role (FOLLOWING, LEADING, OBSERVING) it keeps
answering LOOKING peers with the vote it decided, because the election
listener keeps running in every role (ZooKeeper's ``WorkerReceiver``).

API (etcd-raft's Step / Tick / Ready shape; time is a float in seconds on any
monotonic clock, passed in, never read)::

    e = Election(my_sid, verifier, last_zxid, current_epoch)
    effects = e.start(now)               # a new round: logical clock + 1, vote for me
    effects = e.receive(notification, now)
    effects = e.tick(now)                # call when now >= e.next_deadline()
    e.update_election_vote(new_epoch)    # the role established a new epoch
    e.state, e.vote, e.logical_clock, e.notification()   # read-only view

Effects are data, executed by the driver in list order:

* :class:`Broadcast` -- send ``notification`` to every sid of ``to`` (all
  participants but me);
* :class:`SendTo` -- send ``notification`` to one peer (an answer);
* :class:`Elected` -- the round is over: switch to ``state`` under ``leader``.

The driver contract and the reasons for the parameters are in docs/election.md.

Invariants:

* every notification an effect carries is this peer's *current* vote at the
  time the effect was made; so a newer notification to a peer supersedes an
  older unsent one, and the driver may keep a latest-value outbox per peer
  (and re-send its content when a link is (re)established, as ZooKeeper's
  ``SendWorker`` re-sends ``lastMessageSent``);
* the driver sends nothing before the first :meth:`Election.start`
  (:meth:`Election.receive` refuses to run before it), and acts on an
  :class:`Elected` only after executing the effects that precede it;
* within one round (logical clock value) the proposal only moves up in the
  :func:`total_order`, and the peer decides at most once;
* a vote is counted only from a participant, and only for a participant:
  observers' notifications are answered, never counted;
* a decision needs a quorum of participants voting for the proposal, then
  either all participants agreeing or ``finalize_wait`` without a better vote;
  joining an existing ensemble needs a quorum of FOLLOWING/LEADING votes for
  the same leader and epoch *plus* that leader's own LEADING vote
  (``checkLeader``), so a crashed leader is not re-joined forever.

Rules per notification while LOOKING (from a participant, for a participant):

========================  =====================================================
n.state / round           action
========================  =====================================================
LOOKING, round > mine     adopt round, clear votes, propose best of (n, my
                          initial vote), broadcast, count n
LOOKING, round < mine     answer n.sid with my vote (pull it up; observers
                          do not), ignore
LOOKING, round = mine     adopt n if it beats my proposal (broadcast); count n
FOLLOWING / LEADING       same round: count with the LOOKING votes; any round:
                          count in out-of-election; quorum + leader's LEADING
                          vote -> follow it (adopting its round)
OBSERVING                 ignored
========================  =====================================================

Where we differ from ZooKeeper, and why:

* the retransmission timer runs from the last broadcast, not from the last
  notification received: with ZooKeeper's ``poll(notTimeout)`` a peer that
  keeps hearing from others never re-sends, so a one-way lossy link can hide
  its vote for as long as traffic flows the other way;
* notifications arriving during the finalize window are counted, not
  consumed and dropped; the window does not restart on each notification;
* when every participant's vote is known and equal to the proposal, we
  decide at once: no better vote can exist in this round (each peer's vote is
  at least its own initial vote), so the wait would buy nothing;
* defaults are tuned for fast fail-over (see :class:`Election`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from trio_quorum.quorum.verifier import QuorumVerifier

__sans_io__ = True

__all__ = [
    "NO_VOTE",
    "Broadcast",
    "Effect",
    "Elected",
    "Election",
    "Notification",
    "ServerState",
    "SendTo",
    "Vote",
    "total_order",
]

#: ZooKeeper's ``Long.MIN_VALUE``: the sid, zxid and epoch an observer proposes
#: (it has no candidate of its own, so any participant's vote beats it).
NO_VOTE = -(2**63)


class ServerState(enum.IntEnum):
    """``QuorumPeer.ServerState``; the value is the ordinal on the wire."""

    LOOKING = 0
    FOLLOWING = 1
    LEADING = 2
    OBSERVING = 3


LOOKING = ServerState.LOOKING
FOLLOWING = ServerState.FOLLOWING
LEADING = ServerState.LEADING
OBSERVING = ServerState.OBSERVING


@dataclass(frozen=True, slots=True)
class Vote:
    """A vote as counted: proposed ``leader`` (sid), its ``zxid`` and
    ``peer_epoch``, the ``election_epoch`` (round) it was cast in, and the
    voter's ``state`` (LOOKING while electing)."""

    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    state: ServerState = LOOKING

    def same_as(self, other: Vote) -> bool:
        """ZooKeeper's ``Vote.equals``: LOOKING votes match on all four
        numbers; two decided votes match on leader and peer epoch only
        (their rounds and zxids may differ: they decided at different times)."""
        if self.state is LOOKING or other.state is LOOKING:
            return (
                self.leader == other.leader
                and self.zxid == other.zxid
                and self.election_epoch == other.election_epoch
                and self.peer_epoch == other.peer_epoch
            )
        return self.leader == other.leader and self.peer_epoch == other.peer_epoch


@dataclass(frozen=True, slots=True)
class Notification:
    """What one peer tells another (``FastLeaderElection.Notification``):
    sender ``sid`` in ``state`` votes for ``leader`` with ``zxid`` and
    ``peer_epoch`` in round ``election_epoch``.  ``config_version`` is the
    sender's membership version (carried, not interpreted)."""

    state: ServerState
    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    sid: int
    config_version: int = 0

    @property
    def vote(self) -> Vote:
        return Vote(self.leader, self.zxid, self.election_epoch, self.peer_epoch, self.state)


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``notification`` to each sid of ``to``."""

    notification: Notification
    to: frozenset[int]


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send ``notification`` to ``sid`` only."""

    sid: int
    notification: Notification


@dataclass(frozen=True, slots=True)
class Elected:
    """The election is over: this peer is now ``state`` (LEADING, FOLLOWING or
    OBSERVING) under ``leader``, whose epoch is ``peer_epoch`` and last zxid
    ``zxid``, decided in round ``election_epoch``."""

    leader: int
    state: ServerState
    peer_epoch: int
    zxid: int
    election_epoch: int


Effect = Broadcast | SendTo | Elected


def total_order(new: Vote, cur: Vote) -> bool:
    """``totalOrderPredicate``: True iff ``new`` beats ``cur``, comparing
    (peer epoch, zxid, leader sid) lexicographically.

    Pure: the caller checks that ``new.leader`` is a participant (ZooKeeper's
    weight-0 rejection).
    """
    return (new.peer_epoch, new.zxid, new.leader) > (cur.peer_epoch, cur.zxid, cur.leader)


class Election:
    """One peer's fast leader election (see the module header for the rules).

    Args:
        my_sid: this peer's server id; must be a member of ``verifier``.
        verifier: the membership; an observer is a member of ``verifier.observers``.
        last_zxid: the last zxid in this peer's log (``lastLoggedZxid``).
        current_epoch: this peer's ``currentEpoch``.
        finalize_wait: seconds to wait, once a quorum backs the proposal, for a
            better vote.  ZooKeeper: 0.2.  Default 0.05: the window only has to
            cover the spread of one round trip between peers on a LAN, and it is
            skipped entirely when every participant agrees.
        min_notification_interval: seconds from a broadcast to its first
            re-send.  ZooKeeper: 0.2 (= finalizeWait).  Default 0.1.
        max_notification_interval: cap of the doubling re-send interval.
            ZooKeeper: 60.  Default 5: links re-send their latest notification
            on reconnect, so re-sends only repair lost messages, and a 60 s cap
            would let one lost message delay fail-over by a minute.
    """

    __slots__ = (
        "my_sid", "verifier", "is_observer", "finalize_wait",
        "min_notification_interval", "max_notification_interval",
        "_last_zxid", "_current_epoch", "_started", "_state", "_clock", "_proposal",
        "_vote", "_recvset", "_outofelection", "_not_timeout", "_resend_at", "_finalize_at",
        "_peers",
    )

    def __init__(
        self,
        my_sid: int,
        verifier: QuorumVerifier,
        last_zxid: int,
        current_epoch: int,
        *,
        finalize_wait: float = 0.05,
        min_notification_interval: float = 0.1,
        max_notification_interval: float = 5.0,
    ) -> None:
        if my_sid not in verifier.members:
            raise ValueError(f"sid {my_sid} is not a member of the ensemble")
        if finalize_wait < 0:
            raise ValueError("finalize_wait must be >= 0")
        if not 0 < min_notification_interval <= max_notification_interval:
            raise ValueError("need 0 < min_notification_interval <= max_notification_interval")
        self.my_sid = my_sid
        self.verifier = verifier
        self.is_observer = verifier.is_observer(my_sid)
        self.finalize_wait = finalize_wait
        self.min_notification_interval = min_notification_interval
        self.max_notification_interval = max_notification_interval
        self._last_zxid = last_zxid
        self._current_epoch = current_epoch
        self._started = False
        self._state = LOOKING
        self._clock = 0
        self._proposal = self._initial_vote()
        # The decided vote (state != LOOKING); while LOOKING, the proposal is the vote.
        self._vote = self._proposal
        # recvset: LOOKING (and same-round decided) votes of this round, by sid.
        self._recvset: dict[int, Vote] = {}
        # outofelection: FOLLOWING/LEADING votes of any round, by sid (ZOOKEEPER-1732).
        self._outofelection: dict[int, Vote] = {}
        self._not_timeout = min_notification_interval
        self._resend_at: float | None = None
        self._finalize_at: float | None = None
        self._peers = verifier.participants - {my_sid}

    # -- read-only view -------------------------------------------------------

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def logical_clock(self) -> int:
        """The current round (ZooKeeper's ``logicalclock``)."""
        return self._clock

    @property
    def vote(self) -> Vote:
        """The current vote: the proposal while LOOKING, the decision after."""
        if self._state is LOOKING:
            return self._proposal
        return self._vote

    def notification(self) -> Notification:
        """The current vote as this peer would send it."""
        v = self.vote
        return Notification(
            self._state, v.leader, v.zxid, v.election_epoch, v.peer_epoch,
            self.my_sid, self.verifier.version,
        )

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do; ``None`` when not LOOKING."""
        if self._state is not LOOKING or not self._started:
            return None
        if self._finalize_at is not None and self._resend_at is not None:
            return min(self._finalize_at, self._resend_at)
        return self._finalize_at if self._finalize_at is not None else self._resend_at

    # -- inputs ---------------------------------------------------------------

    def start(
        self, now: float, *, last_zxid: int | None = None, current_epoch: int | None = None,
    ) -> list[Effect]:
        """Begin a new round (``lookForLeader``): logical clock + 1, vote for
        myself (or, as an observer, for nobody), broadcast.

        Call it once after construction and again whenever the peer goes back
        to LOOKING (the leader is lost, a follower cannot sync...), passing the
        log's ``last_zxid`` and ``current_epoch`` if they changed meanwhile.
        """
        if last_zxid is not None:
            self._last_zxid = last_zxid
        if current_epoch is not None:
            self._current_epoch = current_epoch
        self._started = True
        self._state = LOOKING
        self._clock += 1
        self._outofelection = {}
        self._not_timeout = self.min_notification_interval
        self._finalize_at = None
        self._set_proposal(self._initial_vote())
        self._recvset = {self.my_sid: self._proposal}
        return [self._broadcast(now), *self._check_quorum(now)]

    def receive(self, n: Notification, now: float) -> list[Effect]:
        """Handle one notification from peer ``n.sid``."""
        if not self._started:
            raise RuntimeError("Election.receive before start(): nothing may be sent yet")
        sid = n.sid
        if sid == self.my_sid:
            return []
        verifier = self.verifier
        if sid not in verifier.participants:
            # An observer (or a non-voting learner) looking for the leader:
            # answer at once, in any state; its vote never counts.
            if sid in verifier.observers and n.state is LOOKING:
                return [SendTo(sid, self.notification())]
            return []
        if self._state is not LOOKING:
            # Responder: tell a LOOKING participant whom we follow / that we lead.
            if n.state is LOOKING:
                return [SendTo(sid, self.notification())]
            return []
        return self._look(n, now)

    def tick(self, now: float) -> list[Effect]:
        """Finalize a decision whose window has passed, or re-send the vote."""
        if self._state is not LOOKING or not self._started:
            return []
        if self._finalize_at is not None and now >= self._finalize_at:
            return self._decide(self._proposal)
        if self._resend_at is not None and now >= self._resend_at:
            self._not_timeout = min(self._not_timeout * 2, self.max_notification_interval)
            return [self._broadcast(now)]
        return []

    def update_election_vote(self, peer_epoch: int) -> None:
        """The role established ``peer_epoch`` (``QuorumPeer.updateElectionVote``):
        answers carry it from now on, and the next round proposes with it."""
        self._current_epoch = max(self._current_epoch, peer_epoch)
        if self._state is not LOOKING:
            self._vote = replace(self._vote, peer_epoch=peer_epoch)

    # -- the round ------------------------------------------------------------

    def _initial_vote(self) -> Vote:
        if self.is_observer:
            return Vote(NO_VOTE, NO_VOTE, self._clock, NO_VOTE)
        return Vote(self.my_sid, self._last_zxid, self._clock, self._current_epoch)

    def _set_proposal(self, v: Vote) -> None:
        # The proposal is kept as the LOOKING vote of the current round, so
        # comparing it with counted votes is one same_as call.
        if v.election_epoch != self._clock or v.state is not LOOKING:
            v = Vote(v.leader, v.zxid, self._clock, v.peer_epoch)
        self._proposal = v

    def _broadcast(self, now: float) -> Broadcast:
        self._resend_at = now + self._not_timeout
        return Broadcast(self.notification(), self._peers)

    def _look(self, n: Notification, now: float) -> list[Effect]:
        state = n.state
        effects: list[Effect] = []
        if state is LOOKING and n.election_epoch < self._clock:
            # Its round is behind: pull it up with our vote; the stale vote
            # itself is not counted.  An observer does not answer: participants
            # never take a round from an observer, and they answer every
            # observer notification, so the two would ping-pong for ever.
            if not self.is_observer:
                effects.append(SendTo(n.sid, self.notification()))
            return effects
        if n.leader not in self.verifier.participants:
            return effects
        if state is LOOKING:
            cand = Vote(n.leader, n.zxid, n.election_epoch, n.peer_epoch)
            changed = False
            if n.election_epoch > self._clock:
                self._clock = n.election_epoch
                self._recvset.clear()
                self._finalize_at = None
                init = self._initial_vote()
                self._set_proposal(cand if total_order(cand, init) else init)
                changed = True
            elif total_order(cand, self._proposal):
                self._set_proposal(cand)
                changed = True
            self._recvset[n.sid] = cand
            if changed:
                self._finalize_at = None
                self._recvset[self.my_sid] = self._proposal
                effects.append(self._broadcast(now))
            effects.extend(self._check_quorum(now))
            return effects
        if state is OBSERVING:
            return effects
        # FOLLOWING / LEADING: someone has decided.
        v = n.vote
        if n.election_epoch == self._clock:
            self._recvset[n.sid] = v
            if self._backed(self._recvset, v):
                return self._decide(v)
            # Its decided vote replaced a LOOKING one: the quorum may be gone.
            effects.extend(self._check_quorum(now))
            if self._state is not LOOKING:
                return effects
        self._outofelection[n.sid] = v
        if self._backed(self._outofelection, v):
            self._clock = n.election_epoch
            return self._decide(v)
        return effects

    def _acks(self, votes: dict[int, Vote], v: Vote) -> set[int]:
        return {sid for sid, w in votes.items() if w.same_as(v)}

    def _backed(self, votes: dict[int, Vote], v: Vote) -> bool:
        """A quorum votes ``v`` and ``checkLeader`` holds."""
        if not self.verifier.contains_quorum(self._acks(votes, v)):
            return False
        if v.leader == self.my_sid:
            # Everyone says I lead: only if it is about this very round.
            return v.election_epoch == self._clock
        mine = votes.get(v.leader)
        return mine is not None and mine.state is LEADING

    def _check_quorum(self, now: float) -> list[Effect]:
        """Start, keep, cancel or skip the finalize window for the proposal."""
        acks = self._acks(self._recvset, self._proposal)
        verifier = self.verifier
        if not verifier.contains_quorum(acks):
            self._finalize_at = None
            return []
        if self.finalize_wait == 0 or verifier.participants <= acks:
            return self._decide(self._proposal)
        if self._finalize_at is None:
            self._finalize_at = now + self.finalize_wait
        return []

    def _decide(self, v: Vote) -> list[Effect]:
        if v.leader == self.my_sid:
            state = LEADING
        else:
            state = OBSERVING if self.is_observer else FOLLOWING
        self._vote = Vote(v.leader, v.zxid, v.election_epoch, v.peer_epoch, state)
        self._proposal = Vote(v.leader, v.zxid, v.election_epoch, v.peer_epoch)
        self._state = state
        self._recvset = {}
        self._outofelection = {}
        self._finalize_at = None
        self._resend_at = None
        return [Elected(v.leader, state, v.peer_epoch, v.zxid, v.election_epoch)]
